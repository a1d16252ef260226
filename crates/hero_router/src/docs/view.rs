//! What the templates see: a dereferenced OpenRPC document turned into plain strings (names,
//! readable types, example JSON, notes), one shape for every template.
//!
//! Everything a document may get wrong is absorbed here: a member of the wrong kind is
//! skipped with a note saying so, never a panic, and the templates only ever loop over
//! lists and print strings.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::budget::{Meter, OverBudget};
use super::deref::{NOTE_KEY, Place, expand_each};
use super::schema::{example_value, is_never, readable_structure, readable_type};
use super::{DocService, IndexEntry};
use crate::json::kind;
use crate::registry::catalog::SpecState;

/// Most notes shown for one method or for the service; the rest are counted.
const MAX_NOTES: usize = 10;
/// Most of a method's own examples shown.
const MAX_EXAMPLES: usize = 10;
/// Most component schemas listed.
const MAX_SCHEMAS: usize = 1_000;
/// Longest anchor taken from a name, in bytes (before a `-N` suffix that makes it unique).
const MAX_ANCHOR_LEN: usize = 64;

/// One service's page.
#[derive(Serialize)]
pub(super) struct ServiceView {
    name: String,
    title: String,
    version: Option<String>,
    description: Option<String>,
    openrpc: Option<String>,
    /// Where the router serves the typed clients generated from the document (a service
    /// has a name).
    clients: Option<ClientsView>,
    methods_label: String,
    methods: Vec<MethodView>,
    schemas: Vec<SchemaView>,
    notes: Vec<String>,
}

/// The links to a service's generated clients (`/docs/{name}/client.py|.ts`).
#[derive(Serialize)]
struct ClientsView {
    /// Links beside the served page; `None` in a page the CLI writes.
    python: Option<String>,
    typescript: Option<String>,
    /// The service's name, for the CLI's `hero_router client LANG NAME`.
    name: String,
}

#[derive(Serialize)]
struct MethodView {
    anchor: String,
    name: String,
    summary: Option<String>,
    description: Option<String>,
    deprecated: bool,
    /// How params are passed, in words.
    param_structure: &'static str,
    params: Vec<ParamView>,
    result: Option<ParamView>,
    errors: Vec<ErrorView>,
    examples: Vec<ExampleView>,
    /// Whether the examples were generated from the schemas (the method has none of its own).
    examples_generated: bool,
    notes: Vec<String>,
}

/// A param or the result (a Content Descriptor).
#[derive(Serialize)]
struct ParamView {
    name: String,
    required: bool,
    #[serde(rename = "type")]
    ty: String,
    description: Option<String>,
}

#[derive(Serialize)]
struct ErrorView {
    code: String,
    message: String,
}

#[derive(Serialize)]
struct ExampleView {
    title: String,
    description: Option<String>,
    request: String,
    /// `None` for a notification (no result described).
    response: Option<String>,
}

#[derive(Serialize)]
struct SchemaView {
    anchor: String,
    name: String,
    #[serde(rename = "type")]
    ty: String,
    description: Option<String>,
}

/// The index page.
#[derive(Serialize)]
pub(super) struct IndexView {
    entries: Vec<IndexRow>,
}

#[derive(Serialize)]
struct IndexRow {
    name: String,
    href: Option<String>,
    title: Option<String>,
    version: Option<String>,
    description: Option<String>,
    methods_count: Option<usize>,
    spec_state: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ParamStructure {
    ByName,
    ByPosition,
    Either,
}

/// Example params, in the order the method declares them.
enum Params {
    ByName(Vec<(String, Value)>),
    ByPosition(Vec<Value>),
}

#[derive(Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    id: u32,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Params>,
}

#[derive(Serialize)]
struct Response<'a> {
    jsonrpc: &'static str,
    id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Value>,
}

/// Notes, deduplicated, in the order first seen, at most [`MAX_NOTES`] (then a count).
#[derive(Default)]
struct Notes {
    list: Vec<String>,
    dropped: usize,
}

/// Unique anchors.
#[derive(Default)]
struct Anchors {
    taken: HashSet<String>,
    /// The last suffix tried per base, so a thousand methods of one name stay linear.
    last: HashMap<String, usize>,
}

/// Builds the page of one service within `meter`'s budget.
///
/// The document is expanded one method and one component at a time (see
/// [`expand_each`]): each is turned into what the page shows of it and dropped, so a page
/// holds at most one part's expansion, however far the document's references fan out.
pub(super) fn service(svc: &DocService<'_>, meter: &mut Meter) -> Result<ServiceView, OverBudget> {
    let mut notes = Notes::default();
    if let Some(why) = svc.invalid {
        notes.push(format!("This document is not valid OpenRPC: {why}"));
    }
    let mut anchors = Anchors::default();
    let mut methods = Vec::new();
    let mut schemas = Vec::new();
    let mut schema_count = 0;
    let mut members = Map::new();
    let mut whole = None;
    let object = matches!(svc.spec, Value::Object(doc) if !doc.contains_key("$ref"));
    let mut method_of = |i: usize, m: &Value, notes: &mut Notes, meter: &mut Meter| match m {
        Value::Object(obj) => methods.push(method(svc.name, i, obj, &mut anchors, meter)),
        other => notes.push(format!(
            "methods[{i}] is {}, not a Method object; skipped.",
            kind(other)
        )),
    };
    expand_each(svc.spec, meter, |place, value, meter| {
        match place {
            Place::Whole => whole = Some(value),
            Place::Method(i) => method_of(i, &value, &mut notes, meter),
            // `methods` that is a reference to an array is an array once expanded.
            Place::Methods => match &value {
                Value::Array(items) => {
                    for (i, m) in items.iter().enumerate() {
                        method_of(i, m, &mut notes, meter);
                    }
                }
                other => notes.push(format!(
                    "`methods` is {}, not an array; no methods shown.",
                    kind(other)
                )),
            },
            Place::Component {
                kind: "schemas",
                name,
            } => {
                schema_count += 1;
                if schema_count <= MAX_SCHEMAS {
                    schemas.push((name.to_owned(), schema_parts(&value)));
                }
            }
            Place::Member(key @ ("info" | "openrpc")) => {
                members.insert(key.to_owned(), value);
            }
            Place::Component { .. } | Place::Components { .. } | Place::Member(_) => {}
        }
        ControlFlow::Continue(())
    })?;
    let spec = match &whole {
        Some(spec) => spec,
        None => &Value::Object(members),
    };
    if let Some(whole) = &whole {
        if !whole.is_object() {
            notes.push(format!(
                "The document is {}, not an OpenRPC object.",
                kind(whole)
            ));
        }
        // A document that is a reference: its expansion is read as the document.
        match whole.get("methods") {
            Some(Value::Array(items)) => {
                for (i, m) in items.iter().enumerate() {
                    method_of(i, m, &mut notes, meter);
                }
            }
            Some(other) => notes.push(format!(
                "`methods` is {}, not an array; no methods shown.",
                kind(other)
            )),
            None if whole.is_object() => notes.push("The document has no `methods`.".to_owned()),
            None => {}
        }
        if let Some(Value::Object(named)) = whole.get("components").and_then(|c| c.get("schemas")) {
            schema_count = named.len();
            let listed = named.iter().take(MAX_SCHEMAS);
            schemas = listed.map(|(n, s)| (n.clone(), schema_parts(s))).collect();
        }
    } else if object && svc.spec.get("methods").is_none() {
        notes.push("The document has no `methods`.".to_owned());
    }
    meter.result()?;
    if schema_count > MAX_SCHEMAS {
        notes.push(format!(
            "Only the first {MAX_SCHEMAS} of {schema_count} schemas are listed."
        ));
    }
    let schemas = schemas
        .into_iter()
        .map(|(name, (ty, description))| SchemaView {
            anchor: anchors.unique("schema", &name),
            name,
            ty,
            description,
        })
        .collect();
    let info = spec.get("info");
    let info_text = |key: &str| text(info.and_then(|i| i.get(key)));
    let methods_label = match methods.len() {
        1 => "1 method".to_owned(),
        n => format!("{n} methods"),
    };
    Ok(ServiceView {
        name: svc.name.to_owned(),
        title: svc
            .title
            .and_then(non_empty)
            .or_else(|| info_text("title"))
            .unwrap_or_else(|| svc.name.to_owned()),
        version: svc
            .version
            .and_then(non_empty)
            .or_else(|| info_text("version")),
        description: svc
            .description
            .and_then(non_empty)
            .or_else(|| info_text("description")),
        openrpc: text(spec.get("openrpc")),
        clients: (!svc.name.is_empty()).then(|| ClientsView {
            python: svc
                .served
                .then(|| format!("/docs/{}/client.py", super::link_segment(svc.name))),
            typescript: svc
                .served
                .then(|| format!("/docs/{}/client.ts", super::link_segment(svc.name))),
            name: svc.name.to_owned(),
        }),
        methods_label,
        methods,
        schemas,
        notes: notes.finish(),
    })
}

/// Builds the index page; `href` gives the link of an entry that has a page.
pub(super) fn index(entries: &[IndexEntry], href: &dyn Fn(&str) -> String) -> IndexView {
    let mut rows: Vec<IndexRow> = entries
        .iter()
        .map(|e| IndexRow {
            name: e.name.clone(),
            // Only a service with a spec (valid or not) has a page.
            href: SpecState::has_document(&e.spec_state).then(|| href(&e.name)),
            title: e.title.as_deref().and_then(non_empty),
            version: e.version.as_deref().and_then(non_empty),
            description: e.description.as_deref().and_then(non_empty),
            methods_count: e.methods_count,
            spec_state: e.spec_state.clone(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    IndexView { entries: rows }
}

fn method(
    service: &str,
    index: usize,
    m: &Map<String, Value>,
    anchors: &mut Anchors,
    meter: &mut Meter,
) -> MethodView {
    let mut notes = Notes::default();
    let name = match text(m.get("name")) {
        Some(name) => name,
        None => {
            notes.push("This method has no name.".to_owned());
            format!("methods[{index}]")
        }
    };
    let structure = match m.get("paramStructure") {
        None => ParamStructure::Either,
        Some(Value::String(s)) if s == "by-name" => ParamStructure::ByName,
        Some(Value::String(s)) if s == "by-position" => ParamStructure::ByPosition,
        Some(Value::String(s)) if s == "either" => ParamStructure::Either,
        Some(other) => {
            notes.push(format!(
                "paramStructure {other} is not by-name, by-position or either; read as either."
            ));
            ParamStructure::Either
        }
    };
    let mut params = Vec::new();
    let mut schemas = Vec::new();
    match m.get("params") {
        Some(Value::Array(items)) => {
            for (i, p) in items.iter().enumerate() {
                let (view, schema) = descriptor(p, &format!("params[{i}]"), &mut notes);
                params.push(view);
                schemas.push(schema);
            }
        }
        None => notes.push("`params` is missing; read as none.".to_owned()),
        Some(other) => notes.push(format!(
            "`params` is {}, not an array; no params shown.",
            kind(other)
        )),
    }
    let (result, result_schema) = match m.get("result") {
        None => (None, None),
        Some(r) => {
            let (view, schema) = descriptor(r, "result", &mut notes);
            (Some(view), schema)
        }
    };
    let errors = errors(m.get("errors"), &mut notes);
    let method_name = format!("{service}.{name}");
    let mut examples = own_examples(
        m.get("examples"),
        &method_name,
        structure,
        &params,
        &mut notes,
    );
    let examples_generated = examples.is_empty();
    if examples_generated {
        let params: Vec<(String, Value)> = params
            .iter()
            .zip(&schemas)
            .map(|(p, s)| (p.name.clone(), s.map_or(Value::Null, example_value)))
            .collect();
        let first_error = m
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.iter().find(|e| e.is_object()));
        let response = match (&result, result_schema) {
            (None, _) => None,
            (Some(_), Some(s)) if is_never(s) && first_error.is_some() => {
                Some(response(None, first_error.map(error_member).as_ref()))
            }
            (Some(_), s) => Some(response(Some(&s.map_or(Value::Null, example_value)), None)),
        };
        examples.push(ExampleView {
            title: "generated from the schemas".to_owned(),
            description: None,
            request: request(&method_name, structure, params),
            response,
        });
    }
    // What dereference could not expand, said once per method.
    for note in deref_notes(m) {
        notes.push(note);
    }
    // The examples are what grows a page past its budget: a large value referred to by many
    // examples is copied once per example.
    let printed: usize = examples
        .iter()
        .map(|e| e.request.len() + e.response.as_ref().map_or(0, String::len))
        .sum();
    meter.output(printed);
    MethodView {
        anchor: anchors.unique("method", &name),
        name,
        summary: text(m.get("summary")),
        description: text(m.get("description")),
        deprecated: m.get("deprecated") == Some(&Value::Bool(true)),
        param_structure: match structure {
            ParamStructure::ByName => "by name",
            ParamStructure::ByPosition => "by position",
            ParamStructure::Either => "by name or by position",
        },
        params,
        result,
        errors,
        examples,
        examples_generated,
        notes: notes.finish(),
    }
}

/// A Content Descriptor (a param or the result) and its schema.
fn descriptor<'v>(d: &'v Value, place: &str, notes: &mut Notes) -> (ParamView, Option<&'v Value>) {
    let Value::Object(obj) = d else {
        notes.push(format!("{place} is {}, not a Content Descriptor.", kind(d)));
        let view = ParamView {
            name: place.to_owned(),
            required: false,
            ty: "invalid content descriptor".to_owned(),
            description: None,
        };
        return (view, None);
    };
    let schema = obj.get("schema");
    let ty = match schema {
        Some(s) => readable_type(s),
        // A descriptor that could not be expanded says why in its own note.
        None => match obj.get(NOTE_KEY).and_then(Value::as_str) {
            Some(n) if n.starts_with("unresolved") => n.to_owned(),
            _ => "any".to_owned(),
        },
    };
    let view = ParamView {
        name: text(obj.get("name")).unwrap_or_else(|| place.to_owned()),
        required: obj.get("required") == Some(&Value::Bool(true)),
        ty,
        description: text(obj.get("description")).or_else(|| text(obj.get("summary"))),
    };
    (view, schema)
}

fn errors(errors: Option<&Value>, notes: &mut Notes) -> Vec<ErrorView> {
    let items = match errors {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            notes.push(format!("`errors` is {}, not an array.", kind(other)));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, e) in items.iter().enumerate() {
        let Value::Object(obj) = e else {
            notes.push(format!("errors[{i}] is {}, not an Error object.", kind(e)));
            continue;
        };
        let code = match obj.get("code") {
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => other.to_string(),
            None => "?".to_owned(),
        };
        let message = text(obj.get("message"))
            .or_else(|| {
                let note = obj.get(NOTE_KEY).and_then(Value::as_str);
                note.map(str::to_owned)
            })
            .unwrap_or_default();
        out.push(ErrorView { code, message });
    }
    out
}

/// The method's own Example Pairings, as request/response pairs.
fn own_examples(
    examples: Option<&Value>,
    method_name: &str,
    structure: ParamStructure,
    params: &[ParamView],
    notes: &mut Notes,
) -> Vec<ExampleView> {
    let items = match examples {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            notes.push(format!("`examples` is {}, not an array.", kind(other)));
            return Vec::new();
        }
    };
    if items.len() > MAX_EXAMPLES {
        notes.push(format!(
            "Only the first {MAX_EXAMPLES} of {} examples are shown.",
            items.len()
        ));
    }
    let mut out = Vec::new();
    for (i, pairing) in items.iter().take(MAX_EXAMPLES).enumerate() {
        let Value::Object(p) = pairing else {
            notes.push(format!(
                "examples[{i}] is {}, not an Example Pairing.",
                kind(pairing)
            ));
            continue;
        };
        let values: Vec<(String, Value)> = match p.get("params") {
            Some(Value::Array(ps)) => ps
                .iter()
                .enumerate()
                .map(|(j, e)| {
                    let name = text(e.get("name"))
                        .or_else(|| params.get(j).map(|p| p.name.clone()))
                        .unwrap_or_else(|| format!("params[{j}]"));
                    (name, e.get("value").cloned().unwrap_or(Value::Null))
                })
                .collect(),
            None => Vec::new(),
            Some(other) => {
                notes.push(format!(
                    "examples[{i}].params is {}, not an array.",
                    kind(other)
                ));
                Vec::new()
            }
        };
        let response = match p.get("result") {
            None => None,
            Some(r @ Value::Object(_)) => {
                Some(response(Some(r.get("value").unwrap_or(&Value::Null)), None))
            }
            Some(other) => {
                notes.push(format!(
                    "examples[{i}].result is {}, not an Example object.",
                    kind(other)
                ));
                None
            }
        };
        out.push(ExampleView {
            title: text(p.get("name")).unwrap_or_else(|| format!("Example {}", i + 1)),
            description: text(p.get("description")).or_else(|| text(p.get("summary"))),
            request: request(method_name, structure, values),
            response,
        });
    }
    out
}

fn request(method: &str, structure: ParamStructure, params: Vec<(String, Value)>) -> String {
    let params = match (params.is_empty(), structure) {
        (true, _) => None,
        (false, ParamStructure::ByPosition) => Some(Params::ByPosition(
            params.into_iter().map(|(_, v)| v).collect(),
        )),
        (false, _) => Some(Params::ByName(params)),
    };
    pretty(&Request {
        jsonrpc: "2.0",
        id: 1,
        method,
        params,
    })
}

fn response(result: Option<&Value>, error: Option<&Value>) -> String {
    pretty(&Response {
        jsonrpc: "2.0",
        id: 1,
        result,
        error,
    })
}

/// `{code, message}` (and `data`) of an Error object, for an example response.
fn error_member(e: &Value) -> Value {
    let mut out = Map::new();
    for key in ["code", "message", "data"] {
        if let Some(v) = e.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

fn pretty(v: &impl Serialize) -> String {
    // Serializing a Value cannot fail: its keys are strings. The depth is bounded by dereference.
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

/// What the schema list shows of one (expanded) schema: its shape and description.
fn schema_parts(schema: &Value) -> (String, Option<String>) {
    (readable_structure(schema), text(schema.get("description")))
}

/// Every note `dereference` left inside a method, sorted.
fn deref_notes(m: &Map<String, Value>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // The tree is bounded by dereference (size and depth); a stack keeps the walk flat.
    let mut stack: Vec<&Value> = m.values().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(n)) = o.get(NOTE_KEY) {
                    found.insert(n.clone());
                }
                stack.extend(o.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    found
}

/// A string member, trimmed, if it is a non-empty string.
fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).and_then(non_empty)
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

// === impl Params ===

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Params::ByPosition(values) => values.serialize(s),
            Params::ByName(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

// === impl Notes ===

impl Notes {
    fn push(&mut self, note: String) {
        if self.list.len() == MAX_NOTES {
            if !self.list.contains(&note) {
                self.dropped += 1;
            }
            return;
        }
        if !self.list.contains(&note) {
            self.list.push(note);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list
                .push(format!("… and {} more notes like these.", self.dropped));
        }
        self.list
    }
}

// === impl Anchors ===

impl Anchors {
    /// `{prefix}-{slug of name}`, with `-2`, `-3`… when taken.
    fn unique(&mut self, prefix: &str, name: &str) -> String {
        let mut slug = String::with_capacity(prefix.len() + 1 + name.len().min(MAX_ANCHOR_LEN));
        slug.push_str(prefix);
        slug.push('-');
        for c in name.chars() {
            if slug.len() >= prefix.len() + 1 + MAX_ANCHOR_LEN {
                break;
            }
            let keep = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            slug.push(if keep { c } else { '-' });
        }
        let mut anchor = slug.clone();
        let n = self.last.entry(slug.clone()).or_insert(1);
        while self.taken.contains(&anchor) {
            *n += 1;
            anchor = format!("{slug}-{n}");
        }
        self.taken.insert(anchor.clone());
        anchor
    }
}
