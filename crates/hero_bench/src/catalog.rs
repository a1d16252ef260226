//! The catalog benchmark: the real `hero_router serve` filling its service catalog.
//!
//! A temporary root holds `services` services served by this process's tokio runtime: example
//! services ([`hero_example_service::spawn`], hyper, keep-alive) and, for `silent_percent` of
//! them, services that answer as Python's `http.server` does ([`SilentService`]: after a
//! `Connection: close` request they close without saying so in the answer), each serving its own valid OpenRPC 1.3.2 document
//! of about [`DOC_BYTES`] ([`document`]: [`METHODS_PER_DOC`] methods, the service's name in the
//! title and every description, padded to size). `serve` finds them by scanning; its catalog
//! fetcher then fetches every manifest and document. We poll `router.services` every
//! [`POLL_EVERY`] until every service's `spec` is `ok` with a fingerprint, and measure:
//!
//! - **fill**: spawn to full, ready (`router.health`) to full, `serve`'s CPU, its `VmRSS` and
//!   `VmHWM` when full;
//! - **refresh**: one `router.scan` (which refetches every service), then the time until every
//!   `fetched_unix_ms` has moved, and `VmHWM` after;
//! - **`router.methods`**, last: the count as a sanity check, and what answering it costs
//!   (its answer lists every method of every service, so it gets a `VmHWM` of its own).
//!
//! The poll itself costs `serve` a `router.services` answer of every service every 50 ms; its
//! size, wall time and CPU are measured on the quiet router so that cost can be judged.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use hero_example_service::silent::SilentService;
use hero_example_service::{RunningService, ServiceConfig, Spec};
use serde_json::{Value, json};

use crate::measure::cpu_self;
use crate::memory::{End, Serve};
use crate::scale::raise_nofile;

/// Methods in every generated document (every verb with every noun).
pub(crate) const METHODS_PER_DOC: usize = VERBS.len() * NOUNS.len();
/// Size every generated document is padded to, as served (compact JSON).
pub(crate) const DOC_BYTES: usize = 20 * 1024;
/// How far a document may be from [`DOC_BYTES`]: 5 %.
const DOC_SLACK: usize = DOC_BYTES / 20;
/// How often `router.services` is polled while waiting.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for a full catalog (from the spawn), and for a refresh (from `router.scan`).
const FILL_TIMEOUT: Duration = Duration::from_secs(120);
/// Service names: this prefix and a number, so the router's own service is told apart.
const PREFIX: &str = "cat_";
/// `router.services` calls the poll cost is averaged over (CPU is read in clock ticks).
const POLL_COST_CALLS: u32 = 10;
/// Descriptors per service: its listener, its owner lock and a connection or two in flight.
const FDS_PER_SERVICE: u64 = 4;

/// Verbs of the generated methods.
const VERBS: [&str; 8] = [
    "get", "list", "create", "update", "delete", "watch", "count", "search",
];
/// Nouns of the generated methods, each with a schema in `components`.
const NOUNS: [&str; 5] = ["user", "group", "job", "volume", "route"];

/// What the catalog benchmark needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The `hero_router` binary.
    pub(crate) bin: PathBuf,
    /// Services in the root.
    pub(crate) services: usize,
    /// Of them, the share (percent) of silent closers.
    pub(crate) silent_percent: usize,
}

/// One of the benchmark's services.
enum Running {
    /// The example service (hyper).
    Example(RunningService),
    /// A silent closer; dropping it stops it.
    Silent(SilentService),
}

/// The results.
#[derive(Debug, Clone)]
pub(crate) struct Fill {
    /// Smallest and largest document, bytes.
    pub(crate) doc_bytes: (usize, usize),
    /// Time to generate the documents and bind every service.
    pub(crate) setup: Duration,
    /// The RLIMIT_NOFILE soft limit in effect.
    pub(crate) nofile: u64,
    /// Spawn to ready.
    pub(crate) ready_after: Duration,
    /// Spawn to the first poll that saw a service `ok`.
    pub(crate) first_ok_after: Duration,
    /// Spawn to the first poll that saw half the services `ok`.
    pub(crate) half_after: Duration,
    /// Spawn to the first poll that saw every service `ok` with a fingerprint.
    pub(crate) full_after: Duration,
    /// `serve`'s CPU from spawn to full, and from ready to full.
    pub(crate) cpu: (Duration, Duration),
    /// This process's CPU (the services answering, and the polls) from spawn to full.
    pub(crate) bench_cpu: Duration,
    /// `VmRSS`, `VmHWM` and threads of `serve` when full.
    pub(crate) full_mem: Mem,
    /// Distinct fingerprints among the services.
    pub(crate) fingerprints: usize,
    /// The `router.methods` call after the refresh.
    pub(crate) methods: Methods,
    /// Polls of `router.services` until full.
    pub(crate) polls: usize,
    /// The slowest poll while filling.
    pub(crate) slowest_poll: Duration,
    /// What one `router.services` costs with the catalog full.
    pub(crate) poll: PollCost,
    /// The refresh after `router.scan`.
    pub(crate) refresh: Refresh,
    /// How `serve` ended and what it logged.
    pub(crate) end: End,
}

/// The refresh a `router.scan` triggers.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    /// Wall time of the `router.scan` call, and its `duration_ms`.
    pub(crate) scan: (Duration, u64),
    /// From the call to the first poll that saw every `fetched_unix_ms` advanced.
    pub(crate) after: Duration,
    /// `serve`'s CPU over the same time.
    pub(crate) cpu: Duration,
    /// Polls of `router.services` meanwhile.
    pub(crate) polls: usize,
    /// Services not `ok`, or with another fingerprint, after the refresh.
    pub(crate) changed: usize,
    /// `VmRSS`, `VmHWM` and threads of `serve` after the refresh.
    pub(crate) mem: Mem,
}

/// The `router.methods` call.
#[derive(Debug, Clone)]
pub(crate) struct Methods {
    /// Entries in all (the router's own included).
    pub(crate) total: usize,
    /// Entries of the benchmark's services.
    pub(crate) ours: usize,
    /// Size of the answer, bytes.
    pub(crate) bytes: usize,
    /// Wall time of the call.
    pub(crate) wall: Duration,
    /// `serve`'s CPU for the call.
    pub(crate) cpu: Duration,
    /// `serve`'s memory after it.
    pub(crate) mem: Mem,
}

/// What one `router.services` call costs `serve`, averaged over [`POLL_COST_CALLS`] calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollCost {
    /// Size of the answer, bytes.
    pub(crate) bytes: usize,
    /// Wall time per call.
    pub(crate) wall: Duration,
    /// `serve`'s CPU per call.
    pub(crate) cpu: Duration,
}

/// A memory reading of `serve`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mem {
    /// `VmRSS`, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM`, KiB.
    pub(crate) hwm_kib: u64,
    /// Threads.
    pub(crate) threads: u64,
}

/// What one `router.services` answer says about the benchmark's services.
#[derive(Debug, Default)]
struct Snapshot {
    /// Services seen.
    seen: usize,
    /// Services with `spec.state == "ok"` and a fingerprint.
    ok: usize,
    /// Services fetched at least once (any state).
    fetched: usize,
    /// `fetched_unix_ms` and fingerprint of each service fetched.
    specs: HashMap<String, (u64, Option<String>)>,
    /// The first service not `ok` after a fetch: `name: state: reason`.
    first_bad: Option<String>,
}

// === impl Snapshot ===

impl Snapshot {
    /// Reads a `router.services` result.
    fn of(services: &Value) -> anyhow::Result<Snapshot> {
        let list = services
            .as_array()
            .with_context(|| "router.services: not an array")?;
        let mut snap = Snapshot::default();
        for s in list {
            let name = s["name"].as_str().unwrap_or_default();
            if !name.starts_with(PREFIX) {
                continue;
            }
            snap.seen += 1;
            let spec = &s["spec"];
            let Some(at) = spec["fetched_unix_ms"].as_u64() else {
                continue;
            };
            snap.fetched += 1;
            let state = spec["state"].as_str().unwrap_or("?");
            let fingerprint = spec["fingerprint"].as_str().map(str::to_owned);
            if state == "ok" && fingerprint.is_some() {
                snap.ok += 1;
            } else if snap.first_bad.is_none() {
                snap.first_bad = Some(format!("{name}: {state}: {}", spec["reason"]));
            }
            snap.specs.insert(name.to_owned(), (at, fingerprint));
        }
        Ok(snap)
    }
}

/// Reads `VmRSS`, `VmHWM` and `Threads` of `serve`.
fn mem(serve: &Serve) -> anyhow::Result<Mem> {
    Ok(Mem {
        rss_kib: serve.status("VmRSS")?,
        hwm_kib: serve.status("VmHWM")?,
        threads: serve.status("Threads")?,
    })
}

/// The OpenRPC 1.3.2 document of service `name` (the `index`th): [`METHODS_PER_DOC`] methods
/// with params, results and descriptions naming the service, components they `$ref`, and
/// `info.description` padded so the compact JSON is [`DOC_BYTES`] long.
pub(crate) fn document(name: &str, index: usize) -> Value {
    let mut methods = Vec::with_capacity(METHODS_PER_DOC);
    for noun in NOUNS {
        let ty = format!("#/components/schemas/{}", capitalize(noun));
        for verb in VERBS {
            let (result, schema) = match verb {
                "list" | "search" => (
                    format!("{noun}s"),
                    json!({"type": "array", "items": {"$ref": ty}}),
                ),
                "count" => ("count".to_owned(), json!({"type": "integer", "minimum": 0})),
                "delete" => ("deleted".to_owned(), json!({"type": "boolean"})),
                _ => (noun.to_owned(), json!({"$ref": ty})),
            };
            let key = match verb {
                "list" | "count" | "search" => json!({
                    "name": "filter",
                    "description": format!("Which {noun} records of {name} to take."),
                    "schema": {"$ref": "#/components/schemas/Filter"},
                }),
                _ => json!({
                    "name": "id",
                    "description": format!("The {noun}'s id in {name}."),
                    "required": true,
                    "schema": {"$ref": "#/components/schemas/Id"},
                }),
            };
            methods.push(json!({
                "name": format!("{verb}_{noun}"),
                "summary": format!("{} {noun} records of {name}.", capitalize(verb)),
                "description": format!("{} {noun} records kept by {name}.", capitalize(verb)),
                "params": [key, {"name": "trace", "schema": {"type": "string", "maxLength": 64}}],
                "result": {"name": result, "schema": schema},
            }));
        }
    }
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Id".into(),
        json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}),
    );
    schemas.insert(
        "Filter".into(),
        json!({
            "type": "object",
            "properties": {
                "prefix": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
            "additionalProperties": false,
        }),
    );
    for noun in NOUNS {
        schemas.insert(
            capitalize(noun),
            json!({
                "type": "object",
                "description": format!("A {noun} of {name}."),
                "required": ["id", "name"],
                "properties": {
                    "id": {"$ref": "#/components/schemas/Id"},
                    "name": {"type": "string"},
                    "created_unix_ms": {"type": "integer", "minimum": 0},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }),
        );
    }
    let intro = format!("Catalog benchmark service {name}, number {index}.");
    let mut doc = json!({
        "openrpc": "1.3.2",
        "info": {
            "title": format!("{name} (hero_bench catalog)"),
            "version": format!("1.{index}.0"),
            "description": intro,
        },
        "methods": methods,
        "components": {"schemas": schemas},
    });
    // ASCII without characters JSON escapes: one byte of padding is one byte of document.
    let pad = DOC_BYTES.saturating_sub(doc.to_string().len());
    let filler = format!(" {name} is one of many services generated for the catalog benchmark.");
    let padding: String = filler.chars().cycle().take(pad).collect();
    doc["info"]["description"] = Value::String(intro + &padding);
    doc
}

/// `word` with its first letter in upper case.
fn capitalize(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Binds `n` example services under `root`, each serving its own [`document`]; returns them
/// and the smallest and largest document size.
async fn spawn_services(
    root: PathBuf,
    n: usize,
    silent_percent: usize,
) -> anyhow::Result<(Vec<Running>, (usize, usize))> {
    let (mut running, mut sizes) = (Vec::with_capacity(n), (usize::MAX, 0));
    for i in 0..n {
        let name = format!("{PREFIX}{i:04}");
        let doc = document(&name, i);
        let len = doc.to_string().len();
        ensure!(
            len.abs_diff(DOC_BYTES) <= DOC_SLACK,
            "{name}'s document is {len} bytes, not {DOC_BYTES} ± 5 %"
        );
        sizes = (sizes.0.min(len), sizes.1.max(len));
        // Spread evenly: service i is silent when the running share falls behind.
        if (i + 1) * silent_percent / 100 > i * silent_percent / 100 {
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir)?;
            let silent = SilentService::bind(&dir.join("rpc.sock"), doc.to_string())?;
            running.push(Running::Silent(silent));
            continue;
        }
        let mut cfg = ServiceConfig::new(&root, name);
        cfg.spec = Spec::Document(doc);
        running.push(Running::Example(hero_example_service::spawn(cfg).await?));
    }
    Ok((running, sizes))
}

/// Polls `router.services` until `done` holds for the snapshot (returned with the number of
/// polls and the slowest one), or fails at `deadline`, or as soon as every service has been
/// fetched and one of them is not `ok`.
fn poll_until(
    serve: &mut Serve,
    deadline: Instant,
    mut done: impl FnMut(&Snapshot) -> bool,
    mut seen: impl FnMut(&Snapshot),
) -> anyhow::Result<(Snapshot, usize, Duration)> {
    let (mut polls, mut slowest) = (0, Duration::ZERO);
    loop {
        serve.alive()?;
        let t = Instant::now();
        let snap = Snapshot::of(&serve.call("router.services", json!([]))?)?;
        slowest = slowest.max(t.elapsed());
        polls += 1;
        seen(&snap);
        if done(&snap) {
            return Ok((snap, polls, slowest));
        }
        if let Some(bad) = snap
            .first_bad
            .as_ref()
            .filter(|_| snap.fetched == snap.seen)
        {
            bail!(
                "{} of {} services fetched, {} ok; first not ok: {bad}",
                snap.fetched,
                snap.seen,
                snap.ok
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out: {} services seen, {} fetched, {} ok; first not ok: {}{}",
                snap.seen,
                snap.fetched,
                snap.ok,
                snap.first_bad.as_deref().unwrap_or("none"),
                serve.log_tail()
            );
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// The catalog benchmark: fill, then refresh (see the module docs).
pub(crate) fn run(cfg: &Config, rt: &tokio::runtime::Runtime) -> anyhow::Result<Fill> {
    let n = cfg.services;
    ensure!(n > 0, "--catalog-services must be positive");
    let need = n as u64 * FDS_PER_SERVICE + 1024;
    let (nofile, err) = raise_nofile(need);
    ensure!(
        nofile >= need,
        "RLIMIT_NOFILE is {nofile} ({err:?}); {n} services need {need}"
    );
    let t0 = Instant::now();
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let (services, doc_bytes) = rt.block_on(spawn_services(
        dir.path().to_path_buf(),
        n,
        cfg.silent_percent,
    ))?;
    let setup = t0.elapsed();
    let result = measure(cfg, n, doc_bytes, setup, nofile, &dir);
    rt.block_on(async {
        let mut stopping = tokio::task::JoinSet::new();
        for s in services {
            match s {
                Running::Example(s) => drop(stopping.spawn(s.shutdown())),
                Running::Silent(s) => drop(s),
            }
        }
        stopping.join_all().await;
    });
    result
}

/// Spawns `serve` on the root of `n` running services and measures fill and refresh.
fn measure(
    cfg: &Config,
    n: usize,
    doc_bytes: (usize, usize),
    setup: Duration,
    nofile: u64,
    dir: &tempfile::TempDir,
) -> anyhow::Result<Fill> {
    let bench_cpu0 = cpu_self();
    let mut serve = Serve::start(&cfg.bin, dir.path(), "1h")?;
    let spawned = serve.spawned;
    let ready_after = serve.wait_ready()?;
    let cpu_ready = serve.cpu()?;
    serve.announce(ready_after);
    let (mut first_ok_after, mut half_after) = (None, None);
    let (full, polls, slowest) = poll_until(
        &mut serve,
        spawned + FILL_TIMEOUT,
        |s| s.seen == n && s.ok == n,
        |s| {
            if s.ok > 0 {
                first_ok_after.get_or_insert(spawned.elapsed());
            }
            if s.ok * 2 >= n {
                half_after.get_or_insert(spawned.elapsed());
            }
        },
    )?;
    let full_after = spawned.elapsed();
    let cpu_full = serve.cpu()?;
    let bench_cpu = cpu_self().saturating_sub(bench_cpu0);
    let full_mem = mem(&serve)?;
    let fingerprints: HashSet<&str> = full.specs.values().filter_map(|s| s.1.as_deref()).collect();
    let fingerprints = fingerprints.len();
    let refresh = refresh(&mut serve, &full)?;
    let poll = poll_cost(&serve)?;
    let methods = methods(&serve)?;
    Ok(Fill {
        doc_bytes,
        setup,
        nofile,
        ready_after,
        first_ok_after: first_ok_after.unwrap_or(full_after),
        half_after: half_after.unwrap_or(full_after),
        full_after,
        cpu: (cpu_full, cpu_full.saturating_sub(cpu_ready)),
        bench_cpu,
        full_mem,
        fingerprints,
        methods,
        polls,
        slowest_poll: slowest,
        poll,
        refresh,
        end: serve.stop(),
    })
}

/// One `router.scan`, then polls until every service was fetched again after `full`.
fn refresh(serve: &mut Serve, full: &Snapshot) -> anyhow::Result<Refresh> {
    let cpu0 = serve.cpu()?;
    let t = Instant::now();
    let (_, duration_ms) = serve.scan()?;
    let scan_wall = t.elapsed();
    let advanced = |s: &Snapshot| {
        full.specs.iter().all(|(name, (before, _))| {
            s.specs
                .get(name)
                .is_some_and(|(at, fp)| at > before && fp.is_some())
        })
    };
    let (after, polls, _) = poll_until(serve, t + FILL_TIMEOUT, advanced, |_| {})?;
    let elapsed = t.elapsed();
    let cpu = serve.cpu()?.saturating_sub(cpu0);
    let changed = full
        .specs
        .iter()
        .filter(|(name, (_, fp))| after.specs.get(*name).is_none_or(|a| a.1 != *fp))
        .count()
        + (after.seen - after.ok);
    Ok(Refresh {
        scan: (scan_wall, duration_ms),
        after: elapsed,
        cpu,
        polls,
        changed,
        mem: mem(serve)?,
    })
}

/// [`POLL_COST_CALLS`] `router.services` calls back to back: size, wall and CPU per call.
fn poll_cost(serve: &Serve) -> anyhow::Result<PollCost> {
    let (cpu0, t) = (serve.cpu()?, Instant::now());
    let mut bytes = 0;
    for _ in 0..POLL_COST_CALLS {
        bytes = serve.call("router.services", json!([]))?.to_string().len();
    }
    Ok(PollCost {
        bytes,
        wall: t.elapsed() / POLL_COST_CALLS,
        cpu: serve.cpu()?.saturating_sub(cpu0) / POLL_COST_CALLS,
    })
}

/// One `router.methods` call: the count, what it cost, and `serve`'s memory after it.
fn methods(serve: &Serve) -> anyhow::Result<Methods> {
    let (cpu0, t) = (serve.cpu()?, Instant::now());
    let answer = serve.call("router.methods", json!([]))?;
    let (wall, cpu) = (t.elapsed(), serve.cpu()?.saturating_sub(cpu0));
    let list = answer.as_array().context("router.methods: not an array")?;
    let ours = list
        .iter()
        .filter(|m| m["service"].as_str().is_some_and(|s| s.starts_with(PREFIX)))
        .count();
    Ok(Methods {
        total: list.len(),
        ours,
        bytes: answer.to_string().len(),
        wall,
        cpu,
        mem: mem(serve)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_valid_distinct_and_about_20_kb() {
        let (a, b) = (document("cat_0000", 0), document("cat_0999", 999));
        for doc in [&a, &b] {
            let v = hero_router::test_hooks::validate_openrpc(doc);
            assert!(v.is_valid(), "{:?}", v.errors);
            assert_eq!(doc["methods"].as_array().unwrap().len(), METHODS_PER_DOC);
            let len = doc.to_string().len();
            assert!(len.abs_diff(DOC_BYTES) <= DOC_SLACK, "{len} bytes");
        }
        assert_ne!(a, b);
        assert!(a["info"]["title"].as_str().unwrap().contains("cat_0000"));
    }

    #[test]
    fn unpadded_document_leaves_room_for_padding() {
        let doc = document("cat_0000", 0);
        let desc = doc["info"]["description"].as_str().unwrap();
        // Most of the size is the methods, not the padding.
        assert!(
            desc.len() < DOC_BYTES / 2,
            "padding of {} bytes",
            desc.len()
        );
    }
}
