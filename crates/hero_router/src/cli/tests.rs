use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert!(parse_size("").is_err());
    assert!(parse_size("12XB").is_err());
    assert!(parse_size("-1").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
    // Any case; the message lists every unit it takes.
    assert_eq!(parse_size("64kib"), Ok(65536));
    assert_eq!(parse_size("2 mb"), Ok(2_000_000));
    assert_eq!(parse_size("1g"), Ok(1 << 30));
    let e = parse_size("1.5MiB").unwrap_err();
    assert!(e.contains("whole numbers only"), "{e}");
    let e = parse_size("3TiB").unwrap_err();
    assert!(e.contains("KiB (or K)") && e.contains("KB, MB, GB"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn defaults_match_the_contract() {
    let cli = Cli::try_parse_from(["hero_router", "serve"]).unwrap();
    let Command::Serve(s) = cli.command else {
        panic!("serve")
    };
    assert_eq!(
        s.listen,
        vec![ListenAddr::Addr("127.0.0.1:9988".parse().unwrap())]
    );
    assert_eq!(s.scan_interval, Duration::from_secs(5));
    assert_eq!(s.probe.probe_timeout, Duration::from_secs(1));
    assert_eq!(s.probe.stale_after, 3);
    assert_eq!(s.probe.reap_grace, Duration::from_secs(10));
    assert_eq!(s.upstream_timeout, Duration::from_secs(10));
    assert_eq!(s.shutdown_grace, Duration::from_secs(10));
    assert_eq!(s.catalog_timeout, Duration::from_secs(2));
    assert_eq!(s.catalog_refresh, Duration::from_secs(300));
    assert_eq!(s.max_body, 16 << 20);
    assert_eq!(
        (s.max_connections, s.max_connections_per_client),
        (1024, 64)
    );
    assert!(!s.no_reap && !s.no_tcp && !s.trust_forwarded_headers);
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["hero_router", "serve", "--scan-interval", "often"][..],
        &["hero_router", "serve", "--scan-interval", "0s"],
        &["hero_router", "serve", "--upstream-timeout", "0ms"],
        &["hero_router", "scan", "--probe-timeout", "0"],
        &["hero_router", "serve", "--stale-after", "0"],
        &["hero_router", "serve", "--max-body", "lots"],
        &["hero_router", "serve", "--max-connections-per-client", "0"],
        &["hero_router", "serve", "--listen", "nowhere"],
        &["hero_router", "scan", "--log-format", "xml"],
        // PARAMS_JSON that is not JSON, or not an array or object: no call is made.
        &["hero_router", "call", "svc", "echo", "{bad"],
        &["hero_router", "call", "svc", "echo", "5"],
        &["hero_router", "call", "svc", "echo", "\"text\""],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn params_are_an_array_or_an_object() {
    let raw = |s: &str| parse_params(s).map(|r| r.get().to_owned());
    assert_eq!(raw(" [1, 2] "), Ok("[1, 2]".to_owned()));
    assert_eq!(raw(r#"{"a": 1}"#), Ok(r#"{"a": 1}"#.to_owned()));
    // Sent as written: no number goes through a double.
    let wide = "[12345678901234567890123, 0.1000000000000000055511151231257827, 1e2]";
    assert_eq!(raw(wide), Ok(wide.to_owned()));
    assert!(raw("[1e400]").unwrap_err().contains("not valid JSON"));
    assert!(
        parse_params("null")
            .unwrap_err()
            .contains("array or object")
    );
    assert!(parse_params("[1").unwrap_err().contains("not valid JSON"));
}

#[test]
fn access_log_formats_parse_and_empty_is_the_default() {
    use crate::traffic::AccessLogFormat;
    assert_eq!(parse_access_log("json"), Ok(AccessLogFormat::Json));
    assert_eq!(parse_access_log("OFF"), Ok(AccessLogFormat::Off));
    assert_eq!(parse_access_log(""), Ok(AccessLogFormat::Text));
    assert!(
        parse_access_log("yaml")
            .unwrap_err()
            .contains("off, text or json")
    );
}

#[test]
fn terminal_safe_escapes_controls_and_bidi_overrides_only() {
    use super::terminal_safe;
    assert!(matches!(
        terminal_safe("plain – ünïcode ✓"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(terminal_safe("a\nb"), r"a\u{a}b");
    assert_eq!(terminal_safe("\u{1b}[31m"), r"\u{1b}[31m");
    assert_eq!(
        terminal_safe("x\u{9b}y\u{202e}z\u{2066}"),
        r"x\u{9b}y\u{202e}z\u{2066}"
    );
    assert_eq!(terminal_safe("a\u{2028}b\u{200f}c"), r"a\u{2028}b\u{200f}c");
}

#[test]
fn a_duration_longer_than_ten_years_is_refused_not_an_overflow() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert!(parse_duration("3650d").is_ok());
    for huge in ["18446744073709551615s", "3651d", "99999999999999h"] {
        let e = parse_duration(huge).unwrap_err();
        assert!(
            e.contains("ten years") || e.contains("invalid duration"),
            "{huge}: {e}"
        );
        assert!(parse_positive_duration(huge).is_err(), "{huge}");
    }
}

#[test]
fn terminal_safe_lines_keeps_line_breaks_and_tabs() {
    assert!(matches!(
        terminal_safe_lines("# t\n\tx ✓\n"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(
        terminal_safe_lines("a\u{1b}]0;x\u{7}\nb\u{7f}\u{202e}c\r\n"),
        "a\\u{1b}]0;x\\u{7}\nb\\u{7f}\\u{202e}c\\u{d}\n"
    );
}

/// Differential, against `serde_json`'s parser: JSON whose strings hold every character a
/// terminal must not see raw (as a service may send them: JSON lets DEL, C1 controls,
/// separators and direction controls stand unescaped) comes out as the same value, with
/// none of them left and everything else byte for byte.
#[test]
fn terminal_safe_json_keeps_the_value_and_leaves_nothing_for_the_terminal() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let risky = [
        '\u{7f}', '\u{80}', '\u{85}', '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{200e}',
        '\u{200f}', '\u{061c}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
    ];
    let plain = [
        'a', 'é', '∑', '😀', '"', '\\', '\n', '\u{1b}', '\u{a0}', '\u{2030}',
    ];
    for case in 0..cases.min(100_000) {
        // A value of strings (keys too) mixing both kinds, serialized by serde_json (which
        // escapes C0 controls, `"` and `\` and leaves the rest raw) as compact or pretty text.
        let mut string = || {
            (0..rng.usize(..8))
                .map(|_| {
                    if rng.bool() {
                        risky[rng.usize(..risky.len())]
                    } else {
                        plain[rng.usize(..plain.len())]
                    }
                })
                .collect::<String>()
        };
        let value = serde_json::json!({ string(): [string(), { string(): string() }, 1e2] });
        let text = if rng.bool() {
            serde_json::to_string(&value).unwrap()
        } else {
            serde_json::to_string_pretty(&value).unwrap()
        };
        let safe = terminal_safe_json(&text);
        let context = || format!("seed {seed} case {case}: {text:?} -> {safe:?}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value,
            "{}",
            context()
        );
        assert!(!safe.chars().any(|c| risky.contains(&c)), "{}", context());
        let risky_in_text = text.chars().filter(|c| risky.contains(c)).count();
        assert_eq!(
            safe.len(),
            text.len() + risky_in_text * 6
                - text
                    .chars()
                    .filter(|c| risky.contains(c))
                    .map(char::len_utf8)
                    .sum::<usize>(),
            "every risky character is one six-byte escape, nothing else changed: {}",
            context()
        );
    }
}
