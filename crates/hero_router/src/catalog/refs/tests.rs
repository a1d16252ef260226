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
