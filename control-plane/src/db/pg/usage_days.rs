//! Usage by day on PostgreSQL (`db/usage_days.rs`'s functions), and what
//! `/metrics` reads of budgets at scrape time (`db/scrape.rs`).

use aipipe_core::budget::DAY_MS;
use postgres::Transaction;

use super::super::scrape::{BudgetSpend, MAX_BUDGET_SERIES};
use super::super::usage_days::{CostAdjustment, DayUsage, TenantUsage, civil_from_days, usd};
use super::super::{Change, now_ms, to_i64, to_u64};
use super::alerts::budget_alerts;
use super::budgets::{budget_state, default_limit, own_limit};
use super::changes::record_change;
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::Result;

fn usage_of(tx: &mut Transaction<'_>, tenant: &str, days: u16) -> Result<TenantUsage> {
    let first = to_i64(now_ms() / DAY_MS) - i64::from(days) + 1;
    let usage: Vec<(u64, DayUsage)> = tx
        .query(
            "SELECT day, requests, prompt_tokens, completion_tokens, cost_nusd FROM usage_days
             WHERE tenant = $1 AND day >= $2 ORDER BY day",
            &[&tenant, &first],
        )?
        .iter()
        .map(|r| {
            let cost = to_u64(r.get(4));
            (
                cost,
                DayUsage {
                    date: civil_from_days(r.get(0)),
                    cost: usd(cost),
                    requests: to_u64(r.get(1)),
                    prompt_tokens: to_u64(r.get(2)),
                    completion_tokens: to_u64(r.get(3)),
                },
            )
        })
        .collect();
    Ok(TenantUsage::of(
        tenant,
        days,
        usage,
        budget_state(tx, tenant)?,
    ))
}

pub(in crate::db) fn tenant_usage(
    tx: &mut Transaction<'_>,
    tenant: &str,
    days: u16,
) -> Result<Option<TenantUsage>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    usage_of(tx, tenant, days).map(Some)
}

pub(in crate::db) fn tenant_of_key(tx: &mut Transaction<'_>, hash: &str) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT tenant FROM virtual_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            &[&hash],
        )?
        .map(|r| r.get(0)))
}

pub(in crate::db) fn all_usage(tx: &mut Transaction<'_>, days: u16) -> Result<Vec<TenantUsage>> {
    let first = to_i64(now_ms() / DAY_MS) - i64::from(days) + 1;
    let ids: Vec<String> = tx
        .query(
            "SELECT id FROM tenants WHERE id IN
                (SELECT tenant FROM usage_days WHERE day >= $1)
             OR id IN (SELECT tenant FROM budgets) ORDER BY id",
            &[&first],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.iter().map(|id| usage_of(tx, id, days)).collect()
}

pub(in crate::db) fn adjust_cost(
    w: &mut Writer<'_>,
    alerts: bool,
    tenant: String,
    day: i64,
    cost_nusd: u64,
) -> Result<Option<CostAdjustment>> {
    if !tenant_exists(w, &tenant)? {
        return Ok(None);
    }
    let previous = w
        .query_opt(
            "SELECT cost_nusd FROM usage_days WHERE tenant = $1 AND day = $2",
            &[&tenant, &day],
        )?
        .map_or(0, |r| to_u64(r.get(0)));
    w.execute(
        "INSERT INTO usage_days (tenant, day, requests, prompt_tokens, completion_tokens,
            cost_nusd) VALUES ($1, $2, 0, 0, 0, $3)
         ON CONFLICT (tenant, day) DO UPDATE SET cost_nusd = excluded.cost_nusd",
        &[&tenant, &day, &to_i64(cost_nusd)],
    )?;
    w.execute(
        "INSERT INTO cost_adjustments (tenant, day, previous_nusd, cost_nusd, at_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &tenant,
            &day,
            &to_i64(previous),
            &to_i64(cost_nusd),
            &to_i64(now_ms()),
        ],
    )?;
    if own_limit(w, &tenant)?.is_some() || default_limit(w)?.is_some() {
        record_change(w, Change::Budget(&tenant))?;
        if let Some(state) = budget_state(w, &tenant)? {
            budget_alerts(w, alerts, &tenant, None, &state)?;
        }
    }
    Ok(Some(CostAdjustment {
        date: civil_from_days(day),
        previous: usd(previous),
        cost: usd(cost_nusd),
        tenant,
    }))
}

/// `Db::budget_spend` on PostgreSQL (`SUM(BIGINT)` is `NUMERIC` there: cast
/// back, saturating).
pub(in crate::db) fn budget_spend(tx: &mut Transaction<'_>) -> Result<Vec<BudgetSpend>> {
    let today = to_i64(now_ms() / DAY_MS);
    Ok(tx
        .query(
            "SELECT b.tenant, b.limit_nusd,
                LEAST(COALESCE((SELECT SUM(d.cost_nusd) FROM usage_days d
                    WHERE d.tenant = b.tenant AND d.day > $1 - b.days), 0),
                    9223372036854775807)::bigint
             FROM budgets b ORDER BY b.tenant LIMIT $2",
            &[&today, &(MAX_BUDGET_SERIES as i64)],
        )?
        .iter()
        .map(|r| BudgetSpend {
            tenant: r.get(0),
            limit_nusd: to_u64(r.get(1)),
            spent_nusd: to_u64(r.get(2)),
        })
        .collect())
}
