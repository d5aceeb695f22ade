//! Reading a request head into a small buffer and deciding where it goes.
//!
//! The buffer grows only as far as the head needs (up to the configured
//! maximum) and is dropped before a stream starts, so a long-lived stream keeps
//! no read buffer at all.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Headers parsed per request at most.
const MAX_HEADERS: usize = 64;

/// What the lean stream path needs from a request; everything else is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `Last-Event-ID` header, if any (UTF-8 only).
    pub last_event_id: Option<String>,
    /// The headers authorization needs (`Authorization`, `Cookie`,
    /// `Origin`, and `Host`: same-origin checks and Mercure's hub URL), a
    /// WebSocket handshake's, and `X-Request-Id`; the others are dropped.
    pub headers: hyper::HeaderMap,
    /// Bytes that followed the head in the same read (a WebSocket client
    /// that did not wait for the 101); filled by [`read`].
    pub early: Bytes,
}

/// The headers the lean path keeps.
const KEPT_HEADERS: [hyper::header::HeaderName; 9] = [
    hyper::header::AUTHORIZATION,
    hyper::header::COOKIE,
    hyper::header::ORIGIN,
    hyper::header::HOST,
    hyper::header::UPGRADE,
    hyper::header::CONNECTION,
    hyper::header::SEC_WEBSOCKET_VERSION,
    hyper::header::SEC_WEBSOCKET_KEY,
    hyper::header::HeaderName::from_static(crate::operations::request_id::HEADER),
];

/// Where a connection goes after its first request head.
#[derive(Debug)]
pub enum Route {
    /// A long-lived stream served on the lean path.
    Stream(StreamRequest),
    /// Anything else: hyper gets the bytes read so far, then the socket.
    Hyper(Bytes),
}

/// Why no request head could be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The peer closed before sending a complete head.
    #[error("connection closed before a request head")]
    Closed,
    /// The head is larger than allowed.
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    /// The head did not arrive in time (slowloris).
    #[error("request head not received within {0:?}")]
    Timeout(Duration),
    /// The head is not valid HTTP/1.x.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one request head from `stream` and routes it.
pub async fn read(
    stream: &mut TcpStream,
    max: usize,
    timeout: Duration,
    is_stream: impl Fn(&str, &str) -> bool,
) -> Result<Route, HeadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024.min(max));
    let read_all = async {
        loop {
            if buf.len() == buf.capacity() {
                if buf.len() >= max {
                    return Err(HeadError::TooLarge(max));
                }
                buf.reserve((buf.len() * 2).min(max) - buf.len());
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(HeadError::Closed);
            }
            if let Some(route) = parse(&buf, &is_stream)? {
                return Ok(route.map(|route| match route {
                    Route::Stream(mut req) => {
                        req.early = Bytes::copy_from_slice(&buf[head_len(&buf)..]);
                        Route::Stream(req)
                    }
                    other => other,
                }));
            }
        }
    };
    match tokio::time::timeout(timeout, read_all).await {
        Ok(Ok(Some(route))) => Ok(route),
        Ok(Ok(None)) => Ok(Route::Hyper(Bytes::from(buf))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HeadError::Timeout(timeout)),
    }
}

/// The length of the complete head at the start of `buf` (after `parse`
/// found one).
fn head_len(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => buf.len(),
    }
}

/// Parses the bytes read so far: `Some(Some(route))` for a lean stream,
/// `Some(None)` for hyper, `None` if the head is incomplete. Public for the
/// `request_head` fuzz target.
pub fn parse(
    buf: &[u8],
    is_stream: &impl Fn(&str, &str) -> bool,
) -> Result<Option<Option<Route>>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => {
            let (method, target) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q.to_string())),
                None => (target, None),
            };
            if !is_stream(method, path) {
                return Ok(Some(None));
            }
            let last_event_id = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| v.trim().to_string());
            let mut kept = hyper::HeaderMap::new();
            for h in req.headers.iter() {
                if let Some(name) = KEPT_HEADERS
                    .iter()
                    .find(|n| h.name.eq_ignore_ascii_case(n.as_str()))
                    && let Ok(value) = hyper::header::HeaderValue::from_bytes(h.value)
                {
                    kept.append(name.clone(), value);
                }
            }
            Ok(Some(Some(Route::Stream(StreamRequest {
                path: path.to_string(),
                query,
                last_event_id,
                headers: kept,
                early: Bytes::new(),
            }))))
        }
        // Too many headers or a bad byte: hyper answers those with a proper 4xx.
        Err(httparse::Error::TooManyHeaders) => Ok(Some(None)),
        Err(e) => Err(HeadError::Malformed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(m: &str, p: &str) -> bool {
        m == "GET" && p == "/sse"
    }

    #[test]
    fn routes_streams_and_the_rest() {
        let r = parse(
            b"GET /sse?topic=a HTTP/1.1\r\nLast-Event-ID: x-1\r\n\r\n",
            &sse,
        )
        .unwrap();
        match r {
            Some(Some(Route::Stream(s))) => {
                assert_eq!(s.query.as_deref(), Some("topic=a"));
                assert_eq!(s.last_event_id.as_deref(), Some("x-1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"POST /publish HTTP/1.1\r\n\r\n", &sse),
            Ok(Some(None))
        ));
        assert!(matches!(
            parse(b"GET /sse HTTP/1.1\r\nHost: x", &sse),
            Ok(None)
        ));
        assert!(parse(b"GET /sse HTTP/1.1\r\nBad Header\r\n\r\n", &sse).is_err());
    }
}
