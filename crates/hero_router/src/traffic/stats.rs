//! Per-service traffic (`router.traffic`, `GET /api/traffic`, the dashboard's charts): rolling
//! counters of fixed size per service and for the router's own endpoints.
//!
//! A service's [`Series`] is a ring of [`SLOTS`] slots of [`SLOT_SECS`] seconds (15 minutes);
//! each slot counts requests, errors by class, and latencies in a log-linear histogram
//! ([`BUCKETS`] buckets, two per octave from 32 µs to 67 s). A slot is reused, and zeroed,
//! when the clock comes round to it again, so a series never grows. Percentiles are read from
//! the histogram: exact to one bucket.
//!
//! Recording is on the connection threads, so it takes no lock shared with them: each thread
//! keeps its own map from service name to series (filled from the shared map on a thread's
//! first request for a service), and the counters are relaxed atomics. The shared map holds
//! at most [`MAX_SERIES`] series, and a service's series is dropped [`RETAIN_ABSENT`] after
//! it left the table ([`Traffic::sweep`]), so memory stays bounded however many services come
//! and go.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

/// Seconds per slot.
pub(crate) const SLOT_SECS: u64 = 10;
/// Slots per series: 15 minutes.
pub(crate) const SLOTS: usize = 90;
/// Histogram buckets per octave of latency.
const SUB_BITS: u32 = 1;
/// The first octave with buckets of its own (2^5 µs = 32 µs); below it, one bucket.
const MIN_OCTAVE: u32 = 5;
/// The octave from which everything is one bucket (2^26 µs ≈ 67 s).
const MAX_OCTAVE: u32 = 26;
/// Histogram buckets: one below 32 µs, two per octave up to 67 s, one above.
pub(crate) const BUCKETS: usize = 2 + ((MAX_OCTAVE - MIN_OCTAVE) << SUB_BITS) as usize;
/// Series kept at most; a service beyond that is not counted (a node has tens).
pub(crate) const MAX_SERIES: usize = 1024;
/// A service's series is dropped this long after it left the table.
pub(crate) const RETAIN_ABSENT: Duration = Duration::from_secs(300);
/// The windows `router.traffic` reports, in slots: 1, 5 and 15 minutes.
const WINDOWS: [(&str, u64); 3] = [("1m", 6), ("5m", 30), ("15m", 90)];

/// How a request ended, for the error counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Below 400.
    Ok,
    /// A 4xx a service answered.
    Service4xx,
    /// A 5xx a service answered.
    Service5xx,
    /// An error the router made itself (refused, no route, down, busy, timeout).
    Router,
}

/// One slot: what happened in [`SLOT_SECS`] seconds.
struct Slot {
    /// The slot's number (seconds since start / [`SLOT_SECS`], plus one); 0: never used.
    epoch: AtomicU64,
    requests: AtomicU32,
    /// By [`Class`]: service 4xx, service 5xx, router-made.
    errors: [AtomicU32; 3],
    buckets: [AtomicU32; BUCKETS],
}

/// One service's 15 minutes.
pub(crate) struct Series {
    slots: [Slot; SLOTS],
    /// Seconds (since start, plus one) when the service was first seen missing from the
    /// table; 0 while it is there.
    absent_since: AtomicU64,
}

/// Counts read from slots, added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Totals {
    pub requests: u64,
    pub errors: [u64; 3],
    pub buckets: [u64; BUCKETS],
}

/// The traffic counters of a router.
pub(crate) struct Traffic {
    /// Tells this instance's entries in the threads' maps from another's (tests run several
    /// routers in one process).
    id: u64,
    base: Instant,
    /// Bumped whenever a series is dropped: the threads' maps start over.
    generation: AtomicU64,
    series: RwLock<HashMap<Box<str>, Arc<Series>>>,
}

/// A thread's own map from service name to series, for one [`Traffic`] and generation.
#[derive(Default)]
struct Local {
    owner: u64,
    generation: u64,
    /// Where each service's series is in `series`.
    map: HashMap<Box<str>, usize>,
    series: Vec<(Box<str>, Arc<Series>)>,
    /// The place of the last service counted: the next request is most often its too, and
    /// then its name is compared, not hashed.
    last: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// The bucket of a latency in microseconds.
pub(crate) fn bucket_of(micros: u64) -> usize {
    if micros < 1 << MIN_OCTAVE {
        return 0;
    }
    let octave = 63 - micros.leading_zeros();
    if octave >= MAX_OCTAVE {
        return BUCKETS - 1;
    }
    let sub = (micros >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    1 + (((octave - MIN_OCTAVE) << SUB_BITS) as u64 + sub) as usize
}

/// The upper bound of a bucket in microseconds (the last bucket's lower bound).
pub(crate) fn bucket_upper(i: usize) -> u64 {
    if i == 0 {
        return 1 << MIN_OCTAVE;
    }
    if i >= BUCKETS - 1 {
        return 1 << MAX_OCTAVE;
    }
    let k = (i - 1) as u32;
    let octave = MIN_OCTAVE + (k >> SUB_BITS);
    let sub = u64::from(k & ((1 << SUB_BITS) - 1));
    (1 << octave) + ((sub + 1) << (octave - SUB_BITS))
}

/// The `p`-quantile (0–1) of a histogram in milliseconds (a bucket's upper bound); `None`
/// for an empty one.
pub(crate) fn quantile_ms(buckets: &[u64; BUCKETS], p: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_upper(i) as f64 / 1000.0);
        }
    }
    Some(bucket_upper(BUCKETS - 1) as f64 / 1000.0)
}

// === impl Class ===

impl Class {
    /// The class of an answer with `status`; `router_made`: the router wrote it itself.
    pub(crate) fn of(status: u16, router_made: bool) -> Class {
        match (status, router_made) {
            (0..400, _) => Class::Ok,
            (_, true) => Class::Router,
            (400..500, false) => Class::Service4xx,
            _ => Class::Service5xx,
        }
    }

    fn index(self) -> Option<usize> {
        match self {
            Class::Ok => None,
            Class::Service4xx => Some(0),
            Class::Service5xx => Some(1),
            Class::Router => Some(2),
        }
    }
}

// === impl Slot ===

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            epoch: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            errors: std::array::from_fn(|_| AtomicU32::new(0)),
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Slot {
    fn clear(&self) {
        self.requests.store(0, Relaxed);
        for n in self.errors.iter().chain(&self.buckets) {
            n.store(0, Relaxed);
        }
    }

    fn add_to(&self, t: &mut Totals) {
        t.requests += u64::from(self.requests.load(Relaxed));
        for (a, b) in t.errors.iter_mut().zip(&self.errors) {
            *a += u64::from(b.load(Relaxed));
        }
        for (a, b) in t.buckets.iter_mut().zip(&self.buckets) {
            *a += u64::from(b.load(Relaxed));
        }
    }
}

// === impl Series ===

impl Series {
    fn new() -> Series {
        Series {
            slots: std::array::from_fn(|_| Slot::default()),
            absent_since: AtomicU64::new(0),
        }
    }

    /// Counts one request that ended at `now_secs` (seconds since the start).
    fn add(&self, class: Class, latency: Duration, now_secs: u64) {
        let epoch = now_secs / SLOT_SECS + 1;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let seen = slot.epoch.load(Relaxed);
        if seen > epoch {
            // The slot is already a later one's: this record is 15 minutes late.
            return;
        }
        // The first request of a slot's new turn zeroes it (a request counted by another
        // thread at that instant may be lost: these are monitoring counts).
        if seen < epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            slot.clear();
        }
        slot.requests.fetch_add(1, Relaxed);
        if let Some(i) = class.index() {
            slot.errors[i].fetch_add(1, Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.buckets[bucket_of(micros)].fetch_add(1, Relaxed);
    }

    /// The totals of the slots `from..=to` (slot numbers), those still in the ring.
    fn totals(&self, from: u64, to: u64) -> Totals {
        let mut t = Totals {
            requests: 0,
            errors: [0; 3],
            buckets: [0; BUCKETS],
        };
        // One slot: straight to it (the charts read 90 of these a second).
        if from == to {
            let slot = &self.slots[(from % SLOTS as u64) as usize];
            if from >= 1 && slot.epoch.load(Relaxed) == from {
                slot.add_to(&mut t);
            }
            return t;
        }
        for slot in &self.slots {
            let epoch = slot.epoch.load(Relaxed);
            if (from..=to).contains(&epoch) {
                slot.add_to(&mut t);
            }
        }
        t
    }
}

// === impl Traffic ===

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic::new()
    }
}

impl Traffic {
    /// Empty counters, the clock starting now.
    pub(crate) fn new() -> Traffic {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Traffic {
            id: IDS.fetch_add(1, Relaxed),
            base: Instant::now(),
            generation: AtomicU64::new(0),
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Seconds since the counters started, at `now`.
    pub(crate) fn secs_at(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_secs()
    }

    /// Counts one finished request of `service` at `now_secs` ([`Traffic::secs_at`]).
    pub(crate) fn record(&self, service: &str, class: Class, latency: Duration, now_secs: u64) {
        LOCAL.with_borrow_mut(|local| {
            let generation = self.generation.load(Relaxed);
            if local.owner != self.id || local.generation != generation {
                local.map.clear();
                local.series.clear();
                local.owner = self.id;
                local.generation = generation;
            }
            if let Some((name, series)) = local.series.get(local.last) {
                if **name == *service {
                    return series.add(class, latency, now_secs);
                }
            }
            if let Some(&at) = local.map.get(service) {
                local.last = at;
                return local.series[at].1.add(class, latency, now_secs);
            }
            let Some(series) = self.shared_series(service) else {
                return;
            };
            series.add(class, latency, now_secs);
            local.last = local.series.len();
            local.map.insert(service.into(), local.last);
            local.series.push((service.into(), series));
        });
    }

    /// The series of `service` in the shared map, made if there is room.
    fn shared_series(&self, service: &str) -> Option<Arc<Series>> {
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
        {
            return Some(s.clone());
        }
        let mut all = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get(service) {
            return Some(s.clone());
        }
        if all.len() >= MAX_SERIES {
            return None;
        }
        let s = Arc::new(Series::new());
        all.insert(service.into(), s.clone());
        Some(s)
    }

    /// Drops the series of services that have been out of the table (`present` says who is
    /// in) for [`RETAIN_ABSENT`] at `now_secs`.
    pub(crate) fn sweep(&self, present: impl Fn(&str) -> bool, now_secs: u64) {
        let mut all = self.series.write().unwrap_or_else(|p| p.into_inner());
        let before = all.len();
        all.retain(|name, series| {
            if present(name) {
                series.absent_since.store(0, Relaxed);
                return true;
            }
            let since = series.absent_since.load(Relaxed);
            if since == 0 {
                series.absent_since.store(now_secs + 1, Relaxed);
                return true;
            }
            now_secs + 1 - since < RETAIN_ABSENT.as_secs()
        });
        if all.len() != before {
            self.generation.fetch_add(1, Relaxed);
        }
    }

    /// Series kept now.
    #[cfg(test)]
    pub(crate) fn series_count(&self) -> usize {
        self.series.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The memory the series take: a fixed size each.
    #[cfg(test)]
    pub(crate) fn memory_bytes(&self) -> usize {
        self.series_count() * std::mem::size_of::<Series>()
    }

    /// The totals of `service` for the last `slots` slots at `now_secs`; `None` if it has no
    /// series.
    #[cfg(test)]
    pub(crate) fn totals(&self, service: &str, slots: u64, now_secs: u64) -> Option<Totals> {
        let all = self.series.read().unwrap_or_else(|p| p.into_inner());
        let to = now_secs / SLOT_SECS + 1;
        Some(all.get(service)?.totals(to.saturating_sub(slots - 1), to))
    }

    /// What the dashboard's table shows at `now_secs`, per service: req/s over the last 15
    /// minutes slot by slot (oldest first), and the last minute's errors and req/s.
    pub(crate) fn sparklines(&self, now_secs: u64) -> Value {
        let all = self.series.read().unwrap_or_else(|p| p.into_inner());
        let current = now_secs / SLOT_SECS + 1;
        let into_slot = now_secs % SLOT_SECS + 1;
        let mut out = serde_json::Map::new();
        for (name, series) in all.iter() {
            let rps: Vec<f64> = (0..SLOTS as u64)
                .rev()
                .map(|back| match current.checked_sub(back).filter(|e| *e >= 1) {
                    Some(epoch) => {
                        let secs = if back == 0 { into_slot } else { SLOT_SECS };
                        let n = series.totals(epoch, epoch).requests;
                        (n as f64 / secs as f64 * 10.0).round() / 10.0
                    }
                    None => 0.0,
                })
                .collect();
            let minute = series.totals(current.saturating_sub(5), current);
            let secs = (5 * SLOT_SECS + into_slot).min(now_secs + 1);
            out.insert(
                name.to_string(),
                json!({
                    "rps": rps,
                    "rps_1m": round3(minute.requests as f64 / secs as f64),
                    "errors_1m": minute.errors.iter().sum::<u64>(),
                }),
            );
        }
        json!({"slot_secs": SLOT_SECS, "services": out})
    }

    /// The `router.traffic` result at `now_secs`: per service (sorted by name), each window's
    /// requests, errors by class, req/s and latency percentiles, and the last 15 minutes slot
    /// by slot (oldest first) for charts.
    pub(crate) fn report(&self, now_secs: u64) -> Value {
        let all = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&Box<str>> = all.keys().collect();
        names.sort();
        let current = now_secs / SLOT_SECS + 1;
        // Seconds of the current slot that have passed (it is counted as far as it goes).
        let into_slot = now_secs % SLOT_SECS + 1;
        let services: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let series = &all[name];
                let mut windows = serde_json::Map::new();
                for (label, slots) in WINDOWS {
                    let t = series.totals(current.saturating_sub(slots - 1), current);
                    let secs = ((slots - 1) * SLOT_SECS + into_slot).min(now_secs + 1);
                    windows.insert(label.into(), summary(&t, secs));
                }
                let mut rps = Vec::with_capacity(SLOTS);
                let mut errors = Vec::with_capacity(SLOTS);
                let (mut p50, mut p95, mut p99) = (Vec::new(), Vec::new(), Vec::new());
                // Always the whole 15 minutes; slots before the start are empty.
                for back in (0..SLOTS as u64).rev() {
                    let t = match current.checked_sub(back).filter(|e| *e >= 1) {
                        Some(epoch) => series.totals(epoch, epoch),
                        None => series.totals(1, 0),
                    };
                    let secs = if back == 0 { into_slot } else { SLOT_SECS };
                    rps.push(round3(t.requests as f64 / secs as f64));
                    errors.push(t.errors.iter().sum::<u64>());
                    p50.push(quantile_ms(&t.buckets, 0.5));
                    p95.push(quantile_ms(&t.buckets, 0.95));
                    p99.push(quantile_ms(&t.buckets, 0.99));
                }
                json!({
                    "name": &**name,
                    "windows": windows,
                    "slots": {"rps": rps, "errors": errors, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99},
                })
            })
            .collect();
        json!({
            "slot_secs": SLOT_SECS,
            "slots": SLOTS,
            "services": services,
        })
    }
}

/// One window's summary: `secs` long.
fn summary(t: &Totals, secs: u64) -> Value {
    json!({
        "requests": t.requests,
        "errors": {
            "service_4xx": t.errors[0],
            "service_5xx": t.errors[1],
            "router": t.errors[2],
        },
        "rps": round3(t.requests as f64 / secs.max(1) as f64),
        "p50_ms": quantile_ms(&t.buckets, 0.5),
        "p95_ms": quantile_ms(&t.buckets, 0.95),
        "p99_ms": quantile_ms(&t.buckets, 0.99),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
