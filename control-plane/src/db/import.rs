//! Bulk import of tenants (`POST /admin/tenants/import`): many tenants, each
//! with its sealed provider keys and virtual-key hashes, in one transaction
//! per batch, each recorded in the change log like any other write.

use rusqlite::params;

use super::tenants::tenant_exists;
use super::{Change, Db, now_ms, record_change, to_i64};
use crate::error::Result;

/// One tenant to import, validated and sealed by the caller.
#[derive(Debug)]
pub struct ImportTenant {
    /// Its line in the import, for the report.
    pub line: usize,
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub pass_through: bool,
    /// (provider, sealed key).
    pub sealed_keys: Vec<(String, Vec<u8>)>,
    /// (virtual key id, hash).
    pub key_hashes: Vec<(String, String)>,
}

impl Db {
    /// Imports a batch in one transaction. A tenant that already exists, or
    /// one of whose key hashes is already registered, is refused as a whole
    /// and reported by line; the others are written.
    pub async fn import_tenants(&self, batch: Vec<ImportTenant>) -> Result<Vec<(usize, String)>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| super::pg::import::import_tenants(w, batch))
                .await;
        }
        self.write(move |tx| {
            let mut refused = Vec::new();
            let now = to_i64(now_ms());
            for t in batch {
                if tenant_exists(tx, &t.id)? {
                    refused.push((t.line, format!("tenant `{}` already exists", t.id)));
                    continue;
                }
                let mut taken = tx.prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE key_hash = ?1)",
                )?;
                let mut clash = false;
                for (_, hash) in &t.key_hashes {
                    clash |= taken.query_row([hash], |r| r.get::<_, bool>(0))?;
                }
                if clash {
                    refused.push((
                        t.line,
                        "a virtual key hash of this tenant is already registered".into(),
                    ));
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO tenants (id, name, disabled, created_at, pass_through) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![t.id, t.name, t.disabled, now, t.pass_through])?;
                let mut key = tx.prepare_cached(
                    "INSERT INTO provider_keys (tenant, provider, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (provider, sealed) in &t.sealed_keys {
                    key.execute(params![t.id, provider, sealed, now])?;
                }
                record_change(tx, Change::Tenant(&t.id))?;
                let mut vk = tx.prepare_cached(
                    "INSERT INTO virtual_keys (id, tenant, name, key_hash, created_at) VALUES (?1, ?2, 'imported', ?3, ?4)",
                )?;
                for (id, hash) in &t.key_hashes {
                    vk.execute(params![id, t.id, hash, now])?;
                    record_change(tx, Change::Key(hash))?;
                }
            }
            Ok(refused)
        })
        .await
    }
}
