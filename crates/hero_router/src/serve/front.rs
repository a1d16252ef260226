//! The router's HTTP surface: shared state, and the one routing decision for every request.
//!
//! Endpoints on every listener: `POST /rpc` (docs/json-rpc.md), `GET /health`,
//! `GET /api/services`, `GET /metrics` (`HEAD` too).
//! On `rpc.sock` also: `GET /openrpc.json`, `GET /.well-known/heroservice.json`; anything else
//! there is 404.
//! The service listeners (`--listen`) also: the docs (`/docs/…`, generated clients included), the MCP gateway (`/mcp…`),
//! and everything else is proxied: `/{service}/{kind}/{rest…}` (docs/http.md#proxy), except
//! `/hero_router/…`: the router never relays to its own sockets. Their `GET /` says where the
//! dashboard is.
//! The admin listeners (`--admin-listen`) also: the docs and the dashboard (`GET /`, `/api/…`),
//! and nothing of any service: the dashboard's origin is its own
//! (docs/access-and-security.md#admin-origin).
//! `admin.sock` serves all of it (a Unix socket has no browser origin to share).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::apps::{AppTarget, Apps};
use crate::access::Access;
use crate::clients::Lang;
use crate::config::Config;
use crate::docs::Page;
use crate::docs::cache::{Busy, Status};
use crate::docs::pages::{self, Format};
use crate::mcp::Scope;
use crate::metrics::Metrics;
use crate::proxy::error::ProxyError;
use crate::proxy::{Target, path, resolve};
use crate::registry::Registry;
use crate::registry::names::{OWN_SERVICE, valid_service_name};
use crate::registry::table::Table;
use crate::rpc::Rpc;
use crate::shared::Shared;
use crate::upstream::{Inflight, Pool};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `hero_router/rpc.sock`: JSON-RPC and the standard Hero endpoints, no proxying.
    RpcSocket,
    /// `hero_router/admin.sock`: everything, proxying and the dashboard.
    AdminSocket,
    /// A `--listen` TCP listener: services, `/rpc`, `/mcp`, `/docs`; no dashboard.
    Service,
    /// An `--admin-listen` TCP listener: the dashboard and its API, `/rpc`, `/docs`; no service.
    Admin,
}

impl Role {
    /// The listener's name in the access log.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Role::RpcSocket => "rpc.sock",
            Role::AdminSocket => "admin.sock",
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }
}

/// State shared by every listener.
pub(crate) struct Front {
    /// The allow-list, checked before anything else on TCP.
    pub(super) access: Arc<Access>,
    /// The registry, the upstream pool and their limits, as every part of the front shares
    /// them.
    pub(super) shared: Arc<Shared>,
    /// The JSON-RPC front end (`POST /rpc`).
    pub(super) rpc: Arc<Rpc>,
    /// The router's applications (dashboard, MCP).
    pub(super) apps: Apps,
    /// `--trust-forwarded-headers`.
    pub(super) trust_forwarded_headers: bool,
    metrics: Metrics,
    /// The names the router answers to on TCP (the Host check).
    pub(super) names: crate::browser::Names,
    /// Where the dashboard is, for the service listener's `GET /`: the admin listener's URL,
    /// else admin.sock.
    pub(super) dashboard_at: String,
    /// The access log (`--access-log`).
    pub(super) access_log: crate::traffic::AccessLog,
}

/// Where a router's listeners are, as bound: the names it answers to and the URLs it points
/// people to are made from these.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// The service listeners.
    pub service: Vec<std::net::SocketAddr>,
    /// The admin listeners.
    pub admin: Vec<std::net::SocketAddr>,
    /// `<root>/hero_router/admin.sock`.
    pub admin_sock: std::path::PathBuf,
}

// === impl Front ===

impl Front {
    /// Builds the shared state around the registry, for listeners bound at `bound`.
    pub(crate) fn new(
        registry: Registry,
        cfg: &Config,
        bound: &Bound,
        token: CancellationToken,
    ) -> Front {
        let busy_wait = cfg
            .upstream_timeout
            .saturating_sub(Duration::from_millis(50));
        let inflight = Inflight::new(cfg.max_inflight_per_service);
        let pool = Arc::new(Pool::new(busy_wait, inflight));
        let shared = Arc::new(Shared {
            registry,
            pool: pool.clone(),
            upstream_timeout: cfg.upstream_timeout,
            max_body: cfg.max_body,
            started: Instant::now(),
            listeners: serde_json::json!({"service": bound.service, "admin": bound.admin}),
            traffic: Arc::default(),
        });
        let rpc = Arc::new(Rpc::new(shared.clone()));
        let apps = Apps::new(crate::dashboard::State {
            rpc: rpc.clone(),
            shared: shared.clone(),
            hub: crate::dashboard::Hub::start(shared.clone(), token),
            service_url: bound.service.first().map(|a| format!("http://{a}")),
        });
        let all: Vec<_> = bound.service.iter().chain(&bound.admin).copied().collect();
        let names = crate::browser::Names::new(&all, &cfg.server_names);
        let dashboard_at = match bound.admin.first() {
            Some(a) => format!("http://{a}/"),
            None => format!(
                "{} (the admin TCP listener is off)",
                bound.admin_sock.display()
            ),
        };
        let access = Arc::new(Access::new(
            cfg.access.allow.clone(),
            cfg.access.file_entries.clone(),
            cfg.access.trusted_proxies.clone(),
        ));
        Front {
            access,
            rpc,
            apps,
            shared,
            trust_forwarded_headers: cfg.trust_forwarded_headers,
            metrics: Metrics::default(),
            names,
            dashboard_at,
            access_log: crate::traffic::AccessLog::start(
                cfg.access_log.format,
                cfg.access_log.query,
            ),
        }
    }

    /// The upstream pool every request to a service goes through (the catalog fetcher's
    /// too).
    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.shared.pool.clone()
    }

    /// The allow-list in force (the access file's watcher reloads it).
    pub(crate) fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// The metrics, fed by the caller with scanner events.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// An endpoint's content type and body.
    pub(super) fn endpoint(&self, e: Endpoint) -> (&'static str, String) {
        const JSON: &str = "application/json";
        match e {
            Endpoint::Health => (JSON, self.shared.health().to_string()),
            Endpoint::Services => (JSON, self.shared.registry.services_json().get().to_owned()),
            Endpoint::Metrics => (
                "text/plain; version=0.0.4",
                self.metrics.render(&self.shared.registry.table()),
            ),
            Endpoint::OpenRpc => (JSON, crate::rpc::openrpc().to_string()),
            Endpoint::Manifest => (JSON, crate::rpc::manifest().to_string()),
            Endpoint::Landing { html: false } => (
                JSON,
                serde_json::json!({
                    "service": "hero_router",
                    "dashboard": self.dashboard_at,
                    "rpc": "/rpc",
                    "mcp": "/mcp",
                    "docs": "/docs/",
                    "health": "/health",
                })
                .to_string(),
            ),
            Endpoint::Landing { html: true } => {
                let at = escape_html(&self.dashboard_at);
                let link = if self.dashboard_at.starts_with("http") {
                    format!("<a href=\"{at}\">{at}</a>")
                } else {
                    at
                };
                (
                    "text/html; charset=utf-8",
                    format!(
                        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                         <title>hero_router</title></head><body>\n<h1>hero_router</h1>\n\
                         <p>This is the service listener: services at <code>/{{service}}/{{kind}}/</code>, \
                         JSON-RPC at <code>POST /rpc</code>, MCP at <code>/mcp</code>, \
                         <a href=\"/docs/\">API docs</a>.</p>\n\
                         <p>The dashboard is on the admin listener: {link}</p>\n</body></html>\n"
                    ),
                )
            }
        }
    }
}

// === docs ===

impl Front {
    /// A docs page's answer, rendered from the catalog; 404 for a service that is unknown
    /// or has no spec. A service's page comes from the docs cache, rendered off the
    /// connection threads on a miss ([`crate::docs::cache`]); 503 when its queue is full.
    pub(super) async fn docs(&self, page: &DocsPage) -> Result<DocsAnswer, ProxyError> {
        const HTML: &str = "text/html; charset=utf-8";
        let registry = &self.shared.registry;
        let (table, catalog) = (registry.table(), registry.catalog());
        let (name, format) = match page {
            DocsPage::Index => {
                let entries = pages::index_entries(&table, &catalog);
                let link = |name: &str| format!("/docs/{name}");
                let index = crate::docs::index_html(&entries, &link);
                return Ok(DocsAnswer::text(HTML, index));
            }
            DocsPage::Html(n) => (n, Some(Format::Html)),
            DocsPage::Markdown(n) => (n, Some(Format::Markdown)),
            DocsPage::Spec(n) | DocsPage::Client(n, _) => (n, None),
        };
        let Some(service) = table.service(name) else {
            return Err(ProxyError::NoService {
                service: name.clone(),
            });
        };
        let entry = catalog.get(name);
        let Some(doc) = entry.and_then(|e| e.document.clone()) else {
            let reason = catalog.no_spec_reason(service).to_string();
            return Err(ProxyError::NoSpec {
                service: name.clone(),
                reason,
            });
        };
        let fingerprint = entry.and_then(|e| e.spec.fingerprint.as_deref().map(str::to_owned));
        if let DocsPage::Client(_, lang) = page {
            let (module, status) = crate::clients::served(*lang, name.clone(), doc, fingerprint)
                .await
                .map_err(|Busy| ProxyError::Busy {
                    service: name.clone(),
                })?;
            return Ok(DocsAnswer {
                content_type: lang.content_type(),
                body: DocsBody::Page(module),
                cache: Some(status),
            });
        }
        let Some(format) = format else {
            return Ok(DocsAnswer::text("application/json", doc.get().to_owned()));
        };
        let shown = pages::shown(&catalog.view(service));
        let (page, status) = pages::served(shown, doc, fingerprint, format)
            .await
            .map_err(|Busy| ProxyError::Busy {
                service: name.clone(),
            })?;
        let content_type = match format {
            Format::Html => HTML,
            Format::Markdown => "text/markdown; charset=utf-8",
        };
        Ok(DocsAnswer {
            content_type,
            body: DocsBody::Page(page),
            cache: Some(status),
        })
    }
}

/// `text` with the characters HTML gives meaning escaped.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a docs request is answered with.
pub(super) struct DocsAnswer {
    /// Its `content-type`.
    pub(super) content_type: &'static str,
    /// The body.
    pub(super) body: DocsBody,
    /// How the docs cache answered, for a service's page.
    pub(super) cache: Option<Status>,
}

/// A docs body: made for this request, or a page of the docs cache.
pub(super) enum DocsBody {
    /// Made for this request (the index, a document).
    Text(String),
    /// A service's page, shared with the cache.
    Page(Arc<Page>),
}

impl DocsAnswer {
    fn text(content_type: &'static str, body: String) -> DocsAnswer {
        DocsAnswer {
            content_type,
            body: DocsBody::Text(body),
            cache: None,
        }
    }
}

impl DocsBody {
    /// The body's text.
    pub(super) fn as_str(&self) -> &str {
        match self {
            DocsBody::Text(text) => text,
            DocsBody::Page(page) => &page.text,
        }
    }
}

/// The router's own `GET` endpoints besides `/rpc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `GET /health`.
    Health,
    /// `GET /api/services`.
    Services,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openrpc.json` (rpc.sock only).
    OpenRpc,
    /// `GET /.well-known/heroservice.json` (rpc.sock only).
    Manifest,
    /// `GET /` on a service listener: where the dashboard is (HTML for a browser, else JSON).
    Landing {
        /// The client accepts HTML.
        html: bool,
    },
}

impl Endpoint {
    /// The endpoint at `path` on a listener of `role`.
    fn at(path: &str, role: Role) -> Option<Endpoint> {
        match (path, role) {
            ("/health", _) => Some(Endpoint::Health),
            ("/api/services", _) => Some(Endpoint::Services),
            ("/metrics", _) => Some(Endpoint::Metrics),
            ("/openrpc.json", Role::RpcSocket) => Some(Endpoint::OpenRpc),
            ("/.well-known/heroservice.json", Role::RpcSocket) => Some(Endpoint::Manifest),
            _ => None,
        }
    }
}

/// A docs page (docs/docs-and-mcp.md#docs-over-http), on TCP and admin.sock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DocsPage {
    /// `GET /docs/`: every service, linked to its page if it has a document.
    Index,
    /// `GET /docs/{service}`: its HTML docs.
    Html(String),
    /// `GET /docs/{service}.md`: its Markdown docs.
    Markdown(String),
    /// `GET /docs/{service}/openrpc.json`: the cached document.
    Spec(String),
    /// `GET /docs/{service}/client.py` and `/client.ts`: a client generated from it.
    Client(String, Lang),
}

impl DocsPage {
    /// The page at `rest`, the path after `/docs`; `None` if there is none.
    fn at(rest: &str) -> Option<DocsPage> {
        let page = match rest {
            "" | "/" => return Some(DocsPage::Index),
            _ => rest.strip_prefix('/')?,
        };
        let (name, make): (&str, fn(String) -> DocsPage) =
            if let Some(name) = page.strip_suffix("/client.py") {
                (name, |n| DocsPage::Client(n, Lang::Python))
            } else if let Some(name) = page.strip_suffix("/client.ts") {
                (name, |n| DocsPage::Client(n, Lang::TypeScript))
            } else if let Some(name) = page.strip_suffix("/openrpc.json") {
                (name, DocsPage::Spec)
            } else if let Some(name) = page.strip_suffix(".md") {
                (name, DocsPage::Markdown)
            } else {
                (page.strip_suffix('/').unwrap_or(page), DocsPage::Html)
            };
        valid_service_name(name).then(|| make(name.to_owned()))
    }
}

/// Where a request goes.
pub(super) enum Route<'a> {
    /// `POST /rpc`.
    Rpc,
    /// One of the router's own endpoints.
    Own(Endpoint),
    /// A docs page.
    Docs(DocsPage),
    /// One of the router's applications (dashboard, MCP).
    App(AppTarget),
    /// A service socket.
    Proxy {
        /// The parsed route.
        route: path::Route<'a>,
        /// The socket it resolved to.
        target: Target,
    },
    /// An answer the router makes itself.
    Error(ProxyError),
    /// A dashboard path on a service listener: the answer says where the dashboard is.
    OnAdminListener,
    /// A route that needs the table (a proxied request, `GET /api/services`, a docs page),
    /// but the first scan has not finished: wait for it and decide again.
    NotReady,
}

/// Where the first full scan is, for a request whose answer needs the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// It is in: resolve against the table.
    Done,
    /// Not yet, and the request has not waited for it: wait ([`Route::NotReady`]).
    Pending,
    /// Still not, after the request waited `--upstream-timeout` for it: an empty or partial
    /// table would read as "no such service", so the answer says the router is starting.
    GaveUp,
}

impl Scan {
    /// `route` unless the table is not there yet.
    fn gate<'a>(self, table: &Table, route: impl FnOnce() -> Route<'a>) -> Route<'a> {
        match self {
            Scan::Done => route(),
            Scan::Pending => Route::NotReady,
            Scan::GaveUp => Route::Error(ProxyError::Starting {
                root: table.root.display().to_string(),
            }),
        }
    }
}

/// The one routing decision, for every request on every listener.
pub(super) fn route<'a>(
    method: &str,
    path: &'a str,
    query: Option<&'a str>,
    role: Role,
    table: &Table,
    scan: Scan,
) -> Route<'a> {
    let not_allowed = |allow| {
        Route::Error(ProxyError::MethodNotAllowed {
            method: method.to_owned(),
            path: path.to_owned(),
            allow,
        })
    };
    if path == "/rpc" {
        return match method {
            "POST" => Route::Rpc,
            _ => not_allowed("POST"),
        };
    }
    if let Some(endpoint) = Endpoint::at(path, role) {
        return match method {
            "GET" | "HEAD" if endpoint == Endpoint::Services => {
                scan.gate(table, || Route::Own(endpoint))
            }
            "GET" | "HEAD" => Route::Own(endpoint),
            _ => not_allowed("GET, HEAD"),
        };
    }
    if role == Role::RpcSocket {
        return Route::Error(ProxyError::NotOnRpcSocket);
    }
    // `/`, `/docs`, `/api` and `/mcp` belong to the router, whatever services are called.
    let after_slash = &path[1.min(path.len())..];
    let first = match memchr::memchr(b'/', after_slash.as_bytes()) {
        Some(end) => &after_slash[..end],
        None => after_slash,
    };
    let dashboard = role != Role::Service;
    if dashboard && (path == "/" || first == "api") {
        return match crate::dashboard::Page::at(path) {
            Some((page, allow)) if crate::dashboard::Page::allows(allow, method) => {
                Route::App(AppTarget::Dashboard(page))
            }
            Some((_, allow)) => not_allowed(allow),
            None => Route::Error(ProxyError::NoRoute),
        };
    }
    match first {
        _ if path == "/" => {
            return match method {
                "GET" | "HEAD" => Route::Own(Endpoint::Landing { html: false }),
                _ => not_allowed("GET, HEAD"),
            };
        }
        "api" => return Route::OnAdminListener,
        "mcp" if role == Role::Admin => return Route::Error(ProxyError::NotOnAdminListener),
        "mcp" => {
            return match Scope::at(&path[4..]) {
                Some(Ok(scope)) => Route::App(AppTarget::Mcp(scope)),
                Some(Err(e)) => Route::Error(ProxyError::BadPath(e)),
                None => Route::Error(ProxyError::NoRoute),
            };
        }
        "docs" => {
            return match (DocsPage::at(&path[5..]), method) {
                (Some(page), "GET" | "HEAD") => scan.gate(table, || Route::Docs(page)),
                (Some(_), _) => not_allowed("GET, HEAD"),
                (None, _) => Route::Error(ProxyError::NoDocsPage),
            };
        }
        _ => {}
    }
    if role == Role::Admin {
        // No service's page may share the dashboard's origin.
        return Route::Error(ProxyError::NotOnAdminListener);
    }
    let route = match path::parse(path, query) {
        Ok(Some(route)) => route,
        Ok(None) => return Route::Error(ProxyError::NoRoute),
        Err(e) => return Route::Error(ProxyError::BadPath(e)),
    };
    if route.service == OWN_SERVICE {
        return Route::Error(ProxyError::OwnService);
    }
    if matches!(method, "GET" | "HEAD") && !path.ends_with('/') && route.path == "/" {
        let location = match query {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        return Route::Error(ProxyError::AddSlash { location });
    }
    scan.gate(table, || {
        match resolve(table, &route.service, &route.kind) {
            Ok(target) => Route::Proxy { route, target },
            Err(e) => Route::Error(e),
        }
    })
}

#[cfg(test)]
mod tests;
