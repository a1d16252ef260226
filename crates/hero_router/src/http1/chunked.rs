//! The chunked transfer coding (RFC 9112 §7.1): a strict incremental decoder, and the encoder
//! the router uses for every chunked body it sends.
//!
//! The router never passes chunk framing through: it decodes what it receives and writes
//! chunks of its own (no extensions, no trailers), so the peer parses exactly the framing the
//! router decided on, whatever liberties the sender took.

/// The last chunk and the empty trailer section: the end of every chunked body we write.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest chunk extension we skip, per chunk line.
const MAX_EXTENSION: u32 = 4 * 1024;
/// Most trailer bytes we skip, per message.
const MAX_TRAILERS: u32 = 64 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub struct BadChunk(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` so far.
    Size { size: u64, digits: u8 },
    /// Whitespace after the size: only `;` may follow (RFC 9112 §7.1.1, BWS).
    SizeSpace { size: u64 },
    /// A chunk extension, up to CR.
    Ext { size: u64 },
    /// LF after the size line.
    SizeLf { size: u64 },
    /// Chunk data still to come.
    Data { left: u64 },
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field, up to CR.
    Trailer,
    /// LF after a trailer field.
    TrailerLf,
    /// LF of the final empty line.
    EndLf,
    /// The message is complete.
    Done,
}

/// Decodes a chunked body fed in pieces: hands out the payload and finds the exact end.
///
/// Strict where leniency lets two parsers disagree: a size is 1–16 hex digits, lines end in
/// CRLF (a bare CR or LF is an error), whitespace after a size must lead to an extension, and
/// extensions and trailers are bounded and may not hold control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub struct ChunkedDecoder {
    state: State,
    /// Extension bytes on the current size line.
    ext: u32,
    /// Trailer bytes so far.
    trailers: u32,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            ext: 0,
            trailers: 0,
        }
    }
}

/// A byte allowed inside an extension or a trailer line: visible ASCII, SP, HTAB, obs-text.
fn is_line_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    /// True once the last chunk and the trailers have been read.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of `input` up to the end of the body and returns how many it took; each
    /// run of payload bytes goes to `data`. Bytes after the end are not touched.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
    pub fn advance(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            self.state = match self.state {
                State::Size { size, digits } => match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => State::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(BadChunk("chunk size over 16 hex digits")),
                    None if digits == 0 => return Err(BadChunk("chunk size is not hex")),
                    None => match b {
                        b'\r' => State::SizeLf { size },
                        b';' => self.start_ext(size),
                        b' ' | b'\t' => State::SizeSpace { size },
                        _ => return Err(BadChunk("bad byte after a chunk size")),
                    },
                },
                State::SizeSpace { size } => match b {
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => self.start_ext(size),
                    _ => return Err(BadChunk("whitespace after a chunk size")),
                },
                State::Ext { size } => match b {
                    b'\r' => State::SizeLf { size },
                    _ if !is_line_byte(b) => {
                        return Err(BadChunk("control character in a chunk extension"));
                    }
                    _ if self.ext >= MAX_EXTENSION => {
                        return Err(BadChunk("chunk extension too long"));
                    }
                    _ => {
                        self.ext += 1;
                        State::Ext { size }
                    }
                },
                State::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => State::TrailerStart,
                    (b'\n', left) => State::Data { left },
                    _ => return Err(BadChunk("chunk size line not ended by CRLF")),
                },
                State::Data { left } => {
                    let avail = input.len() - i;
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    data(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
                State::DataCr | State::DataLf => {
                    return Err(BadChunk("chunk data not followed by CRLF"));
                }
                State::TrailerStart if b == b'\r' => State::EndLf,
                State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf
                    if self.trailers >= MAX_TRAILERS =>
                {
                    return Err(BadChunk("trailer section too long"));
                }
                State::Trailer if b == b'\r' => {
                    self.trailers += 1;
                    State::TrailerLf
                }
                State::TrailerStart | State::Trailer if is_line_byte(b) => {
                    self.trailers += 1;
                    State::Trailer
                }
                State::TrailerStart | State::Trailer => {
                    return Err(BadChunk("control character in a trailer"));
                }
                State::TrailerLf if b == b'\n' => {
                    self.trailers += 1;
                    State::TrailerStart
                }
                State::EndLf if b == b'\n' => State::Done,
                State::TrailerLf | State::EndLf => {
                    return Err(BadChunk("trailer line not ended by CRLF"));
                }
                State::Done => unreachable!("the loop stops at Done"),
            };
            i += 1;
        }
        Ok(i)
    }

    fn start_ext(&mut self, size: u64) -> State {
        self.ext = 0;
        State::Ext { size }
    }

    /// Decodes what it can of `input` and appends it to `out` re-encoded as one chunk of our
    /// own (plus the last chunk once the body ends). Returns how many input bytes it took and
    /// how many payload bytes it wrote. On an error `out` holds, as one chunk, the payload that
    /// came before the bad bytes.
    pub(crate) fn rechunk(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Rechunked, BadChunk> {
        // Room for the largest size line; the payload is moved down once its size is known.
        const ROOM: usize = 16 + 2;
        let start = out.len();
        out.resize(start + ROOM, 0);
        let decoded = self.advance(input, |d| out.extend_from_slice(d));
        let payload = out.len() - start - ROOM;
        if payload == 0 {
            out.truncate(start);
        } else {
            let mut line = [0u8; ROOM];
            let n = size_line(payload, &mut line);
            out[start..start + n].copy_from_slice(&line[..n]);
            out.copy_within(start + ROOM.., start + n);
            out.truncate(out.len() - (ROOM - n));
            out.extend_from_slice(b"\r\n");
        }
        // The payload before a bad byte is framed and kept: it was good.
        let used = decoded?;
        if self.is_done() {
            out.extend_from_slice(LAST_CHUNK);
        }
        Ok(Rechunked { used, payload })
    }
}

/// Appends `data` to `out` as one chunk (nothing for empty data: an empty chunk is the last).
pub(crate) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut line = [0u8; 18];
    let n = size_line(data.len(), &mut line);
    out.extend_from_slice(&line[..n]);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// What one [`ChunkedDecoder::rechunk`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rechunked {
    /// Input bytes consumed.
    pub used: usize,
    /// Payload bytes written (framing not counted).
    pub payload: usize,
}

/// Writes `{len:x}\r\n` into `line`; returns its length.
fn size_line(len: usize, line: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).div_ceil(4)).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        *slot = HEX[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    digits + 2
}
