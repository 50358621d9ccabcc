//! Unique jobs (SPEC §8): the key that says two enqueues ask for the same job, and the
//! bounds of `unique_for_seconds`. Every store computes the key here, so that the same
//! template and context give the same key on every backend.

use crate::error::{StoreError, Violation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The longest window of a unique job: 366 days, in seconds.
pub const MAX_UNIQUE_FOR_SECONDS: i32 = 366 * 24 * 3600;

/// The unique key of an entry of `template` with `context`: the template's code, a
/// colon, and the SHA-256 (lower-case hex) of the context's canonical JSON — object keys
/// sorted, no white space — so that `{"a":1,"b":2}` and `{"b":2,"a":1}` are one job.
pub fn unique_key(template: &str, context: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(context, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut key = String::with_capacity(template.len() + 1 + 64);
    key.push_str(template);
    key.push(':');
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// `value` as JSON with every object's keys in sorted order, whatever order the map
/// keeps (serde_json's `preserve_order` feature may be on in the application).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Reports a `unique_for_seconds` outside `1..=`[`MAX_UNIQUE_FOR_SECONDS`] at `pointer`.
pub fn check_unique_for(pointer: &str, seconds: i32, v: &mut Vec<Violation>) {
    if !(1..=MAX_UNIQUE_FOR_SECONDS).contains(&seconds) {
        v.push(Violation::new(
            pointer,
            format!("must be between 1 and {MAX_UNIQUE_FOR_SECONDS}"),
        ));
    }
}

/// `Conflict` when two entries of one request have the same unique key (`keys` in
/// request order; `None` for an entry that is not unique). The second would be a
/// duplicate of the first, which is not written either when the batch fails, so the
/// request is refused as a whole (docs/SPEC-NOTES.md).
pub fn check_repeated_keys<'a>(
    keys: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<(), StoreError> {
    let mut seen = std::collections::HashMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        if let Some(key) = key
            && let Some(first) = seen.insert(key, i)
        {
            return Err(StoreError::Conflict(format!(
                "entries {first} and {i} of this request are the same unique job"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_contexts_give_one_key_whatever_their_key_order() {
        let a = unique_key("t", &json!({"a": 1, "b": [{"y": 2, "x": "é"}]}));
        let b: Value = serde_json::from_str(r#"{"b":[{"x":"é","y":2}],"a":1}"#).unwrap();
        assert_eq!(a, unique_key("t", &b));
        assert!(a.starts_with("t:"));
        assert_eq!(a.len(), 2 + 64);
    }

    #[test]
    fn a_different_template_or_context_is_another_key() {
        let k = unique_key("t", &json!({"a": 1}));
        assert_ne!(k, unique_key("u", &json!({"a": 1})));
        assert_ne!(k, unique_key("t", &json!({"a": 2})));
        assert_ne!(k, unique_key("t", &json!({"a": "1"})));
    }

    #[test]
    fn windows_are_bounded() {
        let mut v = Vec::new();
        for s in [0, -1, MAX_UNIQUE_FOR_SECONDS + 1] {
            check_unique_for("/unique_for_seconds", s, &mut v);
        }
        assert_eq!(v.len(), 3);
        check_unique_for("/unique_for_seconds", 1, &mut v);
        check_unique_for("/unique_for_seconds", MAX_UNIQUE_FOR_SECONDS, &mut v);
        assert_eq!(v.len(), 3);
    }
}
