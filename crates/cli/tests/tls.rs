//! HTTPS against the real binary: ALPN picks HTTP/2, several SSE streams and
//! a long-poll share one connection, HTTP/1.1 and WebSocket still work over
//! TLS, a replaced certificate is presented to new connections without a
//! restart (polling and SIGHUP), shutdown drains HTTP/2 streams, and bad
//! certificate files stop the start with exit 64.
//!
//! Certificates are made at test time (rcgen): a test CA the clients trust,
//! and leaf certificates for 127.0.0.1 that it signs.
#![allow(clippy::disallowed_types)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Hub;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use reqwest::{Client, Version};
use tokio_rustls::rustls;

const WAIT: Duration = Duration::from_secs(20);

/// A test CA that signs leaf certificates for 127.0.0.1.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A leaf certificate and its key, as PEM, and the certificate's DER.
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "herald test CA");
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn pem(&self) -> String {
        self.0.pem()
    }
}

/// Writes the leaf's files (each atomically: a temporary file, then a rename).
fn install(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, text) in [(&key, &leaf.key), (&cert, &leaf.cert)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

/// A hub in dev mode serving HTTPS with `leaf`; returns it and its files' dir.
fn start_tls(leaf: &Leaf, extra: &[&str]) -> (Hub, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = install(certs.path(), leaf);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut args = vec!["--tls-cert", cert, "--tls-key", key];
    args.extend_from_slice(extra);
    (Hub::start(&args), certs)
}

/// A client that trusts only the test CA and reports the peer certificate.
fn client(ca: &Ca, http1: bool) -> Client {
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    let mut b = Client::builder()
        .tls_certs_only([root])
        .tls_info(true)
        .timeout(WAIT);
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

fn url(hub: &Hub, target: &str) -> String {
    format!("https://{}{target}", hub.addr)
}

/// The leaf certificate a fresh connection is shown.
async fn peer_certificate(ca: &Ca, hub: &Hub) -> Vec<u8> {
    let resp = client(ca, false)
        .get(url(hub, "/healthz"))
        .send()
        .await
        .unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

async fn publish(c: &Client, hub: &Hub, topic: &str, data: &str) -> Version {
    let resp = c
        .post(url(hub, &format!("/publish?topic={topic}")))
        .body(data.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.version()
}

/// A response body read until `needle` appears.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {got:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {needle:?}; got {got:?}"));
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    got
}

/// A counter from `/metrics`.
async fn metric(c: &Client, hub: &Hub, name: &str) -> u64 {
    let text = c
        .get(url(hub, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn h2_carries_many_streams_publishes_and_polls_on_one_connection() {
    let ca = Ca::new();
    let (hub, _certs) = start_tls(&ca.leaf(), &[]);
    let c = client(&ca, false);
    let resp = c.get(url(&hub, "/healthz")).send().await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2, "ALPN chose h2");
    assert_eq!(resp.text().await.unwrap(), "ok\n");
    // WebSocket needs HTTP/1.1 (no extended CONNECT): a plain 400 over h2.
    let resp = c.get(url(&hub, "/ws")).send().await.unwrap();
    assert_eq!(resp.status(), 400);

    let mut streams = Vec::new();
    for _ in 0..8 {
        let resp = c
            .get(url(&hub, "/sse?topic=news"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        streams.push(resp);
    }
    let poll = tokio::spawn({
        let (c, u) = (c.clone(), url(&hub, "/poll?topic=news&timeout=15"));
        async move {
            let resp = c.get(u).send().await.unwrap();
            assert_eq!(resp.version(), Version::HTTP_2);
            resp.text().await.unwrap()
        }
    });
    // The poll is held before the event is published.
    while metric(&c, &hub, "herald_subscribers{transport=\"poll\"}").await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(publish(&c, &hub, "news", "over h2").await, Version::HTTP_2);
    for s in &mut streams {
        read_until(s, "data: over h2\n\n").await;
    }
    let polled = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert!(polled.contains("over h2"), "{polled}");
    assert_eq!(
        metric(&c, &hub, "herald_subscribers{transport=\"sse\"}").await,
        8
    );
    assert_eq!(
        metric(&c, &hub, "herald_connections_accepted_total").await,
        1,
        "every request shared one connection"
    );
}

#[tokio::test]
async fn http1_over_tls_serves_streams_and_websockets() {
    let ca = Ca::new();
    let (hub, _certs) = start_tls(&ca.leaf(), &[]);
    let c = client(&ca, true);
    let mut sse = c.get(url(&hub, "/sse?topic=t")).send().await.unwrap();
    assert_eq!(sse.version(), Version::HTTP_11);
    assert_eq!(sse.status(), 200);
    let mut ws = websocket(&ca, &hub, "/ws?topic=t").await;
    assert_eq!(
        publish(&c, &hub, "t", "over http/1.1").await,
        Version::HTTP_11
    );
    read_until(&mut sse, "data: over http/1.1\n\n").await;
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Some(text) = msg.as_text() {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["op"], "event");
            assert_eq!(v["data"], "over http/1.1");
            break;
        }
    }
    ws.send(tokio_websockets::Message::text(
        r#"{"op":"ping","ref":1}"#.to_string(),
    ))
    .await
    .unwrap();
}

type Wss =
    tokio_websockets::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A WebSocket over TLS (ALPN http/1.1: RFC 6455 upgrades need HTTP/1.1).
async fn websocket(ca: &Ca, hub: &Hub, target: &str) -> Wss {
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from(ca.0.der().to_vec());
    roots.add(ca_der).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(hub.addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let uri = format!("wss://{}{target}", hub.addr);
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_websockets::ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .connect_on(tls),
    )
    .await
    .expect("handshake in time")
    .expect("websocket handshake");
    ws
}

/// Asks fresh connections for the certificate until it is `want` (or panics after WAIT).
async fn wait_for_certificate(ca: &Ca, hub: &Hub, want: &[u8]) {
    let start = Instant::now();
    while peer_certificate(ca, hub).await != want {
        assert!(
            start.elapsed() < WAIT,
            "the new certificate was not presented"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_presented_without_a_restart() {
    let ca = Ca::new();
    let (first, second) = (ca.leaf(), ca.leaf());
    let (hub, certs) = start_tls(&first, &["--tls-reload-secs", "1"]);
    assert_eq!(peer_certificate(&ca, &hub).await, first.der);

    // A stream opened with the old certificate outlives the reload.
    let c = client(&ca, false);
    let mut sse = c.get(url(&hub, "/sse?topic=r")).send().await.unwrap();
    install(certs.path(), &second);
    wait_for_certificate(&ca, &hub, &second.der).await;
    publish(&client(&ca, false), &hub, "r", "after reload").await;
    read_until(&mut sse, "data: after reload\n\n").await;

    // A broken file keeps the certificate that works.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(peer_certificate(&ca, &hub).await, second.der);
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let ca = Ca::new();
    let (first, second) = (ca.leaf(), ca.leaf());
    let (hub, certs) = start_tls(&first, &["--tls-reload-secs", "0"]);
    assert_eq!(peer_certificate(&ca, &hub).await, first.der);
    install(certs.path(), &second);
    // No polling: the old certificate stays until the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(peer_certificate(&ca, &hub).await, first.der);
    let pid = hub.child.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    wait_for_certificate(&ca, &hub, &second.der).await;
}

#[tokio::test]
async fn shutdown_ends_h2_streams_and_exits() {
    let ca = Ca::new();
    let (mut hub, _certs) = start_tls(&ca.leaf(), &[]);
    let c = client(&ca, false);
    let mut sse = c.get(url(&hub, "/sse?topic=s")).send().await.unwrap();
    assert_eq!(sse.version(), Version::HTTP_2);
    read_until(&mut sse, "\n\n").await;
    let status = tokio::task::spawn_blocking(move || {
        let status = hub.terminate();
        (hub, status)
    });
    // The stream ends (GOAWAY after its body completes) rather than hanging.
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match sse.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ended at shutdown");
    assert!(end.is_ok(), "a clean end of stream: {end:?}");
    let (_hub, status) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_certificate_files_exit_64_naming_the_file() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(dir.path(), &ca.leaf());
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    let (cert, key, bad, missing) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        bad.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    for (args, says) in [
        (vec!["--tls-cert", bad, "--tls-key", key], "bad.pem"),
        (vec!["--tls-cert", cert, "--tls-key", bad], "bad.pem"),
        (
            vec!["--tls-cert", cert, "--tls-key", missing],
            "missing.pem",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", cert],
            "no PRIVATE KEY",
        ),
        (vec!["--tls-cert", cert], "tls_key is not"),
        (vec!["--tls-key", key], "tls_cert is not"),
    ] {
        let child = common::spawn_bounded(
            Command::new(env!("CARGO_BIN_EXE_herald"))
                .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(&args)
                .stderr(Stdio::piped()),
        );
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Over HTTP/2 the host comes in `:authority`, not `Host`: Mercure's hub URL
/// (the 1.0 token audience, the metadata `resource`) is built from it.
#[tokio::test(flavor = "current_thread")]
async fn mercure_hub_url_comes_from_the_h2_authority() {
    let ca = Ca::new();
    let (hub, _certs) = start_tls(&ca.leaf(), &[]);
    let resp = client(&ca, false)
        .get(url(
            &hub,
            "/.well-known/oauth-protected-resource/.well-known/mercure",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        doc["resource"],
        format!("https://{}/.well-known/mercure", hub.addr)
    );
}
