//! The authorization settings: validated into a [`Verifier`] (keys read and
//! checked at start, exit 64 naming what to fix) and the request-side
//! policy.

use std::time::Duration;

use herald_auth::{AuthConfig, MintOptions, TokenSources, Verifier};

use super::{BadConfig, Settings};

/// Authorization, validated.
#[derive(Clone)]
pub struct AuthSettings {
    /// Verifies tokens; `None` when no key is configured (then only `--dev`
    /// can publish).
    pub verifier: Option<Verifier>,
    /// The shared secret, for `herald token` to sign with.
    pub secret: Option<Vec<u8>>,
    /// `aud` and `iss` that minted tokens must carry to pass this hub.
    pub mint: MintOptions,
    /// Where requests may carry their token.
    pub sources: TokenSources,
    /// Whether clients without a token may subscribe (public events only).
    pub anonymous_subscribe: bool,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("verifier", &self.verifier)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("mint", &self.mint)
            .field("sources", &self.sources)
            .field("anonymous_subscribe", &self.anonymous_subscribe)
            .finish()
    }
}

/// Builds the verifier from the settings (reading every key file now).
pub(super) fn validate(s: &Settings) -> Result<AuthSettings, BadConfig> {
    let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let secret = non_empty(&s.jwt_secret).map(String::into_bytes);
    if s.jwks_refresh_secs == 0 {
        return Err(BadConfig("jwks_refresh_secs must be greater than 0".into()));
    }
    let config = AuthConfig {
        secret: secret.clone(),
        public_keys: s.jwt_public_keys.clone(),
        jwks_file: (!s.jwks_file.as_os_str().is_empty()).then(|| s.jwks_file.clone()),
        jwks_url: non_empty(&s.jwks_url),
        jwks_refresh: Duration::from_secs(s.jwks_refresh_secs),
        algorithms: s
            .jwt_algorithms
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
        audience: non_empty(&s.jwt_audience).into_iter().collect(),
        issuer: non_empty(&s.jwt_issuer).into_iter().collect(),
        leeway: Duration::from_secs(s.jwt_leeway_secs),
        require_exp: s.jwt_require_exp,
    };
    let verifier = if config.has_keys() {
        Some(Verifier::new(config).map_err(|e| BadConfig(format!("token verification: {e}")))?)
    } else {
        None
    };
    if s.token_cookie
        .contains(|c: char| !c.is_ascii_graphic() || "()<>@,;:\\\"/[]?={}".contains(c))
    {
        return Err(BadConfig(format!(
            "token_cookie = {:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)",
            s.token_cookie
        )));
    }
    Ok(AuthSettings {
        verifier,
        secret,
        mint: MintOptions {
            audience: non_empty(&s.jwt_audience),
            issuer: non_empty(&s.jwt_issuer),
            subject: None,
            payload: None,
        },
        sources: TokenSources {
            cookie: non_empty(&s.token_cookie),
            query: s.token_query,
        },
        anonymous_subscribe: s.anonymous_subscribe,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Overrides, load};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_build_a_verifier_and_nothing_builds_none() {
        let c = load(None, Overrides::default()).unwrap();
        assert!(c.auth.verifier.is_none());
        assert!(!c.auth.anonymous_subscribe);
        assert_eq!(c.auth.sources.cookie.as_deref(), Some("herald_token"));
        assert!(!c.auth.sources.query);
        let c = load(
            None,
            Overrides {
                jwt_secret: Some(SECRET.into()),
                jwt_audience: Some("hub".into()),
                token_cookie: Some(String::new()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(c.auth.verifier.is_some());
        assert_eq!(c.auth.mint.audience.as_deref(), Some("hub"));
        assert_eq!(c.auth.sources.cookie, None);
        assert!(!format!("{c:?}").contains(SECRET), "the secret is redacted");
    }

    #[test]
    fn unusable_keys_name_the_problem() {
        let err = load(
            None,
            Overrides {
                jwt_secret: Some("short".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.0.contains("at least 32"), "{}", err.0);
        let err = load(
            None,
            Overrides {
                jwks_refresh_secs: Some(0),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.0.contains("jwks_refresh_secs"), "{}", err.0);
    }
}
