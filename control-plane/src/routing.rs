//! The routing table as the control plane builds it: one database snapshot,
//! provider keys opened, penalties applied, the filter's own wire type. The
//! last built table is kept with its version — its JSON for the filters and
//! its compiled form for `POST /admin/route/explain` — so many Envoys
//! polling a changed version, or many explain calls, cost one build (one
//! decryption of every tenant's keys) per version.

use std::sync::{Arc, Mutex, PoisonError};

use aipipe_core::table::{RoutingTable, Table, Tenant};
use axum::body::Bytes;

use crate::crypto::Cipher;
use crate::db::{Db, TableSnapshot};
use crate::error::{Error, Result};

/// The filter's table from a snapshot: default providers, the stored catalog,
/// every tenant (disabled ones marked so the filter can answer 403), each
/// with its live key hashes and opened provider keys.
pub fn from_snapshot(snap: TableSnapshot, cipher: &Cipher) -> Result<RoutingTable> {
    let mut tenants = Vec::with_capacity(snap.tenants.len());
    for t in snap.tenants {
        let mut provider_keys = std::collections::BTreeMap::new();
        for (provider, sealed) in &t.sealed_keys {
            provider_keys.insert(provider.clone(), cipher.open(&t.id, provider, sealed)?);
        }
        tenants.push(Tenant {
            id: t.id,
            disabled: t.disabled,
            virtual_key_hashes: t.virtual_key_hashes,
            provider_keys,
        });
    }
    // The aggregated penalty of each model (control-plane/README.md,
    // "Penalties"), as published at this version. A penalty set in the
    // catalog itself acts as a floor.
    let penalties: std::collections::HashMap<(&str, &str), f64> = snap
        .penalties
        .iter()
        .map(|(p, m, v)| ((p.as_str(), m.as_str()), *v))
        .collect();
    let mut models = snap.models;
    for m in &mut models {
        if let Some(&p) = penalties.get(&(m.provider.as_str(), m.id.as_str())) {
            m.penalty = m.penalty.max(p);
        }
    }
    Ok(RoutingTable {
        version: snap.version,
        models,
        tenants,
        penalty_epoch: snap.penalty_epoch,
        ..RoutingTable::default()
    })
}

pub async fn build(db: &Db, cipher: &Cipher) -> Result<RoutingTable> {
    from_snapshot(db.table_snapshot().await?, cipher)
}

/// Compiles with the filter's own validation; a failure here means the
/// database holds something the admin API should have refused.
pub fn compile(raw: RoutingTable) -> Result<Table> {
    Table::compile(raw).map_err(|e| Error::internal("stored routing table does not compile", e))
}

/// One version of the table, built once: what the filters are sent and
/// what explain ranks with.
pub struct Compiled {
    pub version: u64,
    /// The wire form served to filters.
    pub json: Bytes,
    /// The filter's compiled form of the same table.
    pub table: Table,
}

/// The last table built, by version.
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
}

/// The current table: from the cache when the database is still at its
/// version (one indexed read), built and kept otherwise.
pub async fn current(db: &Db, cipher: &Cipher, cache: &Cache) -> Result<Arc<Compiled>> {
    let version = db.table_version().await?;
    if let Some(built) = cache.get(version) {
        return Ok(built);
    }
    let raw = build(db, cipher).await?;
    let version = raw.version;
    // Serialised only after the filter's own compile accepted it: never ship
    // a table the filter would refuse.
    let json = Bytes::from(serde_json::to_vec(&raw)?);
    let table = compile(raw)?;
    let built = Arc::new(Compiled {
        version,
        json,
        table,
    });
    cache.put(built.clone());
    Ok(built)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn one_build_per_version() {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-routing-{}-{}",
            std::process::id(),
            crate::db::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(&dir.join("aipipe.db")).unwrap();
        let cipher = Cipher::new(&[7; 32]);
        let cache = Cache::default();
        let a = current(&db, &cipher, &cache).await.unwrap();
        let b = current(&db, &cipher, &cache).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "an unchanged version is not rebuilt");
        db.create_tenant("acme".into(), "Acme".into())
            .await
            .unwrap();
        let c = current(&db, &cipher, &cache).await.unwrap();
        assert_eq!(c.version, a.version + 1);
        assert!(c.table.tenant_by_id("acme").is_some());
        cache.put(a.clone());
        assert!(
            cache.get(c.version).is_some(),
            "an older build never replaces a newer one"
        );
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
