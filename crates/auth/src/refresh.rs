//! Keeping JWK sets current: a periodic reload, and an early one when a
//! token names a `kid` the hub does not know (a key rotation).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::ConfigError;
use crate::verify::Verifier;

/// Shortest time between two reloads triggered by unknown `kid`s, so a
/// stream of bogus tokens cannot turn the hub into a JWKS fetch loop.
pub const KID_MISS_COOLDOWN: Duration = Duration::from_secs(10);

impl Verifier {
    /// Whether this verifier has JWK sets to keep current (if not,
    /// [`Verifier::run_refresh`] returns at once).
    pub fn needs_refresh(&self) -> bool {
        !self.inner().sources.is_empty()
    }

    /// Reloads every JWK set once. A set that fails keeps its last good
    /// keys; the failures are returned (and logged).
    pub async fn refresh(&self) -> Vec<ConfigError> {
        let inner = self.inner();
        let mut errors = Vec::new();
        for source in &inner.sources {
            match source.refresh(inner.client.as_ref()).await {
                Ok(n) => tracing::debug!(jwks = %source.name(), keys = n, "JWKS loaded"),
                Err(e) => {
                    let kept = source.keys().map_or(0, |k| k.len());
                    tracing::warn!(jwks = %source.name(), kept_keys = kept, "JWKS refresh failed: {e}");
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Reloads the JWK sets now, then every `jwks_refresh`, and early (at
    /// most once per [`KID_MISS_COOLDOWN`]) when a token names an unknown
    /// `kid`, until `cancel` fires. Spawn it once per process:
    /// `tokio::spawn(verifier.clone().run_refresh(token))`. Timers are
    /// tokio's, so tests can pause time.
    pub async fn run_refresh(self, cancel: CancellationToken) {
        if !self.needs_refresh() {
            return;
        }
        let inner = self.inner();
        let mut last = tokio::time::Instant::now();
        self.refresh().await;
        loop {
            let next = last + inner.refresh;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
                _ = inner.kid_miss.notified() => {
                    let earliest = last + KID_MISS_COOLDOWN;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep_until(earliest.min(next)) => {}
                    }
                }
            }
            last = tokio::time::Instant::now();
            self.refresh().await;
        }
    }
}
