//! A tenant's keys: its provider keys (sealed) and its virtual keys (hashed).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::tenants::tenant_exists;
use super::{Change, Db, now_ms, pg, record_change, to_i64, to_u64};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
#[schema(as = VirtualKey)]
pub struct VirtualKeyView {
    pub id: String,
    pub name: String,
    pub created_at: u64,
    pub revoked: bool,
    /// It has a budget of its own (`…/virtual-keys/{key_id}/budget`).
    pub budgeted: bool,
}

pub(super) fn providers_of(conn: &Connection, tenant: &str) -> Result<Vec<String>> {
    let mut st = conn
        .prepare_cached("SELECT provider FROM provider_keys WHERE tenant = ?1 ORDER BY provider")?;
    let rows = st.query_map([tenant], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Db {
    /// Upserts already-sealed keys; returns every provider the tenant now has
    /// a key for, or None when the tenant does not exist (nothing written).
    pub async fn upsert_provider_keys(
        &self,
        tenant: String,
        sealed: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<String>>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::keys::upsert_provider_keys(w, &tenant, &sealed))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let now = to_i64(now_ms());
            let mut st = tx.prepare_cached(
                "INSERT INTO provider_keys (tenant, provider, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, provider) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )?;
            for (provider, blob) in &sealed {
                st.execute(params![tenant, provider, blob, now])?;
            }
            record_change(tx, Change::Tenant(&tenant))?;
            Ok(Some(providers_of(tx, &tenant)?))
        })
        .await
    }

    /// Sealed keys of one tenant (used to skip re-writing unchanged env keys).
    pub async fn sealed_keys(&self, tenant: String) -> Result<Vec<(String, Vec<u8>)>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::keys::sealed_keys(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            let mut st =
                tx.prepare("SELECT provider, sealed FROM provider_keys WHERE tenant = ?1")?;
            let rows = st.query_map([&tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn delete_provider_key(&self, tenant: String, provider: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::keys::delete_provider_key(w, &tenant, &provider))
                .await;
        }
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM provider_keys WHERE tenant = ?1 AND provider = ?2",
                params![tenant, provider],
            )?;
            if n > 0 {
                record_change(tx, Change::Tenant(&tenant))?;
            }
            Ok(n > 0)
        })
        .await
    }

    /// Stores a new virtual key's hash; None when the tenant does not exist.
    pub async fn create_virtual_key(
        &self,
        tenant: String,
        id: String,
        name: String,
        key_hash: String,
    ) -> Result<Option<VirtualKeyView>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::keys::create_virtual_key(w, &tenant, id, name, &key_hash))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE key_hash = ?1)",
                [&key_hash],
                |r| r.get(0),
            )?;
            if taken {
                return Err(Error::Conflict("this virtual key is already registered".into()));
            }
            let now = now_ms();
            tx.execute(
                "INSERT INTO virtual_keys (id, tenant, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, tenant, name, key_hash, to_i64(now)],
            )?;
            record_change(tx, Change::Key(&key_hash))?;
            Ok(Some(VirtualKeyView {
                id,
                name,
                created_at: now,
                revoked: false,
                budgeted: false,
            }))
        })
        .await
    }

    pub async fn list_virtual_keys(&self, tenant: String) -> Result<Option<Vec<VirtualKeyView>>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::keys::list_virtual_keys(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let mut st = tx.prepare(
                "SELECT v.id, v.name, v.created_at, v.revoked_at IS NOT NULL,
                    EXISTS(SELECT 1 FROM key_budgets b WHERE b.key_id = v.id)
                 FROM virtual_keys v WHERE v.tenant = ?1 ORDER BY v.created_at, v.id",
            )?;
            let rows = st.query_map([&tenant], |r| {
                Ok(VirtualKeyView {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: to_u64(r.get(2)?),
                    revoked: r.get(3)?,
                    budgeted: r.get(4)?,
                })
            })?;
            Ok(Some(rows.collect::<Result<_, _>>()?))
        })
        .await
    }

    /// Revokes one key of one tenant. False when the tenant has no such key;
    /// revoking twice is a no-op (and does not bump the version).
    pub async fn revoke_virtual_key(&self, tenant: String, key_id: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::keys::revoke_virtual_key(w, &tenant, &key_id))
                .await;
        }
        self.write(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE id = ?1 AND tenant = ?2)",
                params![key_id, tenant],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            let revoked: Option<String> = tx
                .query_row(
                    "UPDATE virtual_keys SET revoked_at = ?3 WHERE id = ?1 AND tenant = ?2 AND revoked_at IS NULL
                     RETURNING key_hash",
                    params![key_id, tenant, to_i64(now_ms())],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(hash) = revoked {
                record_change(tx, Change::Key(&hash))?;
                // Its budget entry goes from the Envoys too (the row stays,
                // with the key's history).
                let budgeted: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM key_budgets WHERE key_id = ?1)",
                    [&key_id],
                    |r| r.get(0),
                )?;
                if budgeted {
                    record_change(tx, Change::KeyBudget(&key_id))?;
                }
            }
            Ok(true)
        })
        .await
    }
}
