//! The scale benchmark: a root of 10 sockets per service (8 live, 1 refused, 1 busy), scanned
//! in-process and by the one-shot CLI while this process holds every listener.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use hero_router::scanner::state::ProbeCause;
use hero_router::{ScanSummary, Scanner};
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

/// The socket tree and every fd that keeps it in shape.
pub(crate) struct Fixture {
    /// The temporary root; removed on drop.
    pub(crate) dir: tempfile::TempDir,
    /// Listeners and the clients that fill the busy backlogs.
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

/// Raises RLIMIT_NOFILE, hard limit included (root with CAP_SYS_RESOURCE may), to `want`, else
/// the soft limit to the hard one. Returns the soft limit in effect and why `want` failed.
fn raise_nofile(want: u64) -> (u64, Option<Errno>) {
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

/// Builds `services` service directories of ten sockets each.
pub(crate) fn build(services: usize) -> anyhow::Result<Fixture> {
    let started = Instant::now();
    let (nofile, nofile_err) = raise_nofile(65_536);
    ensure!(
        nofile as usize > services * 12 + 256,
        "RLIMIT_NOFILE is {nofile}; {services} services need about {}",
        services * 12 + 256
    );
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let mut fds = Vec::with_capacity(services * 11);
    let mut expect = [services, 0, 0, 0];
    for s in 0..services {
        let svc = dir.path().join(format!("svc_{s:04}"));
        std::fs::create_dir(&svc)?;
        for (k, kind) in KINDS.iter().enumerate() {
            let path = svc.join(format!("{kind}.sock"));
            let slot = (k + s) % KINDS.len();
            match slot {
                8 => drop(listener(&path, 1)?),
                9 => busy(&path, &mut fds)?,
                _ => fds.push(listener(&path, LIVE_BACKLOG)?),
            }
            expect[match slot {
                8 => 2,
                9 => 3,
                _ => 1,
            }] += 1;
        }
    }
    Ok(Fixture {
        dir,
        _fds: fds,
        expect,
        setup: started.elapsed(),
        nofile,
        nofile_err,
    })
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
