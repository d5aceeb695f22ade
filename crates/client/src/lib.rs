//! Rust client for Herald.
//!
//! # Layout
//!
//! - [`Client`]: a hub's base URL and a pooled HTTP client.
//! - [`Client::publish`]: one event, answered with its id once durable.
//! - [`Client::subscribe`] → [`EventStream`]: events over the chosen
//!   [`Transport`] with automatic reconnection (exponential back-off with full
//!   jitter) and resumption from the last id received, so a dropped connection
//!   or a hub restart loses nothing. A broken continuity arrives as an event of
//!   type `herald-reset`. `sse.rs`, `poll.rs` and `ws.rs` hold the transports.

mod poll;
mod sse;
mod ws;

use std::time::Duration;

use rand::Rng;

/// What went wrong talking to the hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub URL is not a valid http(s) URL.
    #[error("invalid hub URL {0:?}: {1}")]
    BadUrl(String, String),
    /// The request could not be sent or the response not read.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The hub refused the request.
    #[error("hub answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The hub's `error` code.
        code: String,
        /// The hub's message.
        message: String,
    },
    /// The hub answered something unexpected.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
}

/// Options of a publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Event type.
    pub kind: Option<String>,
    /// Publisher-supplied id.
    pub id: Option<String>,
    /// Reconnection hint in milliseconds.
    pub retry: Option<u32>,
}

/// One event received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's id (the resume position).
    pub id: String,
    /// The event type (`message` when none was set).
    pub kind: String,
    /// The data.
    pub data: String,
}

/// A hub.
#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer` on every request.
    token: Option<String>,
}

impl Client {
    /// A client for the hub at `base` (for example `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Client, ClientError> {
        Client::with_token(base, None)
    }

    /// A client that sends `token` as `Authorization: Bearer` on every request.
    pub fn with_token(base: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(base)
            .map_err(|e| ClientError::BadUrl(base.into(), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl(
                base.into(),
                "use http:// or https://".into(),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| {
                    ClientError::BadUrl(base.into(), "the token is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()?;
        Ok(Client {
            base: url,
            http,
            token: token.map(str::to_string),
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let prefix = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{prefix}{path}"));
        u
    }

    /// Publishes `data` to `topic`; returns the event's id once the hub has stored it.
    pub async fn publish(
        &self,
        topic: &str,
        data: &str,
        opts: &PublishOptions,
    ) -> Result<String, ClientError> {
        let mut url = self.url("/publish");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("topic", topic);
            if let Some(k) = &opts.kind {
                q.append_pair("type", k);
            }
            if let Some(i) = &opts.id {
                q.append_pair("id", i);
            }
            if let Some(r) = opts.retry {
                q.append_pair("retry", &r.to_string());
            }
        }
        let resp = self.http.post(url).body(data.to_string()).send().await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            return Err(refused(status.as_u16(), &body));
        }
        body.get("id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Protocol(format!("no id in {body}")))
    }

    /// Subscribes to `topics` over `transport`, resuming after `last_event_id` if given.
    pub fn subscribe(
        &self,
        topics: &[String],
        last_event_id: Option<String>,
        transport: Transport,
    ) -> EventStream {
        let path = match transport {
            Transport::Sse => "/sse",
            Transport::Poll => "/poll",
            Transport::Ws => "/ws",
        };
        let mut url = self.url(path);
        {
            let mut q = url.query_pairs_mut();
            for t in topics {
                q.append_pair("topic", t);
            }
        }
        let inner = match transport {
            Transport::Sse => Inner::Sse(sse::SseState::default()),
            Transport::Poll => Inner::Poll(poll::PollState::default()),
            Transport::Ws => Inner::Ws(ws::WsState::default()),
        };
        EventStream {
            client: self.clone(),
            url,
            last_event_id,
            failures: 0,
            inner,
        }
    }
}

fn refused(status: u16, body: &serde_json::Value) -> ClientError {
    let field = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    ClientError::Refused {
        status,
        code: field("error"),
        message: field("message"),
    }
}

/// How events reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Server-Sent Events (`GET /sse`).
    #[default]
    Sse,
    /// Long-polling (`GET /poll`).
    Poll,
    /// WebSocket (`GET /ws`).
    Ws,
}

/// Events of one subscription, across reconnections.
pub struct EventStream {
    client: Client,
    url: reqwest::Url,
    /// The resume position: the id of the last event received.
    last_event_id: Option<String>,
    /// Consecutive failed requests (drives the back-off).
    failures: u32,
    inner: Inner,
}

enum Inner {
    Sse(sse::SseState),
    Poll(poll::PollState),
    Ws(ws::WsState),
}

impl EventStream {
    /// The id of the last event received (where a new subscription would resume).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The next event. Reconnects and resumes by itself after a drop; returns
    /// an error only when the hub refuses the subscription (4xx).
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        let ev = match &mut self.inner {
            Inner::Sse(s) => {
                s.next(
                    &self.client.http,
                    &self.url,
                    &mut self.last_event_id,
                    &mut self.failures,
                )
                .await?
            }
            Inner::Poll(p) => {
                p.next(
                    &self.client.http,
                    &self.url,
                    &mut self.last_event_id,
                    &mut self.failures,
                )
                .await?
            }
            Inner::Ws(w) => {
                w.next(
                    &self.client.http,
                    self.client.token.as_deref(),
                    &self.url,
                    &mut self.last_event_id,
                    &mut self.failures,
                )
                .await?
            }
        };
        if !ev.id.is_empty() {
            self.last_event_id = Some(ev.id.clone());
        }
        Ok(ev)
    }
}

/// Waits before retry number `failures` (0: no wait): exponential back-off
/// with full jitter, capped at 30 s.
async fn back_off(failures: u32) {
    if failures > 0 {
        let cap = 250u64.saturating_mul(1 << failures.min(7)).min(30_000);
        let wait = rand::rng().random_range(0..=cap);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// The error for a refused request, from the hub's JSON error body.
async fn refusal(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or_default();
    refused(status, &body)
}
