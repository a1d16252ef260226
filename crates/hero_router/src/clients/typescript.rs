//! The TypeScript client (docs/clients.md#typescript): one ES module, no dependencies (the
//! global `fetch`), `tsc --strict` clean.
//!
//! Types: an object is an `interface` whose keys are the spec's property names, quoted;
//! any other named type is a `type` alias. Enums are literal unions, nullable types
//! `T | null`, anything `unknown`.

use serde::Serialize;

use super::model::{Api, Body, Lit, Method, Ty};
use super::names::{Case, OBJECT_MEMBERS, Scope, TS_KEYWORDS, TS_USED};
use super::{doc_lines, header_lines, render, string_literal as literal, summary_lines};

/// The generated module's text.
pub(crate) fn generate(api: &Api) -> String {
    let mut types = Scope::new(
        Case::Pascal,
        "Type",
        &[TS_KEYWORDS, TS_USED, OBJECT_MEMBERS],
    );
    let type_names: Vec<String> = api.types.iter().map(|t| types.name(&t.proposed)).collect();
    let tys = TypeWriter { names: &type_names };
    let defs = api
        .types
        .iter()
        .zip(&type_names)
        .map(|(t, name)| {
            let doc = t.description.as_deref().map(|d| comment(&doc_lines(d), ""));
            match &t.body {
                Body::Object(fields) => TsType {
                    name: name.clone(),
                    doc,
                    fields: fields
                        .iter()
                        .map(|f| TsField {
                            doc: f
                                .description
                                .as_deref()
                                .map(|d| comment(&doc_lines(d), "  ")),
                            key: literal(&f.wire),
                            optional: !f.required,
                            ty: tys.expr(&f.ty),
                        })
                        .collect(),
                    alias: None,
                },
                Body::Alias(ty) => TsType {
                    name: name.clone(),
                    doc,
                    fields: Vec::new(),
                    alias: Some(tys.expr(ty)),
                },
            }
        })
        .collect();
    let mut methods = Scope::new(
        Case::Camel,
        "method",
        &[TS_KEYWORDS, TS_USED, OBJECT_MEMBERS],
    );
    let methods = api
        .methods
        .iter()
        .map(|m| method(m, methods.name(&m.wire), &tys))
        .collect();
    let mut header = header_lines(api);
    header.extend([
        "Usage: `const client = new Client(\"http://127.0.0.1:9988\");` (the router's URL)."
            .to_owned(),
    ]);
    render(
        "client.ts",
        TsView {
            doc: comment(&header, ""),
            service: literal(&api.service),
            types: defs,
            methods,
        },
    )
}

#[derive(Serialize)]
struct TsView {
    doc: String,
    service: String,
    types: Vec<TsType>,
    methods: Vec<TsMethod>,
}

#[derive(Serialize)]
struct TsType {
    name: String,
    doc: Option<String>,
    fields: Vec<TsField>,
    alias: Option<String>,
}

#[derive(Serialize)]
struct TsField {
    doc: Option<String>,
    key: String,
    optional: bool,
    ty: String,
}

#[derive(Serialize)]
struct TsMethod {
    name: String,
    doc: String,
    /// The parameter list.
    params: String,
    returns: String,
    /// The body's lines.
    body: Vec<String>,
}

/// The key of each param in a method's params object: its wire name, or, for a name every
/// object has ([`OBJECT_MEMBERS`]), that name with `_` appended (more until no other param
/// has it). The call sends each under its wire name.
fn param_keys(params: &[crate::clients::model::Param]) -> Vec<String> {
    let wire: Vec<&str> = params.iter().map(|p| p.wire.as_str()).collect();
    let mut keys: Vec<String> = Vec::with_capacity(params.len());
    for p in params {
        let mut key = p.wire.clone();
        if OBJECT_MEMBERS.contains(&key.as_str()) {
            key.push('_');
            while wire.contains(&key.as_str()) || keys.contains(&key) {
                key.push('_');
            }
        }
        keys.push(key);
    }
    keys
}

fn method(m: &Method, name: String, tys: &TypeWriter<'_>) -> TsMethod {
    let keys = param_keys(&m.params);
    let members: Vec<String> = m
        .params
        .iter()
        .zip(&keys)
        .map(|(p, key)| {
            let ty = tys.expr(&p.ty);
            if p.required {
                format!("{}: {ty}", literal(key))
            } else {
                format!("{}?: {ty}", literal(key))
            }
        })
        .collect();
    let renamed: Vec<String> = m
        .params
        .iter()
        .zip(&keys)
        .filter(|(p, key)| p.wire != **key)
        .map(|(p, key)| format!("[{}, {}]", literal(key), literal(&p.wire)))
        .collect();
    let params = if m.params.is_empty() {
        String::new()
    } else if m.params.iter().any(|p| p.required) {
        format!("params: {{ {} }}", members.join("; "))
    } else {
        // Not `= {}`: an empty literal is no value of a type with an optional `toString` or
        // `valueOf` (it has Object's), so `tsc --strict` refuses it. A prototype-less object
        // is what "no params" means anyway.
        format!("params: {{ {} }} = Object.create(null)", members.join("; "))
    };
    let wire = literal(&m.wire);
    let args = if m.params.is_empty() {
        "undefined".to_owned()
    } else if m.by_position {
        let keep = m
            .params
            .iter()
            .rposition(|p| p.required)
            .map_or(0, |i| i + 1);
        let values: Vec<String> = keys
            .iter()
            .map(|key| format!("own(params, {})", literal(key)))
            .collect();
        format!("positional([{}], {keep})", values.join(", "))
    } else if renamed.is_empty() {
        "params".to_owned()
    } else {
        format!("named(params, [{}])", renamed.join(", "))
    };
    let call = format!("await this.#call({wire}, {args})");
    let (returns, body) = match &m.result {
        None => ("void".to_owned(), vec![format!("{call};")]),
        Some(r) if r.ty == Ty::Never => (
            "never".to_owned(),
            vec![
                format!("{call};"),
                format!(
                    "throw new TransportError({});",
                    literal(&format!(
                        "{} answered a result, but its spec says it never does",
                        m.wire
                    ))
                ),
            ],
        ),
        Some(r) if r.ty == Ty::Any => ("unknown".to_owned(), vec![format!("return {call};")]),
        Some(r) => {
            let ty = tys.expr(&r.ty);
            (ty.clone(), vec![format!("return ({call}) as {ty};")])
        }
    };
    let mut doc = summary_lines(m);
    for (p, key) in m.params.iter().zip(&keys) {
        let sent_as = (p.wire != *key).then(|| format!("(sent as `{}`) ", p.wire));
        if p.description.is_some() || sent_as.is_some() {
            let mut lines = doc_lines(p.description.as_deref().unwrap_or_default()).into_iter();
            doc.push(format!(
                "@param params.{} {}{}",
                // JSDoc names are not quoted: a name that is not a plain word is shown as is.
                key.replace(char::is_whitespace, "_"),
                sent_as.unwrap_or_default(),
                lines.next().unwrap_or_default()
            ));
            doc.extend(lines);
        }
    }
    if let Some(d) = m.result.as_ref().and_then(|r| r.description.as_deref()) {
        let mut lines = doc_lines(d).into_iter();
        doc.push(format!("@returns {}", lines.next().unwrap_or_default()));
        doc.extend(lines);
    }
    if m.deprecated {
        doc.push("@deprecated".to_owned());
    }
    TsMethod {
        name,
        doc: comment(&doc, "  "),
        params,
        returns,
        body,
    }
}

/// Writes types as TypeScript type expressions.
struct TypeWriter<'n> {
    names: &'n [String],
}

impl TypeWriter<'_> {
    fn expr(&self, ty: &Ty) -> String {
        match ty {
            Ty::Any => "unknown".to_owned(),
            Ty::Never => "never".to_owned(),
            Ty::Null => "null".to_owned(),
            Ty::Bool => "boolean".to_owned(),
            Ty::Int | Ty::Float => "number".to_owned(),
            Ty::Str => "string".to_owned(),
            Ty::Literals(lits) => lits
                .iter()
                .map(|l| match l {
                    Lit::Str(s) => literal(s),
                    Lit::Num(n) if n.as_f64().is_some_and(|f| f < 0.0) => format!("({n})"),
                    Lit::Num(n) => n.to_string(),
                    Lit::Bool(b) => b.to_string(),
                    Lit::Null => "null".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" | "),
            Ty::Array(item) => format!("Array<{}>", self.expr(item)),
            // An index signature, not `Record`: a type alias may refer to itself through an
            // object type, never through another alias (TS2456).
            Ty::Map(value) => format!("{{ [key: string]: {} }}", self.expr(value)),
            Ty::Named(i) => self
                .names
                .get(*i)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
            Ty::Union(members) => members
                .iter()
                .map(|m| self.expr(m))
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }
}

/// A `/** … */` comment of `lines`, each after `indent`; nothing in a line can end it.
fn comment(lines: &[String], indent: &str) -> String {
    let mut out = format!("{indent}/**");
    for line in lines {
        out.push('\n');
        out.push_str(indent);
        out.push_str(" *");
        if !line.is_empty() {
            out.push(' ');
        }
        for c in line.chars() {
            match c {
                '/' if out.ends_with('*') => out.push_str("\\/"),
                '\u{2028}' | '\u{2029}' => out.push(' '),
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str(" */");
    out
}
