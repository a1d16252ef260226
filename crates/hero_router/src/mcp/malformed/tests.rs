use super::*;

fn parts(accept: &str) -> Parts {
    let (parts, ()) = http::Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts();
    parts
}

async fn body_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = crate::app::collect(r.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_parse_error() {
    for body in [&b"1e400"[..], b"{", b"", b"\xff"] {
        let mut p = parts("application/json, text/event-stream");
        let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
        assert_eq!(status, 400);
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        assert_eq!(v["id"], Value::Null);
    }
}

#[tokio::test]
async fn tools_call_arguments_that_are_not_an_object_are_invalid_params() {
    let cases = [
        (
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "add", "arguments": [1, 2]}}),
            "not an array",
        ),
        (
            json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call",
                "params": {"name": "add", "arguments": "a=1"}}),
            "not a string",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]}),
            "not an array",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}),
            "\"name\"",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
            "needs params",
        ),
    ];
    for (req, says) in cases {
        let mut p = parts("application/json, text/event-stream");
        let answer = precheck(&mut p, req.to_string().as_bytes(), "rid").unwrap();
        let (status, v) = body_of(answer).await;
        assert_eq!(status, 200);
        assert_eq!(v["error"]["code"], INVALID_PARAMS, "{req}");
        assert_eq!(v["id"], req["id"]);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert_eq!(v["error"]["data"]["request_id"], "rid", "{v}");
    }
    // Well-formed calls and other methods go on.
    for req in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add"}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "add", "arguments": {"a": 1}}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "x"}}),
    ] {
        let mut p = parts("application/json, text/event-stream");
        assert!(
            precheck(&mut p, req.to_string().as_bytes(), "rid").is_none(),
            "{req}"
        );
    }
}

#[test]
fn an_accept_of_json_alone_is_widened_and_others_are_left_alone() {
    let ok = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for (given, want) in [
        ("application/json", "application/json, text/event-stream"),
        (
            "Application/JSON;charset=utf-8",
            "Application/JSON;charset=utf-8, text/event-stream",
        ),
        (
            "application/json, text/event-stream",
            "application/json, text/event-stream",
        ),
        ("*/*", "*/*, application/json, text/event-stream"),
        (
            "application/*",
            "application/*, application/json, text/event-stream",
        ),
        ("text/html", "text/html"),
        ("application/json;q=0", "application/json;q=0"),
    ] {
        let mut p = parts(given);
        assert!(precheck(&mut p, ok, "rid").is_none());
        assert_eq!(p.headers["accept"], want, "{given}");
    }
}

#[tokio::test]
async fn a_plain_text_refusal_becomes_a_json_rpc_error_with_its_status() {
    let mut plain = Response::new(crate::app::full(
        "Unsupported Media Type: need application/json",
    ));
    *plain.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    plain
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let (status, v) = body_of(json_refusal(plain, "rid").await).await;
    assert_eq!(status, 415);
    assert_eq!(v["error"]["code"], INVALID_REQUEST);
    assert_eq!(
        v["error"]["message"],
        "Unsupported Media Type: need application/json"
    );
    // JSON answers and successes pass as they are.
    let mut ok = Response::new(crate::app::full("{}"));
    ok.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (status, v) = body_of(json_refusal(ok, "rid").await).await;
    assert_eq!((status, v), (200, json!({})));
}

/// A batch (or any message that is no object) is a 400 `-32600` that says MCP over HTTP takes
/// one message per request, not rmcp's 415, which blames the media type.
#[tokio::test]
async fn a_batch_is_an_invalid_request_not_a_media_type() {
    for (body, says) in [
        (
            &br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#[..],
            "one JSON-RPC message per request",
        ),
        (&b"[]"[..], "one JSON-RPC message per request"),
        (&b"7"[..], "not a number"),
    ] {
        let mut p = parts("application/json, text/event-stream");
        let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
        assert_eq!(
            (status, &v["error"]["code"]),
            (400, &json!(INVALID_REQUEST)),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
        assert_eq!(v["error"]["data"]["request_id"], "rid");
    }
}

/// A JSON object that is no JSON-RPC message is 400 `-32600` saying why, under its id when it
/// has a usable one: rmcp said 415, which blames the media type.
#[tokio::test]
async fn a_message_that_is_no_json_rpc_is_an_invalid_request() {
    for (body, id, says) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            None,
            None,
        ),
        (
            r#"{"id":1,"method":"tools/list"}"#,
            Some(json!(1)),
            Some("jsonrpc"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}"#,
            Some(Value::Null),
            Some("id"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            Some(json!(1)),
            Some("method"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":5}"#,
            Some(json!(1)),
            Some("params"),
        ),
    ] {
        let mut p = parts("application/json, text/event-stream");
        let answer = precheck(&mut p, body.as_bytes(), "rid");
        let (Some(id), Some(says)) = (id, says) else {
            // A well-formed message (params may be an array in JSON-RPC) goes on to rmcp.
            assert!(answer.is_none(), "{body}");
            continue;
        };
        let (status, v) = body_of(answer.expect(body)).await;
        assert_eq!(
            (status, &v["error"]["code"]),
            (400, &json!(INVALID_REQUEST)),
            "{body}: {v}"
        );
        assert_eq!(v["id"], id, "{body}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {v}"
        );
        assert_eq!(v["error"]["data"]["request_id"], "rid");
    }
}

/// MCP's params are an object: an array is `-32602` under the request's id.
#[tokio::test]
async fn params_that_are_no_object_are_invalid_params() {
    let mut p = parts("application/json, text/event-stream");
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[1]}"#;
    let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
    assert_eq!(
        (status, &v["error"]["code"], &v["id"]),
        (200, &json!(INVALID_PARAMS), &json!(3))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an array"),
        "{v}"
    );
}

/// MCP's own rules past JSON-RPC's, which rmcp misreports (415 and the id lost, "method not
/// found", a first page served for a bad cursor): said as `-32600` or `-32602`, with the id
/// when there is a usable one.
#[tokio::test]
async fn mcp_ids_meta_initialize_and_cursors_are_checked() {
    for (body, status, code, id, says) in [
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            400,
            INVALID_REQUEST,
            Value::Null,
            "not null",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#,
            400,
            INVALID_REQUEST,
            Value::Null,
            "a fraction",
        ),
        (
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/list"}"#,
            400,
            INVALID_REQUEST,
            Value::Null,
            "string or an integer",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{},"_meta":5}}"#,
            200,
            INVALID_PARAMS,
            json!(1),
            "_meta",
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"initialize"}"#,
            200,
            INVALID_PARAMS,
            json!(2),
            "initialize needs params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
            200,
            INVALID_PARAMS,
            json!(4),
            "clientInfo",
        ),
        (
            r#"{"jsonrpc":"2.0","id":"c","method":"tools/list","params":{"cursor":5}}"#,
            200,
            INVALID_PARAMS,
            json!("c"),
            "cursor",
        ),
    ] {
        let mut p = parts("application/json, text/event-stream");
        let answer = precheck(&mut p, body.as_bytes(), "rid").expect(body);
        let (got, v) = body_of(answer).await;
        assert_eq!(
            (got, &v["error"]["code"]),
            (status, &json!(code)),
            "{body}: {v}"
        );
        assert_eq!(v["id"], id, "{body}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {v}"
        );
    }
    // What MCP allows goes on to rmcp.
    for body in [
        r#"{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{"cursor":"svc/100"}}"#,
        r#"{"jsonrpc":"2.0","id":-7,"method":"tools/list","params":{"_meta":{}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ] {
        let mut p = parts("application/json, text/event-stream");
        assert!(precheck(&mut p, body.as_bytes(), "rid").is_none(), "{body}");
    }
}

/// A POST whose Content-Type is not JSON is 415 whatever its method; JSON with parameters is
/// fine.
#[tokio::test]
async fn every_method_is_held_to_the_media_type() {
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
        let mut p = parts("application/json, text/event-stream");
        p.headers.remove("content-type");
        if let Some(t) = content_type {
            p.headers.insert("content-type", t.parse().unwrap());
        }
        let (status, v) = body_of(precheck(&mut p, list, "rid").unwrap()).await;
        assert_eq!(
            (status, &v["error"]["code"]),
            (415, &json!(INVALID_REQUEST)),
            "{content_type:?}"
        );
    }
    let mut p = parts("application/json, text/event-stream");
    p.headers.insert(
        "content-type",
        "Application/JSON; charset=utf-8".parse().unwrap(),
    );
    assert!(precheck(&mut p, list, "rid").is_none());
}

/// A response a client posts is 202 with no body; a message that only looks like one (no
/// id, no "jsonrpc") is not.
#[tokio::test]
async fn a_posted_response_is_accepted_and_dropped() {
    for body in [
        &br#"{"jsonrpc":"2.0","id":5,"result":{}}"#[..],
        br#"{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}"#,
    ] {
        let mut p = parts("application/json, text/event-stream");
        let r = precheck(&mut p, body, "rid").unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let bytes = crate::app::collect(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(bytes.is_empty());
    }
    for body in [
        &br#"{"jsonrpc":"2.0","result":{}}"#[..],
        br#"{"id":5,"result":{}}"#,
    ] {
        let mut p = parts("application/json, text/event-stream");
        let r = precheck(&mut p, body, "rid").unwrap();
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// A message that is both a request and a response is no JSON-RPC message (400, not rmcp's
/// 415); a response whose id MCP does not allow is refused, not accepted.
#[tokio::test]
async fn a_request_and_response_at_once_or_a_bad_response_id_is_invalid() {
    for body in [
        &br#"{"jsonrpc":"2.0","id":5,"result":{},"method":"tools/list"}"#[..],
        br#"{"jsonrpc":"2.0","method":"notifications/x","error":{"code":1,"message":"m"}}"#,
        br#"{"jsonrpc":"2.0","id":1.5,"result":{}}"#,
        br#"{"jsonrpc":"2.0","id":{"a":1},"result":{}}"#,
    ] {
        let mut p = parts("application/json, text/event-stream");
        let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
        let text = String::from_utf8_lossy(body);
        assert_eq!(
            (status, &v["error"]["code"]),
            (400, &json!(INVALID_REQUEST)),
            "{text}: {v}"
        );
    }
    let mut p = parts("application/json, text/event-stream");
    let r = precheck(
        &mut p,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#,
        "rid",
    );
    assert_eq!(r.unwrap().status(), StatusCode::ACCEPTED);
}

/// A notification whose params are wrong gets no JSON-RPC answer of its own: 400, the error
/// without an id (a request with the same params gets its error as its answer, 200).
#[tokio::test]
async fn a_notification_with_bad_params_is_refused_with_400() {
    let mut p = parts("application/json, text/event-stream");
    let body = br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":[1]}"#;
    let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
    assert_eq!((status, &v["id"]), (400, &Value::Null), "{v}");
    assert_eq!(v["error"]["code"], json!(INVALID_PARAMS));
    let mut p = parts("application/json, text/event-stream");
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[1]}"#;
    let (status, v) = body_of(precheck(&mut p, body, "rid").unwrap()).await;
    assert_eq!((status, &v["id"]), (200, &json!(3)), "{v}");
}
