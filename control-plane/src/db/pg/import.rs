//! Bulk import of tenants on PostgreSQL (`db/import.rs`'s function).

use super::super::import::ImportTenant;
use super::super::{Change, now_ms, to_i64};
use super::changes::record_change;
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::Result;

/// Imports a batch in the caller's transaction; a tenant that exists, or
/// one of whose key hashes is registered, is refused whole and reported by
/// line.
pub(in crate::db) fn import_tenants(
    w: &mut Writer<'_>,
    batch: Vec<ImportTenant>,
) -> Result<Vec<(usize, String)>> {
    let mut refused = Vec::new();
    let now = to_i64(now_ms());
    let taken = w.prepare("SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE key_hash = $1)")?;
    let tenant = w.prepare(
        "INSERT INTO tenants (id, name, disabled, created_at, pass_through)
         VALUES ($1, $2, $3, $4, $5)",
    )?;
    let key = w.prepare(
        "INSERT INTO provider_keys (tenant, provider, sealed, updated_at) VALUES ($1, $2, $3, $4)",
    )?;
    let vk = w.prepare(
        "INSERT INTO virtual_keys (id, tenant, name, key_hash, created_at)
         VALUES ($1, $2, 'imported', $3, $4)",
    )?;
    for t in batch {
        if tenant_exists(w, &t.id)? {
            refused.push((t.line, format!("tenant `{}` already exists", t.id)));
            continue;
        }
        let mut clash = false;
        for (_, hash) in &t.key_hashes {
            clash |= w.query_one(&taken, &[hash])?.get::<_, bool>(0);
        }
        if clash {
            refused.push((
                t.line,
                "a virtual key hash of this tenant is already registered".into(),
            ));
            continue;
        }
        w.execute(
            &tenant,
            &[&t.id, &t.name, &t.disabled, &now, &t.pass_through],
        )?;
        for (provider, sealed) in &t.sealed_keys {
            w.execute(&key, &[&t.id, provider, sealed, &now])?;
        }
        record_change(w, Change::Tenant(&t.id))?;
        for (id, hash) in &t.key_hashes {
            w.execute(&vk, &[id, &t.id, hash, &now])?;
            record_change(w, Change::Key(hash))?;
        }
    }
    Ok(refused)
}
