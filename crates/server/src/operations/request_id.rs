//! Request ids: every request hyper serves gets one, taken from the client's
//! (or a proxy's) `X-Request-Id` when it is sane, else generated. It is echoed
//! in the response and carried by every log line written while the request is
//! served (a tracing span), including the lifecycle lines of the WebSocket
//! session or stream it opens.

use hyper::HeaderMap;
use hyper::header::HeaderValue;

/// The header carrying the id, both ways.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from a client.
const MAX_LEN: usize = 128;

/// The request's id: the incoming `X-Request-Id` if it is 1 to 128 visible
/// ASCII characters from `A-Z a-z 0-9 - _ . : /` (so it cannot forge log
/// lines or headers), else 16 random hex digits.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(HEADER)
        && sane(v.as_bytes())
    {
        return v.clone();
    }
    let id = format!("{:016x}", rand::random::<u64>());
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn sane(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("req-42:a/b.c_d"));
        assert_eq!(of(&h), "req-42:a/b.c_d");
        for bad in ["", "has space", "quote\"", "é"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(HEADER, v);
            }
            let id = of(&h);
            assert_eq!(id.len(), 16, "{bad:?} → {id:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(&"a".repeat(129)).unwrap());
        assert_eq!(of(&h).len(), 16);
        assert_ne!(of(&HeaderMap::new()), of(&HeaderMap::new()));
    }
}
