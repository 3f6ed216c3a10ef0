//! What `/metrics` reads at scrape time beyond the usage rollup: each
//! tenant's own budget and its spend in the budget's window. One indexed
//! query; the window's spend is at most `days` rows of `usage_days` per
//! tenant.

use super::{Db, now_ms, to_u64};
use crate::error::Result;
use aipipe_core::budget::DAY_MS;

/// The most tenants whose budgets one scrape reports.
pub const MAX_BUDGET_SERIES: usize = 10_000;

/// A tenant's own budget and what its window spent, in nano-dollars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpend {
    pub tenant: String,
    pub limit_nusd: u64,
    pub spent_nusd: u64,
}

impl Db {
    /// Tenants with a budget of their own (the default's tenants are not
    /// listed: there may be millions), by id, at most
    /// [`MAX_BUDGET_SERIES`].
    pub async fn budget_spend(&self) -> Result<Vec<BudgetSpend>> {
        if self.postgres().is_some() {
            return self.pg_read(super::pg::usage_days::budget_spend).await;
        }
        let today = i64::try_from(now_ms() / DAY_MS).unwrap_or(i64::MAX);
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT b.tenant, b.limit_nusd,
                    COALESCE((SELECT SUM(d.cost_nusd) FROM usage_days d
                        WHERE d.tenant = b.tenant AND d.day > ?1 - b.days), 0)
                 FROM budgets b ORDER BY b.tenant LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![today, MAX_BUDGET_SERIES as i64], |r| {
                Ok(BudgetSpend {
                    tenant: r.get(0)?,
                    limit_nusd: to_u64(r.get(1)?),
                    spent_nusd: to_u64(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
