//! Word lists matched where a word may start, not everywhere.
//!
//! The scorer's keywords and the classifier's concepts are hundreds of
//! patterns, nearly all of which must begin a word. An unanchored
//! Aho-Corasick scan follows the automaton through every byte of the text,
//! and with that many patterns its DFA is 1.7 MB: each byte's transition is
//! a miss in the CPU's caches (about 2 ns a byte natively, more in V8).
//! Here the automaton is walked anchored, from each position where a match
//! may begin (its first byte starts some pattern and the caller's rule
//! allows it there), and only as long as the text still spells the start
//! of a pattern: two or three steps near the root for most words, where
//! the states stay in cache.
//!
//! Matches are the same as a leftmost-longest scan's, with one difference:
//! a scan reports a match that begins inside a word and then has to drop
//! it, and what that match spanned is not searched again; here such a
//! position is never tried, so a pattern after it is found.

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// Patterns compiled for anchored walks. `A` is the automaton kind: a DFA
/// where the patterns are few enough bytes for its table, a contiguous NFA
/// (smaller, a little slower a step) otherwise.
#[derive(Debug, Clone)]
pub struct Starts<A> {
    automaton: A,
    /// Whether a byte begins some pattern (both ASCII cases).
    first: [bool; 256],
}

fn first_bytes<P: AsRef<[u8]>>(patterns: &[P]) -> [bool; 256] {
    let mut first = [false; 256];
    for p in patterns {
        if let Some(&b) = p.as_ref().first() {
            for b in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
                if let Some(f) = first.get_mut(usize::from(b)) {
                    *f = true;
                }
            }
        }
    }
    first
}

impl<A> Starts<A> {
    fn built<P: AsRef<[u8]>>(
        automaton: Result<A, aho_corasick::BuildError>,
        patterns: &[P],
    ) -> Result<Self, String> {
        automaton
            .map(|automaton| Starts {
                automaton,
                first: first_bytes(patterns),
            })
            .map_err(|e| e.to_string())
    }
}

impl Starts<aho_corasick::dfa::DFA> {
    /// ASCII-case-insensitive, longest match first.
    pub fn dfa<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Self, String> {
        let dfa = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .build(patterns);
        Self::built(dfa, patterns)
    }
}

impl Starts<aho_corasick::nfa::contiguous::NFA> {
    /// ASCII-case-insensitive, longest match first.
    pub fn nfa<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Self, String> {
        let nfa = aho_corasick::nfa::contiguous::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns);
        Self::built(nfa, patterns)
    }
}

impl<A: Automaton> Starts<A> {
    /// Calls `found(pattern, start, end)` for the longest pattern beginning
    /// at each position of `text` that `may_start(text, at)` allows, left to
    /// right; the search goes on after a match's end (matches never overlap)
    /// or, where none begins, at the next byte. `may_start` sees only
    /// positions whose byte begins some pattern, and never an ASCII letter or
    /// digit that follows one: every caller's rule refuses those (a pattern
    /// that begins with one begins a word), so the rest of a word is skipped
    /// without asking.
    pub fn find(
        &self,
        text: &[u8],
        may_start: impl Fn(&[u8], usize) -> bool,
        mut found: impl FnMut(usize, usize, usize),
    ) {
        let Ok(start) = self.automaton.start_state(Anchored::Yes) else {
            return;
        };
        let a = &self.automaton;
        let mut at = 0;
        while let Some(&b) = text.get(at) {
            let begins = self.first.get(usize::from(b)).copied().unwrap_or(false);
            let mut longest = None;
            if begins && may_start(text, at) {
                let mut sid = start;
                for (i, &b) in text.get(at..).unwrap_or_default().iter().enumerate() {
                    sid = a.next_state(Anchored::Yes, sid, b);
                    if !a.is_special(sid) {
                        continue;
                    }
                    if a.is_dead(sid) {
                        break;
                    }
                    if a.is_match(sid) {
                        // A state's matches include patterns that are suffixes
                        // of what was read: only one that begins at `at` counts.
                        let len = i + 1;
                        longest = (0..a.match_len(sid))
                            .map(|k| a.match_pattern(sid, k))
                            .find(|&p| a.pattern_len(p) == len)
                            .map(|p| (p.as_usize(), at + len))
                            .or(longest);
                    }
                }
            }
            at = match longest {
                Some((pattern, end)) => {
                    found(pattern, at, end);
                    end
                }
                None => at + 1,
            };
            // Inside a word: no match may begin until the next non-letter.
            if at
                .checked_sub(1)
                .and_then(|i| text.get(i))
                .is_some_and(u8::is_ascii_alphanumeric)
            {
                at += text
                    .get(at..)
                    .unwrap_or_default()
                    .iter()
                    .position(|b| !b.is_ascii_alphanumeric())
                    .unwrap_or(text.len().saturating_sub(at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all<A: Automaton>(s: &Starts<A>, text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        s.find(
            text.as_bytes(),
            |t, at| {
                // A word may start where the byte before is not a letter.
                at == 0 || t.get(at - 1).is_some_and(|b| !b.is_ascii_alphanumeric())
            },
            |p, a, b| out.push((p, a, b)),
        );
        out
    }

    /// Longest first, case-insensitive, only at word starts, never inside a
    /// match, and a suffix pattern in a state's matches is not taken for a
    /// match at the start (`ty` inside `security`).
    #[test]
    fn longest_match_at_word_starts() {
        let patterns = [
            "prove",
            "prove that",
            "ty",
            "secur",
            "security model",
            "日本",
        ];
        let dfa = Starts::dfa(&patterns).unwrap();
        let nfa = Starts::nfa(&patterns).unwrap();
        for (text, want) in [
            ("Prove that x", vec![(1, 0, 10)]),
            ("improve it, prove it", vec![(0, 12, 17)]),
            ("a security review", vec![(3, 2, 7)]),
            ("the Security Model holds", vec![(4, 4, 18)]),
            ("tyty ty", vec![(2, 0, 2), (2, 5, 7)]),
            ("", vec![]),
        ] {
            assert_eq!(all(&dfa, text), want, "{text}");
            assert_eq!(all(&nfa, text), want, "{text}");
        }
        // Non-ASCII patterns match where the caller allows.
        let mut got = Vec::new();
        nfa.find(
            "在日本".as_bytes(),
            |_, _| true,
            |p, a, b| got.push((p, a, b)),
        );
        assert_eq!(got, vec![(5, 3, 9)]);
    }
}
