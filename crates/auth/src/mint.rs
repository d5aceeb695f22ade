//! Minting tokens (`herald token`, tests, scripts): a shared secret or a
//! PEM private key signs a `herald` claim with an expiry.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};

use crate::error::ConfigError;
use crate::grants::Grants;
use crate::keys::MIN_SECRET_LEN;

/// A key that signs tokens, with the algorithm it signs with.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A jsonwebtoken PEM loader for one key type.
type LoadPem = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// `now + ttl` is not representable (or before the epoch).
    #[error("the token's lifetime is out of range")]
    BadLifetime,
    /// The crypto backend refused to sign.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Optional registered claims for a minted token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintOptions {
    /// `aud` (set it to the hub's configured audience).
    pub audience: Option<String>,
    /// `iss` (set it to the hub's configured issuer).
    pub issuer: Option<String>,
    /// `sub`: who the token is for (shows in the hub's logs).
    pub subject: Option<String>,
    /// `payload`: what presence shows of a subscriber using this token.
    pub payload: Option<serde_json::Value>,
}

impl SigningKey {
    /// A shared secret signing with `alg` (HS256, HS384 or HS512).
    pub fn from_secret(secret: &[u8], alg: Algorithm) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(ConfigError::UnknownAlgorithm(format!(
                "{alg:?} with a shared secret"
            )));
        }
        let key = EncodingKey::from_secret(secret)
            .map_err(|_| ConfigError::SecretTooShort(secret.len()))?;
        Ok(SigningKey {
            key,
            alg,
            kid: None,
        })
    }

    /// A PEM private key file: RSA signs RS256, EC P-256 ES256, EC P-384
    /// ES384, Ed25519 EdDSA (change it with [`SigningKey::with_algorithm`]).
    pub fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        SigningKey::from_pem(&pem).map_err(|reason| ConfigError::BadKey {
            path: path.display().to_string(),
            reason,
        })
    }

    /// A PEM private key (PKCS#8, or PKCS#1 for RSA).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(pem);
        if !text.contains("PRIVATE KEY-----") {
            return Err("is not a PEM private key (-----BEGIN PRIVATE KEY-----); \
                        tokens are signed with the private half"
                .into());
        }
        let candidates: [(LoadPem, &[Algorithm]); 3] = [
            (EncodingKey::from_rsa_pem, &[Algorithm::RS256]),
            (
                EncodingKey::from_ec_pem,
                &[Algorithm::ES256, Algorithm::ES384],
            ),
            (EncodingKey::from_ed_pem, &[Algorithm::EdDSA]),
        ];
        for (load, algs) in candidates {
            let Ok(key) = load(pem) else { continue };
            // Sign once to find the curve and to prove the key works now
            // rather than at the first token.
            for &alg in algs {
                if jsonwebtoken::crypto::sign(b"probe", &key, alg).is_ok() {
                    return Ok(SigningKey {
                        key,
                        alg,
                        kid: None,
                    });
                }
            }
            return Err("the key cannot sign (unsupported curve or size?)".into());
        }
        Err("is not an RSA, EC (P-256, P-384) or Ed25519 private key".into())
    }

    /// Signs with `alg` instead, if it fits the key's type (e.g. PS256 or
    /// RS512 for an RSA key).
    pub fn with_algorithm(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if alg.family() != self.key.family()
            || jsonwebtoken::crypto::sign(b"probe", &self.key, alg).is_err()
        {
            return Err(ConfigError::UnknownAlgorithm(format!(
                "{alg:?} for a {:?} key",
                self.key.family()
            )));
        }
        self.alg = alg;
        Ok(self)
    }

    /// Puts `kid` in the tokens' header (for hubs that look keys up in a
    /// JWKS).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Mints a token granting `grants`, valid from `now` for `ttl`.
pub fn mint(
    key: &SigningKey,
    grants: &Grants,
    ttl: Duration,
    now: SystemTime,
) -> Result<String, MintError> {
    mint_with(key, grants, ttl, now, &MintOptions::default())
}

/// [`mint`] with `aud`, `iss` and `sub`.
pub fn mint_with(
    key: &SigningKey,
    grants: &Grants,
    ttl: Duration,
    now: SystemTime,
    options: &MintOptions,
) -> Result<String, MintError> {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        iat: u64,
        exp: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a serde_json::Value>,
        herald: &'a Grants,
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| MintError::BadLifetime)?;
    let exp = iat.checked_add(ttl).ok_or(MintError::BadLifetime)?;
    // Round exp up to whole seconds so the token lives at least `ttl`.
    let exp = exp.as_secs() + u64::from(exp.subsec_nanos() > 0);
    let payload = Payload {
        iat: iat.as_secs(),
        exp,
        aud: options.audience.as_deref(),
        iss: options.issuer.as_deref(),
        sub: options.subject.as_deref(),
        payload: options.payload.as_ref(),
        herald: grants,
    };
    let mut header = Header::new(key.alg);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, &payload, &key.key).map_err(|e| MintError::Signing(e.to_string()))
}
