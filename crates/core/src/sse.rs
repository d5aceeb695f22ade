//! The Server-Sent Events encoder (WHATWG "text/event-stream").
//!
//! One event becomes: an optional `event:` line, an optional `retry:` line, an
//! `id:` line, one `data: ` line per line of the payload (split on CR, LF and
//! CRLF, so no payload can forge a field), and an empty line. Ids and types
//! never hold CR, LF or NUL: [`crate::Draft::new`] refuses them.

use std::io::Write;

use bytes::Bytes;

use crate::event::Event;

/// Encodes `ev` as one SSE block. Callers use [`Event::sse_frame`], which caches it.
pub(crate) fn encode(ev: &Event) -> Bytes {
    let mut out = Vec::with_capacity(ev.data.len() + 48);
    if let Some(kind) = &ev.kind {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'\n');
    }
    if let Some(retry) = ev.retry {
        let _ = writeln!(out, "retry: {retry}");
    }
    let _ = writeln!(out, "id: {}", ev.id);
    push_data(&mut out, &ev.data);
    out.push(b'\n');
    Bytes::from(out)
}

/// Appends one `data: ` line per line of `data`.
fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end.unwrap_or(rest.len())]);
        out.push(b'\n');
        let Some(i) = end else { return };
        let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[i + skip..];
    }
}

/// A comment block (`: text`), used to open a stream and as a heartbeat.
/// `text` must not hold CR or LF.
pub fn comment(text: &str) -> Bytes {
    debug_assert!(!text.contains(['\r', '\n']));
    Bytes::from(format!(": {text}\n\n"))
}

/// A block that only sets the client's reconnection delay.
pub fn retry(ms: u32) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// An event built by the hub itself (for example `herald-reset`), with the
/// given type, id and single-line JSON data.
pub fn control(kind: &str, id: &str, json: &str) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + kind.len() + id.len() + 24);
    let _ = writeln!(out, "event: {kind}\nid: {id}");
    push_data(&mut out, json.as_bytes());
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
