//! Key layout: `<prefix>:{<stream>}`, and the validation that keeps tenants apart.
//!
//! A prefix is 1 to [`PREFIX_MAX`] bytes of ASCII letters, digits, `_`, `-`, `.` and `:`.
//! So a prefix never holds `{`, and the first `{` of a key always ends its prefix: two
//! different `(prefix, stream)` pairs never share a key, and `<prefix>:{*` (the `SCAN` pattern
//! of `clear`) matches only the prefix's own keys, never those of `<prefix>:b` or
//! `<prefix>-b`. Nor does a prefix hold a glob character (`*`, `?`, `[`, `]`, `\`), so the
//! pattern needs no escaping.

use crate::error::ValidationError;

/// The longest prefix, in bytes.
pub const PREFIX_MAX: usize = 128;

/// Checks that `prefix` is a valid key prefix.
pub(super) fn validate_prefix(prefix: &str) -> Result<(), ValidationError> {
    let fail = |message: &str| Err(ValidationError::new("redis key prefix", "prefix", message));
    if prefix.is_empty() {
        return fail("must not be empty");
    }
    if prefix.len() > PREFIX_MAX {
        return fail(&format!("must be at most {PREFIX_MAX} bytes"));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return fail(&format!(
            "{c:?} is not allowed (only ASCII letters, digits, `_`, `-`, `.` and `:`)"
        ));
    }
    Ok(())
}

/// The key of `stream`'s entry. The stream is a Redis Cluster hash tag, so an entry and any
/// companion key of one stream share a slot, and a tenant's streams spread over every slot.
pub(super) fn entry_key(prefix: &str, stream: &str) -> String {
    format!("{prefix}:{{{stream}}}")
}

/// The `SCAN MATCH` pattern of every entry of `prefix`, and of nothing else.
pub(super) fn scan_pattern(prefix: &str) -> String {
    format!("{prefix}:{{*")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's glob (`stringmatchlen`) for the patterns built here: literals and `*`.
    fn glob(pattern: &str, key: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == key,
            Some((head, "")) => key.starts_with(head),
            Some(_) => unreachable!("one trailing `*` only"),
        }
    }

    #[test]
    fn valid_prefixes() {
        for p in ["act", "act:tenant-1", "a.b_c:D-9", &"x".repeat(PREFIX_MAX)] {
            assert!(validate_prefix(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn invalid_prefixes() {
        for p in [
            "",
            "a*",
            "a?",
            "a[b]",
            "a\\b",
            "a{b",
            "a}b",
            "a b",
            "a\nb",
            "ü",
            &"x".repeat(PREFIX_MAX + 1),
        ] {
            assert!(validate_prefix(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn keys_and_patterns() {
        assert_eq!(entry_key("act:t", "cart-1"), "act:t:{cart-1}");
        assert_eq!(entry_key("act:t", ""), "act:t:{}");
        assert_eq!(scan_pattern("act:t"), "act:t:{*");
    }

    #[test]
    fn a_prefix_matches_only_its_own_keys() {
        let prefixes = ["act:a", "act:a:b", "act:a-b", "act:a:", "act", "act:a:{x}"];
        let streams = ["s", "", "{", "}", "x}:{y", "a:b", "*"];
        for p in prefixes.iter().filter(|p| validate_prefix(p).is_ok()) {
            for q in prefixes.iter().filter(|q| validate_prefix(q).is_ok()) {
                for s in streams {
                    let key = entry_key(q, s);
                    assert_eq!(glob(&scan_pattern(p), &key), p == q, "{p} vs {key}");
                    for t in streams {
                        assert_eq!(key == entry_key(p, t), p == q && s == t, "{p}/{t} vs {key}");
                    }
                }
            }
        }
    }
}
