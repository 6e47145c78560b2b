//! The JSON edge: payload validation against an action's schema, and decoding.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::registry::ActionEntry;
use crate::error::{FieldError, ValidationError};

/// Validates `payload` against the action's JSON Schema, collecting every problem.
pub(crate) fn validate(entry: &ActionEntry, payload: &Value) -> Result<(), ValidationError> {
    let validator = entry.validator().map_err(|message| ValidationError {
        target: entry.name().to_owned(),
        problems: vec![FieldError {
            path: String::new(),
            message: format!("the action's schema does not compile: {message}"),
        }],
    })?;
    let problems: Vec<FieldError> = validator
        .iter_errors(payload)
        .map(|e| FieldError {
            path: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationError {
            target: entry.name().to_owned(),
            problems,
        })
    }
}

/// Decodes a validated payload, naming the field on a mismatch the schema did not catch
/// (an integer out of range, say).
pub(crate) fn decode<T: DeserializeOwned>(
    name: &str,
    payload: Value,
) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let pointer = crate::error::json_pointer(e.path());
        ValidationError::new(name, pointer, e.into_inner().to_string())
    })
}

/// Where compact JSON text `json` nests deeper than `max` containers (arrays and objects;
/// the outermost counts as 1): the JSON pointer of the first container past the limit, or
/// `None` when it is at most `max` deep. Linear in the text; allocates only on the way out.
pub(crate) fn too_deep(json: &str, max: usize) -> Option<String> {
    // Nearly every payload is well under the limit: a first pass only counts the depth,
    // and the pointer is only worked out (by the pass below) for one that is over it.
    if max_depth(json.as_bytes()) <= max {
        return None;
    }
    let bytes = json.as_bytes();
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Open::Object(key @ None)) = open.last_mut() {
                    *key = Some((start, i + 1));
                }
            }
            b'[' | b'{' => {
                if open.len() == max {
                    return Some(pointer(json, &open));
                }
                open.push(if bytes[i] == b'[' {
                    Open::Array(0)
                } else {
                    Open::Object(None)
                });
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => match open.last_mut() {
                Some(Open::Array(index)) => *index += 1,
                Some(Open::Object(key)) => *key = None,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    None
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped), without
/// allocating.
fn max_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// An open container while scanning JSON text: an array at an index, or an object at the
/// key between two byte offsets of the text (its quotes included).
enum Open {
    Array(usize),
    Object(Option<(usize, usize)>),
}

/// The JSON pointer of the position inside the innermost of `open`.
fn pointer(json: &str, open: &[Open]) -> String {
    let mut out = String::new();
    for step in open {
        out.push('/');
        match step {
            Open::Array(index) => out.push_str(&index.to_string()),
            Open::Object(key) => {
                let key = key
                    .and_then(|(a, b)| json.get(a..b))
                    .and_then(|k| serde_json::from_str::<String>(k).ok())
                    .unwrap_or_default();
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::too_deep;

    #[test]
    fn depth_counts_containers_and_points_at_the_first_past_the_limit() {
        assert_eq!(too_deep("1", 0), None);
        assert_eq!(too_deep("[]", 0).as_deref(), Some(""));
        assert_eq!(too_deep("[]", 1), None);
        assert_eq!(too_deep("[[1],[2,[3]]]", 3), None);
        assert_eq!(too_deep("[[1],[2,[3]]]", 2).as_deref(), Some("/1/1"));
        assert_eq!(too_deep(r#"{"a":{"b":[]}}"#, 3), None);
        assert_eq!(too_deep(r#"{"a":{"b":[]}}"#, 2).as_deref(), Some("/a/b"));
        // brackets and quotes inside strings are text, keys are unescaped then escaped
        assert_eq!(too_deep(r#"{"[[\"{":"]]]","x":1}"#, 1), None);
        assert_eq!(
            too_deep(r#"{"k":1,"a/b~\"":{"c":[[]]}}"#, 3).as_deref(),
            Some("/a~1b~0\"/c/0")
        );
        assert_eq!(
            too_deep(r#"[{"a":1},{"b":{}}]"#, 2).as_deref(),
            Some("/1/b")
        );
    }

    #[test]
    fn deep_arrays_are_measured_exactly() {
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert_eq!(too_deep(&nested(100), 100), None);
        assert_eq!(too_deep(&nested(101), 100), Some("/0".repeat(100)));
        assert_eq!(too_deep(&nested(5000), 100), Some("/0".repeat(100)));
    }
}
