//! [`Watchdog`]: a deadline that costs next to nothing per request.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// A deadline that costs no timer operation when it is moved: the timer is re-armed only
/// when it fires early, so it fires at most about once per timeout period, not per request.
/// While the timer holds the polling task's waker and has not fired, a poll does not even
/// reach it.
pub(crate) struct Watchdog {
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The waker the timer was last left holding (its poll was pending on the time, not on
    /// the task's budget); `None` once it fired.
    holds: Option<Waker>,
}

impl Watchdog {
    pub(crate) fn new() -> Watchdog {
        Watchdog {
            deadline: Instant::now(),
            sleep: None,
            holds: None,
        }
    }

    /// Sets the deadline. Deadlines only move forward (each is `now + a fixed timeout`).
    pub(crate) fn arm(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Resolves once the deadline has passed.
    pub(crate) async fn expired(&mut self) {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // The timer will wake this task when it fires: nothing to do until then.
        let waiting = self.holds.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if waiting && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            // A poll refused for want of budget leaves no waker with the timer.
            let budget = tokio::task::coop::has_budget_remaining();
            if sleep.as_mut().poll(cx).is_pending() {
                self.holds = budget.then(|| cx.waker().clone());
                return Poll::Pending;
            }
            self.holds = None;
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            // Fired for an earlier deadline: wait for the current one.
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests;
