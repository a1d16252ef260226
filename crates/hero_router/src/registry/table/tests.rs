use super::*;

fn sock(kind: &str, state: SocketState) -> Socket {
    Socket {
        kind: kind.into(),
        path: Arc::from(Path::new("")),
        state,
        since_unix_ms: 0,
        detail: "".into(),
        refused_streak: 0,
        reap_skipped: None,
        identity: None,
    }
}

#[test]
fn status_rules() {
    use ServiceStatus::*;
    use SocketState::*;
    let cases: &[(&[(&str, SocketState)], ServiceStatus)] = &[
        (&[("rpc", Live)], Healthy),
        (&[("rpc", Live), ("admin", Refused)], Healthy),
        (&[("rpc", Busy)], Degraded),
        (&[("rpc", Refused), ("admin", Live)], Unhealthy),
        (&[("rpc", Denied)], Unhealthy),
        (&[("rpc", NotSocket)], Unhealthy),
        (&[("admin", Live)], NonRpc),
        (&[("admin", Busy)], Unhealthy),
        (&[], Unhealthy),
    ];
    for (socks, want) in cases {
        let socks: Vec<_> = socks.iter().map(|(k, s)| sock(k, *s)).collect();
        assert_eq!(ServiceStatus::of(&socks), *want, "{socks:?}");
    }
}
