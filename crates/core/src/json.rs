//! The JSON encoding of an event, shared by every JSON-speaking transport
//! (NDJSON streams, long-polling, JSONP, the forever iframe, WebSocket).
//!
//! One event becomes `{"op":"event","topic":…,"id":…,"type":…,"data":…,"retry":…}`
//! (`type` and `retry` only when set; `topic` is the canonical, first topic).
//! The text is made safe to embed in a `<script>` element or a JavaScript
//! literal, so the same bytes serve every transport: `<` is written `\u003c`
//! (no `</script>` or `<!--` can appear), U+2028 and U+2029 as `\u2028` and
//! `\u2029` (line terminators in older JavaScript). All are valid JSON escapes.

use std::io::Write;

use crate::event::Event;

/// Encodes `ev` as one script-safe JSON object followed by `\n`.
pub(crate) fn encode_line(ev: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(ev.data.len() + 96);
    out.extend_from_slice(b"{\"op\":\"event\",\"topic\":");
    string(&mut out, ev.topics.first().map_or("", |t| t.as_str()));
    out.extend_from_slice(b",\"id\":");
    string(&mut out, &ev.id.to_string());
    if let Some(kind) = &ev.kind {
        out.extend_from_slice(b",\"type\":");
        string(&mut out, kind);
    }
    out.extend_from_slice(b",\"data\":");
    string(&mut out, std::str::from_utf8(&ev.data).unwrap_or_default());
    if let Some(retry) = ev.retry {
        let _ = write!(out, ",\"retry\":{retry}");
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Appends `s` as a script-safe JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let start = out.len();
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
    if out[start..].iter().any(|&b| b == b'<' || b == 0xE2) {
        let escaped = script_safe(&out[start..]);
        out.truncate(start);
        out.extend_from_slice(&escaped);
    }
}

/// Rewrites JSON text so it can sit inside a `<script>` element or a
/// JavaScript literal: `<` → `\u003c`, U+2028 → `\u2028`, U+2029 → `\u2029`.
/// Outside strings JSON never holds these, so a plain byte rewrite is exact.
pub fn script_safe(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Draft, Limits, Topic};
    use bytes::Bytes;

    fn event(data: &str, kind: Option<&str>, retry: Option<u32>) -> Event {
        let t = Topic::parse("/a", 10).unwrap();
        let d = Draft::new(
            vec![t],
            Bytes::from(data.to_string()),
            kind,
            None,
            retry,
            &Limits::default(),
        )
        .unwrap();
        Event::from_draft(d, 7, 0xab, 0)
    }

    #[test]
    fn encodes_fields_and_escapes_for_scripts() {
        let ev = event("</script><!--\u{2028}\u{2029}\"\n", Some("k"), Some(5));
        let line = String::from_utf8(encode_line(&ev)).unwrap();
        assert_eq!(
            line,
            "{\"op\":\"event\",\"topic\":\"/a\",\"id\":\"ab-7\",\"type\":\"k\",\"data\":\"\\u003c/script>\\u003c!--\\u2028\\u2029\\\"\\n\",\"retry\":5}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["data"], "</script><!--\u{2028}\u{2029}\"\n");
        let plain = String::from_utf8(encode_line(&event("x", None, None))).unwrap();
        assert_eq!(
            plain,
            "{\"op\":\"event\",\"topic\":\"/a\",\"id\":\"ab-7\",\"data\":\"x\"}\n"
        );
    }

    #[test]
    fn script_safe_leaves_other_multibyte_text_alone() {
        assert_eq!(
            script_safe("é€\u{2027}".as_bytes()),
            "é€\u{2027}".as_bytes()
        );
    }
}
