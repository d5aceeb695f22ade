//! WebSocket at `GET /ws` (RFC 6455) on tokio-websockets.
//!
//! - [`upgrade`] (`accept`): checks the opening handshake, validates the
//!   optional `topic=` / `last_event_id=` subscription before switching
//!   protocols (a bad one is an ordinary 4xx), answers 101 and hands the
//!   upgraded socket to a [`session::Session`] task;
//! - [`session`]: one task per socket reading operations and delivering the
//!   events of its subscriptions (`subscribe`, `deliver`, `close`);
//! - [`crate::transports::ops`] and [`crate::transports::subscriptions`]: the
//!   JSON operations and what they do, shared with BOSH sessions.
//!
//! The socket is taken over from hyper after the 101, so an open WebSocket
//! keeps no HTTP buffers; tokio-websockets keeps an 8 KiB read buffer.

pub mod session;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_websockets::{Config, Limits, ServerBuilder};

use herald_core::Selector;

use crate::auth;
use crate::cors;
use crate::listener::{ConnInfo, Shared};
use crate::query::Query;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// The GUID RFC 6455 appends to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest frame Herald sends; longer messages are fragmented.
const FRAME_SIZE: usize = 64 * 1024;

/// Queued outgoing bytes after which a write is pushed to the socket.
const FLUSH_THRESHOLD: usize = 16 * 1024;

/// Handles `GET /ws`: checks the handshake and the subscription, answers 101
/// and starts the session.
pub async fn upgrade(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    // The subscription is checked first, so a client refused with a 4xx can
    // learn why with a plain GET of the same URL.
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    access.may_open_session(&shared.opts)?;
    if access.from_cookie() {
        // Browsers send cookies on cross-site WebSocket upgrades: refuse pages
        // from origins that are not the hub's or listed.
        cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    let q = Query::parse(req.uri().query());
    let header_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let resume = q.resume(header_id)?;
    let selector = match q.first("topic") {
        Some(_) => {
            let topics = q.topics(shared.hub.limits())?;
            access.may_subscribe(&shared.opts, &topics)?;
            Some(Selector::exact(topics))
        }
        None => None,
    };
    let accept = match accept_key(req.headers()) {
        Ok(a) => a,
        Err(Refusal::Version) => return Ok(version_required()),
        Err(Refusal::Bad(rej)) => return Err(rej),
    };
    let initial = match selector {
        Some(selector) => {
            let mut sub = shared.hub.subscribe(&selector, resume).await?;
            if let Some(filter) = access.private_filter() {
                sub.set_private_filter(filter);
            }
            Some(sub)
        }
        None => None,
    };
    let limits = Limits::default().max_payload_len(Some(shared.opts.ws_max_message));
    // The session outlives hyper's connection: it keeps the connection's slot.
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let tracker = shared.tracker.clone();
    // In the request's span: the session's log lines carry its request id.
    tracker.spawn(tracing::Instrument::in_current_span(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws = builder(limits).serve(TokioIo::new(upgraded));
                let peer = conn.as_ref().map(|c| c.peer.ip());
                session::Session::new(ws, shared, access, peer, initial)
                    .run()
                    .await;
                drop(conn);
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    }));
    Ok(switching(&accept))
}

/// Handles `GET /ws/echo` (only with `ws_echo` on): echoes every message on
/// the production WebSocket stack, for conformance suites (Autobahn cases).
pub async fn echo(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let accept = match accept_key(req.headers()) {
        Ok(a) => a,
        Err(Refusal::Version) => return Ok(version_required()),
        Err(Refusal::Bad(rej)) => return Err(rej),
    };
    let limits = Limits::default().max_payload_len(Some(ECHO_MAX_MESSAGE));
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            session::echo(builder(limits).serve(TokioIo::new(upgraded)), shared).await;
        }
    });
    Ok(switching(&accept))
}

/// The echo route's message limit: the Autobahn 9.x cases send 16 MiB.
const ECHO_MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub(crate) fn builder(limits: Limits) -> ServerBuilder {
    ServerBuilder::new()
        .config(
            Config::default()
                .frame_size(FRAME_SIZE)
                .flush_threshold(FLUSH_THRESHOLD),
        )
        .limits(limits)
}

/// Why an opening handshake is refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not a usable WebSocket upgrade (400).
    Bad(Rejection),
    /// A version other than 13 (426 with `Sec-WebSocket-Version: 13`).
    Version,
}

/// Checks an opening handshake and returns its `Sec-WebSocket-Accept`.
pub(crate) fn accept_key(headers: &HeaderMap) -> Result<String, Refusal> {
    let bad = |what: &str| {
        Refusal::Bad(Rejection::bad_request(
            "bad_websocket_handshake",
            format!(
                "{what}; a WebSocket opening handshake is a GET with Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key"
            ),
        ))
    };
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(bad(
            "this route only speaks WebSocket: Upgrade: websocket is missing",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(bad("Connection: Upgrade is missing"));
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        None => return Err(bad("Sec-WebSocket-Version is missing")),
        Some(v) if v.as_bytes().trim_ascii() != b"13" => return Err(Refusal::Version),
        Some(_) => {}
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| bad("Sec-WebSocket-Key is missing"))?;
    let key = key.as_bytes().trim_ascii();
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => {
            return Err(bad(
                "Sec-WebSocket-Key must be the base64 encoding of 16 bytes",
            ));
        }
    }
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    Ok(STANDARD.encode(sha.digest().bytes()))
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

pub(crate) fn switching(accept: &str) -> Response<Body> {
    let mut r = Response::new(Empty::new().boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

pub(crate) fn version_required() -> Response<Body> {
    let rej = Rejection::new(
        StatusCode::UPGRADE_REQUIRED,
        "unsupported_websocket_version",
        "Herald speaks WebSocket version 13 (RFC 6455) only",
    );
    let mut r = rej.into_response().map(|b| b.boxed_unsync());
    r.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    r
}

#[cfg(test)]
mod tests;
