//! Tenants.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::keys::providers_of;
use super::{Change, Db, now_ms, pg, record_change, to_i64, to_u64};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    /// Whether the provider pass-through paths (`/<provider>/…`) are open
    /// to it.
    pub pass_through: bool,
    /// Unix ms.
    pub created_at: u64,
    /// Providers the tenant has a key for (never the keys).
    pub providers: Vec<String>,
    /// Live (unrevoked) virtual keys.
    pub virtual_keys: u64,
}

pub(super) fn tenant_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM tenants WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?)
}

fn tenant_view(conn: &Connection, id: &str) -> Result<Option<TenantView>> {
    let row = conn
        .query_row(
            "SELECT id, name, disabled, created_at, pass_through FROM tenants WHERE id = ?1",
            [id],
            |r| {
                Ok(TenantView {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    disabled: r.get(2)?,
                    pass_through: r.get(4)?,
                    created_at: to_u64(r.get(3)?),
                    providers: Vec::new(),
                    virtual_keys: 0,
                })
            },
        )
        .optional()?;
    let Some(mut t) = row else { return Ok(None) };
    t.providers = providers_of(conn, id)?;
    t.virtual_keys = to_u64(conn.query_row(
        "SELECT COUNT(*) FROM virtual_keys WHERE tenant = ?1 AND revoked_at IS NULL",
        [id],
        |r| r.get(0),
    )?);
    Ok(Some(t))
}

impl Db {
    pub async fn create_tenant(&self, id: String, name: String) -> Result<TenantView> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::tenants::create(w, &id, &name))
                .await;
        }
        self.write(move |tx| {
            if tenant_exists(tx, &id)? {
                return Err(Error::Conflict(format!("tenant `{id}` already exists")));
            }
            tx.execute(
                "INSERT INTO tenants (id, name, disabled, created_at) VALUES (?1, ?2, 0, ?3)",
                params![id, name, to_i64(now_ms())],
            )?;
            record_change(tx, Change::Tenant(&id))?;
            tenant_view(tx, &id)?.ok_or_else(|| Error::Internal("tenant vanished".into()))
        })
        .await
    }

    /// Creates the tenant unless it exists; true when created.
    pub async fn ensure_tenant(&self, id: String, name: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::tenants::ensure(w, &id, &name))
                .await;
        }
        self.write(move |tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO tenants (id, name, disabled, created_at) VALUES (?1, ?2, 0, ?3)",
                params![id, name, to_i64(now_ms())],
            )?;
            if n > 0 {
                record_change(tx, Change::Tenant(&id))?;
            }
            Ok(n > 0)
        })
        .await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantView>> {
        if self.postgres().is_some() {
            return self.pg_read(pg::tenants::list).await;
        }
        self.read(|tx| {
            let ids: Vec<String> = tx
                .prepare("SELECT id FROM tenants ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(tenant_view(tx, &id)?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_tenant(&self, id: String) -> Result<Option<TenantView>> {
        if self.postgres().is_some() {
            return self.pg_read(move |tx| pg::tenants::get(tx, &id)).await;
        }
        self.read(move |tx| tenant_view(tx, &id)).await
    }

    pub async fn update_tenant(
        &self,
        id: String,
        name: Option<String>,
        disabled: Option<bool>,
        pass_through: Option<bool>,
    ) -> Result<Option<TenantView>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::tenants::update(w, &id, name, disabled, pass_through))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &id)? {
                return Ok(None);
            }
            if let Some(name) = name {
                tx.execute(
                    "UPDATE tenants SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
            }
            let mut changed = 0;
            if let Some(disabled) = disabled {
                changed += tx.execute(
                    "UPDATE tenants SET disabled = ?2 WHERE id = ?1 AND disabled <> ?2",
                    params![id, disabled],
                )?;
            }
            if let Some(open) = pass_through {
                changed += tx.execute(
                    "UPDATE tenants SET pass_through = ?2 WHERE id = ?1 AND pass_through <> ?2",
                    params![id, open],
                )?;
            }
            if changed > 0 {
                record_change(tx, Change::Tenant(&id))?;
            }
            tenant_view(tx, &id)
        })
        .await
    }

    /// Deletes the tenant with its provider keys and virtual keys (cascade)
    /// and its running totals; its usage rows stay (a new tenant of the same
    /// id sees only usage from after this deletion). False when there was no
    /// such tenant. Each live
    /// key's removal is a change of its own (Envoys hold keys one by one).
    pub async fn delete_tenant(&self, id: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self.pg_write(move |w| pg::tenants::delete(w, &id)).await;
        }
        self.write(move |tx| {
            let live: Vec<String> = tx
                .prepare(
                    "SELECT key_hash FROM virtual_keys WHERE tenant = ?1 AND revoked_at IS NULL",
                )?
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            // Keys with budgets of their own: their entries go too.
            let budgeted: Vec<String> = tx
                .prepare(
                    "SELECT b.key_id FROM key_budgets b JOIN virtual_keys v ON v.id = b.key_id
                     WHERE v.tenant = ?1",
                )?
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let n = tx.execute("DELETE FROM tenants WHERE id = ?1", [&id])?;
            if n > 0 {
                // Its running totals go (a new tenant of the same id starts
                // at zero); its usage rows stay, for accounting.
                tx.execute("DELETE FROM usage_totals WHERE tenant = ?1", [&id])?;
                tx.execute("DELETE FROM usage_days WHERE tenant = ?1", [&id])?;
                tx.execute("DELETE FROM rate_limits WHERE tenant = ?1", [&id])?;
                if tx.execute("DELETE FROM budgets WHERE tenant = ?1", [&id])? > 0
                    || super::budgets::default_limit(tx)?.is_some()
                {
                    record_change(tx, Change::Budget(&id))?;
                }
                tx.execute(
                    "INSERT INTO tenant_deletions (tenant, deleted_at) VALUES (?1, ?2)",
                    params![id, to_i64(now_ms())],
                )?;
                record_change(tx, Change::Tenant(&id))?;
                for hash in &live {
                    record_change(tx, Change::Key(hash))?;
                }
                for key_id in &budgeted {
                    record_change(tx, Change::KeyBudget(key_id))?;
                }
            }
            Ok(n > 0)
        })
        .await
    }
}
