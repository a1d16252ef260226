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
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
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
