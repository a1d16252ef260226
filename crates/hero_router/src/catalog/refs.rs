//! What the meta-schema cannot see: every local `$ref` of a document must point at something,
//! and a chain of `$ref`s must end in a schema rather than come back to itself.
//!
//! A recursive type (a tree whose `children` refer to the tree) is fine: its `$ref` ends at an
//! object with properties. `A = {"$ref": B}, B = {"$ref": A}` is not: it never ends. External
//! references (`https://…`) are left alone; the router resolves nothing over the network.

use serde_json::Value;

/// At most this many problems are reported.
const MAX_ERRORS: usize = 5;

/// The document's `$ref` problems, at most [`MAX_ERRORS`], in document order.
pub(crate) fn check(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk(doc, doc, &mut String::new(), &mut errors);
    errors
}

fn walk(doc: &Value, v: &Value, at: &mut String, errors: &mut Vec<String>) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if let Some(problem) = follow(doc, r) {
                    let at = if at.is_empty() { "/" } else { at.as_str() };
                    errors.push(format!("at {at}: {problem}"));
                }
            }
            for (k, child) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk(doc, child, at, errors);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                walk(doc, child, at, errors);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// Follows a chain of local `$ref`s from `first`; the problem, if it dangles or loops.
fn follow(doc: &Value, first: &str) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut r = first;
    loop {
        let Some(pointer) = r.strip_prefix('#') else {
            return None; // external: not ours to resolve
        };
        if seen.contains(&r) {
            seen.push(r);
            return Some(format!(
                "$ref cycle with no schema in it: {}",
                seen.join(" → ")
            ));
        }
        seen.push(r);
        let Some(target) = doc.pointer(pointer) else {
            return Some(format!("unresolved $ref {r}"));
        };
        match target.get("$ref") {
            Some(Value::String(next)) => r = next,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            errors.iter().any(|e| e
                == "at /methods/0/params/0/schema: unresolved $ref #/components/schemas/Missing")
        );
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
}
