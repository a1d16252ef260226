use super::*;
use crate::test_util::fuzz_setup;

fn doc(methods: Value, components: Value) -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": {"title": "t", "version": "1"},
        "methods": methods,
        "components": components,
    })
}

fn only(tools: &[MethodTool]) -> &MethodTool {
    assert_eq!(tools.len(), 1, "{tools:#?}");
    &tools[0]
}

/// True if `v` holds a `$ref` member anywhere but in literal data (`enum`, `const`, …).
fn has_ref(v: &Value) -> bool {
    const LITERAL: [&str; 5] = ["enum", "const", "default", "example", "examples"];
    match v {
        Value::Object(o) => {
            o.contains_key("$ref")
                || o.iter()
                    .any(|(k, v)| !LITERAL.contains(&k.as_str()) && has_ref(v))
        }
        Value::Array(a) => a.iter().any(has_ref),
        _ => false,
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[test]
fn names_lose_dots_and_stay_within_64_characters_and_unique() {
    assert_eq!(sanitize("user.get"), "user_get");
    assert_eq!(sanitize("a b/c:é"), "a_b_c__");
    assert_eq!(sanitize(""), "_");
    let long = "x".repeat(80);
    let names = unique_names(
        ["user.get", "user_get", "user_get", &long, &long]
            .into_iter()
            .map(sanitize),
    );
    // After sanitizing, `user.get` and `user_get` collide: the later ones get suffixes.
    assert_eq!(names[0], "user_get");
    assert_eq!(names[1], "user_get_2");
    assert_eq!(names[2], "user_get_3");
    assert_eq!(names[3], "x".repeat(64));
    assert_eq!(names[4], format!("{}_2", "x".repeat(62)));
    assert!(names.iter().all(|n| valid_name(n)));
    // Deterministic, and a base added at the end renames nothing before it.
    let again = unique_names(std::iter::repeat_n("user_get".to_owned(), 3));
    assert_eq!(again, ["user_get", "user_get_2", "user_get_3"]);
}

#[test]
fn a_method_whose_sanitized_name_collides_gets_a_suffix_in_document_order() {
    let d = doc(
        json!([
            {"name": "user.get", "params": [], "result": {"name": "r", "schema": {}}},
            {"name": "user_get", "params": [], "result": {"name": "r", "schema": {}}},
        ]),
        json!({}),
    );
    let tools = service_tools("svc", &d);
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["user_get", "user_get_2"]);
    assert_eq!(tools[1].target.method, "user_get");
}

#[test]
fn nested_refs_are_inlined_in_params_and_result() {
    let d = doc(
        json!([{
            "name": "put",
            "summary": "Stores a thing.",
            "description": "Longer words.",
            "paramStructure": "by-name",
            "params": [{"$ref": "#/components/contentDescriptors/Thing"}],
            "result": {"name": "r", "schema": {"$ref": "#/components/schemas/Outer"}},
        }]),
        json!({
            "contentDescriptors": {
                "Thing": {"name": "thing", "required": true, "description": "The thing.",
                          "schema": {"$ref": "#/components/schemas/Outer"}}
            },
            "schemas": {
                "Outer": {"type": "object", "properties": {"inner": {"$ref": "#/components/schemas/Inner"}}},
                "Inner": {"type": "string", "minLength": 1},
            }
        }),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    assert_eq!(t.description, "Stores a thing.\n\nLonger words.");
    let input = Value::Object(t.input_schema.clone());
    assert!(!has_ref(&input), "{input:#}");
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["thing"]));
    assert_eq!(
        input["properties"]["thing"]["properties"]["inner"],
        json!({"type": "string", "minLength": 1})
    );
    assert_eq!(input["properties"]["thing"]["description"], "The thing.");
    // An object result is the output schema itself.
    let output = Value::Object(t.output_schema.clone().unwrap());
    assert_eq!(output["properties"]["inner"]["type"], "string");
    assert_eq!(t.target.output, Output::Object);
    let text = input.to_string() + &output.to_string();
    assert!(!text.contains("x-hero-docs"), "{text}");
}

#[test]
fn a_cycle_stays_typed_one_level_down_and_says_so() {
    let d = doc(
        json!([{
            "name": "tree",
            "params": [{"name": "node", "schema": {"$ref": "#/components/schemas/Node"}}],
            "result": {"name": "r", "schema": {"$ref": "#/components/schemas/Node"}},
        }]),
        json!({"schemas": {"Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            }
        }}}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    let input = Value::Object(t.input_schema.clone());
    assert!(!has_ref(&input), "{input:#}");
    let items = &input["properties"]["node"]["properties"]["children"]["items"];
    let why = items["description"].as_str().unwrap();
    assert!(
        why.contains("#/components/schemas/Node") && why.contains("cycle"),
        "{why}"
    );
    // Typed where the cycle was cut: an object with its properties, whose arrays have typed
    // items (what OpenAI's strict mode asks), not an untyped `{"description": …}`.
    assert_eq!(items["type"], "object", "{items:#}");
    assert_eq!(items["properties"]["label"], json!({"type": "string"}));
    assert_eq!(items["properties"]["children"]["type"], "array");
    assert_eq!(
        items["properties"]["children"]["items"]["type"], "object",
        "{items:#}"
    );
    assert!(jsonschema::draft202012::meta::is_valid(&input));
    assert!(strict_ready(&input), "{input:#}");
}

/// What strict client transformers (OpenAI strict mode, pydantic-ai's) require of a tool
/// schema: every array has items with a type (or a union of typed members), every object
/// lists its properties.
fn strict_ready(schema: &Value) -> bool {
    let Some(o) = schema.as_object() else {
        return true;
    };
    let typed = |s: &Value| {
        s.get("type").is_some()
            || ["anyOf", "oneOf", "allOf", "enum", "const"]
                .iter()
                .any(|k| s.get(*k).is_some())
    };
    let is = |t: &str| match o.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
        _ => false,
    };
    if is("array") && !o.get("items").is_some_and(typed) {
        return false;
    }
    if is("object") && !o.get("properties").is_some_and(Value::is_object) {
        // A map (`additionalProperties` with a schema) lists its values' type instead.
        if !o.get("additionalProperties").is_some_and(Value::is_object) {
            return false;
        }
    }
    o.iter().all(|(k, v)| match (k.as_str(), v) {
        ("enum" | "const" | "default" | "examples" | "example", _) => true,
        ("properties" | "$defs" | "patternProperties", Value::Object(ps)) => {
            ps.values().all(strict_ready)
        }
        (_, Value::Array(items)) => items.iter().all(strict_ready),
        (_, v) => strict_ready(v),
    })
}

#[test]
fn a_parameters_own_description_wins_and_properties_keep_the_specs_order() {
    let d = doc(
        json!([{
            "name": "add",
            "params": [
                {"name": "zeta", "description": "The first addend.", "required": true,
                 "schema": {"$ref": "#/components/schemas/Number"}},
                {"name": "alpha", "summary": "The second addend.",
                 "schema": {"$ref": "#/components/schemas/Number"}},
                {"name": "mid", "schema": {"$ref": "#/components/schemas/Number"}},
            ],
            "result": {"name": "sum", "description": "The sum.",
                       "schema": {"$ref": "#/components/schemas/Point"}},
        }]),
        json!({"schemas": {
            "Number": {"type": "number", "description": "A JSON number."},
            "Point": {"type": "object", "description": "A point.", "properties": {
                "y": {"type": "number", "description": "Up."},
                "x": {"$ref": "#/components/schemas/Number", "description": "Across."},
            }},
        }}),
    );
    let t = service_tools("calc", &d);
    let t = only(&t);
    let props = t.input_schema["properties"].as_object().unwrap();
    assert_eq!(props["zeta"]["description"], "The first addend.");
    assert_eq!(props["alpha"]["description"], "The second addend.");
    // No description of its own: the schema's stays.
    assert_eq!(props["mid"]["description"], "A JSON number.");
    let order: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(order, ["zeta", "alpha", "mid"]);
    let out = t.output_schema.as_ref().unwrap();
    assert_eq!(out["description"], "The sum.");
    // Inside a schema, a member beside `$ref` wins over the target's.
    assert_eq!(out["properties"]["x"]["description"], "Across.");
    let order: Vec<&str> = out["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(order, ["y", "x"]);
}

fn args(v: Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

#[test]
fn argument_errors_name_the_argument_and_what_was_expected() {
    let d = doc(
        json!([{
            "name": "add",
            "params": [
                {"name": "a", "required": true, "schema": {"type": "integer"}},
                {"name": "b", "required": true, "schema": {"type": "integer"}},
                {"name": "opts", "schema": {"type": "object", "properties": {
                    "round": {"type": "boolean"}}}},
            ],
            "result": {"name": "sum", "schema": {"type": "integer"}},
        }]),
        json!({}),
    );
    let t = service_tools("calc", &d);
    let t = only(&t);
    let checks = Checks::default();
    let check = |v: Value| checks.arguments(&t.input_schema, &args(v), &t.target.takes());
    assert_eq!(check(json!({"a": 1, "b": 2})), Ok(()));
    let wrong = check(json!({"a": "two", "b": 3})).unwrap_err();
    assert!(
        wrong.contains("argument \"a\"") && wrong.contains("integer") && wrong.contains("two"),
        "{wrong}"
    );
    let missing = check(json!({"a": 1})).unwrap_err();
    assert_eq!(missing, "missing argument \"b\": expected integer");
    let unknown = check(json!({"a": 1, "b": 2, "c": 3})).unwrap_err();
    assert_eq!(
        unknown,
        "unknown argument \"c\": this tool takes \"a\", \"b\", \"opts\""
    );
    let nested = check(json!({"a": 1, "b": 2, "opts": {"round": "yes"}})).unwrap_err();
    assert!(
        nested.starts_with("argument \"opts\" at /round: ") && nested.contains("boolean"),
        "{nested}"
    );
    // A huge value is quoted, not copied whole.
    let huge = check(json!({"a": "x".repeat(100_000), "b": 1})).unwrap_err();
    assert!(huge.len() < 400, "{} bytes", huge.len());
}

#[test]
fn a_result_is_checked_against_the_output_schema() {
    let d = doc(
        json!([{
            "name": "add",
            "params": [],
            "result": {"name": "sum", "schema": {"type": "integer"}},
        }]),
        json!({}),
    );
    let t = service_tools("calc", &d);
    let t = only(&t);
    let checks = Checks::default();
    let out = t.output_schema.as_ref().unwrap();
    let fits = |v: &Value| checks.result(out, &t.target.structured(v).unwrap());
    assert_eq!(fits(&json!(5)), Ok(()));
    let why = fits(&json!("five")).unwrap_err();
    assert!(why.contains("/result") && why.contains("integer"), "{why}");
}

#[test]
fn dangling_and_remote_refs_become_open_schemas() {
    let d = doc(
        json!([{
            "name": "m",
            "params": [
                {"name": "a", "schema": {"$ref": "#/components/schemas/Missing"}},
                {"name": "b", "schema": {"$ref": "https://example.com/s.json"}},
            ],
            "result": {"name": "r", "schema": {"$ref": "#/nowhere"}},
        }]),
        json!({}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    let all = json!([t.input_schema, t.output_schema]);
    assert!(!has_ref(&all), "{all:#}");
    assert!(
        t.input_schema["properties"]["a"]["description"]
            .as_str()
            .unwrap()
            .contains("unresolved")
    );
}

#[test]
fn one_of_is_kept_and_inlined() {
    let d = doc(
        json!([{
            "name": "pick",
            "params": [{"name": "choice", "required": true, "schema": {"oneOf": [
                {"$ref": "#/components/schemas/A"}, {"type": "integer"}
            ]}}],
            "result": {"name": "r", "schema": {"oneOf": [{"type": "string"}, {"type": "null"}]}},
        }]),
        json!({"schemas": {"A": {"type": "string", "enum": ["x", "y"]}}}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    assert_eq!(
        t.input_schema["properties"]["choice"]["oneOf"][0],
        json!({"type": "string", "enum": ["x", "y"]})
    );
    // Not an object result: wrapped.
    assert_eq!(t.target.output, Output::Wrapped);
    let out = t.output_schema.clone().unwrap();
    assert_eq!(out["type"], "object");
    assert_eq!(out["required"], json!(["result"]));
    assert_eq!(
        out["properties"]["result"]["oneOf"][1],
        json!({"type": "null"})
    );
}

#[test]
fn by_position_params_become_named_properties_and_go_back_in_order() {
    let d = doc(
        json!([{
            "name": "add",
            "paramStructure": "by-position",
            "params": [
                {"name": "a", "required": true, "schema": {"type": "number"}},
                {"name": "b", "required": true, "schema": {"type": "number"}},
                {"name": "c", "schema": {"type": "number"}},
            ],
            "result": {"name": "sum", "schema": {"type": "number"}},
        }]),
        json!({}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    assert_eq!(t.input_schema["required"], json!(["a", "b"]));
    assert_eq!(t.input_schema["additionalProperties"], json!(false));
    let args = |v: Value| v.as_object().cloned().unwrap();
    let target = &t.target;
    // Sent in the spec's order whatever the arguments' order.
    assert_eq!(
        target.params(Some(&args(json!({"b": 2, "a": 1})))),
        Ok(Some(json!([1, 2])))
    );
    // A gap is null; trailing absent ones are left out.
    assert_eq!(
        target.params(Some(&args(json!({"c": 3, "a": 1})))),
        Ok(Some(json!([1, null, 3])))
    );
    assert_eq!(target.params(None), Ok(Some(json!([]))));
    let e = target.params(Some(&args(json!({"d": 1})))).unwrap_err();
    assert!(
        e.contains("\"d\"") && e.contains("\"a\", \"b\", \"c\""),
        "{e}"
    );
    // The result is a number: wrapped.
    assert_eq!(target.structured(&json!(3)), Some(json!({"result": 3})));
}

#[test]
fn by_name_params_go_as_given_and_none_when_there_are_none() {
    let d = doc(
        json!([
            {"name": "get", "params": [{"name": "id", "schema": {"type": "string"}}],
             "result": {"name": "r", "schema": {"type": "object"}}},
            {"name": "ping", "params": [], "result": {"name": "r", "schema": {"type": "string"}}},
        ]),
        json!({}),
    );
    let tools = service_tools("svc", &d);
    let args = json!({"id": "7"}).as_object().cloned().unwrap();
    assert_eq!(
        tools[0].target.params(Some(&args)),
        Ok(Some(json!({"id": "7"})))
    );
    assert_eq!(tools[0].target.params(None), Ok(Some(json!({}))));
    assert_eq!(tools[1].target.params(None), Ok(None));
    // An object result is its own structured content; a non-object answer to a method
    // that declared an object has none (the text carries it).
    assert_eq!(
        tools[0].target.structured(&json!({"k": 1})),
        Some(json!({"k": 1}))
    );
    assert_eq!(tools[0].target.structured(&json!([1])), None);
}

#[test]
fn rpc_methods_are_not_tools_and_a_method_without_a_result_has_no_output_schema() {
    let d = doc(
        json!([
            {"name": "rpc.discover", "params": [], "result": {"name": "r", "schema": {}}},
            {"name": "notify", "params": []},
        ]),
        json!({}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    assert_eq!(t.name, "notify");
    assert!(t.output_schema.is_none());
    assert_eq!(t.description, "Calls svc.notify.");
    assert_eq!(t.target.structured(&json!(1)), None);
}

#[test]
fn a_schema_that_is_not_json_schema_is_replaced_not_passed_on() {
    let d = doc(
        json!([{
            "name": "m",
            "params": [{"name": "a", "schema": {"type": 5}}, {"name": "b", "schema": "string"}],
            "result": {"name": "r", "schema": {"minimum": "zero"}},
        }]),
        json!({}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    let input = Value::Object(t.input_schema.clone());
    assert!(jsonschema::draft202012::meta::is_valid(&input), "{input:#}");
    assert!(
        input["properties"]["a"]["description"]
            .as_str()
            .unwrap()
            .contains("not valid JSON Schema")
    );
    let output = Value::Object(t.output_schema.clone().unwrap());
    assert!(
        jsonschema::draft202012::meta::is_valid(&output),
        "{output:#}"
    );
}

/// A random schema: valid building blocks, references to components (some missing, some
/// cyclic), composition, and now and then something that is not a schema at all.
fn random_schema(rng: &mut fastrand::Rng, depth: u32) -> Value {
    let leaf = depth >= 4;
    match rng.u32(0..if leaf { 5 } else { 11 }) {
        0 => {
            let types = ["string", "integer", "number", "boolean", "null"];
            json!({"type": types[rng.usize(0..types.len())]})
        }
        1 => json!({"$ref": format!("#/components/schemas/S{}", rng.u32(0..6))}),
        2 => json!(rng.bool()),
        3 => json!({"enum": [1, "a", {"$ref": "data, not a reference"}]}),
        4 => json!({"type": 7, "minimum": "x"}),
        5 => json!({"type": "object", "properties": {
            random_name(rng): random_schema(rng, depth + 1),
            random_name(rng): random_schema(rng, depth + 1),
        }}),
        6 => json!({"type": "array", "items": random_schema(rng, depth + 1)}),
        7 => json!({"oneOf": [random_schema(rng, depth + 1), random_schema(rng, depth + 1)]}),
        8 => json!({"allOf": [random_schema(rng, depth + 1)], "description": "d"}),
        9 => json!({"anyOf": [random_schema(rng, depth + 1), {"$ref": "#/x/y~1z"}]}),
        _ => json!({"$ref": "#/components/schemas/S0", "description": "with a sibling"}),
    }
}

fn random_name(rng: &mut fastrand::Rng) -> String {
    const PARTS: [&str; 10] = ["user", ".", "get", "é", " ", "_", "-", "x", "日本", "/"];
    let n = rng.usize(0..40);
    (0..n).map(|_| PARTS[rng.usize(0..PARTS.len())]).collect()
}

/// Every generated `inputSchema` and `outputSchema` is a valid JSON Schema (2020-12, the
/// MCP default) of type object without a `$ref` left, and every tool name matches
/// `^[A-Za-z0-9_-]{1,64}$` and is unique, for random documents (names with dots, spaces,
/// non-ASCII, over 64 characters, duplicates; refs nested, cyclic, dangling).
#[test]
fn never_an_invalid_schema_or_name() {
    let (cases, seed, mut rng) = fuzz_setup();
    for case in 0..cases.div_ceil(40) {
        let mut schemas = Map::new();
        for i in 0..6 {
            // Now and then one is missing: references to it dangle.
            if rng.u32(0..6) != 0 {
                schemas.insert(format!("S{i}"), random_schema(&mut rng, 0));
            }
        }
        let methods: Vec<Value> = (0..rng.usize(0..6))
            .map(|_| {
                let params: Vec<Value> = (0..rng.usize(0..4))
                    .map(|_| {
                        json!({
                            "name": random_name(&mut rng),
                            "required": rng.bool(),
                            "schema": random_schema(&mut rng, 0),
                        })
                    })
                    .collect();
                let structures = ["by-name", "by-position", "either"];
                let mut m = json!({
                    "name": random_name(&mut rng),
                    "params": params,
                    "paramStructure": structures[rng.usize(0..structures.len())],
                });
                if rng.bool() {
                    m["result"] = json!({"name": "r", "schema": random_schema(&mut rng, 0)});
                }
                m
            })
            .collect();
        let d = doc(Value::Array(methods), json!({"schemas": schemas}));
        let tools = service_tools("svc", &d);
        let mut seen = HashSet::new();
        let all_names = unique_names(tools.iter().map(|t| format!("a_service__{}", t.name)));
        for (t, merged) in tools.iter().zip(&all_names) {
            let ctx = || format!("seed {seed} case {case}: {d:#}");
            assert!(valid_name(&t.name), "{:?} {}", t.name, ctx());
            assert!(valid_name(merged), "{merged:?} {}", ctx());
            assert!(
                seen.insert(t.name.clone()),
                "duplicate {:?} {}",
                t.name,
                ctx()
            );
            for schema in [Some(&t.input_schema), t.output_schema.as_ref()]
                .into_iter()
                .flatten()
            {
                let s = Value::Object(schema.clone());
                assert_eq!(s["type"], "object", "{}", ctx());
                assert!(!has_ref(&s), "{s:#} {}", ctx());
                assert!(
                    jsonschema::draft202012::meta::is_valid(&s),
                    "{s:#} {}",
                    ctx()
                );
            }
        }
    }
}

/// A schema a strict client accepts as it is (typed leaves, objects with properties, arrays
/// with typed items, unions of such), with references to the components `S0`…`S3`, which
/// refer to one another: cycles everywhere.
fn strict_schema(rng: &mut fastrand::Rng, depth: u32) -> Value {
    let leaf = depth >= 3;
    match rng.u32(0..if leaf { 2 } else { 6 }) {
        0 => {
            let types = ["string", "integer", "number", "boolean"];
            json!({"type": types[rng.usize(0..types.len())], "description": "a leaf"})
        }
        1 => json!({"$ref": format!("#/components/schemas/S{}", rng.u32(0..4))}),
        2 => {
            let properties: Map<String, Value> = (0..rng.usize(1..4))
                .map(|i| (format!("p{i}"), strict_schema(rng, depth + 1)))
                .collect();
            json!({"type": "object", "properties": properties})
        }
        3 => json!({"type": "array", "items": strict_schema(rng, depth + 1)}),
        4 => json!({"oneOf": [strict_schema(rng, depth + 1), strict_schema(rng, depth + 1)]}),
        _ => json!({
            "$ref": format!("#/components/schemas/S{}", rng.u32(0..4)),
            "description": "a sibling's words",
        }),
    }
}

/// For documents strict clients could take as they are, recursive ones included, every
/// tool schema stays acceptable to them (every array has typed items, every object lists
/// its properties: OpenAI strict mode's rules, which pydantic-ai applies), keeps the
/// parameters in the spec's order and gives each its own description.
#[test]
fn strict_ready_specs_give_strict_ready_tools_in_spec_order() {
    const NAMES: [&str; 6] = ["zeta", "alpha", "mid", "beta", "omega", "gamma"];
    let (cases, seed, mut rng) = fuzz_setup();
    for case in 0..cases.div_ceil(40) {
        let schemas: Map<String, Value> = (0..4)
            .map(|i| {
                let properties: Map<String, Value> = (0..rng.usize(1..4))
                    .map(|p| (format!("f{p}"), strict_schema(&mut rng, 1)))
                    .collect();
                (
                    format!("S{i}"),
                    json!({"type": "object", "properties": properties}),
                )
            })
            .collect();
        let mut names = NAMES.to_vec();
        rng.shuffle(&mut names);
        names.truncate(rng.usize(0..=NAMES.len()));
        let params: Vec<Value> = names
            .iter()
            .map(|n| {
                json!({
                    "name": n,
                    "description": format!("What {n} is."),
                    "required": rng.bool(),
                    "schema": strict_schema(&mut rng, 0),
                })
            })
            .collect();
        let d = doc(
            json!([{
                "name": "m",
                "params": params,
                "result": {"name": "r", "schema": strict_schema(&mut rng, 0)},
            }]),
            json!({"schemas": schemas}),
        );
        let tools = service_tools("svc", &d);
        let t = only(&tools);
        let ctx = || format!("seed {seed} case {case}: {d:#}");
        let input = Value::Object(t.input_schema.clone());
        assert!(strict_ready(&input), "{input:#} {}", ctx());
        let output = Value::Object(t.output_schema.clone().unwrap());
        assert!(strict_ready(&output), "{output:#} {}", ctx());
        let props = input["properties"].as_object().unwrap();
        let order: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(order, names, "{}", ctx());
        for n in &names {
            assert_eq!(
                props[*n]["description"],
                format!("What {n} is."),
                "{}",
                ctx()
            );
        }
    }
}

/// `nullable: true` (OpenAPI's, which specs use) takes `null`, as the generated clients and
/// the service do; the type still holds for anything else.
#[test]
fn a_nullable_param_takes_null() {
    let d = doc(
        json!([{
            "name": "set",
            "params": [
                {"name": "n", "required": true, "schema": {"type": "string", "nullable": true}},
                {"name": "e", "schema": {"type": "string", "enum": ["a", "b"], "nullable": true}},
                {"name": "count", "schema": {"$ref": "#/components/schemas/Count"}},
            ],
        }]),
        json!({"schemas": {"Count": {"type": "integer", "nullable": true}}}),
    );
    let t = service_tools("svc", &d);
    let t = only(&t);
    let checks = Checks::default();
    let check = |v: Value| checks.arguments(&t.input_schema, &args(v), &t.target.takes());
    assert_eq!(check(json!({"n": null, "e": null, "count": null})), Ok(()));
    assert_eq!(check(json!({"n": "x", "e": "a", "count": 3})), Ok(()));
    assert!(check(json!({"n": 5})).is_err());
    assert!(check(json!({"n": "x", "e": "c"})).is_err());
    assert!(check(json!({"n": "x", "count": "3"})).is_err());
}

/// The serialized size of a service's tools: what `tools/list` sends of them.
fn listed_bytes(tools: &[MethodTool]) -> usize {
    tools
        .iter()
        .map(|t| {
            t.description.len()
                + Value::Object(t.input_schema.clone()).to_string().len()
                + t.output_schema
                    .as_ref()
                    .map_or(0, |o| Value::Object(o.clone()).to_string().len())
        })
        .sum()
}

/// Objects six levels deep, ten properties each, through references: a valid, finite schema
/// whose full expansion (a million leaves) is past the resolver's limits. What is cut is cut
/// where a schema stands, so the param keeps its type and its arguments are still checked.
#[test]
fn a_schema_past_the_limits_stays_valid_typed_and_checked() {
    let schemas: Map<String, Value> = (0..6)
        .map(|i| {
            let props: Map<String, Value> = (0..10)
                .map(|j| {
                    let p = if i < 5 {
                        json!({"$ref": format!("#/components/schemas/N{}", i + 1)})
                    } else {
                        json!({"type": "string"})
                    };
                    (format!("p{j}"), p)
                })
                .collect();
            (
                format!("N{i}"),
                json!({"type": "object", "properties": props}),
            )
        })
        .collect();
    let d = doc(
        json!([{"name": "put", "params": [{"name": "x", "required": true,
            "schema": {"$ref": "#/components/schemas/N0"}}],
            "result": {"name": "r", "schema": {"type": "integer"}}}]),
        json!({ "schemas": schemas }),
    );
    let tools = service_tools("svc", &d);
    let x = &only(&tools).input_schema["properties"]["x"];
    assert_eq!(
        x["type"],
        "object",
        "{}",
        crate::json::cut(x.to_string(), 2000)
    );
    assert!(!x.to_string().contains("not valid JSON Schema"));
    let checks = Checks::default();
    let arguments = json!({"x": "not an object"});
    let refused = checks.arguments(&tools[0].input_schema, arguments.as_object().unwrap(), "x");
    assert!(refused.is_err(), "{refused:?}");
}

/// A 150 KB document whose one param refers 1,000 times to a string with a 100 KiB
/// description was a 100 MB tool list. What references copy is bounded in bytes, not only in
/// values, and so is what a service's tools may add up to.
#[test]
fn a_small_spec_cannot_make_a_huge_tool_list() {
    let leaf = json!({"type": "string", "description": "d".repeat(100 << 10)});
    let props: Map<String, Value> = (0..1000)
        .map(|i| {
            (
                format!("f{i}"),
                json!({"$ref": "#/components/schemas/Leaf"}),
            )
        })
        .collect();
    let amp = doc(
        json!([{"name": "amp", "params": [{"name": "x", "schema": {"$ref": "#/components/schemas/Row"}}]}]),
        json!({"schemas": {"Leaf": leaf, "Row": {"type": "object", "properties": props}}}),
    );
    let tools = service_tools("amp", &amp);
    assert!(
        listed_bytes(&tools) < 2 << 20,
        "{} bytes",
        listed_bytes(&tools)
    );
    let x = &only(&tools).input_schema["properties"]["x"];
    assert_eq!(x["type"], "object");
    assert_eq!(x["properties"].as_object().unwrap().len(), 1000);

    // `$ref: "#"`: the whole document, in every method that says so.
    let methods: Vec<Value> = (0..200)
        .map(|i| {
            json!({"name": format!("m{i}"), "params": [{"name": "x", "schema": {"$ref": "#"}}],
            "description": "e".repeat(10 << 10)})
        })
        .collect();
    let whole = doc(
        Value::Array(methods),
        json!({"schemas": {"Leaf": {"type": "string", "description": "d".repeat(100 << 10)}}}),
    );
    let tools = service_tools("whole", &whole);
    assert_eq!(tools.len(), 200);
    assert!(
        listed_bytes(&tools) < 24 << 20,
        "{} bytes",
        listed_bytes(&tools)
    );
}

/// Merged names as docs/docs-and-mcp.md#tool-names says: a natural name taken by another tool
/// of the service, or missing (a method `.` leaves no part), gets a hash of its service and
/// method, not `_2`; a placeholder never takes a real method's natural name; and a service
/// name too long for `{service}__{part}` is cut so that the name keeps its `__`.
#[test]
fn merged_names_hash_what_they_cannot_name_naturally_and_keep_their_separator() {
    let long = "S".repeat(64);
    let entries = [
        ("a", "_b", "_b"),
        ("a", "b", "b"),
        ("a", "_", "."),
        ("a", "tool", "tool"),
        (long.as_str(), "m", "m"),
        (long.as_str(), "n", "n"),
    ];
    let names = merged_names(&entries);
    let hashed = |name: &str, stem: &str| {
        name.strip_prefix(stem)
            .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    assert_eq!(names[0], "a__b");
    assert!(hashed(&names[1], "a__b_"), "{names:?}");
    assert!(hashed(&names[2], "a__tool_"), "{names:?}");
    assert_eq!(names[3], "a__tool");
    for name in &names[4..] {
        let (service, part) = name.rsplit_once("__").expect("a merged name keeps its __");
        assert!(
            long.starts_with(service) && name.len() <= MAX_NAME,
            "{name}"
        );
        assert!(part.starts_with(['m', 'n']), "{name}");
    }
    assert_ne!(names[4], names[5]);
    // The same tool gets the same hashed name whatever else is listed.
    assert_eq!(merged_names(&entries[1..2]), ["a__b"]);
    assert_eq!(merged_names(&[entries[0], entries[1]])[1], names[1]);
}

/// Shapes a second review made past the first bounds: a long `enum` in a component every
/// param refers to (a 290 KB document made 130 MB), a union of unions ten wide and twelve
/// deep (one stand-in spelled out 35 MB), and a chain of 40 references (cut at 32, it became
/// an open schema, its arguments unchecked). Each stays small, and typed.
#[test]
fn enums_unions_and_chains_cannot_blow_up_or_untype_a_stand_in() {
    let refs = |target: &str, n: usize| -> Map<String, Value> {
        (0..n)
            .map(|i| {
                (
                    format!("p{i}"),
                    json!({"$ref": format!("#/components/schemas/{target}")}),
                )
            })
            .collect()
    };
    let methods = |target: &str, methods: usize, params: usize| -> Value {
        (0..methods)
            .map(|m| {
                let params: Vec<Value> = refs(target, params)
                    .into_iter()
                    .map(|(name, schema)| json!({"name": name, "schema": schema}))
                    .collect();
                json!({"name": format!("m{m}"), "params": params})
            })
            .collect()
    };
    let values: Vec<String> = (0..20_000).map(|i| format!("value-{i}")).collect();
    let mut unions: Map<String, Value> = (0..11)
        .map(|i| {
            let members: Vec<Value> = (0..10)
                .map(|_| json!({"$ref": format!("#/components/schemas/L{}", i + 1)}))
                .collect();
            (format!("L{i}"), json!({"anyOf": members}))
        })
        .collect();
    unions.insert("L11".into(), json!({"type": "string"}));
    let mut chain: Map<String, Value> = (1..40)
        .map(|i| {
            (
                format!("C{i}"),
                json!({"$ref": format!("#/components/schemas/C{}", i - 1)}),
            )
        })
        .collect();
    chain.insert(
        "C0".into(),
        json!({"type": "object", "properties": {"k": {"type": "integer"}}}),
    );
    for (name, d, most) in [
        (
            "enum",
            doc(
                methods("E", 50, 10),
                json!({"schemas": {"E": {"type": "string", "enum": values}}}),
            ),
            16 << 20,
        ),
        (
            "anyof",
            doc(methods("L0", 30, 40), json!({"schemas": unions})),
            24 << 20,
        ),
        (
            "chain",
            doc(methods("C39", 1, 1), json!({"schemas": chain})),
            64 << 10,
        ),
    ] {
        let tools = service_tools(name, &d);
        assert!(
            listed_bytes(&tools) < most,
            "{name}: {} bytes",
            listed_bytes(&tools)
        );
        for t in &tools {
            for (p, schema) in t.input_schema["properties"].as_object().unwrap() {
                assert_eq!(
                    open_nodes(schema),
                    0,
                    "{name} {} {p}: {schema:.300}",
                    t.name
                );
            }
        }
    }
    // The chain's end is an object with its rules: they hold in its stand-in too.
    let mut end = chain["C0"].clone();
    end["required"] = json!(["k"]);
    end["additionalProperties"] = json!(false);
    chain.insert("C0".into(), end);
    let tools = service_tools(
        "chain",
        &doc(methods("C39", 1, 1), json!({"schemas": chain})),
    );
    let p = &tools[0].input_schema["properties"]["p0"];
    assert_eq!(
        (&p["required"], &p["additionalProperties"]),
        (&json!(["k"]), &json!(false)),
        "{p}"
    );
}

/// Schema objects in `schema` (itself, its properties, items and union members) that say
/// nothing of the value they take: no type, union, enum or const.
fn open_nodes(schema: &Value) -> usize {
    let own = ["type", "anyOf", "oneOf", "enum", "const"]
        .iter()
        .all(|k| schema.get(*k).is_none()) as usize;
    let properties = schema["properties"]
        .as_object()
        .map_or(0, |ps| ps.values().map(open_nodes).sum());
    let items = schema.get("items").map_or(0, open_nodes);
    let members: usize = ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten()
        .map(open_nodes)
        .sum();
    own + properties + items + members
}

/// A result that lacks a property its object schema requires is named at "the top level",
/// not at an empty path (`at : …`); a deeper one at its JSON pointer.
#[test]
fn a_result_off_its_schema_says_where() {
    let schema =
        json!({"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]});
    let schema = schema.as_object().unwrap().clone();
    let checks = Checks::default();
    let top = checks.result(&schema, &json!({})).unwrap_err();
    assert!(top.starts_with("at the top level: "), "{top}");
    let deep = checks.result(&schema, &json!({"v": "x"})).unwrap_err();
    assert!(deep.starts_with("at /v: "), "{deep}");
    assert_eq!(checks.result(&schema, &json!({"v": 1})), Ok(()));
}
