//! Prometheus text metrics (`GET /metrics`): requests by service, kind and status; a latency
//! histogram; sockets by state; scans; reaps and skipped reaps by reason; log lines dropped
//! because stderr could not take them; access log lines dropped because its writer could not
//! keep up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::registry::events::Event;
use crate::registry::table::Table;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// kind → status → count, for one service.
type ByKind = BTreeMap<String, BTreeMap<u16, u64>>;

/// Request counters are striped: each thread counts into its own stripe (one uncontended lock
/// per request), and rendering adds the stripes up.
const STRIPES: usize = 8;

/// service → its counters
type Requests = BTreeMap<String, ServiceCounts>;

/// All counters: requests in stripes, scanner counts behind one lock.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: [Mutex<Requests>; STRIPES],
    scanner: Mutex<ScannerCounts>,
}

/// The stripe of the calling thread.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// The request counters of one service.
#[derive(Default, Clone)]
struct ServiceCounts {
    /// kind → status → count
    by_kind: ByKind,
    latency: Histogram,
}

#[derive(Default)]
struct ScannerCounts {
    scans_full: u64,
    scans_partial: u64,
    reaped: BTreeMap<&'static str, u64>,
    skipped: BTreeMap<&'static str, u64>,
}

#[derive(Default, Clone)]
struct Histogram {
    /// Requests per bucket: `counts[i]` took more than `BUCKETS[i - 1]` and at most
    /// `BUCKETS[i]` (rendering adds them up into Prometheus' cumulative buckets).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

// === impl ServiceCounts ===

impl ServiceCounts {
    /// Adds `other`'s counts to these.
    fn add(&mut self, other: &ServiceCounts) {
        for (kind, by_status) in &other.by_kind {
            let mine = self.by_kind.entry(kind.clone()).or_default();
            for (status, n) in by_status {
                *mine.entry(*status).or_default() += n;
            }
        }
        let (h, o) = (&mut self.latency, &other.latency);
        for (a, b) in h.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        h.count += o.count;
        h.sum += o.sum;
    }
}

// === impl Metrics ===

impl Metrics {
    /// Counts one finished request. Allocates only the first time a label set is seen.
    pub(crate) fn record(&self, service: &str, kind: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut req = self.requests[stripe()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let counts = match req.get_mut(service) {
            Some(m) => m,
            None => req.entry(service.to_owned()).or_default(),
        };
        let by_status = match counts.by_kind.get_mut(kind) {
            Some(m) => m,
            None => counts.by_kind.entry(kind.to_owned()).or_default(),
        };
        *by_status.entry(status).or_default() += 1;
        let h = &mut counts.latency;
        if let Some(n) = h.counts.get_mut(BUCKETS.partition_point(|b| secs > *b)) {
            *n += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts scanner events.
    pub(crate) fn on_event(&self, ev: &Event) {
        let mut s = self.scanner.lock().expect("metrics lock");
        match ev {
            Event::ScanCompleted { full: true, .. } => s.scans_full += 1,
            Event::ScanCompleted { .. } => s.scans_partial += 1,
            Event::Reaped { reason, .. } => *s.reaped.entry(reason).or_default() += 1,
            Event::ReapSkipped { reason, .. } => {
                *s.skipped.entry(reason.as_str()).or_default() += 1
            }
            Event::SocketChanged { .. }
            | Event::RootReplaced { .. }
            | Event::CatalogChanged { .. }
            | Event::ServiceDropped { .. } => {}
        }
    }

    /// Renders everything in the Prometheus text format.
    pub(crate) fn render(&self, table: &Table) -> String {
        let mut out = String::new();
        out.push_str("# HELP hero_router_requests_total Proxied and routed requests.\n# TYPE hero_router_requests_total counter\n");
        let mut requests = Requests::new();
        for stripe in &self.requests {
            let stripe = stripe.lock().unwrap_or_else(|p| p.into_inner());
            for (svc, counts) in stripe.iter() {
                match requests.get_mut(svc) {
                    Some(total) => total.add(counts),
                    None => {
                        requests.insert(svc.clone(), counts.clone());
                    }
                }
            }
        }
        for (svc, counts) in requests.iter() {
            for (kind, by_status) in &counts.by_kind {
                for (status, n) in by_status {
                    let _ = writeln!(
                        out,
                        "hero_router_requests_total{{service=\"{}\",kind=\"{}\",status=\"{status}\"}} {n}",
                        esc(svc),
                        esc(kind)
                    );
                }
            }
        }
        out.push_str("# HELP hero_router_request_duration_seconds Time to the response head.\n# TYPE hero_router_request_duration_seconds histogram\n");
        for (svc, h) in requests.iter().map(|(s, c)| (s, &c.latency)) {
            let svc = esc(svc);
            let mut n = 0;
            for (b, in_bucket) in BUCKETS.iter().zip(h.counts) {
                n += in_bucket;
                let _ = writeln!(
                    out,
                    "hero_router_request_duration_seconds_bucket{{service=\"{svc}\",le=\"{b}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "hero_router_request_duration_seconds_bucket{{service=\"{svc}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "hero_router_request_duration_seconds_sum{{service=\"{svc}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "hero_router_request_duration_seconds_count{{service=\"{svc}\"}} {}",
                h.count
            );
        }
        let mut states: BTreeMap<&str, u64> = ["live", "busy", "refused", "denied", "not_socket"]
            .iter()
            .map(|s| (*s, 0))
            .collect();
        for sock in table.services.iter().flat_map(|s| &s.sockets) {
            *states.entry(sock.state.as_str()).or_default() += 1;
        }
        out.push_str(
            "# HELP hero_router_sockets Sockets by state.\n# TYPE hero_router_sockets gauge\n",
        );
        for (state, n) in states {
            let _ = writeln!(out, "hero_router_sockets{{state=\"{state}\"}} {n}");
        }
        let s = self.scanner.lock().expect("metrics lock");
        out.push_str("# HELP hero_router_scans_total Scans by kind.\n# TYPE hero_router_scans_total counter\n");
        let _ = writeln!(
            out,
            "hero_router_scans_total{{kind=\"full\"}} {}",
            s.scans_full
        );
        let _ = writeln!(
            out,
            "hero_router_scans_total{{kind=\"watch\"}} {}",
            s.scans_partial
        );
        out.push_str("# HELP hero_router_reaps_total Sockets removed.\n# TYPE hero_router_reaps_total counter\n");
        for (reason, n) in &s.reaped {
            let _ = writeln!(out, "hero_router_reaps_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP hero_router_reaps_skipped_total Refused sockets kept, by reason.\n# TYPE hero_router_reaps_skipped_total counter\n");
        for (reason, n) in &s.skipped {
            let _ = writeln!(
                out,
                "hero_router_reaps_skipped_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP hero_router_log_lines_dropped_total Log lines lost because stderr was closed or broken.\n# TYPE hero_router_log_lines_dropped_total counter\n");
        let _ = writeln!(
            out,
            "hero_router_log_lines_dropped_total {}",
            crate::telemetry::dropped_lines()
        );
        out.push_str("# HELP hero_router_access_log_dropped_total Access log lines dropped because the log writer could not keep up.\n# TYPE hero_router_access_log_dropped_total counter\n");
        let _ = writeln!(
            out,
            "hero_router_access_log_dropped_total {}",
            crate::traffic::dropped()
        );
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
