//! OpenRPC meta-schema validation, offline.
//!
//! A document is checked against the official OpenRPC meta-schema chosen by its `openrpc`
//! field: `1.4.x` against the 1.4 schema, `1.0.x` to `1.3.x` against the 1.3 schema (the 1.4
//! schema only accepts `1.4.x`). The schemas, and the JSON-schema meta-schema they `$ref`, are
//! embedded in the binary (see `schemas/README.md` for their origin) and registered in memory,
//! so no `$ref` ever leaves the process. Each validator is compiled once, on first use.
//!
//! Errors are for people: at most [`MAX_ERRORS`] lines, each `at <instance path>: <message>`
//! and at most [`MAX_LINE`] bytes, in the validator's (deterministic) order. A `oneOf` that no
//! branch satisfies is reported through the branch that got furthest into the value, since
//! "not valid under any of the schemas listed in the 'oneOf' keyword" tells nobody what to fix.

use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use crate::json::kind;
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Registry, ValidationError, Validator};
use serde_json::Value;

/// At most this many errors are reported per document.
pub(crate) const MAX_ERRORS: usize = 5;

/// Longest error line in bytes, before an ellipsis. Messages quote the offending value, and a
/// hostile 4 MiB value must not become a 4 MiB error string.
pub(crate) const MAX_LINE: usize = 300;

/// Deepest nesting (objects and arrays) a kept document may have. A deeper one is not kept (the
/// fetch counts as failed): every place that serves a document wraps it in a few more levels
/// (`router.spec`'s answer, MCP's tool lists), and all of it must stay under serde_json's
/// recursion limit of 127 on both ends. Schema validation recurses with the document, and a
/// thread stack does not grow.
pub(crate) const MAX_DEPTH: usize = 100;

/// The URIs the OpenRPC schemas `$ref` the JSON-schema meta-schema by: its `$id`, and the same
/// without the trailing slash, which the resolver does not treat as equal.
const META_SCHEMA_URIS: [&str; 2] = [
    "https://meta.json-schema.tools/",
    "https://meta.json-schema.tools",
];

/// `@json-schema-tools/meta-schema` 1.8.0, `schema.json`.
const META_SCHEMA: &str = include_str!("schemas/json-schema-tools-meta-schema.json");

/// `@open-rpc/spec` 1.4.1, `dist/1_3/schema.json`.
const OPENRPC_1_3: &str = include_str!("schemas/openrpc-1.3.json");

/// `@open-rpc/spec` 1.4.1, `dist/1_4/schema.json`.
const OPENRPC_1_4: &str = include_str!("schemas/openrpc-1.4.json");

/// The compiled 1.3 validator, or why it would not compile.
static VALIDATOR_1_3: LazyLock<Result<Validator, String>> = LazyLock::new(|| compile(OPENRPC_1_3));

/// The compiled 1.4 validator, or why it would not compile.
static VALIDATOR_1_4: LazyLock<Result<Validator, String>> = LazyLock::new(|| compile(OPENRPC_1_4));

/// Outcome of validating one document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub struct Validation {
    /// The meta-schema the document was checked against (`"1.3"` or `"1.4"`); `None` when the
    /// document did not get that far (not an object, no usable `openrpc` version, too deep).
    pub schema: Option<&'static str>,
    /// At most [`MAX_ERRORS`] lines, `at <path>: <message>`; empty when the document is valid.
    pub errors: Vec<String>,
}

/// The meta-schemas this router knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// OpenRPC 1.0.x to 1.3.x.
    V1_3,
    /// OpenRPC 1.4.x.
    V1_4,
}

/// A `fmt::Write` that keeps at most `cap` bytes and then refuses more, so formatting a huge
/// value stops early instead of building the whole string.
struct Bounded {
    buf: String,
    cap: usize,
    truncated: bool,
}

/// Check `doc` against the OpenRPC meta-schema its `openrpc` field names.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn validate(doc: &Value) -> Validation {
    let schema = match precheck(doc) {
        Ok(schema) => schema,
        Err(error) => {
            return Validation {
                schema: None,
                errors: vec![error],
            };
        }
    };
    let errors = match schema.validator() {
        Ok(validator) => collect_errors(validator, doc),
        Err(e) => vec![line(
            "",
            format_args!(
                "the OpenRPC {} meta-schema does not compile: {e}",
                schema.label()
            ),
        )],
    };
    Validation {
        schema: Some(schema.label()),
        errors,
    }
}

// === impl Validation ===

impl Validation {
    /// No errors: the document conforms to its meta-schema.
    #[cfg(any(test, feature = "test-util"))]
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

// === impl Schema ===

impl Schema {
    /// Pick the schema for an `openrpc` version string; `None` for versions we do not know.
    /// Only the major and minor are looked at: the schema itself judges the patch.
    fn for_version(version: &str) -> Option<Schema> {
        let mut parts = version.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("1"), Some("0" | "1" | "2" | "3"), Some(_)) => Some(Schema::V1_3),
            (Some("1"), Some("4"), Some(_)) => Some(Schema::V1_4),
            _ => None,
        }
    }

    /// `"1.3"` or `"1.4"`.
    fn label(self) -> &'static str {
        match self {
            Schema::V1_3 => "1.3",
            Schema::V1_4 => "1.4",
        }
    }

    /// The compiled validator (compiled on first use).
    fn validator(self) -> Result<&'static Validator, &'static str> {
        let compiled = match self {
            Schema::V1_3 => &*VALIDATOR_1_3,
            Schema::V1_4 => &*VALIDATOR_1_4,
        };
        compiled.as_ref().map_err(String::as_str)
    }
}

// === impl Bounded ===

impl Bounded {
    /// An empty buffer that keeps at most `cap` bytes.
    fn new(cap: usize) -> Bounded {
        Bounded {
            buf: String::new(),
            cap,
            truncated: false,
        }
    }

    /// The kept text, with an ellipsis if something was cut.
    fn finish(mut self) -> String {
        if self.truncated {
            self.buf.push('…');
        }
        self.buf
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.cap.saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        let cut = (0..=room)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        self.buf.push_str(&s[..cut]);
        self.truncated = true;
        // Stops the caller's formatting: nothing more will be kept anyway.
        Err(fmt::Error)
    }
}

/// Everything checked before the meta-schema: an object, not too deep, a known version.
fn precheck(doc: &Value) -> Result<Schema, String> {
    let Some(object) = doc.as_object() else {
        return Err(line(
            "",
            format_args!("an OpenRPC document is a JSON object, not {}", kind(doc)),
        ));
    };
    if deeper_than(doc, MAX_DEPTH) {
        return Err(line(
            "",
            format_args!("the document nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    match object.get("openrpc") {
        None => Err(line("", format_args!("\"openrpc\" is a required property"))),
        Some(Value::String(version)) => Schema::for_version(version).ok_or_else(|| {
            line(
                "/openrpc",
                format_args!(
                    "openrpc version {} is not one this router knows (1.0–1.4)",
                    Value::String(version.clone())
                ),
            )
        }),
        Some(other) => Err(line(
            "/openrpc",
            format_args!("openrpc version must be a string, not {}", kind(other)),
        )),
    }
}

/// Is any object or array in `doc` nested more than `limit` levels deep (the root container
/// being level 1)? Iterative, so it is safe on any depth.
fn deeper_than(doc: &Value, limit: usize) -> bool {
    // Each entry is a value and the number of containers around it.
    let mut stack = vec![(doc, 0usize)];
    while let Some((value, outer)) = stack.pop() {
        let level = outer + 1;
        match value {
            Value::Array(_) | Value::Object(_) if level > limit => return true,
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, level))),
            _ => {}
        }
    }
    false
}

/// Compile one OpenRPC schema with the JSON-schema meta-schema registered in memory.
fn compile(schema: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(schema).map_err(|e| e.to_string())?;
    let meta: Value = serde_json::from_str(META_SCHEMA).map_err(|e| e.to_string())?;
    // The default retriever fetches nothing, and `offline()` says so again for the build:
    // a `$ref` that is not registered here is a compile error, never a network request.
    let registry = Registry::new()
        .draft(Draft::Draft7)
        .extend(META_SCHEMA_URIS.map(|uri| (uri, Draft::Draft7.create_resource(meta.clone()))))
        .and_then(|builder| builder.prepare())
        .map_err(|e| e.to_string())?;
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_registry(&registry)
        .offline()
        // `format` stays an annotation, as draft 7 allows: a contact e-mail the validator
        // dislikes does not make a service's whole spec invalid.
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// The first [`MAX_ERRORS`] error lines of `doc` under `validator`.
fn collect_errors(validator: &Validator, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for error in validator.iter_errors(doc) {
        if out.len() >= MAX_ERRORS {
            break;
        }
        push_error(&error, &mut out);
    }
    out
}

/// Add one error's lines to `out`: a failed `oneOf`/`anyOf` is replaced by the errors of its
/// most promising branch, recursively; anything else is one line.
fn push_error(error: &ValidationError<'_>, out: &mut Vec<String>) {
    let branches = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            best_branch(context)
        }
        _ => None,
    };
    match branches {
        Some(branch) => {
            for inner in branch {
                if out.len() >= MAX_ERRORS {
                    return;
                }
                push_error(inner, out);
            }
        }
        None => {
            let text = line(error.instance_path().as_str(), format_args!("{error}"));
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
}

/// The branch that got furthest: its errors lie deepest in the value, and among those, it has
/// the fewest; ties go to the first branch, which keeps the choice deterministic.
fn best_branch<'a>(
    context: &'a [Vec<ValidationError<'static>>],
) -> Option<&'a [ValidationError<'static>]> {
    let score = |branch: &[ValidationError<'static>]| {
        let depth = branch
            .iter()
            .map(|e| e.instance_path().as_str().matches('/').count())
            .max()
            .unwrap_or(0);
        (depth, std::cmp::Reverse(branch.len()))
    };
    let mut best: Option<&[ValidationError<'static>]> = None;
    for branch in context.iter().filter(|b| !b.is_empty()) {
        if best.is_none_or(|b| score(branch) > score(b)) {
            best = Some(branch);
        }
    }
    best
}

/// One error line, `at <path>: <message>`, cut to [`MAX_LINE`] bytes.
fn line(path: &str, message: fmt::Arguments<'_>) -> String {
    let mut out = Bounded::new(MAX_LINE);
    let path = if path.is_empty() { "/" } else { path };
    // An `Err` only means the line was cut; what was kept is what we want.
    let _ = write!(out, "at {path}: {message}");
    out.finish()
}

#[cfg(test)]
mod tests;
