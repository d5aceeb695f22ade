//! Push techniques. Each one turns a request into a [`herald_core::Subscription`]
//! (`accept`), writes what it yields in its own wire format (`deliver`), and ends
//! cleanly on shutdown or when the peer leaves (`close`).

pub mod sse;
pub mod write;
