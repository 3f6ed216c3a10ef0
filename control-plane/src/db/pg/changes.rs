//! The change log on PostgreSQL: `db/changes.rs`'s functions, with the
//! revision from the sequence `change_revision` (taken under the write lock,
//! so revisions commit in order: `pool`).

use postgres::Transaction;

use super::super::changes::{
    BUDGET, ChangePage, Changed, GLOBAL, GlobalState, KEY_BUDGET, KeyState, TENANT, TenantState,
};
use super::super::{Change, to_i64, to_u64};
use super::pool::Writer;
use super::{budgets, catalog, committed_revision, learning, penalties, penalty_epoch};
use crate::error::Result;
use aipipe_core::ratelimit::Limits;

/// Takes the next revision and moves the changed thing's row to it, in one
/// statement. Returns the new revision (noted in the transaction: it is
/// what the commit announces).
pub(in crate::db) fn record_change(w: &mut Writer<'_>, change: Change<'_>) -> Result<u64> {
    let (kind, name) = change.row();
    let rev: i64 = w
        .query_one(
            "INSERT INTO changes (kind, name, rev) VALUES ($1, $2, nextval('change_revision'))
             ON CONFLICT (kind, name) DO UPDATE SET rev = excluded.rev
             RETURNING rev",
            &[&kind, &name],
        )?
        .get(0);
    let rev = to_u64(rev);
    w.recorded(rev);
    Ok(rev)
}

pub(in crate::db) fn global_state(tx: &mut Transaction<'_>) -> Result<GlobalState> {
    let version: i64 = tx
        .query_opt("SELECT rev FROM changes WHERE kind = 0 AND name = ''", &[])?
        .map_or(0, |r| r.get(0));
    Ok(GlobalState {
        version: to_u64(version),
        models: catalog::models(tx)?,
        penalties: penalties::penalty_rows(tx)?
            .into_iter()
            .map(|r| (r.provider, r.model, r.key_tag, r.published))
            .collect(),
        penalty_epoch: penalty_epoch(tx)?,
        budget_default: budgets::default_limit(tx)?,
        router_model: catalog::router_model(tx)?,
    })
}

pub(in crate::db) fn tenant_state(
    tx: &mut Transaction<'_>,
    id: &str,
) -> Result<Option<TenantState>> {
    let Some(row) = tx.query_opt(
        "SELECT disabled, pass_through, policy FROM tenants WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let policy: Option<String> = row.get(2);
    let sealed_keys = tx
        .query(
            "SELECT provider, sealed FROM provider_keys WHERE tenant = $1 ORDER BY provider",
            &[&id],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Some(TenantState {
        disabled: row.get(0),
        pass_through: row.get(1),
        sealed_keys,
        limits: rate_limits(tx, id, "")?,
        policy: policy.unwrap_or_default(),
        router: learning::tenant_router_blob(tx, id)?,
    }))
}

fn key_tenant(tx: &mut Transaction<'_>, hash: &str) -> Result<Option<KeyState>> {
    Ok(tx
        .query_opt(
            "SELECT v.tenant, COALESCE(l.requests_per_minute, 0), COALESCE(l.tokens_per_minute, 0),
                v.id, EXISTS(SELECT 1 FROM key_budgets b WHERE b.key_id = v.id)
             FROM virtual_keys v LEFT JOIN rate_limits l ON l.tenant = v.tenant AND l.key_id = v.id
             WHERE v.key_hash = $1 AND v.revoked_at IS NULL",
            &[&hash],
        )?
        .map(|r| KeyState {
            tenant: r.get(0),
            limits: Limits {
                requests_per_minute: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                tokens_per_minute: to_u64(r.get(2)),
            },
            id: r.get(3),
            budgeted: r.get(4),
        }))
}

/// The rate limits of a tenant (`key_id` "") or of one of its keys.
pub(in crate::db) fn rate_limits(
    tx: &mut Transaction<'_>,
    tenant: &str,
    key_id: &str,
) -> Result<Limits> {
    Ok(tx
        .query_opt(
            "SELECT requests_per_minute, tokens_per_minute FROM rate_limits
             WHERE tenant = $1 AND key_id = $2",
            &[&tenant, &key_id],
        )?
        .map(|r| Limits {
            requests_per_minute: u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
            tokens_per_minute: to_u64(r.get(1)),
        })
        .unwrap_or_default())
}

/// `Db::changes_since` on PostgreSQL: the same page, read in one snapshot.
pub(in crate::db) fn changes_since(
    tx: &mut Transaction<'_>,
    since: u64,
    limit: usize,
) -> Result<ChangePage> {
    // One row past the page says whether more follow.
    let mut rows: Vec<(i64, String, i64)> = tx
        .query(
            "SELECT kind, name, rev FROM changes WHERE rev > $1 ORDER BY rev LIMIT $2",
            &[&to_i64(since), &to_i64(limit as u64 + 1)],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let more = rows.len() > limit;
    rows.truncate(limit);
    let revision = match rows.last() {
        Some((_, _, rev)) if more => to_u64(*rev),
        _ => committed_revision(tx)?,
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
                state: budgets::budget_state(tx, &name)?,
                tenant: name,
            },
            KEY_BUDGET => Changed::KeyBudget {
                rev,
                state: budgets::key_budget_state(tx, &name)?,
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
}
