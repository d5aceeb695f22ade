use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reload::{Outcome, Watch};
use super::*;

/// A fresh self-signed certificate and its key, as PEM.
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn leaf(tls: &Tls) -> Vec<u8> {
    tls.current_chain()[0].to_vec()
}

#[test]
fn loads_a_pair_and_offers_h2_then_http1() {
    let dir = tempfile_dir();
    let (cert, key) = self_signed();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let tls = Tls::load(&c, &k, Duration::from_secs(1)).unwrap();
    assert_eq!(tls.current_chain().len(), 1);
    let config = tls.acceptor().config();
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile_dir();
    let (cert, key) = self_signed();
    let (other_cert, _) = self_signed();
    let err = |cert: &str, key: &str| {
        let (c, k) = write_pair(dir.path(), cert, key);
        Tls::load(&c, &k, Duration::ZERO).unwrap_err().to_string()
    };
    let e = err("not a certificate", &key);
    assert!(
        e.contains("cert.pem") && e.contains("no CERTIFICATE"),
        "{e}"
    );
    let e = err(&cert, "garbage");
    assert!(e.contains("key.pem") && e.contains("no PRIVATE KEY"), "{e}");
    let e = err(
        &cert,
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    );
    assert!(e.contains("key.pem") && e.contains("invalid PEM"), "{e}");
    let e = err(&other_cert, &key);
    assert!(
        e.contains("key.pem") && e.contains("does not fit") && e.contains("cert.pem"),
        "{e}"
    );
    let missing = dir.path().join("missing.pem");
    let e = Tls::load(&missing, &missing, Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read") && e.contains("missing.pem"),
        "{e}"
    );
}

#[test]
fn a_changed_pair_is_installed_and_a_broken_one_keeps_the_old() {
    let dir = tempfile_dir();
    let (cert, key) = self_signed();
    let (c, k) = write_pair(dir.path(), &cert, &key);
    let tls = Tls::load(&c, &k, Duration::from_secs(1)).unwrap();
    let first = leaf(&tls);
    let mut watch = Watch::new(&tls);
    assert_eq!(tls.check(&mut watch, false), Outcome::Unchanged);

    // Half a renewal: a new certificate next to the old key.
    let (cert2, key2) = self_signed();
    std::fs::write(&c, &cert2).unwrap();
    assert_eq!(tls.check(&mut watch, false), Outcome::Failed);
    assert_eq!(leaf(&tls), first, "the old certificate stays");
    assert_eq!(tls.check(&mut watch, false), Outcome::Unchanged);

    // The other half.
    std::fs::write(&k, &key2).unwrap();
    assert_eq!(tls.check(&mut watch, false), Outcome::Reloaded);
    let second = leaf(&tls);
    assert_ne!(second, first);

    // A missing file fails and keeps the certificate; forcing reloads even
    // unchanged files.
    std::fs::remove_file(&k).unwrap();
    assert_eq!(tls.check(&mut watch, false), Outcome::Failed);
    assert_eq!(leaf(&tls), second);
    std::fs::write(&k, &key2).unwrap();
    assert_eq!(tls.check(&mut watch, true), Outcome::Reloaded);
    assert_eq!(leaf(&tls), second);
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
