//! Text checks shared by the adapters: what PostgreSQL (the reference) cannot store is
//! refused the same way everywhere, the in-memory store included.

use crate::error::{StoreError, ValidationError};
use crate::model::EventMeta;

/// Whether `s` holds a NUL character. Short strings (names, ids) are read eight bytes at a
/// time, where setting up a `memchr` costs more than the scan.
#[inline]
pub(crate) fn has_nul(s: &str) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let bytes = s.as_bytes();
    if bytes.len() > 64 {
        return bytes.contains(&0);
    }
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        // Non-zero exactly when some byte of `x` is zero (the classic "has a zero byte").
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return true;
        }
    }
    words.remainder().contains(&0)
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
        for len in 0..80 {
            let clean: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            assert!(!has_nul(&clean), "{len}");
            assert!(!has_nul(&"\u{80}\u{101}é".repeat(len)), "{len}");
            for at in 0..len {
                let mut dirty = clean.clone().into_bytes();
                dirty[at] = 0;
                assert!(has_nul(std::str::from_utf8(&dirty).unwrap()), "{len} {at}");
            }
        }
    }
}
