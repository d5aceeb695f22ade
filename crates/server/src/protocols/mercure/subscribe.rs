//! Subscribing: `GET /.well-known/mercure?match=…` (1.0) or `?topic=…` (0.x).
//!
//! The query becomes [`Matcher`]s, the matchers one selector (exact topics
//! through the hub's hash map, the rest as patterns), the selector one
//! `Hub::subscribe` from the cursor (`Last-Event-ID` header, then
//! `last_event_id` / `lastEventID` / `lastEventId`; `earliest` for the whole
//! retained history). The stream is the shared SSE stream: each event's
//! cached frame, whose `id:` is the event's Mercure id.
//!
//! Path: a first request on a plain HTTP/1.1 connection is served on the
//! **lean path** (the head parsed into a small buffer that is freed, then one
//! small task per stream: ~1.4 KiB per idle subscriber instead of hyper's
//! ~10 KiB, DESIGN.md), since Mercure subscribers are long-lived SSE streams
//! like `/sse`'s; later requests on a keep-alive connection, TLS/HTTP/2
//! connections, `HEAD` and the safe `QUERY` method (parameters in a form
//! body) go through hyper with the same headers and frames.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use herald_core::{Pattern, Resume, Selector, Subscription, Topic};

use super::error::Challenge;
use super::matcher::{Kind, Matcher};
use super::publish::form_pairs;
use super::{Ctx, Generation, MercureError, subscriptions, token};
use crate::auth::Access;
use crate::cors;
use crate::head::StreamRequest;
use crate::limits::Slot;
use crate::listener::Shared;
use crate::transports::format::Format;
use crate::transports::stream::{self, Body, run_stream};
use crate::transports::write;

/// Cache-Control of Mercure streams (the reference hub's).
const CACHE_CONTROL: &str = "private, no-cache, no-store, must-revalidate, max-age=0";

/// An accepted subscription, ready to stream.
pub struct Accepted {
    sub: Subscription,
    /// Mercure's response headers (besides CORS).
    headers: Vec<(&'static str, String)>,
    preamble: Bytes,
    deadline: Option<tokio::time::Instant>,
    guard: Option<subscriptions::Guard>,
}

/// Parses, authorizes and subscribes (`accept`). `head_only`: a `HEAD`
/// request, which gets the headers and no stream (and no subscription events).
pub async fn accept(
    ctx: &Ctx,
    shared: &Arc<Shared>,
    query: Option<&str>,
    header_cursor: Option<&str>,
    headers: &HeaderMap,
    head_only: bool,
) -> Result<Accepted, MercureError> {
    let access = token::access(ctx, shared, headers, query)?;
    if matches!(access, Access::Anonymous) && !shared.opts.mercure.anonymous {
        return Err(MercureError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this hub has no anonymous subscribers: send a token (Authorization: Bearer, or the cookie)",
            Challenge::Missing,
        ));
    }
    let pairs = form_pairs(query.unwrap_or("").as_bytes())?;
    let matchers = matchers(ctx, shared, &pairs)?;
    let cursor = cursor(ctx.generation, header_cursor, &pairs);
    if cursor
        .as_deref()
        .is_some_and(|c| c.chars().any(char::is_control))
    {
        return Err(MercureError::bad_request(
            "invalid_cursor",
            "the last event id must not contain control characters",
        ));
    }
    let selector = selector(&matchers, shared)?;
    let head = shared.hub.head();
    let resume = match cursor.as_deref() {
        None | Some("") => Resume::Now,
        Some("earliest") => Resume::Earliest,
        Some(c) => Resume::After(c.to_string()),
    };
    let mut sub = shared
        .hub
        .subscribe(&selector, resume)
        .await
        .map_err(crate::rejection::Rejection::from)?;
    if let Some(filter) = access.private_filter() {
        sub.set_private_filter(filter);
    }
    let mut out = vec![
        ("Content-Type", "text/event-stream".to_string()),
        ("Cache-Control", CACHE_CONTROL.to_string()),
        ("X-Accel-Buffering", "no".to_string()),
        ("Link", super::discovery::link(ctx)),
    ];
    if let Some(c) = cursor {
        let value = match c.as_str() {
            "" => head.to_string(),
            _ if sub.reset().is_some() => "earliest".to_string(),
            _ => c,
        };
        let name = match ctx.generation {
            Generation::V1 => "Mercure-Last-Event-ID",
            Generation::Legacy => "Last-Event-ID",
        };
        out.push((name, value));
    }
    let guard = if shared.opts.mercure.subscriptions && !head_only {
        let payload = match &access {
            Access::Mercure(g, _) => g.payload.clone(),
            _ => None,
        };
        Some(subscriptions::start(ctx, shared, &matchers, payload).await?)
    } else {
        None
    };
    Ok(Accepted {
        preamble: crate::transports::sse::preamble(None, shared.opts.sse_retry_ms),
        sub,
        headers: out,
        deadline: access.deadline(),
        guard,
    })
}

/// The query's selectors, validated and compiled.
fn matchers(
    ctx: &Ctx,
    shared: &Shared,
    pairs: &[(String, String)],
) -> Result<Vec<Arc<Matcher>>, MercureError> {
    let limits = shared.hub.limits();
    let mut out: Vec<Arc<Matcher>> = Vec::new();
    for (name, value) in pairs {
        let kind = match (ctx.generation, name.as_str()) {
            (Generation::V1, "match" | "match_exact") => Kind::Exact,
            (Generation::V1, "match_urlpattern") => Kind::UrlPattern,
            (Generation::V1, n) if n.to_ascii_lowercase().starts_with("match") => {
                return Err(MercureError::bad_request(
                    "unsupported_matcher",
                    format!(
                        "{n} is not a supported matcher: use match (or match_exact) and match_urlpattern"
                    ),
                ));
            }
            (Generation::Legacy, "topic") => Kind::Legacy,
            _ => continue,
        };
        if value.len() > limits.max_topic_len {
            return Err(MercureError::bad_request(
                "matcher_too_long",
                format!(
                    "a selector is {} bytes long; the limit is {} (max_topic_len)",
                    value.len(),
                    limits.max_topic_len
                ),
            ));
        }
        if out.len() == limits.max_topics {
            return Err(MercureError::bad_request(
                "too_many_matchers",
                format!(
                    "a subscription may have at most {} selectors (max_topics)",
                    limits.max_topics
                ),
            ));
        }
        let m = shared
            .mercure
            .matchers
            .get(kind, value, &ctx.hub_url)
            .map_err(|e| MercureError::bad_request("invalid_matcher", e.to_string()))?;
        if !out.iter().any(|o| Arc::ptr_eq(o, &m)) {
            out.push(m);
        }
    }
    if out.is_empty() {
        let what = match ctx.generation {
            Generation::V1 => "match (or match_urlpattern)",
            Generation::Legacy => "topic",
        };
        return Err(MercureError::bad_request(
            "missing_matcher",
            format!("subscribe with at least one {what} parameter"),
        ));
    }
    Ok(out)
}

/// The resume cursor: the `Last-Event-ID` header wins, then the
/// generation's query parameter, then the other generation's, then the
/// polyfills' `lastEventId`. `Some("")` for a present but empty one.
fn cursor(
    generation: Generation,
    header: Option<&str>,
    pairs: &[(String, String)],
) -> Option<String> {
    if let Some(h) = header {
        return Some(h.to_string());
    }
    let names: [&str; 3] = match generation {
        Generation::V1 => ["last_event_id", "lastEventID", "lastEventId"],
        Generation::Legacy => ["lastEventID", "last_event_id", "lastEventId"],
    };
    names
        .iter()
        .find_map(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
}

/// The hub selector for `matchers`: exact selectors as exact topics (the
/// hub's hash map), `*`, templates and URL Patterns as patterns tested by the
/// shared compiled matcher (labelled by kind and source, so equal selectors
/// are one pattern).
fn selector(matchers: &[Arc<Matcher>], shared: &Shared) -> Result<Selector, MercureError> {
    let max = shared.hub.limits().max_topic_len;
    let mut exact = Vec::new();
    let mut patterns = Vec::new();
    for m in matchers {
        // The hub's own `$herald/` topics (stats, presence) are not Mercure
        // topics: no Mercure selector reaches them.
        match m.exact() {
            Some(t) if crate::operations::presence::reserved(t) => {
                return Err(MercureError::bad_request(
                    "invalid_matcher",
                    format!("{t:?}: topics starting with $herald/ belong to the hub"),
                ));
            }
            Some(t) => exact.push(
                Topic::parse(t, max)
                    .map_err(|e| MercureError::bad_request("invalid_matcher", e.to_string()))?,
            ),
            // Patterns never match `$herald/` topics (core's Pattern::matches).
            None if m.is_any() => patterns.push(Pattern::custom("mercure-any", |_: &str| true)),
            None => {
                let label = format!("mercure-{}:{}", m.kind().name(), m.source());
                let m = m.clone();
                patterns.push(Pattern::custom(label, move |topic: &str| m.matches(topic)));
            }
        }
    }
    Ok(Selector::new(exact, patterns))
}

/// Serves a subscription on the lean path (a first request on a plain
/// HTTP/1.1 connection); see the module doc.
pub async fn serve_lean(
    mut stream: TcpStream,
    req: StreamRequest,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
) {
    let ctx = Ctx::new(&shared, &req.headers, None);
    let verdict = cors::verdict(&shared.opts, &req.headers);
    let mut cors_lines = String::new();
    for (k, v) in cors::lean_headers(&verdict) {
        cors_lines.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    let accepted = accept(
        &ctx,
        &shared,
        req.query.as_deref(),
        req.last_event_id.as_deref(),
        &req.headers,
        false,
    )
    .await;
    drop(req);
    let a = match accepted {
        Ok(a) => a,
        Err(e) => {
            let _ = stream
                .write_all(&e.to_http1(ctx.generation, &ctx, &cors_lines))
                .await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&cors_lines);
    head.push_str("Connection: close\r\n\r\n");
    let frames: [&[u8]; 2] = [head.as_bytes(), &a.preamble];
    let (timeout, stop) = (shared.opts.write_timeout, &shared.shutdown);
    if write::write_all(&stream, &frames, timeout, stop)
        .finish()
        .await
        .is_ok()
    {
        let Accepted {
            sub,
            deadline,
            guard,
            ..
        } = a;
        let expiry = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        let opening = crate::operations::Opening {
            peer: stream.peer_addr().ok(),
            topics: sub.topics().to_vec(),
            claims: None,
        };
        let open = shared.stream_guard(Format::Sse.transport(), opening);
        let run = run_stream(stream, sub, Format::Sse, expiry, slot, open);
        match guard {
            None => {
                shared.tracker.spawn(run);
            }
            // The guard lives as long as the stream: its drop publishes the
            // end events. Boxed so the task grows by one pointer only.
            Some(guard) => {
                let guard = Box::new(guard);
                // `map`, not an `async` block: a block awaiting `run` would
                // store it twice (rustc #62958).
                shared.tracker.spawn(run.map(move |()| drop(guard)));
            }
        }
    }
}

/// Serves a subscription (or a `HEAD`) through hyper. The safe `QUERY`
/// method carries the parameters as a form body too: query-string parameters
/// come first, so a `last_event_id` in the query wins over one in the body.
pub async fn serve_hyper(
    req: Request<Incoming>,
    ctx: &Ctx,
    shared: Arc<Shared>,
) -> Result<Response<Body>, MercureError> {
    let head_only = req.method() == Method::HEAD;
    let headers = req.headers().clone();
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let mut query = req.uri().query().unwrap_or_default().to_string();
    if req.method().as_str() == "QUERY" {
        let body = crate::publish::read_body(req, shared.opts.max_body_bytes).await?;
        let body = std::str::from_utf8(&body).map_err(|_| {
            MercureError::bad_request("invalid_utf8", "the QUERY body must be a UTF-8 form")
        })?;
        query = format!("{query}&{body}");
    }
    let a = accept(
        ctx,
        &shared,
        Some(&query),
        header_cursor,
        &headers,
        head_only,
    )
    .await?;
    let body = if head_only {
        Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
    } else {
        let keep = a.guard.map(|g| Box::new(g) as Box<dyn Send>);
        let opening = crate::operations::Opening {
            peer: None,
            topics: a.sub.topics().to_vec(),
            claims: None,
        };
        let open = shared.stream_guard(Format::Sse.transport(), opening);
        stream::hyper_body(
            a.preamble,
            Format::Sse,
            a.sub,
            a.deadline,
            &shared,
            open,
            keep,
        )
    };
    let mut resp = Response::new(body);
    for (k, v) in a.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
