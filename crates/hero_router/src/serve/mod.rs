//! `hero_router serve`: own sockets, the scanner, the listeners, and shutdown.
//!
//! Start-up order: create the root, take `hero_router/rpc.sock` and `admin.sock` the
//! cooperative way (owner lock, mode 0660; a second instance fails here and names the first),
//! bind TCP, start the scanner, serve. On cancel: stop accepting, let in-flight requests finish
//! within `--shutdown-grace`, stop the scanner, remove our sockets only if they are still ours.
//!
//! The scanner and the metrics feed are supervised: if one ends or panics before shutdown, the
//! table is frozen, so `router.health` turns `degraded` (not ready, with the reason), an error
//! is logged, and the daemon shuts down the same way and returns the error (`serve` exits 1,
//! and hero_proc restarts it) rather than go on routing from a stale table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use hero_socket::SocketGuard;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::Fetcher;
use crate::config::Config;
use crate::registry::Registry;
use crate::registry::names::OWN_SERVICE;
use crate::scanner::Scanner;

mod apps;
mod conn;
mod front;
pub(crate) mod listener;
mod own;
mod send_timeout;
mod slots;

pub(crate) use front::{Bound, Front, Role};
use listener::AnyListener;

/// How long the scanner and the other background tasks get to stop once the requests have
/// drained.
const TASKS_STOP: std::time::Duration = std::time::Duration::from_secs(2);
/// Everything `serve` bound, before it starts serving. Tests build this with port 0 and read
/// the bound addresses.
pub struct Listeners {
    /// `<root>/hero_router/rpc.sock` and its guard.
    pub rpc: (UnixListener, SocketGuard),
    /// `<root>/hero_router/admin.sock` and its guard.
    pub admin: (UnixListener, SocketGuard),
    /// TCP listeners (`--listen`).
    pub tcp: Vec<TcpListener>,
    /// Admin TCP listeners (`--admin-listen`).
    pub admin_tcp: Vec<TcpListener>,
    /// Held while the router runs: no second router can serve this root.
    instance: own::InstanceLock,
}

/// Why binding failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another router owns the root.
    #[error("another hero_router is already running on {root} (its socket: {rpc})", root = .root.display(), rpc = .rpc.display())]
    AlreadyRunning {
        /// The socket root.
        root: PathBuf,
        /// The running instance's rpc.sock.
        rpc: PathBuf,
    },
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

// === impl Listeners ===

impl Listeners {
    /// Creates the root and binds the router's own sockets and TCP listeners.
    pub async fn bind(cfg: &Config) -> Result<Listeners, ServeError> {
        hero_socket::root::create_root(&cfg.root).map_err(anyhow::Error::from)?;
        let instance = own::instance_lock(&cfg.root)?;
        let rpc = own::own_socket(&cfg.root, "rpc")?;
        let admin = match own::own_socket(&cfg.root, "admin") {
            Ok(admin) => admin,
            Err(e) => {
                // Leave no socket of ours behind when start-up fails half-way.
                let _ = rpc.1.remove_if_ours();
                return Err(e);
            }
        };
        let (mut tcp, mut admin_tcp) = (Vec::new(), Vec::new());
        let wanted = cfg.listen.iter().map(|a| (a, false));
        for (addr, is_admin) in wanted.chain(cfg.admin_listen.iter().map(|a| (a, true))) {
            match listener::bind_tcp(*addr) {
                Ok(l) if is_admin => admin_tcp.push(l),
                Ok(l) => tcp.push(l),
                Err(e) => {
                    // Leave no socket of ours behind when start-up fails half-way.
                    for (_, guard) in [rpc, admin] {
                        let _ = guard.remove_if_ours();
                    }
                    let what = if is_admin { "the admin listener " } else { "" };
                    return Err(anyhow::anyhow!("cannot listen on {what}{addr}: {e}").into());
                }
            }
        }
        Ok(Listeners {
            rpc,
            admin,
            tcp,
            admin_tcp,
            instance,
        })
    }

    /// The bound service listeners' addresses (useful with port 0).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.tcp)
    }

    /// The bound admin listeners' addresses.
    pub fn admin_tcp_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.admin_tcp)
    }

    /// Where everything is, as bound.
    pub fn bound(&self) -> Bound {
        Bound {
            service: self.tcp_addrs(),
            admin: self.admin_tcp_addrs(),
            admin_sock: self.admin.1.path().to_path_buf(),
        }
    }
}

fn addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

/// Runs the daemon on already-bound listeners until `token` is cancelled (then `Ok`), or until
/// the scanner or the metrics feed fails (then, after the same orderly shutdown, the reason as
/// an error).
pub async fn run(
    cfg: Config,
    listeners: Listeners,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let (scanner, handle) = Scanner::new(cfg.scanner.clone());
    run_with_scanner(cfg, listeners, scanner, handle, token).await
}

/// Like [`run`], with a scanner the caller built (tests install a reap hook this way).
pub async fn run_with_scanner(
    cfg: Config,
    listeners: Listeners,
    scanner: Scanner,
    handle: Registry,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let tcp_addrs = listeners.tcp_addrs();
    let bound = listeners.bound();
    tracing::info!(
        version = crate::VERSION,
        root = %cfg.root.display(),
        rpc = %listeners.rpc.1.path().display(),
        admin = %listeners.admin.1.path().display(),
        tcp = ?tcp_addrs,
        admin_tcp = ?bound.admin,
        server_names = ?cfg.server_names,
        scan_interval = ?cfg.scanner.scan_interval,
        probe_timeout = ?cfg.scanner.probe_timeout,
        probe_concurrency = cfg.scanner.probe_concurrency,
        stale_after = cfg.scanner.reap.stale_after,
        reap_grace = ?cfg.scanner.reap.grace,
        reap = cfg.scanner.reap.enabled,
        upstream_timeout = ?cfg.upstream_timeout,
        max_body = cfg.max_body,
        trust_forwarded_headers = cfg.trust_forwarded_headers,
        max_connections = cfg.limits.max_connections,
        max_connections_per_client = cfg.limits.max_connections_per_client,
        header_timeout = ?cfg.limits.header_read_timeout,
        max_header_size = cfg.limits.max_header_bytes,
        max_headers = cfg.limits.max_headers,
        max_inflight_per_service = cfg.max_inflight_per_service,
        hero_proc_method = cfg.scanner.hero_proc_method.as_str(),
        shutdown_grace = ?cfg.shutdown_grace,
        allow = ?cfg.access.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        access_file = %cfg.access.file.as_deref().map_or("none".into(), |f| f.display().to_string()),
        access_file_entries = cfg.access.file_entries.len(),
        trusted_proxies = ?cfg.access.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        catalog_timeout = ?cfg.catalog.timeout,
        catalog_refresh = ?cfg.catalog.refresh,
        access_log = cfg.access_log.format.as_str(),
        access_log_query = cfg.access_log.query,
        "hero_router starting"
    );
    // Where an operator goes, in words (the line above has every setting).
    let urls = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(|a| format!("http://{a}/"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match bound.admin.as_slice() {
        [] => tracing::info!(
            admin_sock = %bound.admin_sock.display(),
            "the dashboard is on admin.sock only (no admin TCP listener)"
        ),
        admin => tracing::info!("dashboard: {}", urls(admin)),
    }
    if !tcp_addrs.is_empty() {
        tracing::info!("services, /rpc, /mcp and /docs: {}", urls(&tcp_addrs));
    }
    let tracker = TaskTracker::new();
    let scan_token = token.child_token();
    let mut scanner_task = tracker.spawn(scanner.run(scan_token.clone()));

    let events_token = token.child_token();
    let front = Arc::new(Front::new(
        handle.clone(),
        &cfg,
        &bound,
        events_token.clone(),
    ));
    let mut feed_task = tracker.spawn(feed_metrics(
        front.clone(),
        handle.clone(),
        events_token.clone(),
    ));
    // Nor is the traffic sweeper: if it stopped, departed services' series would stay (at
    // most `MAX_SERIES` of them).
    tracker.spawn(sweep_traffic(
        front.clone(),
        handle.clone(),
        events_token.clone(),
    ));
    // Nor is the pool's sweeper: it closes idle upstream connections without traffic too.
    tracker.spawn(sweep_pool(front.clone(), events_token.clone()));
    // The catalog is not a core task: if it stopped, routing would go on with the last
    // catalog.
    if let Some(writer) = handle.claim_catalog_writer() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let openrpc = crate::rpc::openrpc().to_string();
        let own = crate::catalog::own_entry(&openrpc, &crate::rpc::manifest(), now);
        let fetcher = Fetcher::new(cfg.catalog, own, front.pool(), handle.clone(), writer);
        tracker.spawn(fetcher.run(events_token.clone()));
    }
    tracker.spawn(crate::access::report_suppressed(
        front.access().clone(),
        events_token.clone(),
    ));
    // The access file is not a core task either: if its watcher stopped, the last list
    // would stay in force.
    if let Some(path) = cfg.access.file.clone() {
        let access = front.access().clone();
        tracker.spawn(crate::access::file::watch(
            path,
            access,
            events_token.clone(),
        ));
    }
    // The listeners stop on the caller's token, or when a core task fails.
    let stop = token.child_token();
    let limits = cfg.limits;
    let Listeners {
        rpc,
        admin,
        tcp,
        admin_tcp,
        instance: _instance,
    } = listeners;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = listener::Shards::start(cores).context("cannot start connection threads")?;
    let app = |role| {
        Arc::new(listener::App::new(
            front.clone(),
            role,
            limits,
            shards.clone(),
        ))
    };
    let rpc_app = app(Role::RpcSocket);
    let admin_sock_app = app(Role::AdminSocket);
    let own = Arc::new(tokio::sync::Mutex::new(Some(own::OwnSockets::start(
        cfg.root.clone(),
        rpc,
        admin,
        rpc_app,
        admin_sock_app,
        stop.clone(),
    ))));
    let mut keeper_task =
        tracker.spawn(own::keep(own.clone(), handle.clone(), events_token.clone()));
    let mut servers = Vec::new();
    let (service_app, admin_app) = (app(Role::Service), app(Role::Admin));
    let tcp = tcp.into_iter().map(|l| (l, &service_app));
    for (l, app) in tcp.chain(admin_tcp.into_iter().map(|l| (l, &admin_app))) {
        servers.push(tokio::spawn(listener::serve(
            AnyListener::Tcp(l),
            app.clone(),
            stop.clone(),
        )));
    }

    // Both tasks stop only once `token` is cancelled: checked first, so their ending then is
    // never mistaken for a failure.
    let failure = tokio::select! {
        biased;
        () = token.cancelled() => None,
        r = &mut scanner_task => Some(ended("scanner", r)),
        r = &mut feed_task => Some(ended("metrics feed", r)),
        r = &mut keeper_task => Some(match r {
            Ok(Err(why)) => why,
            Ok(Ok(())) => ended("own-socket keeper", Ok(())),
            Err(e) => ended("own-socket keeper", Err(e)),
        }),
    };
    if let Some(reason) = &failure {
        // Health first: it must say why before anything else can go wrong.
        handle.mark_failed(reason.clone());
        tracing::error!(
            reason = reason.as_str(),
            "a core task failed; shutting down so the router is restarted"
        );
        stop.cancel();
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    // No more rebinding from here; the own sockets' accept loops join the others.
    stop.cancel();
    let (own_servers, own_guards) = match own.lock().await.take() {
        Some(own) => own.finish(),
        None => (Vec::new(), Vec::new()),
    };
    servers.extend(own_servers);
    let grace = cfg.shutdown_grace;
    let drained = tokio::time::timeout(grace, futures_util::future::join_all(servers)).await;
    if drained.is_err() {
        tracing::warn!(?grace, "in-flight requests did not finish in time");
    }
    let _ = tokio::task::spawn_blocking(move || shards.stop()).await;
    scan_token.cancel();
    events_token.cancel();
    tracker.close();
    // A task in the middle of blocking work (a scan of a hung file system) would hold the exit
    // for as long as that takes: it gets a moment, then the router stops without it.
    if tokio::time::timeout(TASKS_STOP, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            waited = ?TASKS_STOP,
            "a task did not stop in time (a scan still reading the socket root?); stopping without it"
        );
    }
    // The access log's writer writes what is queued every GATHER: give it the time to write
    // the last requests' lines before the process ends.
    if front.access_log.is_on() {
        tokio::time::sleep(2 * crate::traffic::GATHER).await;
    }
    for guard in own_guards {
        let path = guard.path().to_path_buf();
        match guard.remove_if_ours() {
            Ok(true) => tracing::debug!(socket = %path.display(), "removed own socket"),
            Ok(false) => {
                tracing::info!(socket = %path.display(), "own socket was replaced; left alone")
            }
            Err(e) => {
                tracing::warn!(socket = %path.display(), error = %e, "cannot remove own socket")
            }
        }
    }
    tracing::info!("stopped");
    match failure {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => Ok(()),
    }
}

/// Why a core task that should run until shutdown ended.
fn ended(task: &str, result: Result<(), tokio::task::JoinError>) -> String {
    match result {
        Ok(()) => format!("the {task} task ended before shutdown"),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let msg = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            format!("the {task} task panicked: {msg}")
        }
        Err(e) => format!("the {task} task was cancelled: {e}"),
    }
}

/// Every minute, drops the traffic series of services that left the table a while ago.
async fn sweep_traffic(front: Arc<Front>, registry: Registry, token: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                let table = registry.table();
                let traffic = &front.shared.traffic;
                let now = traffic.secs_at(tokio::time::Instant::now());
                traffic.sweep(
                    |name| name == OWN_SERVICE || table.service(name).is_some(),
                    now,
                );
            }
        }
    }
}

/// Closes idle upstream connections past their time, whether or not requests come
/// ([`crate::upstream::Pool::sweep`]).
async fn sweep_pool(front: Arc<Front>, token: CancellationToken) {
    let mut tick = tokio::time::interval(crate::upstream::SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => front.pool().sweep(),
        }
    }
}

async fn feed_metrics(front: Arc<Front>, registry: Registry, token: CancellationToken) {
    let mut events = registry.subscribe();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(ev) => front.metrics().on_event(&ev.event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
        }
    }
}
