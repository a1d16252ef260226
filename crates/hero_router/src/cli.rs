//! Command-line flags (docs/serve.md#flags, docs/cli.md). Parsing only: values are resolved and
//! validated into a [`crate::Config`] by [`crate::config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;
use crate::traffic::AccessLogFormat;

/// The hero_router command line.
#[derive(Debug, Parser)]
#[command(name = "hero_router", version, about = "The router of a Hero OS node")]
pub struct Cli {
    /// Socket root. Default: $HERO_SOCKET_DIR, else $PATH_SOCKET, else $HOME/hero/var/sockets.
    #[arg(long, global = true, value_name = "DIR")]
    pub socket_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `hero_router=debug`. Default: $RUST_LOG, else `info` for
    /// `serve` and `warn` for the other commands.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router daemon.
    Serve(Box<ServeArgs>),
    /// Print the service table of the running router.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Scan the root once, without a daemon. Read-only unless --reap.
    Scan(ScanArgs),
    /// Call SERVICE.METHOD through the running router and print the result.
    Call {
        /// Service name.
        #[arg(value_parser = parse_service)]
        service: String,
        /// Method name (without the service prefix).
        method: String,
        /// Params as JSON (array or object), sent as written.
        #[arg(value_name = "PARAMS_JSON", value_parser = parse_params)]
        params: Option<Box<serde_json::value::RawValue>>,
        /// How long to wait for the answer (the router's own --upstream-timeout may end the
        /// call sooner).
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
        timeout: Duration,
    },
    /// Print `router.health` of the running router.
    Health,
    /// Print a service's OpenRPC document.
    Spec {
        /// Service name.
        #[arg(value_parser = parse_service)]
        service: String,
    },
    /// Render API docs in Markdown from the running router's cached specs.
    Markdown(DocsArgs),
    /// Render API docs as self-contained HTML pages from the running router's cached specs.
    Html(DocsArgs),
    /// Print an MCP client configuration (the `mcpServers` JSON most agents read) for the
    /// running router's MCP gateway: `/mcp` and every healthy service, or only SERVICE.
    McpConfig {
        /// Only this service's endpoint.
        #[arg(value_parser = parse_service)]
        service: Option<String>,
        /// The router's base URL as the agent reaches it (default: its first service
        /// listener, as the running router reports it).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Generate a typed client of SERVICE from the running router's cached spec: a Python
    /// module (standard library only) or a TypeScript ES module (no dependencies).
    Client {
        /// The client's language.
        #[arg(value_enum)]
        language: ClientLanguage,
        /// Service name.
        #[arg(value_parser = parse_service)]
        service: String,
        /// Write `DIR/<SERVICE>.py` (or `.ts`) instead of printing to stdout (DIR is created
        /// if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Show or edit the access allow-list file (edits are atomic; a running router reloads
    /// it).
    Access {
        /// The file.
        #[command(flatten)]
        file: AccessFileArg,
        /// What to do.
        #[command(subcommand)]
        action: AccessAction,
    },
    /// Print a shell completion script, e.g. `hero_router completions bash >
    /// ~/.local/share/bash-completion/completions/hero_router`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The languages `hero_router client` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientLanguage {
    /// Python 3.10+, standard library only, `mypy --strict` clean.
    Python,
    /// TypeScript, an ES module using the global `fetch`, `tsc --strict` clean.
    Typescript,
}

/// `--access-file`, shared by `serve` and `access`.
#[derive(Debug, Clone, Args)]
pub struct AccessFileArg {
    /// Allow-list file: one IP or CIDR per line, `#` comments, `mycelium` for 400::/7;
    /// reloaded when it changes. Default: $HOME/hero/cfg/hero_router/access.txt.
    #[arg(long = "access-file", value_name = "PATH", global = true)]
    pub path: Option<PathBuf>,
}

/// `hero_router access` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum AccessAction {
    /// Print the file's entries.
    List,
    /// Allow an IP address, a CIDR network or `mycelium`.
    Add {
        /// The entry.
        #[arg(value_name = "ADDR")]
        entry: String,
    },
    /// Remove an entry (any line that names the same network).
    Remove {
        /// The entry.
        #[arg(value_name = "ADDR")]
        entry: String,
        /// Confirm removing the last entry, which lets every client in (unless serve has
        /// --allow).
        #[arg(long)]
        yes: bool,
    },
    /// Remove every entry (comments stay).
    Clear {
        /// Confirm removing every entry, which lets every client in (unless serve has --allow).
        #[arg(long)]
        yes: bool,
    },
}

/// A `--listen` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// An address and port.
    Addr(SocketAddr),
    /// `mycelium:PORT`: the node's mycelium address, resolved at start-up.
    Mycelium(u16),
}

/// `markdown` and `html` arguments.
#[derive(Debug, Clone, Args)]
pub struct DocsArgs {
    /// Services to document (default: every service with a spec).
    #[arg(value_name = "SERVICE", value_parser = parse_service)]
    pub services: Vec<String>,
    /// Write one file per service plus an index into DIR (created if missing) instead of
    /// printing to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// Probe and reap flags shared by `serve` and `scan`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Time a probe may take before the socket counts as busy.
    #[arg(long, value_parser = parse_positive_duration, default_value = "1s", value_name = "DURATION")]
    pub probe_timeout: Duration,
    /// Consecutive periodic refusals before a socket is stale (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub stale_after: u32,
    /// A socket file younger than this (by ctime) is never reaped; a service directory with
    /// no socket for this long leaves the table.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub reap_grace: Duration,
    /// hero_proc JSON-RPC method that lists services with their states (reap guard).
    #[arg(long, default_value = "service.status_all", value_name = "METHOD")]
    pub hero_proc_method: String,
    /// Probe batches in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096), value_name = "N")]
    pub probe_concurrency: u32,
}

/// `hero_router serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP address to listen on (repeatable); `mycelium:PORT` listens on the node's mycelium
    /// address ($HERO_MYCELIUM_IP, else [mycelium].ipv6_address in
    /// $HOME/hero/cfg/hero_cfg.toml).
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:9988",
        value_parser = parse_listen
    )]
    pub listen: Vec<ListenAddr>,
    /// Turn off every TCP listener, including those given with --listen and --admin-listen.
    #[arg(long)]
    pub no_tcp: bool,
    /// TCP address of the admin listener (repeatable): the dashboard and its API, on an origin
    /// of their own that no service page shares; `mycelium:PORT` as for --listen.
    #[arg(
        long = "admin-listen",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:9989",
        value_parser = parse_listen
    )]
    pub admin_listen: Vec<ListenAddr>,
    /// Turn off the admin TCP listener (the dashboard stays on admin.sock).
    #[arg(long)]
    pub no_admin_tcp: bool,
    /// Another name the router answers to on TCP, for a proxy in front (repeatable;
    /// `*.example.com` matches every name under example.com). The listeners' IP addresses,
    /// `localhost` and `*.localhost` are always the router's; a request for any other `Host`
    /// gets 421.
    #[arg(long = "server-name", value_name = "NAME", value_parser = parse_server_name)]
    pub server_name: Vec<String>,
    /// Time between periodic full scans.
    #[arg(long, value_parser = parse_positive_duration, default_value = "5s", value_name = "DURATION")]
    pub scan_interval: Duration,
    /// Probe and reap settings.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Report stale sockets but never remove them.
    #[arg(long)]
    pub no_reap: bool,
    /// Deadline for a non-streaming upstream request.
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s", value_name = "DURATION")]
    pub upstream_timeout: Duration,
    /// Largest request body accepted, and largest answer a routed /rpc call (or a batch's
    /// answers together) may bring back (e.g. 65536, 64KiB, 16MiB).
    #[arg(long, value_parser = parse_size, default_value = "16MiB", value_name = "SIZE")]
    pub max_body: u64,
    /// Believe what TCP clients say about themselves: keep their X-Hero-Context /
    /// X-Hero-Claims, Forwarded, X-Forwarded-Host/-Proto and X-Real-IP, and extend their
    /// X-Forwarded-For and Forwarded.
    #[arg(long)]
    pub trust_forwarded_headers: bool,
    /// Allow TCP clients from this IP or CIDR network (repeatable; `mycelium` is 400::/7).
    /// With no --allow and no entries in the access file, every client is allowed.
    #[arg(long = "allow", value_name = "CIDR", value_parser = parse_network)]
    pub allow: Vec<ipnet::IpNet>,
    /// The access file.
    #[command(flatten)]
    pub access_file: AccessFileArg,
    /// Believe X-Forwarded-For from TCP peers in this IP or CIDR network (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_network)]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// Connections kept at once per listener; at the limit, the connection that has waited
    /// longest for a request head is shed to make room (503 if every one is busy).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections: u32,
    /// Connections one client address keeps at once per listener, streams included; at the
    /// limit, the client's own oldest connection is shed to make room (an idle one first).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections_per_client: u32,
    /// Time a client has to send its request headers, and the longest pause within a request
    /// body (slow clients are cut off; a stalled body gets 408).
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: Duration,
    /// Longest a client may take none of its answer: a write that makes no progress for this
    /// long ends the connection (a client that stops reading would hold the service's
    /// connection while the router streams the answer).
    #[arg(long, value_parser = parse_positive_duration, default_value = "30s", value_name = "DURATION")]
    pub send_timeout: Duration,
    /// Forwarded requests per service waiting for an answer at once; more wait up to
    /// --upstream-timeout, then get "busy" (503 / -32002).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_inflight_per_service: u32,
    /// Largest request head (request line and headers); larger gets 431.
    #[arg(long, value_parser = parse_size, default_value = "64KiB", value_name = "SIZE")]
    pub max_header_size: u64,
    /// Most header lines in a request head; more gets 431.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "N")]
    pub max_headers: u32,
    /// Deadline for fetching one catalog document (a manifest or an OpenRPC spec).
    #[arg(long, value_parser = parse_positive_duration, default_value = "2s", value_name = "DURATION")]
    pub catalog_timeout: Duration,
    /// Time after which an unchanged service's manifest and spec are fetched again.
    #[arg(long, value_parser = parse_positive_duration, default_value = "5m", value_name = "DURATION")]
    pub catalog_refresh: Duration,
    /// On SIGTERM/SIGINT, time in-flight requests get to finish before they are cut off.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub shutdown_grace: Duration,
    /// Access log on stderr (tracing target hero_router::access): one line per finished
    /// request, nginx-like `text`, `json` objects, or `off`.
    #[arg(
        long,
        value_parser = parse_access_log,
        default_value = "text",
        env = "HERO_ROUTER_ACCESS_LOG",
        value_name = "off|text|json"
    )]
    pub access_log: AccessLogFormat,
    /// Keep query strings in the access log's paths (off: they may carry tokens).
    #[arg(long)]
    pub access_log_query: bool,
}

/// `hero_router scan` flags.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Remove stale sockets (each refused socket is probed --stale-after times first).
    #[arg(long)]
    pub reap: bool,
    /// Probe and reap settings.
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Parses a `--server-name` value: a DNS name, or `*.` and one, lowercased.
pub fn parse_server_name(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} is not a host name (letters, digits, '-' and '.', optionally starting with '*.')"
        ));
    }
    Ok(name)
}

/// Parses `call`'s PARAMS_JSON: a JSON array or object, as JSON-RPC params are, kept as
/// written (a number wider than a double goes to the service unchanged). Anything else is a
/// usage error (exit 2), caught before any call is made.
pub fn parse_params(s: &str) -> Result<Box<serde_json::value::RawValue>, String> {
    match serde_json::from_str(s) {
        Ok(serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
            serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
        }
        Ok(_) => Err(format!(
            "{s:?} is not a JSON array or object (JSON-RPC params are one or the other)"
        )),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// Parses an `--access-log` value: `off`, `text` or `json`. Empty is the default, `text`: an
/// empty `$HERO_ROUTER_ACCESS_LOG` counts as unset, as every empty variable does.
pub fn parse_access_log(s: &str) -> Result<AccessLogFormat, String> {
    use clap::ValueEnum as _;
    if s.trim().is_empty() {
        return Ok(AccessLogFormat::Text);
    }
    AccessLogFormat::from_str(s.trim(), true)
        .map_err(|_| format!("{s:?} is not an access log format: off, text or json"))
}

/// Parses a `--listen` value: `ADDR:PORT` or `mycelium:PORT`.
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(port) = s.strip_prefix("mycelium:") {
        return port
            .parse()
            .map(ListenAddr::Mycelium)
            .map_err(|_| format!("{port:?} is not a port number (mycelium:PORT)"));
    }
    s.parse().map(ListenAddr::Addr).map_err(|_| {
        format!("{s:?} is not ADDR:PORT (e.g. 127.0.0.1:9988, [::1]:9988) or mycelium:PORT")
    })
}

/// Parses an `--allow` / `--trusted-proxy` value.
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    crate::access::parse_entry(s).map_err(|e| e.to_string())
}

/// The longest duration a flag takes: every one is added to the present time somewhere, and
/// `18446744073709551615s` would overflow the clock.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses `500ms`, `5s`, `1m`, `1h 30m` (at most ten years).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d > MAX_DURATION => Err(format!(
            "{s:?} is longer than the ten years a duration may be"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "invalid duration {s:?} ({e}); use e.g. 500ms, 5s, 1m"
        )),
    }
}

/// Parses a duration that must be more than zero: an interval or a timeout of zero would
/// scan in a busy loop, or fail every probe, request or fetch at once.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} is zero; this needs a duration above zero")),
        d => Ok(d),
    }
}

/// Parses `65536`, `64KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; use e.g. 65536, 64KiB, 16MiB"))?;
    // Units in any case: `64kib` is as clear as `64KiB`.
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "invalid size unit {:?} in {s:?}; use B, KiB (or K), MiB (or M), GiB (or G), or KB, MB, GB for powers of 1000; whole numbers only",
                unit.trim()
            ));
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests;

/// Whether `c` is unfit for a terminal as it is: a control character (newlines, escape
/// sequences, C1 controls), a line or paragraph separator, or a direction mark, embedding,
/// override or isolate.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` fit for a terminal line: every character [`unsafe_on_terminal`] is written as a
/// `\u{…}` escape, so that a service's title or error message can neither forge lines of a
/// table nor drive the terminal.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    escape_where(text, unsafe_on_terminal, |c, out| {
        out.extend(c.escape_unicode())
    })
}

/// `text`, a document of lines (Markdown, HTML), fit for a terminal: as [`terminal_safe`],
/// but its line breaks and tabs are kept.
pub(crate) fn terminal_safe_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape_where(
        text,
        |c| unsafe_on_terminal(c) && !matches!(c, '\n' | '\t'),
        |c, out| out.extend(c.escape_unicode()),
    )
}

/// Valid JSON text fit for a terminal, with the same value: a character JSON lets stand raw
/// in a string but [`unsafe_on_terminal`] (DEL, a C1 control, a separator, a direction
/// control) is written as a JSON `\uXXXX` escape. Outside strings, valid JSON holds only
/// ASCII punctuation, letters, digits and whitespace, so only strings change; every such
/// character is in the Basic Multilingual Plane, so one escape each.
pub(crate) fn terminal_safe_json(json: &str) -> std::borrow::Cow<'_, str> {
    escape_where(
        json,
        |c| unsafe_on_terminal(c) && !matches!(c, '\n' | '\t' | '\r'),
        |c, out| out.push_str(&format!("\\u{:04x}", u32::from(c))),
    )
}

/// `text` with every character `unsafe_char` picks written by `escape`; borrowed when
/// there is none.
fn escape_where(
    text: &str,
    unsafe_char: impl Fn(char) -> bool,
    escape: impl Fn(char, &mut String),
) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A SERVICE argument: a service's name as the router knows it (its directory's name), so
/// that `call a.b m` is refused rather than sent as service `a`, method `b.m`.
fn parse_service(s: &str) -> Result<String, String> {
    if crate::registry::names::valid_service_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a service name: letters, digits, '_' and '-' (up to 64, starting with a letter or digit), as its directory under the socket root is named"
        ))
    }
}
