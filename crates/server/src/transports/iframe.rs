//! The Comet forever frame (`GET /stream?format=iframe&callback=NAME`): an HTML
//! document that never ends, one `<script>parent.NAME({...});</script>` per
//! event. The JSON inside is script-safe (see `herald_core::json`), so no data
//! can close the script element. The stream ends after `iframe_max_bytes` so
//! the page's DOM stays bounded; the page reopens the frame with its last id.

use bytes::Bytes;

/// Closes each event's script element.
pub const CLOSE: &[u8] = b");</script>\n";

/// Bytes of padding before the first script: browsers render incrementally
/// only after about 1 KiB, old XHR-based clients after 2 KiB.
const PADDING: usize = 2048;

/// The document head, the padding, and a reset call when continuity is broken.
pub fn preamble(open: &[u8], reset: Option<String>) -> Bytes {
    let mut out = Vec::with_capacity(PADDING + 256);
    out.extend_from_slice(b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>herald</title></head><body>\n<!--");
    out.resize(out.len() + PADDING, b' ');
    out.extend_from_slice(b"-->\n");
    if let Some(json) = reset {
        out.extend_from_slice(open);
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(CLOSE);
    }
    Bytes::from(out)
}
