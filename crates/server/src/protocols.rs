//! Protocols of other hubs that Herald speaks at the edge, so their unmodified
//! clients work against it. Each turns its messages into [`herald_core::Draft`]s
//! for `Hub::publish` and its subscriptions into `Hub::subscribe` calls.

pub mod bayeux;
pub mod mercure;
