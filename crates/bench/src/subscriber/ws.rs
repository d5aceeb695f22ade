//! A WebSocket subscriber: the upgrade on the subscriber's own socket (so
//! source addresses can be spread), then every text or binary message is an
//! event. Herald sends each event as its JSON object (`{"op":"event",…,
//! "data":"…"}`) and answers operations with other `op`s; other hubs (nchan)
//! send the event data itself.

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, WebSocketStream};

use super::{Receiver, SubResult, SubSpec, open};
use crate::run::Ctx;

/// The client side of one WebSocket.
pub(super) type Socket = WebSocketStream<TcpStream>;

/// Opens the WebSocket (the 101 answer means the hub subscribed it).
pub(super) async fn connect(spec: &SubSpec) -> Result<Socket, String> {
    let stream = open(spec).await?;
    let uri = format!("ws://{}{}", spec.authority, spec.target);
    let builder = ClientBuilder::new()
        .uri(&uri)
        .map_err(|e| format!("bad WebSocket URI {uri}: {e}"))?;
    let (ws, _response) = builder
        .connect_on(stream)
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

/// Takes messages until the run is cancelled or the socket ends.
pub(super) async fn receive(id: u64, mut ws: Socket, spec: &SubSpec, ctx: &Ctx) -> SubResult {
    let mut rx = Receiver::new(spec, ctx);
    rx.signal_if_done(ctx);
    loop {
        let message = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            m = ws.next() => m,
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                rx.result.stream_error = Some(format!("WebSocket: {e}"));
                break;
            }
            None => {
                rx.result.stream_error = Some("closed by the server".into());
                break;
            }
        };
        if !(message.is_text() || message.is_binary()) {
            continue;
        }
        let now_us = ctx.now_us();
        let payload: &[u8] = message.as_payload();
        match event_data(payload) {
            Data::Event(data) => rx.on_data(data.as_bytes(), now_us),
            Data::Raw => rx.on_data(payload, now_us),
            Data::Other => {}
        }
        rx.flush(id, ctx, now_us);
        rx.signal_if_done(ctx);
    }
    rx.finish(ctx)
}

/// What a message holds.
enum Data<'a> {
    /// A Herald event object's data.
    Event(std::borrow::Cow<'a, str>),
    /// Another Herald answer (`ok`, `pong`, `reset`…).
    Other,
    /// Not JSON with an `op`: the message is the data itself.
    Raw,
}

#[derive(serde::Deserialize)]
struct Op<'a> {
    #[serde(borrow)]
    op: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<std::borrow::Cow<'a, str>>,
}

fn event_data(payload: &[u8]) -> Data<'_> {
    if payload.first() != Some(&b'{') {
        return Data::Raw;
    }
    match serde_json::from_slice::<Op<'_>>(payload) {
        Ok(Op { op, data: Some(d) }) if op == "event" => Data::Event(d),
        Ok(_) => Data::Other,
        Err(_) => Data::Raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_objects_and_raw_messages_give_the_data() {
        let ev = br#"{"op":"event","topic":"t","id":"e-1","data":"7 123 x"}"#;
        assert!(matches!(event_data(ev), Data::Event(d) if d == "7 123 x"));
        assert!(matches!(event_data(br#"{"op":"ok","ref":1}"#), Data::Other));
        assert!(matches!(event_data(b"7 123 x"), Data::Raw));
        // Escapes in the data are decoded.
        let ev = br#"{"op":"event","data":"a\u003cb"}"#;
        assert!(matches!(event_data(ev), Data::Event(d) if d == "a<b"));
    }
}
