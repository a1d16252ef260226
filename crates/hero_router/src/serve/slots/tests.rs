use std::cell::Cell;

use super::*;

fn admitted(a: Admission) -> (SlotGuard, Option<Shed>) {
    match a {
        Admission::Admitted(g, shed) => (g, shed),
        Admission::Full => panic!("expected a slot"),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// Every listener state of up to four connections from two clients (A and B), each busy or
/// waiting for a head since one of two instants, under every pair of small limits; the new
/// connection comes from A, or from a Unix socket (no client). Each decision is held to the
/// rules, not to a second copy of the code.
#[test]
fn make_room_keeps_every_rule_in_every_small_state() {
    let phases = [None, Some(0), Some(1)];
    let mut states: Vec<Vec<(bool, Held)>> = vec![Vec::new()];
    for len in 1..=4 {
        let mut next = Vec::new();
        for s in states.iter().filter(|s| s.len() == len - 1) {
            for from_a in [true, false] {
                for waiting_since in phases {
                    let mut s = s.clone();
                    let id = len as u64;
                    s.push((from_a, Held { id, waiting_since }));
                    next.push(s);
                }
            }
        }
        states.extend(next);
    }
    let mut seen = [0usize; 4];
    for state in &states {
        let all: Vec<Held> = state.iter().map(|(_, h)| *h).collect();
        let of_a: Vec<Held> = state.iter().filter(|(a, _)| *a).map(|(_, h)| *h).collect();
        let of_b = state.len() - of_a.len();
        for max in 1..=5 {
            for per_client in 1..=3 {
                // Only states the limits let happen.
                if all.len() > max || of_a.len() > per_client || of_b > per_client {
                    continue;
                }
                for own in [&of_a[..], &[]] {
                    let listed = Cell::new(false);
                    let room = make_room(own, all.len(), max, per_client, || {
                        listed.set(true);
                        all.iter().copied()
                    });
                    let case = format!("{state:?} own={own:?} max={max} per_client={per_client}");
                    check(room, own, &all, max, per_client, &case);
                    // The whole listener is looked at only when it is full and the client
                    // is under its own limit.
                    let needs_all = own.len() < per_client && all.len() >= max;
                    assert_eq!(listed.get(), needs_all, "{case}");
                    seen[match room {
                        Room::Free => 0,
                        Room::Own(_) => 1,
                        Room::Idle(_) => 2,
                        Room::Full => 3,
                    }] += 1;
                }
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n > 50),
        "every outcome is reached: {seen:?}"
    );
}

/// The rules a decision keeps.
fn check(room: Room, own: &[Held], all: &[Held], max: usize, per_client: usize, case: &str) {
    let key = |h: &Held| (h.waiting_since, h.id);
    let waiting_longest = |hs: &[Held]| {
        hs.iter()
            .filter(|h| h.waiting_since.is_some())
            .min_by_key(|h| key(h))
            .copied()
    };
    if own.len() >= per_client {
        // At its limit a client makes room from its own connections: an idle one first (the
        // one waiting longest), else its oldest.
        let expected = waiting_longest(own).or_else(|| own.iter().min_by_key(|h| h.id).copied());
        assert_eq!(room, Room::Own(expected.unwrap()), "{case}");
        return;
    }
    // Under its own limit, a client never sheds anything mid-request, and sheds nothing at all
    // while the listener has room.
    match room {
        Room::Free => assert!(all.len() < max, "{case}"),
        Room::Own(_) => panic!("a client under its limit shed its own: {case}"),
        Room::Idle(h) => {
            assert!(all.len() >= max, "{case}");
            assert!(h.waiting_since.is_some(), "{case}");
            assert_eq!(Some(h), waiting_longest(all), "{case}");
        }
        Room::Full => {
            assert!(all.len() >= max, "{case}");
            assert!(all.iter().all(|h| h.waiting_since.is_none()), "{case}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn at_the_limit_the_longest_waiting_head_is_shed() {
    let slots = ConnSlots::new(3, 64);
    let mut guards: Vec<_> = (0..3).map(|_| admitted(slots.admit(None)).0).collect();
    tokio::time::advance(Duration::from_secs(1)).await;
    // 0 is busy, 1 started waiting for a head just now, 2 has waited since it came.
    guards[0].busy();
    guards[1].reading_head(Instant::now());
    let (g, shed) = admitted(slots.admit(None));
    assert_eq!(shed, Some(Shed::Idle(Duration::from_secs(1))));
    let closing: Vec<bool> = guards.iter().map(|g| g.is_closing()).collect();
    assert_eq!(closing, [false, false, true]);
    assert_eq!(slots.len(), 3);
    // The shed connection's guard leaves the new one's slot alone.
    drop(guards.pop());
    assert_eq!(slots.len(), 3);
    drop(g);
    assert_eq!(slots.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn when_every_connection_is_busy_a_new_one_is_refused() {
    let slots = ConnSlots::new(2, 64);
    let guards: Vec<_> = (0..2).map(|_| admitted(slots.admit(None)).0).collect();
    for g in &guards {
        g.busy();
    }
    assert!(matches!(slots.admit(None), Admission::Full));
    guards[1].reading_head(Instant::now());
    let (g, shed) = admitted(slots.admit(None));
    assert_eq!(shed, Some(Shed::Idle(Duration::ZERO)));
    assert!(guards[1].is_closing() && !guards[0].is_closing());
    // Shutdown ends every connection still holding a slot, and wakes its task.
    let waiting = tokio::spawn({
        let slot = g.slot.clone();
        async move { slot.closed().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    slots.close_all();
    waiting.await.unwrap();
    assert!(guards[0].is_closing());
}

#[tokio::test(start_paused = true)]
async fn a_client_at_its_limit_loses_its_own_oldest_connection() {
    let slots = ConnSlots::new(100, 2);
    let a1 = admitted(slots.admit(ip("10.0.0.1"))).0;
    let b1 = admitted(slots.admit(ip("10.0.0.2"))).0;
    // The IPv4-mapped spelling is the same client.
    let a2 = admitted(slots.admit(ip("::ffff:10.0.0.1"))).0;
    for g in [&a1, &b1, &a2] {
        g.busy();
    }
    // A stream of its own is cut, and the task streaming it is woken.
    let cut = tokio::spawn({
        let slot = a1.slot.clone();
        async move { slot.cut_off().await }
    });
    tokio::task::yield_now().await;
    assert!(!cut.is_finished());
    let (a3, shed) = admitted(slots.admit(ip("10.0.0.1")));
    assert_eq!(shed, Some(Shed::Own(None)));
    cut.await.unwrap();
    assert!(a1.is_closing());
    assert!(!b1.is_closing() && !a2.is_closing());
    assert_eq!(
        (slots.len(), slots.len_of("10.0.0.1".parse().unwrap())),
        (3, 2)
    );

    // An idle connection of its own goes before an older stream.
    tokio::time::advance(Duration::from_secs(1)).await;
    a3.reading_head(Instant::now() - Duration::from_millis(500));
    let (a4, shed) = admitted(slots.admit(ip("10.0.0.1")));
    assert_eq!(shed, Some(Shed::Own(Some(Duration::from_millis(500)))));
    assert!(a3.is_closing() && !a2.is_closing() && !b1.is_closing());

    // Shed guards leave the live ones alone; the others free their places.
    drop((a1, a3));
    assert_eq!(
        (slots.len(), slots.len_of("10.0.0.1".parse().unwrap())),
        (3, 2)
    );
    drop((a2, a4));
    assert_eq!(
        (slots.len(), slots.len_of("10.0.0.1".parse().unwrap())),
        (1, 0)
    );
    assert!(
        slots.inner.lock().unwrap().clients.len() == 1,
        "no empty entry is left"
    );
    drop(b1);
    assert_eq!(slots.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_but_does_not_cut() {
    let slots = ConnSlots::new(4, 4);
    let g = admitted(slots.admit(ip("10.0.0.1"))).0;
    g.busy();
    let cut = tokio::spawn({
        let slot = g.slot.clone();
        async move { slot.cut_off().await }
    });
    slots.close_all();
    tokio::task::yield_now().await;
    assert!(g.is_closing() && !cut.is_finished());
    cut.abort();
}

#[tokio::test(start_paused = true)]
async fn unix_socket_connections_have_no_client_limit() {
    let slots = ConnSlots::new(3, 1);
    let guards: Vec<_> = (0..3).map(|_| admitted(slots.admit(None))).collect();
    assert!(
        guards
            .iter()
            .all(|(g, shed)| shed.is_none() && !g.is_closing())
    );
    // The listener's own limit still holds.
    for (g, _) in &guards {
        g.busy();
    }
    assert!(matches!(slots.admit(None), Admission::Full));
}
