//! Native publishing: `POST /publish`.
//!
//! - raw: `POST /publish?topic=T[&topic=U][&type=K][&id=I][&retry=MS][&private=1]`, the body is the data;
//! - JSON (`Content-Type: application/json`): one object
//!   `{"topic": "T" | ["T", …], "data": "…", "type": "…", "id": "…", "retry": 3000, "private": true}`
//!   or an array of them (a batch, appended atomically and in order).
//!
//! Every event's topics must be granted by the request's token ([`crate::auth`]).
//! Answers `{"id": "…"}` (an array for a batch) once the events are durable.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use serde::Deserialize;

use herald_core::{Draft, Event, Limits, Topic};

use crate::auth;
use crate::cors;
use crate::listener::{ConnInfo, Shared};
use crate::query::Query;
use crate::rejection::Rejection;
use crate::routes::json;
use crate::transports::stream::Body;

/// Handles `POST /publish`.
/// Query parameters that describe a raw-body event (a JSON body carries its own).
const RAW_ONLY: [&str; 5] = ["topic", "type", "id", "retry", "private"];

/// Where a publish names its topics.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// `POST /publish`: a JSON body names them, or `topic=` parameters do.
    Query,
    /// `POST /topics/{topic}`: the rest of the path, percent-decoded, is the
    /// one topic, and the body is the data whatever its content type.
    Path(&'a str),
}

/// Answers a publish request.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    target: Target<'_>,
) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    access.may_publish_something()?;
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer);
    if access.from_cookie() {
        cors::check_cookie_origin(&shared.opts, req.headers())?;
    }
    let limits = shared.hub.limits();
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    let query = Query::parse(req.uri().query());
    let body = read_body(req, shared.opts.max_body_bytes).await?;
    let (drafts, batch) = match target {
        Target::Path(encoded) => {
            let topics = vec![path_topic(encoded, limits)?];
            (vec![from_raw(&query, topics, body, limits)?], false)
        }
        Target::Query if is_json => {
            if let Some(name) = RAW_ONLY.iter().find(|n| query.first(n).is_some()) {
                return Err(Rejection::bad_request(
                    "invalid_query",
                    format!(
                        "the {name} parameter is for raw bodies; with a JSON body put topic, type, id, retry and private in the JSON"
                    ),
                ));
            }
            parse_json_body(&body, limits)?
        }
        Target::Query => {
            let topics = query.topics(limits)?;
            (vec![from_raw(&query, topics, body, limits)?], false)
        }
    };
    for d in &drafts {
        access.may_publish(&d.topics)?;
    }
    shared
        .publish_limits
        .check(peer.map(|p| p.ip()), &access, drafts.len())?;
    let events = publish(shared, drafts).await?;
    let ids: Vec<serde_json::Value> = events.iter().map(|e| id_json(e)).collect();
    let value = if batch {
        serde_json::Value::Array(ids)
    } else {
        ids.into_iter().next().unwrap_or_default()
    };
    Ok(json(StatusCode::OK, &value))
}

/// Appends `drafts` through the hub and counts them; returns once durable.
pub(crate) async fn publish(
    shared: &Shared,
    drafts: Vec<Draft>,
) -> Result<Vec<Arc<Event>>, Rejection> {
    let events = shared.hub.publish(drafts, crate::now_ms()).await?;
    shared
        .stats
        .published
        .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(events)
}

fn id_json(e: &Event) -> serde_json::Value {
    serde_json::json!({"id": e.id.to_string()})
}

pub(crate) async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Rejection> {
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than the limit of {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Rejection::bad_request(
            "bad_body",
            format!("could not read the request body: {e}"),
        )),
    }
}

/// The topic of `POST /topics/{topic}`: the percent-decoded rest of the path.
fn path_topic(encoded: &str, limits: &Limits) -> Result<Topic, Rejection> {
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| {
            Rejection::bad_request(
                "invalid_topic",
                "the topic in the path is not UTF-8 once percent-decoded",
            )
        })?;
    if decoded.is_empty() {
        return Err(Rejection::bad_request(
            "missing_topic",
            "name the topic after /topics/ (percent-encode a / inside it as %2F, or leave it as is)",
        ));
    }
    Ok(Topic::parse(&decoded, limits.max_topic_len)?)
}

fn from_raw(
    q: &Query,
    topics: Vec<Topic>,
    body: Bytes,
    limits: &Limits,
) -> Result<Draft, Rejection> {
    q.check_utf8()?;
    let retry = q.first("retry").map(parse_retry).transpose()?;
    let mut draft = Draft::new(topics, body, q.first("type"), q.first("id"), retry, limits)?;
    draft.private = q
        .first("private")
        .map(parse_private)
        .transpose()?
        .unwrap_or(false);
    Ok(draft)
}

fn parse_private(v: &str) -> Result<bool, Rejection> {
    match v {
        "" | "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err(Rejection::bad_request(
            "invalid_private",
            "private must be true or false (or 1 or 0)",
        )),
    }
}

fn parse_retry(v: &str) -> Result<u32, Rejection> {
    v.parse().map_err(|_| {
        Rejection::bad_request(
            "invalid_retry",
            "retry must be a whole number of milliseconds (0 to 4294967295)",
        )
    })
}

/// One topic or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// One event in a JSON publish body (or a WebSocket `publish` operation).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    topic: OneOrMany<String>,
    data: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    #[serde(default, deserialize_with = "whole_millis")]
    retry: Option<u32>,
    #[serde(default)]
    private: bool,
}

/// `retry` as JSON allows a whole number to be written: `3000` or `3000.0`.
fn whole_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "retry must be a whole number of milliseconds (0 to {}); got {n}",
                u32::MAX
            ))
        })
}

impl JsonEvent {
    /// Validates the event against `limits`.
    pub fn into_draft(self, limits: &Limits) -> Result<Draft, Rejection> {
        let topics = self
            .topic
            .into_vec()
            .iter()
            .map(|t| Topic::parse(t, limits.max_topic_len))
            .collect::<Result<Vec<_>, _>>()?;
        let mut draft = Draft::new(
            topics,
            Bytes::from(self.data),
            self.kind.as_deref(),
            self.id.as_deref(),
            self.retry,
            limits,
        )?;
        draft.private = self.private;
        Ok(draft)
    }
}

/// Parses a JSON publish body (one event object, or an array of them: a
/// batch) into drafts validated against `limits`; the flag says whether it
/// was a batch. Public so the fuzz target `publish_json` can reach it; the
/// route calls it with the body already bounded by `max_body_bytes`.
pub fn parse_json_body(body: &[u8], limits: &Limits) -> Result<(Vec<Draft>, bool), Rejection> {
    let bad = |e: serde_json::Error| {
        Rejection::bad_request(
            "invalid_json",
            format!(
                "{e}; expected {{\"topic\": \"T\" or [\"T\", ...], \"data\": \"...\", \"type\"?, \"id\"?, \"retry\"?}} or an array of those"
            ),
        )
    };
    let parsed: OneOrMany<JsonEvent> = serde_json::from_slice(body).map_err(bad)?;
    let batch = matches!(parsed, OneOrMany::Many(_));
    let events = parsed.into_vec();
    if events.len() > limits.max_batch {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch may hold at most {} events; this one holds {}",
                limits.max_batch,
                events.len()
            ),
        ));
    }
    let drafts = events
        .into_iter()
        .map(|e| e.into_draft(limits))
        .collect::<Result<Vec<_>, Rejection>>()?;
    Ok((drafts, batch))
}
