//! Per-tenant statistics over a time window: sums, success rate and
//! nearest-rank latency / TTFT percentiles by provider and model. The `db`
//! module streams the window's rows (from a covering index) into a
//! [`Window`]; everything here is plain arithmetic, tested on known sets.
//!
//! Answers served from the filter's cache (filter/README.md, "Cache") are
//! requests the tenant made and are counted as such (and as `cache_hits`),
//! but no provider was called: they stay out of the latency and TTFT
//! percentiles and out of the models' success rates.

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

    fn add(&mut self, r: &Row<'_>) {
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

#[derive(Debug)]
struct Group {
    provider: String,
    model: String,
    sums: Sums,
    latency: Vec<f64>,
    ttft: Vec<f64>,
}

/// The accumulated window. Models per tenant are few, so a short vector with a
/// last-hit shortcut beats hashing two strings per row.
#[derive(Debug, Default)]
pub struct Window {
    total: Sums,
    groups: Vec<Group>,
    last: usize,
}

impl Window {
    fn group(&mut self, provider: &str, model: &str) -> usize {
        let hit = |g: &Group| g.model == model && g.provider == provider;
        let i = if self.groups.get(self.last).is_some_and(hit) {
            self.last
        } else if let Some(i) = self.groups.iter().position(hit) {
            i
        } else {
            self.groups.push(Group {
                provider: provider.to_owned(),
                model: model.to_owned(),
                sums: Sums::default(),
                latency: Vec::new(),
                ttft: Vec::new(),
            });
            self.groups.len() - 1
        };
        self.last = i;
        i
    }

    /// `n` failed attempts on one model in the window.
    pub fn add_failed_attempts(&mut self, provider: &str, model: &str, n: u64) {
        self.total.failed_attempts = self.total.failed_attempts.saturating_add(n);
        let i = self.group(provider, model);
        if let Some(g) = self.groups.get_mut(i) {
            g.sums.failed_attempts = g.sums.failed_attempts.saturating_add(n);
        }
    }

    pub fn add(&mut self, r: Row<'_>) {
        self.total.add(&r);
        let i = self.group(r.provider, r.model);
        if let Some(g) = self.groups.get_mut(i) {
            g.sums.add(&r);
            // A cache hit's latency is the filter's, not a provider's.
            if !r.cache_hit {
                g.latency.push(r.latency_ms);
                if let Some(t) = r.ttft_ms {
                    g.ttft.push(t);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total.requests == 0
    }

    pub fn report(self, tenant: &str, since: u64, until: u64) -> Report {
        let mut by_model: Vec<ModelStats> = self
            .groups
            .into_iter()
            .map(|mut g| {
                let numbers = Numbers::from(&g.sums);
                ModelStats {
                    latency_ms: Percentiles::of(&mut g.latency),
                    ttft_ms: Percentiles::of(&mut g.ttft),
                    provider: g.provider,
                    model: g.model,
                    numbers,
                }
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
            },
            by_model,
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
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct ModelStats {
    pub provider: String,
    pub model: String,
    #[serde(flatten)]
    pub numbers: Numbers,
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
    fn of(values: &mut [f64]) -> Self {
        values.sort_unstable_by(f64::total_cmp);
        Self {
            p50: nearest_rank(values, 50.0),
            p95: nearest_rank(values, 95.0),
            p99: nearest_rank(values, 99.0),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value such that at
/// least p % of the values are <= it (rank ⌈p/100 · n⌉).
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
#[schema(as = Stats)]
pub struct Report {
    pub tenant: String,
    pub since: u64,
    pub until: u64,
    pub totals: Totals,
    pub by_model: Vec<ModelStats>,
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

    #[test]
    fn nearest_rank_matches_the_definition() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(50.0));
        assert_eq!(nearest_rank(&v, 95.0), Some(95.0));
        assert_eq!(nearest_rank(&v, 99.0), Some(99.0));
        assert_eq!(nearest_rank(&[3.0], 99.0), Some(3.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0, 5.0], 50.0), Some(3.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
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
        assert_eq!(a.latency_ms.p50, Some(20.0));
        assert_eq!(a.latency_ms.p99, Some(40.0));
        assert_eq!(a.ttft_ms.p50, Some(10.0));
        let b = &r.by_model[1];
        assert_eq!(b.numbers.success_rate, Some(0.0));
        assert_eq!(b.ttft_ms.p50, None);
        assert_eq!(r.totals.numbers.cache_write_tokens, 12);
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
        assert_eq!(a.latency_ms.p50, Some(20.0));
        assert_eq!(a.latency_ms.p99, Some(40.0));
        assert_eq!(a.ttft_ms.p50, Some(10.0));
        let c = &r.by_model[1];
        assert_eq!((c.numbers.requests, c.numbers.cache_hits), (1, 1));
        assert_eq!(c.numbers.success_rate, None, "no upstream attempt");
        assert_eq!((c.latency_ms.p50, c.ttft_ms.p50), (None, None));
    }
}
