//! [`Latency`]: a fixed-bucket latency histogram in atomics, for metrics.
//!
//! Logs (the store's append and commit times) and the server (publish
//! latency) record into one; `/metrics` reads a [`LatencySnapshot`]. No
//! allocation and no lock per observation: a bucket search over a dozen
//! bounds and three relaxed atomic adds. The caller measures the duration
//! (this crate has no clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (a last, unbounded bucket
/// follows): 50 µs to 5 s, roughly ×2.5 apart.
pub const BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Buckets including the unbounded one.
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// A latency histogram that many threads may record into at once.
#[derive(Debug)]
pub struct Latency {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Latency {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts so far (buckets may be from adjacent observations).
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`Latency`]'s counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Observations per bucket (not cumulative), per [`BOUNDS_US`], then the
    /// unbounded bucket.
    pub buckets: [u64; BUCKETS],
    /// Sum of every observation, in microseconds.
    pub sum_us: u64,
}

impl Default for LatencySnapshot {
    fn default() -> Self {
        Latency::default().snapshot()
    }
}

impl LatencySnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `(upper bound in seconds, count)` per bucket (not cumulative), the last
    /// bound infinite: the shape OpenMetrics encoders take.
    pub fn seconds_buckets(&self) -> Vec<(f64, u64)> {
        BOUNDS_US
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(self.buckets)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let h = Latency::default();
        h.observe(Duration::from_micros(50)); // on a bound: that bucket
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[6], 1, "3 ms is under the 5 ms bound");
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_us, 50 + 51 + 3_000 + 60_000_000);
        let b = s.seconds_buckets();
        assert_eq!(b.len(), BUCKETS);
        assert_eq!(b[4], (0.001, 0));
        assert!(b[BUCKETS - 1].0.is_infinite());
    }
}
