//! `X-Hub-Signature: <algorithm>=<hex HMAC of the body>` (WebSub section 8),
//! computed with aws-lc-rs, the crypto library rustls already uses here.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::hmac;

/// The HMAC hash for signatures. sha1 is the most widely accepted; sha256 and
/// stronger are better where subscribers support them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256 (the default).
    #[default]
    Sha256,
    /// HMAC-SHA384.
    Sha384,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in the header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha384 => hmac::HMAC_SHA384,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The header value for `body` keyed with `secret`: `sha256=<hex>`.
    pub fn sign(self, secret: &[u8], body: &[u8]) -> String {
        let key = hmac::Key::new(self.hmac(), secret);
        let tag = hmac::sign(&key, body);
        let mut out = String::with_capacity(8 + tag.as_ref().len() * 2);
        out.push_str(self.name());
        out.push('=');
        for b in tag.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha384" => Ok(Algorithm::Sha384),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(format!(
                "{other:?} is not a signature algorithm; use sha1, sha256, sha384 or sha512"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (and the matching SHA-1 value from RFC 2202).
    #[test]
    fn matches_the_rfc_vectors() {
        let (key, data) = (
            b"Jefe".as_slice(),
            b"what do ya want for nothing?".as_slice(),
        );
        assert_eq!(
            Algorithm::Sha256.sign(key, data),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            Algorithm::Sha1.sign(key, data),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert!(
            Algorithm::Sha512
                .sign(key, data)
                .starts_with("sha512=164b7a7bfcf819e2")
        );
        assert!(
            Algorithm::Sha384
                .sign(key, data)
                .starts_with("sha384=af45d2e376484031")
        );
        assert_eq!("sha384".parse::<Algorithm>(), Ok(Algorithm::Sha384));
        assert!("md5".parse::<Algorithm>().is_err());
    }
}
