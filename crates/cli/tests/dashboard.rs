//! The dashboard is served by the hub: a browser asking `/` for HTML gets
//! the page (curl still gets the text index), the page names only files the
//! hub serves (byte for byte, with their types), and every one of them
//! carries the dashboard's security headers and revalidates with its ETag.
//! (tests/js/dashboard.test.mjs runs the page in Chromium.)

mod common;

use std::path::PathBuf;

use common::{Hub, header_of, raw_request, request, split_response};

const CHROME_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// (status, lower-cased headers, body) of one request.
fn get(hub: &Hub, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let (status, headers, body) =
        split_response(&raw_request(hub.addr, method, target, headers, b""));
    Answer {
        status,
        headers,
        body,
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// The dashboard's headers, on the page and each of its files.
    fn assert_dashboard_headers(&self, what: &str) {
        let csp = self.header("content-security-policy").unwrap_or("");
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{what}: CSP {csp:?} lacks {part}");
        }
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("cache-control"), Some("no-cache"));
        assert_eq!(self.header("access-control-allow-origin"), None, "{what}");
    }
}

fn web_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/dashboard")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The local paths the page's `src="…"` and `href="…"` attributes name.
fn referenced(page: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for rest in page.split(attr).skip(1) {
            let value = rest.split('"').next().unwrap_or_default();
            paths.push(value.to_string());
        }
    }
    paths
}

#[test]
fn browsers_get_the_dashboard_and_scripts_the_index() {
    let hub = Hub::start(&[]);
    let page = get(&hub, "GET", "/", &[("Accept", CHROME_ACCEPT)]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("vary"), Some("Accept"));
    page.assert_dashboard_headers("/");
    assert!(
        page.body == web_file("index.html"),
        "the page byte for byte"
    );

    let (status, index) = request(hub.addr, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(index.starts_with("Herald push hub."), "{index}");
    let (status, index) = request(hub.addr, "GET", "/", &[("Accept", "*/*")], b"");
    assert_eq!(status, 200);
    assert!(index.starts_with("Herald push hub."), "{index}");

    // HEAD: the headers, no body; other methods are refused with Allow.
    let head = get(&hub, "HEAD", "/", &[("Accept", "text/html")]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    head.assert_dashboard_headers("HEAD /");
    let post = get(&hub, "POST", "/", &[]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));

    // Revalidation.
    let etag = page.header("etag").expect("an ETag").to_string();
    let again = get(
        &hub,
        "GET",
        "/",
        &[("Accept", "text/html"), ("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

#[test]
fn every_file_the_page_names_is_served_with_its_type_and_headers() {
    let hub = Hub::start(&[]);
    let page = String::from_utf8(web_file("index.html")).unwrap();
    let paths = referenced(&page);
    assert!(paths.len() >= 3, "{paths:?}");
    for path in &paths {
        assert!(
            path.starts_with('/'),
            "the page names only its own files: {path}"
        );
        let name = path.rsplit('/').next().unwrap();
        let answer = get(&hub, "GET", path, &[]);
        assert_eq!(answer.status, 200, "{path}");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{path}: unexpected kind {other:?}"),
        };
        assert_eq!(answer.header("content-type"), Some(expected), "{path}");
        answer.assert_dashboard_headers(path);
        assert!(answer.body == web_file(name), "{path} byte for byte");
    }
    // app.js imports its chart module and the client from the hub.
    let app = String::from_utf8(web_file("app.js")).unwrap();
    assert!(app.contains("from '/herald.js'") && app.contains("from '/dashboard/chart.js'"));
    assert_eq!(get(&hub, "GET", "/dashboard/chart.js", &[]).status, 200);
    for missing in [
        "/dashboard/",
        "/dashboard/nope.js",
        "/dashboard/%2e%2e/herald.js",
    ] {
        let (status, body) = request(hub.addr, "GET", missing, &[], b"");
        assert_eq!(status, 404, "{missing}: {body}");
        assert!(body.contains("not_found"), "{body}");
    }
}
