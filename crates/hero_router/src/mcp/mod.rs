//! The MCP gateway (docs/docs-and-mcp.md#mcp-gateway): every service's OpenRPC methods as MCP
//! tools, for AI agents.
//!
//! Endpoints, on the service listeners and admin.sock (routed by `serve`):
//! - `POST /mcp/{service}`: that service's tools, named after its methods;
//! - `POST /mcp`: every healthy service's tools, named `{service}__{tool}`.
//!
//! rmcp's Streamable HTTP server speaks the protocol, stateless and with JSON answers, so one
//! URL serves both revisions: a request whose `_meta` carries the 2026-07-28 keys (or a
//! `server/discover`) is served as 2026-07-28, an `initialize` selects the handshake
//! revisions (2025-11-25 and 2025-06-18). Nothing is kept between requests: a router restart
//! loses no session, because there are none. A foreign `Origin` (403) and a `Host` that is not
//! the router's (421) are refused before the request gets here, by the routing
//! ([`crate::browser`]); rmcp's own Host check is off, since the router is reached by no name
//! at all on its Unix sockets.
//!
//! The tools are built by hand from the live catalog ([`tools`]), per request: a service that
//! appears, restarts with other methods, or dies changes the next list. 2026-07-28 clients
//! that `subscriptions/listen` get `notifications/tools/list_changed` when it does; the
//! handshake revisions would need a session's GET stream for that, so they are told
//! `listChanged: false`. A call is a routed JSON-RPC call ([`Rpc::call`](crate::rpc::Rpc::call)),
//! with its limits and in-flight caps; whatever goes wrong past the tool's name is a result
//! with `isError: true` that says what to do, and whose error it was: the service's own, as it
//! sent it, or the router's.

pub(crate) mod client_config;
mod fast;
mod malformed;
mod tools;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeRequestParams, InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::app::{Request, Response};
use crate::jsonrpc::{BAD_UPSTREAM, NO_SUCH_SERVICE, NOT_LIVE, UPSTREAM_TIMEOUT};
use crate::proxy::error::ProxyError;
use crate::proxy::error::{Envelope, error_response};
use crate::proxy::path::PathError;
use crate::registry::catalog::Catalog;
use crate::registry::names::OWN_SERVICE;
use crate::registry::table::{ServiceStatus, Table};
use crate::rpc::{CallMeta, Rpc};
use crate::shared::Shared;
use crate::telemetry::RateLimit;
use crate::upstream::CallError;
use tools::{MethodTool, Target};

/// Most tools in one `tools/list` page; past it the answer has a `nextCursor`.
const PAGE: usize = 100;
/// Most names of services whose tools were served that the cache remembers before it starts
/// over (their tools and endpoints go when they leave the table).
const MAX_CACHED: usize = 4096;

/// Which tools an endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// `/mcp`: every healthy service's, prefixed with the service name.
    All,
    /// `/mcp/{service}`: one service's.
    Service(String),
}

impl Scope {
    /// The endpoint at `rest`, the path after `/mcp` (a trailing slash allowed): `None` if there
    /// is none (404), a bad path if the service segment cannot be a service name. The segment is decoded and
    /// checked as every routed path's is.
    pub(crate) fn at(rest: &str) -> Option<Result<Scope, PathError>> {
        if matches!(rest, "" | "/") {
            return Some(Ok(Scope::All));
        }
        let inner = rest.strip_prefix('/')?;
        // One trailing slash is the same endpoint, as `/mcp/` is `/mcp`.
        let segment = inner.strip_suffix('/').unwrap_or(inner);
        if segment.is_empty() || segment.contains('/') {
            return None;
        }
        Some(crate::proxy::path::service_segment(segment).map(Scope::Service))
    }
}

/// The gateway's memory, per router: tools converted from each document once (keyed by its
/// fingerprint), and each endpoint's index as long as the catalog and the services' health
/// do not change.
#[derive(Default)]
struct ToolCache {
    /// By service, for the services in the table: a service that leaves takes its tools (and
    /// its endpoint's index) with it at the next build (a spec's tools can be megabytes, and
    /// names of services long gone pile up).
    services: Mutex<HashMap<String, Converted>>,
    /// By endpoint.
    endpoints: Mutex<HashMap<Scope, Built>>,
    /// The names of the services whose tools the gateway converted (up to [`MAX_CACHED`]):
    /// a call of a service that left is told it is gone, not that the tool is unknown.
    served: Mutex<std::collections::HashSet<String>>,
}

/// One service's tools and the document they came from.
struct Converted {
    fingerprint: String,
    tools: Arc<[MethodTool]>,
}

/// An endpoint's index and what it was built from.
struct Built {
    sources: Vec<Source>,
    index: Arc<Index>,
    /// The table and catalog last seen to hold these sources: while they are still the
    /// published ones (nothing changed), there is nothing to compare. Weak, so an endpoint
    /// nobody calls pins no old table.
    table: Weak<Table>,
    catalog: Weak<Catalog>,
}

/// One service's part in an endpoint: its name, document fingerprint, and whether its tools
/// are listed (healthy) or only callable (down, busy: calls then say so).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    service: String,
    fingerprint: String,
    listed: bool,
}

/// An endpoint's tools with their final names, in list order.
struct Index {
    tools: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

struct Entry {
    tool: Tool,
    target: Arc<Target>,
    checks: tools::Checks,
    listed: bool,
}

/// The rmcp server handler of one request: the endpoint's scope over the router's state.
#[derive(Clone)]
struct Gateway {
    /// The JSON-RPC front end, for calls.
    rpc: Arc<Rpc>,
    /// The table and the catalog, for the tools; the limits.
    shared: Arc<Shared>,
    cache: Arc<ToolCache>,
    scope: Scope,
    /// The request's ids and what its tool calls did.
    exchange: Arc<Exchange>,
}

/// One MCP request's part in the traffic: the ids its tool calls pass on to the service (as
/// every routed call does), and what the connection driver logs and counts of those calls.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// The request's id: `X-Request-Id` to the service, `request_id` in the gateway's errors.
    pub request_id: String,
    /// The router's span, as the `traceparent` the service gets.
    pub traceparent: Option<String>,
    /// The service a tool call went to, and how long it took to answer.
    called: Mutex<Option<Called>>,
    /// Why a tool call got no answer from its service (the router's error), if one did not.
    failure: Mutex<Option<String>>,
}

/// A service a tool call went to, and how long it took to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Called {
    pub service: String,
    /// `None` while the call waits (a client that leaves meanwhile: no answer came).
    pub upstream: Option<Duration>,
}

/// The MCP endpoints, and the tool cache they share for as long as the router runs.
#[derive(Default)]
pub(crate) struct Endpoints {
    cache: Arc<ToolCache>,
}

impl Endpoints {
    /// Answers one request to the endpoint of `scope` (the routing decided it).
    pub(crate) async fn serve(
        &self,
        rpc: &Arc<Rpc>,
        shared: &Arc<Shared>,
        scope: Scope,
        request: Request,
        exchange: Arc<Exchange>,
    ) -> Response {
        // Right after start-up every request waits for the first scan, as a routed call does;
        // past `--upstream-timeout` an empty table would read as "no such service" or no tools.
        let registry = &shared.registry;
        if !registry.table().scanned() {
            registry.wait_ready(shared.upstream_timeout).await;
            let table = registry.table();
            if !table.scanned() {
                let e = ProxyError::Starting {
                    root: table.root.display().to_string(),
                };
                let id = Some(exchange.request_id.as_str());
                return crate::proxy::error::error_response_as(&e, id, Envelope::JsonRpc);
            }
        }
        // A service that left the table keeps its endpoint for the clients that used it: an
        // empty tool list that says why keeps them connected, where a 404 reads as the whole
        // server failing. One the gateway never served is unknown.
        if let Scope::Service(name) = &scope {
            if shared.registry.table().service(name).is_none() && !self.cache.has_served(name) {
                let service = name.clone();
                return error_response(&ProxyError::NoService { service });
            }
        }
        let max_body = usize::try_from(shared.max_body).unwrap_or(usize::MAX);
        let gateway = Gateway {
            rpc: rpc.clone(),
            shared: shared.clone(),
            cache: self.cache.clone(),
            scope,
            exchange,
        };
        // The connection driver has read the body whole, within `--max-body`.
        let (mut parts, body) = request.into_parts();
        let request_id = gateway.exchange.request_id.clone();
        if parts.method == http::Method::POST {
            if let Some(answer) = malformed::precheck(&mut parts, &body, &request_id) {
                return answer;
            }
        }
        if let Some(answer) = fast::tools_call(&gateway, &parts, &body).await {
            return answer;
        }
        // Boxed: rmcp's future is large, and most requests never need it.
        let request = http::Request::from_parts(parts, Full::new(body));
        let answer = Box::pin(serve_rmcp(gateway, request, max_body)).await;
        malformed::json_refusal(answer, &request_id).await
    }
}

/// Serves one request with rmcp: stateless, JSON answers, no Host check (the Origin check
/// is done before).
async fn serve_rmcp(
    gateway: Gateway,
    request: http::Request<Full<Bytes>>,
    max_body: usize,
) -> Response {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(max_body)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    service
        .handle(request)
        .await
        .map(|body| body.boxed_unsync())
}

// === impl Exchange ===

impl Exchange {
    /// An exchange of the request `request_id`, its span `traceparent`.
    pub(crate) fn new(request_id: String, traceparent: Option<String>) -> Exchange {
        Exchange {
            request_id,
            traceparent,
            called: Mutex::default(),
            failure: Mutex::default(),
        }
    }

    /// Why a tool call of this request got no answer from its service (the first such
    /// call's router error, `-32003 service … did not answer …`): the request then counts as
    /// the router's failure in the traffic, as a routed `/rpc` call does, and its access
    /// line says why.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn failed(&self, why: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.get_or_insert(why);
    }

    /// The service a tool call went to, and how long it took to answer (the longest, if
    /// there were several).
    pub(crate) fn called(&self) -> Option<Called> {
        self.called
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A tool call goes to `service`: the request is that service's from now on, even if its
    /// client leaves before the answer.
    fn calling(&self, service: &str) {
        let mut called = self.called.lock().unwrap_or_else(|e| e.into_inner());
        if called.is_none() {
            *called = Some(Called {
                service: service.to_owned(),
                upstream: None,
            });
        }
    }

    fn note(&self, service: &str, upstream: Duration) {
        let mut called = self.called.lock().unwrap_or_else(|e| e.into_inner());
        if called.as_ref().is_none_or(|c| c.upstream < Some(upstream)) {
            *called = Some(Called {
                service: service.to_owned(),
                upstream: Some(upstream),
            });
        }
    }
}

// === impl ToolCache ===

impl ToolCache {
    /// True if the gateway has served the tools of service `name` (since the cache last
    /// started over).
    fn has_served(&self, name: &str) -> bool {
        let served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        served.contains(name)
    }

    /// The index of `scope` if it was built over this very table and catalog.
    fn unchanged(
        &self,
        scope: &Scope,
        table: &Arc<Table>,
        catalog: &Arc<Catalog>,
    ) -> Option<Arc<Index>> {
        let map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        map.get(scope)
            .filter(|b| {
                std::ptr::eq(b.table.as_ptr(), Arc::as_ptr(table))
                    && std::ptr::eq(b.catalog.as_ptr(), Arc::as_ptr(catalog))
            })
            .map(|b| b.index.clone())
    }

    /// The index of `scope` if it was built from `sources`; remembers that this table and
    /// catalog hold them.
    fn same_sources(
        &self,
        scope: &Scope,
        sources: &[Source],
        table: &Arc<Table>,
        catalog: &Arc<Catalog>,
    ) -> Option<Arc<Index>> {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let built = map.get_mut(scope).filter(|b| b.sources == sources)?;
        built.table = Arc::downgrade(table);
        built.catalog = Arc::downgrade(catalog);
        Some(built.index.clone())
    }

    /// Builds the index of `scope` from `sources` and keeps it. Converting a document (parse,
    /// expand, check every schema) is the slow part: it happens once per fingerprint, and
    /// never under a lock.
    fn build(
        &self,
        scope: &Scope,
        sources: Vec<Source>,
        table: &Arc<Table>,
        catalog: &Arc<Catalog>,
    ) -> Arc<Index> {
        let parts: Vec<(&Source, Arc<[MethodTool]>)> = sources
            .iter()
            .filter_map(|s| Some((s, self.service_tools(s, catalog)?)))
            .collect();
        let index = Arc::new(Index::build(scope, &parts));
        drop(parts);
        self.forget_gone(table);
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let built = Built {
            sources,
            index: index.clone(),
            table: Arc::downgrade(table),
            catalog: Arc::downgrade(catalog),
        };
        map.insert(scope.clone(), built);
        index
    }

    /// Drops the tools and the endpoint of every service no longer in `table`.
    fn forget_gone(&self, table: &Table) {
        let here = |name: &str| table.service(name).is_some();
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services.retain(|name, _| here(name));
        drop(services);
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        endpoints.retain(|scope, _| match scope {
            Scope::All => true,
            Scope::Service(name) => here(name),
        });
    }

    /// Whether `service` had tools here once (its document was converted): a tool named
    /// after it is one of its own, not a typo.
    fn had_tools(&self, service: &str) -> bool {
        self.has_served(service)
    }

    /// The tools of the document `source` names, converted once per fingerprint.
    fn service_tools(&self, source: &Source, catalog: &Catalog) -> Option<Arc<[MethodTool]>> {
        {
            let map = self.services.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(&source.service) {
                if c.fingerprint == source.fingerprint {
                    return Some(c.tools.clone());
                }
            }
        }
        let raw = catalog.get(&source.service)?.document.as_ref()?;
        let doc: Value = serde_json::from_str(raw.get()).ok()?;
        let tools: Arc<[MethodTool]> = tools::service_tools(&source.service, &doc).into();
        {
            let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
            if served.len() >= MAX_CACHED {
                served.clear();
            }
            served.insert(source.service.clone());
        }
        let mut map = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let converted = Converted {
            fingerprint: source.fingerprint.clone(),
            tools: tools.clone(),
        };
        map.insert(source.service.clone(), converted);
        Some(tools)
    }
}

/// What `scope`'s index is built from: every service in scope with a document, sorted by
/// name (names are given in that order, so they do not change when a service goes down).
fn sources(scope: &Scope, table: &Table, catalog: &Catalog) -> Vec<Source> {
    table
        .services
        .iter()
        .filter(|s| match scope {
            Scope::All => true,
            Scope::Service(name) => s.name == *name,
        })
        .filter_map(|s| {
            let entry = catalog.get(&s.name)?;
            entry.document.as_ref()?;
            Some(Source {
                service: s.name.clone(),
                fingerprint: (entry.spec.fingerprint.as_deref().unwrap_or_default()).to_owned(),
                listed: matches!(scope, Scope::Service(_)) || s.status == ServiceStatus::Healthy,
            })
        })
        .collect()
}

// === impl Index ===

impl Index {
    fn build(scope: &Scope, parts: &[(&Source, Arc<[MethodTool]>)]) -> Index {
        let flat: Vec<(&Source, &MethodTool)> = parts
            .iter()
            .flat_map(|(s, tools)| tools.iter().map(move |t| (*s, t)))
            .collect();
        let names = match scope {
            Scope::Service(_) => flat.iter().map(|(_, t)| t.name.clone()).collect(),
            Scope::All => {
                let entries: Vec<(&str, &str, &str)> = flat
                    .iter()
                    .map(|(s, t)| {
                        (
                            s.service.as_str(),
                            t.name.as_str(),
                            t.target.method.as_str(),
                        )
                    })
                    .collect();
                tools::merged_names(&entries)
            }
        };
        let mut by_name = HashMap::with_capacity(flat.len());
        let tools = flat
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(i, ((source, t), name))| {
                by_name.insert(name.clone(), i);
                let mut tool = Tool::new(
                    name,
                    t.description.clone(),
                    Arc::new(t.input_schema.clone()),
                );
                if let Some(output) = &t.output_schema {
                    tool = tool.with_raw_output_schema(Arc::new(output.clone()));
                }
                Entry {
                    tool,
                    target: Arc::new(t.target.clone()),
                    checks: tools::Checks::default(),
                    listed: source.listed,
                }
            })
            .collect();
        Index { tools, by_name }
    }

    /// The names of the listed tools, to tell when the list changed.
    fn listed_names(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|e| e.listed)
            .map(|e| e.tool.name.as_ref())
            .collect()
    }
}

// === impl Gateway ===

impl Gateway {
    /// The `data` of an error the gateway makes: the request's id, as every error the router
    /// makes names it.
    fn error_data(&self) -> Option<Value> {
        let id = &self.exchange.request_id;
        (!id.is_empty()).then(|| serde_json::json!({"request_id": id}))
    }

    /// The endpoint's index over the current table and catalog: from the cache, else built
    /// on a blocking thread (a large document takes a while to convert).
    async fn index(&self) -> Arc<Index> {
        let (table, catalog) = (self.shared.registry.table(), self.shared.registry.catalog());
        self.index_over(table, catalog).await
    }

    /// The endpoint's index over `table` and `catalog`.
    async fn index_over(&self, table: Arc<Table>, catalog: Arc<Catalog>) -> Arc<Index> {
        if let Some(index) = self.cache.unchanged(&self.scope, &table, &catalog) {
            return index;
        }
        let sources = sources(&self.scope, &table, &catalog);
        if let Some(index) = self
            .cache
            .same_sources(&self.scope, &sources, &table, &catalog)
        {
            return index;
        }
        let (cache, scope) = (self.cache.clone(), self.scope.clone());
        tokio::task::spawn_blocking(move || cache.build(&scope, sources, &table, &catalog))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The index once every service in scope has been looked at: right after the router
    /// starts, or a service appears, its spec may not be fetched yet, and a client that
    /// lists then would see no tools (a handshake client would never hear of them). Waits
    /// for the first scan and for the first fetch of each such service, each bounded as
    /// `router.spec` bounds it.
    async fn ready_index(&self) -> Arc<Index> {
        let registry = &self.shared.registry;
        registry.wait_ready(self.shared.upstream_timeout).await;
        let (table, catalog) = (registry.table(), registry.catalog());
        let unseen: Vec<&str> = table
            .services
            .iter()
            .filter(|s| match &self.scope {
                Scope::All => s.status == ServiceStatus::Healthy,
                Scope::Service(name) => s.name == *name,
            })
            .filter(|s| catalog.get(&s.name).is_none())
            .map(|s| s.name.as_str())
            .collect();
        if unseen.is_empty() {
            return self.index_over(table.clone(), catalog).await;
        }
        futures_util::future::join_all(unseen.into_iter().map(|s| registry.refresh_catalog(s)))
            .await;
        self.index().await
    }

    /// True if `cursor` can be one this endpoint gave: a service's endpoint pages only
    /// through its own service's tools.
    fn made_here(&self, cursor: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Service(s) => cursor.split_once('/').is_some_and(|(of, _)| of == s),
        }
    }

    /// Why `name` is not a tool here, in words an agent can act on: it is unknown (a service
    /// that is not in the table is never said to be "gone"; it may never have existed).
    fn unknown_tool(&self, name: &str) -> ErrorData {
        let how = match &self.scope {
            Scope::Service(s) if self.shared.registry.table().service(s).is_none() => gone(s),
            Scope::Service(s) => format!("tools/list shows the tools of service {s} now"),
            // A merged name starts with its service's: say when that service left.
            Scope::All => match name.split_once("__") {
                Some((s, _)) if self.cache.had_tools(s) && self.shared.registry.table().service(s).is_none() => gone(s),
                _ => "tools/list shows the tools this endpoint has now, named {service}__{method}; `hero_router list` shows the services".to_owned(),
            },
        };
        let name = crate::json::cut_str(name, 256);
        ErrorData::invalid_params(format!("unknown tool {name}: {how}"), self.error_data())
    }

    /// Runs the tool `name` (the index's `entry`) with `arguments`: they are checked against
    /// its `inputSchema`, sent as a routed call, and its result checked against its
    /// `outputSchema`. The one way a tool is called, for rmcp and the fast path alike.
    async fn run(
        &self,
        name: &str,
        entry: &Entry,
        arguments: Option<&JsonObject>,
    ) -> CallToolResult {
        let target = &entry.target;
        let empty = JsonObject::new();
        let checked = entry.checks.arguments(
            &entry.tool.input_schema,
            arguments.unwrap_or(&empty),
            &target.takes(),
        );
        let params = match checked.and_then(|()| target.params(arguments)) {
            Ok(params) => params,
            Err(why) => return tool_error(format!("{name}: {why}")),
        };
        let result = self.call(target, params).await;
        let (Some(structured), Some(schema)) =
            (&result.structured_content, &entry.tool.output_schema)
        else {
            return result;
        };
        let Err(why) = entry.checks.result(schema, structured) else {
            return result;
        };
        if let Some(suppressed) = MISMATCH.should_log() {
            tracing::warn!(
                service = %target.service,
                method = %target.method,
                suppressed,
                "a result does not match the tool's outputSchema ({why}); sent as an error result with the text"
            );
        }
        // Clients check a result against the schema they were given and throw when it does
        // not fit, or when a tool with a schema answers without structured content; they
        // check neither on an error result. So the agent gets the result as the service
        // sent it, as text, in an error result that says what is wrong.
        let mut content = vec![ContentBlock::text(format!(
            "service {} answered {} with a result that does not match the tool's outputSchema ({why}); the result as the service sent it follows",
            target.service, target.method
        ))];
        content.extend(result.content);
        CallToolResult::error(content)
    }

    /// Calls `target` with `params` as a routed call (the router's own methods in-process).
    async fn call(&self, target: &Target, params: Option<Value>) -> CallToolResult {
        let params = params.map(|p| serde_json::value::to_raw_value(&p));
        let params = match params.transpose() {
            Ok(p) => p,
            Err(e) => return tool_error(format!("the arguments cannot be sent: {e}")),
        };
        let meta = CallMeta {
            request_id: &self.exchange.request_id,
            traceparent: self.exchange.traceparent.as_deref(),
            methods: false,
        };
        if target.service != OWN_SERVICE {
            self.exchange.calling(&target.service);
        }
        let asked = tokio::time::Instant::now();
        let called = self
            .rpc
            .call(&target.service, &target.method, params.as_deref(), &meta)
            .await;
        if target.service != OWN_SERVICE {
            self.exchange.note(&target.service, asked.elapsed());
        }
        let result = match called {
            Ok(result) => result,
            Err(e) => {
                if let CallError::Router { code, message, .. } = &e {
                    self.exchange.failed(format!("{code} {message}"));
                }
                return tool_error(error_message(target, &e));
            }
        };
        // The text is the result as the service wrote it; only the structured copy is parsed.
        let text = result.get();
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut out = CallToolResult::success(vec![ContentBlock::text(text)]);
        out.structured_content = target.structured(&value);
        out
    }
}

/// At most one log line a second for results that do not match their schema.
static MISMATCH: RateLimit = RateLimit::new();

// === impl ServerHandler for Gateway ===

impl ServerHandler for Gateway {
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&[
            ProtocolVersion::V_2026_07_28,
            ProtocolVersion::V_2025_11_25,
            ProtocolVersion::V_2025_06_18,
        ])
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let (name, instructions) = match &self.scope {
            Scope::All => (
                "hero_router".to_owned(),
                "The Hero services of this node. Each tool is a service method, named {service}__{method}.".to_owned(),
            ),
            Scope::Service(s) if self.shared.registry.table().service(s).is_none() => (
                format!("hero_router/{s}"),
                gone(s),
            ),
            Scope::Service(s) => {
                let catalog = self.shared.registry.catalog();
                let about = catalog
                    .get(s)
                    .and_then(|e| e.info.description.as_deref().or(e.manifest.description.as_deref()))
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("The methods of the Hero service {s}."));
                (format!("hero_router/{s}"), about)
            }
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(name, crate::VERSION))
            .with_instructions(instructions)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        // The handshake revisions push notifications on a session's GET stream, and the
        // gateway keeps no sessions: such a client learns of changes by listing again.
        if let Some(tools) = result.capabilities.tools.as_mut() {
            tools.list_changed = Some(false);
        }
        Ok(result)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut tables = self.shared.registry.tables();
        let mut catalogs = self.shared.registry.catalogs();
        let names = |index: &Index| -> Vec<String> {
            index
                .listed_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let mut last = names(&*self.index().await);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = tables.changed() => if changed.is_err() { return Ok(()) },
                changed = catalogs.changed() => if changed.is_err() { return Ok(()) },
            }
            let now = names(&*self.index().await);
            if now != last {
                last = now;
                if context.sink().notify_tool_list_changed().await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let index = self.ready_index().await;
        let listed: Vec<&Entry> = index.tools.iter().filter(|e| e.listed).collect();
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => match page_start(&services(&listed), &c).filter(|_| self.made_here(&c)) {
                Some(n) => n,
                None => {
                    let c = crate::json::cut_str(&c, 256);
                    return Err(ErrorData::invalid_params(
                        format!(
                            "invalid cursor {c:?}: use the nextCursor of the previous page, or none for the first"
                        ),
                        self.error_data(),
                    ));
                }
            },
        };
        let end = (start + PAGE).min(listed.len());
        let mut result = ListToolsResult::with_all_items(
            listed[start..end].iter().map(|e| e.tool.clone()).collect(),
        );
        if end < listed.len() {
            result.next_cursor = Some(cursor_after(&services(&listed), end));
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let index = self.ready_index().await;
        let Some(&i) = index.by_name.get(request.name.as_ref()) else {
            // No service was asked: the router's failure in the traffic, as a routed call to
            // a service that is not there (`-32001`) is.
            let error = self.unknown_tool(&request.name);
            self.exchange
                .failed(format!("{} {}", error.code.0, error.message));
            return Err(error);
        };
        let entry = &index.tools[i];
        let result = self
            .run(&request.name, entry, request.arguments.as_ref())
            .await;
        Ok(result.into())
    }
}

/// The service of each listed tool, in list order (by service name).
fn services<'a>(listed: &[&'a Entry]) -> Vec<&'a str> {
    listed.iter().map(|e| e.target.service.as_str()).collect()
}

/// The cursor of the page that starts at tool `end` of a list whose tools belong to
/// `services` (sorted): the service of the tool before it and how many of that service's
/// tools came before (`svc/3`). The next page then starts after that point even if services
/// before it came or went meanwhile: a client paging while the table changes misses no tool
/// that stayed, and its cursor stays valid.
fn cursor_after(services: &[&str], end: usize) -> String {
    let service = services[end - 1];
    let of_service = services[..end]
        .iter()
        .rev()
        .take_while(|s| **s == service)
        .count();
    format!("{service}/{of_service}")
}

/// Where the page of `cursor` (made by [`cursor_after`]) starts in a list whose tools belong
/// to `services` (sorted); `None` if it is no such cursor.
fn page_start(services: &[&str], cursor: &str) -> Option<usize> {
    let (service, done) = cursor.split_once('/')?;
    if !crate::registry::names::valid_service_name(service)
        || done.is_empty()
        || !done.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let done: usize = done.parse().ok()?;
    let first = services.partition_point(|s| *s < service);
    let of_service = services[first..]
        .iter()
        .take_while(|s| **s == service)
        .count();
    Some(first + done.min(of_service))
}

/// Why the endpoint of service `s` lists no tools: it left the router's table.
fn gone(s: &str) -> String {
    format!(
        "service {s} is not running now: its socket is gone from the router's table. Its tools come back when it does; `hero_router list` shows the services there are"
    )
}

/// A tool result with `isError: true` and `message` as its text.
fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// What a failed tool call means, for the agent that made it. A service's own error is
/// shown as the service sent it, whatever its code; only an error the router made (no such
/// service, down, busy, a timeout, an answer that is not JSON-RPC) uses the router's words.
fn error_message(target: &Target, error: &CallError) -> String {
    let service = &target.service;
    match error {
        CallError::Service { error, .. } => {
            let data = error
                .data
                .as_deref()
                .map(|d| format!(" (data: {d})"))
                .unwrap_or_default();
            let message = &error.message;
            match error.code {
                -32602 => format!(
                    "service {service} rejected the arguments: {message}{data}. Check them against the tool's inputSchema."
                ),
                -32601 => format!(
                    "service {service} does not implement {}, though its spec lists it: {message}",
                    target.method
                ),
                code => format!("service {service} answered error {code}: {message}{data}"),
            }
        }
        CallError::Router {
            unanswered: Some(crate::upstream::SendError::TooLarge { .. }),
            message,
            ..
        } => format!(
            "{message}. The answer will be as large again: ask for less (narrower arguments), or raise the router's --max-body."
        ),
        CallError::Router { code, message, .. } => match *code {
            NO_SUCH_SERVICE => format!(
                "{message} (it is not in the router's table now). Start it again, or list the tools again to see what is there."
            ),
            NOT_LIVE => format!(
                "{message}. The service is down or overloaded; retry once it runs again (`hero_router list` shows its state)."
            ),
            UPSTREAM_TIMEOUT => format!(
                "{message}. It may still be working on the call; retry later, or with a smaller request."
            ),
            BAD_UPSTREAM => format!(
                "{message}. The service's log may say why; retrying helps only if the failure was passing."
            ),
            _ => message.clone(),
        },
    }
}

#[cfg(test)]
mod tests;
