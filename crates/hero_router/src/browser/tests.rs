use super::*;

fn names() -> Names {
    let listeners: Vec<SocketAddr> = vec![
        "127.0.0.1:9988".parse().unwrap(),
        "[::1]:9989".parse().unwrap(),
        "[400::1]:9988".parse().unwrap(),
    ];
    Names::new(
        &listeners,
        &["router.example.com".into(), "*.node.lan".into()],
    )
}

#[test]
fn the_routers_names_and_no_other() {
    let n = names();
    for ok in [
        "127.0.0.1",
        "127.0.0.1:9988",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:9989",
        "[400::1]:9988",
        "localhost",
        "LOCALHOST:9988",
        "localhost.",
        "foo.localhost:9989",
        "a.b.localhost",
        "router.example.com",
        "Router.Example.Com:443",
        "svc.node.lan",
        "a.b.node.lan:80",
    ] {
        assert!(n.knows(ok.as_bytes()), "{ok}");
    }
    for no in [
        "attacker.example",
        "attacker.example:9988",
        "localhost.attacker.example",
        "127.0.0.2",
        "[::2]:9989",
        "10.0.0.1",
        "node.lan",
        "evilnode.lan",
        "example.com",
        "xrouter.example.com",
        "",
        ":9988",
        "[::1",
        "\u{1F600}",
    ] {
        assert!(!n.knows(no.as_bytes()), "{no}");
    }
    assert!(!n.knows(b"\xff\xfe"), "not UTF-8");
    // An IPv4-mapped literal is its IPv4 address.
    assert!(n.knows(b"[::ffff:127.0.0.1]:9988"));
}

#[test]
fn an_unspecified_listener_takes_any_ip_literal_but_no_other_name() {
    let n = Names::new(&["0.0.0.0:9988".parse().unwrap()], &[]);
    assert!(n.knows(b"10.1.2.3:9988") && n.knows(b"[fe80::1]"));
    assert!(!n.knows(b"attacker.example:9988"));
}

#[test]
fn an_origin_is_only_the_one_the_request_was_sent_to() {
    let host = Some(&b"127.0.0.1:9989"[..]);
    let ok = |origin: Option<&str>, site: Option<&str>| {
        check_origin(
            origin.map(str::as_bytes).into_iter(),
            site.map(str::as_bytes).into_iter(),
            host,
        )
        .is_ok()
    };
    let origins = [
        None,
        Some("http://127.0.0.1:9989"),
        Some("https://127.0.0.1:9989"),
        Some("HTTP://127.0.0.1:9989"),
        Some("http://127.0.0.1:9988"),
        Some("http://attacker.example"),
        Some("null"),
        Some("127.0.0.1:9989"),
    ];
    let sites = [
        None,
        Some("same-origin"),
        Some("same-site"),
        Some("none"),
        Some("cross-site"),
        Some("CROSS-SITE"),
    ];
    // Every combination of origin and fetch site.
    for origin in origins {
        for site in sites {
            let cross = site.is_some_and(|s| {
                s.eq_ignore_ascii_case("cross-site") || s.eq_ignore_ascii_case("same-site")
            });
            let own = matches!(
                origin,
                Some("http://127.0.0.1:9989") | Some("https://127.0.0.1:9989")
            );
            let want = !cross && (origin.is_none() || own);
            assert_eq!(ok(origin, site), want, "{origin:?} {site:?}");
        }
    }
    // Browsers write the scheme in lower case; `HTTP://` above is not a page's origin.
    let none = || std::iter::empty::<&[u8]>();
    assert!(
        check_origin([&b"http://x"[..]].into_iter(), none(), None).is_err(),
        "no host"
    );
    assert_eq!(
        check_origin(none(), [&b"cross-site"[..]].into_iter(), host),
        Err("a cross-site page".to_owned())
    );
    assert_eq!(
        check_origin(none(), [&b"Same-Site"[..]].into_iter(), host),
        Err("a same-site page".to_owned())
    );
}

#[test]
fn a_header_given_twice_is_refused_whichever_comes_first() {
    let host = Some(&b"127.0.0.1:9988"[..]);
    let own = &b"http://127.0.0.1:9988"[..];
    let evil = &b"http://evil.example"[..];
    let none = || std::iter::empty::<&[u8]>();
    for pair in [[own, evil], [evil, own], [own, own]] {
        let refused = check_origin(pair.into_iter(), none(), host).unwrap_err();
        assert!(refused.contains("two Origin headers"), "{refused}");
    }
    let sites = [&b"same-origin"[..], b"same-origin"];
    assert!(check_origin([own].into_iter(), sites.into_iter(), host).is_err());
    assert!(check_origin([own].into_iter(), none(), host).is_ok());
}

#[test]
fn csp_hashes_are_sha256_base64() {
    // The hash of "alert(1)", as browsers compute it.
    assert_eq!(
        html_csp(&["alert(1)"], &[]),
        "default-src 'none'; script-src 'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='; \
             style-src 'none'; connect-src 'self'; worker-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    );
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foob"), "Zm9vYg==");
}

/// The per-connection memo answers as `knows` does, for a repeat and after a change of host,
/// and never remembers a refusal.
#[test]
fn known_host_memo_answers_as_knows_does() {
    let n = names();
    let hosts: [&[u8]; 8] = [
        b"127.0.0.1:9988",
        b"127.0.0.1:9988",
        b"evil.example:9988",
        b"evil.example:9988",
        b"Router.Example.com",
        b"127.0.0.1:9988",
        b"a.node.lan",
        b"node.lan",
    ];
    let mut memo = KnownHost::default();
    for h in hosts {
        assert_eq!(
            memo.check(&n, h),
            n.knows(h),
            "{:?}",
            String::from_utf8_lossy(h)
        );
    }
    let mut fresh = KnownHost::default();
    assert!(
        !fresh.check(&n, b""),
        "an empty host is no name, memo or not"
    );
    assert!(!fresh.check(&n, b""));
}
