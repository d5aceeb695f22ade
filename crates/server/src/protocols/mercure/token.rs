//! Mercure tokens → [`MercureGrants`] → [`Access::Mercure`].
//!
//! Where a request carries its token:
//! - 1.0: `Authorization: Bearer`, else the `__Secure-mercure_access_token`
//!   cookie; a token in the URL is refused (400 `invalid_request`);
//! - 0.x: `Authorization: Bearer`, then the `authorization` query parameter,
//!   then the `mercureAuthorization` cookie.
//!
//! What a token must be (signature, algorithm allow-list, `exp`/`nbf` and the
//! configured `aud`/`iss` are checked by [`herald_auth::Verifier`]):
//! - 1.0: header `typ: at+jwt`; `exp` and `iss` present; `aud` holds the hub
//!   URL; grants in `authorization_details` entries of type
//!   `https://mercure.rocks/authorization-detail`. One malformed Mercure entry
//!   rejects the whole token (401 `invalid_token`); other types are ignored.
//! - 0.x: the `mercure` claim (or `https://mercure.rocks/`):
//!   `{publish: [...], subscribe: [...], payload: ...}`; a malformed claim
//!   rejects the token.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde_json::Value;

use herald_auth::{TokenSource, TokenSources, extract_token};

use super::error::Challenge;
use super::matcher::{Kind, Matcher};
use super::{Ctx, Generation, MercureError};
use crate::auth::Access;
use crate::listener::Shared;

/// The `type` of Mercure's authorization details (1.0).
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// What a Mercure token allows.
pub struct MercureGrants {
    /// Selectors of the topics it may publish to.
    pub publish: Vec<Arc<Matcher>>,
    /// Selectors of the topics whose private updates it may receive.
    pub subscribe: Vec<Arc<Matcher>>,
    /// The subscriber's `payload`, copied into its subscription events.
    pub payload: Option<Value>,
    /// When the token expires (streams end then).
    pub exp: Option<SystemTime>,
}

impl std::fmt::Debug for MercureGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MercureGrants")
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .finish()
    }
}

impl MercureGrants {
    /// Whether it may publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|m| m.matches(topic))
    }

    /// Whether it may receive private updates of `topic`.
    pub fn can_subscribe(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|m| m.matches(topic))
    }

    /// Whether it may receive a private update published to `topics` (one is enough).
    pub fn can_subscribe_any<'a>(&self, mut topics: impl Iterator<Item = &'a str>) -> bool {
        topics.any(|t| self.can_subscribe(t))
    }
}

/// Reads and verifies the request's Mercure token, if any.
pub fn access(
    ctx: &Ctx,
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Access, MercureError> {
    if shared.opts.dev {
        return Ok(Access::Everything);
    }
    let Some((token, source)) = find(ctx, shared, headers, query)? else {
        return Ok(Access::Anonymous);
    };
    let invalid = |code: &'static str, msg: String| {
        MercureError::new(StatusCode::UNAUTHORIZED, code, msg, Challenge::InvalidToken)
    };
    let Some(verifier) = &shared.opts.auth.verifier else {
        return Err(invalid(
            "tokens_not_configured",
            "this hub has no token verification key configured (jwt_secret, jwt_public_keys, jwks_file or jwks_url), so it accepts no token".into(),
        ));
    };
    let now = SystemTime::now();
    let grants = match ctx.generation {
        Generation::V1 => {
            #[derive(serde::Deserialize)]
            struct V1 {
                #[serde(default)]
                authorization_details: Option<Value>,
            }
            let v = verifier
                .verify_as::<V1>(&token, now)
                .map_err(|e| invalid(e.code(), e.to_string()))?;
            if !v.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            }) {
                return Err(invalid(
                    "token_not_access_token",
                    "Mercure 1.0 tokens are RFC 9068 access tokens: the header needs typ \"at+jwt\"".into(),
                ));
            }
            if v.exp.is_none() {
                return Err(invalid(
                    "token_missing_exp",
                    "the token needs an exp claim".into(),
                ));
            }
            if v.issuer.is_none() {
                return Err(invalid(
                    "token_missing_iss",
                    "the token needs an iss claim".into(),
                ));
            }
            if !v.audience.iter().any(|a| a == ctx.hub_url.as_str()) {
                return Err(invalid(
                    "token_wrong_audience",
                    format!(
                        "the token's aud must include this hub's URL, {}",
                        ctx.hub_url
                    ),
                ));
            }
            let mut g = v1_grants(v.claims.authorization_details, ctx, shared)
                .map_err(|m| invalid("token_bad_claims", m))?;
            g.exp = v.exp;
            g
        }
        Generation::Legacy => {
            #[derive(serde::Deserialize)]
            struct Legacy {
                #[serde(default)]
                mercure: Option<Value>,
                #[serde(default, rename = "https://mercure.rocks/")]
                namespaced: Option<Value>,
            }
            let v = verifier
                .verify_as::<Legacy>(&token, now)
                .map_err(|e| invalid(e.code(), e.to_string()))?;
            let claim = v.claims.mercure.or(v.claims.namespaced);
            let mut g =
                legacy_grants(claim, ctx, shared).map_err(|m| invalid("token_bad_claims", m))?;
            g.exp = v.exp;
            g
        }
    };
    Ok(Access::Mercure(Arc::new(grants), source))
}

/// The request's token and where it was: the header, then (0.x) the query,
/// then the cookie.
fn find<'a>(
    ctx: &Ctx,
    shared: &Shared,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<(Cow<'a, str>, TokenSource)>, MercureError> {
    let bad = |e: herald_auth::ExtractError| {
        let (status, challenge) = match e {
            herald_auth::ExtractError::Several(_) => {
                (StatusCode::BAD_REQUEST, Challenge::InvalidRequest)
            }
            _ => (StatusCode::UNAUTHORIZED, Challenge::InvalidToken),
        };
        MercureError::new(status, e.code(), e.to_string(), challenge)
    };
    let header_only = TokenSources {
        cookie: None,
        query: false,
    };
    if let Some(found) = extract_token(headers, None, &header_only).map_err(bad)? {
        return Ok(Some((found.token, found.source)));
    }
    let in_url = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()));
    match ctx.generation {
        Generation::V1 => {
            if let Some((name, _)) = in_url
                .into_iter()
                .find(|(n, _)| n == "authorization" || n == "access_token")
            {
                return Err(MercureError::new(
                    StatusCode::BAD_REQUEST,
                    "token_in_url",
                    format!(
                        "Mercure 1.0 refuses tokens in the URL ({name}=): send an Authorization: Bearer header or the {} cookie",
                        shared.opts.mercure.cookie_name()
                    ),
                    Challenge::InvalidRequest,
                ));
            }
        }
        Generation::Legacy => {
            let mut found = in_url.filter(|(n, _)| n == "authorization").map(|(_, v)| v);
            if let Some(v) = found.next() {
                if found.next().is_some() || v.is_empty() {
                    return Err(MercureError::new(
                        StatusCode::BAD_REQUEST,
                        "token_ambiguous",
                        "send exactly one non-empty authorization parameter",
                        Challenge::InvalidRequest,
                    ));
                }
                return Ok(Some((Cow::Owned(v.into_owned()), TokenSource::Query)));
            }
        }
    }
    let cookie_only = TokenSources {
        cookie: Some(shared.opts.mercure.cookie_name().to_owned()),
        query: false,
    };
    Ok(extract_token(headers, None, &cookie_only)
        .map_err(bad)?
        .map(|f| (f.token, f.source)))
}

/// Grants from 1.0 `authorization_details`: all Mercure entries or none.
fn v1_grants(details: Option<Value>, ctx: &Ctx, shared: &Shared) -> Result<MercureGrants, String> {
    let mut g = MercureGrants {
        publish: Vec::new(),
        subscribe: Vec::new(),
        payload: None,
        exp: None,
    };
    let entries = match details {
        None => return Ok(g),
        Some(Value::Array(v)) => v,
        Some(_) => return Err("authorization_details must be an array".into()),
    };
    for entry in entries {
        let Some(obj) = entry.as_object() else {
            return Err("each authorization_details entry must be an object".into());
        };
        if obj.get("type").and_then(Value::as_str) != Some(DETAIL_TYPE) {
            continue;
        }
        let actions = obj
            .get("actions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty() && a.iter().all(Value::is_string))
            .ok_or("a Mercure authorization detail needs a non-empty actions array of strings")?;
        let topics = obj
            .get("topics")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or("a Mercure authorization detail needs a non-empty topics array")?;
        let mut matchers = Vec::with_capacity(topics.len());
        for t in topics {
            let sel = t
                .get("match")
                .and_then(Value::as_str)
                .ok_or("each topics entry needs a string match")?;
            let kind = match t.get("match_type") {
                None => Kind::Exact,
                Some(Value::String(s)) if s == "exact" => Kind::Exact,
                Some(Value::String(s)) if s == "urlpattern" => Kind::UrlPattern,
                Some(other) => return Err(format!("unsupported match_type {other}")),
            };
            matchers.push(compile(shared, ctx, kind, sel)?);
        }
        if let Some(p) = obj.get("payload") {
            if !p.is_object() {
                return Err("payload must be an object".into());
            }
            g.payload.get_or_insert_with(|| p.clone());
        }
        for a in actions {
            match a.as_str() {
                Some("publish") => g.publish.extend(matchers.iter().cloned()),
                Some("subscribe") => g.subscribe.extend(matchers.iter().cloned()),
                _ => {} // Unknown actions grant nothing.
            }
        }
    }
    Ok(g)
}

/// Grants from the 0.x `mercure` claim.
fn legacy_grants(
    claim: Option<Value>,
    ctx: &Ctx,
    shared: &Shared,
) -> Result<MercureGrants, String> {
    let mut g = MercureGrants {
        publish: Vec::new(),
        subscribe: Vec::new(),
        payload: None,
        exp: None,
    };
    let obj = match claim {
        None => return Ok(g),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("the mercure claim must be an object".into()),
    };
    let list = |name: &str| -> Result<Vec<Arc<Matcher>>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(v)) => v
                .iter()
                .map(|s| {
                    let s = s
                        .as_str()
                        .ok_or(format!("mercure.{name} must hold strings"))?;
                    compile(shared, ctx, Kind::Legacy, s)
                })
                .collect(),
            Some(_) => Err(format!("mercure.{name} must be an array of selectors")),
        }
    };
    g.publish = list("publish")?;
    g.subscribe = list("subscribe")?;
    g.payload = obj.get("payload").filter(|p| !p.is_null()).cloned();
    Ok(g)
}

fn compile(shared: &Shared, ctx: &Ctx, kind: Kind, sel: &str) -> Result<Arc<Matcher>, String> {
    let max = shared.hub.limits().max_topic_len;
    if sel.len() > max {
        return Err(format!(
            "a selector is {} bytes long; the limit is {max}",
            sel.len()
        ));
    }
    shared
        .mercure
        .matchers
        .get(kind, sel, &ctx.hub_url)
        .map_err(|e| e.to_string())
}
