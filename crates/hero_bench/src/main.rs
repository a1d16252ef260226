//! `hero_bench`: the benchmarks behind `make bench`.
//!
//! 1. **Scale.** A temporary root of 1,000 services × 10 sockets (8,000 live, 1,000 refused,
//!    1,000 busy) held open by this process, scanned in-process with [`hero_router::Scanner`]
//!    (cold and warm) and by the one-shot `hero_router scan --json` in a child process.
//! 2. **Discovery latency.** A scanner with the directory watch on and a 60 s scan interval;
//!    the time from `bind` returning to the `SocketChanged{to: "live"}` event, for sockets in
//!    watched directories and in brand-new directories.
//!
//! Everything lives in temporary directories that are removed on exit; no network is used.
#![forbid(unsafe_code)]

mod latency;
mod measure;
mod scale;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use hero_router::ScannerConfig;
use hero_router::scanner::state::ReapPolicy;

use measure::status_kib;

/// Scan target: wall ms (median).
const TARGET_WALL_MS: f64 = 1500.0;
/// Scan target: CPU ms.
const TARGET_CPU_MS: f64 = 1000.0;
/// Discovery target: p99 ms.
const TARGET_P99_MS: f64 = 50.0;

/// Benchmarks of hero_router: scan scale and discovery latency.
#[derive(Debug, Parser)]
struct Args {
    /// The hero_router binary for the CLI runs (default: next to this binary).
    #[arg(long, env = "HERO_ROUTER_BIN")]
    router_bin: Option<PathBuf>,
    /// Services of ten sockets each in the scale root.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// In-process scan repetitions.
    #[arg(long, default_value_t = 7)]
    scans: usize,
    /// Timed CLI runs.
    #[arg(long, default_value_t = 5)]
    cli_runs: usize,
    /// Sockets bound in watched directories.
    #[arg(long, default_value_t = 500)]
    binds: usize,
    /// Sockets bound in brand-new directories.
    #[arg(long, default_value_t = 100)]
    new_dirs: usize,
}

/// One result: printed when measured, and again as a row of the summary table.
struct Row {
    /// What was measured.
    name: String,
    /// The numbers.
    result: String,
    /// The target and whether it was met.
    target: String,
}

/// Prints a result as it is measured and keeps it for the summary.
fn report(rows: &mut Vec<Row>, row: Row) {
    println!("{}: {} [{}]", row.name, row.result, row.target);
    rows.push(row);
}

/// Runs both benchmarks and prints the summary table.
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let machine = machine();
    println!("hero_bench on {machine}\n");
    let mut rows = Vec::new();
    run_scale(&args, &runtime, &mut rows)?;
    run_latency(&args, &runtime, &mut rows)?;
    println!("== summary (for BENCHMARKS.md) ==\n");
    println!("Machine: {machine}. Command: `make bench`.\n");
    println!("| Benchmark | Result | Target |\n|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} |", r.name, r.result, r.target);
    }
    Ok(())
}

/// The scale benchmark: build the tree, scan it in-process, then with the CLI.
fn run_scale(args: &Args, rt: &tokio::runtime::Runtime, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let bin = match &args.router_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("hero_router"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "no hero_router at {}; pass --router-bin",
        bin.display()
    );
    println!("== scale: {} services × 10 sockets ==", args.services);
    let fx = scale::build(args.services).context("building the socket tree")?;
    let [services, live, refused, busy] = fx.expect;
    let n = live + refused + busy;
    let setup_kib = status_kib("self", "VmHWM").unwrap_or(0);
    let limit = fx
        .nofile_err
        .map_or(String::new(), |e| format!(" (65536 refused: {e})"));
    println!(
        "setup: {n} sockets ({live} live, {refused} refused, {busy} busy) in {services} dirs, \
         {:.0} ms, RLIMIT_NOFILE {}{limit}",
        measure::ms(fx.setup),
        fx.nofile,
    );
    let (cold, warm) = rt.block_on(scale::in_process(&fx, args.scans))?;
    let peak_kib = status_kib("self", "VmHWM").unwrap_or(0);
    println!("classification (every in-process scan): OK");
    for (name, r) in [("cold: new Scanner", cold), ("warm: 2nd scan", warm)] {
        let name = format!(
            "Full scan of {n} sockets, in-process, {name} (n={})",
            r.wall.len()
        );
        report(rows, scan_row(name, &r));
    }
    let row = Row {
        name: "Bench process peak RSS (fixture + in-process scans)".to_owned(),
        result: format!(
            "{:.1} MiB ({:.1} MiB after setup)",
            peak_kib as f64 / 1024.0,
            setup_kib as f64 / 1024.0
        ),
        target: "—".to_owned(),
    };
    report(rows, row);
    let cli = scale::cli(&fx, &bin, args.cli_runs)?;
    println!("classification (hero_router scan --json): OK");
    let name = format!(
        "`hero_router scan --json` of {n} sockets (n={})",
        cli.wall.len()
    );
    report(rows, scan_row(name, &cli));
    println!();
    Ok(())
}

/// The discovery-latency benchmark, both variants.
fn run_latency(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    println!("== discovery latency (watch on, scan interval 60 s) ==");
    let (existing, fresh) = rt.block_on(latency::run(args.binds, args.new_dirs))?;
    for (name, v) in [("watched dir", existing), ("new dir", fresh)] {
        let l = &v.latency;
        let row = Row {
            name: format!("Discovery latency, new socket in a {name} (n={})", v.runs),
            result: format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, misses {}, first \
                 probe refused {}",
                l.pct(50.0),
                l.pct(90.0),
                l.pct(99.0),
                l.max(),
                v.misses,
                v.via_refused
            ),
            target: verdict("p99 ≤ 50 ms", v.misses == 0 && l.pct(99.0) <= TARGET_P99_MS),
        };
        report(rows, row);
        v.miss_notes.iter().for_each(|n| println!("  missed: {n}"));
    }
    println!();
    Ok(())
}

/// `PASS`/`MISS` after the target.
fn verdict(target: &str, ok: bool) -> String {
    format!("{target}: {}", if ok { "PASS" } else { "MISS" })
}

/// The result row of a set of scans, against the scan targets.
fn scan_row(name: String, r: &scale::Runs) -> Row {
    let (w, c) = (&r.wall, &r.cpu);
    let mut result = format!(
        "wall median {:.0} ms (min {:.0}, max {:.0}), CPU median {:.0} ms (min {:.0}, max {:.0})",
        w.median(),
        w.min(),
        w.max(),
        c.median(),
        c.min(),
        c.max()
    );
    if r.rss.len() > 0 {
        result += &format!(", max RSS {:.1} MiB", r.rss.median() / 1024.0);
    }
    let ok = w.median() <= TARGET_WALL_MS && c.median() <= TARGET_CPU_MS;
    Row {
        name,
        result,
        target: verdict("≤ 1.5 s wall, ≤ 1 CPU-s", ok),
    }
}

/// The scanner settings of both benchmarks: 1 s probe timeout, 16 probe batches at once,
/// reaping off, and a 60 s scan interval so only the watch (if on) discovers quickly.
pub(crate) fn bench_config(root: &Path, watch: bool) -> ScannerConfig {
    ScannerConfig {
        root: root.to_path_buf(),
        scan_interval: Duration::from_secs(60),
        probe_timeout: Duration::from_secs(1),
        reap: ReapPolicy {
            enabled: false,
            stale_after: 3,
            grace: Duration::from_secs(10),
        },
        probe_concurrency: 16,
        hero_proc_method: "service.status_all".to_owned(),
        hero_proc_timeout: Duration::from_secs(1),
        watch,
    }
}

/// `N CPUs (model), Linux <release>`.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::measure::Stats;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Stats::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (s.pct(50.0), s.pct(99.0), s.min(), s.max()),
            (50.0, 99.0, 1.0, 100.0)
        );
        assert_eq!(Stats::new(vec![]).pct(99.0), 0.0);
    }
}
