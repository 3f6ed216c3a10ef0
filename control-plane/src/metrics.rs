//! `GET /metrics`: Prometheus text. Per tenant/provider/model totals come from
//! the `usage_totals` rollup that ingestion maintains, so a scrape never scans
//! the usage table; per-model penalties and success rates come from the small
//! `penalties` table; process counters (ingest, table serving) live in memory.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::AppState;
use crate::error::Result;

#[derive(Debug, Default)]
pub struct Counters {
    pub ingest_batches: AtomicU64,
    pub ingest_accepted: AtomicU64,
    pub ingest_duplicates: AtomicU64,
    pub ingest_rejected: AtomicU64,
    pub table_full: AtomicU64,
    pub table_not_modified: AtomicU64,
}

/// A label value with Prometheus escaping (\, " and newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A rate, or NaN when there is nothing to divide (Prometheus' "no data").
fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "NaN".into(), |r| r.to_string())
}

pub async fn render(state: &AppState) -> Result<String> {
    let totals = state.db.usage_totals().await?;
    let penalties = state.db.penalties().await?;
    let version = penalties.table_version;
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP aipipe_cp_table_version Current routing table version.\n# TYPE aipipe_cp_table_version gauge"
    );
    let _ = writeln!(out, "aipipe_cp_table_version {version}");
    let _ = writeln!(
        out,
        "# HELP aipipe_cp_penalty_epoch Penalty epoch: the database's creation time in ms, plus one per reset (filters forget local penalties when it rises).\n# TYPE aipipe_cp_penalty_epoch gauge\naipipe_cp_penalty_epoch {}",
        penalties.penalty_epoch
    );
    let c = &state.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP aipipe_cp_table_requests_total Routing table requests by outcome.\n# TYPE aipipe_cp_table_requests_total counter\naipipe_cp_table_requests_total{{result=\"full\"}} {}\naipipe_cp_table_requests_total{{result=\"not_modified\"}} {}",
        load(&c.table_full),
        load(&c.table_not_modified)
    );
    let _ = writeln!(
        out,
        "# HELP aipipe_cp_ingest_batches_total Usage batches committed.\n# TYPE aipipe_cp_ingest_batches_total counter\naipipe_cp_ingest_batches_total {}\n# HELP aipipe_cp_ingest_rejected_batches_total Usage batches refused as malformed.\n# TYPE aipipe_cp_ingest_rejected_batches_total counter\naipipe_cp_ingest_rejected_batches_total {}\n# HELP aipipe_cp_ingest_records_total Usage records received by outcome.\n# TYPE aipipe_cp_ingest_records_total counter\naipipe_cp_ingest_records_total{{result=\"accepted\"}} {}\naipipe_cp_ingest_records_total{{result=\"duplicate\"}} {}",
        load(&c.ingest_batches),
        load(&c.ingest_rejected),
        load(&c.ingest_accepted),
        load(&c.ingest_duplicates)
    );

    type Field = fn(&crate::db::UsageTotals) -> String;
    let series: [(&str, &str, &str, Field); 9] = [
        (
            "aipipe_requests_total",
            "counter",
            "Requests recorded.",
            |t| t.sums.requests.to_string(),
        ),
        (
            "aipipe_errors_total",
            "counter",
            "Requests that failed (status >= 400 or none).",
            |t| t.sums.errors.to_string(),
        ),
        ("aipipe_cost_usd_total", "counter", "Spend in USD.", |t| {
            t.sums.cost_usd().to_string()
        }),
        (
            "aipipe_usage_unparsed_total",
            "counter",
            "Requests whose usage could not be read.",
            |t| t.sums.unparsed.to_string(),
        ),
        (
            "aipipe_success_rate",
            "gauge",
            "All-time success rate of the model's upstream attempts: (requests - cache hits - errors) / (requests - cache hits + failed attempts).",
            |t| rate(t.sums.success_rate()),
        ),
        (
            "aipipe_cache_hits_total",
            "counter",
            "Requests answered from the filter's answer cache (part of aipipe_requests_total; no tokens, no cost).",
            |t| t.sums.cache_hits.to_string(),
        ),
        (
            "aipipe_cached_tokens_total",
            "counter",
            "Prompt tokens served from provider caches.",
            |t| t.sums.cached_tokens.to_string(),
        ),
        (
            "aipipe_cache_write_tokens_total",
            "counter",
            "Prompt tokens written to provider caches.",
            |t| t.sums.cache_write_tokens.to_string(),
        ),
        (
            "aipipe_failed_attempts_total",
            "counter",
            "Upstream attempts that failed before another model answered (failover).",
            |t| t.sums.failed_attempts.to_string(),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for t in &totals {
            let _ = writeln!(
                out,
                "{name}{{tenant=\"{}\",provider=\"{}\",model=\"{}\"}} {}",
                label(&t.tenant),
                label(&t.provider),
                label(&t.model),
                value(t)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP aipipe_tokens_total Tokens recorded by kind.\n# TYPE aipipe_tokens_total counter"
    );
    for t in &totals {
        for (kind, v) in [
            ("prompt", t.sums.prompt_tokens),
            ("completion", t.sums.completion_tokens),
        ] {
            let _ = writeln!(
                out,
                "aipipe_tokens_total{{tenant=\"{}\",provider=\"{}\",model=\"{}\",kind=\"{kind}\"}} {v}",
                label(&t.tenant),
                label(&t.provider),
                label(&t.model),
            );
        }
    }
    type ModelField = fn(&crate::db::PenaltyView) -> String;
    let per_model: [(&str, &str, ModelField); 2] = [
        (
            "aipipe_model_penalty",
            "Current penalty of a model, aggregated over every Envoy (adjusted cost x (1 + penalty)).",
            |p| p.penalty.to_string(),
        ),
        (
            "aipipe_model_success_rate",
            "Share of a model's upstream attempts that succeeded since the last penalty reset.",
            |p| rate(p.success_rate),
        ),
    ];
    for (name, help, value) in per_model {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &penalties.penalties {
            let _ = writeln!(
                out,
                "{name}{{provider=\"{}\",model=\"{}\"}} {}",
                label(&p.provider),
                label(&p.model),
                value(p)
            );
        }
    }
    Ok(out)
}
