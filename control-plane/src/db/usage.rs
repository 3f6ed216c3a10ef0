//! Usage records, their failed attempts and the running totals.

use aipipe_core::usage::UsageRecord;
use rusqlite::params;

use super::{Db, Tx, pg, to_i64, to_u64};
use crate::error::Result;
use crate::stats::Sums;

#[derive(Debug, Clone, Default)]
pub struct UsageTotals {
    pub tenant: String,
    pub provider: String,
    pub model: String,
    pub sums: Sums,
}

impl Tx<'_, '_> {
    /// Stores each usage record unless its id is already stored (the id is
    /// the idempotency key: the insert itself decides, inside the
    /// transaction). A new record's failed attempts are stored with it.
    /// Returns the records that were new. The statements are prepared once
    /// per batch: looking them up per record cost ingest a tenth of its
    /// throughput (`aipipe-cp-bench`).
    /// Whether a tenant exists or ever existed (its change-log row outlives
    /// it): usage of a tenant deleted a moment ago is still accounted.
    pub fn tenant_known(&self, tenant: &str) -> Result<bool> {
        if let Some(w) = self.pg() {
            return pg::usage::tenant_known(&mut **w?, tenant);
        }
        Ok(self
            .sqlite()?
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM tenants WHERE id = ?1)
                OR EXISTS(SELECT 1 FROM changes WHERE kind = ?2 AND name = ?1)",
            )?
            .query_row(params![tenant, super::changes::TENANT], |r| r.get(0))?)
    }

    pub fn insert_usage<'r>(&self, records: &'r [UsageRecord]) -> Result<Vec<&'r UsageRecord>> {
        if let Some(w) = self.pg() {
            return pg::usage::insert_usage(&mut **w?, records);
        }
        let tx = self.sqlite()?;
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO usage (id, tenant, provider, model, status, prompt_tokens,
                completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, latency_ms,
                ttft_ms, complexity, stream, usage_parsed, ts_ms, cache_hit, estimated,
                virtual_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19)",
        )?;
        let mut insert_attempt = tx.prepare_cached(
            "INSERT OR IGNORE INTO attempt_failures (record_id, n, ts_ms, tenant, provider, model, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut fresh = Vec::with_capacity(records.len());
        for r in records {
            let n = insert.execute(params![
                r.id,
                r.tenant,
                r.provider,
                r.model,
                r.status,
                to_i64(r.prompt_tokens),
                to_i64(r.completion_tokens),
                to_i64(r.cached_tokens),
                to_i64(r.cache_write_tokens),
                to_i64(r.cost_nusd),
                r.latency_ms,
                r.ttft_ms,
                r.complexity,
                r.stream,
                r.usage_parsed,
                to_i64(r.ts_ms),
                r.cache_hit,
                r.estimated,
                r.virtual_key,
            ])?;
            if n == 0 {
                continue;
            }
            for (i, a) in r.failed_attempts.iter().enumerate() {
                insert_attempt.execute(params![
                    r.id,
                    i as i64,
                    to_i64(r.ts_ms),
                    r.tenant,
                    a.provider,
                    a.model,
                    a.status,
                ])?;
            }
            fresh.push(r);
        }
        Ok(fresh)
    }

    /// Adds `sums` to the running totals of (tenant, provider, model).
    pub fn add_usage_totals(
        &self,
        tenant: &str,
        provider: &str,
        model: &str,
        sums: &Sums,
    ) -> Result<()> {
        // Saturating: totals must never overflow into a value /metrics cannot
        // read (an overflowing `+` turns into a REAL in SQLite).
        if let Some(w) = self.pg() {
            return pg::usage::add_usage_totals(&mut **w?, (tenant, provider, model), sums);
        }
        let mut upsert = self.sqlite()?.prepare_cached(
            "INSERT INTO usage_totals (tenant, provider, model, requests, errors, prompt_tokens,
                completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, unparsed,
                failed_attempts, cache_hits)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (tenant, provider, model) DO UPDATE SET
                requests = MIN(requests + excluded.requests, 9223372036854775807),
                errors = MIN(errors + excluded.errors, 9223372036854775807),
                prompt_tokens = MIN(prompt_tokens + excluded.prompt_tokens, 9223372036854775807),
                completion_tokens = MIN(completion_tokens + excluded.completion_tokens, 9223372036854775807),
                cached_tokens = MIN(cached_tokens + excluded.cached_tokens, 9223372036854775807),
                cache_write_tokens = MIN(cache_write_tokens + excluded.cache_write_tokens, 9223372036854775807),
                cost_nusd = MIN(cost_nusd + excluded.cost_nusd, 9223372036854775807),
                unparsed = MIN(unparsed + excluded.unparsed, 9223372036854775807),
                failed_attempts = MIN(failed_attempts + excluded.failed_attempts, 9223372036854775807),
                cache_hits = MIN(cache_hits + excluded.cache_hits, 9223372036854775807)",
        )?;
        upsert.execute(params![
            tenant,
            provider,
            model,
            to_i64(sums.requests),
            to_i64(sums.errors),
            to_i64(sums.prompt_tokens),
            to_i64(sums.completion_tokens),
            to_i64(sums.cached_tokens),
            to_i64(sums.cache_write_tokens),
            to_i64(sums.cost_nusd),
            to_i64(sums.unparsed),
            to_i64(sums.failed_attempts),
            to_i64(sums.cache_hits),
        ])?;
        Ok(())
    }
}

impl Db {
    /// All-time totals per tenant/provider/model (for /metrics).
    pub async fn usage_totals(&self) -> Result<Vec<UsageTotals>> {
        if self.postgres().is_some() {
            return self.pg_read(pg::usage::usage_totals).await;
        }
        self.read(|tx| {
            let mut st = tx.prepare(
                "SELECT tenant, provider, model, requests, errors, prompt_tokens, completion_tokens,
                    cached_tokens, cost_nusd, unparsed, cache_write_tokens, failed_attempts,
                    cache_hits
                 FROM usage_totals ORDER BY tenant, provider, model",
            )?;
            let rows = st.query_map([], |r| {
                Ok(UsageTotals {
                    tenant: r.get(0)?,
                    provider: r.get(1)?,
                    model: r.get(2)?,
                    sums: Sums {
                        requests: to_u64(r.get(3)?),
                        errors: to_u64(r.get(4)?),
                        prompt_tokens: to_u64(r.get(5)?),
                        completion_tokens: to_u64(r.get(6)?),
                        cached_tokens: to_u64(r.get(7)?),
                        cost_nusd: to_u64(r.get(8)?),
                        unparsed: to_u64(r.get(9)?),
                        cache_write_tokens: to_u64(r.get(10)?),
                        failed_attempts: to_u64(r.get(11)?),
                        cache_hits: to_u64(r.get(12)?),
                    },
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
