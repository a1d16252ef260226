//! Prometheus text metrics (`GET /metrics`): requests by service, kind and status; a latency
//! histogram; sockets by state; scans; reaps and skipped reaps by reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::events::Event;
use crate::table::Table;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// kind → status → count, for one service.
type ByKind = BTreeMap<String, BTreeMap<u16, u64>>;

/// All counters: requests behind one lock (taken once per request), scanner counts behind
/// another.
#[derive(Default)]
pub struct Metrics {
    /// service → its counters
    requests: Mutex<BTreeMap<String, ServiceCounts>>,
    scanner: Mutex<ScannerCounts>,
}

/// The request counters of one service.
#[derive(Default)]
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
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

// === impl Metrics ===

impl Metrics {
    /// Counts one finished request. Allocates only the first time a label set is seen.
    pub fn record(&self, service: &str, kind: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut req = self.requests.lock().unwrap_or_else(|p| p.into_inner());
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
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts scanner events.
    pub fn on_event(&self, ev: &Event) {
        let mut s = self.scanner.lock().expect("metrics lock");
        match ev {
            Event::ScanCompleted { full: true, .. } => s.scans_full += 1,
            Event::ScanCompleted { .. } => s.scans_partial += 1,
            Event::Reaped { reason, .. } => *s.reaped.entry(reason).or_default() += 1,
            Event::ReapSkipped { reason, .. } => {
                *s.skipped.entry(reason.as_str()).or_default() += 1
            }
            Event::SocketChanged { .. } => {}
        }
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, table: &Table) -> String {
        let mut out = String::new();
        out.push_str("# HELP hero_router_requests_total Proxied and routed requests.\n# TYPE hero_router_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
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
            for (b, n) in BUCKETS.iter().zip(h.counts) {
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
        drop(requests);
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
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
