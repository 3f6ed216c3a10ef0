//! The change log (control-plane/README.md, "Change log"): every write that
//! reaches the filters records what it changed, at a new revision, in the
//! same transaction; [`Db::changes_since`] reads back everything changed after
//! a revision, each thing in its current state, a page at a time.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::budgets::{BudgetState, Limit, budget_state, default_limit, key_budget_state};
use super::catalog::{models, router_model};
use super::penalties::penalty_rows;
use super::{Db, penalty_epoch, pg, to_i64, to_u64, version};
use crate::error::Result;
use aipipe_core::ratelimit::Limits;
use aipipe_core::table::Model;

/// What a change is about.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    /// The catalog, penalties or anything else every request needs.
    Global,
    Tenant(&'a str),
    /// A virtual key, by its hash.
    Key(&'a str),
    /// A tenant's budget or its spend, by tenant id.
    Budget(&'a str),
    /// A virtual key's budget or its spend, by key id.
    KeyBudget(&'a str),
}

/// The `kind` column's values.
pub(super) const GLOBAL: i64 = 0;
pub(super) const TENANT: i64 = 1;
const KEY: i64 = 2;
pub(super) const BUDGET: i64 = 3;
pub(super) const KEY_BUDGET: i64 = 4;

impl<'a> Change<'a> {
    /// Its row's key: (`kind`, `name`).
    pub(super) fn row(self) -> (i64, &'a str) {
        match self {
            Change::Global => (GLOBAL, ""),
            Change::Tenant(id) => (TENANT, id),
            Change::Key(hash) => (KEY, hash),
            Change::Budget(id) => (BUDGET, id),
            Change::KeyBudget(id) => (KEY_BUDGET, id),
        }
    }
}

/// Bumps the revision and moves the changed thing's row to it. Returns the
/// new revision.
pub(super) fn record_change(tx: &Transaction<'_>, change: Change<'_>) -> Result<u64> {
    let rev: i64 = tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'table_version' RETURNING value",
        [],
        |r| r.get(0),
    )?;
    let (kind, name) = change.row();
    tx.prepare_cached(
        "INSERT INTO changes (kind, name, rev) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, name) DO UPDATE SET rev = excluded.rev",
    )?
    .execute(params![kind, name, rev])?;
    Ok(to_u64(rev))
}

/// The global table's parts as of one revision.
#[derive(Debug)]
pub struct GlobalState {
    /// The revision of the last global change: the table's version.
    pub version: u64,
    pub models: Vec<Model>,
    /// (provider, model, key tag, penalty) as published; the tag is empty
    /// for a model's own penalty.
    pub penalties: Vec<(String, String, String, f64)>,
    pub penalty_epoch: u64,
    /// The budget of tenants without their own.
    pub budget_default: Option<Limit>,
    /// The router model's blob in base64, when an operator set one; None:
    /// the filter's built-in model (`Db::set_router_model`).
    pub router_model: Option<String>,
}

/// A live virtual key as the filters hold it.
#[derive(Debug)]
pub struct KeyState {
    pub tenant: String,
    /// Its own rate limits.
    pub limits: Limits,
    /// Its id (`vk_…`).
    pub id: String,
    /// It has a budget of its own.
    pub budgeted: bool,
}

/// A tenant as the filters hold it.
#[derive(Debug)]
pub struct TenantState {
    pub disabled: bool,
    pub pass_through: bool,
    /// (provider, sealed key).
    pub sealed_keys: Vec<(String, Vec<u8>)>,
    pub limits: Limits,
    /// Its policy's JSON; empty: none.
    pub policy: String,
    /// Its fitted correction to the router model (db/learning.rs); empty:
    /// none.
    pub router: Vec<u8>,
}

/// One changed thing in its current state; None = removed.
#[derive(Debug)]
pub enum Changed {
    Global(GlobalState),
    Tenant {
        rev: u64,
        id: String,
        state: Option<TenantState>,
    },
    Key {
        rev: u64,
        hash: String,
        /// None = removed.
        tenant: Option<KeyState>,
    },
    Budget {
        rev: u64,
        tenant: String,
        state: Option<BudgetState>,
    },
    KeyBudget {
        rev: u64,
        key_id: String,
        state: Option<BudgetState>,
    },
}

impl Changed {
    /// The thing is gone (a receiver from revision 0 is not sent it).
    pub(super) fn is_removal(&self) -> bool {
        matches!(
            self,
            Changed::Tenant { state: None, .. }
                | Changed::Key { tenant: None, .. }
                | Changed::Budget { state: None, .. }
                | Changed::KeyBudget { state: None, .. }
        )
    }
}

/// Everything changed after a revision, or the first `limit` of it.
#[derive(Debug)]
pub struct ChangePage {
    pub since: u64,
    /// The revision the receiver holds once it applied this page.
    pub revision: u64,
    /// More changes follow (the page was full).
    pub more: bool,
    pub changes: Vec<Changed>,
}

pub(super) fn global_state(conn: &Connection) -> Result<GlobalState> {
    let version: i64 = conn
        .query_row(
            "SELECT rev FROM changes WHERE kind = 0 AND name = ''",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    Ok(GlobalState {
        version: to_u64(version),
        models: models(conn)?,
        penalties: penalty_rows(conn)?
            .into_iter()
            .map(|r| (r.provider, r.model, r.key_tag, r.published))
            .collect(),
        penalty_epoch: penalty_epoch(conn)?,
        budget_default: default_limit(conn)?,
        router_model: router_model(conn)?,
    })
}

pub(super) fn tenant_state(conn: &Connection, id: &str) -> Result<Option<TenantState>> {
    let flags: Option<(bool, bool, Option<String>)> = conn
        .prepare_cached("SELECT disabled, pass_through, policy FROM tenants WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((disabled, pass_through, policy)) = flags else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(
        "SELECT provider, sealed FROM provider_keys WHERE tenant = ?1 ORDER BY provider",
    )?;
    let sealed_keys = st
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Some(TenantState {
        disabled,
        pass_through,
        sealed_keys,
        limits: rate_limits(conn, id, "")?,
        policy: policy.unwrap_or_default(),
        router: super::learning::tenant_router_blob(conn, id)?,
    }))
}

/// A live key as the filters hold it.
fn key_tenant(conn: &Connection, hash: &str) -> Result<Option<KeyState>> {
    Ok(conn
        .prepare_cached(
            "SELECT v.tenant, COALESCE(l.requests_per_minute, 0), COALESCE(l.tokens_per_minute, 0),
                v.id, EXISTS(SELECT 1 FROM key_budgets b WHERE b.key_id = v.id)
             FROM virtual_keys v LEFT JOIN rate_limits l ON l.tenant = v.tenant AND l.key_id = v.id
             WHERE v.key_hash = ?1 AND v.revoked_at IS NULL",
        )?
        .query_row([hash], |r| {
            Ok(KeyState {
                tenant: r.get(0)?,
                limits: Limits {
                    requests_per_minute: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                    tokens_per_minute: to_u64(r.get(2)?),
                },
                id: r.get(3)?,
                budgeted: r.get(4)?,
            })
        })
        .optional()?)
}

/// The rate limits of a tenant (`key_id` "") or of one of its keys.
pub(super) fn rate_limits(conn: &Connection, tenant: &str, key_id: &str) -> Result<Limits> {
    Ok(conn
        .prepare_cached(
            "SELECT requests_per_minute, tokens_per_minute FROM rate_limits
             WHERE tenant = ?1 AND key_id = ?2",
        )?
        .query_row([tenant, key_id], |r| {
            Ok(Limits {
                requests_per_minute: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                tokens_per_minute: to_u64(r.get(1)?),
            })
        })
        .optional()?
        .unwrap_or_default())
}

impl Db {
    /// The current revision.
    pub async fn revision(&self) -> Result<u64> {
        if self.postgres().is_some() {
            return self.pg_read(|tx| pg::committed_revision(tx)).await;
        }
        self.read(|tx| version(tx)).await
    }

    /// The global table's parts, now.
    pub async fn global_state(&self) -> Result<GlobalState> {
        if self.postgres().is_some() {
            return self.pg_read(pg::changes::global_state).await;
        }
        self.read(|tx| global_state(tx)).await
    }

    /// One tenant as the filters hold it; None when it does not exist.
    pub async fn tenant_state(&self, id: String) -> Result<Option<TenantState>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::changes::tenant_state(tx, &id))
                .await;
        }
        self.read(move |tx| tenant_state(tx, &id)).await
    }

    /// Everything changed after `since`, oldest change first, at most
    /// `limit` things, each in its current state, read in one snapshot. From
    /// revision 0 removals are left out: the receiver holds nothing to remove.
    pub async fn changes_since(&self, since: u64, limit: usize) -> Result<ChangePage> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::changes::changes_since(tx, since, limit))
                .await;
        }
        self.read(move |tx| {
            let mut st = tx.prepare_cached(
                "SELECT kind, name, rev FROM changes WHERE rev > ?1 ORDER BY rev LIMIT ?2",
            )?;
            // One row past the page says whether more follow (a page that is
            // exactly full is then the last one).
            let mut rows: Vec<(i64, String, i64)> = st
                .query_map(params![to_i64(since), to_i64(limit as u64 + 1)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let revision = match rows.last() {
                Some((_, _, rev)) if more => to_u64(*rev),
                _ => version(tx)?,
            };
            let mut changes = Vec::with_capacity(rows.len());
            for (kind, name, rev) in rows {
                let rev = to_u64(rev);
                let changed = match kind {
                    GLOBAL => Changed::Global(global_state(tx)?),
                    TENANT => Changed::Tenant {
                        rev,
                        state: tenant_state(tx, &name)?,
                        id: name,
                    },
                    BUDGET => Changed::Budget {
                        rev,
                        state: budget_state(tx, &name)?,
                        tenant: name,
                    },
                    KEY_BUDGET => Changed::KeyBudget {
                        rev,
                        state: key_budget_state(tx, &name)?,
                        key_id: name,
                    },
                    _ => Changed::Key {
                        rev,
                        tenant: key_tenant(tx, &name)?,
                        hash: name,
                    },
                };
                if !(changed.is_removal() && since == 0) {
                    changes.push(changed);
                }
            }
            Ok(ChangePage {
                since,
                revision,
                more,
                changes,
            })
        })
        .await
    }
}
