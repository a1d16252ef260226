//! The admin dashboard (docs/dashboard.md), on TCP and admin.sock.
//!
//! Endpoints:
//! - `GET /`: the page, rendered on the server with the table as it is (so it shows something
//!   at the first byte and without JavaScript), then kept live by a small script reading
//!   `/api/events`; every asset is inside the page, nothing is fetched from elsewhere;
//! - `GET /api/events`: server-sent events, see [`hub`];
//! - `GET /api/dashboard/service/{name}`: one service's detail as JSON (sockets and their
//!   recent history, manifest, spec state, methods with params, links); the methods are built
//!   off the connection threads and cached by document, as the docs are;
//! - `POST /api/scan`: a full scan now (`router.scan`).
//!
//! The page calls methods through `POST /rpc` and reads `/health` and `/metrics`, as any
//! client would. It is served on the admin listener and admin.sock only, so no page a service
//! serves shares its origin; a request from another origin never gets here (the routing
//! refuses it, [`crate::browser`]). Every answer carries [`crate::browser::PAGE_HEADERS`] (`serve::apps` adds them); the
//! page's own policy lets only its inline script and style run, by hash.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::Response;
use crate::browser::html_csp;
use crate::docs::cache::Busy;
use crate::proxy::error::ProxyError;
use crate::proxy::error::error_response;
use crate::registry::catalog::ServiceView;
use crate::registry::names::valid_service_name;
use crate::registry::table::ServiceStatus;
use crate::rpc::Rpc;
use crate::shared::Shared;

mod detail;
mod hub;

pub(crate) use hub::Hub;

/// The page template and what it inlines.
const PAGE: &str = include_str!("assets/page.html.j2");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
/// The shared worker that holds the one live feed of all the page's tabs.
const FEED_WORKER: &str = include_str!("assets/feed.js");
/// The worker's own policy: it only opens the feed.
const FEED_WORKER_CSP: &str = "default-src 'none'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the dashboard reads and calls.
#[derive(Clone)]
pub(crate) struct State {
    /// The JSON-RPC front end (`Rpc::handle` takes a request body as `POST /rpc` would).
    pub rpc: Arc<Rpc>,
    /// The live table, the catalog and their events, and the router's health.
    pub shared: Arc<Shared>,
    /// The live feed.
    pub hub: Hub,
    /// The first service listener's URL (`http://ADDR:PORT`), for the MCP links it shows:
    /// MCP is served there, not on the dashboard's own origin.
    pub service_url: Option<String>,
}

/// A dashboard endpoint. The one routing decision (`serve::front::route`) picks it with
/// [`Page::at`]; [`answer`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    /// `GET /`: the page.
    Home,
    /// `GET /api/events`: the live feed.
    Events,
    /// `GET /api/feed.js`: the shared worker that holds one live feed for all of a browser's
    /// tabs of the page.
    FeedWorker,
    /// `GET /api/dashboard/service/{name}`: one service's detail (the name percent-decoded).
    Service(String),
    /// `POST /api/scan`: a full scan now.
    Scan,
    /// `GET /api/traffic`: the `router.traffic` result.
    Traffic,
}

impl Page {
    /// The endpoint at `path`, and the methods it answers (its `Allow`); `None` if the
    /// dashboard has no such path.
    pub(crate) fn at(path: &str) -> Option<(Page, &'static str)> {
        const READ: &str = "GET, HEAD";
        match path {
            "/" => Some((Page::Home, READ)),
            "/api/events" => Some((Page::Events, READ)),
            "/api/feed.js" => Some((Page::FeedWorker, READ)),
            "/api/scan" => Some((Page::Scan, "POST")),
            "/api/traffic" => Some((Page::Traffic, READ)),
            _ => {
                let segment = path.strip_prefix("/api/dashboard/service/")?;
                if segment.is_empty() || segment.contains('/') {
                    return None;
                }
                // A segment that cannot name a service is looked up as it is: "no such service".
                let name = crate::proxy::path::service_segment(segment)
                    .unwrap_or_else(|_| segment.to_owned());
                Some((Page::Service(name), READ))
            }
        }
    }

    /// True if `method` is one the endpoint answers.
    pub(crate) fn allows(allow: &str, method: &str) -> bool {
        match allow {
            "POST" => method == "POST",
            _ => matches!(method, "GET" | "HEAD"),
        }
    }
}

/// Answers one dashboard request (`headers`: the request's).
pub(crate) async fn answer(state: &State, page: Page, headers: &HeaderMap) -> Response {
    match page {
        Page::Home => home(state),
        Page::Events => events(state, headers),
        Page::FeedWorker => {
            let mut answer = crate::app::answer(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                FEED_WORKER,
            );
            let csp = HeaderValue::from_static(FEED_WORKER_CSP);
            answer
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, csp);
            no_store(answer)
        }
        Page::Service(name) => service(state, name).await,
        Page::Scan => scan(state).await,
        Page::Traffic => crate::app::json(&state.shared.traffic()),
    }
}

/// What the page template shows.
#[derive(Serialize)]
struct PageContext<'a> {
    services: Vec<ServiceView<'a>>,
    /// Services by status.
    counts: BTreeMap<&'static str, usize>,
    health: Value,
    root: String,
    version: &'static str,
    /// The service listener's URL, where the MCP endpoints are (none: the page's origin).
    service_url: Option<String>,
}

/// The page with its own policy: its inline script and style, by hash. (Every answer also gets
/// the rest of the router's page headers where the applications are served, `serve::apps`.)
fn with_page_csp(mut response: Response) -> Response {
    if let Ok(csp) = HeaderValue::from_str(page_csp()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The answer, never to be kept by a cache.
fn no_store(mut response: Response) -> Response {
    let no_store = HeaderValue::from_static("no-store");
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, no_store);
    response
}

/// The page's policy: its inline script and style, by hash.
fn page_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| html_csp(&[SCRIPT], &[STYLE]))
}

/// `GET /`.
fn home(state: &State) -> Response {
    let (table, catalog) = (
        state.shared.registry.table(),
        state.shared.registry.catalog(),
    );
    let mut counts: BTreeMap<&'static str, usize> = ["healthy", "degraded", "unhealthy", "non_rpc"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for s in &table.services {
        *counts.entry(status_name(s.status)).or_default() += 1;
    }
    let context = PageContext {
        services: table.services.iter().map(|s| catalog.view(s)).collect(),
        counts,
        health: state.shared.health(),
        root: table.root.display().to_string(),
        version: crate::VERSION,
        service_url: state.service_url.clone(),
    };
    let rendered = environment()
        .get_template("page.html")
        .and_then(|t| t.render(minijinja::Value::from(Serde(context))));
    match rendered {
        Ok(html) => with_page_csp(no_store(crate::app::answer(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html,
        ))),
        // The template is fixed and its tests render it; an error here is a bug in it.
        Err(e) => crate::app::answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("hero_router dashboard: template failed: {e:#}\n"),
        ),
    }
}

fn status_name(s: ServiceStatus) -> &'static str {
    match s {
        ServiceStatus::Healthy => "healthy",
        ServiceStatus::Degraded => "degraded",
        ServiceStatus::Unhealthy => "unhealthy",
        ServiceStatus::NonRpc => "non_rpc",
    }
}

/// `GET /api/events`.
fn events(state: &State, headers: &HeaderMap) -> Response {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let feed = state.hub.feed(last);
    let mut response = Response::new(crate::app::stream(feed.into_stream()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    let mut response = no_store(response);
    // Reverse proxies (nginx) would otherwise hold events back in their buffers.
    let no = HeaderValue::from_static("no");
    response.headers_mut().insert("x-accel-buffering", no);
    response
}

/// `GET /api/dashboard/service/{name}`. Its methods come from the docs cache, built off the
/// connection threads on a miss (`cache-status` says which); 503 when the render queue is
/// full.
async fn service(state: &State, name: String) -> Response {
    if !valid_service_name(&name) {
        return error_response(&ProxyError::NoService { service: name });
    }
    let registry = &state.shared.registry;
    let (table, catalog) = (registry.table(), registry.catalog());
    if table.service(&name).is_none() {
        return error_response(&ProxyError::NoService { service: name });
    }
    let entry = catalog.get(&name).cloned();
    let document = entry.as_ref().and_then(|e| {
        Some((
            e.document.clone()?,
            e.spec.fingerprint.as_deref().map(str::to_owned),
        ))
    });
    let methods = match document {
        Some((document, fingerprint)) => {
            match detail::methods_served(document, fingerprint).await {
                Ok(methods) => Some(methods),
                Err(Busy) => return error_response(&ProxyError::Busy { service: name }),
            }
        }
        None => None,
    };
    let Some(service) = table.service(&name) else {
        return error_response(&ProxyError::NoService { service: name });
    };
    let detail = detail::detail(
        &catalog.view(service),
        entry.as_deref(),
        state.hub.history(&name),
        methods.as_ref().map(|(page, _)| &**page),
    );
    let mut response = no_store(crate::app::answer(
        StatusCode::OK,
        "application/json",
        detail,
    ));
    if let Some((_, status)) = methods {
        let status = HeaderValue::from_static(status.header());
        response.headers_mut().insert("cache-status", status);
    }
    response
}

/// `POST /api/scan`: a full scan, answered with the `router.scan` result.
async fn scan(state: &State) -> Response {
    let answer = state
        .rpc
        .handle(br#"{"jsonrpc":"2.0","id":1,"method":"router.scan"}"#)
        .await
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    match answer {
        Some(a) if a.get("result").is_some() => crate::app::json(&a["result"]),
        other => {
            let message = other
                .as_ref()
                .and_then(|a| a["error"]["message"].as_str())
                .unwrap_or("the scanner has stopped")
                .to_owned();
            let body = json!({"error": format!("scan failed: {message}")}).to_string();
            let mut failed =
                crate::app::answer(StatusCode::SERVICE_UNAVAILABLE, "application/json", body);
            let code = HeaderValue::from_static("scan_failed");
            failed.headers_mut().insert("x-hero-router-error", code);
            failed
        }
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_global("script", minijinja::Value::from_safe_string(SCRIPT.into()));
        env.add_global("style", minijinja::Value::from_safe_string(STYLE.into()));
        env.add_filter("since", |ms: u64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            httpdate::fmt_http_date(t)
        });
        if let Err(e) = env.add_template("page.html", PAGE) {
            tracing::error!(error = %e, "dashboard template does not parse");
        }
        env
    })
}

#[cfg(test)]
mod tests;
