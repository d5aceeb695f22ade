//! `POST /websub`: the WebSub hub's front door (W3C WebSub sections 5 and 6).
//!
//! Form-encoded (`application/x-www-form-urlencoded`) parameters:
//!
//! - `hub.mode=subscribe|unsubscribe` with `hub.topic`, `hub.callback`, and
//!   for subscribe optional `hub.lease_seconds` and `hub.secret` (under 200
//!   bytes). Checked at once (a bad request gets 4xx with a plain-text
//!   reason), answered **202**, then verified in a task: only after the
//!   callback echoes the challenge is the subscription created, renewed (new
//!   lease, new secret or none; deliveries continue from where they were), or
//!   removed. A failed verification changes nothing.
//! - `hub.mode=publish` with `hub.topic` or `hub.url` (several allowed): the
//!   hub fetches each topic URL and publishes the answer's body as one event on
//!   that topic, with the answer's `Content-Type` kept for delivery. Answered
//!   202 once the events are durable; 502 when a fetch fails.
//!
//! Unknown parameters are ignored. Authorization is the subscribe rule
//! (`auth.rs`): `--dev` anything; otherwise a token that may subscribe to the
//! topic, or nothing when `anonymous_subscribe` is on (public events only).
//! Publish pings need a token that may publish to the topic.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};

use herald_core::{Draft, Topic};

use super::guard::check_url;
use super::record::{Format, Origin, Record};
use super::verify::{Intent, verify};
use super::{Removal, Webhooks, owner_and_grants};
use crate::auth::{self, Access};
use crate::listener::{ConnInfo, Shared};
use crate::publish;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// `hub.secret` must be shorter than this (WebSub section 5.1).
const MAX_SECRET: usize = 200;

/// The parameters Herald reads; everything else is ignored.
#[derive(Default)]
struct Form {
    mode: Option<String>,
    topic: Option<String>,
    callback: Option<String>,
    lease: Option<String>,
    secret: Option<String>,
    urls: Vec<String>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        let mut f = Form::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            match &*k {
                "hub.mode" => f.mode = Some(v),
                "hub.topic" => {
                    f.urls.push(v.clone());
                    f.topic.get_or_insert(v);
                }
                "hub.url" => f.urls.push(v),
                "hub.callback" => f.callback = Some(v),
                "hub.lease_seconds" => f.lease = Some(v),
                "hub.secret" => f.secret = Some(v),
                _ => {}
            }
        }
        f
    }
}

/// A plain-text answer (WebSub asks for a plain-text explanation).
fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Handles `POST /websub`; every refusal is plain text.
pub async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    Ok(match serve(req, shared).await {
        Ok(r) => r,
        Err(rej) => {
            let mut r = plain(rej.status, format!("{}\n", rej.message));
            if let Some(secs) = rej.retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            r
        }
    })
}

async fn serve(req: Request<Incoming>, shared: &Arc<Shared>) -> Result<Response<Body>, Rejection> {
    let access = auth::access(&shared.opts, req.headers(), req.uri().query())?;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the WebSub parameters as Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let w = shared.webhooks.clone();
    let hub_url = w.hub_url(req.headers(), req.uri(), shared.opts.tls.is_some());
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
    let body = publish::read_body(req, shared.opts.max_body_bytes).await?;
    let form = Form::parse(&body);
    match form.mode.as_deref() {
        Some("subscribe") => subscribe(&w, shared, &access, form, hub_url, true),
        Some("unsubscribe") => subscribe(&w, shared, &access, form, hub_url, false),
        Some("publish") => ping(shared, &access, peer, form.urls).await,
        Some(other) => Err(Rejection::bad_request(
            "invalid_mode",
            format!("hub.mode {other:?} is not subscribe, unsubscribe or publish"),
        )),
        None => Err(Rejection::bad_request(
            "missing_mode",
            "hub.mode is required (subscribe, unsubscribe or publish)",
        )),
    }
}

fn required(v: Option<String>, name: &str) -> Result<String, Rejection> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::bad_request("missing_parameter", format!("{name} is required")))
}

/// Checks a subscribe or unsubscribe request, answers 202, and verifies it in a task.
fn subscribe(
    w: &Arc<Webhooks>,
    shared: &Shared,
    access: &Access,
    form: Form,
    hub_url: String,
    subscribe: bool,
) -> Result<Response<Body>, Rejection> {
    let callback = required(form.callback, "hub.callback")?;
    let topic = required(form.topic, "hub.topic")?;
    let parsed = Topic::parse(&topic, shared.hub.limits().max_topic_len)?;
    check_url(&callback, w.opts.allow_private)
        .map_err(|e| Rejection::bad_request("invalid_callback", format!("hub.callback: {e}")))?;
    access.may_subscribe(&shared.opts, std::slice::from_ref(&parsed))?;
    let lease = match form.lease.as_deref().filter(|_| subscribe) {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            Rejection::bad_request(
                "invalid_lease",
                "hub.lease_seconds must be a whole number of seconds",
            )
        })?),
    };
    let secret = form.secret.filter(|s| !s.is_empty() && subscribe);
    if secret.as_ref().is_some_and(|s| s.len() >= MAX_SECRET) {
        return Err(Rejection::bad_request(
            "invalid_secret",
            format!("hub.secret must be shorter than {MAX_SECRET} bytes"),
        ));
    }
    if subscribe
        && w.len() >= w.opts.max_subscriptions
        && w.find_websub(&topic, &callback).is_none()
    {
        return Err(Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_webhooks",
            format!(
                "this hub holds its maximum of {} webhook subscriptions (webhook_max_subscriptions)",
                w.opts.max_subscriptions
            ),
        )
        .retry_after(60));
    }
    let Ok(permit) = w.verifications.clone().try_acquire_owned() else {
        return Err(Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many verifications of intent are in progress; retry shortly",
        )
        .retry_after(5));
    };
    let (owner, grants) = owner_and_grants(access);
    let intent = if subscribe {
        Intent::Subscribe(w.lease(lease).as_secs())
    } else {
        Intent::Unsubscribe
    };
    let task_w = w.clone();
    w.tracker.spawn(async move {
        let _permit = permit;
        let w = task_w;
        tokio::select! {
            _ = w.shutdown.cancelled() => {}
            _ = async {
                if let Err(e) = verify(&w, &callback, &topic, intent).await {
                    tracing::info!(callback = %super::guard::for_log(&callback), %topic, error = %e, "WebSub verification of intent failed; nothing changed");
                    return;
                }
                let pending = Pending { topic, callback, secret, hub_url, grants, owner };
                match intent {
                    Intent::Subscribe(lease) => activate(&w, pending, lease).await,
                    Intent::Unsubscribe => {
                        // In a cluster it may have been made through another node.
                        w.refresh().await;
                        if let Some(entry) = w.find_websub(&pending.topic, &pending.callback) {
                            w.remove(&entry, Removal::Unsubscribed).await;
                        }
                    }
                }
            } => {}
        }
    });
    Ok(plain(
        StatusCode::ACCEPTED,
        "Accepted: the hub will now verify the request with the callback.\n".into(),
    ))
}

/// A verified subscribe request.
struct Pending {
    topic: String,
    callback: String,
    secret: Option<String>,
    hub_url: String,
    grants: Option<herald_auth::Grants>,
    owner: Option<String>,
}

/// Creates or renews the (topic, callback) subscription after verification.
async fn activate(w: &Arc<Webhooks>, p: Pending, lease_secs: u64) {
    let _one_at_a_time = w.activation.lock().await;
    w.refresh().await;
    let expires_ms = crate::now_ms() + lease_secs * 1000;
    if let Some(entry) = w.find_websub(&p.topic, &p.callback) {
        let result = w
            .update_terms(&entry, |r| {
                r.expires_ms = expires_ms;
                r.secret = p.secret;
                r.hub_url = p.hub_url;
                r.grants = p.grants;
                r.owner = p.owner;
            })
            .await;
        match result {
            Ok(r) => tracing::info!(
                id = r.public_id(),
                lease_secs,
                "WebSub subscription renewed"
            ),
            Err(e) => tracing::error!(error = %e, "cannot store the renewed WebSub subscription"),
        }
        return;
    }
    let now = crate::now_ms();
    let rec = Record {
        id: w.new_id(),
        origin: Origin::WebSub,
        topics: vec![p.topic],
        callback: p.callback,
        secret: p.secret,
        hub_url: p.hub_url,
        format: Format::Raw,
        grants: p.grants,
        owner: p.owner,
        expires_ms,
        // Deliveries start with the first event after activation.
        cursor: w.hub.log().last_seq(),
        failures: 0,
        failing_since_ms: None,
        next_attempt_ms: 0,
        continuity_broken: false,
        created_ms: now,
        lease: None,
    };
    if let Err(e) = w.create(rec).await {
        tracing::warn!(error = %e, "WebSub subscription verified but not created");
    }
}

/// `hub.mode=publish`: fetch each topic URL and publish what it answers.
async fn ping(
    shared: &Arc<Shared>,
    access: &Access,
    peer: Option<std::net::IpAddr>,
    urls: Vec<String>,
) -> Result<Response<Body>, Rejection> {
    let limits = shared.hub.limits();
    if urls.is_empty() {
        return Err(Rejection::bad_request(
            "missing_parameter",
            "hub.mode=publish needs hub.topic or hub.url",
        ));
    }
    if urls.len() > limits.max_batch {
        return Err(Rejection::bad_request(
            "batch_too_large",
            format!("at most {} topics per publish ping", limits.max_batch),
        ));
    }
    let topics = urls
        .iter()
        .map(|u| Topic::parse(u, limits.max_topic_len))
        .collect::<Result<Vec<_>, _>>()?;
    access.may_publish(&topics)?;
    shared.publish_limits.check(peer, access, topics.len())?;
    let mut drafts = Vec::with_capacity(topics.len());
    for topic in topics {
        drafts.push(fetch(shared, topic).await?);
    }
    publish::publish(shared, drafts).await?;
    Ok(plain(
        StatusCode::ACCEPTED,
        "Accepted: the topic's content is published to its subscribers.\n".into(),
    ))
}

/// Fetches a topic URL into a draft carrying the answer's content type.
async fn fetch(shared: &Shared, topic: Topic) -> Result<Draft, Rejection> {
    let w = &shared.webhooks;
    let limits = shared.hub.limits();
    let bad_gateway = |m: String| Rejection::new(StatusCode::BAD_GATEWAY, "topic_fetch_failed", m);
    let url = check_url(topic.as_str(), w.opts.allow_private)
        .map_err(|e| Rejection::bad_request("invalid_topic", format!("hub.topic: {e}")))?;
    let client = w.client().map_err(bad_gateway)?;
    let mut resp = client.get(url).send().await.map_err(|e| {
        bad_gateway(format!(
            "fetching {} failed: {}",
            topic.as_str(),
            super::delivery::describe(e)
        ))
    })?;
    if !resp.status().is_success() {
        return Err(bad_gateway(format!(
            "fetching {} answered {}",
            topic.as_str(),
            resp.status()
        )));
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(Box::from);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad_gateway(format!("reading {} failed: {e}", topic.as_str())))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > limits.max_data_len {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "topic_too_large",
                format!(
                    "the content of {} is larger than max_data_bytes ({})",
                    topic.as_str(),
                    limits.max_data_len
                ),
            ));
        }
    }
    let mut draft = Draft::new(vec![topic], Bytes::from(body), None, None, None, limits)?;
    draft.content_type = content_type;
    Ok(draft)
}
