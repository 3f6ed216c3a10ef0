//! The complexity score (filter/README.md, "Complexity score"): five signals
//! over a chat request, each kept for explanation, summed onto a base and
//! clamped to [0.05, 1.0].
//!
//! 1. length    — estimated tokens of the conversation, on a log scale;
//! 2. code      — code blocks and code-like lines, plus markers of harder
//!    languages and concurrency (Rust lifetimes, goroutines, atomics…);
//! 3. keywords  — phrases that mark hard work raise it, easy work lowers it,
//!    in many languages;
//! 4. structure — several questions, list items, headers, explicit
//!    constraints in the latest user turn;
//! 5. depth     — turns, tool definitions and results, system prompt weight.
//!
//! Every weight and word list is data ([`ScoringConfig`], part of the routing
//! table); the defaults were tuned on the calibration set in
//! `tests/fixtures/routing` (see `make routing-report`). The text is read
//! once for words: one Aho-Corasick automaton holds every ASCII pattern (a
//! second, for other scripts, runs only on non-ASCII text), walked from
//! where a word may start ([`crate::starts`]); and one line pass finds code
//! and structure.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous::NFA;
use serde::{Deserialize, Serialize};

use crate::request::{ChatRequest, Role};
use crate::starts::Starts;

/// Lowest and highest complexity (filter/README.md, "Complexity score").
pub const MIN_COMPLEXITY: f64 = 0.05;
pub const MAX_COMPLEXITY: f64 = 1.0;

pub use crate::words::WordList;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    pub base: f64,
    pub length: LengthWeights,
    pub code: CodeWeights,
    pub keywords: KeywordWeights,
    pub structure: StructureWeights,
    pub depth: DepthWeights,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthWeights {
    /// Contribution at `full_tokens` and beyond.
    pub weight: f64,
    /// Below this many tokens length adds nothing.
    pub min_tokens: f64,
    pub full_tokens: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodeWeights {
    /// Added when the request contains code at all.
    pub present: f64,
    /// Code-like lines needed, without a fence, to count as code.
    pub min_lines: u32,
    /// Markers of harder languages and of concurrency, with their weight.
    pub markers: WordList,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeywordWeights {
    pub hard: WordList,
    pub easy: WordList,
    /// The matched weights of each list saturate towards these (see
    /// `saturate`): `hard` raises the score by at most `max_hard`.
    pub max_hard: f64,
    pub max_easy: f64,
    /// Weight of earlier user turns relative to the latest one.
    pub history_factor: f64,
    /// Weight of system/developer prompts relative to the latest user turn.
    pub system_factor: f64,
    /// Instructions sit at the start or the end of a message; what is pasted
    /// between (an article to summarise, a log) says little about the work
    /// asked for. Words are read in the first `head_bytes` and the last
    /// `tail_bytes` of each text; code markers also in `sample_bytes` from
    /// the middle. This bounds the scorer's work whatever the body's size.
    pub head_bytes: usize,
    pub tail_bytes: usize,
    pub sample_bytes: usize,
    /// Words inside code fences count at this factor (identifiers such as
    /// `error` or `lock` are not the request).
    pub pasted_factor: f64,
    /// Earlier user turns read, newest first, besides the latest.
    pub history_turns: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StructureWeights {
    /// Per question beyond the first.
    pub question: f64,
    /// Per clause separator (`,` `;` and their CJK forms) in the latest
    /// user turn's prose: detailed specifications have many.
    pub clause: f64,
    pub list_item: f64,
    pub header: f64,
    pub constraints: WordList,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DepthWeights {
    /// Per user turn beyond the first.
    pub turn: f64,
    /// Per tool definition (up to `max_tools`).
    pub tool: f64,
    pub max_tools: u32,
    /// Per tool result message.
    pub tool_result: f64,
    /// At `system_full_tokens` of system prompt and beyond.
    pub system: f64,
    pub system_full_tokens: f64,
    pub max: f64,
}

/// One request's score with each signal's contribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    pub complexity: f64,
    pub base: f64,
    pub length: f64,
    pub code: f64,
    pub keywords: f64,
    pub structure: f64,
    pub depth: f64,
    /// Estimated prompt tokens (also used for cost and context checks).
    pub input_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hard,
    Easy,
    Code,
    Constraint,
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    kind: Kind,
    weight: f64,
    word_end: bool,
}

/// The compiled scorer: the word lists as two automata.
#[derive(Debug)]
pub struct Scorer {
    config: ScoringConfig,
    patterns: Vec<Pattern>,
    /// ASCII patterns, as a DFA: the fastest walk, run on every window.
    ascii: Starts<DFA>,
    /// Pattern index in `patterns` of each `ascii` pattern.
    ascii_ids: Vec<usize>,
    /// Patterns in other scripts, run only on windows that are not ASCII.
    other: Starts<NFA>,
    other_ids: Vec<usize>,
}

/// Rough token count of a text: four bytes a token for Latin scripts, about
/// one token per CJK character (three UTF-8 bytes).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The request's prompt in estimated tokens: every message's text and
/// overhead, and its tool definitions. What budgets, rate limits and the
/// context-window check count; [`Score::input_tokens`] is this.
pub fn input_tokens(req: &ChatRequest<'_>) -> u64 {
    let mut tokens = req.tool_count as u64 * TOOL_DEFINITION_TOKENS;
    for m in &req.messages {
        tokens += MESSAGE_OVERHEAD_TOKENS;
        m.content.for_each_text(|t| tokens += estimate_tokens(t));
    }
    tokens
}

/// Upper bound of each scan window: the scorer's work per request stays bounded.
const MAX_WINDOW_BYTES: usize = 64 * 1024;

/// Tokens each message costs beyond its text (role, separators).
const MESSAGE_OVERHEAD_TOKENS: u64 = 4;
/// Rough size of one tool definition.
const TOOL_DEFINITION_TOKENS: u64 = 80;

impl Scorer {
    pub fn compile(config: &ScoringConfig) -> Result<Self, String> {
        let k = &config.keywords;
        for (field, v) in [
            ("head_bytes", k.head_bytes),
            ("tail_bytes", k.tail_bytes),
            ("sample_bytes", k.sample_bytes),
        ] {
            if v > MAX_WINDOW_BYTES {
                return Err(format!(
                    "keywords.{field}: must be at most {MAX_WINDOW_BYTES}, got {v}"
                ));
            }
        }
        let mut patterns = Vec::new();
        let lists = [
            ("keywords.hard", &config.keywords.hard, Kind::Hard),
            ("keywords.easy", &config.keywords.easy, Kind::Easy),
            ("code.markers", &config.code.markers, Kind::Code),
            (
                "structure.constraints",
                &config.structure.constraints,
                Kind::Constraint,
            ),
        ];
        for (field, list, kind) in lists {
            for (raw, &weight) in list {
                if !weight.is_finite() {
                    return Err(format!("{field}[{raw:?}]: weight must be finite"));
                }
                let prefix = raw.ends_with('*');
                let text = raw.trim_end_matches('*').to_ascii_lowercase();
                if text.trim().is_empty() {
                    return Err(format!("{field}: empty pattern"));
                }
                let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
                patterns.push(Pattern {
                    word_end: !prefix && word(text.chars().last()),
                    text,
                    kind,
                    weight,
                });
            }
        }
        let split = |ascii: bool| -> (Vec<usize>, Vec<&str>) {
            patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| p.text.is_ascii() == ascii)
                .map(|(i, p)| (i, p.text.as_str()))
                .unzip()
        };
        let (ascii_ids, texts) = split(true);
        let ascii = Starts::dfa(&texts).map_err(|e| format!("keywords: {e}"))?;
        let (other_ids, texts) = split(false);
        let other = Starts::nfa(&texts).map_err(|e| format!("keywords: {e}"))?;
        Ok(Self {
            config: config.clone(),
            patterns,
            ascii,
            ascii_ids,
            other,
            other_ids,
        })
    }

    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    pub fn score(&self, req: &ChatRequest<'_>) -> Score {
        #[cfg(test)]
        crate::counters::SCORES.with(|n| n.set(n.get() + 1));
        self.score_with(req, |_, _| {})
    }

    /// The patterns that matched, with the factor of the text they were in
    /// (1 for the latest user turn): for the explain API.
    pub fn matches(&self, req: &ChatRequest<'_>) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        self.score_with(req, |p, f| out.push((p.text.clone(), p.weight * f)));
        out
    }

    fn score_with(&self, req: &ChatRequest<'_>, mut on_match: impl FnMut(&Pattern, f64)) -> Score {
        let c = &self.config;
        // The latest user turn, and the oldest still read as history.
        let (focus, oldest_history) = req.focus_and_history(c.keywords.history_turns);
        // (pattern, factor) of every match; few per request, deduplicated below.
        let mut matched: Vec<(usize, f64)> = Vec::new();
        let mut text = TextStats::default();
        let mut system_tokens = 0u64;
        let mut user_turns = 0u32;
        let mut tool_results = 0u32;

        for (i, m) in req.messages.iter().enumerate() {
            let factor = match m.role {
                Role::User if Some(i) == focus => 1.0,
                Role::User if i >= oldest_history && c.keywords.history_turns > 0 => {
                    c.keywords.history_factor
                }
                Role::User => 0.0,
                Role::System | Role::Developer => c.keywords.system_factor,
                _ => 0.0,
            };
            match m.role {
                Role::User => user_turns += 1,
                Role::Tool | Role::Function => tool_results += 1,
                _ => {}
            }
            m.content.for_each_text(|t| {
                if matches!(m.role, Role::System | Role::Developer) {
                    system_tokens += estimate_tokens(t);
                }
                if factor > 0.0 {
                    if crate::bytes::contains(t.as_bytes(), b"```") {
                        text.fences += factor;
                    }
                    for (window, part) in windows(t, &c.keywords) {
                        self.scan(window, factor, part, &mut matched);
                        if part != Part::Sample {
                            text.add_lines(window, factor, Some(i) == focus);
                        }
                    }
                }
            });
        }
        let tokens = input_tokens(req);

        let (mut hard, mut easy, mut code_markers, mut constraints) = (0.0, 0.0, 0.0, 0.0);
        // Each pattern counts once, with the largest factor it matched with.
        matched.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        matched.dedup_by_key(|m| m.0);
        for &(i, f) in &matched {
            let Some(p) = self.patterns.get(i) else {
                continue;
            };
            on_match(p, f);
            let w = p.weight * f;
            match p.kind {
                Kind::Hard => hard += w,
                Kind::Easy => easy += w,
                Kind::Code => code_markers += w,
                Kind::Constraint => constraints += w,
            }
        }

        let length =
            c.length.weight * log_ramp(tokens as f64, c.length.min_tokens, c.length.full_tokens);
        let has_code = text.fences > 0.0 || text.code_lines >= f64::from(c.code.min_lines);
        let code = if has_code || code_markers > 0.0 {
            (if has_code { c.code.present } else { 0.0 } + code_markers).min(c.code.max)
        } else {
            0.0
        };
        let keywords = saturate(hard, c.keywords.max_hard) - saturate(easy, c.keywords.max_easy);
        let s = &c.structure;
        let structure = ((text.questions - 1.0).max(0.0) * s.question
            + text.clauses * s.clause
            + text.list_items * s.list_item
            + text.headers * s.header
            + constraints)
            .min(s.max);
        let d = &c.depth;
        let depth = (f64::from(user_turns.saturating_sub(1)) * d.turn
            + f64::from((req.tool_count as u32).min(d.max_tools)) * d.tool
            + f64::from(tool_results) * d.tool_result
            + d.system * log_ramp(system_tokens as f64, 20.0, d.system_full_tokens))
        .min(d.max);

        let raw = c.base + length + code + keywords + structure + depth;
        Score {
            complexity: raw.clamp(MIN_COMPLEXITY, MAX_COMPLEXITY),
            base: c.base,
            length,
            code,
            keywords,
            structure,
            depth,
            input_tokens: tokens,
        }
    }

    /// Records, per pattern, the largest factor it matched with. Words (not
    /// code markers) inside code fences count less; the middle sample only
    /// looks for code markers.
    fn scan(&self, text: &str, factor: f64, part: Part, matched: &mut Vec<(usize, f64)>) {
        self.scan_with(&self.ascii, &self.ascii_ids, text, factor, part, matched);
        if !text.is_ascii() {
            self.scan_with(&self.other, &self.other_ids, text, factor, part, matched);
        }
    }

    fn scan_with<A: Automaton>(
        &self,
        automaton: &Starts<A>,
        ids: &[usize],
        text: &str,
        factor: f64,
        part: Part,
        matched: &mut Vec<(usize, f64)>,
    ) {
        let bytes = text.as_bytes();
        let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
        // A pattern that begins with a letter or digit begins a word (the
        // others, such as `->` or `__asm__`, may begin anywhere).
        let may_start = |t: &[u8], at: usize| {
            !t.get(at).is_some_and(u8::is_ascii_alphanumeric)
                || !at.checked_sub(1).and_then(|i| t.get(i)).is_some_and(word)
        };
        // Code fences before a match: read once, and only when there are any.
        let mut fences: Option<Vec<usize>> = None;
        automaton.find(bytes, may_start, |pattern, start, end| {
            let Some(&id) = ids.get(pattern) else {
                return;
            };
            let Some(p) = self.patterns.get(id) else {
                return;
            };
            if part == Part::Sample && p.kind != Kind::Code {
                return;
            }
            if p.word_end && bytes.get(end).is_some_and(word) {
                return;
            }
            let fenced = p.kind != Kind::Code && {
                let at = fences
                    .get_or_insert_with(|| memchr::memmem::find_iter(bytes, b"```").collect());
                at.iter().take_while(|&&f| f + 3 <= start).count() % 2 == 1
            };
            let f = if fenced {
                factor * self.config.keywords.pasted_factor
            } else {
                factor
            };
            matched.push((id, f));
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Head,
    Sample,
    Tail,
}

/// The parts of a text the scorer reads: all of a short text; the head, a
/// sample from the middle and the tail of a long one. Cut at char boundaries.
fn windows<'t>(text: &'t str, k: &KeywordWeights) -> Vec<(&'t str, Part)> {
    let (head, tail, sample) = (k.head_bytes, k.tail_bytes, k.sample_bytes);
    if text.len() <= head.saturating_add(tail).saturating_add(sample) {
        return vec![(text, Part::Whole)];
    }
    // Clamped to the text first: the walk back to a char boundary is short.
    let floor = |i: usize| {
        let mut i = i.min(text.len());
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let h = floor(head);
    let mid = floor(text.len() / 2);
    let mid_end = floor(mid.saturating_add(sample)).max(mid);
    let t = floor(text.len().saturating_sub(tail));
    [
        (text.get(..h), Part::Head),
        (text.get(mid..mid_end), Part::Sample),
        (text.get(t..), Part::Tail),
    ]
    .into_iter()
    .filter_map(|(w, p)| Some((w?, p)))
    .collect()
}

/// `sum` of matched weights, growing like `sum` while small and never past
/// `max`: one strong word counts fully, ten weak ones do not add up to a proof.
fn saturate(sum: f64, max: f64) -> f64 {
    if max <= 0.0 {
        return 0.0;
    }
    max * (1.0 - (-sum / max).exp())
}

/// 0 below `lo`, 1 above `hi`, logarithmic in between.
fn log_ramp(x: f64, lo: f64, hi: f64) -> f64 {
    if x <= lo || hi <= lo {
        return if x > lo { 1.0 } else { 0.0 };
    }
    ((x / lo).ln() / (hi / lo).ln()).clamp(0.0, 1.0)
}

/// What one line pass finds: code and, in the latest user turn, structure.
#[derive(Debug, Default)]
struct TextStats {
    fences: f64,
    clauses: f64,
    code_lines: f64,
    questions: f64,
    list_items: f64,
    headers: f64,
}

impl TextStats {
    fn add_lines(&mut self, text: &str, factor: f64, focus: bool) {
        let mut in_fence = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                in_fence = !in_fence;
                continue;
            }
            if in_fence || looks_like_code(line, trimmed) {
                self.code_lines += factor;
                continue;
            }
            if !focus {
                continue;
            }
            if trimmed.ends_with('?') || trimmed.ends_with('？') {
                self.questions += 1.0;
            }
            self.clauses += clause_marks(trimmed) as f64;
            if is_list_item(trimmed) {
                self.list_items += 1.0;
            } else if trimmed.starts_with('#') {
                self.headers += 1.0;
            }
        }
    }
}

/// Counts `,` `;` and the CJK `，` `、` `；` by bytes (no UTF-8 decoding).
fn clause_marks(s: &str) -> usize {
    let b = s.as_bytes();
    let ascii = b.iter().filter(|&&c| c == b',' || c == b';').count();
    let cjk = b
        .windows(3)
        .filter(|w| {
            matches!(
                w,
                [0xEF, 0xBC, 0x8C] | [0xE3, 0x80, 0x81] | [0xEF, 0xBC, 0x9B]
            )
        })
        .count();
    ascii + cjk
}

fn looks_like_code(line: &str, trimmed: &str) -> bool {
    let indented = line.starts_with("    ") || line.starts_with('\t');
    let last = trimmed.as_bytes().last().copied().unwrap_or(b' ');
    matches!(last, b';' | b'{' | b'}')
        || (indented && !is_list_item(trimmed))
        || trimmed.starts_with("def ")
        || trimmed.starts_with("#include")
        || trimmed.starts_with("import ")
        || trimmed.starts_with("return ")
}

fn is_list_item(trimmed: &str) -> bool {
    let b = trimmed.as_bytes();
    if b.starts_with(b"- ") || b.starts_with(b"* ") || trimmed.starts_with("• ") {
        return true;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0
        && digits < 3
        && matches!(b.get(digits), Some(b'.' | b')'))
        && b.get(digits + 1) == Some(&b' ')
}

fn words(items: &[(&str, f64)]) -> WordList {
    items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

impl Default for LengthWeights {
    fn default() -> Self {
        Self {
            weight: 0.09,
            min_tokens: 40.0,
            full_tokens: 6000.0,
        }
    }
}

impl Default for CodeWeights {
    fn default() -> Self {
        Self {
            present: 0.088,
            min_lines: 3,
            markers: words(crate::words::CODE_MARKERS),
            max: 0.22,
        }
    }
}

impl Default for KeywordWeights {
    fn default() -> Self {
        Self {
            hard: crate::words::hard(crate::words::DEFAULT_WEIGHTS),
            easy: crate::words::easy(crate::words::DEFAULT_WEIGHTS),
            max_hard: 0.55,
            max_easy: 0.15,
            history_factor: 0.4,
            system_factor: 0.3,
            head_bytes: 640,
            tail_bytes: 320,
            sample_bytes: 512,
            pasted_factor: 0.18,
            history_turns: 3,
        }
    }
}

impl Default for StructureWeights {
    fn default() -> Self {
        Self {
            question: 0.02,
            clause: 0.006,
            list_item: 0.012,
            header: 0.01,
            constraints: words(crate::words::CONSTRAINTS),
            max: 0.096,
        }
    }
}

impl Default for DepthWeights {
    fn default() -> Self {
        Self {
            turn: 0.015,
            tool: 0.015,
            max_tools: 4,
            tool_result: 0.015,
            system: 0.03,
            system_full_tokens: 1500.0,
            max: 0.12,
        }
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            base: 0.297,
            length: LengthWeights::default(),
            code: CodeWeights::default(),
            keywords: KeywordWeights::default(),
            structure: StructureWeights::default(),
            depth: DepthWeights::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(body: &str) -> Score {
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        scorer.score(&ChatRequest::parse(body.as_bytes()).unwrap())
    }

    fn user(text: &str) -> String {
        serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string()
    }

    #[test]
    fn greeting_is_trivial_and_proof_is_frontier() {
        let hi = score(&user("hello! how are you?"));
        assert!(hi.complexity <= 0.2, "{hi:?}");
        let proof = score(&user(
            "Prove by induction that every tree with n nodes has n-1 edges, then give a formal proof that the bound is tight.",
        ));
        assert!(proof.complexity >= 0.7, "{proof:?}");
    }

    #[test]
    fn contributions_add_up_and_stay_in_range() {
        for body in [
            user(""),
            user(&"prove theorem lemma induction ".repeat(500)),
            user(&"hello thanks ".repeat(200)),
        ] {
            let s = score(&body);
            let sum = s.base + s.length + s.code + s.keywords + s.structure + s.depth;
            assert!((MIN_COMPLEXITY..=MAX_COMPLEXITY).contains(&s.complexity));
            assert!((s.complexity - sum.clamp(MIN_COMPLEXITY, MAX_COMPLEXITY)).abs() < 1e-12);
        }
    }

    #[test]
    fn keywords_match_whole_words_and_prefixes_case_insensitively() {
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        let matched = |t: &str| {
            let body = user(t);
            let req = ChatRequest::parse(body.as_bytes()).unwrap();
            scorer
                .matches(&req)
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        assert!(matched("Please PROVE it").contains(&"prove".to_owned()));
        assert!(!matched("we improve it").contains(&"prove".to_owned()));
        assert!(matched("Summarize this").iter().any(|p| p == "summari"));
        assert!(matched("请证明这个定理").iter().any(|p| p == "证明"));
    }

    #[test]
    fn earlier_turns_count_less_than_the_latest() {
        let hard_then_thanks = serde_json::json!({"messages": [
            {"role": "user", "content": "prove this theorem by induction"},
            {"role": "assistant", "content": "Here is the proof..."},
            {"role": "user", "content": "thanks!"}]})
        .to_string();
        let hard_now = user("prove this theorem by induction");
        assert!(score(&hard_then_thanks).keywords < score(&hard_now).keywords);
    }

    #[test]
    fn code_and_structure_are_detected() {
        let s = score(&user(
            "Two questions:\n1. why?\n2. how?\n```rust\nfn main() {\n    let x = Arc::new(Mutex::new(0));\n}\n```",
        ));
        assert!(s.code > 0.1, "{s:?}");
        assert!(s.structure > 0.0, "{s:?}");
    }

    #[test]
    fn window_sizes_are_bounded_and_never_overflow() {
        let mut c = ScoringConfig::default();
        c.keywords.head_bytes = usize::MAX;
        assert!(
            Scorer::compile(&c)
                .unwrap_err()
                .starts_with("keywords.head_bytes")
        );
        // Even unvalidated, the windows stay inside the text.
        let mut k = ScoringConfig::default().keywords;
        k.head_bytes = usize::MAX;
        k.tail_bytes = usize::MAX;
        k.sample_bytes = 1;
        let text = "é".repeat(5000);
        for (w, _) in windows(&text, &k) {
            assert!(w.len() <= text.len());
        }
        k.head_bytes = 3;
        k.tail_bytes = 3;
        k.sample_bytes = usize::MAX / 2;
        assert_eq!(windows(&text, &k).len(), 1);
    }

    #[test]
    fn bad_weights_are_refused_with_the_field() {
        let mut c = ScoringConfig::default();
        c.keywords.hard.insert("x".into(), f64::NAN);
        assert!(
            Scorer::compile(&c)
                .unwrap_err()
                .starts_with("keywords.hard[\"x\"]")
        );
    }
}
