//! Limits that protect the hub from its clients: connections in total and
//! per client address (checked at accept, before anything is read), and
//! publishes per second per client address and per token (GCRA through
//! governor). Each refusal is a clear `503` or `429` with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::StatusCode;

use crate::auth::Access;
use crate::options::ServerOptions;
use crate::rejection::Rejection;

/// Open connections, in total and per client address.
#[derive(Default)]
pub struct Connections {
    total: AtomicUsize,
    per_addr: Mutex<HashMap<IpAddr, u32>>,
}

/// One accepted connection, counted until the last clone is dropped (a
/// stream, a WebSocket session or a hyper connection may hold it).
pub struct Slot {
    conns: Arc<Connections>,
    addr: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.total.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.conns.lock();
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.per_addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection from `addr`, or says which limit it would break.
    pub fn admit(
        self: &Arc<Self>,
        addr: IpAddr,
        opts: &ServerOptions,
    ) -> Result<Arc<Slot>, Rejection> {
        let mut map = self.lock();
        if self.total.load(Ordering::Relaxed) >= opts.max_connections {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                format!(
                    "the hub holds its limit of {} connections; retry shortly",
                    opts.max_connections
                ),
            )
            .retry_after(5));
        }
        let n = map.entry(addr).or_insert(0);
        if *n as usize >= opts.max_connections_per_address {
            if *n == 0 {
                map.remove(&addr);
            }
            return Err(Rejection::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections_from_address",
                format!(
                    "{addr} already holds {} connections, the most one address may open; close some (one HTTP/2 connection or one WebSocket carries many subscriptions)",
                    opts.max_connections_per_address
                ),
            )
            .retry_after(5));
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Slot {
            conns: self.clone(),
            addr,
        }))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// Publish rate limits (off in `--dev`, and where set to 0).
pub struct PublishLimits {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<String>>,
}

impl PublishLimits {
    /// Limits from the options.
    pub fn new(opts: &ServerOptions) -> Self {
        let quota = |rate: u32| {
            (!opts.dev)
                .then_some(NonZeroU32::new(rate))
                .flatten()
                .map(Quota::per_second)
        };
        PublishLimits {
            per_address: quota(opts.publish_rate_per_address).map(RateLimiter::keyed),
            per_token: quota(opts.publish_rate_per_token).map(RateLimiter::keyed),
        }
    }

    /// Takes `events` publishes from the budgets of `addr` and of the token.
    pub fn check(
        &self,
        addr: Option<IpAddr>,
        access: &Access,
        events: usize,
    ) -> Result<(), Rejection> {
        let n = NonZeroU32::new(u32::try_from(events.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        if let (Some(limiter), Some(addr)) = (&self.per_address, addr) {
            check(limiter, &addr, n, "this address")?;
        }
        if let (Some(limiter), Access::Token(claims, _)) = (&self.per_token, access) {
            // Per identity: the token's subject, else its grants.
            let key = claims
                .subject
                .clone()
                .unwrap_or_else(|| format!("{:?}", claims.grants));
            check(limiter, &key, n, "this token")?;
        }
        Ok(())
    }

    /// Forgets idle keys (called on the heartbeat tick).
    pub fn prune(&self) {
        if let Some(l) = &self.per_address {
            l.retain_recent();
        }
        if let Some(l) = &self.per_token {
            l.retain_recent();
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    n: NonZeroU32,
    who: &str,
) -> Result<(), Rejection> {
    let too_many = |wait: u64| {
        Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{who} publishes faster than the hub allows; slow down or batch events"),
        )
        .retry_after(wait.max(1))
    };
    match limiter.check_key_n(key, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(too_many(wait.as_secs_f64().ceil() as u64))
        }
        // A batch larger than a whole second's budget can never pass.
        Err(_) => Err(Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this batch holds more events than {who} may publish in a second; split it"),
        )),
    }
}
