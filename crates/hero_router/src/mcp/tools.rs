//! OpenRPC methods as MCP tools (docs/docs-and-mcp.md#tool-names): names, descriptions, input and
//! output schemas, and the JSON-RPC params and tool results of a call.
//!
//! Pure functions over one service's document, so every rule is unit-tested without a
//! socket. Every schema a tool shows is self-contained: `$ref`s are expanded by the docs'
//! resolver ([`crate::docs::deref`]), and where it had to stop (a cycle, a dangling or remote
//! reference, a size limit) the reference becomes an open schema that says why, because one
//! dangling `$ref` makes some clients drop the whole tool list. A parameter or result schema
//! that is not valid JSON Schema is replaced the same way, so a sloppy spec costs only its
//! own precision.

use std::collections::HashSet;
use std::sync::OnceLock;

use jsonschema::Validator;
use jsonschema::error::{ValidationError, ValidationErrorKind};
use rmcp::model::JsonObject;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::docs::deref::{NOTE_KEY, REF_KEY, dereference};

/// Longest tool name: several clients reject longer ones.
pub(crate) const MAX_NAME: usize = 64;

/// One method as a tool, before the endpoint gives it its final name.
#[derive(Debug, Clone)]
pub(crate) struct MethodTool {
    /// The method name with every character outside `[A-Za-z0-9_-]` replaced by `_`; unique
    /// within the service and at most [`MAX_NAME`] characters.
    pub(crate) name: String,
    /// Summary and description.
    pub(crate) description: String,
    /// An object schema of the params.
    pub(crate) input_schema: JsonObject,
    /// An object schema of the result (wrapped when the result is not an object).
    pub(crate) output_schema: Option<JsonObject>,
    /// How a call is sent and its answer read.
    pub(crate) target: Target,
}

/// How a tool call becomes a routed JSON-RPC call, and how its result comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The service.
    pub(crate) service: String,
    /// The method, as the service names it.
    pub(crate) method: String,
    /// The params' names, in the spec's order.
    pub(crate) params: Vec<String>,
    /// `paramStructure: by-position`: the arguments are sent as an array in that order.
    pub(crate) by_position: bool,
    /// How the result maps to `structuredContent`.
    pub(crate) output: Output,
}

/// How a result becomes `structuredContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The method declares no result: text content only.
    None,
    /// The result is an object: it is the structured content.
    Object,
    /// The result is anything else: the structured content is `{"result": …}`.
    Wrapped,
}

/// The tools of one service's OpenRPC document, in document order. `rpc.*` methods (the
/// JSON-RPC system extensions such as `rpc.discover`) are left out: they describe the
/// service, they are not its tools.
pub(crate) fn service_tools(service: &str, document: &Value) -> Vec<MethodTool> {
    let resolved = dereference(document);
    let Some(methods) = resolved.get("methods").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut made = 0;
    let mut tools: Vec<MethodTool> = Vec::new();
    for m in methods.iter().filter_map(Value::as_object) {
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !name.starts_with("rpc.") {
            tools.push(method_tool(service, name, m, document, &mut made));
        }
    }
    let names = unique_names(tools.iter().map(|t| t.name.clone()));
    for (tool, name) in tools.iter_mut().zip(names) {
        tool.name = name;
    }
    tools
}

/// `name` with every character outside `[A-Za-z0-9_-]` replaced by `_` (not truncated);
/// `_` for an empty name.
pub(crate) fn sanitize(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    name.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// Final names for `bases` (already sanitized), in order: each cut to [`MAX_NAME`]
/// characters; a name already taken gets the first free suffix `_2`, `_3`, … (cut to make
/// room). Deterministic: the same bases in the same order give the same names, and a base
/// added at the end never renames the ones before it.
pub(crate) fn unique_names(bases: impl IntoIterator<Item = String>) -> Vec<String> {
    unique_names_in(&mut HashSet::new(), bases)
}

/// [`unique_names`] beside the names already in `used` (which it extends).
fn unique_names_in(
    used: &mut HashSet<String>,
    bases: impl IntoIterator<Item = String>,
) -> Vec<String> {
    bases
        .into_iter()
        .map(|base| {
            let first = cut(&base, MAX_NAME).to_owned();
            if used.insert(first.clone()) {
                return first;
            }
            // No `_` run before the suffix: a merged name's part never holds `__`.
            (2u64..)
                .map(|n| {
                    let suffix = format!("_{n}");
                    let stem = cut(&base, MAX_NAME - suffix.len()).trim_end_matches('_');
                    format!("{stem}{suffix}")
                })
                .find(|name| used.insert(name.clone()))
                .expect("a free suffix exists")
        })
        .collect()
}

/// The names of tools merged from several services (`/mcp`): `{service}__{tool}`, made so that
/// no service can take another's names (docs/docs-and-mcp.md#tool-names).
///
/// A tool's part never holds `__` nor starts with `_` (runs of `_` are one `_`), so a name splits
/// back into its service and tool at its last `__`: two services' natural names never meet,
/// whatever either is called (`a` with `b__c` is `a__b_c`, `a__b` with `c` is `a__b__c`).
/// Natural names are given first, so a name that is some tool's natural name is that tool's;
/// what is left (a name over [`MAX_NAME`], two tools of one service that differ only in
/// underscores) is named next: cut, with a hash of its service and method so that the name is
/// its own whatever else is listed, and a `_2`-style suffix only if even that is taken.
/// `entries` are (service, the tool's own name, the method) in list order.
pub(crate) fn merged_names(entries: &[(&str, &str, &str)]) -> Vec<String> {
    // A method whose name leaves no part (`.`) has no natural name: its placeholder part
    // must not take a real method's (`tool`).
    let natural: Vec<Option<String>> = entries
        .iter()
        .map(|(service, tool, _)| merged_part(tool).map(|part| format!("{service}__{part}")))
        .collect();
    let mut used = HashSet::new();
    let mut names: Vec<Option<String>> = natural
        .iter()
        .map(|n| {
            n.as_ref()
                .filter(|n| n.len() <= MAX_NAME && used.insert((*n).clone()))
                .cloned()
        })
        .collect();
    for (i, name) in names.iter_mut().enumerate() {
        if name.is_some() {
            continue;
        }
        let (service, tool, method) = entries[i];
        let base = hashed_name(service, tool, method);
        *name = unique_names_in(&mut used, [base]).pop();
    }
    names.into_iter().map(Option::unwrap_or_default).collect()
}

/// A merged name for a tool whose natural name is taken, too long, or missing:
/// `{service}__{part}_{hash}`, the service and the part cut so that it fits in [`MAX_NAME`]
/// with its `__` (a service name of 64 characters leaves room for no part otherwise), and a
/// hash of the service and method (12 hex digits) that makes it its own.
fn hashed_name(service: &str, tool: &str, method: &str) -> String {
    let hash = sha2::Sha256::digest(format!("{service}\0{method}").as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    let part = merged_part(tool).unwrap_or_else(|| "tool".to_owned());
    // `__` and `_` around the part, and the hash.
    let room = MAX_NAME - 3 - hex.len();
    let service = cut(service, room - part.len().min(room / 2));
    // A cut part ending in `_` would put a `__` inside the part.
    let part = cut(&part, room - service.len()).trim_end_matches('_');
    let part = if part.is_empty() { "t" } else { part };
    format!("{service}__{part}_{hex}")
}

/// A tool's name as the part of a merged name: runs of `_` made one, no leading `_`; `None`
/// if nothing is left (a method named `.`).
fn merged_part(tool: &str) -> Option<String> {
    let mut part = String::with_capacity(tool.len());
    for c in tool.chars() {
        if !(c == '_' && (part.is_empty() || part.ends_with('_'))) {
            part.push(c);
        }
    }
    (!part.is_empty()).then_some(part)
}

/// The first `max` characters of an ASCII name.
fn cut(name: &str, max: usize) -> &str {
    let end = name.char_indices().nth(max).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

/// One (dereferenced) method object of `document` as a tool.
fn method_tool(
    service: &str,
    name: &str,
    method: &Map<String, Value>,
    document: &Value,
    made: &mut usize,
) -> MethodTool {
    let text = |key: &str| {
        method
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let description = match (text("summary"), text("description")) {
        (Some(s), Some(d)) if s != d => format!("{s}\n\n{d}"),
        (Some(s), _) => s.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => format!("Calls {service}.{name}."),
    };
    let descriptors: Vec<&Map<String, Value>> = method
        .get("params")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    for (i, d) in descriptors.iter().enumerate() {
        let pname = match d.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && !properties.contains_key(n) => n.to_owned(),
            _ => format!("param{}", i + 1),
        };
        if d.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(Value::String(pname.clone()));
        }
        properties.insert(pname.clone(), descriptor_schema(d, document, made));
        params.push(pname);
    }
    let mut input = JsonObject::new();
    input.insert("type".into(), json!("object"));
    input.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        input.insert("required".into(), Value::Array(required));
    }
    input.insert("additionalProperties".into(), json!(false));
    let (output_schema, output) = match method.get("result").and_then(Value::as_object) {
        None => (None, Output::None),
        Some(result) => {
            let schema = descriptor_schema(result, document, made);
            if schema.get("type").and_then(Value::as_str) == Some("object") {
                (schema.as_object().cloned(), Output::Object)
            } else {
                let mut wrapped = JsonObject::new();
                wrapped.insert("type".into(), json!("object"));
                wrapped.insert("properties".into(), json!({ "result": schema }));
                wrapped.insert("required".into(), json!(["result"]));
                (Some(wrapped), Output::Wrapped)
            }
        }
    };
    let by_position = method.get("paramStructure").and_then(Value::as_str) == Some("by-position");
    MethodTool {
        name: sanitize(name),
        description,
        input_schema: input,
        output_schema,
        target: Target {
            service: service.to_owned(),
            method: name.to_owned(),
            params,
            by_position,
            output,
        },
    }
}

/// The schema of a content descriptor, made self-contained and valid, with the descriptor's
/// own description (or summary): it says what this parameter or result is, where the
/// schema's own (often a shared component's, "A JSON number.") says what kind of value.
fn descriptor_schema(d: &Map<String, Value>, document: &Value, made: &mut usize) -> Value {
    let mut schema = match d.get("schema").map(|s| clean(s, document, made)) {
        Some(Value::Bool(true)) | None => Value::Object(Map::new()),
        Some(s) if jsonschema::draft202012::meta::is_valid(&s) => s,
        Some(_) => json!({
            "description": "(the service's spec gives a schema here that is not valid JSON Schema; any value is sent as is)"
        }),
    };
    let note = ["description", "summary"]
        .iter()
        .find_map(|k| d.get(*k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty());
    if let (Value::Object(o), Some(note)) = (&mut schema, note) {
        o.insert("description".into(), Value::String(note.to_owned()));
    }
    schema
}

/// Nodes of typed stand-ins ([`stand_in`]) made for one service's tools with their object
/// properties and union members spelled out; past it a stand-in is its type alone (an object
/// lists no properties, a union its members' types), which strict clients still accept. Each
/// stand-in is bounded, their number is not: references cut at the resolver's limits were a
/// 36 MB tool list from a 22 KB document (forty properties referring to a ten-wide,
/// twelve-deep schema).
const STAND_IN_NODES: usize = 50_000;
/// Nodes one stand-in spells out at most, so that one cut reference (a union of unions, ten
/// wide and twelve deep) cannot use up the service's budget and leave the others untyped.
const STAND_IN_PER_ROOT: usize = 2_000;
/// Most values of an `enum` a stand-in copies; a longer one is left out (the type stays).
const STAND_IN_ENUM: usize = 256;
/// Most references followed from a stand-in's target to a schema with a type.
const STAND_IN_HOPS: usize = 64;
/// Deepest level of a typed stand-in ([`stand_in`]) whose object properties are spelled out;
/// below it objects list none.
const MAX_STAND_IN_DEPTH: usize = 4;
/// Deepest level of a stand-in at all: past it, an array's items or a union's members are an
/// empty object (a chain of arrays of arrays, each a reference to the next, ends here).
const MAX_STAND_IN_LEVELS: usize = 8;

/// `v` without the resolver's bookkeeping: the `x-hero-docs-ref` markers are dropped, and an
/// object it could not expand becomes a schema that says why. Where the reference's target
/// is known (a cycle, a size limit), the stand-in keeps its type ([`stand_in`]): a recursive
/// schema stays typed one level down, which strict clients (OpenAI strict mode: every array
/// has typed items, every object lists its properties) require. A dangling or remote
/// reference becomes an open schema.
fn clean(v: &Value, document: &Value, made: &mut usize) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(why) = o.get(NOTE_KEY).and_then(Value::as_str) {
                let what = o.get("$ref").and_then(Value::as_str).unwrap_or("a schema");
                let note = format!("{what}: {why}");
                let target = o
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| lookup(document, r));
                return match target {
                    Some(target) => stand_in(target, document, note, made),
                    // Cut where it stood (past the size limits): its type, if it said one.
                    None => {
                        let mut out = type_only(v, document);
                        if let Value::Object(o) = &mut out {
                            o.insert("description".into(), Value::String(note));
                        }
                        out
                    }
                };
            }
            let mut cleaned: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| k.as_str() != REF_KEY)
                .map(|(k, v)| (k.clone(), clean(v, document, made)))
                .collect();
            allow_null(&mut cleaned);
            Value::Object(cleaned)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| clean(i, document, made)).collect())
        }
        other => other.clone(),
    }
}

/// OpenAPI's `nullable: true`, which specs carry and JSON Schema does not know, as JSON
/// Schema says it: `null` among the types (and the enum). The generated clients take `null`
/// for such a param, and the service does; the tool's argument check must too.
fn allow_null(schema: &mut Map<String, Value>) {
    if schema.get("nullable") != Some(&Value::Bool(true)) {
        return;
    }
    let null = Value::String("null".into());
    match schema.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            schema.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.contains(&null) => types.push(null),
        _ => {}
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
}

/// A typed schema in place of `target` (not expanded): its `type`, an object's properties
/// (each a stand-in in turn, [`MAX_STAND_IN_DEPTH`] deep, then none), an array's items, a
/// union's members, `enum` (when short) and `const`; `note` says why it is not the full
/// schema. A target with nothing to go by is an open schema. `made` counts the nodes made for
/// the service so far: past [`STAND_IN_NODES`], or [`STAND_IN_PER_ROOT`] for this stand-in, a
/// stand-in is its type alone ([`type_only`]).
fn stand_in(target: &Value, document: &Value, note: String, made: &mut usize) -> Value {
    let stop = (*made + STAND_IN_PER_ROOT).min(STAND_IN_NODES);
    let mut out = spelled_stand_in(target, document, 0, made, stop);
    if let (Value::Object(o), false) = (&mut out, note.is_empty()) {
        o.insert("description".into(), Value::String(note));
    }
    out
}

/// [`stand_in`] at `depth`, spelling out nodes while `made` is below `stop`.
fn spelled_stand_in(
    target: &Value,
    document: &Value,
    depth: usize,
    made: &mut usize,
    stop: usize,
) -> Value {
    let target = follow(target, document);
    *made += 1;
    if *made >= stop {
        return type_only(target, document);
    }
    let deeper = |s: &Value, made: &mut usize| {
        if depth >= MAX_STAND_IN_LEVELS {
            *made += 1;
            json!({ "type": "object", "properties": {} })
        } else {
            spelled_stand_in(s, document, depth + 1, made, stop)
        }
    };
    let mut out = Map::new();
    if let Some(t) = type_of(target) {
        out.insert("type".into(), t.clone());
        if has_type(t, "object") {
            let mut properties = Map::new();
            if let (true, Some(Value::Object(ps))) =
                (depth < MAX_STAND_IN_DEPTH, target.get("properties"))
            {
                for (k, p) in ps {
                    properties.insert(k.clone(), deeper(p, made));
                }
                // With its properties listed, the object's own rules on them hold too.
                if let Some(Value::Array(required)) = target.get("required") {
                    let listed: Vec<Value> = required
                        .iter()
                        .filter(|r| r.as_str().is_some_and(|r| properties.contains_key(r)))
                        .cloned()
                        .collect();
                    out.insert("required".into(), Value::Array(listed));
                }
                if target.get("additionalProperties") == Some(&Value::Bool(false)) {
                    out.insert("additionalProperties".into(), Value::Bool(false));
                }
            }
            out.insert("properties".into(), Value::Object(properties));
        }
        if has_type(t, "array") {
            let items = match target.get("items") {
                Some(items) if items.is_object() => deeper(items, made),
                _ => json!({ "type": "object", "properties": {} }),
            };
            out.insert("items".into(), items);
        }
    } else if let Some((key, members)) = union_of(target) {
        let members: Vec<Value> = members.iter().map(|m| deeper(m, made)).collect();
        out.insert(key.into(), Value::Array(members));
    }
    copy_values(target, &mut out, made);
    Value::Object(out)
}

/// A stand-in of `target` by its type alone: an object with no properties listed, an array
/// whose items are an object (as at the depth limit); a union by the types its members admit,
/// all the way down ([`types_of`]), so that it still checks what kind of value it takes.
fn type_only(target: &Value, document: &Value) -> Value {
    let target = follow(target, document);
    let mut out = Map::new();
    let types = match type_of(target) {
        Some(t) => Some(t.clone()),
        None if union_of(target).is_some() => {
            let mut seen = std::collections::HashSet::new();
            let set = types_of(target, document, &mut seen).filter(|set| !set.is_empty());
            set.map(|set| match set.len() {
                1 => Value::String(set.into_iter().next().unwrap_or_default()),
                _ => Value::Array(set.into_iter().map(Value::String).collect()),
            })
        }
        None => None,
    };
    if let Some(t) = types {
        if has_type(&t, "object") {
            out.insert("properties".into(), json!({}));
        }
        if has_type(&t, "array") {
            out.insert(
                "items".into(),
                json!({ "type": "object", "properties": {} }),
            );
        }
        out.insert("type".into(), t);
    }
    if let Some(v) = target.get("const") {
        out.insert("const".into(), v.clone());
    }
    Value::Object(out)
}

/// The JSON types `schema` admits, through its references and unions, each schema looked at
/// once (so a union of unions costs its distinct schemas, not their product): `None` if it
/// admits any value (somewhere there is nothing to go by).
fn types_of(
    schema: &Value,
    document: &Value,
    seen: &mut std::collections::HashSet<*const Value>,
) -> Option<std::collections::BTreeSet<String>> {
    let schema = follow(schema, document);
    if !seen.insert(schema as *const Value) {
        // Met before: what it admits is counted there (a cycle adds nothing).
        return Some(std::collections::BTreeSet::new());
    }
    if let Some(t) = type_of(schema) {
        return Some(match t {
            Value::String(s) => std::iter::once(s.clone()).collect(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            _ => std::collections::BTreeSet::new(),
        });
    }
    let (_, members) = union_of(schema)?;
    let mut all = std::collections::BTreeSet::new();
    for m in members {
        all.extend(types_of(m, document, seen)?);
    }
    Some(all)
}

/// `target`, or what its `$ref`s lead to, up to [`STAND_IN_HOPS`] of them.
fn follow<'v>(mut target: &'v Value, document: &'v Value) -> &'v Value {
    for _ in 0..STAND_IN_HOPS {
        match target
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| lookup(document, r))
        {
            Some(next) => target = next,
            None => break,
        }
    }
    target
}

/// A schema's `type`, when it is one JSON Schema allows (a name or a list of names).
fn type_of(schema: &Value) -> Option<&Value> {
    schema.get("type").filter(|t| t.is_string() || t.is_array())
}

/// Whether type `t` (a name or a list) includes `name`.
fn has_type(t: &Value, name: &str) -> bool {
    match t {
        Value::String(s) => s == name,
        Value::Array(ts) => ts.iter().any(|x| x == name),
        _ => false,
    }
}

/// A schema's union (`anyOf` or `oneOf`) and its members.
fn union_of(schema: &Value) -> Option<(&'static str, &Vec<Value>)> {
    ["anyOf", "oneOf"]
        .into_iter()
        .find_map(|k| match schema.get(k) {
            Some(Value::Array(members)) => Some((k, members)),
            _ => None,
        })
}

/// A stand-in's `const`, and its `enum` when it has at most [`STAND_IN_ENUM`] values (each
/// counted in `made`): a long enum copied into every stand-in made a 130 MB tool list from a
/// 290 KB document.
fn copy_values(target: &Value, out: &mut Map<String, Value>, made: &mut usize) {
    if let Some(v) = target.get("const") {
        out.insert("const".into(), v.clone());
    }
    if let Some(Value::Array(values)) = target.get("enum") {
        if values.len() <= STAND_IN_ENUM {
            *made += values.len();
            out.insert("enum".into(), Value::Array(values.clone()));
        }
    }
}

/// The value a local reference (`#` + a JSON pointer) points at in `document`.
fn lookup<'v>(document: &'v Value, r: &str) -> Option<&'v Value> {
    let pointer = r.strip_prefix('#')?;
    let pointer = percent_encoding::percent_decode_str(pointer)
        .decode_utf8()
        .ok()?;
    document.pointer(&pointer)
}

// === impl Checks ===

/// A tool's schemas compiled for checking, each on first use: its arguments against its
/// `inputSchema` before the call, its structured result against its `outputSchema` after
/// (CONTRACT §10). A schema that does not compile is not checked: the service judges.
#[derive(Default)]
pub(crate) struct Checks {
    input: OnceLock<Option<Validator>>,
    output: OnceLock<Option<Validator>>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks").finish_non_exhaustive()
    }
}

/// Most argument errors one message lists.
const MAX_ARGUMENT_ERRORS: usize = 3;
/// Longest line of an argument error, in bytes: it quotes the value, which may be huge.
const MAX_ERROR_LINE: usize = 200;

impl Checks {
    /// `Err` with a message that names each argument that does not fit `input_schema` and
    /// what was expected; `takes` lists the arguments the tool takes.
    pub(crate) fn arguments(
        &self,
        input_schema: &JsonObject,
        arguments: &JsonObject,
        takes: &str,
    ) -> Result<(), String> {
        let Some(validator) = self.input.get_or_init(|| compile(input_schema)) else {
            return Ok(());
        };
        let arguments = Value::Object(arguments.clone());
        let errors: Vec<String> = validator
            .iter_errors(&arguments)
            .take(MAX_ARGUMENT_ERRORS)
            .map(|e| argument_error(&e, input_schema, takes))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(errors.join("; ")),
        }
    }

    /// `Err` with why, if `structured` does not fit `output_schema`.
    pub(crate) fn result(
        &self,
        output_schema: &JsonObject,
        structured: &Value,
    ) -> Result<(), String> {
        let Some(validator) = self.output.get_or_init(|| compile(output_schema)) else {
            return Ok(());
        };
        match validator.iter_errors(structured).next() {
            None => Ok(()),
            Some(e) => {
                let at = match e.instance_path().as_str() {
                    // The structured content itself (a property it lacks).
                    "" => "the top level",
                    path => path,
                };
                Err(cut_line(format!("at {at}: {e}")))
            }
        }
    }
}

/// A tool schema compiled (draft 2020-12, formats as annotations, nothing fetched).
fn compile(schema: &JsonObject) -> Option<Validator> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .offline()
        .build(&Value::Object(schema.clone()))
        .ok()
}

/// One argument error in words: which argument, and what was wrong with it.
fn argument_error(error: &ValidationError<'_>, input_schema: &JsonObject, takes: &str) -> String {
    let path = error.instance_path().as_str();
    let mut segments = path.strip_prefix('/').unwrap_or(path).splitn(2, '/');
    let argument = segments.next().filter(|a| !a.is_empty());
    let inside = segments.next();
    let line = match (error.kind(), argument) {
        (ValidationErrorKind::Required { property }, None) => {
            let name = property.as_str().unwrap_or_default();
            let expected = input_schema
                .get("properties")
                .and_then(|p| p.get(name))
                .map(|s| format!(": expected {}", crate::docs::readable_type(s)))
                .unwrap_or_default();
            format!("missing argument {name:?}{expected}")
        }
        (ValidationErrorKind::AdditionalProperties { unexpected }, None) => {
            let names: Vec<String> = unexpected.iter().map(|u| format!("{u:?}")).collect();
            format!(
                "unknown argument {}: this tool takes {takes}",
                names.join(", ")
            )
        }
        (_, Some(argument)) => {
            let argument = unescape_pointer(argument);
            let at = inside.map(|i| format!(" at /{i}")).unwrap_or_default();
            format!("argument {argument:?}{at}: {error}")
        }
        (_, None) => format!("the arguments: {error}"),
    };
    cut_line(line)
}

/// A JSON pointer segment as the name it stands for.
fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// `line` cut to [`MAX_ERROR_LINE`] bytes.
fn cut_line(line: String) -> String {
    crate::json::cut(line, MAX_ERROR_LINE)
}

// === impl Target ===

impl Target {
    /// The JSON-RPC `params` for `arguments`: an array in the spec's order for a by-position
    /// method (a missing argument before a given one is `null`; trailing ones are left out),
    /// else the arguments object as given. `None` (no params member) when a method without
    /// params is called without arguments. An argument a by-position method has no place
    /// for is an error (it would be dropped silently otherwise); by name, the service judges.
    pub(crate) fn params(&self, arguments: Option<&JsonObject>) -> Result<Option<Value>, String> {
        let empty = JsonObject::new();
        let args = arguments.unwrap_or(&empty);
        if self.by_position {
            if let Some(unknown) = args.keys().find(|k| !self.params.contains(k)) {
                return Err(format!(
                    "unknown argument {unknown:?}: this tool takes {}",
                    self.takes()
                ));
            }
            let given = self
                .params
                .iter()
                .rposition(|p| args.contains_key(p))
                .map_or(0, |i| i + 1);
            let list = self.params[..given]
                .iter()
                .map(|p| args.get(p).cloned().unwrap_or(Value::Null))
                .collect();
            return Ok(Some(Value::Array(list)));
        }
        if args.is_empty() && self.params.is_empty() {
            return Ok(None);
        }
        Ok(Some(Value::Object(args.clone())))
    }

    /// The arguments this tool takes, for messages.
    pub(crate) fn takes(&self) -> String {
        if self.params.is_empty() {
            return "no arguments".to_owned();
        }
        let names: Vec<String> = self.params.iter().map(|p| format!("{p:?}")).collect();
        names.join(", ")
    }

    /// The `structuredContent` for a successful `result`, as the output schema describes it:
    /// the result itself when it is an object, else `{"result": …}`. `None` when the method
    /// declares no result, or declared an object and answered something else (the text
    /// content still carries it).
    pub(crate) fn structured(&self, result: &Value) -> Option<Value> {
        match self.output {
            Output::None => None,
            Output::Object => result.is_object().then(|| result.clone()),
            Output::Wrapped => Some(json!({ "result": result })),
        }
    }
}

#[cfg(test)]
mod tests;
