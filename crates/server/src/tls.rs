//! TLS: rustls (aws-lc-rs, the one provider of the workspace) with ALPN `h2`
//! and `http/1.1`, and a certificate that can be replaced while the server runs.
//!
//! - [`Tls::load`] reads the PEM files once, at start; a caller that validates
//!   configuration turns its [`TlsError`] (which names the file) into an exit.
//! - Every handshake asks the [`Resolver`] for the current [`CertifiedKey`]:
//!   one `Arc` clone under a read lock, so a reload never touches a live
//!   connection and new connections see the new certificate at once.
//! - [`reload`] is the task that re-reads the files every `reload` interval and
//!   on SIGHUP; a file that changed is parsed and checked against its key
//!   before it replaces the old pair, and a failure keeps the old one.
//! - Serving a connection (handshake, then hyper's HTTP/1.1-or-HTTP/2 builder)
//!   lives in `listener/tls.rs`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

pub mod reload;

/// The protocols offered in ALPN, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate or key could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, not permitted, a directory).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not PEM, or lacks the section it must hold (a `CERTIFICATE`
    /// in the certificate file, a `PRIVATE KEY` in the key file).
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The key cannot sign with this provider, or is not the certificate's.
    #[error("{} does not fit the certificate in {}: {source}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the configuration (never with the built-in provider).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// A loaded TLS configuration: the acceptor every connection uses, the
/// certificate it presents (replaceable) and where that certificate comes from.
/// Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    /// Wraps the `ServerConfig` (ALPN, the resolver); shared by every handshake.
    acceptor: TlsAcceptor,
    /// Holds the current certificate; the reload task swaps it.
    resolver: Arc<Resolver>,
    /// The files and how often to look at them.
    source: Arc<Source>,
}

/// Where the certificate comes from.
struct Source {
    cert: PathBuf,
    key: PathBuf,
    /// How often the files are read to look for a change (`ZERO`: never; SIGHUP still reloads).
    reload: Duration,
    /// The provider keys are loaded with (the acceptor's).
    provider: Arc<CryptoProvider>,
    /// The files' bytes as they were loaded at start.
    initial: (Vec<u8>, Vec<u8>),
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.source.cert)
            .field("key", &self.source.key)
            .field("reload", &self.source.reload)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the certificate chain (PEM, leaf first) and its key
    /// (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC), and builds the server configuration.
    pub fn load(cert: &Path, key: &Path, reload: Duration) -> Result<Tls, TlsError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let certified = certified_key(cert, &cert_pem, key, &key_pem, &provider)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(certified)),
        });
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            source: Arc::new(Source {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reload,
                provider,
                initial: (cert_pem, key_pem),
            }),
        })
    }

    /// The acceptor that performs handshakes.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate chain presented to new connections (leaf first).
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.resolver.current().cert.clone()
    }

    /// How often the files are checked for a change (`ZERO`: only on SIGHUP).
    pub fn reload_interval(&self) -> Duration {
        self.source.reload
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.source.cert
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.source.key
    }

    /// Builds a certificate from the files' bytes and, if it is usable,
    /// presents it to every new connection. On error the old one stays.
    fn install(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let s = &self.source;
        let certified = certified_key(&s.cert, cert_pem, &s.key, key_pem, &s.provider)?;
        self.resolver.replace(certified);
        Ok(())
    }
}

/// Reads a whole file, naming it on error.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the PEM files into a chain and a key, and checks that they belong together.
fn certified_key(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path, what: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, format!("invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(pem_error(
            cert,
            "no CERTIFICATE section: expected a PEM certificate chain, leaf first".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => pem_error(
            key,
            "no PRIVATE KEY section: expected a PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC)".into(),
        ),
        e => pem_error(key, format!("invalid PEM: {e}")),
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

/// Hands every handshake the current certificate; [`Resolver::replace`] swaps it.
#[derive(Debug)]
struct Resolver {
    /// Read once per handshake (an `Arc` clone), written once per reload.
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    fn current(&self) -> Arc<CertifiedKey> {
        // A panic while holding the lock cannot leave the `Arc` half-written.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, certified: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests;
