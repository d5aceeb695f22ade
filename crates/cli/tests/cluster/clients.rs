//! Clients that survive a node dying: a reader that resumes on the next node
//! with its last id (SSE, NDJSON stream or long-poll), and a publisher that
//! records which publishes were acknowledged.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event as a client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub id: String,
    pub data: String,
}

/// The `seq` of a hub id `{epoch}-{seq}`.
pub fn seq(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or_else(|| panic!("not a hub id: {id}"))
}

/// One HTTP/1.1 request with `Connection: close`, without panicking on a
/// dead node: `None` when the connection failed.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// How a reader receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Ndjson,
    Poll,
}

/// What a reader saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<Got>,
    /// Reset notices (a continuity break): none may happen in these tests
    /// unless the broker lost its stream.
    pub resets: Vec<String>,
    /// Connections opened (1 + reconnections).
    pub connections: usize,
}

/// A reader on `topics` that starts after `from` on node `home` and moves to
/// the next node whenever its node goes away, resuming from its last id.
pub struct Reader {
    pub transport: Transport,
    pub topics: Vec<String>,
    pub seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    pub fn start(
        transport: Transport,
        topics: &[&str],
        nodes: Vec<SocketAddr>,
        home: usize,
        from: String,
    ) -> Reader {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (topics, seen, stop) = (topics.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || run(transport, &topics, &nodes, home, from, &seen, &stop))
        };
        Reader {
            transport,
            topics,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until an event whose data is `data` arrived (bounded).
    pub fn wait_for(&self, data: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if seen.events.iter().any(|g| g.data == data) {
                    return;
                }
                assert!(
                    start.elapsed() < limit,
                    "{:?} reader on {:?} did not receive {data:?} within {limit:?}; got {} events, resets {:?}, last {:?}",
                    self.transport,
                    self.topics,
                    seen.events.len(),
                    seen.resets,
                    seen.events.last()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the reader was told of a continuity break (bounded).
    pub fn wait_reset(&self, limit: Duration) {
        let start = Instant::now();
        while self.seen.lock().unwrap().resets.is_empty() {
            assert!(
                start.elapsed() < limit,
                "{:?} reader was never told of a reset",
                self.transport
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the reader and returns what it saw.
    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn query(topics: &[String]) -> String {
    topics
        .iter()
        .map(|t| format!("topic={t}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn run(
    transport: Transport,
    topics: &[String],
    nodes: &[SocketAddr],
    home: usize,
    mut last: String,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut node = home;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let addr = nodes[node % nodes.len()];
        let ok = match transport {
            Transport::Poll => poll_once(addr, topics, &mut last, seen),
            Transport::Sse | Transport::Ndjson => {
                stream(transport, addr, topics, &mut last, seen, stop)
            }
        };
        if !ok {
            // The node is gone (or going): resume on the next one.
            node += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One long-poll; `false` when the node did not answer.
fn poll_once(addr: SocketAddr, topics: &[String], last: &mut String, seen: &Mutex<Seen>) -> bool {
    let target = format!("/poll?{}&since={last}&timeout=2", query(topics));
    let Some((status, body)) = try_request(addr, "GET", &target, "") else {
        return false;
    };
    if status != 200 {
        return false;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    let mut seen = seen.lock().unwrap();
    seen.connections += 1;
    if let Some(r) = v.get("reset") {
        seen.resets.push(r.to_string());
    }
    for e in v["events"].as_array().into_iter().flatten() {
        seen.events.push(Got {
            id: e["id"].as_str().unwrap_or_default().to_string(),
            data: e["data"].as_str().unwrap_or_default().to_string(),
        });
    }
    if let Some(id) = v["last_event_id"].as_str() {
        *last = id.to_string();
    }
    true
}

/// One SSE or NDJSON connection, read until it closes; `false` when the
/// node did not answer at all.
fn stream(
    transport: Transport,
    addr: SocketAddr,
    topics: &[String],
    last: &mut String,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let path = if transport == Transport::Sse {
        "/sse"
    } else {
        "/stream"
    };
    let req = format!(
        "GET {path}?{} HTTP/1.1\r\nHost: test\r\nLast-Event-ID: {last}\r\n\r\n",
        query(topics)
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    seen.lock().unwrap().connections += 1;
    let mut buf: Vec<u8> = Vec::new();
    let mut body_at = None;
    let mut chunk = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        }
        if body_at.is_none() {
            match buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(p) => {
                    let head = String::from_utf8_lossy(&buf[..p]).to_string();
                    if !head.starts_with("HTTP/1.1 200") {
                        return false;
                    }
                    buf.drain(..p + 4);
                    body_at = Some(());
                }
                None => continue,
            }
        }
        let consumed = match transport {
            Transport::Sse => take_sse(&buf, last, seen),
            _ => take_ndjson(&buf, last, seen),
        };
        buf.drain(..consumed);
    }
    true
}

/// Parses every complete SSE block; returns the bytes consumed.
fn take_sse(buf: &[u8], last: &mut String, seen: &Mutex<Seen>) -> usize {
    let text = String::from_utf8_lossy(buf);
    let mut used = 0;
    let mut seen = seen.lock().unwrap();
    while let Some(end) = text[used..].find("\n\n") {
        let block = &text[used..used + end];
        used += end + 2;
        let (mut id, mut data, mut kind) = (None, None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v.to_string());
            }
        }
        match (id, data, kind.as_deref()) {
            (Some(id), Some(data), Some("herald-reset")) => {
                seen.resets.push(data);
                *last = id;
            }
            (Some(id), Some(data), _) => {
                *last = id.clone();
                seen.events.push(Got { id, data });
            }
            _ => {}
        }
    }
    used
}

/// Parses every complete NDJSON line; returns the bytes consumed.
fn take_ndjson(buf: &[u8], last: &mut String, seen: &Mutex<Seen>) -> usize {
    let mut used = 0;
    let mut seen = seen.lock().unwrap();
    while let Some(end) = buf[used..].iter().position(|&b| b == b'\n') {
        let line = &buf[used..used + end];
        used += end + 1;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        match v["op"].as_str() {
            Some("event") => {
                let id = v["id"].as_str().unwrap_or_default().to_string();
                *last = id.clone();
                seen.events.push(Got {
                    id,
                    data: v["data"].as_str().unwrap_or_default().to_string(),
                });
            }
            Some("reset") => {
                seen.resets.push(v.to_string());
                if let Some(id) = v["last_event_id"].as_str() {
                    *last = id.to_string();
                }
            }
            _ => {}
        }
    }
    used
}

/// What publishers sent: acknowledged (id, data) and data whose fate is
/// unknown (the node died or the broker was away while it was in flight).
#[derive(Debug, Default, Clone)]
pub struct Sent {
    pub acked: Vec<Got>,
    pub uncertain: Vec<String>,
}

/// Publishes `data` to `topic` on `addr`; records the outcome in `sent`.
/// Returns the status (0 when the node did not answer).
pub fn publish(addr: SocketAddr, topic: &str, data: &str, sent: &Mutex<Sent>) -> u16 {
    match try_request(addr, "POST", &format!("/publish?topic={topic}"), data) {
        Some((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            sent.lock().unwrap().acked.push(Got {
                id,
                data: data.to_string(),
            });
            200
        }
        other => {
            sent.lock().unwrap().uncertain.push(data.to_string());
            other.map_or(0, |(s, _)| s)
        }
    }
}
