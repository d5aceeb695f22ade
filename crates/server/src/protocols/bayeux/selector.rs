//! A subscription's channel or pattern as a hub [`Selector`], authorized.
//!
//! A channel name is an exact topic and needs the right to subscribe to it.
//! A pattern (`/a/*`, `/a/**`) is a pattern selector; with a token that does
//! not cover everything, it yields only topics the token may subscribe to.

use std::sync::Arc;

use herald_core::{Pattern, Selector, Topic};

use crate::auth::Access;
use crate::listener::Shared;

use super::channel::{self, Channel};
use super::message::error;

/// The selector for `name`, or the error string to answer with.
pub fn for_channel(name: &str, shared: &Arc<Shared>, access: &Access) -> Result<Selector, String> {
    let limits = shared.hub.limits();
    match channel::parse(name) {
        Some(Channel::Name(n)) => {
            let topic = Topic::parse(n, limits.max_topic_len)
                .map_err(|e| error(405, name, &e.to_string()))?;
            access
                .may_subscribe(&shared.opts, std::slice::from_ref(&topic))
                .map_err(|r| error(403, name, &r.message))?;
            Ok(Selector::exact([topic]))
        }
        Some(Channel::Wild(_)) => {
            // The right to subscribe at all; which topics, the grants decide per event.
            access
                .may_subscribe(&shared.opts, &[])
                .map_err(|r| error(403, name, &r.message))?;
            let glob = name.to_string();
            let label = format!("bayeux:{name}");
            let pattern = match access {
                Access::Token(claims, _) if !shared.opts.auth.anonymous_subscribe => {
                    let claims = claims.clone();
                    Pattern::custom(label, move |topic| {
                        channel::matches(&glob, topic) && claims.grants.can_subscribe(topic)
                    })
                }
                _ => Pattern::custom(label, move |topic| channel::matches(&glob, topic)),
            };
            Ok(Selector::new([], [pattern]))
        }
        _ => Err(error(405, name, "Invalid channel")),
    }
}
