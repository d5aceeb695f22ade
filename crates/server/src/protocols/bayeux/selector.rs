//! A subscription's channel or pattern as a hub [`Selector`], authorized.
//!
//! A channel name is an exact topic and needs the right to subscribe to it.
//! A pattern (`/a/*`, `/a/**`) is a pattern selector; with a token that does
//! not cover everything, it yields only topics the token may subscribe to.

use std::sync::Arc;

use herald_core::{Selector, Topic};

use crate::auth::Access;
use crate::listener::Shared;

use super::channel::{self, Channel};
use super::message::error;

/// The selector for `name`, or the error string to answer with.
pub fn for_channel(name: &str, shared: &Arc<Shared>, access: &Access) -> Result<Selector, String> {
    let limits = shared.hub.limits();
    match channel::parse(name) {
        Some(Channel::Name(n)) => {
            let topic =
                Topic::parse(n, limits.max_topic_len).map_err(|e| error(405, name, &e.to_string()))?;
            access
                .may_subscribe(&shared.opts, std::slice::from_ref(&topic))
                .map_err(|r| error(403, name, &r.message))?;
            Ok(Selector::exact([topic]))
        }
        Some(Channel::Wild(_)) => Err(error(
            501,
            name,
            "wildcard subscriptions are not available yet",
        )),
        _ => Err(error(405, name, "Invalid channel")),
    }
}
