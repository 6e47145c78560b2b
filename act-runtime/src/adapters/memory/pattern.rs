//! Stream-name matching for the in-memory store.
//!
//! Patterns ([`StreamMatch::Pattern`]) are compiled with the `regex` crate: the portable
//! grammar (`^`, `$`, `.`, `.*`, literals) means the same there as in PostgreSQL's `~`. `.`
//! also matches a newline, as it does in PostgreSQL. A pattern outside the grammar (`[a-z]`,
//! `|`, `+`, ...) is a [`StoreError::Invalid`], as on the SQL stores: every store gives the
//! same answer to the same pattern.

use std::collections::HashMap;

use parking_lot::Mutex;
use regex::{Regex, RegexBuilder};

use crate::error::{StoreError, ValidationError};
use crate::ports::StreamMatch;

/// How many compiled patterns the cache keeps before it starts over.
const CACHE_CAPACITY: usize = 256;

/// A cache of compiled patterns, keyed by the pattern string.
#[derive(Default)]
pub(super) struct Patterns {
    cache: Mutex<HashMap<String, Regex>>,
}

impl Patterns {
    /// The compiled `pattern`; `target` and `path` name the offending input on error.
    pub(super) fn compile(
        &self,
        pattern: &str,
        target: &str,
        path: &str,
    ) -> Result<Regex, StoreError> {
        if let Some(re) = self.cache.lock().get(pattern) {
            return Ok(re.clone());
        }
        portable(pattern, target, path)?;
        let re = RegexBuilder::new(pattern)
            .dot_matches_new_line(true)
            .build()
            .map_err(|e| {
                ValidationError::new(target, path, format!("invalid pattern `{pattern}`: {e}"))
            })?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
        Ok(re)
    }

    /// A matcher for `filter` (compiling it if it is a pattern).
    pub(super) fn matcher<'a>(
        &self,
        filter: &'a StreamMatch,
        target: &str,
        path: &str,
    ) -> Result<Matcher<'a>, StoreError> {
        Ok(match filter {
            StreamMatch::Exact(name) => Matcher::Exact(name),
            StreamMatch::Pattern(p) => Matcher::Pattern(self.compile(p, target, path)?),
        })
    }

    /// How many patterns are cached.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.cache.lock().len()
    }
}

/// Rejects a pattern outside the portable grammar, naming it.
pub(super) fn portable(pattern: &str, target: &str, path: &str) -> Result<(), StoreError> {
    crate::ports::pattern::Pattern::parse(pattern)
        .map(drop)
        .map_err(|e| ValidationError::new(target, path, e).into())
}

/// A compiled [`StreamMatch`].
pub(super) enum Matcher<'a> {
    /// Equality.
    Exact(&'a str),
    /// A regex search (unanchored = substring).
    Pattern(Regex),
}

impl Matcher<'_> {
    /// Whether `name` matches.
    pub(super) fn is_match(&self, name: &str) -> bool {
        match self {
            Self::Exact(s) => *s == name,
            Self::Pattern(re) => re.is_match(name),
        }
    }
}

/// A regex that remembers its last answer: events come in runs of one stream, so a short
/// log scan evaluates the regex about once per run instead of once per event.
pub(super) struct MemoMatcher<'m, 'e> {
    re: &'m Regex,
    last: Option<(&'e str, bool)>,
}

impl<'m, 'e> MemoMatcher<'m, 'e> {
    pub(super) fn new(re: &'m Regex) -> Self {
        Self { re, last: None }
    }

    /// Whether `name` matches.
    pub(super) fn is_match(&mut self, name: &'e str) -> bool {
        if let Some((last, hit)) = self.last
            && last == name
        {
            return hit;
        }
        let hit = self.re.is_match(name);
        self.last = Some((name, hit));
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> Matcher<'static> {
        Patterns::default()
            .matcher(
                Box::leak(Box::new(StreamMatch::Pattern(p.into()))),
                "query",
                "/stream",
            )
            .unwrap()
    }

    #[test]
    fn portable_grammar() {
        assert!(m("cart").is_match("my-cart-1"), "unanchored is substring");
        assert!(m("^cart").is_match("cart-1"));
        assert!(!m("^cart").is_match("my-cart"));
        assert!(m("^cart-1$").is_match("cart-1"));
        assert!(!m("^cart-1$").is_match("cart-12"));
        assert!(m("^c.rt$").is_match("cart"));
        assert!(m("^c.*t$").is_match("c-long-t"));
        assert!(!m("Cart").is_match("cart"), "case-sensitive");
        assert!(m("a_b%").is_match("xa_b%y"), "_ and % are literals");
        assert!(!m("a_b").is_match("axb"));
        assert!(
            m("^a.b$").is_match("a\nb"),
            ". matches a newline, as in PostgreSQL"
        );
    }

    #[test]
    fn patterns_outside_the_grammar_are_invalid_as_on_every_store() {
        for p in ["^(cart|order)-[0-9]+$", "cart(", "^a[._]c$", "a|b"] {
            let err = Patterns::default()
                .compile(p, "query", "/stream")
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Invalid(ref v) if v.paths().eq(["/stream"])),
                "{p}: {err:?}"
            );
        }
    }

    #[test]
    fn cache_reuses_and_is_bounded() {
        let p = Patterns::default();
        p.compile("^a", "q", "").unwrap();
        p.compile("^a", "q", "").unwrap();
        assert_eq!(p.len(), 1);
        for i in 0..CACHE_CAPACITY + 5 {
            p.compile(&format!("^s{i}"), "q", "").unwrap();
        }
        assert!(p.len() <= CACHE_CAPACITY);
    }

    #[test]
    fn memo_matcher_answers_like_the_matcher() {
        let matcher = m("^a");
        let Matcher::Pattern(re) = &matcher else {
            unreachable!()
        };
        let mut memo = MemoMatcher::new(re);
        for name in ["a1", "a1", "b", "b", "a2", "b"] {
            assert_eq!(memo.is_match(name), matcher.is_match(name), "{name}");
        }
    }
}
