//! Budget alerts on PostgreSQL (`db/alerts.rs`'s functions): thresholds
//! reached and the webhook's outbox.

use super::super::alerts::{Alert, THRESHOLDS, event, reached};
use super::super::budgets::BudgetState;
use super::super::{now_ms, to_i64, to_u64};
use super::pool::Writer;
use crate::error::Result;

/// Queues an alert for each threshold the spend of the tenant's budget (or
/// of its virtual key `key`'s) reached since the last, and re-arms the ones
/// it fell below (when alerts are `on`).
pub(in crate::db) fn budget_alerts(
    w: &mut Writer<'_>,
    on: bool,
    tenant: &str,
    key: Option<&str>,
    state: &BudgetState,
) -> Result<()> {
    if !on || state.limit.limit_nusd == 0 {
        return Ok(());
    }
    let (forget, fire, name) = match key {
        None => (
            "DELETE FROM budget_alerts WHERE tenant = $1 AND threshold = $2",
            "INSERT INTO budget_alerts (tenant, threshold, fired_ms) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            tenant,
        ),
        Some(k) => (
            "DELETE FROM key_budget_alerts WHERE key_id = $1 AND threshold = $2",
            "INSERT INTO key_budget_alerts (key_id, threshold, fired_ms) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            k,
        ),
    };
    let now = now_ms();
    for t in THRESHOLDS {
        if !reached(state, t) {
            w.execute(forget, &[&name, &to_i64(t)])?;
            continue;
        }
        if w.execute(fire, &[&name, &to_i64(t), &to_i64(now)])? == 0 {
            continue;
        }
        w.execute(
            "INSERT INTO webhook_outbox (body, attempts, next_ms) VALUES ($1, 0, $2)",
            &[&event(tenant, key, t, state, now)?, &to_i64(now)],
        )?;
    }
    Ok(())
}

/// Claims up to `limit` alerts due for delivery, oldest first, moving
/// their next attempt `lease_ms` ahead (`Db::claim_alerts`). The write lock
/// serialises claims across control planes, so two never take one alert.
pub(in crate::db) fn claim(w: &mut Writer<'_>, limit: usize, lease_ms: u64) -> Result<Vec<Alert>> {
    let now = now_ms();
    let claimed: Vec<Alert> = w
        .query(
            "SELECT id, body, attempts FROM webhook_outbox WHERE next_ms <= $1
             ORDER BY next_ms, id LIMIT $2",
            &[&to_i64(now), &to_i64(limit as u64)],
        )?
        .iter()
        .map(|r| Alert {
            id: r.get(0),
            body: r.get(1),
            attempts: u32::try_from(to_u64(r.get(2))).unwrap_or(u32::MAX),
        })
        .collect();
    let ids: Vec<i64> = claimed.iter().map(|a| a.id).collect();
    if !ids.is_empty() {
        w.execute(
            "UPDATE webhook_outbox SET next_ms = $2 WHERE id = ANY($1)",
            &[&ids, &to_i64(now.saturating_add(lease_ms))],
        )?;
    }
    Ok(claimed)
}
