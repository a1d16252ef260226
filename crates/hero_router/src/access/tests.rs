use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| parse_entry(s).unwrap()).collect()
}

#[test]
fn entries_parse_to_networks() {
    let cases = [
        ("10.0.0.1", "10.0.0.1/32"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("::1", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("mycelium", "400::/7"),
        ("MYCELIUM", "400::/7"),
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ];
    for (entry, want) in cases {
        assert_eq!(parse_entry(entry).unwrap().to_string(), want, "{entry}");
    }
    for bad in [
        "",
        "10.0.0.256",
        "10.0.0.0/33",
        "::1/129",
        "localhost",
        "10.0.0.0/",
        "/8",
        "10.0.0.0/8/8",
        "1.2.3.4 5.6.7.8",
        "myceliumx",
    ] {
        let e = parse_entry(bad).unwrap_err();
        assert!(e.to_string().contains("is not an IP address"), "{bad}: {e}");
    }
}

#[test]
fn files_skip_comments_and_blank_lines_and_name_the_bad_line() {
    let text = "# who may call\n\n10.0.0.0/8   # the lan\n  mycelium\n::1\n";
    assert_eq!(
        parse_file(text).unwrap(),
        nets(&["10.0.0.0/8", "400::/7", "::1"])
    );
    let e = parse_file("10.0.0.1\n# ok\nnope\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.to_string().starts_with("line 3: \"nope\""), "{e}");
    assert_eq!(parse_file("").unwrap(), vec![]);
}

#[test]
fn an_empty_list_allows_everyone_and_a_list_only_its_networks() {
    let open = AllowList::default();
    assert!(open.allows(ip("203.0.113.9")));
    let list = AllowList::new(nets(&["127.0.0.0/8", "::1", "mycelium"]));
    assert!(list.allows(ip("127.0.0.1")));
    assert!(list.allows(ip("127.9.9.9")));
    assert!(list.allows(ip("::1")));
    assert!(list.allows(ip("::ffff:127.0.0.1")), "mapped as IPv4");
    assert!(list.allows(ip("400::1")));
    assert!(list.allows(ip("5ff:ffff::1")));
    assert!(!list.allows(ip("600::1")));
    assert!(!list.allows(ip("128.0.0.1")));
    assert!(!list.allows(ip("::2")));
    assert!(!list.allows(ip("::ffff:10.0.0.1")));
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusted = nets(&["10.0.0.0/8"]);
    let xff: &[&[u8]] = &[b"203.0.113.7, 10.0.0.5"];
    // An untrusted peer: its header is ignored, whatever it says.
    assert_eq!(
        client_of(ip("198.51.100.1"), xff, &trusted),
        Some(ip("198.51.100.1"))
    );
    // A trusted peer: right to left, skipping the trusted hops.
    assert_eq!(
        client_of(ip("10.0.0.1"), xff, &trusted),
        Some(ip("203.0.113.7"))
    );
    // Several header lines are one list; the last line is the nearest hop.
    let lines: &[&[u8]] = &[b"192.0.2.1", b"203.0.113.7"];
    assert_eq!(
        client_of(ip("10.0.0.1"), lines, &trusted),
        Some(ip("203.0.113.7"))
    );
    // A spoofed left-most entry does not matter: the right-most untrusted one is the client.
    let spoofed: &[&[u8]] = &[b"127.0.0.1, 203.0.113.7"];
    assert_eq!(
        client_of(ip("10.0.0.1"), spoofed, &trusted),
        Some(ip("203.0.113.7"))
    );
    // No header from a trusted proxy: the proxy itself is the client.
    assert_eq!(
        client_of(ip("10.0.0.1"), &[], &trusted),
        Some(ip("10.0.0.1"))
    );
    // Garbage or only proxies: unknown.
    let garbage: &[&[u8]] = &[b"203.0.113.7, bogus"];
    assert_eq!(client_of(ip("10.0.0.1"), garbage, &trusted), None);
    let only_proxies: &[&[u8]] = &[b"10.0.0.2, 10.0.0.3"];
    assert_eq!(client_of(ip("10.0.0.1"), only_proxies, &trusted), None);
    // Mapped peers and entries are IPv4.
    let mapped: &[&[u8]] = &[b"::ffff:203.0.113.7"];
    assert_eq!(
        client_of(ip("::ffff:10.0.0.1"), mapped, &trusted),
        Some(ip("203.0.113.7"))
    );
    // The hop cap: a long chain of proxies is not walked past MAX_FORWARDED_HOPS.
    let long = format!(
        "203.0.113.7, {}",
        vec!["10.0.0.9"; MAX_FORWARDED_HOPS].join(", ")
    );
    let long: &[&[u8]] = &[long.as_bytes()];
    assert_eq!(client_of(ip("10.0.0.1"), long, &trusted), None);
}

#[test]
fn check_uses_flags_and_file_and_reloads() {
    let access = Access::new(nets(&["127.0.0.2/32"]), vec![], vec![]);
    assert!(access.check(ip("127.0.0.2"), &[]).is_ok());
    let denied = access.check(ip("127.0.0.1"), &[]).unwrap_err();
    assert_eq!(denied.address(), "127.0.0.1");
    access.set_file(nets(&["127.0.0.0/8"]));
    assert!(access.check(ip("127.0.0.1"), &[]).is_ok());
    assert!(access.check(ip("127.0.0.2"), &[]).is_ok(), "flags stay");
    access.set_file(vec![]);
    assert!(access.check(ip("127.0.0.1"), &[]).is_err());
    assert!(Access::open().check(ip("192.0.2.1"), &[]).is_ok());
}

#[test]
fn check_through_a_trusted_proxy() {
    let access = Access::new(nets(&["192.0.2.0/24"]), vec![], nets(&["127.0.0.1"]));
    let from = |xff: &'static str| {
        let v: &[&[u8]] = &[xff.as_bytes()];
        access.check(ip("127.0.0.1"), v).map_err(|d| d.address())
    };
    assert_eq!(from("192.0.2.5"), Ok(()));
    assert_eq!(from("198.51.100.5"), Err("198.51.100.5".into()));
    // The proxy itself is not in the list: with no header it is denied as itself.
    assert_eq!(
        access.check(ip("127.0.0.1"), &[]).map_err(|d| d.address()),
        Err("127.0.0.1".into())
    );
}

#[tokio::test(start_paused = true)]
async fn denials_are_logged_once_a_minute_per_address() {
    let access = Access::new(nets(&["10.0.0.0/8"]), vec![], vec![]);
    let count = || access.logged.lock().unwrap().len();
    for _ in 0..100 {
        assert!(access.check(ip("192.0.2.1"), &[]).is_err());
    }
    assert_eq!(count(), 1);
    let first = access.logged.lock().unwrap()[&ip("192.0.2.1")];
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(access.check(ip("192.0.2.1"), &[]).is_err());
    assert_eq!(access.logged.lock().unwrap()[&ip("192.0.2.1")], first);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(access.check(ip("192.0.2.1"), &[]).is_err());
    assert!(access.logged.lock().unwrap()[&ip("192.0.2.1")] > first);
    // Memory stays bounded under a flood of distinct addresses.
    for i in 0..(LOG_MEMORY as u32 + 500) {
        let _ = access.check(
            IpAddr::from(std::net::Ipv4Addr::from(0xC000_0000u32 + i)),
            &[],
        );
    }
    assert!(count() <= LOG_MEMORY);
}

/// A writer that keeps every log line, for counting them.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Past [`LOG_MEMORY`] addresses denied within a minute (one IPv6 /64 has more), the log does
/// not fall back to a line per denial: the addresses it cannot remember share a line a second.
#[tokio::test(start_paused = true)]
async fn denials_past_the_memory_share_a_line_a_second() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let denied = || {
        String::from_utf8(lines.0.lock().unwrap().clone())
            .unwrap()
            .matches("access denied")
            .count()
    };
    let access = Access::new(nets(&["10.0.0.0/8"]), vec![], vec![]);
    for i in 0..LOG_MEMORY as u32 {
        let _ = access.check(
            IpAddr::from(std::net::Ipv4Addr::from(0xC000_0000u32 + i)),
            &[],
        );
    }
    assert_eq!(denied(), LOG_MEMORY, "one line per address");
    for _ in 0..200 {
        assert!(access.check(ip("198.51.100.7"), &[]).is_err());
    }
    assert_eq!(
        denied(),
        LOG_MEMORY + 1,
        "one line for 200 denials past the memory"
    );
    let last = || {
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().last().unwrap().to_owned()
    };
    // A burst that ends is counted a second later, without waiting for another denial.
    access.flush_suppressed();
    assert_eq!(denied(), LOG_MEMORY + 1, "not within the second");
    tokio::time::advance(Duration::from_secs(1)).await;
    access.flush_suppressed();
    assert_eq!(denied(), LOG_MEMORY + 2);
    assert!(last().contains("199 more denials"), "{}", last());
    access.flush_suppressed();
    assert_eq!(denied(), LOG_MEMORY + 2, "said once");
    // The next denial past the memory has its line, counting none left unsaid.
    assert!(access.check(ip("198.51.100.8"), &[]).is_err());
    assert_eq!(denied(), LOG_MEMORY + 3);
    assert!(last().contains("suppressed=0"), "{}", last());
}
