//! The outbound HTTP client of webhooks, with its server-side request forgery
//! guard: callbacks and topic URLs that reach loopback, private, link-local,
//! multicast or otherwise non-public addresses are refused unless
//! `webhook_allow_private` is set.
//!
//! The check runs when connecting, not only when subscribing: reqwest asks
//! [`GuardedResolver`] for the addresses of every host it connects to, and it
//! drops forbidden ones (a name that resolves only to forbidden addresses
//! fails), so a name that later re-resolves to `127.0.0.1` (DNS rebinding) is
//! still refused. reqwest does not resolve literal IP hosts, so [`check_url`]
//! refuses forbidden literals before every request. Redirects are never
//! followed and proxies from the environment are not used (either would move
//! the connection elsewhere).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, Url};

/// Whether `ip` is not a public unicast address (loopback, private,
/// link-local, multicast, unspecified, shared, documentation, reserved...).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 (embeds IPv4)
}

/// Why a URL may not be used as a callback or fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute URL.
    #[error("{0:?} is not an absolute URL")]
    NotUrl(String),
    /// Not http or https.
    #[error("the URL must use http or https, not {0:?}")]
    Scheme(String),
    /// A host that is a forbidden address.
    #[error(
        "the URL points at {0}, a loopback, private, link-local or multicast address; this hub refuses those (webhook_allow_private)"
    )]
    Forbidden(String),
}

/// Parses `s` as an http(s) URL whose host, if an IP literal (or `localhost`),
/// is allowed. Names are checked again at every connection.
pub fn check_url(s: &str, allow_private: bool) -> Result<Url, UrlError> {
    let url = Url::parse(s).map_err(|_| UrlError::NotUrl(s.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_string()));
    }
    if !allow_private {
        let bad = match url.host() {
            Some(url::Host::Ipv4(ip)) => forbidden(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => forbidden(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            None => return Err(UrlError::NotUrl(s.to_string())),
        };
        if bad {
            return Err(UrlError::Forbidden(
                url.host_str().unwrap_or_default().to_string(),
            ));
        }
    }
    Ok(url)
}

/// `url` for logs: without user info, query string or fragment (callback
/// URLs often carry a token there).
pub(crate) fn for_log(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Resolves with the system resolver, then keeps only allowed addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    /// Keep every address (tests, private deployments).
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow || !forbidden(a.ip()))
                .collect();
            if kept.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} has no address").into()
                } else {
                    tracing::warn!(%host, addrs = ?found, "webhook connection refused: the name resolves to forbidden addresses");
                    format!("{host} resolves only to loopback, private, link-local or multicast addresses, which this hub refuses").into()
                };
                return Err(e);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The client every webhook request uses: guarded resolver, no redirects, no
/// proxies, `timeout` for each whole request.
pub(crate) fn client(allow_private: bool, timeout: Duration) -> Result<Client, reqwest::Error> {
    Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!(
            "herald/",
            env!("CARGO_PKG_VERSION"),
            " (WebSub hub)"
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn checks_literal_hosts_and_schemes() {
        assert!(check_url("https://example.com/cb?x=1", false).is_ok());
        for bad in [
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost/cb",
            "http://api.localhost./cb",
            "http://169.254.169.254/latest",
            "http://0x7f000001/cb",
        ] {
            assert!(
                matches!(check_url(bad, false), Err(UrlError::Forbidden(_))),
                "{bad}"
            );
        }
        assert!(check_url("http://127.0.0.1:8080/cb", true).is_ok());
        assert!(matches!(
            check_url("ftp://example.com/", true),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            check_url("/relative", true),
            Err(UrlError::NotUrl(_))
        ));
    }

    #[test]
    fn logs_leave_out_credentials_and_queries() {
        assert_eq!(
            for_log("https://u:p@example.com:8443/cb?token=secret#x"),
            "https://example.com:8443/cb"
        );
        assert_eq!(for_log("nope"), "(not a URL)");
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_addresses() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err());
        let open = GuardedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(open.resolve(name).await.unwrap().next().is_some());
    }
}
