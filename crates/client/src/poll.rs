//! The long-polling transport of [`crate::EventStream`]: `GET /poll` from the
//! last id, again and again. The hub keeps nothing between polls; the cursor
//! lives here.

use std::collections::VecDeque;

use serde::Deserialize;

use crate::{ClientError, Event, back_off, refusal};

/// Seconds the hub may hold each poll.
const HOLD_SECS: u32 = 25;

/// Events received but not yet returned.
#[derive(Default)]
pub(crate) struct PollState {
    queue: VecDeque<Event>,
}

#[derive(Deserialize)]
struct Answer {
    events: Vec<WireEvent>,
    last_event_id: String,
    reset: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: String,
}

impl PollState {
    pub(crate) async fn next(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        last_event_id: &mut Option<String>,
        failures: &mut u32,
    ) -> Result<Event, ClientError> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            back_off(*failures).await;
            let mut u = url.clone();
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("timeout", &HOLD_SECS.to_string());
                if let Some(id) = last_event_id.as_deref() {
                    q.append_pair("since", id);
                }
            }
            let answer = match http.get(u).send().await {
                Ok(resp) if resp.status().is_success() => resp.json::<Answer>().await,
                Ok(resp) if resp.status().is_client_error() => return Err(refusal(resp).await),
                Ok(resp) => {
                    tracing::debug!(status = resp.status().as_u16(), "hub unavailable; retrying");
                    *failures = failures.saturating_add(1);
                    continue;
                }
                Err(e) => Err(e),
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "poll failed; retrying");
                    *failures = failures.saturating_add(1);
                    continue;
                }
            };
            *failures = 0;
            if let Some(reset) = answer.reset {
                self.queue.push_back(Event {
                    id: answer.last_event_id.clone(),
                    kind: "herald-reset".into(),
                    data: reset.to_string(),
                });
            }
            self.queue.extend(answer.events.into_iter().map(|e| Event {
                id: e.id,
                kind: e.kind.unwrap_or_else(|| "message".into()),
                data: e.data,
            }));
            // Where the next poll starts, even when nothing came back.
            *last_event_id = Some(answer.last_event_id);
        }
    }
}
