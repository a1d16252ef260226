use super::*;
use crate::mcp::tools::Output;
use crate::upstream::ServiceError;
use rmcp::model::JsonObject;
use serde_json::json;

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
fn every_error_says_what_to_do_and_whose_it_is() {
    let t = target("calc", "add");
    let router = |code: i32, message: &str| {
        error_message(&t, &CallError::router(code, message.to_owned(), "calc"))
    };
    let service = |code: i64, message: &str, data: Option<&str>| {
        let error = ServiceError {
            code,
            message: message.to_owned(),
            data: data.map(str::to_owned),
        };
        error_message(
            &t,
            &CallError::Service {
                service: "calc".into(),
                error,
            },
        )
    };
    // An answer over --max-body will be too large again: no "retrying may help".
    let large = error_message(
        &t,
        &CallError::unanswered(crate::upstream::SendError::TooLarge { limit: 16 }, "calc"),
    );
    assert!(
        large.contains("larger than 16 bytes")
            && large.contains("ask for less")
            && !large.contains("retrying may help"),
        "{large}"
    );
    let gone = router(-32001, "no such service: calc");
    assert!(
        gone.starts_with("no such service: calc (it is not in the router's table now)"),
        "{gone}"
    );
    let down = router(-32002, "service calc is not reachable: refused");
    assert!(
        down.starts_with("service calc is not reachable: refused. "),
        "{down}"
    );
    assert!(down.contains("retry once it runs again"), "{down}");
    let slow = router(
        -32003,
        "service calc did not answer within the upstream timeout",
    );
    assert!(slow.contains("may still be working"), "{slow}");
    let bad = service(-32602, "b must be a number", Some(r#"{"field":"b"}"#));
    assert_eq!(
        bad,
        "service calc rejected the arguments: b must be a number (data: {\"field\":\"b\"}). Check them against the tool's inputSchema."
    );
    let missing = service(-32601, "method not found", None);
    assert!(missing.contains("does not implement add"), "{missing}");
    let own = service(7, "disk full", None);
    assert_eq!(own, "service calc answered error 7: disk full");
    // A service's own error with a code the router also uses is still the service's.
    for code in -32005..=-32001 {
        let theirs = service(code, "user not found", None);
        assert_eq!(
            theirs,
            format!("service calc answered error {code}: user not found")
        );
    }
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
    // `{service}__` leaves 2 characters of each of b's tools: the service and the tool are
    // both cut so that the name keeps its `__` (it splits back at it), and each ends in a hash
    // of its own service and method, so neither depends on what else is listed.
    assert_eq!(names[..2], ["a__get", "a__put"]);
    for (name, method) in names[2..].iter().zip(["first_method", "first_other"]) {
        let (service, part) = name.rsplit_once("__").unwrap();
        assert!(long.starts_with(service) && service.len() >= 24, "{name}");
        let (cut, hash) = part.rsplit_once('_').unwrap();
        assert!(method.starts_with(cut) && !cut.is_empty(), "{name}");
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        let alone = Index::build(
            &Scope::All,
            &[(&sb, vec![method_tool(&long, method)].into())],
        );
        assert_eq!(alone.tools[0].tool.name.as_ref(), *name, "the same alone");
    }
    assert_ne!(names[2], names[3]);
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

/// A gateway over a registry that holds one real example service, `calc`, with its spec.
/// The second value keeps the service and the registry's writers alive (a dropped writer
/// would end the watch).
async fn gateway_with_calc(
    root: &std::path::Path,
    scope: Scope,
) -> (Gateway, Box<dyn std::any::Any>) {
    use crate::registry::catalog::{Catalog, CatalogEntry, ManifestInfo, SpecInfo, SpecState};
    use crate::registry::state::SocketState;
    use crate::registry::table::{LastScan, Service, Socket};
    use crate::rpc::Rpc;
    use crate::shared::Shared;

    let svc = hero_example_service::spawn(hero_example_service::ServiceConfig::new(root, "calc"))
        .await
        .unwrap();
    let (registry, writer) = crate::registry::channel(root.to_path_buf());
    let socket = Socket {
        kind: "rpc".into(),
        path: Arc::from(svc.path()),
        state: SocketState::Live,
        since_unix_ms: 0,
        detail: "".into(),
        refused_streak: 0,
        reap_skipped: None,
        identity: None,
    };
    let service = Service {
        name: "calc".into(),
        status: ServiceStatus::Healthy,
        sockets: vec![socket],
        error: None,
    };
    let last_scan = LastScan {
        at_unix_ms: 0,
        duration_ms: 0,
        ok: true,
        error: None,
    };
    writer
        .table
        .send(Arc::new(Table {
            root: root.to_path_buf(),
            services: vec![Arc::new(service)],
            ready: true,
            last_scan: Some(last_scan),
            ..Table::default()
        }))
        .unwrap();
    let doc = include_str!("../../../hero_example_service/openrpc.json").to_owned();
    let entry = CatalogEntry {
        manifest: ManifestInfo::default(),
        manifest_error: None,
        spec: SpecInfo {
            state: SpecState::Ok,
            reason: None,
            fingerprint: Some("sha256:test".into()),
            openrpc: Some("1.3.2".into()),
            fetched_unix_ms: Some(0),
        },
        info: ManifestInfo::default(),
        document: Some(
            serde_json::value::RawValue::from_string(doc)
                .unwrap()
                .into(),
        ),
        methods: Arc::new([]),
    };
    let catalog_writer = registry.claim_catalog_writer().unwrap();
    let mut catalog = Catalog::default();
    catalog.entries.insert("calc".into(), Arc::new(entry));
    catalog_writer.catalog.send(Arc::new(catalog)).unwrap();
    let shared = Arc::new(Shared::for_tests(registry));
    let rpc = Arc::new(Rpc::new(shared.clone()));

    let gateway = Gateway {
        rpc,
        shared,
        cache: Arc::default(),
        scope,
        exchange: Arc::new(Exchange::new("test-id".into(), None)),
    };
    (gateway, Box::new((svc, writer, catalog_writer)))
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(0..items.len())]
}

/// One generated request: a well-formed `tools/call` of either revision (any tool, any
/// arguments, any id), then none to three mutations, each a field or header wrong, missing,
/// doubled or unexpected.
fn random_request(rng: &mut fastrand::Rng, prefix: &str) -> (http::request::Parts, Vec<u8>) {
    let modern = rng.bool();
    let tool = pick(rng, &["add", "echo", "fail", "sleep_ms", "nope", "ädd", ""]).to_string();
    let name = format!("{prefix}{tool}");
    let args = pick(
        rng,
        &[
            Some(json!({"a": 1, "b": 2})),
            Some(json!({"b": 2.5, "a": -1})),
            Some(json!({"a": 1, "b": 2, "c": 3})),
            Some(json!({"value": "x"})),
            Some(json!({"ms": 0})),
            Some(json!({})),
            None,
        ],
    )
    .clone();
    let id = pick(rng, &[json!(1), json!(-7), json!("abc"), json!("")]).clone();
    let mut params = json!({"name": name});
    if let Some(args) = args {
        params["arguments"] = args;
    }
    if modern {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
    }
    let mut body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let mut headers: Vec<(&str, String)> = vec![
        ("host", "localhost".into()),
        ("content-type", "application/json".into()),
        ("accept", "application/json, text/event-stream".into()),
    ];
    if modern {
        headers.push(("mcp-protocol-version", "2026-07-28".into()));
        headers.push(("mcp-method", "tools/call".into()));
        headers.push(("mcp-name", name.clone()));
    } else {
        let v = *pick(rng, &["2025-11-25", "2025-06-18"]);
        headers.push(("mcp-protocol-version", v.into()));
    }
    let mut method = "POST";
    for _ in 0..rng.usize(0..4) {
        let meta = &mut body["params"]["_meta"];
        match rng.u32(0..23) {
            0 => body["method"] = json!(*pick(rng, &["tools/list", "ping", "tools/calls"])),
            1 => {
                body["id"] = json!(*pick(
                    rng,
                    &[
                        json!(1.5),
                        json!(null),
                        json!(u64::MAX),
                        json!(i64::MIN),
                        json!([1]),
                        json!("a\"b\\c"),
                        json!(""),
                    ]
                ))
            }
            2 => body["jsonrpc"] = json!("1.0"),
            3 => body["extra"] = json!(true),
            4 => body["params"]["requestState"] = json!("x"),
            5 => body["params"]["arguments"] = json!("not an object"),
            6 => body["params"]["name"] = json!(format!("{prefix}other")),
            7 => *meta = json!({}),
            8 => *meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
            9 => meta["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25"),
            10 => meta["io.modelcontextprotocol/clientCapabilities"] = json!(5),
            11 => meta["progressToken"] = json!(1),
            12 => meta["io.modelcontextprotocol/clientInfo"] = json!({"name": "t", "version": "1"}),
            13 => meta["io.modelcontextprotocol/clientInfo"] = json!("t"),
            14 => headers.retain(|(k, _)| *k != "mcp-protocol-version"),
            15 => {
                let v = *pick(
                    rng,
                    &["2026-07-28", "2025-11-25", "2025-03-26", "2099-01-01", "x"],
                );
                headers.push(("mcp-protocol-version", v.into()));
            }
            16 => headers.retain(|(k, _)| *k != "mcp-method" && *k != "mcp-name"),
            17 => headers.push((
                "mcp-method",
                (*pick(rng, &["tools/call", "tools/list"])).into(),
            )),
            18 => headers.push(("mcp-name", (*pick(rng, &["add", "calc__add", "x"])).into())),
            19 => {
                let a = *pick(
                    rng,
                    &[
                        "application/json",
                        "*/*",
                        "application/json;q=0, text/event-stream",
                        "text/event-stream, application/json",
                    ],
                );
                headers.retain(|(k, _)| *k != "accept");
                headers.push(("accept", a.into()));
            }
            20 => {
                let t = *pick(rng, &["text/plain", "application/json; charset=utf-8"]);
                headers.retain(|(k, _)| *k != "content-type");
                headers.push(("content-type", t.into()));
            }
            21 => headers.retain(|(k, _)| *k != "host"),
            _ => method = "GET",
        }
    }
    if body["params"]["_meta"].is_null() {
        body["params"].as_object_mut().unwrap().remove("_meta");
    }
    let mut b = http::Request::builder().method(method).uri("/mcp");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    let (parts, ()) = b.body(()).unwrap().into_parts();
    // The same JSON spelled otherwise: spaced out, numbers in float form, keys and strings
    // with escapes. The fast path may leave any of these to rmcp, never answer them otherwise.
    let mut text = match rng.u32(0..4) {
        0 => serde_json::to_string_pretty(&body).unwrap(),
        _ => body.to_string(),
    };
    for (plain, other) in [
        ("\"id\":1,", "\"id\":1e0,"),
        ("\"id\":1,", "\"id\":-0,"),
        ("protocolVersion\"", "protocol\\u0056ersion\""),
        ("\"2026-07-28\"", "\"2026\\u002d07-28\""),
        ("{}", "{ }"),
        ("\"tools/call\"", "\"tools\\/call\""),
    ] {
        if rng.u32(0..8) == 0 {
            text = text.replacen(plain, other, 1);
        }
    }
    (parts, text.into_bytes())
}

/// Whatever the fast path answers is what rmcp answers to the same request, byte for byte,
/// over generated requests; and it does answer the common ones.
#[tokio::test]
async fn the_fast_path_answers_what_rmcp_answers() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let dir = tempfile::tempdir().unwrap();
    let (one, _keep) = gateway_with_calc(dir.path(), Scope::Service("calc".into())).await;
    let all = Gateway {
        scope: Scope::All,
        cache: Arc::default(),
        ..one.clone()
    };
    let (mut answered, mut total) = (0, 0);
    for case in 0..cases.div_ceil(50) {
        let (gateway, prefix) = if rng.bool() {
            (&one, "")
        } else {
            (&all, "calc__")
        };
        let (parts, body) = random_request(&mut rng, prefix);
        total += 1;
        let Some(fast) = fast::tools_call(gateway, &parts, &body).await else {
            continue;
        };
        answered += 1;
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body.clone())));
        let slow = serve_rmcp(gateway.clone(), request, 1 << 20).await;
        let what = || {
            format!(
                "seed {seed} case {case}: {}",
                String::from_utf8_lossy(&body)
            )
        };
        let (fast, fast_body) = fast.into_parts();
        let (slow, slow_body) = slow.into_parts();
        let fast_body = crate::app::collect(fast_body, usize::MAX).await.unwrap();
        let slow_body = crate::app::collect(slow_body, usize::MAX).await.unwrap();
        assert_eq!(
            (
                fast.status,
                fast.headers.get("content-type"),
                String::from_utf8_lossy(&fast_body)
            ),
            (
                slow.status,
                slow.headers.get("content-type"),
                String::from_utf8_lossy(&slow_body)
            ),
            "{}",
            what()
        );
    }
    assert!(
        answered * 10 >= total,
        "the fast path answered only {answered} of {total} requests (seed {seed})"
    );
}

#[tokio::test]
async fn the_fast_path_takes_a_plain_call_of_either_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _keep) = gateway_with_calc(dir.path(), Scope::Service("calc".into())).await;
    let modern = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}},
        "name": "add", "arguments": {"a": 1, "b": 2}}});
    let request = |version: &str, body: &Value| {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/mcp/calc")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "add")
            .body(())
            .unwrap()
            .into_parts();
        (parts, body.to_string().into_bytes())
    };
    let (parts, body) = request("2026-07-28", &modern);
    let answer = fast::tools_call(&gateway, &parts, &body)
        .await
        .expect("taken");
    let answer = crate::app::collect(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        json(&String::from_utf8_lossy(&answer)),
        json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete",
            "content": [{"type": "text", "text": "3"}],
            "structuredContent": {"result": 3}, "isError": false}})
    );
    let mut legacy = modern.clone();
    legacy["params"].as_object_mut().unwrap().remove("_meta");
    let (parts, body) = request("2025-11-25", &legacy);
    let answer = fast::tools_call(&gateway, &parts, &body)
        .await
        .expect("taken");
    let answer = crate::app::collect(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&answer).contains("resultType"));
    // A version the gateway does not speak goes to rmcp.
    let (parts, body) = request("2025-03-26", &legacy);
    assert!(fast::tools_call(&gateway, &parts, &body).await.is_none());
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn endpoints_are_found_by_path() {
    let at = |rest: &str| Scope::at(rest);
    assert_eq!(at(""), Some(Ok(Scope::All)));
    assert_eq!(at("/"), Some(Ok(Scope::All)));
    assert_eq!(at("/calc"), Some(Ok(Scope::Service("calc".into()))));
    assert_eq!(at("/calc/"), Some(Ok(Scope::Service("calc".into()))));
    // Decoded as every routed path's service segment is.
    assert_eq!(at("/ca%6Cc"), Some(Ok(Scope::Service("calc".into()))));
    for none in ["x", "/calc//", "/calc/tools", "//", "/a/b", "/calc/tools/"] {
        assert_eq!(at(none), None, "{none}");
    }
    assert_eq!(at("/.."), Some(Err(PathError::Bad("dot segment in path"))));
    assert_eq!(
        at("/%2e%2e"),
        Some(Err(PathError::Bad("dot segment in path")))
    );
    assert_eq!(at("/a%00"), Some(Err(PathError::Bad("NUL in path"))));
    assert_eq!(at("/Bad%20Name"), Some(Err(PathError::BadService)));
    assert_eq!(
        at("/%ff"),
        Some(Err(PathError::Bad("invalid UTF-8 in path")))
    );
}

#[test]
fn no_service_takes_another_services_tool_names() {
    use super::tools::merged_names;
    // The issue's case: service `a` with a method `b__c`, and service `a__b` with `c`.
    let names = merged_names(&[("a", "b__c", "b__c"), ("a__b", "c", "c")]);
    assert_eq!(names, ["a__b_c", "a__b__c"]);
    // Whichever comes first, each keeps its own name.
    let names = merged_names(&[("a__b", "c", "c"), ("a", "b__c", "b__c")]);
    assert_eq!(names, ["a__b__c", "a__b_c"]);
    // Every name splits back at its last `__` into its service and a part of its tool, for
    // generated services and tools made of the characters that can break a split.
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = ["a", "b", "_", "__", "-", "x_", "_y"];
    let make = |rng: &mut fastrand::Rng, first: bool| -> String {
        let mut s = String::new();
        if first {
            s.push('s'); // a service name starts with a letter or digit
        }
        for _ in 0..rng.usize(1..5) {
            s.push_str(pieces[rng.usize(..pieces.len())]);
        }
        s
    };
    for case in 0..cases / 10 {
        // A service's tools have names of their own (the index makes them unique).
        let mut entries: Vec<(String, String)> = Vec::new();
        for _ in 0..rng.usize(1..6) {
            let entry = (make(&mut rng, true), make(&mut rng, false));
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        let refs: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|(s, t)| (s.as_str(), t.as_str(), t.as_str()))
            .collect();
        let names = merged_names(&refs);
        let mut seen = std::collections::HashSet::new();
        for ((service, tool), name) in entries.iter().zip(&names) {
            assert!(
                seen.insert(name),
                "seed {seed} case {case}: {name} twice: {names:?}"
            );
            let (s, part) = name.rsplit_once("__").unwrap();
            // Whatever it is named, a name holds its own service's name first.
            assert!(
                name.starts_with(&format!("{service}__")),
                "seed {seed} case {case}: {name}"
            );
            // A tool of a service the others share no name with keeps its natural name.
            let natural = !entries.iter().any(|(o, t)| o == service && t != tool);
            if natural {
                assert_eq!(
                    s, service,
                    "seed {seed} case {case}: {name} from {service}/{tool}"
                );
                assert!(!part.starts_with('_') && !part.contains("__"), "{name}");
            }
        }
    }
}

/// Paging by (service, count) cursors: every tool that stays is listed exactly once however
/// services before or after the cursor come and go between pages, and a cursor stays valid.
#[test]
fn cursors_survive_services_coming_and_going() {
    use super::{cursor_after, page_start};
    let list = |spec: &[(&'static str, usize)]| -> Vec<&'static str> {
        spec.iter()
            .flat_map(|(s, n)| std::iter::repeat_n(*s, *n))
            .collect()
    };
    let before = list(&[("a", 3), ("b", 4), ("c", 2)]);
    // A page of 5 ends inside `b`.
    let cursor = cursor_after(&before, 5);
    assert_eq!(cursor, "b/2");
    // `a` went away, `aa` came: the next page starts after b's second tool all the same.
    let after = list(&[("aa", 7), ("b", 4), ("c", 2)]);
    assert_eq!(page_start(&after, &cursor), Some(7 + 2));
    // `b` itself went: the next page starts at `c`.
    let after = list(&[("a", 3), ("c", 2)]);
    assert_eq!(page_start(&after, &cursor), Some(3));
    // `b` lost tools: the page starts after what is left of it.
    let after = list(&[("a", 3), ("b", 1), ("c", 2)]);
    assert_eq!(page_start(&after, &cursor), Some(4));
    // Everything went: an empty last page, not an error.
    assert_eq!(page_start(&[], &cursor), Some(0));
    for bad in [
        "", "x", "b", "/3", "b/x", "b/-1", "b/+1", "b/", "ma/1/2", "a b/1", "_b/1",
    ] {
        assert_eq!(page_start(&before, bad), None, "{bad:?}");
    }
}

/// A service that leaves the table takes its converted tools and its endpoint's index with
/// it (a spec's tools can be megabytes; services come and go under new names), while its name
/// is remembered: a call of its tools is told it is gone, not that the tool is unknown.
#[test]
fn a_service_that_left_takes_its_tools_with_it() {
    use crate::registry::table::Service;
    let cache = ToolCache::default();
    let tools: Arc<[MethodTool]> = vec![method_tool("gone", "add")].into();
    for name in ["gone", "here"] {
        cache.services.lock().unwrap().insert(
            name.into(),
            Converted {
                fingerprint: "f".into(),
                tools: tools.clone(),
            },
        );
        cache.served.lock().unwrap().insert(name.into());
    }
    for scope in [
        Scope::All,
        Scope::Service("gone".into()),
        Scope::Service("here".into()),
    ] {
        let index = Arc::new(Index::build(&scope, &[]));
        let built = Built {
            sources: Vec::new(),
            index,
            table: Weak::new(),
            catalog: Weak::new(),
        };
        cache.endpoints.lock().unwrap().insert(scope, built);
    }
    let here = Service {
        name: "here".into(),
        status: ServiceStatus::Healthy,
        sockets: Vec::new(),
        error: None,
    };
    let table = Table {
        services: vec![Arc::new(here)],
        ..Table::default()
    };
    cache.forget_gone(&table);
    let services: Vec<String> = cache.services.lock().unwrap().keys().cloned().collect();
    assert_eq!(services, ["here"]);
    let mut endpoints: Vec<Scope> = cache.endpoints.lock().unwrap().keys().cloned().collect();
    endpoints.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(endpoints, [Scope::All, Scope::Service("here".into())]);
    assert!(cache.had_tools("gone") && cache.has_served("gone"));
}
