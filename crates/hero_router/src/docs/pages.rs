//! The docs pages of the services the registry knows: the one place that turns the table and
//! the catalog into what the renderer takes (for `GET /docs/…`, through [`super::cache`]), and
//! a service list from `router.services` into index entries (for `hero_router markdown|html`).

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use super::cache::{self, Busy, Key, Kind, Shown, Status};
use super::{Budget, DocService, IndexEntry, Page};
use crate::registry::catalog::{Catalog, ServiceView, SpecState};
use crate::registry::table::Table;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// CommonMark.
    Markdown,
    /// One self-contained HTML page.
    Html,
}

/// The file `markdown|html --out` writes a service's page to, and the index links:
/// `{name}.{ext}`, except for a service called `index` (in any case), whose page would take
/// the index's own file: `index.service.{ext}`. No service name holds a `.`, so that name is
/// no other service's.
pub(crate) fn page_file(name: &str, ext: &str) -> String {
    if name.eq_ignore_ascii_case("index") {
        format!("{name}.service.{ext}")
    } else {
        format!("{name}.{ext}")
    }
}

/// Every service of the table, with its catalog fields, as index entries.
pub(crate) fn index_entries(table: &Table, catalog: &Catalog) -> Vec<IndexEntry> {
    table
        .services
        .iter()
        .map(|s| entry_of_view(&catalog.view(s)))
        .collect()
}

fn entry_of_view(v: &ServiceView<'_>) -> IndexEntry {
    IndexEntry {
        name: v.service.name.clone(),
        title: v.title.map(str::to_owned),
        version: v.version.map(str::to_owned),
        description: v.description.map(str::to_owned),
        methods_count: v.methods_count,
        spec_state: v.spec.state.as_str().to_owned(),
    }
}

/// An index entry from one Service object of `router.services` (docs/json-rpc.md#service-object).
pub(crate) fn index_entry_of_json(s: &Value) -> IndexEntry {
    let text = |k: &str| s[k].as_str().map(str::to_owned);
    IndexEntry {
        name: text("name").unwrap_or_default(),
        title: text("title"),
        version: text("version"),
        description: text("description"),
        methods_count: s["methods_count"].as_u64().map(|n| n as usize),
        spec_state: s["spec"]["state"].as_str().unwrap_or("absent").to_owned(),
    }
}

/// One service's page from its document, with the title, version and description the
/// router shows for it (the manifest's first), and why the document is invalid, if it is;
/// within the default [`Budget`], else the short page that says why (as the router serves).
pub(crate) fn service_page(
    entry: &IndexEntry,
    spec: &Value,
    invalid: Option<&str>,
    format: Format,
) -> Page {
    let svc = DocService {
        name: &entry.name,
        spec,
        title: entry.title.as_deref(),
        version: entry.version.as_deref(),
        description: entry.description.as_deref(),
        invalid,
        // Written by the CLI, away from the router: no link to its `/docs/` paths.
        served: false,
    };
    Page::within(&svc, format, &Budget::default())
}

/// What the page of a view of the registry shows besides its document.
pub(crate) fn shown(view: &ServiceView<'_>) -> Shown {
    let invalid = (view.spec.state == SpecState::Invalid)
        .then_some(view.spec.reason.as_deref())
        .flatten();
    Shown {
        name: view.service.name.clone(),
        title: view.title.map(str::to_owned),
        version: view.version.map(str::to_owned),
        description: view.description.map(str::to_owned),
        invalid: invalid.map(str::to_owned),
    }
}

/// A service's page as the router serves it: kept from an earlier request for the same
/// document (by `fingerprint`) and header, else rendered on a render thread (see
/// [`cache`]). `Err` when the render queue is full.
pub(crate) async fn served(
    shown: Shown,
    document: Arc<RawValue>,
    fingerprint: Option<String>,
    format: Format,
) -> Result<(Arc<Page>, Status), Busy> {
    let key = fingerprint.map(|fingerprint| Key {
        kind: Kind::Page(format),
        fingerprint,
        shown: shown.clone(),
    });
    cache::shared()
        .get(key, move |budget| {
            // A valid document was parsed when it was fetched: this cannot fail but for
            // memory.
            let spec: Value = serde_json::from_str(document.get()).unwrap_or(Value::Null);
            let svc = DocService {
                name: &shown.name,
                spec: &spec,
                title: shown.title.as_deref(),
                version: shown.version.as_deref(),
                description: shown.description.as_deref(),
                invalid: shown.invalid.as_deref(),
                served: true,
            };
            Page::within(&svc, format, budget)
        })
        .await
}

/// Why a Service object of `router.services` says its spec is invalid, if it does.
pub(crate) fn invalid_reason_of_json(s: &Value) -> Option<&str> {
    (s["spec"]["state"] == "invalid")
        .then(|| s["spec"]["reason"].as_str())
        .flatten()
}
