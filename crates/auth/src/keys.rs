//! Verification keys and the algorithms each one may verify.
//!
//! A key's algorithms come from its type, never from a token: a shared secret
//! verifies HS256/384/512 only, an RSA key RS*/PS* only, a P-256 key ES256,
//! a P-384 key ES384, an Ed25519 key EdDSA. A JWK's own `alg` narrows that to
//! one. This is what refuses algorithm confusion (an HS256 token "signed" with
//! an RSA public key as the secret is never checked against that key as a
//! secret).

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::error::ConfigError;

/// Shortest shared secret accepted, in bytes: HS256's output size (RFC 7518
/// section 3.2 requires a key at least as long as the hash).
pub const MIN_SECRET_LEN: usize = 32;

/// Every algorithm this hub implements.
pub(crate) const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One key that can verify signatures.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// The JWK's `kid`, if it came from a key set that names it.
    pub(crate) kid: Option<String>,
    /// The key material, tagged with its family by jsonwebtoken.
    pub(crate) key: DecodingKey,
    /// The algorithms this key may verify (see the module doc).
    pub(crate) algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// A shared secret for HS256/384/512.
    pub(crate) fn secret(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|_| ConfigError::SecretTooShort(secret.len()))?;
        Ok(VerifyKey {
            kid: None,
            key,
            algorithms: AlgorithmFamily::Hmac.algorithms().to_vec(),
        })
    }

    /// A PEM public key file (RSA, EC P-256/P-384 or Ed25519).
    pub(crate) fn pem_file(path: &Path) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        VerifyKey::pem(&pem).map_err(|reason| ConfigError::BadKey {
            path: path.display().to_string(),
            reason,
        })
    }

    /// A PEM public key.
    pub(crate) fn pem(pem: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("PRIVATE KEY-----") {
            return Err("holds a private key; configure the public key \
                 (openssl pkey -in FILE -pubout) and keep the private key with the issuer"
                .into());
        }
        if !text.contains("-----BEGIN ") {
            return Err("is not PEM (expected -----BEGIN PUBLIC KEY-----)".into());
        }
        let key = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|_| {
                "is not an RSA, EC (P-256, P-384) or Ed25519 public key in PEM".to_string()
            })?;
        let algorithms = algorithms_of(&key)?;
        Ok(VerifyKey {
            kid: None,
            key,
            algorithms,
        })
    }

    /// One key of a JWK set. Refuses keys meant for encryption, unsupported
    /// curves, and shared secrets shorter than [`MIN_SECRET_LEN`].
    pub(crate) fn jwk(jwk: &Jwk) -> Result<Self, String> {
        if let Some(u) = &jwk.common.public_key_use
            && *u != PublicKeyUse::Signature
        {
            return Err("is not a signature key (use != sig)".into());
        }
        match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p)
                if !matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) =>
            {
                return Err(format!("curve {:?} is not supported", p.curve));
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve != EllipticCurve::Ed25519 => {
                return Err(format!("curve {:?} is not supported", p.curve));
            }
            _ => {}
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
        if key.family() == AlgorithmFamily::Hmac {
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            if len < MIN_SECRET_LEN {
                return Err(format!(
                    "shared secret is {len} bytes; at least {MIN_SECRET_LEN} are required"
                ));
            }
        }
        let mut algorithms = algorithms_of(&key)?;
        if let Some(alg) = jwk.common.key_algorithm {
            let alg = Algorithm::try_from(alg)
                .map_err(|_| format!("alg {alg} is not a signature algorithm"))?;
            if !algorithms.contains(&alg) {
                return Err(format!("alg {alg:?} does not fit the key type"));
            }
            algorithms = vec![alg];
        }
        Ok(VerifyKey {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        })
    }
}

/// The algorithms a key of this type (and curve) may verify.
fn algorithms_of(key: &DecodingKey) -> Result<Vec<Algorithm>, String> {
    Ok(match key.family() {
        AlgorithmFamily::Ec => {
            // An uncompressed SEC1 point: 0x04 || x || y.
            match key.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => vec![Algorithm::ES256],
                Ok(97) => vec![Algorithm::ES384],
                _ => return Err("EC key: only P-256 and P-384 are supported".into()),
            }
        }
        family => family.algorithms().to_vec(),
    })
}

/// Parses an algorithm name from configuration; `none` is refused.
pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm, ConfigError> {
    name.parse::<Algorithm>()
        .map_err(|_| ConfigError::UnknownAlgorithm(name.to_owned()))
}
