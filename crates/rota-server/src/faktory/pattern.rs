//! The pattern of a `MUTATE` filter: what Faktory hands to Redis's `SCAN MATCH` (`*`, `?` and
//! `\` escapes as Redis reads them; character classes `[…]` are refused rather than read
//! otherwise), matched without backtracking blow-ups.
//!
//! The pattern is cut at its `*`s into segments. The first must match at the start of the text
//! and the last at its end (unless the pattern starts or ends with `*`), and each one between
//! is matched at its leftmost place after the one before; taking the leftmost place is never
//! wrong, since a later one leaves less text for the rest. A segment without `?` is found with
//! the standard library's substring search (linear), one with `?` by trying each place (at most
//! the segment's length per character of text). A whole match therefore costs about the text's
//! length times the longest `?` segment, however many `*`s the pattern has.

use super::invalid;
use crate::error::ApiResult;

/// A piece of a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// `?`: one character.
    One,
    Char(char),
}

#[derive(Debug)]
struct Segment {
    tokens: Vec<Token>,
    /// The segment as text when it has no `?`, for the substring search.
    literal: Option<String>,
}

impl Segment {
    fn new(tokens: Vec<Token>) -> Segment {
        let literal = tokens
            .iter()
            .map(|t| match t {
                Token::Char(c) => Some(*c),
                Token::One => None,
            })
            .collect();
        Segment { tokens, literal }
    }

    /// Where a match at byte `at` of `text` ends, if it matches there.
    fn match_at(&self, text: &str, at: usize) -> Option<usize> {
        let mut chars = text[at..].char_indices();
        let mut end = at;
        for t in &self.tokens {
            let (i, c) = chars.next()?;
            if let Token::Char(want) = t {
                if *want != c {
                    return None;
                }
            }
            end = at + i + c.len_utf8();
        }
        Some(end)
    }

    /// The leftmost match at or after byte `from`: (start, end).
    fn find(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        if let Some(lit) = &self.literal {
            let start = from + text[from..].find(lit.as_str())?;
            return Some((start, start + lit.len()));
        }
        text[from..]
            .char_indices()
            .map(|(i, _)| from + i)
            .find_map(|start| self.match_at(text, start).map(|end| (start, end)))
    }
}

/// A parsed pattern.
#[derive(Debug)]
pub(super) struct Pattern {
    /// The text between `*`s, empty ones left out.
    segments: Vec<Segment>,
    /// Whether there is any `*`; without one the single segment is the whole text.
    any: bool,
    starts_any: bool,
    ends_any: bool,
}

impl Pattern {
    /// Parses `text`, refusing one longer than `max_bytes` (`faktory.max_mutate_pattern_bytes`).
    pub(super) fn parse(text: &str, max_bytes: usize) -> ApiResult<Pattern> {
        if text.len() > max_bytes {
            return Err(invalid(format!(
                "MUTATE filter regexp is {} bytes; the limit is {max_bytes} \
                 (faktory.max_mutate_pattern_bytes)",
                text.len()
            )));
        }
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let (mut any, mut starts_any, mut ends_any) = (false, false, false);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            ends_any = c == '*';
            match c {
                '*' => {
                    starts_any |= !any && segments.is_empty() && current.is_empty();
                    any = true;
                    if !current.is_empty() {
                        segments.push(Segment::new(std::mem::take(&mut current)));
                    }
                }
                '?' => current.push(Token::One),
                '\\' => current.push(Token::Char(chars.next().unwrap_or('\\'))),
                '[' => {
                    return Err(invalid(format!(
                        "MUTATE filter regexp `{text}`: character classes (`[…]`) are not \
                         supported; use `*`, `?`, or `\\[` for a literal bracket"
                    )))
                }
                c => current.push(Token::Char(c)),
            }
        }
        if !current.is_empty() || segments.is_empty() {
            segments.push(Segment::new(current));
        }
        Ok(Pattern {
            segments,
            any,
            starts_any,
            ends_any,
        })
    }

    /// Whether the whole of `text` matches.
    pub(super) fn matches(&self, text: &str) -> bool {
        if !self.any {
            return self.segments[0].match_at(text, 0) == Some(text.len());
        }
        let mut segments = &self.segments[..];
        let mut pos = 0;
        if !self.starts_any {
            let Some((first, rest)) = segments.split_first() else {
                return true;
            };
            match first.match_at(text, 0) {
                Some(end) => pos = end,
                None => return false,
            }
            segments = rest;
        }
        let last = match self.ends_any {
            true => None,
            false => match segments.split_last() {
                Some((last, rest)) => {
                    segments = rest;
                    Some(last)
                }
                // The one segment was the prefix, and the pattern ends with text: `abc` alone
                // has no `*` and was handled above, so this cannot be reached with one.
                None => None,
            },
        };
        for s in segments {
            match s.find(text, pos) {
                Some((_, end)) => pos = end,
                None => return false,
            }
        }
        match last {
            None => true,
            Some(last) => {
                // The suffix of as many characters as the segment has tokens, after `pos`.
                let n = last.tokens.len();
                let start = match n {
                    0 => text.len(),
                    _ => match text.char_indices().rev().nth(n - 1) {
                        Some((i, _)) => i,
                        None => return false,
                    },
                };
                start >= pos && last.match_at(text, start) == Some(text.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern, 1024).unwrap().matches(text)
    }

    #[test]
    fn patterns_match_as_redis_scan_match_does() {
        let job = r#"{"jid":"j1","jobtype":"fail","args":["fizz"],"queue":"default"}"#;
        assert!(m("*", job));
        assert!(m("**", ""));
        assert!(m("*fizz*", job));
        assert!(
            m(r#"*\"args\":\["fizz"\]*"#, job),
            "escapes as the Rust client writes them"
        );
        assert!(m("*\"jid\":\"j?\"*", job));
        assert!(!m("*fuzz*", job));
        assert!(!m("fizz*", job), "anchored at both ends");
        assert!(!m("*fizz", job), "anchored at both ends");
        assert!(m("{*}", job));
        assert!(m("a*b*c", "aXbYbc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "ac"));
        assert!(!m("ab*ba", "aba"), "prefix and suffix may not overlap");
        assert!(m("ab*ba", "abba"));
        assert!(!m("a?c", "abbc"));
        assert!(m("a?c", "abc"));
        assert!(m("*?é", "xé"), "characters, not bytes");
        assert!(!m("?", ""));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("*a?a*", "bbaxab"));
        let e = Pattern::parse("*[ab]*", 1024).unwrap_err();
        assert!(e.message.contains("character classes"), "{}", e.message);
    }

    #[test]
    fn a_long_pattern_is_refused_naming_the_limit() {
        let e = Pattern::parse(&"*a".repeat(200), 256).unwrap_err();
        assert!(
            e.message.contains("faktory.max_mutate_pattern_bytes"),
            "{}",
            e.message
        );
    }

    /// Patterns that make a backtracking matcher try every split of the text (`*a*a*…b`
    /// against `aaaa…`) cost one pass here.
    #[test]
    fn pathological_patterns_are_linear() {
        let text = "a".repeat(1 << 20);
        let started = std::time::Instant::now();
        for pattern in [
            format!("{}b", "*a".repeat(100)),
            format!("*{}b", "a".repeat(200)),
            format!("*{}*b*", "a?".repeat(100)),
        ] {
            assert!(!m(&pattern, &text), "{pattern}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
