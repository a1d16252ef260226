//! Generated clients held to the real tools (docs/clients.md): for the example service's
//! spec and a hostile one, the Python module passes `mypy --strict` and the TypeScript
//! module `tsc --strict --noEmit`; then the generated clients call a real service through
//! an in-process router (Python over TCP and over the service's Unix socket, TypeScript under
//! Node over TCP), and every result equals the routed `/rpc` call's.
//!
//! The tools come from `scripts/client_tools.sh` (pinned, under `target/`), named by
//! `HERO_MYPY`, `HERO_TSC` and `HERO_NODE`. Where one is missing a test says so and passes,
//! unless `HERO_REQUIRE_CLIENT_TOOLS=1` (set by `.ci/run`): then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, admin, json, request, rpc, serve_config, start_daemon, tcp, uds};
use hero_example_service::{RunningService, ServiceConfig, Spec, spawn};
use hero_router::Catalog;
use hero_router::test_hooks::{ClientLang, generate_client};
use serde_json::{Value, json};

const REQUIRE: &str = "HERO_REQUIRE_CLIENT_TOOLS";

fn example_spec_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hero_example_service/openrpc.json");
    std::fs::read_to_string(path).unwrap()
}

fn hostile_spec_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_openrpc.json");
    std::fs::read_to_string(path).unwrap()
}

/// The tool named by `var`, if it runs (`--version`); otherwise the test is skipped (or
/// fails under `HERO_REQUIRE_CLIENT_TOOLS`).
fn tool(var: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from);
    let runs = path.as_ref().is_some_and(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if runs {
        return path;
    }
    common::skip_unless_required(
        REQUIRE,
        &format!("{var} does not name a tool that runs (bash scripts/client_tools.sh installs it)"),
    );
    None
}

/// Runs `cmd`; panics with its output (and the generated file) unless it succeeds.
fn check(mut cmd: Command, what: &str, file: &Path) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        let numbered: String = source
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{:4} {l}\n", i + 1))
            .collect();
        panic!(
            "{what} failed:\n{text}\n--- {}:\n{numbered}",
            file.display()
        );
    }
    text
}

fn mypy_strict(mypy: &Path, file: &Path) {
    let mut cmd = Command::new(mypy);
    cmd.args([
        "--strict",
        "--python-version",
        "3.10",
        "--no-incremental",
        "--cache-dir",
    ])
    .arg(file.parent().unwrap().join(".mypy_cache"))
    .arg(file);
    check(cmd, "mypy --strict", file);
}

/// The compiler options every TypeScript check uses: strict, an ES2022 module, the DOM's
/// `fetch` types.
const TSC_OPTIONS: &[&str] = &[
    "--strict",
    "--target",
    "ES2022",
    "--module",
    "ES2022",
    "--lib",
    "ES2022,DOM",
    "--skipLibCheck",
];

fn tsc_strict(tsc: &Path, file: &Path) {
    let mut cmd = Command::new(tsc);
    cmd.args(TSC_OPTIONS).arg("--noEmit").arg(file);
    check(cmd, "tsc --strict --noEmit", file);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn python_clients_pass_mypy_strict() {
    let Some(mypy) = tool("HERO_MYPY") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (service, spec) in [
        ("example", example_spec_text()),
        ("hostile", hostile_spec_text()),
    ] {
        let module = generate_client(ClientLang::Python, service, &spec);
        let file = write(dir.path(), &format!("{service}.py"), &module);
        mypy_strict(&mypy, &file);
    }
}

/// A chain of types that each reference the next twice (`F0 = {a: F1, b: F1}`, … 30 deep):
/// one type per target, and mypy checks the module at once. Its async methods passed their
/// arguments through `asyncio.to_thread`'s ParamSpec, which mypy matched in time exponential
/// in the depth (22 levels: 15 s; 30: hours). The deadline only keeps a regression from
/// hanging the suite.
#[tokio::test]
async fn python_clients_of_branching_references_check_at_once() {
    let Some(mypy) = tool("HERO_MYPY") else {
        return;
    };
    const DEPTH: usize = 30;
    let mut schemas = serde_json::Map::new();
    for i in 0..DEPTH {
        let next = json!({"$ref": format!("#/components/schemas/F{}", i + 1)});
        schemas.insert(
            format!("F{i}"),
            json!({"type": "object", "properties": {"a": next, "b": next}}),
        );
    }
    schemas.insert(format!("F{DEPTH}"), json!({"type": "string"}));
    let f0 = json!({"$ref": "#/components/schemas/F0"});
    let spec = json!({
        "openrpc": "1.3.2",
        "info": {"title": "t", "version": "1"},
        "methods": [{"name": "m", "params": [{"name": "f", "required": true, "schema": f0}],
                     "result": {"name": "r", "schema": f0}}],
        "components": {"schemas": schemas},
    });
    let dir = tempfile::tempdir().unwrap();
    let module = generate_client(ClientLang::Python, "chain", &spec.to_string());
    let file = write(dir.path(), "chain.py", &module);
    let checked = tokio::task::spawn_blocking(move || mypy_strict(&mypy, &file));
    tokio::time::timeout(std::time::Duration::from_secs(300), checked)
        .await
        .expect("mypy did not finish")
        .unwrap();
}

#[test]
fn typescript_clients_pass_tsc_strict() {
    let Some(tsc) = tool("HERO_TSC") else { return };
    let dir = tempfile::tempdir().unwrap();
    for (service, spec) in [
        ("example", example_spec_text()),
        ("hostile", hostile_spec_text()),
    ] {
        let module = generate_client(ClientLang::TypeScript, service, &spec);
        let file = write(dir.path(), &format!("{service}.ts"), &module);
        tsc_strict(&tsc, &file);
    }
}

// === real calls ===

/// How long the catalog may take to fetch a spec.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A router with the example service `example` and the spec-less `nospec` running, the
/// first in the catalog.
async fn with_example() -> (tempfile::TempDir, Daemon, RunningService, RunningService) {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let svc = spawn(ServiceConfig::new(dir.path(), "example"))
        .await
        .unwrap();
    let none = spawn(ServiceConfig {
        spec: Spec::None,
        ..ServiceConfig::new(dir.path(), "nospec")
    })
    .await
    .unwrap();
    d.rescan().await;
    let mut rx = d.handle.catalogs();
    let has = |c: &Catalog| {
        c.get("example").is_some_and(|e| e.document.is_some())
            && c.get("nospec")
                .is_some_and(|e| e.spec.fetched_unix_ms.is_some())
    };
    tokio::time::timeout(DEADLINE, rx.wait_for(|c| has(c)))
        .await
        .expect("the catalog did not get the specs before the deadline")
        .unwrap();
    (dir, d, svc, none)
}

/// One call of the example service: the generated method's name and arguments in each
/// language, and the routed `/rpc` call it must equal.
struct Case {
    python: &'static str,
    typescript: &'static str,
    /// Keyword arguments (Python) and the params object (TypeScript).
    args: Value,
    /// The wire method and params of the routed call.
    method: &'static str,
    params: Option<Value>,
}

/// Every method of the example service, some twice.
fn cases() -> Vec<Case> {
    let case = |python, typescript, args, method, params| Case {
        python,
        typescript,
        args,
        method,
        params,
    };
    vec![
        case(
            "echo",
            "echo",
            json!({"value": "hello"}),
            "echo",
            Some(json!({"value": "hello"})),
        ),
        case("echo", "echo", json!({}), "echo", Some(json!({}))),
        case(
            "sleep_ms",
            "sleepMs",
            json!({"ms": 3}),
            "sleep_ms",
            Some(json!({"ms": 3})),
        ),
        case(
            "add",
            "add",
            json!({"a": 2, "b": 3}),
            "add",
            Some(json!([2, 3])),
        ),
        case(
            "add",
            "add",
            json!({"a": 1.5, "b": 2.25}),
            "add",
            Some(json!([1.5, 2.25])),
        ),
        case("fail", "fail", json!({}), "fail", None),
        case(
            "rpc_discover",
            "rpcDiscover",
            json!({}),
            "rpc.discover",
            None,
        ),
    ]
}

/// What the routed `/rpc` call answers: `{"result": …}` or `{"error": {code, message,
/// data}}`.
async fn routed(d: &Daemon, c: &Case) -> Value {
    let mut call = json!({"jsonrpc": "2.0", "id": 1, "method": format!("example.{}", c.method)});
    if let Some(p) = &c.params {
        call["params"] = p.clone();
    }
    let (status, body) = rpc(d, &call.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    match answer.get("error") {
        Some(e) => {
            json!({"error": {"code": e["code"], "message": e["message"], "data": e["data"]}})
        }
        None => json!({"result": answer["result"]}),
    }
}

/// Every case's answer through the generated client, as the driver printed them (one
/// JSON array), then one more: the async client's `add(40, 2)` (Python only).
async fn run_driver(mut cmd: tokio::process::Command, what: &str) -> Vec<Value> {
    let out = cmd.output().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(stdout.trim()).as_array().unwrap().clone()
}

/// The README's example in `lang` (the fenced block of the "Clients" section), pointed at
/// `url`.
fn readme_example(lang: &str, url: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = &readme[readme.find("\n## Clients\n").expect("a Clients section")..];
    let fence = format!("```{lang}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("a {lang} example"))
        + fence.len();
    let end = start + section[start..].find("```").unwrap();
    let example = &section[start..end];
    assert!(example.contains("http://127.0.0.1:9988"), "{example}");
    example.replace("http://127.0.0.1:9988", url)
}

/// Runs a README example; it prints what the README says it does.
async fn assert_prints_what_the_readme_says(mut cmd: tokio::process::Command) {
    let out = cmd.output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "5\n-32000 requested failure\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PYTHON_DRIVER: &str = r#"
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import example
how, where, cases = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = example.Client.tcp(where) if how == "tcp" else example.Client.unix(where)
out = []
for case in cases:
    try:
        out.append({"result": getattr(client, case["method"])(**case["args"])})
    except example.RpcError as e:
        out.append({"error": {"code": e.code, "message": e.message, "data": e.data}})
aclient = example.AsyncClient.tcp(where) if how == "tcp" else example.AsyncClient.unix(where)
out.append({"result": asyncio.run(aclient.add(a=40, b=2))})
print(json.dumps(out))
"#;

const NODE_DRIVER: &str = r#"
import { Client, RpcError } from "./example.js";
const client = new Client(process.argv[2]);
const out = [];
for (const c of JSON.parse(process.argv[3])) {
  try {
    out.push({ result: await client[c.method](c.args) });
  } catch (e) {
    if (!(e instanceof RpcError)) throw e;
    out.push({ error: { code: e.code, message: e.message, data: e.data ?? null } });
  }
}
console.log(JSON.stringify(out));
"#;

/// The example service's document as the router serves it (the clients are generated from
/// it).
async fn served_spec(d: &Daemon) -> String {
    let (status, _, body) = tcp(d, request("GET", "/docs/example/openrpc.json", "")).await;
    assert_eq!(status, 200);
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_calls_the_example_service_over_tcp_and_its_socket() {
    let Some(mypy) = tool("HERO_MYPY") else {
        return;
    };
    // The venv's own Python: the one mypy checked the module for.
    let python = mypy.with_file_name("python");
    let (dir, d, svc, _none) = with_example().await;
    let work = tempfile::tempdir().unwrap();
    let module = generate_client(ClientLang::Python, "example", &served_spec(&d).await);
    let file = write(work.path(), "example.py", &module);
    mypy_strict(&mypy, &file);

    let cases = cases();
    let mut expected = Vec::new();
    for c in &cases {
        expected.push(routed(&d, c).await);
    }
    expected.push(json!({"result": 42}));
    assert_eq!(
        expected[5]["error"]["code"], -32000,
        "fail fails: {:?}",
        expected[5]
    );
    let args: Vec<Value> = cases
        .iter()
        .map(|c| json!({"method": c.python, "args": c.args}))
        .collect();
    let args = Value::Array(args).to_string();
    let url = format!("http://{}", d.tcp);
    for (how, where_) in [
        ("tcp", url.as_str()),
        ("unix", svc.path().to_str().unwrap()),
    ] {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.args(["-c", PYTHON_DRIVER])
            .arg(work.path())
            .args([how, where_, &args]);
        let got = run_driver(cmd, &format!("the Python client over {how}")).await;
        assert_eq!(got, expected, "the Python client over {how}");
    }
    // The README's example, as written.
    let example = write(work.path(), "readme.py", &readme_example("python", &url));
    let mut run = tokio::process::Command::new(&python);
    run.arg(&example).current_dir(work.path());
    assert_prints_what_the_readme_says(run).await;
    drop(dir);
    d.stop().await;
}

/// What a script printed, as JSON; panics with its output unless it succeeded.
fn json_output(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(stdout.trim())
}

/// Servers that answer something broken, over a Unix socket and over TCP (Python's own
/// `socketserver`, each answering every connection with the same bytes): no HTTP at all, a
/// body cut short, an overlong header line, JSON nested past Python's parser.
const BROKEN_SERVERS: &str = r#"
import json, os, socket, socketserver, sys, threading
sys.path.insert(0, sys.argv[1])
import example
answers = {
    "not_http": b"HELLO THERE\r\n\r\n",
    "cut_short": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789abcdef",
    "long_line": b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * 100000 + b"\r\ncontent-length: 2\r\n\r\n{}",
    "deep_json": b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"[" * 100000,
    "huge_length": b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n{}",
}
def handler(answer):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            self.request.sendall(answer)
    return H
out = {}
for name, answer in answers.items():
    path = os.path.join(sys.argv[1], name + ".sock")
    servers = [
        ("unix", socketserver.ThreadingUnixStreamServer(path, handler(answer))),
        ("tcp", socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler(answer))),
    ]
    for how, server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        if how == "unix":
            client = example.Client.unix(path, timeout=10)
        else:
            client = example.Client.tcp("http://127.0.0.1:%d" % server.server_address[1], timeout=10)
        try:
            client.add(a=1, b=2)
            out[name + "/" + how] = "answered"
        except Exception as e:
            out[name + "/" + how] = type(e).__name__
        server.shutdown()
print(json.dumps(out))
"#;

/// A broken answer is a `TransportError` (docs/clients.md), never Python's own exception
/// (`BadStatusLine`, `IncompleteRead`, `LineTooLong`, `RecursionError`), over either transport.
#[test]
fn the_python_client_turns_broken_answers_into_transport_errors() {
    let Some(mypy) = tool("HERO_MYPY") else {
        return;
    };
    let python = mypy.with_file_name("python");
    let work = tempfile::tempdir().unwrap();
    let module = generate_client(ClientLang::Python, "example", &example_spec_text());
    write(work.path(), "example.py", &module);
    let out = Command::new(&python)
        .args(["-c", BROKEN_SERVERS])
        .arg(work.path())
        .output()
        .unwrap();
    let seen = json_output(&out);
    let seen = seen.as_object().unwrap();
    assert_eq!(seen.len(), 10, "{seen:?}");
    for (case, what) in seen {
        assert_eq!(what, "TransportError", "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_client_calls_the_example_service_under_node() {
    let (Some(tsc), Some(node)) = (tool("HERO_TSC"), tool("HERO_NODE")) else {
        return;
    };
    let (_dir, d, _svc, _none) = with_example().await;
    let work = tempfile::tempdir().unwrap();
    example_module_for_node(&tsc, work.path(), &served_spec(&d).await);
    let driver = write(work.path(), "driver.mjs", NODE_DRIVER);

    let cases = cases();
    let mut expected = Vec::new();
    for c in &cases {
        expected.push(routed(&d, c).await);
    }
    let args: Vec<Value> = cases
        .iter()
        .map(|c| json!({"method": c.typescript, "args": c.args}))
        .collect();
    let mut cmd = tokio::process::Command::new(&node);
    cmd.arg(&driver)
        .arg(format!("http://{}", d.tcp))
        .arg(Value::Array(args).to_string());
    let got = run_driver(cmd, "the TypeScript client under Node").await;
    assert_eq!(got, expected);
    // The README's example, as written: type-checked with the module, then run.
    let url = format!("http://{}", d.tcp);
    let example = write(work.path(), "readme.ts", &readme_example("ts", &url));
    let mut compile = Command::new(&tsc);
    compile
        .args(TSC_OPTIONS)
        .arg("--outDir")
        .arg(work.path())
        .arg(&example);
    check(compile, "tsc of the README's example", &example);
    let mut run = tokio::process::Command::new(&node);
    run.arg(work.path().join("readme.js"));
    assert_prints_what_the_readme_says(run).await;
    d.stop().await;
}

/// The TypeScript client of `spec` as `example`, compiled into `dir` as an ES module Node runs.
fn example_module_for_node(tsc: &Path, dir: &Path, spec: &str) {
    let module = generate_client(ClientLang::TypeScript, "example", spec);
    let file = write(dir, "example.ts", &module);
    let mut compile = Command::new(tsc);
    compile
        .args(TSC_OPTIONS)
        .arg("--outDir")
        .arg(dir)
        .arg(&file);
    check(compile, "tsc", &file);
    write(dir, "package.json", r#"{"type": "module"}"#);
}

/// Servers that answer something broken, on TCP (Node's `net`): a body cut short, bad chunks.
const NODE_BROKEN: &str = r#"
import net from "node:net";
import { Client } from "./example.js";
const answers = {
  cut_short: "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\"",
  bad_chunks: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
};
const out = {};
for (const [name, answer] of Object.entries(answers)) {
  const server = net.createServer((s) => s.once("data", () => s.end(answer)));
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  try {
    await new Client(`http://127.0.0.1:${server.address().port}`).add({ a: 1, b: 2 });
    out[name] = "answered";
  } catch (e) {
    out[name] = e.constructor.name;
  }
  server.close();
}
console.log(JSON.stringify(out));
"#;

/// A broken answer is a `TransportError` in TypeScript too (the body's read failed outside
/// the client's `try`: Node's `TypeError: terminated`).
#[tokio::test]
async fn the_typescript_client_turns_broken_answers_into_transport_errors() {
    let (Some(tsc), Some(node)) = (tool("HERO_TSC"), tool("HERO_NODE")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    example_module_for_node(&tsc, work.path(), &example_spec_text());
    let driver = write(work.path(), "broken.mjs", NODE_BROKEN);
    let out = tokio::process::Command::new(&node)
        .arg(&driver)
        .output()
        .await
        .unwrap();
    assert_eq!(
        json_output(&out),
        json!({"cut_short": "TransportError", "bad_chunks": "TransportError"})
    );
}

// === served by the router ===

#[tokio::test]
async fn the_router_serves_the_clients_cached_and_links_them() {
    let (dir, d, _svc, _none) = with_example().await;
    let spec = served_spec(&d).await;
    for (path, lang, content_type) in [
        (
            "/docs/example/client.py",
            ClientLang::Python,
            "text/x-python; charset=utf-8",
        ),
        (
            "/docs/example/client.ts",
            ClientLang::TypeScript,
            "text/typescript; charset=utf-8",
        ),
    ] {
        let expected = generate_client(lang, "example", &spec);
        let (status, headers, body) = tcp(&d, request("GET", path, "")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-status"], "hero_router; fwd=miss", "{path}");
        assert_eq!(body, expected.as_bytes(), "{path}");
        // Again: from the cache. On admin.sock and the admin listener too.
        let (_, headers, again) = tcp(&d, request("GET", path, "")).await;
        assert_eq!(headers["cache-status"], "hero_router; hit", "{path}");
        assert_eq!(again, body);
        let (status, _, on_admin) = uds(&d.admin, request("GET", path, "")).await;
        assert_eq!(
            (status.as_u16(), on_admin.clone()),
            (200, body.clone()),
            "{path} on admin.sock"
        );
        let (status, _, on_admin) = admin(&d, request("GET", path, "")).await;
        assert_eq!(
            (status.as_u16(), on_admin),
            (200, body),
            "{path} on the admin listener"
        );
        // A service without a spec, and none at all: 404 with a JSON error.
        for missing in ["nospec", "nosuch"] {
            let path = path.replace("example", missing);
            let (status, headers, body) = tcp(&d, request("GET", &path, "")).await;
            assert_eq!(status, 404, "{path}");
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            assert!(json(std::str::from_utf8(&body).unwrap())["error"].is_string());
        }
    }
    // Linked from the docs pages and the dashboard's detail.
    for page in ["/docs/example", "/docs/example.md"] {
        let (_, _, body) = tcp(&d, request("GET", page, "")).await;
        // HTML escapes `/` in attributes (`&#x2f;`), which a browser reads back.
        let text = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("&#x2f;", "/");
        for link in ["/docs/example/client.py", "/docs/example/client.ts"] {
            assert!(
                text.contains(&format!("({link})")) || text.contains(&format!("href=\"{link}\"")),
                "{page} links {link}"
            );
        }
    }
    let (_, _, body) = admin(&d, request("GET", "/api/dashboard/service/example", "")).await;
    let detail = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(detail["links"]["client_py"], "/docs/example/client.py");
    assert_eq!(detail["links"]["client_ts"], "/docs/example/client.ts");

    // The CLI prints the same module, and writes it with --out.
    let root = dir.path().to_str().unwrap().to_owned();
    let cli = move |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hero_router"))
            .args(["--socket-dir", &root])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["client", "python", "example"])
    })
    .await
    .unwrap();
    assert_eq!(
        printed,
        generate_client(ClientLang::Python, "example", &spec)
    );
    let out_dir = dir.path().join("clients");
    let listed = tokio::task::spawn_blocking({
        let out_dir = out_dir.clone();
        move || {
            cli(&[
                "client",
                "typescript",
                "example",
                "--out",
                out_dir.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(listed.trim(), out_dir.join("example.ts").to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("example.ts")).unwrap(),
        generate_client(ClientLang::TypeScript, "example", &spec)
    );
    d.stop().await;
}

// === generation time (BENCHMARKS.md) ===

/// A document of `n` methods: each with by-name params (a string, an enum, an optional
/// object of its own), a result that refers to a shared recursive component, and docs.
fn big_spec(n: usize) -> String {
    let methods: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("group{}.method_{i}", i % 10),
                "summary": format!("Method {i}."),
                "description": "Does one thing, with a description long enough to be real text.",
                "paramStructure": if i % 2 == 0 { "by-name" } else { "by-position" },
                "params": [
                    {"name": "id", "required": true, "description": "The id.", "schema": {"type": "string"}},
                    {"name": "mode", "schema": {"$ref": "#/components/schemas/Mode"}},
                    {"name": "options", "schema": {"type": "object", "properties": {
                        "limit": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}
                    }}}
                ],
                "result": {"name": "node", "schema": {"$ref": "#/components/schemas/Node"}}
            })
        })
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": {"title": "Big", "version": "1.0.0"},
        "methods": methods,
        "components": {"schemas": {
            "Mode": {"enum": ["fast", "safe"]},
            "Node": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                "parent": {"oneOf": [{"$ref": "#/components/schemas/Node"}, {"type": "null"}]}
            }}
        }}
    })
    .to_string()
}

/// Generation time of a 1,000-method document per language: generated directly (first
/// call, then the median of 10), then served by the router (the first request generates on
/// a render thread, the second is the cache's). Prints; asserts only that the modules are
/// whole. `cargo test --profile quick -p hero_router --test clients -- --ignored
/// generation_time --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn generation_time_of_a_1000_method_document() {
    use tokio::time::Instant;
    let spec = big_spec(1000);
    println!("document: {} bytes, 1000 methods", spec.len());
    for (lang, name) in [
        (ClientLang::Python, "python"),
        (ClientLang::TypeScript, "typescript"),
    ] {
        let started = Instant::now();
        let module = generate_client(lang, "big", &spec);
        let first = started.elapsed();
        let mut runs: Vec<_> = (0..10)
            .map(|_| {
                let started = Instant::now();
                let again = generate_client(lang, "big", &spec);
                assert_eq!(again.len(), module.len());
                started.elapsed()
            })
            .collect();
        runs.sort();
        println!(
            "{name}: {} bytes; first {:.1} ms, median of 10 {:.1} ms",
            module.len(),
            first.as_secs_f64() * 1e3,
            runs[5].as_secs_f64() * 1e3
        );
        assert!(
            module.matches("group3").count() >= 100,
            "every method is generated"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let doc: Value = serde_json::from_str(&spec).unwrap();
    let _svc = spawn(ServiceConfig {
        spec: Spec::Document(doc),
        ..ServiceConfig::new(dir.path(), "big")
    })
    .await
    .unwrap();
    d.rescan().await;
    let mut rx = d.handle.catalogs();
    tokio::time::timeout(
        DEADLINE,
        rx.wait_for(|c| c.get("big").is_some_and(|e| e.document.is_some())),
    )
    .await
    .unwrap()
    .unwrap();
    for path in ["/docs/big/client.py", "/docs/big/client.ts"] {
        for round in ["first (generated)", "second (cached)"] {
            let started = Instant::now();
            let (status, headers, body) = tcp(&d, request("GET", path, "")).await;
            let took = started.elapsed();
            assert_eq!(status, 200);
            println!(
                "GET {path} {round}: {:.1} ms, {} bytes, cache-status {:?}",
                took.as_secs_f64() * 1e3,
                body.len(),
                headers["cache-status"]
            );
        }
    }
    d.stop().await;
}

/// Params named like what every object has (`toString`, `valueOf`, `__proto__`): the
/// TypeScript params object takes them with `_` appended, so a call that gives only some of
/// them passes `tsc --strict` (an object literal's own `toString` is Object's function), and
/// each is sent under its own name (`{ __proto__: … }` would set a prototype and send
/// nothing). A wire name that already ends in `_` keeps it; the renamed one gets another.
const OBJECT_MEMBERS_SPEC: &str = r#"{"openrpc": "1.3.2", "info": {"title": "o", "version": "1"},
  "methods": [
    {"name": "byName", "params": [
      {"name": "toString", "schema": {"type": "string"}},
      {"name": "toString_", "schema": {"type": "string"}},
      {"name": "valueOf", "schema": {"type": "string"}},
      {"name": "constructor", "schema": {"type": "string"}},
      {"name": "__proto__", "schema": {"type": "string"}}],
     "result": {"name": "r", "schema": {"type": "string"}}},
    {"name": "byPos", "paramStructure": "by-position", "params": [
      {"name": "toString", "required": true, "schema": {"type": "string"}},
      {"name": "__proto__", "schema": {"type": "string"}}],
     "result": {"name": "r", "schema": {"type": "string"}}}]}"#;

const OBJECT_MEMBERS_USE: &str = r#"
import { Client } from "./objm.js";
const sent: unknown[] = [];
globalThis.fetch = (async (_url: unknown, init?: { body?: unknown }) => {
  const request = JSON.parse(String(init?.body));
  sent.push(request.params ?? null);
  return new Response(JSON.stringify({ jsonrpc: "2.0", id: request.id, result: "ok" }));
}) as typeof fetch;
const c = new Client("http://127.0.0.1:1");
await c.byName({ valueOf_: "b" });
await c.byName({ __proto___: "p", toString__: "t", toString_: "u" });
await c.byName({ constructor_: "k" });
await c.byName();
await c.byPos({ toString_: "t" });
await c.byPos({ toString_: "t", __proto___: "p" });
console.log(JSON.stringify(sent));
"#;

#[tokio::test]
async fn params_named_like_what_every_object_has_type_check_and_are_sent_by_their_names() {
    let (Some(tsc), Some(node)) = (tool("HERO_TSC"), tool("HERO_NODE")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let module = generate_client(ClientLang::TypeScript, "objm", OBJECT_MEMBERS_SPEC);
    let file = write(work.path(), "objm.ts", &module);
    let usage = write(work.path(), "use.ts", OBJECT_MEMBERS_USE);
    write(work.path(), "package.json", r#"{"type": "module"}"#);
    let mut compile = Command::new(&tsc);
    compile
        .args(TSC_OPTIONS)
        .arg("--outDir")
        .arg(work.path())
        .arg(&file)
        .arg(&usage);
    check(compile, "tsc --strict of calls with some params", &usage);
    let out = tokio::process::Command::new(&node)
        .arg(work.path().join("use.js"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"[{"valueOf":"b"},{"__proto__":"p","toString":"t","toString_":"u"},{"constructor":"k"},{},["t"],["t","p"]]"#
    );
}
