//! Push techniques. Each one turns a request into a [`herald_core::Subscription`]
//! (`accept`), writes what it yields in its own wire format (`deliver`), and ends
//! cleanly on shutdown or when the peer leaves (`close`).

pub mod bosh;
pub mod callback;
pub mod format;
pub mod iframe;
pub mod ops;
pub mod poll;
pub mod sse;
pub mod stream;
pub mod subscriptions;
pub mod write;
pub mod ws;
