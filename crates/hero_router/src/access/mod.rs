//! Who may use the router over TCP (docs/access-and-security.md#allow-list): the allow-list and the
//! one decision over it.
//!
//! The list is `--allow CIDR` (repeatable) plus the entries of `--access-file` (one IP or CIDR
//! per line, `#` comments, `mycelium` for `400::/7`). An empty list allows everyone. Unix-socket
//! callers are always allowed: whoever can reach the root's sockets is already on the node.
//!
//! A TCP client is its peer address, an IPv4-mapped IPv6 address taken as the IPv4 address.
//! `X-Forwarded-For` is believed only when the peer is in `--trusted-proxy`: it is read right
//! to left, skipping the trusted proxies' own entries, and the first other address is the
//! client (at most [`MAX_FORWARDED_HOPS`] entries are looked at; an entry that is not an address
//! leaves the client unknown, and an unknown client is denied by a non-empty list).
//!
//! [`Access`] is the running router's view: the flags, the file's last good content (reloaded
//! by [`file::watch`] when the file changes; an emptied file only after [`guard`] lets it), and
//! the rate limit of the "denied" log line.

pub(crate) mod file;
pub(crate) mod guard;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ipnet::IpNet;
use tokio::time::{Duration, Instant};

/// The alias for the mycelium overlay's addresses.
pub(crate) const MYCELIUM: &str = "mycelium";
/// The mycelium overlay's address range.
pub(crate) const MYCELIUM_NET: &str = "400::/7";
/// `X-Forwarded-For` entries looked at, right to left, at most.
pub(crate) const MAX_FORWARDED_HOPS: usize = 16;
/// One "denied" log line per address per this long at most.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered for the log's rate limit before old ones are forgotten.
const LOG_MEMORY: usize = 4096;

/// Why an entry is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not an IP address, a CIDR network (e.g. 10.0.0.0/8, fd00::/8) or \"mycelium\""
)]
pub(crate) struct BadEntry {
    /// The entry as written.
    pub entry: String,
}

/// A bad line of an access file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub(crate) struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub error: BadEntry,
}

/// A set of networks; empty allows every address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    nets: Vec<IpNet>,
}

/// A client the list turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied {
    /// The address judged: the peer, or the client named by a trusted proxy.
    pub client: Option<IpAddr>,
    /// The TCP peer.
    pub peer: IpAddr,
}

/// The running router's access state, shared by every listener.
#[derive(Debug)]
pub(crate) struct Access {
    flags: Vec<IpNet>,
    trusted: Vec<IpNet>,
    /// Flags plus the file's last good entries.
    current: RwLock<Arc<AllowList>>,
    /// The list is empty: every request's check is one relaxed load, with no shared write
    /// (a lock or a reference count would bounce a cache line between the proxy's threads).
    open: AtomicBool,
    logged: Mutex<HashMap<IpAddr, Instant>>,
    /// With [`LOG_MEMORY`] addresses denied within a minute (one IPv6 /64 has more), each
    /// further address is no longer remembered: their denials share one line a second.
    overflow: crate::telemetry::RateLimit,
    /// Told of every reload, so that connections of clients the new list denies are closed
    /// (a stream would otherwise go on for as long as its connection lives).
    changes: tokio::sync::watch::Sender<()>,
}

// === entries ===

/// Parses one entry: an address (a one-address network), a CIDR network, or `mycelium`.
/// Surrounding whitespace is ignored; host bits of a network are cleared (`10.1.2.3/8` is
/// `10.0.0.0/8`).
pub(crate) fn parse_entry(text: &str) -> Result<IpNet, BadEntry> {
    let text = text.trim();
    // The entry goes into messages and the log: a 200 MiB "line" is shown by its start.
    let bad = || BadEntry {
        entry: crate::json::cut(text.to_owned(), 200),
    };
    if text.eq_ignore_ascii_case(MYCELIUM) {
        return Ok(MYCELIUM_NET.parse().expect("a valid network"));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(canonical(ip)));
    }
    let net: IpNet = text.parse().map_err(|_| bad())?;
    Ok(canonical_net(net).trunc())
}

/// The entries of an access file's text, in order; the first bad line is an error.
pub(crate) fn parse_file(text: &str) -> Result<Vec<IpNet>, BadLine> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(entry) = entry_of_line(line) else {
            continue;
        };
        let net = parse_entry(entry).map_err(|error| BadLine { line: i + 1, error })?;
        nets.push(net);
    }
    Ok(nets)
}

/// The entry a line holds, without its comment; `None` for a blank or comment-only line.
pub(crate) fn entry_of_line(line: &str) -> Option<&str> {
    let entry = line.split('#').next().unwrap_or("").trim();
    (!entry.is_empty()).then_some(entry)
}

/// The address as the list sees it: an IPv4-mapped IPv6 address is its IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4 network `a.b.c.d/(n-96)`: mapped clients are
/// judged as IPv4, so a mapped network must be too.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

// === impl AllowList ===

impl AllowList {
    /// A list of these networks.
    pub(crate) fn new(nets: Vec<IpNet>) -> AllowList {
        AllowList { nets }
    }

    /// True if the list is empty (everyone is allowed).
    pub(crate) fn is_open(&self) -> bool {
        self.nets.is_empty()
    }

    /// True if `ip` may use the router.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.is_open() || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks, in order.
    pub(crate) fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True if this list already allows every address of `nets`: applying them would let no
    /// one in who is not in now.
    pub(crate) fn covers(&self, nets: &[IpNet]) -> bool {
        self.is_open()
            || nets
                .iter()
                .all(|net| self.nets.iter().any(|n| n.contains(net)))
    }
}

/// The client of a request from `peer`: the peer itself, or, when the peer is a trusted proxy
/// and sent `X-Forwarded-For` values, the right-most of their addresses that is not a trusted
/// proxy. `None` when that entry is not an address, or every looked-at entry is a proxy's.
pub(crate) fn client_of(peer: IpAddr, forwarded: &[&[u8]], trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if forwarded.is_empty() || !is_trusted(&peer) {
        return Some(peer);
    }
    // Several header lines are one list, in order (RFC 9110 §5.3).
    let entries = forwarded
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .take(MAX_FORWARDED_HOPS);
    for entry in entries {
        let ip = std::str::from_utf8(entry).ok()?.parse::<IpAddr>().ok()?;
        let ip = canonical(ip);
        if !is_trusted(&ip) {
            return Some(ip);
        }
    }
    None
}

// === impl Access ===

impl Access {
    /// The access state from `--allow` (`flags`), the file's entries and `--trusted-proxy`.
    pub(crate) fn new(flags: Vec<IpNet>, file: Vec<IpNet>, trusted: Vec<IpNet>) -> Access {
        let access = Access {
            flags,
            trusted,
            current: RwLock::default(),
            open: AtomicBool::new(true),
            logged: Mutex::default(),
            overflow: crate::telemetry::RateLimit::new(),
            changes: tokio::sync::watch::Sender::new(()),
        };
        access.set_file(file);
        access
    }

    /// Everyone allowed, no proxies trusted.
    #[cfg(test)]
    pub(crate) fn open() -> Access {
        Access::new(Vec::new(), Vec::new(), Vec::new())
    }

    /// Replaces the file's entries (a reload).
    pub(crate) fn set_file(&self, file: Vec<IpNet>) {
        let mut nets = self.flags.clone();
        nets.extend(file);
        let list = Arc::new(AllowList::new(nets));
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        self.open.store(list.is_open(), Ordering::Release);
        *current = list;
        drop(current);
        self.changes.send_replace(());
    }

    /// Tells of every change of the list in force.
    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// True if the list in force denies a connection from `peer` that `before` allowed. A
    /// trusted proxy is never judged here: its clients are judged by their `X-Forwarded-For`,
    /// request by request. A client denied before too is left alone: its connection is
    /// answering it 403 right now.
    pub(crate) fn revokes(&self, peer: IpAddr, before: &AllowList) -> bool {
        let peer = canonical(peer);
        let allowed = |list: &AllowList| list.is_open() || list.allows(peer);
        !self.trusts(peer) && allowed(before) && !allowed(&self.list())
    }

    /// True if the list in force has entries from the file (beyond the flags).
    pub(crate) fn has_file_entries(&self) -> bool {
        self.list().nets().len() > self.flags.len()
    }

    /// The list in force.
    pub(crate) fn list(&self) -> Arc<AllowList> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True if no proxy is trusted (then `X-Forwarded-For` is never read).
    pub(crate) fn trusts_no_proxy(&self) -> bool {
        self.trusted.is_empty()
    }

    /// True if `peer` is a trusted proxy (`--trusted-proxy`): its `X-Forwarded-For` and
    /// `X-Request-Id` are believed.
    pub(crate) fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted.iter().any(|n| n.contains(&peer))
    }

    /// Decides a TCP request from `peer` with these `X-Forwarded-For` values. A denial is
    /// logged, at most once a minute per address.
    pub(crate) fn check(&self, peer: IpAddr, forwarded: &[&[u8]]) -> Result<(), Denied> {
        if self.open.load(Ordering::Acquire) {
            return Ok(());
        }
        let list = self.list();
        if list.is_open() {
            return Ok(());
        }
        let client = client_of(peer, forwarded, &self.trusted);
        match client {
            Some(ip) if list.allows(ip) => Ok(()),
            _ => {
                let denied = Denied {
                    client,
                    peer: canonical(peer),
                };
                self.log(&denied);
                Err(denied)
            }
        }
    }

    /// Logs how many denials the shared line a second left unsaid once a burst is over (the
    /// last second of a flood would otherwise be counted only when the next denial comes,
    /// maybe never). Called every [`FLUSH_EVERY`] by [`report_suppressed`].
    pub(crate) fn flush_suppressed(&self) {
        if let Some(suppressed) = self.overflow.take_suppressed() {
            tracing::warn!(
                suppressed,
                "access denied: {suppressed} more denials of clients not in the allow-list were not logged (more than {LOG_MEMORY} addresses denied within a minute)"
            );
        }
    }

    fn log(&self, denied: &Denied) {
        let key = denied.client.unwrap_or(denied.peer);
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return;
        }
        if logged.len() >= LOG_MEMORY {
            logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        }
        if logged.len() >= LOG_MEMORY {
            drop(logged);
            if let Some(suppressed) = self.overflow.should_log() {
                tracing::warn!(
                    client = %key,
                    suppressed,
                    "access denied: client not in the allow-list; more than {LOG_MEMORY} addresses were denied within a minute, so denials are logged once a second, not once per address"
                );
            }
            return;
        }
        logged.insert(key, now);
        match denied.client {
            Some(client) if client != denied.peer => tracing::warn!(
                %client, peer = %denied.peer,
                "access denied: client not in the allow-list (further denials of it are not logged for a minute)"
            ),
            Some(client) => tracing::warn!(
                %client,
                "access denied: client not in the allow-list (further denials of it are not logged for a minute)"
            ),
            None => tracing::warn!(
                peer = %denied.peer,
                "access denied: a trusted proxy's X-Forwarded-For names no client address (further denials are not logged for a minute)"
            ),
        }
    }
}

/// How often [`report_suppressed`] looks for denials left unsaid.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Says, every [`FLUSH_EVERY`] until `token` is cancelled, how many denials a flood left
/// unsaid ([`Access::flush_suppressed`]).
pub(crate) async fn report_suppressed(
    access: Arc<Access>,
    token: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => access.flush_suppressed(),
        }
    }
}

// === impl Denied ===

impl Denied {
    /// The address to name in the answer.
    pub(crate) fn address(&self) -> String {
        self.client.unwrap_or(self.peer).to_string()
    }
}

#[cfg(test)]
mod tests;
