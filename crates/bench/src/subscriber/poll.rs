//! A long-polling subscriber (Herald's `/poll`): one keep-alive connection
//! asking `since=` the last id it got. Connecting is a short poll
//! (`timeout=0`) that returns the head position, so no event published after
//! the run's connect phase can fall before its cursor.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Receiver, SubResult, SubSpec, open};
use crate::run::Ctx;

/// Seconds each long-poll asks to be held (the hub caps it to its maximum).
const HOLD_SECS: u32 = 20;

/// One poller: its connection and its cursor.
pub(super) struct Poller {
    conn: SendRequest<Empty<Bytes>>,
    since: String,
}

/// The answer of one poll.
#[derive(serde::Deserialize)]
struct Answer {
    events: Vec<Event>,
    last_event_id: String,
}

#[derive(serde::Deserialize)]
struct Event {
    data: String,
}

/// Opens the connection and takes the head position with a short poll.
pub(super) async fn connect(spec: &SubSpec) -> Result<Poller, String> {
    let stream = open(spec).await?;
    let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    let mut poller = Poller {
        conn,
        since: String::new(),
    };
    let head = poller.poll(spec, 0).await?;
    poller.since = head.last_event_id;
    Ok(poller)
}

impl Poller {
    /// One poll held up to `hold` seconds.
    async fn poll(&mut self, spec: &SubSpec, hold: u32) -> Result<Answer, String> {
        let mut target = format!("{}&timeout={hold}", spec.target);
        if !self.since.is_empty() {
            target.push_str("&since=");
            target.extend(utf8_percent_encode(&self.since, NON_ALPHANUMERIC));
        }
        let req = hyper::Request::get(target)
            .header(hyper::header::HOST, &spec.authority)
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        self.conn
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let resp = self
            .conn
            .send_request(req)
            .await
            .map_err(|e| format!("poll: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("poll body: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("poll answer: {e}"))
    }

    /// Polls until the run is cancelled or a poll fails.
    pub(super) async fn receive(mut self, id: u64, spec: &SubSpec, ctx: &Ctx) -> SubResult {
        let mut rx = Receiver::new(spec, ctx);
        rx.signal_if_done(ctx);
        loop {
            let answer = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => break,
                a = self.poll(spec, HOLD_SECS) => a,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    rx.result.stream_error = Some(e);
                    break;
                }
            };
            let now_us = ctx.now_us();
            for ev in &answer.events {
                rx.on_data(ev.data.as_bytes(), now_us);
            }
            self.since = answer.last_event_id;
            rx.flush(id, ctx, now_us);
            rx.signal_if_done(ctx);
        }
        rx.finish(ctx)
    }
}
