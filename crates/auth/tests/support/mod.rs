//! Shared helpers: fixture keys, a fixed clock, and hand-made tokens.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_auth::{Algorithm, AuthConfig, Grants, SigningKey, TopicPattern};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A fixed "now": 2023-11-14T22:13:20Z.
pub const NOW_SECS: u64 = 1_700_000_000;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

pub fn grants(publish: &[&str], subscribe: &[&str]) -> Grants {
    let parse = |v: &[&str]| v.iter().map(|s| TopicPattern::parse(s).unwrap()).collect();
    Grants {
        publish: parse(publish),
        subscribe: parse(subscribe),
        ..Grants::default()
    }
}

pub fn config() -> AuthConfig {
    AuthConfig {
        require_exp: true,
        jwks_refresh: Duration::from_secs(300),
        ..AuthConfig::default()
    }
}

pub fn secret_config() -> AuthConfig {
    AuthConfig {
        secret: Some(SECRET.to_vec()),
        ..config()
    }
}

pub fn pem_config(public: &[&str]) -> AuthConfig {
    AuthConfig {
        public_keys: public.iter().map(|p| fixture(p)).collect(),
        ..config()
    }
}

/// The signing key of a fixture private key.
pub fn signing(private: &str) -> SigningKey {
    SigningKey::from_pem(&read(private)).unwrap()
}

/// jsonwebtoken's encoding key for a fixture, by family.
pub fn encoding(private: &str) -> EncodingKey {
    let pem = read(private);
    EncodingKey::from_rsa_pem(&pem)
        .or_else(|_| EncodingKey::from_ec_pem(&pem))
        .or_else(|_| EncodingKey::from_ed_pem(&pem))
        .unwrap()
}

/// A token with exactly these claims, signed by `key` with `alg`.
pub fn token(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn hs(claims: &Value) -> String {
    token(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
}

/// Claims valid at [`now`] for an hour, granting publish on /a/*.
pub fn good_claims() -> Value {
    json!({"exp": NOW_SECS + 3600, "herald": {"publish": ["/a/*"], "subscribe": ["*"]}})
}

/// A token whose header is `header` (raw JSON), with a bogus signature.
pub fn raw(header: &str, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

/// A public JWK for a fixture public key, with `kid`.
pub fn jwk(public: &str, kid: &str) -> Value {
    let pem = read(public);
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .unwrap();
    let mut jwk = Jwk::from_decoding_key(&key, None).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

pub fn jwks(keys: &[(&str, &str)]) -> String {
    json!({"keys": keys.iter().map(|(p, k)| jwk(p, k)).collect::<Vec<_>>()}).to_string()
}
