//! The broker servers the cluster tests run against: Debian's `redis-server`
//! and `nats-server`, started on a free loopback port with a temporary
//! directory, killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Redis => "redis-server",
            Kind::Nats => "nats-server",
        }
    }
}

/// A running broker; killed on drop.
pub struct Broker {
    pub kind: Kind,
    pub port: u16,
    /// Redis: append-only file with fsync on every write, so a restart keeps
    /// the stream. NATS always keeps JetStream data in `dir`.
    persistent: bool,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// Where the binary is, if installed (Debian puts nats-server in /usr/sbin).
fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"])
        .map(|d| PathBuf::from(d).join(binary))
        .find(|p| p.is_file())
}

/// Whether the tests for `kind` can run. A missing server fails the test
/// unless HERALD_SKIP_CLUSTER=1 says to skip it (never in CI: scripts/test
/// installs both servers).
pub fn available(kind: Kind) -> bool {
    if find(kind.binary()).is_some() {
        return true;
    }
    if std::env::var("HERALD_SKIP_CLUSTER").as_deref() == Ok("1") {
        eprintln!(
            "\n*** SKIPPED: {} is not installed and HERALD_SKIP_CLUSTER=1; \
             the cluster tests did NOT run (scripts/test setup installs it) ***\n",
            kind.binary()
        );
        return false;
    }
    panic!(
        "{} is not installed: run `scripts/test setup` (apt-get install redis-server nats-server), \
         or set HERALD_SKIP_CLUSTER=1 to skip the cluster tests",
        kind.binary()
    );
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Broker {
    pub fn start(kind: Kind, persistent: bool) -> Broker {
        let mut b = Broker {
            kind,
            port: free_port(),
            persistent,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        b.spawn();
        b
    }

    /// The URL nodes are given.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    fn spawn(&mut self) {
        let bin = find(self.kind.binary()).expect("broker binary");
        let port = self.port.to_string();
        let mut cmd = Command::new(bin);
        match self.kind {
            Kind::Redis => {
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .arg("--dir")
                    .arg(self.dir.path());
                if self.persistent {
                    cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
                } else {
                    cmd.args(["--appendonly", "no"]);
                }
            }
            Kind::Nats => {
                cmd.args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
                    .arg(self.dir.path());
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start broker");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} did not listen on port {}",
                self.kind.binary(),
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.kind == Kind::Nats {
            // JetStream needs a moment after the port opens.
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port; `wipe` first deletes everything it stored.
    pub fn restart(&mut self, wipe: bool) {
        self.kill9();
        if wipe {
            for e in std::fs::read_dir(self.dir.path()).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).unwrap();
                } else {
                    std::fs::remove_file(&p).unwrap();
                }
            }
        }
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
