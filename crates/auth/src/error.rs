//! Why a token is refused ([`AuthError`]) and why an authorization
//! configuration cannot work ([`ConfigError`]).
//!
//! Every [`AuthError`] message tells the client what to fix; none of them
//! reveals key material. [`AuthError::code`] is a stable identifier for the
//! server's rejection body. All of them are HTTP 401 (the token is not
//! acceptable); a valid token that does not cover a topic is the server's
//! 403, not an `AuthError`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;

/// Why a token was refused by [`crate::Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not three base64url parts, or its header is not a JSON
    /// object with a string `alg`.
    #[error("the token is not a JWS in compact form (base64url header.payload.signature): {0}")]
    Malformed(String),
    /// The header says `alg: none`: an unsigned token.
    #[error("unsigned tokens (alg \"none\") are refused: sign the token with one of {}", list(.allowed))]
    AlgNone {
        /// What the hub accepts.
        allowed: Vec<Algorithm>,
    },
    /// The header names an algorithm this hub does not implement.
    #[error("alg {alg:?} is not supported: sign the token with one of {}", list(.allowed))]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
        /// What the hub accepts.
        allowed: Vec<Algorithm>,
    },
    /// The algorithm is known, but no configured key accepts it (the
    /// configured algorithms or key types exclude it). This is where
    /// algorithm confusion ends: an HS256 token is only ever checked against a
    /// shared secret, never against a public key.
    #[error("alg {alg:?} is not accepted by this hub: sign the token with one of {}", list(.allowed))]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: Algorithm,
        /// What the hub accepts.
        allowed: Vec<Algorithm>,
    },
    /// The header's `kid` names no key the hub knows (it may have been
    /// rotated out of the JWKS).
    #[error("no key with kid {0:?} is known to this hub: sign with a current key from its key set")]
    UnknownKid(String),
    /// The hub has no key for this algorithm yet (its JWKS has not been
    /// fetched yet). Retrying later may work.
    #[error("the hub has no verification key loaded yet; retry shortly")]
    KeysUnavailable,
    /// No configured key verifies the signature.
    #[error(
        "the token's signature does not verify: sign it with the key this hub is configured with"
    )]
    BadSignature,
    /// A claim has the wrong type or shape (`exp` not a number, a selector
    /// that does not parse, ...).
    #[error("malformed claims: {0}")]
    BadClaims(String),
    /// The token has no `exp` and the hub requires one.
    #[error("the token has no exp claim: issue tokens with an expiry")]
    MissingExp,
    /// `exp` is not after the current time.
    #[error("the token expired at {} (unix time); get a new token", secs(*.exp))]
    Expired {
        /// The token's `exp`.
        exp: SystemTime,
    },
    /// `nbf` is after the current time (plus the configured leeway).
    #[error("the token is not valid before {} (unix time); check the issuer's clock", secs(*.nbf))]
    NotYetValid {
        /// The token's `nbf`.
        nbf: SystemTime,
    },
    /// `aud` is missing or names none of the configured audiences.
    #[error("the token's aud must include {}", quoted(.expected))]
    WrongAudience {
        /// The audiences this hub accepts.
        expected: Vec<String>,
    },
    /// `iss` is missing or is not a configured issuer.
    #[error("the token's iss must be {}", quoted(.expected))]
    WrongIssuer {
        /// The issuers this hub accepts.
        expected: Vec<String>,
    },
}

impl AuthError {
    /// A stable, machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "token_malformed",
            AuthError::AlgNone { .. } => "token_unsigned",
            AuthError::UnsupportedAlgorithm { .. } => "token_alg_unsupported",
            AuthError::AlgorithmNotAllowed { .. } => "token_alg_not_allowed",
            AuthError::UnknownKid(_) => "token_unknown_kid",
            AuthError::KeysUnavailable => "token_keys_unavailable",
            AuthError::BadSignature => "token_bad_signature",
            AuthError::BadClaims(_) => "token_bad_claims",
            AuthError::MissingExp => "token_missing_exp",
            AuthError::Expired { .. } => "token_expired",
            AuthError::NotYetValid { .. } => "token_not_yet_valid",
            AuthError::WrongAudience { .. } => "token_wrong_audience",
            AuthError::WrongIssuer { .. } => "token_wrong_issuer",
        }
    }
}

/// An authorization configuration that cannot work, with what to change.
/// The CLI exits 64 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The shared secret is shorter than [`crate::MIN_SECRET_LEN`].
    #[error(
        "the JWT secret is {0} bytes long; use at least {min} random bytes (for example: openssl rand -base64 48)",
        min = crate::MIN_SECRET_LEN
    )]
    SecretTooShort(usize),
    /// A key file cannot be read.
    #[error("cannot read key file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// A key file is not a PEM key of a supported type.
    #[error("key file {path}: {reason}")]
    BadKey {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JWKS document cannot be used.
    #[error("JWKS {source_name}: {reason}")]
    BadJwks {
        /// The file or URL.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The algorithm allow-list names something unknown, or `none`.
    #[error(
        "algorithm {0:?} is not supported; use some of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
    )]
    UnknownAlgorithm(String),
    /// No key source is configured at all.
    #[error(
        "no token verification key is configured: set a JWT secret, PEM public key files, a JWKS file or a JWKS URL"
    )]
    NoKeys,
    /// The allow-list excludes every configured key.
    #[error(
        "no configured key can verify any of the allowed algorithms ({0}); add a key of that type or widen the list"
    )]
    NoUsableKey(String),
    /// The JWKS URL is not http(s) or cannot be used.
    #[error("JWKS URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The crypto backend could not be selected (a build problem).
    #[error("no JWT crypto provider is available in this build")]
    NoCryptoProvider,
}

pub(crate) fn list(algs: &[Algorithm]) -> String {
    if algs.is_empty() {
        return "(none: the hub has no verification key)".into();
    }
    algs.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    if q.len() == 1 {
        q[0].clone()
    } else {
        format!("one of {}", q.join(", "))
    }
}

fn secs(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.subsec_nanos() == 0 => d.as_secs().to_string(),
        Ok(d) => format!("{:.3}", d.as_secs_f64()),
        Err(_) => "before 1970".into(),
    }
}
