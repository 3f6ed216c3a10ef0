//! Tenants on PostgreSQL (`db/tenants.rs`'s functions).

use postgres::Transaction;

use super::super::tenants::TenantView;
use super::super::{Change, now_ms, to_i64, to_u64};
use super::budgets::default_limit;
use super::changes::record_change;
use super::keys::providers_of;
use super::pool::Writer;
use crate::error::{Error, Result};

pub(in crate::db) fn tenant_exists(tx: &mut Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx
        .query_one("SELECT EXISTS(SELECT 1 FROM tenants WHERE id = $1)", &[&id])?
        .get(0))
}

fn tenant_view(tx: &mut Transaction<'_>, id: &str) -> Result<Option<TenantView>> {
    let Some(r) = tx.query_opt(
        "SELECT id, name, disabled, created_at, pass_through FROM tenants WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let live: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM virtual_keys WHERE tenant = $1 AND revoked_at IS NULL",
            &[&id],
        )?
        .get(0);
    Ok(Some(TenantView {
        id: r.get(0),
        name: r.get(1),
        disabled: r.get(2),
        pass_through: r.get(4),
        created_at: to_u64(r.get(3)),
        providers: providers_of(tx, id)?,
        virtual_keys: to_u64(live),
    }))
}

pub(in crate::db) fn create(w: &mut Writer<'_>, id: &str, name: &str) -> Result<TenantView> {
    if tenant_exists(w, id)? {
        return Err(Error::Conflict(format!("tenant `{id}` already exists")));
    }
    w.execute(
        "INSERT INTO tenants (id, name, disabled, created_at) VALUES ($1, $2, false, $3)",
        &[&id, &name, &to_i64(now_ms())],
    )?;
    record_change(w, Change::Tenant(id))?;
    tenant_view(w, id)?.ok_or_else(|| Error::Internal("tenant vanished".into()))
}

pub(in crate::db) fn ensure(w: &mut Writer<'_>, id: &str, name: &str) -> Result<bool> {
    let n = w.execute(
        "INSERT INTO tenants (id, name, disabled, created_at) VALUES ($1, $2, false, $3)
         ON CONFLICT (id) DO NOTHING",
        &[&id, &name, &to_i64(now_ms())],
    )?;
    if n > 0 {
        record_change(w, Change::Tenant(id))?;
    }
    Ok(n > 0)
}

pub(in crate::db) fn list(tx: &mut Transaction<'_>) -> Result<Vec<TenantView>> {
    let ids: Vec<String> = tx
        .query("SELECT id FROM tenants ORDER BY id", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(tenant_view(tx, &id)?);
    }
    Ok(out)
}

pub(in crate::db) fn get(tx: &mut Transaction<'_>, id: &str) -> Result<Option<TenantView>> {
    tenant_view(tx, id)
}

pub(in crate::db) fn update(
    w: &mut Writer<'_>,
    id: &str,
    name: Option<String>,
    disabled: Option<bool>,
    pass_through: Option<bool>,
) -> Result<Option<TenantView>> {
    if !tenant_exists(w, id)? {
        return Ok(None);
    }
    if let Some(name) = name {
        w.execute("UPDATE tenants SET name = $2 WHERE id = $1", &[&id, &name])?;
    }
    let mut changed = 0;
    if let Some(disabled) = disabled {
        changed += w.execute(
            "UPDATE tenants SET disabled = $2 WHERE id = $1 AND disabled <> $2",
            &[&id, &disabled],
        )?;
    }
    if let Some(open) = pass_through {
        changed += w.execute(
            "UPDATE tenants SET pass_through = $2 WHERE id = $1 AND pass_through <> $2",
            &[&id, &open],
        )?;
    }
    if changed > 0 {
        record_change(w, Change::Tenant(id))?;
    }
    tenant_view(w, id)
}

/// As `Db::delete_tenant` on SQLite: keys go by cascade, running totals,
/// limits and budgets with the tenant, its usage rows stay; every live key
/// and budgeted key is a change of its own.
pub(in crate::db) fn delete(w: &mut Writer<'_>, id: &str) -> Result<bool> {
    let live: Vec<String> = w
        .query(
            "SELECT key_hash FROM virtual_keys WHERE tenant = $1 AND revoked_at IS NULL",
            &[&id],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let budgeted: Vec<String> = w
        .query(
            "SELECT b.key_id FROM key_budgets b JOIN virtual_keys v ON v.id = b.key_id
             WHERE v.tenant = $1",
            &[&id],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let n = w.execute("DELETE FROM tenants WHERE id = $1", &[&id])?;
    if n > 0 {
        w.execute("DELETE FROM usage_totals WHERE tenant = $1", &[&id])?;
        w.execute("DELETE FROM usage_days WHERE tenant = $1", &[&id])?;
        w.execute("DELETE FROM rate_limits WHERE tenant = $1", &[&id])?;
        if w.execute("DELETE FROM budgets WHERE tenant = $1", &[&id])? > 0
            || default_limit(w)?.is_some()
        {
            record_change(w, Change::Budget(id))?;
        }
        w.execute(
            "INSERT INTO tenant_deletions (tenant, deleted_at) VALUES ($1, $2)",
            &[&id, &to_i64(now_ms())],
        )?;
        record_change(w, Change::Tenant(id))?;
        for hash in &live {
            record_change(w, Change::Key(hash))?;
        }
        for key_id in &budgeted {
            record_change(w, Change::KeyBudget(key_id))?;
        }
    }
    Ok(n > 0)
}
