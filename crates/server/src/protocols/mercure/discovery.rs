//! Discovery: the RFC 9728 protected-resource metadata document (1.0), the
//! `Link: <hub>; rel="mercure"` header, and CORS preflights for Mercure's
//! methods and headers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::{Ctx, MercureOptions, token::DETAIL_TYPE};
use crate::cors;
use crate::listener::Shared;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// Methods a cross-origin page may use on the hub.
const METHODS: &str = "GET, HEAD, POST, QUERY, OPTIONS";
/// Request headers a cross-origin page may send.
const HEADERS: &str = "Authorization, Cache-Control, Content-Type, Last-Event-ID";

/// `GET /.well-known/oauth-protected-resource/.well-known/mercure`.
pub fn metadata(ctx: &Ctx, opts: &MercureOptions) -> Response<Body> {
    let doc = json!({
        "resource": ctx.hub_url.as_str(),
        "authorization_servers": opts.authorization_servers,
        "authorization_details_types_supported": [DETAIL_TYPE],
        "bearer_methods_supported": ["header"],
        "mercure_cookie": opts.cookie_name(),
        "mercure_matcher_types_supported": ["exact", "urlpattern"],
        "mercure_subscriptions": opts.subscriptions,
    });
    let mut r = Response::new(Full::new(Bytes::from(doc.to_string())).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `Link: <hub URL>; rel="mercure"` (what publishers' resources carry).
pub fn link(ctx: &Ctx) -> String {
    format!("<{}>; rel=\"mercure\"", ctx.hub_url)
}

/// Answers a preflight on a Mercure path.
pub fn preflight(shared: &Shared, headers: &HeaderMap) -> Result<Response<Body>, Rejection> {
    let mut r: Response<Body> = cors::preflight(&shared.opts, headers)?;
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(HEADERS),
    );
    Ok(r)
}
