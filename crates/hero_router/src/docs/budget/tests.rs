use super::*;

#[test]
fn a_meter_is_over_once_and_stays_over() {
    let budget = Budget {
        output: 10,
        ..Budget::default()
    };
    let mut m = Meter::start(budget);
    assert!(!m.output(10));
    assert!(m.output(1));
    assert_eq!(m.result(), Err(OverBudget::Output(10)));
    assert!(m.tick(), "over stays over");
    let mut m = Meter::start(Budget {
        copied: 5,
        ..Budget::default()
    });
    assert!(!m.copied(5) && m.copied(1));
    assert_eq!(m.result(), Err(OverBudget::Copied(5)));
}

#[test]
fn cpu_time_is_the_threads_own() {
    let Some(start) = thread_cpu_time() else {
        return; // no /proc here: the wall clock stands in, tested below
    };
    let mut m = Meter::start(Budget {
        cpu: Duration::from_millis(20),
        ..Budget::default()
    });
    let mut spins = 0u64;
    while !m.tick() {
        spins += 1;
    }
    assert_eq!(m.result(), Err(OverBudget::Cpu(Duration::from_millis(20))));
    let used = thread_cpu_time().unwrap() - start;
    assert!(
        used >= Duration::from_millis(20),
        "{used:?} after {spins} ticks"
    );
}

#[test]
fn an_unlimited_meter_never_stops() {
    let mut m = Meter::start(Budget::UNLIMITED);
    for _ in 0..10 * TICKS_PER_CHECK {
        assert!(!m.tick());
    }
    assert!(!m.output(usize::MAX / 2) && !m.copied(usize::MAX / 2));
}
