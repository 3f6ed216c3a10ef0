//! Budgets on PostgreSQL (`db/budgets.rs`'s functions).

use aipipe_core::budget::DAY_MS;
use aipipe_core::usage::UsageRecord;
use postgres::Transaction;

use super::super::budgets::{BudgetState, BudgetView, BudgetWrite, Limit, first_day, state_from};
use super::super::{Change, now_ms, to_i64, to_u64};
use super::alerts::budget_alerts;
use super::changes::record_change;
use super::limits::key_hash;
use super::meta_int;
use super::pool::Writer;
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
    Ok(Some(state_of(tx, TENANT_DAYS, tenant, limit)?))
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

/// The limit that applies to a tenant and where it comes from.
fn limit_of(tx: &mut Transaction<'_>, tenant: &str) -> Result<Option<(Limit, &'static str)>> {
    if let Some(l) = own_limit(tx, tenant)? {
        return Ok(Some((l, "tenant")));
    }
    Ok(default_limit(tx)?.map(|l| (l, "default")))
}

const TENANT_DAYS: &str =
    "SELECT day, cost_nusd FROM usage_days WHERE tenant = $1 AND day >= $2 ORDER BY day";

fn view(tx: &mut Transaction<'_>, tenant: &str) -> Result<Option<BudgetView>> {
    let Some((limit, source)) = limit_of(tx, tenant)? else {
        return Ok(None);
    };
    let state = state_of(tx, TENANT_DAYS, tenant, limit)?;
    Ok(Some(BudgetView::of(tenant, None, source, &state)))
}

fn key_view(tx: &mut Transaction<'_>, tenant: &str, key_id: &str) -> Result<Option<BudgetView>> {
    Ok(key_budget_state(tx, key_id)?
        .map(|state| BudgetView::of(tenant, Some(key_id), "virtual_key", &state)))
}

pub(in crate::db) fn budget(tx: &mut Transaction<'_>, tenant: &str) -> Result<BudgetWrite> {
    if !tenant_exists(tx, tenant)? {
        return Ok(BudgetWrite::NoTenant);
    }
    Ok(BudgetWrite::Done(view(tx, tenant)?))
}

pub(in crate::db) fn set_budget(
    w: &mut Writer<'_>,
    alerts: bool,
    tenant: &str,
    limit: Option<Limit>,
) -> Result<BudgetWrite> {
    if !tenant_exists(w, tenant)? {
        return Ok(BudgetWrite::NoTenant);
    }
    let changed = match limit {
        Some(l) => w.execute(
            "INSERT INTO budgets (tenant, limit_nusd, days, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant) DO UPDATE SET limit_nusd = excluded.limit_nusd,
                days = excluded.days, updated_ms = excluded.updated_ms",
            &[
                &tenant,
                &to_i64(l.limit_nusd),
                &i64::from(l.days),
                &to_i64(now_ms()),
            ],
        )?,
        None => w.execute("DELETE FROM budgets WHERE tenant = $1", &[&tenant])?,
    };
    if changed > 0 {
        record_change(w, Change::Budget(tenant))?;
        // A lower limit may cross a threshold; a higher one re-arms.
        if let Some(state) = budget_state(w, tenant)? {
            budget_alerts(w, alerts, tenant, None, &state)?;
        }
    }
    Ok(BudgetWrite::Done(view(w, tenant)?))
}

pub(in crate::db) fn key_budget(
    tx: &mut Transaction<'_>,
    tenant: &str,
    key_id: &str,
) -> Result<BudgetWrite> {
    if !tenant_exists(tx, tenant)? {
        return Ok(BudgetWrite::NoTenant);
    }
    if key_hash(tx, tenant, key_id)?.is_none() {
        return Ok(BudgetWrite::NoKey);
    }
    Ok(BudgetWrite::Done(key_view(tx, tenant, key_id)?))
}

pub(in crate::db) fn set_key_budget(
    w: &mut Writer<'_>,
    alerts: bool,
    tenant: &str,
    key_id: &str,
    limit: Option<Limit>,
) -> Result<BudgetWrite> {
    if !tenant_exists(w, tenant)? {
        return Ok(BudgetWrite::NoTenant);
    }
    let Some(hash) = key_hash(w, tenant, key_id)? else {
        return Ok(BudgetWrite::NoKey);
    };
    let changed = match limit {
        Some(l) => w.execute(
            "INSERT INTO key_budgets (key_id, limit_nusd, days, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_id) DO UPDATE SET limit_nusd = excluded.limit_nusd,
                days = excluded.days, updated_ms = excluded.updated_ms",
            &[
                &key_id,
                &to_i64(l.limit_nusd),
                &i64::from(l.days),
                &to_i64(now_ms()),
            ],
        )?,
        None => w.execute("DELETE FROM key_budgets WHERE key_id = $1", &[&key_id])?,
    };
    if changed > 0 {
        record_change(w, Change::Key(&hash))?;
        record_change(w, Change::KeyBudget(key_id))?;
        if let Some(state) = key_budget_state(w, key_id)? {
            budget_alerts(w, alerts, tenant, Some(key_id), &state)?;
        }
    }
    Ok(BudgetWrite::Done(key_view(w, tenant, key_id)?))
}

/// Sets (Some) or removes (None) the default budget: one global change, and
/// one budget change per tenant under it with spend.
pub(in crate::db) fn set_default(w: &mut Writer<'_>, limit: Option<Limit>) -> Result<()> {
    match limit {
        Some(l) => {
            for (key, v) in [
                ("budget_default_nusd", to_i64(l.limit_nusd)),
                ("budget_default_days", i64::from(l.days)),
            ] {
                w.execute(
                    "INSERT INTO meta (key, int_value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET int_value = excluded.int_value",
                    &[&key, &v],
                )?;
            }
        }
        None => {
            w.execute(
                "DELETE FROM meta WHERE key IN ('budget_default_nusd', 'budget_default_days')",
                &[],
            )?;
        }
    }
    record_change(w, Change::Global)?;
    let under: Vec<String> = w
        .query(
            "SELECT id FROM tenants WHERE id NOT IN (SELECT tenant FROM budgets)
                AND id IN (SELECT tenant FROM usage_days)",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for tenant in &under {
        record_change(w, Change::Budget(tenant))?;
    }
    Ok(())
}

/// `Tx::add_usage_days` on PostgreSQL: adds new records to their tenants'
/// and virtual keys' days (saturating, as `NUMERIC`); records a budget
/// change for each tenant or key a budget applies to whose spend moved, and
/// queues its alerts. Returns those tenants.
pub(in crate::db) fn add_usage_days(
    w: &mut Writer<'_>,
    alerts: bool,
    records: &[&UsageRecord],
) -> Result<Vec<String>> {
    add_key_days(w, alerts, records)?;
    let add = w.prepare(
        "INSERT INTO usage_days AS d (tenant, day, requests, prompt_tokens, completion_tokens,
            cost_nusd)
         VALUES ($1, $2, 1, $3, $4, $5)
         ON CONFLICT (tenant, day) DO UPDATE SET
            requests = LEAST(d.requests::numeric + 1, 9223372036854775807)::bigint,
            prompt_tokens = LEAST(d.prompt_tokens::numeric + excluded.prompt_tokens,
                9223372036854775807)::bigint,
            completion_tokens = LEAST(d.completion_tokens::numeric + excluded.completion_tokens,
                9223372036854775807)::bigint,
            cost_nusd = LEAST(d.cost_nusd::numeric + excluded.cost_nusd,
                9223372036854775807)::bigint",
    )?;
    let mut moved: Vec<String> = Vec::new();
    let has_default = default_limit(w)?.is_some();
    for r in records {
        w.execute(
            &add,
            &[
                &r.tenant,
                &(to_i64(r.ts_ms) / DAY_MS as i64),
                &to_i64(r.prompt_tokens),
                &to_i64(r.completion_tokens),
                &to_i64(r.cost_nusd),
            ],
        )?;
        let tenant = r.tenant.as_str();
        if r.cost_nusd == 0 {
            continue;
        }
        if !moved.iter().any(|t| t == tenant) && (has_default || own_limit(w, tenant)?.is_some()) {
            moved.push(tenant.to_owned());
        }
    }
    for tenant in &moved {
        record_change(w, Change::Budget(tenant))?;
        if let Some(state) = budget_state(w, tenant)? {
            budget_alerts(w, alerts, tenant, None, &state)?;
        }
    }
    Ok(moved)
}

fn add_key_days(w: &mut Writer<'_>, alerts: bool, records: &[&UsageRecord]) -> Result<()> {
    let add = w.prepare(
        "INSERT INTO usage_key_days AS d (key_id, day, requests, cost_nusd) VALUES ($1, $2, 1, $3)
         ON CONFLICT (key_id, day) DO UPDATE SET
            requests = LEAST(d.requests::numeric + 1, 9223372036854775807)::bigint,
            cost_nusd = LEAST(d.cost_nusd::numeric + excluded.cost_nusd,
                9223372036854775807)::bigint",
    )?;
    // (key id, its tenant)
    let mut moved: Vec<(&str, &str)> = Vec::new();
    for r in records {
        let Some(key) = r.virtual_key.as_deref() else {
            continue;
        };
        w.execute(
            &add,
            &[
                &key,
                &(to_i64(r.ts_ms) / DAY_MS as i64),
                &to_i64(r.cost_nusd),
            ],
        )?;
        if r.cost_nusd > 0 && !moved.iter().any(|(k, _)| *k == key) && key_limit(w, key)?.is_some()
        {
            moved.push((key, &r.tenant));
        }
    }
    for (key, tenant) in moved {
        record_change(w, Change::KeyBudget(key))?;
        if let Some(state) = key_budget_state(w, key)? {
            budget_alerts(w, alerts, tenant, Some(key), &state)?;
        }
    }
    Ok(())
}
