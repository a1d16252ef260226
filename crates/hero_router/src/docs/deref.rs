//! `$ref` resolution: every local reference (`#/…`) in an OpenRPC document replaced by a copy
//! of its target, within bounds a hostile document cannot push past.
//!
//! A reference that is not expanded stays a reference object and says why under [`NOTE_KEY`]:
//! a cycle (`cycle: …`), a target that does not exist (`unresolved $ref #/…`), a reference
//! that is not local, or a copy past the size and depth limits (`truncated: …`). An expanded
//! object keeps the reference it came from under [`REF_KEY`], so a type can still be shown by
//! its component name.
//!
//! Literal data is copied, never resolved: schema `const`, `enum`, `default`, `example(s)` and
//! the `value` of an Example object may hold a `$ref` member that is just data.
//!
//! [`dereference`] builds the whole expanded document; the pages use [`expand_each`], which
//! walks the same parts in the same order but hands each one over as soon as it is expanded
//! (a page then holds one method's expansion, not the document's), and counts the walk
//! against the page's [`Meter`].

use std::ops::ControlFlow;

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::budget::{Budget, Meter, OverBudget};

/// Where an expanded object records the reference it was expanded from.
pub(crate) const REF_KEY: &str = "x-hero-docs-ref";
/// Where a node that was not expanded says why.
pub(crate) const NOTE_KEY: &str = "x-hero-docs-note";

/// Most values copied out of reference targets in one document. A document is at most 4 MiB
/// (docs/catalog.md), a few hundred thousand values; this lets every method expand what it refers
/// to a few times over, while a fan-out bomb (each level referring twice to the next) stops
/// after a bounded amount of memory.
const MAX_EXPANDED: usize = 500_000;
/// Most values copied for one method or one component, so one bomb cannot use up
/// [`MAX_EXPANDED`] and leave the other methods unexpanded.
const MAX_EXPANDED_PER_ENTRY: usize = 50_000;
/// Most bytes of text (strings and member names) copied out of reference targets in one
/// document, and for one method or component: values alone do not bound a copy (a 100 KiB
/// description referred to 1,000 times is 1,000 values and 100 MB).
const MAX_COPIED: usize = 16 << 20;
/// Most bytes of text copied for one method or component.
const MAX_COPIED_PER_ENTRY: usize = 1 << 20;
/// Deepest nesting of the output, so walking, printing and dropping it never recurse deeply.
const MAX_DEPTH: usize = 96;
/// Longest chain of references expanded inside one another.
const MAX_REF_CHAIN: usize = 32;

/// Returns `spec` with every local `$ref` (`#/components/…`, any JSON pointer) expanded.
///
/// Cycles are cut where a reference would expand inside itself, and expansion stops at
/// 500,000 copied values (50,000 per method or component), 16 MiB of copied text (1 MiB per
/// method or component) and 96 levels of nesting. Every
/// cut leaves the reference in place with a note under `x-hero-docs-note` (`cycle: …`,
/// `unresolved $ref #/…`, `truncated: …`); every expanded object carries the reference it
/// came from under `x-hero-docs-ref`. Methods are expanded before components, so the budget
/// goes first to what the docs show.
pub(crate) fn dereference(spec: &Value) -> Value {
    let mut out = Map::new();
    // The containers first, so an empty `methods` array or components kind stays one.
    if let Value::Object(doc) = spec {
        if !doc.contains_key("$ref") {
            if doc.get("methods").is_some_and(Value::is_array) {
                out.insert("methods".to_owned(), Value::Array(Vec::new()));
            }
            if let Some(Value::Object(kinds)) = doc.get("components") {
                let kinds = kinds
                    .iter()
                    .filter(|(_, entries)| entries.is_object())
                    .map(|(kind, _)| (kind.clone(), Value::Object(Map::new())));
                out.insert("components".to_owned(), Value::Object(kinds.collect()));
            }
        }
    }
    let mut whole = None;
    let mut meter = Meter::start(Budget::UNLIMITED);
    // Never over: the budget is unlimited.
    let _ = expand_each(spec, &mut meter, |place, value, _| {
        match place {
            Place::Whole => whole = Some(value),
            Place::Method(_) => {
                if let Some(Value::Array(methods)) = out.get_mut("methods") {
                    methods.push(value);
                }
            }
            Place::Methods => {
                out.insert("methods".to_owned(), value);
            }
            Place::Component { kind, name } => {
                if let Some(Value::Object(named)) = kinds(&mut out).and_then(|k| k.get_mut(kind)) {
                    named.insert(name.to_owned(), value);
                }
            }
            Place::Components { kind } => {
                if let Some(kinds) = kinds(&mut out) {
                    kinds.insert(kind.to_owned(), value);
                }
            }
            Place::Member(key) => {
                out.insert(key.to_owned(), value);
            }
        }
        ControlFlow::Continue(())
    });
    whole.unwrap_or(Value::Object(out))
}

/// The `components` object of a document being put together.
fn kinds(doc: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    match doc.get_mut("components") {
        Some(Value::Object(kinds)) => Some(kinds),
        _ => None,
    }
}

/// Where an expanded part of a document sits in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    /// The whole document: it is not an object, or it is a `$ref` itself.
    Whole,
    /// `methods[i]`.
    Method(usize),
    /// `methods`, when it is not an array.
    Methods,
    /// `components.{kind}.{name}`.
    Component {
        /// The kind (`schemas`, `contentDescriptors`…).
        kind: &'a str,
        /// The component's name.
        name: &'a str,
    },
    /// `components.{kind}`, when it is not an object.
    Components {
        /// The kind.
        kind: &'a str,
    },
    /// Any other member of the document (`components` too, when it is not an object).
    Member(&'a str),
}

/// Expands `spec` as [`dereference`] does, one method, component or member at a time, in the
/// same order and with the same bounds, and hands each part to `visit` as soon as it is
/// expanded, so a render holds one part's expansion at a time, not the whole document's.
///
/// Stops when `visit` breaks, or when `meter` is over its budget (every value walked is a
/// tick, every byte of text copied out of a reference target counts): then the part being
/// expanded is dropped and the reason returned. `visit` gets the meter back, to count what it
/// makes of the part.
pub(crate) fn expand_each<'a>(
    spec: &'a Value,
    meter: &mut Meter,
    mut visit: impl FnMut(Place<'a>, Value, &mut Meter) -> ControlFlow<()>,
) -> Result<(), OverBudget> {
    let mut r = Resolver {
        root: spec,
        chain: Vec::new(),
        expanded: 0,
        entry_expanded: 0,
        copied: 0,
        entry_copied: 0,
        meter,
    };
    let parts = match spec {
        Value::Object(doc) if !doc.contains_key("$ref") => parts(doc),
        _ => vec![(Place::Whole, spec, 0)],
    };
    for (place, v, depth) in parts {
        let value = r.entry(v, depth, Mode::Keywords);
        r.meter.result()?;
        if visit(place, value, r.meter).is_break() {
            break;
        }
    }
    Ok(())
}

/// A part of a document: where it is, what it is, and its depth in the document.
type Part<'a> = (Place<'a>, &'a Value, usize);

/// The parts of an OpenRPC object in the order they are expanded: the methods first, so the
/// budget goes first to what the docs show, then every other member in key order, a
/// `components` object one component at a time.
fn parts(doc: &Map<String, Value>) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    match doc.get("methods") {
        Some(Value::Array(items)) => {
            let methods = items.iter().enumerate();
            parts.extend(methods.map(|(i, m)| (Place::Method(i), m, 2)));
        }
        Some(other) => parts.push((Place::Methods, other, 1)),
        None => {}
    }
    for (key, value) in doc {
        match (key.as_str(), value) {
            ("methods", _) => {}
            ("components", Value::Object(kinds)) => {
                for (kind, entries) in kinds {
                    match entries {
                        Value::Object(named) => parts.extend(
                            named
                                .iter()
                                .map(|(name, c)| (Place::Component { kind, name }, c, 3)),
                        ),
                        other => parts.push((Place::Components { kind }, other, 2)),
                    }
                }
            }
            _ => parts.push((Place::Member(key), value, 1)),
        }
    }
    parts
}

/// How the members of an object are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keys are keywords (`type`, `$ref`, `params`…): references are resolved.
    Keywords,
    /// Keys are names (`properties`, `definitions`…) whose values are schemas.
    Names,
    /// Data: copied as it is.
    Literal,
}

struct Resolver<'a, 'm> {
    root: &'a Value,
    /// The references being expanded, outermost first.
    chain: Vec<&'a str>,
    expanded: usize,
    entry_expanded: usize,
    /// Bytes of text copied out of targets, in the document and in the entry.
    copied: usize,
    entry_copied: usize,
    meter: &'m mut Meter,
}

// === impl Resolver ===

impl<'a> Resolver<'a, '_> {
    /// Walks one method, component or top-level member, with a fresh per-entry budget.
    fn entry(&mut self, v: &'a Value, depth: usize, mode: Mode) -> Value {
        self.entry_expanded = 0;
        self.entry_copied = 0;
        self.walk(v, depth, mode)
    }

    fn walk(&mut self, v: &'a Value, depth: usize, mode: Mode) -> Value {
        // Over budget: the part is dropped, so what is left of it need not be built.
        if self.meter.tick() {
            return Value::Null;
        }
        if !self.chain.is_empty() {
            // Past a limit, a schema is cut where one stands (an object read as keywords),
            // and a note is a valid schema there; a string, an array or data is copied still
            // (a `type` or `required` cut to a note would make the schema invalid), which
            // costs no more than the target being copied.
            if let (true, Mode::Keywords, Value::Object(map)) = (self.over_limit(), mode, v) {
                // A reference is cut as a reference (kept, with the note), so a reader can
                // still stand in for its target; anything else keeps its `type`.
                if let Some(Value::String(r)) = map.get("$ref") {
                    return self.reference(r, map, depth);
                }
                let mut cut = Map::new();
                cut.insert(NOTE_KEY.to_owned(), Value::String(self.size_note()));
                if let Some(t) = map.get("type").filter(|t| t.is_string() || t.is_array()) {
                    cut.insert("type".to_owned(), t.clone());
                }
                return Value::Object(cut);
            }
            let len = text_len(v);
            self.expanded += 1;
            self.entry_expanded += 1;
            self.copied += len;
            self.entry_copied += len;
            if self.meter.copied(len) {
                return Value::Null;
            }
        }
        if depth >= MAX_DEPTH && matches!(v, Value::Object(_) | Value::Array(_)) {
            return note(format!("truncated: nested deeper than {MAX_DEPTH} levels"));
        }
        match v {
            Value::Object(map) => {
                if mode == Mode::Keywords {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        return self.reference(r, map, depth);
                    }
                }
                let members = map.iter().map(|(k, child)| {
                    let child_mode = match mode {
                        Mode::Literal => Mode::Literal,
                        Mode::Names => Mode::Keywords,
                        Mode::Keywords => member_mode(k, map),
                    };
                    (k.clone(), self.walk(child, depth + 1, child_mode))
                });
                Value::Object(members.collect())
            }
            Value::Array(items) => {
                let item_mode = if mode == Mode::Literal {
                    Mode::Literal
                } else {
                    Mode::Keywords
                };
                Value::Array(
                    items
                        .iter()
                        .map(|i| self.walk(i, depth + 1, item_mode))
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }

    /// A `{"$ref": r, …}` object: the target's copy with the other members laid over it, or
    /// the reference itself with a note saying why it was not expanded.
    fn reference(&mut self, r: &'a str, map: &'a Map<String, Value>, depth: usize) -> Value {
        let why = if !r.starts_with('#') {
            Some(format!(
                "$ref {r} not resolved: only local references (#/…) are"
            ))
        } else if self.chain.contains(&r) {
            Some(format!(
                "cycle: {r} refers back to itself; shown by name only"
            ))
        } else if self.chain.len() >= MAX_REF_CHAIN {
            Some(format!(
                "truncated: more than {MAX_REF_CHAIN} references expanded inside one another"
            ))
        } else if self.over_limit() {
            Some(self.size_note())
        } else {
            None
        };
        let target = match why {
            Some(_) => None,
            None => lookup(self.root, r),
        };
        let mut out = match target {
            Some(target) => {
                self.chain.push(r);
                let out = self.walk(target, depth, Mode::Keywords);
                self.chain.pop();
                out
            }
            None => {
                let why = why.unwrap_or_else(|| format!("unresolved $ref {r}"));
                let mut cut = Map::new();
                cut.insert("$ref".to_owned(), Value::String(r.to_owned()));
                cut.insert(NOTE_KEY.to_owned(), Value::String(why));
                Value::Object(cut)
            }
        };
        if let Value::Object(o) = &mut out {
            for (k, v) in map {
                if k != "$ref" {
                    let mode = member_mode(k, map);
                    o.insert(k.clone(), self.walk(v, depth + 1, mode));
                }
            }
            if !o.contains_key(NOTE_KEY) {
                o.insert(REF_KEY.to_owned(), Value::String(r.to_owned()));
            }
        }
        out
    }

    /// Past one of the limits on what is copied out of targets.
    fn over_limit(&self) -> bool {
        self.expanded >= MAX_EXPANDED
            || self.entry_expanded >= MAX_EXPANDED_PER_ENTRY
            || self.copied >= MAX_COPIED
            || self.entry_copied >= MAX_COPIED_PER_ENTRY
    }

    fn size_note(&self) -> String {
        let limit = if self.expanded >= MAX_EXPANDED {
            format!("{MAX_EXPANDED} values")
        } else if self.entry_expanded >= MAX_EXPANDED_PER_ENTRY {
            format!("{MAX_EXPANDED_PER_ENTRY} values")
        } else if self.copied >= MAX_COPIED {
            format!("{} MiB of text", MAX_COPIED >> 20)
        } else {
            format!("{} MiB of text", MAX_COPIED_PER_ENTRY >> 20)
        };
        format!("truncated: expanding $refs here would copy more than {limit}")
    }
}

/// How the member `key` of a keyword object is read.
fn member_mode(key: &str, parent: &Map<String, Value>) -> Mode {
    match key {
        "properties" | "patternProperties" | "definitions" | "$defs" | "dependencies" => {
            Mode::Names
        }
        "const" | "enum" | "default" | "example" => Mode::Literal,
        // A method's `examples` are Example Pairings (references allowed); a schema's are data.
        "examples" if !parent.contains_key("params") => Mode::Literal,
        // The value of an Example object ({name, value}).
        "value" if parent.get("name").is_some_and(Value::is_string) => Mode::Literal,
        _ => Mode::Keywords,
    }
}

/// The value a local reference (`#` + a URI-encoded JSON pointer) points at.
fn lookup<'v>(root: &'v Value, r: &str) -> Option<&'v Value> {
    let fragment = r.strip_prefix('#')?;
    let pointer = percent_decode_str(fragment).decode_utf8().ok()?;
    root.pointer(&pointer)
}

/// The bytes of text a copy of `v` itself adds (its string, or its members' names; its
/// members are counted as they are walked).
fn text_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Object(map) => map.keys().map(String::len).sum(),
        _ => 0,
    }
}

fn note(why: String) -> Value {
    let mut m = Map::new();
    m.insert(NOTE_KEY.to_owned(), Value::String(why));
    Value::Object(m)
}

#[cfg(test)]
mod tests;
