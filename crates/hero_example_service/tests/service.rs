//! End-to-end tests over a real Unix socket in a temp dir.

use std::path::Path;

use bytes::Bytes;
use hero_example_service::{RunningService, ServiceConfig, spawn};
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixStream;

async fn start() -> (tempfile::TempDir, RunningService) {
    let dir = tempfile::tempdir().unwrap();
    let svc = spawn(ServiceConfig::new(dir.path(), "demo")).await.unwrap();
    (dir, svc)
}

async fn call(
    sock: &Path,
    method: &str,
    uri: &str,
    body: impl Into<Bytes>,
) -> (StatusCode, String) {
    let stream = UnixStream::connect(sock).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .header("x-hero-test", "yes")
        .body(Full::new(body.into()))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn rpc(sock: &Path, body: &str) -> (StatusCode, String) {
    call(sock, "POST", "/rpc", body.to_owned()).await
}

async fn rpc_json(sock: &Path, body: &str) -> Value {
    let (status, text) = rpc(sock, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn echo_ids_round_trip_byte_for_byte() {
    let (_dir, svc) = start().await;
    for id in [
        "1",
        "-1",
        "1.5",
        r#""x""#,
        "null",
        "18446744073709551616",
        "1e400",
    ] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":[1, {{"a":2.50}}]}}"#);
        let (status, text) = rpc(svc.path(), &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":[1, {{"a":2.50}}]}}"#)
        );
    }
    let v = rpc_json(svc.path(), r#"{"jsonrpc":"2.0","id":7,"method":"echo"}"#).await;
    assert_eq!(v, json!({"jsonrpc": "2.0", "id": 7, "result": null}));
    svc.shutdown().await;
}

#[tokio::test]
async fn notifications_get_204_and_batches_keep_order() {
    let (_dir, svc) = start().await;
    let (status, text) = rpc(
        svc.path(),
        r#"{"jsonrpc":"2.0","method":"echo","params":[1]}"#,
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    let (status, text) = rpc(svc.path(), r#"[{"jsonrpc":"2.0","method":"fail"}]"#).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));

    let batch = r#"[
        {"jsonrpc":"2.0","id":1,"method":"sleep_ms","params":[30]},
        {"jsonrpc":"2.0","method":"echo","params":["note"]},
        {"jsonrpc":"2.0","id":"b","method":"add","params":{"a":1,"b":2}},
        {"jsonrpc":"2.0","id":3,"method":"nope"},
        {"jsonrpc":"2.0","id":4,"method":"fail"},
        5
    ]"#;
    let v = rpc_json(svc.path(), batch).await;
    assert_eq!(
        v,
        json!([
            {"jsonrpc": "2.0", "id": 1, "result": 30},
            {"jsonrpc": "2.0", "id": "b", "result": 3},
            {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "method not found"}},
            {"jsonrpc": "2.0", "id": 4, "error": {"code": -32000, "message": "requested failure"}},
            {"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "invalid request"}},
        ])
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn protocol_errors() {
    let (_dir, svc) = start().await;
    let code = |v: &Value| (v["id"].clone(), v["error"]["code"].as_i64().unwrap());
    let v = rpc_json(svc.path(), "[]").await;
    assert_eq!(
        code(&v),
        (Value::Null, -32600),
        "empty batch is one error object"
    );
    let v = rpc_json(svc.path(), r#"{"jsonrpc":"2.0","id":1,"method""#).await;
    assert_eq!(code(&v), (Value::Null, -32700));
    let v = rpc_json(svc.path(), "[1,").await;
    assert_eq!(code(&v), (Value::Null, -32700));
    let v = rpc_json(svc.path(), r#"{"jsonrpc":"1.0","id":2,"method":"echo"}"#).await;
    assert_eq!(code(&v), (json!(2), -32600));
    let v = rpc_json(svc.path(), r#"{"jsonrpc":"2.0","id":[1],"method":"echo"}"#).await;
    assert_eq!(code(&v), (Value::Null, -32600));
    let v = rpc_json(
        svc.path(),
        r#"{"jsonrpc":"2.0","id":3,"method":"add","params":[1]}"#,
    )
    .await;
    assert_eq!(code(&v), (json!(3), -32602));
    let v = rpc_json(
        svc.path(),
        r#"{"jsonrpc":"2.0","id":4,"method":"sleep_ms","params":"x"}"#,
    );
    assert_eq!(code(&v.await), (json!(4), -32600));
    svc.shutdown().await;
}

#[tokio::test]
async fn add_and_sleep_ms() {
    let (_dir, svc) = start().await;
    let cases = [
        (r#"[2, 3]"#, "5"),
        (r#"{"a": -7, "b": 2}"#, "-5"),
        (r#"[1.5, 1]"#, "2.5"),
        (r#"[18446744073709551615, 0]"#, "18446744073709551615"),
    ];
    for (params, sum) in cases {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"add","params":{params}}}"#);
        let (_, text) = rpc(svc.path(), &body).await;
        assert_eq!(
            text,
            format!(r#"{{"jsonrpc":"2.0","id":1,"result":{sum}}}"#)
        );
    }
    let started = std::time::Instant::now();
    let v = rpc_json(
        svc.path(),
        r#"{"jsonrpc":"2.0","id":1,"method":"sleep_ms","params":{"ms":50}}"#,
    );
    assert_eq!(v.await["result"], 50);
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    let v = rpc_json(
        svc.path(),
        r#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#,
    )
    .await;
    assert_eq!(v["result"]["info"]["title"], "Hero example service");
    svc.shutdown().await;
}

#[tokio::test]
async fn http_endpoints() {
    let (_dir, svc) = start().await;
    let get = |uri| call(svc.path(), "GET", uri, Bytes::new());
    let (status, text) = get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"status": "ok", "service": "demo", "version": env!("CARGO_PKG_VERSION")})
    );

    let v: Value = serde_json::from_str(&get("/.well-known/heroservice.json").await.1).unwrap();
    assert_eq!(
        (&v["protocol"], &v["name"], &v["socket"]),
        (&json!("openrpc"), &json!("demo"), &json!("rpc"))
    );
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    let v: Value = serde_json::from_str(&get("/openrpc.json").await.1).unwrap();
    assert_eq!(v["openrpc"], "1.3.2");
    let names: Vec<&str> = v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "sleep_ms", "add", "fail", "rpc.discover"]);

    let v: Value = serde_json::from_str(&get("/headers?a=1&b=2").await.1).unwrap();
    assert_eq!(
        (&v["x-hero-test"], &v["path"], &v["query"]),
        (&json!("yes"), &json!("/headers"), &json!("a=1&b=2"))
    );

    let (status, text) = get("/sse?n=3&interval_ms=1").await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("data:")).collect();
    assert_eq!(
        events,
        [
            r#"data: {"seq":0}"#,
            r#"data: {"seq":1}"#,
            r#"data: {"seq":2}"#
        ]
    );

    let (status, text) = call(svc.path(), "POST", "/upload", vec![7u8; 3 << 20]).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"bytes":3145728}"#)
    );

    let (status, text) = get("/nope").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, r#"{"error":"not found"}"#)
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn shutdown_removes_socket_but_keeps_lock() {
    let (dir, svc) = start().await;
    let path = svc.path().to_path_buf();
    assert_eq!(path, dir.path().join("demo").join("rpc.sock"));
    assert!(path.exists());
    // A second instance on the same path is refused while the first runs.
    let mut second = ServiceConfig::new(dir.path(), "demo");
    second.bind.lock_wait = std::time::Duration::from_millis(20);
    let err = spawn(second).await.unwrap_err();
    assert!(format!("{err:#}").contains("owned by another"), "{err:#}");
    svc.shutdown().await;
    assert!(!path.exists());
    assert!(hero_socket::lock_path(&path).exists());
    // And the path can be owned again.
    let again = spawn(ServiceConfig::new(dir.path(), "demo")).await.unwrap();
    assert_eq!(
        call(again.path(), "GET", "/health", Bytes::new()).await.0,
        StatusCode::OK
    );
    again.shutdown().await;
}
