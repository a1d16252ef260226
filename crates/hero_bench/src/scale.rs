//! The scale benchmark: a root of 10 sockets per service (8 live, 1 refused, 1 busy), scanned
//! in-process and by the one-shot CLI while this process holds every listener.
//!
//! The same service layout serves the memory benchmark ([`crate::memory`]): [`bind_services`]
//! builds any range of services (the 100,000-socket root is spread over holder processes that
//! way), and a [`Drainer`] accepts and closes what probes leave in the live listeners' queues.
//! The memory benchmark also lays the same states out flat ([`Layout::Flat`]): one `rpc.sock`
//! per service, so every socket is a service of its own.

use std::ops::Range;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use hero_router::ProbeCause;
use hero_router::{ScanSummary, Scanner};
use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::measure::{Stats, cpu_children, cpu_self, ms};

/// Socket kinds of every service; the slot `(kind + service) % 10` picks the state.
const KINDS: [&str; 10] = [
    "rpc", "admin", "web_0", "web_1", "web_2", "web_3", "web_4", "web_5", "web_6", "web_7",
];
/// Backlog of a live listener: room for many probes that nobody accepts.
const LIVE_BACKLOG: i32 = 1024;
/// GNU time, for the child's max RSS (rustix 1 has no `getrusage`); skipped when missing.
const GNU_TIME: &str = "/usr/bin/time";
/// How often a [`Drainer`] looks at its stop flag when nothing arrives.
const DRAIN_TICK: Duration = Duration::from_millis(100);

/// How a root's sockets are spread over its services. Either way, of every ten sockets 8 are
/// live, 1 refused and 1 busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `svc_NNNN/` with ten sockets each ([`bind_services`]).
    Grouped,
    /// `svc_NNNNN/rpc.sock`: one socket per service ([`bind_flat`]).
    Flat,
}

/// The socket tree and every fd that keeps it in shape.
pub(crate) struct Fixture {
    /// The temporary root; removed on drop.
    pub(crate) dir: tempfile::TempDir,
    /// The live listeners, apart from the rest so a [`Drainer`] can share them.
    live: Arc<[OwnedFd]>,
    /// The busy listeners and the clients that fill their backlogs.
    _fds: Vec<OwnedFd>,
    /// Expected `[services, live, refused, busy]`.
    pub(crate) expect: [usize; 4],
    /// Time to build it.
    pub(crate) setup: Duration,
    /// The RLIMIT_NOFILE soft limit in effect.
    pub(crate) nofile: u64,
    /// Why it could not be raised to 65536, if it could not.
    pub(crate) nofile_err: Option<Errno>,
}

/// Results of one way of scanning, over several runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    /// Wall ms per scan.
    pub(crate) wall: Stats,
    /// CPU ms (user + sys) per scan.
    pub(crate) cpu: Stats,
    /// Max RSS per run in KiB (children only).
    pub(crate) rss: Stats,
}

/// The sockets of a range of services, as [`bind_services`] leaves them.
pub(crate) struct Held {
    /// The live listeners (8 per service).
    pub(crate) live: Vec<OwnedFd>,
    /// The busy listeners and the clients that fill their backlogs (2 fds per service).
    pub(crate) other: Vec<OwnedFd>,
    /// `[services, live, refused, busy]`.
    pub(crate) counts: [usize; 4],
}

/// Accepts and closes every connection that reaches a set of live listeners, on a thread of
/// its own, until dropped.
///
/// Probes connect and never speak, so a listener nobody accepts on fills its queue after
/// `backlog` probes and then counts as busy: a few minutes of 1 s scans would change the table
/// under a soak. Only live listeners are drained; busy ones must stay full.
pub(crate) struct Drainer {
    /// Set to end the thread.
    stop: Arc<AtomicBool>,
    /// The thread; it returns how many connections it accepted.
    thread: Option<JoinHandle<anyhow::Result<u64>>>,
}

/// Raises RLIMIT_NOFILE, hard limit included (root with CAP_SYS_RESOURCE may), to `want`, else
/// the soft limit to the hard one. Returns the soft limit in effect and why `want` failed.
pub(crate) fn raise_nofile(want: u64) -> (u64, Option<Errno>) {
    let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
    let set = |soft, hard| {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
    };
    let err = set(want, hard.max(want)).err();
    if err.is_some() {
        let _ = set(hard.min(want), hard);
    }
    (getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX), err)
}

/// A bound, listening stream socket at `path`.
fn listener(path: &Path, backlog: i32) -> anyhow::Result<OwnedFd> {
    let fd = unix_socket(SocketFlags::CLOEXEC)?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)
        .with_context(|| format!("bind {}", path.display()))?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

fn unix_socket(flags: SocketFlags) -> anyhow::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        flags,
        None,
    )?)
}

/// A listener with backlog 0 whose queue is filled by non-blocking connects until `EAGAIN`;
/// the listener and the clients go to `fds`, which must stay open.
fn busy(path: &Path, fds: &mut Vec<OwnedFd>) -> anyhow::Result<()> {
    fds.push(listener(path, 0)?);
    let addr = SocketAddrUnix::new(path)?;
    for _ in 0..16 {
        let client = unix_socket(SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
        match rustix::net::connect(&client, &addr) {
            Ok(()) => fds.push(client),
            Err(Errno::AGAIN) => return Ok(()),
            Err(e) => bail!("filling {}: {e}", path.display()),
        }
    }
    bail!("backlog of {} never filled", path.display())
}

/// Builds `services` service directories laid out as `layout` says: ten sockets each
/// ([`Layout::Grouped`]) or one ([`Layout::Flat`]).
pub(crate) fn build(services: usize, layout: Layout) -> anyhow::Result<Fixture> {
    let started = Instant::now();
    let (nofile, nofile_err) = raise_nofile(65_536);
    let need = match layout {
        Layout::Grouped => services * 12 + 256,
        Layout::Flat => services * 12 / 10 + 256,
    };
    ensure!(
        nofile as usize > need,
        "RLIMIT_NOFILE is {nofile}; {services} services need about {need}"
    );
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let held = match layout {
        Layout::Grouped => bind_services(dir.path(), 0..services)?,
        Layout::Flat => bind_flat(dir.path(), 0..services)?,
    };
    Ok(Fixture {
        dir,
        live: held.live.into(),
        _fds: held.other,
        expect: held.counts,
        setup: started.elapsed(),
        nofile,
        nofile_err,
    })
}

/// Creates `root/svc_NNNN/` for every service in `services`, with ten sockets each: 8 live, 1
/// refused (bound, then closed: it costs no fd) and 1 busy. Which kind gets which state
/// rotates with the service number.
pub(crate) fn bind_services(root: &Path, services: Range<usize>) -> anyhow::Result<Held> {
    let n = services.len();
    let mut held = Held {
        live: Vec::with_capacity(n * 8),
        other: Vec::with_capacity(n * 2),
        counts: [n, 0, 0, 0],
    };
    for s in services {
        let svc = root.join(format!("svc_{s:04}"));
        std::fs::create_dir(&svc)?;
        for (k, kind) in KINDS.iter().enumerate() {
            let path = svc.join(format!("{kind}.sock"));
            let slot = (k + s) % KINDS.len();
            match slot {
                8 => drop(listener(&path, 1)?),
                9 => busy(&path, &mut held.other)?,
                _ => held.live.push(listener(&path, LIVE_BACKLOG)?),
            }
            held.counts[match slot {
                8 => 2,
                9 => 3,
                _ => 1,
            }] += 1;
        }
    }
    Ok(held)
}

/// Creates `root/svc_NNNNN/rpc.sock` for every service in `services`: one socket each, the
/// service number modulo ten picking its state as [`bind_services`] picks a kind's (8 and 9:
/// refused and busy, the rest live).
pub(crate) fn bind_flat(root: &Path, services: Range<usize>) -> anyhow::Result<Held> {
    let n = services.len();
    let mut held = Held {
        live: Vec::with_capacity(n),
        other: Vec::with_capacity(n / 5 + 1),
        counts: [n, 0, 0, 0],
    };
    for s in services {
        let svc = root.join(format!("svc_{s:05}"));
        std::fs::create_dir(&svc)?;
        let path = svc.join("rpc.sock");
        let state = match s % 10 {
            8 => {
                drop(listener(&path, 1)?);
                2
            }
            9 => {
                busy(&path, &mut held.other)?;
                3
            }
            _ => {
                held.live.push(listener(&path, LIVE_BACKLOG)?);
                1
            }
        };
        held.counts[state] += 1;
    }
    Ok(held)
}

// === impl Fixture ===

impl Fixture {
    /// Starts draining the live listeners (see [`Drainer`]).
    pub(crate) fn drain(&self) -> anyhow::Result<Drainer> {
        Drainer::start(self.live.clone())
    }
}

// === impl Drainer ===

impl Drainer {
    /// Makes `listeners` non-blocking and drains them on a new thread.
    pub(crate) fn start(listeners: Arc<[OwnedFd]>) -> anyhow::Result<Drainer> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for (i, l) in listeners.iter().enumerate() {
            rustix::io::ioctl_fionbio(l, true)?;
            epoll::add(
                &ep,
                l,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("drainer".to_owned())
            .spawn(move || drain_loop(&ep, &listeners, &flag))?;
        Ok(Drainer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread; returns how many connections it accepted.
    pub(crate) fn stop(mut self) -> anyhow::Result<u64> {
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("drainer thread panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The drainer thread: wait for readable listeners, accept until `EAGAIN`, close at once.
fn drain_loop(ep: &OwnedFd, listeners: &[OwnedFd], stop: &AtomicBool) -> anyhow::Result<u64> {
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: DRAIN_TICK.as_nanos() as _,
    };
    let mut events = Vec::with_capacity(1024);
    let mut accepted = 0;
    while !stop.load(Ordering::Relaxed) {
        events.clear();
        match epoll::wait(ep, spare_capacity(&mut events), Some(&tick)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => bail!("epoll_wait: {e}"),
        }
        for ev in &events {
            let data = ev.data;
            let l = &listeners[data.u64() as usize];
            loop {
                match rustix::net::accept_with(l, SocketFlags::CLOEXEC) {
                    Ok(conn) => {
                        drop(conn);
                        accepted += 1;
                    }
                    Err(Errno::AGAIN) => break,
                    // A client gone before the accept, or a signal: the next one may be fine.
                    Err(Errno::INTR | Errno::CONNABORTED) => {}
                    Err(e) => bail!("accept: {e}"),
                }
            }
        }
    }
    Ok(accepted)
}

/// Checks one scan's counts against the fixture.
pub(crate) fn check(fx: &Fixture, got: [usize; 4]) -> anyhow::Result<()> {
    ensure!(
        got == fx.expect,
        "classification mismatch: [services, live, refused, busy] = {got:?}, expected {:?}",
        fx.expect
    );
    Ok(())
}

fn counts(s: &ScanSummary) -> [usize; 4] {
    [s.services, s.live, s.refused, s.busy]
}

/// `runs` times: a fresh scanner's first full scan (cold: every socket is new), then a second
/// full scan on the same scanner (warm: nothing changed). Returns (cold, warm).
pub(crate) async fn in_process(fx: &Fixture, runs: usize) -> anyhow::Result<(Runs, Runs)> {
    let (mut cold, mut warm) = ((vec![], vec![]), (vec![], vec![]));
    for _ in 0..runs {
        let (mut scanner, _handle) = Scanner::new(crate::bench_config(fx.dir.path(), false));
        for (wall, cpu) in [&mut cold, &mut warm] {
            let (t0, c0) = (Instant::now(), cpu_self());
            let summary = scanner.scan_full(ProbeCause::Manual).await;
            wall.push(ms(t0.elapsed()));
            cpu.push(ms(cpu_self() - c0));
            check(fx, counts(&summary))?;
        }
    }
    let runs = |(w, c): (Vec<f64>, Vec<f64>)| Runs {
        wall: Stats::new(w),
        cpu: Stats::new(c),
        rss: Stats::default(),
    };
    Ok((runs(cold), runs(warm)))
}

/// One `hero_router scan --socket-dir ROOT --json`, stdout to `out`; returns the wall time
/// and, when GNU time is installed, the child's max RSS in KiB.
fn run_cli(bin: &Path, root: &Path, out: Stdio) -> anyhow::Result<(Duration, Option<u64>)> {
    let rss_file = tempfile::NamedTempFile::new()?;
    let gnu_time = Path::new(GNU_TIME).is_file();
    let mut cmd = Command::new(if gnu_time { Path::new(GNU_TIME) } else { bin });
    if gnu_time {
        cmd.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(rss_file.path())
            .arg(bin);
    }
    cmd.arg("scan").arg("--socket-dir").arg(root).arg("--json");
    let t0 = Instant::now();
    let status = cmd.stdin(Stdio::null()).stdout(out).status()?;
    let wall = t0.elapsed();
    ensure!(status.success(), "{} scan failed: {status}", bin.display());
    let rss = std::fs::read_to_string(rss_file.path())?;
    Ok((wall, rss.lines().last().and_then(|l| l.trim().parse().ok())))
}

/// Runs the CLI once to check its classification, then `runs` timed times.
pub(crate) fn cli(fx: &Fixture, bin: &Path, runs: usize) -> anyhow::Result<Runs> {
    let out = tempfile::NamedTempFile::new()?;
    run_cli(bin, fx.dir.path(), Stdio::from(out.reopen()?))?;
    let report: serde_json::Value =
        serde_json::from_reader(std::io::BufReader::new(out.reopen()?))?;
    let services = report["services"].as_array().map_or(&[][..], Vec::as_slice);
    let mut got = [services.len(), 0, 0, 0];
    for sock in services
        .iter()
        .flat_map(|s| s["sockets"].as_array().into_iter().flatten())
    {
        if let Some(i) = ["live", "refused", "busy"]
            .iter()
            .position(|st| sock["state"] == *st)
        {
            got[i + 1] += 1;
        }
    }
    check(fx, got).context("hero_router scan --json")?;
    let (mut wall, mut cpu, mut rss) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let c0 = cpu_children()?;
        let (w, hwm) = run_cli(bin, fx.dir.path(), Stdio::null())?;
        cpu.push(ms(cpu_children()? - c0));
        wall.push(ms(w));
        rss.extend(hwm.map(|k| k as f64));
    }
    Ok(Runs {
        wall: Stats::new(wall),
        cpu: Stats::new(cpu),
        rss: Stats::new(rss),
    })
}
