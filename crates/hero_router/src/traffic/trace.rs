//! W3C trace context (<https://www.w3.org/TR/trace-context/>): the router is one span of the
//! request's trace. A valid `traceparent` from the client keeps its trace id and flags, and
//! the service gets the router's own span id as its parent; a missing or malformed one
//! starts a new trace. `tracestate` passes on only with a valid `traceparent`.

/// Length of a version-00 `traceparent` value.
pub(crate) const TRACEPARENT_LEN: usize = 55;

/// The trace a request belongs to, and the router's span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trace {
    /// The trace id (the client's, or new).
    pub trace_id: [u8; 16],
    /// The router's span id, the parent the service sees.
    pub span_id: [u8; 8],
    /// The client's span, when it sent a valid `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// The trace flags (the client's, or `01`, sampled, for a new trace).
    pub flags: u8,
}

/// Decodes `N` bytes from `2 * N` lowercase hex digits.
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Writes `bytes` as lowercase hex, a byte's two digits at a time.
fn push_hex(out: &mut [u8], bytes: &[u8]) {
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0; 2]; 256];
        let mut b = 0;
        while b < 256 {
            pairs[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
            b += 1;
        }
        pairs
    };
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
}

/// A random id that is not all zeros (the spec's invalid value).
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        for chunk in id.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes()[..n]);
        }
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

// === impl Trace ===

impl Trace {
    /// The trace of a request whose `traceparent` headers are `values`: the client's trace
    /// when exactly one valid value came, else a new one.
    pub(crate) fn of<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Trace {
        let parsed = match (values.next(), values.next()) {
            (Some(one), None) => Trace::parse(one),
            _ => None,
        };
        let span_id = random_id();
        match parsed {
            Some((trace_id, parent, flags)) => Trace {
                trace_id,
                span_id,
                parent_id: Some(parent),
                flags,
            },
            None => Trace {
                trace_id: random_id(),
                span_id,
                parent_id: None,
                flags: 1,
            },
        }
    }

    /// A `traceparent` value: trace id, parent id and flags, if it is valid.
    fn parse(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
        let value = value.trim_ascii();
        if value.len() < TRACEPARENT_LEN {
            return None;
        }
        let [version] = hex::<1>(&value[0..2])?;
        // Version ff is invalid; version 00 is exactly 55 characters; a later version may
        // append fields after a dash.
        let tail_ok = match version {
            0xff => false,
            0 => value.len() == TRACEPARENT_LEN,
            _ => value.len() == TRACEPARENT_LEN || value[TRACEPARENT_LEN] == b'-',
        };
        let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
        if !tail_ok || !dashes {
            return None;
        }
        let trace_id = hex::<16>(&value[3..35])?;
        let parent = hex::<8>(&value[36..52])?;
        let [flags] = hex::<1>(&value[53..55])?;
        let zero = |b: &[u8]| b.iter().all(|b| *b == 0);
        if zero(&trace_id) || zero(&parent) {
            return None;
        }
        Some((trace_id, parent, flags))
    }

    /// True if the client's `traceparent` was kept (its `tracestate` then passes on too).
    pub(crate) fn continued(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The `traceparent` the service gets: version 00, this trace, the router's span.
    pub(crate) fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0..2].copy_from_slice(b"00");
        push_hex(&mut out[3..35], &self.trace_id);
        push_hex(&mut out[36..52], &self.span_id);
        push_hex(&mut out[53..55], &[self.flags]);
        out
    }

    /// The trace id in hex, as the access log writes it.
    pub(crate) fn trace_id_hex(&self) -> [u8; 32] {
        let mut out = [0; 32];
        push_hex(&mut out, &self.trace_id);
        out
    }
}
