//! Where a webhook may point: `http` or `https` URLs on an allowed port
//! (`webhooks.allowed_ports`) whose host resolves only to public addresses, unless
//! `webhooks.allow_private` is set. The check runs when a webhook is written and again at
//! every connection (through the client's resolver), so a name that later resolves to an
//! internal address is refused too. An IPv6 address that embeds an IPv4 one (mapped,
//! compatible, NAT64, 6to4, Teredo) is judged by the IPv4 rules on what it embeds, since a
//! gateway delivers it there.

use super::WebhooksConfig;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What to say when a private target is refused.
pub const ALLOW_HINT: &str =
    "set webhooks.allow_private = true (ROTA_WEBHOOKS_ALLOW_PRIVATE=true) to allow it";

/// The ports a target may use: `webhooks.allowed_ports`, e.g. `80,443,1024-65535`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(Vec<(u16, u16)>);

impl Ports {
    /// Parses a comma-separated list of ports and `low-high` ranges; the error names the part.
    pub fn parse(s: &str) -> Result<Ports, String> {
        let bad = |part: &str| {
            format!(
                "webhooks.allowed_ports: `{part}` is not a port (1-65535) or a range such as \
                 1024-65535"
            )
        };
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = match part.split_once('-') {
                Some((lo, hi)) => (port(lo), port(hi)),
                None => (port(part), port(part)),
            };
            match range {
                (Some(lo), Some(hi)) if lo <= hi => out.push((lo, hi)),
                _ => return Err(bad(part)),
            }
        }
        if out.is_empty() {
            return Err("webhooks.allowed_ports names no port; e.g. 80,443,1024-65535".into());
        }
        Ok(Ports(out))
    }

    pub fn allows(&self, port: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port))
    }
}

/// Why a URL's port is refused, if it is.
fn refused_port(u: &reqwest::Url, config: &WebhooksConfig) -> Option<String> {
    let port = u.port_or_known_default()?;
    let ports = Ports::parse(&config.allowed_ports).ok()?;
    (!ports.allows(port)).then(|| {
        format!(
            "port {port} is not allowed for webhook and callback targets; allowed: {} \
             (webhooks.allowed_ports)",
            config.allowed_ports
        )
    })
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // 192.0.2.0/24, documentation
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // 198.51.100.0/24, documentation
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // 203.0.113.0/24, documentation
        || o[0] >= 240 // reserved
}

/// The IPv4 addresses an IPv6 address stands for: the one it maps, is compatible with, or
/// that NAT64, 6to4 or Teredo reach through it (both the Teredo server and client).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if let Some(m) = ip.to_ipv4_mapped() {
        return vec![m];
    }
    match s {
        // IPv4-compatible ::a.b.c.d (deprecated; ::, ::1 are judged as IPv6 too).
        [0, 0, 0, 0, 0, 0, hi, lo] => vec![v4(hi, lo)],
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => vec![v4(hi, lo)],
        // 6to4 2002:AABB:CCDD::/48.
        [0x2002, hi, lo, ..] => vec![v4(hi, lo)],
        // Teredo 2001:0::/32: the server, then the client (stored inverted).
        [0x2001, 0, shi, slo, _, _, chi, clo] => vec![v4(shi, slo), v4(!chi, !clo)],
        _ => vec![],
    }
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if embedded_v4(ip).into_iter().any(private_v4) {
        return true;
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
}

/// Loopback, private, link-local, shared, reserved or unspecified.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

/// Checks a URL's form, its port and, unless `allow_private`, that its host is not a private
/// address (a literal one, or a name resolving to one). The message names what is wrong.
pub async fn check(url: &str, config: &WebhooksConfig) -> Result<reqwest::Url, String> {
    if url.len() > rota_core::webhooks::MAX_URL_LEN {
        return Err(format!(
            "url is {} bytes; the limit is {}",
            url.len(),
            rota_core::webhooks::MAX_URL_LEN
        ));
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("url `{url}` is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("url must be http or https, not `{}`", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url must not carry credentials; the signature authenticates Rota".into());
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("url `{url}` has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !config.allow_private {
        let port = u.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("url host `{host}` does not resolve: {e}"))?
                .collect(),
        };
        if let Some(a) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(format!(
                "url host `{host}` is a private, loopback or link-local address ({}); \
                 {ALLOW_HINT}",
                a.ip()
            ));
        }
    }
    match refused_port(&u, config) {
        Some(e) => Err(format!("url: {e}")),
        None => Ok(u),
    }
}

/// Checks a task's `callback_url` as an enqueue can afford to: its form, and a literal private
/// address unless allowed, and its port (a name is checked when it is resolved, at delivery).
/// Answers the URL as parsed (host lowercased, default port dropped), which is how it is
/// stored, so all of an origin's URLs start alike (the deliverer's bounds rely on it).
pub fn check_form(url: &str, config: &WebhooksConfig) -> Result<String, String> {
    if url.len() > rota_core::webhooks::MAX_URL_LEN {
        return Err(format!(
            "is {} bytes; the limit is {}",
            url.len(),
            rota_core::webhooks::MAX_URL_LEN
        ));
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("must be http or https, not `{}`", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials; the signature authenticates Rota".into());
    }
    if u.host_str().is_none() {
        return Err(format!("`{url}` has no host"));
    }
    match refused_literal(url, config) {
        Some(why) => Err(why),
        None => Ok(u.to_string()),
    }
}

/// Why a URL is refused without resolving anything: a host that is a literal private address
/// unless allowed (the resolver never sees a literal address), or its port.
pub fn refused_literal(url: &str, config: &WebhooksConfig) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let ip = match u.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    match ip {
        Some(ip) if !config.allow_private && is_private(ip) => Some(format!(
            "{ip} is a private, loopback or link-local address; {ALLOW_HINT}"
        )),
        _ => refused_port(&u, config),
    }
}

/// The delivery client's resolver: drops private addresses unless they are allowed, and
/// fails a name that leaves none.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| allow || !is_private(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(
                    format!("`{host}` resolves only to private addresses; {ALLOW_HINT}").into(),
                );
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow_private: bool) -> WebhooksConfig {
        WebhooksConfig {
            allow_private,
            ..WebhooksConfig::default()
        }
    }

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn benchmarking_documentation_and_site_local_ranges_are_refused() {
        for ip in [
            "198.18.0.1",
            "198.19.255.254",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.200",
            "2001:db8::1",
            "fec0::1",
            "feff::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        // Their neighbours stay public.
        for ip in [
            "198.20.0.1",
            "198.17.255.255",
            "192.0.3.1",
            "203.0.114.1",
            "2001:db9::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_get_the_ipv4_rules() {
        let refused = [
            ("IPv4-mapped", "::ffff:127.0.0.1"),
            ("IPv4-compatible", "::127.0.0.1"),
            ("IPv4-compatible", "::169.254.169.254"),
            ("NAT64", "64:ff9b::10.0.0.1"),
            ("NAT64", "64:ff9b::a9fe:a9fe"),
            ("local-use NAT64", "64:ff9b:1::1.1.1.1"),
            ("6to4", "2002:7f00:1::1"),
            ("6to4", "2002:a9fe:a9fe::"),
            // Teredo server 192.168.0.1; client 8.8.8.8 (stored inverted).
            ("Teredo server", "2001:0:c0a8:1:0:0:f7f7:f7f7"),
            // Teredo server 8.8.8.8; client 127.0.0.1 inverted is 80ff:fffe.
            ("Teredo client", "2001:0:808:808:0:0:80ff:fffe"),
        ];
        for (form, ip) in refused {
            assert!(is_private(ip.parse().unwrap()), "{form} {ip}");
        }
        let allowed = [
            ("IPv4-mapped", "::ffff:1.1.1.1"),
            ("NAT64", "64:ff9b::1.1.1.1"),
            ("6to4", "2002:101:101::1"),
            // Teredo server 8.8.8.8, client 1.1.1.1 (inverted fefe:fefe).
            ("Teredo", "2001:0:808:808:0:0:fefe:fefe"),
        ];
        for (form, ip) in allowed {
            assert!(!is_private(ip.parse().unwrap()), "{form} {ip}");
        }
    }

    #[test]
    fn ports_parse_check_and_name_the_setting() {
        let p = Ports::parse("80, 443,1024-65535").unwrap();
        assert!(p.allows(80) && p.allows(443) && p.allows(1024) && p.allows(65535));
        assert!(!p.allows(22) && !p.allows(25) && !p.allows(1023));
        for bad in ["", "0", "22-21", "http", "70000", "1-"] {
            let e = Ports::parse(bad).unwrap_err();
            assert!(e.contains("webhooks.allowed_ports"), "{bad}: {e}");
        }
        let c = config(true);
        let e = refused_literal("http://127.0.0.1:22/x", &c).unwrap();
        assert!(
            e.contains("port 22") && e.contains("webhooks.allowed_ports"),
            "{e}"
        );
        assert!(refused_literal("http://127.0.0.1:8080/x", &c).is_none());
        assert!(refused_literal("https://example.com/x", &c).is_none());
        assert!(check_form("http://example.com:25/", &c).is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_with_the_setting_named() {
        let (strict, open) = (config(false), config(true));
        let e = check("http://127.0.0.1:9000/x", &strict).await.unwrap_err();
        assert!(e.contains("webhooks.allow_private"), "{e}");
        assert!(check("http://127.0.0.1:9000/x", &open).await.is_ok());
        let e = check("http://127.0.0.1:9/x", &open).await.unwrap_err();
        assert!(e.contains("webhooks.allowed_ports"), "{e}");
        assert!(check("ftp://example.com/", &open)
            .await
            .unwrap_err()
            .contains("http"));
        assert!(check("https://u:p@example.com/", &open).await.is_err());
        assert!(check("not a url", &open).await.is_err());
        let e = check("http://localhost:9000/", &strict).await.unwrap_err();
        assert!(e.contains("private"), "{e}");
        let e = check("http://[::ffff:10.0.0.1]/", &strict)
            .await
            .unwrap_err();
        assert!(e.contains("private"), "{e}");
    }
}
