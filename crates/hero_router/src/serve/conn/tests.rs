//! Unit tests of the connection driver's pure parts.

use super::*;

/// `may_hold_head` says what its definition says: some line feed is followed by another, or
/// by CR LF. Random buffers of line endings and text, in `make fuzz` with 1,000,000 cases.
#[test]
fn head_end_search_agrees_with_the_definition() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces: [&[u8]; 6] = [b"\r\n", b"\n", b"\r", b"a", b"GET / HTTP/1.1", b": "];
    let mut whole = 0;
    for case in 0..cases {
        let buf: Vec<u8> = (0..rng.usize(0..12))
            .flat_map(|_| pieces[rng.usize(..pieces.len())].iter().copied())
            .collect();
        let expected = buf
            .windows(2)
            .enumerate()
            .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && buf.get(i + 2) == Some(&b'\n')));
        whole += usize::from(expected);
        assert_eq!(
            may_hold_head(&buf),
            expected,
            "seed {seed} case {case}: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    assert!(whole > 0 && whole < cases, "{whole} of {cases} whole");
}
