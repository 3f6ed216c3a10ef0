//! Usage by day (control-plane/README.md, "Usage by day"): what `GET /usage`
//! (a tenant's own, through Envoy), `GET /admin/usage` and `POST /admin/cost`
//! read and write — the `usage_days` rows ingest keeps.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::budgets::{budget_state, limit_of};
use super::tenants::tenant_exists;
use super::{Change, Db, now_ms, pg, record_change, to_i64, to_u64};
use crate::error::Result;
use aipipe_core::budget::DAY_MS;

/// One day of a tenant's usage.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DayUsage {
    /// UTC, `YYYY-MM-DD`.
    pub date: String,
    /// Dollars.
    pub cost: f64,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A tenant's usage over the last `days` days (today included), and its
/// budget.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct TenantUsage {
    pub tenant: String,
    pub days: u16,
    /// Dollars over the days.
    pub cost: f64,
    /// Days with usage, oldest first.
    pub usage: Vec<DayUsage>,
    /// The budget's limit in dollars (its own window); null without one.
    pub limit: Option<f64>,
    /// What the budget's window has left; null without a budget.
    pub remaining: Option<f64>,
}

/// `POST /admin/cost`'s answer.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct CostAdjustment {
    pub tenant: String,
    pub date: String,
    /// The day's cost before, in dollars.
    pub previous: f64,
    pub cost: f64,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number, `YYYY-MM-DD`.
pub fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A `YYYY-MM-DD` date's day number; None when it is not one.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    let day = days_from_civil(y, m, d);
    // Rejects 2026-02-30 and the like: the date must come back the same.
    (civil_from_days(day) == s).then_some(day)
}

pub(super) fn usd(nusd: u64) -> f64 {
    nusd as f64 / 1e9
}

fn tenant_usage(conn: &Connection, tenant: &str, days: u16) -> Result<TenantUsage> {
    let first = to_i64(now_ms() / DAY_MS) - i64::from(days) + 1;
    let mut st = conn.prepare_cached(
        "SELECT day, requests, prompt_tokens, completion_tokens, cost_nusd FROM usage_days
         WHERE tenant = ?1 AND day >= ?2 ORDER BY day",
    )?;
    let usage: Vec<(u64, DayUsage)> = st
        .query_map(params![tenant, first], |r| {
            let cost = to_u64(r.get(4)?);
            Ok((
                cost,
                DayUsage {
                    date: civil_from_days(r.get(0)?),
                    cost: usd(cost),
                    requests: to_u64(r.get(1)?),
                    prompt_tokens: to_u64(r.get(2)?),
                    completion_tokens: to_u64(r.get(3)?),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(TenantUsage::of(
        tenant,
        days,
        usage,
        budget_state(conn, tenant)?,
    ))
}

impl TenantUsage {
    /// A tenant's days (with their cost in nano-dollars) and its budget.
    pub(super) fn of(
        tenant: &str,
        days: u16,
        usage: Vec<(u64, DayUsage)>,
        budget: Option<super::budgets::BudgetState>,
    ) -> Self {
        let total = usage.iter().fold(0u64, |a, (c, _)| a.saturating_add(*c));
        TenantUsage {
            tenant: tenant.to_owned(),
            days,
            cost: usd(total),
            usage: usage.into_iter().map(|(_, d)| d).collect(),
            limit: budget.as_ref().map(|b| usd(b.limit.limit_nusd)),
            remaining: budget.map(|b| usd(b.limit.limit_nusd.saturating_sub(b.spent_nusd))),
        }
    }
}

impl Db {
    /// A tenant's usage by day; None when it does not exist.
    pub async fn tenant_usage(&self, tenant: String, days: u16) -> Result<Option<TenantUsage>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::usage_days::tenant_usage(tx, &tenant, days))
                .await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            tenant_usage(tx, &tenant, days).map(Some)
        })
        .await
    }

    /// The tenant a live virtual key (by its hex SHA-256) belongs to.
    pub async fn tenant_of_key(&self, hash: String) -> Result<Option<String>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::usage_days::tenant_of_key(tx, &hash))
                .await;
        }
        self.read(move |tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT tenant FROM virtual_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                )?
                .query_row([hash], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    /// Every tenant's usage by day (tenants with usage in the window or a
    /// budget), by tenant id.
    pub async fn all_usage(&self, days: u16) -> Result<Vec<TenantUsage>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::usage_days::all_usage(tx, days))
                .await;
        }
        self.read(move |tx| {
            let first = to_i64(now_ms() / DAY_MS) - i64::from(days) + 1;
            let ids: Vec<String> = tx
                .prepare(
                    "SELECT id FROM tenants WHERE id IN
                        (SELECT tenant FROM usage_days WHERE day >= ?1)
                     OR id IN (SELECT tenant FROM budgets) ORDER BY id",
                )?
                .query_map([first], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            ids.iter().map(|id| tenant_usage(tx, id, days)).collect()
        })
        .await
    }

    /// Overwrites a day's cost of a tenant (an operator's correction),
    /// keeping the value it replaced; the tenant's budget entry follows.
    /// None when the tenant does not exist.
    pub async fn adjust_cost(
        &self,
        tenant: String,
        day: i64,
        cost_nusd: u64,
    ) -> Result<Option<CostAdjustment>> {
        let alerts = self.alerts_on();
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::usage_days::adjust_cost(w, alerts, tenant, day, cost_nusd))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let previous: u64 = tx
                .query_row(
                    "SELECT cost_nusd FROM usage_days WHERE tenant = ?1 AND day = ?2",
                    params![tenant, day],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map_or(0, to_u64);
            tx.execute(
                "INSERT INTO usage_days (tenant, day, requests, prompt_tokens, completion_tokens,
                    cost_nusd) VALUES (?1, ?2, 0, 0, 0, ?3)
                 ON CONFLICT (tenant, day) DO UPDATE SET cost_nusd = excluded.cost_nusd",
                params![tenant, day, to_i64(cost_nusd)],
            )?;
            tx.execute(
                "INSERT INTO cost_adjustments (tenant, day, previous_nusd, cost_nusd, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    tenant,
                    day,
                    to_i64(previous),
                    to_i64(cost_nusd),
                    to_i64(now_ms())
                ],
            )?;
            if limit_of(tx, &tenant)?.is_some() {
                record_change(tx, Change::Budget(&tenant))?;
                if let Some(state) = budget_state(tx, &tenant)? {
                    super::alerts::budget_alerts(tx, alerts, &tenant, None, &state)?;
                }
            }
            Ok(Some(CostAdjustment {
                date: civil_from_days(day),
                previous: usd(previous),
                cost: usd(cost_nusd),
                tenant,
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_impossible_ones_are_refused() {
        assert_eq!(civil_from_days(0), "1970-01-01");
        assert_eq!(days_from_civil(2026, 12, 4), 20_791);
        assert_eq!(civil_from_days(20_791), "2026-12-04");
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        for bad in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-1-01",
            "x",
            "2026-12-04T",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for d in -1000..30_000 {
            assert_eq!(parse_date(&civil_from_days(d)), Some(d));
        }
    }
}
