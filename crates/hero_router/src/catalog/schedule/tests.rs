use super::*;

const MINUTES_5: Duration = Duration::from_secs(300);

#[test]
fn backoff_doubles_from_one_second_up_to_the_refresh() {
    let secs: Vec<u64> = (1..=12).map(|n| backoff(n, MINUTES_5).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    assert_eq!(backoff(u32::MAX, MINUTES_5), MINUTES_5, "no overflow");
    assert_eq!(backoff(0, MINUTES_5), FIRST_RETRY);
    let short = Duration::from_millis(1500);
    assert_eq!(backoff(1, short), FIRST_RETRY);
    assert_eq!(backoff(2, short), short, "capped by a short refresh");
}

#[test]
fn a_slow_failure_makes_a_suspect() {
    assert_eq!(lane(0, false), Lane::Fresh);
    assert_eq!(lane(0, true), Lane::Fresh);
    assert_eq!(lane(1, true), Lane::Suspect);
    assert_eq!(lane(40, true), Lane::Suspect);
    // A fetch that failed fast held its slot for no time: it stays with the fresh ones.
    assert_eq!(lane(1, false), Lane::Fresh);
    assert_eq!(lane(40, false), Lane::Fresh);
}

#[test]
fn slow_fresh_fetches_free_their_slot() {
    let t0 = Instant::now();
    let running = [
        (Lane::Fresh, t0),
        (Lane::Fresh, t0 + Duration::from_millis(100)),
        (Lane::Suspect, t0),
    ];
    assert_eq!(
        load(running, t0 + Duration::from_millis(200)),
        Load {
            fresh: 2,
            suspect: 1
        }
    );
    assert_eq!(
        load(running, t0 + SLOW),
        Load {
            fresh: 1,
            suspect: 1
        }
    );
    assert_eq!(
        load(running, t0 + SLOW * 4),
        Load {
            fresh: 0,
            suspect: 1
        }
    );
    assert_eq!(
        next_change(running, t0 + Duration::from_millis(200)),
        Some(t0 + SLOW)
    );
    assert_eq!(
        next_change(running, t0 + SLOW),
        Some(t0 + Duration::from_millis(100) + SLOW)
    );
    assert_eq!(next_change(running, t0 + SLOW * 4), None);
}

#[test]
fn every_lane_and_load_is_decided() {
    // Exhaustive over small loads and concurrencies: the fresh lane has every slot, the
    // suspects a quarter (at least one), and neither lane's load touches the other's.
    for concurrency in 0..=20 {
        let fresh_cap = concurrency.max(1);
        let suspect_cap = (fresh_cap / 4).max(1);
        for fresh in 0..=24 {
            for suspect in 0..=24 {
                let l = Load { fresh, suspect };
                assert_eq!(
                    may_start(Lane::Fresh, l, concurrency),
                    fresh < fresh_cap,
                    "{concurrency} {l:?}"
                );
                assert_eq!(
                    may_start(Lane::Suspect, l, concurrency),
                    suspect < suspect_cap,
                    "{concurrency} {l:?}"
                );
            }
        }
    }
}

#[test]
fn hanging_suspects_never_hold_a_new_services_slot() {
    // 64 suspects fetching, their lane full: a fresh service still starts at once.
    let t0 = Instant::now();
    let running = vec![(Lane::Suspect, t0); 64];
    let l = load(running.iter().copied(), t0 + Duration::from_secs(1));
    assert!(!may_start(Lane::Suspect, l, 16));
    assert!(may_start(Lane::Fresh, l, 16));
    // 64 fresh fetches that hang: once slow, they leave the fresh lane's count.
    let hung = vec![(Lane::Fresh, t0); 64];
    assert!(!may_start(Lane::Fresh, load(hung.iter().copied(), t0), 16));
    assert!(may_start(
        Lane::Fresh,
        load(hung.iter().copied(), t0 + SLOW),
        16
    ));
}
