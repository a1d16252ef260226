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
    let c = render(&services(), None, "http://127.0.0.1:9988/").unwrap();
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
    let c = render(&services(), Some("beta"), "http://[::1]:9988").unwrap();
    assert_eq!(c["mcpServers"]["beta"]["url"], "http://[::1]:9988/mcp/beta");
    assert_eq!(c["mcpServers"].as_object().unwrap().len(), 1);
    let e = render(&services(), Some("nope"), "http://x").unwrap_err();
    assert!(e.contains("no such service: nope"), "{e}");
}
