//! What a [`crate::Verifier`] is built from.

use std::path::PathBuf;
use std::time::Duration;

/// How tokens are verified. Every field is optional; a verifier needs at
/// least one key source (a secret, a PEM file, or a JWKS).
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Shared secret for HS256/384/512, at least [`crate::MIN_SECRET_LEN`]
    /// bytes.
    pub secret: Option<Vec<u8>>,
    /// PEM public key files (RSA, EC P-256/P-384, Ed25519): each verifies
    /// the algorithms of its key type.
    pub public_keys: Vec<PathBuf>,
    /// A JWKS file, re-read every `jwks_refresh`.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (https, or http on a loopback address), fetched every
    /// `jwks_refresh` and when a token names an unknown `kid`.
    pub jwks_url: Option<String>,
    /// How often JWK sets are reloaded.
    pub jwks_refresh: Duration,
    /// Algorithm allow-list by name (`"RS256"`, ...). Empty: every algorithm
    /// that fits a configured key.
    pub algorithms: Vec<String>,
    /// Accepted `aud` values; a token's `aud` must include one. Empty: `aud`
    /// is not checked.
    pub audience: Vec<String>,
    /// Accepted `iss` values. Empty: `iss` is not checked.
    pub issuer: Vec<String>,
    /// Clock skew tolerated for `nbf` (a token minted on a machine whose
    /// clock is slightly ahead). `exp` is never extended: a stream closes at
    /// `exp`.
    pub leeway: Duration,
    /// Whether tokens without `exp` are refused.
    pub require_exp: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_keys", &self.public_keys)
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("algorithms", &self.algorithms)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .finish()
    }
}

impl AuthConfig {
    /// Whether any key source is configured.
    pub fn has_keys(&self) -> bool {
        self.secret.is_some()
            || !self.public_keys.is_empty()
            || self.jwks_file.is_some()
            || self.jwks_url.is_some()
    }
}
