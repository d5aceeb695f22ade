//! Interoperability with PyPI's flask-websub subscriber (tests/websub/):
//! it subscribes through Herald's `/websub` over HTTPS (it sends a secret only
//! to an https hub), answers the verification after its own checks, and its
//! listener only sees deliveries whose `X-Hub-Signature` verifies with the
//! secret it chose. `scripts/test setup` installs it into target/websub-venv.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hub, WAIT};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv's Python, which has flask-websub.
fn python() -> PathBuf {
    let py = std::env::var_os("HERALD_WEBSUB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/websub-venv/bin/python"));
    assert!(
        py.exists(),
        "{} is missing: run `scripts/test setup` (it installs tests/websub/requirements.txt into target/websub-venv)",
        py.display()
    );
    py
}

/// A CA (PEM) and a leaf certificate and key for 127.0.0.1 that it signs.
fn certificates() -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "herald websub test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_websub_subscriber_receives_signed_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates();
    let (ca_path, cert_path, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_path, &ca).unwrap();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let h = Hub::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--webhook-allow-private",
    ]);
    let hub_url = format!("https://{}/websub", h.addr);
    let topic = "https://example.test/flask-topic";
    let mut child = common::spawn_bounded(
        Command::new(python())
            .arg(root().join("tests/websub/flask_subscriber.py"))
            .args([hub_url.as_str(), topic, "2"])
            .env("REQUESTS_CA_BUNDLE", &ca_path),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("flask-websub never reported {what}"))
    };
    assert_eq!(next("the subscription")["event"], "subscribed");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    // Verified, signed: the hub lists it with a secret.
    let start = Instant::now();
    loop {
        let list: Vec<serde_json::Value> = client
            .get(format!("https://{}/webhooks", h.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list.len() == 1 {
            assert_eq!(
                list[0]["signed"], true,
                "flask-websub sent a secret: {list:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the subscription never became active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for body in ["first update", "second update"] {
        let r = client
            .post(format!("https://{}/publish?topic={topic}", h.addr))
            .header("Content-Type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for want in ["first update", "second update"] {
        let got = next("a notification");
        assert_eq!(got["event"], "notification", "{got}");
        assert_eq!(
            got["body"], want,
            "only correctly signed deliveries reach the listener"
        );
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "flask-websub exited with {status}");
}
