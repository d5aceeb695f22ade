//! The Mercure protocol at `/.well-known/mercure`: both generations
//! (draft-08, hub 1.0; draft-07, hub 0.x, chosen by `mercure_generation`),
//! as a thin adapter over the hub.
//!
//! # Layout
//!
//! - [`publish`]: the form POST → one [`herald_core::Draft`] → `Hub::publish`;
//!   answers the id as `text/plain`.
//! - [`subscribe`]: the query → [`matcher`]s → one `Hub::subscribe`; the SSE
//!   stream is the shared one (lean path for a first request on a plain
//!   HTTP/1.1 connection, hyper otherwise), with Mercure's headers.
//! - [`token`]: Mercure tokens of both generations → [`token::MercureGrants`]
//!   (an [`crate::auth::Access::Mercure`]), and where requests carry them.
//! - [`subscriptions`]: the active-subscriptions registry, its events and its API.
//! - [`discovery`]: the RFC 9728 metadata document and `Link` headers.
//! - [`error`]: refusals in each generation's shape (RFC 6750 challenges in 1.0).
//!
//! Data flow: request → [`Ctx`] (generation, hub URL) → token → matchers →
//! hub → shared SSE frames (each event's `id:` is its Mercure id: the
//! publisher's, or `urn:uuid:…` generated here, or a native event's hub id).

pub mod discovery;
pub mod error;
pub mod matcher;
pub mod publish;
pub mod subscribe;
pub mod subscriptions;
pub mod template;
pub mod token;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, header};
use url::Url;

use crate::listener::Shared;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

pub use error::MercureError;

/// The hub's path.
pub const HUB_PATH: &str = "/.well-known/mercure";
/// The RFC 9728 metadata document of the hub (1.0).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";
/// The subscriptions API and the subscription events' topics live under this path.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// Which generation of the protocol the hub speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generation {
    /// draft-08 (hub 1.0): `match=`, RFC 9068 tokens, `Mercure-Last-Event-ID`.
    #[default]
    V1,
    /// draft-07 (hub 0.x): `topic=` with URI templates, the `mercure` claim,
    /// `Last-Event-ID`.
    Legacy,
}

/// Mercure settings (part of [`crate::ServerOptions`]).
#[derive(Debug, Clone)]
pub struct MercureOptions {
    /// Serve `/.well-known/mercure` at all.
    pub enabled: bool,
    /// The generation spoken.
    pub generation: Generation,
    /// Let clients without a token subscribe (public updates only).
    pub anonymous: bool,
    /// Publish subscription events and serve the subscriptions API.
    pub subscriptions: bool,
    /// The hub's public URL (`https://example.com/.well-known/mercure`): the
    /// base of relative topics and URL Patterns, the 1.0 token audience and
    /// the metadata `resource`. `None`: built from each request's `Host`.
    pub hub_url: Option<Url>,
    /// Serve the RFC 9728 metadata document (1.0).
    pub metadata: bool,
    /// `authorization_servers` listed in the metadata document.
    pub authorization_servers: Vec<String>,
    /// The cookie that may carry a token (`None`: the generation's default,
    /// `__Secure-mercure_access_token` or `mercureAuthorization`).
    pub cookie: Option<String>,
}

impl Default for MercureOptions {
    fn default() -> Self {
        MercureOptions {
            enabled: true,
            generation: Generation::V1,
            anonymous: false,
            subscriptions: false,
            hub_url: None,
            metadata: true,
            authorization_servers: Vec::new(),
            cookie: None,
        }
    }
}

impl MercureOptions {
    /// The cookie tokens may come in.
    pub fn cookie_name(&self) -> &str {
        match (&self.cookie, self.generation) {
            (Some(c), _) => c,
            (None, Generation::V1) => "__Secure-mercure_access_token",
            (None, Generation::Legacy) => "mercureAuthorization",
        }
    }
}

/// Mercure state shared by every connection (one field of [`Shared`]).
#[derive(Default)]
pub struct State {
    /// Compiled selectors, shared.
    pub matchers: matcher::Cache,
    /// Active subscriptions (when the subscriptions API is on).
    pub registry: subscriptions::Registry,
}

/// What every Mercure request knows: its generation and the hub URL.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The generation spoken.
    pub generation: Generation,
    /// The hub URL (configured, or from the request's `Host`).
    pub hub_url: Url,
}

impl Ctx {
    /// The context of a request with these headers; `authority` is the
    /// request target's (HTTP/2 carries the host there, not in `Host`).
    pub fn new(shared: &Shared, headers: &HeaderMap, authority: Option<&str>) -> Ctx {
        let m = &shared.opts.mercure;
        let hub_url = m.hub_url.clone().unwrap_or_else(|| {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or(authority)
                .filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@', ' ']))
                .unwrap_or("localhost");
            let scheme = if shared.opts.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Url::parse(&format!("{scheme}://{host}{HUB_PATH}"))
                .unwrap_or_else(|_| Url::parse("http://localhost/.well-known/mercure").unwrap())
        });
        Ctx {
            generation: m.generation,
            hub_url,
        }
    }

    /// Where the RFC 9728 metadata document is.
    pub fn metadata_url(&self) -> String {
        let mut u = self.hub_url.clone();
        u.set_path(METADATA_PATH);
        u.set_query(None);
        u.to_string()
    }
}

/// Whether `path` is one of Mercure's.
pub fn owns(path: &str) -> bool {
    path == HUB_PATH
        || path == METADATA_PATH
        || path
            .strip_prefix(HUB_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Routes a Mercure request served by hyper.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let ctx = Ctx::new(
        &shared,
        req.headers(),
        req.uri().authority().map(|a| a.as_str()),
    );
    let path = req.uri().path().to_string();
    let result = match (req.method(), path.as_str()) {
        (&Method::OPTIONS, _) => return discovery::preflight(&shared, req.headers()),
        (&Method::GET | &Method::HEAD, METADATA_PATH)
            if shared.opts.mercure.metadata && ctx.generation == Generation::V1 =>
        {
            Ok(discovery::metadata(&ctx, &shared.opts.mercure))
        }
        (&Method::POST, HUB_PATH) => publish::handle(req, &ctx, &shared).await,
        (m, HUB_PATH) if m == Method::GET || m == Method::HEAD || m.as_str() == "QUERY" => {
            subscribe::serve_hyper(req, &ctx, shared.clone()).await
        }
        (&Method::GET, p)
            if p.starts_with(SUBSCRIPTIONS_PATH) && shared.opts.mercure.subscriptions =>
        {
            subscriptions::api(req.headers(), req.uri().query(), p, &ctx, &shared)
        }
        (_, HUB_PATH) => {
            let e = MercureError::from(Rejection::new(
                hyper::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET, HEAD or QUERY to subscribe and POST to publish",
            ));
            let mut r = e.into_response(ctx.generation, &ctx);
            r.headers_mut().insert(
                header::ALLOW,
                header::HeaderValue::from_static("GET, HEAD, POST, QUERY, OPTIONS"),
            );
            return Ok(r);
        }
        (_, p)
            if (p == SUBSCRIPTIONS_PATH || p.starts_with(&format!("{SUBSCRIPTIONS_PATH}/")))
                && shared.opts.mercure.subscriptions =>
        {
            Err(MercureError::from(Rejection::method_not_allowed(
                "GET, OPTIONS",
            )))
        }
        _ => Err(MercureError::from(Rejection::new(
            hyper::StatusCode::NOT_FOUND,
            "not_found",
            format!("no Mercure route for {path}; see docs/PROTOCOL.md (Mercure)"),
        ))),
    };
    Ok(result.unwrap_or_else(|e| {
        let allow = e.rejection.allow;
        let mut r = e.into_response(ctx.generation, &ctx);
        if let Some(allow) = allow {
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        r
    }))
}
