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
        let path = e.path().to_string();
        let pointer = if path == "." {
            String::new()
        } else {
            format!("/{}", path.replace('.', "/"))
        };
        ValidationError::new(name, pointer, e.into_inner().to_string())
    })
}
