//! The outbound URL guard for tenant-configured destinations: MCP servers, Evolution API
//! gateways and custom (OpenAI-compatible) AI endpoints.
//!
//! A tenant types a URL; the platform then makes requests to it from inside our network. The
//! guard makes sure such a request can only reach the public internet:
//!
//! 1. **Parse and normalise** with the WHATWG parser (`url`), which turns alternate IPv4
//!    spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) into dotted quads.
//!    Userinfo (`user:pw@`), fragments and non-http(s) schemes are refused.
//! 2. **Scheme**: `https` only in production. In development, `http` is accepted for loopback
//!    destinations only (a local test server), never for anything else.
//! 3. **Hostnames** under `.internal`, `.local` and `.localhost`-style names are refused before
//!    any lookup (cloud metadata names, mDNS, cluster DNS).
//! 4. **Resolve once** (tokio's resolver) and check **every** address: if any is private,
//!    loopback, link-local, CGNAT, multicast, documentation, reserved or a metadata address —
//!    including IPv4 embedded in IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//!    `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`) and Teredo (`2001::/32`, refused
//!    outright) — the whole name is refused. Loopback is accepted only in development.
//! 5. **Pin** the vetted addresses: the HTTP client gets a resolver that answers only the vetted
//!    host with the vetted addresses and refuses every other name, so DNS rebinding between
//!    the check and the connection has no effect, and no second lookup happens.
//! 6. **No redirects** (`Policy::none()`): a 3xx is an error, never followed (reqwest skips DNS
//!    for IP literals, so a followed redirect to `http://169.254.169.254/` would bypass step 4).
//! 7. **No proxies** from the environment; **time and size caps** (connect 5 s, total 10 s per
//!    request, 1 MiB per response — the transport enforces the size cap as bytes arrive).
//!
//! Checks run when a server is saved *and* before every connection (DNS changes).
//! Limits: the guard sees what DNS says at check time and the IP we connect to; it cannot see
//! what happens behind a public address (a public reverse proxy into a private network is the
//! tenant's own exposure). Network policy that denies private ranges to app pods is the
//! recommended second layer.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use url::{Host, Url};

/// Per-response byte cap for tenant destinations.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Whole-request time cap (connect, send, wait, read).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a destination was refused. Tenants see a generic message (`message_key`); the variant
/// is for logs (with the tenant id, never the URL's query or credentials) and tests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    #[error("not a valid URL")]
    Invalid,
    #[error("scheme not allowed")]
    Scheme,
    #[error("credentials or fragments in the URL")]
    Userinfo,
    #[error("host name not allowed")]
    HostName,
    #[error("the name did not resolve")]
    Unresolvable,
    #[error("destination address not allowed ({0})")]
    Address(IpAddr),
    #[error("port not allowed")]
    Port,
}

impl GuardError {
    pub(crate) fn message_key(&self) -> &'static str {
        match self {
            GuardError::Invalid | GuardError::Userinfo => "mcp.url.invalid",
            GuardError::Scheme => "mcp.url.https",
            GuardError::Unresolvable => "mcp.url.unresolvable",
            GuardError::HostName | GuardError::Address(_) | GuardError::Port => {
                "mcp.url.not_allowed"
            }
        }
    }
}

/// The rules in force: production refuses loopback and plain http altogether.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Guard {
    /// Development only: loopback destinations (and http to them) are accepted.
    pub(crate) allow_loopback: bool,
}

/// A URL that passed the guard, with the addresses it may be reached at.
#[derive(Clone, Debug)]
pub(crate) struct Vetted {
    pub(crate) url: Url,
    /// The host as written (a name or an IP literal, without brackets).
    pub(crate) host: String,
    pub(crate) addrs: Vec<SocketAddr>,
}

impl Guard {
    pub(crate) fn for_config(config: &crate::config::Config) -> Guard {
        Guard {
            allow_loopback: !config.is_production(),
        }
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn production() -> Guard {
        Guard {
            allow_loopback: false,
        }
    }

    /// Checks what can be checked without DNS: syntax, scheme, credentials, host names.
    pub(crate) fn parse(&self, raw: &str) -> Result<Url, GuardError> {
        let url = Url::parse(raw.trim()).map_err(|_| GuardError::Invalid)?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(GuardError::Scheme);
        }
        if url.scheme() == "http" && !self.allow_loopback {
            return Err(GuardError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(GuardError::Userinfo);
        }
        match url.host() {
            None => return Err(GuardError::Invalid),
            Some(Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                let blocked_suffix = [".internal", ".local", ".localdomain", ".home.arpa"]
                    .iter()
                    .any(|s| d.ends_with(s));
                let is_localhost = d == "localhost" || d.ends_with(".localhost");
                if blocked_suffix || d.is_empty() || (is_localhost && !self.allow_loopback) {
                    return Err(GuardError::HostName);
                }
            }
            Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => {}
        }
        Ok(url)
    }

    /// Parses, resolves and checks every address. The result is what a client may connect to.
    pub(crate) async fn check(&self, raw: &str) -> Result<Vetted, GuardError> {
        let url = self.parse(raw)?;
        let (host, addrs) = resolve(&url).await?;
        self.check_addrs(&url, &addrs)?;
        Ok(Vetted { url, host, addrs })
    }

    /// The address rules, given the resolved addresses (unit-testable without DNS).
    pub(crate) fn check_addrs(&self, url: &Url, addrs: &[SocketAddr]) -> Result<(), GuardError> {
        if addrs.is_empty() {
            return Err(GuardError::Unresolvable);
        }
        let mut all_loopback = true;
        for a in addrs {
            match classify(a.ip()) {
                Class::Public => all_loopback = false,
                Class::Loopback if self.allow_loopback => {}
                _ => return Err(GuardError::Address(a.ip())),
            }
        }
        // Plain http only ever to a local development server.
        if url.scheme() == "http" && !all_loopback {
            return Err(GuardError::Scheme);
        }
        // Production: the usual TLS ports only (NET-001).
        if !self.allow_loopback && !matches!(url.port_or_known_default(), Some(443 | 8443)) {
            return Err(GuardError::Port);
        }
        Ok(())
    }

    /// An HTTP client that can reach only `v`'s vetted addresses: pinned resolver, no
    /// redirects, no proxies, time-capped.
    pub(crate) fn client(&self, v: &Vetted) -> reqwest::Client {
        pinned(v)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("SigmaAI-MCP/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building only fails without a TLS backend, which is compiled in.
            .unwrap_or_else(|_| reqwest::Client::new())
    }
}

/// The URL's host as the pinned resolver will be asked for it, and its addresses: an IP
/// literal as written, a name looked up once (time-capped).
async fn resolve(url: &Url) -> Result<(String, Vec<SocketAddr>), GuardError> {
    let port = url.port_or_known_default().ok_or(GuardError::Invalid)?;
    match url.host() {
        Some(Host::Ipv4(ip)) => Ok((ip.to_string(), vec![SocketAddr::new(ip.into(), port)])),
        Some(Host::Ipv6(ip)) => Ok((ip.to_string(), vec![SocketAddr::new(ip.into(), port)])),
        Some(Host::Domain(d)) => {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((d, port))).await {
                Ok(Ok(a)) => Ok((d.to_owned(), a.collect())),
                _ => Err(GuardError::Unresolvable),
            }
        }
        None => Err(GuardError::Invalid),
    }
}

/// Private LAN ranges an operator may open for its own gateway hosts: 10/8, 172.16/12,
/// 192.168/16, fc00::/7 and loopback (never link-local, metadata or anything else).
pub(crate) fn is_private_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || o[0] == 10
                || (o[0] == 172 && (o[1] & 0xf0) == 16)
                || (o[0] == 192 && o[1] == 168)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private_lan(IpAddr::V4(v4)))
        }
    }
}

/// For a host the operator listed as its own private gateway (`private_hosts`): resolves it
/// and accepts private LAN addresses and plain http. `None` when the host is not listed (the
/// normal guard applies).
pub(crate) async fn check_operator_host(
    raw: &str,
    private_hosts: &[String],
) -> Option<Result<Vetted, GuardError>> {
    let url = Url::parse(raw.trim()).ok()?;
    let bare = |h: &str| {
        h.trim_matches(['[', ']'])
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let host = bare(url.host_str()?);
    if !private_hosts.iter().any(|h| bare(h) == host) {
        return None;
    }
    Some(
        async {
            if !matches!(url.scheme(), "https" | "http") {
                return Err(GuardError::Scheme);
            }
            if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
                return Err(GuardError::Userinfo);
            }
            let (_, addrs) = resolve(&url).await?;
            if addrs.is_empty() {
                return Err(GuardError::Unresolvable);
            }
            for a in &addrs {
                if !(is_private_lan(a.ip()) || classify(a.ip()) == Class::Public) {
                    return Err(GuardError::Address(a.ip()));
                }
            }
            Ok(Vetted {
                url: url.clone(),
                host,
                addrs,
            })
        }
        .await,
    )
}

/// A client builder that can reach only `v`'s vetted addresses (pinned resolver), follows no
/// redirects and uses no proxy; callers add their own time limits.
pub(crate) fn pinned(v: &Vetted) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Pinned {
            host: v.host.to_ascii_lowercase(),
            addrs: v.addrs.clone(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// Answers the one vetted name with its vetted addresses; refuses every other name.
struct Pinned {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl reqwest::dns::Resolve for Pinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let result: Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> = if name
            .as_str()
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&self.host)
        {
            Ok(Box::new(self.addrs.clone().into_iter()))
        } else {
            Err("destination not vetted".into())
        };
        Box::pin(std::future::ready(result))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Public,
    Loopback,
    /// Private, link-local, metadata, CGNAT, multicast, reserved, documentation, unspecified.
    Forbidden,
}

/// Where an address leads.
pub(crate) fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    if o[0] == 127 {
        return Class::Loopback;
    }
    let forbidden = o[0] == 0                                   // 0.0.0.0/8
        || o[0] == 10                                           // 10/8
        || (o[0] == 100 && (o[1] & 0xc0) == 64)                 // 100.64/10 CGNAT
        || (o[0] == 169 && o[1] == 254)                         // link-local + metadata
        || (o[0] == 172 && (o[1] & 0xf0) == 16)                 // 172.16/12
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)              // 192.0.0/24
        || (o[0] == 192 && o[1] == 0 && o[2] == 2)              // TEST-NET-1
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)            // 6to4 relay anycast
        || (o[0] == 192 && o[1] == 168)                         // 192.168/16
        || (o[0] == 198 && (o[1] & 0xfe) == 18)                 // 198.18/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)           // TEST-NET-2
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)            // TEST-NET-3
        || o[0] >= 224; // multicast 224/4, reserved 240/4, broadcast
    if forbidden {
        Class::Forbidden
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip == Ipv6Addr::LOCALHOST {
        return Class::Loopback;
    }
    let s = ip.segments();
    // IPv4 embedded in IPv6: decode and judge the IPv4 address (loopback inside a mapped
    // address is refused too: nothing legitimate spells loopback that way).
    let embedded = |v4: Ipv4Addr| match classify_v4(v4) {
        Class::Public => Class::Public,
        _ => Class::Forbidden,
    };
    let v4_at =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Class::Forbidden;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return if s[5] == 0 && s[6] == 0 {
            Class::Forbidden // ::/96 small values: reserved
        } else {
            embedded(v4_at(s[6], s[7]))
        };
    }
    // NAT64 well-known 64:ff9b::/96 and local-use 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b {
        if s[2..6] == [0, 0, 0, 0] {
            return embedded(v4_at(s[6], s[7]));
        }
        if s[2] == 1 {
            return Class::Forbidden;
        }
    }
    // 6to4 2002:AABB:CCDD::/48 carries an IPv4 address.
    if s[0] == 0x2002 {
        return embedded(v4_at(s[1], s[2]));
    }
    let forbidden = s[0] == 0x2001 && s[1] == 0                 // Teredo 2001::/32
        || (s[0] & 0xfe00) == 0xfc00                            // ULA fc00::/7 (incl. fd00:ec2::254)
        || (s[0] & 0xffc0) == 0xfe80                            // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0                            // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00                            // multicast
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])             // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] == 0x0db8)                   // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200)                    // IETF protocol assignments
        || s[0] == 0; // anything else under ::/16 is reserved
    if forbidden {
        Class::Forbidden
    } else {
        Class::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for bad in [
            "10.0.0.5",
            "172.16.3.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.10",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            // IPv4 embedded in IPv6, in every spelling that reached production elsewhere.
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "0:0:0:0:0:ffff:7f00:0001",
        ] {
            assert_eq!(classify(ip(bad)), Class::Forbidden, "{bad}");
        }
        for loopback in ["127.0.0.1", "127.1.2.3", "::1"] {
            assert_eq!(classify(ip(loopback)), Class::Loopback, "{loopback}");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::6810:84e5",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert_eq!(classify(ip(good)), Class::Public, "{good}");
        }
    }

    #[test]
    fn alternate_ipv4_spellings_are_normalised_then_refused() {
        let g = Guard::production();
        for raw in [
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let url = g.parse(raw).unwrap();
            let host = url.host_str().unwrap().trim_matches(['[', ']']).to_owned();
            let addrs = [SocketAddr::new(host.parse().unwrap(), 443)];
            assert!(
                matches!(g.check_addrs(&url, &addrs), Err(GuardError::Address(_))),
                "{raw} -> {host}"
            );
        }
    }

    #[test]
    fn schemes_credentials_and_internal_names_are_refused() {
        let prod = Guard::production();
        assert_eq!(prod.parse("file:///etc/passwd"), Err(GuardError::Scheme));
        assert_eq!(prod.parse("gopher://example.com/"), Err(GuardError::Scheme));
        assert_eq!(prod.parse("ftp://example.com/"), Err(GuardError::Scheme));
        assert_eq!(
            prod.parse("http://example.com/mcp"),
            Err(GuardError::Scheme)
        );
        assert_eq!(
            prod.parse("https://user:pw@example.com/"),
            Err(GuardError::Userinfo)
        );
        assert_eq!(
            prod.parse("https://metadata.google.internal/"),
            Err(GuardError::HostName)
        );
        assert_eq!(
            prod.parse("https://printer.local/"),
            Err(GuardError::HostName)
        );
        assert_eq!(prod.parse("https://localhost/"), Err(GuardError::HostName));
        assert_eq!(prod.parse("not a url"), Err(GuardError::Invalid));
        assert!(prod.parse("https://mcp.example.com/mcp").is_ok());

        let dev = Guard {
            allow_loopback: true,
        };
        assert!(dev.parse("http://localhost:8080/mcp").is_ok());
        assert!(dev.parse("https://metadata.google.internal/").is_err());
    }

    #[test]
    fn any_bad_record_refuses_the_whole_name() {
        let g = Guard::production();
        let url = g.parse("https://mcp.example.com/mcp").unwrap();
        let public = SocketAddr::new(ip("93.184.216.34"), 443);
        let private = SocketAddr::new(ip("10.0.0.5"), 443);
        assert!(g.check_addrs(&url, &[public]).is_ok());
        assert_eq!(
            g.check_addrs(&url, &[public, private]),
            Err(GuardError::Address(ip("10.0.0.5")))
        );
        assert_eq!(
            g.check_addrs(&url, &[private]),
            Err(GuardError::Address(ip("10.0.0.5")))
        );
        assert_eq!(g.check_addrs(&url, &[]), Err(GuardError::Unresolvable));
        // Production: TLS ports only.
        let odd = g.parse("https://mcp.example.com:5432/").unwrap();
        assert_eq!(
            g.check_addrs(&odd, &[SocketAddr::new(ip("93.184.216.34"), 5432)]),
            Err(GuardError::Port)
        );
    }

    #[test]
    fn development_allows_loopback_but_never_private_or_plain_http_elsewhere() {
        let dev = Guard {
            allow_loopback: true,
        };
        let url = dev.parse("http://127.0.0.1:9000/mcp").unwrap();
        assert!(
            dev.check_addrs(&url, &[SocketAddr::new(ip("127.0.0.1"), 9000)])
                .is_ok()
        );
        let url = dev.parse("http://10.0.0.5/mcp").unwrap();
        assert!(
            dev.check_addrs(&url, &[SocketAddr::new(ip("10.0.0.5"), 80)])
                .is_err()
        );
        let url = dev.parse("http://mcp.example.com/mcp").unwrap();
        assert_eq!(
            dev.check_addrs(&url, &[SocketAddr::new(ip("93.184.216.34"), 80)]),
            Err(GuardError::Scheme)
        );
        let prod = Guard::production();
        let url = prod.parse("https://[::1]/").unwrap();
        assert!(
            prod.check_addrs(&url, &[SocketAddr::new(ip("::1"), 443)])
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_pinned_client_resolves_nothing_but_the_vetted_host() {
        use reqwest::dns::Resolve;
        let p = Pinned {
            host: "mcp.example.com".into(),
            addrs: vec![SocketAddr::new(ip("93.184.216.34"), 443)],
        };
        let ok: Vec<_> = p
            .resolve("mcp.example.com".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok, vec![SocketAddr::new(ip("93.184.216.34"), 443)]);
        assert!(
            p.resolve("evil.example.com".parse().unwrap())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn operator_listed_hosts_may_be_private_but_never_metadata() {
        let listed = vec![
            "10.0.0.5".to_owned(),
            "169.254.169.254".to_owned(),
            "FD00::7".to_owned(),
        ];
        // Not listed: the normal guard decides.
        assert!(
            check_operator_host("http://10.0.0.6:8080/", &listed)
                .await
                .is_none()
        );
        // Listed and on the private network: plain http and any port are the operator's call.
        let v = check_operator_host("http://10.0.0.5:8080/", &listed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.addrs, vec!["10.0.0.5:8080".parse().unwrap()]);
        assert_eq!(v.host, "10.0.0.5");
        let v6 = check_operator_host("http://[fd00::7]:8080/", &listed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v6.host, "fd00::7");
        // Listing the metadata address does not open it.
        assert!(matches!(
            check_operator_host("http://169.254.169.254/", &listed).await,
            Some(Err(GuardError::Address(_)))
        ));
        assert!(matches!(
            check_operator_host("http://user:pw@10.0.0.5/", &listed).await,
            Some(Err(GuardError::Userinfo))
        ));
        assert!(is_private_lan("192.168.1.10".parse().unwrap()));
        assert!(is_private_lan("::ffff:172.20.0.3".parse().unwrap()));
        assert!(!is_private_lan("100.64.0.1".parse().unwrap()));
        assert!(!is_private_lan("fe80::1".parse().unwrap()));
    }
}
