//! The Python client (docs/clients.md#python): one module, standard library only, Python
//! 3.10 or newer, `mypy --strict` clean.
//!
//! Types: an object is a `TypedDict` (a required and an optional half, joined: 3.10 has no
//! `NotRequired`), written in the functional form so that any key is allowed and every type
//! is a string, resolved lazily (forward references and recursion need no order); any other
//! named type is a `TypeAlias` to a string. Enums are `Literal`s, nullable types
//! `Optional[…]`, unions `A | B`.

use serde::Serialize;

use super::model::{Api, Body, Lit, Method, Ty};
use super::names::{Case, PYTHON_KEYWORDS, PYTHON_USED, Scope};
use super::{doc_lines, header_lines, render, string_literal as literal, summary_lines};

/// The order the named types are written in: each alias after the types it names, where it
/// can be (a cycle keeps the spec's order); otherwise the spec's order. mypy follows a chain
/// of aliases written before their targets only so far: past about twenty links it gives up
/// ("Cannot resolve name … (possible cyclic definition)").
fn written_order(api: &Api) -> Vec<usize> {
    fn named(ty: &Ty, out: &mut Vec<usize>) {
        match ty {
            Ty::Named(i) => out.push(*i),
            Ty::Array(t) | Ty::Map(t) => named(t, out),
            Ty::Union(ts) => ts.iter().for_each(|t| named(t, out)),
            _ => {}
        }
    }
    let n = api.types.len();
    // 0: not seen, 1: on the stack, 2: written.
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        // An explicit stack: a hostile chain may be thousands of links long.
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                state[i] = 2;
                order.push(i);
                continue;
            }
            if state[i] != 0 {
                continue;
            }
            state[i] = 1;
            stack.push((i, true));
            if let Body::Alias(ty) = &api.types[i].body {
                let mut deps = Vec::new();
                named(ty, &mut deps);
                // Reversed: the first named is written first.
                for d in deps.into_iter().rev().filter(|&d| d < n && state[d] == 0) {
                    stack.push((d, false));
                }
            }
        }
    }
    order
}

/// The generated module's text.
pub(crate) fn generate(api: &Api) -> String {
    let mut types = Scope::new(Case::Pascal, "Type", &[PYTHON_KEYWORDS, PYTHON_USED]);
    let type_names: Vec<String> = api.types.iter().map(|t| types.name(&t.proposed)).collect();
    let tys = TypeWriter { names: &type_names };
    let defs = written_order(api)
        .into_iter()
        .map(|i| (&api.types[i], &type_names[i]))
        .map(|(t, name)| {
            let doc = t
                .description
                .as_deref()
                .map(|d| docstring(&doc_lines(d), 4));
            match &t.body {
                Body::Object(fields) => {
                    let half = |required: bool| -> Vec<(String, String)> {
                        fields
                            .iter()
                            .filter(|f| f.required == required)
                            .map(|f| (literal(&f.wire), literal(&tys.expr(&f.ty, false))))
                            .collect()
                    };
                    PyType {
                        name: name.clone(),
                        doc,
                        object: true,
                        required: half(true),
                        optional: half(false),
                        alias: String::new(),
                    }
                }
                Body::Alias(ty) => PyType {
                    name: name.clone(),
                    doc,
                    object: false,
                    required: Vec::new(),
                    optional: Vec::new(),
                    alias: literal(&tys.expr(ty, false)),
                },
            }
        })
        .collect();
    let mut methods = Scope::new(Case::Snake, "method", &[PYTHON_KEYWORDS, PYTHON_USED]);
    let methods = api
        .methods
        .iter()
        .map(|m| method(m, methods.name(&m.wire), &tys))
        .collect();
    let mut header = header_lines(api);
    header.extend([
        "Usage::".to_owned(),
        String::new(),
        "    client = Client.tcp(\"http://127.0.0.1:9988\")  # through the router".to_owned(),
        format!(
            "    client = Client.unix(\"<root>/{}/rpc.sock\")  # straight to the service",
            api.service
        ),
    ]);
    render(
        "client.py",
        PyView {
            doc: docstring(&header, 0),
            service: literal(&api.service),
            types: defs,
            methods,
        },
    )
}

#[derive(Serialize)]
struct PyView {
    doc: String,
    service: String,
    types: Vec<PyType>,
    methods: Vec<PyMethod>,
}

#[derive(Serialize)]
struct PyType {
    name: String,
    doc: Option<String>,
    object: bool,
    /// `(key literal, type literal)`.
    required: Vec<(String, String)>,
    optional: Vec<(String, String)>,
    alias: String,
}

#[derive(Serialize)]
struct PyMethod {
    name: String,
    /// The parameter list after `self`.
    params: String,
    /// The keyword arguments passing them on (`a=a, b=b`).
    forward: String,
    returns: String,
    doc: String,
    /// The sync body's lines.
    body: Vec<String>,
    /// The async body's lines.
    async_body: Vec<String>,
}

/// One method of both clients.
fn method(m: &Method, name: String, tys: &TypeWriter<'_>) -> PyMethod {
    let mut scope = Scope::new(Case::Snake, "param", &[PYTHON_KEYWORDS, PYTHON_USED]);
    let names: Vec<String> = m.params.iter().map(|p| scope.name(&p.wire)).collect();
    let mut params = String::new();
    if !m.params.is_empty() {
        params.push_str(", *");
    }
    for (p, n) in m.params.iter().zip(&names) {
        let ty = tys.expr(&p.ty, false);
        if p.required {
            params.push_str(&format!(", {n}: {ty}"));
        } else if ty == "Any" || is_optional(&p.ty) {
            params.push_str(&format!(", {n}: {ty} = None"));
        } else {
            params.push_str(&format!(", {n}: Optional[{ty}] = None"));
        }
    }
    let forward = names
        .iter()
        .map(|n| format!("{n}={n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let wire = literal(&m.wire);
    let args = if m.params.is_empty() {
        "None".to_owned()
    } else if m.by_position {
        let keep = m
            .params
            .iter()
            .rposition(|p| p.required)
            .map_or(0, |i| i + 1);
        format!("_positional([{}], {keep})", names.join(", "))
    } else {
        let part = |required: bool| {
            let members: Vec<String> = m
                .params
                .iter()
                .zip(&names)
                .filter(|(p, _)| p.required == required)
                .map(|(p, n)| format!("{}: {n}", literal(&p.wire)))
                .collect();
            format!("{{{}}}", members.join(", "))
        };
        format!("_named({}, {})", part(true), part(false))
    };
    let call = format!("self._call({wire}, {args})");
    // A lambda, not `to_thread(self._client.m, f=f)`: mypy matches keyword arguments through
    // to_thread's ParamSpec in time exponential in how deep the params' TypedDicts nest (a
    // chain of 22 branching references took 15 s, 40 did not finish); a call in a lambda is
    // checked as any call.
    let forward_call = format!("asyncio.to_thread(lambda: self._client.{name}({forward}))");
    let (returns, body, async_body) = match &m.result {
        None => (
            "None".to_owned(),
            vec![call],
            vec![format!("await {forward_call}")],
        ),
        Some(r) if r.ty == Ty::Never => (
            "NoReturn".to_owned(),
            vec![
                call,
                format!(
                    "raise TransportError({})",
                    literal(&format!(
                        "{} answered a result, but its spec says it never does",
                        m.wire
                    ))
                ),
            ],
            vec![
                format!("await {forward_call}"),
                "raise AssertionError(\"unreachable\")".to_owned(),
            ],
        ),
        Some(r) if r.ty == Ty::Any => (
            "Any".to_owned(),
            vec![format!("return {call}")],
            vec![format!("return await {forward_call}")],
        ),
        Some(r) => {
            let ty = tys.expr(&r.ty, false);
            (
                ty.clone(),
                vec![format!("return cast({}, {call})", literal(&ty))],
                vec![format!("return await {forward_call}")],
            )
        }
    };
    let mut doc = summary_lines(m);
    if m.deprecated {
        doc.push(String::new());
        doc.push("Deprecated.".to_owned());
    }
    if m.params.iter().any(|p| p.description.is_some()) {
        doc.push(String::new());
        doc.push("Args:".to_owned());
        for (p, n) in m.params.iter().zip(&names) {
            let mut lines = doc_lines(p.description.as_deref().unwrap_or("")).into_iter();
            let first = format!("    {n}: {}", lines.next().unwrap_or_default());
            doc.push(first.trim_end().to_owned());
            doc.extend(lines.map(|l| format!("        {l}")));
        }
    }
    if let Some(d) = m.result.as_ref().and_then(|r| r.description.as_deref()) {
        doc.push(String::new());
        doc.push("Returns:".to_owned());
        doc.extend(doc_lines(d).into_iter().map(|l| format!("    {l}")));
    }
    PyMethod {
        name,
        params,
        forward,
        returns,
        doc: docstring(&doc, 8),
        body,
        async_body,
    }
}

/// Whether `ty` already admits `None`.
fn is_optional(ty: &Ty) -> bool {
    match ty {
        Ty::Null => true,
        Ty::Union(members) => members.iter().any(is_optional),
        Ty::Literals(lits) => lits.contains(&Lit::Null),
        _ => false,
    }
}

/// Writes types as Python type expressions.
struct TypeWriter<'n> {
    names: &'n [String],
}

impl TypeWriter<'_> {
    /// `ty` as a type expression; `ret`: in a return position.
    fn expr(&self, ty: &Ty, ret: bool) -> String {
        match ty {
            Ty::Any => "Any".to_owned(),
            Ty::Never if ret => "NoReturn".to_owned(),
            Ty::Never => "Any".to_owned(),
            Ty::Null => "None".to_owned(),
            Ty::Bool => "bool".to_owned(),
            Ty::Int => "int".to_owned(),
            Ty::Float => "float".to_owned(),
            Ty::Str => "str".to_owned(),
            Ty::Literals(lits) => {
                // `Literal` takes strings, integers, booleans and None; other numbers widen.
                let mut inside = Vec::new();
                let mut float = false;
                for l in lits {
                    match l {
                        Lit::Str(s) => inside.push(literal(s)),
                        Lit::Num(n) if n.is_i64() || n.is_u64() => inside.push(n.to_string()),
                        Lit::Num(_) => float = true,
                        Lit::Bool(true) => inside.push("True".to_owned()),
                        Lit::Bool(false) => inside.push("False".to_owned()),
                        Lit::Null => inside.push("None".to_owned()),
                    }
                }
                let lit = (!inside.is_empty()).then(|| format!("Literal[{}]", inside.join(", ")));
                match (lit, float) {
                    (Some(l), true) => format!("{l} | float"),
                    (Some(l), false) => l,
                    (None, _) => "float".to_owned(),
                }
            }
            Ty::Array(item) => format!("list[{}]", self.expr(item, false)),
            Ty::Map(value) => format!("dict[str, {}]", self.expr(value, false)),
            Ty::Named(i) => self
                .names
                .get(*i)
                .cloned()
                .unwrap_or_else(|| "Any".to_owned()),
            Ty::Union(members) => {
                let non_null: Vec<&Ty> = members.iter().filter(|m| **m != Ty::Null).collect();
                let parts: Vec<String> = non_null.iter().map(|m| self.expr(m, false)).collect();
                if non_null.len() < members.len() {
                    if parts.len() == 1 {
                        return format!("Optional[{}]", parts[0]);
                    }
                    return format!("Optional[{}]", parts.join(" | "));
                }
                parts.join(" | ")
            }
        }
    }
}

/// A docstring of `lines`, each after `indent` spaces, quotes and backslashes escaped.
fn docstring(lines: &[String], indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::from("\"\"\"");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\t' => out.push_str("    "),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    if lines.len() > 1 {
        out.push('\n');
        out.push_str(&pad);
    }
    out.push_str("\"\"\"");
    out
}
