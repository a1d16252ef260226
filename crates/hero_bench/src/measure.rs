//! Clocks and counters: process CPU time (own, children's, another process's), RSS, and order
//! statistics.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// CPU time (user + system, all threads) this process has used so far, to the nanosecond.
pub(crate) fn cpu_self() -> Duration {
    let ts = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time (user + system) of all waited-for children, from `/proc/self/stat` (`cutime`,
/// `cstime`; clock-tick resolution, usually 10 ms).
pub(crate) fn cpu_children() -> anyhow::Result<Duration> {
    stat_ticks("self", [16, 17])
}

/// CPU time (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat` (`utime`, `stime`; clock-tick resolution).
pub(crate) fn cpu_of(pid: &str) -> anyhow::Result<Duration> {
    stat_ticks(pid, [14, 15])
}

/// The sum of two clock-tick fields of `/proc/<pid>/stat` (1-based field numbers), as time.
fn stat_ticks(pid: &str, fields: [usize; 2]) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`: state is field 3 (1-based).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let all: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> { Ok(all.get(n - 3).unwrap_or(&"").parse()?) };
    let ticks = field(fields[0])? + field(fields[1])?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM` is peak RSS, `VmRSS` current RSS), in KiB.
/// Also reads plain numbers such as `Threads`.
pub(crate) fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Order statistics of a set of samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    sorted: Vec<f64>,
}

impl Stats {
    /// Collects samples (any order).
    pub(crate) fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Stats { sorted: samples }
    }

    /// Number of samples.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in `0..=100`; 0 when empty.
    pub(crate) fn pct(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// Median (nearest rank).
    pub(crate) fn median(&self) -> f64 {
        self.pct(50.0)
    }

    /// Smallest sample.
    pub(crate) fn min(&self) -> f64 {
        self.sorted.first().copied().unwrap_or(0.0)
    }

    /// Largest sample.
    pub(crate) fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0.0)
    }
}

/// The least-squares slope of `(seconds, value)` points, in value per minute; 0 with fewer
/// than two distinct times.
pub(crate) fn slope_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), &(x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    if sxx > 0.0 { 60.0 * sxy / sxx } else { 0.0 }
}

/// Milliseconds as a float.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
