//! The routing decision ([`route`]) over every path shape, listener role and readiness: one
//! table, each row the answer on each of the four listeners.

use std::sync::Arc;

use super::{Role, Route, Scan, route};
use crate::proxy::error::ProxyError;
use crate::registry::state::SocketState;
use crate::registry::table::{Service, ServiceStatus, Socket, Table};

const ROLES: [Role; 4] = [
    Role::RpcSocket,
    Role::AdminSocket,
    Role::Service,
    Role::Admin,
];

/// `svc` with a live `rpc`, `ui` and `web_app` and a refused `web_old`; nothing else.
fn table() -> Table {
    let socket = |kind: &str, state| Socket {
        kind: kind.into(),
        path: Arc::from(std::path::Path::new(&format!("/r/svc/{kind}.sock"))),
        state,
        since_unix_ms: 1,
        detail: "".into(),
        refused_streak: 0,
        reap_skipped: None,
        identity: None,
    };
    let svc = Service {
        name: "svc".into(),
        status: ServiceStatus::Degraded,
        sockets: vec![
            socket("rpc", SocketState::Live),
            socket("ui", SocketState::Live),
            socket("web_app", SocketState::Busy),
            socket("web_old", SocketState::Refused),
        ],
        error: None,
    };
    Table {
        root: "/r".into(),
        services: vec![Arc::new(svc)],
        ready: true,
        ..Table::default()
    }
}

/// A route in a few words: where it goes, or the error's code (and what the answer carries).
fn describe(r: &Route<'_>, table: &Table) -> String {
    match r {
        Route::Rpc => "rpc".into(),
        Route::Own(e) => format!("own {e:?}"),
        Route::Docs(p) => format!("docs {p:?}"),
        Route::App(a) => format!("app {a:?}"),
        Route::Proxy { route, target } => format!(
            "proxy {} {}",
            target.socket(table).path.display(),
            match route.query {
                Some(q) => format!("{}?{q}", route.path),
                None => route.path.to_owned(),
            }
        ),
        Route::Error(ProxyError::MethodNotAllowed { allow, .. }) => format!("405 allow {allow}"),
        Route::Error(ProxyError::AddSlash { location }) => format!("add_slash {location}"),
        Route::Error(e) => e.code().into(),
        Route::OnAdminListener => "on admin listener".into(),
        Route::NotReady => "not ready".into(),
    }
}

/// `(method, path?query)` on each of rpc.sock, admin.sock, a service listener and an admin
/// listener, with the table ready.
fn on_each(method: &str, target: &str, scan: Scan) -> [String; 4] {
    let table = table();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    ROLES.map(|role| describe(&route(method, path, query, role, &table, scan), &table))
}

/// Every path shape on each listener: rpc.sock, admin.sock, a service listener, an admin
/// listener (docs/http.md's table of paths by listener). `P`: proxied to the socket, with the
/// upstream path.
const ROUTES: &[(&str, &str, [&str; 4])] = &[
    // `/rpc`: POST on every listener.
    ("POST", "/rpc", ["rpc", "rpc", "rpc", "rpc"]),
    ("GET", "/rpc", ["405 allow POST"; 4]),
    // The router's own endpoints: every listener, GET and HEAD.
    ("GET", "/health", ["own Health"; 4]),
    ("HEAD", "/health", ["own Health"; 4]),
    ("POST", "/health", ["405 allow GET, HEAD"; 4]),
    ("GET", "/api/services", ["own Services"; 4]),
    ("GET", "/metrics", ["own Metrics"; 4]),
    // The standard Hero endpoints: rpc.sock only. Elsewhere the paths are no route (a
    // one-segment path), a bad service name, or nothing of a service's on the admin listener.
    (
        "GET",
        "/openrpc.json",
        [
            "own OpenRpc",
            "no_route",
            "no_route",
            "not_on_admin_listener",
        ],
    ),
    (
        "GET",
        "/.well-known/heroservice.json",
        [
            "own Manifest",
            "bad_path",
            "bad_path",
            "not_on_admin_listener",
        ],
    ),
    // `/`: the dashboard where there is one; on a service listener, where it is.
    (
        "GET",
        "/",
        [
            "no_route",
            "app Dashboard(Home)",
            "own Landing { html: false }",
            "app Dashboard(Home)",
        ],
    ),
    (
        "POST",
        "/",
        [
            "no_route",
            "405 allow GET, HEAD",
            "405 allow GET, HEAD",
            "405 allow GET, HEAD",
        ],
    ),
    // The dashboard's API: each endpoint with its methods, nothing else.
    (
        "GET",
        "/api/events",
        [
            "no_route",
            "app Dashboard(Events)",
            "on admin listener",
            "app Dashboard(Events)",
        ],
    ),
    (
        "POST",
        "/api/scan",
        [
            "no_route",
            "app Dashboard(Scan)",
            "on admin listener",
            "app Dashboard(Scan)",
        ],
    ),
    (
        "GET",
        "/api/scan",
        [
            "no_route",
            "405 allow POST",
            "on admin listener",
            "405 allow POST",
        ],
    ),
    (
        "HEAD",
        "/api/dashboard/service/s%76c",
        [
            "no_route",
            "app Dashboard(Service(\"svc\"))",
            "on admin listener",
            "app Dashboard(Service(\"svc\"))",
        ],
    ),
    (
        "GET",
        "/api/x",
        ["no_route", "no_route", "on admin listener", "no_route"],
    ),
    // The MCP gateway: not on rpc.sock, not on the admin listener.
    (
        "POST",
        "/mcp",
        [
            "no_route",
            "app Mcp(All)",
            "app Mcp(All)",
            "not_on_admin_listener",
        ],
    ),
    (
        "POST",
        "/mcp/",
        [
            "no_route",
            "app Mcp(All)",
            "app Mcp(All)",
            "not_on_admin_listener",
        ],
    ),
    (
        "POST",
        "/mcp/svc",
        [
            "no_route",
            "app Mcp(Service(\"svc\"))",
            "app Mcp(Service(\"svc\"))",
            "not_on_admin_listener",
        ],
    ),
    // A trailing slash is the same endpoint, as `/mcp/` is `/mcp`; one more is no route.
    (
        "POST",
        "/mcp/svc/",
        [
            "no_route",
            "app Mcp(Service(\"svc\"))",
            "app Mcp(Service(\"svc\"))",
            "not_on_admin_listener",
        ],
    ),
    (
        "POST",
        "/mcp/svc//",
        ["no_route", "no_route", "no_route", "not_on_admin_listener"],
    ),
    (
        "POST",
        "/mcp/a%2Fb",
        ["no_route", "bad_path", "bad_path", "not_on_admin_listener"],
    ),
    // The docs: every listener but rpc.sock, GET and HEAD.
    (
        "GET",
        "/docs",
        ["no_route", "docs Index", "docs Index", "docs Index"],
    ),
    (
        "GET",
        "/docs/",
        ["no_route", "docs Index", "docs Index", "docs Index"],
    ),
    (
        "GET",
        "/docs/svc",
        [
            "no_route",
            "docs Html(\"svc\")",
            "docs Html(\"svc\")",
            "docs Html(\"svc\")",
        ],
    ),
    (
        "HEAD",
        "/docs/svc/",
        [
            "no_route",
            "docs Html(\"svc\")",
            "docs Html(\"svc\")",
            "docs Html(\"svc\")",
        ],
    ),
    (
        "GET",
        "/docs/svc.md",
        [
            "no_route",
            "docs Markdown(\"svc\")",
            "docs Markdown(\"svc\")",
            "docs Markdown(\"svc\")",
        ],
    ),
    (
        "GET",
        "/docs/svc/openrpc.json",
        [
            "no_route",
            "docs Spec(\"svc\")",
            "docs Spec(\"svc\")",
            "docs Spec(\"svc\")",
        ],
    ),
    (
        "POST",
        "/docs/svc",
        [
            "no_route",
            "405 allow GET, HEAD",
            "405 allow GET, HEAD",
            "405 allow GET, HEAD",
        ],
    ),
    ("GET", "/docs/Bad..Name", ["no_route"; 4]),
    // Proxied: admin.sock and service listeners; the query goes along.
    (
        "GET",
        "/svc/rpc/x?a=1",
        [
            "no_route",
            "P rpc /x?a=1",
            "P rpc /x?a=1",
            "not_on_admin_listener",
        ],
    ),
    (
        "POST",
        "/svc/rpc/x",
        ["no_route", "P rpc /x", "P rpc /x", "not_on_admin_listener"],
    ),
    (
        "GET",
        "/svc/rpc/",
        ["no_route", "P rpc /", "P rpc /", "not_on_admin_listener"],
    ),
    // `/{service}/{kind}` without the slash: a GET or HEAD is sent to add it (query kept),
    // anything else goes to `/`.
    (
        "GET",
        "/svc/rpc",
        [
            "no_route",
            "add_slash /svc/rpc/",
            "add_slash /svc/rpc/",
            "not_on_admin_listener",
        ],
    ),
    (
        "HEAD",
        "/svc/rpc?a=1",
        [
            "no_route",
            "add_slash /svc/rpc/?a=1",
            "add_slash /svc/rpc/?a=1",
            "not_on_admin_listener",
        ],
    ),
    (
        "POST",
        "/svc/rpc",
        ["no_route", "P rpc /", "P rpc /", "not_on_admin_listener"],
    ),
    // Kinds: `admin` falls back to `ui`, a web name to `web_<name>`; busy is routed, refused
    // is down.
    (
        "GET",
        "/svc/admin/",
        ["no_route", "P ui /", "P ui /", "not_on_admin_listener"],
    ),
    (
        "GET",
        "/svc/app/",
        [
            "no_route",
            "P web_app /",
            "P web_app /",
            "not_on_admin_listener",
        ],
    ),
    (
        "GET",
        "/svc/old/",
        ["no_route", "down", "down", "not_on_admin_listener"],
    ),
    (
        "GET",
        "/svc/nope/",
        [
            "no_route",
            "no_socket",
            "no_socket",
            "not_on_admin_listener",
        ],
    ),
    (
        "GET",
        "/ghost/rpc/",
        [
            "no_route",
            "no_service",
            "no_service",
            "not_on_admin_listener",
        ],
    ),
    // Never relayed to the router's own sockets.
    (
        "GET",
        "/hero_router/rpc/",
        [
            "no_route",
            "own_service",
            "own_service",
            "not_on_admin_listener",
        ],
    ),
    // Not a route, or a bad one.
    (
        "GET",
        "/svc",
        ["no_route", "no_route", "no_route", "not_on_admin_listener"],
    ),
    (
        "GET",
        "/svc/../x/",
        ["no_route", "bad_path", "bad_path", "not_on_admin_listener"],
    ),
    (
        "GET",
        "/svc/%2e%2e/",
        ["no_route", "bad_path", "bad_path", "not_on_admin_listener"],
    ),
];

/// `P kind path` in [`ROUTES`] as [`describe`] says it.
fn expand(want: &str) -> String {
    match want.strip_prefix("P ") {
        Some(rest) => {
            let (kind, path) = rest.split_once(' ').unwrap();
            format!("proxy /r/svc/{kind}.sock {path}")
        }
        None => want.to_owned(),
    }
}

#[test]
fn every_path_shape_on_every_listener() {
    for (method, target, want) in ROUTES {
        let want = want.map(expand);
        assert_eq!(
            on_each(method, target, Scan::Done),
            want,
            "{method} {target}"
        );
    }
}

/// Before the first scan has finished, only what needs the table waits ("not ready"): the
/// socket a route resolves to, or the error resolving gives, `GET /api/services` and the
/// docs pages. Everything decided from the request alone is answered as it will be. A
/// request that already waited `--upstream-timeout` gets 503 "starting" where it would have waited: an
/// empty table must not read as "no such service" or as no services.
#[test]
fn not_ready_only_holds_back_what_needs_the_table() {
    let resolved = |r: &str| {
        r.starts_with("proxy ")
            || r.starts_with("docs ")
            || ["down", "no_socket", "no_service", "own Services"].contains(&r)
    };
    for (scan, held_as) in [(Scan::Pending, "not ready"), (Scan::GaveUp, "starting")] {
        let mut held = 0;
        for (method, target, want) in ROUTES {
            let want = want.map(|w| {
                let w = expand(w);
                if resolved(&w) {
                    held += 1;
                    held_as.to_owned()
                } else {
                    w
                }
            });
            assert_eq!(
                on_each(method, target, scan),
                want,
                "{method} {target} {scan:?}"
            );
        }
        assert!(held > 0);
    }
}
