//! What the filters are sent (control-plane/README.md, "Change log"): the
//! global table — default providers, the stored catalog with the published
//! penalties, no tenants — built and compiled once per version, and deltas:
//! the change log's pages encoded as the filter's directory entries, provider
//! keys opened only for the tenants a page carries.

use std::sync::{Arc, Mutex, PoisonError};

use aipipe_core::classify::RouterModel;
use aipipe_core::directory::{BudgetEntry, DeltaWriter, KeyEntry, Kind, TenantEntry};
use aipipe_core::table::{
    Account, BudgetDefault, KeyPenalty, MAX_KEY_PENALTIES, RoutingTable, Table,
};
use axum::body::Bytes;

use crate::crypto::Cipher;
use crate::db::{ChangePage, Changed, Db, GlobalState, TenantState};
use crate::error::{Error, Result};

/// The global table from its stored parts. A penalty set in the catalog
/// itself acts as a floor under the aggregated one (control-plane/README.md,
/// "Penalties"). The non-zero (model, key) pairs of catalog models go along,
/// the worst [`MAX_KEY_PENALTIES`] when there are more. Auto requests are
/// routed by the trained router model: the one an operator set, else the one
/// built into the filter (filter/README.md, "Router model").
pub fn global_table(g: GlobalState) -> RoutingTable {
    let penalties: std::collections::HashMap<(&str, &str), f64> = g
        .penalties
        .iter()
        .filter(|(_, _, tag, _)| tag.is_empty())
        .map(|(p, m, _, v)| ((p.as_str(), m.as_str()), *v))
        .collect();
    let mut models = g.models;
    for m in &mut models {
        if let Some(&p) = penalties.get(&(m.provider.as_str(), m.id.as_str())) {
            m.penalty = m.penalty.max(p);
        }
    }
    let mut key_penalties: Vec<KeyPenalty> = g
        .penalties
        .into_iter()
        .filter(|(p, m, tag, v)| {
            !tag.is_empty() && *v > 0.0 && models.iter().any(|c| c.id == *m && c.provider == *p)
        })
        .map(|(_, model, key_tag, penalty)| KeyPenalty {
            model,
            key_tag,
            penalty,
        })
        .collect();
    key_penalties.sort_by(|a, b| b.penalty.total_cmp(&a.penalty));
    key_penalties.truncate(MAX_KEY_PENALTIES);
    RoutingTable {
        version: g.version,
        models,
        penalty_epoch: g.penalty_epoch,
        key_penalties,
        budget_default: g.budget_default.map(|l| BudgetDefault {
            limit_nusd: l.limit_nusd,
            days: l.days,
        }),
        router_model: Some(
            g.router_model
                .map_or(RouterModel::Builtin, RouterModel::Blob),
        ),
        ..RoutingTable::default()
    }
}

/// Compiles with the filter's own validation; a failure here means the
/// database holds something the admin API should have refused.
pub fn compile(raw: RoutingTable) -> Result<Table> {
    Table::compile(raw).map_err(|e| Error::internal("stored routing table does not compile", e))
}

/// One version of the global table, built once: what the filters are sent
/// and what explain ranks with.
pub struct Compiled {
    pub version: u64,
    /// The wire form served to filters.
    pub json: Bytes,
    /// The filter's compiled form of the same table.
    pub table: Table,
}

/// The last global table built, by version.
#[derive(Default)]
pub struct Cache(Mutex<Option<Arc<Compiled>>>);

impl Cache {
    pub fn get(&self, version: u64) -> Option<Arc<Compiled>> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|c| c.version == version).cloned()
    }

    /// Keeps `built` unless a newer version is already kept.
    pub fn put(&self, built: Arc<Compiled>) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|c| c.version <= built.version) {
            *slot = Some(built);
        }
    }

    /// The global table of these parts: from the cache when it is at their
    /// version, built and kept otherwise.
    pub fn compiled(&self, g: GlobalState) -> Result<Arc<Compiled>> {
        if let Some(built) = self.get(g.version) {
            return Ok(built);
        }
        let raw = global_table(g);
        let version = raw.version;
        // Serialised only after the filter's own compile accepted it: never
        // ship a table the filter would refuse.
        let json = Bytes::from(serde_json::to_vec(&raw)?);
        let table = compile(raw)?;
        let built = Arc::new(Compiled {
            version,
            json,
            table,
        });
        self.put(built.clone());
        Ok(built)
    }
}

/// The current global table.
pub async fn current(db: &Db, cache: &Cache) -> Result<Arc<Compiled>> {
    cache.compiled(db.global_state().await?)
}

/// A tenant's provider keys, opened.
fn open_keys(cipher: &Cipher, id: &str, state: &TenantState) -> Result<Vec<(String, String)>> {
    state
        .sealed_keys
        .iter()
        .map(|(provider, sealed)| Ok((provider.clone(), cipher.open(id, provider, sealed)?)))
        .collect()
}

/// A tenant resolved against `table`, as a request of it would be.
pub fn account(cipher: &Cipher, table: &Table, id: &str, state: &TenantState) -> Result<Account> {
    let keys = open_keys(cipher, id, state)?;
    Ok(table
        .account(
            id.to_owned(),
            state.disabled,
            state.pass_through,
            keys.iter().map(|(p, k)| (p.as_str(), k.as_str())),
        )
        .with_limits(state.limits)
        .with_policy(policy(table, &state.policy)?)
        .with_router(tenant_router(&state.router)?))
}

/// A tenant's stored router correction, decoded (empty: none).
fn tenant_router(blob: &[u8]) -> Result<Option<Arc<aipipe_core::tenant_router::Adjustment>>> {
    if blob.is_empty() {
        return Ok(None);
    }
    aipipe_core::tenant_router::Adjustment::decode(blob)
        .map(|a| Some(Arc::new(a)))
        .map_err(|e| Error::internal("stored tenant router does not decode", e.0))
}

/// A stored policy resolved against `table`.
fn policy(table: &Table, json: &str) -> Result<Option<Arc<aipipe_core::policy::Compiled>>> {
    if json.is_empty() {
        return Ok(None);
    }
    let p: aipipe_core::policy::Policy = serde_json::from_str(json)
        .map_err(|e| Error::internal("stored policy does not parse", e))?;
    Ok(Some(Arc::new(aipipe_core::policy::Compiled::compile(
        &p, table,
    ))))
}

/// A budget (a tenant's or a key's) as its directory entry; None: removed.
fn budget_entry(rev: u64, state: Option<crate::db::BudgetState>) -> BudgetEntry {
    match state {
        Some(s) => BudgetEntry {
            rev,
            removed: false,
            limit_nusd: s.limit.limit_nusd,
            days: s.limit.days,
            spent_nusd: s.spent_nusd,
            frees: s.frees,
        },
        None => BudgetEntry {
            rev,
            removed: true,
            limit_nusd: 0,
            days: 1,
            spent_nusd: 0,
            frees: Vec::new(),
        },
    }
}

/// A page of the change log as the filter's delta.
pub fn delta(page: ChangePage, cipher: &Cipher, cache: &Cache) -> Result<Vec<u8>> {
    let mut w = DeltaWriter::new(page.since);
    for changed in page.changes {
        match changed {
            Changed::Global(g) => w.push(Kind::Global, "", &cache.compiled(g)?.json),
            Changed::Tenant { rev, id, state } => {
                let entry = match state {
                    Some(s) => TenantEntry {
                        rev,
                        removed: false,
                        disabled: s.disabled,
                        pass_through: s.pass_through,
                        provider_keys: open_keys(cipher, &id, &s)?,
                        limits: s.limits,
                        policy: s.policy,
                        router: s.router,
                    },
                    None => TenantEntry {
                        rev,
                        removed: true,
                        disabled: false,
                        pass_through: false,
                        provider_keys: Vec::new(),
                        limits: Default::default(),
                        policy: String::new(),
                        router: Vec::new(),
                    },
                };
                w.push(Kind::Tenant, &id, &entry.encode());
            }
            Changed::Key { rev, hash, tenant } => {
                let entry = match tenant {
                    Some(k) => KeyEntry {
                        rev,
                        removed: false,
                        tenant: k.tenant,
                        limits: k.limits,
                        id: k.id,
                        budgeted: k.budgeted,
                    },
                    None => KeyEntry {
                        rev,
                        removed: true,
                        tenant: String::new(),
                        limits: Default::default(),
                        id: String::new(),
                        budgeted: false,
                    },
                };
                w.push(Kind::Key, &hash, &entry.encode());
            }
            Changed::Budget { rev, tenant, state } => {
                w.push(Kind::Budget, &tenant, &budget_entry(rev, state).encode());
            }
            Changed::KeyBudget { rev, key_id, state } => {
                w.push(Kind::KeyBudget, &key_id, &budget_entry(rev, state).encode());
            }
        }
    }
    Ok(w.finish(page.revision, page.more))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aipipe_core::directory::Delta;

    fn temp_db(name: &str) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-{name}-{}-{}",
            std::process::id(),
            crate::db::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (Db::open(&dir.join("aipipe.db")).unwrap(), dir)
    }

    #[tokio::test]
    async fn one_build_per_global_version() {
        let (db, dir) = temp_db("routing");
        let cache = Cache::default();
        let a = current(&db, &cache).await.unwrap();
        let b = current(&db, &cache).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "an unchanged version is not rebuilt");
        db.create_tenant("acme".into(), "Acme".into())
            .await
            .unwrap();
        let c = current(&db, &cache).await.unwrap();
        assert!(
            Arc::ptr_eq(&a, &c),
            "a tenant is no change of the global table"
        );
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_change_costs_its_own_entries_and_pages_resume_where_they_ended() {
        let (db, dir) = temp_db("changes");
        let cipher = Cipher::new(&[7; 32]);
        let cache = Cache::default();
        for t in ["a", "b", "c"] {
            db.create_tenant(t.into(), t.into()).await.unwrap();
        }
        // From 0: the global table and the three tenants, two per page; a
        // page that ends exactly at the last change says no more follow.
        let first = db.changes_since(0, 2).await.unwrap();
        assert!(first.more);
        let exact = db.changes_since(0, 4).await.unwrap();
        assert!(!exact.more && exact.changes.len() == 4);
        let body = delta(first, &cipher, &cache).unwrap();
        let d = Delta::parse(&body).unwrap();
        assert_eq!(d.records.len(), 2);
        assert_eq!(d.records[0].kind, Kind::Global);
        let second = db.changes_since(d.revision, 2).await.unwrap();
        let names: Vec<String> = second
            .changes
            .iter()
            .map(|c| match c {
                Changed::Tenant { id, .. } => id.clone(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(names, ["b", "c"]);
        let held = db.revision().await.unwrap();
        assert_eq!(second.revision, held);

        // One more tenant: exactly one entry after the revision held.
        db.create_tenant("d".into(), "d".into()).await.unwrap();
        let next = db.changes_since(held, 1000).await.unwrap();
        assert_eq!(next.changes.len(), 1);
        assert!(!next.more);
        // Deleted: a removal for those who held it, nothing from 0.
        db.delete_tenant("d".into()).await.unwrap();
        let after = db.changes_since(held, 1000).await.unwrap();
        assert!(matches!(
            &after.changes[..],
            [Changed::Tenant { state: None, .. }]
        ));
        let fresh = db.changes_since(0, 1000).await.unwrap();
        assert_eq!(fresh.changes.len(), 4, "global + a, b, c");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
