//! Finding the token in a request: the `Authorization: Bearer` header, an
//! `access_token` query parameter (only where enabled), or a cookie
//! (EventSource cannot send headers).
//!
//! Precedence: the header, then the query parameter, then the cookie. The
//! explicit per-request ways win over the ambient cookie. A request with an
//! `Authorization` header that is not a usable bearer token is refused
//! rather than silently treated as anonymous.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// The query parameter that carries a token (RFC 6750 section 2.3).
pub const QUERY_PARAM: &str = "access_token";

/// The default cookie name.
pub const DEFAULT_COOKIE: &str = "herald_token";

/// Where tokens may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSources {
    /// The cookie that may carry a token (`None`: cookies are not read).
    pub cookie: Option<String>,
    /// Whether `access_token` in the query string is accepted. Tokens in
    /// URLs end up in logs and browser history; enable only where clients
    /// can do nothing else.
    pub query: bool,
}

impl Default for TokenSources {
    fn default() -> Self {
        TokenSources {
            cookie: Some(DEFAULT_COOKIE.to_owned()),
            query: false,
        }
    }
}

/// Where a token was found. Cookie-authenticated state-changing requests
/// need a CSRF check (`Origin`), which is why this is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The `access_token` query parameter.
    Query,
    /// The configured cookie.
    Cookie,
}

/// A token as found in a request (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken<'a> {
    /// The compact JWS.
    pub token: Cow<'a, str>,
    /// Where it came from.
    pub source: TokenSource,
}

/// Why the request's token cannot be read. All are HTTP 400/401: the client
/// sent something it should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// `Authorization` is present but is not `Bearer <token>`.
    #[error("the Authorization header must be \"Bearer <token>\"")]
    NotBearer,
    /// More than one `Authorization` header, or more than one
    /// `access_token` parameter: ambiguous.
    #[error("send exactly one token (found several {0})")]
    Several(&'static str),
    /// `access_token` is in the query string but this hub does not accept
    /// tokens in URLs.
    #[error(
        "tokens in the URL (access_token) are disabled on this hub: send an Authorization: Bearer header or the {0} cookie"
    )]
    QueryDisabled(String),
    /// The token is empty.
    #[error("the token is empty")]
    Empty,
}

impl ExtractError {
    /// A stable, machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::NotBearer => "token_not_bearer",
            ExtractError::Several(_) => "token_ambiguous",
            ExtractError::QueryDisabled(_) => "token_in_url_disabled",
            ExtractError::Empty => "token_empty",
        }
    }
}

/// Finds the request's token: `Ok(None)` for an anonymous request.
/// `query` is the raw query string (without `?`), if any.
pub fn extract_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    sources: &TokenSources,
) -> Result<Option<FoundToken<'a>>, ExtractError> {
    if let Some(token) = from_header(headers)? {
        return Ok(Some(FoundToken {
            token: Cow::Borrowed(token),
            source: TokenSource::Header,
        }));
    }
    if let Some(token) = from_query(query)? {
        if !sources.query {
            let cookie = sources.cookie.as_deref().unwrap_or(DEFAULT_COOKIE);
            return Err(ExtractError::QueryDisabled(cookie.to_owned()));
        }
        return Ok(Some(FoundToken {
            token,
            source: TokenSource::Query,
        }));
    }
    if let Some(name) = &sources.cookie
        && let Some(token) = from_cookie(headers, name)?
    {
        return Ok(Some(FoundToken {
            token: Cow::Borrowed(token),
            source: TokenSource::Cookie,
        }));
    }
    Ok(None)
}

fn from_header(headers: &HeaderMap) -> Result<Option<&str>, ExtractError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::Several("Authorization headers"));
    }
    let value = value.to_str().map_err(|_| ExtractError::NotBearer)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(ExtractError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ExtractError::NotBearer);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(ExtractError::Empty);
    }
    if token.contains(' ') {
        return Err(ExtractError::NotBearer);
    }
    Ok(Some(token))
}

fn from_query(query: Option<&str>) -> Result<Option<Cow<'_, str>>, ExtractError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == QUERY_PARAM {
            if found.is_some() {
                return Err(ExtractError::Several("access_token parameters"));
            }
            found = Some(value);
        }
    }
    match found {
        Some(v) if v.is_empty() => Err(ExtractError::Empty),
        other => Ok(other),
    }
}

/// The first cookie called `name` across every `Cookie` header (HTTP/2 may
/// split them). Browsers send the most specific path first.
fn from_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ExtractError> {
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k.trim() == name {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                if v.is_empty() {
                    return Err(ExtractError::Empty);
                }
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
