//! API docs from OpenRPC documents (docs/docs-and-mcp.md#api-docs): Markdown and one self-contained
//! HTML page per service, and an index of services.
//!
//! Pure: a document in, text out; no I/O, no clock, so the same document always renders the
//! same bytes. The pipeline is
//!
//! ```text
//! spec ─► dereference (every local $ref expanded, bounded) ─► view (plain strings: readable
//!         types, example JSON, notes) ─► one minijinja template per format (templates/*.j2)
//! ```
//!
//! The templates are embedded in the binary. The HTML ones auto-escape everything they print
//! (no JavaScript, inline CSS, no external assets); the Markdown ones escape through the
//! `md_*` filters of `markdown.rs`, which keep service text text in any CommonMark or GFM
//! renderer (no raw HTML, link, heading or code block of its own; a table cell stays one
//! cell).
//!
//! Any JSON renders: a member of the wrong kind is skipped with a note on the page, a `$ref`
//! that cannot be expanded (dangling, a cycle, past the size limits) is shown by name with a
//! note, and every loop is bounded, so a hostile document costs bounded time and memory.
//! Each page also has a [`Budget`] (CPU time, output bytes, bytes copied out of `$ref`
//! targets), checked as it renders: a page over it is not finished, and a short page says so
//! instead and links the document itself ([`too_large`]).
//!
//! The router renders off its connection threads and caches pages by document fingerprint
//! ([`cache`]); `hero_router markdown|html` renders in the CLI, within the same budget.

use std::any::Any;
use std::borrow::Cow;
use std::io;
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod deref;
mod markdown;
pub(crate) mod pages;
mod schema;
mod view;

pub(crate) use budget::{Budget, OverBudget};
pub(crate) use schema::{example_value, readable_type};

use budget::Meter;
use pages::Format;

/// The templates, by the name they are rendered under (the extension picks the escaping).
const TEMPLATES: [(&str, &str); 7] = [
    ("service.md", include_str!("templates/service.md.j2")),
    ("service.html", include_str!("templates/service.html.j2")),
    ("refused.md", include_str!("templates/refused.md.j2")),
    ("refused.html", include_str!("templates/refused.html.j2")),
    ("index.md", include_str!("templates/index.md.j2")),
    ("index.html", include_str!("templates/index.html.j2")),
    ("style.css", include_str!("templates/style.css")),
];

/// What a link target escapes: everything but letters, digits and `-._~`.
const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded as one segment of a link.
fn link_segment(text: &str) -> String {
    utf8_percent_encode(text, LINK).to_string()
}

/// One service to document.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub struct DocService<'a> {
    /// The service name, as in `<service>.<method>` calls.
    pub name: &'a str,
    /// Its OpenRPC document (any JSON: a broken document renders with notes).
    pub spec: &'a serde_json::Value,
    /// A title to use instead of the spec's `info.title` (the manifest's, say).
    pub title: Option<&'a str>,
    /// A version to use instead of the spec's `info.version`.
    pub version: Option<&'a str>,
    /// A description to use instead of the spec's `info.description`.
    pub description: Option<&'a str>,
    /// Why the document is not valid OpenRPC (the catalog's first errors), shown first on the
    /// page; `None` for a valid document.
    pub invalid: Option<&'a str>,
    /// The router serves the page (at `/docs/{name}`): it links the generated clients beside
    /// it. A page the CLI writes names the commands that write them instead.
    pub served: bool,
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub struct IndexEntry {
    /// The service name.
    pub name: String,
    /// Its title, if known.
    pub title: Option<String>,
    /// Its version, if known.
    pub version: Option<String>,
    /// Its description, if known.
    pub description: Option<String>,
    /// How many methods its spec has; `None` without a spec.
    pub methods_count: Option<usize>,
    /// The spec's state (`ok`, `invalid`, `absent`, `error`). Only `ok` and `invalid`
    /// services have a page, so only they are linked.
    pub spec_state: String,
}

/// A service's page: its docs, or the short page that says why they could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// The text.
    pub text: String,
    /// Why the docs were over budget, when `text` is the short page.
    pub refused: Option<OverBudget>,
}

/// What the page served instead of docs over budget shows.
#[derive(Serialize)]
struct TooLargeView<'a> {
    name: &'a str,
    title: &'a str,
    why: String,
    /// The document itself, as the router serves it.
    href: String,
}

/// The service's API docs in CommonMark (with GFM tables): header, table of contents, then
/// per method its params, result, errors and an example request and response. Over the
/// default [`Budget`], the [`too_large`] page instead.
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn markdown(svc: &DocService<'_>) -> String {
    Page::within(svc, Format::Markdown, &Budget::default()).text
}

/// The service's API docs as one self-contained HTML page (inline CSS, no scripts, no
/// external assets), with the same content as [`markdown`]. Over the default [`Budget`], the
/// [`too_large`] page instead.
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn html(svc: &DocService<'_>) -> String {
    Page::within(svc, Format::Html, &Budget::default()).text
}

/// The service's API docs in `format`, or why they are over `budget` (the render stops as
/// soon as they are).
pub(crate) fn page(
    svc: &DocService<'_>,
    format: Format,
    budget: &Budget,
) -> Result<String, OverBudget> {
    let mut meter = Meter::start(*budget);
    let view = view::service(svc, &mut meter)?;
    let name = match format {
        Format::Markdown => "service.md",
        Format::Html => "service.html",
    };
    render_within(name, view, &mut meter)
}

/// The short page served instead of docs over budget: the service, why, and a link to the
/// document itself (`/docs/{name}/openrpc.json`).
pub(crate) fn too_large(svc: &DocService<'_>, format: Format, why: &OverBudget) -> String {
    let view = TooLargeView {
        name: svc.name,
        title: svc
            .title
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(svc.name),
        why: why.to_string(),
        href: format!("/docs/{}/openrpc.json", utf8_percent_encode(svc.name, LINK)),
    };
    match format {
        Format::Markdown => render("refused.md", view),
        Format::Html => render("refused.html", view),
    }
}

/// The index in Markdown: a table of services, sorted by name, each with a page linked as
/// its file ([`pages::page_file`], percent-encoded).
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn index_markdown(entries: &[IndexEntry]) -> String {
    let href = |name: &str| utf8_percent_encode(&pages::page_file(name, "md"), LINK).to_string();
    render("index.md", view::index(entries, &href))
}

/// The index as one HTML page; `link` gives each page's target (a file name, `/docs/{name}`…),
/// which the page escapes but does not otherwise change.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn index_html(entries: &[IndexEntry], link: &dyn Fn(&str) -> String) -> String {
    render("index.html", view::index(entries, link))
}

// === impl Page ===

impl Page {
    /// `svc`'s page in `format` within `budget`, or the [`too_large`] page.
    pub(crate) fn within(svc: &DocService<'_>, format: Format, budget: &Budget) -> Page {
        match page(svc, format, budget) {
            Ok(text) => Page {
                text,
                refused: None,
            },
            Err(why) => Page {
                text: too_large(svc, format, &why),
                refused: Some(why),
            },
        }
    }

    /// What a render that panicked leaves: a bug, shown rather than hidden.
    pub(crate) fn failed(panic: &(dyn Any + Send)) -> Page {
        let why = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        Page {
            text: format!("hero_router docs: rendering failed: {why}\n"),
            refused: None,
        }
    }
}

/// Renders template `name` into a buffer that counts against `meter`: the render stops at the
/// first write past the budget.
fn render_within(
    name: &str,
    view: impl Serialize,
    meter: &mut Meter,
) -> Result<String, OverBudget> {
    // The view counted what it printed, a lower bound of the page; the page counts itself.
    meter.restart_output();
    let mut out = Metered {
        buf: Vec::new(),
        meter,
    };
    let rendered = environment()
        .get_template(name)
        .and_then(|t| t.render_captured_to(minijinja::Value::from(Serde(view)), &mut out));
    let Metered { buf, meter } = out;
    meter.result()?;
    Ok(match rendered {
        // Templates write only `str`s.
        Ok(_) => String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(e) => format!("hero_router docs: template {name} failed: {e:#}\n"),
    })
}

/// A page being written, counted against its budget.
struct Metered<'m> {
    buf: Vec<u8>,
    meter: &'m mut Meter,
}

impl io::Write for Metered<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.meter.output(bytes.len()) {
            return Err(io::Error::other("over the render budget"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn render(name: &str, view: impl Serialize) -> String {
    let rendered = environment()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(Serde(view))));
    // The templates are fixed and their tests render every branch; an error here is a bug
    // in them, shown rather than hidden.
    rendered.unwrap_or_else(|e| format!("hero_router docs: template {name} failed: {e:#}\n"))
}

/// A template environment as every generated text is written with: an undefined value is an
/// error, block tags take their line with them, a final newline is kept.
pub(crate) fn template_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build();
    env.set_syntax(syntax.unwrap_or_default());
    env
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = template_environment();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // Every value a page prints is a service's text: its bidirectional controls are
        // written out (`\u202E`), so that none reorders the page's own text around it (a
        // name inside an example's JSON or a type, the page's title).
        env.set_formatter(|out, state, value| {
            let Some(text) = value.as_str() else {
                return minijinja::escape_formatter(out, state, value);
            };
            match crate::browser::bidi_visible(text) {
                Cow::Borrowed(_) => minijinja::escape_formatter(out, state, value),
                Cow::Owned(visible) => {
                    let value = match value.is_safe() {
                        true => minijinja::Value::from_safe_string(visible),
                        false => minijinja::Value::from(visible),
                    };
                    minijinja::escape_formatter(out, state, &value)
                }
            }
        });
        env.add_filter("md_text", |s: &str| markdown::md_text(s));
        env.add_filter("md_line", |s: &str| markdown::md_line(s));
        env.add_filter("md_cell", |s: &str| markdown::md_cell(s));
        env.add_filter("md_code", |s: &str| markdown::md_code(s));
        env.add_filter("md_code_cell", |s: &str| markdown::md_code_cell(s));
        env.add_filter("md_fence", |s: &str| markdown::md_fence(s));
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "docs template does not parse");
            }
        }
        env
    })
}

#[cfg(test)]
mod tests;
