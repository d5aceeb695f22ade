//! WebSocket at `GET /ws` (RFC 6455) on tokio-websockets.
//!
//! - `check`: checks the opening handshake and validates the optional
//!   `topic=` / `last_event_id=` subscription before switching protocols (a
//!   bad one is an ordinary 4xx); [`serve_lean`] and [`upgrade`] answer 101
//!   and hand the socket to a [`session::Session`] task;
//! - [`conn`]: the socket between messages, without tokio-websockets' buffer;
//! - [`session`]: one task per socket reading operations and delivering the
//!   events of its subscriptions (`subscribe`, `deliver`, `close`);
//! - [`crate::transports::ops`] and [`crate::transports::subscriptions`]: the
//!   JSON operations and what they do, shared with BOSH sessions.
//!
//! Two ways in: [`serve_lean`] when `GET /ws` is the first request of a plain
//! HTTP/1.1 connection (the accept loop parsed its head; the session holds
//! the bare socket), [`upgrade`] through hyper otherwise (TLS, keep-alive).
//! Either way an open WebSocket keeps no HTTP buffers, and on the lean path
//! no read buffer while it is idle ([`conn`]).

pub mod conn;
pub mod session;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_websockets::{Config, Limits, ServerBuilder};
use tracing::Instrument;

use herald_core::Selector;

use crate::auth;
use crate::cors;
use crate::head::StreamRequest;
use crate::limits::Slot;
use crate::listener::{ConnInfo, Shared};
use crate::operations::request_id;
use crate::prefixed::Prefixed;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

use conn::Conn;

/// The GUID RFC 6455 appends to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest frame Herald sends; longer messages are fragmented.
const FRAME_SIZE: usize = 64 * 1024;

/// Queued outgoing bytes after which a write is pushed to the socket.
const FLUSH_THRESHOLD: usize = 16 * 1024;

/// A checked opening handshake: what its session starts with.
pub(crate) struct Handshake {
    /// `Sec-WebSocket-Accept`.
    accept: String,
    access: auth::Access,
    /// The subscription of the URL's `topic=`, if any.
    initial: Option<herald_core::Subscription>,
    limits: Limits,
}

/// Checks a `GET /ws` opening handshake and its subscription, in the order
/// both front doors answer them: the subscription first, so a client refused
/// with a 4xx can learn why with a plain GET of the same URL.
pub(crate) async fn check(
    headers: &HeaderMap,
    query: Option<&str>,
    shared: &Shared,
) -> Result<Handshake, Refusal> {
    let access = auth::access(&shared.opts, headers, query)?;
    access.may_open_session(&shared.opts)?;
    if access.from_cookie() {
        // Browsers send cookies on cross-site WebSocket upgrades: refuse pages
        // from origins that are not the hub's or listed.
        cors::check_cookie_origin(&shared.opts, headers)?;
    }
    let q = Query::parse(query);
    let header_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let resume = q.resume(header_id)?;
    let selector = match q.first("topic") {
        Some(_) => {
            let topics = q.topics(shared.hub.limits())?;
            access.may_subscribe(&shared.opts, &topics)?;
            Some(Selector::exact(topics))
        }
        None => None,
    };
    let accept = accept_key(headers)?;
    let initial = match selector {
        Some(selector) => {
            let mut sub = shared
                .hub
                .subscribe(&selector, resume)
                .await
                .map_err(Rejection::from)?;
            if let Some(filter) = access.private_filter() {
                sub.set_private_filter(filter);
            }
            Some(sub)
        }
        None => None,
    };
    let limits = Limits::default().max_payload_len(Some(shared.opts.ws_max_message));
    Ok(Handshake {
        accept,
        access,
        initial,
        limits,
    })
}

impl From<Rejection> for Refusal {
    fn from(rej: Rejection) -> Self {
        Refusal::Bad(rej)
    }
}

/// Handles `GET /ws` through hyper (TLS, HTTP/2, or a keep-alive connection
/// that asked for something else first): checks the handshake and the
/// subscription, answers 101 and starts the session.
pub async fn upgrade(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let hs = match check(req.headers(), req.uri().query(), &shared).await {
        Ok(hs) => hs,
        Err(Refusal::Version) => return Ok(version_required()),
        Err(Refusal::Bad(rej)) => return Err(rej),
    };
    let accept = hs.accept.clone();
    // The session outlives hyper's connection: it keeps the connection's slot.
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let tracker = shared.tracker.clone();
    // In the request's span: the session's log lines carry its request id.
    tracker.spawn(tracing::Instrument::in_current_span(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let peer = conn.as_ref().map(|c| c.peer.ip());
                let io = Conn::new(TokioIo::new(upgraded), hs.limits);
                session::Session::new(io, shared, hs.access, peer, hs.initial)
                    .run()
                    .await;
                drop(conn);
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    }));
    Ok(switching(&accept))
}

/// Handles `GET /ws` (and `/ws/echo`) as the first request of a plain
/// HTTP/1.1 connection, on the lean path: the head is already parsed, the
/// answer is written here, and the session task holds the socket itself, no
/// hyper state ([`conn`] drops the read buffer while the socket is idle).
pub async fn serve_lean(
    mut stream: TcpStream,
    req: StreamRequest,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
) {
    let id = request_id::of(&req.headers);
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or_default());
    let verdict = cors::verdict(&shared.opts, &req.headers);
    let echo = req.path == "/ws/echo";
    let checked = if echo {
        accept_key(&req.headers).map(|accept| Handshake {
            accept,
            access: auth::Access::Everything,
            initial: None,
            limits: Limits::default().max_payload_len(Some(ECHO_MAX_MESSAGE)),
        })
    } else {
        check(&req.headers, req.query.as_deref(), &shared)
            .instrument(span.clone())
            .await
    };
    let early = req.early;
    drop(req.headers);
    let mut head = String::with_capacity(256);
    let hs = match checked {
        Ok(hs) => {
            head.push_str(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            );
            head.push_str(&format!("Sec-WebSocket-Accept: {}\r\n", hs.accept));
            Some(hs)
        }
        Err(refusal) => {
            let rej = match refusal {
                Refusal::Bad(rej) => rej,
                Refusal::Version => version_rejection(),
            };
            shared.ops.telemetry.refused(rej.status, rej.code);
            let body = rej.body();
            head.push_str(&format!(
                "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                rej.status.as_u16(),
                rej.status.canonical_reason().unwrap_or(""),
                body.len()
            ));
            if let Some(secs) = rej.retry_after {
                head.push_str(&format!("Retry-After: {secs}\r\n"));
            }
            if rej.status == StatusCode::UPGRADE_REQUIRED {
                head.push_str("Sec-WebSocket-Version: 13\r\n");
            }
            span.in_scope(|| {
                tracing::debug!(
                    status = rej.status.as_u16(),
                    error = rej.message,
                    "websocket handshake refused"
                )
            });
            let mut out = finish_head(head, &verdict, &id).into_bytes();
            out.extend_from_slice(&body);
            let _ = tokio::time::timeout(shared.opts.write_timeout, async {
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
            })
            .await;
            return;
        }
    };
    let head = finish_head(head, &verdict, &id);
    let written =
        tokio::time::timeout(shared.opts.write_timeout, stream.write_all(head.as_bytes())).await;
    let (Some(hs), Ok(Ok(()))) = (hs, written) else {
        return;
    };
    drop(head);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let io = Conn::new(Prefixed::new(early, stream), hs.limits);
    let tracker = shared.tracker.clone();
    if echo {
        tracker.spawn(async move {
            session::echo(io, shared).await;
            drop(slot);
        });
        return;
    }
    let session = span
        .in_scope(|| session::Session::new(io, shared, hs.access, peer, hs.initial))
        .with_request_id(&id);
    drop(span);
    tracker.spawn(async move {
        session.run().await;
        drop(slot);
    });
}

/// Ends a raw response head: CORS headers, the request id, the blank line.
fn finish_head(mut head: String, verdict: &cors::Verdict, id: &HeaderValue) -> String {
    for (k, v) in cors::lean_headers(verdict) {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    head.push_str(&format!(
        "{}: {}\r\n\r\n",
        request_id::HEADER,
        id.to_str().unwrap_or_default()
    ));
    head
}

/// Handles `GET /ws/echo` through hyper (only with `ws_echo` on): echoes every
/// message on the production WebSocket stack, for conformance suites
/// (Autobahn cases).
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
            session::echo(Conn::new(TokioIo::new(upgraded), limits), shared).await;
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

/// The refusal of a WebSocket version other than 13.
fn version_rejection() -> Rejection {
    Rejection::new(
        StatusCode::UPGRADE_REQUIRED,
        "unsupported_websocket_version",
        "Herald speaks WebSocket version 13 (RFC 6455) only",
    )
}

pub(crate) fn version_required() -> Response<Body> {
    let rej = version_rejection();
    let mut r = rej.into_response().map(|b| b.boxed_unsync());
    r.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    r
}

#[cfg(test)]
mod tests;
