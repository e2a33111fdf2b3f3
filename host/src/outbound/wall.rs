//! The SSRF wall: which addresses a plugin's HTTP request may reach. Every
//! address a name resolves to, and every IP literal in a URL, is classified
//! here before a connection is made; loopback, private, link-local,
//! unique-local, multicast, unspecified, reserved and cloud-metadata
//! addresses are refused unless the admin names their range in
//! `http_allow_private`. The resolver hands reqwest only the addresses that
//! passed, so the connection goes to an address that was checked (no DNS
//! rebinding between check and connect).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;

/// Why an address is refused: the class it belongs to.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let class = match (a, b, c, d) {
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200) => "a cloud metadata address",
        (0, ..) => "an unspecified (\"this network\") address",
        (127, ..) => "a loopback address",
        (10, ..) => "a private address (10.0.0.0/8)",
        (172, 16..=31, ..) => "a private address (172.16.0.0/12)",
        (192, 168, ..) => "a private address (192.168.0.0/16)",
        (100, 64..=127, ..) => "a shared (carrier-grade NAT) address (100.64.0.0/10)",
        (169, 254, ..) => "a link-local address",
        (192, 0, 0, _) => "an IETF protocol address (192.0.0.0/24)",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "a documentation address",
        (192, 88, 99, _) => "a deprecated 6to4 relay anycast address (192.88.99.0/24)",
        (198, 18..=19, ..) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, ..) => "a multicast address",
        (255, 255, 255, 255) => "the broadcast address",
        (240..=255, ..) => "a reserved address (240.0.0.0/4)",
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // Addresses that carry an IPv4 address are judged by it.
    // IPv4-mapped, NAT64 and 6to4 with a public IPv4 inside pass.
    if let Some(v4) = embedded_v4(ip) {
        if let Some(class) = classify_v4(v4) {
            return Some(class);
        }
        if is_ipv4_compatible(ip) {
            return Some("an address embedding IPv4 in a deprecated form (::a.b.c.d)");
        }
        return None;
    }
    let segments = ip.segments();
    let class = match segments[0] {
        0xfd00 if segments[1] == 0x0ec2 => "a cloud metadata address",
        0xfc00..=0xfdff => "a unique-local address (fc00::/7)",
        0xfe80..=0xfebf => "a link-local address (fe80::/10)",
        0xfec0..=0xfeff => "a site-local address (fec0::/10)",
        0xff00..=0xffff => "a multicast address",
        0x2001 if segments[1] == 0x0db8 => "a documentation address (2001:db8::/32)",
        0x2001 if segments[1] == 0 => "a Teredo address (2001::/32)",
        0x0100 if segments[1..4] == [0, 0, 0] => "a discard address (100::/64)",
        0x0000 => "a reserved address (::/8)",
        _ => return None,
    };
    Some(class)
}

/// `::a.b.c.d`, the deprecated IPv4-compatible form.
fn is_ipv4_compatible(ip: Ipv6Addr) -> bool {
    ip.segments()[..6] == [0; 6]
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), local-use NAT64 (`64:ff9b:1::/48`,
/// RFC 8215, the IPv4 address in its last 32 bits as the common /96
/// translators place it) or 6to4 (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let octets = ip.octets();
    let last_four = || Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if is_ipv4_compatible(ip) {
        return Some(last_four());
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..3] == [0x64, 0xff9b, 1] {
        return Some(last_four());
    }
    if segments[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// The addresses refused and the ranges the admin let through.
#[derive(Debug, Clone, Default)]
pub struct Wall {
    allowed: Vec<IpNet>,
}

impl Wall {
    /// A wall that lets `allowed` through (from `http_allow_private`).
    pub fn new(allowed: Vec<IpNet>) -> Wall {
        Wall { allowed }
    }

    /// Ok when a request may connect to `ip`; else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let canonical = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self
            .allowed
            .iter()
            .any(|range| range.contains(&ip) || range.contains(&canonical))
        {
            return Ok(());
        }
        Err(format!(
            "{ip} is {class}; the daemon refuses it (an admin can allow a range with http_allow_private)"
        ))
    }
}

/// Looks a name up: the system resolver, or a stand-in in tests.
pub type Lookup = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> + Send + Sync>;

/// The system's resolver (getaddrinfo through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: String| {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    })
}

/// reqwest's resolver hook: names the admin pinned (`http_resolve`) first,
/// then `lookup`; only addresses the wall lets through reach the connector.
#[derive(Clone)]
pub struct WallResolver {
    wall: Arc<Wall>,
    pinned: Arc<HashMap<String, Vec<IpAddr>>>,
    lookup: Lookup,
}

impl WallResolver {
    /// A resolver behind `wall`.
    pub fn new(wall: Arc<Wall>, pinned: HashMap<String, Vec<IpAddr>>, lookup: Lookup) -> WallResolver {
        let pinned = pinned
            .into_iter()
            .map(|(name, addresses)| (name.to_ascii_lowercase(), addresses))
            .collect();
        WallResolver {
            wall,
            pinned: Arc::new(pinned),
            lookup,
        }
    }

    /// The addresses of `name` a connection may use, or why there are none.
    pub async fn resolve_checked(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let addresses = match self.pinned.get(&name) {
            Some(addresses) => addresses.clone(),
            None => (self.lookup)(name.clone())
                .await
                .map_err(|error| format!("cannot resolve {name}: {error}"))?,
        };
        if addresses.is_empty() {
            return Err(format!("{name} has no addresses"));
        }
        let mut refusals = Vec::new();
        let passed: Vec<IpAddr> = addresses
            .into_iter()
            .filter(|ip| match self.wall.check(*ip) {
                Ok(()) => true,
                Err(refusal) => {
                    refusals.push(refusal);
                    false
                }
            })
            .collect();
        if passed.is_empty() {
            return Err(format!("{name} resolves to {}", refusals.join("; ")));
        }
        Ok(passed)
    }
}

impl reqwest::dns::Resolve for WallResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver
                .resolve_checked(name.as_str())
                .await
                .map_err(|refusal| -> Box<dyn std::error::Error + Send + Sync> { refusal.into() })?;
            let sockets: reqwest::dns::Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(sockets)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_internal_address_class_is_refused() {
        let refused = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("169.254.170.2", "metadata"),
            ("100.100.100.200", "metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade"),
            ("100.127.255.255", "carrier-grade"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("64:ff9b:1::7f00:1", "loopback"),
            ("64:ff9b:1:abcd::a9fe:a9fe", "metadata"),
            ("64:ff9b:1::a00:1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fd00:ec2::254", "metadata"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("100::1", "discard"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::127.0.0.1", "loopback"),
            ("::8.8.8.8", "deprecated"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ];
        for (address, class) in refused {
            let found = classify(ip(address)).unwrap_or_else(|| panic!("{address} passed the wall"));
            assert!(found.contains(class), "{address}: {found:?} should say {class:?}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81c::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(classify(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn the_admin_can_let_a_named_range_through_and_only_it() {
        let wall = Wall::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(wall.check(ip("127.0.0.1")).is_ok());
        assert!(wall.check(ip("::1")).is_ok());
        // The mapped form of an allowed IPv4 address is the same address.
        assert!(wall.check(ip("::ffff:127.0.0.1")).is_ok());
        let refusal = wall.check(ip("10.0.0.1")).unwrap_err();
        assert!(refusal.contains("10.0.0.1 is a private address"), "{refusal}");
        assert!(wall.check(ip("169.254.169.254")).is_err());
        assert!(Wall::default().check(ip("127.0.0.1")).is_err());
    }

    fn resolver(wall: Wall, answers: &[(&str, &[&str])]) -> WallResolver {
        let answers: HashMap<String, Vec<IpAddr>> = answers
            .iter()
            .map(|(name, addresses)| (name.to_string(), addresses.iter().map(|text| ip(text)).collect()))
            .collect();
        let lookup: Lookup = Arc::new(move |name: String| {
            let found = answers.get(&name).cloned();
            Box::pin(async move { found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host")) })
        });
        WallResolver::new(Arc::new(wall), HashMap::new(), lookup)
    }

    #[tokio::test]
    async fn the_resolver_hands_on_only_addresses_that_pass() {
        let resolver = resolver(
            Wall::default(),
            &[
                ("public.test", &["93.184.216.34"]),
                ("rebind.test", &["127.0.0.1"]),
                ("metadata.test", &["169.254.169.254"]),
                ("mixed.test", &["10.0.0.7", "93.184.216.34", "::1"]),
                ("mapped.test", &["::ffff:192.168.0.1"]),
                ("empty.test", &[]),
            ],
        );
        assert_eq!(
            resolver.resolve_checked("public.test").await,
            Ok(vec![ip("93.184.216.34")])
        );
        assert_eq!(
            resolver.resolve_checked("PUBLIC.test.").await,
            Ok(vec![ip("93.184.216.34")])
        );
        let refusal = resolver.resolve_checked("rebind.test").await.unwrap_err();
        assert!(refusal.contains("127.0.0.1 is a loopback address"), "{refusal}");
        let refusal = resolver.resolve_checked("metadata.test").await.unwrap_err();
        assert!(refusal.contains("metadata"), "{refusal}");
        // Only the public address of a mixed answer is ever connected to.
        assert_eq!(
            resolver.resolve_checked("mixed.test").await,
            Ok(vec![ip("93.184.216.34")])
        );
        assert!(resolver.resolve_checked("mapped.test").await.is_err());
        assert!(resolver.resolve_checked("empty.test").await.is_err());
        assert!(
            resolver
                .resolve_checked("missing.test")
                .await
                .unwrap_err()
                .contains("cannot resolve")
        );
    }

    #[tokio::test]
    async fn names_pinned_by_the_admin_are_checked_like_any_other() {
        let lookup: Lookup = Arc::new(|_name: String| Box::pin(async { panic!("a pinned name is not looked up") }));
        let pinned = HashMap::from([("internal.test".to_string(), vec![ip("127.0.0.1")])]);
        let closed = WallResolver::new(Arc::new(Wall::default()), pinned.clone(), lookup.clone());
        assert!(closed.resolve_checked("internal.test").await.is_err());
        let open = WallResolver::new(
            Arc::new(Wall::new(vec!["127.0.0.0/8".parse().unwrap()])),
            pinned,
            lookup,
        );
        assert_eq!(open.resolve_checked("Internal.Test").await, Ok(vec![ip("127.0.0.1")]));
    }
}
