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
use tokio_websockets::{CloseCode, Limits, Message as Frame, WebSocketStream};

use crate::auth::Access;
use crate::listener::{ConnInfo, Shared};
use crate::rejection::Rejection;
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

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    access: Result<Access, Rejection>,
    peer: Option<IpAddr>,
) {
    let (tx, mut rx) = mpsc::channel::<Vec<String>>(QUEUE);
    loop {
        let outgoing = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                close(&mut ws, CloseCode::GOING_AWAY, "herald is shutting down").await;
                return;
            }
            out = rx.recv() => out.unwrap_or_default(),
            frame = ws.next() => match frame {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "bayeux websocket read failed");
                    let _ = tokio::time::timeout(CLOSE_GRACE, ws.flush()).await;
                    return;
                }
                Some(Ok(f)) if f.is_binary() => {
                    close(&mut ws, CloseCode::UNSUPPORTED_DATA, "Bayeux messages travel in text frames").await;
                    return;
                }
                Some(Ok(f)) => match f.as_text() {
                    // Boxed, so the work of a frame does not size the idle task.
                    Some(text) => match Box::pin(received(text, &shared, &access, peer, &tx)).await {
                        Ok(out) => out,
                        Err(rej) => {
                            let reason = truncate(&rej.message, 120);
                            close(&mut ws, CloseCode::INVALID_FRAME_PAYLOAD_DATA, reason).await;
                            return;
                        }
                    },
                    None => continue,
                },
            },
        };
        if outgoing.is_empty() {
            continue;
        }
        let text = message::array(&outgoing);
        let write = ws.send(Frame::text(text));
        match tokio::time::timeout(shared.opts.write_timeout, write).await {
            Ok(Ok(())) => {}
            _ => return,
        }
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
