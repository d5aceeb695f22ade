//! JWK sets: lookup by `kid`, file reload, URL fetch with the last good set
//! kept on failure, and the background refresher.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_auth::{Algorithm, AuthConfig, AuthError, ConfigError, Verifier, mint};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn rs_token(private: &str, kid: Option<&str>) -> String {
    let key = signing(private);
    let key = match kid {
        Some(k) => key.with_kid(k),
        None => key,
    };
    mint(&key, &grants(&["*"], &[]), Duration::from_secs(60), now()).unwrap()
}

fn file_config(path: &std::path::Path) -> AuthConfig {
    AuthConfig {
        jwks_file: Some(path.to_path_buf()),
        ..config()
    }
}

#[test]
fn keys_are_looked_up_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        jwks(&[
            ("rsa-public.pem", "r1"),
            ("ec-public.pem", "e1"),
            ("ed-public.pem", "d1"),
        ]),
    )
    .unwrap();
    let v = Verifier::new(file_config(&path)).unwrap();
    assert_eq!(
        v.accepted_algorithms(),
        vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ]
    );
    assert!(
        v.verify(&rs_token("rsa-private.pem", Some("r1")), now())
            .is_ok()
    );
    assert!(
        v.verify(&rs_token("ec-private.pem", Some("e1")), now())
            .is_ok()
    );
    assert!(
        v.verify(&rs_token("ed-private.pem", Some("d1")), now())
            .is_ok()
    );
    // Without a kid, every key that fits the algorithm is tried.
    assert!(v.verify(&rs_token("rsa-private.pem", None), now()).is_ok());
    assert_eq!(
        v.verify(&rs_token("rsa-private.pem", Some("nope")), now()),
        Err(AuthError::UnknownKid("nope".into()))
    );
    // The right kid with the wrong key.
    assert_eq!(
        v.verify(&rs_token("rsa2-private.pem", Some("r1")), now()),
        Err(AuthError::BadSignature)
    );
    // A kid whose key is of another type does not fit.
    assert!(matches!(
        v.verify(&rs_token("rsa-private.pem", Some("e1")), now()),
        Err(AuthError::UnknownKid(_))
    ));
}

#[test]
fn unusable_keys_are_skipped_and_an_empty_set_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let mut enc = jwk("rsa2-public.pem", "enc");
    enc["use"] = "enc".into();
    let mut pinned = jwk("rsa-public.pem", "pinned");
    pinned["alg"] = "PS256".into();
    let doc = serde_json::json!({"keys": [
        enc,
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {"kty": "oct", "k": "c2hvcnQ", "kid": "short"},
        {"kty": "weird", "kid": "w"},
        pinned,
    ]});
    std::fs::write(&path, doc.to_string()).unwrap();
    let v = Verifier::new(file_config(&path)).unwrap();
    assert_eq!(v.accepted_algorithms(), vec![Algorithm::PS256]);
    assert!(matches!(
        v.verify(&rs_token("rsa2-private.pem", Some("enc")), now()),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
    std::fs::write(&path, r#"{"keys": [{"kty": "weird"}]}"#).unwrap();
    assert!(matches!(
        Verifier::new(file_config(&path)),
        Err(ConfigError::BadJwks { .. })
    ));
    std::fs::write(&path, "[]").unwrap();
    assert!(matches!(
        Verifier::new(file_config(&path)),
        Err(ConfigError::BadJwks { .. })
    ));
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        Verifier::new(file_config(&missing)),
        Err(ConfigError::Unreadable { .. })
    ));
}

#[tokio::test]
async fn a_jwks_file_is_reloaded_and_a_broken_one_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[("rsa-public.pem", "old")])).unwrap();
    let v = Verifier::new(file_config(&path)).unwrap();
    let new_token = rs_token("rsa2-private.pem", Some("new"));
    assert!(matches!(
        v.verify(&new_token, now()),
        Err(AuthError::UnknownKid(_))
    ));
    // Rotation: the issuer publishes the new key.
    std::fs::write(&path, jwks(&[("rsa2-public.pem", "new")])).unwrap();
    assert!(v.refresh().await.is_empty());
    assert!(v.verify(&new_token, now()).is_ok());
    assert!(matches!(
        v.verify(&rs_token("rsa-private.pem", Some("old")), now()),
        Err(AuthError::UnknownKid(_))
    ));
    // A broken file does not take the keys away.
    std::fs::write(&path, "{ not json").unwrap();
    let errors = v.refresh().await;
    assert_eq!(errors.len(), 1);
    assert!(v.verify(&new_token, now()).is_ok());
}

#[tokio::test]
async fn the_refresher_picks_up_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[("rsa-public.pem", "old")])).unwrap();
    let v = Verifier::new(AuthConfig {
        jwks_refresh: Duration::from_secs(1),
        ..file_config(&path)
    })
    .unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(v.clone().run_refresh(cancel.clone()));
    // Let the first (immediate) load happen, then rotate: only the periodic
    // reload can pick the new key up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, jwks(&[("rsa2-public.pem", "new")])).unwrap();
    let new_token = rs_token("rsa2-private.pem", Some("new"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while v.verify(&new_token, now()).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresher did not reload the file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

/// A one-route HTTP server answering every request with the current
/// (status, body); counts requests.
struct JwksServer {
    url: String,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<Mutex<usize>>,
}

async fn jwks_server(status: u16, body: String) -> JwksServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let answer = Arc::new(Mutex::new((status, body)));
    let hits = Arc::new(Mutex::new(0));
    let (a, h) = (answer.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (status, body) = a.lock().unwrap().clone();
            *h.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    JwksServer { url, answer, hits }
}

#[tokio::test]
async fn a_jwks_url_is_fetched_and_the_last_good_set_kept_on_failure() {
    let server = jwks_server(200, jwks(&[("ec-public.pem", "e1")])).await;
    let v = Verifier::new(AuthConfig {
        jwks_url: Some(server.url.clone()),
        ..config()
    })
    .unwrap();
    let token = rs_token("ec-private.pem", Some("e1"));
    // Not fetched yet: the client is told to retry, not that its token is bad.
    assert_eq!(v.verify(&token, now()), Err(AuthError::KeysUnavailable));
    assert!(v.refresh().await.is_empty());
    assert!(v.verify(&token, now()).is_ok());
    *server.answer.lock().unwrap() = (500, "oops".into());
    assert_eq!(v.refresh().await.len(), 1);
    assert!(v.verify(&token, now()).is_ok(), "the last good set is kept");
    *server.answer.lock().unwrap() = (200, "x".repeat(herald_auth::MAX_JWKS_BYTES + 1));
    assert_eq!(
        v.refresh().await.len(),
        1,
        "an oversized document is refused"
    );
    assert!(v.verify(&token, now()).is_ok());
    *server.answer.lock().unwrap() = (200, jwks(&[("ed-public.pem", "d1")]));
    assert!(v.refresh().await.is_empty());
    assert!(matches!(
        v.verify(&token, now()),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
    assert_eq!(*server.hits.lock().unwrap(), 4);
}

#[tokio::test]
async fn an_unreachable_jwks_url_leaves_tokens_unverifiable_not_wrong() {
    let v = Verifier::new(AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/jwks".into()),
        ..config()
    })
    .unwrap();
    assert_eq!(v.refresh().await.len(), 1);
    assert_eq!(
        v.verify(&rs_token("rsa-private.pem", Some("k")), now()),
        Err(AuthError::KeysUnavailable)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_triggers_an_early_reload_after_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[("rsa-public.pem", "old")])).unwrap();
    // The periodic reload is an hour away: only the kid miss can reload.
    let v = Verifier::new(AuthConfig {
        jwks_refresh: Duration::from_secs(3600),
        ..file_config(&path)
    })
    .unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(v.clone().run_refresh(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(&path, jwks(&[("rsa2-public.pem", "new")])).unwrap();
    let new_token = rs_token("rsa2-private.pem", Some("new"));
    assert!(matches!(
        v.verify(&new_token, now()),
        Err(AuthError::UnknownKid(_))
    ));
    tokio::time::sleep(herald_auth::KID_MISS_COOLDOWN + Duration::from_secs(1)).await;
    // Give the reload (a blocking file read) a moment of real time.
    for _ in 0..200 {
        if v.verify(&new_token, now()).is_ok() {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        v.verify(&new_token, now()).is_ok(),
        "reloaded after the kid miss"
    );
    cancel.cancel();
    task.await.unwrap();
}
