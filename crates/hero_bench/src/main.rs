//! `hero_bench`: the benchmarks behind `make bench`.
//!
//! 1. **Scale.** A temporary root of 1,000 services × 10 sockets (8,000 live, 1,000 refused,
//!    1,000 busy) held open by this process, scanned in-process with [`hero_router::Scanner`]
//!    (cold and warm) and by the one-shot `hero_router scan --json` in a child process.
//! 2. **Discovery latency.** A scanner with the directory watch on and a 60 s scan interval;
//!    the time from `bind` returning to the `SocketChanged{to: "live"}` event, for sockets in
//!    watched directories and in brand-new directories.
//! 3. **Memory** ([`memory`]). The real `hero_router serve` as a child process, RSS from its
//!    `/proc/<pid>/status`: idle on an empty root; steady, peak and the growth trend over a soak
//!    of 1 s scans at 10,000 sockets, as 1,000 services of ten sockets and as 10,000 services
//!    of one; and 100,000 sockets (held by helper processes) scanned by `router.scan`.
//! 4. **Catalog** ([`catalog`]). The real `hero_router serve` on a root of 1,000 example
//!    services (served in-process), each with its own 20 KB OpenRPC document: the time until
//!    every spec is fetched and valid, `serve`'s CPU and RSS then, and the refetch of everything
//!    one `router.scan` triggers.
//!
//! `--only` picks parts; `--soak-secs 1800` is the 30-minute soak. The hidden `hold` command is
//! the 100,000-socket benchmark's helper process. Everything lives in temporary directories
//! that are removed on exit; no network is used.
#![forbid(unsafe_code)]

mod catalog;
mod latency;
mod measure;
mod memory;
mod scale;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use hero_router::ReapPolicy;
use hero_router::ScannerConfig;

use measure::status_kib;
use scale::Layout;

/// Scan target: wall ms (median).
const TARGET_WALL_MS: f64 = 1500.0;
/// Scan target: CPU ms.
const TARGET_CPU_MS: f64 = 1000.0;
/// Discovery target: p99 ms.
const TARGET_P99_MS: f64 = 50.0;
/// Memory target: idle RSS on an empty root, MiB.
const TARGET_IDLE_MIB: f64 = 12.0;
/// Memory target: steady RSS at 10,000 sockets, MiB.
const TARGET_STEADY_MIB: f64 = 40.0;
/// Memory target: peak RSS (a full scan included) at 10,000 sockets, MiB.
const TARGET_PEAK_MIB: f64 = 50.0;
/// Memory target: RSS growth after warm-up, MiB per minute.
const TARGET_SLOPE_MIB_MIN: f64 = 0.1;
/// Scan target at 100,000 sockets: wall ms of `router.scan`.
const TARGET_BIG_SCAN_MS: f64 = 2000.0;
/// Catalog target: spawn to every service's spec fetched and `ok`, ms.
const TARGET_CATALOG_FILL_MS: f64 = 5000.0;
/// Catalog target: `serve`'s peak RSS with the catalog full, MiB.
const TARGET_CATALOG_PEAK_MIB: f64 = 120.0;

/// Benchmarks of hero_router: scan scale, discovery latency and memory.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    /// Internal commands.
    #[command(subcommand)]
    command: Option<Internal>,
    /// The hero_router binary for the CLI and `serve` runs (default: next to this binary).
    #[arg(long, env = "HERO_ROUTER_BIN")]
    router_bin: Option<PathBuf>,
    /// Parts to run, comma-separated (default: all). `memory` is idle, soak, flat and big.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Services of ten sockets each in the scale root and the soak root.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Services of one socket each in the flat soak root.
    #[arg(long, default_value_t = 10_000)]
    flat_services: usize,
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
    /// Seconds the idle router scans an empty root before it is measured.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Length of the 10,000-socket run (steady, peak, slope); 1800 for the 30-minute soak.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..))]
    soak_secs: u64,
    /// Sockets in the big root (a multiple of ten: ten per service).
    #[arg(long, default_value_t = 100_000)]
    big_sockets: usize,
    /// Timed `router.scan` calls on the big root.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    big_scans: u64,
    /// Example services, each with its own 20 KB OpenRPC document, in the catalog root.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    catalog_services: u64,
    /// Of the catalog's services, the percentage that answer as Python's `http.server` does
    /// (a silent close after a `Connection: close` request).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    catalog_silent_percent: u64,
}

/// The parts `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Scan scale, in-process and CLI.
    Scale,
    /// Discovery latency.
    Latency,
    /// Idle, soak, flat and big.
    Memory,
    /// `serve` on an empty root.
    Idle,
    /// `serve` at 10,000 sockets in 1,000 services: steady and peak RSS, growth over
    /// `--soak-secs`.
    Soak,
    /// The same as `soak` with one socket per service (`--flat-services` services).
    Flat,
    /// `serve` at `--big-sockets`: `router.scan` time, RSS.
    Big,
    /// `serve` fetching the OpenRPC documents of `--catalog-services` services.
    Catalog,
}

/// Commands `hero_bench` runs itself with.
#[derive(Debug, Subcommand)]
enum Internal {
    /// Bind and hold a range of services until stdin closes (the big benchmark's helper).
    #[command(hide = true)]
    Hold(memory::HoldArgs),
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

/// Runs the benchmarks `--only` picks (all by default) and prints the summary table.
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Internal::Hold(hold)) = &args.command {
        return memory::hold(hold);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let machine = machine();
    println!("hero_bench on {machine}\n");
    let mut rows = Vec::new();
    if args.wants(Part::Scale) {
        run_scale(&args, &runtime, &mut rows)?;
    }
    if args.wants(Part::Latency) {
        run_latency(&args, &runtime, &mut rows)?;
    }
    let cfg = memory::Config {
        bin: router_bin(&args)?,
        idle_secs: args.idle_secs,
        services: args.services,
        flat_services: args.flat_services,
        soak_secs: args.soak_secs,
        big_sockets: args.big_sockets,
        big_scans: args.big_scans as usize,
    };
    if args.wants(Part::Idle) {
        run_idle(&cfg, &mut rows)?;
    }
    if args.wants(Part::Soak) {
        run_soak(&cfg, Layout::Grouped, &mut rows)?;
    }
    if args.wants(Part::Flat) {
        run_soak(&cfg, Layout::Flat, &mut rows)?;
    }
    if args.wants(Part::Big) {
        run_big(&cfg, &mut rows)?;
    }
    if args.wants(Part::Catalog) {
        let cfg = catalog::Config {
            bin: cfg.bin.clone(),
            services: args.catalog_services as usize,
            silent_percent: args.catalog_silent_percent as usize,
        };
        run_catalog(&cfg, &runtime, &mut rows)?;
    }
    let command = match extra_args().as_slice() {
        [] => "make bench".to_owned(),
        extra => format!("bash scripts/bench.sh {}", extra.join(" ")),
    };
    println!("== summary (for BENCHMARKS.md) ==\n");
    println!("Machine: {machine}. Command: `{command}`.\n");
    println!("| Benchmark | Result | Target |\n|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} |", r.name, r.result, r.target);
    }
    Ok(())
}

// === impl Args ===

impl Args {
    /// Whether `--only` picks `part` (everything when it is empty).
    fn wants(&self, part: Part) -> bool {
        self.only.is_empty()
            || self.only.contains(&part)
            || (self.only.contains(&Part::Memory)
                && matches!(part, Part::Idle | Part::Soak | Part::Flat | Part::Big))
    }
}

/// The command-line arguments but `--router-bin` (which `scripts/bench.sh` always passes).
fn extra_args() -> Vec<String> {
    let mut args = std::env::args().skip(1);
    let mut extra = vec![];
    while let Some(a) = args.next() {
        if a == "--router-bin" {
            args.next();
        } else if !a.starts_with("--router-bin=") {
            extra.push(a);
        }
    }
    extra
}

/// The hero_router binary: `--router-bin`, else the one next to this binary.
fn router_bin(args: &Args) -> anyhow::Result<PathBuf> {
    let bin = match &args.router_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("hero_router"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "no hero_router at {}; pass --router-bin",
        bin.display()
    );
    Ok(bin)
}

/// The scale benchmark: build the tree, scan it in-process, then with the CLI.
fn run_scale(args: &Args, rt: &tokio::runtime::Runtime, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let bin = router_bin(args)?;
    println!("== scale: {} services × 10 sockets ==", args.services);
    let fx = scale::build(args.services, Layout::Grouped).context("building the socket tree")?;
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

/// MiB from KiB.
fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

/// The idle benchmark.
fn run_idle(cfg: &memory::Config, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    println!("== memory: serve on an empty root, 1 s scans ==");
    let r = memory::idle(cfg).context("idle benchmark")?;
    println!("ready after {:.0} ms", measure::ms(r.ready_after));
    let row = Row {
        name: format!(
            "Idle RSS, empty root, `serve` after {} s of 1 s scans",
            cfg.idle_secs
        ),
        result: format!(
            "{:.1} MiB (max sample {:.1}, VmHWM {:.1}), {} threads",
            mib(r.rss_kib as f64),
            mib(r.max_kib as f64),
            mib(r.hwm_kib as f64),
            r.threads
        ),
        target: verdict("≤ 12 MiB", mib(r.rss_kib as f64) <= TARGET_IDLE_MIB),
    };
    report(rows, row);
    print_end(&r.end);
    println!();
    Ok(())
}

/// The 10,000-socket steady/soak benchmark, its sockets laid out as `layout` says.
fn run_soak(cfg: &memory::Config, layout: Layout, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (services, per) = match layout {
        Layout::Grouped => (cfg.services, 10),
        Layout::Flat => (cfg.flat_services, 1),
    };
    println!(
        "== memory: serve at {} sockets in {services} services of {per}, 1 s scans, {} s (live \
         listeners drained) ==",
        services * per,
        cfg.soak_secs
    );
    let r = memory::soak(cfg, layout).context("soak benchmark")?;
    // The router's own service is counted too.
    let n = format!("{} sockets ({services} services × {per})", r.expect.sockets);
    println!(
        "ready after {:.1} s, RSS then {:.1} MiB; expected table: {}",
        r.ready_after.as_secs_f64(),
        mib(r.ready_kib as f64),
        r.expect
    );
    println!(
        "router.scan checks: {} (every {} s), duration_ms median {:.0} (min {:.0}, max {:.0}); \
         serve CPU {:.0} ms/s after warm-up; drained {} connections",
        r.scan_ms.len(),
        memory::CHECK_EVERY.as_secs(),
        r.scan_ms.median(),
        r.scan_ms.min(),
        r.scan_ms.max(),
        r.cpu_ms_per_s,
        r.drained
    );
    let stable = r.mismatches.is_empty();
    if stable {
        println!("classification (every check): OK");
    } else {
        println!("classification changed:");
        r.mismatches.iter().for_each(|m| println!("  {m}"));
    }
    let samples = format!(
        "n={} every {} ms after {:.0} s warm-up",
        r.rss.len(),
        memory::SAMPLE_EVERY.as_millis(),
        r.warmup_secs
    );
    let steady = mib(r.rss.median());
    let row = Row {
        name: format!("`serve` RSS at {n}, steady (median, {samples})"),
        result: format!(
            "{steady:.1} MiB (min {:.1}, max {:.1}), threads {} → {}",
            mib(r.rss.min()),
            mib(r.rss.max()),
            r.threads.0,
            r.threads.1
        ),
        target: verdict("≤ 40 MiB", steady <= TARGET_STEADY_MIB),
    };
    report(rows, row);
    // VmHWM, unless a sample saw more (the kernel's RSS counters are approximate).
    let peak = mib(r.hwm_kib as f64).max(mib(r.max_sample_kib));
    let row = Row {
        name: format!("`serve` peak RSS at {n} (full scans included)"),
        result: format!(
            "{peak:.1} MiB (VmHWM {:.1}, largest sample {:.1})",
            mib(r.hwm_kib as f64),
            mib(r.max_sample_kib)
        ),
        target: verdict("≤ 50 MiB", peak <= TARGET_PEAK_MIB),
    };
    report(rows, row);
    let row = Row {
        name: format!(
            "`serve` RSS trend at {n}, {} s of 1 s scans (least squares, {samples})",
            cfg.soak_secs
        ),
        result: format!(
            "{:+.3} MiB/min (first {:.1}, last {:.1}, min {:.1}, max {:.1} MiB){}",
            r.slope,
            mib(r.first_last_kib.0),
            mib(r.first_last_kib.1),
            mib(r.rss.min()),
            mib(r.rss.max()),
            if stable { "" } else { "; table changed" }
        ),
        target: verdict("≤ 0.1 MiB/min", stable && r.slope <= TARGET_SLOPE_MIB_MIN),
    };
    report(rows, row);
    print_end(&r.end);
    println!();
    Ok(())
}

/// The 100,000-socket benchmark.
fn run_big(cfg: &memory::Config, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    println!(
        "== serve at {} sockets (held by helper processes), router.scan × {} ==",
        cfg.big_sockets, cfg.big_scans
    );
    let r = memory::big(cfg).context("big benchmark")?;
    let n = r.expect.sockets;
    println!(
        "setup: {} holders of ≤ {} fds each (RLIMIT_NOFILE {}), {:.1} s; serve ready after \
         {:.1} s (first full scan included); expected table: {}",
        r.holders.0,
        r.holders.1,
        r.holder_nofile,
        r.setup.as_secs_f64(),
        r.ready_after.as_secs_f64(),
        r.expect
    );
    let calls: Vec<String> = r
        .calls
        .iter()
        .map(|(w, d)| format!("{w:.0}/{d:.0}"))
        .collect();
    println!(
        "each call, wall ms / duration_ms (the first untimed): {}",
        calls.join(", ")
    );
    let ok = r.mismatches.is_empty();
    if ok {
        println!("classification (every scan): OK");
    } else {
        println!("classification differs:");
        r.mismatches.iter().for_each(|m| println!("  {m}"));
    }
    let (d, w, c) = (&r.duration_ms, &r.wall_ms, &r.cpu_ms);
    let row = Row {
        name: format!("`router.scan` of {n} sockets, `serve` (n={})", w.len()),
        result: format!(
            "duration_ms median {:.0} (min {:.0}, max {:.0}), RPC wall median {:.0} ms (min \
             {:.0}, max {:.0}), serve CPU median {:.0} ms (holders {:.0} ms){}",
            d.median(),
            d.min(),
            d.max(),
            w.median(),
            w.min(),
            w.max(),
            c.median(),
            r.holder_cpu_ms.median(),
            if ok { "" } else { "; table wrong" }
        ),
        target: verdict(
            "≤ 2 s wall",
            ok && w.median() <= TARGET_BIG_SCAN_MS && d.median() <= TARGET_BIG_SCAN_MS,
        ),
    };
    report(rows, row);
    let row = Row {
        name: format!("`serve` RSS at {n} sockets, after the scans"),
        result: format!(
            "{:.1} MiB (VmHWM {:.1} MiB), {} threads",
            mib(r.rss_kib as f64),
            mib(r.hwm_kib as f64),
            r.threads
        ),
        target: "—".to_owned(),
    };
    report(rows, row);
    print_end(&r.end);
    println!();
    Ok(())
}

/// The catalog benchmark: fill, RSS when full, refresh after `router.scan`.
fn run_catalog(
    cfg: &catalog::Config,
    rt: &tokio::runtime::Runtime,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = cfg.services;
    println!(
        "== catalog: serve on {n} services ({} % of them silent closers, as Python's http.server), \
         {} methods and ~{} KiB of OpenRPC each ==",
        cfg.silent_percent,
        catalog::METHODS_PER_DOC,
        catalog::DOC_BYTES / 1024
    );
    let r = catalog::run(cfg, rt).context("catalog benchmark")?;
    println!(
        "setup: {n} services bound in {:.1} s, documents {}–{} bytes, RLIMIT_NOFILE {}",
        r.setup.as_secs_f64(),
        r.doc_bytes.0,
        r.doc_bytes.1,
        r.nofile
    );
    println!(
        "from spawn: ready {:.0} ms, first spec ok {:.0} ms, half {:.0} ms, all {:.0} ms \
         ({} polls); bench process CPU meanwhile {:.0} ms (services answering, polls)",
        measure::ms(r.ready_after),
        measure::ms(r.first_ok_after),
        measure::ms(r.half_after),
        measure::ms(r.full_after),
        r.polls,
        measure::ms(r.bench_cpu)
    );
    println!(
        "router.services (the poll): {:.0} KiB, {:.1} ms wall and {:.1} ms serve CPU per call \
         on the full catalog, slowest poll while filling {:.0} ms; {} distinct fingerprints",
        r.poll.bytes as f64 / 1024.0,
        measure::ms(r.poll.wall),
        measure::ms(r.poll.cpu),
        measure::ms(r.slowest_poll),
        r.fingerprints
    );
    let ms_ = &r.methods;
    let methods_ok = ms_.ours == n * catalog::METHODS_PER_DOC;
    let fill_ms = measure::ms(r.full_after);
    let row = Row {
        name: format!(
            "Catalog fill, {n} services × {} KiB OpenRPC, `serve` spawn → every spec `ok`",
            catalog::DOC_BYTES / 1024
        ),
        result: format!(
            "{fill_ms:.0} ms from spawn ({:.0} ms after ready at {:.0} ms), serve CPU {:.0} ms \
             ({:.0} ms after ready, ≈ {:.0} ms of it answering {} polls), router.methods {} \
             ({} of {n} × {}{})",
            measure::ms(r.full_after.saturating_sub(r.ready_after)),
            measure::ms(r.ready_after),
            measure::ms(r.cpu.0),
            measure::ms(r.cpu.1),
            measure::ms(r.poll.cpu) * r.polls as f64,
            r.polls,
            ms_.total,
            ms_.ours,
            catalog::METHODS_PER_DOC,
            if methods_ok { "" } else { ": WRONG" }
        ),
        target: verdict(
            "≤ 5 s from spawn",
            methods_ok && fill_ms <= TARGET_CATALOG_FILL_MS,
        ),
    };
    report(rows, row);
    let m = r.full_mem;
    let row = Row {
        name: format!("`serve` RSS with the catalog of {n} services full"),
        result: format!(
            "{:.1} MiB (VmHWM {:.1} MiB), {} threads",
            mib(m.rss_kib as f64),
            mib(m.hwm_kib as f64),
            m.threads
        ),
        target: verdict(
            "VmHWM ≤ 120 MiB",
            mib(m.hwm_kib as f64) <= TARGET_CATALOG_PEAK_MIB,
        ),
    };
    report(rows, row);
    let f = &r.refresh;
    let row = Row {
        name: format!("Catalog refresh of {n} services after one `router.scan`"),
        result: format!(
            "{:.0} ms until every fetched_unix_ms advanced (router.scan answered in {:.0} ms, \
             duration_ms {}), serve CPU {:.0} ms (≈ {:.0} ms of it answering {} polls), {} \
             changed; then {:.1} MiB (VmHWM {:.1} MiB)",
            measure::ms(f.after),
            measure::ms(f.scan.0),
            f.scan.1,
            measure::ms(f.cpu),
            measure::ms(r.poll.cpu) * f.polls as f64,
            f.polls,
            f.changed,
            mib(f.mem.rss_kib as f64),
            mib(f.mem.hwm_kib as f64)
        ),
        target: verdict(
            "VmHWM ≤ 120 MiB",
            f.changed == 0 && mib(f.mem.hwm_kib as f64) <= TARGET_CATALOG_PEAK_MIB,
        ),
    };
    report(rows, row);
    let row = Row {
        name: format!(
            "`router.methods` on the full catalog ({} methods), after the refresh",
            ms_.total
        ),
        result: format!(
            "{:.1} MiB answer in {:.0} ms, serve CPU {:.0} ms; then {:.1} MiB (VmHWM {:.1} MiB)",
            ms_.bytes as f64 / (1024.0 * 1024.0),
            measure::ms(ms_.wall),
            measure::ms(ms_.cpu),
            mib(ms_.mem.rss_kib as f64),
            mib(ms_.mem.hwm_kib as f64)
        ),
        target: "—".to_owned(),
    };
    report(rows, row);
    print_end(&r.end);
    println!();
    Ok(())
}

/// Says how `serve` ended when that is worth a line: not by SIGTERM, or with a log.
fn print_end(end: &memory::End) {
    match end.status {
        Some(s) if s.success() => {}
        Some(s) => println!("serve after SIGTERM: {s}"),
        None => println!("serve ignored SIGTERM for 10 s: killed"),
    }
    if end.log_lines > 0 {
        println!("serve wrote {} lines at warn level, first:", end.log_lines);
        end.log_head.iter().for_each(|l| println!("  {l}"));
    }
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
    use super::measure::{Stats, slope_per_min};

    #[test]
    fn nearest_rank_percentiles() {
        let s = Stats::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (s.pct(50.0), s.pct(99.0), s.min(), s.max()),
            (50.0, 99.0, 1.0, 100.0)
        );
        assert_eq!(Stats::new(vec![]).pct(99.0), 0.0);
    }

    #[test]
    fn least_squares_slope_per_minute() {
        // 0.5 per second with a zig-zag around the line: 30 per minute.
        let points: Vec<(f64, f64)> = (0..100)
            .map(|t| {
                (
                    f64::from(t),
                    10.0 + 0.5 * f64::from(t) + [1.0, -1.0][t as usize % 2],
                )
            })
            .collect();
        assert!((slope_per_min(&points) - 30.0).abs() < 0.1);
        assert_eq!(slope_per_min(&[(5.0, 1.0), (5.0, 2.0)]), 0.0);
    }
}
