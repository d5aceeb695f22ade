//! The browser client, `web/herald.js`, its TypeScript types and the API's
//! OpenAPI document, compiled into the binary (no file is read at run time)
//! and served at `/herald.js`, `/herald.d.ts` and `/openapi.json`.
//!
//! Both are public, static and the same for everyone: they carry
//! `Access-Control-Allow-Origin: *` (a page on any origin may `import` the
//! module; a listed origin gets its own CORS headers instead) and an `ETag`,
//! computed at compile time, that `If-None-Match` revalidates with `304`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::transports::stream::Body;

/// `web/herald.js`, byte for byte.
pub const HERALD_JS: &str = include_str!("../../../web/herald.js");
/// `web/herald.d.ts`, byte for byte.
pub const HERALD_D_TS: &str = include_str!("../../../web/herald.d.ts");
/// `web/openapi.json`, byte for byte.
pub const OPENAPI_JSON: &str = include_str!("../../../web/openapi.json");

const JS_TAG: u64 = fnv1a(HERALD_JS.as_bytes());
const D_TS_TAG: u64 = fnv1a(HERALD_D_TS.as_bytes());
const OPENAPI_TAG: u64 = fnv1a(OPENAPI_JSON.as_bytes());

/// How long browsers and caches may use a copy before revalidating it.
const CACHE_CONTROL: &str = "public, max-age=300";

/// A served file.
#[derive(Debug, Clone, Copy)]
pub enum File {
    /// `/herald.js`, the ES module.
    Module,
    /// `/herald.d.ts`, its types.
    Types,
    /// `/openapi.json`, the HTTP API's OpenAPI 3.1 document.
    OpenApi,
}

/// Answers `GET /herald.js` or `GET /herald.d.ts`.
pub fn serve(file: File, request: &HeaderMap) -> Response<Body> {
    let (body, tag, content_type) = match file {
        File::Module => (HERALD_JS, JS_TAG, "text/javascript; charset=utf-8"),
        File::Types => (HERALD_D_TS, D_TS_TAG, "text/plain; charset=utf-8"),
        File::OpenApi => (OPENAPI_JSON, OPENAPI_TAG, "application/json"),
    };
    let etag = format!("\"{tag:016x}\"");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    r
}

/// 64-bit FNV-1a, at compile time: the files' ETags.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_is_served_with_an_etag_that_revalidates() {
        let r = serve(File::Module, &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag.clone());
        let r = serve(File::Module, &h);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], etag);
        // The types have their own tag.
        let r = serve(File::Types, &h);
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn the_openapi_document_is_json_naming_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/publish",
            "/sse",
            "/stream",
            "/poll",
            "/ws",
            "/bosh",
            "/openapi.json",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
    }
}
