//! Bayeux over HTTP: `long-polling` and `callback-polling`.
//!
//! - `POST /bayeux[/…]` with a JSON array (or one object) as the body, or a
//!   form body with one or more `message=` fields; the answer is a JSON array.
//! - `GET /bayeux[/…]?message=<JSON array>&jsonp=<callback>` (default callback
//!   `jsonpcallback`): the answer is `/**/callback([…]);` JavaScript, with
//!   the same callback rules and headers as Herald's own JSONP.
//! - `GET` with `Upgrade: websocket`: the `websocket` transport ([`super::ws`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::oneshot;

use herald_core::json::script_safe;

use crate::auth::{self, Access};
use crate::cors;
use crate::listener::{ConnInfo, Shared};
use crate::publish::read_body;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::transports::callback;
use crate::transports::stream::Body;

use super::message::{self, Message};
use super::session::Sink;
use super::{Route, route, submit};

/// The callback name when the request names none (CometD's and Faye's default).
const DEFAULT_CALLBACK: &str = "jsonpcallback";

/// Extra time a request waits for its session beyond the longest hold.
const ANSWER_SLACK: Duration = Duration::from_secs(10);

/// Handles every request to `/bayeux` and below.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if req.method() == Method::GET && is_upgrade {
        return super::ws::upgrade(req, shared).await;
    }
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
    let access = request_access(&shared, &req);
    let (messages, callback) = match *req.method() {
        Method::GET => {
            let q = Query::parse(req.uri().query());
            let name = q.first("jsonp").unwrap_or(DEFAULT_CALLBACK);
            let name = callback::parse(name)?.to_string();
            let mut messages = Vec::new();
            for text in q.all("message") {
                messages.extend(message::parse(text)?);
            }
            if messages.is_empty() {
                return Err(Rejection::bad_request(
                    "missing_message",
                    "callback-polling sends its messages as ?message=<URL-encoded JSON array>&jsonp=<callback>",
                ));
            }
            // A script tag carries the browser's cookies to any page that
            // includes it: a cookie never authorizes callback-polling.
            let access = access.map(|a| {
                if a.from_cookie() {
                    Access::Anonymous
                } else {
                    a
                }
            });
            (dispatch(&shared, messages, access, peer).await?, Some(name))
        }
        Method::POST => {
            let form = is_form(&req);
            let body = read_body(req, shared.opts.max_body_bytes).await?;
            let messages = parse_body(&body, form)?;
            (dispatch(&shared, messages, access, peer).await?, None)
        }
        _ => {
            return Err(Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Bayeux takes POST (long-polling), GET with message= (callback-polling) or a WebSocket upgrade",
            ));
        }
    };
    Ok(respond(&replies_text(&messages), callback.as_deref()))
}

/// The access the request itself carries (a header or cookie token); the
/// handshake's `ext.authToken` takes precedence over it.
pub(crate) fn request_access(
    shared: &Shared,
    req: &Request<Incoming>,
) -> Result<Access, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    if access.from_cookie() {
        cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    Ok(access)
}

fn is_form(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A long-polling body: JSON, or form fields `message=`.
pub fn parse_body(body: &[u8], form: bool) -> Result<Vec<Message>, Rejection> {
    let text = std::str::from_utf8(body).map_err(|_| {
        Rejection::bad_request("invalid_body", "a Bayeux request body must be UTF-8")
    })?;
    if !form {
        return message::parse(text);
    }
    let mut messages = Vec::new();
    for (name, value) in form_urlencoded::parse(text.as_bytes()) {
        if name == "message" {
            messages.extend(message::parse(&value)?);
        }
    }
    if messages.is_empty() {
        return Err(Rejection::bad_request(
            "missing_message",
            "a form-encoded Bayeux request carries its messages in message= fields",
        ));
    }
    Ok(messages)
}

/// Checks the batch size, then answers the batch here or through its session.
async fn dispatch(
    shared: &Arc<Shared>,
    messages: Vec<Message>,
    access: Result<Access, Rejection>,
    peer: Option<std::net::IpAddr>,
) -> Result<Vec<String>, Rejection> {
    check_batch(shared, messages.len())?;
    let (tx, messages) = match route(shared, messages, || access, peer) {
        Route::Answered(replies) => return Ok(replies),
        Route::Sessionless(access, messages) => {
            return Ok(super::sessionless(shared, access, peer, &messages).await);
        }
        Route::Session(tx, messages) => (tx, messages),
    };
    let (reply, answer) = oneshot::channel();
    if let Some(replies) = submit(&tx, messages, Sink::Http(reply)).await {
        return Ok(replies);
    }
    let wait = shared.opts.bayeux_connect_timeout + ANSWER_SLACK;
    match tokio::time::timeout(wait, answer).await {
        Ok(Ok(replies)) => Ok(replies),
        _ => Err(Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_gone",
            "the Bayeux session ended without answering; handshake again",
        )),
    }
}

/// Refuses batches over `bayeux_max_messages`.
pub fn check_batch(shared: &Shared, count: usize) -> Result<(), Rejection> {
    let max = shared.opts.bayeux_max_messages;
    if count > max {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_messages",
            format!("a Bayeux request may carry at most {max} messages; this one carries {count}"),
        ));
    }
    Ok(())
}

fn replies_text(replies: &[String]) -> String {
    message::array(replies)
}

fn respond(body: &str, callback: Option<&str>) -> Response<Body> {
    let (content_type, body) = match callback {
        None => ("application/json;charset=UTF-8", body.as_bytes().to_vec()),
        Some(name) => {
            let safe = script_safe(body.as_bytes());
            let mut js = Vec::with_capacity(safe.len() + name.len() + 8);
            js.extend_from_slice(b"/**/");
            js.extend_from_slice(name.as_bytes());
            js.push(b'(');
            js.extend_from_slice(&safe);
            js.extend_from_slice(b");");
            ("text/javascript;charset=UTF-8", js)
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}
