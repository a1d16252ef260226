//! An MCP client for the tests: rmcp's own, in either protocol revision, over TCP or
//! admin.sock.
#![allow(dead_code, unreachable_pub, missing_docs)]

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService as Client, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, UnixSocketHttpClient};
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::Value;
use std::time::Duration;

use super::Daemon;

/// How long a test waits for something the router should do at once.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The two revisions a client may speak.
#[derive(Debug, Clone, Copy)]
pub enum Revision {
    /// 2025-11-25: `initialize`, then plain requests.
    Handshake,
    /// 2026-07-28: `server/discover`, `_meta` on every request.
    Stateless,
}

pub const BOTH: [Revision; 2] = [Revision::Handshake, Revision::Stateless];

impl Revision {
    pub fn mode(self) -> ClientLifecycleMode {
        match self {
            Revision::Handshake => ClientLifecycleMode::Initialize,
            Revision::Stateless => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        }
    }
}

pub type McpClient = Client<RoleClient, ClientConfig>;

/// An rmcp client on `path` (`/mcp` or `/mcp/{service}`) over TCP.
pub async fn connect(d: &Daemon, path: &str, rev: Revision) -> McpClient {
    let url = format!("http://{}{path}", d.tcp);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    ClientConfig::default()
        .serve_with_lifecycle(transport, rev.mode())
        .await
        .unwrap_or_else(|e| panic!("{rev:?} client could not connect to {path}: {e}"))
}

/// An rmcp client on `path` over the router's admin.sock.
pub async fn connect_admin(d: &Daemon, path: &str, rev: Revision) -> McpClient {
    let url = format!("http://localhost{path}");
    let http = UnixSocketHttpClient::new(d.admin.to_str().unwrap(), &url);
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    ClientConfig::default()
        .serve_with_lifecycle(transport, rev.mode())
        .await
        .unwrap_or_else(|e| panic!("{rev:?} client could not connect over admin.sock: {e}"))
}

pub async fn call(
    client: &McpClient,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(args) = args {
        params = params.with_arguments(args);
    }
    client.call_tool(params).await
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON-RPC error code of a failed client request.
pub fn code(e: &ServiceError) -> i32 {
    match e {
        ServiceError::McpError(e) => e.code.0,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}
