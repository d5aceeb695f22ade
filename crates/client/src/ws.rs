//! The WebSocket transport of [`crate::EventStream`]: `GET /ws` with the
//! topics and the last id in the query, reconnecting and resuming from the last
//! id received after any drop (including the hub's 1001 at shutdown).

use std::collections::VecDeque;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, WebSocketStream};

use crate::{ClientError, Event, back_off, refusal};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The open socket, if any, and events received but not yet returned.
#[derive(Default)]
pub(crate) struct WsState {
    socket: Option<Box<Socket>>,
    queue: VecDeque<Event>,
}

/// A message from the hub.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Incoming {
    Event {
        id: String,
        #[serde(rename = "type")]
        kind: Option<String>,
        data: String,
    },
    Reset {
        last_event_id: String,
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    },
    Error {
        error: String,
        message: String,
    },
    #[serde(other)]
    Other,
}

impl WsState {
    pub(crate) async fn next(
        &mut self,
        http: &reqwest::Client,
        token: Option<&str>,
        url: &reqwest::Url,
        last_event_id: &mut Option<String>,
        failures: &mut u32,
    ) -> Result<Event, ClientError> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            let Some(socket) = self.socket.as_mut() else {
                back_off(*failures).await;
                self.socket = connect(http, token, url, last_event_id.as_deref(), failures).await?;
                continue;
            };
            match socket.next().await {
                Some(Ok(msg)) => {
                    *failures = 0;
                    if let Some(text) = msg.as_text() {
                        self.take(text, last_event_id);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket failed; reconnecting");
                    self.socket = None;
                    *failures = failures.saturating_add(1);
                }
                None => {
                    tracing::debug!("websocket closed; reconnecting");
                    self.socket = None;
                    *failures = failures.saturating_add(1);
                }
            }
        }
    }

    fn take(&mut self, text: &str, last_event_id: &mut Option<String>) {
        match serde_json::from_str::<Incoming>(text) {
            Ok(Incoming::Event { id, kind, data }) => self.queue.push_back(Event {
                id,
                kind: kind.unwrap_or_else(|| "message".into()),
                data,
            }),
            Ok(Incoming::Reset {
                last_event_id: position,
                mut rest,
            }) => {
                rest.insert("op".into(), "reset".into());
                rest.insert("last_event_id".into(), position.clone().into());
                *last_event_id = Some(position.clone());
                self.queue.push_back(Event {
                    id: position,
                    kind: "herald-reset".into(),
                    data: serde_json::Value::Object(rest).to_string(),
                });
            }
            Ok(Incoming::Error { error, message }) => {
                tracing::warn!(%error, %message, "the hub refused an operation");
            }
            Ok(Incoming::Other) => {}
            Err(e) => tracing::debug!(error = %e, "unexpected websocket message"),
        }
    }
}

/// Opens `/ws` resuming after `last_event_id`. `Ok(None)`: try again later;
/// a 4xx refusal is an error, with the hub's reason fetched by a plain GET.
async fn connect(
    http: &reqwest::Client,
    token: Option<&str>,
    url: &reqwest::Url,
    last_event_id: Option<&str>,
    failures: &mut u32,
) -> Result<Option<Box<Socket>>, ClientError> {
    let mut target = url.clone();
    if let Some(id) = last_event_id {
        target.query_pairs_mut().append_pair("last_event_id", id);
    }
    let mut ws_url = target.clone();
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    if ws_url.set_scheme(scheme).is_err() {
        return Err(ClientError::BadUrl(
            url.to_string(),
            "not a WebSocket URL".into(),
        ));
    }
    let mut builder = ClientBuilder::new()
        .uri(ws_url.as_str())
        .map_err(|e| ClientError::BadUrl(ws_url.to_string(), e.to_string()))?;
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().map_err(|_| {
            ClientError::BadUrl(
                url.to_string(),
                "the token is not a valid header value".into(),
            )
        })?;
        builder = builder
            .add_header(http::header::AUTHORIZATION, value)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
    }
    match builder.connect().await {
        Ok((socket, _)) => Ok(Some(Box::new(socket))),
        Err(tokio_websockets::Error::Upgrade(
            tokio_websockets::upgrade::Error::DidNotSwitchProtocols(status),
        )) if (400..500).contains(&status) => {
            // The hub checks the subscription before the handshake, so the
            // same URL as a plain GET answers with the reason.
            let resp = http.get(target).send().await?;
            Err(refusal(resp).await)
        }
        Err(e) => {
            tracing::debug!(error = %e, "websocket connect failed; retrying");
            *failures = failures.saturating_add(1);
            Ok(None)
        }
    }
}
