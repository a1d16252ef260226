//! Shared helpers for the integration tests: real sockets in a temp root.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hero_router::ReapPolicy;
use hero_router::ScannerConfig;
use hero_router::{Event, Stamped};
use hero_socket::{ConnectOutcome, connect_probe};
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, connect, listen, socket_with,
};
use tokio::sync::broadcast;

pub mod mcp;
pub mod raw;
pub mod victim;

/// A scanner config for tests: reaping on, grace 0, streak `stale_after`, no watch.
pub fn cfg(root: &Path, stale_after: u32) -> ScannerConfig {
    ScannerConfig {
        root: root.to_path_buf(),
        scan_interval: Duration::from_secs(3600),
        probe_timeout: Duration::from_secs(1),
        reap: ReapPolicy {
            enabled: true,
            stale_after,
            grace: Duration::ZERO,
        },
        probe_concurrency: 4,
        hero_proc_method: "service.status_all".into(),
        hero_proc_timeout: Duration::from_millis(500),
        watch: false,
    }
}

pub fn service_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A socket file whose listener is gone: refuses connections.
pub fn dead_socket(path: &Path) {
    drop(UnixListener::bind(path).unwrap());
    // A process another test forks at this instant holds a copy of the listener until it
    // execs (close-on-exec), so the socket may still accept for a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connect_probe(path) != ConnectOutcome::Refused {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still accepts after its listener was closed",
            path.display()
        );
        std::thread::yield_now();
    }
}

/// A listener whose backlog is full: connect says EAGAIN. Keep the returned fds alive.
pub fn busy_socket(path: &Path) -> Vec<OwnedFd> {
    let addr = SocketAddrUnix::new(path).unwrap();
    let listener = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    bind(&listener, &addr).unwrap();
    listen(&listener, 0).unwrap();
    let mut fds = vec![listener];
    for _ in 0..64 {
        if connect_probe(path) == ConnectOutcome::Busy {
            return fds;
        }
        let c = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let _ = connect(&c, &addr);
        fds.push(c);
    }
    panic!("could not fill the backlog of {}", path.display());
}

/// Waits for the first event matching `pred`, up to `deadline`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<Stamped>,
    deadline: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(deadline, async {
        loop {
            match rx.recv().await {
                Ok(ev) if pred(&ev.event) => return ev.event,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event did not arrive before the deadline")
}

/// `hero_router serve` on `root` with its TCP listeners on port 0 and `$HOME` at `root` (no
/// access file or node config of the machine's user leaks in); the caller adds flags and
/// stdio.
pub fn serve_command(root: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .arg("--socket-dir")
    .arg(root)
    .env("HOME", root);
    cmd
}

/// A browser script of `tests/browser/` run by `python` with `args`, and its line protocol:
/// what it asks on stdout, where the answers go. Killed when dropped.
pub struct BrowserScript {
    pub child: tokio::process::Child,
    pub stdin: tokio::process::ChildStdin,
    pub lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Starts `tests/browser/{name}` (see [`BrowserScript`]).
pub fn browser_script(python: &str, name: &str, args: &[String]) -> BrowserScript {
    use tokio::io::AsyncBufReadExt as _;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(name);
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    BrowserScript {
        child,
        stdin,
        lines,
    }
}

/// The first arguments of a dashboard browser script: the admin listener's URL (the
/// dashboard's origin) and where its screenshots go.
pub fn dashboard_args(d: &Daemon, shots: &Path) -> Vec<String> {
    vec![
        format!("http://{}", d.admin_tcp.expect("the admin listener is on")),
        shots.display().to_string(),
    ]
}

/// Waits (at most `deadline`) for a browser script's run, which yields its exit status and
/// whether it said `done`; checks both, and that each of `shots` was saved in `dir`.
pub async fn browser_ran(
    run: impl std::future::Future<Output = (std::process::ExitStatus, bool)>,
    deadline: Duration,
    dir: &Path,
    shots: &[&str],
) {
    let (status, done) = tokio::time::timeout(deadline, run)
        .await
        .expect("the browser run did not finish");
    assert!(status.success(), "the browser script failed: {status}");
    assert!(done, "the browser script stopped before the end");
    for shot in shots {
        let len = std::fs::metadata(dir.join(shot)).map_or(0, |m| m.len());
        assert!(len > 1000, "{shot} was not saved");
    }
    println!("screenshots in {}", dir.display());
}

/// A `serve` child's log filter under which it says what it does: every registry event, each
/// scan's completion included (logged after the scan's table is published), and warnings.
pub const LOG_EVENTS: &str = "warn,hero_router::registry::events=debug";

/// The lines a child writes to stderr (piped), as they come: a child router started with
/// `--log-level` [`LOG_EVENTS`] logs one whenever its table may have changed.
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

pub fn changed_to(ev: &Event, path: &Path, state: &str) -> bool {
    matches!(ev, Event::SocketChanged { socket, to, .. } if socket == &path.display().to_string() && *to == state)
}

// === the daemon, in-process ===

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// A router running in-process on a temp root, TCP port 0.
pub struct Daemon {
    pub root: PathBuf,
    pub tcp: SocketAddr,
    /// Every service TCP listener's address (`tcp` is the first).
    pub tcp_all: Vec<SocketAddr>,
    /// The admin TCP listener (the dashboard's origin); `None` with `--no-admin-tcp`.
    pub admin_tcp: Option<SocketAddr>,
    pub rpc: PathBuf,
    pub admin: PathBuf,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub handle: hero_router::Registry,
}

/// Serve flags for tests: fast scans, short upstream timeout.
pub fn serve_config(root: &Path, extra: &[&str]) -> hero_router::Config {
    let mut args = vec![
        "hero_router",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--scan-interval",
        "1h",
    ];
    if !extra.contains(&"--admin-listen") {
        args.extend_from_slice(&["--admin-listen", "127.0.0.1:0"]);
    }
    if !extra.contains(&"--upstream-timeout") {
        args.extend_from_slice(&["--upstream-timeout", "2s"]);
    }
    args.extend_from_slice(extra);
    config_from_args(root, &args)
}

/// The configuration `serve` resolves from exactly these arguments (`hero_router serve …`)
/// on `root`, with an empty environment.
pub fn config_from_args(root: &Path, args: &[&str]) -> hero_router::Config {
    use clap::Parser;
    let cli = hero_router::cli::Cli::try_parse_from(args).unwrap();
    let hero_router::cli::Command::Serve(s) = cli.command else {
        unreachable!()
    };
    let env: std::collections::HashMap<String, String> = Default::default();
    hero_router::Config::resolve(Some(root.to_path_buf()), &s, &env).unwrap()
}

pub async fn start_daemon(cfg: hero_router::Config) -> Daemon {
    let d = launch_daemon(cfg, None).await;
    d.handle.ready().await;
    d
}

/// Starts the daemon whose scanner calls `list_hook` before it lists each service directory,
/// without waiting for its first scan (the hook may be holding it).
pub async fn launch_daemon(
    cfg: hero_router::Config,
    list_hook: Option<hero_router::test_hooks::ListHook>,
) -> Daemon {
    let listeners = hero_router::Listeners::bind(&cfg).await.unwrap();
    let tcp_all = listeners.tcp_addrs();
    let tcp = tcp_all[0];
    let admin_tcp = listeners.admin_tcp_addrs().first().copied();
    let (mut scanner, handle) = hero_router::Scanner::new(cfg.scanner.clone());
    if let Some(hook) = list_hook {
        scanner = scanner.with_list_hook(hook);
    }
    let token = CancellationToken::new();
    let root = cfg.root.clone();
    let task = tokio::spawn(hero_router::run_with_scanner(
        cfg,
        listeners,
        scanner,
        handle.clone(),
        token.clone(),
    ));
    Daemon {
        rpc: root.join("hero_router/rpc.sock"),
        admin: root.join("hero_router/admin.sock"),
        root,
        tcp,
        tcp_all,
        admin_tcp,
        token,
        task,
        handle,
    }
}

impl Daemon {
    /// Rescans so the table reflects what was just bound.
    pub async fn rescan(&self) {
        self.handle.scan_now().await.unwrap();
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// One HTTP/1.1 exchange over any stream; returns status, headers and the whole body.
pub async fn exchange<S>(
    stream: S,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

pub fn request(method: &str, uri: &str, body: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

pub async fn tcp(
    d: &Daemon,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    exchange(tokio::net::TcpStream::connect(d.tcp).await.unwrap(), req).await
}

/// One exchange with the admin TCP listener (the dashboard's origin).
pub async fn admin(
    d: &Daemon,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let addr = d.admin_tcp.expect("the admin listener is on");
    exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), req).await
}

pub async fn uds(
    path: &Path,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    exchange(tokio::net::UnixStream::connect(path).await.unwrap(), req).await
}

/// POSTs a JSON-RPC body to the router over TCP; returns status and body text.
pub async fn rpc(d: &Daemon, body: &str) -> (u16, String) {
    let (s, _, b) = tcp(d, request("POST", "/rpc", body)).await;
    (s.as_u16(), String::from_utf8(b.to_vec()).unwrap())
}

/// `service`'s entry in the `router.traffic` result (`{"name", "windows", "slots"}`), once
/// it has one: a request is counted as its exchange ends, which may be just after its client
/// read the answer. Panics with the whole result if none comes within 10 s.
pub async fn traffic_of(d: &Daemon, service: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = rpc(d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
        let traffic = json(&body)["result"].clone();
        let found = traffic["services"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == service))
            .cloned();
        match found {
            Some(entry) => return entry,
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None => panic!("{service} in {traffic}"),
        }
    }
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// This process's peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts the peak resident set size ([`peak_rss_kib`]) over from the current one, so a
/// measurement does not include what an earlier test in the same binary (or its panic's
/// backtrace, symbolised from debug info) once used.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

// === running as nobody ===

/// uid and gid 65534 (`nobody`).
pub const NOBODY: u32 = 65534;

/// True if the tests run as root: only then can they drop to `nobody` (and only then do
/// permission bits not apply to the test process itself).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The hero_router binary, copied where uid 65534 can run it (the build directory may be
/// a 0700 checkout).
pub struct NobodyBin {
    dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn nobody_bin() -> NobodyBin {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("hero_router");
    std::fs::copy(env!("CARGO_BIN_EXE_hero_router"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A child another test thread forked while the copy was open for writing holds that fd
    // until it execs, and the kernel refuses to run a file open for writing (ETXTBSY). Once
    // one run has started, no such writer is left (later forks never saw the fd).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match std::process::Command::new(&path).arg("--version").output() {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{}: {e}",
                    path.display()
                );
                // A poll interval while the forked children exec (microseconds each).
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    NobodyBin { dir, path }
}

impl NobodyBin {
    /// A command running this binary as uid/gid 65534.
    pub fn command(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(&self.path);
        c.uid(NOBODY).gid(NOBODY);
        // A home nobody can read: the invoking user's (e.g. /root) is not, and the router
        // refuses an access file it cannot read.
        c.env("HOME", self.dir.path());
        c
    }
}

/// Gives `path` and everything under it to uid/gid 65534 (never following symlinks), and
/// makes its ancestors up to `/tmp` searchable, so nobody can reach it.
pub fn give_to_nobody(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            give_to_nobody(&e.unwrap().path());
        }
    }
    let mut p = path.parent();
    while let Some(dir) = p {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
        }
        p = dir.parent();
    }
}

// === what the machine may lack ===

/// A test cannot run here because `missing` (a browser, a shell, IPv6). On a developer's
/// machine it says so and passes; where `require` (a `HERO_REQUIRE_*` variable, set by
/// `.ci/run`, which installs what the tests need) is set to anything but `0`, it fails instead.
pub fn skip_unless_required(require: &str, missing: &str) {
    let required = std::env::var(require).is_ok_and(|v| v != "0" && !v.is_empty());
    assert!(!required, "{require} is set, but {missing}");
    eprintln!("skipped: {missing} (set {require}=1 to make this a failure)");
}

// === a real browser ===

/// The Python that has playwright, if it and the browser are here. Where either is missing
/// the test says so and passes, unless `HERO_REQUIRE_BROWSER=1` (see
/// [`skip_unless_required`]). `HERO_BROWSER_PYTHON` names the Python with playwright
/// (default `python3`), `HERO_CHROMIUM` the browser (default `/usr/bin/chromium`).
pub fn browser_python() -> Option<String> {
    let python = std::env::var("HERO_BROWSER_PYTHON").unwrap_or_else(|_| "python3".into());
    let chromium = std::env::var("HERO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let playwright = std::process::Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = match (Path::new(&chromium).exists(), playwright) {
        (true, true) => return Some(python),
        (false, _) => format!("no browser at {chromium} (apt-get install chromium)"),
        (true, false) => format!("{python} cannot import playwright (pip install playwright)"),
    };
    skip_unless_required("HERO_REQUIRE_BROWSER", &missing);
    None
}

/// Polls `cond` (blocking) until it holds or the deadline passes.
pub fn eventually(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5)); // poll interval, bounded by the deadline
    }
    cond()
}
