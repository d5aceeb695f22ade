//! Counters and histograms the server keeps for `/metrics`, beyond the
//! connection counts in [`Stats`](crate::listener::Stats): events delivered per
//! transport, publish latency, and refusals by reason.
//!
//! Delivery counters are bumped once per write (a coalesced `writev` of up to
//! 64 events), not once per event, and each transport's counter sits on its
//! own cache line so writers of different transports never share one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Latency;

use crate::listener::Transport;

/// A counter alone on its cache line.
#[derive(Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

/// Extension points for parts built elsewhere (webhooks, brokers) add their
/// own fields here and their series in `metrics.rs`.
#[derive(Default)]
pub struct Telemetry {
    /// Events written to clients, per [`Transport::ALL`].
    delivered: [Padded; 6],
    /// From a publish request's arrival at the hub to its durable ack.
    pub publish_latency: Latency,
    /// Refused requests with status 401 or 403, by the refusal's code (a
    /// bounded set of static strings: never a topic or a client).
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Telemetry {
    /// Counts `n` events written to a client of `transport`.
    pub fn delivered(&self, transport: Transport, n: usize) {
        self.delivered[transport as usize]
            .0
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Events delivered to clients of `transport` so far.
    pub fn delivered_total(&self, transport: Transport) -> u64 {
        self.delivered[transport as usize].0.load(Ordering::Relaxed)
    }

    /// Counts a refusal if it is an authentication or authorization failure.
    pub fn refused(&self, status: hyper::StatusCode, code: &'static str) {
        if status == hyper::StatusCode::UNAUTHORIZED || status == hyper::StatusCode::FORBIDDEN {
            *self
                .auth_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(code)
                .or_insert(0) += 1;
        }
    }

    /// Authentication and authorization failures so far, by reason.
    pub fn auth_failures(&self) -> Vec<(&'static str, u64)> {
        self.auth_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}
