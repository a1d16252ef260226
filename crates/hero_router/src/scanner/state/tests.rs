use super::*;

const ALL: [SocketState; 5] = [
    SocketState::Live,
    SocketState::Busy,
    SocketState::Refused,
    SocketState::Denied,
    SocketState::NotSocket,
];
const CAUSES: [ProbeCause; 3] = [ProbeCause::Periodic, ProbeCause::Watch, ProbeCause::Manual];
const SEC: i128 = 1_000_000_000;

fn id(ino: u64, ctime_s: i128) -> Identity {
    Identity {
        dev: 1,
        ino,
        ctime_ns: (ctime_s * SEC).try_into().expect("in range"),
    }
}

fn obs(state: SocketState, identity: Identity) -> Observation {
    Observation {
        state: Some(state),
        identity: Some(identity),
        detail: "".into(),
    }
}

fn policy() -> ReapPolicy {
    ReapPolicy {
        enabled: true,
        stale_after: 3,
        grace: Duration::from_secs(10),
    }
}

/// Runs `n` observations of the same file through `advance`.
fn run(n: u32, cause: ProbeCause, identity: Identity) -> SocketRecord {
    let mut rec = None;
    for i in 0..n {
        rec = advance(
            rec.as_ref(),
            &obs(SocketState::Refused, identity),
            cause,
            u64::from(i),
        );
    }
    rec.unwrap()
}

#[test]
fn every_transition_keeps_the_invariants() {
    let ids = [id(7, 100), id(7, 101), id(8, 100)];
    for prev_state in ALL {
        for streak in [0u32, 1, 5] {
            for prev_id in ids {
                for state in ALL {
                    for new_id in ids {
                        for cause in CAUSES {
                            let prev = SocketRecord {
                                state: prev_state,
                                since_unix_ms: 10,
                                refused_streak: if prev_state == SocketState::Refused {
                                    streak
                                } else {
                                    0
                                },
                                first_refusal: (prev_state == SocketState::Refused)
                                    .then_some(prev_id),
                                identity: Some(prev_id),
                                detail: "".into(),
                                last_skip: None,
                            };
                            let next =
                                advance(Some(&prev), &obs(state, new_id), cause, 20).unwrap();
                            let ctx = format!("{prev:?} -> {state:?} {new_id:?} {cause:?}");
                            assert_eq!(next.state, state, "{ctx}");
                            // since changes exactly when the state changes.
                            let expect_since = if prev_state == state { 10 } else { 20 };
                            assert_eq!(next.since_unix_ms, expect_since, "{ctx}");
                            if state != SocketState::Refused {
                                assert_eq!(next.refused_streak, 0, "{ctx}");
                                assert_eq!(next.first_refusal, None, "{ctx}");
                                continue;
                            }
                            // A refused record always remembers which file it first refused.
                            let continues = prev_state == SocketState::Refused && prev_id == new_id;
                            let bump = u32::from(cause == ProbeCause::Periodic);
                            let want = if continues {
                                prev.refused_streak + bump
                            } else {
                                bump
                            };
                            assert_eq!(next.refused_streak, want, "{ctx}");
                            let want_first = if continues { prev_id } else { new_id };
                            assert_eq!(next.first_refusal, Some(want_first), "{ctx}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn vanished_path_yields_no_record() {
    let gone = Observation {
        state: None,
        identity: None,
        detail: "gone".into(),
    };
    assert_eq!(advance(None, &gone, ProbeCause::Periodic, 1), None);
}

#[test]
fn only_periodic_scans_advance_the_streak() {
    let f = id(1, 0);
    assert_eq!(run(10, ProbeCause::Watch, f).refused_streak, 0);
    assert_eq!(run(10, ProbeCause::Manual, f).refused_streak, 0);
    assert_eq!(run(3, ProbeCause::Periodic, f).refused_streak, 3);
}

#[test]
fn a_refused_old_file_seen_three_times_is_eligible() {
    let rec = run(3, ProbeCause::Periodic, id(1, 0));
    assert_eq!(reap_check(&rec, &policy(), 100 * SEC), Ok(()));
}

#[test]
fn rule_1_streak_alone_prevents_reap() {
    let rec = run(2, ProbeCause::Periodic, id(1, 0));
    assert_eq!(
        reap_check(&rec, &policy(), 100 * SEC),
        Err(SkipReason::Streak)
    );
}

#[test]
fn rule_2_grace_alone_prevents_reap() {
    let rec = run(3, ProbeCause::Periodic, id(1, 95));
    assert_eq!(
        reap_check(&rec, &policy(), 100 * SEC),
        Err(SkipReason::Grace)
    );
    // Exactly at the boundary it is old enough.
    assert_eq!(reap_check(&rec, &policy(), 105 * SEC), Ok(()));
}

#[test]
fn rule_3_identity_change_alone_prevents_reap() {
    let mut rec = run(3, ProbeCause::Periodic, id(1, 0));
    // Same inode number, new ctime: ext4 re-used the inode for a new socket.
    rec.identity = Some(id(1, 1));
    assert_eq!(
        reap_check(&rec, &policy(), 100 * SEC),
        Err(SkipReason::IdentityChanged)
    );
    // And a replaced file restarts the streak when observed.
    let next = advance(
        Some(&run(3, ProbeCause::Periodic, id(1, 0))),
        &obs(SocketState::Refused, id(1, 1)),
        ProbeCause::Periodic,
        9,
    )
    .unwrap();
    assert_eq!(next.refused_streak, 1);
}

#[test]
fn no_reap_overrides_everything() {
    let rec = run(30, ProbeCause::Periodic, id(1, 0));
    let p = ReapPolicy {
        enabled: false,
        ..policy()
    };
    assert_eq!(reap_check(&rec, &p, 100 * SEC), Err(SkipReason::NoReap));
}

#[test]
fn stale_after_zero_still_needs_one_periodic_refusal() {
    let p = ReapPolicy {
        stale_after: 0,
        grace: Duration::ZERO,
        ..policy()
    };
    let rec = run(5, ProbeCause::Watch, id(1, 0));
    assert_eq!(reap_check(&rec, &p, 100 * SEC), Err(SkipReason::Streak));
}

#[test]
fn reasons_have_stable_codes() {
    let json = serde_json::to_string(&SkipReason::HeroProcRunning).unwrap();
    assert_eq!(json, "\"hero_proc_running\"");
    assert_eq!(SkipReason::HeroProcRunning.as_str(), "hero_proc_running");
    assert_eq!(
        serde_json::to_string(&SocketState::NotSocket).unwrap(),
        "\"not_socket\""
    );
}
