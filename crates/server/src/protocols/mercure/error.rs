//! Mercure refusals, shaped per generation: 1.0 answers JSON with the RFC 6750
//! challenge in `WWW-Authenticate` (a bare `Bearer` with `resource_metadata`
//! when no token was sent, `invalid_token`, `insufficient_scope`,
//! `invalid_request`); 0.x answers the message as plain text, as its hub did.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, header};

use super::{Ctx, Generation};
use crate::rejection::Rejection;
use crate::transports::stream::Body;

/// The RFC 6750 error a refusal carries (1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// Not about the token.
    None,
    /// No token was sent where one is needed: a bare `Bearer` challenge.
    Missing,
    /// The token is malformed, expired, badly signed or not a Mercure token.
    InvalidToken,
    /// The token does not grant what was asked.
    InsufficientScope,
    /// The request carries its token wrongly (in the URL, several at once).
    InvalidRequest,
}

/// A refused Mercure request.
#[derive(Debug, Clone)]
pub struct MercureError {
    /// The refusal as Herald states it (status, code, message).
    pub rejection: Rejection,
    /// The challenge (1.0).
    pub challenge: Challenge,
}

impl From<Rejection> for MercureError {
    fn from(rejection: Rejection) -> Self {
        MercureError {
            rejection,
            challenge: Challenge::None,
        }
    }
}

impl MercureError {
    /// A refusal with a challenge.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        challenge: Challenge,
    ) -> Self {
        MercureError {
            rejection: Rejection::new(status, code, message),
            challenge,
        }
    }

    /// 400 with a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        MercureError::from(Rejection::bad_request(code, message))
    }

    /// The `WWW-Authenticate` value (1.0).
    fn www_authenticate(&self, ctx: &Ctx) -> Option<String> {
        let meta = ctx.metadata_url();
        let desc: String = (self.rejection.message.chars())
            .map(|c| match c {
                '"' | '\\' => '\'',
                c if c == ' ' || c.is_ascii_graphic() => c,
                _ => '?',
            })
            .collect();
        let err = match self.challenge {
            Challenge::None => return None,
            Challenge::Missing => return Some(format!("Bearer resource_metadata=\"{meta}\"")),
            Challenge::InvalidToken => "invalid_token",
            Challenge::InsufficientScope => "insufficient_scope",
            Challenge::InvalidRequest => "invalid_request",
        };
        Some(format!(
            "Bearer error=\"{err}\", error_description=\"{desc}\", resource_metadata=\"{meta}\""
        ))
    }

    /// The status, headers and body, in the generation's shape.
    pub fn parts(
        &self,
        generation: Generation,
        ctx: &Ctx,
    ) -> (StatusCode, Vec<(String, String)>, Bytes) {
        let r = &self.rejection;
        let mut headers = Vec::new();
        let body = match generation {
            Generation::V1 => {
                headers.push(("Content-Type".into(), "application/json".into()));
                if let Some(w) = self.www_authenticate(ctx) {
                    headers.push(("WWW-Authenticate".into(), w));
                }
                r.body()
            }
            Generation::Legacy => {
                headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
                Bytes::from(format!("{}\n", r.message))
            }
        };
        if let Some(secs) = r.retry_after {
            headers.push(("Retry-After".into(), secs.to_string()));
        }
        (r.status, headers, body)
    }

    /// As a hyper response.
    pub fn into_response(self, generation: Generation, ctx: &Ctx) -> Response<Body> {
        let (status, headers, body) = self.parts(generation, ctx);
        let mut resp = Response::new(Full::new(body).boxed_unsync());
        *resp.status_mut() = status;
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                header::HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }

    /// As a complete HTTP/1.1 response for the lean path (the connection
    /// closes after it), with `extra` headers (CORS).
    pub fn to_http1(&self, generation: Generation, ctx: &Ctx, extra: &str) -> Vec<u8> {
        let (status, headers, body) = self.parts(generation, ctx);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(extra);
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        out
    }
}
