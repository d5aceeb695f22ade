//! The TLS settings: both files or neither, read and checked at start (exit 64
//! naming the file), and how often they are looked at for a new certificate.

use std::time::Duration;

use herald_server::tls::Tls;

use super::{BadConfig, Settings};

/// Loads the certificate and key when both are set; `None` when neither is.
pub(super) fn validate(s: &Settings) -> Result<Option<Tls>, BadConfig> {
    let (cert, key) = (&s.tls_cert, &s.tls_key);
    match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(BadConfig(format!(
                "tls_cert = {:?} is set but tls_key is not: set both (PEM files) to serve HTTPS, or neither",
                cert.display().to_string()
            )));
        }
        (true, false) => {
            return Err(BadConfig(format!(
                "tls_key = {:?} is set but tls_cert is not: set both (PEM files) to serve HTTPS, or neither",
                key.display().to_string()
            )));
        }
        (false, false) => {}
    }
    let reload = Duration::from_secs(s.tls_reload_secs);
    Tls::load(cert, key, reload)
        .map(Some)
        .map_err(|e| BadConfig(format!("TLS: {e}")))
}
