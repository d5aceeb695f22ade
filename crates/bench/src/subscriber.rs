//! One subscriber. Over SSE (the default): a raw socket, the request written
//! by hand, the response head parsed with httparse, the body through
//! [`SseParser`] (and [`Dechunker`] when the server frames it). Over
//! WebSocket (`ws.rs`) and long-polling (`poll.rs`) the same [`Receiver`]
//! checks and times each event's data.

mod poll;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::Transport;
use crate::chunked::Dechunker;
use crate::payload;
use crate::run::Ctx;
use crate::sequence::{Seen, SeqChecker, expected_on_topic};
use crate::sse::SseParser;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Read buffer per subscriber: small, since thousands are open at once.
const READ_BUF: usize = 8 * 1024;

/// Who one subscriber is.
#[derive(Debug, Clone)]
pub(crate) struct SubSpec {
    /// Index of the topic it subscribes to.
    pub(crate) topic: u64,
    /// Events it should receive.
    pub(crate) expected: u64,
    /// In a storm, events it should have before the drop (else `expected`).
    pub(crate) first_goal: u64,
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Local address to bind before connecting, if any.
    pub(crate) source: Option<IpAddr>,
    /// How it subscribes.
    pub(crate) transport: Transport,
    /// `Host` of the requests.
    pub(crate) authority: String,
    /// The request target (path and query) for its topic.
    pub(crate) target: String,
}

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct SubResult {
    /// Why it could not connect, if it could not.
    pub(crate) connect_error: Option<String>,
    /// Events expected.
    pub(crate) expected: u64,
    /// Distinct expected events received.
    pub(crate) delivered: u64,
    /// Expected events never received.
    pub(crate) lost: u64,
    /// Extra copies received.
    pub(crate) duplicated: u64,
    /// Events received after a later one.
    pub(crate) out_of_order: u64,
    /// Events that were not ours, not for this topic, or malformed.
    pub(crate) unexpected: u64,
    /// When the last event arrived, µs since start (0: none).
    pub(crate) last_rx_us: u64,
    /// When it had everything it waited for (in a storm: after the
    /// reconnect), µs since start (0: never).
    pub(crate) done_us: u64,
    /// How the stream ended early (closed or failed), if it did.
    pub(crate) stream_error: Option<String>,
}

/// Connects, then receives until the run is cancelled. Reports the connect
/// outcome on `ready` as soon as it is known.
pub(crate) async fn run(
    id: u64,
    spec: SubSpec,
    ctx: Arc<Ctx>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
) -> SubResult {
    match spec.transport {
        Transport::Sse => match connected(connect(&spec, None), &spec, &ctx, ready).await {
            Ok((stream, rest, chunked)) if ctx.storm.is_some() => {
                storm(id, stream, rest, chunked, &spec, &ctx).await
            }
            Ok((stream, rest, chunked)) => {
                let mut rx = Receiver::new(&spec, &ctx);
                receive(id, &mut rx, stream, rest, chunked, &ctx, &ctx.cancel).await;
                rx.finish(&ctx)
            }
            Err(failed) => failed,
        },
        Transport::Ws => match connected(ws::connect(&spec), &spec, &ctx, ready).await {
            Ok(socket) => ws::receive(id, socket, &spec, &ctx).await,
            Err(failed) => failed,
        },
        Transport::Poll => match connected(poll::connect(&spec), &spec, &ctx, ready).await {
            Ok(poller) => poller.receive(id, &spec, &ctx).await,
            Err(failed) => failed,
        },
    }
}

/// Runs a transport's connect step under the connect gate and timeout and
/// reports its outcome on `ready`; a failure becomes the subscriber's result.
async fn connected<T>(
    connect: impl Future<Output = Result<T, String>>,
    spec: &SubSpec,
    ctx: &Ctx,
    ready: mpsc::UnboundedSender<Result<(), String>>,
) -> Result<T, SubResult> {
    let outcome = {
        let _permit = ctx.connect_gate.acquire().await;
        match tokio::time::timeout(ctx.plan.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "not subscribed within {:?}",
                ctx.plan.connect_timeout
            )),
        }
    };
    let _ = ready.send(outcome.as_ref().map(|_| ()).map_err(String::clone));
    outcome.map_err(|e| SubResult {
        connect_error: Some(e),
        expected: spec.expected,
        lost: spec.expected,
        ..SubResult::default()
    })
}

/// A TCP connection to the server, from the spec's source address if any.
async fn open(spec: &SubSpec) -> Result<TcpStream, String> {
    let socket = if spec.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = spec.source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(spec.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", spec.addr))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens an SSE stream (resuming after `last_id` if given) and reads the
/// response head; returns the socket, the body bytes read with the head,
/// and whether the body is chunked.
async fn connect(
    spec: &SubSpec,
    last_id: Option<&[u8]>,
) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let mut stream = open(spec).await?;
    let resume = match last_id {
        Some(id) => format!("Last-Event-ID: {}\r\n", String::from_utf8_lossy(id)),
        None => String::new(),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{resume}\r\n",
        spec.target, spec.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write request: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read response head: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                if status != 200 {
                    let body = String::from_utf8_lossy(&buf[len..]);
                    return Err(format!("HTTP {status}: {}", body.trim()));
                }
                let chunked = resp.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("chunked")
                });
                return Ok((stream, buf[len..].to_vec(), chunked));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("response head too large".into()),
            Err(e) => return Err(format!("bad response head: {e}")),
        }
    }
}

/// Per-subscriber receive state, whatever the transport.
struct Receiver<'a> {
    spec: &'a SubSpec,
    topics: u64,
    /// One checker per publishing lane of the topic (`--in-flight`), with
    /// how many of the topic's events each lane carries.
    lanes: Vec<(SeqChecker, u64)>,
    /// Lanes whose last event has arrived.
    lanes_done: u64,
    result: SubResult,
    /// Latencies of the current read, recorded under one lock.
    batch: Vec<u64>,
    /// Storm: done once this many distinct events arrived (every one of
    /// them, not just the last), else done at the last expected event.
    goal: Option<u64>,
    /// The id of the last event (kept only in a storm, to resume from).
    last_id: Vec<u8>,
    finished: bool,
    /// Whether `ctx.finished()` was called for this subscriber.
    signalled: bool,
}

impl<'a> Receiver<'a> {
    fn new(spec: &'a SubSpec, ctx: &Ctx) -> Receiver<'a> {
        Receiver {
            spec,
            topics: ctx.plan.topics,
            lanes: (0..ctx.plan.lanes)
                .map(|l| {
                    let n = expected_on_topic(spec.expected, ctx.plan.lanes, l);
                    (SeqChecker::new(), n)
                })
                .collect(),
            lanes_done: 0,
            result: SubResult {
                expected: spec.expected,
                ..SubResult::default()
            },
            batch: Vec::new(),
            goal: ctx.storm.is_some().then_some(spec.first_goal),
            last_id: Vec::new(),
            finished: spec.expected == 0,
            signalled: false,
        }
    }

    /// Distinct events received, over every lane.
    fn distinct(&self) -> u64 {
        self.lanes.iter().map(|(c, _)| c.distinct()).sum()
    }

    /// Lanes that carry at least one event.
    fn live_lanes(&self) -> u64 {
        self.lanes.iter().filter(|(_, n)| *n > 0).count() as u64
    }

    /// Tells the run, once, that this subscriber has its last event.
    fn signal_if_done(&mut self, ctx: &Ctx) {
        if let Some(goal) = self.goal {
            self.finished = self.distinct() >= goal;
        }
        if self.finished && !self.signalled {
            self.signalled = true;
            self.result.done_us = ctx.now_us();
            ctx.finished();
        }
    }

    /// Records the latencies of the events taken since the last flush.
    fn flush(&mut self, id: u64, ctx: &Ctx, now_us: u64) {
        if !self.batch.is_empty() {
            ctx.record(id, &self.batch, now_us);
            self.batch.clear();
        }
    }

    /// The result, once the stream is over (the run stops waiting for it).
    fn finish(mut self, ctx: &Ctx) -> SubResult {
        if !self.signalled {
            ctx.finished();
        }
        if let Some(goal) = self.goal {
            self.finished = self.distinct() >= goal;
        }
        if self.finished {
            // Closing after the last expected event is not a failure.
            self.result.stream_error = None;
        }
        for (c, expected) in &self.lanes {
            self.result.delivered += c.distinct().min(*expected);
            self.result.lost += c.lost(*expected);
            self.result.duplicated += c.duplicated();
            self.result.out_of_order += c.out_of_order();
        }
        self.result
    }

    fn on_data(&mut self, data: &[u8], now_us: u64) {
        let Some((seq, sent_us)) = payload::decode(data) else {
            self.result.unexpected += 1;
            return;
        };
        let k = seq / self.topics;
        if seq % self.topics != self.spec.topic || k >= self.spec.expected {
            self.result.unexpected += 1;
            return;
        }
        let lanes = self.lanes.len() as u64;
        let (checker, expected) = &mut self.lanes[(k % lanes) as usize];
        let j = k / lanes;
        if checker.observe(j) != Seen::Duplicate {
            self.batch.push(now_us.saturating_sub(sent_us));
            self.result.last_rx_us = now_us;
            if j + 1 == *expected {
                self.lanes_done += 1;
                self.finished = self.lanes_done == self.live_lanes();
            }
        }
    }
}

/// Reads an SSE stream into `rx` until `stop` is cancelled (true) or the
/// stream ends or fails (false, the reason in `rx.result.stream_error`).
/// The socket is closed on return.
async fn receive(
    id: u64,
    rx: &mut Receiver<'_>,
    mut stream: TcpStream,
    first: Vec<u8>,
    chunked: bool,
    ctx: &Ctx,
    stop: &CancellationToken,
) -> bool {
    let keep_id = rx.goal.is_some();
    let mut parser = SseParser::new();
    let mut dechunker = chunked.then(Dechunker::default);
    let mut buf = first;
    let mut n = buf.len();
    buf.resize(READ_BUF.max(n), 0);
    loop {
        let now_us = ctx.now_us();
        let mut feed = |bytes: &[u8]| {
            parser.feed(bytes, |e| {
                rx.on_data(e.data, now_us);
                if keep_id {
                    rx.last_id.clear();
                    rx.last_id.extend_from_slice(e.id);
                }
            });
        };
        let framing = match dechunker.as_mut() {
            Some(d) => d
                .feed(&buf[..n], &mut feed)
                .map_err(|_| "bad chunked framing"),
            None => {
                feed(&buf[..n]);
                Ok(())
            }
        };
        rx.flush(id, ctx, now_us);
        if let Err(e) = framing {
            rx.result.stream_error = Some(e.into());
            return false;
        }
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            rx.result.stream_error = Some("body ended by the server".into());
            return false;
        }
        rx.signal_if_done(ctx);
        n = tokio::select! {
            biased;
            () = stop.cancelled() => return true,
            r = stream.read(&mut buf) => match r {
                Ok(0) => {
                    rx.result.stream_error = Some("closed by the server".into());
                    return false;
                }
                Ok(n) => n,
                Err(e) => {
                    rx.result.stream_error = Some(format!("read: {e}"));
                    return false;
                }
            },
        };
    }
}

/// A storm subscriber: receives until the drop, closes its socket, waits
/// for the reconnect signal, reconnects with `Last-Event-ID` (under the
/// storm's own gate) and receives until the run ends.
async fn storm(
    id: u64,
    stream: TcpStream,
    first: Vec<u8>,
    chunked: bool,
    spec: &SubSpec,
    ctx: &Ctx,
) -> SubResult {
    let mut rx = Receiver::new(spec, ctx);
    let Some(storm) = ctx.storm.as_ref() else {
        return rx.finish(ctx);
    };
    if !receive(id, &mut rx, stream, first, chunked, ctx, &storm.dropped).await {
        return rx.finish(ctx);
    }
    tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => return rx.finish(ctx),
        () = storm.reconnect.cancelled() => {}
    }
    rx.goal = Some(spec.expected);
    rx.signalled = false;
    let last_id = std::mem::take(&mut rx.last_id);
    let outcome = {
        let _permit = storm.gate.acquire().await;
        tokio::time::timeout(ctx.plan.connect_timeout, connect(spec, Some(&last_id))).await
    };
    match outcome {
        Ok(Ok((stream, rest, chunked))) => {
            storm.reconnected(ctx.now_us());
            rx.signal_if_done(ctx);
            receive(id, &mut rx, stream, rest, chunked, ctx, &ctx.cancel).await;
        }
        Ok(Err(e)) => rx.result.stream_error = Some(format!("reconnect: {e}")),
        Err(_) => rx.result.stream_error = Some("reconnect: timed out".into()),
    }
    rx.finish(ctx)
}
