//! Token verification (`herald_auth::Verifier::verify`) against an HS256
//! secret, minting (`herald_auth::mint`), and topic selectors
//! (`TopicPattern::parse` / `matches`).
//!
//! Two verifiers share one secret: a strict one (allow-list `HS256`, `exp`
//! required, `aud` must be `herald`, 5 s of `nbf` leeway) and a lax one
//! (every HMAC algorithm, `exp` optional). Properties:
//!
//! - any string is verified or refused, never a panic;
//! - an accepted token's header names an allowed algorithm (never `none`),
//!   its `exp` (read as a plain JSON value) is a number after `now`, its
//!   `nbf` is not after `now` plus the leeway, its `aud` fits, and the
//!   returned claims are the payload's;
//! - a signed token changed in any byte is refused;
//! - a well-formed token signed with an allowed algorithm and a future
//!   `exp` is accepted (so the checks do not refuse everything);
//! - a minted token verifies until its `exp` and not from then on;
//! - selectors match exactly what a split-and-compare model matches.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_auth::pattern::MAX_PATTERN_LEN;
use herald_auth::{
    Algorithm, AuthConfig, AuthError, Grants, MintOptions, PatternError, SigningKey, TopicPattern,
    Verifier, mint_with,
};
use jsonwebtoken::EncodingKey;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW_SECS: u64 = 1_700_000_000;
const LEEWAY: u64 = 5;

struct Verifiers {
    strict: Verifier,
    lax: Verifier,
}

fn verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| {
        let base = AuthConfig {
            secret: Some(SECRET.to_vec()),
            jwks_refresh: Duration::from_secs(300),
            ..AuthConfig::default()
        };
        Verifiers {
            strict: Verifier::new(AuthConfig {
                algorithms: vec!["HS256".into()],
                require_exp: true,
                leeway: Duration::from_secs(LEEWAY),
                audience: vec!["herald".into()],
                ..base.clone()
            })
            .unwrap(),
            lax: Verifier::new(base).unwrap(),
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    Signed {
        header: HeaderSpec,
        payload: PayloadSpec,
        /// Signs with HS256, HS384 or HS512.
        sign_alg: u8,
        now_offset: i16,
        tamper: Option<(u16, u8)>,
    },
    Minted {
        publish: Vec<String>,
        subscribe: Vec<String>,
        alg: u8,
        ttl_ms: u32,
        check_at_ms: i64,
    },
    Pattern {
        pattern: String,
        topics: Vec<String>,
    },
}

#[derive(Arbitrary, Debug)]
enum HeaderSpec {
    Fields {
        alg: AlgSpec,
        kid: Option<String>,
        typ_number: bool,
        crit: bool,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum AlgSpec {
    Named(u8),
    Other(String),
}

const ALG_NAMES: [&str; 12] = [
    "HS256", "HS384", "HS512", "none", "None", "NONE", "hs256", "RS256", "ES256", "PS256", "EdDSA",
    "HS256 ",
];

#[derive(Arbitrary, Debug)]
enum PayloadSpec {
    Fields {
        exp: Option<Date>,
        dup_exp: Option<Date>,
        nbf: Option<Date>,
        aud: Option<Aud>,
        iss: Option<String>,
        sub: Option<String>,
        herald: Option<HeraldSpec>,
        extra: Option<(String, String)>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Date {
    /// Whole seconds relative to now.
    Relative(i32),
    Float(f64),
    Text(String),
    Null,
    Huge(u64),
}

#[derive(Arbitrary, Debug)]
enum Aud {
    One(String),
    Many(Vec<String>),
    Herald,
    Number(i64),
}

#[derive(Arbitrary, Debug)]
enum HeraldSpec {
    Patterns {
        publish: Vec<String>,
        subscribe: Vec<String>,
    },
    Text(String),
}

impl Date {
    fn json(&self) -> Value {
        match self {
            Date::Relative(d) => json!(NOW_SECS as i64 + i64::from(*d)),
            Date::Float(f) => json!(f),
            Date::Text(s) => json!(s),
            Date::Null => Value::Null,
            Date::Huge(n) => json!(n),
        }
    }
}

fn alg_of(n: u8) -> Algorithm {
    [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512][usize::from(n) % 3]
}

fn header_json(h: &HeaderSpec, sign: Algorithm) -> Vec<u8> {
    match h {
        HeaderSpec::Raw(b) => b.clone(),
        HeaderSpec::Fields {
            alg,
            kid,
            typ_number,
            crit,
        } => {
            let alg = match alg {
                AlgSpec::Named(n) if usize::from(*n) % (ALG_NAMES.len() + 1) == 0 => {
                    format!("{sign:?}")
                }
                AlgSpec::Named(n) => ALG_NAMES[usize::from(*n) % ALG_NAMES.len()].to_string(),
                AlgSpec::Other(s) => s.clone(),
            };
            let mut v = json!({ "alg": alg, "typ": "JWT" });
            if let Some(k) = kid {
                v["kid"] = json!(k);
            }
            if *typ_number {
                v["typ"] = json!(5);
            }
            if *crit {
                v["crit"] = json!(["exp"]);
            }
            serde_json::to_vec(&v).unwrap()
        }
    }
}

/// The payload's text, written member by member so `exp` can repeat.
fn payload_json(p: &PayloadSpec) -> Vec<u8> {
    let PayloadSpec::Fields {
        exp,
        dup_exp,
        nbf,
        aud,
        iss,
        sub,
        herald,
        extra,
    } = p
    else {
        let PayloadSpec::Raw(b) = p else {
            unreachable!()
        };
        return b.clone();
    };
    let mut members: Vec<(String, Value)> = Vec::new();
    if let Some(d) = exp {
        members.push(("exp".into(), d.json()));
    }
    if let Some(d) = nbf {
        members.push(("nbf".into(), d.json()));
    }
    if let Some(a) = aud {
        let v = match a {
            Aud::One(s) => json!(s),
            Aud::Many(v) => json!(v),
            Aud::Herald => json!(["x", "herald"]),
            Aud::Number(n) => json!(n),
        };
        members.push(("aud".into(), v));
    }
    if let Some(s) = iss {
        members.push(("iss".into(), json!(s)));
    }
    if let Some(s) = sub {
        members.push(("sub".into(), json!(s)));
    }
    if let Some(h) = herald {
        let v = match h {
            HeraldSpec::Patterns { publish, subscribe } => {
                json!({ "publish": publish, "subscribe": subscribe })
            }
            HeraldSpec::Text(s) => json!(s),
        };
        members.push(("herald".into(), v));
    }
    if let Some((k, v)) = extra {
        members.push((k.clone(), json!(v)));
    }
    if let Some(d) = dup_exp {
        members.push(("exp".into(), d.json()));
    }
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), v))
        .collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

fn sign(header: &[u8], payload: &[u8], alg: Algorithm) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn at(secs: u64, offset: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(secs);
    if offset >= 0 {
        base + Duration::from_millis(offset as u64)
    } else {
        base - Duration::from_millis(offset.unsigned_abs())
    }
}

fn secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// What every accepted token must satisfy, read from its own parts.
fn check_accepted(token: &str, claims: &herald_auth::Claims, now: SystemTime, strict: bool) {
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
            .expect("an accepted payload is JSON");
    let alg = header["alg"].as_str().expect("alg is a string");
    let allowed: &[&str] = if strict {
        &["HS256"]
    } else {
        &["HS256", "HS384", "HS512"]
    };
    assert!(allowed.contains(&alg), "accepted alg {alg:?}");
    assert!(header.get("crit").is_none());
    match payload.get("exp").filter(|e| !e.is_null()) {
        Some(exp) => {
            let exp = exp.as_f64().expect("an accepted exp is a number");
            assert!(exp > secs_f64(now), "accepted exp {exp} at {now:?}");
            let got = claims.exp.expect("claims carry exp");
            assert!(
                (secs_f64(got) - exp).abs() < 1e-3 * exp.max(1.0),
                "{got:?} vs {exp}"
            );
        }
        None => {
            assert!(!strict, "strict accepted a token without exp");
            assert_eq!(claims.exp, None);
        }
    }
    if let Some(nbf) = payload.get("nbf").filter(|e| !e.is_null()) {
        let nbf = nbf.as_f64().expect("an accepted nbf is a number");
        let leeway = if strict { LEEWAY as f64 } else { 0.0 };
        assert!(
            nbf <= secs_f64(now) + leeway + 1e-6,
            "accepted nbf {nbf} at {now:?}"
        );
    }
    if strict {
        let aud = &payload["aud"];
        assert!(
            aud == "herald"
                || aud
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "herald")),
            "accepted aud {aud}"
        );
    }
    let grants: Grants = match payload.get("herald").filter(|h| !h.is_null()) {
        Some(h) => serde_json::from_value(h.clone()).expect("accepted grants parse"),
        None => Grants::none(),
    };
    assert_eq!(claims.grants, grants);
    assert_eq!(
        claims.subject.as_deref(),
        payload.get("sub").and_then(Value::as_str)
    );
}

fn verify_both(token: &str, now: SystemTime) -> [Result<herald_auth::Claims, AuthError>; 2] {
    let v = verifiers();
    let strict = v.strict.verify(token, now);
    let lax = v.lax.verify(token, now);
    if let Ok(c) = &strict {
        check_accepted(token, c, now, true);
    }
    if let Ok(c) = &lax {
        check_accepted(token, c, now, false);
    }
    [strict, lax]
}

/// Whether a signed token is one both verifiers' rules clearly accept (so a
/// refusal is a bug): the model, for the well-formed part of the inputs.
fn clearly_valid(h: &HeaderSpec, p: &PayloadSpec, sign: Algorithm, now_offset: i16) -> [bool; 2] {
    let HeaderSpec::Fields {
        alg: AlgSpec::Named(n),
        typ_number: false,
        crit: false,
        ..
    } = h
    else {
        return [false, false];
    };
    if usize::from(*n) % (ALG_NAMES.len() + 1) != 0 {
        return [false, false];
    }
    let PayloadSpec::Fields {
        exp,
        dup_exp: None,
        nbf,
        aud,
        iss: _,
        sub: _,
        herald,
        extra,
    } = p
    else {
        return [false, false];
    };
    // Far enough from now that `now_offset` (ms) cannot cross it.
    let future = |d: &Option<Date>| matches!(d, Some(Date::Relative(s)) if *s >= 60);
    let past_or_none = |d: &Option<Date>| match d {
        None | Some(Date::Null) => true,
        // NumericDates before 1970 are refused as malformed (by design).
        Some(Date::Relative(s)) => *s <= -60 && NOW_SECS as i64 + i64::from(*s) >= 0,
        _ => false,
    };
    let grants_ok = match herald {
        None => true,
        Some(HeraldSpec::Patterns { publish, subscribe }) => publish
            .iter()
            .chain(subscribe)
            .all(|s| TopicPattern::parse(s).is_ok()),
        Some(HeraldSpec::Text(_)) => false,
    };
    let extra_ok = extra
        .as_ref()
        .is_none_or(|(k, _)| !["exp", "nbf", "aud", "iss", "sub", "herald"].contains(&k.as_str()));
    let _ = now_offset;
    let common = past_or_none(nbf) && grants_ok && extra_ok && !matches!(aud, Some(Aud::Number(_)));
    let lax = common && (exp.is_none() || matches!(exp, Some(Date::Null)) || future(exp));
    let strict =
        common && sign == Algorithm::HS256 && future(exp) && matches!(aud, Some(Aud::Herald));
    [strict, lax]
}

fn model_matches(p: &str, t: &str) -> bool {
    if p == "*" {
        return true;
    }
    let ps: Vec<&str> = p.split('/').collect();
    if !ps.iter().any(|s| *s == "*" || *s == "**") {
        return p == t;
    }
    let ts: Vec<&str> = t.split('/').collect();
    let seg = |pat: &str, s: &str| if pat == "*" { !s.is_empty() } else { pat == s };
    if ps.last() == Some(&"**") {
        let prefix = &ps[..ps.len() - 1];
        ts.len() > prefix.len()
            && prefix.iter().zip(&ts).all(|(a, b)| seg(a, b))
            && !ts[prefix.len()..].join("/").is_empty()
    } else {
        ts.len() == ps.len() && ps.iter().zip(&ts).all(|(a, b)| seg(a, b))
    }
}

fn check_pattern(pattern: &str, topics: &[String]) {
    let parts: Vec<&str> = pattern.split('/').collect();
    match TopicPattern::parse(pattern) {
        Ok(p) => {
            assert!(!pattern.is_empty() && pattern.len() <= MAX_PATTERN_LEN);
            assert!(!pattern.chars().any(char::is_control));
            assert!(!parts[..parts.len() - 1].contains(&"**"));
            assert_eq!(p.as_str(), pattern);
            assert_eq!(p.to_string(), pattern);
            assert_eq!(
                p.is_exact(),
                pattern != "*" && !parts.iter().any(|s| *s == "*" || *s == "**")
            );
            assert_eq!(pattern.parse::<TopicPattern>().as_ref(), Ok(&p));
            for t in topics
                .iter()
                .map(String::as_str)
                .chain([pattern, "", "/", "a", "/a/b"])
            {
                assert_eq!(
                    p.matches(t),
                    model_matches(pattern, t),
                    "{pattern:?} on {t:?}"
                );
            }
            // Grants round-trip through their JSON.
            let g = Grants {
                publish: vec![p.clone()],
                subscribe: vec![p],
                ..Grants::default()
            };
            let back: Grants = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
            assert_eq!(back, g);
        }
        Err(e) => match e {
            PatternError::Empty => assert!(pattern.is_empty()),
            PatternError::TooLong(n) => assert!(n == pattern.len() && n > MAX_PATTERN_LEN),
            PatternError::ControlCharacter(c) => {
                assert!(pattern.chars().any(|x| x as u32 == c && x.is_control()))
            }
            PatternError::InnerDoubleStar => {
                assert!(parts[..parts.len() - 1].contains(&"**"))
            }
        },
    }
}

fuzz_target!(|input: Input| {
    let now = at(NOW_SECS, 0);
    match input {
        Input::Raw(token) => {
            let _ = verify_both(&token, now);
        }
        Input::Signed {
            header,
            payload,
            sign_alg,
            now_offset,
            tamper,
        } => {
            let alg = alg_of(sign_alg);
            let token = sign(&header_json(&header, alg), &payload_json(&payload), alg);
            let now = at(NOW_SECS, now_offset.into());
            let results = verify_both(&token, now);
            let expect = clearly_valid(&header, &payload, alg, now_offset);
            for (r, want) in results.iter().zip(expect) {
                if want {
                    assert!(r.is_ok(), "refused {token}: {r:?}");
                }
            }
            if let Some((at_byte, with)) = tamper {
                let mut bytes = token.clone().into_bytes();
                let i = usize::from(at_byte) % bytes.len();
                if bytes[i] != with && with.is_ascii() {
                    bytes[i] = with;
                    let changed = String::from_utf8(bytes).unwrap();
                    for r in verify_both(&changed, now) {
                        assert!(r.is_err(), "accepted {changed} changed from {token}");
                    }
                }
            }
        }
        Input::Minted {
            publish,
            subscribe,
            alg,
            ttl_ms,
            check_at_ms,
        } => {
            let parse = |v: &[String]| -> Vec<TopicPattern> {
                v.iter()
                    .filter_map(|s| TopicPattern::parse(s).ok())
                    .collect()
            };
            let grants = Grants {
                publish: parse(&publish),
                subscribe: parse(&subscribe),
                ..Grants::default()
            };
            let alg = alg_of(alg);
            let key = SigningKey::from_secret(SECRET, alg).unwrap();
            let ttl = Duration::from_millis(u64::from(ttl_ms));
            let options = MintOptions {
                audience: Some("herald".into()),
                ..MintOptions::default()
            };
            let token = mint_with(&key, &grants, ttl, now, &options).unwrap();
            // exp is now + ttl rounded up to whole seconds.
            let exp = UNIX_EPOCH + Duration::from_secs(NOW_SECS + u64::from(ttl_ms).div_ceil(1000));
            let check = at(NOW_SECS, check_at_ms.clamp(-1_000_000_000, 5_000_000_000));
            let live = check < exp;
            let [strict, lax] = verify_both(&token, check);
            assert_eq!(lax.is_ok(), live, "lax at {check:?}, exp {exp:?}: {lax:?}");
            assert_eq!(
                strict.is_ok(),
                live && alg == Algorithm::HS256,
                "strict: {strict:?}"
            );
            if let Ok(c) = lax {
                assert_eq!(c.grants, grants);
                assert_eq!(c.exp, Some(exp));
            } else if !live {
                assert!(matches!(lax, Err(AuthError::Expired { .. })), "{lax:?}");
            }
        }
        Input::Pattern { pattern, topics } => check_pattern(&pattern, &topics),
    }
});
