use super::*;

#[test]
fn statuses_follow_the_contract() {
    let s = || "svc".to_string();
    let cases = [
        (ProxyError::BadPath(PathError::BadService), 400),
        (ProxyError::BodyTooLarge { limit: 1 }, 413),
        (ProxyError::NoService { service: s() }, 404),
        (
            ProxyError::NoSocket {
                service: s(),
                kind: "x".into(),
            },
            404,
        ),
        (
            ProxyError::Down {
                service: s(),
                detail: String::new(),
            },
            502,
        ),
        (ProxyError::Busy { service: s() }, 503),
        (ProxyError::Starting { root: "/r".into() }, 503),
        (ProxyError::Timeout { service: s() }, 504),
        (ProxyError::Request(RequestError::Framing("x")), 400),
        (
            ProxyError::Request(RequestError::HeadTooLarge { limit: 1 }),
            431,
        ),
        (ProxyError::BadBody(BadChunk("x")), 400),
        (ProxyError::OwnService, 404),
        (
            ProxyError::MethodNotAllowed {
                method: "PUT".into(),
                path: "/rpc".into(),
                allow: "POST",
            },
            405,
        ),
    ];
    for (e, status) in cases {
        let (s, headers, body) = error_parts_for(&e, None);
        assert_eq!(s.as_u16(), status, "{e:?}");
        assert_eq!(
            headers.iter().any(|(n, _)| *n == "retry-after"),
            status == 503
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], e.to_string());
        assert_eq!(v["service"].as_str(), e.service());
    }
}

#[test]
fn an_applications_error_body_gets_the_request_id() {
    let with = |body: &str| {
        with_request_id(body.as_bytes(), "0ABC").map(|b| String::from_utf8(b).unwrap())
    };
    // The router's own shape: beside "error", the members' order kept.
    assert_eq!(
        with(r#"{"error":"no such service: x","service":"x"}"#).as_deref(),
        Some(r#"{"error":"no such service: x","service":"x","request_id":"0ABC"}"#)
    );
    // A JSON-RPC error (the MCP gateway's): in its data, made an object if absent.
    assert_eq!(
        with(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32700,"message":"m"}}"#).as_deref(),
        Some(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32700,"message":"m","data":{"request_id":"0ABC"}}}"#
        )
    );
    assert_eq!(
        with(r#"{"error":{"code":1,"message":"m","data":{"k":2}}}"#).as_deref(),
        Some(r#"{"error":{"code":1,"message":"m","data":{"k":2,"request_id":"0ABC"}}}"#)
    );
    // Anything else goes as it is.
    for other in [
        "not json",
        "[1]",
        r#"{"message":"no error member"}"#,
        r#"{"error":"e","request_id":"mine"}"#,
        r#"{"error":{"code":1,"message":"m","data":[1]}}"#,
        r#"{"error":3}"#,
    ] {
        assert_eq!(with(other), None, "{other}");
    }
}
