use std::sync::Arc;

use super::{REASONS_KEEP, Reasons};

fn text(s: &str) -> Option<Arc<str>> {
    Some(Arc::from(s))
}

#[test]
fn equal_texts_end_up_as_one_copy() {
    let mut reasons = Reasons::default();
    let mut a = text("rpc.discover: not reachable: connection refused");
    let mut b = text("rpc.discover: not reachable: connection refused");
    let mut other = text("GET /openrpc.json: no whole answer within 2s");
    let mut none = None;
    reasons.share(&mut a);
    reasons.share(&mut b);
    reasons.share(&mut other);
    reasons.share(&mut none);
    let (a, b, other) = (a.unwrap(), b.unwrap(), other.unwrap());
    assert!(
        Arc::ptr_eq(&a, &b),
        "the second text is the first one's copy"
    );
    assert!(!Arc::ptr_eq(&a, &other));
    assert_eq!(&*other, "GET /openrpc.json: no whole answer within 2s");
    assert_eq!(none, None);
}

#[test]
fn texts_no_entry_holds_are_forgotten_and_held_ones_kept() {
    let mut reasons = Reasons::default();
    let mut held = text("held");
    reasons.share(&mut held);
    for i in 1..REASONS_KEEP {
        // Dropped at once: only the set holds these.
        reasons.share(&mut text(&format!("gone {i}")));
    }
    assert_eq!(reasons.known.len(), REASONS_KEEP);
    // The set is at its bound: the next new text prunes it.
    reasons.share(&mut text("new"));
    assert_eq!(reasons.known.len(), 2, "held and new are left");
    let mut again = text("held");
    reasons.share(&mut again);
    assert!(Arc::ptr_eq(held.as_ref().unwrap(), again.as_ref().unwrap()));
}

#[test]
fn texts_all_in_use_are_not_walked_on_every_insert() {
    let mut reasons = Reasons::default();
    let mut kept = Vec::new();
    for i in 0..REASONS_KEEP * 3 {
        let mut t = text(&format!("in use {i}"));
        reasons.share(&mut t);
        kept.push(t);
    }
    assert_eq!(reasons.known.len(), REASONS_KEEP * 3);
    // Pruned at 1024 (nothing to forget) and at 2048: the next prune waits for 4096.
    assert_eq!(reasons.prune_at, REASONS_KEEP * 4);
}
