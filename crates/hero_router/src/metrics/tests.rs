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
