//! Budgets in the request flow (the rules are `crate::budget`'s): find a
//! tenant's budget, reserve a request's worst case before it goes upstream,
//! settle the reservation when its usage record is written.

use super::host::{Host, HostError, now_ms};
use crate::budget::{self, Held};
use crate::config::BudgetConfig;
use crate::contract::RESERVATIONS_PREFIX;
use crate::directory::{self, BudgetEntry};
use crate::error::ApiError;
use crate::table::Table;
use crate::usage::UsageRecord;

/// Compare-and-swap rounds before a budget update gives up.
const CAS_ROUNDS: usize = 32;

/// The tenant's budget: its entry, or the table's default when the control
/// plane wrote none (a tenant that has not spent in the window yet). None:
/// no budget applies.
pub(super) fn budget_of(host: &impl Host, table: &Table, tenant: &str) -> Option<BudgetEntry> {
    let (bytes, _) = host.shared_get(&directory::budget_key(tenant));
    match bytes.map(|b| BudgetEntry::decode(&b)) {
        Some(Ok(e)) => (!e.removed).then_some(e),
        // Written by the singleton only after it decoded: cannot happen;
        // refuse rather than spend without a limit.
        Some(Err(_)) => Some(BudgetEntry {
            rev: 0,
            removed: false,
            limit_nusd: 0,
            days: 1,
            spent_nusd: 0,
            frees: Vec::new(),
        }),
        None => table.budget_default.map(|d| BudgetEntry {
            rev: 0,
            removed: false,
            limit_nusd: d.limit_nusd,
            days: d.days,
            spent_nusd: 0,
            frees: Vec::new(),
        }),
    }
}

fn held_key(tenant: &str) -> String {
    format!("{RESERVATIONS_PREFIX}{tenant}")
}

/// Applies `f` to the tenant's held spend with compare-and-swap (every
/// worker and the singleton update it). `f` may be called more than once
/// (once per round). False when it could not be written.
pub(crate) fn update_held(host: &impl Host, tenant: &str, mut f: impl FnMut(&mut Held)) -> bool {
    try_update_held(host, tenant, |h| {
        f(h);
        Ok::<(), ()>(())
    })
    .is_ok_and(|written| written)
}

/// As [`update_held`], with `f` able to refuse (nothing written). Ok(false)
/// when the store would not take the write.
fn try_update_held<E>(
    host: &impl Host,
    tenant: &str,
    mut f: impl FnMut(&mut Held) -> Result<(), E>,
) -> Result<bool, E> {
    let key = held_key(tenant);
    for _ in 0..CAS_ROUNDS {
        let (bytes, cas) = host.shared_get(&key);
        let mut held = bytes.and_then(|b| Held::decode(&b)).unwrap_or_default();
        f(&mut held)?;
        match host.shared_set(&key, &held.encode(), cas) {
            Ok(()) => return Ok(true),
            Err(HostError::CasMismatch) => continue,
            Err(e) => {
                log::warn!("budget state of {tenant} not written: {e:?}");
                return Ok(false);
            }
        }
    }
    log::warn!("budget state of {tenant}: too many concurrent writers");
    Ok(false)
}

/// Reserves `cost` of `tenant`'s budget `entry`, or refuses the request.
pub(super) fn reserve(
    host: &impl Host,
    config: &BudgetConfig,
    entry: &BudgetEntry,
    tenant: &str,
    cost: u64,
) -> Result<(), ApiError> {
    let now = now_ms(host);
    let written = try_update_held(host, tenant, |held| {
        budget::admit(entry, held, config.fleet_size, cost, now)?;
        held.inflight_nusd = held.inflight_nusd.saturating_add(cost);
        Ok(())
    })
    .map_err(|r| refusal(&r, cost))?;
    if written {
        Ok(())
    } else {
        // Never forward what could not be counted.
        Err(ApiError::Internal(format!(
            "the budget reservation of tenant {tenant} could not be written"
        )))
    }
}

fn refusal(r: &budget::Refusal, cost: u64) -> ApiError {
    let limit = budget::usd(r.limit_nusd);
    let days = r.days;
    let message = if r.limit_nusd == 0 {
        format!(
            "This tenant's budget is $0 per {days} days: requests are blocked. Ask your aipipe operator to raise it."
        )
    } else if r.never {
        format!(
            "This request may cost up to ${} (its prompt and max_tokens at the model's prices), more than this gateway can reserve of this tenant's budget of ${limit} per {days} days. Lower max_tokens or shorten the request.",
            budget::usd(cost)
        )
    } else {
        format!(
            "This tenant's budget of ${limit} per {days} days is spent (this request may cost up to ${}). Retry after {} seconds, when enough of the window frees up, or ask your aipipe operator to raise it.",
            budget::usd(cost),
            r.retry_after_s
        )
    };
    ApiError::BudgetExceeded {
        message,
        retry_after_s: r.retry_after_s,
    }
}

/// The request behind `record` ended: its reservation (if it had one) is
/// settled with the record's exact cost.
pub(super) fn settle(host: &impl Host, record: &UsageRecord) {
    if let Some(reserved) = record.reserved_nusd {
        update_held(host, &record.tenant, |h| {
            h.settle(reserved, record.cost_nusd)
        });
    }
}
