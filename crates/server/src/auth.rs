//! Who may publish and subscribe: every front door turns its request into an
//! [`Access`] here and asks it before publishing or subscribing.
//!
//! - `--dev`: everything is allowed, tokens are not read;
//! - a request with a valid token: what its `herald` claim grants (publish:
//!   every topic of the event granted; subscribe: every requested topic
//!   granted; private events only where the token covers one of their topics);
//!   streams end no later than the token's `exp`;
//! - a request without a token: no publishing; subscribing only when
//!   `anonymous_subscribe` is on, and then public events only.

use std::sync::Arc;
use std::time::SystemTime;

use hyper::StatusCode;
use hyper::header::HeaderMap;

use herald_auth::{Claims, ExtractError, TokenSource, TokenSources, Verifier, extract_token};
use herald_core::{PrivateFilter, Topic};

use crate::operations::presence;
use crate::options::ServerOptions;
use crate::rejection::Rejection;

/// How requests are authorized (part of [`ServerOptions`]).
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// Verifies tokens; `None` when no key is configured.
    pub verifier: Option<Verifier>,
    /// Where requests may carry their token.
    pub sources: TokenSources,
    /// Whether clients without a token may subscribe (public events only).
    pub anonymous_subscribe: bool,
}

/// What one request may do.
#[derive(Debug, Clone)]
pub enum Access {
    /// Development mode: anything.
    Everything,
    /// No token.
    Anonymous,
    /// A verified token, and where it came from.
    Token(Arc<Claims>, TokenSource),
    /// A verified Mercure token (either generation), and where it came from.
    /// Mercure subscribers may listen to any topic; the grants decide which
    /// private updates reach them and where they may publish.
    Mercure(
        Arc<crate::protocols::mercure::token::MercureGrants>,
        TokenSource,
    ),
}

/// Reads and verifies the request's token, if any.
pub fn access(
    opts: &ServerOptions,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Access, Rejection> {
    if opts.dev {
        return Ok(Access::Everything);
    }
    let found = extract_token(headers, query, &opts.auth.sources).map_err(extract_rejection)?;
    let Some(found) = found else {
        return Ok(Access::Anonymous);
    };
    verify(opts, &found.token, found.source)
}

/// Verifies a token a protocol message carried instead of the request (a
/// Bayeux handshake's `ext.authToken`); in development mode, anything goes.
pub fn access_from_token(opts: &ServerOptions, token: &str) -> Result<Access, Rejection> {
    if opts.dev {
        return Ok(Access::Everything);
    }
    // Not a cookie: the client put it in the message itself.
    verify(opts, token, TokenSource::Header)
}

fn verify(opts: &ServerOptions, token: &str, source: TokenSource) -> Result<Access, Rejection> {
    let Some(verifier) = &opts.auth.verifier else {
        return Err(Rejection::new(
            StatusCode::UNAUTHORIZED,
            "tokens_not_configured",
            "this hub has no token verification key configured (jwt_secret, jwt_public_keys, jwks_file or jwks_url), so it accepts no token",
        ));
    };
    match verifier.verify(token, SystemTime::now()) {
        Ok(claims) => Ok(Access::Token(Arc::new(claims), source)),
        Err(e) => Err(Rejection::new(
            StatusCode::UNAUTHORIZED,
            e.code(),
            e.to_string(),
        )),
    }
}

fn extract_rejection(e: ExtractError) -> Rejection {
    let status = match e {
        ExtractError::NotBearer | ExtractError::Empty => StatusCode::UNAUTHORIZED,
        ExtractError::Several(_) | ExtractError::QueryDisabled(_) => StatusCode::BAD_REQUEST,
    };
    Rejection::new(status, e.code(), e.to_string())
}

impl Access {
    /// Whether this request may publish at all (checked before its body is read).
    pub fn may_publish_something(&self) -> Result<(), Rejection> {
        match self {
            Access::Anonymous => self.may_publish(&[]),
            _ => Ok(()),
        }
    }

    /// Whether an event on `topics` may be published.
    pub fn may_publish(&self, topics: &[Topic]) -> Result<(), Rejection> {
        match self {
            Access::Everything => Ok(()),
            Access::Anonymous => Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "publishing needs a token (Authorization: Bearer <token>) whose herald.publish covers the topics; `herald token --publish TOPIC` mints one",
            )),
            Access::Token(claims, _) => {
                match topics
                    .iter()
                    .find(|t| !claims.grants.can_publish(t.as_str()))
                {
                    None => Ok(()),
                    Some(t) => Err(forbidden("publish to", t)),
                }
            }
            Access::Mercure(grants, _) => {
                match topics.iter().find(|t| !grants.can_publish(t.as_str())) {
                    None => Ok(()),
                    Some(t) => Err(forbidden("publish to", t)),
                }
            }
        }
    }

    /// Whether `topics` may be subscribed to (reserved `$herald/` topics by
    /// their own rules: `operations/presence.rs`).
    pub fn may_subscribe(&self, opts: &ServerOptions, topics: &[Topic]) -> Result<(), Rejection> {
        if topics.iter().any(|t| presence::reserved(t.as_str())) {
            let mut ordinary = Vec::new();
            for t in topics {
                if !presence::may_subscribe_reserved(self, opts, t)? {
                    ordinary.push(t.clone());
                }
            }
            return self.may_subscribe(opts, &ordinary);
        }
        match self {
            Access::Everything => Ok(()),
            Access::Anonymous if opts.auth.anonymous_subscribe => Ok(()),
            Access::Anonymous => Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "subscribing needs a token whose herald.subscribe covers the topics (Authorization: Bearer <token>, or the token cookie for EventSource); `herald token --subscribe TOPIC` mints one",
            )),
            // Where anyone may subscribe, a token never gives less: topics it
            // does not cover are served like an anonymous client's (public
            // events only, through the private filter).
            Access::Token(..) if opts.auth.anonymous_subscribe => Ok(()),
            Access::Token(claims, _) => {
                match topics
                    .iter()
                    .find(|t| !claims.grants.can_subscribe(t.as_str()))
                {
                    None => Ok(()),
                    Some(t) => Err(forbidden("subscribe to", t)),
                }
            }
            Access::Mercure(..) => Ok(()),
        }
    }

    /// Whether this request may use the admin API: `--dev`, or a token whose
    /// `herald` claim says `"admin": true`.
    pub fn may_admin(&self) -> Result<(), Rejection> {
        match self {
            Access::Everything => Ok(()),
            Access::Token(claims, _) if claims.grants.admin => Ok(()),
            Access::Anonymous | Access::Mercure(..) => Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API needs a token whose herald claim has \"admin\": true (Authorization: Bearer <token>); `herald token --admin` mints one",
            )),
            Access::Token(..) => Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "not_admin",
                "this token has no admin grant; the admin API needs a token whose herald claim has \"admin\": true (`herald token --admin`)",
            )),
        }
    }

    /// Whether a bidirectional session (WebSocket, BOSH) may open: not for a
    /// client that could neither subscribe nor publish.
    pub fn may_open_session(&self, opts: &ServerOptions) -> Result<(), Rejection> {
        self.may_subscribe(opts, &[])
    }

    /// Which private events this subscriber may see (`None`: all of them).
    pub fn private_filter(&self) -> Option<PrivateFilter> {
        match self {
            Access::Everything => None,
            Access::Anonymous => Some(Arc::new(|_| false)),
            Access::Token(claims, _) => {
                let claims = claims.clone();
                Some(Arc::new(move |ev| {
                    claims
                        .grants
                        .can_subscribe_any(ev.topics.iter().map(|t| t.as_str()))
                }))
            }
            Access::Mercure(grants, _) => {
                let grants = grants.clone();
                Some(Arc::new(move |ev| {
                    grants.can_subscribe_any(ev.topics.iter().map(|t| t.as_str()))
                }))
            }
        }
    }

    /// When streams opened with this access must end (the token's `exp`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self {
            Access::Token(claims, _) => claims.exp,
            Access::Mercure(grants, _) => grants.exp,
            _ => None,
        }
    }

    /// The same as [`Access::expires_at`] on tokio's clock, for timers.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        let exp = self.expires_at()?;
        let left = exp
            .duration_since(SystemTime::now())
            .unwrap_or(std::time::Duration::ZERO);
        Some(tokio::time::Instant::now() + left)
    }

    /// What the connection registry records about a connection opened with
    /// this access (the peer is filled in by the transport).
    pub fn opening(&self, topics: Vec<Topic>) -> crate::operations::Opening {
        crate::operations::Opening {
            peer: None,
            topics,
            claims: match self {
                Access::Token(claims, _) => Some(claims.clone()),
                _ => None,
            },
        }
    }

    /// Whether the token came from a cookie (state-changing requests then
    /// need their `Origin` checked against CSRF).
    pub fn from_cookie(&self) -> bool {
        matches!(
            self,
            Access::Token(_, TokenSource::Cookie) | Access::Mercure(_, TokenSource::Cookie)
        )
    }
}

fn forbidden(what: &str, topic: &Topic) -> Rejection {
    Rejection::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this token may not {what} {:?}; mint one whose herald claim covers it",
            topic.as_str()
        ),
    )
}
