//! Usage records, their failed attempts and the running totals on
//! PostgreSQL (`db/usage.rs`'s functions). `usage` and `attempt_failures`
//! are partitioned by day: ingest makes the batch's days first
//! (`Db::make_usage_days`), outside its transaction.

use aipipe_core::usage::UsageRecord;
use postgres::Transaction;

use super::super::changes::TENANT;
use super::super::usage::UsageTotals;
use super::super::{to_i64, to_u64};
use super::pool::Writer;
use crate::error::Result;
use crate::stats::Sums;

/// Whether a tenant exists or ever existed (its change-log row outlives it).
pub(in crate::db) fn tenant_known(w: &mut Writer<'_>, tenant: &str) -> Result<bool> {
    Ok(w.query_one(
        "SELECT EXISTS(SELECT 1 FROM tenants WHERE id = $1)
            OR EXISTS(SELECT 1 FROM changes WHERE kind = $2 AND name = $1)",
        &[&tenant, &TENANT],
    )?
    .get(0))
}

/// Stores each record unless its (id, ts_ms) is stored already, with its
/// failed attempts; returns the records that were new.
pub(in crate::db) fn insert_usage<'r>(
    w: &mut Writer<'_>,
    records: &'r [UsageRecord],
) -> Result<Vec<&'r UsageRecord>> {
    let insert = w.prepare(
        "INSERT INTO usage (id, tenant, provider, model, status, prompt_tokens,
            completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, latency_ms,
            ttft_ms, complexity, stream, usage_parsed, ts_ms, cache_hit, estimated, virtual_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19)
         ON CONFLICT DO NOTHING",
    )?;
    let insert_attempt = w.prepare(
        "INSERT INTO attempt_failures (record_id, n, ts_ms, tenant, provider, model, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )?;
    let mut fresh = Vec::with_capacity(records.len());
    for r in records {
        let ts = to_i64(r.ts_ms);
        let n = w.execute(
            &insert,
            &[
                &r.id,
                &r.tenant,
                &r.provider,
                &r.model,
                &i64::from(r.status),
                &to_i64(r.prompt_tokens),
                &to_i64(r.completion_tokens),
                &to_i64(r.cached_tokens),
                &to_i64(r.cache_write_tokens),
                &to_i64(r.cost_nusd),
                &r.latency_ms,
                &r.ttft_ms,
                &r.complexity,
                &r.stream,
                &r.usage_parsed,
                &ts,
                &r.cache_hit,
                &r.estimated,
                &r.virtual_key,
            ],
        )?;
        if n == 0 {
            continue;
        }
        for (i, a) in r.failed_attempts.iter().enumerate() {
            w.execute(
                &insert_attempt,
                &[
                    &r.id,
                    &(i as i64),
                    &ts,
                    &r.tenant,
                    &a.provider,
                    &a.model,
                    &i64::from(a.status),
                ],
            )?;
        }
        fresh.push(r);
    }
    Ok(fresh)
}

/// `a + b` saturating at `BIGINT`'s maximum: added as `NUMERIC`, since
/// `BIGINT + BIGINT` raises an error on overflow before `LEAST` sees it.
macro_rules! saturating {
    ($col:literal) => {
        concat!(
            $col,
            " = LEAST(usage_totals.",
            $col,
            "::numeric + excluded.",
            $col,
            ", 9223372036854775807)::bigint"
        )
    };
}

/// Adds `sums` to the running totals of (tenant, provider, model).
pub(in crate::db) fn add_usage_totals(
    w: &mut Writer<'_>,
    (tenant, provider, model): (&str, &str, &str),
    sums: &Sums,
) -> Result<()> {
    w.execute(
        concat!(
            "INSERT INTO usage_totals (tenant, provider, model, requests, errors, prompt_tokens,
                completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, unparsed,
                failed_attempts, cache_hits)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (tenant, provider, model) DO UPDATE SET ",
            saturating!("requests"),
            ", ",
            saturating!("errors"),
            ", ",
            saturating!("prompt_tokens"),
            ", ",
            saturating!("completion_tokens"),
            ", ",
            saturating!("cached_tokens"),
            ", ",
            saturating!("cache_write_tokens"),
            ", ",
            saturating!("cost_nusd"),
            ", ",
            saturating!("unparsed"),
            ", ",
            saturating!("failed_attempts"),
            ", ",
            saturating!("cache_hits"),
        ),
        &[
            &tenant,
            &provider,
            &model,
            &to_i64(sums.requests),
            &to_i64(sums.errors),
            &to_i64(sums.prompt_tokens),
            &to_i64(sums.completion_tokens),
            &to_i64(sums.cached_tokens),
            &to_i64(sums.cache_write_tokens),
            &to_i64(sums.cost_nusd),
            &to_i64(sums.unparsed),
            &to_i64(sums.failed_attempts),
            &to_i64(sums.cache_hits),
        ],
    )?;
    Ok(())
}

/// All-time totals per tenant, provider and model (`/metrics`).
pub(in crate::db) fn usage_totals(tx: &mut Transaction<'_>) -> Result<Vec<UsageTotals>> {
    Ok(tx
        .query(
            "SELECT tenant, provider, model, requests, errors, prompt_tokens, completion_tokens,
                cached_tokens, cost_nusd, unparsed, cache_write_tokens, failed_attempts,
                cache_hits
             FROM usage_totals ORDER BY tenant, provider, model",
            &[],
        )?
        .iter()
        .map(|r| UsageTotals {
            tenant: r.get(0),
            provider: r.get(1),
            model: r.get(2),
            sums: Sums {
                requests: to_u64(r.get(3)),
                errors: to_u64(r.get(4)),
                prompt_tokens: to_u64(r.get(5)),
                completion_tokens: to_u64(r.get(6)),
                cached_tokens: to_u64(r.get(7)),
                cost_nusd: to_u64(r.get(8)),
                unparsed: to_u64(r.get(9)),
                cache_write_tokens: to_u64(r.get(10)),
                failed_attempts: to_u64(r.get(11)),
                cache_hits: to_u64(r.get(12)),
            },
        })
        .collect())
}
