//! Active subscriptions (`mercure_subscriptions = true`): their events and their API.
//!
//! - Each connection gets a subscriber id (`urn:uuid:` + a random UUID); each
//!   of its selectors is one subscription. At start and end the hub publishes
//!   one **private** update per subscription, topic
//!   `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`
//!   (0.x: `/.well-known/mercure/subscriptions/{topic}/{subscriber}`), each
//!   variable percent-encoded as a whole. 1.0 events have the type `mercure`
//!   and a JSON body; 0.x events the default type and a JSON-LD body.
//! - `GET /.well-known/mercure/subscriptions[/{match_type}/{match}[/{subscriber}]]`
//!   (0.x: `[/{topic}[/{subscriber}]]`) lists them; the caller needs a
//!   subscribe grant on the request path. 1.0 gives the cursor in `Link`, 0.x
//!   as `lastEventID`.
//!
//! Consistency: a subscription enters the registry before its start event is
//! published and leaves it before its end event is; the API reads the cursor
//! before the registry. So whatever a client misses in the list arrives as an
//! event after the cursor (at worst twice, which is harmless: `active` says
//! the state).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use herald_core::{Draft, Topic};

use super::error::Challenge;
use super::matcher::Matcher;
use super::{Ctx, Generation, MercureError, SUBSCRIPTIONS_PATH, token};
use crate::auth::Access;
use crate::listener::Shared;
use crate::transports::stream::Body;

/// What is percent-encoded in a topic variable: all but unreserved characters.
const VARIABLE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One active subscription.
#[derive(Debug, Clone)]
struct Entry {
    match_type: &'static str,
    selector: String,
    /// The subscription's topic (also its `id`).
    topic: String,
    payload: Option<Value>,
}

/// Active subscriptions by subscriber.
#[derive(Default)]
pub struct Registry(Mutex<BTreeMap<String, Vec<Entry>>>);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Entry>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, VARIABLE).to_string()
}

/// The document of one subscription.
fn document(generation: Generation, subscriber: &str, e: &Entry, active: bool) -> Value {
    let mut doc = match generation {
        Generation::V1 => json!({
            "id": e.topic, "type": "subscription", "match_type": e.match_type,
            "match": e.selector, "subscriber": subscriber, "active": active,
        }),
        Generation::Legacy => json!({
            "@context": "https://mercure.rocks/", "id": e.topic, "type": "Subscription",
            "topic": e.selector, "subscriber": subscriber, "active": active,
        }),
    };
    if let Some(p) = &e.payload {
        doc["payload"] = p.clone();
    }
    doc
}

/// Registers a connection's subscriptions and publishes their start events;
/// the returned guard unregisters them and publishes their end events when dropped.
pub async fn start(
    ctx: &Ctx,
    shared: &Arc<Shared>,
    matchers: &[Arc<Matcher>],
    payload: Option<Value>,
) -> Result<Guard, MercureError> {
    let subscriber = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let entries: Vec<Entry> = matchers
        .iter()
        .map(|m| {
            let topic = match ctx.generation {
                Generation::V1 => format!(
                    "{SUBSCRIPTIONS_PATH}/{}/{}/{}",
                    m.kind().name(),
                    enc(m.source()),
                    enc(&subscriber)
                ),
                Generation::Legacy => {
                    format!(
                        "{SUBSCRIPTIONS_PATH}/{}/{}",
                        enc(m.source()),
                        enc(&subscriber)
                    )
                }
            };
            Entry {
                match_type: m.kind().name(),
                selector: m.source().to_string(),
                topic,
                payload: payload.clone(),
            }
        })
        .collect();
    shared
        .mercure
        .registry
        .lock()
        .insert(subscriber.clone(), entries.clone());
    let guard = Guard {
        shared: shared.clone(),
        generation: ctx.generation,
        subscriber,
        entries,
    };
    crate::publish::publish(shared, guard.drafts(true)).await?;
    Ok(guard)
}

/// Keeps a connection's subscriptions registered; see [`start`].
pub struct Guard {
    shared: Arc<Shared>,
    generation: Generation,
    subscriber: String,
    entries: Vec<Entry>,
}

impl Guard {
    fn drafts(&self, active: bool) -> Vec<Draft> {
        let limits = self.shared.hub.limits();
        self.entries
            .iter()
            .filter_map(|e| {
                let doc = document(self.generation, &self.subscriber, e, active);
                let topic = Topic::parse(&e.topic, usize::MAX).ok()?;
                let kind = (self.generation == Generation::V1).then_some("mercure");
                let id = format!("urn:uuid:{}", uuid::Uuid::now_v7());
                let mut limits = limits.clone();
                limits.max_data_len = usize::MAX;
                let mut d = Draft::new(
                    vec![topic],
                    Bytes::from(doc.to_string()),
                    kind,
                    Some(&id),
                    None,
                    &limits,
                )
                .ok()?;
                d.private = true;
                Some(d)
            })
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.mercure.registry.lock().remove(&self.subscriber);
        let drafts = self.drafts(false);
        let shared = self.shared.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = crate::publish::publish(&shared, drafts).await {
                    tracing::debug!(error = e.message, "subscription end event not published");
                }
            });
        }
    }
}

/// `GET /.well-known/mercure/subscriptions…`.
pub fn api(
    headers: &HeaderMap,
    query: Option<&str>,
    path: &str,
    ctx: &Ctx,
    shared: &Shared,
) -> Result<Response<Body>, MercureError> {
    match token::access(ctx, shared, headers, query)? {
        Access::Everything => {}
        Access::Mercure(g, _) if g.can_subscribe(path) => {}
        Access::Mercure(..) | Access::Token(..) => {
            return Err(MercureError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token needs a subscribe grant on {path} to read it"),
                Challenge::InsufficientScope,
            ));
        }
        Access::Anonymous => {
            return Err(MercureError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the subscriptions API needs a token with a subscribe grant on the request path",
                Challenge::Missing,
            ));
        }
    }
    let not_found = || {
        MercureError::from(crate::rejection::Rejection::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active subscription at {path}"),
        ))
    };
    let rest = path.strip_prefix(SUBSCRIPTIONS_PATH).unwrap_or_default();
    let parts: Vec<String> = rest
        .split('/')
        .skip(1)
        .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned())
        .collect();
    if rest == "/" || parts.iter().any(String::is_empty) && !rest.is_empty() {
        return Err(not_found());
    }
    // [type, match, subscriber] in 1.0, [topic, subscriber] in 0.x.
    let (want_type, want_match, want_sub) = match (ctx.generation, parts.as_slice()) {
        (_, []) => (None, None, None),
        (Generation::V1, [t, m]) => (Some(t.as_str()), Some(m.as_str()), None),
        (Generation::V1, [t, m, s]) => (Some(t.as_str()), Some(m.as_str()), Some(s.as_str())),
        (Generation::Legacy, [m]) => (None, Some(m.as_str()), None),
        (Generation::Legacy, [m, s]) => (None, Some(m.as_str()), Some(s.as_str())),
        _ => return Err(not_found()),
    };
    // The cursor first, then the registry (see the module doc).
    let cursor = shared.hub.head().to_string();
    let mut docs = Vec::new();
    for (sub, entries) in shared.mercure.registry.lock().iter() {
        if want_sub.is_some_and(|s| s != sub) {
            continue;
        }
        for e in entries {
            if want_type.is_some_and(|t| t != e.match_type)
                || want_match.is_some_and(|m| m != e.selector)
            {
                continue;
            }
            docs.push(document(ctx.generation, sub, e, true));
        }
    }
    let mut body = if want_sub.is_some() {
        docs.into_iter().next().ok_or_else(not_found)?
    } else {
        match ctx.generation {
            Generation::V1 => json!({"id": path, "type": "subscriptions", "subscriptions": docs}),
            Generation::Legacy => json!({
                "@context": "https://mercure.rocks/", "id": path, "type": "Subscriptions",
                "subscriptions": docs,
            }),
        }
    };
    let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
    let h = r.headers_mut();
    match ctx.generation {
        Generation::V1 => {
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            let link = format!(
                "<{}>; rel=\"mercure\"; last-event-id=\"{cursor}\"; type=\"mercure\"; content-type=\"application/json\"",
                ctx.hub_url
            );
            if let Ok(v) = header::HeaderValue::from_str(&link) {
                h.insert(header::LINK, v);
            }
        }
        Generation::Legacy => {
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/ld+json"),
            );
            body["lastEventID"] = Value::String(cursor);
        }
    }
    *r.body_mut() = Full::new(Bytes::from(body.to_string())).boxed_unsync();
    Ok(r)
}
