//! The service catalog as published: per service, its manifest and OpenRPC document with
//! their state (docs/catalog.md). Written only by the catalog fetcher, swapped whole like the
//! table; readers join it with the table by service name.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use serde_json::value::RawValue;

use super::table::{Service, ServiceStatus};

/// Every catalog entry, by service name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Entries by service name.
    pub entries: BTreeMap<Arc<str>, Arc<CatalogEntry>>,
}

/// What the catalog knows about one service.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The manifest's `title`, `version`, `description` (absent fields: `None`).
    pub manifest: ManifestInfo,
    /// Why the manifest could not be used, if it could not. Shared: thousands of services
    /// failing alike hold one copy of the text.
    pub manifest_error: Option<Arc<str>>,
    /// The spec's state, as `Service.spec` shows it.
    pub spec: SpecInfo,
    /// The spec's `info.title`, `info.version`, `info.description`.
    pub info: ManifestInfo,
    /// The document as served (kept when invalid, so a person can read it). Raw JSON text:
    /// a parsed copy costs several times its size, and readers parse it on demand.
    pub document: Option<Arc<RawValue>>,
    /// Its methods in document order.
    pub methods: Arc<[Method]>,
}

/// Title, version and description, from a manifest or a spec's `info`.
///
/// The texts of an entry are boxed `str`s, a word smaller than `String`s: an entry is 64 bytes
/// smaller with them (thousands of entries, most with no text at all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `title`.
    pub title: Option<Box<str>>,
    /// `version`.
    pub version: Option<Box<str>>,
    /// `description`.
    pub description: Option<Box<str>>,
}

/// One method of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// Its name in the spec (without the service prefix).
    pub name: String,
    /// Its summary.
    pub summary: Option<String>,
}

/// The state of a service's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecState {
    /// Fetched and valid against the OpenRPC meta-schema.
    Ok,
    /// Fetched, kept and served, but not valid: `reason` holds the first errors.
    Invalid,
    /// The service has no spec (no rpc socket, or it serves neither `GET /openrpc.json` nor
    /// `rpc.discover`), or it was not fetched yet.
    Absent,
    /// Fetching failed (timeout, garbage, too large), and there is no earlier document.
    Error,
    /// The last fetch failed, and the last good document is kept and served: `reason` says
    /// why, `fetched_unix_ms` when it was fetched; the fetch is retried with backoff.
    Stale,
}

/// `Service.spec` (docs/catalog.md#spec-states).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecInfo {
    /// The state.
    pub state: SpecState,
    /// Why it is not `ok` (shared, like [`CatalogEntry::manifest_error`]).
    pub reason: Option<Arc<str>>,
    /// `sha256:<hex>` of the document.
    pub fingerprint: Option<Box<str>>,
    /// The document's `openrpc` version.
    pub openrpc: Option<Box<str>>,
    /// When it was last fetched.
    pub fetched_unix_ms: Option<u64>,
}

/// A service as `router.services` shows it: the table's fields and the catalog's.
#[derive(Debug, Serialize)]
pub struct ServiceView<'a> {
    /// The table's fields.
    #[serde(flatten)]
    pub service: &'a Service,
    /// Manifest first, else the spec's `info`.
    pub title: Option<&'a str>,
    /// Manifest first, else the spec's `info`.
    pub version: Option<&'a str>,
    /// Manifest first, else the spec's `info`.
    pub description: Option<&'a str>,
    /// `null` without a spec.
    pub methods_count: Option<usize>,
    /// The spec's state.
    pub spec: &'a SpecInfo,
}

/// The spec of a service the catalog has no entry for, and why, from its sockets: the one
/// reason the service table, the docs and `router.spec` give.
fn unfetched(service: &Service) -> &'static SpecInfo {
    fn absent(reason: &str) -> SpecInfo {
        SpecInfo {
            state: SpecState::Absent,
            reason: Some(Arc::from(reason)),
            fingerprint: None,
            openrpc: None,
            fetched_unix_ms: None,
        }
    }
    static BUSY: LazyLock<SpecInfo> = LazyLock::new(|| {
        absent("its rpc socket is busy (backlog full): the spec is fetched once it accepts")
    });
    static NO_LIVE_SOCKET: LazyLock<SpecInfo> =
        LazyLock::new(|| absent("the service has no live socket to fetch a spec from"));
    static NOT_YET: LazyLock<SpecInfo> = LazyLock::new(|| absent("not fetched yet"));
    match service.status {
        ServiceStatus::Degraded => &BUSY,
        ServiceStatus::Unhealthy => &NO_LIVE_SOCKET,
        ServiceStatus::Healthy | ServiceStatus::NonRpc => &NOT_YET,
    }
}

// === impl Catalog ===

impl Catalog {
    /// The entry of `service`.
    pub fn get(&self, service: &str) -> Option<&Arc<CatalogEntry>> {
        self.entries.get(service)
    }

    /// Why `service` has no spec to serve: its entry's reason, or why it has no entry.
    pub fn no_spec_reason(&self, service: &Service) -> Arc<str> {
        let spec = self
            .get(&service.name)
            .map_or(unfetched(service), |e| &e.spec);
        spec.reason.clone().unwrap_or_else(|| Arc::from("no spec"))
    }

    /// `service` with its catalog fields.
    pub fn view<'a>(&'a self, service: &'a Service) -> ServiceView<'a> {
        match self.get(&service.name) {
            Some(e) => e.view(service),
            None => ServiceView {
                service,
                title: None,
                version: None,
                description: None,
                methods_count: None,
                spec: unfetched(service),
            },
        }
    }

    /// Every method of every healthy service with a spec, as `router.methods` lists them:
    /// (service, method, summary), sorted by service then method.
    pub fn methods<'a>(
        &'a self,
        services: &'a [Arc<Service>],
    ) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
        let mut out: Vec<_> = services
            .iter()
            .filter(|s| s.status == ServiceStatus::Healthy)
            .filter_map(|s| Some((s.name.as_str(), self.get(&s.name)?)))
            .filter(|(_, e)| e.document.is_some())
            .flat_map(|(name, e)| {
                e.methods
                    .iter()
                    .map(move |m| (name, m.name.as_str(), m.summary.as_deref()))
            })
            .collect();
        out.sort_unstable();
        out
    }
}

// === impl CatalogEntry ===

impl CatalogEntry {
    /// `service` with this entry's fields.
    pub fn view<'a>(&'a self, service: &'a Service) -> ServiceView<'a> {
        let pick = |m: &'a Option<Box<str>>, i: &'a Option<Box<str>>| m.as_deref().or(i.as_deref());
        ServiceView {
            service,
            title: pick(&self.manifest.title, &self.info.title),
            version: pick(&self.manifest.version, &self.info.version),
            description: pick(&self.manifest.description, &self.info.description),
            methods_count: self.document.as_ref().map(|_| self.methods.len()),
            spec: &self.spec,
        }
    }
}

// === impl SpecState ===

impl SpecState {
    /// True if a service in this state has a document to serve (`ok`, `invalid`, `stale`),
    /// by the state's contract name.
    pub fn has_document(name: &str) -> bool {
        matches!(name, "ok" | "invalid" | "stale")
    }

    /// The contract's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecState::Ok => "ok",
            SpecState::Invalid => "invalid",
            SpecState::Absent => "absent",
            SpecState::Error => "error",
            SpecState::Stale => "stale",
        }
    }
}
