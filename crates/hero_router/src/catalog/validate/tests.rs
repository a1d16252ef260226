//! Unit tests of OpenRPC validation: schema choice by version, one broken document per kind
//! of mistake, bounded errors, and documents built to hurt (wrong type, too deep, huge).

use super::*;
use serde_json::json;

/// A small, valid document claiming `version`.
fn doc(version: &str) -> Value {
    json!({
        "openrpc": version,
        "info": {"title": "calc", "version": "1.0.0"},
        "methods": [{
            "name": "calc.add",
            "params": [
                {"name": "a", "required": true, "schema": {"type": "integer"}},
                {"name": "b", "schema": {"type": "integer"}}
            ],
            "result": {"name": "sum", "schema": {"type": "integer"}}
        }]
    })
}

/// A valid 1.4 document using components, `$ref`s, errors, tags and extensions.
fn rich_1_4() -> Value {
    json!({
        "openrpc": "1.4.0",
        "info": {
            "title": "store",
            "version": "2.1.0",
            "description": "A store.",
            "license": {"name": "Apache-2.0"}
        },
        "servers": [{"name": "local", "url": "unix:///run/store/rpc.sock"}],
        "methods": [
            {
                "name": "store.get",
                "summary": "One item",
                "tags": [{"name": "read"}],
                "paramStructure": "by-name",
                "params": [{"$ref": "#/components/contentDescriptors/Key"}],
                "result": {"name": "item", "schema": {"$ref": "#/components/schemas/Item"}},
                "errors": [{"$ref": "#/components/errors/NotFound"}]
            },
            {"name": "store.ping", "params": []}
        ],
        "components": {
            "schemas": {
                "Item": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {"key": {"type": "string"}, "size": {"type": ["integer", "null"]}},
                    "additionalProperties": true
                }
            },
            "contentDescriptors": {
                "Key": {"name": "key", "required": true, "schema": {"type": "string"}}
            },
            "errors": {"NotFound": {"code": -32001, "message": "not found"}}
        },
        "x-hero": {"anything": [1, 2, 3]}
    })
}

/// `[[[…]]]`, `depth` arrays deep, built without recursion.
fn nested_arrays(depth: usize) -> Value {
    let mut value = Value::Null;
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

/// Take a deep value apart container by container: dropping it whole recurses once per level.
fn drop_deep(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Remove `key` from the object `value`, if it is one.
fn without(value: &mut Value, key: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
}

/// Assert `v` is invalid with a first error at `path` that contains `needle`.
#[track_caller]
fn assert_first_error(v: &Validation, path: &str, needle: &str) {
    let first = v.errors.first().expect("an error");
    let prefix = format!("at {path}: ");
    assert!(
        first.starts_with(&prefix),
        "{first:?} does not start with {prefix:?}"
    );
    assert!(
        first.contains(needle),
        "{first:?} does not contain {needle:?}"
    );
    assert!(!v.is_valid());
}

#[test]
fn both_meta_schemas_compile() {
    assert!(VALIDATOR_1_3.is_ok(), "{:?}", VALIDATOR_1_3.as_ref().err());
    assert!(VALIDATOR_1_4.is_ok(), "{:?}", VALIDATOR_1_4.as_ref().err());
}

#[test]
fn valid_1_3_document_passes() {
    let v = validate(&doc("1.3.2"));
    assert_eq!(
        v,
        Validation {
            schema: Some("1.3"),
            errors: vec![]
        }
    );
    assert!(v.is_valid());
}

#[test]
fn valid_1_4_document_passes() {
    let v = validate(&rich_1_4());
    assert_eq!(
        v,
        Validation {
            schema: Some("1.4"),
            errors: vec![]
        }
    );
    assert!(validate(&doc("1.4.1")).is_valid());
}

#[test]
fn version_1_2_6_is_checked_against_1_3() {
    let v = validate(&doc("1.2.6"));
    assert_eq!(
        v,
        Validation {
            schema: Some("1.3"),
            errors: vec![]
        }
    );
    for version in ["1.0.0", "1.0.0-rc1", "1.1.12", "1.3.0"] {
        assert_eq!(validate(&doc(version)).schema, Some("1.3"), "{version}");
    }
}

#[test]
fn a_1_3_document_is_not_checked_against_1_4() {
    let document = doc("1.3.2");
    assert_eq!(validate(&document).schema, Some("1.3"));
    // The 1.4 schema would reject it for its version alone, so choosing right matters.
    let v14 = VALIDATOR_1_4.as_ref().expect("compiles");
    assert!(!v14.is_valid(&document));
    assert!(validate(&document).is_valid());
}

#[test]
fn the_schema_judges_the_patch() {
    let v = validate(&doc("1.3.9"));
    assert_eq!(v.schema, Some("1.3"));
    assert_first_error(&v, "/openrpc", "is not one of");
    let v = validate(&doc("1.4.x"));
    assert_eq!(v.schema, Some("1.4"));
    assert_first_error(&v, "/openrpc", "does not match");
}

#[test]
fn broken_documents_name_the_first_mistake() {
    type Break = fn(&mut Value);
    let cases: [(&str, Break, &str, &str); 5] = [
        (
            "no info",
            |d| without(d, "info"),
            "/",
            "\"info\" is a required property",
        ),
        (
            "methods an object",
            |d| d["methods"] = json!({"a": 1}),
            "/methods",
            "is not of type \"array\"",
        ),
        (
            "method without name",
            |d| without(&mut d["methods"][0], "name"),
            "/methods/0",
            "\"name\" is a required property",
        ),
        (
            "param schema a string",
            |d| d["methods"][0]["params"][0]["schema"] = json!("integer"),
            "/methods/0/params/0/schema",
            "\"integer\" is not of type \"object\"",
        ),
        (
            "info.version a number",
            |d| d["info"]["version"] = json!(3),
            "/info/version",
            "3 is not of type \"string\"",
        ),
    ];
    for version in ["1.3.2", "1.4.0"] {
        for (what, break_it, path, needle) in cases {
            let mut document = doc(version);
            break_it(&mut document);
            let v = validate(&document);
            assert_eq!(v.schema, Some(&version[..3]), "{what}");
            assert_first_error(&v, path, needle);
        }
    }
}

#[test]
fn unknown_versions_are_refused_before_any_schema() {
    for version in ["2.0.0", "banana", "1.5.0", "1.3", "0.9.0", ""] {
        let v = validate(&doc(version));
        let expected = format!(
            "at /openrpc: openrpc version {} is not one this router knows (1.0–1.4)",
            json!(version)
        );
        assert_eq!(
            v,
            Validation {
                schema: None,
                errors: vec![expected]
            },
            "{version}"
        );
    }
}

#[test]
fn missing_or_non_string_version_is_refused() {
    let mut document = doc("1.3.2");
    without(&mut document, "openrpc");
    let v = validate(&document);
    assert_eq!(v.schema, None);
    assert_first_error(&v, "/", "\"openrpc\" is a required property");

    document["openrpc"] = json!(1.3);
    let v = validate(&document);
    assert_eq!(v.schema, None);
    assert_first_error(&v, "/openrpc", "must be a string, not a number");
}

#[test]
fn non_object_documents_are_refused() {
    for (document, kind) in [
        (json!([doc("1.3.2")]), "an array"),
        (json!("openrpc"), "a string"),
        (json!(null), "null"),
    ] {
        let v = validate(&document);
        assert_eq!(v.schema, None);
        assert_first_error(&v, "/", &format!("is a JSON object, not {kind}"));
    }
}

#[test]
fn deep_documents_are_refused_without_recursion() {
    let deep = nested_arrays(10_000);
    let v = validate(&deep);
    assert_eq!(v.schema, None);
    assert_first_error(&v, "/", "is a JSON object, not an array");

    let mut document = doc("1.3.2");
    document["x-deep"] = deep;
    let v = validate(&document);
    assert_eq!(v.schema, None);
    assert_first_error(&v, "/", &format!("nests deeper than {MAX_DEPTH} levels"));
    drop_deep(document);

    // Not `json!`: it would clone the inner value recursively.
    let mut objects = json!({"openrpc": "1.3.2"});
    for _ in 0..10_000 {
        let mut outer = serde_json::Map::new();
        outer.insert("openrpc".into(), json!("1.3.2"));
        outer.insert("x".into(), objects);
        objects = Value::Object(outer);
    }
    assert_first_error(
        &validate(&objects),
        "/",
        &format!("nests deeper than {MAX_DEPTH} levels"),
    );
    drop_deep(objects);
}

#[test]
fn depth_limit_is_exact() {
    let mut document = doc("1.3.2");
    // The root object is level 1, so its member may hold MAX_DEPTH - 1 levels.
    document["x-deep"] = nested_arrays(MAX_DEPTH - 1);
    assert!(validate(&document).is_valid());
    document["x-deep"] = nested_arrays(MAX_DEPTH);
    assert!(!validate(&document).is_valid());
}

#[test]
fn the_deepest_allowed_schema_validates_on_a_small_stack() {
    // Nested `items` schemas make the meta-schema recurse once per level, as deep as a
    // document may go. Tokio's worker threads have 2 MiB stacks.
    let mut schema = json!({"type": "string"});
    while {
        let mut probe = doc("1.3.2");
        probe["methods"][0]["result"]["schema"] = json!({"items": schema.clone()});
        !deeper_than(&probe, MAX_DEPTH)
    } {
        schema = json!({"items": schema});
    }
    let mut document = doc("1.3.2");
    document["methods"][0]["result"]["schema"] = schema;
    assert!(!deeper_than(&document, MAX_DEPTH));
    let v = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || validate(&document))
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert!(v.is_valid(), "{:?}", v.errors);
}

#[test]
fn errors_are_few_and_short() {
    let mut document = doc("1.3.2");
    document["methods"] = json!(
        (0..50)
            .map(|i| json!({"name": i, "params": {}}))
            .collect::<Vec<_>>()
    );
    let v = validate(&document);
    assert_eq!(v.errors.len(), MAX_ERRORS);
    assert_eq!(v, validate(&document), "same document, same errors");

    let huge = "x".repeat(4 << 20);
    let mut document = doc("1.3.2");
    document["methods"] = json!(huge);
    document["info"][huge.as_str()] = json!(huge);
    let v = validate(&document);
    assert!(!v.is_valid());
    for line in &v.errors {
        assert!(
            line.len() <= MAX_LINE + '…'.len_utf8(),
            "{} bytes",
            line.len()
        );
        assert!(line.ends_with('…'));
    }
}

#[test]
fn long_lines_are_cut_on_a_char_boundary() {
    let text = line("/a", format_args!("{}", "é".repeat(MAX_LINE)));
    assert!(text.len() <= MAX_LINE + '…'.len_utf8());
    assert!(text.starts_with("at /a: éé") && text.ends_with('…'));
    assert_eq!(line("", format_args!("short")), "at /: short");
}
