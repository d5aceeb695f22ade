//! The request-head parser of the lean path (`head::parse`): the first bytes
//! every connection sends reach it.
//!
//! Properties: any bytes give an incomplete head, a route or a `Malformed`
//! error, never a panic; a lean stream is only routed for a path the
//! predicate chose, and it keeps exactly what the head said (path, query,
//! the first `Last-Event-ID` trimmed, and only the `Authorization`, `Cookie`, `Host`
//! and `Origin` headers); bytes after a complete head change nothing.
#![no_main]

use arbitrary::Arbitrary;
use herald_server::head::{HeadError, Route, parse};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    head: Vec<u8>,
    /// Bytes after the head (a body, a pipelined request).
    tail: Vec<u8>,
    /// Build a plausible head from parts instead of raw bytes.
    parts: Option<(String, Vec<(String, String)>)>,
}

fn is_stream(method: &str, path: &str) -> bool {
    method == "GET" && matches!(path, "/sse" | "/stream")
}

fuzz_target!(|input: Input| {
    let head = match &input.parts {
        Some((target, headers)) => {
            let mut h = format!("GET {target} HTTP/1.1\r\n");
            for (k, v) in headers {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            h.push_str("\r\n");
            h.into_bytes()
        }
        None => input.head.clone(),
    };
    let first = parse(&head, &is_stream);
    match &first {
        Ok(None) => return,
        Err(e) => {
            assert!(matches!(e, HeadError::Malformed(_)), "{e:?}");
            return;
        }
        Ok(Some(None)) => {}
        Ok(Some(Some(Route::Stream(req)))) => {
            assert!(is_stream("GET", &req.path), "{req:?}");
            // An independent parse of the same head agrees on what was kept.
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Request::new(&mut headers);
            assert!(matches!(r.parse(&head), Ok(httparse::Status::Complete(_))));
            let target = r.path.unwrap_or("");
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            assert_eq!(req.path, path);
            assert_eq!(req.query.as_deref(), query);
            let want_id = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| v.trim().to_string());
            assert_eq!(req.last_event_id, want_id);
            for (name, _) in req.headers.iter() {
                assert!(
                    [
                        "authorization",
                        "cookie",
                        "origin",
                        "host",
                        "upgrade",
                        "connection",
                        "sec-websocket-version",
                        "sec-websocket-key",
                        "x-request-id",
                    ]
                    .contains(&name.as_str()),
                    "kept {name}"
                );
            }
        }
        Ok(Some(Some(other))) => panic!("unexpected route {other:?}"),
    }
    // A complete head routes the same whatever follows it.
    let mut longer = head.clone();
    longer.extend_from_slice(&input.tail);
    let second = parse(&longer, &is_stream);
    match (&first, &second) {
        (Ok(Some(None)), Ok(Some(None))) => {}
        (Ok(Some(Some(Route::Stream(a)))), Ok(Some(Some(Route::Stream(b))))) => assert_eq!(a, b),
        (a, b) => panic!("{a:?} then {b:?} with a tail"),
    }
});
