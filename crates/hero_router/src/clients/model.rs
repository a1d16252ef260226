//! What the generators see of an OpenRPC document: methods with typed params and results,
//! and named types (docs/clients.md#types).
//!
//! Every `components/schemas` entry is a named type, in the spec's order; so is every other
//! `$ref` target (named after its last pointer segment). A reference is a name, never a copy:
//! recursion stays a named, typed reference, and a `$ref` bomb costs one type per target,
//! not one per path. Inline object schemas with properties become named types too, named
//! after where they sit (`AddA` for `add`'s param `a`, `NodeChildrenItem`, `GetResult`).
//!
//! Understood: `type` (one or a list), `nullable: true`, `enum` and `const` (literals),
//! `oneOf`/`anyOf` (unions), `allOf` (the members' properties merged when they are all
//! objects, else the first member), `properties`/`required`, `additionalProperties` (a map
//! when there are no properties), `items`, `not: {}` and `false` (never), `true`/`{}`
//! (anything). Anything else is "anything".
//!
//! Bounded: at most [`MAX_METHODS`] methods, [`MAX_NODES`] schema nodes read and
//! [`MAX_DEPTH`] levels of inline nesting; past a bound a type is "anything" and the module
//! says so in a note.

use std::collections::{HashMap, HashSet};

use percent_encoding::percent_decode_str;

use super::names;
use serde_json::{Map, Value};

/// Most methods generated.
pub(crate) const MAX_METHODS: usize = 5_000;
/// Most schema nodes read for one document.
pub(crate) const MAX_NODES: usize = 200_000;
/// Deepest inline schema nesting read; deeper is "anything".
pub(crate) const MAX_DEPTH: usize = 32;
/// Most members of one union and values of one enum spelled out; a longer one is "anything"
/// (a union) or its values' type (an enum).
pub(crate) const MAX_UNION: usize = 256;
/// Longest name made for an inline type, in bytes.
const MAX_HINT: usize = 96;
/// Longest chain of references followed to find a content descriptor or method.
const MAX_HOPS: usize = 8;

/// A service's API, ready to generate from.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// The service's name (`service.method` through the router).
    pub(crate) service: String,
    /// `info.title`.
    pub(crate) title: Option<String>,
    /// `info.version`.
    pub(crate) version: Option<String>,
    /// `info.description`.
    pub(crate) description: Option<String>,
    /// The methods, in the spec's order.
    pub(crate) methods: Vec<Method>,
    /// The named types; [`Ty::Named`] indexes this.
    pub(crate) types: Vec<TypeDef>,
    /// What could not be generated as written (bounds reached, methods without a name).
    pub(crate) notes: Vec<String>,
}

/// One OpenRPC method.
#[derive(Debug, Clone)]
pub(crate) struct Method {
    /// Its name as the service knows it.
    pub(crate) wire: String,
    /// `summary`.
    pub(crate) summary: Option<String>,
    /// `description`.
    pub(crate) description: Option<String>,
    /// `deprecated: true`.
    pub(crate) deprecated: bool,
    /// `paramStructure: by-position`: the params are sent as an array, in order; otherwise
    /// as an object by name (as the MCP gateway sends them).
    pub(crate) by_position: bool,
    /// The params, in order.
    pub(crate) params: Vec<Param>,
    /// The result; `None` when the method declares none.
    pub(crate) result: Option<Returns>,
}

/// One param.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    /// Its name in the spec (the key sent by name).
    pub(crate) wire: String,
    /// `required: true`.
    pub(crate) required: bool,
    /// The param's own description (the content descriptor's, not its schema's).
    pub(crate) description: Option<String>,
    /// Its type.
    pub(crate) ty: Ty,
}

/// A method's result.
#[derive(Debug, Clone)]
pub(crate) struct Returns {
    /// The result's description.
    pub(crate) description: Option<String>,
    /// Its type.
    pub(crate) ty: Ty,
}

/// A named type.
#[derive(Debug, Clone)]
pub(crate) struct TypeDef {
    /// The name it is proposed under (a component's key, a pointer's last segment, or a
    /// name made from where an inline schema sits); the generators make it safe.
    pub(crate) proposed: String,
    /// The schema's `description` (else `title`).
    pub(crate) description: Option<String>,
    /// What it is.
    pub(crate) body: Body,
}

/// What a named type is.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// An object with these properties, in the spec's order.
    Object(Vec<Field>),
    /// Another type under this name.
    Alias(Ty),
}

/// One property of an object type.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The property's name (the JSON key).
    pub(crate) wire: String,
    /// Listed in `required`.
    pub(crate) required: bool,
    /// The property schema's own description.
    pub(crate) description: Option<String>,
    /// Its type.
    pub(crate) ty: Ty,
}

/// A type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    /// Any JSON value.
    Any,
    /// No value (`false`, `not: {}`).
    Never,
    /// `null`.
    Null,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A number.
    Float,
    /// A string.
    Str,
    /// One of these values.
    Literals(Vec<Lit>),
    /// An array of items.
    Array(Box<Ty>),
    /// An object with any keys, values of a type.
    Map(Box<Ty>),
    /// A named type (an index into [`Api::types`]).
    Named(usize),
    /// Any of these.
    Union(Vec<Ty>),
}

/// A literal value (`enum`, `const`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    /// A string.
    Str(String),
    /// A number.
    Num(serde_json::Number),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
}

/// The API of `service` as its document `spec` describes it.
pub(crate) fn build(service: &str, spec: &Value) -> Api {
    let mut b = Builder {
        root: spec,
        types: Vec::new(),
        by_pointer: HashMap::new(),
        pending: Vec::new(),
        nodes: 0,
        notes: Vec::new(),
    };
    let info = spec.at("info");
    let text = |v: &Value| v.as_str().map(str::to_owned);
    // Components first, in the spec's order, so they get their own names first.
    if let Some(schemas) = spec.at("components").at("schemas").as_object() {
        for (name, _) in schemas {
            let pointer = format!("#/components/schemas/{}", escape_pointer(name));
            b.named(&pointer);
        }
    }
    let mut methods = Vec::new();
    let listed = spec.at("methods").as_array().map_or(&[][..], Vec::as_slice);
    if listed.len() > MAX_METHODS {
        b.notes.push(format!(
            "the document has {} methods; the first {MAX_METHODS} are generated",
            listed.len()
        ));
    }
    let mut nameless = 0;
    let mut doubled = Vec::new();
    for m in listed.iter().take(MAX_METHODS) {
        let m = b.follow(m);
        let Some(wire) = m.at("name").as_str() else {
            nameless += 1;
            continue;
        };
        let listed_params = m.at("params").as_array().map_or(&[][..], Vec::as_slice);
        let mut seen = HashSet::new();
        let untypable = listed_params
            .iter()
            .map(|p| b.follow(p).at("name").as_str())
            .any(|n| n.is_none_or(|n| !seen.insert(n)));
        if untypable {
            // OpenRPC: every param has a name, and names are unique. One without a name cannot
            // be passed by name (and leaving it out would shift the later ones by position);
            // two of one name cannot both be, and a typed signature cannot declare them both.
            doubled.push(wire);
            continue;
        }
        let mut base = names::convert(wire, names::Case::Pascal, "Method");
        base.truncate(MAX_HINT);
        let mut params = Vec::new();
        for p in listed_params {
            let p = b.follow(p);
            let Some(pname) = p.at("name").as_str() else {
                continue;
            };
            let hint = child_hint(&base, pname);
            let ty = b.ty(p.at("schema"), &hint, 0);
            params.push(Param {
                wire: pname.to_owned(),
                required: p.at("required").as_bool().unwrap_or(false),
                description: text(p.at("description")).or_else(|| text(p.at("summary"))),
                ty,
            });
        }
        let result = m.get("result").map(|r| {
            let r = b.follow(r);
            Returns {
                description: text(r.at("description")).or_else(|| text(r.at("summary"))),
                ty: b.ty(r.at("schema"), &format!("{base}Result"), 0),
            }
        });
        methods.push(Method {
            wire: wire.to_owned(),
            summary: text(m.at("summary")),
            description: text(m.at("description")),
            deprecated: m.at("deprecated").as_bool().unwrap_or(false),
            by_position: m.at("paramStructure").as_str() == Some("by-position"),
            params,
            result,
        });
    }
    match nameless {
        0 => {}
        1 => b
            .notes
            .push("a method without a name is left out".to_owned()),
        n => b
            .notes
            .push(format!("{n} methods without a name are left out")),
    }
    if !doubled.is_empty() {
        // Quoted and escaped: a name is the spec's text, and this line goes into the header.
        let shown: Vec<String> = doubled
            .iter()
            .take(5)
            .map(|n| format!("{:?}", n.chars().take(64).collect::<String>()))
            .collect();
        let more = match doubled.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        b.notes.push(format!(
            "methods with a param without a name, or two of one name, are left out: {}{more}",
            shown.join(", ")
        ));
    }
    // The named types' bodies; building one may name more.
    while let Some((i, schema)) = b.pending.pop() {
        let proposed = b.types[i].proposed.clone();
        b.types[i].body = b.body(schema, &proposed);
        if b.types[i].description.is_none() {
            b.types[i].description =
                text(schema.at("description")).or_else(|| text(schema.at("title")));
        }
    }
    if b.nodes > MAX_NODES {
        b.notes.push(format!(
            "the document's schemas have more than {MAX_NODES} nodes; the rest are typed as any value"
        ));
    }
    let mut api = Api {
        service: service.to_owned(),
        title: text(info.at("title")),
        version: text(info.at("version")),
        description: text(info.at("description")),
        methods,
        types: b.types,
        notes: b.notes,
    };
    break_alias_cycles(&mut api.types);
    api
}

struct Builder<'a> {
    root: &'a Value,
    types: Vec<TypeDef>,
    /// The named type of each `$ref` target.
    by_pointer: HashMap<String, usize>,
    /// Named types whose body is still to be built.
    pending: Vec<(usize, &'a Value)>,
    /// Schema nodes read.
    nodes: usize,
    notes: Vec<String>,
}

// === impl Builder ===

impl<'a> Builder<'a> {
    /// `v`, or what it refers to when it is a `{"$ref": …}` (a content descriptor, a
    /// method), a few hops at most; its own members other than `$ref` are not merged.
    fn follow(&self, v: &'a Value) -> &'a Value {
        let mut at = v;
        for _ in 0..MAX_HOPS {
            match at.at("$ref").as_str().and_then(|r| self.lookup(r)) {
                Some(target) => at = target,
                None => break,
            }
        }
        at
    }

    fn lookup(&self, r: &str) -> Option<&'a Value> {
        let fragment = r.strip_prefix('#')?;
        let pointer = percent_decode_str(fragment).decode_utf8().ok()?;
        // A document's objects keep their members in a hash-indexed map (serde_json's
        // `preserve_order`), so a pointer through thousands of components is cheap.
        self.root.pointer(&pointer)
    }

    /// The named type of the `$ref` target `r`, made on first use; `None` when `r` does not
    /// resolve.
    fn named(&mut self, r: &str) -> Option<usize> {
        if let Some(&i) = self.by_pointer.get(r) {
            return Some(i);
        }
        let target = self.lookup(r)?;
        let last = r.rsplit('/').next().unwrap_or(r);
        let last = percent_decode_str(last).decode_utf8_lossy();
        let proposed = last.replace("~1", "/").replace("~0", "~");
        let i = self.types.len();
        self.types.push(TypeDef {
            proposed,
            description: None,
            body: Body::Alias(Ty::Any),
        });
        self.by_pointer.insert(r.to_owned(), i);
        self.pending.push((i, target));
        Some(i)
    }

    /// An inline named type for an object schema at `hint`.
    fn inline(&mut self, schema: &'a Value, hint: &str, depth: usize) -> Ty {
        let i = self.types.len();
        self.types.push(TypeDef {
            proposed: hint.to_owned(),
            description: schema
                .at("description")
                .as_str()
                .or_else(|| schema.at("title").as_str())
                .map(str::to_owned),
            body: Body::Alias(Ty::Any),
        });
        let fields = self.fields(schema, hint, depth);
        self.types[i].body = Body::Object(fields);
        Ty::Named(i)
    }

    /// A named type's body: an object's fields, or an alias.
    fn body(&mut self, schema: &'a Value, hint: &str) -> Body {
        if self.has_properties(schema) && schema.get("$ref").is_none() && !is_union(schema) {
            Body::Object(self.fields(schema, hint, 0))
        } else {
            Body::Alias(self.ty(schema, hint, 0))
        }
    }

    /// Whether `schema` is an object with properties of its own or merged from `allOf`.
    fn has_properties(&self, schema: &Value) -> bool {
        let own = schema
            .at("properties")
            .as_object()
            .is_some_and(|p| !p.is_empty());
        own || self.all_of_objects(schema).is_some()
    }

    /// The object schemas an `allOf` merges (references followed), if every member is one.
    fn all_of_objects(&self, schema: &'a Value) -> Option<Vec<&'a Value>> {
        let members = schema.at("allOf").as_array()?;
        let mut out = vec![schema];
        let mut stack: Vec<(&Value, usize)> = members.iter().map(|m| (m, 0)).collect();
        stack.reverse();
        while let Some((m, depth)) = stack.pop() {
            if depth > MAX_HOPS || out.len() > 64 {
                return None;
            }
            let m = self.follow(m);
            if let Some(inner) = m.at("allOf").as_array() {
                stack.extend(inner.iter().rev().map(|i| (i, depth + 1)));
            }
            let is_object =
                m.at("properties").as_object().is_some() || m.at("type").as_str() == Some("object");
            if !is_object {
                return None;
            }
            out.push(m);
        }
        Some(out)
    }

    /// The fields of an object schema (and of the objects its `allOf` merges), in order; a
    /// name seen twice keeps its first place and its last schema.
    fn fields(&mut self, schema: &'a Value, hint: &str, depth: usize) -> Vec<Field> {
        let parts = self.all_of_objects(schema).unwrap_or_else(|| vec![schema]);
        let mut fields: Vec<Field> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for part in parts {
            let required: HashSet<&str> = part
                .at("required")
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for (name, sub) in part.at("properties").as_object().into_iter().flatten() {
                let field = Field {
                    wire: name.clone(),
                    required: required.contains(name.as_str()),
                    description: sub.at("description").as_str().map(str::to_owned),
                    ty: self.ty(sub, &child_hint(hint, name), depth + 1),
                };
                match by_name.get(name.as_str()).map(|&i| &mut fields[i]) {
                    Some(f) => {
                        f.required |= field.required;
                        f.ty = field.ty;
                        f.description = field.description.or(f.description.take());
                    }
                    None => {
                        by_name.insert(name, fields.len());
                        fields.push(field);
                    }
                }
            }
            // `required` may name a property another part declares.
            for f in &mut fields {
                f.required |= required.contains(f.wire.as_str());
            }
        }
        fields
    }

    /// The type of `schema`; `hint` names an inline object type made for it.
    fn ty(&mut self, schema: &'a Value, hint: &str, depth: usize) -> Ty {
        self.nodes += 1;
        if self.nodes > MAX_NODES || depth > MAX_DEPTH {
            return Ty::Any;
        }
        let o = match schema {
            Value::Bool(false) => return Ty::Never,
            Value::Object(_) => schema,
            _ => return Ty::Any,
        };
        if let Some(r) = o.at("$ref").as_str() {
            return match self.named(r) {
                Some(i) => nullable(o, Ty::Named(i)),
                None => Ty::Any,
            };
        }
        if let Some(c) = o.get("const") {
            return literal(c).map_or(Ty::Any, |l| Ty::Literals(vec![l]));
        }
        if let Some(values) = o.at("enum").as_array() {
            // Every value is read: it counts as a node.
            self.nodes += values.len();
            if values.len() > MAX_UNION {
                let tys = values
                    .iter()
                    .map(|v| literal(v).map_or(Ty::Any, |l| l.ty()))
                    .collect();
                return nullable(o, union(tys));
            }
            let lits: Option<Vec<Lit>> = values.iter().map(literal).collect();
            if let Some(lits) = lits.filter(|l| !l.is_empty()) {
                return nullable(o, union(vec![Ty::Literals(lits)]));
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(members) = o.at(key).as_array() {
                let tys = members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.ty(m, &format!("{hint}Option{}", i + 1), depth + 1))
                    .collect();
                return nullable(o, union(tys));
            }
        }
        if o.get("allOf").is_some() {
            if self.all_of_objects(o).is_some() {
                return nullable(o, self.inline(o, hint, depth));
            }
            let first = o.at("allOf").as_array().and_then(|m| m.first());
            return nullable(o, first.map_or(Ty::Any, |m| self.ty(m, hint, depth + 1)));
        }
        if o.at("not").as_object().is_some_and(Map::is_empty) || o.at("not") == &Value::Bool(true) {
            return Ty::Never;
        }
        let types: Vec<&str> = match o.at("type") {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ if o.get("properties").is_some() || o.get("additionalProperties").is_some() => {
                vec!["object"]
            }
            _ if o.get("items").is_some() => vec!["array"],
            _ => return nullable(o, Ty::Any),
        };
        let tys = types
            .iter()
            .map(|t| match *t {
                "string" => Ty::Str,
                "integer" => Ty::Int,
                "number" => Ty::Float,
                "boolean" => Ty::Bool,
                "null" => Ty::Null,
                "array" => {
                    let item = match o.at("items") {
                        Value::Array(tuple) => union(
                            tuple
                                .iter()
                                .map(|i| self.ty(i, &format!("{hint}Item"), depth + 1))
                                .collect(),
                        ),
                        Value::Null => Ty::Any,
                        items => self.ty(items, &format!("{hint}Item"), depth + 1),
                    };
                    Ty::Array(Box::new(item))
                }
                "object" => self.object(o, hint, depth),
                _ => Ty::Any,
            })
            .collect();
        nullable(o, union(tys))
    }

    /// An object schema's type: a named type when it has properties, else a map.
    fn object(&mut self, o: &'a Value, hint: &str, depth: usize) -> Ty {
        if o.at("properties")
            .as_object()
            .is_some_and(|p| !p.is_empty())
        {
            return self.inline(o, hint, depth);
        }
        let value = match o.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Ty::Any,
            Some(Value::Bool(false)) => Ty::Never,
            Some(s) => self.ty(s, &format!("{hint}Value"), depth + 1),
        };
        Ty::Map(Box::new(value))
    }
}

/// The name of an inline type inside the one named `hint`, at its member `name`; at most
/// [`MAX_HINT`] bytes (the names are ASCII).
fn child_hint(hint: &str, name: &str) -> String {
    let mut out = format!(
        "{hint}{}",
        names::convert(name, names::Case::Pascal, "Field")
    );
    out.truncate(MAX_HINT);
    out
}

/// Whether `schema` is a union (its properties, if any, are not what it is).
fn is_union(schema: &Value) -> bool {
    ["oneOf", "anyOf", "enum", "const"]
        .iter()
        .any(|k| schema.get(k).is_some())
}

/// `ty`, or `ty | null` when `o` says `nullable: true`.
fn nullable(o: &Value, ty: Ty) -> Ty {
    if o.at("nullable").as_bool() == Some(true) {
        union(vec![ty, Ty::Null])
    } else {
        ty
    }
}

/// One type for `tys`: the union flattened and without repeats; `Any` absorbs the rest,
/// `Never` is dropped.
/// More than [`MAX_UNION`] members is "anything".
pub(crate) fn union(tys: Vec<Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    let mut lits: Vec<Lit> = Vec::new();
    let mut seen_lits = std::collections::HashSet::new();
    let mut stack = tys;
    stack.reverse();
    while let Some(t) = stack.pop() {
        if out.len() + lits.len() > MAX_UNION {
            return Ty::Any;
        }
        match t {
            Ty::Any => return Ty::Any,
            Ty::Never => {}
            Ty::Union(inner) => stack.extend(inner.into_iter().rev()),
            Ty::Literals(ls) => {
                for l in ls {
                    if seen_lits.insert(l.key()) {
                        lits.push(l);
                    }
                }
            }
            t if !out.contains(&t) => out.push(t),
            _ => {}
        }
    }
    if !lits.is_empty() {
        out.push(Ty::Literals(lits));
    }
    match out.len() {
        0 => Ty::Never,
        1 => out.pop().unwrap_or(Ty::Never),
        _ => Ty::Union(out),
    }
}

// === impl Lit ===

impl Lit {
    /// The type of the value.
    fn ty(&self) -> Ty {
        match self {
            Lit::Str(_) => Ty::Str,
            Lit::Num(n) if n.is_i64() || n.is_u64() => Ty::Int,
            Lit::Num(_) => Ty::Float,
            Lit::Bool(_) => Ty::Bool,
            Lit::Null => Ty::Null,
        }
    }

    /// A key that tells literals apart (`1` and `"1"` differ).
    fn key(&self) -> String {
        match self {
            Lit::Str(s) => format!("s{s}"),
            Lit::Num(n) => format!("n{n}"),
            Lit::Bool(b) => format!("b{b}"),
            Lit::Null => "null".to_owned(),
        }
    }
}

/// A JSON value as a literal type; `None` for arrays and objects.
fn literal(v: &Value) -> Option<Lit> {
    Some(match v {
        Value::Null => Lit::Null,
        Value::Bool(b) => Lit::Bool(*b),
        Value::Number(n) => Lit::Num(n.clone()),
        Value::String(s) => Lit::Str(s.clone()),
        _ => return None,
    })
}

/// A JSON pointer token with `~` and `/` escaped.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// An alias that is itself, through other aliases and unions only (`A = B | int`,
/// `B = A`), names no type: it becomes "anything". Through an array, a map or an object
/// the recursion is a real type and stays.
fn break_alias_cycles(types: &mut [TypeDef]) {
    fn direct(ty: &Ty, out: &mut Vec<usize>) {
        match ty {
            Ty::Named(i) => out.push(*i),
            Ty::Union(members) => members.iter().for_each(|m| direct(m, out)),
            _ => {}
        }
    }
    let edges: Vec<Vec<usize>> = types
        .iter()
        .map(|t| match &t.body {
            Body::Alias(ty) => {
                let mut out = Vec::new();
                direct(ty, &mut out);
                out
            }
            Body::Object(_) => Vec::new(),
        })
        .collect();
    // Iterative depth-first search; a back edge closes a cycle, and the alias it starts
    // from is cut.
    let mut state = vec![0u8; types.len()];
    let mut cut = Vec::new();
    for start in 0..types.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            if let Some(&to) = edges[node].get(top.1) {
                top.1 += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => cut.push(node),
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    for i in cut {
        types[i].body = Body::Alias(Ty::Any);
    }
}

/// Reads a schema as the spec is written: a member that is not there is `null`.
trait At {
    fn at(&self, key: &str) -> &Value;
}

impl At for Value {
    fn at(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&Value::Null)
    }
}

#[cfg(test)]
mod tests;
