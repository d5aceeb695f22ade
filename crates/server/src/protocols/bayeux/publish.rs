//! Bayeux publishes: to a topic (one [`herald_core::Draft`] through
//! `Hub::publish`, with the same authorization and rate limits as every front
//! door), or to a `/service` channel, answered to the publisher only.

use std::net::IpAddr;

use bytes::Bytes;
use serde_json::json;

use herald_core::{Draft, Topic};

use crate::auth::Access;
use crate::listener::Shared;
use crate::publish as native;

use super::channel::{self, Channel};
use super::message::{Message, error, failure, reply};

/// Publishes `m` for a client with `access`; returns the replies (the
/// acknowledgement, or a failure; a service may add its answer).
pub async fn publish(
    shared: &Shared,
    access: &Access,
    peer: Option<IpAddr>,
    m: &Message,
) -> Vec<String> {
    let Some(data) = &m.data else {
        return vec![failure(m, error(402, "data", "Missing data"), None)];
    };
    match channel::parse(&m.channel) {
        None | Some(Channel::Wild(_)) | Some(Channel::Meta) => {
            vec![failure(m, error(405, &m.channel, "Invalid channel"), None)]
        }
        Some(Channel::Service(name)) => service(m, name, data.get()),
        Some(Channel::Name(name)) => match to_topic(shared, access, peer, name, data.get()).await {
            Ok(()) => vec![reply(m, true, json!({}))],
            Err(e) => vec![failure(m, e, None)],
        },
    }
}

/// Appends the data, as the JSON text the client sent, to the topic `name`.
async fn to_topic(
    shared: &Shared,
    access: &Access,
    peer: Option<IpAddr>,
    name: &str,
    data: &str,
) -> Result<(), String> {
    let limits = shared.hub.limits();
    let fail = |code: u16, why: String| error(code, name, &why);
    let topic = Topic::parse(name, limits.max_topic_len).map_err(|e| fail(405, e.to_string()))?;
    access
        .may_publish(std::slice::from_ref(&topic))
        .map_err(|r| fail(403, r.message))?;
    shared
        .publish_limits
        .check(peer, access, 1)
        .map_err(|r| fail(407, r.message))?;
    let draft = Draft::new(
        vec![topic],
        Bytes::copy_from_slice(data.as_bytes()),
        None,
        None,
        None,
        limits,
    )
    .map_err(|e| fail(407, e.to_string()))?;
    native::publish(shared, vec![draft])
        .await
        .map_err(|r| fail(407, r.message))?;
    Ok(())
}

/// The built-in services: `/service/echo` sends the data back to its
/// publisher (a connectivity check); other services do not exist.
fn service(m: &Message, name: &str, data: &str) -> Vec<String> {
    if name != "/service/echo" {
        return vec![failure(m, error(404, name, "Unknown service"), None)];
    }
    let mut echo = Vec::with_capacity(data.len() + name.len() + 24);
    echo.extend_from_slice(b"{\"channel\":");
    herald_core::json::string(&mut echo, name);
    echo.extend_from_slice(b",\"data\":");
    echo.extend_from_slice(data.as_bytes());
    echo.push(b'}');
    vec![
        reply(m, true, json!({})),
        String::from_utf8(echo).unwrap_or_default(),
    ]
}
