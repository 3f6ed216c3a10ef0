//! A tenant's correction to the router model, learnt from its own labelled
//! requests (examples it imports, feedback on its answers): the same model
//! for everybody, plus, for one tenant, per-feature adjustments of its
//! logits.
//!
//! The control plane fits it (control-plane/README.md, "Per-tenant
//! routing") and ships it in the tenant's directory entry. The shape chosen:
//!
//! - Only sparse (n-gram) rows are adjusted, never the bias or the dense
//!   features: 50 examples of one label would otherwise move every request
//!   of the tenant, not the ones that look like them. Nor are the rows of
//!   features common in the background (in more than 5 % of it: function
//!   words, the commonest trigrams), for the same reason.
//! - The background's target is the global model's own probabilities, not
//!   its argmax: it only resists being moved.
//! - The tenant's examples are fitted together with a background sample of
//!   the global corpus (weight 1 each, the tenant's examples heavier), so a
//!   word every request has is held where the global model put it; the
//!   global model's own logits are the starting point (the prior), and L2
//!   pulls each adjustment back towards 0 (that prior).
//! - An adjustment applies only to the model version it was fitted against.
//! - Rows are few (those of the examples' features, the largest kept), so it
//!   travels in the tenant's directory entry.

use std::collections::HashMap;

use crate::classify::{Category, DENSE, Features, Model, OUTPUTS, Prediction, TIERS, Tier};

const N_TIERS: usize = TIERS.len();
const MAGIC: &[u8; 4] = b"APR1";
/// The most rows an adjustment keeps (the largest by norm).
pub const MAX_ROWS: usize = 4096;
/// A feature in more than this share (%) of the background requests is
/// common to everybody and never adjusted.
const COMMON_PERCENT: usize = 5;

/// One labelled request, read as the model reads it.
#[derive(Debug, Clone)]
pub struct Example {
    pub features: Features,
    pub tier: Tier,
    pub category: Option<Category>,
    /// How much it counts against the others.
    pub weight: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 30,
            learning_rate: 0.5,
            l2: 1e-4,
            seed: 14,
        }
    }
}

/// Per-bucket additions to a model's raw logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjustment {
    /// The version of the model it was fitted against.
    pub model_version: u32,
    /// How many of the tenant's examples it learnt from.
    pub examples: u32,
    /// Sorted, distinct.
    buckets: Vec<u32>,
    rows: Vec<[f32; OUTPUTS]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

fn softmax_into(logits: &[f32], temperature: f32, out: &mut [f32]) {
    let t = temperature.max(1e-3);
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v / t));
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(logits) {
        *o = (v / t - max).exp();
        sum += *o;
    }
    if sum > 0.0 {
        for o in out.iter_mut() {
            *o /= sum;
        }
    }
}

/// A seeded shuffle (xorshift), so the same examples give the same bytes.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let j = (*state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// An example as the fit holds it: with the global model's logits and, for
/// a background one, the global model's probabilities (its target).
type Fitted<'a> = (&'a Example, [f32; OUTPUTS], Option<[f32; OUTPUTS]>);

impl Adjustment {
    /// Fits the adjustment of `model` that best explains the tenant's
    /// examples together with the `background` ones.
    pub fn fit(model: &Model, tenant: &[Example], background: &[Example], o: FitOptions) -> Self {
        let [t_tier, t_cat] = model.temperatures();
        // Each example with the global model's logits; a background one
        // also with the global model's own probabilities, which are its
        // target: it starts with no gradient and only resists being moved
        // (its argmax as a hard label would sharpen the model towards the
        // commonest tier on the commonest words).
        let all: Vec<Fitted<'_>> = tenant
            .iter()
            .map(|e| (e, model.raw_logits(&e.features), None))
            .chain(background.iter().map(|e| {
                let global = model.raw_logits(&e.features);
                let mut p = [0.0f32; OUTPUTS];
                let (pt, pc) = p.split_at_mut(N_TIERS);
                let (lt, lc) = global.split_at(N_TIERS);
                softmax_into(lt, t_tier, pt);
                softmax_into(lc, t_cat, pc);
                (e, global, Some(p))
            }))
            .collect();
        // Features common in the background (function words, the
        // commonest character trigrams) are everybody's: they get no row,
        // or a tenant's examples would move every request that has them.
        let mut df: HashMap<u32, usize> = HashMap::new();
        for e in background {
            let mut seen: Vec<u32> = e.features.buckets.clone();
            seen.sort_unstable();
            seen.dedup();
            for b in seen {
                *df.entry(b).or_default() += 1;
            }
        }
        let max_df = (background.len() * COMMON_PERCENT / 100).max(1);
        // Only the tenant's own features get rows: the background holds
        // them in place, it does not earn rows of its own.
        let own: std::collections::HashSet<u32> = tenant
            .iter()
            .flat_map(|e| e.features.buckets.iter().copied())
            .collect();
        let adjustable = |b: &u32| own.contains(b) && df.get(b).is_none_or(|&n| n <= max_df);
        let mut rows: HashMap<u32, [f32; OUTPUTS]> = HashMap::new();
        let mut order: Vec<usize> = (0..all.len()).collect();
        let mut state = o.seed.max(1);
        for epoch in 0..o.epochs {
            shuffle(&mut order, &mut state);
            let lr = o.learning_rate / (1.0 + 0.1 * epoch as f32);
            for &i in &order {
                let Some((e, global, held)) = all.get(i) else {
                    continue;
                };
                let mut logits = *global;
                let scale = e.features.scale;
                for b in &e.features.buckets {
                    if let Some(row) = rows.get(b) {
                        for (l, w) in logits.iter_mut().zip(row) {
                            *l += scale * w;
                        }
                    }
                }
                let mut grad = [0.0f32; OUTPUTS];
                let (tier_logits, cat_logits) = logits.split_at(N_TIERS);
                let (tier_grad, cat_grad) = grad.split_at_mut(N_TIERS);
                softmax_into(tier_logits, t_tier, tier_grad);
                softmax_into(cat_logits, t_cat, cat_grad);
                match held {
                    // Cross-entropy against the global model's probabilities.
                    Some(p) => {
                        for (g, t) in grad.iter_mut().zip(p) {
                            *g -= t;
                        }
                    }
                    // Against the example's labels; no category label: the
                    // category head is not moved by it.
                    None => {
                        if let Some(g) = tier_grad.get_mut(e.tier.index()) {
                            *g -= 1.0;
                        }
                        match e.category {
                            Some(c) => {
                                if let Some(g) = cat_grad.get_mut(c.index()) {
                                    *g -= 1.0;
                                }
                            }
                            None => cat_grad.iter_mut().for_each(|g| *g = 0.0),
                        }
                    }
                }
                let (tier_grad, cat_grad) = grad.split_at_mut(N_TIERS);
                for g in tier_grad.iter_mut() {
                    *g *= e.weight / t_tier.max(1e-3);
                }
                for g in cat_grad.iter_mut() {
                    *g *= e.weight / t_cat.max(1e-3);
                }
                for &b in e.features.buckets.iter().filter(|b| adjustable(b)) {
                    let row = rows.entry(b).or_insert([0.0; OUTPUTS]);
                    for (w, g) in row.iter_mut().zip(grad) {
                        *w -= lr * (scale * g + o.l2 * *w);
                    }
                }
            }
        }
        // The largest rows, at most MAX_ROWS; the ones that barely moved go.
        let norm = |r: &[f32; OUTPUTS]| r.iter().map(|w| w * w).sum::<f32>();
        let mut kept: Vec<(u32, [f32; OUTPUTS])> =
            rows.into_iter().filter(|(_, r)| norm(r) > 1e-8).collect();
        kept.sort_by(|a, b| norm(&b.1).total_cmp(&norm(&a.1)).then(a.0.cmp(&b.0)));
        kept.truncate(MAX_ROWS);
        kept.sort_by_key(|(b, _)| *b);
        let (buckets, rows) = kept.into_iter().unzip();
        Adjustment {
            model_version: model.version,
            examples: u32::try_from(tenant.len()).unwrap_or(u32::MAX),
            buckets,
            rows,
        }
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Adds this adjustment's rows for `f`'s buckets to `logits`.
    pub fn apply(&self, f: &Features, logits: &mut [f32; OUTPUTS]) {
        for b in &f.buckets {
            if let Ok(i) = self.buckets.binary_search(b)
                && let Some(row) = self.rows.get(i)
            {
                for (l, w) in logits.iter_mut().zip(row) {
                    *l += f.scale * w;
                }
            }
        }
    }

    /// `model`'s prediction for `f` with this adjustment; None when it was
    /// fitted against another version of the model.
    pub fn predict(&self, model: &Model, f: &Features) -> Option<Prediction> {
        if model.version != self.model_version {
            return None;
        }
        let mut logits = model.raw_logits(f);
        self.apply(f, &mut logits);
        Some(model.predict_raw(&logits))
    }

    /// `"APR1" | u32 model version | u32 examples | u32 n | n × (u32 bucket
    /// | OUTPUTS × f32)`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.rows.len() * (4 + 4 * OUTPUTS));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.model_version.to_le_bytes());
        out.extend_from_slice(&self.examples.to_le_bytes());
        out.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        for (b, row) in self.buckets.iter().zip(&self.rows) {
            out.extend_from_slice(&b.to_le_bytes());
            for w in row {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Refuses anything malformed: a wrong magic, a length that does not
    /// match, buckets out of order, weights that are not finite.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Cursor(bytes);
        if r.take(4)? != MAGIC {
            return Err(DecodeError("not a router adjustment"));
        }
        let model_version = r.u32()?;
        let examples = r.u32()?;
        let n = r.u32()? as usize;
        if n > MAX_ROWS {
            return Err(DecodeError("more rows than an adjustment keeps"));
        }
        let mut buckets = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let b = r.u32()?;
            if buckets.last().is_some_and(|&last| last >= b) {
                return Err(DecodeError("buckets out of order"));
            }
            let mut row = [0.0f32; OUTPUTS];
            for w in row.iter_mut() {
                *w = f32::from_bits(r.u32()?);
                if !w.is_finite() {
                    return Err(DecodeError("a weight that is not finite"));
                }
            }
            buckets.push(b);
            rows.push(row);
        }
        if !r.0.is_empty() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(Adjustment {
            model_version,
            examples,
            buckets,
            rows,
        })
    }
}

const FEATURES_MAGIC: &[u8; 4] = b"APF1";
/// The most sparse features one request gives (its windows are bounded);
/// more in a stored blob is corruption.
const MAX_FEATURE_BUCKETS: usize = 1 << 16;

/// One request's features as a usage record or a stored example carries
/// them, with the version of the model that read them: `"APF1" | u32
/// model version | f32 scale | DENSE × f32 | u32 n | n × u32 bucket`.
pub fn encode_features(model_version: u32, f: &Features) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * (DENSE + f.buckets.len()));
    out.extend_from_slice(FEATURES_MAGIC);
    out.extend_from_slice(&model_version.to_le_bytes());
    out.extend_from_slice(&f.scale.to_le_bytes());
    for d in &f.dense {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&(f.buckets.len() as u32).to_le_bytes());
    for b in &f.buckets {
        out.extend_from_slice(&b.to_le_bytes());
    }
    out
}

/// The model version and features of [`encode_features`]' bytes; anything
/// malformed is refused.
pub fn decode_features(bytes: &[u8]) -> Result<(u32, Features), DecodeError> {
    let mut r = Cursor(bytes);
    if r.take(4)? != FEATURES_MAGIC {
        return Err(DecodeError("not request features"));
    }
    let version = r.u32()?;
    let finite = |v: f32| {
        v.is_finite()
            .then_some(v)
            .ok_or(DecodeError("a value that is not finite"))
    };
    let scale = finite(f32::from_bits(r.u32()?))?;
    let mut dense = [0.0f32; DENSE];
    for d in dense.iter_mut() {
        *d = finite(f32::from_bits(r.u32()?))?;
    }
    let n = r.u32()? as usize;
    if n > MAX_FEATURE_BUCKETS {
        return Err(DecodeError("more features than a request gives"));
    }
    let mut buckets = Vec::with_capacity(n);
    for _ in 0..n {
        buckets.push(r.u32()?);
    }
    if !r.0.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok((
        version,
        Features {
            buckets,
            dense,
            scale,
        },
    ))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }
}

/// What the tests here and the request flow's share: a tenant whose short
/// contract-drafting requests are frontier work.
#[cfg(test)]
pub(crate) mod fixtures {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::classify;
    use crate::request::ChatRequest;
    use crate::score::{Scorer, ScoringConfig};

    pub fn example(model: &Model, scorer: &Scorer, text: &str, tier: Tier, weight: f32) -> Example {
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string();
        let req = ChatRequest::parse(body.as_bytes()).unwrap();
        let score = scorer.score(&req);
        Example {
            features: classify::features(&model.config, &req, &score),
            tier,
            category: None,
            weight,
        }
    }

    pub fn tier_of(model: &Model, adj: Option<&Adjustment>, f: &Features) -> Tier {
        match adj {
            Some(a) => a.predict(model, f).unwrap().tier,
            None => model.predict_raw(&model.raw_logits(f)).tier,
        }
    }

    pub const UNSEEN: [&str; 3] = [
        "draft a warranty clause for a furniture maker",
        "draft a late-payment clause for a printer",
        "draft a data-protection clause for a payroll provider",
    ];

    pub const OTHERS: [&str; 20] = [
        "hi there",
        "what is the capital of France?",
        "translate 'good morning' to Spanish",
        "write a haiku about autumn",
        "summarise this paragraph in one line: the meeting moved to Tuesday",
        "how do I reverse a list in Python?",
        "what's 17 times 23?",
        "thanks, that helped",
        "give me three names for a bakery",
        "what time zone is Tokyo in?",
        "prove that the square root of 2 is irrational",
        "explain what an API is to a child",
        "list five fruits",
        "fix the typo: teh cat",
        "what does HTTP stand for?",
        "write a short email declining a meeting",
        "convert 5 km to miles",
        "who wrote Hamlet?",
        "design a database schema for a library with loans and fines",
        "draft a tweet about our product launch",
    ];

    /// The tenant's 50 examples (frontier) and the background (as the
    /// model reads them).
    pub fn drafting(model: &Model) -> (Vec<Example>, Vec<Example>) {
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        let parties = [
            "a freelance designer",
            "our new CTO",
            "a cleaning company",
            "a summer intern",
            "a software vendor",
            "a landlord",
            "a marketing agency",
            "a consultant",
            "a delivery partner",
            "a photographer",
        ];
        let clauses = [
            "a confidentiality clause",
            "an NDA clause",
            "a termination clause",
            "an indemnity clause",
            "a non-solicitation clause",
        ];
        let tenant: Vec<Example> = parties
            .iter()
            .flat_map(|p| clauses.iter().map(move |c| (p, c)))
            .map(|(p, c)| {
                example(
                    model,
                    &scorer,
                    &format!("draft {c} for {p}"),
                    Tier::Frontier,
                    4.0,
                )
            })
            .collect();
        let background: Vec<Example> = OTHERS
            .iter()
            .map(|t| {
                let mut e = example(model, &scorer, t, Tier::Cheap, 1.0);
                e.tier = tier_of(model, None, &e.features);
                e
            })
            .collect();
        (tenant, background)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::fixtures::*;
    use super::*;
    use crate::classify::bundled;
    use crate::score::{Scorer, ScoringConfig};

    /// Fifty short contract-drafting requests that this tenant calls
    /// frontier work move new, unseen requests of that kind to the frontier
    /// tier — and leave requests of other kinds where the model put them.
    #[test]
    fn a_tenants_examples_move_their_pattern_and_nothing_else() {
        let model = bundled().unwrap();
        let scorer = Scorer::compile(&ScoringConfig::default()).unwrap();
        let (tenant, background) = drafting(&model);
        assert_eq!(tenant.len(), 50);
        let unseen: Vec<Example> = UNSEEN
            .iter()
            .map(|t| example(&model, &scorer, t, Tier::Frontier, 1.0))
            .collect();
        let before: Vec<Tier> = unseen
            .iter()
            .map(|e| tier_of(&model, None, &e.features))
            .collect();
        assert!(
            before.iter().any(|t| *t != Tier::Frontier),
            "the global model already sends these to the frontier: {before:?}"
        );

        let adj = Adjustment::fit(&model, &tenant, &background, FitOptions::default());
        // Rows only for the tenant's own features: a small entry.
        let own: std::collections::HashSet<u32> = tenant
            .iter()
            .flat_map(|e| e.features.buckets.iter().copied())
            .collect();
        assert!(
            !adj.is_empty() && adj.len() <= own.len(),
            "{} rows",
            adj.len()
        );
        assert!(
            adj.encode().len() < 32 * 1024,
            "{} bytes",
            adj.encode().len()
        );
        for e in &unseen {
            assert_eq!(tier_of(&model, Some(&adj), &e.features), Tier::Frontier);
        }
        // Requests of other kinds keep their probabilities (the pattern's
        // move by 0.6 to 0.9 with round 22's model) and so their tier —
        // except where the global model stands at a tie, which any push
        // decides ("design a database schema for a library with loans and
        // fines": 0.35 / 0.31 / 0.34 with round 22's model, 0.30 / 0.28 /
        // 0.42 after; it shares "for a" with the pattern).
        for e in &background {
            let before = model.predict_raw(&model.raw_logits(&e.features)).tier_probs;
            let after = adj.predict(&model, &e.features).unwrap().tier_probs;
            let moved = before
                .iter()
                .zip(&after)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                moved <= 0.1,
                "a request of another kind moved by {moved:.3}"
            );
            let mut sorted = before;
            sorted.sort_by(f64::total_cmp);
            if sorted[2] - sorted[1] >= 0.1 {
                assert_eq!(
                    tier_of(&model, Some(&adj), &e.features),
                    e.tier,
                    "a request of another kind changed tier"
                );
            }
        }
        // It travels as bytes and comes back the same.
        let bytes = adj.encode();
        assert_eq!(Adjustment::decode(&bytes), Ok(adj.clone()));
        for n in 0..bytes.len() {
            assert!(Adjustment::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        // Only for the model it was fitted against.
        let other = Adjustment {
            model_version: adj.model_version ^ 1,
            ..adj
        };
        assert!(other.predict(&model, &unseen[0].features).is_none());
    }
}
