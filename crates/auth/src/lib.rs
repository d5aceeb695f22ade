//! Herald's authorization: who may publish to and subscribe to which topics.
//!
//! # Layout
//!
//! ```text
//! request ─► extract.rs ─► verify.rs ─────────────► Claims { grants, exp }
//!  (headers,   (Bearer,      (header, alg, key        │
//!   query)      query,        by kid, signature,      ▼
//!               cookie)       exp/nbf/aud/iss)     grants.rs: can_publish / can_subscribe
//!                                │                    (pattern.rs: exact, `*`, /a/*, /a/**)
//!                  keys.rs ◄─────┤
//!   (secret, PEM; key type ⇒ algorithms)
//!                  jwks.rs ◄─────┘
//!   (JWK sets from a file or URL, last good set kept; refresh.rs reloads them)
//!
//! mint.rs: SigningKey + Grants ─► token (`herald token`)
//! ```
//!
//! - [`pattern`]: [`TopicPattern`], the selector syntax, matched in linear time.
//! - [`Grants`]: the `herald` claim, `{"publish": [...], "subscribe": [...]}`.
//! - [`Verifier`]: built once from an [`AuthConfig`]; [`Verifier::verify`]
//!   takes `now` so expiry is testable; JWK sets are refreshed by
//!   [`Verifier::run_refresh`] on the caller's runtime.
//! - [`extract_token`]: the token of a request, from `http::HeaderMap` and the
//!   query string.
//! - [`mint`]: signs a token with a [`SigningKey`].
//!
//! Errors: [`AuthError`] (a token is refused: 401), [`ExtractError`] (the
//! request's token cannot be read: 400/401), [`ConfigError`] (start-up: exit
//! 64), [`MintError`]. Each has a message that says what to fix and a stable
//! `code()` where it reaches clients.
//!
//! Crypto: jsonwebtoken with its `aws_lc_rs` backend, the provider rustls
//! already uses here (one crypto library in the binary; its RSA is constant
//! time, unlike the `rsa` crate of the `rust_crypto` backend, RUSTSEC-2023-0071).

#![warn(missing_docs)]

mod config;
mod error;
mod extract;
mod grants;
mod jwks;
mod keys;
mod mint;
mod refresh;
mod verify;

pub use config::AuthConfig;
pub use error::{AuthError, ConfigError};
pub use extract::{
    DEFAULT_COOKIE, ExtractError, FoundToken, QUERY_PARAM, TokenSource, TokenSources, extract_token,
};
pub use grants::Grants;
/// Topic selectors live in the core (subscriptions match them too).
pub use herald_core::pattern::{self, PatternError, TopicPattern};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JWKS_FETCH_TIMEOUT, MAX_JWKS_BYTES};
pub use keys::MIN_SECRET_LEN;
pub use mint::{MintError, MintOptions, SigningKey, mint, mint_with};
pub use refresh::KID_MISS_COOLDOWN;
pub use verify::{Claims, MAX_KEYS_TRIED, Verified, Verifier};
