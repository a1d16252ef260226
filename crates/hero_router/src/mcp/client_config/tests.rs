use super::*;

fn services() -> Value {
    json!([
        {"name": "alpha", "status": "healthy", "spec": {"state": "ok"}},
        {"name": "beta", "status": "unhealthy", "spec": {"state": "ok"}},
        {"name": "gamma", "status": "healthy", "spec": {"state": "absent"}},
    ])
}

#[test]
fn lists_mcp_and_every_healthy_service_with_a_spec() {
    let (c, note) = render(&services(), None, "http://127.0.0.1:9988/").unwrap();
    assert_eq!(note, None);
    assert_eq!(
        c,
        json!({"mcpServers": {
            "hero_router": {"type": "http", "url": "http://127.0.0.1:9988/mcp"},
            "alpha": {"type": "http", "url": "http://127.0.0.1:9988/mcp/alpha"},
        }})
    );
}

#[test]
fn one_service_even_when_down_but_not_an_unknown_one() {
    let (c, note) = render(&services(), Some("beta"), "http://[::1]:9988").unwrap();
    assert_eq!(c["mcpServers"]["beta"]["url"], "http://[::1]:9988/mcp/beta");
    assert_eq!(c["mcpServers"].as_object().unwrap().len(), 1);
    assert_eq!(note, None, "it has a spec");
    let e = render(&services(), Some("nope"), "http://x").unwrap_err();
    assert!(e.contains("no such service: nope"), "{e}");
}

/// A service asked for by name that has no spec still gets its entry, and a note that says
/// its endpoint lists no tools now, and why.
#[test]
fn one_service_without_a_spec_gets_a_note() {
    let mut list = services();
    list[2]["spec"]["reason"] = json!("GET /openrpc.json: 405");
    let (c, note) = render(&list, Some("gamma"), "http://x").unwrap();
    assert_eq!(c["mcpServers"]["gamma"]["url"], "http://x/mcp/gamma");
    let note = note.expect("a note");
    assert!(
        note.contains("gamma has no OpenRPC spec now (spec absent: GET /openrpc.json: 405)")
            && note.contains("lists no tools"),
        "{note}"
    );
}
