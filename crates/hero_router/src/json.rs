//! Small JSON helpers: messages about JSON a service sent, plain data as JSON text.

use serde_json::Value;
use serde_json::value::RawValue;

/// `value` as JSON text. Serializing plain data to a string cannot fail; `null` if it did.
pub(crate) fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("valid JSON"))
}

/// `text` cut to at most `max` bytes at a character boundary, ending in `…` if it was cut:
/// text a service controls (a reason, a quoted value) made small enough for a log line or a
/// message.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        text.truncate(boundary_at(&text, max));
        text.push('…');
    }
    text
}

/// [`cut`] of borrowed text: only the kept part is copied (a megabyte of name is not).
pub(crate) fn cut_str(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", &text[..boundary_at(text, max)])
}

/// The largest character boundary of `text` at or below `max`.
fn boundary_at(text: &str, max: usize) -> usize {
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Words to add to a JSON parser's error where its own mislead: a lone UTF-16 surrogate
/// escape (`"\ud800"`, which Python's `json.dumps` writes for a string holding one) is
/// reported as a bad or unfinished hex escape.
pub(crate) fn parse_hint(e: &serde_json::Error) -> &'static str {
    let message = e.to_string();
    if message.contains("surrogate") || message.contains("end of hex escape") {
        " (a \\uD800-\\uDFFF escape is half of a UTF-16 pair and must be followed by its other half: a string holding a lone surrogate is not valid Unicode)"
    } else {
        ""
    }
}

/// A JSON value's kind, as a message says it: "an array", "a string", "null".
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `json` laid out as `serde_json::to_string_pretty` lays it out (two-space indents, `"key":
/// value`), every number and string kept as written: a result or a spec the CLI prints is the
/// service's, and a number parsed into an `f64` on the way would change (an integer wider
/// than 64 bits, a decimal with more digits than a double holds, `1e2` printed `100.0`).
pub(crate) fn pretty(json: &RawValue) -> String {
    let text = json.get();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut depth = 0usize;
    // Just after `[` or `{`: the line break before the first member waits for that member,
    // since an empty container stays `[]` / `{}`.
    let mut opened = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
            continue;
        }
        if matches!(b, b']' | b'}') {
            depth = depth.saturating_sub(1);
            if !opened {
                newline(&mut out, depth);
            }
            opened = false;
            out.push(char::from(b));
            i += 1;
            continue;
        }
        if opened {
            newline(&mut out, depth);
            opened = false;
        }
        let start = i;
        i += 1;
        match b {
            b'[' | b'{' => {
                depth += 1;
                opened = true;
            }
            b',' => {}
            b':' => {}
            b'"' => {
                // To the closing quote; an escaped character is skipped whole.
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            // A number or a literal: to the next delimiter.
            _ => {
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b',' | b':' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    i += 1;
                }
            }
        }
        let token = &text[start..i.min(bytes.len())];
        match b {
            b',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            b':' => out.push_str(": "),
            _ => out.push_str(token),
        }
    }
    out
}

#[cfg(test)]
mod tests;
