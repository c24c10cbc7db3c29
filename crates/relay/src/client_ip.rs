//! Which address a connection comes from, for the per-address limits. Behind a TLS proxy every
//! socket comes from the proxy, so the proxy's `Forwarded` / `X-Forwarded-For` header says who
//! the client is — but only a proxy the operator named (`--trusted-proxy`) is believed: anyone
//! else could write any address there and walk past every limit.

use std::net::IpAddr;
use std::str::FromStr;

use crate::http::RequestHead;

/// An address range, `192.0.2.0/24` or `2001:db8::/32` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an address or an address range like 10.0.0.0/8");
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(bad());
        }
        Ok(Cidr { net, len })
    }
}

impl Cidr {
    /// Whether `ip` is in this range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Believe these.
    #[must_use]
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the socket's peer, unless that is a trusted proxy — then the nearest
    /// address in its forwarding chain that is not itself a trusted proxy (`Forwarded` preferred
    /// over `X-Forwarded-For`). A chain that cannot be read counts as the proxy itself.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, head: &RequestHead) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let chain = match head.header("forwarded") {
            Some(f) => forwarded_for(f),
            None => head
                .header("x-forwarded-for")
                .map(|x| x.split(',').map(parse_node).collect())
                .unwrap_or_default(),
        };
        // walk from the nearest hop outwards
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => continue,
                Some(ip) => return canonical(*ip),
                // an unknown or obfuscated hop: nothing further out can be believed
                None => break,
            }
        }
        canonical(peer)
    }
}

/// The `for=` addresses of a `Forwarded` header (RFC 7239), nearest last.
fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    value
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v))
            })
        })
        .collect()
}

/// One node: `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`; `unknown` or `_hidden` → None.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    s.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut raw = String::from("GET /v1/agent HTTP/1.1\r\nHost: x\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        RequestHead::parse(raw.as_bytes()).unwrap().unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "2001:db8::/33".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:7fff::1")) && !v6.contains(ip("2001:db8:8000::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.example".parse::<Cidr>().is_err());
    }

    #[test]
    fn headers_from_anyone_else_are_ignored() {
        let t = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
        let h = head(&[("X-Forwarded-For", "203.0.113.9")]);
        assert_eq!(t.client_ip(ip("198.51.100.7"), &h), ip("198.51.100.7"));
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let t = TrustedProxies::new(vec![
            "127.0.0.1".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let peer = ip("127.0.0.1");
        // the client wrote its own X-Forwarded-For: the proxy appended the real address last
        let h = head(&[("X-Forwarded-For", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(t.client_ip(peer, &h), ip("203.0.113.9"));
        let h = head(&[(
            "Forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(t.client_ip(peer, &h), ip("2001:db8::7"));
        let h = head(&[("Forwarded", "for=unknown")]);
        assert_eq!(
            t.client_ip(peer, &h),
            peer,
            "an unreadable chain counts as the proxy"
        );
        let h = head(&[("X-Forwarded-For", "198.51.100.1:5555")]);
        assert_eq!(t.client_ip(peer, &h), ip("198.51.100.1"));
        assert_eq!(t.client_ip(peer, &head(&[])), peer);
    }
}
