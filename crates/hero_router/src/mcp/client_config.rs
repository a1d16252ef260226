//! `hero_router mcp-config [SERVICE]`: a client configuration to paste into an agent.
//!
//! The format is the `mcpServers` JSON object that Claude Code (`.mcp.json`), Claude
//! Desktop, Cursor, Windsurf, VS Code-based agents and most other MCP clients read: one
//! entry per server with `"type": "http"` and its `url`. `hero_router` is the `/mcp`
//! endpoint (every healthy service's tools); every other entry is one service's endpoint.

use serde_json::{Map, Value, json};

use crate::registry::catalog::SpecState;

/// The `mcpServers` configuration for the router at `base_url` (e.g.
/// `http://127.0.0.1:9988`), given the `router.services` result: `/mcp` and every healthy
/// service with a spec, or only `only` (which must be in `services`), and a note for the user
/// when `only` has no spec now (its endpoint lists no tools until it serves one).
pub(crate) fn render(
    services: &Value,
    only: Option<&str>,
    base_url: &str,
) -> Result<(Value, Option<String>), String> {
    let base = base_url.trim_end_matches('/');
    let entry = |path: &str| json!({"type": "http", "url": format!("{base}{path}")});
    let list = services.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut servers = Map::new();
    let mut note = None;
    match only {
        Some(name) => {
            let Some(service) = list.iter().find(|s| s["name"] == name) else {
                return Err(format!(
                    "no such service: {name} (`hero_router list` shows the services)"
                ));
            };
            // Down or without a spec, it is still the service asked for: it may come back
            // with tools. The user hears why it has none now.
            let state = service["spec"]["state"].as_str().unwrap_or("absent");
            if !SpecState::has_document(state) {
                let why = service["spec"]["reason"]
                    .as_str()
                    .map_or_else(String::new, |r| format!(": {r}"));
                note = Some(format!(
                    "service {name} has no OpenRPC spec now (spec {state}{why}): its MCP endpoint lists no tools until it serves one"
                ));
            }
            servers.insert(name.to_owned(), entry(&format!("/mcp/{name}")));
        }
        None => {
            servers.insert("hero_router".to_owned(), entry("/mcp"));
            for s in list {
                let Some(name) = s["name"].as_str() else {
                    continue;
                };
                let has_spec = s["spec"]["state"]
                    .as_str()
                    .is_some_and(SpecState::has_document);
                if s["status"] == "healthy" && has_spec && name != "hero_router" {
                    servers.insert(name.to_owned(), entry(&format!("/mcp/{name}")));
                }
            }
        }
    }
    Ok((json!({ "mcpServers": servers }), note))
}

#[cfg(test)]
mod tests;
