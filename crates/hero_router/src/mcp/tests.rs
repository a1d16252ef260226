use super::*;
use crate::mcp::tools::Output;
use rmcp::model::JsonObject;

fn target(service: &str, method: &str) -> Target {
    Target {
        service: service.to_owned(),
        method: method.to_owned(),
        params: Vec::new(),
        by_position: false,
        output: Output::None,
    }
}

fn method_tool(service: &str, name: &str) -> MethodTool {
    MethodTool {
        name: name.to_owned(),
        description: String::new(),
        input_schema: JsonObject::new(),
        output_schema: None,
        target: target(service, name),
    }
}

fn source(service: &str, listed: bool) -> Source {
    Source {
        service: service.to_owned(),
        fingerprint: String::new(),
        listed,
    }
}

#[test]
fn every_error_says_what_to_do() {
    let t = target("calc", "add");
    let msg = |e: Value| error_message(&t, Some(&e));
    let gone = msg(json!({"code": -32001, "message": "no such service: calc"}));
    assert!(gone.contains("service calc is gone"), "{gone}");
    let down = msg(json!({"code": -32002, "message": "service calc is not reachable: refused"}));
    assert!(
        down.starts_with("service calc is not reachable: refused. "),
        "{down}"
    );
    assert!(down.contains("retry once it runs again"), "{down}");
    let slow = msg(
        json!({"code": -32003, "message": "service calc did not answer within the upstream timeout"}),
    );
    assert!(slow.contains("may still be working"), "{slow}");
    let bad = msg(json!({"code": -32602, "message": "b must be a number", "data": {"field": "b"}}));
    assert_eq!(
        bad,
        "service calc rejected the arguments: b must be a number (data: {\"field\":\"b\"}). Check them against the tool's inputSchema."
    );
    let missing = msg(json!({"code": -32601, "message": "method not found"}));
    assert!(missing.contains("does not implement add"), "{missing}");
    let own = msg(json!({"code": 7, "message": "disk full"}));
    assert_eq!(own, "service calc answered error 7: disk full");
    let none = error_message(&t, None);
    assert!(none.contains("without a code"), "{none}");
}

#[test]
fn the_all_services_index_prefixes_and_keeps_names_within_64() {
    let long = "s".repeat(60);
    let a: Arc<[MethodTool]> = vec![method_tool("a", "get"), method_tool("a", "put")].into();
    let b: Arc<[MethodTool]> = vec![
        method_tool(&long, "first_method"),
        method_tool(&long, "first_other"),
    ]
    .into();
    let (sa, sb) = (source("a", true), source(&long, false));
    let index = Index::build(&Scope::All, &[(&sa, a.clone()), (&sb, b)]);
    let names: Vec<&str> = index.tools.iter().map(|e| e.tool.name.as_ref()).collect();
    // `{service}__` leaves 2 characters of each of b's tools: both cut to `fi`; the second
    // then makes room for its suffix.
    assert_eq!(
        names,
        [
            "a__get",
            "a__put",
            &format!("{long}__fi"),
            &format!("{long}___2")
        ]
    );
    assert!(names.iter().all(|n| n.len() <= 64));
    assert_eq!(index.by_name[names[3]], 3);
    assert_eq!(index.tools[3].target.method, "first_other");
    // Only healthy services are listed; the others stay callable by name.
    assert_eq!(index.listed_names(), ["a__get", "a__put"]);
    // One service's endpoint keeps its tools' own names.
    let one = Index::build(&Scope::Service("a".into()), &[(&sa, a)]);
    let names: Vec<&str> = one.tools.iter().map(|e| e.tool.name.as_ref()).collect();
    assert_eq!(names, ["get", "put"]);
}
