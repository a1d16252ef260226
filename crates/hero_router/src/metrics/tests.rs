use std::sync::Arc;

use super::*;

#[test]
fn counts_from_many_threads_add_up() {
    let m = Arc::new(Metrics::default());
    let threads: Vec<_> = (0..STRIPES as u16 + 3)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    m.record("svc", "rpc", 200 + i % 2, Duration::from_millis(2));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    m.record("svc", "-", 502, Duration::from_secs(20));
    let text = m.render(&Table::default());
    let threads = u64::try_from(STRIPES).unwrap() + 3;
    let line = |s: &str| text.lines().find(|l| l.starts_with(s)).map(str::to_owned);
    let total = |status: u16| {
        line(&format!(
            "hero_router_requests_total{{service=\"svc\",kind=\"rpc\",status=\"{status}\"}} "
        ))
    };
    let n = |l: Option<String>| l.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(n(total(200)), Some(10 * threads.div_ceil(2)));
    assert_eq!(n(total(201)), Some(10 * (threads / 2)));
    let bucket = |le: &str| {
        n(line(&format!(
            "hero_router_request_duration_seconds_bucket{{service=\"svc\",le=\"{le}\"}} "
        )))
    };
    assert_eq!(bucket("0.001"), Some(0));
    assert_eq!(bucket("0.0025"), Some(10 * threads));
    assert_eq!(bucket("+Inf"), Some(10 * threads + 1));
}

/// A bucket counts the requests at or below its bound (a request exactly at a bound is in
/// it), and every bucket above it counts them too.
#[test]
fn buckets_are_cumulative_and_include_their_bound() {
    let m = Metrics::default();
    for ms in [1, 1, 2, 3, 700, 20_000] {
        m.record("svc", "rpc", 200, Duration::from_millis(ms));
    }
    let text = m.render(&Table::default());
    let bucket = |le: &str| {
        let head =
            format!("hero_router_request_duration_seconds_bucket{{service=\"svc\",le=\"{le}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let expected = [
        ("0.0005", 0),
        ("0.001", 2),
        ("0.0025", 3),
        ("0.005", 4),
        ("0.5", 4),
        ("1", 5),
        ("10", 5),
        ("+Inf", 6),
    ];
    for (le, n) in expected {
        assert_eq!(bucket(le), Some(n), "le={le}\n{text}");
    }
}
