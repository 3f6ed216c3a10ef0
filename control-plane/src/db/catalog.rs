//! The model catalog.

use aipipe_core::policy::Policy;
use aipipe_core::table::Model;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Change, Db, pg, record_change};
use crate::error::{Error, Result};

pub(super) fn models(conn: &Connection) -> Result<Vec<Model>> {
    let mut st = conn.prepare_cached("SELECT json FROM models ORDER BY position, id")?;
    let texts: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    texts
        .iter()
        .map(|t| serde_json::from_str(t).map_err(Error::from))
        .collect()
}

/// The router model an operator set (base64 blob); None: the built-in one.
pub(super) fn router_model(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'router_model'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// The tenants whose policy names model `id`, of (tenant, policy JSON).
pub(super) fn tenants_naming(policies: Vec<(String, String)>, id: &str) -> Vec<String> {
    policies
        .into_iter()
        .filter(|(_, json)| {
            serde_json::from_str::<Policy>(json)
                .is_ok_and(|p| aipipe_core::policy::names(&p).contains(&id))
        })
        .map(|(tenant, _)| tenant)
        .collect()
}

impl Db {
    /// Sets the router model the global table names: a base64 blob the
    /// caller has decoded once already, or None for the filter's built-in
    /// model. One change of the change log.
    pub async fn set_router_model(&self, blob: Option<String>) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::catalog::set_router_model(w, blob))
                .await;
        }
        self.write(move |tx| {
            match blob {
                Some(b) => tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('router_model', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [b],
                )?,
                None => tx.execute("DELETE FROM meta WHERE key = 'router_model'", [])?,
            };
            record_change(tx, Change::Global)?;
            Ok(())
        })
        .await
    }

    pub async fn models(&self) -> Result<Vec<Model>> {
        if self.postgres().is_some() {
            return self.pg_read(pg::catalog::models).await;
        }
        self.read(|tx| models(tx)).await
    }

    /// Replaces (or appends) one model after `validate` accepted the whole
    /// resulting catalog, all inside one transaction. True when it was new.
    pub async fn put_model<V>(&self, model: Model, validate: V) -> Result<bool>
    where
        V: FnOnce(Vec<Model>) -> Result<()> + Send + 'static,
    {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::catalog::put_model(w, model, validate))
                .await;
        }
        self.write(move |tx| {
            let mut all = models(tx)?;
            let created = match all.iter_mut().find(|m| m.id == model.id) {
                Some(slot) => {
                    *slot = model.clone();
                    false
                }
                None => {
                    all.push(model.clone());
                    true
                }
            };
            validate(all)?;
            tx.execute(
                "INSERT INTO models (id, position, json)
                 VALUES (?1, (SELECT COALESCE(MAX(position), -1) + 1 FROM models), ?2)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                params![model.id, serde_json::to_string(&model)?],
            )?;
            record_change(tx, Change::Global)?;
            Ok(created)
        })
        .await
    }

    /// Removes a model from the catalog. False when there was none.
    /// Deletes a model unless a tenant's policy names it: Err(tenant ids)
    /// then; Ok(false) when there is no such model.
    pub async fn delete_model(&self, id: String) -> Result<std::result::Result<bool, Vec<String>>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::catalog::delete_model(w, &id))
                .await;
        }
        self.write(move |tx| {
            let policies: Vec<(String, String)> = tx
                .prepare("SELECT id, policy FROM tenants WHERE policy IS NOT NULL")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let naming = tenants_naming(policies, &id);
            if !naming.is_empty() {
                return Ok(Err(naming));
            }
            let n = tx.execute("DELETE FROM models WHERE id = ?1", [&id])?;
            if n > 0 {
                record_change(tx, Change::Global)?;
            }
            Ok(Ok(n > 0))
        })
        .await
    }

    /// Sets (Some, validated JSON) or removes a tenant's policy; false when
    /// the tenant does not exist.
    pub async fn set_policy(&self, tenant: String, json: Option<String>) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::catalog::set_policy(w, &tenant, json))
                .await;
        }
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE tenants SET policy = ?2 WHERE id = ?1",
                rusqlite::params![tenant, json],
            )?;
            if n > 0 {
                record_change(tx, Change::Tenant(&tenant))?;
            }
            Ok(n > 0)
        })
        .await
    }

    /// Changes a tenant's policy in one transaction: `change` gets the stored
    /// policy (None without one), returns the new one — validated, or Err
    /// to write nothing. None when the tenant does not exist.
    pub async fn update_policy<F>(&self, tenant: String, change: F) -> Result<Option<Policy>>
    where
        F: FnOnce(Option<Policy>) -> Result<Policy> + Send + 'static,
    {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::catalog::update_policy(w, &tenant, change))
                .await;
        }
        self.write(move |tx| {
            let stored: Option<Option<String>> = tx
                .query_row("SELECT policy FROM tenants WHERE id = ?1", [&tenant], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(stored) = stored else {
                return Ok(None);
            };
            let current = match stored {
                Some(json) => Some(serde_json::from_str::<Policy>(&json)?),
                None => None,
            };
            let policy = change(current)?;
            tx.execute(
                "UPDATE tenants SET policy = ?2 WHERE id = ?1",
                rusqlite::params![tenant, serde_json::to_string(&policy)?],
            )?;
            record_change(tx, Change::Tenant(&tenant))?;
            Ok(Some(policy))
        })
        .await
    }

    /// A tenant's policy JSON: Some(None) without one; None without the
    /// tenant.
    pub async fn policy(&self, tenant: String) -> Result<Option<Option<String>>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::catalog::policy(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            Ok(tx
                .query_row("SELECT policy FROM tenants WHERE id = ?1", [tenant], |r| {
                    r.get(0)
                })
                .optional()?)
        })
        .await
    }
}
