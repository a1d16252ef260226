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
/// service with a spec, or only `only` (which must be in `services`).
pub(crate) fn render(
    services: &Value,
    only: Option<&str>,
    base_url: &str,
) -> Result<Value, String> {
    let base = base_url.trim_end_matches('/');
    let entry = |path: &str| json!({"type": "http", "url": format!("{base}{path}")});
    let list = services.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut servers = Map::new();
    match only {
        Some(name) => {
            if !list.iter().any(|s| s["name"] == name) {
                return Err(format!(
                    "no such service: {name} (`hero_router list` shows the services)"
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
    Ok(json!({ "mcpServers": servers }))
}

#[cfg(test)]
mod tests;
