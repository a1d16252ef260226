//! The memory benchmark: the real `hero_router serve` as a child process, measured from
//! `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `Threads`) while it scans.
//!
//! 1. **Idle.** An empty root, 1 s scans; RSS and threads after readiness and a few scans.
//! 2. **10,000 sockets, steady and soak.** The scale fixture ([`scale::build`]: 8,000 live,
//!    1,000 refused, 1,000 busy) held by this process, with its live listeners drained
//!    ([`Drainer`]) so the classification cannot drift during a long run; 1 s scans; RSS
//!    sampled every [`SAMPLE_EVERY`]. Steady RSS is the median after warm-up, peak is `VmHWM`
//!    at the end, the growth trend is the least-squares slope after warm-up, and `router.scan`
//!    checks the classification every [`CHECK_EVERY`]. Run twice: 1,000 services of ten
//!    sockets ([`Layout::Grouped`]), and the same states flat, 10,000 services of one
//!    `rpc.sock` each ([`Layout::Flat`]): what a service costs beyond its sockets shows in the
//!    difference.
//! 3. **100,000 sockets.** A process may hold at most 20,000 descriptors here, so the
//!    listeners are spread over holder processes (this binary's hidden `hold` command, see
//!    [`hold`]), each binding a range of services and draining its live listeners. `serve`
//!    scans every hour, so only `router.scan` scans while it is timed.
//!
//! Every child (`serve`, holders) is stopped and reaped on the way out, errors included: their
//! guards do it on drop. Readiness is `router.health` saying `ready` with a `last_scan`, polled
//! over `rpc.sock` with a small HTTP/1.1 client of our own, so the router's client code is not
//! under test here.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::measure::{Stats, cpu_of, ms, slope_per_min, status_kib};
use crate::scale::{self, Drainer, Layout};

/// How often the soak reads `VmRSS`: often enough to see inside a 1 s scan cycle, and off its
/// phase so the median is not always taken at the same point of the cycle.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How often the soak asks `router.scan` for the classification.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for `router.health` to say ready (the 100,000-socket first scan included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for one JSON-RPC answer (a `router.scan` of 100,000 sockets included).
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the holders to bind their sockets.
const HOLD_TIMEOUT: Duration = Duration::from_secs(300);
/// Time a stopped child has to exit after SIGTERM (or its stdin closing) before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Descriptors one holder may use for sockets: the hard limit here is 20,000, and the holder
/// needs a few more for itself and for the connections it accepts.
const HOLDER_FDS: usize = 18_000;
/// Descriptors per service of the fixture layout: 8 live listeners, 1 busy listener and the
/// client that fills its backlog (the refused socket is closed after binding).
const FDS_PER_SERVICE: usize = 10;

/// The router's own service (`hero_router/`, scanned like any other): `rpc.sock` and
/// `admin.sock`, both live. A fixed expectation, not read back from the router, so a router
/// that misjudges its own sockets is caught too.
const OWN: Counts = Counts {
    services: 1,
    sockets: 2,
    live: 2,
    refused: 0,
    busy: 0,
};

/// What one benchmark run needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The `hero_router` binary.
    pub(crate) bin: PathBuf,
    /// Seconds the idle router runs before it is measured.
    pub(crate) idle_secs: u64,
    /// Services (of ten sockets) in the grouped steady/soak root.
    pub(crate) services: usize,
    /// Services (of one socket) in the flat steady/soak root.
    pub(crate) flat_services: usize,
    /// Length of the steady/soak run.
    pub(crate) soak_secs: u64,
    /// Sockets in the big root (a multiple of ten).
    pub(crate) big_sockets: usize,
    /// Timed `router.scan` calls on the big root.
    pub(crate) big_scans: usize,
}

/// The classification `router.scan` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Services.
    pub(crate) services: usize,
    /// Sockets.
    pub(crate) sockets: usize,
    /// Live sockets.
    pub(crate) live: usize,
    /// Refused sockets.
    pub(crate) refused: usize,
    /// Busy sockets.
    pub(crate) busy: usize,
}

/// The idle router.
#[derive(Debug, Clone)]
pub(crate) struct Idle {
    /// `VmRSS` at the end, KiB.
    pub(crate) rss_kib: u64,
    /// Largest `VmRSS` sample while idle, KiB.
    pub(crate) max_kib: u64,
    /// `VmHWM` at the end, KiB.
    pub(crate) hwm_kib: u64,
    /// Threads at the end.
    pub(crate) threads: u64,
    /// Spawn to ready.
    pub(crate) ready_after: Duration,
    /// How `serve` ended and what it logged.
    pub(crate) end: End,
}

/// The steady/soak run.
#[derive(Debug, Clone)]
pub(crate) struct Soak {
    /// What the table should say (fixture plus the router's own service).
    pub(crate) expect: Counts,
    /// Spawn to ready.
    pub(crate) ready_after: Duration,
    /// `VmRSS` at readiness, KiB.
    pub(crate) ready_kib: u64,
    /// Seconds skipped as warm-up.
    pub(crate) warmup_secs: f64,
    /// `VmRSS` after warm-up, KiB.
    pub(crate) rss: Stats,
    /// First and last `VmRSS` sample after warm-up, KiB.
    pub(crate) first_last_kib: (f64, f64),
    /// Least-squares slope of `VmRSS` after warm-up, MiB per minute.
    pub(crate) slope: f64,
    /// `VmHWM` at the end, KiB.
    pub(crate) hwm_kib: u64,
    /// Largest `VmRSS` sample of the whole run, warm-up included, KiB. It can exceed
    /// `VmHWM` by a little: the kernel's RSS counters are per-CPU and read approximately.
    pub(crate) max_sample_kib: f64,
    /// Threads at readiness and at the end.
    pub(crate) threads: (u64, u64),
    /// `duration_ms` of every `router.scan`.
    pub(crate) scan_ms: Stats,
    /// `router.scan` answers that did not match `expect`, with the second they came at.
    pub(crate) mismatches: Vec<String>,
    /// Connections the drainer accepted (about live sockets × scans).
    pub(crate) drained: u64,
    /// CPU `serve` used per second of the run after warm-up, ms.
    pub(crate) cpu_ms_per_s: f64,
    /// How `serve` ended and what it logged.
    pub(crate) end: End,
}

/// The 100,000-socket scan.
#[derive(Debug, Clone)]
pub(crate) struct Big {
    /// What the table should say (holders plus the router's own service).
    pub(crate) expect: Counts,
    /// Holder processes, and the most descriptors one of them holds.
    pub(crate) holders: (usize, usize),
    /// The holders' RLIMIT_NOFILE (the smallest).
    pub(crate) holder_nofile: u64,
    /// Time to bind every socket (holders in parallel).
    pub(crate) setup: Duration,
    /// Spawn to ready (includes the first full scan).
    pub(crate) ready_after: Duration,
    /// `duration_ms` of each timed `router.scan`.
    pub(crate) duration_ms: Stats,
    /// Wall time of each timed `router.scan` call, ms.
    pub(crate) wall_ms: Stats,
    /// CPU `serve` used during each call, ms.
    pub(crate) cpu_ms: Stats,
    /// CPU the holders used during each call (accepting and closing probes), ms.
    pub(crate) holder_cpu_ms: Stats,
    /// Wall ms and `duration_ms` of each call, in order, the untimed first one first.
    pub(crate) calls: Vec<(f64, f64)>,
    /// Answers that did not match `expect`.
    pub(crate) mismatches: Vec<String>,
    /// `VmRSS` after the scans, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` after the scans, KiB.
    pub(crate) hwm_kib: u64,
    /// Threads after the scans.
    pub(crate) threads: u64,
    /// How `serve` ended and what it logged.
    pub(crate) end: End,
}

/// How a `serve` run ended.
#[derive(Debug, Clone)]
pub(crate) struct End {
    /// Its exit status after SIGTERM (`None`: it needed SIGKILL).
    pub(crate) status: Option<ExitStatus>,
    /// Lines it wrote to stderr (at `--log-level warn`), and the first few of them.
    pub(crate) log_lines: usize,
    /// The first few lines.
    pub(crate) log_head: Vec<String>,
}

/// Flags of the hidden `hold` command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HoldArgs {
    /// The socket root (must exist).
    #[arg(long)]
    dir: PathBuf,
    /// First service number.
    #[arg(long)]
    from: usize,
    /// One past the last service number.
    #[arg(long)]
    to: usize,
}

/// A running `hero_router serve`; stopped (SIGTERM, then SIGKILL) and reaped on drop.
pub(crate) struct Serve {
    /// The process.
    child: Child,
    /// Its pid, as `/proc` spells it.
    pid: String,
    /// `<root>/hero_router/rpc.sock`.
    rpc: PathBuf,
    /// Its stderr.
    log: tempfile::NamedTempFile,
    /// When it was spawned.
    pub(crate) spawned: Instant,
}

/// The soak's `router.scan` checks.
struct Checks {
    /// What every answer should say.
    expect: Counts,
    /// `duration_ms` of each answer.
    scan_ms: Vec<f64>,
    /// The first few answers that differed, with when they came.
    mismatches: Vec<String>,
}

/// Holder processes; each exits when its stdin closes, and is killed if it does not.
struct Holders {
    /// The processes.
    children: Vec<Child>,
}

// === impl Counts ===

impl Counts {
    /// From `[services, live, refused, busy]` (the fixture's `expect`).
    pub(crate) fn from_expect([services, live, refused, busy]: [usize; 4]) -> Counts {
        Counts {
            services,
            sockets: live + refused + busy,
            live,
            refused,
            busy,
        }
    }

    fn add(self, o: Counts) -> Counts {
        Counts {
            services: self.services + o.services,
            sockets: self.sockets + o.sockets,
            live: self.live + o.live,
            refused: self.refused + o.refused,
            busy: self.busy + o.busy,
        }
    }

    fn from_scan(v: &Value) -> anyhow::Result<Counts> {
        let n = |k: &str| -> anyhow::Result<usize> {
            v[k].as_u64()
                .map(|n| n as usize)
                .with_context(|| format!("router.scan: no {k:?} in {v}"))
        };
        Ok(Counts {
            services: n("services")?,
            sockets: n("sockets")?,
            live: n("live")?,
            refused: n("refused")?,
            busy: n("busy")?,
        })
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} services, {} sockets: {} live / {} refused / {} busy",
            self.services, self.sockets, self.live, self.refused, self.busy
        )
    }
}

// === impl Checks ===

impl Checks {
    /// One `router.scan`, `at` seconds into the run.
    fn run(&mut self, serve: &Serve, at: f64) -> anyhow::Result<()> {
        let (got, ms) = serve.scan()?;
        self.scan_ms.push(ms as f64);
        if got != self.expect && self.mismatches.len() < 10 {
            self.mismatches.push(format!("at {at:.0} s: {got}"));
        }
        Ok(())
    }
}

// === impl Serve ===

impl Serve {
    /// Spawns `serve` on `root` with periodic scans every `interval` (a humantime string).
    pub(crate) fn start(bin: &Path, root: &Path, interval: &str) -> anyhow::Result<Serve> {
        let log = tempfile::NamedTempFile::new()?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--socket-dir")
            .arg(root)
            .args(["--no-tcp", "--no-reap", "--log-level", "warn"])
            .args(["--scan-interval", interval])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen()?))
            .spawn()
            .with_context(|| format!("spawning {} serve", bin.display()))?;
        Ok(Serve {
            pid: child.id().to_string(),
            child,
            rpc: root.join("hero_router").join("rpc.sock"),
            log,
            spawned: Instant::now(),
        })
    }

    /// Polls `router.health` until it says ready with a `last_scan`; returns the time since
    /// the spawn.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<Duration> {
        let deadline = self.spawned + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            self.alive()?;
            match rpc_call(&self.rpc, "router.health", json!([]), RPC_TIMEOUT) {
                Ok(h) if h["ready"] == true && !h["last_scan"].is_null() => {
                    return Ok(self.spawned.elapsed());
                }
                Ok(h) => last = h.to_string(),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "serve not ready after {READY_TIMEOUT:?}; last health: {last}{}",
            self.log_tail()
        )
    }

    /// Prints its pid at once (for a profiler attached by hand; the results come at the end).
    pub(crate) fn announce(&self, ready_after: Duration) {
        println!(
            "  serve pid {} ready after {:.1} s",
            self.pid,
            ready_after.as_secs_f64()
        );
    }

    /// Fails if the process has exited.
    pub(crate) fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("serve exited: {status}{}", self.log_tail());
        }
        Ok(())
    }

    /// One JSON-RPC call on `rpc.sock`.
    pub(crate) fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        rpc_call(&self.rpc, method, params, RPC_TIMEOUT)
    }

    /// `router.scan`: its counts and `duration_ms`.
    pub(crate) fn scan(&self) -> anyhow::Result<(Counts, u64)> {
        let v = self.call("router.scan", json!([]))?;
        let ms = v["duration_ms"]
            .as_u64()
            .with_context(|| format!("router.scan: no duration_ms in {v}"))?;
        Ok((Counts::from_scan(&v)?, ms))
    }

    /// A `/proc/<pid>/status` number (KiB for the `Vm*` lines).
    pub(crate) fn status(&self, key: &str) -> anyhow::Result<u64> {
        status_kib(&self.pid, key).with_context(|| format!("no {key} for serve ({})", self.pid))
    }

    /// Its CPU time so far.
    pub(crate) fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(&self.pid)
    }

    /// SIGTERM, up to [`STOP_GRACE`] to exit, else SIGKILL; reaps it and reads its log.
    pub(crate) fn stop(mut self) -> End {
        let status = self.terminate();
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        End {
            status,
            log_lines: log.lines().count(),
            log_head: log.lines().take(3).map(str::to_owned).collect(),
        }
    }

    /// Stops and reaps the process; `None` if it needed SIGKILL. Idempotent.
    fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
        if let Some(status) = wait_until(&mut self.child, Instant::now() + STOP_GRACE) {
            return Some(status);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The end of its stderr, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
        format!("\n  serve stderr (last lines):\n  {tail}")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.terminate();
    }
}

// === impl Holders ===

impl Holders {
    /// Spawns holders for `services` services under `root`, each with at most
    /// [`HOLDER_FDS`] descriptors, and waits until every one has bound its share. Returns them
    /// with their summed counts, the largest share in descriptors, and the smallest
    /// RLIMIT_NOFILE a holder got.
    fn spawn(root: &Path, services: usize) -> anyhow::Result<(Holders, Counts, usize, u64)> {
        let exe = std::env::current_exe()?;
        let n = (services * FDS_PER_SERVICE).div_ceil(HOLDER_FDS).max(1);
        let per = services.div_ceil(n);
        let mut holders = Holders { children: vec![] };
        let (tx, rx) = mpsc::channel();
        for (i, from) in (0..services).step_by(per).enumerate() {
            let to = (from + per).min(services);
            let mut child = Command::new(&exe)
                .arg("hold")
                .arg("--dir")
                .arg(root)
                .args(["--from", &from.to_string(), "--to", &to.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("spawning a holder")?;
            let out = child.stdout.take().context("holder stdout")?;
            holders.children.push(child);
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                let read = BufReader::new(out).read_line(&mut line);
                let _ = tx.send((i, read.map(|_| line)));
            });
        }
        drop(tx);
        let deadline = Instant::now() + HOLD_TIMEOUT;
        let (mut total, mut most_fds, mut nofile) = (Counts::default(), 0, u64::MAX);
        for _ in 0..holders.children.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, line) = rx.recv_timeout(left).context("holders not ready in time")?;
            let line = line.with_context(|| format!("reading holder {i}"))?;
            // `ready <services> <live> <refused> <busy> <fds> <nofile>`
            let f: Vec<u64> = line
                .strip_prefix("ready ")
                .with_context(|| format!("holder {i} failed: {line:?}"))?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            ensure!(f.len() == 6, "holder {i}: unexpected {line:?}");
            let [s, l, r, b] = [f[0], f[1], f[2], f[3]].map(|n| n as usize);
            total = total.add(Counts::from_expect([s, l, r, b]));
            most_fds = most_fds.max(f[4] as usize);
            nofile = nofile.min(f[5]);
        }
        Ok((holders, total, most_fds, nofile))
    }

    /// CPU time all holders have used so far.
    fn cpu(&self) -> anyhow::Result<Duration> {
        self.children
            .iter()
            .map(|c| cpu_of(&c.id().to_string()))
            .sum()
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.children {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + STOP_GRACE;
        for c in &mut self.children {
            if wait_until(c, deadline).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// The idle benchmark: an empty root, `idle_secs` of 1 s scans after readiness.
pub(crate) fn idle(cfg: &Config) -> anyhow::Result<Idle> {
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let mut serve = Serve::start(&cfg.bin, dir.path(), "1s")?;
    let ready_after = serve.wait_ready()?;
    let end = Instant::now() + Duration::from_secs(cfg.idle_secs);
    let mut max_kib = 0;
    while Instant::now() < end {
        serve.alive()?;
        max_kib = max_kib.max(serve.status("VmRSS")?);
        std::thread::sleep(SAMPLE_EVERY);
    }
    let rss_kib = serve.status("VmRSS")?;
    let (hwm_kib, threads) = (serve.status("VmHWM")?, serve.status("Threads")?);
    Ok(Idle {
        rss_kib,
        max_kib: max_kib.max(rss_kib),
        hwm_kib,
        threads,
        ready_after,
        end: serve.stop(),
    })
}

/// Warm-up of a run of `secs`: the first 20 % or 60 s, whichever is larger, but never more
/// than half the run (a short run still keeps half its samples).
pub(crate) fn warmup_secs(secs: f64) -> f64 {
    (secs * 0.2).max(60.0).min(secs / 2.0)
}

/// The steady/soak benchmark: the 10,000-socket fixture laid out as `layout` says, 1 s scans,
/// `soak_secs` of sampling.
pub(crate) fn soak(cfg: &Config, layout: Layout) -> anyhow::Result<Soak> {
    let services = match layout {
        Layout::Grouped => cfg.services,
        Layout::Flat => cfg.flat_services,
    };
    let fx = scale::build(services, layout).context("building the socket tree")?;
    let drainer = fx.drain()?;
    let mut serve = Serve::start(&cfg.bin, fx.dir.path(), "1s")?;
    let ready_after = serve.wait_ready()?;
    serve.announce(ready_after);
    let expect = Counts::from_expect(fx.expect).add(OWN);
    let ready_kib = serve.status("VmRSS")?;
    let threads_start = serve.status("Threads")?;
    let window = Duration::from_secs(cfg.soak_secs);
    let warmup = warmup_secs(window.as_secs_f64());
    let progress_every = Duration::from_secs((cfg.soak_secs / 10).max(30));
    let t0 = Instant::now();
    let mut checks = Checks {
        expect,
        scan_ms: vec![],
        mismatches: vec![],
    };
    checks.run(&serve, 0.0)?;
    let (mut next_check, mut next_progress) = (t0 + CHECK_EVERY, t0 + progress_every);
    let (mut samples, mut next_sample, mut cpu_at_warmup) = (vec![], t0, None);
    while t0.elapsed() < window {
        serve.alive()?;
        let at = t0.elapsed().as_secs_f64();
        let kib = serve.status("VmRSS")?;
        samples.push((at, kib as f64));
        if at >= warmup && cpu_at_warmup.is_none() {
            cpu_at_warmup = Some((Instant::now(), serve.cpu()?));
        }
        let now = Instant::now();
        if now >= next_check {
            checks.run(&serve, at)?;
            next_check += CHECK_EVERY;
        }
        if now >= next_progress {
            println!(
                "  … {at:.0}/{} s: RSS {:.1} MiB, {} threads, {} scans checked, {} mismatched",
                cfg.soak_secs,
                kib as f64 / 1024.0,
                serve.status("Threads")?,
                checks.scan_ms.len(),
                checks.mismatches.len()
            );
            next_progress += progress_every;
        }
        next_sample += SAMPLE_EVERY;
        std::thread::sleep(next_sample.saturating_duration_since(Instant::now()));
    }
    checks.run(&serve, t0.elapsed().as_secs_f64())?;
    let cpu_ms_per_s = match cpu_at_warmup {
        Some((t, c)) => ms(serve.cpu()?.saturating_sub(c)) / t.elapsed().as_secs_f64(),
        None => 0.0,
    };
    let hwm_kib = serve.status("VmHWM")?;
    let threads_end = serve.status("Threads")?;
    let end = serve.stop();
    let drained = drainer.stop()?;
    let max_sample_kib = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let after: Vec<(f64, f64)> = samples.into_iter().filter(|s| s.0 >= warmup).collect();
    ensure!(after.len() >= 2, "too few samples after warm-up");
    let mib: Vec<(f64, f64)> = after.iter().map(|&(t, k)| (t, k / 1024.0)).collect();
    Ok(Soak {
        expect,
        ready_after,
        ready_kib,
        warmup_secs: warmup,
        first_last_kib: (after[0].1, after[after.len() - 1].1),
        slope: slope_per_min(&mib),
        rss: Stats::new(after.iter().map(|s| s.1).collect()),
        hwm_kib,
        max_sample_kib,
        threads: (threads_start, threads_end),
        scan_ms: Stats::new(checks.scan_ms),
        mismatches: checks.mismatches,
        drained,
        cpu_ms_per_s,
        end,
    })
}

/// The 100,000-socket benchmark: holders bind the root, `serve` (hourly scans) gets
/// `big_scans` timed `router.scan` calls.
pub(crate) fn big(cfg: &Config) -> anyhow::Result<Big> {
    ensure!(
        cfg.big_sockets.is_multiple_of(10) && cfg.big_sockets > 0,
        "--big-sockets must be a positive multiple of 10 (ten sockets per service)"
    );
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let t0 = Instant::now();
    let (holders, held, most_fds, holder_nofile) =
        Holders::spawn(dir.path(), cfg.big_sockets / 10)?;
    let setup = t0.elapsed();
    let mut serve = Serve::start(&cfg.bin, dir.path(), "1h")?;
    let ready_after = serve.wait_ready()?;
    serve.announce(ready_after);
    let expect = held.add(OWN);
    let (mut duration, mut wall, mut cpu, mut mismatches) = (vec![], vec![], vec![], vec![]);
    let mut holder_cpu = vec![];
    // Untimed: right after readiness the router may still be busy (watching every directory
    // and listing them again), and `router.scan` would wait for that.
    let t = Instant::now();
    let (got, first_ms) = serve.scan()?;
    let mut calls = vec![(ms(t.elapsed()), first_ms as f64)];
    if got != expect {
        mismatches.push(format!("untimed first scan: {got}"));
    }
    for i in 0..cfg.big_scans {
        let (c0, h0) = (serve.cpu()?, holders.cpu()?);
        let t = Instant::now();
        let (got, ms_) = serve.scan()?;
        wall.push(ms(t.elapsed()));
        cpu.push(ms(serve.cpu()?.saturating_sub(c0)));
        holder_cpu.push(ms(holders.cpu()?.saturating_sub(h0)));
        duration.push(ms_ as f64);
        if got != expect {
            mismatches.push(format!("scan {}: {got}", i + 1));
        }
    }
    let rss_kib = serve.status("VmRSS")?;
    let (hwm_kib, threads) = (serve.status("VmHWM")?, serve.status("Threads")?);
    let end = serve.stop();
    let n_holders = holders.children.len();
    drop(holders);
    calls.extend(wall.iter().copied().zip(duration.iter().copied()));
    Ok(Big {
        expect,
        holders: (n_holders, most_fds),
        holder_nofile,
        setup,
        ready_after,
        duration_ms: Stats::new(duration),
        wall_ms: Stats::new(wall),
        cpu_ms: Stats::new(cpu),
        holder_cpu_ms: Stats::new(holder_cpu),
        calls,
        mismatches,
        rss_kib,
        hwm_kib,
        threads,
        end,
    })
}

/// The hidden `hold` command: binds services `from..to` under `dir`, drains the live
/// listeners, prints `ready <services> <live> <refused> <busy> <fds> <nofile>` and holds
/// everything until stdin closes.
pub(crate) fn hold(args: &HoldArgs) -> anyhow::Result<()> {
    ensure!(args.from <= args.to, "--from after --to");
    // Room for the sockets, the accepted connections being closed, and a little slack.
    let need = (args.to - args.from) * FDS_PER_SERVICE + 256;
    let (nofile, err) = scale::raise_nofile(need as u64);
    ensure!(
        nofile as usize >= need,
        "RLIMIT_NOFILE is {nofile} ({err:?}); services {}..{} need {need}",
        args.from,
        args.to
    );
    let held = scale::bind_services(&args.dir, args.from..args.to)?;
    let fds = held.live.len() + held.other.len();
    let [s, l, r, b] = held.counts;
    let drainer = Drainer::start(held.live.into())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {s} {l} {r} {b} {fds} {nofile}")?;
    out.flush()?;
    // The parent never writes: this returns when it closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drainer.stop()?;
    Ok(())
}

/// One JSON-RPC call as `POST /rpc` over HTTP/1.1 on the Unix socket `sock`; the `result`, or
/// the `error` as an error.
fn rpc_call(sock: &Path, method: &str, params: Value, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = UnixStream::connect(sock).with_context(|| format!("connect {}", sock.display()))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "POST /rpc HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let (status, answer) = read_response(&mut s, deadline)?;
    ensure!(
        status == 200,
        "{method}: HTTP {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    let v: Value = serde_json::from_slice(&answer).with_context(|| format!("{method}: answer"))?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    v.get("result")
        .cloned()
        .with_context(|| format!("{method}: no result in {v}"))
}

/// Reads one HTTP/1.1 response: status and body (by `content-length`, else to EOF; de-chunked
/// if chunked).
fn read_response(s: &mut UnixStream, deadline: Instant) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let read_more = |s: &mut UnixStream, buf: &mut Vec<u8>| -> anyhow::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(!left.is_zero(), "no full answer in time");
        s.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        ensure!(read_more(s, &mut buf)? > 0, "connection closed in the head");
    };
    let head = std::str::from_utf8(&buf[..head_end])?.to_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let (mut length, mut chunked) = (None, false);
    for l in lines {
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let start = head_end + 4;
    match length {
        Some(n) if !chunked => {
            while buf.len() < start + n {
                ensure!(read_more(s, &mut buf)? > 0, "connection closed in the body");
            }
            Ok((status, buf[start..start + n].to_vec()))
        }
        _ => {
            // `connection: close` was asked for: the answer ends at EOF.
            while read_more(s, &mut buf)? > 0 {}
            let body = &buf[start..];
            Ok((
                status,
                if chunked {
                    dechunk(body)?
                } else {
                    body.to_vec()
                },
            ))
        }
    }
}

/// Decodes a complete chunked body (extensions and trailers ignored).
fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size = std::str::from_utf8(&b[..eol])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(b.len() >= size + 2, "short chunk");
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_a_fifth_or_a_minute_at_most_half() {
        assert_eq!(warmup_secs(1800.0), 360.0);
        assert_eq!(warmup_secs(120.0), 60.0);
        assert_eq!(warmup_secs(60.0), 30.0);
    }

    #[test]
    fn dechunks() {
        let body = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        assert_eq!(dechunk(body).unwrap(), b"Wikipedia");
    }
}
