//! The browser client is served by the hub: `GET /herald.js` answers exactly
//! the bytes of `web/herald.js` (embedded at build time), `/herald.d.ts`
//! those of `web/herald.d.ts`, with a JavaScript content type, cache headers,
//! an ETag that revalidates, and CORS headers any page may import it with.

mod common;

use std::path::PathBuf;

use common::{Hub, header_of as header, raw_request, request, split_response as split};

const APP: &str = "http://app.example:3000";

fn web_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../web")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The served bytes are the file's (without printing both files on failure).
fn same_bytes(served: &[u8], file: &[u8], what: &str) {
    assert!(
        served == file,
        "{what} ({} bytes) is not the file in web/ ({} bytes); first difference at byte {:?}",
        served.len(),
        file.len(),
        served.iter().zip(file).position(|(a, b)| a != b)
    );
}

#[test]
fn herald_js_is_served_byte_for_byte_with_cache_and_cors_headers() {
    let hub = Hub::start(&["--cors-origins", APP]);
    let file = web_file("herald.js");

    let raw = raw_request(hub.addr, "GET", "/herald.js", &[], b"");
    let (status, headers, body) = split(&raw);
    assert_eq!(status, 200);
    same_bytes(&body, &file, "/herald.js");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(file.len().to_string().as_str())
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=300")
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    // Any page may import the module (it carries no credentials).
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    let etag = header(&headers, "etag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Revalidation: the same tag is not modified; another tag gets the file.
    let raw = raw_request(
        hub.addr,
        "GET",
        "/herald.js",
        &[("If-None-Match", &etag)],
        b"",
    );
    let (status, headers, body) = split(&raw);
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    let raw = raw_request(
        hub.addr,
        "GET",
        "/herald.js",
        &[("If-None-Match", "\"something-else\"")],
        b"",
    );
    let (status, _, body) = split(&raw);
    assert_eq!(status, 200);
    same_bytes(&body, &file, "/herald.js after another tag");

    // An unlisted page origin may still import it; a listed one gets its own CORS answer.
    let raw = raw_request(
        hub.addr,
        "GET",
        "/herald.js",
        &[("Origin", "http://elsewhere.example")],
        b"",
    );
    let (_, headers, body) = split(&raw);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    same_bytes(&body, &file, "/herald.js for another origin");
    let raw = raw_request(hub.addr, "GET", "/herald.js", &[("Origin", APP)], b"");
    let (_, headers, _) = split(&raw);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));

    // HEAD: the headers, no body.
    let raw = raw_request(hub.addr, "HEAD", "/herald.js", &[], b"");
    let (status, headers, body) = split(&raw);
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );

    // Other methods are refused; the index names the route.
    let (status, body) = request(hub.addr, "POST", "/herald.js", &[], b"");
    assert_eq!(status, 405, "{body}");
    let (status, body) = request(hub.addr, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(body.contains("/herald.js"), "{body}");
}

#[test]
fn herald_d_ts_is_served_byte_for_byte() {
    let hub = Hub::start(&[]);
    let raw = raw_request(hub.addr, "GET", "/herald.d.ts", &[], b"");
    let (status, headers, body) = split(&raw);
    assert_eq!(status, 200);
    same_bytes(&body, &web_file("herald.d.ts"), "/herald.d.ts");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_ne!(
        header(&headers, "etag"),
        None,
        "the types are cached like the module"
    );
}
