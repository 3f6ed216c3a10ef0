//! Budgets (control-plane/README.md, "Budgets"): each tenant's limit over a
//! window of whole UTC days (its own, or the default), its spend per day,
//! and the state the filters get in the tenant's budget entry.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::limits::key_hash;
use super::tenants::tenant_exists;
use super::{Change, Db, now_ms, pg, record_change, to_i64, to_u64};
use crate::error::Result;
use aipipe_core::budget::DAY_MS;
use aipipe_core::usage::UsageRecord;

/// A limit over a window of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub limit_nusd: u64,
    pub days: u16,
}

/// A tenant's budget as the filters hold it (`directory::BudgetEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetState {
    pub limit: Limit,
    pub spent_nusd: u64,
    /// (unix ms at which it leaves the window, nano-dollars), oldest first.
    pub frees: Vec<(u64, u64)>,
}

/// `GET /admin/tenants/{id}/budget`.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BudgetView {
    pub tenant: String,
    pub limit_usd: f64,
    pub days: u16,
    /// The virtual key's id, for a key's own budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_key: Option<String>,
    /// "tenant" (its own), "default", or "virtual_key" (a key's own).
    pub source: &'static str,
    /// Spend recorded in the window (today and the `days - 1` before, UTC).
    pub spent_usd: f64,
    /// Held by requests in flight: their worst cases, reserved in the
    /// Envoys that reported in the last 30 s (each reports every 10 s while
    /// any are held, and whenever they change).
    pub reserved_usd: f64,
    /// The limit less what is spent and reserved (never below 0).
    pub remaining_usd: f64,
    /// When the oldest day with spend leaves the window (unix ms); null
    /// without spend.
    pub next_free_ms: Option<u64>,
}

fn day_of(ms: u64) -> i64 {
    to_i64(ms / DAY_MS)
}

pub(super) fn own_limit(conn: &Connection, tenant: &str) -> Result<Option<Limit>> {
    Ok(conn
        .prepare_cached("SELECT limit_nusd, days FROM budgets WHERE tenant = ?1")?
        .query_row([tenant], |r| {
            Ok(Limit {
                limit_nusd: to_u64(r.get(0)?),
                days: u16::try_from(r.get::<_, i64>(1)?).unwrap_or(1),
            })
        })
        .optional()?)
}

pub(super) fn default_limit(conn: &Connection) -> Result<Option<Limit>> {
    let get = |key: &str| -> Result<Option<i64>> {
        Ok(conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    };
    Ok(
        match (get("budget_default_nusd")?, get("budget_default_days")?) {
            (Some(l), Some(d)) => Some(Limit {
                limit_nusd: to_u64(l),
                days: u16::try_from(d).unwrap_or(1),
            }),
            _ => None,
        },
    )
}

/// The limit that applies to a tenant and where it comes from.
pub(super) fn limit_of(conn: &Connection, tenant: &str) -> Result<Option<(Limit, &'static str)>> {
    if let Some(l) = own_limit(conn, tenant)? {
        return Ok(Some((l, "tenant")));
    }
    Ok(default_limit(conn)?.map(|l| (l, "default")))
}

/// A virtual key's own budget.
fn key_limit(conn: &Connection, key_id: &str) -> Result<Option<Limit>> {
    Ok(conn
        .prepare_cached("SELECT limit_nusd, days FROM key_budgets WHERE key_id = ?1")?
        .query_row([key_id], |r| {
            Ok(Limit {
                limit_nusd: to_u64(r.get(0)?),
                days: u16::try_from(r.get::<_, i64>(1)?).unwrap_or(1),
            })
        })
        .optional()?)
}

/// The spend per day of a window of `days` ending today: a tenant's
/// (`usage_days`) or a virtual key's (`usage_key_days`).
fn window(conn: &Connection, of: Of<'_>, days: u16, now: u64) -> Result<Vec<(i64, u64)>> {
    let first = first_day(days, now);
    let (sql, name) = match of {
        Of::Tenant(t) => (
            "SELECT day, cost_nusd FROM usage_days WHERE tenant = ?1 AND day >= ?2 ORDER BY day",
            t,
        ),
        Of::Key(k) => (
            "SELECT day, cost_nusd FROM usage_key_days WHERE key_id = ?1 AND day >= ?2 ORDER BY day",
            k,
        ),
    };
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params![name, first], |r| {
        Ok((r.get::<_, i64>(0)?, to_u64(r.get(1)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whose spend: a tenant's or a virtual key's (by id).
#[derive(Debug, Clone, Copy)]
enum Of<'a> {
    Tenant(&'a str),
    Key(&'a str),
}

/// `limit` with the spend of its window now.
fn state_of(conn: &Connection, of: Of<'_>, limit: Limit) -> Result<BudgetState> {
    Ok(state_from(limit, &window(conn, of, limit.days, now_ms())?))
}

/// The first day of a window of `days` ending on the day of `now`.
pub(super) fn first_day(days: u16, now: u64) -> i64 {
    day_of(now) - i64::from(days) + 1
}

/// `limit` with the spend of its window: (day, nano-dollars), oldest first.
pub(super) fn state_from(limit: Limit, days: &[(i64, u64)]) -> BudgetState {
    BudgetState {
        limit,
        spent_nusd: days.iter().fold(0u64, |a, (_, c)| a.saturating_add(*c)),
        frees: days
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|&(d, c)| (to_u64(d + i64::from(limit.days)) * DAY_MS, c))
            .collect(),
    }
}

/// The tenant's budget state now; None when no budget applies (or the
/// tenant does not exist).
pub(super) fn budget_state(conn: &Connection, tenant: &str) -> Result<Option<BudgetState>> {
    if !tenant_exists(conn, tenant)? {
        return Ok(None);
    }
    let Some((limit, _)) = limit_of(conn, tenant)? else {
        return Ok(None);
    };
    Ok(Some(state_of(conn, Of::Tenant(tenant), limit)?))
}

/// A live virtual key's budget state now; None when it has no budget of
/// its own (or is revoked or gone).
pub(super) fn key_budget_state(conn: &Connection, key_id: &str) -> Result<Option<BudgetState>> {
    let live: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE id = ?1 AND revoked_at IS NULL)",
        )?
        .query_row([key_id], |r| r.get(0))?;
    if !live {
        return Ok(None);
    }
    let Some(limit) = key_limit(conn, key_id)? else {
        return Ok(None);
    };
    Ok(Some(state_of(conn, Of::Key(key_id), limit)?))
}

impl super::Tx<'_, '_> {
    /// Adds new records to their tenants' days and their virtual keys';
    /// records a budget change for each tenant or key a budget applies to
    /// whose spend moved. Returns those tenants.
    pub fn add_usage_days(&self, records: &[&UsageRecord]) -> Result<Vec<String>> {
        if let Some(w) = self.pg() {
            return pg::budgets::add_usage_days(&mut **w?, self.alerts, records);
        }
        self.add_key_days(records)?;
        let tx = self.sqlite()?;
        let mut add = tx.prepare_cached(
            "INSERT INTO usage_days (tenant, day, requests, prompt_tokens, completion_tokens,
                cost_nusd)
             VALUES (?1, ?2, 1, ?3, ?4, ?5)
             ON CONFLICT (tenant, day) DO UPDATE SET requests = requests + 1,
                prompt_tokens = MIN(prompt_tokens + excluded.prompt_tokens, 9223372036854775807),
                completion_tokens = MIN(completion_tokens + excluded.completion_tokens,
                    9223372036854775807),
                cost_nusd = MIN(cost_nusd + excluded.cost_nusd, 9223372036854775807)",
        )?;
        let mut moved: Vec<String> = Vec::new();
        let has_default = default_limit(tx)?.is_some();
        for r in records {
            add.execute(params![
                r.tenant,
                day_of(r.ts_ms),
                to_i64(r.prompt_tokens),
                to_i64(r.completion_tokens),
                to_i64(r.cost_nusd)
            ])?;
            let tenant = r.tenant.as_str();
            if r.cost_nusd == 0 {
                continue;
            }
            if !moved.iter().any(|t| t == tenant)
                && (has_default || own_limit(tx, tenant)?.is_some())
            {
                moved.push(tenant.to_owned());
            }
        }
        for tenant in &moved {
            record_change(tx, Change::Budget(tenant))?;
            if let Some(state) = budget_state(tx, tenant)? {
                self.budget_alerts(tenant, None, &state)?;
            }
        }
        Ok(moved)
    }
}

impl super::Tx<'_, '_> {
    fn add_key_days(&self, records: &[&UsageRecord]) -> Result<()> {
        let tx = self.sqlite()?;
        let mut add = tx.prepare_cached(
            "INSERT INTO usage_key_days (key_id, day, requests, cost_nusd) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (key_id, day) DO UPDATE SET requests = requests + 1,
                cost_nusd = MIN(cost_nusd + excluded.cost_nusd, 9223372036854775807)",
        )?;
        // (key id, its tenant)
        let mut moved: Vec<(&str, &str)> = Vec::new();
        for r in records {
            let Some(key) = r.virtual_key.as_deref() else {
                continue;
            };
            add.execute(params![key, day_of(r.ts_ms), to_i64(r.cost_nusd)])?;
            if r.cost_nusd > 0
                && !moved.iter().any(|(k, _)| *k == key)
                && key_limit(tx, key)?.is_some()
            {
                moved.push((key, &r.tenant));
            }
        }
        for (key, tenant) in moved {
            record_change(tx, Change::KeyBudget(key))?;
            if let Some(state) = key_budget_state(tx, key)? {
                self.budget_alerts(tenant, Some(key), &state)?;
            }
        }
        Ok(())
    }
}

/// Every tenant that has spend or a budget of its own: what a change of
/// the default touches.
fn tenants_under_default(tx: &Transaction<'_>) -> Result<Vec<String>> {
    let mut st = tx.prepare(
        "SELECT id FROM tenants WHERE id NOT IN (SELECT tenant FROM budgets)
            AND id IN (SELECT tenant FROM usage_days)",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn view(conn: &Connection, tenant: &str) -> Result<Option<BudgetView>> {
    let Some((limit, source)) = limit_of(conn, tenant)? else {
        return Ok(None);
    };
    let state = state_of(conn, Of::Tenant(tenant), limit)?;
    Ok(Some(BudgetView::of(tenant, None, source, &state)))
}

/// A virtual key's own budget with its spend.
fn key_view(conn: &Connection, tenant: &str, key_id: &str) -> Result<Option<BudgetView>> {
    Ok(key_budget_state(conn, key_id)?
        .map(|state| BudgetView::of(tenant, Some(key_id), "virtual_key", &state)))
}

impl BudgetView {
    /// A budget with its spend (nothing reserved yet: see `with_reserved`).
    pub(super) fn of(
        tenant: &str,
        key: Option<&str>,
        source: &'static str,
        state: &BudgetState,
    ) -> Self {
        let usd = |n: u64| n as f64 / 1e9;
        BudgetView {
            tenant: tenant.to_owned(),
            virtual_key: key.map(str::to_owned),
            limit_usd: usd(state.limit.limit_nusd),
            days: state.limit.days,
            source,
            spent_usd: usd(state.spent_nusd),
            reserved_usd: 0.0,
            remaining_usd: usd(state.limit.limit_nusd.saturating_sub(state.spent_nusd)),
            next_free_ms: state.frees.first().map(|(at, _)| *at),
        }
    }

    /// With what the Envoys hold reserved of it (nano-dollars).
    pub fn with_reserved(mut self, nusd: u64) -> Self {
        self.reserved_usd = nusd as f64 / 1e9;
        self.remaining_usd = ((self.limit_usd - self.spent_usd - self.reserved_usd) * 1e9)
            .round()
            .max(0.0)
            / 1e9;
        self
    }
}

/// What a budget write found.
#[derive(Debug, PartialEq)]
pub enum BudgetWrite {
    Done(Option<BudgetView>),
    NoTenant,
    /// The tenant has no live virtual key of that id.
    NoKey,
}

impl Db {
    /// The budget that applies to a tenant, with its spend; Done(None) when
    /// none does.
    pub async fn budget(&self, tenant: String) -> Result<BudgetWrite> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::budgets::budget(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(BudgetWrite::NoTenant);
            }
            Ok(BudgetWrite::Done(view(tx, &tenant)?))
        })
        .await
    }

    /// Sets (Some) or removes (None) a tenant's own budget.
    pub async fn set_budget(&self, tenant: String, limit: Option<Limit>) -> Result<BudgetWrite> {
        if self.postgres().is_some() {
            let alerts = self.alerts_on();
            return self
                .pg_write(move |w| pg::budgets::set_budget(w, alerts, &tenant, limit))
                .await;
        }
        let alerts = self.alerts_on();
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(BudgetWrite::NoTenant);
            }
            let changed = match limit {
                Some(l) => tx.execute(
                    "INSERT INTO budgets (tenant, limit_nusd, days, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant) DO UPDATE SET limit_nusd = excluded.limit_nusd,
                        days = excluded.days, updated_ms = excluded.updated_ms",
                    params![tenant, to_i64(l.limit_nusd), l.days, to_i64(now_ms())],
                )?,
                None => tx.execute("DELETE FROM budgets WHERE tenant = ?1", [&tenant])?,
            };
            if changed > 0 {
                record_change(tx, Change::Budget(&tenant))?;
                // A lower limit may cross a threshold; a higher one re-arms.
                if let Some(state) = budget_state(tx, &tenant)? {
                    super::alerts::budget_alerts(tx, alerts, &tenant, None, &state)?;
                }
            }
            Ok(BudgetWrite::Done(view(tx, &tenant)?))
        })
        .await
    }

    /// A virtual key's own budget, with its spend; Done(None) when it has
    /// none.
    pub async fn key_budget(&self, tenant: String, key_id: String) -> Result<BudgetWrite> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::budgets::key_budget(tx, &tenant, &key_id))
                .await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(BudgetWrite::NoTenant);
            }
            if key_hash(tx, &tenant, &key_id)?.is_none() {
                return Ok(BudgetWrite::NoKey);
            }
            Ok(BudgetWrite::Done(key_view(tx, &tenant, &key_id)?))
        })
        .await
    }

    /// Sets (Some) or removes (None) a virtual key's own budget; its entry
    /// goes to every Envoy (on top of the tenant's budget, which still
    /// applies).
    pub async fn set_key_budget(
        &self,
        tenant: String,
        key_id: String,
        limit: Option<Limit>,
    ) -> Result<BudgetWrite> {
        if self.postgres().is_some() {
            let alerts = self.alerts_on();
            return self
                .pg_write(move |w| pg::budgets::set_key_budget(w, alerts, &tenant, &key_id, limit))
                .await;
        }
        let alerts = self.alerts_on();
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(BudgetWrite::NoTenant);
            }
            let Some(hash) = key_hash(tx, &tenant, &key_id)? else {
                return Ok(BudgetWrite::NoKey);
            };
            let changed = match limit {
                Some(l) => tx.execute(
                    "INSERT INTO key_budgets (key_id, limit_nusd, days, updated_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key_id) DO UPDATE SET limit_nusd = excluded.limit_nusd,
                        days = excluded.days, updated_ms = excluded.updated_ms",
                    params![key_id, to_i64(l.limit_nusd), l.days, to_i64(now_ms())],
                )?,
                None => tx.execute("DELETE FROM key_budgets WHERE key_id = ?1", [&key_id])?,
            };
            if changed > 0 {
                // The key's entry says whether it has a budget (requests
                // look for one only then), its budget entry what it is.
                record_change(tx, Change::Key(&hash))?;
                record_change(tx, Change::KeyBudget(&key_id))?;
                if let Some(state) = key_budget_state(tx, &key_id)? {
                    super::alerts::budget_alerts(tx, alerts, &tenant, Some(&key_id), &state)?;
                }
            }
            Ok(BudgetWrite::Done(key_view(tx, &tenant, &key_id)?))
        })
        .await
    }

    /// The default budget (every tenant without its own).
    pub async fn budget_default(&self) -> Result<Option<Limit>> {
        if self.postgres().is_some() {
            return self.pg_read(pg::budgets::default_limit).await;
        }
        self.read(|tx| default_limit(tx)).await
    }

    /// Sets (Some) or removes (None) the default budget: the global table
    /// carries it, and each tenant under it with spend gets a new entry.
    pub async fn set_budget_default(&self, limit: Option<Limit>) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::budgets::set_default(w, limit))
                .await;
        }
        self.write(move |tx| {
            match limit {
                Some(l) => {
                    for (key, v) in [
                        ("budget_default_nusd", to_i64(l.limit_nusd)),
                        ("budget_default_days", i64::from(l.days)),
                    ] {
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES (?1, ?2)
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            params![key, v],
                        )?;
                    }
                }
                None => {
                    tx.execute(
                        "DELETE FROM meta WHERE key IN ('budget_default_nusd', 'budget_default_days')",
                        [],
                    )?;
                }
            }
            record_change(tx, Change::Global)?;
            for tenant in tenants_under_default(tx)? {
                record_change(tx, Change::Budget(&tenant))?;
            }
            Ok(())
        })
        .await
    }
}
