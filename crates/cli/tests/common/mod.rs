//! Test harness: the real `herald` binary on 127.0.0.1:0 with a temporary data
//! dir, and small blocking HTTP/1.1 clients that let tests assert on bytes.
#![allow(dead_code, unreachable_pub)]
// These tests drive a separate process over real sockets: their deadlines are
// wall-clock on purpose, with no tokio runtime whose time could be paused.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A running hub process; killed on drop.
pub struct Hub {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Hub {
    /// A hub in dev mode on a fresh data dir.
    pub fn start(extra: &[&str]) -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut args = vec!["--dev"];
        args.extend_from_slice(extra);
        let mut hub = Hub::start_in(&dir, "127.0.0.1:0", &args);
        hub._tmp = Some(tmp);
        hub
    }

    /// A hub on `dir` listening on `listen` with these extra flags.
    pub fn start_in(dir: &Path, listen: &str, extra: &[&str]) -> Hub {
        let level = std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "warn".into());
        Hub::spawn(dir, listen, extra, &level, Stdio::inherit())
    }

    /// A dev hub on a fresh data dir logging at `level` (a `HERALD_LOG`
    /// filter); its stderr lines arrive on the returned channel.
    pub fn start_logged(extra: &[&str], level: &str) -> (Hub, std::sync::mpsc::Receiver<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--dev"];
        args.extend_from_slice(extra);
        let mut hub = Hub::spawn(tmp.path(), "127.0.0.1:0", &args, level, Stdio::piped());
        hub._tmp = Some(tmp);
        let stderr = hub.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (hub, rx)
    }

    fn spawn(dir: &Path, listen: &str, extra: &[&str], level: &str, stderr: Stdio) -> Hub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .args(["--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("HERALD_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start herald");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).expect("herald printed its address");
        let addr = line
            .trim()
            .strip_prefix("herald: listening on ")
            .and_then(|url| url.split_once("://"))
            .map(|(_, addr)| addr)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Hub {
            child,
            addr,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// A hub without `--dev` on a fresh data dir: tokens signed with `secret`
    /// (HS256) decide, as in production.
    pub fn start_secure(secret: &str, extra: &[&str]) -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--jwt-secret", secret];
        args.extend_from_slice(extra);
        let mut hub = Hub::start_in(tmp.path(), "127.0.0.1:0", &args);
        hub.keep_dir(tmp);
        hub
    }

    /// Keeps `tmp` (the hub's data dir) alive as long as the hub.
    pub fn keep_dir(&mut self, tmp: tempfile::TempDir) {
        self._tmp = Some(tmp);
    }

    /// SIGKILL, then start again on the same dir and port.
    pub fn kill_and_restart(&mut self, extra: &[&str]) {
        self.kill9();
        let listen = self.addr.to_string();
        let mut next = Hub::start_in(&self.dir, &listen, extra);
        std::mem::swap(&mut self.child, &mut next.child);
        // `next` now holds the dead child; dropping it is harmless.
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < WAIT, "herald did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn epoch(&self) -> String {
        let (_, body) = publish(self.addr, "/publish?topic=__epoch_probe", "x");
        let id: serde_json::Value = serde_json::from_str(&body).unwrap();
        id["id"]
            .as_str()
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let raw = raw_request(addr, method, target, headers, body);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A token signed HS256 with `secret`, granting the `publish` and
/// `subscribe` selectors, valid for `ttl` from `now`.
pub fn mint_token(
    secret: &str,
    publish: &[&str],
    subscribe: &[&str],
    ttl: Duration,
    now: std::time::SystemTime,
) -> String {
    use herald_auth::{Algorithm, Grants, SigningKey, TopicPattern};
    let key = SigningKey::from_secret(secret.as_bytes(), Algorithm::HS256).unwrap();
    let patterns = |l: &[&str]| l.iter().map(|p| TopicPattern::parse(p).unwrap()).collect();
    let grants = Grants {
        publish: patterns(publish),
        subscribe: patterns(subscribe),
        ..Grants::default()
    };
    herald_auth::mint(&key, &grants, ttl, now).unwrap()
}

/// Publishes `body` raw; returns (status, body).
pub fn publish(addr: SocketAddr, target: &str, body: &str) -> (u16, String) {
    request(addr, "POST", target, &[], body.as_bytes())
}

/// Publishes and returns the id (asserting 200).
pub fn publish_id(addr: SocketAddr, topic: &str, data: &str) -> String {
    let (status, body) = publish(addr, &format!("/publish?topic={topic}"), data);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A raw SSE connection.
pub struct Sse {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Sse {
    pub fn open(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut req =
            format!("GET {target} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        Sse {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads until `needle` appears in everything read so far (or panics after WAIT).
    pub fn read_until(&mut self, needle: &str) -> String {
        let start = Instant::now();
        // Only bytes that arrived since the last look (plus an overlap) are
        // searched, so reading megabytes stays linear.
        let mut searched: usize = 0;
        loop {
            let from = searched.saturating_sub(needle.len());
            if needle.is_empty()
                || self.buf[from..]
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            {
                break;
            }
            searched = self.buf.len();
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {needle:?}; got {} bytes, ending {:?}",
                self.buf.len(),
                tail(&self.buf)
            );
            if !self.read_some() {
                panic!(
                    "stream closed before {needle:?}; got {} bytes, ending {:?}",
                    self.buf.len(),
                    tail(&self.buf)
                );
            }
        }
        String::from_utf8_lossy(&self.buf).to_string()
    }

    /// Reads until the server closes the connection; returns everything read.
    pub fn read_to_close(&mut self) -> String {
        let start = Instant::now();
        while self.read_some() {
            assert!(start.elapsed() < WAIT, "stream did not close");
        }
        String::from_utf8_lossy(&self.buf).to_string()
    }

    /// Reads what arrives within the socket's short read timeout; `false` once
    /// the connection is closed (or failed).
    pub fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// The ids of every complete event read so far, in order.
    pub fn ids(&self) -> Vec<String> {
        sse_ids(&String::from_utf8_lossy(&self.buf))
    }
}

/// The last 2 KiB of `buf`, for failure messages.
fn tail(buf: &[u8]) -> String {
    String::from_utf8_lossy(&buf[buf.len().saturating_sub(2048)..]).to_string()
}

/// The `id:` values of every complete block, in order (events only: blocks with data).
pub fn sse_ids(text: &str) -> Vec<String> {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, b)| b);
    let mut out = Vec::new();
    let mut blocks: Vec<&str> = body.split("\n\n").collect();
    blocks.pop(); // the unterminated tail
    for block in blocks {
        let mut id = None;
        let mut data = false;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            }
            data |= line.starts_with("data");
        }
        if let (Some(id), true) = (id, data) {
            out.push(id);
        }
    }
    out
}

/// Sends `bytes` as they are and returns everything the server answers.
pub fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Spawns `cmd` with its stdout piped, and kills it after [`WAIT`] so a test
/// whose child never finishes fails instead of hanging.
pub fn spawn_bounded(cmd: &mut Command) -> Child {
    let child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(WAIT);
        let _ = Command::new("kill").args(["-9", &pid]).status();
    });
    child
}

/// Splits a raw HTTP/1.1 answer into (status, lower-cased header names with
/// their values, body bytes).
pub fn split_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

/// The first value of header `name` (lower case) in [`split_response`]'s headers.
pub fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
