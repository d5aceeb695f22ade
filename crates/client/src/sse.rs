//! The SSE transport of [`crate::EventStream`].

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::{ClientError, Event, back_off, refusal};

type SseStream = BoxStream<'static, Result<eventsource_stream::Event, String>>;

/// An open SSE response, if any.
#[derive(Default)]
pub(crate) struct SseState {
    stream: Option<SseStream>,
}

impl SseState {
    pub(crate) async fn next(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        last_event_id: &mut Option<String>,
        failures: &mut u32,
    ) -> Result<Event, ClientError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.connect(http, url, last_event_id.as_deref(), failures)
                    .await?;
                continue;
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    *failures = 0;
                    return Ok(Event {
                        id: ev.id,
                        kind: if ev.event.is_empty() {
                            "message".into()
                        } else {
                            ev.event
                        },
                        data: ev.data,
                    });
                }
                Some(Err(e)) => {
                    tracing::debug!(error = e, "stream failed; reconnecting");
                    self.stream = None;
                }
                None => self.stream = None,
            }
        }
    }

    async fn connect(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        last_event_id: Option<&str>,
        failures: &mut u32,
    ) -> Result<(), ClientError> {
        loop {
            back_off(*failures).await;
            let mut req = http.get(url.clone()).header("Accept", "text/event-stream");
            if let Some(id) = last_event_id {
                req = req.header("Last-Event-ID", id);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let s = resp
                        .bytes_stream()
                        .eventsource()
                        .map(|r| r.map_err(|e| e.to_string()));
                    self.stream = Some(s.boxed());
                    return Ok(());
                }
                Ok(resp) if resp.status().is_client_error() => return Err(refusal(resp).await),
                Ok(resp) => {
                    tracing::debug!(status = resp.status().as_u16(), "hub unavailable; retrying")
                }
                Err(e) => tracing::debug!(error = %e, "connect failed; retrying"),
            }
            *failures = failures.saturating_add(1);
        }
    }
}
