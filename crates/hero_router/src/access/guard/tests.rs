use super::*;

const GRACE: Duration = Duration::from_secs(2);

#[test]
fn every_transition() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let holding = Guard::Holding { since: t0 };
    let hold = |warn, until| Step::Hold { warn, until };
    // (guard, look, now) → (step, next guard)
    let cases = [
        // Open: whatever the file says is applied at once (nothing to open).
        (Guard::Open, Look::Entries, t0, Step::Apply, Guard::Closed),
        (Guard::Open, Look::Empty, t0, Step::Apply, Guard::Open),
        (Guard::Open, Look::Bad, t0, Step::KeepBad, Guard::Open),
        // Closed: entries apply; emptiness starts a hold with one warning.
        (Guard::Closed, Look::Entries, t0, Step::Apply, Guard::Closed),
        (
            Guard::Closed,
            Look::Empty,
            t0,
            hold(true, ms(2000)),
            holding,
        ),
        (Guard::Closed, Look::Bad, t0, Step::KeepBad, Guard::Closed),
        // Holding: entries end the hold (an editor's write after its truncate).
        (holding, Look::Entries, ms(1), Step::Apply, Guard::Closed),
        (holding, Look::Entries, ms(5000), Step::Apply, Guard::Closed),
        // Still empty within the grace: keep holding, no second warning, same deadline.
        (holding, Look::Empty, t0, hold(false, ms(2000)), holding),
        (
            holding,
            Look::Empty,
            ms(1999),
            hold(false, ms(2000)),
            holding,
        ),
        // Empty for the whole grace: the empty list applies.
        (holding, Look::Empty, ms(2000), Step::Apply, Guard::Open),
        (holding, Look::Empty, ms(60_000), Step::Apply, Guard::Open),
        // A bad file while holding: the last good list stays, and the stretch is over.
        (holding, Look::Bad, ms(1), Step::KeepBad, Guard::Closed),
        (holding, Look::Bad, ms(5000), Step::KeepBad, Guard::Closed),
    ];
    for (guard, look, now, step, next) in cases {
        assert_eq!(
            decide(guard, look, now, GRACE),
            (step, next),
            "{guard:?} + {look:?} at {:?}",
            now - t0
        );
    }
}

#[test]
fn a_truncate_then_write_never_applies_the_empty_list() {
    let t0 = Instant::now();
    let mut guard = Guard::starting(true);
    let mut now = t0;
    for _ in 0..1000 {
        for look in [Look::Empty, Look::Entries] {
            let (step, next) = decide(guard, look, now, GRACE);
            assert!(
                !(look == Look::Empty && step == Step::Apply),
                "an empty list applied at {:?}",
                now - t0
            );
            guard = next;
            now += Duration::from_millis(300);
        }
    }
    assert_eq!(guard, Guard::Closed);
}

#[test]
fn a_file_left_empty_applies_after_the_grace_and_then_freely() {
    let t0 = Instant::now();
    let (step, guard) = decide(Guard::starting(true), Look::Empty, t0, GRACE);
    assert_eq!(guard.deadline(GRACE), Some(t0 + GRACE));
    assert!(matches!(step, Step::Hold { warn: true, .. }));
    let (step, guard) = decide(guard, Look::Empty, t0 + GRACE, GRACE);
    assert_eq!((step, guard), (Step::Apply, Guard::Open));
    assert_eq!(guard.deadline(GRACE), None);
    // Once open, emptiness is no news, and new entries apply at once.
    assert_eq!(
        decide(guard, Look::Empty, t0 + GRACE, GRACE),
        (Step::Apply, Guard::Open)
    );
    assert_eq!(Guard::starting(false), Guard::Open);
}
