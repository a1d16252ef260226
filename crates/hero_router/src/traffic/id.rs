//! Request ids (`X-Request-Id`): kept from a caller the router trusts when well formed, else
//! made here: short, unique within the process and across restarts, and sortable by the order
//! the router saw the requests.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest request id kept from a caller.
pub(crate) const MAX_LEN: usize = 128;

/// Crockford's base32 alphabet: its characters sort in ASCII order as the digits do.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of the start time (45 bits of milliseconds: a thousand years).
const TIME_CHARS: usize = 9;
/// Characters of the counter (35 bits: 34 billion requests per process run).
const COUNT_CHARS: usize = 7;

/// A request id: 1–128 visible ASCII characters, kept inline (no allocation per request).
#[derive(Clone, Copy)]
pub(crate) struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

/// The process's start time in milliseconds, the first part of every id it makes.
fn start_ms() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

/// Writes the low `out.len() * 5` bits of `n` in base32, most significant first.
fn base32(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
}

// === impl RequestId ===

impl RequestId {
    /// A caller's id, if it is 1–128 visible ASCII characters (`!` to `~`).
    pub(crate) fn from_client(value: &[u8]) -> Option<RequestId> {
        let ok = (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic());
        if !ok {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..value.len()].copy_from_slice(value);
        Some(RequestId {
            len: value.len() as u8,
            bytes,
        })
    }

    /// A new id: the process's start time and a per-process counter, 16 base32 characters
    /// (ids made later sort after earlier ones, within a run and across restarts).
    pub(crate) fn generate() -> RequestId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0; MAX_LEN];
        base32(start_ms(), &mut bytes[..TIME_CHARS]);
        base32(n, &mut bytes[TIME_CHARS..TIME_CHARS + COUNT_CHARS]);
        RequestId {
            len: (TIME_CHARS + COUNT_CHARS) as u8,
            bytes,
        }
    }

    /// A placeholder (`-`) for a connection with no request yet.
    pub(crate) const fn none() -> RequestId {
        let mut bytes = [0; MAX_LEN];
        bytes[0] = b'-';
        RequestId { len: 1, bytes }
    }

    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("-")
    }

    /// The id's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
