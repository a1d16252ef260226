//! Small helpers for messages about JSON a service sent.

use serde_json::Value;

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
