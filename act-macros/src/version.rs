//! Versioned event names: `Deposited`, `Deposited_v2`, `Deposited_v3`. The highest version
//! of a base name is current; the others are deprecated (kept to read old streams).

/// The base name and version of an event name: `("Deposited", 2)` for `Deposited_v2`,
/// `("Deposited", 1)` for `Deposited`; `Err` with the message for a malformed suffix
/// (`_v02`, `_v1`, `_v0`).
pub(crate) fn parse(name: &str) -> Result<(&str, u32), String> {
    let Some(at) = name.rfind("_v") else {
        return Ok((name, 1));
    };
    let (base, digits) = (&name[..at], &name[at + 2..]);
    if base.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((name, 1));
    }
    let trimmed = digits.trim_start_matches('0');
    let n: u32 = trimmed.parse().unwrap_or(0);
    if n < 2 {
        return Err(format!(
            "`{name}` is not a version: the first version of `{base}` has no suffix, \
             and later ones count from `{base}_v2`"
        ));
    }
    if trimmed.len() != digits.len() {
        return Err(format!(
            "write `{base}_v{n}`: event versions have no leading zeros"
        ));
    }
    Ok((base, n))
}

/// The deprecated names among `names` (every version of a base name but the highest), in
/// declaration order. Malformed names are skipped (they are reported elsewhere).
pub(crate) fn deprecated<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let parsed: Vec<_> = names
        .iter()
        .filter_map(|n| parse(n).ok().map(|v| (*n, v)))
        .collect();
    parsed
        .iter()
        .filter(|(_, (base, v))| parsed.iter().any(|(_, (b, w))| b == base && w > v))
        .map(|(name, _)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse("Deposited"), Ok(("Deposited", 1)));
        assert_eq!(parse("Deposited_v2"), Ok(("Deposited", 2)));
        assert_eq!(parse("Deposited_v12"), Ok(("Deposited", 12)));
        assert_eq!(parse("Moved_vertically"), Ok(("Moved_vertically", 1)));
        assert_eq!(parse("_v2"), Ok(("_v2", 1)));
        assert_eq!(
            parse("Deposited_v02"),
            Err("write `Deposited_v2`: event versions have no leading zeros".into())
        );
        assert!(
            parse("Deposited_v1")
                .unwrap_err()
                .contains("count from `Deposited_v2`")
        );
        assert!(parse("Deposited_v0").is_err());
    }

    #[test]
    fn all_but_the_highest_version_are_deprecated() {
        let names = [
            "Deposited",
            "Withdrawn",
            "Deposited_v3",
            "Deposited_v2",
            "Closed_v2",
        ];
        assert_eq!(deprecated(&names), ["Deposited", "Deposited_v2"]);
    }
}
