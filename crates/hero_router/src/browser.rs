//! What a web page may make the router do (docs/access-and-security.md), as plain functions over
//! data.
//!
//! Any page an operator opens can send requests to the router's TCP ports, and so can every
//! page a service serves through the router. Three rules keep them from steering it:
//!
//! - **Host check** ([`Names`]): on TCP a request must name the router (one of its listening
//!   IPs, `localhost`, `*.localhost`, a `--server-name`), else 421. A DNS-rebound page names
//!   its own domain, so it is turned away before anything else.
//! - **Cross-origin refusal** ([`check_origin`]): a request for the router's own endpoints (or
//!   a service's JSON-RPC socket through the proxy) that carries an `Origin` (or
//!   `Sec-Fetch-Site: cross-site`) other than the origin it was sent to is refused with 403,
//!   whatever its method and content type. No `Origin` (curl, SDKs)
//!   passes. The dashboard and its API are on a listener of their own (the admin listener), so
//!   no page a service serves shares their origin; a service's page may call `/rpc` on the
//!   service listener, as it may call any service through the proxy there.
//! - **Headers** on the pages the router makes ([`PAGE_HEADERS`], [`html_csp`]): no framing, no
//!   sniffing, no referrer, and scripts only by hash.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

/// Headers on every page and error the router makes itself: no content sniffing, no referrer,
/// and a policy that allows nothing (a JSON answer or an error needs nothing; HTML pages get
/// [`html_csp`] instead) and no framing.
pub(crate) const PAGE_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
];

/// The `Content-Security-Policy` of an HTML page the router makes with no script at all (the
/// docs): its inline styles apply, nothing runs, nothing is fetched, no framing.
pub(crate) const STATIC_HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers of a page of `content_type` the router makes (not the dashboard's, which has
/// its scripts' hashes): [`PAGE_HEADERS`], with [`STATIC_HTML_CSP`] for HTML.
pub(crate) fn page_headers(content_type: &str) -> [(&str, &str); 4] {
    let [nosniff, referrer, (csp, none)] = PAGE_HEADERS;
    let policy = if content_type.starts_with("text/html") {
        STATIC_HTML_CSP
    } else {
        none
    };
    [
        ("content-type", content_type),
        nosniff,
        referrer,
        (csp, policy),
    ]
}

/// The names the router answers to on TCP.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    /// The listeners' addresses.
    ips: Vec<IpAddr>,
    /// A listener on the unspecified address: any IP literal names the router (an IP cannot
    /// be rebound; the interfaces behind `0.0.0.0` change while it runs).
    any_ip: bool,
    /// `--server-name` values, lowercase; `*.` makes a suffix.
    names: Vec<String>,
}

impl Names {
    /// The names of a router listening on `listeners`, with `server_names` besides.
    pub(crate) fn new(listeners: &[SocketAddr], server_names: &[String]) -> Names {
        Names {
            ips: listeners.iter().map(|a| canonical(a.ip())).collect(),
            any_ip: listeners.iter().any(|a| a.ip().is_unspecified()),
            names: server_names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        }
    }

    /// True if `authority` (a `Host` value or an absolute target's authority, with or
    /// without a port) names the router.
    pub(crate) fn knows(&self, authority: &[u8]) -> bool {
        let Ok(authority) = std::str::from_utf8(authority) else {
            return false;
        };
        let host = host_of(authority);
        // Lowercased only if it has to be: clients send the same lowercase host every time.
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
            return self.any_ip || self.ips.contains(&canonical(ip));
        }
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == name,
        })
    }
}

/// The last authority [`Names::knows`] accepted on one connection. A client names the same
/// host in every request on its connection, and the answer for a name cannot change (the
/// names are fixed when the router starts), so a repeat is known with one comparison.
#[derive(Debug, Default)]
pub(crate) struct KnownHost(Option<Vec<u8>>);

impl KnownHost {
    /// [`Names::knows`], remembered for the next request on the connection.
    pub(crate) fn check(&mut self, names: &Names, authority: &[u8]) -> bool {
        if self.0.as_deref() == Some(authority) {
            return true;
        }
        let known = names.knows(authority);
        if known {
            let memo = self.0.get_or_insert_with(Vec::new);
            memo.clear();
            memo.extend_from_slice(authority);
        }
        known
    }
}

/// The host of an authority: `[v6]` kept in brackets, a `:port` cut off.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match memchr::memrchr(b':', authority.as_bytes()) {
        Some(at)
            if authority.as_bytes()[at + 1..]
                .iter()
                .all(u8::is_ascii_digit) =>
        {
            &authority[..at]
        }
        _ => authority,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a request for one of the router's own endpoints may come from where the browser
/// says it comes from. `origins` and `fetch_sites` are the values of every `Origin` and
/// `Sec-Fetch-Site` header of the request. `Err` carries what to name in the 403: the foreign
/// origin.
///
/// - a header given twice: refused (a browser sends each once; which one would count?);
/// - `Sec-Fetch-Site: cross-site` or `same-site`: refused (a page on another site, or on
///   another origin of this one, such as a service's page on the service listener calling the
///   admin listener; even without `Origin`, as a `GET` of a script or an image goes);
/// - no `Origin`: allowed (curl, SDKs, a page's own navigation);
/// - `Origin: null` (a sandboxed frame, a `data:` page): refused;
/// - an `Origin`: allowed only if it is the origin the request was sent to, `http(s)://` and
///   the `Host` (which the Host check already held to the router's names on TCP).
pub(crate) fn check_origin<'a>(
    mut origins: impl Iterator<Item = &'a [u8]>,
    mut fetch_sites: impl Iterator<Item = &'a [u8]>,
    host: Option<&[u8]>,
) -> Result<(), String> {
    let shown = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let (origin, fetch_site) = (origins.next(), fetch_sites.next());
    if let (Some(first), Some(second)) = (origin, origins.next()) {
        let (first, second) = (shown(first), shown(second));
        return Err(format!("{first} and {second} (two Origin headers)"));
    }
    if fetch_sites.next().is_some() {
        return Err("a page that sent two Sec-Fetch-Site headers".to_owned());
    }
    let site = fetch_site.map(<[u8]>::trim_ascii);
    let foreign =
        |s: &[u8]| s.eq_ignore_ascii_case(b"cross-site") || s.eq_ignore_ascii_case(b"same-site");
    if let Some(site) = site.filter(|s| foreign(s)) {
        let page = format!(
            "a {} page",
            String::from_utf8_lossy(site).to_ascii_lowercase()
        );
        return Err(origin.map_or(page, shown));
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let authority = origin
        .strip_prefix(b"http://")
        .or_else(|| origin.strip_prefix(b"https://"));
    let same = match (authority, host) {
        (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
        _ => false,
    };
    if same { Ok(()) } else { Err(shown(origin)) }
}

/// The `Content-Security-Policy` of an HTML page the router makes: its inline scripts and
/// styles by hash (none other may run or apply), requests only to its own origin, no framing.
pub(crate) fn html_csp(scripts: &[&str], styles: &[&str]) -> String {
    let hashes = |items: &[&str]| -> String {
        items
            .iter()
            .map(|text| format!(" 'sha256-{}'", base64(&Sha256::digest(text.as_bytes()))))
            .collect()
    };
    let script = match scripts {
        [] => " 'none'".to_owned(),
        _ => hashes(scripts),
    };
    let style = match styles {
        [] => " 'none'".to_owned(),
        _ => hashes(styles),
    };
    format!(
        "default-src 'none'; script-src{script}; style-src{style}; connect-src 'self'; \
         worker-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    )
}

/// Standard base64 with padding (for CSP hashes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// True for a character that changes the direction of the text around it (U+202E and its
/// kin): in a service's text it can make the router's own text read otherwise.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each bidirectional control written out as `\uXXXX`: visible, reordering
/// nothing, and inside a JSON string the same character (docs pages write service text
/// through it; the dashboard's script does the same).
pub(crate) fn bidi_visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_bidi_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("\\u{:04X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
