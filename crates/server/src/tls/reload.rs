//! The reload task: looks at the certificate and key files every `reload`
//! interval and on SIGHUP, and installs them when their bytes changed.
//!
//! Comparing bytes rather than modification times catches a file replaced
//! within the same second and ignores a `touch`. A renewal that writes the
//! certificate and the key one after the other may be seen half-done: the pair
//! then does not match, the old certificate stays, and the next look (after
//! the second write) installs the new pair. Each distinct failure is logged
//! once, not on every look.

use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Tls, TlsError, read};

/// Starts the reload task; it ends when `shutdown` fires. SIGHUP is watched
/// from the moment this returns (call it within a tokio runtime).
pub fn spawn(tls: Tls, shutdown: CancellationToken) -> JoinHandle<()> {
    let hangups = Hangups::new();
    tokio::spawn(run(tls, hangups, shutdown))
}

/// What one look at the files did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The files hold what was last seen; nothing was done.
    Unchanged,
    /// A new certificate is presented to new connections.
    Reloaded,
    /// The files could not be read or used; the previous certificate stays.
    Failed,
}

/// What the last look found, so a change is acted on once and a broken file
/// is warned about once.
pub(crate) struct Watch {
    /// The certificate and key files' bytes at the last look.
    seen: (Vec<u8>, Vec<u8>),
    /// The last failure's message, so it is not repeated on every look.
    last_error: Option<String>,
}

impl Watch {
    /// Starts from the bytes loaded at start.
    pub(crate) fn new(tls: &Tls) -> Watch {
        Watch {
            seen: tls.source.initial.clone(),
            last_error: None,
        }
    }

    fn failed(&mut self, tls: &Tls, e: TlsError) -> Outcome {
        let message = e.to_string();
        if self.last_error.as_ref() != Some(&message) {
            tracing::warn!(
                cert = %tls.source.cert.display(),
                error = %message,
                "TLS certificate reload failed: new connections keep the previous certificate"
            );
        }
        self.last_error = Some(message);
        Outcome::Failed
    }
}

impl Tls {
    /// Reads both files (blocking; they are small) and installs them if their
    /// bytes differ from the last look, or always if `force`.
    pub(crate) fn check(&self, watch: &mut Watch, force: bool) -> Outcome {
        let files = read(&self.source.cert).and_then(|c| Ok((c, read(&self.source.key)?)));
        let files = match files {
            Ok(files) => files,
            Err(e) => return watch.failed(self, e),
        };
        if !force && files == watch.seen {
            return Outcome::Unchanged;
        }
        watch.seen = files;
        match self.install(&watch.seen.0, &watch.seen.1) {
            Ok(()) => {
                watch.last_error = None;
                tracing::info!(
                    cert = %self.source.cert.display(),
                    "TLS certificate reloaded: new connections present it"
                );
                Outcome::Reloaded
            }
            Err(e) => watch.failed(self, e),
        }
    }
}

async fn run(tls: Tls, mut hangups: Hangups, shutdown: CancellationToken) {
    let mut watch = Watch::new(&tls);
    let period = tls.reload_interval();
    let mut interval = (!period.is_zero()).then(|| {
        let mut i = tokio::time::interval_at(Instant::now() + period, period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    loop {
        let force = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick(&mut interval) => false,
            () = hangups.next() => {
                tracing::info!("SIGHUP: reloading the TLS certificate");
                true
            }
        };
        let tls2 = tls.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let outcome = tls2.check(&mut watch, force);
            (watch, outcome)
        });
        match looked.await {
            Ok((w, _)) => watch = w,
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload task failed");
                return;
            }
        }
    }
}

/// The next tick, or never when polling is off. Cancel-safe.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// SIGHUPs, where there are signals.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot watch SIGHUP; TLS reloads come from polling only")
                })
                .ok();
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    /// The next SIGHUP, or never. Cancel-safe.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            if s.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending().await
    }
}
