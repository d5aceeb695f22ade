//! Cross-origin access: an allow-list of origins (`cors_origins`), answers to
//! preflights, and the origin check that protects cookie-authenticated
//! requests from other sites (CSRF, cross-site WebSocket hijacking).
//!
//! An origin on the list gets `Access-Control-Allow-Origin: <origin>` with
//! `Access-Control-Allow-Credentials: true` (so `withCredentials`
//! EventSources and cookie tokens work) and the resume headers exposed. `*` on
//! the list lets every origin read, without credentials.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::options::ServerOptions;
use crate::rejection::Rejection;

/// Request headers a cross-origin page may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// Response headers a cross-origin page may read.
const EXPOSE_HEADERS: &str =
    "Herald-Resume, Content-Type, Link, Mercure-Last-Event-ID, Last-Event-ID";

/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// What the allow-list says about a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin` header: not a cross-origin browser request.
    NoOrigin,
    /// The page is on the hub's own origin.
    SameOrigin,
    /// On the list: echo it, with credentials.
    Listed(HeaderValue),
    /// `*` is on the list: any origin may read, without credentials.
    Any,
    /// Not allowed.
    Refused,
}

/// Judges the request's `Origin` against the allow-list.
pub fn verdict(opts: &ServerOptions, headers: &HeaderMap) -> Verdict {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Verdict::NoOrigin;
    };
    let Ok(text) = origin.to_str() else {
        return Verdict::Refused;
    };
    if same_origin(text, headers) {
        return Verdict::SameOrigin;
    }
    if opts.cors_origins.iter().any(|o| o == text) {
        return Verdict::Listed(origin.clone());
    }
    if opts.cors_origins.iter().any(|o| o == "*") {
        return Verdict::Any;
    }
    Verdict::Refused
}

/// Whether `origin` (`scheme://host[:port]`) names the `Host` the request was sent to.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// Adds the CORS headers `verdict` calls for to a response's headers.
pub fn decorate(verdict: &Verdict, h: &mut HeaderMap) {
    let origin = match verdict {
        Verdict::Listed(o) => {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            o.clone()
        }
        Verdict::Any => HeaderValue::from_static("*"),
        Verdict::NoOrigin | Verdict::SameOrigin | Verdict::Refused => return,
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The same headers as `(name, value)` pairs, for the lean path's raw head.
pub fn lean_headers(verdict: &Verdict) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = HeaderMap::new();
    decorate(verdict, &mut h);
    h.into_iter()
        .filter_map(|(k, v)| k.map(|k| (k, v)))
        .collect()
}

/// Answers an `OPTIONS` preflight.
pub fn preflight<B: Default>(
    opts: &ServerOptions,
    headers: &HeaderMap,
) -> Result<Response<B>, Rejection> {
    let v = verdict(opts, headers);
    if matches!(v, Verdict::Refused) {
        return Err(refused());
    }
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    decorate(&v, h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    Ok(r)
}

/// Refuses a request authenticated by cookie that comes from a page on an
/// origin that is neither the hub's nor on the list (CSRF, cross-site
/// WebSocket hijacking).
pub fn check_cookie_origin(opts: &ServerOptions, headers: &HeaderMap) -> Result<(), Rejection> {
    match verdict(opts, headers) {
        Verdict::NoOrigin | Verdict::SameOrigin | Verdict::Listed(_) => Ok(()),
        Verdict::Any | Verdict::Refused => Err(refused()),
    }
}

fn refused() -> Rejection {
    Rejection::new(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        "this page's origin is not in the hub's cors_origins; add it there to let it use the hub",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> ServerOptions {
        ServerOptions {
            cors_origins: list.iter().map(|s| s.to_string()).collect(),
            ..ServerOptions::default()
        }
    }

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("hub.example:8080"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origins_are_judged_against_the_list() {
        let o = opts(&["https://app.example"]);
        assert_eq!(verdict(&o, &headers(None)), Verdict::NoOrigin);
        assert_eq!(
            verdict(&o, &headers(Some("http://hub.example:8080"))),
            Verdict::SameOrigin
        );
        assert!(matches!(
            verdict(&o, &headers(Some("https://app.example"))),
            Verdict::Listed(_)
        ));
        assert_eq!(
            verdict(&o, &headers(Some("https://app.example.evil"))),
            Verdict::Refused
        );
        assert_eq!(verdict(&o, &headers(Some("null"))), Verdict::Refused);
        assert_eq!(
            verdict(&opts(&["*"]), &headers(Some("https://any.example"))),
            Verdict::Any
        );
    }

    #[test]
    fn listed_origins_get_credentials_and_any_does_not() {
        let mut h = HeaderMap::new();
        decorate(
            &Verdict::Listed(HeaderValue::from_static("https://a")),
            &mut h,
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://a");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(
            h[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("Herald-Resume")
        );
        let mut h = HeaderMap::new();
        decorate(&Verdict::Any, &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn cookies_from_other_sites_are_refused() {
        let o = opts(&["https://app.example", "*"]);
        assert!(check_cookie_origin(&o, &headers(None)).is_ok());
        assert!(check_cookie_origin(&o, &headers(Some("https://app.example"))).is_ok());
        assert!(check_cookie_origin(&o, &headers(Some("https://evil.example"))).is_err());
    }
}
