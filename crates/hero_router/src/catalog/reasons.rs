//! One copy of each reason text the catalog's entries hold.

use std::collections::HashSet;
use std::sync::Arc;

/// Reason texts as entries hold them: one copy of each, however many entries give it.
/// Services failing alike (a refused connection, a timeout) otherwise held a copy each of the
/// same sentence, twice (spec and manifest): 1.6 MB at 8,000 failing services, measured with
/// heaptrack.
#[derive(Debug)]
pub(super) struct Reasons {
    known: HashSet<Arc<str>>,
    /// At this many texts, those no entry holds any more are forgotten.
    prune_at: usize,
}

/// The fewest texts [`Reasons`] keeps before it prunes.
const REASONS_KEEP: usize = 1024;

// === impl Reasons ===

impl Default for Reasons {
    fn default() -> Reasons {
        Reasons {
            known: HashSet::new(),
            prune_at: REASONS_KEEP,
        }
    }
}

impl Reasons {
    /// Replaces `text` by the copy already known, or makes it the known one.
    pub(super) fn share(&mut self, text: &mut Option<Arc<str>>) {
        let Some(t) = text else {
            return;
        };
        if let Some(known) = self.known.get(&**t) {
            *t = known.clone();
            return;
        }
        if self.known.len() >= self.prune_at {
            // Counted once per doubling: texts that all stay in use cost no repeated walk.
            self.known.retain(|k| Arc::strong_count(k) > 1);
            self.prune_at = (self.known.len() * 2).max(REASONS_KEEP);
        }
        self.known.insert(t.clone());
    }
}

#[cfg(test)]
mod tests;
