//! Per-tenant statistics over a time window: sums, success rate and
//! nearest-rank latency / TTFT percentiles by provider and model. The `db`
//! module streams the window's rows (from a covering index) into a
//! [`Window`]; everything here is plain arithmetic, tested on known sets.
//!
//! Answers served from the filter's cache (filter/README.md, "Cache") are
//! requests the tenant made and are counted as such (and as `cache_hits`),
//! but no provider was called: they stay out of the latency and TTFT
//! percentiles and out of the models' success rates.

use aipipe_core::classify::{FRONTIER_FROM, MID_FROM};
use hdrhistogram::Histogram;
use serde::Serialize;
use utoipa::ToSchema;

/// One stored usage record, as the stats query reads it (borrowed from the row).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_nusd: u64,
    pub usage_parsed: bool,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    /// Answered from the filter's cache.
    pub cache_hit: bool,
    pub complexity: Option<f64>,
}

impl<'a> Row<'a> {
    pub fn of(r: &'a aipipe_core::usage::UsageRecord) -> Self {
        Self {
            provider: &r.provider,
            model: &r.model,
            status: r.status,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cost_nusd: r.cost_nusd,
            usage_parsed: r.usage_parsed,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            cache_hit: r.cache_hit,
            complexity: r.complexity,
        }
    }
}

/// A request counts as an error when the client got status >= 400, or none
/// at all (0: the stream broke before a status).
pub fn is_error(status: u16) -> bool {
    status >= 400 || status == 0
}

/// Summed counts of a set of usage records: the one place a record's numbers
/// are added up, for stats queries and for the running totals kept at ingest.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_nusd: u64,
    pub unparsed: u64,
    /// Upstream attempts on this model that failed before another model
    /// answered (failover); not requests, and never in tokens or cost.
    pub failed_attempts: u64,
    /// Requests answered from the filter's cache (part of `requests`).
    pub cache_hits: u64,
}

impl Sums {
    /// Share of this model's upstream attempts that succeeded: (requests −
    /// cache hits − errors) / (requests − cache hits + failed attempts); None
    /// without any. A cache hit called no provider, so it is not an attempt.
    pub fn success_rate(&self) -> Option<f64> {
        let upstream = self.requests.saturating_sub(self.cache_hits);
        let attempts = upstream.saturating_add(self.failed_attempts);
        (attempts > 0).then(|| upstream.saturating_sub(self.errors) as f64 / attempts as f64)
    }

    /// Share of client requests that succeeded (a failover that ended in a
    /// success is one success, and so is a cache hit: the client got its
    /// answer): (requests − errors) / requests.
    pub fn client_success_rate(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| self.requests.saturating_sub(self.errors) as f64 / self.requests as f64)
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_nusd as f64 / 1e9
    }

    pub fn add_record(&mut self, r: &aipipe_core::usage::UsageRecord) {
        self.add_row(&Row::of(r));
    }

    /// Adds another set's sums (saturating, like every running total).
    pub fn merge(&mut self, o: &Sums) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(o.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(o.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(o.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.cost_nusd = self.cost_nusd.saturating_add(o.cost_nusd);
        self.unparsed = self.unparsed.saturating_add(o.unparsed);
        self.failed_attempts = self.failed_attempts.saturating_add(o.failed_attempts);
        self.cache_hits = self.cache_hits.saturating_add(o.cache_hits);
    }

    pub fn add_row(&mut self, r: &Row<'_>) {
        self.add_counts(
            r.status,
            r.prompt_tokens,
            r.completion_tokens,
            r.cached_tokens,
            r.cache_write_tokens,
            r.cost_nusd,
            r.usage_parsed,
            r.cache_hit,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_counts(
        &mut self,
        status: u16,
        prompt: u64,
        completion: u64,
        cached: u64,
        cache_write: u64,
        cost_nusd: u64,
        parsed: bool,
        cache_hit: bool,
    ) {
        self.requests += 1;
        self.cache_hits += u64::from(cache_hit);
        self.errors += u64::from(is_error(status));
        self.prompt_tokens = self.prompt_tokens.saturating_add(prompt);
        self.completion_tokens = self.completion_tokens.saturating_add(completion);
        self.cached_tokens = self.cached_tokens.saturating_add(cached);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(cache_write);
        self.cost_nusd = self.cost_nusd.saturating_add(cost_nusd);
        self.unparsed += u64::from(!parsed);
    }
}

/// A mergeable latency (or TTFT) histogram: HdrHistogram over whole
/// microseconds from 1 µs to one hour (longer values count as one hour),
/// two significant digits — a percentile read from it is at most 0.8 %
/// above the true one. Kept per minute, hour and day in the usage rollups
/// (db/rollups.rs) as its non-empty buckets ([`Sketch::to_bytes`], a few
/// hundred bytes), so a window's percentiles are a merge of a few hundred
/// of them.
#[derive(Debug, Default, Clone)]
pub struct Sketch(Option<Box<Histogram<u64>>>);

const SKETCH_MAX_US: u64 = 3_600_000_000;
/// The first byte of a stored sketch: its format's version.
const SKETCH_FORMAT: u8 = 1;

fn put_leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads one LEB128 number off the front of `bytes`; None when it is cut
/// short or longer than a u64.
fn leb128(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Sketch {
    fn histogram(&mut self) -> Option<&mut Histogram<u64>> {
        if self.0.is_none() {
            // Fixed, valid bounds: `new_with_bounds` cannot fail on them.
            self.0 = Histogram::new_with_bounds(1, SKETCH_MAX_US, 2)
                .ok()
                .map(Box::new);
        }
        self.0.as_deref_mut()
    }

    pub fn record_ms(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let us = (ms * 1000.0).round().clamp(0.0, SKETCH_MAX_US as f64) as u64;
        if let Some(h) = self.histogram() {
            h.saturating_record(us);
        }
    }

    /// Adds a stored sketch; a blob that does not decode is skipped (and
    /// logged): stats lose that bucket's percentiles, never the query.
    /// Decoded straight into this sketch's buckets: no histogram is built
    /// per blob (allocating one per stored cell was most of a long
    /// window's cost).
    pub fn merge_bytes(&mut self, bytes: &[u8]) {
        let Some((&SKETCH_FORMAT, mut rest)) = bytes.split_first() else {
            if !bytes.is_empty() {
                tracing::warn!("a stored latency sketch has an unknown format");
            }
            return;
        };
        let Some(h) = self.histogram() else {
            return;
        };
        let mut value = 0u64;
        while !rest.is_empty() {
            let (Some(delta), Some(count)) = (leb128(&mut rest), leb128(&mut rest)) else {
                tracing::warn!("a stored latency sketch is truncated");
                return;
            };
            value = value.saturating_add(delta);
            if h.record_n(value.min(SKETCH_MAX_US), count).is_err() {
                tracing::warn!("a stored latency sketch holds a value out of range");
                return;
            }
        }
    }

    /// The stored form (empty when nothing was recorded): a format byte,
    /// then per non-empty bucket its value (the bucket's highest, as a
    /// delta from the previous one) and its count, both LEB128 — a few
    /// hundred bytes for a busy hour.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Some(h) = self.0.as_deref().filter(|h| !h.is_empty()) else {
            return Vec::new();
        };
        let mut out = vec![SKETCH_FORMAT];
        let mut last = 0u64;
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            put_leb128(&mut out, value - last.min(value));
            put_leb128(&mut out, v.count_at_value());
            last = value;
        }
        out
    }

    pub fn count(&self) -> u64 {
        self.0.as_deref().map_or(0, Histogram::len)
    }

    /// The value at quantile `q` (0–1) in ms, rounded to the µs; None when empty.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let h = self.0.as_deref().filter(|h| !h.is_empty())?;
        Some(h.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// Latency (or TTFT) values of new records on their way into a stored
/// sketch: kept as values until [`Pending::merge_into`] adds them to the
/// stored buckets, so ingest never builds a histogram's whole array (two
/// per rollup cell per batch halved ingest's throughput).
#[derive(Debug, Default, Clone)]
pub struct Pending(Vec<u64>);

thread_local! {
    /// A histogram with the sketches' bounds, for its bucket arithmetic only.
    static BUCKETS: Option<Histogram<u64>> = Histogram::new_with_bounds(1, SKETCH_MAX_US, 2).ok();
}

impl Pending {
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_finite() {
            self.0
                .push((ms * 1000.0).round().clamp(0.0, SKETCH_MAX_US as f64) as u64);
        }
    }

    /// `stored` (a sketch in its stored form; empty for none) with these
    /// values added, in the stored form: exactly what recording them into
    /// the stored sketch and writing it back would give. A stored sketch
    /// that does not decode is replaced (and logged).
    pub fn merge_into(&mut self, stored: &[u8]) -> Vec<u8> {
        BUCKETS.with(|b| {
            let Some(h) = b.as_ref() else {
                return stored.to_vec();
            };
            for v in &mut self.0 {
                *v = h.highest_equivalent(*v);
            }
            self.0.sort_unstable();
            let mut old = Vec::new();
            if let Some((&SKETCH_FORMAT, mut rest)) = stored.split_first() {
                let mut value = 0u64;
                while !rest.is_empty() {
                    let (Some(delta), Some(count)) = (leb128(&mut rest), leb128(&mut rest)) else {
                        tracing::warn!("a stored latency sketch is truncated; replaced");
                        old.clear();
                        break;
                    };
                    value = value.saturating_add(delta);
                    old.push((h.highest_equivalent(value.min(SKETCH_MAX_US)), count));
                }
            } else if !stored.is_empty() {
                tracing::warn!("a stored latency sketch has an unknown format; replaced");
            }
            if self.0.is_empty() && old.is_empty() {
                return Vec::new();
            }
            let mut out = vec![SKETCH_FORMAT];
            let mut last = 0u64;
            let mut put = |value: u64, count: u64| {
                put_leb128(&mut out, value - last.min(value));
                put_leb128(&mut out, count);
                last = value;
            };
            let (mut i, mut j) = (0, 0);
            let new = &self.0;
            loop {
                // The next bucket of either side, with the counts both have there.
                let next_new = new.get(i).copied();
                let next_old = old.get(j).map(|&(v, _)| v);
                let value = match (next_new, next_old) {
                    (None, None) => break,
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                };
                let mut count = 0u64;
                while new.get(i) == Some(&value) {
                    count += 1;
                    i += 1;
                }
                while let Some(&(_, c)) = old.get(j).filter(|(v, _)| *v == value) {
                    count = count.saturating_add(c);
                    j += 1;
                }
                put(value, count);
            }
            self.0.clear();
            out
        })
    }
}

/// Requests by the complexity band they were routed in (the classifier's
/// tiers, filter/README.md "Router model": cheap below 0.55, mid below
/// 0.70, frontier from 0.70); `unscored`: no score (a named model, a
/// pass-through).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bands {
    pub cheap: u64,
    pub mid: u64,
    pub frontier: u64,
    pub unscored: u64,
}

impl Bands {
    pub fn add(&mut self, complexity: Option<f64>) {
        match complexity {
            None => self.unscored += 1,
            Some(c) if c >= FRONTIER_FROM => self.frontier += 1,
            Some(c) if c >= MID_FROM => self.mid += 1,
            Some(_) => self.cheap += 1,
        }
    }

    pub fn merge(&mut self, o: &Bands) {
        self.cheap = self.cheap.saturating_add(o.cheap);
        self.mid = self.mid.saturating_add(o.mid);
        self.frontier = self.frontier.saturating_add(o.frontier);
        self.unscored = self.unscored.saturating_add(o.unscored);
    }
}

/// Everything a window keeps about one provider/model.
#[derive(Debug, Default, Clone)]
struct Cell {
    sums: Sums,
    bands: Bands,
    latency: Sketch,
    ttft: Sketch,
}

impl Cell {
    fn add(&mut self, r: &Row<'_>) {
        self.sums.add_row(r);
        self.bands.add(r.complexity);
        // A cache hit's latency is the filter's, not a provider's.
        if !r.cache_hit {
            self.latency.record_ms(r.latency_ms);
            if let Some(t) = r.ttft_ms {
                self.ttft.record_ms(t);
            }
        }
    }
}

#[derive(Debug)]
struct Group {
    provider: String,
    model: String,
    cell: Cell,
}

/// The accumulated window. Models per tenant are few, so a short vector with a
/// last-hit shortcut beats hashing two strings per row.
#[derive(Debug, Default)]
pub struct Window {
    total: Sums,
    bands: Bands,
    groups: Vec<Group>,
    last: usize,
}

impl Window {
    fn group(&mut self, provider: &str, model: &str) -> Option<&mut Cell> {
        let hit = |g: &Group| g.model == model && g.provider == provider;
        let i = if self.groups.get(self.last).is_some_and(hit) {
            self.last
        } else if let Some(i) = self.groups.iter().position(hit) {
            i
        } else {
            self.groups.push(Group {
                provider: provider.to_owned(),
                model: model.to_owned(),
                cell: Cell::default(),
            });
            self.groups.len() - 1
        };
        self.last = i;
        self.groups.get_mut(i).map(|g| &mut g.cell)
    }

    /// `n` failed attempts on one model in the window.
    pub fn add_failed_attempts(&mut self, provider: &str, model: &str, n: u64) {
        self.total.failed_attempts = self.total.failed_attempts.saturating_add(n);
        if let Some(c) = self.group(provider, model) {
            c.sums.failed_attempts = c.sums.failed_attempts.saturating_add(n);
        }
    }

    pub fn add(&mut self, r: Row<'_>) {
        self.total.add_row(&r);
        self.bands.add(r.complexity);
        if let Some(c) = self.group(r.provider, r.model) {
            c.add(&r);
        }
    }

    /// A stored rollup cell of one provider/model: its sums and bands, and
    /// its latency and TTFT sketches as stored.
    pub fn add_stored(
        &mut self,
        provider: &str,
        model: &str,
        sums: &Sums,
        bands: &Bands,
        [latency, ttft]: [&[u8]; 2],
    ) {
        self.total.merge(sums);
        self.bands.merge(bands);
        if let Some(c) = self.group(provider, model) {
            c.sums.merge(sums);
            c.bands.merge(bands);
            c.latency.merge_bytes(latency);
            c.ttft.merge_bytes(ttft);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total.requests == 0 && self.total.failed_attempts == 0
    }

    /// Per provider/model sums (for the saving estimate).
    pub fn models(&self) -> impl Iterator<Item = (&str, &str, &Sums)> {
        self.groups
            .iter()
            .map(|g| (g.provider.as_str(), g.model.as_str(), &g.cell.sums))
    }

    pub fn report(self, tenant: &str, since: u64, until: u64) -> Report {
        let mut by_model: Vec<ModelStats> = self
            .groups
            .into_iter()
            .map(|g| ModelStats {
                numbers: Numbers::from(&g.cell.sums),
                bands: g.cell.bands,
                latency_ms: Percentiles::of(&g.cell.latency),
                ttft_ms: Percentiles::of(&g.cell.ttft),
                provider: g.provider,
                model: g.model,
            })
            .collect();
        by_model.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        Report {
            tenant: tenant.to_owned(),
            since,
            until,
            totals: Totals {
                numbers: Numbers {
                    success_rate: self.total.client_success_rate(),
                    ..Numbers::from(&self.total)
                },
                unparsed: self.total.unparsed,
                bands: self.bands,
            },
            by_model,
            saving: None,
        }
    }
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Numbers {
    pub requests: u64,
    pub errors: u64,
    /// Requests answered from the filter's cache (part of `requests`; no
    /// tokens, no cost, not in percentiles).
    pub cache_hits: u64,
    /// Upstream attempts that failed before another model answered.
    pub failed_attempts: u64,
    /// By model: (requests − cache_hits − errors) / (requests − cache_hits +
    /// failed_attempts), the provider's side. Totals: (requests − errors) /
    /// requests, what clients saw. Null without any.
    pub success_rate: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

impl From<&Sums> for Numbers {
    fn from(s: &Sums) -> Self {
        Self {
            requests: s.requests,
            errors: s.errors,
            cache_hits: s.cache_hits,
            failed_attempts: s.failed_attempts,
            success_rate: s.success_rate(),
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            cached_tokens: s.cached_tokens,
            cache_write_tokens: s.cache_write_tokens,
            cost_usd: s.cost_usd(),
        }
    }
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Totals {
    #[serde(flatten)]
    pub numbers: Numbers,
    /// Records whose usage could not be read (tokens and cost unknown).
    pub unparsed: u64,
    /// Requests by the complexity band they were routed in.
    pub bands: Bands,
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct ModelStats {
    pub provider: String,
    pub model: String,
    #[serde(flatten)]
    pub numbers: Numbers,
    pub bands: Bands,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(s: &Sketch) -> Self {
        Self {
            p50: s.quantile_ms(0.50),
            p95: s.quantile_ms(0.95),
            p99: s.quantile_ms(0.99),
        }
    }
}

/// What the window's traffic would have cost on the most expensive model
/// it was routed to, against what it cost: every model's tokens priced at
/// that model's prices (control-plane/README.md, "Stats").
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Saving {
    pub baseline_provider: String,
    pub baseline_model: String,
    pub baseline_cost_usd: f64,
    pub cost_usd: f64,
    pub saved_usd: f64,
}

/// The saving of a window against always using its most expensive model:
/// the baseline is the model, among those that answered in the window and
/// are still in the catalog, on which the window's tokens (all models'
/// prompt, cached and completion tokens) cost the most, at the prices in
/// force at `at_ms` (the window's end: a scheduled price change inside the
/// window is not split), long-context rates left out. An estimate: tokens are counted by each answering
/// model's tokenizer.
pub fn saving(
    window: &Window,
    catalog: &[aipipe_core::catalog::Model],
    at_ms: u64,
) -> Option<Saving> {
    use aipipe_core::protocol::Tokens;
    let mut tokens = Tokens::default();
    let mut cost_nusd = 0u64;
    for (_, _, s) in window.models() {
        tokens.prompt = tokens.prompt.saturating_add(s.prompt_tokens);
        tokens.completion = tokens.completion.saturating_add(s.completion_tokens);
        tokens.cached = tokens.cached.saturating_add(s.cached_tokens);
        tokens.cache_write = tokens.cache_write.saturating_add(s.cache_write_tokens);
        cost_nusd = cost_nusd.saturating_add(s.cost_nusd);
    }
    let (model, baseline) = window
        .models()
        .filter(|(_, _, s)| s.requests > s.cache_hits)
        .filter_map(|(p, m, _)| catalog.iter().find(|c| c.id == m && c.provider == p))
        .map(|m| {
            let priced = m.clone().folded_at(at_ms);
            // Its listed rates: long-context rates apply per request, and
            // the window's sums say nothing of any one request's size.
            let rates = priced.listed_prices();
            (m, aipipe_core::usage::cost_at(&rates, &tokens))
        })
        .max_by_key(|&(_, c)| c)?;
    (baseline > 0).then(|| Saving {
        baseline_provider: model.provider.clone(),
        baseline_model: model.id.clone(),
        baseline_cost_usd: baseline as f64 / 1e9,
        cost_usd: cost_nusd as f64 / 1e9,
        saved_usd: baseline.saturating_sub(cost_nusd) as f64 / 1e9,
    })
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
#[schema(as = Stats)]
pub struct Report {
    pub tenant: String,
    pub since: u64,
    pub until: u64,
    pub totals: Totals,
    pub by_model: Vec<ModelStats>,
    /// Against always using the most expensive model chosen; null without
    /// priced traffic.
    pub saving: Option<Saving>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, status: u16, latency: f64) -> Row<'_> {
        Row {
            provider: "openai",
            model,
            status,
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 1,
            cache_write_tokens: 2,
            cost_nusd: 1_500,
            usage_parsed: status == 200,
            latency_ms: latency,
            ttft_ms: (status == 200).then_some(latency / 2.0),
            cache_hit: false,
            complexity: Some(0.3),
        }
    }

    fn hit(model: &str, latency: f64) -> Row<'_> {
        Row {
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 0,
            cache_hit: true,
            ..row(model, 200, latency)
        }
    }

    /// Within the sketch's bound: at most 0.8 % above the true value, never below.
    fn near(got: Option<f64>, want: f64) -> bool {
        got.is_some_and(|g| g >= want - 1e-9 && g <= want * 1.008 + 0.001)
    }

    #[test]
    fn sketch_percentiles_are_nearest_rank_within_the_bound() {
        let mut s = Sketch::default();
        for v in 1..=100 {
            s.record_ms(f64::from(v));
        }
        let p = Percentiles::of(&s);
        assert!(near(p.p50, 50.0), "{p:?}");
        assert!(near(p.p95, 95.0), "{p:?}");
        assert!(near(p.p99, 99.0), "{p:?}");
        // Merged through the stored form, the same.
        let mut m = Sketch::default();
        m.merge_bytes(&s.to_bytes());
        assert_eq!(Percentiles::of(&m), p);
        assert_eq!(m.count(), 100);
        // Sub-millisecond and hour-long values keep their scale.
        let mut t = Sketch::default();
        t.record_ms(0.25);
        assert!(near(t.quantile_ms(0.5), 0.25), "{:?}", t.quantile_ms(0.5));
        t.record_ms(1e12);
        assert!(near(t.quantile_ms(1.0), 3_600_000.0));
        assert_eq!(Percentiles::of(&Sketch::default()).p50, None);
        // Garbage in storage is skipped, not a failure.
        let mut g = Sketch::default();
        g.merge_bytes(b"not a sketch");
        g.merge_bytes(&[SKETCH_FORMAT, 0x80]);
        g.merge_bytes(&[
            SKETCH_FORMAT,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            1,
        ]);
        assert_eq!(g.count(), 0);
        // New values merged into a stored sketch without a histogram: the
        // same bytes as through one.
        for split in [0u32, 1, 3, 5_000] {
            let (mut a, mut both) = (Sketch::default(), Sketch::default());
            let mut p = Pending::default();
            for i in 0..5_000u32 {
                let v = f64::from(i * 7919 % 1_000_003) / 3.0;
                if i < split {
                    a.record_ms(v)
                } else {
                    p.record_ms(v)
                }
                both.record_ms(v);
            }
            p.record_ms(1e13);
            both.record_ms(1e13);
            assert_eq!(
                p.merge_into(&a.to_bytes()),
                both.to_bytes(),
                "split {split}"
            );
        }
        assert!(Pending::default().merge_into(&[]).is_empty());
        // Every bucket survives the stored form: merging A's and B's bytes
        // is the histogram of A and B.
        let (mut a, mut b, mut both) = (Sketch::default(), Sketch::default(), Sketch::default());
        for i in 0..5_000u32 {
            let v = f64::from(i * i % 999_983) / 7.0;
            if i % 3 == 0 {
                a.record_ms(v)
            } else {
                b.record_ms(v)
            }
            both.record_ms(v);
        }
        let mut m = Sketch::default();
        m.merge_bytes(&a.to_bytes());
        m.merge_bytes(&b.to_bytes());
        assert_eq!(m.to_bytes(), both.to_bytes());
        assert_eq!(m.count(), 5_000);
    }

    #[test]
    fn bands_follow_the_classifier_tiers() {
        let mut b = Bands::default();
        for c in [
            Some(0.1),
            Some(0.549),
            Some(0.55),
            Some(0.69),
            Some(0.7),
            Some(1.0),
            None,
        ] {
            b.add(c);
        }
        assert_eq!(
            b,
            Bands {
                cheap: 2,
                mid: 2,
                frontier: 2,
                unscored: 1
            }
        );
    }

    #[test]
    fn window_sums_rates_and_groups() {
        let mut w = Window::default();
        for l in [10.0, 20.0, 30.0, 40.0] {
            w.add(row("a", 200, l));
        }
        w.add(row("a", 500, 1.0));
        w.add(row("b", 0, 7.0));
        let r = w.report("t", 1, 2);
        assert_eq!(r.totals.numbers.requests, 6);
        assert_eq!(r.totals.numbers.errors, 2);
        assert_eq!(r.totals.unparsed, 2);
        assert_eq!(r.totals.numbers.prompt_tokens, 60);
        assert!((r.totals.numbers.cost_usd - 9_000e-9).abs() < 1e-15);
        let a = &r.by_model[0];
        assert_eq!((a.model.as_str(), a.numbers.requests), ("a", 5));
        assert_eq!(a.numbers.success_rate, Some(0.8));
        assert!(near(a.latency_ms.p50, 20.0), "{:?}", a.latency_ms);
        assert!(near(a.latency_ms.p99, 40.0), "{:?}", a.latency_ms);
        assert!(near(a.ttft_ms.p50, 10.0), "{:?}", a.ttft_ms);
        assert_eq!(a.bands.cheap, 5);
        assert_eq!(r.totals.bands.cheap, 6);
        let b = &r.by_model[1];
        assert_eq!(b.numbers.success_rate, Some(0.0));
        assert_eq!(b.ttft_ms.p50, None);
        assert_eq!(r.totals.numbers.cache_write_tokens, 12);
    }

    /// The saving's baseline is priced at the prices in force at the
    /// instant asked for (the window's end): before a scheduled change, the
    /// model's own; from it, the change's.
    #[test]
    fn the_saving_prices_its_baseline_at_the_windows_end() {
        let mut w = Window::default();
        w.add(row("gpt-4o-mini", 200, 10.0));
        let mut mini = aipipe_core::catalog::default_models()
            .into_iter()
            .find(|m| m.id == "gpt-4o-mini")
            .unwrap();
        mini.price_changes = vec![aipipe_core::catalog::PriceChange {
            from: aipipe_core::catalog::Timestamp(1_000),
            input_per_mtok: 1.5,
            output_per_mtok: 6.0,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }];
        let catalog = [mini];
        // 10 prompt tokens (1 cached, 2 written), 5 completion.
        let before = saving(&w, &catalog, 999).unwrap();
        assert_eq!(
            (before.baseline_cost_usd * 1e9).round() as u64,
            7 * 150 + 75 + 2 * 150 + 5 * 600
        );
        let after = saving(&w, &catalog, 1_000).unwrap();
        assert_eq!(
            (after.baseline_cost_usd * 1e9).round() as u64,
            10 * 1_500 + 5 * 6_000
        );
        assert_eq!(after.cost_usd, before.cost_usd, "the records' own costs");
    }

    #[test]
    fn failed_attempts_count_against_their_model_not_the_clients() {
        let mut w = Window::default();
        for l in [10.0, 20.0, 30.0] {
            w.add(row("a", 200, l));
        }
        w.add_failed_attempts("openai", "b", 2);
        w.add_failed_attempts("openai", "a", 1);
        let r = w.report("t", 1, 2);
        assert_eq!(r.totals.numbers.failed_attempts, 3);
        assert_eq!(
            r.totals.numbers.success_rate,
            Some(1.0),
            "clients saw 3 of 3"
        );
        let a = &r.by_model[0];
        assert_eq!(a.numbers.failed_attempts, 1);
        assert_eq!(a.numbers.success_rate, Some(0.75));
        let b = &r.by_model[1];
        assert_eq!((b.numbers.requests, b.numbers.failed_attempts), (0, 2));
        assert_eq!(b.numbers.success_rate, Some(0.0));
        assert_eq!(b.latency_ms.p50, None);
    }

    #[test]
    fn cache_hits_are_requests_but_not_provider_latency_or_health() {
        let mut w = Window::default();
        for l in [10.0, 20.0, 30.0] {
            w.add(row("a", 200, l));
        }
        w.add(row("a", 500, 40.0));
        w.add(hit("a", 0.1));
        w.add(hit("a", 0.2));
        w.add(hit("c", 0.3));
        let r = w.report("t", 1, 2);
        assert_eq!(r.totals.numbers.requests, 7);
        assert_eq!(r.totals.numbers.cache_hits, 3);
        assert_eq!(r.totals.numbers.errors, 1);
        assert!((r.totals.numbers.cost_usd - 4.0 * 1_500e-9).abs() < 1e-15);
        assert_eq!(r.totals.numbers.prompt_tokens, 40);
        // Clients got 6 answers of 7.
        assert_eq!(r.totals.numbers.success_rate, Some(6.0 / 7.0));
        let a = &r.by_model[0];
        assert_eq!((a.numbers.requests, a.numbers.cache_hits), (6, 2));
        assert_eq!(a.numbers.success_rate, Some(0.75), "3 of 4 upstream");
        assert!(near(a.latency_ms.p50, 20.0), "{:?}", a.latency_ms);
        assert!(near(a.latency_ms.p99, 40.0), "{:?}", a.latency_ms);
        assert!(near(a.ttft_ms.p50, 10.0), "{:?}", a.ttft_ms);
        let c = &r.by_model[1];
        assert_eq!((c.numbers.requests, c.numbers.cache_hits), (1, 1));
        assert_eq!(c.numbers.success_rate, None, "no upstream attempt");
        assert_eq!((c.latency_ms.p50, c.ttft_ms.p50), (None, None));
    }
}
