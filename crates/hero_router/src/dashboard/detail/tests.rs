use serde_json::{Value, json};

use super::*;
use crate::docs::deref::dereference;

fn doc(methods: Value) -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": { "title": "t", "version": "1" },
        "methods": methods,
        "components": { "schemas": {
            "N": { "type": "number", "description": "a number" },
            "P": { "type": "object", "properties": { "a": { "$ref": "#/components/schemas/N" } } },
        }},
    })
}

/// What the detail listed before the methods were built one at a time.
fn whole(doc: &Value) -> String {
    Value::Array(methods(&dereference(doc))).to_string()
}

#[test]
fn the_methods_page_is_the_list_as_it_always_was() {
    let method = |i: usize| {
        json!({ "name": format!("m{i}"), "paramStructure": "by-name", "params": [
                { "name": "p", "required": true, "schema": { "$ref": "#/components/schemas/P" } }],
                "result": { "name": "r", "schema": { "$ref": "#/components/schemas/N" } } })
    };
    let docs = [
        doc(json!([method(0), { "summary": "no name" }, method(2)])),
        doc(Value::Array((0..1_200).map(method).collect())),
        doc(json!([])),
        doc(json!({ "$ref": "#/x" }))
            .as_object()
            .cloned()
            .map(|mut d| {
                d.insert("x".into(), json!([method(7)]));
                Value::Object(d)
            })
            .unwrap(),
        json!({ "$ref": "#/d", "d": doc(json!([method(1)])) }),
        json!("not a document"),
    ];
    for doc in docs {
        let page = methods_page(&doc.to_string(), &Budget::default());
        assert_eq!(page.refused, None);
        assert_eq!(page.text, whole(&doc), "{doc}");
    }
}

#[test]
fn over_the_budget_the_methods_are_none_and_that_is_said() {
    let big = json!({ "name": "x", "value": "v".repeat(100_000) });
    let examples =
        vec![json!({ "name": "e", "params": [{ "$ref": "#/components/examples/Big" }] }); 10];
    let methods: Vec<Value> = (0..100)
            .map(|i| json!({ "name": format!("m{i}"), "params": [{ "name": "x", "schema": {} }], "examples": examples }))
            .collect();
    let mut doc = doc(Value::Array(methods));
    doc["components"]["examples"] = json!({ "Big": big });
    let budget = Budget {
        output: 1 << 20,
        ..Budget::default()
    };
    let page = methods_page(&doc.to_string(), &budget);
    assert_eq!(page.text, "[]");
    assert_eq!(page.refused, Some(crate::docs::OverBudget::Output(1 << 20)));
}
