//! The Bayeux `websocket` transport: the same URL as long-polling, upgraded;
//! each text frame holds a JSON array of messages, in both directions.
//!
//! The socket task reads frames and hands each batch to its session with the
//! socket's outgoing queue as the [`Sink`]; the session pushes replies and
//! deliveries into that queue, and the task writes each item as one frame.
//! The handshake may travel over the socket (CometD does that) or over HTTP
//! before it (Faye does). A closed socket does not end the session: the
//! client may connect again, on a new socket or over HTTP, within
//! `bayeux_max_interval`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_websockets::{CloseCode, Limits, Message as Frame, Payload, WebSocketStream};

use crate::auth::Access;
use crate::listener::{ConnInfo, Shared};
use crate::rejection::Rejection;
use crate::ticker;
use crate::transports::stream::Body;
use crate::transports::ws::{Refusal, accept_key, builder, switching, version_required};

use super::http::check_batch;
use super::message;
use super::session::Sink;
use super::{Route, route, submit};

/// Frames waiting to be written to one socket. Deliveries wait in the hub's
/// rings while it is full; a reply that finds it full ends the session.
const QUEUE: usize = 32;

/// How long a closing socket waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Answers the upgrade and starts the socket task.
pub async fn upgrade(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let access = super::http::request_access(&shared, &req);
    let accept = match accept_key(req.headers()) {
        Ok(a) => a,
        Err(Refusal::Version) => return Ok(version_required()),
        Err(Refusal::Bad(rej)) => return Err(rej),
    };
    let limits = Limits::default().max_payload_len(Some(shared.opts.ws_max_message));
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws = builder(limits).serve(TokioIo::new(upgraded));
                let peer = conn.as_ref().map(|c| c.peer.ip());
                serve(ws, shared, access, peer).await;
                drop(conn);
            }
            Err(e) => tracing::debug!(error = %e, "bayeux websocket upgrade failed"),
        }
    });
    Ok(switching(&accept))
}

/// What the socket task does next.
enum Step {
    /// Write these messages as one frame (nothing when empty).
    Send(Vec<String>),
    /// Send a ping.
    Ping,
    /// Close with this code and reason.
    Close(CloseCode, String),
    /// The peer is gone: stop.
    Gone,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    access: Result<Access, Rejection>,
    peer: Option<IpAddr>,
) {
    let (tx, mut rx) = mpsc::channel::<Vec<String>>(QUEUE);
    let mut ticks = shared.ticks.clone();
    ticks.mark_unchanged();
    // Liveness as on `/ws`: a ping per tick; a peer silent since the last one is gone.
    let (mut heard, mut pinged) = (true, false);
    loop {
        let step = tokio::select! {
            biased;
            r = ticks.changed() => {
                if r.is_err() || *ticks.borrow_and_update() == ticker::SHUTDOWN {
                    shutting_down()
                } else if pinged && !heard {
                    tracing::debug!("bayeux websocket peer did not answer a ping; dropping it");
                    Step::Gone
                } else {
                    (heard, pinged) = (false, true);
                    Step::Ping
                }
            }
            _ = shared.shutdown.cancelled() => shutting_down(),
            out = rx.recv() => Step::Send(out.unwrap_or_default()),
            frame = ws.next() => {
                if let Some(Ok(_)) = &frame {
                    (heard, pinged) = (true, false);
                }
                // Boxed, so the work of a frame does not size the idle task.
                Box::pin(on_frame(frame, &shared, &access, peer, &tx)).await
            }
        };
        let frame = match step {
            Step::Send(out) if out.is_empty() => continue,
            Step::Send(out) => Frame::text(message::array(&out)),
            Step::Ping => Frame::ping(Payload::from(&b"herald"[..])),
            Step::Close(code, reason) => return close(&mut ws, code, &reason).await,
            Step::Gone => {
                let _ = tokio::time::timeout(CLOSE_GRACE, ws.flush()).await;
                return;
            }
        };
        match tokio::time::timeout(shared.opts.write_timeout, ws.send(frame)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

fn shutting_down() -> Step {
    Step::Close(CloseCode::GOING_AWAY, "herald is shutting down".into())
}

/// What to do about one frame from the peer.
async fn on_frame(
    frame: Option<Result<Frame, tokio_websockets::Error>>,
    shared: &Arc<Shared>,
    access: &Result<Access, Rejection>,
    peer: Option<IpAddr>,
    tx: &mpsc::Sender<Vec<String>>,
) -> Step {
    let f = match frame {
        None => return Step::Gone,
        Some(Err(e)) => {
            // Protocol errors already queued their close frame; it is flushed.
            tracing::debug!(error = %e, "bayeux websocket read failed");
            return Step::Gone;
        }
        Some(Ok(f)) => f,
    };
    if f.is_binary() {
        let why = "Bayeux messages travel in text frames";
        return Step::Close(CloseCode::UNSUPPORTED_DATA, why.into());
    }
    // Pings (answered by the library), pongs, the peer's close (echoed).
    let Some(text) = f.as_text() else {
        return Step::Send(Vec::new());
    };
    match received(text, shared, access, peer, tx).await {
        Ok(out) => Step::Send(out),
        Err(rej) => Step::Close(
            CloseCode::INVALID_FRAME_PAYLOAD_DATA,
            truncate(&rej.message, 120).to_string(),
        ),
    }
}

/// Handles one frame; returns replies to write now (a handshake's, or those
/// for an unknown client); a session answers through `tx`.
async fn received(
    text: &str,
    shared: &Arc<Shared>,
    access: &Result<Access, Rejection>,
    peer: Option<IpAddr>,
    tx: &mpsc::Sender<Vec<String>>,
) -> Result<Vec<String>, Rejection> {
    let messages = message::parse(text)?;
    check_batch(shared, messages.len())?;
    match route(shared, messages, || access.clone(), peer) {
        Route::Answered(replies) => Ok(replies),
        Route::Sessionless(access, messages) => {
            Ok(super::sessionless(shared, access, peer, &messages).await)
        }
        Route::Session(session, messages) => Ok(submit(&session, messages, Sink::Ws(tx.clone()))
            .await
            .unwrap_or_default()),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: CloseCode,
    reason: &str,
) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        ws.send(Frame::close(Some(code), reason)).await?;
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<(), tokio_websockets::Error>(())
    })
    .await;
}
