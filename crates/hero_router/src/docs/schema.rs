//! JSON Schemas for people: a one-line type ([`readable_type`]) and a plausible value
//! ([`example_value`]).
//!
//! Both take any JSON (a schema that is a string or a number is shown as invalid, never a
//! panic), understand the notes [`dereference`](super::dereference) leaves, and are bounded:
//! a type stops at [`MAX_TYPE_LEN`] bytes, an example at [`MAX_EXAMPLE_VALUES`] values.

use serde_json::{Map, Value};

use super::deref::{NOTE_KEY, REF_KEY};
use crate::json::kind;

/// Longest readable type, in bytes; a longer one ends in `…`. Types sit in table cells.
const MAX_TYPE_LEN: usize = 240;
/// Deepest inline object, array or union spelled out; deeper parts are shown as `…`.
const MAX_TYPE_DEPTH: usize = 4;
/// Most properties, enum values or union members spelled out per level.
const MAX_TYPE_ITEMS: usize = 12;
/// Deepest generated example value; deeper parts are left out.
const MAX_EXAMPLE_DEPTH: usize = 8;
/// Most schemas visited to build one example; an example is for reading, not for size.
const MAX_EXAMPLE_VALUES: usize = 500;
/// Most properties of one object put into an example.
const MAX_EXAMPLE_PROPERTIES: usize = 24;

/// Types that read well as `T[]`; anything else is written `array<T>`.
const PRIMITIVES: [&str; 7] = [
    "string", "integer", "number", "boolean", "null", "any", "object",
];

/// A one-line type for `schema`: `string`, `integer | null`, `string[]`, `array<Job>`,
/// `{id: string, tags?: string[]}`, `"a" | "b"`, `A | B` (`oneOf`/`anyOf`), `A & B`
/// (`allOf`), `map<string, T>`.
///
/// References, expanded or not, are shown by component name (`Job`); one that could not be
/// resolved reads `unresolved $ref #/…`. Object properties are in the spec's order and marked `?`
/// when not required. `true`/`{}` is `any`, `false`/`{"not": {}}` is `never`; a schema that is
/// not an object or a boolean is `invalid schema (a string)`.
pub(crate) fn readable_type(schema: &Value) -> String {
    let mut w = TypeWriter::default();
    w.schema(schema, 0, false);
    w.out
}

/// The shape of a named schema, not its name: `{a: string}` for a component `A`.
pub(crate) fn readable_structure(schema: &Value) -> String {
    let mut w = TypeWriter::default();
    w.schema(schema, 0, true);
    w.out
}

/// A plausible value for `schema`: its own `examples[0]`, `example`, `default`, `const` or
/// first `enum` value if it has one, else one built from its type (`"string"`, `0` or the
/// `minimum`, `true`, one array item, every property). A string `format` gives a value of
/// that form (`date-time`, `email`, `uri`, `uuid`…).
///
/// `null` when nothing plausible exists: `any`, `never`, a cut or unresolved reference, an
/// invalid schema. Cut parts inside are left out (an array of them is empty, such a property
/// is omitted).
pub(crate) fn example_value(schema: &Value) -> Value {
    Example { values: 0 }
        .value(schema, 0)
        .unwrap_or(Value::Null)
}

/// Whether no value can match `schema`: `false`, or `{"not": {}}` / `{"not": true}`.
pub(crate) fn is_never(schema: &Value) -> bool {
    match schema {
        Value::Bool(false) => true,
        Value::Object(o) => o.get("not").is_some_and(is_any),
        _ => false,
    }
}

/// The name a reference is shown by: its last pointer segment, unescaped.
pub(crate) fn ref_name(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let name = decoded.replace("~1", "/").replace("~0", "~");
    if name.is_empty() || name == "#" {
        r.to_owned()
    } else {
        name
    }
}

/// `true` or a schema object with no constraint in it.
fn is_any(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(o) => o.keys().all(|k| is_annotation(k)),
        _ => false,
    }
}

/// Keywords that describe without constraining.
fn is_annotation(key: &str) -> bool {
    matches!(
        key,
        "title" | "description" | "$comment" | "examples" | "example" | "default" | "deprecated"
    ) || key == REF_KEY
}

/// Writes a type into a bounded string.
#[derive(Default)]
struct TypeWriter {
    out: String,
    full: bool,
}

struct Example {
    values: usize,
}

// === impl TypeWriter ===

impl TypeWriter {
    fn push(&mut self, s: &str) {
        if self.full {
            return;
        }
        if self.out.len() + s.len() <= MAX_TYPE_LEN {
            self.out.push_str(s);
            return;
        }
        let mut cut = MAX_TYPE_LEN.saturating_sub(self.out.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.out.push_str(&s[..cut]);
        self.out.push('…');
        self.full = true;
    }

    /// `expand`: show the shape even if the schema came from a reference.
    fn schema(&mut self, schema: &Value, depth: usize, expand: bool) {
        if self.full {
            return;
        }
        let obj = match schema {
            Value::Bool(true) => return self.push("any"),
            Value::Bool(false) => return self.push("never"),
            Value::Object(o) => o,
            other => return self.push(&format!("invalid schema ({})", kind(other))),
        };
        let note = obj.get(NOTE_KEY).and_then(Value::as_str);
        if let Some(note) = note.filter(|n| n.starts_with("unresolved")) {
            return self.push(note);
        }
        let reference = obj.get(REF_KEY).or_else(|| obj.get("$ref"));
        match reference.and_then(Value::as_str) {
            // Not expanded (cut, raw or not local): the name is all there is.
            Some(r) if !expand || obj.contains_key("$ref") => return self.push(&ref_name(r)),
            _ => {}
        }
        if note.is_some() {
            return self.push("… (truncated)");
        }
        if depth >= MAX_TYPE_DEPTH {
            return self.push("…");
        }
        self.constraint(obj, depth);
        if obj.get("nullable") == Some(&Value::Bool(true)) {
            self.push(" | null");
        }
    }

    fn constraint(&mut self, obj: &Map<String, Value>, depth: usize) {
        if let Some(Value::Array(values)) = obj.get("enum") {
            return self.join(values, " | ", |w, v| w.json(v));
        }
        if let Some(c) = obj.get("const") {
            return self.json(c);
        }
        for (key, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
            if let Some(Value::Array(alts)) = obj.get(key) {
                if !alts.is_empty() {
                    return self.join(alts, sep, |w, alt| w.schema(alt, depth + 1, false));
                }
            }
        }
        match obj.get("type") {
            Some(Value::String(t)) => self.typed(t, obj, depth),
            Some(Value::Array(types)) if !types.is_empty() => {
                self.join(types, " | ", |w, t| match t {
                    Value::String(t) => w.typed(t, obj, depth),
                    other => w.push(&format!("invalid type ({})", kind(other))),
                });
            }
            Some(other) => self.push(&format!("invalid type ({})", kind(other))),
            None if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
                self.typed("object", obj, depth)
            }
            None if obj.contains_key("items") => self.typed("array", obj, depth),
            None => match obj.get("not") {
                Some(not) if is_any(not) => self.push("never"),
                Some(not) => {
                    self.push("not ");
                    self.schema(not, depth + 1, false);
                }
                None => self.push("any"),
            },
        }
    }

    fn typed(&mut self, t: &str, obj: &Map<String, Value>, depth: usize) {
        match (t, obj.get("items")) {
            ("array", Some(Value::Array(tuple))) => {
                self.push("[");
                self.join(tuple, ", ", |w, item| w.schema(item, depth + 1, false));
                self.push("]");
            }
            ("array", Some(items)) => {
                let mut inner = TypeWriter::default();
                inner.schema(items, depth + 1, false);
                if PRIMITIVES.contains(&inner.out.as_str()) {
                    self.push(&inner.out);
                    self.push("[]");
                } else {
                    self.push("array<");
                    self.push(&inner.out);
                    self.push(">");
                }
            }
            ("object", _) => self.object(obj, depth),
            _ => self.push(t),
        }
    }

    fn object(&mut self, obj: &Map<String, Value>, depth: usize) {
        let required: Vec<&str> = match obj.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        match (obj.get("properties"), obj.get("additionalProperties")) {
            (Some(Value::Object(props)), _) if !props.is_empty() => {
                // In the spec's order, as the document lists them.
                let names: Vec<&String> = props.keys().collect();
                self.push("{");
                for (i, name) in names.iter().enumerate() {
                    if self.full {
                        return;
                    }
                    if i == MAX_TYPE_ITEMS {
                        self.push(", …");
                        break;
                    }
                    if i > 0 {
                        self.push(", ");
                    }
                    self.push(name);
                    if !required.contains(&name.as_str()) {
                        self.push("?");
                    }
                    self.push(": ");
                    self.schema(&props[name.as_str()], depth + 1, false);
                }
                self.push("}");
            }
            (_, Some(extra @ Value::Object(_))) => {
                self.push("map<string, ");
                self.schema(extra, depth + 1, false);
                self.push(">");
            }
            _ => self.push("object"),
        }
    }

    fn join<T>(&mut self, items: &[T], sep: &str, mut each: impl FnMut(&mut Self, &T)) {
        for (i, item) in items.iter().enumerate() {
            if self.full {
                return;
            }
            if i == MAX_TYPE_ITEMS {
                self.push(sep);
                self.push("…");
                return;
            }
            if i > 0 {
                self.push(sep);
            }
            each(self, item);
        }
    }

    fn json(&mut self, v: &Value) {
        match v {
            Value::Object(_) | Value::Array(_) => {
                // Compact JSON of a bounded prefix is enough for a type; big literals are rare.
                let text = serde_json::to_string(v).unwrap_or_default();
                self.push(&text);
            }
            other => self.push(&other.to_string()),
        }
    }
}

// === impl Example ===

impl Example {
    fn value(&mut self, schema: &Value, depth: usize) -> Option<Value> {
        if depth > MAX_EXAMPLE_DEPTH || self.values >= MAX_EXAMPLE_VALUES {
            return None;
        }
        self.values += 1;
        let Value::Object(obj) = schema else {
            return None;
        };
        if obj.contains_key(NOTE_KEY) || obj.contains_key("$ref") {
            return None;
        }
        if let Some(Value::Array(examples)) = obj.get("examples") {
            if let Some(first) = examples.first() {
                return Some(first.clone());
            }
        }
        for key in ["example", "default", "const"] {
            if let Some(v) = obj.get(key) {
                return Some(v.clone());
            }
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            return values.first().cloned();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(alts)) = obj.get(key) {
                return alts.iter().find_map(|alt| self.value(alt, depth + 1));
            }
        }
        if let Some(Value::Array(parts)) = obj.get("allOf") {
            return self.all_of(parts, depth);
        }
        let t = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => {
                let mut names = types.iter().filter_map(Value::as_str);
                let first = names.clone().next();
                names.find(|t| *t != "null").or(first)?
            }
            _ if obj.contains_key("properties") => "object",
            _ if obj.contains_key("items") => "array",
            _ => return None,
        };
        self.typed(t, obj, depth)
    }

    fn typed(&mut self, t: &str, obj: &Map<String, Value>, depth: usize) -> Option<Value> {
        Some(match t {
            "string" => Value::from(string_example(obj)),
            "integer" => match obj.get("minimum") {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
                _ => Value::from(0),
            },
            "number" => match obj.get("minimum") {
                Some(Value::Number(n)) => Value::Number(n.clone()),
                _ => Value::from(0),
            },
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            "array" => match obj.get("items") {
                Some(Value::Array(tuple)) => Value::Array(
                    tuple
                        .iter()
                        .map(|i| self.value(i, depth + 1).unwrap_or(Value::Null))
                        .collect(),
                ),
                Some(items) => Value::Array(self.value(items, depth + 1).into_iter().collect()),
                None => Value::Array(Vec::new()),
            },
            "object" => self.object(obj, depth),
            _ => return None,
        })
    }

    fn object(&mut self, obj: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        match (obj.get("properties"), obj.get("additionalProperties")) {
            (Some(Value::Object(props)), _) if !props.is_empty() => {
                let names: Vec<&String> = props.keys().collect();
                for name in names.into_iter().take(MAX_EXAMPLE_PROPERTIES) {
                    if let Some(v) = self.value(&props[name.as_str()], depth + 1) {
                        out.insert(name.clone(), v);
                    }
                }
            }
            (_, Some(extra @ Value::Object(_))) => {
                if let Some(v) = self.value(extra, depth + 1) {
                    out.insert("key".to_owned(), v);
                }
            }
            _ => {}
        }
        Value::Object(out)
    }

    /// The members' examples merged when they are all objects, else the first one there is.
    fn all_of(&mut self, parts: &[Value], depth: usize) -> Option<Value> {
        let values: Vec<Value> = parts
            .iter()
            .filter_map(|p| self.value(p, depth + 1))
            .collect();
        if !values.is_empty() && values.iter().all(Value::is_object) {
            let mut merged = Map::new();
            for v in values {
                if let Value::Object(m) = v {
                    merged.extend(m);
                }
            }
            return Some(Value::Object(merged));
        }
        values.into_iter().next()
    }
}

fn string_example(obj: &Map<String, Value>) -> &'static str {
    match obj.get("format").and_then(Value::as_str) {
        Some("date-time") => "2024-01-01T12:00:00Z",
        Some("date") => "2024-01-01",
        Some("time") => "12:00:00Z",
        Some("email") => "user@example.com",
        Some("uri" | "url" | "uri-reference" | "iri") => "https://example.com/",
        Some("uuid") => "123e4567-e89b-12d3-a456-426614174000",
        Some("ipv4") => "192.0.2.1",
        Some("ipv6") => "2001:db8::1",
        Some("hostname") => "example.com",
        _ => "string",
    }
}

#[cfg(test)]
mod tests;
