//! URL templates (`http://HOST:PORT/PATH?…{topic}…`): where to subscribe and
//! where to publish, so one tool drives Herald, nchan or Pushpin alike.

use std::net::SocketAddr;

/// A parsed `http://` URL with a `{topic}` placeholder.
#[derive(Debug, Clone)]
pub(crate) struct UrlTemplate {
    /// The authority as written, sent as the `Host` header.
    pub(crate) authority: String,
    /// Host name or address literal (no brackets).
    host: String,
    /// Port (80 when not written).
    port: u16,
    /// Path and query, `{topic}` included.
    path: String,
}

impl UrlTemplate {
    /// Parses `url`, which must hold `{topic}`; `flag` names the option in
    /// error messages.
    pub(crate) fn parse(flag: &str, url: &str) -> Result<UrlTemplate, String> {
        if !url.contains("{topic}") {
            return Err(format!("{flag}: {url:?} has no {{topic}} placeholder"));
        }
        UrlTemplate::parse_plain(flag, url)
    }

    /// Parses `url`, with or without `{topic}`.
    pub(crate) fn parse_plain(flag: &str, url: &str) -> Result<UrlTemplate, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{flag}: {url:?} must start with http:// (https is not supported)")
        })?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('{') {
            return Err(format!(
                "{flag}: {{topic}} may only appear in the path or query"
            ));
        }
        let (host, port) = split_authority(authority)
            .ok_or_else(|| format!("{flag}: cannot read host and port in {url:?}"))?;
        Ok(UrlTemplate {
            authority: authority.to_string(),
            host,
            port,
            path,
        })
    }

    /// The request target for `topic`.
    pub(crate) fn target(&self, topic: &str) -> String {
        self.path.replace("{topic}", topic)
    }

    /// Resolves the host, preferring IPv4.
    pub(crate) async fn resolve(&self) -> Result<SocketAddr, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }
}

/// `host[:port]` or `[v6][:port]` → (host, port).
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_fill() {
        let t = UrlTemplate::parse("--sub-url", "http://127.0.0.1:8080/sse?topic={topic}").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.target("a-1"), "/sse?topic=a-1");
        let t = UrlTemplate::parse("--sub-url", "http://[::1]/sub/{topic}").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(t.target("x"), "/sub/x");
        let t = UrlTemplate::parse("--sub-url", "http://h:1?topic={topic}").unwrap();
        assert_eq!(t.target("x"), "/?topic=x");
    }

    #[test]
    fn bad_templates_are_refused_with_the_flag_named() {
        for bad in [
            "https://h/{topic}",
            "http://h/sse",
            "http://h:notaport/{topic}",
            "http://:80/{topic}",
            "ftp://h/{topic}",
        ] {
            let e = UrlTemplate::parse("--sub-url", bad).unwrap_err();
            assert!(e.starts_with("--sub-url"), "{bad}: {e}");
        }
    }
}
