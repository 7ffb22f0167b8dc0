//! The client's address, computed once per request: the connection's peer, or — only when the peer is
//! one of `[server] trusted_proxies` — the right-most address in `Forwarded` (RFC 7239) or, without
//! one, `X-Forwarded-For` that is not itself a trusted proxy. Lockout, the audit log and Crowd's
//! validation factors all use this one address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address, as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// These networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The client behind `peer`: walking the forwarded hops from the right while the address reached
    /// is a trusted proxy; a hop that names no address (`unknown`, an obfuscated one, garbage) stops
    /// the walk at the proxy that reported it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_hops(headers).into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop {
                Some(addr) => client = addr.to_canonical(),
                None => break,
            }
        }
        client
    }
}

/// The hops the proxies reported, left (farthest) to right (nearest): `Forwarded`'s `for=` when any
/// `Forwarded` header is present, else `X-Forwarded-For`'s; `None` for a hop with no usable address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then(|| node(value))
                })?
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(node)
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// quoted or not.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Puts the request's [`ClientAddr`] in its extensions (none without a connection, as in tests that call
/// the app directly).
pub fn resolve(proxies: &TrustedProxies, request: &mut Request) {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddr(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(p.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client wrote a spoofed first hop itself; the proxies appended the real one.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7:5555, 10.1.2.3"),
        ]);
        assert_eq!(p.client(ip("10.9.9.9"), &h), ip("198.51.100.7"));
        // All trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(p.client(ip("10.0.0.7"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_wins_and_is_read_as_rfc_7239_writes_it() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            (
                "forwarded",
                "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2;by=10.0.0.3",
            ),
        ]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=\"198.51.100.7:47011\"")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn a_hop_without_an_address_stops_at_the_proxy_that_wrote_it() {
        let p = proxies(&["10.0.0.0/8"]);
        for value in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=1.1.1.1, for=garbage",
        ] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{value}");
        }
        let h = headers(&[("x-forwarded-for", "1.1.1.1, not-an-address")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_peers_are_matched_as_ipv4() {
        let p = proxies(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.7"));
    }
}
