//! Rate limits on PostgreSQL (`db/limits.rs`'s functions).

use aipipe_core::ratelimit::Limits;
use postgres::Transaction;

use super::super::limits::{LimitsAt, Scope};
use super::super::{Change, to_i64};
use super::changes::{rate_limits, record_change};
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::Result;

/// The live key's hash, when the key is the tenant's.
pub(in crate::db) fn key_hash(
    tx: &mut Transaction<'_>,
    tenant: &str,
    key_id: &str,
) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT key_hash FROM virtual_keys WHERE id = $1 AND tenant = $2 AND revoked_at IS NULL",
            &[&key_id, &tenant],
        )?
        .map(|r| r.get(0)))
}

pub(in crate::db) fn limits(tx: &mut Transaction<'_>, scope: Scope) -> Result<LimitsAt> {
    if !tenant_exists(tx, &scope.tenant)? {
        return Ok(LimitsAt::NoTenant);
    }
    let key_id = scope.key_id.unwrap_or_default();
    if !key_id.is_empty() && key_hash(tx, &scope.tenant, &key_id)?.is_none() {
        return Ok(LimitsAt::NoKey);
    }
    Ok(LimitsAt::Found(rate_limits(tx, &scope.tenant, &key_id)?))
}

pub(in crate::db) fn set_limits(
    w: &mut Writer<'_>,
    scope: Scope,
    limits: Limits,
) -> Result<LimitsAt> {
    if !tenant_exists(w, &scope.tenant)? {
        return Ok(LimitsAt::NoTenant);
    }
    let key_id = scope.key_id.unwrap_or_default();
    let hash = if key_id.is_empty() {
        None
    } else {
        match key_hash(w, &scope.tenant, &key_id)? {
            Some(h) => Some(h),
            None => return Ok(LimitsAt::NoKey),
        }
    };
    if limits.is_none() {
        w.execute(
            "DELETE FROM rate_limits WHERE tenant = $1 AND key_id = $2",
            &[&scope.tenant, &key_id],
        )?;
    } else {
        w.execute(
            "INSERT INTO rate_limits (tenant, key_id, requests_per_minute, tokens_per_minute)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, key_id) DO UPDATE SET
                requests_per_minute = excluded.requests_per_minute,
                tokens_per_minute = excluded.tokens_per_minute",
            &[
                &scope.tenant,
                &key_id,
                &i64::from(limits.requests_per_minute),
                &to_i64(limits.tokens_per_minute),
            ],
        )?;
    }
    match &hash {
        Some(h) => record_change(w, Change::Key(h))?,
        None => record_change(w, Change::Tenant(&scope.tenant))?,
    };
    Ok(LimitsAt::Found(limits))
}
