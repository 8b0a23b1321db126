//! Where a connection comes from, as the limits count it: an IPv4 address or
//! an IPv6 /64 (one customer line usually holds a whole /64, so counting single
//! IPv6 addresses would let one peer take 2^64 slots), and lists of networks
//! (`ProxyProtocolFrom`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a socket
/// listening on `::` reports for IPv4 peers) turned into its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The unit the per-source limits count: one IPv4 address or one IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Net(u64),
}

impl Source {
    /// The source of a peer address.
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => Source::V6Net((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(v4) => write!(f, "{v4}"),
            Source::V6Net(hi) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*hi) << 64)),
        }
    }
}

/// A list of addresses and networks, e.g. `10.0.0.5, 192.0.2.0/24, 2001:db8::/48`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses entries separated by commas or spaces; an address alone is a
    /// /32 or /128. The error names the entry that is wrong.
    pub fn parse(text: &str) -> Result<Networks, String> {
        let mut nets = Vec::new();
        for entry in text.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => return Err(format!("{entry:?} is not an address or a network (CIDR)")),
                },
            };
            nets.push(net);
        }
        Ok(Networks(nets))
    }

    /// 127.0.0.0/8 and ::1.
    pub fn loopback() -> Networks {
        Networks(vec!["127.0.0.0/8".parse().expect("literal"), IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST))])
    }

    /// True when `ip` (IPv4-mapped addresses as IPv4) is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(Source::of(ip("2001:db8:1:2::5")), Source::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(Source::of(ip("2001:db8:1:2::5")), Source::of(ip("2001:db8:1:3::5")));
        assert_eq!(Source::of(ip("::ffff:192.0.2.7")), Source::V4("192.0.2.7".parse().unwrap()));
        assert_ne!(Source::of(ip("192.0.2.7")), Source::of(ip("192.0.2.8")));
        assert_eq!(Source::of(ip("2001:db8:1:2::5")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn network_lists() {
        let n = Networks::parse("10.0.0.5, 192.0.2.0/24 2001:db8::/48,[2001:db8:ff::1]").unwrap();
        for yes in ["10.0.0.5", "192.0.2.200", "::ffff:192.0.2.1", "2001:db8:0:ffff::1", "2001:db8:ff::1"] {
            assert!(n.contains(ip(yes)), "{yes}");
        }
        for no in ["10.0.0.6", "192.0.3.1", "2001:db9::1", "127.0.0.1"] {
            assert!(!n.contains(ip(no)), "{no}");
        }
        assert_eq!(n.to_string(), "10.0.0.5/32, 192.0.2.0/24, 2001:db8::/48, 2001:db8:ff::1/128");
        let lo = Networks::loopback();
        assert!(lo.contains(ip("127.0.0.1")) && lo.contains(ip("127.9.9.9")) && lo.contains(ip("::1")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")) && !lo.contains(ip("10.0.0.1")));
        assert_eq!(
            Networks::parse("10.0.0.0/33").unwrap_err(),
            "\"10.0.0.0/33\" is not an address or a network (CIDR)"
        );
        assert!(Networks::parse("lb.example.org").is_err());
        assert!(Networks::parse("").unwrap().is_empty());
    }
}
