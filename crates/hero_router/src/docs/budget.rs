//! What one page may cost: CPU time, output bytes, and bytes copied out of `$ref` targets
//! ([`Budget`]), and the meter a render carries through its loops to stay within it
//! ([`Meter`]).
//!
//! The check is cooperative: the dereference walk, the view's loops and the template's writer
//! call [`Meter::tick`] and [`Meter::output`], and stop when either says the page is over.
//! Time is the render thread's own CPU time, not the wall clock, so a busy machine slows a
//! render down without ever turning a page that fits into a refusal (refusals are cached like
//! pages). The wall clock is the cheap first test: a thread cannot have used more CPU time
//! than has passed, so the kernel is asked only once the wall clock is past the budget.

use std::time::Duration;

use tokio::time::Instant;

/// CPU time one page may take to render.
pub(crate) const DEFAULT_CPU: Duration = Duration::from_secs(2);
/// Largest page, in bytes: a person reads the document itself past this. The HTML of a
/// document with ten thousand small methods is about 10 MiB.
pub(crate) const DEFAULT_OUTPUT: usize = 16 << 20;
/// Most bytes of text (strings and member names) copied out of `$ref` targets for one page.
/// The number of copied values is bounded by the dereference itself (it truncates with a
/// note); this bounds their size, which a long string referred to many times would blow up.
pub(crate) const DEFAULT_COPIED: usize = 32 << 20;

/// Ticks between two looks at the clock: a tick is one value walked, one method, one write.
const TICKS_PER_CHECK: u32 = 1024;

/// What one page may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// CPU time of the render thread.
    pub cpu: Duration,
    /// Bytes of output (the page; for the dashboard, its methods JSON).
    pub output: usize,
    /// Bytes of text copied out of `$ref` targets.
    pub copied: usize,
}

/// Why a page was not rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OverBudget {
    /// The render took more CPU time than the budget.
    #[error("rendering it takes more than {} s of CPU time", .0.as_secs_f64())]
    Cpu(Duration),
    /// The page is larger than the budget.
    #[error("the page would be larger than {} MiB", .0 >> 20)]
    Output(usize),
    /// Expanding its references copies more than the budget.
    #[error("expanding its $refs copies more than {} MiB", .0 >> 20)]
    Copied(usize),
}

/// A render's running cost against its [`Budget`]; once over, it stays over.
#[derive(Debug)]
pub(crate) struct Meter {
    budget: Budget,
    /// Wall clock at the start, the cheap first test of the CPU budget.
    started: Instant,
    /// This thread's CPU time at the start (`None`: unknown, the wall clock stands in).
    cpu_start: Option<Duration>,
    ticks: u32,
    output: usize,
    copied: usize,
    over: Option<OverBudget>,
}

// === impl Budget ===

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            cpu: DEFAULT_CPU,
            output: DEFAULT_OUTPUT,
            copied: DEFAULT_COPIED,
        }
    }
}

impl Budget {
    /// No limit at all: what the MCP index and [`dereference`](super::dereference) use (their
    /// own bounds apply).
    pub(crate) const UNLIMITED: Budget = Budget {
        cpu: Duration::MAX,
        output: usize::MAX,
        copied: usize::MAX,
    };
}

// === impl Meter ===

impl Meter {
    /// Starts metering a render on this thread.
    pub(crate) fn start(budget: Budget) -> Meter {
        let cpu_start = if budget.cpu == Duration::MAX {
            None
        } else {
            thread_cpu_time()
        };
        Meter {
            budget,
            started: Instant::now(),
            cpu_start,
            ticks: 0,
            output: 0,
            copied: 0,
            over: None,
        }
    }

    /// The verdict: `Ok` while within the budget.
    pub(crate) fn result(&self) -> Result<(), OverBudget> {
        match &self.over {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// One unit of work done; `true` once the render is over budget (then stop).
    pub(crate) fn tick(&mut self) -> bool {
        if self.over.is_some() {
            return true;
        }
        self.ticks += 1;
        if self.ticks < TICKS_PER_CHECK {
            return false;
        }
        self.ticks = 0;
        self.check_cpu()
    }

    /// `n` more bytes of output; `true` once the render is over budget.
    pub(crate) fn output(&mut self, n: usize) -> bool {
        self.output = self.output.saturating_add(n);
        if self.output > self.budget.output && self.over.is_none() {
            self.over = Some(OverBudget::Output(self.budget.output));
        }
        self.tick()
    }

    /// Counts output from zero again (the page itself, after the view's estimate of it).
    pub(crate) fn restart_output(&mut self) {
        self.output = 0;
    }

    /// `n` more bytes of text copied out of a reference target; `true` once over budget.
    pub(crate) fn copied(&mut self, n: usize) -> bool {
        self.copied = self.copied.saturating_add(n);
        if self.copied > self.budget.copied && self.over.is_none() {
            self.over = Some(OverBudget::Copied(self.budget.copied));
        }
        self.over.is_some()
    }

    fn check_cpu(&mut self) -> bool {
        let cpu = self.budget.cpu;
        // One thread cannot have used more CPU time than has passed: no need to ask yet.
        if self.started.elapsed() < cpu {
            return false;
        }
        let used = match (self.cpu_start, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.started.elapsed(),
        };
        if used >= cpu {
            self.over = Some(OverBudget::Cpu(cpu));
        }
        self.over.is_some()
    }
}

/// The CPU time this thread has used, from `/proc/thread-self/schedstat` (nanoseconds on
/// CPU first); `None` where that file is not there.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests;
