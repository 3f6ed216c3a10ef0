//! Budgets on PostgreSQL (`db/budgets.rs`'s functions; so far the reads the
//! change log needs).

use postgres::Transaction;

use super::super::budgets::{BudgetState, Limit, first_day, state_from};
use super::super::{now_ms, to_u64};
use super::meta_int;
use super::tenants::tenant_exists;
use crate::error::Result;

fn limit_row(r: &postgres::Row) -> Limit {
    Limit {
        limit_nusd: to_u64(r.get(0)),
        days: u16::try_from(r.get::<_, i64>(1)).unwrap_or(1),
    }
}

pub(in crate::db) fn own_limit(tx: &mut Transaction<'_>, tenant: &str) -> Result<Option<Limit>> {
    Ok(tx
        .query_opt(
            "SELECT limit_nusd, days FROM budgets WHERE tenant = $1",
            &[&tenant],
        )?
        .map(|r| limit_row(&r)))
}

pub(in crate::db) fn default_limit(tx: &mut Transaction<'_>) -> Result<Option<Limit>> {
    Ok(
        match (
            meta_int(tx, "budget_default_nusd")?,
            meta_int(tx, "budget_default_days")?,
        ) {
            (Some(l), Some(d)) => Some(Limit {
                limit_nusd: to_u64(l),
                days: u16::try_from(d).unwrap_or(1),
            }),
            _ => None,
        },
    )
}

fn key_limit(tx: &mut Transaction<'_>, key_id: &str) -> Result<Option<Limit>> {
    Ok(tx
        .query_opt(
            "SELECT limit_nusd, days FROM key_budgets WHERE key_id = $1",
            &[&key_id],
        )?
        .map(|r| limit_row(&r)))
}

/// The spend per day of a window of `limit.days` ending today, from
/// `usage_days` (a tenant's) or `usage_key_days` (a key's), as its state.
fn state_of(tx: &mut Transaction<'_>, sql: &str, name: &str, limit: Limit) -> Result<BudgetState> {
    let first = first_day(limit.days, now_ms());
    let days: Vec<(i64, u64)> = tx
        .query(sql, &[&name, &first])?
        .iter()
        .map(|r| (r.get(0), to_u64(r.get(1))))
        .collect();
    Ok(state_from(limit, &days))
}

pub(in crate::db) fn budget_state(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Option<BudgetState>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    let limit = match own_limit(tx, tenant)? {
        Some(l) => l,
        None => match default_limit(tx)? {
            Some(l) => l,
            None => return Ok(None),
        },
    };
    Ok(Some(state_of(
        tx,
        "SELECT day, cost_nusd FROM usage_days WHERE tenant = $1 AND day >= $2 ORDER BY day",
        tenant,
        limit,
    )?))
}

pub(in crate::db) fn key_budget_state(
    tx: &mut Transaction<'_>,
    key_id: &str,
) -> Result<Option<BudgetState>> {
    let live: bool = tx
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE id = $1 AND revoked_at IS NULL)",
            &[&key_id],
        )?
        .get(0);
    if !live {
        return Ok(None);
    }
    let Some(limit) = key_limit(tx, key_id)? else {
        return Ok(None);
    };
    Ok(Some(state_of(
        tx,
        "SELECT day, cost_nusd FROM usage_key_days WHERE key_id = $1 AND day >= $2 ORDER BY day",
        key_id,
        limit,
    )?))
}
