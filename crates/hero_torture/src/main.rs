//! `hero_torture`: the reaper torture harness.
//!
//! Services that restart in a tight loop race a reaper that removes stale sockets, and the
//! harness counts how many *live* sockets the reaper removed. Each strategy runs in a fresh
//! temporary root, one directory per service (`<root>/svc<i>/rpc.sock`):
//!
//! - **Services** are OS threads. Half are *cooperative* ([`OwnedSocket::bind`]: owner lock,
//!   remove a stale file, bind, listen, lock held while live); half are *non-cooperative* (plain
//!   unlink, then [`UnixListener::bind`]). Random short pauses come before the unlink, between
//!   unlink and bind, while live and while dead, and the dead period is often zero, so a respawn
//!   lands in the middle of a reaper's check-then-unlink.
//! - **Counting.** Right after bind a service records its socket file's instance (dev, ino,
//!   birth time; birth time survives the reaper's rename aside, ctime does not). At the end of
//!   its live period, before closing the listener, it checks the path still holds that instance.
//!   If not, it waits ~20 ms, and longer while the instance sits under another name in the
//!   directory (a reaper that renamed it aside and will put it back). If it never comes back, a
//!   live socket was unlinked: `live_unlinked` grows. A socket already gone right after bind
//!   (unlinked between `bind` and `listen`, or inside [`OwnedSocket::bind`]) counts the same.
//!   A present socket must also accept a connect.
//! - **Reapers.** `ours` is the product: a [`Scanner`] doing periodic full scans back to back,
//!   reaping after a single refusal with no grace. `seed` is the original algorithm, kept here
//!   only as a baseline: probe everything, collect the refused, re-probe each and unlink it.
//!
//! One line per strategy goes to stdout. The exit code is 1 if `ours` lost a live socket.
#![forbid(unsafe_code)]

use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hero_router::{ProbeCause, ReapPolicy};
use hero_router::{Scanner, ScannerConfig};
use hero_socket::{
    BindError, BindOptions, ConnectOutcome, FileKind, OwnedSocket, connect_probe, stat_nofollow,
};

/// How long a service waits, polling fast, for its socket to come back to its path.
const FAST_WAIT: Duration = Duration::from_millis(20);
/// How long it keeps waiting while its socket sits renamed aside in the directory.
const SLOW_WAIT: Duration = Duration::from_secs(2);
/// The longest random pause, in microseconds.
const MAX_PAUSE_US: u64 = 200;

/// Torture the stale-socket reaper: restart services adversarially, count live sockets lost.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Service threads; half bind cooperatively (owner lock), half do not.
    #[arg(long, default_value_t = 32)]
    services: usize,
    /// Total restart cycles per strategy, over all services.
    #[arg(long, default_value_t = 100_000)]
    cycles: u64,
    /// Which reaper(s) to run.
    #[arg(long, value_enum, default_value_t = Choice::Both)]
    strategy: Choice,
    /// Seed for the random pauses (random if not given; always printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop a strategy after this many seconds even if the cycles are not done.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
}

/// The `--strategy` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Choice {
    /// Only the product's reaper.
    Ours,
    /// Only the seed baseline.
    Seed,
    /// Both, `ours` first.
    Both,
}

/// One reaper under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// The product's scanner and reaper.
    Ours,
    /// Probe, re-probe, unlink: the seed algorithm.
    Seed,
}

/// Counters shared by the services and the reaper of one run.
#[derive(Debug, Default)]
struct Shared {
    /// Cycles to run in total.
    target: u64,
    /// Cycles handed out to services.
    claimed: AtomicU64,
    /// Cycles finished.
    completed: AtomicU64,
    /// Live periods whose socket was unlinked by the reaper.
    live_unlinked: AtomicU64,
    /// Live periods checked.
    checks: AtomicU64,
    /// Stale sockets the reaper removed.
    reaped: AtomicU64,
    /// Binds that failed (reported on stderr; never expected).
    bind_errors: AtomicU64,
    /// Sockets present at the end of their live period that did not accept a connection.
    unreachable: AtomicU64,
    /// Service threads still running.
    running: AtomicUsize,
    /// Set on `--max-secs`: services stop after their current cycle.
    stop: AtomicBool,
}

/// The final counts of one strategy.
#[derive(Debug)]
struct Report {
    /// Cycles completed.
    cycles: u64,
    /// Live sockets unlinked.
    live_unlinked: u64,
    /// Live periods checked.
    checks: u64,
    /// Stale sockets reaped.
    reaped: u64,
    /// Wall time of the run.
    secs: f64,
}

/// One socket file instance: stable across a rename, new on every bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Instance {
    /// Device.
    dev: u64,
    /// Inode (often reused by an immediate re-bind on ext4).
    ino: u64,
    /// Birth time in ns, where the filesystem records it.
    btime_ns: Option<i128>,
}

/// A listening service: whichever way it bound.
#[derive(Debug)]
enum Live {
    /// Bound with the owner lock held (drops the listener first, then the lock).
    Owned {
        /// Held only to be dropped.
        _socket: OwnedSocket,
    },
    /// Bound without cooperation.
    Plain {
        /// Held only to be dropped.
        _listener: UnixListener,
    },
}

// === impl Strategy ===

impl Strategy {
    /// The name on the summary line.
    fn name(self) -> &'static str {
        match self {
            Strategy::Ours => "ours",
            Strategy::Seed => "seed",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!("seed={seed}");
    let strategies: &[Strategy] = match args.strategy {
        Choice::Ours => &[Strategy::Ours],
        Choice::Seed => &[Strategy::Seed],
        Choice::Both => &[Strategy::Ours, Strategy::Seed],
    };
    let mut code = ExitCode::SUCCESS;
    for &strategy in strategies {
        match run(strategy, &args, seed) {
            Ok(r) => {
                println!(
                    "strategy={} cycles={} live_unlinked={} checks={} reaped={} secs={:.2}",
                    strategy.name(),
                    r.cycles,
                    r.live_unlinked,
                    r.checks,
                    r.reaped,
                    r.secs
                );
                if strategy == Strategy::Ours && r.live_unlinked > 0 {
                    eprintln!("BUG: the product's reaper unlinked live sockets (seed={seed})");
                    code = ExitCode::from(1);
                }
            }
            Err(e) => {
                eprintln!("strategy={}: {e:#}", strategy.name());
                return ExitCode::from(2);
            }
        }
    }
    code
}

/// Runs one strategy to `--cycles` (or `--max-secs`) in a fresh root and cleans up.
fn run(strategy: Strategy, args: &Args, seed: u64) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().context("create temporary root")?;
    let root = dir.path().to_path_buf();
    let shared = Arc::new(Shared {
        target: args.cycles,
        running: AtomicUsize::new(args.services),
        ..Shared::default()
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_secs);
    let mut threads = Vec::with_capacity(args.services);
    for idx in 0..args.services {
        let svc_dir = root.join(format!("svc{idx}"));
        std::fs::create_dir(&svc_dir).context("create service directory")?;
        let shared = Arc::clone(&shared);
        let rng =
            fastrand::Rng::with_seed(seed ^ (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let t = thread::Builder::new()
            .name(format!("svc{idx}"))
            .spawn(move || service(strategy, idx, svc_dir.join("rpc.sock"), rng, &shared))
            .context("spawn service thread")?;
        threads.push(t);
    }
    let reaper = match strategy {
        Strategy::Ours => ours_reaper(&root, &shared, deadline),
        Strategy::Seed => {
            seed_reaper(&root, &shared, deadline);
            Ok(())
        }
    };
    shared.stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    reaper?;
    for (what, n) in [
        ("bind errors", shared.bind_errors.load(Relaxed)),
        ("present but unreachable", shared.unreachable.load(Relaxed)),
    ] {
        if n > 0 {
            eprintln!("strategy={}: {n} {what}", strategy.name());
        }
    }
    Ok(Report {
        cycles: shared.completed.load(Relaxed),
        live_unlinked: shared.live_unlinked.load(Relaxed),
        checks: shared.checks.load(Relaxed),
        reaped: shared.reaped.load(Relaxed),
        secs: started.elapsed().as_secs_f64(),
    })
}

/// One service thread: restart cycles until the shared count is reached.
fn service(strategy: Strategy, idx: usize, path: PathBuf, mut rng: fastrand::Rng, sh: &Shared) {
    let cooperative = idx.is_multiple_of(2);
    let kind = if cooperative { "cooperative" } else { "plain" };
    while !sh.stop.load(Relaxed) && sh.claimed.fetch_add(1, Relaxed) < sh.target {
        pause(&mut rng);
        let (live, lost) = match start(cooperative, &path, &mut rng) {
            Start::Up(live) => {
                let lost = check(&path, &mut rng, sh);
                (Some(live), lost)
            }
            Start::Lost => {
                sh.checks.fetch_add(1, Relaxed);
                (None, Some("during bind"))
            }
            Start::Failed(e) => {
                if sh.bind_errors.fetch_add(1, Relaxed) < 5 {
                    eprintln!("svc{idx}: bind {}: {e}", path.display());
                }
                (None, None)
            }
        };
        if let Some(when) = lost {
            let n = sh.live_unlinked.fetch_add(1, Relaxed);
            if strategy == Strategy::Ours || n < 3 {
                eprintln!(
                    "strategy={} svc{idx} ({kind}): live socket unlinked, noticed {when}",
                    strategy.name()
                );
            }
        }
        drop(live);
        // Dead: the refused file stays behind. One in four respawns at once.
        if rng.u8(..4) != 0 {
            pause(&mut rng);
        }
        sh.completed.fetch_add(1, Relaxed);
    }
    sh.running.fetch_sub(1, Relaxed);
}

/// How a service start went.
enum Start {
    /// Bound and listening.
    Up(Live),
    /// [`OwnedSocket::bind`] failed because its freshly bound socket vanished under it (between
    /// `bind` and `chmod`, or `listen` and its final `stat`): a reaper unlinked it.
    Lost,
    /// Any other failure (never expected).
    Failed(String),
}

/// Binds the service's socket, the cooperative way or the plain one.
fn start(cooperative: bool, path: &Path, rng: &mut fastrand::Rng) -> Start {
    if cooperative {
        let opts = BindOptions {
            lock_wait: Duration::from_secs(5),
            ..BindOptions::default()
        };
        return match OwnedSocket::bind(path, &opts) {
            Ok(socket) => Start::Up(Live::Owned { _socket: socket }),
            Err(BindError::Io { op, error, .. })
                if matches!(op, "bind" | "stat") && error.kind() == io::ErrorKind::NotFound =>
            {
                Start::Lost
            }
            Err(e) => Start::Failed(e.to_string()),
        };
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Start::Failed(e.to_string()),
        _ => pause(rng),
    }
    match UnixListener::bind(path) {
        Ok(listener) => Start::Up(Live::Plain {
            _listener: listener,
        }),
        Err(e) => Start::Failed(e.to_string()),
    }
}

/// Checks a live socket after its live period; `Some(when)` if it was unlinked. Counts a check.
fn check(path: &Path, rng: &mut fastrand::Rng, sh: &Shared) -> Option<&'static str> {
    sh.checks.fetch_add(1, Relaxed);
    // The instance we bound; a reaper may already hold it aside, or have unlinked it.
    let Some(mine) = settle(path, None) else {
        return Some("right after bind");
    };
    pause(rng);
    // A connect can land while our reaper holds the socket aside: look again, a few times.
    for _ in 0..3 {
        if settle(path, Some(mine)).is_none() {
            return Some("at the end of the live period");
        }
        if matches!(
            connect_probe(path),
            ConnectOutcome::Connected | ConnectOutcome::Busy
        ) {
            return None;
        }
    }
    sh.unreachable.fetch_add(1, Relaxed);
    None
}

/// A random adversarial pause: nothing, a yield, or a sleep of up to [`MAX_PAUSE_US`].
fn pause(rng: &mut fastrand::Rng) {
    match rng.u8(..4) {
        0 => {}
        1 => thread::yield_now(),
        _ => thread::sleep(Duration::from_micros(rng.u64(..=MAX_PAUSE_US))),
    }
}

/// The socket instance at `path`: `want`, or any socket if `None`. Waits [`FAST_WAIT`] for it,
/// then up to [`SLOW_WAIT`] while a matching socket sits under another name in the directory
/// (renamed aside by a reaper that will restore it). `None`: it is gone for good.
fn settle(path: &Path, want: Option<Instance>) -> Option<Instance> {
    let wanted = |i: &Instance| want.is_none_or(|w| w == *i);
    let start = Instant::now();
    loop {
        if let Some(found) = instance_at(path).filter(wanted) {
            return Some(found);
        }
        let waited = start.elapsed();
        if waited < FAST_WAIT {
            thread::sleep(Duration::from_micros(20));
        } else if waited < SLOW_WAIT && aside(path, want) {
            thread::sleep(Duration::from_millis(1));
        } else {
            // It may have been put back just after the last look.
            return instance_at(path).filter(wanted);
        }
    }
}

/// The socket instance at `path`, if a socket is there.
fn instance_at(path: &Path) -> Option<Instance> {
    let st = stat_nofollow(path).ok()?;
    (st.kind == FileKind::Socket).then_some(Instance {
        dev: st.identity.dev,
        ino: st.identity.ino,
        btime_ns: st.btime_ns,
    })
}

/// True if a socket matching `want` (any socket if `None`) exists in `path`'s directory under
/// another name.
fn aside(path: &Path, want: Option<Instance>) -> bool {
    let Some(dir) = path.parent() else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.path() != path && instance_at(&e.path()).is_some_and(|i| want.is_none_or(|w| w == i))
    })
}

/// The product: back-to-back periodic full scans that reap after one refusal, no grace.
fn ours_reaper(root: &Path, sh: &Shared, deadline: Instant) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    let cfg = ScannerConfig {
        root: root.to_path_buf(),
        scan_interval: Duration::from_millis(1),
        probe_timeout: Duration::from_secs(1),
        reap: ReapPolicy {
            enabled: true,
            stale_after: 1,
            grace: Duration::ZERO,
        },
        probe_concurrency: 4,
        hero_proc_method: "service.status_all".into(),
        hero_proc_timeout: Duration::from_millis(10),
        watch: false,
    };
    rt.block_on(async {
        let (mut scanner, _handle) = Scanner::new(cfg);
        while sh.running.load(Relaxed) > 0 {
            if Instant::now() >= deadline {
                sh.stop.store(true, Relaxed);
            }
            let summary = scanner.scan_full(ProbeCause::Periodic).await;
            sh.reaped.fetch_add(summary.reaped.len() as u64, Relaxed);
        }
    });
    Ok(())
}

/// The seed algorithm, baseline only: probe all, collect the refused, re-probe and unlink each.
fn seed_reaper(root: &Path, sh: &Shared, deadline: Instant) {
    while sh.running.load(Relaxed) > 0 {
        if Instant::now() >= deadline {
            sh.stop.store(true, Relaxed);
        }
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        let refused: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("rpc.sock"))
            .filter(|p| connect_probe(p) == ConnectOutcome::Refused)
            .collect();
        for path in refused {
            if connect_probe(&path) == ConnectOutcome::Refused {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        sh.reaped.fetch_add(1, Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => eprintln!("seed: unlink {}: {e}", path.display()),
                }
            }
        }
    }
}
