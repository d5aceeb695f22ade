//! The admin API under `/admin/` (JSON; a token with `"admin": true` in its
//! `herald` claim, or `--dev`):
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/topics?after=T&limit=N` | topics with history or subscribers: subscriber count, retained events; paginated by name |
//! | `GET /admin/topics/events?topic=T&limit=N` | a topic's newest retained events (oldest first) |
//! | `POST /admin/topics/trim?topic=T&keep=N` or `&before=ID` | remove a topic's older history |
//! | `DELETE /admin/topics/history?topic=T` | remove all of a topic's history |
//! | `GET /admin/connections?after=ID&limit=N` | open streams and sessions |
//! | `POST /admin/connections/{id}/disconnect` | close one |
//! | `POST /admin/drain[?delay_secs=S]` | not ready now; after `S` seconds stop accepting, end every stream with a reconnect hint, exit 0 |
//!
//! Listings are bounded by `admin_page_max` and paginated with `after`.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use herald_core::{Event, Position, ReadError, Topic, Trim};

use crate::auth;
use crate::listener::Shared;
use crate::operations::ConnId;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::routes::json;
use crate::transports::stream::Body;

/// Items a listing returns when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// Longest drain delay a request may ask for.
const MAX_DRAIN_DELAY: Duration = Duration::from_secs(3600);

/// Most events `topics/events` scans to find a topic's newest ones.
const MAX_SCAN: usize = 100_000;

/// Handles every `/admin/…` request.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    access.may_admin()?;
    if access.from_cookie() {
        crate::cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    let q = Query::parse(req.uri().query());
    let path = req.uri().path();
    if let Some(known) = parameters(req.method(), path) {
        strict(&q, known)?;
    }
    match (req.method(), path) {
        (&Method::GET, "/admin/topics") => topics(&q, shared).await,
        (&Method::GET, "/admin/topics/events") => events(&q, shared).await,
        (&Method::POST, "/admin/topics/trim") => trim(&q, shared, false).await,
        (&Method::DELETE, "/admin/topics/history") => trim(&q, shared, true).await,
        (&Method::GET, "/admin/connections") => connections(&q, shared),
        (&Method::POST, "/admin/drain") => drain(&q, shared),
        (&Method::GET, "/admin/stats") => Ok(json(StatusCode::OK, &super::stats::snapshot(shared))),
        (&Method::POST, p)
            if p.starts_with("/admin/connections/") && p.ends_with("/disconnect") =>
        {
            let id = &p["/admin/connections/".len()..p.len() - "/disconnect".len()];
            disconnect(id, shared)
        }
        (_, p) => Err(match allowed(p) {
            Some(allow) => Rejection::method_not_allowed(allow),
            None => Rejection::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no admin route {} {path}; see docs/PROTOCOL.md (Admin API)",
                    req.method()
                ),
            ),
        }),
    }
}

/// The query parameters an admin route takes, or `None` for no route.
fn parameters(method: &Method, path: &str) -> Option<&'static [&'static str]> {
    Some(match (method, path) {
        (&Method::GET, "/admin/topics" | "/admin/connections") => &["after", "limit"],
        (&Method::GET, "/admin/topics/events") => &["topic", "limit"],
        (&Method::POST, "/admin/topics/trim") => &["topic", "keep", "before"],
        (&Method::DELETE, "/admin/topics/history") => &["topic"],
        (&Method::POST, "/admin/drain") => &["delay_secs"],
        (&Method::GET, "/admin/stats") => &[],
        (&Method::POST, p) if allowed(p) == Some("POST, OPTIONS") => &[],
        _ => return None,
    })
}

/// Refuses a parameter the route does not take (and a repeated one): on
/// routes that delete, a misspelt bound must not pass silently.
fn strict(q: &Query, known: &[&str]) -> Result<(), Rejection> {
    q.check_utf8()?;
    let mut seen = Vec::new();
    for name in q.names() {
        if name == herald_auth::QUERY_PARAM {
            continue;
        }
        if !known.contains(&name) {
            return Err(Rejection::bad_request(
                "unknown_parameter",
                format!(
                    "this admin route takes no parameter {name:?}; it takes {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(Rejection::bad_request(
                "repeated_parameter",
                format!("name {name} at most once"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// The methods an admin path answers (`Allow`), or `None` for an unknown path.
fn allowed(path: &str) -> Option<&'static str> {
    Some(match path {
        "/admin/topics" | "/admin/topics/events" | "/admin/connections" | "/admin/stats" => {
            "GET, OPTIONS"
        }
        "/admin/topics/trim" | "/admin/drain" => "POST, OPTIONS",
        "/admin/topics/history" => "DELETE, OPTIONS",
        p if p.starts_with("/admin/connections/") && p.ends_with("/disconnect") => "POST, OPTIONS",
        _ => return None,
    })
}

fn limit(q: &Query, shared: &Shared) -> Result<usize, Rejection> {
    let n = match q.first("limit") {
        None => DEFAULT_LIMIT as u64,
        // Any larger limit is capped, so all of u64 is accepted.
        Some(s) => whole(s).filter(|&n| n > 0).ok_or_else(|| {
            Rejection::bad_request(
                "invalid_limit",
                "limit must be a whole number from 1 to 18446744073709551615",
            )
        })?,
    };
    Ok(usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(shared.opts.admin_page_max))
}

/// A whole number written in decimal digits only (no sign), within u64.
fn whole(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

fn one_topic(q: &Query, shared: &Shared) -> Result<Topic, Rejection> {
    let topics = q.topics(shared.hub.limits())?;
    match <[Topic; 1]>::try_from(topics) {
        Ok([t]) => Ok(t),
        Err(_) => Err(Rejection::bad_request(
            "one_topic",
            "name exactly one topic (topic=T)",
        )),
    }
}

fn unavailable(e: impl std::fmt::Display) -> Rejection {
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}

/// Topics with history or subscribers, merged by name.
async fn topics(q: &Query, shared: &Shared) -> Result<Response<Body>, Rejection> {
    let limit = limit(q, shared)?;
    let after = q
        .first("after")
        .map(|a| Topic::parse(a, shared.hub.limits().max_topic_len))
        .transpose()?;
    let history = shared
        .hub
        .log()
        .topics(after.clone(), limit)
        .await
        .map_err(unavailable)?;
    let watched = shared.hub.fanout().watched(after.as_ref(), limit);
    let mut merged: std::collections::BTreeMap<Topic, (usize, u64)> = Default::default();
    for (t, n) in watched {
        merged.entry(t).or_default().0 = n;
    }
    for h in history {
        merged.entry(h.topic).or_default().1 = h.events;
    }
    let page: Vec<Value> = merged
        .into_iter()
        .take(limit)
        .map(|(t, (subscribers, events))| {
            json!({"topic": t.as_str(), "subscribers": subscribers, "events": events})
        })
        .collect();
    let next = if page.len() == limit {
        page.last().map(|t| t["topic"].clone())
    } else {
        None
    };
    let stats = shared.hub.log().stats();
    Ok(json(
        StatusCode::OK,
        &json!({
            "topics": page,
            "next_after": next,
            "history": {"events": stats.events, "bytes": stats.bytes, "topics": stats.topics},
        }),
    ))
}

/// A topic's newest `limit` retained events, oldest first.
async fn events(q: &Query, shared: &Shared) -> Result<Response<Body>, Rejection> {
    let topic = one_topic(q, shared)?;
    let limit = limit(q, shared)?;
    let log = shared.hub.log();
    let mut after = 0;
    let mut newest: std::collections::VecDeque<Arc<Event>> = Default::default();
    let mut scanned = 0;
    loop {
        let page = match log.read(vec![topic.clone()], after, 256).await {
            Ok(p) => p,
            Err(ReadError::Expired { oldest_kept }) if oldest_kept > after => {
                after = oldest_kept;
                continue;
            }
            Err(e) => return Err(unavailable(e)),
        };
        let Some(last) = page.last() else { break };
        after = last.seq;
        scanned += page.len();
        for ev in page {
            if newest.len() == limit {
                newest.pop_front();
            }
            newest.push_back(ev);
        }
        if scanned >= MAX_SCAN {
            break;
        }
    }
    let mut body = Vec::from(&b"{\"topic\":"[..]);
    herald_core::json::string(&mut body, topic.as_str());
    body.extend_from_slice(b",\"events\":[");
    for (i, ev) in newest.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&ev.json());
    }
    body.extend_from_slice(format!("],\"truncated\":{}}}", scanned >= MAX_SCAN).as_bytes());
    let mut r = json(StatusCode::OK, &Value::Null);
    *r.body_mut() =
        http_body_util::BodyExt::boxed_unsync(http_body_util::Full::new(bytes::Bytes::from(body)));
    Ok(r)
}

/// Trims (`keep=N` or `before=ID`) or deletes a topic's history.
async fn trim(q: &Query, shared: &Shared, delete: bool) -> Result<Response<Body>, Rejection> {
    let topic = one_topic(q, shared)?;
    let how = if delete {
        Trim::KeepLast(0)
    } else {
        match (q.first("keep"), q.first("before")) {
            (Some(n), None) => Trim::KeepLast(whole(n).ok_or_else(|| {
                Rejection::bad_request(
                    "invalid_keep",
                    "keep must be a whole number of events, at most 18446744073709551615",
                )
            })?),
            (None, Some(id)) => Trim::Before(resolve(id, shared).await?),
            _ => {
                return Err(Rejection::bad_request(
                    "trim_needs_one_bound",
                    "name exactly one of keep=N (keep the newest N events) or before=ID (remove events older than that id)",
                ));
            }
        }
    };
    let removed = shared
        .hub
        .log()
        .trim(topic.clone(), how)
        .await
        .map_err(unavailable)?;
    tracing::info!(
        topic = topic.as_str(),
        removed,
        ?how,
        "topic history trimmed by an administrator"
    );
    Ok(json(
        StatusCode::OK,
        &json!({"topic": topic.as_str(), "removed": removed}),
    ))
}

/// The `seq` of an event id (hub-generated or publisher-supplied).
async fn resolve(id: &str, shared: &Shared) -> Result<u64, Rejection> {
    let head = shared.hub.head();
    if let Some(p) = Position::parse(id)
        && p.epoch == head.epoch
    {
        return Ok(p.seq);
    }
    match shared.hub.log().lookup_id(id.to_string()).await {
        Ok(Some(seq)) => Ok(seq),
        Ok(None) => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "unknown_id",
            format!("no retained event has id {id:?}"),
        )),
        Err(e) => Err(unavailable(e)),
    }
}

fn connections(q: &Query, shared: &Shared) -> Result<Response<Body>, Rejection> {
    let limit = limit(q, shared)?;
    let after = match q.first("after") {
        None => 0,
        Some(a) => ConnId::parse(a).map(ConnId::get).ok_or_else(|| {
            Rejection::bad_request("invalid_after", "after must be a connection id")
        })?,
    };
    let list = shared.ops.registry.list(after, limit);
    let next = (list.len() == limit)
        .then(|| list.last().map(|(id, _)| id.get().to_string()))
        .flatten();
    let items: Vec<Value> = list
        .iter()
        .map(|(id, e)| {
            json!({
                "id": id.get().to_string(),
                "transport": id.transport().name(),
                "peer": e.peer.map(|p| p.to_string()),
                "topics": e.topics.iter().map(Topic::as_str).collect::<Vec<_>>(),
                "subject": e.subject(),
                "opened_ms": e.opened_ms,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"connections": items, "open": shared.ops.registry.len(), "next_after": next}),
    ))
}

fn disconnect(id: &str, shared: &Shared) -> Result<Response<Body>, Rejection> {
    let conn = ConnId::parse(id).ok_or_else(|| {
        Rejection::bad_request(
            "invalid_id",
            "the connection id is the number GET /admin/connections lists",
        )
    })?;
    if !shared.ops.registry.kick(conn) {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "no_such_connection",
            format!("no open connection has id {id}"),
        ));
    }
    tracing::info!(
        conn = conn.get(),
        "connection disconnect requested by an administrator"
    );
    Ok(json(StatusCode::ACCEPTED, &json!({"disconnecting": id})))
}

/// Not ready at once; after the delay, the same path as SIGTERM with every
/// stream told to reconnect elsewhere (see `stream.rs`, `ws/session.rs`).
fn drain(q: &Query, shared: &Arc<Shared>) -> Result<Response<Body>, Rejection> {
    let delay = match q.first("delay_secs") {
        None => Duration::ZERO,
        Some(s) => whole(s)
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DRAIN_DELAY)
            .ok_or_else(|| {
                Rejection::bad_request(
                    "invalid_delay",
                    "delay_secs must be a whole number of seconds, at most 3600",
                )
            })?,
    };
    let already = shared.ops.draining();
    shared.ops.start_draining();
    if !already {
        tracing::warn!(
            delay_secs = delay.as_secs(),
            "drain requested: not ready now; streams are told to reconnect elsewhere, then herald exits"
        );
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            shared.shutdown.cancel();
        });
    }
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({"draining": true, "delay_secs": delay.as_secs(), "retry_ms": shared.opts.drain_retry_ms}),
    ))
}
