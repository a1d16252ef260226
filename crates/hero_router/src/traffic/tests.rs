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
}

#[test]
fn a_json_line_is_one_object_with_every_field() {
    let v = json_line(&record());
    let text = v.to_string();
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
}

#[test]
fn the_log_off_takes_nothing() {
    let off = AccessLog::off();
    assert!(!off.is_on());
    let before = dropped();
    off.send(record());
    assert_eq!(dropped(), before, "off: nothing to drop");
}
