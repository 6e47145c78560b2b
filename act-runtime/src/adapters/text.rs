//! Text checks shared by the adapters: what PostgreSQL (the reference) cannot store is
//! refused the same way everywhere, the in-memory store included.

use crate::error::{StoreError, ValidationError};
use crate::model::EventMeta;

/// Whether `s` holds a NUL character: a plain loop over a short string (names, ids), where
/// setting up a `memchr` costs more than the scan.
#[inline]
pub(crate) fn has_nul(s: &str) -> bool {
    if s.len() <= 64 {
        s.bytes().any(|b| b == 0)
    } else {
        s.as_bytes().contains(&0)
    }
}

/// Rejects a string holding a NUL character (PostgreSQL cannot store it in `text`).
pub(crate) fn no_nul(target: &str, path: &str, value: &str) -> Result<(), StoreError> {
    if has_nul(value) {
        Err(ValidationError::new(target, path, "must not contain NUL characters").into())
    } else {
        Ok(())
    }
}

/// Rejects JSON text holding a NUL character, raw or escaped as `\u0000` (PostgreSQL's
/// `jsonb` refuses both).
pub(crate) fn no_nul_json(target: &str, path: &str, json: &str) -> Result<(), StoreError> {
    if !has_nul_json(json) {
        return Ok(());
    }
    no_nul(target, path, json)?;
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(pos) = json[from..].find("\\u0000") {
        let at = from + pos;
        // The escape is real when an even number of backslashes precede its own.
        let run = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if run.is_multiple_of(2) {
            return Err(ValidationError::new(
                target,
                path,
                "must not contain NUL characters (`\\u0000`)",
            )
            .into());
        }
        from = at + 1;
    }
    Ok(())
}

/// Whether JSON text may hold a NUL character, raw or escaped: `false` is certain (no NUL
/// byte and no backslash at all, one pass over the bytes), `true` asks for
/// [`no_nul_json`]'s exact check.
#[inline]
pub(crate) fn has_nul_json(json: &str) -> bool {
    json.bytes().any(|b| b == 0 || b == b'\\')
}

/// Rejects a commit's meta holding a NUL character in any of its strings (the path names
/// the field), without serializing it.
pub(crate) fn no_nul_meta(target: &str, meta: &EventMeta) -> Result<(), StoreError> {
    no_nul(target, "/meta/correlation", &meta.correlation)?;
    no_nul(target, "/meta/actor/id", &meta.actor.id)?;
    no_nul(target, "/meta/actor/name", &meta.actor.name)?;
    if let Some(a) = &meta.causation.action {
        no_nul(target, "/meta/causation/action/name", &a.name)?;
        no_nul(target, "/meta/causation/action/stream", &a.stream)?;
    }
    if let Some(e) = &meta.causation.event {
        no_nul(target, "/meta/causation/event/name", &e.name)?;
        no_nul(target, "/meta/causation/event/stream", &e.stream)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_raw_and_escaped_but_not_an_escaped_backslash() {
        assert!(no_nul("s", "", "a\0b").is_err());
        assert!(no_nul("s", "", "ab").is_ok());
        assert!(no_nul_json("s", "", r#"{"a":"\u0000"}"#).is_err());
        assert!(no_nul_json("s", "", r#"{"a":"\\u0000"}"#).is_ok());
        assert!(no_nul_json("s", "", r#"{"a":"\\\u0000"}"#).is_err());
        assert!(!has_nul_json(r#"{"a":"b"}"#));
        assert!(has_nul_json(r#"{"a":"\\n"}"#) && has_nul_json("a\0b"));
    }
}
