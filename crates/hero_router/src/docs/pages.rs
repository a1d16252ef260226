//! The docs pages of the services the registry knows: the one place that turns the table and
//! the catalog into what the renderer takes (for `GET /docs/…`), and a service list from
//! `router.services` into index entries (for `hero_router markdown|html`).

use serde_json::Value;

use super::{DocService, IndexEntry};
use crate::registry::catalog::{Catalog, ServiceView, SpecState};
use crate::registry::table::Table;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CommonMark.
    Markdown,
    /// One self-contained HTML page.
    Html,
}

/// Every service of the table, with its catalog fields, as index entries.
pub fn index_entries(table: &Table, catalog: &Catalog) -> Vec<IndexEntry> {
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

/// An index entry from one Service object of `router.services` (CONTRACT §4, §8).
pub fn index_entry_of_json(s: &Value) -> IndexEntry {
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
/// router shows for it (the manifest's first), and why the document is invalid, if it is.
pub fn service_page(
    entry: &IndexEntry,
    spec: &Value,
    invalid: Option<&str>,
    format: Format,
) -> String {
    let svc = DocService {
        name: &entry.name,
        spec,
        title: entry.title.as_deref(),
        version: entry.version.as_deref(),
        description: entry.description.as_deref(),
        invalid,
    };
    match format {
        Format::Markdown => super::markdown(&svc),
        Format::Html => super::html(&svc),
    }
}

/// The page for a view of the registry.
pub fn view_page(view: &ServiceView<'_>, spec: &Value, format: Format) -> String {
    let invalid = (view.spec.state == SpecState::Invalid)
        .then_some(view.spec.reason.as_deref())
        .flatten();
    service_page(&entry_of_view(view), spec, invalid, format)
}

/// Why a Service object of `router.services` says its spec is invalid, if it does.
pub fn invalid_reason_of_json(s: &Value) -> Option<&str> {
    (s["spec"]["state"] == "invalid")
        .then(|| s["spec"]["reason"].as_str())
        .flatten()
}
