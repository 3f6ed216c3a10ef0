//! Budgets in the request flow (the rules are `crate::budget`'s): find a
//! tenant's budget and its virtual key's, reserve a request's worst case before it goes upstream,
//! settle the reservation when its usage record is written.

use super::host::{Host, HostError, now_ms};
use crate::budget::{self, Held};
use crate::config::BudgetConfig;
use crate::contract::{KEY_RESERVATIONS_PREFIX, RESERVATION_NOTICE, RESERVATIONS_PREFIX};
use crate::directory::{self, BudgetEntry};
use crate::error::ApiError;
use crate::table::Table;
use crate::usage::UsageRecord;

/// Compare-and-swap rounds before a budget update gives up.
const CAS_ROUNDS: usize = 32;

/// Whose budget: a tenant's, or one of its virtual keys' (by key id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope<'a> {
    Tenant(&'a str),
    Key(&'a str),
}

impl<'a> Scope<'a> {
    /// The shared-data key of this Envoy's held spend of it.
    pub(crate) fn held_key(self) -> String {
        match self {
            Scope::Tenant(id) => format!("{RESERVATIONS_PREFIX}{id}"),
            Scope::Key(id) => format!("{KEY_RESERVATIONS_PREFIX}{id}"),
        }
    }

    fn id(self) -> &'a str {
        match self {
            Scope::Tenant(id) | Scope::Key(id) => id,
        }
    }

    fn whose(self) -> &'static str {
        match self {
            Scope::Tenant(_) => "tenant",
            Scope::Key(_) => "virtual key",
        }
    }
}

/// The budget of `scope`: its entry; for a tenant without one, the table's
/// default (a tenant that has not spent in the window yet). None: no
/// budget applies.
pub(super) fn budget_of(host: &impl Host, table: &Table, scope: Scope<'_>) -> Option<BudgetEntry> {
    let name = match scope {
        Scope::Tenant(id) => directory::budget_key(id),
        Scope::Key(id) => directory::key_budget_key(id),
    };
    let (bytes, _) = host.shared_get(&name);
    let blocked = BudgetEntry {
        rev: 0,
        removed: false,
        limit_nusd: 0,
        days: 1,
        spent_nusd: 0,
        frees: Vec::new(),
    };
    match bytes.map(|b| BudgetEntry::decode(&b)) {
        Some(Ok(e)) => (!e.removed).then_some(e),
        // Written by the singleton only after it decoded: cannot happen;
        // refuse rather than spend without a limit.
        Some(Err(_)) => Some(blocked),
        None => match scope {
            Scope::Tenant(_) => table.budget_default.map(|d| BudgetEntry {
                limit_nusd: d.limit_nusd,
                days: d.days,
                ..blocked
            }),
            Scope::Key(_) => None,
        },
    }
}

/// Applies `f` to the held spend under `key` ([`Scope::held_key`]) with
/// compare-and-swap (every worker and the singleton update it). `f` may be
/// called more than once (once per round). False when it could not be
/// written.
pub(crate) fn update_held(host: &impl Host, key: &str, mut f: impl FnMut(&mut Held)) -> bool {
    try_update_held(host, key, |h| {
        f(h);
        Ok::<(), ()>(())
    })
    .is_ok_and(|written| written)
}

/// As [`update_held`], with `f` able to refuse (nothing written). Ok(false)
/// when the store would not take the write.
fn try_update_held<E>(
    host: &impl Host,
    key: &str,
    mut f: impl FnMut(&mut Held) -> Result<(), E>,
) -> Result<bool, E> {
    for _ in 0..CAS_ROUNDS {
        let (bytes, cas) = host.shared_get(key);
        let mut held = bytes.and_then(|b| Held::decode(&b)).unwrap_or_default();
        f(&mut held)?;
        match host.shared_set(key, &held.encode(), cas) {
            Ok(()) => return Ok(true),
            Err(HostError::CasMismatch) => continue,
            Err(e) => {
                log::warn!("budget state {key} not written: {e:?}");
                return Ok(false);
            }
        }
    }
    log::warn!("budget state {key}: too many concurrent writers");
    Ok(false)
}

/// What a request reserved: of its tenant's budget, of its virtual key's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reserved {
    pub tenant: Option<u64>,
    pub key: Option<u64>,
}

/// Reserves the request's worst case (`cost`, computed only when a budget
/// applies) of its tenant's budget and of its virtual key's, or refuses it
/// with nothing held.
pub(super) fn reserve(
    host: &impl Host,
    config: &BudgetConfig,
    table: &Table,
    tenant: &str,
    key: Option<&str>,
    cost: impl FnOnce() -> u64,
) -> Result<Reserved, ApiError> {
    let tenant_entry = budget_of(host, table, Scope::Tenant(tenant));
    let key_entry = key.and_then(|k| Some((k, budget_of(host, table, Scope::Key(k))?)));
    if tenant_entry.is_none() && key_entry.is_none() {
        return Ok(Reserved::default());
    }
    let cost = cost();
    let mut reserved = Reserved::default();
    if let Some(entry) = &tenant_entry {
        reserve_in(host, config, entry, Scope::Tenant(tenant), cost)?;
        reserved.tenant = Some(cost);
    }
    if let Some((k, entry)) = &key_entry {
        if let Err(e) = reserve_in(host, config, entry, Scope::Key(k), cost) {
            hand_back(host, tenant, key, reserved);
            return Err(e);
        }
        reserved.key = Some(cost);
    }
    Ok(reserved)
}

/// Reserves `cost` of `scope`'s budget `entry`, or refuses the request.
fn reserve_in(
    host: &impl Host,
    config: &BudgetConfig,
    entry: &BudgetEntry,
    scope: Scope<'_>,
    cost: u64,
) -> Result<(), ApiError> {
    let now = now_ms(host);
    let key = scope.held_key();
    let mut idle = false;
    let written = try_update_held(host, &key, |held| {
        budget::admit(entry, held, config.fleet_size, cost, now)?;
        idle = held.outstanding() == 0;
        held.inflight_nusd = held.inflight_nusd.saturating_add(cost);
        Ok(())
    })
    .map_err(|r| refusal(&r, scope, cost))?;
    if written {
        if idle {
            // The singleton watches it from now until nothing is held.
            let mut notice = Vec::with_capacity(1 + key.len());
            notice.push(RESERVATION_NOTICE);
            notice.extend_from_slice(key.as_bytes());
            if let Err(e) = host.enqueue_usage(&notice) {
                log::debug!("reservation notice for {key} not queued: {e:?}");
            }
        }
        Ok(())
    } else {
        // Never forward what could not be counted.
        Err(ApiError::Internal(format!(
            "the budget reservation of {} {} could not be written",
            scope.whose(),
            scope.id()
        )))
    }
}

/// A request that reserved and never went upstream gives it all back.
pub(super) fn hand_back(host: &impl Host, tenant: &str, key: Option<&str>, reserved: Reserved) {
    settle_scopes(host, tenant, key, reserved, 0);
}

fn settle_scopes(host: &impl Host, tenant: &str, key: Option<&str>, r: Reserved, cost: u64) {
    if let Some(n) = r.tenant {
        update_held(host, &Scope::Tenant(tenant).held_key(), |h| {
            h.settle(n, cost)
        });
    }
    if let (Some(n), Some(k)) = (r.key, key) {
        update_held(host, &Scope::Key(k).held_key(), |h| h.settle(n, cost));
    }
}

fn refusal(r: &budget::Refusal, scope: Scope<'_>, cost: u64) -> ApiError {
    let limit = budget::usd(r.limit_nusd);
    let days = r.days;
    let whose = scope.whose();
    let message = if r.limit_nusd == 0 {
        format!(
            "This {whose}'s budget is $0 per {days} days: requests are blocked. Ask your aipipe operator to raise it."
        )
    } else if r.never {
        format!(
            "This request may cost up to ${} (its prompt and max_tokens at the model's prices), more than this gateway can reserve of this {whose}'s budget of ${limit} per {days} days. Lower max_tokens or shorten the request.",
            budget::usd(cost)
        )
    } else {
        format!(
            "This {whose}'s budget of ${limit} per {days} days is spent (this request may cost up to ${}). Retry after {} seconds, when enough of the window frees up, or ask your aipipe operator to raise it.",
            budget::usd(cost),
            r.retry_after_s
        )
    };
    ApiError::BudgetExceeded {
        message,
        retry_after_s: r.retry_after_s,
    }
}

/// The request behind `record` ended: its reservations (if it had any) are
/// settled with the record's exact cost.
pub(super) fn settle(host: &impl Host, record: &UsageRecord) {
    let reserved = Reserved {
        tenant: record.reserved_nusd,
        key: record.key_reserved_nusd,
    };
    let key = record.virtual_key.as_deref();
    settle_scopes(host, &record.tenant, key, reserved, record.cost_nusd);
}
