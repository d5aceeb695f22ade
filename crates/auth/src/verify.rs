//! [`Verifier`]: checks a token's signature against the configured keys,
//! then its claims against the time it is given.
//!
//! Order of checks: the compact form and header (`alg: none` and unknown
//! algorithms refused by name, `crit` refused), the algorithm against the
//! allow-list and the keys' types, the key (by `kid` in the JWK sets, else
//! every configured key that fits the algorithm, at most
//! [`MAX_KEYS_TRIED`]), the signature, then `exp`, `nbf`, `aud`, `iss` and the
//! `herald` claim.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::config::AuthConfig;
use crate::error::{AuthError, ConfigError};
use crate::grants::Grants;
use crate::jwks::{KeySource, Origin};
use crate::keys::{ALL_ALGORITHMS, VerifyKey, parse_algorithm};

/// Most keys one token without a `kid` is tried against (bounds the work an
/// anonymous request can cause when a JWKS holds many keys).
pub const MAX_KEYS_TRIED: usize = 8;

/// A verified Herald token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// What the token allows (the `herald` claim; empty when absent).
    pub grants: Grants,
    /// When the token expires; streams opened with it must end by then.
    pub exp: Option<SystemTime>,
    /// The token's `sub`, for logs.
    pub subject: Option<String>,
    /// The token's `payload` claim: what presence shows of this subscriber.
    pub payload: Option<serde_json::Value>,
}

impl Claims {
    /// Time left before `exp` at `now` (`None`: the token never expires).
    pub fn expires_in(&self, now: SystemTime) -> Option<Duration> {
        self.exp
            .map(|exp| exp.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// A verified token with its application claims decoded as `T` (for
/// protocols whose grants live in another claim, such as Mercure's).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    /// The application claims (the payload decoded as `T`).
    pub claims: T,
    /// When the token expires.
    pub exp: Option<SystemTime>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The header's `typ` (Mercure 1.0 requires `at+jwt`).
    pub typ: Option<String>,
    /// The token's `aud` values (empty when absent).
    pub audience: Vec<String>,
    /// The token's `iss`.
    pub issuer: Option<String>,
}

/// Checks tokens. Cheap to clone (shared state); JWK sets refresh in the
/// background through [`Verifier::run_refresh`].
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The secret and the PEM keys: fixed for the life of the process.
    static_keys: Vec<VerifyKey>,
    /// JWK sets (file and/or URL), each keeping its last good set.
    pub(crate) sources: Vec<KeySource>,
    /// The configured allow-list (`None`: whatever fits a key).
    allowed: Option<Vec<Algorithm>>,
    audience: Vec<String>,
    issuer: Vec<String>,
    leeway: Duration,
    require_exp: bool,
    /// How often JWK sets are reloaded.
    pub(crate) refresh: Duration,
    /// Only built when a JWKS URL is configured.
    pub(crate) client: Option<reqwest::Client>,
    /// Woken when a token names an unknown `kid`: the refresher then reloads
    /// early (a key rotation), at most once per [`crate::KID_MISS_COOLDOWN`].
    pub(crate) kid_miss: Notify,
}

impl Verifier {
    /// Builds a verifier: reads the secret, the PEM files and the JWKS file
    /// now (errors name what to fix); a JWKS URL is fetched later by
    /// [`Verifier::refresh`] / [`Verifier::run_refresh`].
    pub fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(ConfigError::NoCryptoProvider);
        }
        let mut static_keys = Vec::new();
        if let Some(secret) = &config.secret {
            static_keys.push(VerifyKey::secret(secret)?);
        }
        for path in &config.public_keys {
            static_keys.push(VerifyKey::pem_file(path)?);
        }
        let allowed = if config.algorithms.is_empty() {
            None
        } else {
            let mut v = Vec::new();
            for name in &config.algorithms {
                let alg = parse_algorithm(name.trim())?;
                if !v.contains(&alg) {
                    v.push(alg);
                }
            }
            Some(v)
        };
        let mut sources = Vec::new();
        if let Some(path) = &config.jwks_file {
            let source = KeySource::new(Origin::File(path.clone()));
            source.load_file_now()?;
            sources.push(source);
        }
        let mut client = None;
        if let Some(url) = &config.jwks_url {
            let url = parse_jwks_url(url)?;
            client = Some(
                reqwest::Client::builder()
                    .timeout(crate::jwks::JWKS_FETCH_TIMEOUT)
                    .connect_timeout(crate::jwks::JWKS_FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| ConfigError::BadUrl {
                        url: url.to_string(),
                        reason: format!("cannot build an HTTP client: {e}"),
                    })?,
            );
            sources.push(KeySource::new(Origin::Url(url)));
        }
        let verifier = Verifier {
            inner: Arc::new(Inner {
                static_keys,
                sources,
                allowed,
                audience: config.audience,
                issuer: config.issuer,
                leeway: config.leeway,
                require_exp: config.require_exp,
                refresh: config.jwks_refresh.max(Duration::from_secs(1)),
                client,
                kid_miss: Notify::new(),
            }),
        };
        if verifier.inner.static_keys.is_empty() && verifier.inner.sources.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        let has_url = verifier.inner.client.is_some();
        if !has_url && verifier.accepted_algorithms().is_empty() {
            let list = verifier
                .inner
                .allowed
                .as_deref()
                .map(crate::error::list)
                .unwrap_or_else(|| "none configured".into());
            return Err(ConfigError::NoUsableKey(list));
        }
        Ok(verifier)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The algorithms a token may use now: those that fit a loaded key,
    /// within the allow-list.
    pub fn accepted_algorithms(&self) -> Vec<Algorithm> {
        let mut fit: Vec<Algorithm> = Vec::new();
        let mut add = |keys: &[VerifyKey]| {
            for k in keys {
                for a in &k.algorithms {
                    if !fit.contains(a) {
                        fit.push(*a);
                    }
                }
            }
        };
        add(&self.inner.static_keys);
        for s in &self.inner.sources {
            if let Some(keys) = s.keys() {
                add(&keys);
            }
        }
        ALL_ALGORITHMS
            .into_iter()
            .filter(|a| fit.contains(a))
            .filter(|a| self.inner.allowed.as_ref().is_none_or(|l| l.contains(a)))
            .collect()
    }

    /// Verifies a Herald token at `now`: signature, `exp`, `nbf`, `aud`,
    /// `iss`, and the `herald` claim's grants.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, AuthError> {
        #[derive(serde::Deserialize)]
        struct HeraldClaim {
            #[serde(default)]
            herald: Option<Grants>,
            #[serde(default)]
            payload: Option<serde_json::Value>,
        }
        let v: Verified<HeraldClaim> = self.verify_as(token, now)?;
        Ok(Claims {
            grants: v.claims.herald.unwrap_or_default(),
            exp: v.exp,
            subject: v.subject,
            payload: v.claims.payload,
        })
    }

    /// Verifies a token like [`Verifier::verify`] and decodes its payload
    /// as `T` (unknown members are ignored unless `T` says otherwise).
    pub fn verify_as<T: DeserializeOwned>(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Verified<T>, AuthError> {
        let header = parse_header(token)?;
        let alg = self.check_algorithm(&header.alg)?;
        let payload: Payload<T> = self.check_signature(token, alg, header.kid.as_deref())?;
        self.check_claims(&payload, now)?;
        Ok(Verified {
            claims: payload.extra,
            exp: payload.exp.map(|d| d.0),
            subject: payload.sub,
            typ: header.typ,
            audience: match payload.aud {
                None => Vec::new(),
                Some(OneOrMany::One(a)) => vec![a],
                Some(OneOrMany::Many(v)) => v,
            },
            issuer: payload.iss,
        })
    }

    fn check_algorithm(&self, alg: &str) -> Result<Algorithm, AuthError> {
        let accepted = self.accepted_algorithms();
        if alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::AlgNone { allowed: accepted });
        }
        let Ok(parsed) = alg.parse::<Algorithm>() else {
            return Err(AuthError::UnsupportedAlgorithm {
                alg: alg.to_owned(),
                allowed: accepted,
            });
        };
        if accepted.contains(&parsed) {
            return Ok(parsed);
        }
        let waiting = self.inner.sources.iter().any(|s| s.keys().is_none());
        if waiting
            && self
                .inner
                .allowed
                .as_ref()
                .is_none_or(|l| l.contains(&parsed))
        {
            return Err(AuthError::KeysUnavailable);
        }
        Err(AuthError::AlgorithmNotAllowed {
            alg: parsed,
            allowed: accepted,
        })
    }

    /// The keys to try, in order: by `kid` in the JWK sets when the token
    /// names one, else (or when the `kid` is unknown there) the static keys,
    /// then the sets' keys; only keys whose type fits `alg`.
    fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Result<Vec<VerifyKey>, AuthError> {
        let fits = |k: &&VerifyKey| k.algorithms.contains(&alg);
        let sets: Vec<Arc<[VerifyKey]>> =
            self.inner.sources.iter().filter_map(|s| s.keys()).collect();
        if let Some(kid) = kid
            && !self.inner.sources.is_empty()
        {
            let by_kid: Vec<VerifyKey> = sets
                .iter()
                .flat_map(|s| s.iter())
                .filter(|k| k.kid.as_deref() == Some(kid))
                .filter(fits)
                .cloned()
                .collect();
            if !by_kid.is_empty() {
                return Ok(by_kid);
            }
            let statics: Vec<VerifyKey> = self
                .inner
                .static_keys
                .iter()
                .filter(fits)
                .cloned()
                .collect();
            if !statics.is_empty() {
                return Ok(statics);
            }
            self.inner.kid_miss.notify_one();
            if self.inner.sources.iter().any(|s| s.keys().is_none()) {
                return Err(AuthError::KeysUnavailable);
            }
            return Err(AuthError::UnknownKid(kid.to_owned()));
        }
        let all: Vec<VerifyKey> = self
            .inner
            .static_keys
            .iter()
            .chain(sets.iter().flat_map(|s| s.iter()))
            .filter(fits)
            .take(MAX_KEYS_TRIED)
            .cloned()
            .collect();
        if all.is_empty() {
            return Err(AuthError::KeysUnavailable);
        }
        Ok(all)
    }

    fn check_signature<T: DeserializeOwned>(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Payload<T>, AuthError> {
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        for key in self.candidates(alg, kid)? {
            match jsonwebtoken::decode::<Payload<T>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    // The signature checked out; the payload did not parse.
                    ErrorKind::Json(err) => return Err(AuthError::BadClaims(err.to_string())),
                    ErrorKind::Utf8(_) => {
                        return Err(AuthError::BadClaims("the payload is not UTF-8".into()));
                    }
                    ErrorKind::Base64(_) => {
                        return Err(AuthError::Malformed("a part is not base64url".into()));
                    }
                    ErrorKind::InvalidToken => {
                        return Err(AuthError::Malformed("the header is not acceptable".into()));
                    }
                    // Wrong key (or a key that does not fit): try the next.
                    _ => continue,
                },
            }
        }
        Err(AuthError::BadSignature)
    }

    fn check_claims<T>(&self, p: &Payload<T>, now: SystemTime) -> Result<(), AuthError> {
        match p.exp {
            None if self.inner.require_exp => return Err(AuthError::MissingExp),
            Some(NumericDate(exp)) if now >= exp => return Err(AuthError::Expired { exp }),
            _ => {}
        }
        if let Some(NumericDate(nbf)) = p.nbf
            && now.checked_add(self.inner.leeway).unwrap_or(now) < nbf
        {
            return Err(AuthError::NotYetValid { nbf });
        }
        if !self.inner.audience.is_empty() {
            let ok = match &p.aud {
                Some(OneOrMany::One(a)) => self.inner.audience.contains(a),
                Some(OneOrMany::Many(v)) => v.iter().any(|a| self.inner.audience.contains(a)),
                None => false,
            };
            if !ok {
                return Err(AuthError::WrongAudience {
                    expected: self.inner.audience.clone(),
                });
            }
        }
        if !self.inner.issuer.is_empty()
            && !p
                .iss
                .as_ref()
                .is_some_and(|i| self.inner.issuer.contains(i))
        {
            return Err(AuthError::WrongIssuer {
                expected: self.inner.issuer.clone(),
            });
        }
        Ok(())
    }
}

fn parse_jwks_url(url: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        "http" => Err(bad(
            "keys fetched over plain http could be replaced in transit; use https (http is allowed for loopback addresses only)",
        )),
        _ => Err(bad("use an https URL")),
    }
}

/// The header members the verifier reads itself (before any key is used).
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

fn parse_header(token: &str) -> Result<Header, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    if h.is_empty() || p.is_empty() {
        return Err(AuthError::Malformed("empty header or payload".into()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| AuthError::Malformed("the header is not base64url".into()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("the header is not JSON".into()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| AuthError::Malformed("the header is not a JSON object".into()))?;
    let alg = obj
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(|| AuthError::Malformed("the header has no string alg".into()))?
        .to_owned();
    if obj.contains_key("crit") || obj.contains_key("b64") {
        return Err(AuthError::Malformed(
            "critical header extensions (crit, b64) are not supported".into(),
        ));
    }
    let kid = match obj.get("kid") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(AuthError::Malformed("kid must be a string".into())),
    };
    let typ = obj.get("typ").and_then(|t| t.as_str()).map(str::to_owned);
    Ok(Header { alg, kid, typ })
}

/// The registered claims the verifier checks, and the rest as `T`.
#[derive(serde::Deserialize)]
struct Payload<T> {
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(flatten)]
    extra: T,
}

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
#[derive(Clone, Copy)]
struct NumericDate(SystemTime);

impl<'de> serde::Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .map(NumericDate)
            .ok_or_else(|| {
                serde::de::Error::custom("a date claim must be a non-negative number of seconds")
            })
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
