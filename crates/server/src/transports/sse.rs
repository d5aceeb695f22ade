//! Server-Sent Events (`GET /sse?topic=…`): what differs from the other
//! stream formats. The stream opens with a comment (so the client fires `open`
//! and proxies commit), a `retry:` block with per-connection jitter (so a
//! restart does not bring every client back in the same second), and, when
//! the resume cursor could not be honoured, a `herald-reset` event (see
//! docs/PROTOCOL.md). Events are their shared SSE frames.

use bytes::Bytes;
use rand::Rng;

use herald_core::{Reset, sse};

/// The bytes sent before the first event: greeting, retry, reset notice.
pub fn preamble(reset: Option<Reset>, retry_ms: u32) -> Bytes {
    let jitter = (retry_ms / 5).max(1);
    let retry =
        rand::rng().random_range(retry_ms.saturating_sub(jitter)..=retry_ms.saturating_add(jitter));
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(&sse::comment("herald"));
    out.extend_from_slice(&sse::retry(retry));
    if let Some(reset) = reset {
        let position = reset.position.to_string();
        let json = serde_json::json!({"reason": reset.reason.as_str(), "last_event_id": position});
        out.extend_from_slice(&sse::control("herald-reset", &position, &json.to_string()));
    }
    Bytes::from(out)
}
