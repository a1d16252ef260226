use super::*;

fn api(spec: &str) -> Api {
    build("svc", &serde_json::from_str(spec).unwrap())
}

fn named<'a>(api: &'a Api, proposed: &str) -> (usize, &'a TypeDef) {
    api.types
        .iter()
        .enumerate()
        .find(|(_, t)| t.proposed == proposed)
        .unwrap_or_else(|| panic!("no type {proposed}: {:?}", api.types))
}

#[test]
fn components_are_named_types_in_spec_order_and_recursion_stays_named() {
    let a = api(r##"{"methods": [], "components": {"schemas": {
        "Zed": {"type": "string"},
        "Node": {"type": "object", "required": ["v"], "properties": {
            "v": {"type": "string", "description": "own"},
            "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            "b": {"type": ["integer", "null"]}
        }},
        "Alpha": {"$ref": "#/components/schemas/Node"}
    }}}"##);
    let order: Vec<&str> = a.types.iter().map(|t| t.proposed.as_str()).collect();
    assert_eq!(order, ["Zed", "Node", "Alpha"], "the spec's order");
    let (node, def) = named(&a, "Node");
    let Body::Object(fields) = &def.body else {
        panic!("{def:?}")
    };
    let keys: Vec<&str> = fields.iter().map(|f| f.wire.as_str()).collect();
    assert_eq!(keys, ["v", "kids", "b"], "the spec's property order");
    assert!(fields[0].required && !fields[1].required);
    assert_eq!(fields[0].description.as_deref(), Some("own"));
    assert_eq!(fields[1].ty, Ty::Array(Box::new(Ty::Named(node))));
    assert_eq!(fields[2].ty, Ty::Union(vec![Ty::Int, Ty::Null]));
    let (_, alpha) = named(&a, "Alpha");
    assert!(matches!(&alpha.body, Body::Alias(Ty::Named(i)) if *i == node));
}

#[test]
fn params_keep_their_own_description_order_and_structure() {
    let a = api(r##"{"methods": [
        {"name": "add", "paramStructure": "by-position", "params": [
            {"name": "b", "required": true, "description": "The first.", "schema": {"$ref": "#/components/schemas/N"}},
            {"name": "a", "schema": {"$ref": "#/components/schemas/N"}},
            {"$ref": "#/components/contentDescriptors/C"}
        ], "result": {"name": "r", "schema": {"type": "number"}}},
        {"name": "ping", "params": []}
    ], "components": {
        "schemas": {"N": {"type": "number", "description": "A JSON number."}},
        "contentDescriptors": {"C": {"name": "c", "required": true, "description": "From C.", "schema": {"enum": ["x", 1, null]}}}
    }}"##);
    let add = &a.methods[0];
    assert!(add.by_position);
    let names: Vec<&str> = add.params.iter().map(|p| p.wire.as_str()).collect();
    assert_eq!(names, ["b", "a", "c"]);
    assert_eq!(add.params[0].description.as_deref(), Some("The first."));
    assert_eq!(add.params[1].description, None, "not the $ref target's");
    assert_eq!(add.params[2].description.as_deref(), Some("From C."));
    assert_eq!(
        add.params[2].ty,
        Ty::Literals(vec![Lit::Str("x".into()), Lit::Num(1.into()), Lit::Null])
    );
    let ping = &a.methods[1];
    assert!(!ping.by_position && ping.params.is_empty() && ping.result.is_none());
}

#[test]
fn unions_all_of_maps_and_nullable() {
    let a = api(r##"{"methods": [{"name": "m", "params": [
        {"name": "u", "schema": {"oneOf": [{"type": "string"}, {"type": "null"}]}},
        {"name": "n", "schema": {"type": "string", "nullable": true}},
        {"name": "map", "schema": {"type": "object", "additionalProperties": {"type": "integer"}}},
        {"name": "any", "schema": true},
        {"name": "never", "schema": false},
        {"name": "merged", "schema": {"allOf": [
            {"$ref": "#/components/schemas/Base"},
            {"type": "object", "properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}
        ]}}
    ], "result": {"name": "r", "schema": {"not": {}}}}],
    "components": {"schemas": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}}}"##);
    let p = &a.methods[0].params;
    assert_eq!(p[0].ty, Ty::Union(vec![Ty::Str, Ty::Null]));
    assert_eq!(p[1].ty, Ty::Union(vec![Ty::Str, Ty::Null]));
    assert_eq!(p[2].ty, Ty::Map(Box::new(Ty::Int)));
    assert_eq!(p[3].ty, Ty::Any);
    assert_eq!(p[4].ty, Ty::Never);
    let Ty::Named(i) = p[5].ty else {
        panic!("{:?}", p[5].ty)
    };
    assert_eq!(a.types[i].proposed, "MMerged", "named after where it sits");
    let Body::Object(fields) = &a.types[i].body else {
        panic!()
    };
    let keys: Vec<(&str, bool)> = fields
        .iter()
        .map(|f| (f.wire.as_str(), f.required))
        .collect();
    assert_eq!(keys, [("id", false), ("extra", true)]);
    assert_eq!(a.methods[0].result.as_ref().unwrap().ty, Ty::Never);
}

#[test]
fn an_alias_that_is_itself_becomes_any() {
    let a = api(r##"{"components": {"schemas": {
        "L1": {"$ref": "#/components/schemas/L2"},
        "L2": {"oneOf": [{"$ref": "#/components/schemas/L1"}, {"type": "string"}]},
        "T": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/components/schemas/T"}}]}
    }}}"##);
    let cut = a
        .types
        .iter()
        .filter(|t| matches!(t.body, Body::Alias(Ty::Any)))
        .count();
    assert_eq!(cut, 1, "one alias of the loop is cut: {:?}", a.types);
    let (t, def) = named(&a, "T");
    assert!(
        matches!(&def.body, Body::Alias(Ty::Union(m)) if m.contains(&Ty::Array(Box::new(Ty::Named(t))))),
        "recursion through an array stays: {def:?}"
    );
}

/// A `$ref` bomb (each level referring to the next from many fields, many methods) costs one
/// type per level: names, not expansion.
#[test]
fn a_ref_bomb_is_one_type_per_target() {
    let levels = 30;
    let mut schemas = Vec::new();
    for i in 0..levels {
        let fields: Vec<String> = (0..8)
            .map(|w| format!(r##""f{w}": {{"$ref": "#/components/schemas/L{}"}}"##, i + 1))
            .collect();
        schemas.push(format!(
            r#""L{i}": {{"type": "object", "properties": {{{}}}}}"#,
            fields.join(",")
        ));
    }
    schemas.push(format!(r#""L{levels}": {{"type": "string"}}"#));
    let methods: Vec<String> = (0..1000)
        .map(|i| format!(r##"{{"name": "boom{i}", "params": [{{"name": "x", "schema": {{"$ref": "#/components/schemas/L0"}}}}], "result": {{"name": "y", "schema": {{"$ref": "#/components/schemas/L0"}}}}}}"##))
        .collect();
    let spec = format!(
        r#"{{"methods": [{}], "components": {{"schemas": {{{}}}}}}}"#,
        methods.join(","),
        schemas.join(",")
    );
    let a = api(&spec);
    assert_eq!(a.methods.len(), 1000);
    assert_eq!(a.types.len(), levels + 1);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
}

#[test]
fn bounds_hold_for_deep_inline_schemas() {
    let mut schema = String::from(r#"{"type": "string"}"#);
    for _ in 0..100 {
        schema = format!(r#"{{"type": "array", "items": {schema}}}"#);
    }
    let a = api(&format!(
        r#"{{"methods": [{{"name": "deep", "params": [{{"name": "x", "schema": {schema}}}]}}]}}"#
    ));
    let mut ty = &a.methods[0].params[0].ty;
    let mut depth = 0;
    while let Ty::Array(item) = ty {
        ty = item;
        depth += 1;
    }
    assert_eq!(*ty, Ty::Any, "cut to any");
    assert!(depth <= MAX_DEPTH + 1, "{depth}");
}

/// A huge enum and a huge union cost linear time and widen instead of being spelled out.
#[test]
fn huge_enums_and_unions_widen() {
    let values: Vec<String> = (0..100_000).map(|i| format!("\"v{i}\"")).collect();
    let members: Vec<String> = (0..5_000).map(|i| format!(r#"{{"const": {i}}}"#)).collect();
    let a = api(&format!(
        r#"{{"methods": [{{"name": "m", "params": [
            {{"name": "e", "schema": {{"enum": [{}]}}}},
            {{"name": "u", "schema": {{"oneOf": [{}]}}}},
            {{"name": "small", "schema": {{"enum": ["a", "b", "a"]}}}}
        ]}}]}}"#,
        values.join(","),
        members.join(",")
    ));
    let p = &a.methods[0].params;
    assert_eq!(p[0].ty, Ty::Str);
    assert_eq!(p[1].ty, Ty::Any);
    assert_eq!(
        p[2].ty,
        Ty::Literals(vec![Lit::Str("a".into()), Lit::Str("b".into())])
    );
}
