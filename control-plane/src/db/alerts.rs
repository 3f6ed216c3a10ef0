//! Budget alerts (control-plane/README.md, "Budget alerts"): which
//! thresholds a tenant's window has reached, and the outbox of alerts the
//! webhook has not taken yet.

use rusqlite::params;
use serde::Serialize;

use super::budgets::BudgetState;
use super::{Db, now_ms, pg, to_i64, to_u64};
use crate::error::Result;

/// The thresholds, in percent of the limit.
pub const THRESHOLDS: [u64; 3] = [50, 80, 100];

/// One alert waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: i64,
    /// The JSON event.
    pub body: String,
    pub attempts: u32,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tenant: &'a str,
    /// For a virtual key's own budget: the key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_key: Option<&'a str>,
    threshold_percent: u64,
    limit_usd: f64,
    spent_usd: f64,
    days: u16,
    at_ms: u64,
}

impl super::Tx<'_, '_> {
    /// See [`budget_alerts`].
    pub(super) fn budget_alerts(
        &self,
        tenant: &str,
        key: Option<&str>,
        state: &BudgetState,
    ) -> Result<()> {
        if let Some(w) = self.pg() {
            return pg::alerts::budget_alerts(&mut **w?, self.alerts, tenant, key, state);
        }
        budget_alerts(self.sqlite()?, self.alerts, tenant, key, state)
    }
}

/// Queues an alert for each threshold the spend of the tenant's budget (or
/// of its virtual key `key`'s) reached since the last, and re-arms the ones
/// it fell below (when alerts are `on`).
pub(super) fn budget_alerts(
    tx: &rusqlite::Transaction<'_>,
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
            "DELETE FROM budget_alerts WHERE tenant = ?1 AND threshold = ?2",
            "INSERT OR IGNORE INTO budget_alerts (tenant, threshold, fired_ms) VALUES (?1, ?2, ?3)",
            tenant,
        ),
        Some(k) => (
            "DELETE FROM key_budget_alerts WHERE key_id = ?1 AND threshold = ?2",
            "INSERT OR IGNORE INTO key_budget_alerts (key_id, threshold, fired_ms)
             VALUES (?1, ?2, ?3)",
            k,
        ),
    };
    let now = now_ms();
    for t in THRESHOLDS {
        if !reached(state, t) {
            tx.prepare_cached(forget)?
                .execute(params![name, to_i64(t)])?;
            continue;
        }
        let new = tx
            .prepare_cached(fire)?
            .execute(params![name, to_i64(t), to_i64(now)])?;
        if new == 0 {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO webhook_outbox (body, attempts, next_ms) VALUES (?1, 0, ?2)",
        )?
        .execute(params![event(tenant, key, t, state, now)?, to_i64(now)])?;
    }
    Ok(())
}

/// The spend of `state` has reached `threshold` percent of its limit.
pub(super) fn reached(state: &BudgetState, threshold: u64) -> bool {
    u128::from(state.spent_nusd) * 100 >= u128::from(state.limit.limit_nusd) * u128::from(threshold)
}

/// The JSON event an alert sends.
pub(super) fn event(
    tenant: &str,
    key: Option<&str>,
    threshold: u64,
    state: &BudgetState,
    now: u64,
) -> Result<String> {
    Ok(serde_json::to_string(&Event {
        kind: "budget.threshold",
        tenant,
        virtual_key: key,
        threshold_percent: threshold,
        limit_usd: state.limit.limit_nusd as f64 / 1e9,
        spent_usd: state.spent_nusd as f64 / 1e9,
        days: state.limit.days,
        at_ms: now,
    })?)
}

impl Db {
    /// Whether budget alerts are on (a webhook is configured).
    pub(super) fn alerts_on(&self) -> bool {
        self.0.alerts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Claims up to `limit` alerts due for delivery, oldest first: in one
    /// write transaction their next attempt moves `lease_ms` ahead, so no
    /// other control plane on the database takes them meanwhile; the
    /// claimer then ends each ([`Db::alert_done`]) or sets its retry
    /// ([`Db::alert_retry`]). A claimer that dies leaves them to be claimed
    /// again once the lease has passed (control-plane/README.md, "Replicas").
    pub async fn claim_alerts(&self, limit: usize, lease_ms: u64) -> Result<Vec<Alert>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::alerts::claim(w, limit, lease_ms))
                .await;
        }
        self.write(move |tx| {
            let now = now_ms();
            let claimed: Vec<Alert> = tx
                .prepare_cached(
                    "SELECT id, body, attempts FROM webhook_outbox WHERE next_ms <= ?1
                     ORDER BY next_ms, id LIMIT ?2",
                )?
                .query_map(params![to_i64(now), to_i64(limit as u64)], |r| {
                    Ok(Alert {
                        id: r.get(0)?,
                        body: r.get(1)?,
                        attempts: u32::try_from(to_u64(r.get(2)?)).unwrap_or(u32::MAX),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut lease =
                tx.prepare_cached("UPDATE webhook_outbox SET next_ms = ?2 WHERE id = ?1")?;
            for a in &claimed {
                lease.execute(params![a.id, to_i64(now.saturating_add(lease_ms))])?;
            }
            Ok(claimed)
        })
        .await
    }

    /// The webhook took an alert (or it is given up): it leaves the outbox.
    pub async fn alert_done(&self, id: i64) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| {
                    w.execute("DELETE FROM webhook_outbox WHERE id = $1", &[&id])?;
                    Ok(())
                })
                .await;
        }
        self.write(move |tx| {
            tx.execute("DELETE FROM webhook_outbox WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    /// A delivery failed: try again at `next_ms`.
    pub async fn alert_retry(&self, id: i64, attempts: u32, next_ms: u64) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| {
                    w.execute(
                        "UPDATE webhook_outbox SET attempts = $2, next_ms = $3 WHERE id = $1",
                        &[&id, &i64::from(attempts), &to_i64(next_ms)],
                    )?;
                    Ok(())
                })
                .await;
        }
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook_outbox SET attempts = ?2, next_ms = ?3 WHERE id = ?1",
                params![id, attempts, to_i64(next_ms)],
            )?;
            Ok(())
        })
        .await
    }
}
