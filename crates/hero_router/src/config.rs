//! Resolved configuration: flags plus environment, validated once at start-up.
//!
//! The environment is read through [`Env`] so tests pass a map instead of mutating the
//! process environment.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;

use crate::cli::{ListenAddr, ProbeArgs, ServeArgs};
use crate::scanner::ScannerConfig;
use crate::scanner::state::ReapPolicy;

pub(crate) use hero_socket::root::{ENV_HOME, Env, ProcessEnv};

/// `$HERO_MYCELIUM_IP`: the node's mycelium address, for `--listen mycelium:PORT`.
pub(crate) const ENV_MYCELIUM_IP: &str = "HERO_MYCELIUM_IP";
/// The node's configuration below `$HOME`; `[mycelium].ipv6_address` is read from it.
pub(crate) const HERO_CFG_IN_HOME: &str = "hero/cfg/hero_cfg.toml";
/// How long hero_proc may take to answer the reap guard's question.
pub(crate) const DEFAULT_HERO_PROC_TIMEOUT: Duration = Duration::from_secs(1);

/// Per-listener connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections kept at once; at the limit the one waiting longest for a request head is
    /// shed, so a flood of slow clients cannot lock new ones out.
    pub max_connections: usize,
    /// Connections one client address keeps at once, streams included; at the limit its own
    /// oldest is shed, so one client cannot take every slot and lock the others out.
    pub max_connections_per_client: usize,
    /// Time a client has to send its request headers (slowloris).
    pub header_read_timeout: Duration,
    /// Longest a write to a client may make no progress before the connection ends.
    pub send_timeout: Duration,
    /// Largest request head (request line + headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header lines in a request head; more gets 431.
    pub max_headers: usize,
}

/// The resolved configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket root.
    pub root: PathBuf,
    /// Scanner settings.
    pub scanner: ScannerConfig,
    /// TCP listeners (empty with `--no-tcp`).
    pub listen: Vec<SocketAddr>,
    /// Admin TCP listeners: the dashboard's own origin (empty with `--no-tcp` or
    /// `--no-admin-tcp`).
    pub admin_listen: Vec<SocketAddr>,
    /// `--server-name`: names the router answers to on TCP besides its addresses and
    /// `localhost` (lowercase; `*.` prefix for a whole domain).
    pub server_names: Vec<String>,
    /// Upstream deadline for non-streaming requests.
    pub upstream_timeout: Duration,
    /// Largest accepted request body.
    pub max_body: u64,
    /// Keep client X-Hero-* headers on TCP.
    pub trust_forwarded_headers: bool,
    /// Per-listener connection limits.
    pub limits: ConnLimits,
    /// Forwarded requests per service waiting for a response head at once.
    pub max_inflight_per_service: usize,
    /// The catalog fetcher's settings.
    pub catalog: CatalogConfig,
    /// `--shutdown-grace`: time in-flight requests get after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Who may use the TCP listeners.
    pub access: AccessConfig,
    /// The access log.
    pub access_log: AccessLogConfig,
}

/// The access log's settings (`--access-log`, `--access-log-query`).
#[derive(Debug, Clone, Copy)]
pub struct AccessLogConfig {
    /// Off, text or JSON lines.
    pub format: crate::traffic::AccessLogFormat,
    /// Keep query strings in the logged paths (they may hold tokens).
    pub query: bool,
}

/// The allow-list settings (docs/access-and-security.md#allow-list).
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// `--allow`.
    pub allow: Vec<IpNet>,
    /// `--access-file` (or its default); `None` without `$HOME` and without the flag.
    pub file: Option<PathBuf>,
    /// The file's entries at start-up (a running router reloads it on change).
    pub file_entries: Vec<IpNet>,
    /// `--trusted-proxy`.
    pub trusted_proxies: Vec<IpNet>,
}

/// The catalog fetcher's settings (docs/catalog.md).
#[derive(Debug, Clone, Copy)]
pub struct CatalogConfig {
    /// `--catalog-timeout`: deadline of one document fetch.
    pub timeout: Duration,
    /// `--catalog-refresh`: an unchanged service is fetched again after this long.
    pub refresh: Duration,
    /// Largest document accepted.
    pub max_document: usize,
    /// Fetches in flight at once.
    pub concurrency: usize,
}

impl Default for CatalogConfig {
    fn default() -> CatalogConfig {
        CatalogConfig {
            timeout: Duration::from_secs(2),
            refresh: Duration::from_secs(300),
            max_document: 4 << 20,
            concurrency: 16,
        }
    }
}

/// The socket root: `--socket-dir`, else `$HERO_SOCKET_DIR`, else `$PATH_SOCKET`, else
/// `$HOME/hero/var/sockets`.
///
/// The rule lives in [`hero_socket::root::resolve_root`], shared with the services.
pub(crate) fn resolve_root(flag: Option<PathBuf>, env: &impl Env) -> anyhow::Result<PathBuf> {
    let root = hero_socket::root::resolve_root(flag, env)?;
    // Absolute, so that every path the router shows (logs, `path` fields) can be used from
    // anywhere; symlinks are kept as given.
    Ok(std::path::absolute(&root)?)
}

/// Scanner settings from the shared probe flags.
pub(crate) fn scanner_config(
    root: PathBuf,
    probe: &ProbeArgs,
    scan_interval: Duration,
    reap: bool,
    watch: bool,
) -> ScannerConfig {
    ScannerConfig {
        root,
        scan_interval,
        probe_timeout: probe.probe_timeout,
        reap: ReapPolicy {
            enabled: reap,
            stale_after: probe.stale_after,
            grace: probe.reap_grace,
        },
        probe_concurrency: probe.probe_concurrency as usize,
        hero_proc_method: probe.hero_proc_method.clone(),
        hero_proc_timeout: DEFAULT_HERO_PROC_TIMEOUT,
        watch,
    }
}

/// The TCP addresses of `--listen` values, with `mycelium:PORT` on the node's mycelium
/// address.
pub(crate) fn resolve_listen(
    listen: &[ListenAddr],
    env: &impl Env,
) -> anyhow::Result<Vec<SocketAddr>> {
    listen
        .iter()
        .map(|l| match *l {
            ListenAddr::Addr(addr) => Ok(addr),
            ListenAddr::Mycelium(port) => Ok(SocketAddr::new(mycelium_ip(env)?, port)),
        })
        .collect()
}

/// The node's mycelium address: `$HERO_MYCELIUM_IP`, else `[mycelium].ipv6_address` in
/// `$HOME/hero/cfg/hero_cfg.toml`.
pub(crate) fn mycelium_ip(env: &impl Env) -> anyhow::Result<IpAddr> {
    if let Some(ip) = env.get(ENV_MYCELIUM_IP) {
        return ip.trim().parse().map_err(|_| {
            anyhow::anyhow!("${ENV_MYCELIUM_IP} is {ip:?}, which is not an IP address")
        });
    }
    let cfg = env
        .get(ENV_HOME)
        .map(|h| PathBuf::from(h).join(HERO_CFG_IN_HOME));
    let from_file = match &cfg {
        Some(path) => mycelium_ip_in(path)?,
        None => None,
    };
    from_file.ok_or_else(|| {
        let file = cfg.map_or_else(
            || format!("$HOME/{HERO_CFG_IN_HOME}"),
            |p| p.display().to_string(),
        );
        anyhow::anyhow!(
            "--listen mycelium:PORT needs the node's mycelium address: set ${ENV_MYCELIUM_IP} or [mycelium].ipv6_address in {file}"
        )
    })
}

/// `[mycelium].ipv6_address` of a hero_cfg.toml; `None` if the file or the key is missing.
fn mycelium_ip_in(path: &Path) -> anyhow::Result<Option<IpAddr>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(value) = doc.get("mycelium").and_then(|m| m.get("ipv6_address")) else {
        return Ok(None);
    };
    let ip = value.as_str().and_then(|s| s.trim().parse().ok());
    ip.map(Some).ok_or_else(|| {
        anyhow::anyhow!(
            "[mycelium].ipv6_address in {} is {value:?}, which is not an IP address",
            path.display()
        )
    })
}

// === impl Config ===

impl Config {
    /// Resolves `serve`'s flags against the environment.
    pub fn resolve(
        socket_dir: Option<PathBuf>,
        args: &ServeArgs,
        env: &impl Env,
    ) -> anyhow::Result<Config> {
        let root = resolve_root(socket_dir, env)?;
        let access_file = args
            .access_file
            .path
            .clone()
            .or_else(|| crate::access::file::default_path(env));
        let file_entries = match &access_file {
            Some(path) => crate::access::file::load(path)?,
            None => Vec::new(),
        };
        Ok(Config {
            scanner: scanner_config(
                root.clone(),
                &args.probe,
                args.scan_interval,
                !args.no_reap,
                true,
            ),
            root,
            listen: if args.no_tcp {
                Vec::new()
            } else {
                resolve_listen(&args.listen, env)?
            },
            admin_listen: if args.no_tcp || args.no_admin_tcp {
                Vec::new()
            } else {
                resolve_listen(&args.admin_listen, env)?
            },
            server_names: args.server_name.clone(),
            access: AccessConfig {
                allow: args.allow.clone(),
                file: access_file,
                file_entries,
                trusted_proxies: args.trusted_proxy.clone(),
            },
            access_log: AccessLogConfig {
                format: args.access_log,
                query: args.access_log_query,
            },
            upstream_timeout: args.upstream_timeout,
            max_body: args.max_body,
            trust_forwarded_headers: args.trust_forwarded_headers,
            max_inflight_per_service: args.max_inflight_per_service as usize,
            shutdown_grace: args.shutdown_grace,
            catalog: CatalogConfig {
                timeout: args.catalog_timeout,
                refresh: args.catalog_refresh,
                ..CatalogConfig::default()
            },
            limits: ConnLimits {
                max_connections: args.max_connections as usize,
                max_connections_per_client: args.max_connections_per_client as usize,
                header_read_timeout: args.header_timeout,
                send_timeout: args.send_timeout,
                max_header_bytes: usize::try_from(args.max_header_size).unwrap_or(usize::MAX),
                max_headers: args.max_headers as usize,
            },
        })
    }
}

#[cfg(test)]
mod tests;
