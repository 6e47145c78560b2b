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

/// Digits PostgreSQL's `numeric` (the numbers of `jsonb`) keeps before the decimal point.
const NUMERIC_INT_DIGITS: i64 = 131_072;
/// Digits it keeps after the decimal point.
const NUMERIC_SCALE: i64 = 16_383;

/// Rejects JSON text holding a number PostgreSQL's `jsonb` cannot store (more than 131,072
/// digits before the decimal point or 16,383 after it, exponent applied: `1e131072`,
/// `1e-16384`), which every store refuses alike.
pub(crate) fn numbers_fit(target: &str, path: &str, json: &str) -> Result<(), StoreError> {
    if !has_digit_run(json) || all_numbers_fit(json.as_bytes()) {
        return Ok(());
    }
    Err(ValidationError::new(
        target,
        path,
        "holds a number out of range (PostgreSQL keeps at most 131072 digits before the \
         decimal point and 16383 after it)",
    )
    .into())
}

/// Whether `json` has five ASCII digits in a row: a number out of range needs them (an
/// exponent of at least 16,384, or thousands of digits), so `false` is certain.
#[inline]
fn has_digit_run(json: &str) -> bool {
    let mut run = 0u8;
    for b in json.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run == 5 {
            return true;
        }
    }
    false
}

/// Walks `json` (valid JSON) and checks every number outside its strings.
fn all_numbers_fit(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if !number_fits(&json[start..i]) {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// Whether one JSON number fits `numeric`: its leading digit's place and its scale.
fn number_fits(number: &[u8]) -> bool {
    let digits = number.strip_prefix(b"-").unwrap_or(number);
    let (mantissa, exponent) = match digits.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (&digits[..at], &digits[at + 1..]),
        None => (digits, &b""[..]),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &b""[..]),
    };
    // An exponent past any digit count saturates (it is out of range either way).
    let exp = {
        let (negative, e) = match exponent.first() {
            Some(b'-') => (true, &exponent[1..]),
            Some(b'+') => (false, &exponent[1..]),
            _ => (false, exponent),
        };
        let magnitude = e.iter().fold(0i64, |acc, &d| {
            (acc * 10 + i64::from(d - b'0')).min(i64::from(u32::MAX))
        });
        if negative { -magnitude } else { magnitude }
    };
    let frac_len = frac.len() as i64;
    if frac_len - exp > NUMERIC_SCALE {
        return false;
    }
    // The place of the leading non-zero digit (0 for the units); zero fits anywhere.
    let lead = match int.iter().position(|&b| b != b'0') {
        Some(at) => (int.len() - at) as i64 - 1,
        None => match frac.iter().position(|&b| b != b'0') {
            Some(at) => -(at as i64) - 1,
            None => return true,
        },
    };
    lead + exp < NUMERIC_INT_DIGITS
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
    fn numbers_fit_where_postgresql_keeps_them() {
        // Each limit as PostgreSQL 15 answers it for `'[n]'::jsonb`.
        for fits in [
            "1e131071",
            "123e131069",
            "0.0001e131075",
            "1e-16383",
            "0e99999999",
            "12345",
            "-1.5E+300",
            "[1, 2.5, {\"a\": 99999}]",
            "0e-16383",
            "10e131070",
            "1E+131071",
        ] {
            assert!(numbers_fit("s", "", fits).is_ok(), "{fits}");
        }
        for overflows in [
            "1e131072",
            "1e200000",
            "1e-16384",
            "1.5e-16383",
            "-1e1000000",
            "{\"a\": [1, 1e99999999999999999999]}",
            "0e-99999",
            "0.000e-16381",
            "1.0e-16383",
            "10e131071",
            "-0.0e-16384",
        ] {
            assert!(numbers_fit("s", "", overflows).is_err(), "{overflows}");
        }
        let long = format!("[0.{}]", "1".repeat(16_384));
        assert!(numbers_fit("s", "", &long).is_err());
        assert!(numbers_fit("s", "", &format!("[{}]", "9".repeat(131_072))).is_ok());
        assert!(numbers_fit("s", "", &format!("[{}]", "9".repeat(131_073))).is_err());
        // Digits inside strings are text, escaped quotes included.
        assert!(numbers_fit("s", "", r#"{"a": "1e999999 \" 1e999999"}"#).is_ok());
    }

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
