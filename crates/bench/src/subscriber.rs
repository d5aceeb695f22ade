//! One lean SSE subscriber: a raw socket, the request written by hand, the
//! response head parsed with httparse, the body through [`SseParser`] (and
//! [`Dechunker`] when the server frames it), each event checked and timed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::chunked::Dechunker;
use crate::payload;
use crate::run::Ctx;
use crate::sequence::{Seen, SeqChecker};
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
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Local address to bind before connecting, if any.
    pub(crate) source: Option<IpAddr>,
    /// The whole request.
    pub(crate) request: String,
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
    let connected = {
        let _permit = ctx.connect_gate.acquire().await;
        match tokio::time::timeout(ctx.plan.connect_timeout, connect(&spec)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no response head within {:?}",
                ctx.plan.connect_timeout
            )),
        }
    };
    let (stream, rest, chunked) = match connected {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return SubResult {
                connect_error: Some(e),
                expected: spec.expected,
                lost: spec.expected,
                ..SubResult::default()
            };
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    receive(id, stream, rest, chunked, &spec, &ctx).await
}

/// Opens the connection and reads the response head; returns the socket,
/// the body bytes read with the head, and whether the body is chunked.
async fn connect(spec: &SubSpec) -> Result<(TcpStream, Vec<u8>, bool), String> {
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
    let mut stream = socket
        .connect(spec.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", spec.addr))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(spec.request.as_bytes())
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

/// Per-subscriber receive state.
struct Receiver<'a> {
    spec: &'a SubSpec,
    topics: u64,
    checker: SeqChecker,
    result: SubResult,
    /// Latencies of the current read, recorded under one lock.
    batch: Vec<u64>,
    finished: bool,
}

impl Receiver<'_> {
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
        if self.checker.observe(k) != Seen::Duplicate {
            self.batch.push(now_us.saturating_sub(sent_us));
            self.result.last_rx_us = now_us;
        }
        if k + 1 == self.spec.expected {
            self.finished = true;
        }
    }
}

async fn receive(
    id: u64,
    mut stream: TcpStream,
    first: Vec<u8>,
    chunked: bool,
    spec: &SubSpec,
    ctx: &Ctx,
) -> SubResult {
    let mut rx = Receiver {
        spec,
        topics: ctx.plan.topics,
        checker: SeqChecker::new(),
        result: SubResult {
            expected: spec.expected,
            ..SubResult::default()
        },
        batch: Vec::new(),
        finished: spec.expected == 0,
    };
    let mut parser = SseParser::new();
    let mut dechunker = chunked.then(Dechunker::default);
    let mut signalled = false;
    let mut buf = first;
    let mut n = buf.len();
    buf.resize(READ_BUF.max(n), 0);
    loop {
        let now_us = ctx.now_us();
        let mut feed = |bytes: &[u8]| parser.feed(bytes, |e| rx.on_data(e.data, now_us));
        let framing = match dechunker.as_mut() {
            Some(d) => d
                .feed(&buf[..n], &mut feed)
                .map_err(|_| "bad chunked framing"),
            None => {
                feed(&buf[..n]);
                Ok(())
            }
        };
        if !rx.batch.is_empty() {
            ctx.record(id, &rx.batch);
            rx.batch.clear();
        }
        if let Err(e) = framing {
            rx.result.stream_error = Some(e.into());
            break;
        }
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            rx.result.stream_error = Some("body ended by the server".into());
            break;
        }
        if rx.finished && !signalled {
            signalled = true;
            ctx.finished();
        }
        n = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            r = stream.read(&mut buf) => match r {
                Ok(0) => {
                    rx.result.stream_error = Some("closed by the server".into());
                    break;
                }
                Ok(n) => n,
                Err(e) => {
                    rx.result.stream_error = Some(format!("read: {e}"));
                    break;
                }
            },
        };
    }
    if !signalled {
        ctx.finished();
    }
    if rx.finished {
        // Closing after the last expected event is not a failure.
        rx.result.stream_error = None;
    }
    let c = &rx.checker;
    rx.result.delivered = c.distinct().min(spec.expected);
    rx.result.lost = c.lost(spec.expected);
    rx.result.duplicated = c.duplicated();
    rx.result.out_of_order = c.out_of_order();
    rx.result
}
