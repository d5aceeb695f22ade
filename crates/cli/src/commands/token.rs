//! `herald token --publish T --subscribe T --ttl 1h`: mint a token for
//! development and scripts, signed with the configured secret (the same
//! config layers as `serve`) or with `--private-key`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use herald_auth::{Algorithm, Grants, SigningKey, TopicPattern, mint_with};

use crate::config::{self, Overrides};

/// Arguments of `herald token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topic selector the token may publish to: a topic, `*`, `/a/*` (one segment) or `/a/**` (any depth). Repeatable.
    #[arg(long, value_name = "SELECTOR")]
    publish: Vec<String>,
    /// Topic selector whose private events the token may read (same syntax). Repeatable.
    #[arg(long, value_name = "SELECTOR")]
    subscribe: Vec<String>,
    /// Lifetime: a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d; combined: 1h30m).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// PEM private key to sign with (RSA, EC P-256/P-384, Ed25519) instead of the configured jwt_secret.
    #[arg(long, value_name = "FILE")]
    private_key: Option<PathBuf>,
    /// Signing algorithm (default: HS256 for a secret; RS256, ES256/ES384 or EdDSA from the key).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Key id to put in the header (for hubs that look keys up in a JWKS).
    #[arg(long)]
    kid: Option<String>,
    /// Subject (sub): who the token is for; shows in the hub's logs.
    #[arg(long = "sub", value_name = "SUBJECT")]
    subject: Option<String>,
    /// Grant the admin API (/admin/...) and the $herald/stats topic.
    #[arg(long)]
    admin: bool,
    /// Grant seeing who subscribes (their payload claims) to topics it may subscribe to.
    #[arg(long)]
    presence: bool,
    /// A JSON value put in the token's payload claim: what presence shows of this subscriber.
    #[arg(long, value_name = "JSON", value_parser = parse_payload)]
    payload: Option<serde_json::Value>,
    /// TOML configuration file (see herald.example.toml); flags and HERALD_* variables override it.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Runs `herald token`: prints the token on stdout. Exit 64 on bad
/// configuration or arguments.
pub fn run(args: Args) -> ExitCode {
    match mint_token(args) {
        Ok(token) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{token}").and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald token: {e}");
            ExitCode::from(crate::EX_USAGE)
        }
    }
}

fn mint_token(args: Args) -> Result<String, String> {
    let config = config::load(args.config.as_deref(), args.overrides)
        .map_err(|e| format!("bad configuration: {e}"))?;
    let auth = &config.auth;
    let grants = Grants {
        publish: selectors(&args.publish, "--publish")?,
        subscribe: selectors(&args.subscribe, "--subscribe")?,
        admin: args.admin,
        presence: args.presence,
    };
    let key = match (&args.private_key, &auth.secret) {
        (Some(path), _) => SigningKey::from_pem_file(path).map_err(|e| e.to_string())?,
        (None, Some(secret)) => SigningKey::from_secret(secret, Algorithm::HS256)
            .map_err(|e| format!("jwt_secret: {e}"))?,
        (None, None) => {
            return Err(
                "no signing key: set jwt_secret (HERALD_JWT_SECRET) or pass --private-key FILE"
                    .into(),
            );
        }
    };
    let key = match args.alg {
        Some(alg) => key.with_algorithm(alg).map_err(|e| e.to_string())?,
        None => key,
    };
    let key = match args.kid {
        Some(kid) => key.with_kid(kid),
        None => key,
    };
    let mut options = auth.mint.clone();
    options.subject = args.subject;
    options.payload = args.payload;
    let now = SystemTime::now();
    let token = mint_with(&key, &grants, args.ttl, now, &options).map_err(|e| e.to_string())?;
    // Say so now if this hub would refuse the token (a private key whose
    // public half is not configured, an algorithm outside the allow-list).
    if let Some(verifier) = &auth.verifier
        && let Err(e) = verifier.verify(&token, now)
        && e != herald_auth::AuthError::KeysUnavailable
    {
        eprintln!("herald token: warning: this configuration's hub would refuse the token: {e}");
    }
    Ok(token)
}

fn selectors(values: &[String], flag: &str) -> Result<Vec<TopicPattern>, String> {
    values
        .iter()
        .map(|v| TopicPattern::parse(v).map_err(|e| format!("{flag} {v:?}: {e}")))
        .collect()
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>()
        .map_err(|_| format!("{s:?} is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"))
}

/// Parses `90s`, `15m`, `1h`, `7d`, `1h30m` or plain seconds.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a lifetime (examples: 90s, 15m, 1h, 7d, 1h30m)");
    if let Ok(secs) = s.parse::<u64>() {
        return (secs > 0)
            .then(|| Duration::from_secs(secs))
            .ok_or_else(bad);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

fn parse_payload(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in [
            "",
            "0",
            "0s",
            "h",
            "1x",
            "1h30",
            "-1h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
