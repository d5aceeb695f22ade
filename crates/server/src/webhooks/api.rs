//! The native JSON API for webhook subscriptions.
//!
//! - `POST /webhooks` `{"topic": "T" | ["T", …], "callback": "https://…",
//!   "secret"?: "…", "lease_seconds"?: N, "format"?: "raw" | "json"}`: the hub
//!   verifies intent with the callback first (the WebSub `GET` with
//!   `hub.challenge`, naming the first topic), then answers 201 with the
//!   subscription; 422 when the verification fails.
//! - `GET /webhooks`: the caller's subscriptions; `GET /webhooks/{id}`: one.
//! - `DELETE /webhooks/{id}`: removes it (204).
//!
//! Authorization is the subscribe rule, and a subscription belongs to the
//! token `sub` that created it: `--dev` sees and manages all; a token sees
//! those it created whose topics it may still subscribe to; a request without
//! a token gets 401 (anonymous callers can only use `/websub`, where intent is
//! always verified and only public events are delivered).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use herald_core::Topic;

use super::guard::check_url;
use super::record::{Format, Origin, Record};
use super::verify::{Intent, verify};
use super::{Removal, owner_and_grants};
use crate::auth::{self, Access};
use crate::listener::Shared;
use crate::publish::{OneOrMany, read_body};
use crate::rejection::Rejection;
use crate::routes::json;
use crate::transports::stream::Body;

/// The body of `POST /webhooks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    topic: OneOrMany<String>,
    callback: String,
    secret: Option<String>,
    #[serde(default, deserialize_with = "whole_seconds")]
    lease_seconds: Option<u64>,
    #[serde(default)]
    format: Format,
}

/// A whole number of seconds: JSON (and JSON Schema's `integer`) counts
/// `30.0` as the integer 30, so it is taken; `30.5` or a negative is not.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = n.as_u64() {
        return Ok(Some(n));
    }
    match n.as_f64() {
        // Below 2^64 exactly: the cast cannot saturate.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 => {
            Ok(Some(f as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "lease_seconds must be a whole number of seconds from 0 to {}, not {n}",
            u64::MAX
        ))),
    }
}

/// Handles every method on `/webhooks` and `/webhooks/{id}`.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    if matches!(access, Access::Anonymous) {
        return Err(Rejection::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "managing webhooks needs a token whose herald.subscribe covers the topics (Authorization: Bearer <token>); anonymous subscribers may use POST /websub",
        ));
    }
    if access.from_cookie() && req.method() != Method::GET {
        crate::cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    // In a cluster, see subscriptions made through other nodes.
    shared.webhooks.refresh().await;
    let path = req.uri().path().to_string();
    let id = path.strip_prefix("/webhooks").unwrap_or_default();
    let id = id.strip_prefix('/').filter(|s| !s.is_empty());
    match (req.method().clone(), id) {
        (Method::POST, None) => create(req, shared, &access).await,
        (Method::GET, None) => {
            let list: Vec<serde_json::Value> = shared
                .webhooks
                .all()
                .iter()
                .filter(|r| visible(shared, &access, r))
                .map(Record::to_json)
                .collect();
            Ok(json(StatusCode::OK, &serde_json::Value::Array(list)))
        }
        (Method::GET, Some(id)) => {
            let rec = find(shared, &access, id)?.snapshot();
            Ok(json(StatusCode::OK, &rec.to_json()))
        }
        (Method::DELETE, Some(id)) => {
            let entry = find(shared, &access, id)?;
            shared.webhooks.remove(&entry, Removal::Unsubscribed).await;
            let mut r = crate::routes::text(StatusCode::NO_CONTENT, "");
            r.headers_mut().remove(hyper::header::CONTENT_TYPE);
            Ok(r)
        }
        (_, None) => Err(not_allowed("GET, POST, OPTIONS")),
        (_, Some(_)) => Err(not_allowed("GET, DELETE, OPTIONS")),
    }
}

fn not_allowed(allow: &'static str) -> Rejection {
    Rejection::method_not_allowed(allow)
}

/// Whether `access` may see and manage `rec`.
fn visible(shared: &Shared, access: &Access, rec: &Record) -> bool {
    match access {
        Access::Everything => true,
        // Mercure tokens only open Mercure's front door.
        Access::Anonymous | Access::Mercure(..) => false,
        Access::Token(claims, _) => {
            rec.owner.as_deref() == Some(claims.subject.as_deref().unwrap_or(""))
                && rec.topics.iter().all(|t| {
                    Topic::parse(t, usize::MAX)
                        .is_ok_and(|t| access.may_subscribe(&shared.opts, &[t]).is_ok())
                })
        }
    }
}

/// The subscription `id` if the caller may see it; 404 otherwise (whether
/// someone else's exists is not told).
fn find(shared: &Shared, access: &Access, id: &str) -> Result<Arc<super::Entry>, Rejection> {
    let missing = || {
        Rejection::new(
            StatusCode::NOT_FOUND,
            "no_such_webhook",
            format!("no webhook subscription {id:?} visible to this token"),
        )
    };
    let entry = Record::parse_id(id)
        .and_then(|id| shared.webhooks.get(id))
        .ok_or_else(missing)?;
    if !visible(shared, access, &entry.snapshot()) {
        return Err(missing());
    }
    Ok(entry)
}

async fn create(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    access: &Access,
) -> Result<Response<Body>, Rejection> {
    let w = shared.webhooks.clone();
    let hub_url = w.hub_url(req.headers(), req.uri(), shared.opts.tls.is_some());
    let body = read_body(req, shared.opts.max_body_bytes).await?;
    let c: Create = serde_json::from_slice(&body).map_err(|e| {
        Rejection::bad_request(
            "invalid_json",
            format!(
                "{e}; expected {{\"topic\": \"T\" or [\"T\", ...], \"callback\": \"https://...\", \"secret\"?, \"lease_seconds\"?, \"format\"?: \"raw\" or \"json\"}}"
            ),
        )
    })?;
    let limits = shared.hub.limits();
    let topics = c.topic.into_vec();
    if topics.is_empty() || topics.len() > limits.max_topics {
        return Err(Rejection::bad_request(
            "invalid_topic",
            format!("name between 1 and {} topics", limits.max_topics),
        ));
    }
    let parsed = topics
        .iter()
        .map(|t| Topic::parse(t, limits.max_topic_len))
        .collect::<Result<Vec<_>, _>>()?;
    access.may_subscribe(&shared.opts, &parsed)?;
    check_url(&c.callback, w.opts.allow_private)
        .map_err(|e| Rejection::bad_request("invalid_callback", format!("callback: {e}")))?;
    if c.secret.as_ref().is_some_and(|s| {
        s.is_empty() || s.len() >= 200 || !s.bytes().all(|b| (b' '..=b'~').contains(&b))
    }) {
        return Err(Rejection::bad_request(
            "invalid_secret",
            "secret must be 1 to 199 printable ASCII characters",
        ));
    }
    let lease = w.lease(c.lease_seconds);
    let Ok(_permit) = w.verifications.clone().try_acquire_owned() else {
        return Err(Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many verifications of intent are in progress; retry shortly",
        )
        .retry_after(5));
    };
    if let Err(e) = verify(
        &w,
        &c.callback,
        &topics[0],
        Intent::Subscribe(lease.as_secs()),
    )
    .await
    {
        return Err(Rejection::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification_failed",
            format!(
                "the callback did not confirm the subscription ({e}); it must answer GET ?hub.mode=subscribe&hub.challenge=C… with 2xx and the body C"
            ),
        ));
    }
    let (owner, grants) = owner_and_grants(access);
    let now = crate::now_ms();
    let rec = Record {
        id: w.new_id(),
        origin: Origin::Api,
        topics,
        callback: c.callback,
        secret: c.secret,
        hub_url,
        format: c.format,
        grants,
        owner,
        expires_ms: now + lease.as_millis() as u64,
        cursor: w.hub.log().last_seq(),
        failures: 0,
        failing_since_ms: None,
        next_attempt_ms: 0,
        continuity_broken: false,
        created_ms: now,
        lease: None,
    };
    let answer = rec.to_json();
    w.create(rec)
        .await
        .map_err(|e| Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "webhook_not_created", e))?;
    Ok(json(StatusCode::CREATED, &answer))
}
