//! Arbitrary bytes as a chat request body: parse, score, rank, rewrite.
//!
//! Checks, whenever the body parses:
//! - the score is in [MIN_COMPLEXITY, MAX_COMPLEXITY] and is exactly the
//!   clamped sum of its contributions;
//! - ranking for the OpenAI+Anthropic tenant returns finite costs, best first;
//! - the model rewrite yields a body of `new_len` bytes that parses again,
//!   names the new model and scores the same; when the original is strict
//!   JSON, the edited body is too and differs from it only in `model`.
#![no_main]

use aipipe_core::request::{BodyShape, ChatRequest, ModelChoice};
use aipipe_core::score::{MAX_COMPLEXITY, MIN_COMPLEXITY};
use aipipe_core::{route, select};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Names the rewrite must quote correctly besides the ranked choice.
const AWKWARD_NAMES: [&str; 3] = ["auto", "a\"b\\c\u{0}\u{1f}\u{7f}é\u{2028}😀", "x/y"];

fuzz_target!(|body: &[u8]| {
    let Ok(req) = ChatRequest::parse(body) else {
        return;
    };
    let table = filter_fuzz::default_table();
    let score = table.scorer.score(&req);
    let sum =
        score.base + score.length + score.code + score.keywords + score.structure + score.depth;
    assert!(
        (MIN_COMPLEXITY..=MAX_COMPLEXITY).contains(&score.complexity),
        "complexity out of range: {score:?}"
    );
    assert_eq!(
        score.complexity.to_bits(),
        sum.clamp(MIN_COMPLEXITY, MAX_COMPLEXITY).to_bits(),
        "complexity is not the clamped sum of its contributions: {score:?}"
    );
    assert!(score.input_tokens > 0, "{score:?}");

    let needs = route::needs(&req, score.input_tokens);
    let mut names: Vec<&str> = AWKWARD_NAMES.to_vec();
    if let Ok(ranked) = select::rank(table, &table.accounts()[0], &needs, score.complexity) {
        assert!(!ranked.is_empty());
        for c in &ranked {
            assert!(c.model.0 < table.models.len());
            assert!(c.raw_cost.is_finite() && c.raw_cost >= 0.0, "{c:?}");
            assert!(
                c.adjusted_cost.is_finite() && c.adjusted_cost >= 0.0,
                "{c:?}"
            );
        }
        for w in ranked.windows(2) {
            // Ties (within 1e-9 relative) may be in either cost order.
            assert!(
                w[0].adjusted_cost <= w[1].adjusted_cost * (1.0 + 1e-9),
                "not best first: {ranked:?}"
            );
        }
        names.push(table.models[ranked[0].model.0].upstream_name());
    }

    let original: Option<Value> = serde_json::from_slice(body).ok();
    for name in names {
        let shape = BodyShape {
            force_usage: false,
            ..req.shape()
        };
        let edit = shape.edit(body, name);
        let out = edit.apply(body);
        assert_eq!(out.len(), edit.new_len(body.len()), "new_len for {name:?}");

        let again = match ChatRequest::parse(&out) {
            Ok(r) => r,
            Err(e) => panic!(
                "rewritten body does not parse ({e:?}): {:?}",
                String::from_utf8_lossy(&out)
            ),
        };
        let expected = if name == "auto" {
            ModelChoice::Auto
        } else {
            ModelChoice::Named(name.into())
        };
        assert_eq!(again.model, expected);
        assert_eq!(again.messages.len(), req.messages.len());
        assert_eq!(
            table.scorer.score(&again),
            score,
            "rewrite changed the score"
        );

        let Some(mut original) = original.clone() else {
            continue;
        };
        let mut edited: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => panic!(
                "rewritten body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&out)
            ),
        };
        assert_eq!(edited.get("model").and_then(Value::as_str), Some(name));
        if let (Some(a), Some(b)) = (original.as_object_mut(), edited.as_object_mut()) {
            a.remove("model");
            b.remove("model");
        }
        assert_eq!(original, edited, "rewrite changed more than `model`");
    }
});
