//! The routing table as the control plane builds it: one database snapshot,
//! provider keys opened, penalties applied, the filter's own wire type. The last built JSON is
//! kept per version, so many Envoys polling a changed version cost one build.

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
    // The aggregated penalty of each model (SPEC §10), as published at this
    // version. A penalty set in the catalog itself acts as a floor.
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

/// The last table JSON served, by version.
#[derive(Default)]
pub struct Cache(Mutex<Option<(u64, Bytes)>>);

impl Cache {
    pub fn get(&self, version: u64) -> Option<Bytes> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, b)| b.clone())
    }

    pub fn put(&self, version: u64, json: Bytes) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|(v, _)| *v <= version) {
            *slot = Some((version, json));
        }
    }
}

/// The JSON body of the current table and its version.
pub async fn current_json(db: &Db, cipher: &Arc<Cipher>, cache: &Cache) -> Result<(u64, Bytes)> {
    let version = db.table_version().await?;
    if let Some(json) = cache.get(version) {
        return Ok((version, json));
    }
    let raw = build(db, cipher).await?;
    let version = raw.version;
    // Serialised only after the filter's own compile accepted it: never ship
    // a table the filter would refuse.
    let json = Bytes::from(serde_json::to_vec(&raw)?);
    compile(raw)?;
    cache.put(version, json.clone());
    Ok((version, json))
}
