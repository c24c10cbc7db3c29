//! Relay URLs: only `ws://` and `wss://`. A `ws://` URL to a host other than loopback would send
//! the device token in clear, so it is refused unless the person explicitly allows it.

use url::Url;

/// Default relay for a first try on this machine.
pub const DEFAULT_RELAY_URL: &str = "ws://127.0.0.1:8765";

/// A validated relay base URL (no path, query or fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl(Url);

impl RelayUrl {
    /// Validate `s`. `allow_insecure` permits `ws://` to non-loopback hosts.
    pub fn parse(s: &str, allow_insecure: bool) -> Result<Self, String> {
        let url = Url::parse(s.trim()).map_err(|e| {
            format!("'{s}' is not a valid relay URL ({e}); it looks like wss://relay.example.com")
        })?;
        match url.scheme() {
            "wss" => {}
            "ws" => {
                if !is_loopback(&url) && !allow_insecure {
                    return Err(format!(
                        "'{s}' is unencrypted (ws://) to another machine: your device token would travel in clear. Use wss://, or allow insecure relays explicitly"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "relay URLs start with wss:// (or ws:// on this machine), not {other}://"
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("'{s}' has no host"));
        }
        let mut base = url;
        base.set_path("");
        base.set_query(None);
        base.set_fragment(None);
        Ok(Self(base))
    }

    /// The WebSocket URL of an endpoint path with an optional query.
    #[must_use]
    pub fn endpoint(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut u = self.0.clone();
        u.set_path(path);
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u.to_string()
    }

    /// As given (normalised).
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_wss_and_loopback_ws() {
        assert!(RelayUrl::parse("wss://relay.example.com", false).is_ok());
        assert!(RelayUrl::parse("ws://127.0.0.1:8765", false).is_ok());
        assert!(RelayUrl::parse("ws://localhost:1", false).is_ok());
        assert!(RelayUrl::parse("ws://[::1]:1", false).is_ok());
    }

    #[test]
    fn refuses_cleartext_to_other_hosts_unless_allowed() {
        let e = RelayUrl::parse("ws://relay.example.com", false).unwrap_err();
        assert!(e.contains("in clear"), "{e}");
        assert!(RelayUrl::parse("ws://relay.example.com", true).is_ok());
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        assert!(RelayUrl::parse("https://relay.example.com", false)
            .unwrap_err()
            .contains("wss://"));
        assert!(RelayUrl::parse("not a url", false).is_err());
    }

    #[test]
    fn builds_endpoint_urls() {
        let u = RelayUrl::parse("wss://r.example.com/ignored?x=1", false).unwrap();
        assert_eq!(
            u.endpoint("/v1/desktop", &[("session", "abc")]),
            "wss://r.example.com/v1/desktop?session=abc"
        );
        assert_eq!(u.as_str(), "wss://r.example.com");
    }
}
