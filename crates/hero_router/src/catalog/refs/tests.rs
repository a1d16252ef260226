use serde_json::json;

use super::*;

#[test]
fn resolved_and_recursive_refs_are_fine() {
    let doc = json!({
        "methods": [{"result": {"schema": {"$ref": "#/components/schemas/Tree"}}}],
        "components": {"schemas": {
            "Tree": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}},
            "Alias": {"$ref": "#/components/schemas/Tree"}
        }},
        "x": {"$ref": "https://example.com/schema.json"}
    });
    assert_eq!(check(&doc), Vec::<String>::new());
}

#[test]
fn dangling_refs_and_pure_cycles_are_reported_where_they_are() {
    let doc = json!({
        "methods": [{"params": [{"schema": {"$ref": "#/components/schemas/Missing"}}]}],
        "components": {"schemas": {
            "A": {"$ref": "#/components/schemas/B"},
            "B": {"$ref": "#/components/schemas/A"}
        }}
    });
    let errors = check(&doc);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(
        |e| e == "at /methods/0/params/0/schema: unresolved $ref #/components/schemas/Missing"
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("at /components/schemas/A: $ref cycle")
                && e.contains("#/components/schemas/B → #/components/schemas/A"))
    );
}

#[test]
fn errors_are_bounded() {
    let many: Vec<_> = (0..100)
        .map(|i| json!({"$ref": format!("#/nope/{i}")}))
        .collect();
    assert_eq!(check(&json!({ "m": many })).len(), MAX_ERRORS);
}

#[test]
fn resolve_follows_a_chain_to_its_end_and_gives_up_on_a_bad_one() {
    let doc = json!({
        "a": {"$ref": "#/b"}, "b": {"$ref": "#/c"}, "c": {"name": "end"},
        "loop": {"$ref": "#/loop"}, "out": {"$ref": "https://example.com/x"},
        "gone": {"$ref": "#/nowhere"}
    });
    assert_eq!(resolve(&doc, &doc["a"]), Some(&json!({"name": "end"})));
    assert_eq!(resolve(&doc, &doc["c"]), Some(&doc["c"]));
    for bad in ["loop", "out", "gone"] {
        assert_eq!(resolve(&doc, &doc[bad]), None, "{bad}");
    }
}
