//! Per-tenant routing on PostgreSQL (`db/learning.rs`'s functions; so far
//! the reads the change log and the router model's replacement need, and
//! the features ingest keeps).

use aipipe_core::usage::UsageRecord;
use postgres::Transaction;

use super::super::to_i64;
use super::pool::Writer;
use crate::error::Result;

/// The encoded correction a tenant's directory entry carries (empty: none).
pub(in crate::db) fn tenant_router_blob(tx: &mut Transaction<'_>, tenant: &str) -> Result<Vec<u8>> {
    Ok(tx
        .query_opt(
            "SELECT blob FROM tenant_routers WHERE tenant = $1",
            &[&tenant],
        )?
        .map(|r| r.get(0))
        .unwrap_or_default())
}

/// Tenants that have anything to learn from (refitted when the router model
/// changes).
pub(in crate::db) fn learning_tenants(tx: &mut Transaction<'_>) -> Result<Vec<String>> {
    Ok(tx
        .query(
            "SELECT tenant FROM routing_examples UNION SELECT tenant FROM routing_feedback
             UNION SELECT tenant FROM tenant_routers",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `Tx::add_request_features` on PostgreSQL: keeps the router features new
/// records carry (those that decode); returns the tenants for which a
/// rating was waiting on one of these requests.
pub(in crate::db) fn add_request_features(
    w: &mut Writer<'_>,
    records: &[&UsageRecord],
) -> Result<Vec<String>> {
    let add = w.prepare(
        "INSERT INTO request_features (tenant, request_id, ts_ms, complexity, features)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )?;
    let rated = w.prepare(
        "SELECT EXISTS(SELECT 1 FROM routing_feedback WHERE tenant = $1 AND request_id = $2)",
    )?;
    let mut waiting = Vec::new();
    for r in records {
        let Some(bytes) = super::super::learning::features_of(r) else {
            continue;
        };
        let added = w.execute(
            &add,
            &[
                &r.tenant,
                &r.id,
                &to_i64(r.ts_ms),
                &r.complexity.unwrap_or(0.0),
                &bytes,
            ],
        )?;
        if added > 0
            && w.query_one(&rated, &[&r.tenant, &r.id])?.get::<_, bool>(0)
            && !waiting.contains(&r.tenant)
        {
            waiting.push(r.tenant.clone());
        }
    }
    Ok(waiting)
}
