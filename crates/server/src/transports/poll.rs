//! Long-polling and short polling at `GET /poll`, and JSONP through `callback=`.
//!
//! `GET /poll?topic=T[&topic=U…][&since=ID][&timeout=SECONDS][&max=N][&callback=NAME]`
//!
//! Stateless against the log: the hub keeps nothing per poller between
//! requests. The answer comes at once if events after `since` exist, otherwise
//! when one arrives or `timeout` passes (`timeout=0`: a short poll). Body:
//! `{"events":[…],"last_event_id":"…","more":bool}` plus `"reset":{…}` when
//! `since` could not be honoured; the client polls again from `last_event_id`.
//! With `callback=NAME` the same body is wrapped as `/**/NAME(…);` JavaScript.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};

use herald_core::{Event, Position, Resume, Selector, Subscription, json};

use crate::auth;
use crate::listener::Shared;
use crate::operations::OpenStream;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::ticker;
use crate::transports::format::reset_json;
use crate::transports::{callback, stream::Body};

/// The hold time when the client names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

/// Events per answer when the client names no `max`.
const DEFAULT_MAX: usize = 100;

/// Handles `GET /poll`.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    let peer = req
        .extensions()
        .get::<crate::listener::ConnInfo>()
        .map(|c| c.peer);
    let q = Query::parse(req.uri().query());
    let callback = q.first("callback").map(callback::parse).transpose()?;
    let limits = shared.hub.limits();
    let topics = q.topics(limits)?;
    access.may_subscribe(&shared.opts, &topics)?;
    let selector = Selector::exact(topics);
    let since = q.first("since").or_else(|| q.first("last_event_id"));
    let resume = Query::parse(None).resume(since)?;
    let timeout = match q.first("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(t.parse().map_err(|_| {
            Rejection::bad_request(
                "invalid_timeout",
                "timeout must be a whole number of seconds (0 for a short poll)",
            )
        })?),
    }
    .min(shared.opts.poll_timeout_max)
    // A poll never outlives its token.
    .min(access.deadline().map_or(Duration::MAX, |d| {
        d.saturating_duration_since(tokio::time::Instant::now())
    }));
    let max = match q.first("max") {
        None => DEFAULT_MAX,
        Some(m) => m.parse::<usize>().ok().filter(|&m| m > 0).ok_or_else(|| {
            Rejection::bad_request(
                "invalid_max",
                "max must be a whole number of events, at least 1",
            )
        })?,
    }
    .min(shared.opts.poll_max_events);

    let mut sub = shared.hub.subscribe(&selector, resume.clone()).await?;
    let filtered = match access.private_filter() {
        Some(filter) => {
            sub.set_private_filter(filter);
            true
        }
        None => false,
    };
    let mut opening = access.opening(selector.exact_topics().cloned().collect());
    opening.peer = peer;
    let open = shared.stream_guard(crate::listener::Transport::Poll, opening);
    let events = if sub.reset().is_some() {
        Vec::new()
    } else {
        collect(&mut sub, max, timeout, &open).await?
    };
    let more = events.len() == max || sub.catching_up();
    let cursor = match (events.last(), &resume, sub.reset()) {
        (Some(ev), _, _) => ev.id.to_string(),
        // Private events this client may not see were skipped: move past them.
        (None, Resume::After(_), None) if filtered && sub.last_seq() > 0 => Position {
            epoch: shared.hub.head().epoch,
            seq: sub.last_seq(),
        }
        .to_string(),
        (None, Resume::After(c), None) => c.clone(),
        (None, _, _) => shared.hub.head().to_string(),
    };
    let body = answer(&events, &cursor, more, &sub);
    open.delivered(events.len());
    open.closed("answered");
    Ok(respond(body, callback))
}

/// Waits up to `timeout` for the first event, then takes what else is ready.
async fn collect(
    sub: &mut Subscription,
    max: usize,
    timeout: Duration,
    open: &OpenStream,
) -> Result<Vec<Arc<Event>>, Rejection> {
    let mut events = Vec::new();
    let mut ticks = open.shared().ticks.clone();
    let first = tokio::select! {
        r = tokio::time::timeout(timeout, sub.next()) => r.ok(),
        // On shutdown (or an admin's disconnect), answer now (empty) so the
        // client polls again (elsewhere).
        _ = async {
            while ticks.changed().await.is_ok()
                && *ticks.borrow_and_update() != ticker::SHUTDOWN
                && !open.is_kicked()
            {}
        } => None,
    };
    match first {
        None => return Ok(events),
        Some(Ok(ev)) => events.push(ev),
        Some(Err(e)) => {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{e}; poll again from your last event id"),
            ));
        }
    }
    while events.len() < max {
        match sub.try_next() {
            Some(ev) => events.push(ev),
            None => break,
        }
    }
    Ok(events)
}

/// The JSON body, built from each event's shared JSON encoding.
fn answer(events: &[Arc<Event>], cursor: &str, more: bool, sub: &Subscription) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + events.iter().map(|e| e.json_line().len()).sum::<usize>());
    out.extend_from_slice(b"{\"events\":[");
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&ev.json());
    }
    out.extend_from_slice(b"],\"last_event_id\":");
    json::string(&mut out, cursor);
    out.extend_from_slice(if more {
        b",\"more\":true"
    } else {
        b",\"more\":false"
    });
    if let Some(r) = sub.reset() {
        out.extend_from_slice(b",\"reset\":");
        out.extend_from_slice(reset_json(&r).as_bytes());
    }
    out.push(b'}');
    out
}

fn respond(body: Vec<u8>, callback: Option<&str>) -> Response<Body> {
    let (content_type, body) = match callback {
        None => ("application/json", body),
        Some(name) => {
            // The body is already script-safe (no `<`, U+2028 or U+2029).
            let mut js = Vec::with_capacity(body.len() + name.len() + 8);
            js.extend_from_slice(b"/**/");
            js.extend_from_slice(name.as_bytes());
            js.push(b'(');
            js.extend_from_slice(&body);
            js.extend_from_slice(b");");
            ("application/javascript; charset=utf-8", js)
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
    h.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    r
}
