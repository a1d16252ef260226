//! Typed clients generated from a service's OpenRPC document (docs/clients.md): a Python
//! module and a TypeScript module per service.
//!
//! ```text
//! document text ─► JSON (serde_json with `preserve_order`: the spec's member order kept) ─► model (methods, named
//!     types; references stay names) ─► safe names per language ─► one minijinja template
//!     per language (templates/client.{py,ts}.j2)
//! ```
//!
//! Pure and bounded: the same document always generates the same bytes, and a hostile one
//! costs bounded time and memory (see [`model`]). The router generates off its connection
//! threads and keeps each module by the document's fingerprint in the docs cache
//! ([`served`]); `hero_router client` generates in the CLI.

use std::sync::{Arc, OnceLock};

use minijinja::Environment;
use minijinja::value::Serde;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::docs::Page;
use crate::docs::cache::{self, Busy, Key, Kind, Shown, Status};

mod model;
mod names;
mod python;
mod typescript;

/// The templates, by the name they are rendered under.
const TEMPLATES: [(&str, &str); 2] = [
    ("client.py", include_str!("templates/client.py.j2")),
    ("client.ts", include_str!("templates/client.ts.j2")),
];

/// A client's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub enum Lang {
    /// Python 3.10+.
    Python,
    /// TypeScript (an ES module).
    TypeScript,
}

// === impl Lang ===

impl Lang {
    /// The module's file extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Lang::Python => "py",
            Lang::TypeScript => "ts",
        }
    }

    /// The file a service's module is written to: `SERVICE.ts`; `SERVICE.py` with dashes as
    /// underscores (an importable module name), and `_client` appended when that name is a
    /// Python keyword or a standard-library module (a `json.py` would import itself where it
    /// imports `json`, an `email.py` would break `http.client`, which loads `email`).
    pub(crate) fn file_name(self, service: &str) -> String {
        match self {
            Lang::Python => {
                let mut module = service.replace('-', "_");
                // `2fa.py` cannot be imported: a name starts with a letter or `_`.
                if module.starts_with(|c: char| c.is_ascii_digit()) {
                    module.insert_str(0, "n_");
                }
                let shadows = names::PYTHON_KEYWORDS.contains(&module.as_str())
                    || names::PYTHON_STDLIB.contains(&module.as_str());
                match shadows {
                    true => format!("{module}_client.py"),
                    false => format!("{module}.py"),
                }
            }
            Lang::TypeScript => format!("{service}.ts"),
        }
    }

    /// The `content-type` the router serves the module with.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Lang::Python => "text/x-python; charset=utf-8",
            Lang::TypeScript => "text/typescript; charset=utf-8",
        }
    }
}

/// The client module in `lang` for `service` from its document's text. A text that is not
/// JSON generates a client without methods.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn generate(lang: Lang, service: &str, document: &str) -> String {
    let spec: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
    let api = model::build(service, &spec);
    match lang {
        Lang::Python => python::generate(&api),
        Lang::TypeScript => typescript::generate(&api),
    }
}

/// A service's client as the router serves it: kept from an earlier request for the same
/// document (by `fingerprint`), else generated on a render thread of the docs cache.
/// `Err` when its queue is full.
pub(crate) async fn served(
    lang: Lang,
    service: String,
    document: Arc<RawValue>,
    fingerprint: Option<String>,
) -> Result<(Arc<Page>, Status), Busy> {
    let key = fingerprint.map(|fingerprint| Key {
        kind: Kind::Client(lang.extension()),
        fingerprint,
        shown: Shown {
            name: service.clone(),
            ..Shown::default()
        },
    });
    cache::shared()
        .get(key, move |_budget| Page {
            // Generation has its own bounds (see `model`); no page budget applies.
            text: generate(lang, &service, document.get()),
            refused: None,
        })
        .await
}

/// The module header's lines: what the module is, the API's version and description, and
/// what could not be generated.
pub(super) fn header_lines(api: &model::Api) -> Vec<String> {
    let name = api.title.as_deref().unwrap_or(&api.service).trim();
    // "the Hero example service", not "the Hero example service service".
    let noun = match name.to_ascii_lowercase().ends_with("service") {
        true => "",
        false => " service",
    };
    let mut header = vec![format!(
        "Typed client of the {name}{noun}, generated by hero_router from its OpenRPC document."
    )];
    if let Some(v) = &api.version {
        header.push(format!("API version {v}."));
    }
    if let Some(d) = &api.description {
        header.push(String::new());
        header.extend(doc_lines(d));
    }
    for note in &api.notes {
        header.push(String::new());
        header.push(format!("Note: {note}."));
    }
    header.push(String::new());
    header
}

/// A method's summary and description, else a line naming it.
pub(super) fn summary_lines(m: &model::Method) -> Vec<String> {
    let mut doc = Vec::new();
    if let Some(s) = &m.summary {
        doc.extend(doc_lines(s));
    }
    if let Some(d) = &m.description {
        if !doc.is_empty() {
            doc.push(String::new());
        }
        doc.extend(doc_lines(d));
    }
    if doc.is_empty() {
        doc.push(format!("Calls {}.", string_literal(&m.wire)));
    }
    doc
}

/// `s` as a string literal of both languages (a JSON string is one in each).
pub(super) fn string_literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Text split into lines for a comment or docstring: any line break, trailing blanks
/// dropped, no empty first or last line.
pub(super) fn doc_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .replace("\r\n", "\n")
        .split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'])
        .map(|l| l.trim_end().to_owned())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    lines.drain(..first);
    lines
}

fn render(name: &str, view: impl Serialize) -> String {
    let rendered = environment()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(Serde(view))));
    // The templates are fixed and their tests render every branch; an error here is a bug
    // in them, shown rather than hidden (and a module that does not parse).
    rendered.unwrap_or_else(|e| format!("hero_router: template {name} failed: {e:#}\n"))
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = crate::docs::template_environment();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "client template does not parse");
            }
        }
        env
    })
}

#[cfg(test)]
mod tests;
