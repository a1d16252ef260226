use serde_json::json;

use super::*;
use crate::docs::deref::dereference;

#[test]
fn primitives_and_nullable() {
    assert_eq!(readable_type(&json!({ "type": "string" })), "string");
    assert_eq!(readable_type(&json!({ "type": "integer" })), "integer");
    assert_eq!(
        readable_type(&json!({ "type": ["string", "null"] })),
        "string | null"
    );
    assert_eq!(
        readable_type(&json!({ "type": "number", "nullable": true })),
        "number | null"
    );
    assert_eq!(readable_type(&json!({})), "any");
    assert_eq!(readable_type(&json!(true)), "any");
    assert_eq!(readable_type(&json!(false)), "never");
    assert_eq!(readable_type(&json!({ "not": {} })), "never");
    assert_eq!(
        readable_type(&json!({ "not": { "type": "string" } })),
        "not string"
    );
}

#[test]
fn nested_object_with_optional_fields() {
    let schema = json!({
        "type": "object",
        "required": ["id", "owner"],
        "properties": {
            "tags": { "type": "array", "items": { "type": "string" } },
            "id": { "type": "string" },
            "owner": {
                "type": "object",
                "required": ["name"],
                "properties": { "name": { "type": "string" }, "age": { "type": "integer" } },
            },
        },
    });
    assert_eq!(
        readable_type(&schema),
        "{tags?: string[], id: string, owner: {name: string, age?: integer}}"
    );
}

#[test]
fn arrays_of_refs_show_component_names() {
    let spec = json!({
        "x": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } },
        "tuple": { "type": "array", "items": [{ "type": "string" }, { "$ref": "#/components/schemas/Job" }] },
        "components": { "schemas": { "Job": { "type": "object", "properties": { "id": { "type": "string" } } } } },
    });
    // Raw and expanded references read the same.
    assert_eq!(readable_type(&spec["x"]), "array<Job>");
    let out = dereference(&spec);
    assert_eq!(readable_type(&out["x"]), "array<Job>");
    assert_eq!(readable_type(&out["tuple"]), "[string, Job]");
    assert_eq!(
        readable_structure(&out["components"]["schemas"]["Job"]),
        "{id?: string}"
    );
    assert_eq!(
        readable_type(
            &json!({ "type": "array", "items": { "type": "array", "items": { "type": "integer" } } })
        ),
        "array<integer[]>"
    );
    assert_eq!(readable_type(&json!({ "type": "array" })), "array");
}

#[test]
fn enums_consts_and_unions() {
    assert_eq!(
        readable_type(&json!({ "type": "string", "enum": ["a", "b"] })),
        r#""a" | "b""#
    );
    assert_eq!(readable_type(&json!({ "enum": [1, null] })), "1 | null");
    assert_eq!(readable_type(&json!({ "const": "x" })), r#""x""#);
    assert_eq!(
        readable_type(
            &json!({ "oneOf": [{ "$ref": "#/components/schemas/A" }, { "type": "integer" }] })
        ),
        "A | integer"
    );
    assert_eq!(
        readable_type(&json!({ "anyOf": [{ "type": "string" }, { "type": "null" }] })),
        "string | null"
    );
    assert_eq!(
        readable_type(&json!({ "allOf": [{ "$ref": "#/x/A" }, { "$ref": "#/x/B" }] })),
        "A & B"
    );
    assert_eq!(
        readable_type(&json!({ "type": "object", "additionalProperties": { "type": "integer" } })),
        "map<string, integer>"
    );
}

#[test]
fn notes_from_dereference_are_shown() {
    let spec = json!({
        "a": { "$ref": "#/components/schemas/Gone" },
        "b": { "$ref": "#/components/schemas/Node" },
        "components": { "schemas": { "Node": { "type": "object", "properties": {
            "next": { "$ref": "#/components/schemas/Node" } } } } },
    });
    let out = dereference(&spec);
    assert_eq!(
        readable_type(&out["a"]),
        "unresolved $ref #/components/schemas/Gone"
    );
    assert_eq!(readable_type(&out["b"]), "Node");
    assert_eq!(readable_structure(&out["b"]), "{next?: Node}");
}

#[test]
fn invalid_schemas_say_so() {
    assert_eq!(readable_type(&json!("string")), "invalid schema (a string)");
    assert_eq!(readable_type(&json!(42)), "invalid schema (a number)");
    assert_eq!(readable_type(&json!(null)), "invalid schema (null)");
    assert_eq!(
        readable_type(&json!({ "type": 7 })),
        "invalid type (a number)"
    );
    assert_eq!(example_value(&json!("string")), json!(null));
}

#[test]
fn long_types_are_cut() {
    let props: serde_json::Map<String, Value> = (0..200)
        .map(|i| (format!("field_{i:03}"), json!({ "type": "string" })))
        .collect();
    let t = readable_type(&json!({ "type": "object", "properties": props }));
    assert!(t.len() <= MAX_TYPE_LEN + '…'.len_utf8(), "{}", t.len());
    assert!(t.ends_with('…'), "{t}");
    let mut deep = json!({ "type": "string" });
    for _ in 0..50 {
        deep = json!({ "type": "object", "properties": { "a": deep } });
    }
    assert_eq!(readable_type(&deep), "{a?: {a?: {a?: {a?: …}}}}");
}

#[test]
fn examples_prefer_the_schema_own_values() {
    assert_eq!(
        example_value(&json!({ "type": "integer", "examples": [250] })),
        json!(250)
    );
    assert_eq!(
        example_value(&json!({ "type": "string", "default": "d" })),
        json!("d")
    );
    assert_eq!(
        example_value(&json!({ "type": "string", "enum": ["x", "y"] })),
        json!("x")
    );
    assert_eq!(example_value(&json!({ "const": 3 })), json!(3));
}

#[test]
fn examples_are_built_from_types() {
    let schema = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string", "format": "uuid" },
            "n": { "type": "integer", "minimum": 5 },
            "ok": { "type": "boolean" },
            "tags": { "type": "array", "items": { "type": "string" } },
            "when": { "type": ["string", "null"], "format": "date-time" },
            "either": { "oneOf": [{ "not": {} }, { "type": "number" }] },
        },
    });
    assert_eq!(
        example_value(&schema),
        json!({
            "either": 0,
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "n": 5,
            "ok": true,
            "tags": ["string"],
            "when": "2024-01-01T12:00:00Z",
        })
    );
    assert_eq!(
        example_value(&json!({ "allOf": [
            { "type": "object", "properties": { "a": { "type": "integer" } } },
            { "type": "object", "properties": { "b": { "type": "boolean" } } },
        ]})),
        json!({ "a": 0, "b": true })
    );
    assert_eq!(example_value(&json!({})), json!(null));
}

#[test]
fn examples_leave_out_cycles_and_stay_small() {
    let spec = json!({
        "x": { "$ref": "#/components/schemas/Node" },
        "components": { "schemas": { "Node": { "type": "object", "properties": {
            "name": { "type": "string" },
            "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } },
        } } } },
    });
    let out = dereference(&spec);
    assert_eq!(
        example_value(&out["x"]),
        json!({ "name": "string", "children": [] })
    );
    let mut wide = json!({ "type": "string" });
    for _ in 0..5 {
        let props: serde_json::Map<String, Value> =
            (0..10).map(|i| (format!("p{i}"), wide.clone())).collect();
        wide = json!({ "type": "object", "properties": props });
    }
    let text = example_value(&wide).to_string();
    assert!(text.len() < 20_000, "{}", text.len());
}

#[test]
fn ref_names_are_unescaped() {
    assert_eq!(ref_name("#/components/schemas/Job"), "Job");
    assert_eq!(ref_name("#/components/schemas/a~1b%20c"), "a/b c");
    assert_eq!(ref_name("#"), "#");
}
