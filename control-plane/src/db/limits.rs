//! Rate limits of tenants and virtual keys (control-plane/README.md, "Rate
//! limits"): stored here, shipped in the tenant's or the key's directory
//! entry, enforced by each Envoy.

use rusqlite::{OptionalExtension, params};

use super::changes::rate_limits;
use super::tenants::tenant_exists;
use super::{Change, Db, pg, record_change, to_i64};
use crate::error::Result;
use aipipe_core::ratelimit::Limits;

/// Whose limits: a tenant's, or one of its virtual keys'.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tenant: String,
    /// A virtual key's id; None for the tenant.
    pub key_id: Option<String>,
}

/// What a limits call found.
#[derive(Debug, PartialEq)]
pub enum LimitsAt {
    /// The scope's limits (none set: both 0).
    Found(Limits),
    NoTenant,
    NoKey,
}

/// The live key's hash, when the key is the tenant's.
pub(super) fn key_hash(
    tx: &rusqlite::Connection,
    tenant: &str,
    key_id: &str,
) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT key_hash FROM virtual_keys WHERE id = ?1 AND tenant = ?2 AND revoked_at IS NULL",
            params![key_id, tenant],
            |r| r.get(0),
        )
        .optional()?)
}

impl Db {
    pub async fn limits(&self, scope: Scope) -> Result<LimitsAt> {
        if self.postgres().is_some() {
            return self.pg_read(move |tx| pg::limits::limits(tx, scope)).await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &scope.tenant)? {
                return Ok(LimitsAt::NoTenant);
            }
            let key_id = scope.key_id.unwrap_or_default();
            if !key_id.is_empty() && key_hash(tx, &scope.tenant, &key_id)?.is_none() {
                return Ok(LimitsAt::NoKey);
            }
            Ok(LimitsAt::Found(rate_limits(tx, &scope.tenant, &key_id)?))
        })
        .await
    }

    /// Sets a scope's limits (both 0 removes them); the tenant's or the
    /// key's directory entry carries them to every Envoy.
    pub async fn set_limits(&self, scope: Scope, limits: Limits) -> Result<LimitsAt> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::limits::set_limits(w, scope, limits))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &scope.tenant)? {
                return Ok(LimitsAt::NoTenant);
            }
            let key_id = scope.key_id.unwrap_or_default();
            let hash = if key_id.is_empty() {
                None
            } else {
                match key_hash(tx, &scope.tenant, &key_id)? {
                    Some(h) => Some(h),
                    None => return Ok(LimitsAt::NoKey),
                }
            };
            if limits.is_none() {
                tx.execute(
                    "DELETE FROM rate_limits WHERE tenant = ?1 AND key_id = ?2",
                    params![scope.tenant, key_id],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO rate_limits (tenant, key_id, requests_per_minute, tokens_per_minute)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, key_id) DO UPDATE SET
                        requests_per_minute = excluded.requests_per_minute,
                        tokens_per_minute = excluded.tokens_per_minute",
                    params![
                        scope.tenant,
                        key_id,
                        limits.requests_per_minute,
                        to_i64(limits.tokens_per_minute)
                    ],
                )?;
            }
            match &hash {
                Some(h) => record_change(tx, Change::Key(h))?,
                None => record_change(tx, Change::Tenant(&scope.tenant))?,
            };
            Ok(LimitsAt::Found(limits))
        })
        .await
    }
}
