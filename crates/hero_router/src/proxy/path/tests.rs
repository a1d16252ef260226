use super::*;

fn route<'a>(path: &'a str, query: Option<&'a str>) -> Route<'a> {
    parse(path, query).unwrap().unwrap()
}

/// The request target the router writes upstream: the route's path and query, joined as
/// `http1::write_upstream_head` joins them.
fn target(r: &Route<'_>) -> String {
    match r.query {
        Some(q) => format!("{}?{q}", r.path),
        None => r.path.to_owned(),
    }
}

#[test]
fn routes_strip_the_prefix_and_keep_the_query() {
    let r = route("/svc/rpc/a/b%20c/", Some("x=1&y=%2F"));
    assert_eq!((r.service.as_ref(), r.kind.as_ref()), ("svc", "rpc"));
    assert!(
        matches!(r.service, Cow::Borrowed(_)),
        "nothing to decode, nothing copied"
    );
    assert_eq!(target(&r), "/a/b%20c/?x=1&y=%2F");
    assert_eq!(target(&route("/svc/admin", None)), "/");
    assert_eq!(target(&route("/svc/admin/", None)), "/");
    assert_eq!(route("/svc/docs/index.html", None).kind, "docs");
    assert_eq!(route("/sv%63/rpc/x", None).service, "svc");
}

#[test]
fn non_routes() {
    assert_eq!(parse("/", None), Ok(None));
    assert_eq!(parse("/svc", None), Ok(None));
    assert_eq!(parse("/svc/", None), Ok(None));
}

#[test]
fn hostile_paths_are_rejected() {
    for p in [
        "/svc/rpc/../x",
        "/svc/rpc/%2e%2e/x",
        "/svc/rpc/%2E%2e",
        "/svc/rpc/.",
        "/../etc/passwd",
        "/svc/rpc/a%2fb",
        "/svc/rpc/a%2Fb",
        "/svc/rpc/a%00b",
        "/svc/rpc/a\0b",
        "/svc/rpc/%ff",
        "/svc/rpc/a%5cb",
        "/svc/rpc/a\\b",
        "/svc/%2e%2e/x",
    ] {
        assert!(matches!(parse(p, None), Err(PathError::Bad(_))), "{p}");
    }
    assert_eq!(parse("/bad.name/rpc/x", None), Err(PathError::BadService));
    assert_eq!(parse("/_x/rpc/x", None), Err(PathError::BadService));
    assert_eq!(parse("/svc/r.p/x", None), Err(PathError::BadKind));
    assert_eq!(
        parse("no-slash", None),
        Err(PathError::Bad("path must start with /"))
    );
}

/// Random paths never panic, and whatever is accepted is safe to forward. `make fuzz`
/// runs 1,000,000 cases (`HERO_FUZZ_CASES`).
#[test]
fn parser_never_panics_and_never_lets_dots_through() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = [
        "/", ".", "..", "%2e", "%2E", "%2f", "%00", "%", "%ff", "svc", "rpc", "a", "-", "_", "?",
        "\0", "é", "%c3%a9", "\\",
    ];
    for case in 0..cases {
        let path: String = (0..rng.usize(1..12))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let result = std::panic::catch_unwind(|| parse(&path, None));
        let Ok(result) = result else {
            panic!("seed {seed} case {case}: panic on {path:?}")
        };
        if let Ok(Some(r)) = result {
            let rest = percent_decode_str(&target(&r))
                .decode_utf8_lossy()
                .into_owned();
            assert!(
                !rest.split('/').any(|s| s == ".." || s == "."),
                "seed {seed}: {path:?} -> {rest:?}"
            );
            assert!(valid_service_name(&r.service));
        }
    }
    eprintln!("path parser: {cases} random cases without a panic (seed {seed})");
}

/// The parser as it was before its fast path for paths with nothing encoded: every segment
/// checked with [`check_segment`], the service and the kind always decoded.
fn parse_decoding_everything<'a>(
    path: &'a str,
    query: Option<&'a str>,
) -> Result<Option<Route<'a>>, PathError> {
    let Some(stripped) = path.strip_prefix('/') else {
        return Err(PathError::Bad("path must start with /"));
    };
    for seg in stripped.split('/') {
        check_segment(seg)?;
    }
    let mut parts = stripped.splitn(3, '/');
    let (Some(service_raw), Some(kind_raw)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    if service_raw.is_empty() || kind_raw.is_empty() {
        return Ok(None);
    }
    let service = decode(service_raw)?;
    if !valid_service_name(&service) {
        return Err(PathError::BadService);
    }
    let kind = decode(kind_raw)?;
    if !kind
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(PathError::BadKind);
    }
    let rest = &path[1 + service_raw.len() + 1 + kind_raw.len()..];
    Ok(Some(Route {
        service,
        kind,
        path: if rest.is_empty() { "/" } else { rest },
        query,
    }))
}

/// The fast path changes no outcome: random paths, plain and encoded, parse exactly as the
/// decoding parser parses them. `make fuzz` runs 1,000,000 cases (`HERO_FUZZ_CASES`).
#[test]
fn fast_path_agrees_with_decoding_everything() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = [
        "/", "/", "/", ".", "..", "%2e", "%2E", "%2f", "%5C", "%00", "%", "%ff", "%41", "svc",
        "rpc", "a", "-", "_", "\0", "é", "%c3%a9", "\\", "A",
    ];
    let mut plain = 0;
    for case in 0..cases {
        let path: String = (0..rng.usize(1..10))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        plain += usize::from(!path.contains(['%', '\\', '\0']));
        assert_eq!(
            parse(&path, Some("q")),
            parse_decoding_everything(&path, Some("q")),
            "seed {seed} case {case}: {path:?}"
        );
    }
    assert!(
        plain > 0 && plain < cases,
        "both paths taken ({plain} of {cases} plain)"
    );
}
