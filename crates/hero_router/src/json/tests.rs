use serde_json::Value;
use serde_json::value::RawValue;

use super::{parse_hint, pretty};

fn raw(text: &str) -> Box<RawValue> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn pretty_keeps_numbers_as_written() {
    let text = r#"{"big":12345678901234567890123,"dec":0.1000000000000000055511151231257827,"e":1e2,"list":[-0.0,1E+400],"empty":{},"none":[],"s":"a,b:[c]{\"d\\"}"#;
    assert_eq!(
        pretty(&raw(text)),
        r#"{
  "big": 12345678901234567890123,
  "dec": 0.1000000000000000055511151231257827,
  "e": 1e2,
  "list": [
    -0.0,
    1E+400
  ],
  "empty": {},
  "none": [],
  "s": "a,b:[c]{\"d\\"
}"#
    );
    assert_eq!(pretty(&raw("  7 ")), "7");
    assert_eq!(pretty(&raw(r#""x""#)), r#""x""#);
}

/// A random JSON text: nested arrays and objects, strings with escapes, numbers of any size,
/// whitespace between every token. With `canonical`, it is what `serde_json` itself would
/// write (numbers that round-trip, strings it would not re-escape, no whitespace), so its
/// pretty form is `serde_json`'s.
fn random_json(rng: &mut fastrand::Rng, depth: usize, canonical: bool, out: &mut String) {
    let ws = |rng: &mut fastrand::Rng, out: &mut String| {
        if !canonical {
            for _ in 0..rng.usize(..3) {
                out.push([' ', '\n', '\t', '\r'][rng.usize(..4)]);
            }
        }
    };
    ws(rng, out);
    let kind = if depth == 0 {
        rng.u8(2..6)
    } else {
        rng.u8(..6)
    };
    match kind {
        0 | 1 => {
            let object = kind == 1;
            out.push(if object { '{' } else { '[' });
            let n = rng.usize(..4);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                if object {
                    ws(rng, out);
                    if canonical {
                        // serde_json's map is sorted and has one value per key.
                        out.push_str(&format!("\"k{i}\""));
                    } else {
                        random_string(rng, canonical, out);
                    }
                    ws(rng, out);
                    out.push(':');
                }
                random_json(rng, depth - 1, canonical, out);
            }
            ws(rng, out);
            out.push(if object { '}' } else { ']' });
        }
        2 => random_string(rng, canonical, out),
        3 => out.push_str(["true", "false", "null"][rng.usize(..3)]),
        _ if canonical => out.push_str(&rng.i64(..).to_string()),
        _ => {
            if rng.bool() {
                out.push('-');
            }
            let digits = rng.usize(1..40);
            out.push(char::from(b'1' + rng.u8(..9)));
            for _ in 1..digits {
                out.push(char::from(b'0' + rng.u8(..10)));
            }
            if rng.bool() {
                out.push('.');
                for _ in 0..rng.usize(1..30) {
                    out.push(char::from(b'0' + rng.u8(..10)));
                }
            }
            if rng.bool() {
                out.push_str(["e", "E", "e+", "E-"][rng.usize(..4)]);
                out.push_str(&rng.u16(..250).to_string());
            }
        }
    }
    ws(rng, out);
}

fn random_string(rng: &mut fastrand::Rng, canonical: bool, out: &mut String) {
    let plain = ["a", "Z", "é", "∑", "😀", ",", ":", "[", "}", " "];
    let canonical_escapes = ["\\\"", "\\\\", "\\n", "\\t", "\\u0001"];
    let other_escapes = ["\\/", "\\u00e9", "\\uD83D\\uDE00", "\\b", "\\f", "\\r"];
    out.push('"');
    for _ in 0..rng.usize(..6) {
        out.push_str(match rng.u8(..3) {
            0 => canonical_escapes[rng.usize(..canonical_escapes.len())],
            1 if !canonical => other_escapes[rng.usize(..other_escapes.len())],
            _ => plain[rng.usize(..plain.len())],
        });
    }
    out.push('"');
}

/// `text` without the whitespace between its tokens.
fn tokens_only(text: &str) -> String {
    let (mut out, mut in_str, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// Differential, against `serde_json` (parser and pretty printer): on random texts the pretty
/// form parses to the same value and keeps every token as written; on texts `serde_json`
/// would write itself, it is byte for byte `serde_json::to_string_pretty`'s. `HERO_FUZZ_CASES`
/// sets the count (`make fuzz` runs 1,000,000).
#[test]
fn pretty_json_round_trip_keeps_every_token() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    for case in 0..cases {
        let canonical = rng.bool();
        let mut text = String::new();
        let depth = rng.usize(..5);
        random_json(&mut rng, depth, canonical, &mut text);
        let input = raw(&text);
        let laid_out = pretty(&input);
        let context = || format!("seed {seed} case {case}: {text:?} -> {laid_out:?}");
        let parsed: Value =
            serde_json::from_str(&laid_out).unwrap_or_else(|e| panic!("{e}: {}", context()));
        assert_eq!(
            parsed,
            serde_json::from_str::<Value>(&text).unwrap(),
            "{}",
            context()
        );
        assert_eq!(
            tokens_only(&laid_out),
            tokens_only(input.get()),
            "{}",
            context()
        );
        if canonical {
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                laid_out,
                serde_json::to_string_pretty(&value).unwrap(),
                "{}",
                context()
            );
        }
    }
}

/// A lone surrogate escape, as Python's `json.dumps` writes one, gets words that say what is
/// wrong; other parse errors get none.
#[test]
fn a_lone_surrogate_gets_a_hint() {
    for text in [
        r#"{"m":"\ud800"}"#,
        r#"{"m":"\ud800x"}"#,
        r#"{"m":"\udc00"}"#,
    ] {
        let e = serde_json::from_str::<Value>(text).unwrap_err();
        assert!(parse_hint(&e).contains("UTF-16 pair"), "{text}: {e}");
    }
    for text in ["{", r#"{"m":"\u12g4"}"#, "[1,]"] {
        let e = serde_json::from_str::<Value>(text).unwrap_err();
        assert_eq!(parse_hint(&e), "", "{text}: {e}");
    }
}
