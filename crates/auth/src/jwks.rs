//! JWK sets from a file or a URL: parsed into [`VerifyKey`]s, cached, and
//! refreshed in the background, keeping the last good set when a refresh
//! fails.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;

use crate::error::ConfigError;
use crate::keys::VerifyKey;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// How long one JWKS fetch may take (connect, send, read the body).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a key set comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A local file, re-read on every refresh.
    File(PathBuf),
    /// An http(s) URL, fetched on every refresh.
    Url(reqwest::Url),
}

/// One key set and its last good contents.
#[derive(Debug)]
pub(crate) struct KeySource {
    pub(crate) origin: Origin,
    /// The last set that parsed, or `None` before the first success (a URL
    /// not fetched yet). Swapped whole; readers clone the `Arc`.
    keys: RwLock<Option<Arc<[VerifyKey]>>>,
}

impl KeySource {
    pub(crate) fn new(origin: Origin) -> Self {
        KeySource {
            origin,
            keys: RwLock::new(None),
        }
    }

    /// The current keys, if any set has been loaded yet.
    pub(crate) fn keys(&self) -> Option<Arc<[VerifyKey]>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, keys: Arc<[VerifyKey]>) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(keys);
    }

    /// A name for messages: the path or the URL.
    pub(crate) fn name(&self) -> String {
        match &self.origin {
            Origin::File(p) => p.display().to_string(),
            Origin::Url(u) => u.to_string(),
        }
    }

    /// Loads a file source now (at start-up, where failure is fatal).
    pub(crate) fn load_file_now(&self) -> Result<usize, ConfigError> {
        let Origin::File(path) = &self.origin else {
            return Ok(0);
        };
        let bytes = std::fs::read(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let keys = parse(&bytes, &self.name())?;
        let n = keys.len();
        self.store(keys.into());
        Ok(n)
    }

    /// Reloads this source. On failure the previous set stays in use and the
    /// error is returned (for the caller to log).
    pub(crate) async fn refresh(
        &self,
        client: Option<&reqwest::Client>,
    ) -> Result<usize, ConfigError> {
        let name = self.name();
        let bytes = match &self.origin {
            Origin::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|e| ConfigError::Unreadable {
                        path: name.clone(),
                        reason: e.to_string(),
                    })?
            }
            Origin::Url(url) => {
                let Some(client) = client else {
                    return Err(bad(&name, "no HTTP client"));
                };
                fetch(client, url.clone())
                    .await
                    .map_err(|reason| bad(&name, &reason))?
            }
        };
        let keys = parse(&bytes, &name)?;
        let n = keys.len();
        self.store(keys.into());
        Ok(n)
    }
}

fn bad(name: &str, reason: &str) -> ConfigError {
    ConfigError::BadJwks {
        source_name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// GETs a JWKS document, refusing non-2xx answers and bodies over
/// [`MAX_JWKS_BYTES`].
async fn fetch(client: &reqwest::Client, url: reqwest::Url) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .header("accept", "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| format!("fetch failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetch answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot verify
/// signatures here (encryption keys, unsupported curves or algorithms) are
/// skipped with a warning; a document with no usable key is an error.
pub(crate) fn parse(bytes: &[u8], name: &str) -> Result<Vec<VerifyKey>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| bad(name, &format!("not a JWK set ({{\"keys\": [...]}}): {e}")))?;
    let mut keys = Vec::with_capacity(doc.keys.len());
    for (i, value) in doc.keys.into_iter().enumerate() {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_owned();
        let result = serde_json::from_value::<Jwk>(value)
            .map_err(|e| format!("not a JWK: {e}"))
            .and_then(|jwk| VerifyKey::jwk(&jwk));
        match result {
            Ok(k) => keys.push(k),
            Err(reason) => {
                tracing::warn!(jwks = name, index = i, kid, "skipping JWKS key: {reason}");
            }
        }
    }
    if keys.is_empty() {
        return Err(bad(name, "holds no usable signature key"));
    }
    Ok(keys)
}
