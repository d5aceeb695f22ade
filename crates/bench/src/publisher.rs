//! Publishing: keep-alive HTTP/1.1 connections (hyper's client), each
//! sending its events one at a time, in order.
//!
//! Each topic's events are dealt to `--in-flight` lanes (one by default), and
//! a lane is always published by the same connection ([`Plan::publisher_of`]),
//! so the events of one lane never race each other and the server's order
//! within a lane is the sequence order the subscribers check.
//!
//! [`Plan::publisher_of`]: crate::args::Plan::publisher_of

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::args::PubFormat;
use crate::payload;
use crate::run::Ctx;

/// What one publishing connection did.
#[derive(Debug, Default, Clone)]
pub(crate) struct PubResult {
    /// Events answered with a 2xx status.
    pub(crate) accepted: u64,
    /// Events refused or whose request failed.
    pub(crate) failed: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
}

/// Sends every sequence number that arrives on `seqs` until it closes.
pub(crate) async fn run(
    addr: SocketAddr,
    mut seqs: mpsc::UnboundedReceiver<u64>,
    ctx: Arc<Ctx>,
) -> PubResult {
    let mut result = PubResult::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    let mut batch = Vec::with_capacity(ctx.plan.batch);
    while let Some(seq) = seqs.recv().await {
        if ctx.cancel.is_cancelled() {
            break;
        }
        batch.clear();
        batch.push(seq);
        while batch.len() < ctx.plan.batch {
            match seqs.try_recv() {
                Ok(seq) => batch.push(seq),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match publish(addr, &mut conn, &batch, &ctx).await {
            Ok(()) => {
                result.accepted += n;
                ctx.published
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                result.failed += n;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

/// A fresh keep-alive connection.
async fn open(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A GRIP publish (Pushpin's control API) of each (topic, data) as one SSE
/// event on channel `topic`, all in one request; `data` is the bench's
/// payload, one line of ASCII.
fn grip_items(events: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let items: Vec<serde_json::Value> = events
        .iter()
        .map(|(topic, data)| {
            let frame = format!("data: {}\n\n", String::from_utf8_lossy(data));
            serde_json::json!({"channel": topic, "formats": {"http-stream": {"content": frame}}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "items": items }))
        .map_err(|e| format!("grip items: {e}"))
}

/// The request for `seqs`: one event to its topic's URL (its raw data), a
/// GRIP request of one item per event (`--pub-format grip`), or (with
/// `--batch`, raw) a Herald JSON batch of all of them.
fn request(seqs: &[u64], ctx: &Ctx) -> Result<hyper::Request<Full<Bytes>>, String> {
    let plan = &ctx.plan;
    let now = ctx.now_us();
    let (target, content_type, body) = if plan.pub_format == PubFormat::Grip {
        let events: Vec<(String, Vec<u8>)> = seqs
            .iter()
            .map(|&seq| {
                let topic = plan.topic(seq % plan.topics);
                (topic, payload::encode(seq, now, plan.size))
            })
            .collect();
        let target = plan.pub_url.target(&plan.topic(seqs[0] % plan.topics));
        (target, "application/json", grip_items(&events)?)
    } else if plan.batch > 1 {
        let items: Vec<serde_json::Value> = seqs
            .iter()
            .map(|&seq| {
                let data = payload::encode(seq, now, plan.size);
                serde_json::json!({
                    "topic": plan.topic(seq % plan.topics),
                    "data": String::from_utf8_lossy(&data),
                })
            })
            .collect();
        let body = serde_json::to_vec(&items).map_err(|e| format!("batch: {e}"))?;
        (plan.pub_url.target(""), "application/json", body)
    } else {
        let seq = seqs[0];
        let topic = plan.topic(seq % plan.topics);
        let target = plan.pub_url.target(&topic);
        (target, "text/plain", payload::encode(seq, now, plan.size))
    };
    hyper::Request::post(target)
        .header(hyper::header::HOST, plan.pub_url.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))
}

/// Publishes the events `seqs`; reconnects first when the server closed the
/// connection (Pushpin's control API closes after every publish). A request
/// that was sent is never retried, so no event is published twice.
async fn publish(
    addr: SocketAddr,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    seqs: &[u64],
    ctx: &Ctx,
) -> Result<(), String> {
    let usable = match conn.as_mut() {
        Some(sender) => sender.ready().await.is_ok(),
        None => false,
    };
    if !usable {
        *conn = Some(open(addr).await?);
    }
    let Some(sender) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let req = request(seqs, ctx)?;
    let resp = match sender.send_request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            *conn = None;
            return Err(format!("publish: {e}"));
        }
    };
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("publish answer: {e}"))?
        .to_bytes();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "publish answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grip_items_carry_one_sse_frame_per_event_for_its_channel() {
        let body = grip_items(&[
            ("bench-00ff-3".into(), b"7 1234 xx".to_vec()),
            ("bench-00ff-0".into(), b"8 1235 xx".to_vec()),
        ])
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"items": [{
                "channel": "bench-00ff-3",
                "formats": {"http-stream": {"content": "data: 7 1234 xx\n\n"}}
            }, {
                "channel": "bench-00ff-0",
                "formats": {"http-stream": {"content": "data: 8 1235 xx\n\n"}}
            }]})
        );
    }
}
