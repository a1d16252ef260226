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
        let (s, headers, body) = error_parts(&e);
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
