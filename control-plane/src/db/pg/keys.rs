//! A tenant's keys on PostgreSQL (`db/keys.rs`'s functions).

use postgres::Transaction;

use super::super::keys::VirtualKeyView;
use super::super::{Change, now_ms, to_i64, to_u64};
use super::changes::record_change;
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::{Error, Result};

pub(in crate::db) fn providers_of(tx: &mut Transaction<'_>, tenant: &str) -> Result<Vec<String>> {
    Ok(tx
        .query(
            "SELECT provider FROM provider_keys WHERE tenant = $1 ORDER BY provider",
            &[&tenant],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(in crate::db) fn upsert_provider_keys(
    w: &mut Writer<'_>,
    tenant: &str,
    sealed: &[(String, Vec<u8>)],
) -> Result<Option<Vec<String>>> {
    if !tenant_exists(w, tenant)? {
        return Ok(None);
    }
    let now = to_i64(now_ms());
    let st = w.prepare(
        "INSERT INTO provider_keys (tenant, provider, sealed, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, provider) DO UPDATE SET sealed = excluded.sealed,
            updated_at = excluded.updated_at",
    )?;
    for (provider, blob) in sealed {
        w.execute(&st, &[&tenant, provider, blob, &now])?;
    }
    record_change(w, Change::Tenant(tenant))?;
    Ok(Some(providers_of(w, tenant)?))
}

pub(in crate::db) fn sealed_keys(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    Ok(tx
        .query(
            "SELECT provider, sealed FROM provider_keys WHERE tenant = $1",
            &[&tenant],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub(in crate::db) fn delete_provider_key(
    w: &mut Writer<'_>,
    tenant: &str,
    provider: &str,
) -> Result<bool> {
    let n = w.execute(
        "DELETE FROM provider_keys WHERE tenant = $1 AND provider = $2",
        &[&tenant, &provider],
    )?;
    if n > 0 {
        record_change(w, Change::Tenant(tenant))?;
    }
    Ok(n > 0)
}

pub(in crate::db) fn create_virtual_key(
    w: &mut Writer<'_>,
    tenant: &str,
    id: String,
    name: String,
    key_hash: &str,
) -> Result<Option<VirtualKeyView>> {
    if !tenant_exists(w, tenant)? {
        return Ok(None);
    }
    let taken: bool = w
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE key_hash = $1)",
            &[&key_hash],
        )?
        .get(0);
    if taken {
        return Err(Error::Conflict(
            "this virtual key is already registered".into(),
        ));
    }
    let now = now_ms();
    w.execute(
        "INSERT INTO virtual_keys (id, tenant, name, key_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &tenant, &name, &key_hash, &to_i64(now)],
    )?;
    record_change(w, Change::Key(key_hash))?;
    Ok(Some(VirtualKeyView {
        id,
        name,
        created_at: now,
        revoked: false,
        budgeted: false,
    }))
}

pub(in crate::db) fn list_virtual_keys(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Option<Vec<VirtualKeyView>>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    Ok(Some(
        tx.query(
            "SELECT v.id, v.name, v.created_at, v.revoked_at IS NOT NULL,
                EXISTS(SELECT 1 FROM key_budgets b WHERE b.key_id = v.id)
             FROM virtual_keys v WHERE v.tenant = $1 ORDER BY v.created_at, v.id",
            &[&tenant],
        )?
        .iter()
        .map(|r| VirtualKeyView {
            id: r.get(0),
            name: r.get(1),
            created_at: to_u64(r.get(2)),
            revoked: r.get(3),
            budgeted: r.get(4),
        })
        .collect(),
    ))
}

pub(in crate::db) fn revoke_virtual_key(
    w: &mut Writer<'_>,
    tenant: &str,
    key_id: &str,
) -> Result<bool> {
    let exists: bool = w
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE id = $1 AND tenant = $2)",
            &[&key_id, &tenant],
        )?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let revoked = w.query_opt(
        "UPDATE virtual_keys SET revoked_at = $3
         WHERE id = $1 AND tenant = $2 AND revoked_at IS NULL
         RETURNING key_hash",
        &[&key_id, &tenant, &to_i64(now_ms())],
    )?;
    if let Some(row) = revoked {
        let hash: String = row.get(0);
        record_change(w, Change::Key(&hash))?;
        let budgeted: bool = w
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM key_budgets WHERE key_id = $1)",
                &[&key_id],
            )?
            .get(0);
        if budgeted {
            record_change(w, Change::KeyBudget(key_id))?;
        }
    }
    Ok(true)
}
