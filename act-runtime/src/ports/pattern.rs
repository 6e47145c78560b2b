//! The portable stream-pattern grammar ([`crate::ports::StreamMatch::Pattern`]), parsed once
//! for every adapter that translates it (SQLite `GLOB`, PostgreSQL `LIKE`).
//!
//! The grammar: literals, `.` (any one character), `.*` (any run), a leading `^` and a
//! trailing `$`; an unanchored side matches anything. A backslash before ASCII punctuation
//! other than `<` and `>` (`\.`, `\*`, `\$`, ...) is a literal. Anything else (`[a-z]`, `+`,
//! `?`, `*` after a literal, `|`, `(`, `{`, `\d`, `\b`, an anchor in the middle) is rejected
//! with a message naming the pattern: a pattern is never silently widened.

// Only the SQL adapters use the parser (the memory adapter compiles patterns as regexes).
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

/// One element of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// `.*`: any run of characters, possibly empty.
    AnyRun,
    /// `.`: any one character (a line break too).
    AnyOne,
    /// A character matched as itself (escaped or not in the source).
    Literal(char),
}

/// A pattern in the portable grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// It starts with `^`: the match begins at the start of the name.
    pub start_anchored: bool,
    /// It ends with `$`: the match ends at the end of the name.
    pub end_anchored: bool,
    /// The tokens between the anchors, in source order.
    pub tokens: Vec<Token>,
}

impl Pattern {
    /// Parses `pattern`, or returns why it is outside the portable grammar (a message naming
    /// the pattern in backquotes).
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        let (start_anchored, rest) = match pattern.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let mut end_anchored = false;
        let mut tokens = Vec::with_capacity(rest.len());
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '$' if chars.peek().is_none() => {
                    end_anchored = true;
                    continue;
                }
                '.' if chars.next_if_eq(&'*').is_some() => Token::AnyRun,
                '.' => Token::AnyOne,
                '\\' => match chars.next() {
                    Some(n) if n.is_ascii_punctuation() && n != '<' && n != '>' => {
                        Token::Literal(n)
                    }
                    Some(n) => return Err(reject(pattern, &format!("\\{n}"))),
                    None => return Err(reject(pattern, "a trailing `\\`")),
                },
                '^' | '$' => return Err(reject(pattern, &format!("`{c}` in the middle"))),
                '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                    return Err(reject(pattern, &format!("`{c}`")));
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(Self {
            start_anchored,
            end_anchored,
            tokens,
        })
    }

    /// The tokens a whole-name matcher (`GLOB`, `LIKE`) needs: an unanchored side becomes an
    /// [`Token::AnyRun`], and adjacent runs are merged into one.
    pub(crate) fn whole(&self) -> Vec<Token> {
        let mut out = Vec::with_capacity(self.tokens.len() + 2);
        let open = |anchored: bool| (!anchored).then_some(Token::AnyRun);
        let all = open(self.start_anchored)
            .into_iter()
            .chain(self.tokens.iter().copied())
            .chain(open(self.end_anchored));
        for t in all {
            if !(t == Token::AnyRun && out.last() == Some(&Token::AnyRun)) {
                out.push(t);
            }
        }
        out
    }
}

fn reject(pattern: &str, what: &str) -> String {
    format!(
        "pattern `{pattern}` is outside the portable grammar (literals, `.`, `.*`, `^`, `$`): \
         {what} cannot be matched exactly"
    )
}

#[cfg(test)]
mod tests {
    use super::Token::{AnyOne, AnyRun, Literal};
    use super::*;

    fn parse(p: &str) -> Pattern {
        Pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn lits(s: &str) -> Vec<Token> {
        s.chars().map(Literal).collect()
    }

    #[test]
    fn parses_anchors_and_tokens() {
        let cases = [
            ("", false, false, vec![]),
            ("^", true, false, vec![]),
            ("$", false, true, vec![]),
            ("^$", true, true, vec![]),
            ("abc", false, false, lits("abc")),
            ("^abc$", true, true, lits("abc")),
            (
                "a.c",
                false,
                false,
                vec![Literal('a'), AnyOne, Literal('c')],
            ),
            (
                "a.*c",
                false,
                false,
                vec![Literal('a'), AnyRun, Literal('c')],
            ),
            (".*.*", false, false, vec![AnyRun, AnyRun]),
            ("^..$", true, true, vec![AnyOne, AnyOne]),
            (r"a\.\*\\\$", false, false, lits(r"a.*\$")),
            (r"\^a$", false, true, lits("^a")),
            ("a_b%", false, false, lits("a_b%")),
            (
                "ünï.ç",
                false,
                false,
                vec![
                    Literal('ü'),
                    Literal('n'),
                    Literal('ï'),
                    AnyOne,
                    Literal('ç'),
                ],
            ),
        ];
        for (p, start_anchored, end_anchored, tokens) in cases {
            let expected = Pattern {
                start_anchored,
                end_anchored,
                tokens,
            };
            assert_eq!(parse(p), expected, "pattern {p:?}");
        }
    }

    #[test]
    fn whole_opens_unanchored_sides_and_merges_runs() {
        let cases = [
            ("", vec![AnyRun]),
            ("^", vec![AnyRun]),
            ("$", vec![AnyRun]),
            ("^$", vec![]),
            ("abc", [vec![AnyRun], lits("abc"), vec![AnyRun]].concat()),
            ("^abc", [lits("abc"), vec![AnyRun]].concat()),
            ("abc$", [vec![AnyRun], lits("abc")].concat()),
            ("^.*$", vec![AnyRun]),
            (".*.*", vec![AnyRun]),
            ("^.*a.*.*$", vec![AnyRun, Literal('a'), AnyRun]),
            ("^..$", vec![AnyOne, AnyOne]),
            (r"^\*.*", vec![Literal('*'), AnyRun]),
        ];
        for (p, expected) in cases {
            assert_eq!(parse(p).whole(), expected, "pattern {p:?}");
        }
    }

    #[test]
    fn rejects_outside_the_grammar() {
        let cases = [
            ("[a-z]", "`[`"),
            ("a+", "`+`"),
            ("a?", "`?`"),
            ("ab*", "`*`"),
            ("*", "`*`"),
            ("a|b", "`|`"),
            ("(a)", "`(`"),
            ("a{2}", "`{`"),
            ("}", "`}`"),
            ("]", "`]`"),
            (".**", "`*`"),
            (".*?", "`?`"),
            (r"\d", r"\d"),
            (r"\w", r"\w"),
            (r"\b", r"\b"),
            (r"\<", r"\<"),
            (r"\>", r"\>"),
            (r"\ ", r"\ "),
            (r"\", "a trailing `\\`"),
            ("a^b", "`^` in the middle"),
            ("^^a", "`^` in the middle"),
            ("a$b", "`$` in the middle"),
            ("a$$", "`$` in the middle"),
        ];
        for (p, what) in cases {
            let err = Pattern::parse(p).expect_err(p);
            assert_eq!(err, reject(p, what), "pattern {p:?}");
            assert!(err.contains(&format!("`{p}`")), "{p}: {err}");
        }
    }
}
