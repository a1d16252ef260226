//! The watchdog fires at its deadline, however often it is polled or its deadline moved, and a
//! poll that the task's budget refused does not leave it deaf. Paused time: every elapsed
//! time below is exact.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// `dog.expired()`, or `None` if an hour passes first.
async fn expires(dog: &mut Watchdog) -> Option<()> {
    tokio::time::timeout(3600 * SECOND, dog.expired())
        .await
        .ok()
}

#[tokio::test(start_paused = true)]
async fn fires_at_its_deadline() {
    let start = Instant::now();
    let mut dog = Watchdog::new();
    dog.arm(start + 10 * SECOND);
    assert!(expires(&mut dog).await.is_some());
    assert_eq!(start.elapsed(), 10 * SECOND);
}

/// Polled again and again while its deadline moves on (a connection's requests), it fires at
/// the last deadline, not the first.
#[tokio::test(start_paused = true)]
async fn fires_at_the_deadline_it_was_moved_to() {
    let start = Instant::now();
    let mut dog = Watchdog::new();
    for i in 0..20 {
        dog.arm(Instant::now() + 10 * SECOND);
        tokio::select! {
            biased;
            () = tokio::time::sleep(SECOND) => {}
            () = dog.expired() => panic!("fired at {:?}, request {i}", start.elapsed()),
        }
    }
    // The last deadline: 20 s after the start (after 20 one-second waits) plus 10.
    dog.arm(Instant::now() + 10 * SECOND);
    assert!(expires(&mut dog).await.is_some());
    assert_eq!(start.elapsed(), 30 * SECOND);
}

/// After it fired, armed again, it fires again.
#[tokio::test(start_paused = true)]
async fn fires_again_when_armed_again() {
    let start = Instant::now();
    let mut dog = Watchdog::new();
    dog.arm(start + 5 * SECOND);
    assert!(expires(&mut dog).await.is_some());
    dog.arm(Instant::now() + 7 * SECOND);
    assert!(expires(&mut dog).await.is_some());
    assert_eq!(start.elapsed(), 12 * SECOND);
}

/// A poll made when the task had used up its budget reaches no timer: the next poll, with
/// budget again, must still reach it, or the watchdog would never fire.
#[tokio::test(start_paused = true)]
async fn a_poll_without_budget_does_not_leave_it_deaf() {
    let start = Instant::now();
    let mut dog = Watchdog::new();
    dog.arm(start + 10 * SECOND);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    std::future::poll_fn(|cx| {
        // Each message received spends a unit of the task's budget, until none is left.
        while rx.poll_recv(cx).is_ready() {}
        assert!(!tokio::task::coop::has_budget_remaining());
        let mut expired = pin!(dog.expired());
        assert!(expired.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert!(expires(&mut dog).await.is_some(), "never fired");
    assert_eq!(start.elapsed(), 10 * SECOND);
}
