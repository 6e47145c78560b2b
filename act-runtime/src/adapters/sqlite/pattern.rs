//! The portable stream-pattern grammar, translated to SQLite `GLOB`.
//!
//! The grammar ([`crate::ports::StreamMatch::Pattern`]) is: literals, `.` (any one
//! character), `.*` (any run), a leading `^` and a trailing `$`; an unanchored side matches
//! anything. A backslash before ASCII punctuation (`\.`, `\*`, `\$`, ...) is a literal. `GLOB`
//! is case-sensitive, so the translation is exact:
//!
//! | pattern | GLOB      | | pattern | GLOB      |
//! |---------|-----------|-|---------|-----------|
//! | `abc`   | `*abc*`   | | `a.c`   | `*a?c*`   |
//! | `^abc`  | `abc*`    | | `a.*c`  | `*a*c*`   |
//! | `abc$`  | `*abc`    | | `a\*`   | `*a[*]*`  |
//! | `^abc$` | `abc`     | | `a_b%`  | `*a_b%*`  |
//!
//! Anything else (`[a-z]`, `+`, `?`, `*` after a literal, `|`, `(`, `{`, `\d`, `\b`, an
//! anchor in the middle) cannot be matched exactly and is rejected: a pattern is never
//! silently widened.
//!
//! `.` and `GLOB`'s `?` and `*` all match a line break too (the in-memory oracle compiles
//! patterns with `dot_matches_new_line`, as PostgreSQL's `~` behaves).

use rusqlite::types::Value;

use crate::error::{StoreError, ValidationError};
use crate::ports::StreamMatch;
use crate::ports::pattern::{Pattern, Token};

/// The SQL condition "a column matches `m`".
pub(crate) enum Cond {
    /// Matches nothing.
    Nothing,
    /// `column = ?`
    Eq(String),
    /// `column GLOB ?`
    Glob(String),
}

/// The condition for `m`; a pattern outside the portable grammar is
/// [`StoreError::Invalid`] (`target` and `path` name the input).
pub(crate) fn stream_match(m: &StreamMatch, target: &str, path: &str) -> Result<Cond, StoreError> {
    Ok(match m {
        // No stored name holds a NUL (commit and subscribe refuse them), and SQLite's GLOB
        // would stop reading a pattern at one: such a filter matches nothing.
        m if m.as_str().contains('\0') => {
            if let StreamMatch::Pattern(p) = m {
                validate(p, target, path)?;
            }
            Cond::Nothing
        }
        StreamMatch::Exact(s) => Cond::Eq(s.clone()),
        StreamMatch::Pattern(p) => {
            Cond::Glob(to_glob(p).map_err(|e| ValidationError::new(target, path, e))?)
        }
    })
}

/// Appends the condition "`column` matches `m`" to `sql`, its parameter to `params`; a
/// pattern outside the portable grammar is [`StoreError::Invalid`] (`target` and `path` name
/// the input).
pub(crate) fn push_stream_match(
    sql: &mut String,
    params: &mut Vec<Value>,
    column: &'static str,
    m: &StreamMatch,
    target: &str,
    path: &str,
) -> Result<(), StoreError> {
    let (op, param) = match stream_match(m, target, path)? {
        Cond::Nothing => {
            sql.push('0');
            return Ok(());
        }
        Cond::Eq(s) => (" = ?", s),
        Cond::Glob(g) => (" GLOB ?", g),
    };
    sql.push_str(column);
    sql.push_str(op);
    params.push(Value::Text(param));
    Ok(())
}

/// Checks `pattern` is in the portable grammar.
pub(crate) fn validate(pattern: &str, target: &str, path: &str) -> Result<(), StoreError> {
    to_glob(pattern)
        .map(drop)
        .map_err(|e| ValidationError::new(target, path, e).into())
}

/// Translates a portable pattern to `GLOB`, or says why it cannot.
pub(crate) fn to_glob(pattern: &str) -> Result<String, String> {
    let tokens = Pattern::parse(pattern)?.whole();
    let mut out = String::with_capacity(pattern.len() + 2);
    for t in tokens {
        match t {
            Token::AnyRun => out.push('*'),
            Token::AnyOne => out.push('?'),
            Token::Literal(c) => push_literal(&mut out, c),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '*' => out.push_str("[*]"),
        '?' => out.push_str("[?]"),
        '[' => out.push_str("[[]"),
        ']' => out.push_str("[]]"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> String {
        to_glob(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn translation_table() {
        let table = [
            ("", "*"),
            ("^", "*"),
            ("$", "*"),
            ("^$", ""),
            ("abc", "*abc*"),
            ("^abc", "abc*"),
            ("abc$", "*abc"),
            ("^abc$", "abc"),
            ("a.c", "*a?c*"),
            ("^a.c$", "a?c"),
            ("a.*c", "*a*c*"),
            (".*", "*"),
            ("^.*$", "*"),
            ("^.*abc.*$", "*abc*"),
            (".*.*", "*"),
            ("^..$", "??"),
            ("a_b%", "*a_b%*"),
            (r"a\.b", "*a.b*"),
            (r"a\*", "*a[*]*"),
            (r"\?", "*[?]*"),
            (r"\[x\]", "*[[]x[]]*"),
            (r"\^a\$", "*^a$*"),
            (r"\\", "*\\*"),
            ("cart-1", "*cart-1*"),
            ("^Cart-", "Cart-*"),
            ("ünï.ç", "*ünï?ç*"),
            ("a b/c:d#e", "*a b/c:d#e*"),
        ];
        for (pattern, expected) in table {
            assert_eq!(glob(pattern), expected, "pattern {pattern:?}");
        }
    }

    #[test]
    fn rejects_what_glob_cannot_express() {
        for p in [
            "[a-z]", "a+", "a?", "ab*", "*", "a|b", "(a)", "a{2}", "}", "]", r"\d", r"\w", r"\b",
            r"\<", r"\", "a^b", "a$b", "^^a", "a$$", ".**", ".*?", r"\ ",
        ] {
            let err = to_glob(p).expect_err(p);
            assert!(err.contains(&format!("`{p}`")), "{p}: {err}");
        }
    }
}
