//! One delivery attempt: `POST` the event to the callback and read what the
//! answer means (WebSub section 7: 2xx received, 410 removed, anything else
//! retried).
//!
//! Headers: `Content-Type` (the content type the event was published with,
//! unchanged; `text/plain; charset=utf-8` when it had none; `application/json`
//! for the JSON format), `Link: <hub>; rel="hub", <topic>; rel="self"`,
//! `X-Hub-Signature: <alg>=<hex HMAC>` only when the subscriber gave a secret,
//! `Herald-Event-Id`, `Herald-Topic`, `Herald-Event-Type` (when the event has
//! one) and `Herald-Continuity: broken` on the first delivery after retention
//! removed events this subscriber never got. The body has a `Content-Length`
//! (some subscribers refuse chunked bodies).

use std::error::Error as _;

use bytes::Bytes;
use herald_core::Event;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, LINK};

use super::Webhooks;
use super::guard::check_url;
use super::record::{Format, Record};

/// What a header value may not hold as is: controls, non-ASCII (encoded as
/// UTF-8 percent escapes), and the `<>` that delimit a `Link` target.
const HEADER_UNSAFE: &AsciiSet = &CONTROLS.add(b'<').add(b'>').add(b'"');

/// Content type of events published without one.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A 2xx: received.
    Delivered,
    /// 410 Gone: the subscriber wants the subscription removed.
    Gone,
    /// Anything else; retried. The text says what happened (for the log).
    Failed(String),
}

/// The topic a delivery names: the subscription's first topic the event has.
fn topic_of<'a>(rec: &'a Record, ev: &Event) -> &'a str {
    rec.topics
        .iter()
        .find(|t| ev.topics.iter().any(|e| e.as_str() == t.as_str()))
        .unwrap_or(&rec.topics[0])
}

/// A header-safe form of `s` (percent-escapes what a header may not hold).
fn header_safe(s: &str) -> String {
    utf8_percent_encode(s, HEADER_UNSAFE).to_string()
}

/// POSTs `ev` to `rec`'s callback once.
pub(crate) async fn attempt(w: &Webhooks, rec: &Record, ev: &Event) -> Outcome {
    let url = match check_url(&rec.callback, w.opts.allow_private) {
        Ok(u) => u,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let client = match w.client() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    let (body, content_type): (Bytes, &str) = match rec.format {
        Format::Raw => (
            ev.data.clone(),
            ev.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE),
        ),
        Format::Json => (ev.json(), "application/json"),
    };
    let topic = topic_of(rec, ev);
    let mut req = client
        .post(url)
        .header(CONTENT_TYPE, content_type)
        .header(
            LINK,
            format!(
                "<{}>; rel=\"hub\", <{}>; rel=\"self\"",
                header_safe(&rec.hub_url),
                header_safe(topic)
            ),
        )
        .header("Herald-Event-Id", header_safe(&ev.id.to_string()))
        .header("Herald-Topic", header_safe(topic));
    if let Some(kind) = ev.kind.as_deref() {
        req = req.header("Herald-Event-Type", header_safe(kind));
    }
    if rec.continuity_broken {
        req = req.header("Herald-Continuity", "broken");
    }
    if let Some(secret) = rec.secret.as_deref() {
        req = req.header(
            "X-Hub-Signature",
            w.opts.signature.sign(secret.as_bytes(), &body),
        );
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered,
        Ok(resp) if resp.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(resp) => Outcome::Failed(format!("the callback answered {}", resp.status())),
        Err(e) => Outcome::Failed(describe(e)),
    }
}

/// The error and its causes on one line (reqwest's own text hides the
/// cause), without the URL (its query may carry a token).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
