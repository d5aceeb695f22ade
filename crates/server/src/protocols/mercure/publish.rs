//! Publishing: `POST /.well-known/mercure`, an
//! `application/x-www-form-urlencoded` body with `topic` (repeatable: the
//! first is canonical, the others alternate), `data`, `private` (present:
//! private, whatever its value), `id`, `type` and `retry`; unknown fields are
//! ignored. One [`Draft`] → `Hub::publish`; the answer is `200` with the
//! event's id as `text/plain; charset=utf-8`. Without an `id` the hub
//! generates `urn:uuid:` + a UUIDv7, stored like a publisher's id so it
//! resolves as a resume cursor through the log's id index.
//!
//! Refusals: 400 for invalid values (a topic under the hub path; 1.0 also: a
//! topic `*`, an id `earliest`, the type `mercure`, control and format
//! characters), 401 without a token, 403 unless the token grants every topic,
//! 413 over a limit (body, field length, number of topics), 409 for an id a
//! retained event already uses.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};

use herald_core::{Draft, Topic};

use super::error::Challenge;
use super::matcher::{check_chars, is_format};
use super::{Ctx, Generation, HUB_PATH, MercureError, token};
use crate::auth::Access;
use crate::cors;
use crate::listener::{ConnInfo, Shared};
use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// The fields of a publish form.
#[derive(Debug, Default)]
struct Form {
    topics: Vec<String>,
    data: Option<String>,
    private: bool,
    id: Option<String>,
    kind: Option<String>,
    retry: Option<String>,
}

/// Handles `POST /.well-known/mercure`.
pub async fn handle(
    req: Request<Incoming>,
    ctx: &Ctx,
    shared: &std::sync::Arc<Shared>,
) -> Result<Response<Body>, MercureError> {
    let access = token::access(ctx, shared, req.headers(), req.uri().query())?;
    if matches!(access, Access::Anonymous) {
        return Err(MercureError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "publishing needs a token that grants publish on every topic (Authorization: Bearer <token>)",
            Challenge::Missing,
        ));
    }
    if access.from_cookie() {
        cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if form_type
        .as_deref()
        .is_some_and(|m| m != "application/x-www-form-urlencoded")
    {
        return Err(MercureError::bad_request(
            "invalid_content_type",
            "send the update as application/x-www-form-urlencoded (topic, data, private, id, type, retry)",
        ));
    }
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer);
    let body = crate::publish::read_body(req, shared.opts.max_body_bytes).await?;
    let form = parse_form(&body)?;
    let draft = draft(form, ctx, shared)?;
    if let Err(rej) = access.may_publish(&draft.topics) {
        return Err(MercureError {
            challenge: if rej.status == StatusCode::FORBIDDEN {
                Challenge::InsufficientScope
            } else {
                Challenge::None
            },
            rejection: rej,
        });
    }
    shared
        .publish_limits
        .check(peer.map(|p| p.ip()), &access, 1)?;
    let events = crate::publish::publish(shared, vec![draft]).await?;
    let id = events.first().map(|e| e.id.to_string()).unwrap_or_default();
    let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::Full::new(Bytes::from(id)),
    ));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// Parses a form body strictly: percent-decoded names and values must be UTF-8.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, MercureError> {
    let mut out = Vec::new();
    for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let decode = |raw: &[u8]| -> Result<String, MercureError> {
            let plus: Vec<u8> = raw
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
            String::from_utf8(bytes).map_err(|_| {
                MercureError::bad_request(
                    "invalid_utf8",
                    "form names and values must be UTF-8 once percent-decoded",
                )
            })
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

fn parse_form(body: &[u8]) -> Result<Form, MercureError> {
    let mut f = Form::default();
    for (name, value) in form_pairs(body)? {
        match name.as_str() {
            "topic" => f.topics.push(value),
            "data" => {
                f.data.get_or_insert(value);
            }
            "private" => f.private = true,
            "id" => {
                f.id.get_or_insert(value);
            }
            "type" => {
                f.kind.get_or_insert(value);
            }
            "retry" => {
                f.retry.get_or_insert(value);
            }
            _ => {}
        }
    }
    Ok(f)
}

fn too_large(what: String) -> MercureError {
    MercureError::from(Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        what,
    ))
}

/// Validates the form into a draft.
fn draft(f: Form, ctx: &Ctx, shared: &Shared) -> Result<Draft, MercureError> {
    let limits = shared.hub.limits();
    let v1 = ctx.generation == Generation::V1;
    if f.topics.is_empty() {
        return Err(MercureError::bad_request(
            "missing_topic",
            "an update needs at least one topic field",
        ));
    }
    if f.topics.len() > limits.max_topics {
        return Err(too_large(format!(
            "an update may name at most {} topics; this one names {}",
            limits.max_topics,
            f.topics.len()
        )));
    }
    let mut topics = Vec::with_capacity(f.topics.len());
    for t in &f.topics {
        if t.len() > limits.max_topic_len {
            return Err(too_large(format!(
                "a topic is {} bytes long; the limit is {}",
                t.len(),
                limits.max_topic_len
            )));
        }
        if v1 {
            check_v1_topic(t)?;
        }
        check_not_hub_path(t, ctx)?;
        topics.push(Topic::parse(t, limits.max_topic_len).map_err(Rejection::from)?);
    }
    let data = f.data.unwrap_or_default();
    if data.len() > limits.max_data_len {
        return Err(too_large(format!(
            "data is {} bytes; the limit is {}",
            data.len(),
            limits.max_data_len
        )));
    }
    if let Some(id) = &f.id {
        if id.len() > limits.max_id_len {
            return Err(too_large(format!(
                "id is {} bytes long; the limit is {}",
                id.len(),
                limits.max_id_len
            )));
        }
        if id.starts_with('#') {
            return Err(MercureError::bad_request(
                "invalid_id",
                "id must not start with # (reserved for ids the hub generates)",
            ));
        }
        if v1 && (id == "earliest" || check_chars(id).is_err()) {
            return Err(MercureError::bad_request(
                "invalid_id",
                "id must not be \"earliest\" nor contain control or format characters",
            ));
        }
    }
    if let Some(kind) = &f.kind {
        if kind.len() > limits.max_type_len {
            return Err(too_large(format!(
                "type is {} bytes long; the limit is {}",
                kind.len(),
                limits.max_type_len
            )));
        }
        if v1 && kind == "mercure" {
            return Err(MercureError::bad_request(
                "invalid_type",
                "the type \"mercure\" is reserved for the hub's own events",
            ));
        }
        if v1 && kind.chars().any(is_format) {
            return Err(MercureError::bad_request(
                "invalid_type",
                "type must not contain format characters",
            ));
        }
    }
    let retry = match &f.retry {
        None => None,
        Some(r) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => {
            Some(r.parse::<u32>().map_err(|_| {
                MercureError::bad_request(
                    "invalid_retry",
                    "retry is too large (at most 4294967295)",
                )
            })?)
        }
        Some(_) => {
            return Err(MercureError::bad_request(
                "invalid_retry",
                "retry must be ASCII digits (milliseconds)",
            ));
        }
    };
    let id =
        f.id.unwrap_or_else(|| format!("urn:uuid:{}", uuid::Uuid::now_v7()));
    let mut draft = Draft::new(
        topics,
        Bytes::from(data),
        f.kind.as_deref(),
        Some(&id),
        retry,
        limits,
    )
    .map_err(Rejection::from)?;
    draft.private = f.private;
    Ok(draft)
}

/// 1.0's topic rules: not `*`, no control or format characters.
fn check_v1_topic(t: &str) -> Result<(), MercureError> {
    if t == "*" {
        return Err(MercureError::bad_request(
            "invalid_topic",
            "* is a selector, not a topic",
        ));
    }
    check_chars(t).map_err(|e| MercureError::bad_request("invalid_topic", e.to_string()))
}

/// Not the hub's path or under it once resolved against the hub URL, dot
/// segments removed and unreserved escapes decoded: such a topic could forge
/// subscription events. draft-08's rule, applied to 0.x hubs too (no
/// application topic lives there).
fn check_not_hub_path(t: &str, ctx: &Ctx) -> Result<(), MercureError> {
    if let Ok(u) = ctx.hub_url.join(t) {
        let path = decode_unreserved(u.path());
        if path == HUB_PATH || path.starts_with(&format!("{HUB_PATH}/")) {
            return Err(MercureError::bad_request(
                "invalid_topic",
                format!("topics may not be the hub's path {HUB_PATH} or under it"),
            ));
        }
    }
    Ok(())
}

/// Decodes the percent-escapes of unreserved characters (RFC 3986 2.3).
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16)
            && (v.is_ascii_alphanumeric() || b"-._~".contains(&v))
        {
            out.push(v as char);
            i += 3;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_strict_utf8() {
        let p = form_pairs(b"topic=%2Fa&topic=b+c&private&data=x%0Ay").unwrap();
        assert_eq!(p[0], ("topic".into(), "/a".into()));
        assert_eq!(p[1], ("topic".into(), "b c".into()));
        assert_eq!(p[2], ("private".into(), "".into()));
        assert_eq!(p[3], ("data".into(), "x\ny".into()));
        assert!(form_pairs(b"data=%FF").is_err());
    }

    #[test]
    fn hub_paths_are_refused_after_normalisation() {
        let ctx = Ctx {
            generation: Generation::V1,
            hub_url: url::Url::parse("https://h.example/.well-known/mercure").unwrap(),
        };
        for bad in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/x",
            "/a/../.well-known/mercure/x",
            "/.well-known/%6Dercure/x",
            "https://other.example/.well-known/mercure",
            "*",
            "/a\u{200b}",
        ] {
            let refused = check_v1_topic(bad).is_err() || check_not_hub_path(bad, &ctx).is_err();
            assert!(refused, "{bad}");
        }
        for ok in [
            "/books/1",
            "https://e.example/.well-known/mercurex",
            "urn:x",
        ] {
            assert!(check_v1_topic(ok).is_ok(), "{ok}");
            assert!(check_not_hub_path(ok, &ctx).is_ok(), "{ok}");
        }
    }
}
