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

/// What `v` stands for: itself, or the end of its chain of local `$ref`s; `None` if the
/// chain dangles, loops, or leaves the document.
pub(crate) fn resolve<'v>(doc: &'v Value, v: &'v Value) -> Option<&'v Value> {
    let mut at = v;
    // A chain longer than this loops (or is not worth following).
    for _ in 0..64 {
        let Some(Value::String(r)) = at.get("$ref") else {
            return Some(at);
        };
        at = doc.pointer(r.strip_prefix('#')?)?;
    }
    None
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
mod tests;
