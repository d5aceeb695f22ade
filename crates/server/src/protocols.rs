//! Other protocols' front doors. Each is an adapter: its publishes become
//! [`herald_core::Draft`]s for the one `Hub::publish`, its subscriptions one
//! `Hub::subscribe`, encoded by the shared encoders.

pub mod mercure;
