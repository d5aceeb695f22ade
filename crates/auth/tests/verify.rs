//! Token verification: every algorithm family, time and audience claims,
//! and the refusals (alg none, algorithm confusion, wrong keys, bad claims).

mod support;

use std::time::Duration;

use herald_auth::{
    Algorithm, AuthConfig, AuthError, ConfigError, MintOptions, SigningKey, Verifier, mint,
    mint_with,
};
use jsonwebtoken::EncodingKey;
use serde_json::json;
use support::*;

fn verifier(c: AuthConfig) -> Verifier {
    Verifier::new(c).unwrap()
}

#[test]
fn every_algorithm_family_round_trips() {
    let g = grants(&["/a/*"], &["/u/**"]);
    let cases: Vec<(SigningKey, AuthConfig)> = vec![
        (
            SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap(),
            secret_config(),
        ),
        (
            SigningKey::from_secret(SECRET, Algorithm::HS384).unwrap(),
            secret_config(),
        ),
        (
            SigningKey::from_secret(SECRET, Algorithm::HS512).unwrap(),
            secret_config(),
        ),
        (signing("rsa-private.pem"), pem_config(&["rsa-public.pem"])),
        (
            signing("rsa-private-pkcs1.pem"),
            pem_config(&["rsa-public.pem"]),
        ),
        (
            signing("rsa-private.pem")
                .with_algorithm(Algorithm::RS512)
                .unwrap(),
            pem_config(&["rsa-public.pem"]),
        ),
        (
            signing("rsa-private.pem")
                .with_algorithm(Algorithm::PS256)
                .unwrap(),
            pem_config(&["rsa-public.pem"]),
        ),
        (signing("ec-private.pem"), pem_config(&["ec-public.pem"])),
        (
            signing("ec384-private.pem"),
            pem_config(&["ec384-public.pem"]),
        ),
        (signing("ed-private.pem"), pem_config(&["ed-public.pem"])),
    ];
    let expected = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS256,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    for ((key, config), alg) in cases.into_iter().zip(expected) {
        assert_eq!(key.algorithm(), alg);
        let t = mint(&key, &g, Duration::from_secs(60), now()).unwrap();
        let claims = verifier(config)
            .verify(&t, now())
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(claims.grants, g, "{alg:?}");
        assert_eq!(claims.exp, Some(at(NOW_SECS + 60)));
        assert_eq!(claims.expires_in(now()), Some(Duration::from_secs(60)));
        assert!(claims.grants.can_publish("/a/1") && !claims.grants.can_publish("/b"));
    }
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let key = signing("rsa2-private.pem");
    let t = mint(&key, &grants(&["*"], &[]), Duration::from_secs(60), now()).unwrap();
    let v = verifier(pem_config(&["rsa-public.pem"]));
    assert_eq!(v.verify(&t, now()), Err(AuthError::BadSignature));
    let other_secret = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256).unwrap();
    let t = mint(
        &other_secret,
        &grants(&["*"], &[]),
        Duration::from_secs(60),
        now(),
    )
    .unwrap();
    assert_eq!(
        verifier(secret_config()).verify(&t, now()),
        Err(AuthError::BadSignature)
    );
    // A tampered payload breaks the signature.
    let good = hs(&good_claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = raw(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &json!({"exp": NOW_SECS + 3600, "herald": {"publish": ["*"]}}),
        "x",
    );
    let forged_payload = forged.split('.').nth(1).unwrap().to_string();
    parts[1] = &forged_payload;
    assert_eq!(
        verifier(secret_config()).verify(&parts.join("."), now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn exp_is_honoured_exactly_and_required() {
    let v = verifier(secret_config());
    let exp = NOW_SECS + 10;
    let t = hs(&json!({"exp": exp}));
    assert!(v.verify(&t, at(exp - 1)).is_ok());
    assert_eq!(
        v.verify(&t, at(exp)),
        Err(AuthError::Expired { exp: at(exp) })
    );
    assert!(matches!(
        v.verify(&t, at(exp + 100)),
        Err(AuthError::Expired { .. })
    ));
    let no_exp = hs(&json!({"herald": {"subscribe": ["*"]}}));
    assert_eq!(v.verify(&no_exp, now()), Err(AuthError::MissingExp));
    let lax = verifier(AuthConfig {
        require_exp: false,
        ..secret_config()
    });
    let c = lax.verify(&no_exp, now()).unwrap();
    assert_eq!(c.exp, None);
    assert_eq!(c.expires_in(now()), None);
    // Fractional dates are NumericDates too.
    let t = hs(&json!({"exp": (NOW_SECS as f64) + 0.5}));
    assert!(v.verify(&t, now()).is_ok());
}

#[test]
fn nbf_is_honoured_with_leeway() {
    let v = verifier(AuthConfig {
        leeway: Duration::from_secs(5),
        ..secret_config()
    });
    let t = hs(&json!({"exp": NOW_SECS + 100, "nbf": NOW_SECS + 5}));
    assert!(v.verify(&t, now()).is_ok(), "within the leeway");
    let t = hs(&json!({"exp": NOW_SECS + 100, "nbf": NOW_SECS + 6}));
    assert_eq!(
        v.verify(&t, now()),
        Err(AuthError::NotYetValid {
            nbf: at(NOW_SECS + 6)
        })
    );
    assert!(v.verify(&t, at(NOW_SECS + 1)).is_ok());
}

#[test]
fn aud_and_iss_are_checked_when_configured() {
    let v = verifier(AuthConfig {
        audience: vec!["https://hub.example".into()],
        issuer: vec!["https://auth.example".into()],
        ..secret_config()
    });
    let ok = |c: serde_json::Value| v.verify(&hs(&c), now());
    let exp = NOW_SECS + 60;
    assert!(
        ok(json!({"exp": exp, "aud": "https://hub.example", "iss": "https://auth.example"}))
            .is_ok()
    );
    assert!(
        ok(json!({"exp": exp, "aud": ["x", "https://hub.example"], "iss": "https://auth.example"}))
            .is_ok()
    );
    assert!(matches!(
        ok(json!({"exp": exp, "aud": "x", "iss": "https://auth.example"})),
        Err(AuthError::WrongAudience { .. })
    ));
    assert!(matches!(
        ok(json!({"exp": exp, "iss": "https://auth.example"})),
        Err(AuthError::WrongAudience { .. })
    ));
    assert!(matches!(
        ok(json!({"exp": exp, "aud": "https://hub.example", "iss": "evil"})),
        Err(AuthError::WrongIssuer { .. })
    ));
    assert!(matches!(
        ok(json!({"exp": exp, "aud": "https://hub.example"})),
        Err(AuthError::WrongIssuer { .. })
    ));
    // Not configured: not checked.
    let open = verifier(secret_config());
    assert!(
        open.verify(&hs(&json!({"exp": exp, "aud": "x", "iss": "y"})), now())
            .is_ok()
    );
    // Minted tokens carry them.
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap();
    let opts = MintOptions {
        audience: Some("https://hub.example".into()),
        issuer: Some("https://auth.example".into()),
        subject: Some("user-42".into()),
        payload: None,
    };
    let t = mint_with(
        &key,
        &grants(&[], &["*"]),
        Duration::from_secs(9),
        now(),
        &opts,
    )
    .unwrap();
    assert_eq!(
        v.verify(&t, now()).unwrap().subject.as_deref(),
        Some("user-42")
    );
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(secret_config());
    for alg in ["none", "None", "NONE"] {
        let t = raw(&format!(r#"{{"alg":"{alg}"}}"#), &good_claims(), "");
        let err = v.verify(&t, now()).unwrap_err();
        assert!(matches!(err, AuthError::AlgNone { .. }), "{alg}: {err:?}");
        assert!(err.to_string().contains("HS256"), "{err}");
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker uses the (public) RSA key as an
    // HMAC secret and says alg HS256.
    let public_pem = read("rsa-public.pem");
    let forged = token(
        Algorithm::HS256,
        None,
        &good_claims(),
        &EncodingKey::from_secret(&public_pem).unwrap(),
    );
    let v = verifier(pem_config(&["rsa-public.pem"]));
    let err = v.verify(&forged, now()).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::AlgorithmNotAllowed {
                alg: Algorithm::HS256,
                ..
            }
        ),
        "{err:?}"
    );
    // With a secret configured as well, HS256 is checked against the secret
    // only, never against the public key.
    let both = verifier(AuthConfig {
        secret: Some(SECRET.to_vec()),
        ..pem_config(&["rsa-public.pem"])
    });
    assert_eq!(both.verify(&forged, now()), Err(AuthError::BadSignature));
    // And an RS256 token is not accepted by an HMAC-only hub.
    let rs = mint(
        &signing("rsa-private.pem"),
        &grants(&["*"], &[]),
        Duration::from_secs(60),
        now(),
    )
    .unwrap();
    assert!(matches!(
        verifier(secret_config()).verify(&rs, now()),
        Err(AuthError::AlgorithmNotAllowed {
            alg: Algorithm::RS256,
            ..
        })
    ));
    // ES256 key, ES384 claim: the curve decides.
    let es = token(
        Algorithm::ES384,
        None,
        &good_claims(),
        &encoding("ec384-private.pem"),
    );
    assert!(matches!(
        verifier(pem_config(&["ec-public.pem"])).verify(&es, now()),
        Err(AuthError::AlgorithmNotAllowed {
            alg: Algorithm::ES384,
            ..
        })
    ));
}

#[test]
fn the_allow_list_narrows_the_key_types() {
    let v = verifier(AuthConfig {
        algorithms: vec!["RS256".into()],
        ..pem_config(&["rsa-public.pem"])
    });
    assert_eq!(v.accepted_algorithms(), vec![Algorithm::RS256]);
    let ps = mint(
        &signing("rsa-private.pem")
            .with_algorithm(Algorithm::PS256)
            .unwrap(),
        &grants(&["*"], &[]),
        Duration::from_secs(60),
        now(),
    )
    .unwrap();
    assert!(matches!(
        v.verify(&ps, now()),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
    let rs = mint(
        &signing("rsa-private.pem"),
        &grants(&["*"], &[]),
        Duration::from_secs(60),
        now(),
    )
    .unwrap();
    assert!(v.verify(&rs, now()).is_ok());
}

#[test]
fn malformed_tokens_are_refused_by_shape() {
    let v = verifier(secret_config());
    for t in ["", "abc", "a.b", "a.b.c.d", "!!.b.c", ".b.c"] {
        assert!(
            matches!(v.verify(t, now()), Err(AuthError::Malformed(_))),
            "{t:?}"
        );
    }
    let not_json = format!("{}.e30.x", base64_of("nope"));
    assert!(matches!(
        v.verify(&not_json, now()),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        v.verify(&raw(r#"{"alg":"HS999"}"#, &good_claims(), "x"), now()),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
    assert!(matches!(
        v.verify(
            &raw(r#"{"alg":"HS256","crit":["exp"]}"#, &good_claims(), "x"),
            now()
        ),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        v.verify(
            &raw(r#"{"alg":"HS256","kid":5}"#, &good_claims(), "x"),
            now()
        ),
        Err(AuthError::Malformed(_))
    ));
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn claims_of_the_wrong_shape_reject_the_whole_token() {
    let v = verifier(secret_config());
    let bad = [
        json!({"exp": "1700003600"}),
        json!({"exp": -5}),
        json!({"exp": NOW_SECS + 60, "nbf": "soon"}),
        json!({"exp": NOW_SECS + 60, "aud": 7}),
        json!({"exp": NOW_SECS + 60, "iss": ["a"]}),
        json!({"exp": NOW_SECS + 60, "herald": {"publish": "*"}}),
        json!({"exp": NOW_SECS + 60, "herald": {"subscribe": ["/ok", "/a/**/b"]}}),
        json!({"exp": NOW_SECS + 60, "herald": ["*"]}),
    ];
    for c in bad {
        let err = v.verify(&hs(&c), now()).unwrap_err();
        assert!(matches!(err, AuthError::BadClaims(_)), "{c}: {err:?}");
    }
    // No herald claim: valid, grants nothing.
    let c = v
        .verify(&hs(&json!({"exp": NOW_SECS + 60})), now())
        .unwrap();
    assert!(!c.grants.can_subscribe("/x"));
}

#[test]
fn errors_have_stable_codes_and_say_what_to_fix() {
    let v = verifier(secret_config());
    let err = v
        .verify(&hs(&json!({"exp": NOW_SECS - 1})), now())
        .unwrap_err();
    assert_eq!(err.code(), "token_expired");
    assert!(err.to_string().contains("get a new token"), "{err}");
    assert_eq!(AuthError::BadSignature.code(), "token_bad_signature");
}

#[test]
fn verify_as_decodes_other_claims() {
    #[derive(serde::Deserialize)]
    struct Mercure {
        mercure: serde_json::Value,
    }
    let v = verifier(secret_config());
    let t = hs(&json!({"exp": NOW_SECS + 60, "mercure": {"subscribe": ["*"]}}));
    let m = v.verify_as::<Mercure>(&t, now()).unwrap();
    assert_eq!(m.claims.mercure["subscribe"][0], "*");
}

#[test]
fn bad_configuration_is_refused_with_the_reason() {
    let err = |c: AuthConfig| Verifier::new(c).unwrap_err();
    assert_eq!(
        err(AuthConfig {
            secret: Some(b"short".to_vec()),
            ..config()
        }),
        ConfigError::SecretTooShort(5)
    );
    assert_eq!(err(config()), ConfigError::NoKeys);
    assert!(matches!(
        err(pem_config(&["rsa-private.pem"])),
        ConfigError::BadKey { .. }
    ));
    assert!(
        err(pem_config(&["rsa-private.pem"]))
            .to_string()
            .contains("public key")
    );
    assert!(matches!(
        err(pem_config(&["README.md"])),
        ConfigError::BadKey { .. }
    ));
    assert!(matches!(
        err(pem_config(&["missing.pem"])),
        ConfigError::Unreadable { .. }
    ));
    assert_eq!(
        err(AuthConfig {
            algorithms: vec!["none".into()],
            ..secret_config()
        }),
        ConfigError::UnknownAlgorithm("none".into())
    );
    assert!(matches!(
        err(AuthConfig {
            algorithms: vec!["RS256".into()],
            ..secret_config()
        }),
        ConfigError::NoUsableKey(_)
    ));
    for url in ["http://keys.example/jwks.json", "ftp://x/y", "not a url"] {
        assert!(
            matches!(
                err(AuthConfig {
                    jwks_url: Some(url.into()),
                    ..config()
                }),
                ConfigError::BadUrl { .. }
            ),
            "{url}"
        );
    }
    assert!(
        Verifier::new(AuthConfig {
            jwks_url: Some("http://127.0.0.1:9/k".into()),
            ..config()
        })
        .is_ok()
    );
    // Signing keys too.
    assert!(SigningKey::from_secret(b"short", Algorithm::HS256).is_err());
    assert!(SigningKey::from_secret(SECRET, Algorithm::RS256).is_err());
    assert!(SigningKey::from_pem(&read("rsa-public.pem")).is_err());
    assert!(
        signing("ec-private.pem")
            .with_algorithm(Algorithm::RS256)
            .is_err()
    );
}
