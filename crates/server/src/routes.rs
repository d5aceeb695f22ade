//! hyper's request/response routes. Each handler returns
//! `Result<Response, Rejection>`; the rejection becomes a response here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};

use crate::cors;
use crate::listener::Shared;
use crate::metrics;
use crate::operations::request_id;
use crate::protocols::mercure;
use crate::publish::{self, Target};
use crate::rejection::Rejection;
use crate::transports::stream::{self, Body};
use crate::transports::{bosh, poll, ws};
use crate::web;

/// Routes one request, inside a span carrying its request id (echoed in
/// the response's `X-Request-Id`).
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    use tracing::Instrument;
    let id = request_id::of(req.headers());
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or_default());
    let started = tokio::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let mut response = route(req, shared).instrument(span.clone()).await?;
    span.in_scope(|| {
        tracing::debug!(%method, path, status = response.status().as_u16(), secs = started.elapsed().as_secs_f64(), "request served")
    });
    response.headers_mut().insert(request_id::HEADER, id);
    Ok(response)
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let verdict = cors::verdict(&shared.opts, req.headers());
    // Kept for the refusal counters: some arms move `shared`.
    let counted = shared.clone();
    let result = match (req.method(), path.as_str()) {
        (_, p) if shared.opts.mercure.enabled && mercure::owns(p) => {
            mercure::handle(req, shared.clone()).await
        }
        (&Method::OPTIONS, _) => cors::preflight(&shared.opts, req.headers()),
        (&Method::POST, "/publish") => publish::handle(req, &shared, Target::Query).await,
        (&Method::POST, p) if p.starts_with("/topics/") => {
            publish::handle(req, &shared, Target::Path(&p["/topics/".len()..])).await
        }
        (&Method::GET, "/sse" | "/stream") => stream::serve_hyper(req, shared).await,
        (&Method::GET, "/poll") => poll::handle(req, &shared).await,
        (&Method::GET, "/ws") => ws::upgrade(req, shared).await,
        (&Method::POST, "/bosh") => bosh::handle(req, shared).await,
        (&Method::GET, "/ws/echo") if shared.opts.ws_echo => ws::echo(req, shared).await,
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(text(StatusCode::OK, "ok\n")),
        (&Method::GET | &Method::HEAD, "/readyz") => Ok(match metrics::ready(&shared) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => {
                let mut r = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"error": "not_ready", "message": why}),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                r
            }
        }),
        (&Method::GET, "/metrics") => {
            let mut r =
                Response::new(Full::new(Bytes::from(metrics::render(&shared))).boxed_unsync());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            Ok(r)
        }
        (&Method::GET | &Method::HEAD, "/herald.js") => {
            Ok(web::serve(web::File::Module, req.headers()))
        }
        (&Method::GET | &Method::HEAD, "/herald.d.ts") => {
            Ok(web::serve(web::File::Types, req.headers()))
        }
        (&Method::GET | &Method::HEAD, "/openapi.json") => {
            Ok(web::serve(web::File::OpenApi, req.headers()))
        }
        (&Method::POST, "/websub") => crate::webhooks::handle_websub(req, &shared).await,
        (_, p) if p == "/webhooks" || p.starts_with("/webhooks/") => {
            crate::webhooks::handle_api(req, &shared).await
        }
        (&Method::GET | &Method::POST, p) if is_bayeux(p) => {
            crate::protocols::bayeux::http::handle(req, shared.clone()).await
        }
        (&Method::GET | &Method::HEAD, "/") => Ok(web::root(req.headers(), INDEX)),
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/dashboard/") => {
            web::serve_asset(p, req.headers())
        }
        (&Method::GET, "/presence") => crate::operations::presence::handle(req, &shared).await,
        (_, p) if p.starts_with("/admin/") => crate::operations::admin::handle(req, &shared).await,
        (_, p) if allowed_methods(&shared, p).is_some() => {
            return Ok(not_allowed(
                allowed_methods(&shared, p).unwrap_or_default(),
                &verdict,
            ));
        }
        _ => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}; see docs/PROTOCOL.md"),
        )),
    };
    let mut response = result.unwrap_or_else(|rej| {
        counted.ops.telemetry.refused(rej.status, rej.code);
        rej.into_response().map(|b| b.boxed_unsync())
    });
    cors::decorate(&verdict, response.headers_mut());
    Ok(response)
}

const INDEX: &str = "Herald push hub. Browsers asking / for text/html get the dashboard (web/dashboard/).\n\
POST /publish?topic=T        publish the body as one event (JSON: one event or a batch)\n\
POST /topics/T               publish the body as one event to topic T (percent-encoded)\n\
GET  /sse?topic=T            subscribe with Server-Sent Events\n\
GET  /stream?topic=T         subscribe as an NDJSON stream (format=iframe: forever frame)\n\
GET  /poll?topic=T&since=ID  long-poll (timeout=0: short poll; callback=NAME: JSONP)\n\
GET  /ws[?topic=T]           WebSocket: JSON subscribe, unsubscribe, publish, ping\n\
POST /bosh                   BOSH (XEP-0124) sessions carrying the same operations\n\
POST /websub                 WebSub hub: subscribe, unsubscribe, publish pings (form-encoded)\n\
POST /webhooks               create a webhook subscription (JSON); GET lists, DELETE /webhooks/ID removes\n\
/bayeux                      Bayeux 1.0 (CometD, Faye): long-polling, callback-polling, websocket\n\
GET  /healthz                liveness\n\
GET  /readyz                 readiness (503 while draining or the broker is out of reach)\n\
GET  /metrics                Prometheus / OpenMetrics metrics\n\
GET  /presence?topic=T       how many subscribe to T (and who, with presence rights)\n\
GET  /admin/...              admin API (admin token): topics, history, connections, drain, stats\n\
GET  /herald.js              the browser client (ES module; types at /herald.d.ts)\n\
GET  /openapi.json           the HTTP API as an OpenAPI 3.1 document\n\
GET|POST /.well-known/mercure  the Mercure protocol (publish form, subscribe, subscriptions API)\n";

/// The methods a known path answers (`Allow`), or `None` for an unknown path.
fn allowed_methods(shared: &Shared, path: &str) -> Option<&'static str> {
    Some(match path {
        "/publish" | "/bosh" | "/websub" => "POST, OPTIONS",
        p if p.starts_with("/topics/") => "POST, OPTIONS",
        "/sse" | "/stream" | "/poll" | "/ws" | "/metrics" | "/presence" => "GET, OPTIONS",
        "/ws/echo" if shared.opts.ws_echo => "GET, OPTIONS",
        p if is_bayeux(p) => "GET, POST, OPTIONS",
        "/healthz" | "/readyz" | "/herald.js" | "/herald.d.ts" | "/openapi.json" | "/" => {
            "GET, HEAD, OPTIONS"
        }
        p if web::File::dashboard_asset(p).is_some() => "GET, HEAD, OPTIONS",
        _ => return None,
    })
}

/// `/bayeux` and every path below it (CometD appends `/handshake`, …).
fn is_bayeux(path: &str) -> bool {
    path == "/bayeux" || path.starts_with("/bayeux/")
}

/// `405` with the `Allow` header RFC 9110 asks for.
fn not_allowed(allow: &'static str, verdict: &cors::Verdict) -> Response<Body> {
    let mut r = Rejection::method_not_allowed(allow)
        .into_response()
        .map(|b| b.boxed_unsync());
    cors::decorate(verdict, r.headers_mut());
    r
}

/// A small text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}
