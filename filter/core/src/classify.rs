//! The trained request classifier: from a chat request's text and the five
//! signals of the complexity score (filter/README.md, "Complexity score") it
//! predicts the difficulty tier, with probabilities and a complexity in
//! [0.05, 1] that keeps the bands of filter/README.md ("Model selection"), and
//! the task category (tests/fixtures/routing/RUBRIC.md).
//!
//! The model is linear over hashed features: word unigrams and bigrams and
//! character trigrams of the latest user turn, words of the system prompt,
//! earlier user turns and tool results, read only in a head and a tail window
//! of each text (as the scorer reads its keywords), so the cost is flat in the
//! body's size; plus a few dense features (the five signals, the heuristic
//! complexity, sizes and counts). Weights are data: [`Model::encode`] and
//! [`Model::decode`] give a compact, versioned, checksummed blob (weights
//! quantised to `i8`) that the trainer (`tests/tools/src/bin/train-router.rs`)
//! writes and the routing table can carry. A corrupt blob is an error, never a
//! panic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::bytes;
use crate::lexicon;
use crate::request::{ChatRequest, Role};
use crate::score::{MIN_COMPLEXITY, Score};
use crate::starts::Starts;

/// Difficulty tiers, cheapest first (tests/fixtures/routing/RUBRIC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Cheap,
    Mid,
    Frontier,
}

pub const TIERS: [Tier; 3] = [Tier::Cheap, Tier::Mid, Tier::Frontier];

/// Complexity at which the mid and the frontier tier start (filter/README.md,
/// "Model selection": simple ends at 0.55, complex starts at 0.70 for routing).
pub const MID_FROM: f64 = 0.55;
pub const FRONTIER_FROM: f64 = 0.70;

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Cheap => "cheap",
            Tier::Mid => "mid",
            Tier::Frontier => "frontier",
        }
    }

    pub fn from_name(name: &str) -> Option<Tier> {
        TIERS.into_iter().find(|t| t.name() == name)
    }

    /// The tier a complexity falls in.
    pub fn of_complexity(c: f64) -> Tier {
        if c < MID_FROM {
            Tier::Cheap
        } else if c < FRONTIER_FROM {
            Tier::Mid
        } else {
            Tier::Frontier
        }
    }

    /// The tier of a band label of the calibration set.
    pub fn of_band(band: &str) -> Option<Tier> {
        Some(match band {
            "trivial" | "simple" => Tier::Cheap,
            "medium" => Tier::Mid,
            "complex" | "frontier" => Tier::Frontier,
            _ => return None,
        })
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Task categories (tests/fixtures/routing/RUBRIC.md, "Categories").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Chat,
    FactualQa,
    SummariseRewrite,
    Translation,
    Creative,
    Coding,
    MathReasoning,
    AnalysisPlanning,
    AgenticTools,
}

pub const CATEGORIES: [Category; 9] = [
    Category::Chat,
    Category::FactualQa,
    Category::SummariseRewrite,
    Category::Translation,
    Category::Creative,
    Category::Coding,
    Category::MathReasoning,
    Category::AnalysisPlanning,
    Category::AgenticTools,
];

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Chat => "chat",
            Category::FactualQa => "factual_qa",
            Category::SummariseRewrite => "summarise_rewrite",
            Category::Translation => "translation",
            Category::Creative => "creative",
            Category::Coding => "coding",
            Category::MathReasoning => "math_reasoning",
            Category::AnalysisPlanning => "analysis_planning",
            Category::AgenticTools => "agentic_tools",
        }
    }

    pub fn from_name(name: &str) -> Option<Category> {
        CATEGORIES.into_iter().find(|c| c.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

const N_TIERS: usize = TIERS.len();
const N_CATS: usize = CATEGORIES.len();
/// Outputs per feature row: the tier logits, then the category logits.
pub const OUTPUTS: usize = N_TIERS + N_CATS;

/// Dense features read from the request's shape, in order (their names, for
/// explanations); the concepts of [`crate::lexicon`] follow them.
pub const SHAPE_NAMES: [&str; 18] = [
    "signal.length",
    "signal.code",
    "signal.keywords",
    "signal.structure",
    "signal.depth",
    "signal.complexity",
    "size.input_tokens",
    "size.latest_turn",
    "has.images",
    "count.tools",
    "count.tool_results",
    "count.user_turns",
    "has.system",
    "has.code_fence",
    "count.questions",
    "has.json_schema",
    "size.instruction",
    "count.clauses",
];
const SHAPE: usize = SHAPE_NAMES.len();
pub const DENSE: usize = SHAPE + lexicon::COUNT;

/// The name of dense feature `i` (for explanations).
pub fn dense_name(i: usize) -> String {
    match SHAPE_NAMES.get(i) {
        Some(name) => (*name).to_owned(),
        None => format!(
            "concept.{}",
            lexicon::CONCEPTS.get(i - SHAPE).map_or("?", |c| c.0)
        ),
    }
}

/// How features are read; part of the model, so a model always scores with
/// the features it was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Hash buckets: `1 << bits`.
    pub bits: u8,
    /// Bytes read at the start and at the end of each text (all of a text
    /// shorter than both).
    pub head_bytes: u32,
    pub tail_bytes: u32,
    /// Earlier user turns read, newest first.
    pub history_turns: u8,
    /// Bytes of the latest turn's windows that give character trigrams
    /// (the first ones read): they catch word forms and scripts the word
    /// features miss, and cost one feature per byte.
    pub char_bytes: u32,
    /// Sparse features count as at least this many (see [`sparse_scale`]).
    pub norm_floor: u8,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            bits: 13,
            head_bytes: 256,
            tail_bytes: 128,
            history_turns: 2,
            // 128 until round 19: half the trigram rows a request reads, the
            // same accuracy out of fold (filter/README.md, "Round 19").
            char_bytes: 64,
            norm_floor: 32,
        }
    }
}

const MIN_BITS: u8 = 8;
/// The widest table a model may have: 2^MAX_BITS rows.
pub const MAX_BITS: u8 = 20;
/// Window bound, as the scorer's (score.rs): work per request stays bounded.
const MAX_WINDOW_BYTES: u32 = 64 * 1024;
/// Tool results and earlier turns are context: a smaller window each.
const CONTEXT_WINDOW_BYTES: usize = 256;

impl FeatureConfig {
    pub fn buckets(&self) -> usize {
        1usize << self.bits.clamp(MIN_BITS, MAX_BITS)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if !(MIN_BITS..=MAX_BITS).contains(&self.bits) {
            return Err(DecodeError::Invalid("bits out of range"));
        }
        if self.head_bytes > MAX_WINDOW_BYTES
            || self.tail_bytes > MAX_WINDOW_BYTES
            || self.char_bytes > MAX_WINDOW_BYTES
        {
            return Err(DecodeError::Invalid("window larger than 64 KiB"));
        }
        Ok(())
    }
}

/// Where a text sits in the conversation: each has its own feature space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Latest = 1,
    System = 2,
    History = 3,
    ToolResult = 4,
}

impl Ns {
    fn prefix(self) -> &'static str {
        match self {
            Ns::Latest => "",
            Ns::System => "system:",
            Ns::History => "history:",
            Ns::ToolResult => "tool:",
        }
    }
}

/// One request's features: hashed bucket ids (repeats count again) and the
/// dense values. Sparse values are all `scale` (see [`sparse_scale`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub buckets: Vec<u32>,
    pub dense: [f32; DENSE],
    pub scale: f32,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            buckets: Vec::new(),
            dense: [0.0; DENSE],
            scale: 1.0,
        }
    }
}

/// The value of each of `n` sparse occurrences: 1/sqrt(n), so a long text
/// does not outweigh a short one; but at most 1/sqrt(floor), so two or three
/// words are weak evidence, not the whole of it.
pub fn sparse_scale(n: usize, floor: u8) -> f32 {
    1.0 / (n.max(usize::from(floor)).max(1) as f32).sqrt()
}

/// Reads the features of `req` (with its already computed `score`). `named`
/// gets every sparse feature's bucket and, when it asks (`want_names`), its
/// text; the fast path passes a no-op.
fn visit(
    cfg: &FeatureConfig,
    req: &ChatRequest<'_>,
    score: &Score,
    want_names: bool,
    mut sink: impl FnMut(u32, Option<String>),
    dense: &mut [f32; DENSE],
) {
    let mask = (cfg.buckets() - 1) as u32;
    let (focus, history_from) = req.focus_and_history(usize::from(cfg.history_turns));
    let (mut user_turns, mut tool_results, mut has_system, mut images) = (0u32, 0u32, false, 0);
    let (mut latest_len, mut fences, mut questions) = (0usize, false, 0u32);
    let head = cfg.head_bytes as usize;
    let tail = cfg.tail_bytes as usize;
    let mut chars_left = cfg.char_bytes as usize;
    // (bytes, clauses) of what the latest turn asks before any pasted part.
    let mut instruction: Option<(usize, u32)> = None;
    let mut concepts = [0u8; lexicon::COUNT];
    for (i, m) in req.messages.iter().enumerate() {
        images += m.content.image_count();
        let ns = match m.role {
            Role::User if Some(i) == focus => Some(Ns::Latest),
            Role::User if cfg.history_turns > 0 && i >= history_from => Some(Ns::History),
            Role::System | Role::Developer => Some(Ns::System),
            Role::Tool | Role::Function => Some(Ns::ToolResult),
            _ => None,
        };
        match m.role {
            Role::User => user_turns += 1,
            Role::Tool | Role::Function => tool_results += 1,
            Role::System | Role::Developer => has_system = true,
            _ => {}
        }
        let Some(ns) = ns else { continue };
        m.content.for_each_text(|t| {
            let (h, tl) = match ns {
                Ns::Latest | Ns::System => (head, tail),
                Ns::History | Ns::ToolResult => (CONTEXT_WINDOW_BYTES, 0),
            };
            if ns == Ns::Latest {
                latest_len += t.len();
            }
            for w in windows(t, h, tl) {
                if ns == Ns::Latest {
                    fences |= has_fence(w.as_bytes());
                    questions += question_marks(w);
                    if instruction.is_none() {
                        instruction = Some(instruction_of(w));
                    }
                }
                if ns == Ns::Latest {
                    count_concepts(w, &mut concepts);
                }
                text_features(w, ns, mask, want_names, &mut chars_left, &mut sink);
            }
        });
    }
    let ln = |x: f64| ((1.0 + x).ln() / 10.0) as f32;
    let shape: [f32; SHAPE] = [
        score.length as f32,
        score.code as f32,
        score.keywords as f32,
        score.structure as f32,
        score.depth as f32,
        score.complexity as f32,
        ln(score.input_tokens as f64),
        ln(latest_len as f64),
        f32::from(u8::from(images > 0)),
        (req.tool_count.min(4) as f32) / 4.0,
        (tool_results.min(4) as f32) / 4.0,
        (user_turns.min(5) as f32) / 5.0,
        f32::from(u8::from(has_system)),
        f32::from(u8::from(fences)),
        (questions.min(3) as f32) / 3.0,
        f32::from(u8::from(req.json_schema)),
        ln(instruction.map_or(0, |i| i.0) as f64),
        (instruction.map_or(0, |i| i.1).min(8) as f32) / 8.0,
    ];
    for (d, v) in dense.iter_mut().zip(
        shape.into_iter().chain(
            concepts
                .iter()
                .map(|&n| f32::from(n.min(CONCEPT_SATURATION)) / f32::from(CONCEPT_SATURATION)),
        ),
    ) {
        *d = v;
    }
}

/// The instruction of a turn's first window: its text up to the first blank
/// line or code fence (what follows is usually pasted material), as its
/// length in bytes and its clauses (commas, semicolons, colons, sentence
/// ends and their CJK and Arabic forms): how much is asked, not how much is
/// pasted.
fn instruction_of(w: &str) -> (usize, u32) {
    let end = [
        crate::bytes::find(w.as_bytes(), b"\n\n"),
        crate::bytes::find(w.as_bytes(), b"```"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(w.len());
    let text = w.as_bytes().get(..end).unwrap_or(w.as_bytes());
    // By bytes, not chars: each mark's UTF-8 form begins with a byte no
    // other character's encoding has at that place (a lead byte never
    // continues a character), so this counts what a walk over the chars
    // would, without decoding them.
    let mut clauses = 0u32;
    for (i, &b) in text.iter().enumerate() {
        let next = |n: usize| text.get(i + n).copied();
        let mark = match b {
            b',' | b';' | b':' | b'.' | b'?' => true,
            // ， ；
            0xEF => next(1) == Some(0xBC) && matches!(next(2), Some(0x8C | 0x9B)),
            // 、 。
            0xE3 => next(1) == Some(0x80) && matches!(next(2), Some(0x81 | 0x82)),
            // ،
            0xD8 => next(1) == Some(0x8C),
            _ => false,
        };
        clauses += u32::from(mark);
    }
    (text.len(), clauses)
}

/// The question marks of a text (ASCII and the full-width `？`), by bytes
/// as [`instruction_of`] counts its marks.
fn question_marks(w: &str) -> u32 {
    let b = w.as_bytes();
    // `？` is EF BC 9F: found by its lead byte, with no searcher to build.
    memchr::memchr2_iter(b'?', 0xEF, b)
        .filter(|&i| b.get(i) == Some(&b'?') || b.get(i + 1..i + 3) == Some(&[0xBC, 0x9F][..]))
        .count() as u32
}

/// Matches of one concept beyond this count add nothing.
const CONCEPT_SATURATION: u8 = 3;

/// The concept lexicon compiled once: one automaton over every pattern,
/// walked from where a pattern may begin ([`crate::starts`]).
struct Lexicon {
    automaton: Starts<aho_corasick::nfa::contiguous::NFA>,
    /// Per pattern: its concept, whether it must end at a word boundary.
    patterns: Vec<(usize, bool)>,
    /// FNV-1a of every concept and pattern: models carry it.
    fingerprint: u32,
}

/// Scripts written with spaces between words, where a pattern that
/// begins with a letter must begin a word (Arabic and CJK attach words).
fn starts_words(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c) && !matches!(c as u32, 0x0600..=0x06FF)
}

fn lexicon() -> Option<&'static Lexicon> {
    static LEXICON: std::sync::OnceLock<Option<Lexicon>> = std::sync::OnceLock::new();
    LEXICON
        .get_or_init(|| {
            let mut texts = Vec::new();
            let mut patterns = Vec::new();
            let mut fp = bytes::fnv1a64(b"lexicon");
            for (k, (name, words)) in lexicon::CONCEPTS.iter().enumerate() {
                fp = (fp ^ bytes::fnv1a64(name.as_bytes())).rotate_left(5);
                for w in *words {
                    fp = (fp ^ bytes::fnv1a64(w.as_bytes())).rotate_left(5);
                    let (text, end) = match w.strip_suffix('$') {
                        Some(t) => (t, true),
                        None => (*w, false),
                    };
                    let lower = text.to_lowercase();
                    // Matching folds ASCII case only: a capitalised form of a
                    // word in another script (Übersetze, Докажи) is added.
                    let mut first = lower.chars();
                    let capital: Option<String> = first
                        .next()
                        .filter(|c| !c.is_ascii())
                        .map(|c| c.to_uppercase().chain(first).collect());
                    for t in std::iter::once(lower)
                        .chain(capital.filter(|c| c.as_str() != text.to_lowercase()))
                    {
                        texts.push(t);
                        patterns.push((k, end));
                    }
                }
            }
            // A DFA over these scripts takes 6.6 MB and 15 ms to build per
            // worker; the contiguous NFA 0.4 MB and 4 ms (classify-bench).
            let automaton = Starts::nfa(&texts).ok()?;
            Some(Lexicon {
                automaton,
                patterns,
                fingerprint: (fp ^ (fp >> 32)) as u32,
            })
        })
        .as_ref()
}

/// The fingerprint of this filter's concept lexicon (0 if it failed to build).
pub fn lexicon_fingerprint() -> u32 {
    lexicon().map_or(0, |l| l.fingerprint)
}

/// Counts each concept's occurrences in `text` into `out`.
fn count_concepts(text: &str, out: &mut [u8; lexicon::COUNT]) {
    let Some(lex) = lexicon() else { return };
    // A pattern that begins with a letter of a script with spaces begins a
    // word; the others (CJK, Arabic, punctuation) may begin anywhere.
    let may_start = |_: &[u8], at: usize| {
        !text
            .get(at..)
            .and_then(|t| t.chars().next())
            .is_some_and(starts_words)
            || !text
                .get(..at)
                .and_then(|t| t.chars().next_back())
                .is_some_and(char::is_alphanumeric)
    };
    lex.automaton
        .find(text.as_bytes(), may_start, |pattern, _, end| {
            let Some(&(k, end_word)) = lex.patterns.get(pattern) else {
                return;
            };
            let after = text.get(end..).and_then(|t| t.chars().next());
            if end_word && after.is_some_and(char::is_alphanumeric) {
                return;
            }
            if let Some(n) = out.get_mut(k) {
                *n = n.saturating_add(1);
            }
        });
}

/// Whether `w` holds a code fence: a byte search for the backtick (most
/// texts have none), not a substring searcher built per window.
fn has_fence(w: &[u8]) -> bool {
    memchr::memchr_iter(b'`', w).any(|i| w.get(i..i + 3) == Some(b"```".as_slice()))
}

/// Head and tail of a text, cut at char boundaries (all of it when short).
fn windows(text: &str, head: usize, tail: usize) -> impl Iterator<Item = &str> {
    let whole = text.len() <= head.saturating_add(tail);
    let floor = |i: usize| {
        let mut i = i.min(text.len());
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (a, b) = if whole {
        (Some(text), None)
    } else {
        let t = floor(text.len().saturating_sub(tail));
        (
            text.get(..floor(head)),
            text.get(t..).filter(|s| !s.is_empty()),
        )
    };
    a.into_iter().chain(b)
}

/// CJK scripts write words without spaces: each character is a word there.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

const FNV: u32 = 0x0100_0193;

/// murmur3's finaliser: spreads the bits of a feature hash before masking.
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn seed(ns: Ns, kind: u32) -> u32 {
    0x811c_9dc5 ^ ((ns as u32) << 8 | kind).wrapping_mul(0x9e37_79b9)
}

const WORD: u32 = 1;
const BIGRAM: u32 = 2;
const CHARS: u32 = 3;

/// Words (letters and digits, digits folded to `0`, lowercased), word
/// bigrams and, in the latest turn, character trigrams (whitespace folded).
fn text_features(
    text: &str,
    ns: Ns,
    mask: u32,
    want_names: bool,
    chars_left: &mut usize,
    sink: &mut impl FnMut(u32, Option<String>),
) {
    let chars = ns == Ns::Latest;
    let bigrams = ns == Ns::Latest || ns == Ns::System;
    let word_seed = seed(ns, WORD);
    let mut word: Option<u32> = None;
    let mut word_text = String::new();
    let mut prev: Option<(u32, String)> = None;
    let mut tri = [' '; 3];
    let mut tri_len = 0usize;
    let mut last_space = true;

    let end_word = |word: &mut Option<u32>,
                    word_text: &mut String,
                    prev: &mut Option<(u32, String)>,
                    sink: &mut dyn FnMut(u32, Option<String>)| {
        let Some(h) = word.take() else { return };
        let name = want_names.then(|| format!("{}{}", ns.prefix(), word_text));
        sink(fmix(h) & mask, name);
        if bigrams {
            if let Some((p, ptext)) = prev.as_ref() {
                let b = (p.rotate_left(7) ^ h ^ seed(ns, BIGRAM)).wrapping_mul(FNV);
                let name = want_names.then(|| format!("{}{} {}", ns.prefix(), ptext, word_text));
                sink(fmix(b) & mask, name);
            }
            *prev = Some((
                h,
                if want_names {
                    word_text.clone()
                } else {
                    String::new()
                },
            ));
        }
        word_text.clear();
    };

    for c in text.chars() {
        // ASCII first: most text is, and its tests are single compares (no
        // Unicode tables, never CJK).
        let (c, cjk, word_char) = if c.is_ascii() {
            let c = match c.to_ascii_lowercase() {
                '0'..='9' => '0',
                c => c,
            };
            (c, false, c.is_ascii_alphanumeric() || c == '_')
        } else {
            let c = c.to_lowercase().next().unwrap_or(c);
            let c = if c.is_ascii_digit() { '0' } else { c };
            (c, is_cjk(c), c.is_alphanumeric() || c == '_')
        };
        if chars && *chars_left > 0 {
            *chars_left = chars_left.saturating_sub(c.len_utf8());
            let ws = c.is_whitespace();
            if !(ws && last_space) {
                let c = if ws { ' ' } else { c };
                tri = [tri[1], tri[2], c];
                tri_len += 1;
                if tri_len >= 3 {
                    let h = tri
                        .iter()
                        .fold(seed(ns, CHARS), |h, &c| (h ^ c as u32).wrapping_mul(FNV));
                    sink(
                        fmix(h) & mask,
                        want_names.then(|| format!("chars:{}", tri.iter().collect::<String>())),
                    );
                }
            }
            last_space = ws;
        }
        if cjk {
            end_word(&mut word, &mut word_text, &mut prev, sink);
            word = Some((word_seed ^ c as u32).wrapping_mul(FNV));
            if want_names {
                word_text.push(c);
            }
            end_word(&mut word, &mut word_text, &mut prev, sink);
        } else if word_char {
            let h = word.unwrap_or(word_seed);
            word = Some((h ^ c as u32).wrapping_mul(FNV));
            if want_names {
                word_text.push(c);
            }
        } else {
            end_word(&mut word, &mut word_text, &mut prev, sink);
        }
    }
    end_word(&mut word, &mut word_text, &mut prev, sink);
}

/// The features of a request, as the model reads them (the trainer uses this
/// same function, so training and scoring cannot drift apart).
pub fn features(cfg: &FeatureConfig, req: &ChatRequest<'_>, score: &Score) -> Features {
    let mut f = Features::default();
    let mut dense = [0.0; DENSE];
    visit(cfg, req, score, false, |b, _| f.buckets.push(b), &mut dense);
    f.dense = dense;
    f.scale = sparse_scale(f.buckets.len(), cfg.norm_floor);
    f
}

/// Weights before quantisation: what the trainer fits.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub bias: [f32; OUTPUTS],
    /// `DENSE` rows of `OUTPUTS`.
    pub dense: Vec<f32>,
    /// `buckets` rows of `OUTPUTS`.
    pub sparse: Vec<f32>,
    /// Softmax temperatures of the tier and the category head (calibration).
    pub temperature: [f32; 2],
}

impl Weights {
    pub fn zeros(cfg: &FeatureConfig) -> Self {
        Self {
            bias: [0.0; OUTPUTS],
            dense: vec![0.0; DENSE * OUTPUTS],
            sparse: vec![0.0; cfg.buckets() * OUTPUTS],
            temperature: [1.0; 2],
        }
    }

    /// Raw logits (before temperature) of one example.
    pub fn logits(&self, f: &Features) -> [f32; OUTPUTS] {
        let mut out = self.bias;
        let s = f.scale;
        for &b in &f.buckets {
            let start = b as usize * OUTPUTS;
            if let Some(row) = self.sparse.get(start..start + OUTPUTS) {
                for (o, w) in out.iter_mut().zip(row) {
                    *o += s * w;
                }
            }
        }
        for (x, row) in f.dense.iter().zip(self.dense.chunks_exact(OUTPUTS)) {
            for (o, w) in out.iter_mut().zip(row) {
                *o += x * w;
            }
        }
        out
    }
}

/// A trained classifier, ready to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The trainer's version stamp (a hash of its data and settings).
    pub version: u32,
    pub config: FeatureConfig,
    /// The fingerprint of the concept lexicon it was trained with.
    lexicon: u32,
    bias: [f32; OUTPUTS],
    dense: Vec<f32>,
    /// Per head: the value of one quantisation step.
    step: [f32; 2],
    /// `buckets` rows of `OUTPUTS` quantised weights (`i8` as bytes):
    /// borrowed from the blob built into the filter, so a process (a VM in
    /// Wasm) holds the bundled model's weights once, not a decoded copy too.
    sparse: Cow<'static, [u8]>,
    temperature: [f32; 2],
}

/// One prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub tier: Tier,
    pub tier_probs: [f64; N_TIERS],
    /// In [0.05, 1], inside the predicted tier's band.
    pub complexity: f64,
    pub category: Category,
    pub category_probs: [f64; N_CATS],
}

/// A feature's pull towards the predicted tier and category (logit units,
/// relative to the mean over the other classes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub feature: String,
    pub tier: f64,
    pub category: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadMagic,
    UnsupportedVersion(u16),
    Checksum,
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("the model blob has the wrong length"),
            DecodeError::BadMagic => f.write_str("not a router model (bad magic)"),
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "router model format version {v} is not supported")
            }
            DecodeError::Checksum => f.write_str("the model blob's checksum does not match"),
            DecodeError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The model trained on this repository's corpus by `train-router` (see
/// tests/fixtures/routing/RUBRIC.md): the default until a routing table
/// carries its own.
pub const BUNDLED: &[u8] = include_bytes!("../data/router-model.bin");

/// The bundled model, decoded.
pub fn bundled() -> Result<Model, DecodeError> {
    Model::decode_with(BUNDLED, Cow::Borrowed)
}

/// The bundled model, decoded once per process (per VM in Wasm) and shared by
/// every table that names it: a table version compiles without decoding the
/// blob again (~0.8 ms natively for a 2^16-row model), and the workers of a
/// native Envoy share one copy of its weights.
fn bundled_shared() -> Result<Arc<Model>, DecodeError> {
    static BUNDLED_MODEL: OnceLock<Result<Arc<Model>, DecodeError>> = OnceLock::new();
    BUNDLED_MODEL
        .get_or_init(|| bundled().map(Arc::new))
        .clone()
}

const MAGIC: &[u8; 4] = b"AIPR";
/// 2: character trigrams bounded by `char_bytes`, and the concepts.
const FORMAT_VERSION: u16 = 2;
/// magic, format, version, bits, tiers, categories, dense, head, tail,
/// history, norm floor, char bytes, lexicon fingerprint.
const HEADER_BYTES: usize = 4 + 2 + 4 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1 + 4 + 4;
const CHECKSUM_BYTES: usize = 8;
/// The size of a blob with a table of `buckets` rows: the header, the float
/// parameters (steps, temperatures, bias, dense rows), the `i8` weights and
/// the checksum.
const fn blob_bytes(buckets: usize) -> usize {
    HEADER_BYTES + 4 * (2 + 2 + OUTPUTS + DENSE * OUTPUTS) + buckets * OUTPUTS + CHECKSUM_BYTES
}
/// The largest blob [`Model::decode`] accepts (a table of `2^MAX_BITS`
/// rows): what an API that takes blobs must admit.
pub const MAX_BLOB_BYTES: usize = blob_bytes(1 << MAX_BITS);

/// The shared reader, with this encoding's errors (a weight must be finite).
struct Reader<'a>(bytes::Reader<'a>);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.0.take(n).ok_or(DecodeError::Truncated)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.0.u8().ok_or(DecodeError::Truncated)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.0.u16().ok_or(DecodeError::Truncated)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.0.u32().ok_or(DecodeError::Truncated)
    }
    fn f32(&mut self) -> Result<f32, DecodeError> {
        let v = self.0.f32().ok_or(DecodeError::Truncated)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(DecodeError::Invalid("a weight is not finite"))
        }
    }
}

fn softmax<const N: usize>(logits: &[f32], temperature: f32) -> [f64; N] {
    let mut out = [0.0f64; N];
    let t = f64::from(temperature.max(1e-3));
    let max = logits
        .iter()
        .take(N)
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let mut sum = 0.0;
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = ((f64::from(x) - max) / t).exp();
        sum += *o;
    }
    if sum > 0.0 {
        for o in &mut out {
            *o /= sum;
        }
    }
    out
}

fn argmax(xs: &[f64]) -> usize {
    xs.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// A complexity inside the predicted tier's band, higher the more the
/// probability mass leans to harder tiers: so the bands of filter/README.md
/// read back the same tier, and selection still sees a graded score.
pub fn complexity_of(tier: Tier, p: &[f64; N_TIERS]) -> f64 {
    let [cheap, mid, frontier] = *p;
    let c = match tier {
        // cheap is the argmax, so 1 - cheap <= 2/3.
        Tier::Cheap => {
            MIN_COMPLEXITY + (MID_FROM - 0.001 - MIN_COMPLEXITY) * (1.5 * (mid + frontier)).min(1.0)
        }
        Tier::Mid => {
            MID_FROM + (FRONTIER_FROM - 0.001 - MID_FROM) * (0.5 + 0.5 * (frontier - cheap))
        }
        Tier::Frontier => {
            FRONTIER_FROM + (1.0 - FRONTIER_FROM) * (1.5 * (frontier - 1.0 / 3.0)).clamp(0.0, 1.0)
        }
    };
    c.clamp(MIN_COMPLEXITY, 1.0)
}

impl Model {
    /// Quantises trained weights: each head's sparse weights to `i8` steps.
    pub fn quantise(
        version: u32,
        config: FeatureConfig,
        w: &Weights,
    ) -> Result<Model, DecodeError> {
        config.validate()?;
        if w.sparse.len() != config.buckets() * OUTPUTS || w.dense.len() != DENSE * OUTPUTS {
            return Err(DecodeError::Invalid(
                "weights do not match the feature config",
            ));
        }
        let mut step = [0.0f32; 2];
        for row in w.sparse.chunks_exact(OUTPUTS) {
            for (j, v) in row.iter().enumerate() {
                let h = usize::from(j >= N_TIERS);
                if let Some(s) = step.get_mut(h) {
                    *s = s.max(v.abs());
                }
            }
        }
        let step = step.map(|m| if m > 0.0 { m / 127.0 } else { 1.0 });
        let sparse = w
            .sparse
            .chunks_exact(OUTPUTS)
            .flat_map(|row| {
                row.iter().enumerate().map(move |(j, v)| {
                    let s = if j < N_TIERS { step[0] } else { step[1] };
                    (v / s).round().clamp(-127.0, 127.0) as i8 as u8
                })
            })
            .collect::<Vec<u8>>()
            .into();
        Ok(Model {
            version,
            config,
            lexicon: lexicon_fingerprint(),
            bias: w.bias,
            dense: w.dense.clone(),
            step,
            sparse,
            temperature: w.temperature,
        })
    }

    /// The compact binary form: header, float parameters, `i8` weights, and
    /// an FNV-1a 64 checksum of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(blob_bytes(self.config.buckets()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&[self.config.bits, N_TIERS as u8, N_CATS as u8, DENSE as u8]);
        out.extend_from_slice(&self.config.head_bytes.to_le_bytes());
        out.extend_from_slice(&self.config.tail_bytes.to_le_bytes());
        out.extend_from_slice(&[self.config.history_turns, self.config.norm_floor]);
        out.extend_from_slice(&self.config.char_bytes.to_le_bytes());
        out.extend_from_slice(&self.lexicon.to_le_bytes());
        for v in self
            .step
            .iter()
            .chain(&self.temperature)
            .chain(&self.bias)
            .chain(&self.dense)
        {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.sparse);
        let sum = bytes::fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Model, DecodeError> {
        Self::decode_with(bytes, |w| Cow::Owned(w.to_vec()))
    }

    /// Decodes `bytes`, keeping the weights' bytes as `keep` says (a copy,
    /// or borrowed from a blob that lives as long as the process).
    fn decode_with<'a>(
        bytes: &'a [u8],
        keep: impl FnOnce(&'a [u8]) -> Cow<'static, [u8]>,
    ) -> Result<Model, DecodeError> {
        let body_len = bytes
            .len()
            .checked_sub(CHECKSUM_BYTES)
            .ok_or(DecodeError::Truncated)?;
        let (body, sum) = bytes.split_at(body_len);
        let mut r = Reader(bytes::Reader::new(body));
        if r.take(4)? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let format = r.u16()?;
        if format != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(format));
        }
        let expected = u64::from_le_bytes(sum.try_into().map_err(|_| DecodeError::Truncated)?);
        if bytes::fnv1a64(body) != expected {
            return Err(DecodeError::Checksum);
        }
        let version = r.u32()?;
        let bits = r.u8()?;
        if (r.u8()?, r.u8()?, r.u8()?) != (N_TIERS as u8, N_CATS as u8, DENSE as u8) {
            return Err(DecodeError::Invalid(
                "tiers, categories or dense features differ from this filter's",
            ));
        }
        let config = FeatureConfig {
            bits,
            head_bytes: r.u32()?,
            tail_bytes: r.u32()?,
            history_turns: r.u8()?,
            norm_floor: r.u8()?,
            char_bytes: r.u32()?,
        };
        config.validate()?;
        let lexicon = r.u32()?;
        if lexicon != lexicon_fingerprint() {
            return Err(DecodeError::Invalid(
                "the model was trained with another concept lexicon than this filter's",
            ));
        }
        let mut floats = |n: usize| (0..n).map(|_| r.f32()).collect::<Result<Vec<f32>, _>>();
        let step = floats(2)?;
        let temperature = floats(2)?;
        let bias = floats(OUTPUTS)?;
        let dense = floats(DENSE * OUTPUTS)?;
        let step: [f32; 2] = step.try_into().map_err(|_| DecodeError::Truncated)?;
        let temperature: [f32; 2] = temperature.try_into().map_err(|_| DecodeError::Truncated)?;
        let bias: [f32; OUTPUTS] = bias.try_into().map_err(|_| DecodeError::Truncated)?;
        if step.iter().chain(&temperature).any(|&v| v <= 0.0) {
            return Err(DecodeError::Invalid(
                "quantisation steps and temperatures must be positive",
            ));
        }
        let sparse_len = config
            .buckets()
            .checked_mul(OUTPUTS)
            .ok_or(DecodeError::Truncated)?;
        let sparse = keep(r.take(sparse_len)?);
        if !r.0.at_end() {
            return Err(DecodeError::Truncated);
        }
        Ok(Model {
            version,
            config,
            lexicon,
            bias,
            dense,
            step,
            sparse,
            temperature,
        })
    }

    /// Logits of the features visited, with `each` told every sparse
    /// feature's bucket and (when `names`) text.
    fn logits_with(
        &self,
        req: &ChatRequest<'_>,
        score: &Score,
        names: bool,
        mut each: impl FnMut(u32, Option<String>),
    ) -> ([f32; OUTPUTS], [f32; DENSE], f32) {
        let mut acc = [0i32; OUTPUTS];
        let mut n = 0usize;
        let mut dense = [0.0f32; DENSE];
        // Buckets are gathered and their rows summed a batch at a time: the
        // rows are random reads of the table, and a tight loop over them
        // lets the processor have many in flight at once (with the sum
        // inside the visit, each waited behind the hashing around it).
        let mut batch = [0u32; 64];
        visit(
            &self.config,
            req,
            score,
            names,
            |b, name| {
                if let Some(slot) = batch.get_mut(n % 64) {
                    *slot = b;
                }
                n += 1;
                if n.is_multiple_of(64) {
                    self.add_rows(&batch, &mut acc);
                }
                each(b, name);
            },
            &mut dense,
        );
        self.add_rows(batch.get(..n % 64).unwrap_or(&[]), &mut acc);
        let scale = sparse_scale(n, self.config.norm_floor);
        (self.finish(acc, scale, &dense), dense, scale)
    }

    /// Adds the quantised rows of `buckets` to `acc`.
    fn add_rows(&self, buckets: &[u32], acc: &mut [i32; OUTPUTS]) {
        let mut sum = *acc;
        for &b in buckets {
            let start = b as usize * OUTPUTS;
            let row: Option<&[u8; OUTPUTS]> = self
                .sparse
                .get(start..start + OUTPUTS)
                .and_then(|r| r.try_into().ok());
            if let Some(row) = row {
                for (a, &q) in sum.iter_mut().zip(row) {
                    *a += i32::from(q as i8);
                }
            }
        }
        *acc = sum;
    }

    /// The logits of summed rows `acc` at `scale`, and the dense features.
    fn finish(&self, acc: [i32; OUTPUTS], scale: f32, dense: &[f32; DENSE]) -> [f32; OUTPUTS] {
        let mut out = self.bias;
        for (j, (o, a)) in out.iter_mut().zip(acc).enumerate() {
            let step = if j < N_TIERS {
                self.step[0]
            } else {
                self.step[1]
            };
            *o += scale * step * a as f32;
        }
        for (x, row) in dense.iter().zip(self.dense.chunks_exact(OUTPUTS)) {
            for (o, w) in out.iter_mut().zip(row) {
                *o += x * w;
            }
        }
        out
    }

    fn predict_logits(&self, logits: &[f32; OUTPUTS]) -> Prediction {
        let (t, c) = logits.split_at(N_TIERS);
        let tier_probs: [f64; N_TIERS] = softmax(t, self.temperature[0]);
        let category_probs: [f64; N_CATS] = softmax(c, self.temperature[1]);
        let tier = TIERS
            .get(argmax(&tier_probs))
            .copied()
            .unwrap_or(Tier::Frontier);
        let category = CATEGORIES
            .get(argmax(&category_probs))
            .copied()
            .unwrap_or(Category::Chat);
        Prediction {
            tier,
            tier_probs,
            complexity: complexity_of(tier, &tier_probs),
            category,
            category_probs,
        }
    }

    /// Raw logits (before temperature) of features read with this model's
    /// configuration ([`features`]): what [`Model::predict`] computes on the
    /// way, for a trainer that adjusts them (`crate::tenant_router`).
    pub fn raw_logits(&self, f: &Features) -> [f32; OUTPUTS] {
        let mut acc = [0i32; OUTPUTS];
        self.add_rows(&f.buckets, &mut acc);
        self.finish(acc, f.scale, &f.dense)
    }

    /// The prediction raw logits give.
    pub fn predict_raw(&self, logits: &[f32; OUTPUTS]) -> Prediction {
        self.predict_logits(logits)
    }

    /// The softmax temperatures of the tier and the category head.
    pub fn temperatures(&self) -> [f32; 2] {
        self.temperature
    }

    /// Scores a request whose complexity `score` is already computed.
    pub fn predict(&self, req: &ChatRequest<'_>, score: &Score) -> Prediction {
        let (logits, _, _) = self.logits_with(req, score, false, |_, _| {});
        self.predict_logits(&logits)
    }

    /// The prediction and the `top` features that pulled hardest towards
    /// the predicted tier and category (for the explain API).
    pub fn explain(
        &self,
        req: &ChatRequest<'_>,
        score: &Score,
        top: usize,
    ) -> (Prediction, Vec<Contribution>) {
        let mut seen: Vec<(u32, String)> = Vec::new();
        let (logits, dense, scale) = self.logits_with(req, score, true, |b, name| {
            if let Some(name) = name {
                seen.push((b, name));
            }
        });
        let p = self.predict_logits(&logits);
        let (ti, ci) = (p.tier.index(), N_TIERS + p.category.index());
        // Pull of one row towards class `k` of its head, against the head's mean.
        let pull = |row: &[f32], k: usize, head: std::ops::Range<usize>| -> f64 {
            let n = head.len() as f64;
            let mean = row
                .get(head)
                .map_or(0.0, |r| r.iter().map(|&v| f64::from(v)).sum::<f64>() / n);
            row.get(k).map_or(0.0, |&v| f64::from(v)) - mean
        };
        let mut by_name: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
        for (b, name) in seen {
            let start = b as usize * OUTPUTS;
            let Some(q) = self.sparse.get(start..start + OUTPUTS) else {
                continue;
            };
            let row: Vec<f32> = q
                .iter()
                .enumerate()
                .map(|(j, &q)| {
                    scale
                        * f32::from(q as i8)
                        * if j < N_TIERS {
                            self.step[0]
                        } else {
                            self.step[1]
                        }
                })
                .collect();
            let e = by_name.entry(name).or_default();
            e.0 += pull(&row, ti, 0..N_TIERS);
            e.1 += pull(&row, ci, N_TIERS..OUTPUTS);
        }
        for (i, (x, row)) in dense
            .iter()
            .zip(self.dense.chunks_exact(OUTPUTS))
            .enumerate()
        {
            if *x == 0.0 {
                continue;
            }
            let row: Vec<f32> = row.iter().map(|w| w * x).collect();
            by_name.insert(
                dense_name(i),
                (pull(&row, ti, 0..N_TIERS), pull(&row, ci, N_TIERS..OUTPUTS)),
            );
        }
        let mut out: Vec<Contribution> = by_name
            .into_iter()
            .map(|(feature, (tier, category))| Contribution {
                feature,
                tier,
                category,
            })
            .collect();
        out.sort_by(|a, b| {
            (b.tier + b.category)
                .total_cmp(&(a.tier + a.category))
                .then(a.feature.cmp(&b.feature))
        });
        out.truncate(top);
        (p, out)
    }
}

/// The router model a routing table names (wire form): the model built into
/// this filter ([`BUNDLED`]), or another one's blob in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterModel {
    Builtin,
    Blob(String),
}

/// Which model scored a request (for the explain API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The model this filter was built with.
    Builtin,
    /// A blob the routing table carried.
    Global,
    /// Either of those with the tenant's own correction
    /// (`crate::tenant_router`).
    Tenant,
}

/// A routing table's router model: a blob decoded once per table version,
/// the bundled model once per process.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    pub source: Source,
    pub model: Arc<Model>,
}

impl Router {
    /// Decodes the model a table names; a blob that is not base64 or not a
    /// model of this filter's shape is refused, never a panic.
    pub fn compile(wire: &RouterModel) -> Result<Router, DecodeError> {
        use base64::Engine as _;
        let (source, model) = match wire {
            RouterModel::Builtin => (Source::Builtin, bundled_shared()?),
            RouterModel::Blob(text) => {
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| DecodeError::Invalid("blob is not standard base64"))?;
                (Source::Global, Arc::new(Model::decode(&blob)?))
            }
        };
        Ok(Router { source, model })
    }

    /// The explain API's view of one prediction: tier and category with
    /// their probabilities and the `top` features that pulled hardest.
    pub fn explain(&self, req: &ChatRequest<'_>, score: &Score, top: usize) -> Explained {
        let (p, top_features) = self.model.explain(req, score, top);
        Explained {
            model: self.source,
            version: format!("{:08x}", self.model.version),
            tier: p.tier.name(),
            tier_probabilities: TIERS.iter().map(|t| t.name()).zip(p.tier_probs).collect(),
            complexity: p.complexity,
            category: p.category.name(),
            category_probabilities: CATEGORIES
                .iter()
                .map(|c| c.name())
                .zip(p.category_probs)
                .collect(),
            top_features,
        }
    }
}

impl Explained {
    /// The same explanation with a tenant's corrected prediction (its top
    /// features stay the global model's).
    pub fn corrected(mut self, p: &Prediction) -> Self {
        self.model = Source::Tenant;
        self.tier = p.tier.name();
        self.tier_probabilities = TIERS.iter().map(|t| t.name()).zip(p.tier_probs).collect();
        self.complexity = p.complexity;
        self.category = p.category.name();
        self.category_probabilities = CATEGORIES
            .iter()
            .map(|c| c.name())
            .zip(p.category_probs)
            .collect();
        self
    }
}

/// What the explain API shows of the router model's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    /// `builtin`, `global`, or `tenant` (either with the tenant's own
    /// correction).
    pub model: Source,
    /// The trainer's version stamp, hex.
    pub version: String,
    pub tier: &'static str,
    pub tier_probabilities: BTreeMap<&'static str, f64>,
    /// The complexity routing used: inside the tier's band.
    pub complexity: f64,
    pub category: &'static str,
    pub category_probabilities: BTreeMap<&'static str, f64>,
    pub top_features: Vec<Contribution>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Scorer, ScoringConfig};

    fn body(text: &str) -> String {
        serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string()
    }

    fn toy_model(bits: u8) -> Model {
        let cfg = FeatureConfig {
            bits,
            ..FeatureConfig::default()
        };
        let mut w = Weights::zeros(&cfg);
        // A deterministic, non-trivial pattern.
        for (i, v) in w.sparse.iter_mut().enumerate() {
            *v = ((i * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5;
        }
        for (i, v) in w.dense.iter_mut().enumerate() {
            *v = (i % 7) as f32 / 10.0 - 0.3;
        }
        w.bias[0] = 0.5;
        Model::quantise(7, cfg, &w).unwrap()
    }

    fn scored(text: &str) -> (String, Score) {
        let b = body(text);
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        let s = scorer.score(&ChatRequest::parse(b.as_bytes()).unwrap());
        (b, s)
    }

    /// The byte counts of marks agree with counting chars, in every script
    /// the lexicon has and next to characters whose encodings share bytes
    /// with the marks' (U+FF0D, U+3003, U+060D, U+FF1F's neighbours).
    #[test]
    fn marks_are_counted_by_bytes_as_by_chars() {
        let by_chars = |w: &str| {
            let end = [w.find("\n\n"), w.find("```")]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(w.len());
            let marks = w[..end]
                .chars()
                .filter(|c| {
                    matches!(
                        c,
                        ',' | ';' | ':' | '.' | '?' | '，' | '；' | '。' | '、' | '،'
                    )
                })
                .count() as u32;
            let questions = w.matches(['?', '？']).count() as u32;
            ((end, marks), questions)
        };
        for w in [
            "",
            "plain words, a clause; another: done. why?",
            "先做这个，然后那个；最后。好吗？、〃",
            "これは、テストです。－＝？！",
            "مرحبا، كيف حالك؍ ؟",
            "first line, ok\n\nsecond, pasted; part.",
            "ask this: ```code, here; x.``` then?",
            "Überprüfe das, bitte; Доказать: ∀x. 证明？",
        ] {
            assert_eq!((instruction_of(w), question_marks(w)), by_chars(w), "{w}");
        }
    }

    #[test]
    fn encode_decode_round_trips() {
        let m = toy_model(10);
        let blob = m.encode();
        assert_eq!(Model::decode(&blob).unwrap(), m);
        // The size MAX_BLOB_BYTES is computed with.
        assert_eq!(blob.len(), blob_bytes(m.config.buckets()));
    }

    #[test]
    fn decode_rejects_every_truncation_and_flipped_byte() {
        let blob = toy_model(8).encode();
        for n in 0..blob.len() {
            assert!(Model::decode(&blob[..n]).is_err(), "truncated to {n}");
        }
        for i in (0..blob.len()).step_by(7) {
            let mut bad = blob.clone();
            bad[i] ^= 0x5a;
            assert!(Model::decode(&bad).is_err(), "byte {i} flipped");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(Model::decode(&longer).is_err());
        assert_eq!(Model::decode(b"nope").unwrap_err(), DecodeError::Truncated);
    }

    #[test]
    fn decode_rejects_a_valid_checksum_over_bad_contents() {
        // Re-seal a blob whose bits field is out of range: the checksum
        // passes, the validation must not.
        let mut blob = toy_model(8).encode();
        blob.truncate(blob.len() - CHECKSUM_BYTES);
        blob[10] = 40;
        let sum = bytes::fnv1a64(&blob);
        blob.extend_from_slice(&sum.to_le_bytes());
        assert!(matches!(Model::decode(&blob), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn predictions_are_deterministic_and_in_band() {
        let m = toy_model(12);
        for text in [
            "hi",
            "prove that every planar graph is 5-colourable",
            &"log line\n".repeat(5000),
            "请严格证明这个定理",
        ] {
            let (b, s) = scored(text);
            let req = ChatRequest::parse(b.as_bytes()).unwrap();
            let a = m.predict(&req, &s);
            assert_eq!(a, m.predict(&req, &s));
            assert!((MIN_COMPLEXITY..=1.0).contains(&a.complexity));
            assert_eq!(Tier::of_complexity(a.complexity), a.tier, "{a:?}");
            assert!((a.tier_probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!((a.category_probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn quantised_model_agrees_with_its_weights() {
        let cfg = FeatureConfig {
            bits: 10,
            ..FeatureConfig::default()
        };
        let mut w = Weights::zeros(&cfg);
        for (i, v) in w.sparse.iter_mut().enumerate() {
            *v = ((i * 40_503) % 255) as f32 / 127.0 - 1.0;
        }
        let m = Model::quantise(1, cfg, &w).unwrap();
        let (b, s) = scored("write a lock-free queue in C++ and prove it linearizable");
        let req = ChatRequest::parse(b.as_bytes()).unwrap();
        let f = features(&cfg, &req, &s);
        let exact = w.logits(&f);
        let (quant, _, _) = m.logits_with(&req, &s, false, |_, _| {});
        for (a, b) in exact.iter().zip(quant) {
            assert!((a - b).abs() < 0.05, "{exact:?} vs {quant:?}");
        }
    }

    #[test]
    fn complexity_keeps_the_bands() {
        for p in [
            [1.0, 0.0, 0.0],
            [0.34, 0.33, 0.33],
            [0.4, 0.0, 0.6],
            [0.0, 1.0, 0.0],
            [0.3, 0.4, 0.3],
            [0.0, 0.0, 1.0],
            [0.33, 0.33, 0.34],
        ] {
            for tier in TIERS {
                let c = complexity_of(tier, &p);
                assert_eq!(Tier::of_complexity(c), tier, "{tier:?} {p:?} -> {c}");
            }
        }
        assert!(complexity_of(Tier::Cheap, &[1.0, 0.0, 0.0]) < 0.2);
    }

    #[test]
    fn features_read_only_head_and_tail_of_long_texts() {
        let cfg = FeatureConfig::default();
        let short = "word ".repeat(10);
        let long = format!(
            "{}{}{}",
            "head ".repeat(400),
            "middle ".repeat(100_000),
            "tail ".repeat(200)
        );
        let (b1, s1) = scored(&short);
        let (b2, s2) = scored(&long);
        let n1 = features(&cfg, &ChatRequest::parse(b1.as_bytes()).unwrap(), &s1)
            .buckets
            .len();
        let n2 = features(&cfg, &ChatRequest::parse(b2.as_bytes()).unwrap(), &s2)
            .buckets
            .len();
        assert!(
            n1 < n2 && n2 < 4 * (cfg.head_bytes + cfg.tail_bytes) as usize,
            "{n1} {n2}"
        );
    }

    #[test]
    fn windows_cut_at_char_boundaries() {
        let text = "é".repeat(1000);
        for (h, t) in [(1, 1), (3, 5), (999, 999), (0, 0), (usize::MAX, 0)] {
            let total: usize = windows(&text, h, t).map(str::len).sum();
            assert!(total <= text.len());
        }
    }

    #[test]
    fn explain_names_the_words_it_read() {
        let m = toy_model(10);
        let (b, s) = scored("prove the lemma by induction");
        let req = ChatRequest::parse(b.as_bytes()).unwrap();
        let (p, top) = m.explain(&req, &s, 200);
        assert_eq!(p, m.predict(&req, &s));
        let names: Vec<&str> = top.iter().map(|c| c.feature.as_str()).collect();
        assert!(names.contains(&"induction"), "{names:?}");
        assert!(names.contains(&"by induction"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("signal.")), "{names:?}");
        assert!(names.contains(&"concept.proof"), "{names:?}");
    }

    #[test]
    fn cjk_characters_are_words() {
        let cfg = FeatureConfig::default();
        let (b, s) = scored("证明");
        let f = features(&cfg, &ChatRequest::parse(b.as_bytes()).unwrap(), &s);
        // two words, one bigram, no trigram of two characters.
        assert_eq!(f.buckets.len(), 3);
    }

    #[test]
    fn the_bundled_model_decodes_and_sorts_the_obvious_cases() {
        let m = bundled().unwrap();
        assert_eq!(Model::decode(&m.encode()).unwrap(), m);
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        let predict = |text: &str| {
            let b = body(text);
            let req = ChatRequest::parse(b.as_bytes()).unwrap();
            m.predict(&req, &scorer.score(&req))
        };
        let hi = predict("hello! how are you?");
        assert_eq!(
            (hi.tier, hi.category),
            (Tier::Cheap, Category::Chat),
            "{hi:?}"
        );
        let hard = predict(
            "Is this lock-free stack linearizable under the C++ memory model? Give an interleaving that breaks it or prove it correct.",
        );
        assert_eq!(hard.tier, Tier::Frontier, "{hard:?}");
    }

    /// A tenant that learns from feedback is scored from the features the
    /// router read (kept for its usage record): the same prediction as the
    /// direct path's, so opting in changes no route.
    #[test]
    fn scoring_from_features_is_scoring_directly() {
        let m = bundled().unwrap();
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        for text in [
            "hi",
            "translate 'good morning' to Spanish",
            "draft an NDA clause for a landlord",
            "Prove by induction that every tree with n vertices has n-1 edges.",
            &"log line: request served in 12 ms\n".repeat(400),
        ] {
            let b = body(text);
            let req = ChatRequest::parse(b.as_bytes()).unwrap();
            let score = scorer.score(&req);
            let direct = m.predict(&req, &score);
            let f = features(&m.config, &req, &score);
            let via = m.predict_raw(&m.raw_logits(&f));
            assert_eq!(
                (direct.tier, direct.category),
                (via.tier, via.category),
                "{text}"
            );
            assert!((direct.complexity - via.complexity).abs() < 1e-6, "{text}");
        }
    }

    /// The value of concept `name` in the features of `text`.
    fn concept(text: &str, name: &str) -> f32 {
        let (b, s) = scored(text);
        let f = features(
            &FeatureConfig::default(),
            &ChatRequest::parse(b.as_bytes()).unwrap(),
            &s,
        );
        let k = lexicon::CONCEPTS.iter().position(|c| c.0 == name).unwrap();
        f.dense[SHAPE + k]
    }

    #[test]
    fn concepts_are_read_in_many_languages_at_word_starts() {
        for text in [
            "prove it",
            "Beweise, dass es unendlich viele Primzahlen gibt",
            "Докажите теорему",
            "demuestra que",
            "请严格证明这个定理",
            "証明してください",
        ] {
            assert!(concept(text, "proof") > 0.0, "{text}");
        }
        assert_eq!(concept("how can I improve my essay?", "proof"), 0.0);
        // `log$` is a whole word: logic is not a log.
        assert!(concept("here is the log: ...", "data") > 0.0);
        assert_eq!(concept("explain the logic", "data"), 0.0);
        // Counts saturate.
        assert_eq!(concept(&"translate ".repeat(20), "translate"), 1.0);
        assert!(concept("translate this", "translate") < 1.0);
    }

    #[test]
    fn the_instruction_is_what_comes_before_pasted_material() {
        assert_eq!(
            instruction_of("summarise this, briefly:\n\nlong text, with, commas"),
            (24, 2)
        );
        assert_eq!(instruction_of("fix it ```fn main() {}```"), (7, 0));
        assert_eq!(
            instruction_of("是什么？请解释。"),
            ("是什么？请解释。".len(), 1)
        );
    }

    #[test]
    fn a_few_words_are_weak_evidence() {
        assert_eq!(sparse_scale(4, 1), 0.5);
        assert_eq!(sparse_scale(4, 16), 0.25);
        assert_eq!(sparse_scale(64, 16), 0.125);
        assert_eq!(sparse_scale(0, 0), 1.0);
    }

    #[test]
    fn decode_refuses_a_model_of_another_lexicon() {
        let mut blob = toy_model(8).encode();
        blob.truncate(blob.len() - CHECKSUM_BYTES);
        // The fingerprint is the header's last field.
        let at = HEADER_BYTES - 4;
        blob[at] ^= 1;
        let sum = bytes::fnv1a64(&blob);
        blob.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(
            Model::decode(&blob),
            Err(DecodeError::Invalid(
                "the model was trained with another concept lexicon than this filter's"
            ))
        );
    }

    #[test]
    fn categories_and_tiers_round_trip_their_names() {
        for c in CATEGORIES {
            assert_eq!(Category::from_name(c.name()), Some(c));
        }
        assert_eq!(Tier::of_band("complex"), Some(Tier::Frontier));
        assert_eq!(Tier::of_band("x"), None);
    }
}
