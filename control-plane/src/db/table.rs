//! What the routing table is built from: one consistent read of every
//! aggregate it carries.

use std::collections::HashMap;

use aipipe_core::table::Model;

use super::catalog::models;
use super::penalties::penalty_rows;
use super::{Db, penalty_epoch, version};
use crate::error::Result;

/// What the routing table is built from, read in one snapshot.
#[derive(Debug)]
pub struct TableSnapshot {
    pub version: u64,
    pub models: Vec<Model>,
    pub tenants: Vec<TenantRow>,
    /// (provider, model, penalty) as published at this version.
    pub penalties: Vec<(String, String, f64)>,
    pub penalty_epoch: u64,
}

#[derive(Debug)]
pub struct TenantRow {
    pub id: String,
    pub disabled: bool,
    pub virtual_key_hashes: Vec<String>,
    /// (provider, sealed key).
    pub sealed_keys: Vec<(String, Vec<u8>)>,
}

impl Db {
    pub async fn table_version(&self) -> Result<u64> {
        self.read(|tx| version(tx)).await
    }

    pub async fn table_snapshot(&self) -> Result<TableSnapshot> {
        self.read(|tx| {
            let version = version(tx)?;
            let models = models(tx)?;
            let mut tenants: Vec<TenantRow> = tx
                .prepare("SELECT id, disabled FROM tenants ORDER BY id")?
                .query_map([], |r| {
                    Ok(TenantRow {
                        id: r.get(0)?,
                        disabled: r.get(1)?,
                        virtual_key_hashes: Vec::new(),
                        sealed_keys: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let index: HashMap<String, usize> = tenants
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect();
            let mut st = tx.prepare(
                "SELECT tenant, key_hash FROM virtual_keys WHERE revoked_at IS NULL ORDER BY tenant, created_at, id",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let tenant: String = r.get(0)?;
                if let Some(t) = index.get(&tenant).and_then(|&i| tenants.get_mut(i)) {
                    t.virtual_key_hashes.push(r.get(1)?);
                }
            }
            let mut st = tx
                .prepare("SELECT tenant, provider, sealed FROM provider_keys ORDER BY tenant, provider")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let tenant: String = r.get(0)?;
                if let Some(t) = index.get(&tenant).and_then(|&i| tenants.get_mut(i)) {
                    t.sealed_keys.push((r.get(1)?, r.get(2)?));
                }
            }
            let penalties = penalty_rows(tx)?
                .into_iter()
                .map(|r| (r.provider, r.model, r.published))
                .collect();
            Ok(TableSnapshot {
                version,
                models,
                tenants,
                penalties,
                penalty_epoch: penalty_epoch(tx)?,
            })
        })
        .await
    }
}
