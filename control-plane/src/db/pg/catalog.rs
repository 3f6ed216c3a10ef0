//! The model catalog, the router model and tenants' policies on PostgreSQL
//! (`db/catalog.rs`'s functions).

use aipipe_core::policy::Policy;
use aipipe_core::table::Model;
use postgres::Transaction;

use super::super::Change;
use super::changes::record_change;
use super::pool::Writer;
use crate::error::{Error, Result};

pub(in crate::db) fn models(tx: &mut Transaction<'_>) -> Result<Vec<Model>> {
    tx.query("SELECT json FROM models ORDER BY position, id", &[])?
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(Error::from))
        .collect()
}

/// The router model an operator set (base64 blob); None: the built-in one.
pub(in crate::db) fn router_model(tx: &mut Transaction<'_>) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT text_value FROM meta WHERE key = 'router_model'",
            &[],
        )?
        .and_then(|r| r.get(0)))
}

pub(in crate::db) fn set_router_model(w: &mut Writer<'_>, blob: Option<String>) -> Result<()> {
    match blob {
        Some(b) => w.execute(
            "INSERT INTO meta (key, text_value) VALUES ('router_model', $1)
             ON CONFLICT (key) DO UPDATE SET text_value = excluded.text_value",
            &[&b],
        )?,
        None => w.execute("DELETE FROM meta WHERE key = 'router_model'", &[])?,
    };
    record_change(w, Change::Global)?;
    Ok(())
}

pub(in crate::db) fn put_model(
    w: &mut Writer<'_>,
    model: Model,
    validate: impl FnOnce(Vec<Model>) -> Result<()>,
) -> Result<bool> {
    let mut all = models(w)?;
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
    w.execute(
        "INSERT INTO models (id, position, json)
         VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM models), $2)
         ON CONFLICT (id) DO UPDATE SET json = excluded.json",
        &[&model.id, &serde_json::to_string(&model)?],
    )?;
    record_change(w, Change::Global)?;
    Ok(created)
}

pub(in crate::db) fn delete_model(
    w: &mut Writer<'_>,
    id: &str,
) -> Result<std::result::Result<bool, Vec<String>>> {
    let policies = tenant_policies(w)?;
    let naming = super::super::catalog::tenants_naming(policies, id);
    if !naming.is_empty() {
        return Ok(Err(naming));
    }
    let n = w.execute("DELETE FROM models WHERE id = $1", &[&id])?;
    if n > 0 {
        record_change(w, Change::Global)?;
    }
    Ok(Ok(n > 0))
}

pub(in crate::db) fn set_policy(
    w: &mut Writer<'_>,
    tenant: &str,
    json: Option<String>,
) -> Result<bool> {
    let n = w.execute(
        "UPDATE tenants SET policy = $2 WHERE id = $1",
        &[&tenant, &json],
    )?;
    if n > 0 {
        record_change(w, Change::Tenant(tenant))?;
    }
    Ok(n > 0)
}

pub(in crate::db) fn update_policy(
    w: &mut Writer<'_>,
    tenant: &str,
    change: impl FnOnce(Option<Policy>) -> Result<Policy>,
) -> Result<Option<Policy>> {
    // FOR UPDATE: the row stays as read until this transaction ends.
    let Some(row) = w.query_opt(
        "SELECT policy FROM tenants WHERE id = $1 FOR UPDATE",
        &[&tenant],
    )?
    else {
        return Ok(None);
    };
    let current = match row.get::<_, Option<&str>>(0) {
        Some(json) => Some(serde_json::from_str::<Policy>(json)?),
        None => None,
    };
    let policy = change(current)?;
    w.execute(
        "UPDATE tenants SET policy = $2 WHERE id = $1",
        &[&tenant, &serde_json::to_string(&policy)?],
    )?;
    record_change(w, Change::Tenant(tenant))?;
    Ok(Some(policy))
}

/// A tenant's policy JSON: Some(None) without one; None without the tenant.
pub(in crate::db) fn policy(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Option<Option<String>>> {
    Ok(tx
        .query_opt("SELECT policy FROM tenants WHERE id = $1", &[&tenant])?
        .map(|r| r.get(0)))
}

/// Every stored model row as (id, JSON), what the catalog migrations plan from.
fn stored_models(w: &mut Writer<'_>) -> Result<Vec<(String, String)>> {
    Ok(w.query("SELECT id, json FROM models", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// PostgreSQL's migration 3: the catalog of 2026-12-05, as SQLite's 17
/// (`db::migrations::catalog_2026_12`), and migration 5: claude-sonnet-4-5
/// retired, as SQLite's 19 (`db::migrations::sonnet_4_5`), and migration 6:
/// gpt-6-luna added, as SQLite's 20 (`db::migrations::gpt_6_luna`). The models of
/// `retired` removed (or disabled), those of `added` inserted. Returns the
/// writes made.
pub(in crate::db) fn catalog_2026_12(
    w: &mut Writer<'_>,
    retired: &[&str],
    added: &[&str],
) -> Result<usize> {
    use crate::db::migrations::catalog_2026_12::{Step, plan};
    let stored = stored_models(w)?;
    let policies = tenant_policies(w)?;
    let steps = plan(&stored, policies, retired, added)?;
    for step in &steps {
        match step {
            Step::Delete(id) => {
                w.execute("DELETE FROM models WHERE id = $1", &[id])?;
            }
            Step::Disable { id, json } => {
                w.execute("UPDATE models SET json = $2 WHERE id = $1", &[id, json])?;
            }
            Step::Insert(m) => {
                w.execute(
                    "INSERT INTO models (id, position, json)
                     VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM models), $2)",
                    &[&m.id, &serde_json::to_string(m)?],
                )?;
            }
        }
    }
    if !steps.is_empty() {
        record_change(w, Change::Global)?;
    }
    Ok(steps.len())
}

/// PostgreSQL's migrations 4, 7 and 8, as SQLite's 18, 21 and 22
/// (`db::migrations::rewrite_models`): the model rows `plan` names
/// rewritten, one change of the change log if any. Returns the writes made.
pub(in crate::db) fn rewrite_models(
    w: &mut Writer<'_>,
    plan: crate::db::migrations::ModelsPlan,
) -> Result<usize> {
    let stored = stored_models(w)?;
    let writes = plan(&stored)?;
    for (id, json) in &writes {
        w.execute("UPDATE models SET json = $2 WHERE id = $1", &[id, json])?;
    }
    if !writes.is_empty() {
        record_change(w, Change::Global)?;
    }
    Ok(writes.len())
}

/// Every tenant's policy JSON that is set, by tenant id.
fn tenant_policies(w: &mut Writer<'_>) -> Result<Vec<(String, String)>> {
    Ok(w.query(
        "SELECT id, policy FROM tenants WHERE policy IS NOT NULL",
        &[],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}
