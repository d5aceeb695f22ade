//! `herald token`: the token it prints verifies with the configuration it
//! was minted from (every config layer), and bad input exits 64.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use herald_auth::{AuthConfig, AuthError, Verifier};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/fixtures")
        .join(name)
}

fn herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args);
    cmd.env_remove("HERALD_JWT_SECRET")
        .env_remove("HERALD_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog, in case a command that should fail at once starts serving.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        let _ = Command::new("kill").args(["-9", &pid]).status();
    });
    child.wait_with_output().unwrap()
}

fn token_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim().to_string()
}

fn hs_verifier(extra: AuthConfig) -> Verifier {
    Verifier::new(AuthConfig {
        secret: Some(SECRET.as_bytes().to_vec()),
        require_exp: true,
        ..extra
    })
    .unwrap()
}

#[test]
fn token_from_the_env_secret_verifies_and_carries_the_grants() {
    let out = herald(
        &[
            "token",
            "--publish",
            "/books/*",
            "--subscribe",
            "/users/42/**",
            "--subscribe",
            "/news",
            "--ttl",
            "1h",
        ],
        &[("HERALD_JWT_SECRET", SECRET)],
    );
    let token = token_of(&out);
    let now = SystemTime::now();
    let claims = hs_verifier(AuthConfig::default())
        .verify(&token, now)
        .unwrap();
    assert!(claims.grants.can_publish("/books/1"));
    assert!(!claims.grants.can_publish("/books/1/x"));
    assert!(claims.grants.can_subscribe("/users/42/books/1"));
    assert!(claims.grants.can_subscribe("/news"));
    assert!(!claims.grants.can_subscribe("/users/43/x"));
    let left = claims.expires_in(now).unwrap();
    assert!(
        left > Duration::from_secs(3590) && left <= Duration::from_secs(3601),
        "{left:?}"
    );
    // The token is refused once its hour is over.
    let later = now + Duration::from_secs(3602);
    assert!(matches!(
        hs_verifier(AuthConfig::default()).verify(&token, later),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn token_carries_admin_presence_and_payload_when_asked() {
    let plain = token_of(&herald(
        &["token", "--subscribe", "r"],
        &[("HERALD_JWT_SECRET", SECRET)],
    ));
    let claims = hs_verifier(AuthConfig::default())
        .verify(&plain, SystemTime::now())
        .unwrap();
    assert!(!claims.grants.admin && !claims.grants.presence);
    assert_eq!(claims.payload, None);
    let out = herald(
        &[
            "token",
            "--admin",
            "--presence",
            "--payload",
            r#"{"name":"ann","id":7}"#,
        ],
        &[("HERALD_JWT_SECRET", SECRET)],
    );
    let claims = hs_verifier(AuthConfig::default())
        .verify(&token_of(&out), SystemTime::now())
        .unwrap();
    assert!(claims.grants.admin && claims.grants.presence);
    assert_eq!(
        claims.payload,
        Some(serde_json::json!({"name": "ann", "id": 7}))
    );
    let bad = herald(
        &["token", "--payload", "{nope"],
        &[("HERALD_JWT_SECRET", SECRET)],
    );
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not JSON"));
}

#[test]
fn token_follows_the_config_file_audience_and_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(
        &path,
        format!("jwt_secret = \"{SECRET}\"\njwt_audience = \"https://hub.example\"\njwt_issuer = \"dev\"\n"),
    )
    .unwrap();
    let out = herald(
        &[
            "token",
            "--config",
            path.to_str().unwrap(),
            "--publish",
            "*",
            "--sub",
            "alice",
        ],
        &[],
    );
    let token = token_of(&out);
    let strict = hs_verifier(AuthConfig {
        audience: vec!["https://hub.example".into()],
        issuer: vec!["dev".into()],
        ..AuthConfig::default()
    });
    let claims = strict.verify(&token, SystemTime::now()).unwrap();
    assert_eq!(claims.subject.as_deref(), Some("alice"));
    assert!(claims.grants.can_publish("/anything"));
    // A flag overrides the file.
    let out = herald(
        &[
            "token",
            "--config",
            path.to_str().unwrap(),
            "--jwt-audience",
            "other",
            "--publish",
            "*",
        ],
        &[],
    );
    assert!(matches!(
        strict.verify(&token_of(&out), SystemTime::now()),
        Err(AuthError::WrongAudience { .. })
    ));
}

#[test]
fn token_signed_with_a_private_key_verifies_with_its_public_key() {
    for (private, public) in [
        ("rsa-private.pem", "rsa-public.pem"),
        ("ec-private.pem", "ec-public.pem"),
        ("ed-private.pem", "ed-public.pem"),
    ] {
        let out = herald(
            &[
                "token",
                "--private-key",
                fixture(private).to_str().unwrap(),
                "--jwt-public-keys",
                fixture(public).to_str().unwrap(),
                "--subscribe",
                "*",
            ],
            &[],
        );
        let token = token_of(&out);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = Verifier::new(AuthConfig {
            public_keys: vec![fixture(public)],
            require_exp: true,
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(
            v.verify(&token, SystemTime::now())
                .unwrap()
                .grants
                .can_subscribe("/x")
        );
    }
    // A key whose public half the hub does not have: minted, with a warning.
    let out = herald(
        &[
            "token",
            "--private-key",
            fixture("rsa2-private.pem").to_str().unwrap(),
            "--jwt-public-keys",
            fixture("rsa-public.pem").to_str().unwrap(),
        ],
        &[],
    );
    token_of(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("would refuse"));
}

#[test]
fn bad_keys_and_arguments_exit_64_with_a_message() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["token", "--jwt-secret", "short", "--publish", "*"],
            "at least 32",
        ),
        (vec!["token", "--publish", "*"], "no signing key"),
        (
            vec!["token", "--jwt-secret", SECRET, "--publish", "/a/**/b"],
            "--publish",
        ),
        (
            vec!["token", "--jwt-secret", SECRET, "--ttl", "soon"],
            "lifetime",
        ),
        (
            vec!["token", "--jwt-secret", SECRET, "--alg", "RS256"],
            "RS256",
        ),
        (
            vec!["token", "--jwt-secret", SECRET, "--alg", "none"],
            "none",
        ),
        (
            vec!["token", "--private-key", "/no/such/key.pem"],
            "/no/such/key.pem",
        ),
    ];
    for (args, needle) in cases {
        let out = herald(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn serve_refuses_unusable_auth_settings_with_exit_64() {
    let private = fixture("rsa-private.pem");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--jwt-secret", "too-short"], "at least 32"),
        (vec!["--jwt-public-keys", "/no/such.pem"], "/no/such.pem"),
        (
            vec!["--jwt-public-keys", private.to_str().unwrap()],
            "public key",
        ),
        (vec!["--jwks-url", "http://keys.example/jwks.json"], "https"),
        (
            vec!["--jwt-secret", SECRET, "--jwt-algorithms", "RS256"],
            "RS256",
        ),
        (vec!["--token-cookie", "a;b"], "token_cookie"),
    ];
    for (args, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut full = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ];
        full.extend(&args);
        let out = herald(&full, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
