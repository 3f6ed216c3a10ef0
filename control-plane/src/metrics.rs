//! `GET /metrics`: Prometheus text, written by `prometheus-client`. Per
//! tenant/provider/model totals come from the `usage_totals` rollup that
//! ingestion maintains, so a scrape never scans the usage table; per-model
//! penalties and success rates come from the small `penalties` table; both
//! are read at scrape time and handed to the registry as a [`Collector`].
//! Process counters (ingest, table serving) are the library's own atomic
//! counters, kept in [`Counters`].

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::AppState;
use crate::db::{BudgetSpend, PenaltyView, UsageTotals};
use crate::envoys::EnvoyView;
use crate::error::{Error, Result};
use crate::ingest::Observed;

/// Request latency and time to first token buckets, in seconds: 10 ms to
/// 10 minutes (a long streamed answer).
const LATENCY_BUCKETS: [f64; 16] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0,
];
/// Ingest batch latency buckets (seconds): 1 ms to 10 s.
const BATCH_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// (provider, model) pairs with series of their own in the histograms and
/// outcome counters; later ones are counted under `other`.
pub const MAX_MODEL_SERIES: usize = 1000;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms = Family<ModelLabels, Histogram, fn() -> Histogram>;

/// The labels of the per provider/model histograms.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    provider: String,
    model: String,
}

/// The labels of the request outcome counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelOutcome {
    provider: String,
    model: String,
    outcome: &'static str,
}

/// The `result` label of the process counters that have one.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    result: &'static str,
}

const FULL: Outcome = Outcome { result: "full" };
const NOT_MODIFIED: Outcome = Outcome {
    result: "not_modified",
};
const ACCEPTED: Outcome = Outcome { result: "accepted" };
const DUPLICATE: Outcome = Outcome {
    result: "duplicate",
};
const REFUSED: Outcome = Outcome { result: "refused" };
const SENT: Outcome = Outcome { result: "sent" };
const RETRIED: Outcome = Outcome { result: "retried" };
const DROPPED: Outcome = Outcome { result: "dropped" };

/// The control plane's own counters, shared by every request.
#[derive(Debug)]
pub struct Counters {
    ingest_batches: Counter,
    ingest_rejected: Counter,
    ingest_records: Family<Outcome, Counter>,
    table_requests: Family<Outcome, Counter>,
    /// Wrong admin secrets, and requests refused while an address was
    /// throttled for them.
    admin_auth_failures: Counter,
    admin_auth_throttled: Counter,
    /// Answers to filters' change requests, and the bytes they carried.
    deltas: Counter,
    delta_bytes: Counter,
    /// Change requests from an Envoy that held nothing (`since=0`): full
    /// snapshots begun. A restarted replica answers current Envoys with
    /// deltas only, so this stays still.
    snapshots: Counter,
    /// Budget alerts by what became of a delivery attempt.
    alerts: Family<Outcome, Counter>,
    /// Per provider/model, from each newly stored usage record.
    durations: Histograms,
    ttfts: Histograms,
    outcomes: Family<ModelOutcome, Counter>,
    /// The (provider, model) pairs with series of their own.
    models: Mutex<HashSet<(String, String)>>,
    /// Usage batches received and not yet committed, and how long each
    /// took from its arrival to its commit.
    ingest_waiting: Gauge,
    ingest_seconds: Histogram,
}

/// A usage batch waiting for its commit: counted in the ingest queue while
/// it lives.
pub struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Counters {
    fn default() -> Self {
        let c = Self {
            ingest_batches: Counter::default(),
            ingest_rejected: Counter::default(),
            ingest_records: Family::default(),
            table_requests: Family::default(),
            admin_auth_failures: Counter::default(),
            admin_auth_throttled: Counter::default(),
            deltas: Counter::default(),
            delta_bytes: Counter::default(),
            snapshots: Counter::default(),
            alerts: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            ttfts: Family::new_with_constructor(latency_histogram),
            outcomes: Family::default(),
            models: Mutex::new(HashSet::new()),
            ingest_waiting: Gauge::default(),
            ingest_seconds: Histogram::new(BATCH_BUCKETS),
        };
        // Every series exists from the start, at 0, so rates never begin
        // with a gap.
        for (family, outcomes) in [
            (&c.ingest_records, &[ACCEPTED, DUPLICATE, REFUSED][..]),
            (&c.table_requests, &[FULL, NOT_MODIFIED][..]),
            (&c.alerts, &[SENT, RETRIED, DROPPED][..]),
        ] {
            for o in outcomes {
                drop(family.get_or_create(o));
            }
        }
        c
    }
}

impl Counters {
    /// A routing table request answered in full.
    pub fn table_full(&self) {
        self.table_requests.get_or_create(&FULL).inc();
    }

    /// A routing table request answered 304.
    pub fn table_not_modified(&self) {
        self.table_requests.get_or_create(&NOT_MODIFIED).inc();
    }

    /// A wrong admin secret.
    pub fn admin_auth_failed(&self) {
        self.admin_auth_failures.inc();
    }

    /// An admin request refused because its address is throttled.
    pub fn admin_auth_throttled(&self) {
        self.admin_auth_throttled.inc();
    }

    /// A change request answered with a delta of `bytes`.
    pub fn delta(&self, bytes: usize, since: u64) {
        if since == 0 {
            self.snapshots.inc();
        }
        self.deltas.inc();
        self.delta_bytes.inc_by(bytes as u64);
    }

    /// A usage batch committed, with its new, duplicate and refused records.
    pub fn ingested(&self, accepted: u64, duplicates: u64, refused: u64) {
        self.ingest_batches.inc();
        self.ingest_records
            .get_or_create(&ACCEPTED)
            .inc_by(accepted);
        self.ingest_records
            .get_or_create(&DUPLICATE)
            .inc_by(duplicates);
        self.ingest_records.get_or_create(&REFUSED).inc_by(refused);
    }

    /// A budget alert delivery: "sent", "retried" or "dropped".
    pub fn alert(&self, result: &'static str) {
        let o = match result {
            "sent" => &SENT,
            "retried" => &RETRIED,
            _ => &DROPPED,
        };
        self.alerts.get_or_create(o).inc();
    }

    /// A usage batch refused as malformed.
    pub fn ingest_rejected(&self) {
        self.ingest_rejected.inc();
    }

    /// A usage batch arrived: it is in the ingest queue until the guard
    /// drops (committed or failed).
    pub fn ingest_waiting(&self) -> Waiting<'_> {
        self.ingest_waiting.inc();
        Waiting(&self.ingest_waiting)
    }

    /// A batch committed `took` after it arrived, with these new records.
    /// Grouped by (provider, model) first: a batch of 500 records of a few
    /// models takes each series' lock a few times, not 500.
    pub fn observe(&self, records: &[Observed], took: Duration) {
        self.ingest_seconds.observe(took.as_secs_f64());
        let mut by_model: HashMap<(&str, &str), Vec<&Observed>> = HashMap::new();
        for r in records {
            by_model
                .entry((r.provider.as_str(), r.model.as_str()))
                .or_default()
                .push(r);
        }
        for ((provider, model), records) in by_model {
            let (provider, model) = self.model_series(provider, model);
            let mut outcomes: HashMap<&'static str, u64> = HashMap::new();
            for r in &records {
                *outcomes.entry(r.outcome).or_default() += 1;
            }
            for (outcome, n) in outcomes {
                self.outcomes
                    .get_or_create(&ModelOutcome {
                        provider: provider.clone(),
                        model: model.clone(),
                        outcome,
                    })
                    .inc_by(n);
            }
            let labels = ModelLabels { provider, model };
            for (family, value) in [
                (
                    &self.durations,
                    (|r: &Observed| r.latency_ms) as fn(&Observed) -> Option<f64>,
                ),
                (&self.ttfts, |r: &Observed| r.ttft_ms),
            ] {
                let mut values = records.iter().filter_map(|r| value(r)).peekable();
                // Only cache hits: no series made for nothing.
                if values.peek().is_some() {
                    let histogram = family.get_or_create(&labels);
                    values.for_each(|ms| histogram.observe(ms / 1000.0));
                }
            }
        }
    }

    /// The labels a pair is counted under: its own, or `other` once
    /// [`MAX_MODEL_SERIES`] pairs have theirs.
    fn model_series(&self, provider: &str, model: &str) -> (String, String) {
        let mut seen = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (provider.to_owned(), model.to_owned());
        if seen.contains(&key) {
            return key;
        }
        if seen.len() >= MAX_MODEL_SERIES {
            return ("other".to_owned(), "other".to_owned());
        }
        seen.insert(key.clone());
        key
    }
}

/// A sample value as /metrics has always written it: a whole number as an
/// integer (`0`, not the library's `0.0` for an f64), anything else
/// (fractions, NaN) as the library writes a float.
#[derive(Debug, Clone, Copy)]
struct Number(f64);

/// Whole numbers up to 2^53 are exact as integers.
const EXACT: f64 = 9_007_199_254_740_992.0;

impl EncodeCounterValue for Number {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::CounterValueEncoder,
    ) -> std::fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
            EncodeCounterValue::encode(&(v as u64), encoder)
        } else {
            EncodeCounterValue::encode(&v, encoder)
        }
    }
}

impl EncodeGaugeValue for Number {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::GaugeValueEncoder,
    ) -> std::fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && (-EXACT..=EXACT).contains(&v) {
            EncodeGaugeValue::encode(&(v as i64), encoder)
        } else {
            EncodeGaugeValue::encode(&v, encoder)
        }
    }
}

/// A rate, or NaN when there is nothing to divide (Prometheus' "no data").
fn rate(r: Option<f64>) -> Number {
    Number(r.unwrap_or(f64::NAN))
}

/// What the database holds at scrape time, written as metric families.
#[derive(Debug)]
struct Stored {
    totals: Vec<UsageTotals>,
    penalties: Vec<PenaltyView>,
    budgets: Vec<BudgetSpend>,
    envoys: Vec<EnvoyView>,
}

/// Nano-dollars as USD.
fn usd(nusd: u64) -> Number {
    Number(nusd as f64 / 1e9)
}

/// Per-tenant budget gauges: (name, help, value).
type BudgetField = fn(&BudgetSpend) -> Number;
const BUDGET_SERIES: [(&str, &str, BudgetField); 2] = [
    (
        "aipipe_cp_budget_spent_usd",
        "Spend in USD in the window of a tenant's own budget (tenants under the default budget are not listed).",
        |b| usd(b.spent_nusd),
    ),
    (
        "aipipe_cp_budget_limit_usd",
        "The limit in USD of a tenant's own budget.",
        |b| usd(b.limit_nusd),
    ),
];

/// Per-Envoy usage queue gauges: (name, help, value).
type EnvoyField = fn(&EnvoyView) -> Number;
const ENVOY_SERIES: [(&str, &str, EnvoyField); 3] = [
    (
        "aipipe_cp_envoy_usage_queued",
        "Usage records an Envoy held behind its last batch (its fail-static queue), as it reported.",
        |e| Number(e.queued as f64),
    ),
    (
        "aipipe_cp_envoy_usage_dropped",
        "Usage records an Envoy dropped since its singleton started (its queue was full), as it reported.",
        |e| Number(e.dropped as f64),
    ),
    (
        "aipipe_cp_envoy_usage_sent",
        "Usage records acknowledged to an Envoy since its singleton started, as it reported.",
        |e| Number(e.sent as f64),
    ),
];

type Field = fn(&UsageTotals) -> Number;
type ModelField = fn(&PenaltyView) -> Number;

/// Per tenant/provider/model series: (name without `_total`, type, help, value).
const USAGE_SERIES: [(&str, MetricType, &str, Field); 9] = [
    (
        "aipipe_requests",
        MetricType::Counter,
        "Requests recorded.",
        |t| Number(t.sums.requests as f64),
    ),
    (
        "aipipe_errors",
        MetricType::Counter,
        "Requests that failed (status >= 400 or none).",
        |t| Number(t.sums.errors as f64),
    ),
    (
        "aipipe_cost_usd",
        MetricType::Counter,
        "Spend in USD.",
        |t| Number(t.sums.cost_usd()),
    ),
    (
        "aipipe_usage_unparsed",
        MetricType::Counter,
        "Requests whose usage could not be read.",
        |t| Number(t.sums.unparsed as f64),
    ),
    (
        "aipipe_success_rate",
        MetricType::Gauge,
        "All-time success rate of the model's upstream attempts: (requests - cache hits - errors) / (requests - cache hits + failed attempts).",
        |t| rate(t.sums.success_rate()),
    ),
    (
        "aipipe_cache_hits",
        MetricType::Counter,
        "Requests answered from the filter's answer cache (part of aipipe_requests_total; no tokens, no cost).",
        |t| Number(t.sums.cache_hits as f64),
    ),
    (
        "aipipe_cached_tokens",
        MetricType::Counter,
        "Prompt tokens served from provider caches.",
        |t| Number(t.sums.cached_tokens as f64),
    ),
    (
        "aipipe_cache_write_tokens",
        MetricType::Counter,
        "Prompt tokens written to provider caches.",
        |t| Number(t.sums.cache_write_tokens as f64),
    ),
    (
        "aipipe_failed_attempts",
        MetricType::Counter,
        "Upstream attempts that failed before another model answered (failover).",
        |t| Number(t.sums.failed_attempts as f64),
    ),
];

/// Per-model gauges: (name, help, value).
const MODEL_SERIES: [(&str, &str, ModelField); 2] = [
    (
        "aipipe_model_penalty",
        "Current penalty of a model, aggregated over every Envoy (adjusted cost x (1 + penalty)).",
        |p| Number(p.penalty),
    ),
    (
        "aipipe_model_success_rate",
        "Share of a model's upstream attempts that succeeded since the last penalty reset.",
        |p| rate(p.success_rate),
    ),
];

fn sample(
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
    kind: MetricType,
    value: Number,
) -> std::fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(value).encode(encoder),
    }
}

impl Collector for Stored {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for (name, kind, help, value) in USAGE_SERIES {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for t in &self.totals {
                let labels = [
                    ("tenant", t.tenant.as_str()),
                    ("provider", t.provider.as_str()),
                    ("model", t.model.as_str()),
                ];
                sample(family.encode_family(&labels)?, kind, value(t))?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "aipipe_tokens",
            "Tokens recorded by kind.",
            None,
            MetricType::Counter,
        )?;
        for t in &self.totals {
            for (kind, v) in [
                ("prompt", t.sums.prompt_tokens),
                ("completion", t.sums.completion_tokens),
            ] {
                let labels = [
                    ("tenant", t.tenant.as_str()),
                    ("provider", t.provider.as_str()),
                    ("model", t.model.as_str()),
                    ("kind", kind),
                ];
                ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in BUDGET_SERIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for b in &self.budgets {
                let labels = [("tenant", b.tenant.as_str())];
                sample(family.encode_family(&labels)?, MetricType::Gauge, value(b))?;
            }
        }
        for (name, help, value) in ENVOY_SERIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for e in &self.envoys {
                let labels = [("node", e.node.as_str())];
                sample(family.encode_family(&labels)?, MetricType::Gauge, value(e))?;
            }
        }
        for (name, help, value) in MODEL_SERIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &self.penalties {
                let labels = [
                    ("provider", p.provider.as_str()),
                    ("model", p.model.as_str()),
                ];
                sample(family.encode_family(&labels)?, MetricType::Gauge, value(p))?;
            }
        }
        Ok(())
    }
}

pub async fn render(state: &AppState) -> Result<String> {
    let totals = state.db.usage_totals().await?;
    let budgets = state.db.budget_spend().await?;
    // Models only: pairs would label a series per provider key.
    let penalties = state.db.penalties(Some(Vec::new())).await?;
    let envoys = state.db.envoys().await?;
    // A registry per scrape: the database's numbers are read now, the
    // process counters are shared (a registered Counter is a handle).
    // `register` adds the final period to each help text.
    let mut registry = Registry::default();
    registry.register(
        "aipipe_cp_table_version",
        "Current revision of the change log (what filters hold once current)",
        ConstGauge::new(penalties.table_version),
    );
    registry.register(
        "aipipe_cp_penalty_epoch",
        "Penalty epoch: the database's creation time in ms, plus one per reset (filters forget local penalties when it rises)",
        ConstGauge::new(penalties.penalty_epoch),
    );
    let c = &state.counters;
    registry.register(
        "aipipe_cp_table_requests",
        "Routing table requests by outcome",
        c.table_requests.clone(),
    );
    registry.register(
        "aipipe_cp_admin_auth_failures",
        "Admin requests with a missing or wrong X-Admin-Secret",
        c.admin_auth_failures.clone(),
    );
    registry.register(
        "aipipe_cp_admin_auth_throttled",
        "Admin requests refused (429) while their address was throttled for wrong secrets",
        c.admin_auth_throttled.clone(),
    );
    registry.register(
        "aipipe_cp_deltas",
        "Change requests answered (directory deltas sent to filters)",
        c.deltas.clone(),
    );
    registry.register(
        "aipipe_cp_delta_bytes",
        "Bytes of directory deltas sent to filters",
        c.delta_bytes.clone(),
    );
    registry.register(
        "aipipe_cp_snapshots",
        "Change requests from Envoys holding nothing yet (since=0): full snapshots begun",
        c.snapshots.clone(),
    );
    registry.register(
        "aipipe_cp_ingest_batches",
        "Usage batches committed",
        c.ingest_batches.clone(),
    );
    registry.register(
        "aipipe_cp_ingest_rejected_batches",
        "Usage batches refused as malformed",
        c.ingest_rejected.clone(),
    );
    registry.register(
        "aipipe_cp_ingest_records",
        "Usage records received by outcome",
        c.ingest_records.clone(),
    );
    registry.register(
        "aipipe_cp_budget_alerts",
        "Budget alert deliveries to the webhook: sent, retried (a failed attempt) or dropped (given up)",
        c.alerts.clone(),
    );
    registry.register(
        "aipipe_cp_request_duration_seconds",
        "Request latency by provider and model, from each stored usage record (not cache hits)",
        c.durations.clone(),
    );
    registry.register(
        "aipipe_cp_time_to_first_token_seconds",
        "Time to the answer's first byte by provider and model, from each stored usage record that succeeded (not cache hits)",
        c.ttfts.clone(),
    );
    registry.register(
        "aipipe_cp_request_outcomes",
        "Stored usage records by provider, model and outcome: ok, client_error (4xx), server_error (5xx or no answer), cache_hit",
        c.outcomes.clone(),
    );
    registry.register(
        "aipipe_cp_ingest_queue_depth",
        "Usage batches received and not yet committed",
        c.ingest_waiting.clone(),
    );
    registry.register(
        "aipipe_cp_ingest_batch_duration_seconds",
        "Time from a usage batch's arrival to its commit",
        c.ingest_seconds.clone(),
    );
    registry.register_collector(Box::new(Stored {
        totals,
        penalties: penalties.penalties,
        budgets,
        envoys,
    }));
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .map_err(|e| Error::internal("encoding /metrics", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(totals: Vec<UsageTotals>, penalties: Vec<PenaltyView>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Stored {
            totals,
            penalties,
            budgets: Vec::new(),
            envoys: Vec::new(),
        }));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn families_keep_their_names_labels_and_number_forms() {
        let mut t = UsageTotals {
            tenant: "a\"b".into(),
            provider: "openai".into(),
            model: "gpt-4o".into(),
            ..UsageTotals::default()
        };
        t.sums.requests = 3;
        t.sums.errors = 1;
        t.sums.cost_nusd = 45_000;
        t.sums.prompt_tokens = 7;
        let out = text(vec![t], Vec::new());
        for line in [
            "# HELP aipipe_requests_total Requests recorded.\n",
            "# TYPE aipipe_requests_total counter\n",
            "aipipe_requests_total{tenant=\"a\\\"b\",provider=\"openai\",model=\"gpt-4o\"} 3\n",
            "aipipe_cost_usd_total{tenant=\"a\\\"b\",provider=\"openai\",model=\"gpt-4o\"} 0.000045\n",
            "# TYPE aipipe_success_rate gauge\n",
            "aipipe_success_rate{tenant=\"a\\\"b\",provider=\"openai\",model=\"gpt-4o\"} 0.6666666666666666\n",
            "aipipe_usage_unparsed_total{tenant=\"a\\\"b\",provider=\"openai\",model=\"gpt-4o\"} 0\n",
            "aipipe_tokens_total{tenant=\"a\\\"b\",provider=\"openai\",model=\"gpt-4o\",kind=\"prompt\"} 7\n",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn process_counters_start_at_zero_for_every_outcome() {
        let c = Counters::default();
        c.ingested(3, 1, 0);
        c.table_not_modified();
        let mut registry = Registry::default();
        registry.register(
            "aipipe_cp_ingest_records",
            "Records",
            c.ingest_records.clone(),
        );
        registry.register(
            "aipipe_cp_table_requests",
            "Table",
            c.table_requests.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for line in [
            "aipipe_cp_ingest_records_total{result=\"accepted\"} 3\n",
            "aipipe_cp_ingest_records_total{result=\"duplicate\"} 1\n",
            "aipipe_cp_ingest_records_total{result=\"refused\"} 0\n",
            "aipipe_cp_table_requests_total{result=\"full\"} 0\n",
            "aipipe_cp_table_requests_total{result=\"not_modified\"} 1\n",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }
}
