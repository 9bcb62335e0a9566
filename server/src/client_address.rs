//! Which client a connection or request comes from, as the limits count it.
//!
//! The peer's address, unless the peer is a reverse proxy the operator
//! trusts (`--trusted-proxies`): then the client address it reports in
//! `X-Forwarded-For`. Without that opt-in the header is ignored, since
//! anyone can write it. IPv6 clients are counted by their /64, which one
//! host or one home usually holds whole.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                top_bits(u32::from(network).into(), 32, self.prefix) == top_bits(u32::from(address).into(), 32, self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                top_bits(network.into(), 128, self.prefix) == top_bits(address.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The first `prefix` of the `width` bits of `bits`.
fn top_bits(bits: u128, width: u8, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        _ => bits >> (width - prefix.min(width)),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("{text:?} is not an IP address or network (10.0.0.0/8, fd00::/8)"))?;
        let network = network.to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&prefix| prefix <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> Self {
        TrustedProxies(networks)
    }

    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(peer))
    }

    /// The client a request comes from, keyed for counting ([`key`]): the
    /// peer, or, while the peer is a trusted proxy, the address before it in
    /// `X-Forwarded-For` (read from the right, since each proxy appends the
    /// address it was reached from, and only trusted ones are believed).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if self.trusts(client) {
            let hops: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .map_while(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .collect();
            for hop in hops.iter().rev() {
                // A hop that is not an address ends the walk at the proxy that wrote it.
                let Ok(address) = hop.trim().parse::<IpAddr>() else { break };
                client = address.to_canonical();
                if !self.trusts(client) {
                    break;
                }
            }
        }
        key(client)
    }
}

/// What the limits count a client address by: an IPv4 address as it is, an
/// IPv6 address by its /64.
pub fn key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn networks_parse_and_contain_their_addresses() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "an IPv4-mapped address is its IPv4 address");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("2001:db8:1:2:ffff::9")), key(ip("2001:db8:1:2::1")));
        assert_ne!(key(ip("2001:db8:1:3::1")), key(ip("2001:db8:1:2::1")));
        assert_eq!(key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("198.51.100.1"), &forwarded(&["203.0.113.5"])), ip("198.51.100.1"));

        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded(&["203.0.113.5"])), ip("203.0.113.5"));
        // A client's own forged entries sit left of what the proxy appended.
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded(&["1.2.3.4, 203.0.113.5"])), ip("203.0.113.5"));
        // Proxies in a chain are walked through; several header lines count as one list.
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded(&["203.0.113.5", "10.9.9.9"])), ip("203.0.113.5"));
        // An untrusted peer's header is ignored, and so is garbage.
        assert_eq!(proxies.client(ip("198.51.100.1"), &forwarded(&["203.0.113.5"])), ip("198.51.100.1"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded(&["nonsense"])), ip("10.0.0.2"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded(&["2001:db8:1:2::77"])), ip("2001:db8:1:2::"));
    }
}
