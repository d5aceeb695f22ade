//! Herald's core: everything between a publisher's [`Draft`] and the bytes a
//! transport writes, with no sockets and no clocks of its own.
//!
//! # Layout
//!
//! - [`topic`]: validated topic names and the [`Selector`] a subscriber asks for.
//! - [`event`]: the immutable [`Event`] (shared as `Arc<Event>`, never copied per
//!   subscriber), the publisher's [`Draft`], and [`Limits`] on what a draft may hold.
//! - [`position`]: hub-generated ids (`{epoch:x}-{seq}`) and how a client's
//!   `Last-Event-ID` resolves to a place in the log.
//! - [`log`]: the [`Log`] trait (durable, ordered history) and [`MemoryLog`], the
//!   in-memory implementation used by tests. The embedded durable log lives in
//!   `herald-store`.
//! - [`fanout`]: one bounded broadcast ring per topic; a log calls
//!   [`Fanout::deliver`] with every committed batch, in log order.
//! - [`subscription`]: the catch-up/live merge. A [`Subscription`] registers its
//!   ring cursors first, reads history from the resume point, then yields live
//!   events, dropping every `seq` it already yielded.
//! - [`hub`]: [`Hub`], the one `publish` and the one `subscribe` every front door
//!   and transport calls.
//! - [`sse`]: the Server-Sent Events encoder; each event is framed once and the
//!   bytes are shared by every connection.
//! - [`webhook_store`]: the [`WebhookStore`] trait (durable webhook
//!   subscription records, opaque bytes by id) and [`MemoryWebhookStore`].
//! - [`latency`]: [`Latency`], a lock-free fixed-bucket histogram that logs and
//!   the server record durations into, for metrics.
//! - [`json`]: the JSON encoding shared by the JSON transports (NDJSON, polling,
//!   JSONP, iframe), also encoded once per event and safe inside a `<script>`.
//!
//! Data flow: front door → [`Hub::publish`] → [`Log::append`] (durable) →
//! [`Fanout::deliver`] → per-topic ring → [`Subscription::next`] → transport encoder.

pub mod event;
pub mod fanout;
pub mod hub;
pub mod json;
pub mod latency;
pub mod log;
pub mod pattern;
pub mod position;
pub mod sse;
pub mod subscription;
pub mod topic;
pub mod webhook_store;

pub use event::{Draft, DraftError, Event, EventId, Limits};
pub use fanout::Fanout;
pub use hub::{Hub, PublishError, SubscribeError};
pub use latency::{Latency, LatencySnapshot};
pub use log::{
    AppendError, BoxFuture, Log, LogStats, LogTimings, MemoryLog, ReadError, Retention,
    SCAN_BUDGET, ScanPage, TopicHistory, Trim,
};
pub use position::{Position, Resume};
pub use subscription::{PrivateFilter, Reset, ResetReason, Subscription, SubscriptionEnd};
pub use topic::{Match, Pattern, RESERVED_PREFIX, Selector, Topic, TopicError, is_reserved};
pub use webhook_store::{MemoryWebhookStore, RecordError, RecordOp, WebhookStore};
