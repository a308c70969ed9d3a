//! Where a webhook may point: `http` or `https` URLs whose host resolves only to public
//! addresses, unless `webhooks.allow_private` is set. The check runs when a webhook is
//! written and again at every connection (through the client's resolver), so a name that
//! later resolves to an internal address is refused too.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What to say when a private target is refused.
pub const ALLOW_HINT: &str =
    "set webhooks.allow_private = true (ROTA_WEBHOOKS_ALLOW_PRIVATE=true) to allow it";

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
        || o[0] >= 240 // reserved
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
}

/// Loopback, private, link-local, shared, reserved or unspecified.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

/// Checks a URL's form and, unless `allow_private`, that its host is not a private address
/// (a literal one, or a name resolving to one). The message names what is wrong.
pub async fn check(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
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
    if allow_private {
        return Ok(u);
    }
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
            "url host `{host}` is a private, loopback or link-local address ({}); {ALLOW_HINT}",
            a.ip()
        ));
    }
    Ok(u)
}

/// Checks a task's `callback_url` as an enqueue can afford to: its form, and a literal private
/// address unless allowed (a name is checked when it is resolved, at delivery).
pub fn check_form(url: &str, allow_private: bool) -> Result<(), String> {
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
    match literal_private(url) {
        Some(why) if !allow_private => Err(why),
        _ => Ok(()),
    }
}

/// Why a URL whose host is a literal private address is refused (the resolver never sees a
/// literal address).
pub fn literal_private(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let ip = match u.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    is_private(ip)
        .then(|| format!("{ip} is a private, loopback or link-local address; {ALLOW_HINT}"))
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

    #[tokio::test]
    async fn urls_are_checked_with_the_setting_named() {
        let e = check("http://127.0.0.1:9/x", false).await.unwrap_err();
        assert!(e.contains("webhooks.allow_private"), "{e}");
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check("ftp://example.com/", true)
            .await
            .unwrap_err()
            .contains("http"));
        assert!(check("https://u:p@example.com/", true).await.is_err());
        assert!(check("not a url", true).await.is_err());
        let e = check("http://localhost:9/", false).await.unwrap_err();
        assert!(e.contains("private"), "{e}");
    }
}
