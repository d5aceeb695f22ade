//! The wire formats of long-lived streams. Each event's bytes come from the
//! event's shared encodings; a format only adds per-connection framing.
//!
//! | route | format | per event |
//! |---|---|---|
//! | `GET /sse` | [`Format::Sse`] | the event's SSE frame |
//! | `GET /stream` | [`Format::Ndjson`] | the event's JSON line |
//! | `GET /stream?format=iframe` | [`Format::Iframe`] | `<script>parent.NAME(` + JSON + `);</script>` |

use bytes::Bytes;

use herald_core::{Event, Reset, Subscription};

use crate::options::ServerOptions;
use crate::query::Query;
use crate::rejection::Rejection;
use crate::transports::{callback, iframe};

/// A long-lived stream's wire format.
pub enum Format {
    /// Server-Sent Events.
    Sse,
    /// One JSON object per line.
    Ndjson,
    /// The Comet forever frame (boxed: it is rare, and every stream task
    /// carries a `Format`).
    Iframe(Box<Iframe>),
}

/// A forever frame's per-connection framing.
pub struct Iframe {
    /// `<script>parent.NAME(`, built once per connection.
    open: Bytes,
    /// Bytes after which the stream ends so the page's DOM stays bounded.
    budget: usize,
}

/// Heartbeat of NDJSON streams: a line of its own type that clients ignore.
const NDJSON_HEARTBEAT: &[u8] = b"{\"op\":\"heartbeat\"}\n";

impl Format {
    /// The format `path` and its query ask for.
    pub fn for_request(path: &str, q: &Query, opts: &ServerOptions) -> Result<Format, Rejection> {
        if path == "/sse" {
            return Ok(Format::Sse);
        }
        match q.first("format") {
            None | Some("ndjson") => Ok(Format::Ndjson),
            Some("iframe") => {
                let name = callback::parse(q.first("callback").unwrap_or("herald"))?;
                Ok(Format::Iframe(Box::new(Iframe {
                    open: Bytes::from(format!("<script>parent.{name}(")),
                    budget: opts.iframe_max_bytes,
                })))
            }
            Some(other) => Err(Rejection::bad_request(
                "invalid_format",
                format!("format={other:?} is not known: use ndjson (the default) or iframe"),
            )),
        }
    }

    /// Response headers (besides the status line and framing).
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        const COMMON: [(&str, &str); 2] = [
            ("Cache-Control", "no-store, no-cache, no-transform"),
            ("X-Accel-Buffering", "no"),
        ];
        match self {
            Format::Sse => &[("Content-Type", "text/event-stream"), COMMON[0], COMMON[1]],
            Format::Ndjson => &[
                ("Content-Type", "application/x-ndjson"),
                COMMON[0],
                COMMON[1],
            ],
            Format::Iframe(_) => &[
                ("Content-Type", "text/html; charset=utf-8"),
                COMMON[0],
                COMMON[1],
                ("X-Content-Type-Options", "nosniff"),
            ],
        }
    }

    /// What is sent before the first event.
    pub fn preamble(&self, sub: &Subscription, opts: &ServerOptions) -> Bytes {
        let reset = sub.reset();
        match self {
            Format::Sse => crate::transports::sse::preamble(reset, opts.sse_retry_ms),
            Format::Ndjson => {
                let mut out = NDJSON_HEARTBEAT.to_vec();
                if let Some(r) = reset {
                    out.extend_from_slice(reset_json(&r).as_bytes());
                    out.push(b'\n');
                }
                Bytes::from(out)
            }
            Format::Iframe(f) => iframe::preamble(&f.open, reset.map(|r| reset_json(&r))),
        }
    }

    /// The heartbeat written when a stream was idle for a whole tick.
    pub fn heartbeat(&self) -> &'static [u8] {
        match self {
            Format::Sse => b":\n\n",
            Format::Ndjson => NDJSON_HEARTBEAT,
            Format::Iframe(_) => b"<!-- -->\n",
        }
    }

    /// Appends the slices that carry `ev` (shared bytes, never copied).
    pub fn push_frames<'a>(&'a self, ev: &'a Event, out: &mut Vec<&'a [u8]>) {
        match self {
            Format::Sse => out.push(ev.sse_frame()),
            Format::Ndjson => out.push(ev.json_line()),
            Format::Iframe(f) => {
                let line = ev.json_line();
                out.extend([&f.open[..], &line[..line.len() - 1], iframe::CLOSE]);
            }
        }
    }

    /// The transport label of streams in this format.
    pub fn transport(&self) -> crate::listener::Transport {
        use crate::listener::Transport;
        match self {
            Format::Sse => Transport::Sse,
            Format::Ndjson => Transport::Ndjson,
            Format::Iframe(_) => Transport::Iframe,
        }
    }

    /// Bytes after which the stream ends (the client reopens from its last id).
    pub fn budget(&self) -> Option<usize> {
        match self {
            Format::Iframe(f) => Some(f.budget),
            _ => None,
        }
    }
}

/// `{"last_event_id":…,"op":"reset","reason":…}`: continuity is broken.
pub fn reset_json(r: &Reset) -> String {
    let v = serde_json::json!({"op": "reset", "reason": r.reason.as_str(), "last_event_id": r.position.to_string()});
    String::from_utf8(herald_core::json::script_safe(v.to_string().as_bytes())).unwrap_or_default()
}
