use std::time::{Duration, UNIX_EPOCH};

use super::log::{json_line, text_line};
use super::*;

#[test]
fn generated_ids_are_short_unique_and_sorted() {
    let ids: Vec<String> = (0..1000)
        .map(|_| RequestId::generate().as_str().to_owned())
        .collect();
    assert!(ids.iter().all(|id| id.len() == 16));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
}

#[test]
fn client_ids_are_kept_only_when_well_formed() {
    assert_eq!(RequestId::from_client(b"abc-1").unwrap().as_str(), "abc-1");
    assert!(RequestId::from_client(&[b'x'; 128]).is_some());
    for bad in [
        &b""[..],
        &[b'x'; 129],
        b"a b",
        b"caf\xc3\xa9",
        b"tab\t",
        b"nl\n",
    ] {
        assert!(RequestId::from_client(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn a_valid_traceparent_is_continued_with_a_new_span() {
    let tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let t = Trace::of([&tp[..]].into_iter());
    assert!(t.continued());
    let out = t.traceparent();
    let out = std::str::from_utf8(&out).unwrap();
    assert!(
        out.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{out}"
    );
    assert!(out.ends_with("-00"), "flags kept: {out}");
    assert_ne!(&out[36..52], "b7ad6b7169203331");
    // A later version may carry more fields.
    let v1 = b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more";
    assert!(Trace::of([&v1[..]].into_iter()).continued());
}

/// What the router writes as `traceparent` reads back as the same trace, span and flags (its
/// hex is the spec's lowercase), for random traces.
#[test]
fn a_written_traceparent_reads_back() {
    let mut rng = fastrand::Rng::new();
    for _ in 0..10_000 {
        let mut t = Trace::of(std::iter::empty());
        t.flags = rng.u8(..);
        let out = t.traceparent();
        let back = Trace::of([&out[..]].into_iter());
        assert_eq!(
            (back.trace_id, back.parent_id, back.flags),
            (t.trace_id, Some(t.span_id), t.flags),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let hex = t.trace_id_hex();
        assert_eq!(&hex[..], &out[3..35]);
    }
}

#[test]
fn a_malformed_traceparent_starts_a_new_trace() {
    let trace = "0af7651916cd43dd8448eb211c80319c";
    for bad in [
        format!("00-{trace}-b7ad6b7169203331-01-"),
        format!("ff-{trace}-b7ad6b7169203331-01"),
        format!("00-{trace}-b7ad6b7169203331-0"),
        format!("00_{trace}-b7ad6b7169203331-01"),
        format!("00-{trace}-0000000000000000-01"),
        format!("00-{}-b7ad6b7169203331-01", "0".repeat(32)),
        format!("00-{}-b7ad6b7169203331-01", trace.to_uppercase()),
    ] {
        let t = Trace::of([bad.as_bytes()].into_iter());
        assert!(!t.continued(), "{bad}");
        let hex = t.trace_id_hex();
        assert_ne!(std::str::from_utf8(&hex).unwrap(), trace, "{bad}");
        assert_eq!(t.flags, 1);
    }
    assert!(!Trace::of(std::iter::empty()).continued());
}

fn record() -> Record {
    Record {
        time: UNIX_EPOCH + Duration::from_millis(1_800_000_000_123),
        client: Some("10.0.0.7".parse().unwrap()),
        listener: "service",
        method: "POST".into(),
        path: "/a\"b".into(),
        http10: false,
        route: RouteLabel {
            service: Some("hero_router".into()),
            kind: Some("rpc".into()),
            methods: vec!["router.health".into(), "svc.x y".into()],
            tool: None,
        },
        status: 200,
        bytes_in: 120,
        bytes_out: 340,
        total: Duration::from_micros(1234),
        upstream: None,
        request_id: RequestId::from_client(b"rid-1").unwrap(),
        trace_id: *b"0af7651916cd43dd8448eb211c80319c",
        error: None,
    }
}

#[test]
fn a_text_line_is_combined_format_plus_the_route() {
    let mut line = String::new();
    text_line(&record(), &mut line);
    assert_eq!(
        line,
        "10.0.0.7 - - [2027-01-15T08:00:00.123Z] \"POST /a\\x22b HTTP/1.1\" 200 340 \
         route=hero_router/rpc:router.health,svc.x_y listener=service in=120 ms=1.234 \
         upstream_ms=- request_id=rid-1 trace_id=0af7651916cd43dd8448eb211c80319c"
    );
    // An exchange that went wrong says why, quoted, last: whatever the text holds, the line
    // stays one line and the field one field.
    let mut failed = record();
    failed.error = Some("service \"a\" broke: bad\nhead\u{1b}".into());
    let mut line = String::new();
    text_line(&failed, &mut line);
    assert!(
        line.ends_with(
            " trace_id=0af7651916cd43dd8448eb211c80319c error=\"service \\x22a\\x22 broke: bad\\x0Ahead\\x1B\""
        ),
        "{line}"
    );
    let mut text = String::new();
    json_line(&failed, &mut text);
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["error"], "service \"a\" broke: bad\nhead\u{1b}");
    let mut text = String::new();
    json_line(&record(), &mut text);
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(back.get("error").is_none(), "{text}");
}

#[test]
fn a_json_line_is_one_object_with_every_field() {
    let mut text = String::new();
    json_line(&record(), &mut text);
    assert!(!text.contains('\n'));
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["path"], "/a\"b");
    assert_eq!(
        back["methods"],
        serde_json::json!(["router.health", "svc.x y"])
    );
    assert_eq!(back["duration_ms"], 1.234);
    assert_eq!(back["upstream_ms"], serde_json::Value::Null);
    assert_eq!(back["client"], "10.0.0.7");
    assert_eq!(back["service"], "hero_router");
    assert_eq!(back["status"], 200);
    assert_eq!(back["request_id"], "rid-1");
    // Whatever a client put in its path stays one string.
    let mut odd = record();
    odd.path = "/a\u{1}\\\"\n\u{e9}".into();
    odd.client = None;
    odd.upstream = Some(Duration::from_micros(2500));
    let mut text = String::new();
    json_line(&odd, &mut text);
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["path"], "/a\u{1}\\\"\n\u{e9}");
    assert_eq!(back["client"], "unix");
    assert_eq!(back["upstream_ms"], 2.5);
}

/// What a request chose is cut before its record is queued: a line holds a few KiB at most,
/// whatever the path or the batch (4 MiB method names, a thousand calls) was.
#[test]
fn a_queued_record_holds_bounded_names_and_path() {
    use super::log::{MAX_ERROR, MAX_NAME, MAX_PATH};
    let mut r = record();
    r.path = format!("/{}", "p".repeat(1 << 20));
    r.route.methods = vec![format!("svc.{}", "m".repeat(4 << 20)); 1000];
    // A multi-byte character across the cut stays whole.
    r.route.tool = Some(format!(
        "{}é{}",
        "t".repeat(MAX_NAME - 1),
        "x".repeat(1 << 20)
    ));
    r.error = Some("e".repeat(1 << 20));
    r.bound();
    assert_eq!(r.path.len(), MAX_PATH + '…'.len_utf8());
    assert_eq!(
        r.error.as_ref().map(String::len),
        Some(MAX_ERROR + '…'.len_utf8())
    );
    assert!(r.path.ends_with('…'));
    assert_eq!(r.route.methods.len(), MAX_METHODS);
    assert!(
        r.route
            .methods
            .iter()
            .all(|m| m.len() == MAX_NAME + 3 && m.ends_with('…'))
    );
    let tool = r.route.tool.as_deref().unwrap();
    assert_eq!(tool, format!("{}…", "t".repeat(MAX_NAME - 1)));
    let mut line = String::new();
    text_line(&r, &mut line);
    assert!(line.len() < 16 * 1024, "{} bytes", line.len());
    // Short ones are untouched.
    let mut short = record();
    short.bound();
    assert_eq!(short.path, "/a\"b");
    assert_eq!(short.route.methods, ["router.health", "svc.x y"]);
    assert_eq!(label("svc.m"), "svc.m");
}

#[test]
fn the_log_off_takes_nothing() {
    let off = AccessLog::off();
    assert!(!off.is_on());
    let before = dropped();
    off.send(record());
    assert_eq!(dropped(), before, "off: nothing to drop");
}

// === per-service traffic ===

use super::stats::{
    BUCKETS, MAX_SERIES, RETAIN_ABSENT, SLOT_SECS, bucket_of, bucket_upper, quantile_ms,
};

#[test]
fn buckets_are_log_linear_and_contiguous() {
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(31), 0);
    assert_eq!(bucket_of(32), 1);
    for i in 1..BUCKETS - 1 {
        let upper = bucket_upper(i);
        assert_eq!(bucket_of(upper - 1), i, "bucket {i} ends below {upper}");
        assert_eq!(
            bucket_of(upper),
            i + 1,
            "bucket {} starts at {upper}",
            i + 1
        );
        // Two per octave: a bucket is at most half as wide as its lower bound.
        let lower = if i == 1 { 32 } else { bucket_upper(i - 1) };
        assert!(
            upper - lower <= lower / 2 + 1,
            "bucket {i}: {lower}..{upper}"
        );
    }
    assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
}

/// Within one bucket of the exact value.
fn near(got_ms: f64, want_ms: f64) -> bool {
    let got = bucket_of((got_ms * 1000.0) as u64 - 1) as i64;
    let want = bucket_of((want_ms * 1000.0) as u64) as i64;
    (got - want).abs() <= 1
}

#[test]
fn known_latencies_give_their_percentiles_within_a_bucket() {
    let t = Traffic::new();
    // 1..=1000 ms, shuffled by a fixed stride.
    for i in 0..1000u64 {
        let ms = (i * 379) % 1000 + 1;
        t.record("svc", Class::Ok, Duration::from_millis(ms), 42);
    }
    let totals = t.totals("svc", 1, 42).unwrap();
    assert_eq!(totals.requests, 1000);
    for (p, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
        let got = quantile_ms(&totals.buckets, p).unwrap();
        assert!(
            near(got, want),
            "p{p}: {got} ms, want {want} ms ± one bucket"
        );
    }
    // A bimodal service: p50 on the fast mode, p99 on the slow one.
    for i in 0..100u64 {
        let d = if i < 97 { 2 } else { 3000 };
        t.record("bi", Class::Ok, Duration::from_millis(d), 42);
    }
    let b = t.totals("bi", 1, 42).unwrap().buckets;
    assert!(near(quantile_ms(&b, 0.5).unwrap(), 2.0));
    assert!(near(quantile_ms(&b, 0.99).unwrap(), 3000.0));
    assert_eq!(quantile_ms(&[0; BUCKETS], 0.5), None);
}

#[test]
fn windows_count_what_is_in_them_and_forget_the_rest() {
    let t = Traffic::new();
    let at = |n: u32, secs: u64, class: Class| {
        for _ in 0..n {
            t.record("svc", class, Duration::from_millis(1), secs);
        }
    };
    at(7, 0, Class::Ok);
    at(10, 100, Class::Service4xx);
    at(20, 500, Class::Service5xx);
    at(30, 895, Class::Router);
    at(40, 899, Class::Ok);
    let report = t.report(899);
    let svc = &report["services"][0];
    assert_eq!(svc["name"], "svc");
    let w = &svc["windows"];
    assert_eq!(w["1m"]["requests"], 70, "{w}");
    assert_eq!(w["5m"]["requests"], 70, "{w}");
    // 15 minutes back from 899 s: the slot of second 0 is the 90th from the current one.
    assert_eq!(w["15m"]["requests"], 107, "{w}");
    assert_eq!(w["15m"]["errors"]["service_4xx"], 10);
    assert_eq!(w["15m"]["errors"]["service_5xx"], 20);
    assert_eq!(w["15m"]["errors"]["router"], 30);
    assert_eq!(w["1m"]["errors"]["router"], 30);
    assert_eq!(w["1m"]["rps"], (70.0_f64 / 60.0 * 1000.0).round() / 1000.0);
    // The slots, oldest first; the last one holds 895..899.
    let rps = svc["slots"]["rps"].as_array().unwrap();
    assert_eq!(rps.len(), 90);
    assert_eq!(rps[89], 7.0, "70 requests in 10 s");
    assert_eq!(svc["slots"]["errors"][89], 30);
    // Early on, the slots before the start are there, empty.
    let early = t.report(5);
    let slots = &early["services"][0]["slots"];
    assert_eq!(slots["rps"].as_array().unwrap().len(), 90, "{slots}");
    assert_eq!(slots["rps"][89], (7.0_f64 / 6.0 * 1000.0).round() / 1000.0);
    assert_eq!(slots["rps"][0], 0.0);
    // A second later the slot of second 0 has left the 15 minutes.
    t.record("svc", Class::Ok, Duration::from_millis(1), 900);
    let w = t.report(900)["services"][0]["windows"].clone();
    assert_eq!(w["15m"]["requests"], 101, "{w}");
    // Its slot is reused, and starts from zero.
    t.record("svc", Class::Ok, Duration::from_millis(1), 1800);
    assert_eq!(t.totals("svc", 1, 1800).unwrap().requests, 1);
}

#[test]
fn ten_thousand_services_coming_and_going_keep_memory_bounded() {
    let t = Traffic::new();
    let retain = RETAIN_ABSENT.as_secs();
    let mut most = 0;
    // Batches of 100 services, each alive for a minute, then gone for good.
    for batch in 0..100u64 {
        let now = batch * 60;
        let names: Vec<String> = (0..100).map(|i| format!("svc{batch}_{i}")).collect();
        for name in &names {
            t.record(name, Class::Ok, Duration::from_millis(1), now);
        }
        t.sweep(|n| names.iter().any(|m| m == n), now);
        most = most.max(t.series_count());
    }
    // Alive, plus those gone for less than RETAIN_ABSENT (and one sweep's lag).
    let bound = 100 * (retain / 60 + 2) as usize;
    assert!(most <= bound, "{most} series at most, bound {bound}");
    assert!(t.memory_bytes() <= MAX_SERIES * std::mem::size_of::<super::stats::Series>());
    // Once every one is gone long enough, nothing is left.
    t.sweep(|_| false, 100 * 60);
    t.sweep(|_| false, 100 * 60 + retain + 1);
    assert_eq!(t.series_count(), 0);
    // However many names come at once, the map holds at most MAX_SERIES.
    for i in 0..MAX_SERIES + 500 {
        t.record(&format!("burst{i}"), Class::Ok, Duration::ZERO, 7000);
    }
    assert_eq!(t.series_count(), MAX_SERIES);
    // A series comes back after a restart of the service within the grace.
    let t = Traffic::new();
    t.record("svc", Class::Ok, Duration::ZERO, 0);
    t.sweep(|_| false, 10);
    t.sweep(|n| n == "svc", 10 + retain);
    t.sweep(|_| false, 20 + retain);
    assert_eq!(t.series_count(), 1, "present again: the clock restarts");
    assert_eq!(t.report(20 + retain)["slot_secs"], SLOT_SECS);
}

/// Per-request cost of counting: `cargo test -p hero_router --release --lib
/// traffic::tests::record_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn record_cost() {
    let t = Traffic::new();
    let names = ["alpha", "beta_service", "gamma", "hero_router"];
    const N: u64 = 4_000_000;
    for (i, name) in names.iter().enumerate() {
        t.record(name, Class::Ok, Duration::from_micros(i as u64), 0);
    }
    let start = tokio::time::Instant::now();
    for i in 0..N {
        let name = names[(i % 4) as usize];
        let latency = Duration::from_micros(100 + (i % 5000));
        t.record(name, Class::of(200, false), latency, i / 100_000);
    }
    let ns = start.elapsed().as_nanos() as f64 / N as f64;
    println!("traffic record: {ns:.1} ns per request ({N} records, 4 services)");
}

/// Services counted in turn, in runs and one after another, each get their own counts, also
/// across a sweep that drops one of them (the threads' maps start over) and a second
/// `Traffic` counted from the same thread.
#[test]
fn services_counted_in_any_order_keep_their_own_counts() {
    let t = Traffic::new();
    let other = Traffic::new();
    let order = ["a", "a", "b", "a", "c", "c", "c", "b", "a", "b"];
    let mut want = std::collections::HashMap::new();
    for (i, name) in order.iter().cycle().take(1000).enumerate() {
        t.record(name, Class::Ok, Duration::from_millis(1), 10);
        *want.entry(*name).or_insert(0u64) += 1;
        if i % 7 == 0 {
            other.record("a", Class::Ok, Duration::from_millis(1), 10);
        }
    }
    // The whole 15 minutes (90 slots) at second 10.
    for (name, n) in &want {
        assert_eq!(t.totals(name, 90, 10).unwrap().requests, *n, "{name}");
    }
    assert_eq!(other.totals("a", 90, 10).unwrap().requests, 143);
    // "c" leaves the table and is swept; "a" and "b" go on being counted.
    let later = 10 + RETAIN_ABSENT.as_secs() + 10;
    t.sweep(|name| name != "c", 20);
    t.sweep(|name| name != "c", later);
    assert!(t.totals("c", 90, later).is_none());
    for name in ["b", "a", "a", "b"] {
        t.record(name, Class::Ok, Duration::from_millis(1), later);
    }
    assert_eq!(t.totals("a", 90, later).unwrap().requests, want["a"] + 2);
    assert_eq!(t.totals("b", 90, later).unwrap().requests, want["b"] + 2);
}
