use serde_json::{Value, json};

use super::*;

fn schemas(doc: &Value) -> &Value {
    &doc["components"]["schemas"]
}

#[test]
fn nested_refs_are_expanded_and_remember_their_names() {
    let spec = json!({
        "methods": [{
            "name": "get",
            "params": [{ "name": "job", "schema": { "$ref": "#/components/schemas/Job" } }],
        }],
        "components": { "schemas": {
            "Job": { "type": "object", "properties": { "owner": { "$ref": "#/components/schemas/User" } } },
            "User": { "type": "object", "properties": { "id": { "type": "string" } } },
        }},
    });
    let out = dereference(&spec);
    let job = &out["methods"][0]["params"][0]["schema"];
    assert_eq!(job[REF_KEY], "#/components/schemas/Job");
    assert_eq!(job["type"], "object");
    let owner = &job["properties"]["owner"];
    assert_eq!(owner[REF_KEY], "#/components/schemas/User");
    assert_eq!(owner["properties"]["id"]["type"], "string");
    assert!(owner.get("$ref").is_none(), "{owner}");
    // Components are expanded too.
    assert_eq!(
        schemas(&out)["Job"]["properties"]["owner"]["properties"]["id"]["type"],
        "string"
    );
}

#[test]
fn refs_to_other_component_kinds_resolve_with_siblings_laid_over() {
    let spec = json!({
        "methods": [{
            "name": "m",
            "params": [{ "$ref": "#/components/contentDescriptors/Id" }],
            "errors": [{ "$ref": "#/components/errors/Nope", "message": "overridden" }],
        }],
        "components": {
            "contentDescriptors": { "Id": { "name": "id", "schema": { "type": "integer" } } },
            "errors": { "Nope": { "code": 1, "message": "nope" } },
        },
    });
    let out = dereference(&spec);
    assert_eq!(out["methods"][0]["params"][0]["name"], "id");
    assert_eq!(out["methods"][0]["errors"][0]["code"], 1);
    assert_eq!(out["methods"][0]["errors"][0]["message"], "overridden");
}

#[test]
fn a_self_reference_is_cut_once_with_a_note() {
    let spec = json!({ "components": { "schemas": {
        "Node": { "type": "object", "properties": {
            "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } },
        }},
    }}});
    let out = dereference(&spec);
    let node = &schemas(&out)["Node"];
    // The component itself is not a reference; its inner reference expands once, and the
    // reference inside that copy is cut.
    let inner = &node["properties"]["children"]["items"];
    assert_eq!(inner[REF_KEY], "#/components/schemas/Node");
    let cut = &inner["properties"]["children"]["items"];
    assert_eq!(cut["$ref"], "#/components/schemas/Node");
    let why = cut[NOTE_KEY].as_str().unwrap();
    assert!(why.starts_with("cycle: #/components/schemas/Node"), "{why}");
}

#[test]
fn a_two_step_cycle_is_cut_with_a_note() {
    let spec = json!({
        "methods": [{ "name": "m", "params": [], "result": { "name": "r", "schema": { "$ref": "#/components/schemas/A" } } }],
        "components": { "schemas": {
            "A": { "type": "object", "properties": { "b": { "$ref": "#/components/schemas/B" } } },
            "B": { "type": "object", "properties": { "a": { "$ref": "#/components/schemas/A" } } },
        }},
    });
    let out = dereference(&spec);
    let a = &out["methods"][0]["result"]["schema"];
    let b = &a["properties"]["b"];
    assert_eq!(b[REF_KEY], "#/components/schemas/B");
    let cut = &b["properties"]["a"];
    assert_eq!(cut["$ref"], "#/components/schemas/A");
    assert!(cut[NOTE_KEY].as_str().unwrap().starts_with("cycle:"));
}

#[test]
fn dangling_and_external_refs_stay_with_a_note() {
    let spec = json!({ "methods": [{ "name": "m", "params": [
        { "name": "a", "schema": { "$ref": "#/components/schemas/Missing" } },
        { "name": "b", "schema": { "$ref": "#/not/even/close" } },
        { "name": "c", "schema": { "$ref": "https://example.com/schema.json" } },
        { "name": "d", "schema": { "$ref": "#no-pointer" } },
    ]}]});
    let out = dereference(&spec);
    let params = &out["methods"][0]["params"];
    assert_eq!(
        params[0]["schema"][NOTE_KEY],
        "unresolved $ref #/components/schemas/Missing"
    );
    assert_eq!(
        params[1]["schema"][NOTE_KEY],
        "unresolved $ref #/not/even/close"
    );
    let external = params[2]["schema"][NOTE_KEY].as_str().unwrap();
    assert!(external.contains("only local references"), "{external}");
    assert_eq!(params[3]["schema"][NOTE_KEY], "unresolved $ref #no-pointer");
}

#[test]
fn escaped_pointers_resolve() {
    let spec = json!({
        "x": { "$ref": "#/components/schemas/a~1b%20c" },
        "components": { "schemas": { "a/b c": { "type": "boolean" } } },
    });
    assert_eq!(dereference(&spec)["x"]["type"], "boolean");
}

#[test]
fn literal_data_is_not_resolved() {
    let spec = json!({
        "methods": [{
            "name": "m",
            "params": [{ "name": "p", "schema": {
                "type": "object",
                "default": { "$ref": "#/components/schemas/S" },
                "examples": [{ "$ref": "#/components/schemas/S" }],
                "properties": { "value": { "$ref": "#/components/schemas/S" } },
            }}],
            "examples": [{ "name": "e", "params": [{ "name": "p", "value": { "$ref": "#/components/schemas/S" } }] }],
        }],
        "components": { "schemas": { "S": { "type": "string" } } },
    });
    let out = dereference(&spec);
    let schema = &out["methods"][0]["params"][0]["schema"];
    assert_eq!(
        schema["default"],
        json!({ "$ref": "#/components/schemas/S" })
    );
    assert_eq!(
        schema["examples"][0],
        json!({ "$ref": "#/components/schemas/S" })
    );
    // A property named `value` is a schema, not example data.
    assert_eq!(schema["properties"]["value"]["type"], "string");
    let example = &out["methods"][0]["examples"][0]["params"][0]["value"];
    assert_eq!(example, &json!({ "$ref": "#/components/schemas/S" }));
}

/// Level i refers twice to level i+1, 40 levels: 2^40 copies if nothing stopped it.
fn fan_out_bomb(levels: usize) -> Value {
    let mut schemas = serde_json::Map::new();
    for i in 0..levels {
        let next = json!({ "$ref": format!("#/components/schemas/L{}", i + 1) });
        schemas.insert(
            format!("L{i}"),
            json!({ "type": "object", "properties": { "left": next, "right": next } }),
        );
    }
    schemas.insert(format!("L{levels}"), json!({ "type": "string" }));
    json!({
        "openrpc": "1.3.2",
        "info": { "title": "bomb", "version": "1" },
        "methods": [{
            "name": "boom",
            "params": [{ "name": "x", "schema": { "$ref": "#/components/schemas/L0" } }],
            "result": { "name": "y", "schema": { "$ref": "#/components/schemas/L0" } },
        }],
        "components": { "schemas": schemas },
    })
}

fn count_and_notes(v: &Value, notes: &mut Vec<String>) -> usize {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(n)) = m.get(NOTE_KEY) {
                notes.push(n.clone());
            }
            1 + m.values().map(|c| count_and_notes(c, notes)).sum::<usize>()
        }
        Value::Array(a) => 1 + a.iter().map(|c| count_and_notes(c, notes)).sum::<usize>(),
        _ => 1,
    }
}

#[test]
fn a_fan_out_bomb_is_truncated_within_the_budget() {
    let out = dereference(&fan_out_bomb(40));
    let mut notes = Vec::new();
    let total = count_and_notes(&out, &mut notes);
    // Every copied value counts against the budget; what is left over is notes where copying
    // stopped, a fraction more.
    assert!(total <= MAX_EXPANDED * 3 / 2, "{total} values");
    let mut method_notes = Vec::new();
    let method_size = count_and_notes(&out["methods"][0], &mut method_notes);
    assert!(
        method_size <= 2 * MAX_EXPANDED_PER_ENTRY + 100,
        "{method_size}"
    );
    assert!(
        method_notes.iter().any(|n| n.starts_with("truncated:")),
        "{method_notes:?}"
    );
}

#[test]
fn deep_nesting_is_cut() {
    let mut v = json!({ "type": "string" });
    for _ in 0..1_000 {
        v = json!({ "type": "array", "items": v });
    }
    let out = dereference(&json!({ "x": v }));
    let mut notes = Vec::new();
    count_and_notes(&out, &mut notes);
    assert!(
        notes.iter().any(|n| n.contains("nested deeper than")),
        "{notes:?}"
    );
}

#[test]
fn a_long_reference_chain_is_cut() {
    let mut schemas = serde_json::Map::new();
    for i in 0..100 {
        schemas.insert(
            format!("C{i}"),
            json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/C{}", i + 1) } }),
        );
    }
    let spec =
        json!({ "x": { "$ref": "#/components/schemas/C0" }, "components": { "schemas": schemas } });
    let out = dereference(&spec);
    let mut notes = Vec::new();
    count_and_notes(&out["x"], &mut notes);
    assert!(
        notes.iter().any(|n| n.starts_with("truncated:")),
        "{notes:?}"
    );
}

#[test]
fn non_object_documents_come_back_as_they_are() {
    for v in [
        json!(null),
        json!("x"),
        json!(3),
        json!([1, { "$ref": "#/0" }]),
    ] {
        let out = dereference(&v);
        if let Value::Array(a) = &v {
            assert_eq!(out[0], a[0]);
            assert_eq!(out[1], json!(1));
        } else {
            assert_eq!(out, v);
        }
    }
}
