//! Per-tenant routing on PostgreSQL (`db/learning.rs`'s functions; so far
//! the reads the change log and the router model's replacement need).

use postgres::Transaction;

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
