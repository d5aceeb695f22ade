//! Presence and the reserved `$herald/` topics.
//!
//! - **How many**: `GET /presence?topic=T` answers the number of
//!   subscriptions watching `T` (its ring's cursors: every transport, each
//!   subscription once). Anyone who may subscribe to `T` may ask.
//! - **Who**: the same answer lists the `payload` claims of `T`'s
//!   subscribers whose tokens carry one, when the asker's token also has
//!   `"presence": true` (or `"admin": true`; everything in `--dev`).
//! - **Join and leave events** (`presence_events = true`): every second, for
//!   each topic whose subscribers changed, one event on
//!   `$herald/presence/<topic>`: `{"topic", "joined", "left", "subscribers",
//!   "joined_who", "left_who"}` (payloads, at most [`MAX_WHO`] each). Bursts
//!   are coalesced into that one event. Subscribing to it needs the same
//!   rights as "who".
//!
//! Topics under `$herald/` are reserved: nobody publishes to them (the hub
//! does), `$herald/stats` is for admin tokens only, `$herald/presence/T` for
//! tokens that may see who subscribes to `T`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use herald_core::{Draft, Topic};

use crate::auth::{self, Access};
use crate::listener::Shared;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::routes::json;
use crate::transports::stream::Body;

pub use herald_core::RESERVED_PREFIX;

/// The stats feed's topic.
pub const STATS_TOPIC: &str = "$herald/stats";

/// Presence events of topic `T` go to `$herald/presence/T`.
pub const PRESENCE_PREFIX: &str = "$herald/presence/";

/// Most payloads one presence answer or event lists.
pub const MAX_WHO: usize = 100;

/// Most topics one presence flush publishes (the rest wait a second).
const MAX_TOPICS_PER_FLUSH: usize = 1000;

/// Whether `topic` is reserved for the hub.
pub fn reserved(topic: &str) -> bool {
    herald_core::is_reserved(topic)
}

/// Refuses publishing to reserved topics.
pub fn may_publish(topics: &[Topic]) -> Result<(), Rejection> {
    match topics.iter().find(|t| reserved(t.as_str())) {
        None => Ok(()),
        Some(t) => Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "reserved_topic",
            format!(
                "topics starting with {RESERVED_PREFIX} are reserved for the hub; {:?} cannot be published to",
                t.as_str()
            ),
        )),
    }
}

/// Whether this access may see who subscribes to topics it may subscribe to.
pub fn may_see_who(access: &Access) -> bool {
    match access {
        Access::Everything => true,
        Access::Token(c, _) => c.grants.presence || c.grants.admin,
        Access::Anonymous | Access::Mercure(..) => false,
    }
}

/// Checks subscriptions to reserved topics; `Ok(false)` for an ordinary topic.
pub fn may_subscribe_reserved(
    access: &Access,
    opts: &crate::options::ServerOptions,
    topic: &Topic,
) -> Result<bool, Rejection> {
    let t = topic.as_str();
    if !reserved(t) {
        return Ok(false);
    }
    let refuse = |why: String| Err(Rejection::new(StatusCode::FORBIDDEN, "reserved_topic", why));
    if t == STATS_TOPIC {
        return match access.may_admin() {
            Ok(()) => Ok(true),
            Err(_) => refuse(format!(
                "{STATS_TOPIC} is for admin tokens only (`herald token --admin`)"
            )),
        };
    }
    if let Some(of) = t.strip_prefix(PRESENCE_PREFIX)
        && !of.is_empty()
        && !reserved(of)
    {
        let of = Topic::parse(of, usize::MAX)?;
        if !may_see_who(access) {
            return refuse(format!(
                "{t} needs a token with \"presence\": true that may subscribe to {of}"
            ));
        }
        access.may_subscribe(opts, &[of])?;
        return Ok(true);
    }
    refuse(format!("{t:?} is a reserved topic that does not exist"))
}

/// `GET /presence?topic=T`.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    let q = Query::parse(req.uri().query());
    let topics = q.topics(shared.hub.limits())?;
    let Ok([topic]) = <[Topic; 1]>::try_from(topics) else {
        return Err(Rejection::bad_request(
            "one_topic",
            "name exactly one topic (topic=T)",
        ));
    };
    access.may_subscribe(&shared.opts, std::slice::from_ref(&topic))?;
    let mut body = json!({
        "topic": topic.as_str(),
        "subscribers": shared.hub.fanout().subscribers(&topic),
    });
    if may_see_who(&access) {
        body["who"] = Value::Array(who(shared, &topic));
    }
    Ok(json(StatusCode::OK, &body))
}

/// Payloads of `topic`'s subscribers whose tokens carry one (at most [`MAX_WHO`]).
fn who(shared: &Shared, topic: &Topic) -> Vec<Value> {
    let mut out = Vec::new();
    shared.ops.registry.for_each(|_, e| {
        if out.len() < MAX_WHO
            && let Some(p) = e.payload()
            && e.topics.contains(topic)
        {
            out.push(p.clone());
        }
    });
    out
}

/// Joins and leaves not yet published, per topic.
#[derive(Default)]
pub struct Changes {
    pending: Mutex<HashMap<Topic, Pending>>,
}

#[derive(Default)]
struct Pending {
    joined: u64,
    left: u64,
    joined_who: Vec<Value>,
    left_who: Vec<Value>,
}

impl Changes {
    /// Notes that a subscriber with `payload` joined (or left) `topics`.
    pub fn note(&self, topics: &[Topic], payload: Option<&Value>, joined: bool) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for t in topics.iter().filter(|t| !reserved(t.as_str())) {
            let p = map.entry(t.clone()).or_default();
            let (n, who) = if joined {
                (&mut p.joined, &mut p.joined_who)
            } else {
                (&mut p.left, &mut p.left_who)
            };
            *n += 1;
            if let Some(v) = payload
                && who.len() < MAX_WHO
            {
                who.push(v.clone());
            }
        }
    }

    fn take(&self) -> Vec<(Topic, Pending)> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Topic> = map.keys().take(MAX_TOPICS_PER_FLUSH).cloned().collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|p| (k, p)))
            .collect()
    }
}

/// Publishes coalesced join/leave events every second until shutdown.
pub async fn run_events(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let changes = shared.ops.presence.take();
        if changes.is_empty() {
            continue;
        }
        let limits = shared.hub.limits();
        let drafts: Vec<Draft> = changes
            .into_iter()
            .filter_map(|(t, p)| {
                let body = json!({
                    "topic": t.as_str(),
                    "joined": p.joined,
                    "left": p.left,
                    "subscribers": shared.hub.fanout().subscribers(&t),
                    "joined_who": p.joined_who,
                    "left_who": p.left_who,
                });
                let topic = Topic::parse(
                    &format!("{PRESENCE_PREFIX}{}", t.as_str()),
                    limits.max_topic_len,
                )
                .ok()?;
                Draft::new(
                    vec![topic],
                    Bytes::from(body.to_string()),
                    Some("presence"),
                    None,
                    None,
                    limits,
                )
                .ok()
            })
            .collect();
        for batch in drafts.chunks(limits.max_batch.max(1)) {
            if let Err(e) = shared.hub.publish(batch.to_vec(), crate::now_ms()).await {
                tracing::warn!(error = %e, "presence events could not be published");
            }
        }
    }
}
