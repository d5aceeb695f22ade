//! Files compiled into the binary (no file is read at run time): the browser
//! client `web/herald.js` and its types, the API's OpenAPI document, and the
//! dashboard (`web/dashboard/`), served at `/` to browsers.
//!
//! `/herald.js`, `/herald.d.ts` and `/openapi.json` are public, static and the
//! same for everyone: they carry `Access-Control-Allow-Origin: *` (a page on
//! any origin may `import` the module; a listed origin gets its own CORS
//! headers instead) and may be cached for five minutes.
//!
//! The dashboard's page and assets are for the hub's own origin only: a strict
//! Content-Security-Policy (scripts, styles, images and connections from the
//! hub itself, nothing inline, no framing), no referrer, and `no-cache` (always
//! revalidated, so an upgraded hub never mixes old and new files).
//!
//! Every file has an `ETag` computed at compile time that `If-None-Match`
//! revalidates with `304`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// `web/herald.js`, byte for byte.
pub const HERALD_JS: &str = include_str!("../../../web/herald.js");
/// `web/herald.d.ts`, byte for byte.
pub const HERALD_D_TS: &str = include_str!("../../../web/herald.d.ts");
/// `web/openapi.json`, byte for byte.
pub const OPENAPI_JSON: &str = include_str!("../../../web/openapi.json");

/// The dashboard's page and assets: (path, file, content type).
const DASHBOARD: [(&str, &[u8], &str); 5] = [
    (
        "/",
        include_bytes!("../../../web/dashboard/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/dashboard/app.js",
        include_bytes!("../../../web/dashboard/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/dashboard/chart.js",
        include_bytes!("../../../web/dashboard/chart.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/dashboard/dashboard.css",
        include_bytes!("../../../web/dashboard/dashboard.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/dashboard/icon.svg",
        include_bytes!("../../../web/dashboard/icon.svg"),
        "image/svg+xml",
    ),
];

/// ETags of [`DASHBOARD`], in its order.
const DASHBOARD_TAGS: [u64; 5] = [
    fnv1a(DASHBOARD[0].1),
    fnv1a(DASHBOARD[1].1),
    fnv1a(DASHBOARD[2].1),
    fnv1a(DASHBOARD[3].1),
    fnv1a(DASHBOARD[4].1),
];

const JS_TAG: u64 = fnv1a(HERALD_JS.as_bytes());
const D_TS_TAG: u64 = fnv1a(HERALD_D_TS.as_bytes());
const OPENAPI_TAG: u64 = fnv1a(OPENAPI_JSON.as_bytes());

/// How long browsers and caches may use a copy of a public file before
/// revalidating it.
const CACHE_CONTROL: &str = "public, max-age=300";

/// The dashboard's files are always revalidated (cheap: `304`), so a page
/// never runs with the scripts of another version of the hub.
const DASHBOARD_CACHE_CONTROL: &str = "no-cache";

/// The dashboard's Content-Security-Policy: its own files only, no inline
/// script or style, no plugins, no `<base>`, no framing. `connect-src 'self'`
/// covers its fetches, its EventSource and (CSP level 3) its WebSocket.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// A served file.
#[derive(Debug, Clone, Copy)]
pub enum File {
    /// `/herald.js`, the ES module.
    Module,
    /// `/herald.d.ts`, its types.
    Types,
    /// `/openapi.json`, the HTTP API's OpenAPI 3.1 document.
    OpenApi,
    /// A dashboard file: an index into the embedded dashboard files (0 is the page).
    Dashboard(usize),
}

impl File {
    /// The dashboard's page.
    pub const DASHBOARD_PAGE: File = File::Dashboard(0);

    /// The dashboard asset served at `path` (`/dashboard/…`), if any.
    pub fn dashboard_asset(path: &str) -> Option<File> {
        DASHBOARD
            .iter()
            .position(|(p, _, _)| *p == path && path != "/")
            .map(File::Dashboard)
    }
}

/// Whether a request for `/` should get the dashboard rather than the text
/// index: its `Accept` names `text/html` (browsers navigating do; curl and
/// scripts send `*/*` or nothing).
pub fn wants_html(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let html = parts
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("text/html"));
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            html && !refused
        })
}

/// Answers `GET /`: the dashboard for browsers, else `index` (text). Both
/// say `Vary: Accept`.
pub fn root(request: &HeaderMap, index: &'static str) -> Response<Body> {
    let mut r = if wants_html(request) {
        serve(File::DASHBOARD_PAGE, request)
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(index.as_bytes())).boxed_unsync());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

/// Answers `GET /dashboard/…`: an asset, or `404` for any other path.
pub fn serve_asset(path: &str, request: &HeaderMap) -> Result<Response<Body>, Rejection> {
    File::dashboard_asset(path)
        .map(|f| serve(f, request))
        .ok_or_else(|| {
            Rejection::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no dashboard file {path}; the dashboard is at /"),
            )
        })
}

/// Answers `GET` (or `HEAD`) for `file`.
pub fn serve(file: File, request: &HeaderMap) -> Response<Body> {
    let (body, tag, content_type): (&'static [u8], u64, &'static str) = match file {
        File::Module => (
            HERALD_JS.as_bytes(),
            JS_TAG,
            "text/javascript; charset=utf-8",
        ),
        File::Types => (
            HERALD_D_TS.as_bytes(),
            D_TS_TAG,
            "text/plain; charset=utf-8",
        ),
        File::OpenApi => (OPENAPI_JSON.as_bytes(), OPENAPI_TAG, "application/json"),
        File::Dashboard(i) => (DASHBOARD[i].1, DASHBOARD_TAGS[i], DASHBOARD[i].2),
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
        let mut r = Response::new(Full::new(Bytes::from_static(body)).boxed_unsync());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let File::Dashboard(_) = file {
        dashboard_headers(h);
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        );
    }
    r
}

/// The dashboard's security and cache headers.
fn dashboard_headers(h: &mut HeaderMap) {
    for (name, value) in [
        (header::CACHE_CONTROL, DASHBOARD_CACHE_CONTROL),
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    for (name, value) in [
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
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

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(v));
        h
    }

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
            "/",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
        for (path, _, _) in &DASHBOARD[1..] {
            assert!(
                doc["paths"][path]["get"].is_object(),
                "{path} is documented"
            );
        }
    }

    #[test]
    fn browsers_get_the_dashboard_and_scripts_the_index() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        for (h, html) in [
            (accept(chrome), true),
            (accept("TEXT/HTML"), true),
            (accept("*/*"), false),
            (accept("text/html;q=0, */*"), false),
            (accept("application/json"), false),
            (HeaderMap::new(), false),
        ] {
            let r = root(&h, "index\n");
            let ct = r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(ct.starts_with("text/html"), html, "{h:?}: {ct}");
            assert_eq!(r.headers()[header::VARY], "Accept");
        }
    }

    #[test]
    fn the_dashboard_is_served_with_a_strict_policy() {
        let r = root(&accept("text/html"), "");
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        // The page has no inline script or style and names only its own files.
        let page = std::str::from_utf8(DASHBOARD[0].1).unwrap();
        assert!(
            !page.contains("<style") && !page.contains("style="),
            "inline style"
        );
        for script in page.split("<script").skip(1) {
            assert!(script.contains("src=\"/"), "inline script: {script}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn dashboard_assets_have_types_tags_and_404s() {
        for (path, ct) in [
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/chart.js", "text/javascript; charset=utf-8"),
            ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
            ("/dashboard/icon.svg", "image/svg+xml"),
        ] {
            let Ok(r) = serve_asset(path, &HeaderMap::new()) else {
                panic!("{path} is served");
            };
            assert_eq!(r.headers()[header::CONTENT_TYPE], ct);
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, r.headers()[header::ETAG].clone());
            let Ok(again) = serve_asset(path, &h) else {
                panic!("{path} is served");
            };
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        }
        for path in [
            "/dashboard/",
            "/dashboard/../herald.js",
            "/dashboard/app.js/",
        ] {
            let refused = serve_asset(path, &HeaderMap::new()).err().map(|e| e.status);
            assert_eq!(refused, Some(StatusCode::NOT_FOUND), "{path}");
        }
    }
}
