//! Per-tenant routing on PostgreSQL (`db/learning.rs`'s functions).

use aipipe_core::classify::{Category, Tier};
use aipipe_core::usage::UsageRecord;
use postgres::Transaction;

use super::super::learning::{FittedRouter, Labelled, NewExample, RoutingState};
use super::super::{Change, now_ms, to_i64, to_u64};
use super::changes::record_change;
use super::pool::Writer;
use super::tenants::tenant_exists;
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

/// `Db::prune_request_features` on PostgreSQL: router features older than
/// `kept_ms`, and each tenant's beyond its newest `per_tenant` (at least 1).
pub(in crate::db) fn prune_features(
    w: &mut Writer<'_>,
    now: u64,
    kept_ms: u64,
    per_tenant: u64,
) -> Result<u64> {
    let mut n = w.execute(
        "DELETE FROM request_features WHERE ts_ms < $1",
        &[&to_i64(now.saturating_sub(kept_ms))],
    )?;
    let over: Vec<String> = w
        .query(
            "SELECT tenant FROM request_features GROUP BY tenant HAVING COUNT(*) > $1",
            &[&to_i64(per_tenant)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for tenant in over {
        n += w.execute(
            "DELETE FROM request_features WHERE tenant = $1 AND ts_ms < (
                SELECT ts_ms FROM request_features WHERE tenant = $1
                ORDER BY ts_ms DESC LIMIT 1 OFFSET $2)",
            &[&tenant, &to_i64(per_tenant.saturating_sub(1))],
        )?;
    }
    Ok(n)
}

pub(in crate::db) fn add_routing_examples(
    w: &mut Writer<'_>,
    tenant: &str,
    examples: Vec<NewExample>,
) -> Result<Option<u64>> {
    if !tenant_exists(w, tenant)? {
        return Ok(None);
    }
    let now = to_i64(now_ms());
    let add = w.prepare(
        "INSERT INTO routing_examples (tenant, tier, category, request, features, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )?;
    for e in examples {
        w.execute(
            &add,
            &[
                &tenant,
                &e.tier.name(),
                &e.category.map(Category::name),
                &e.request,
                &e.features,
                &now,
            ],
        )?;
    }
    let n: i64 = w
        .query_one(
            "SELECT COUNT(*) FROM routing_examples WHERE tenant = $1",
            &[&tenant],
        )?
        .get(0);
    Ok(Some(to_u64(n)))
}

pub(in crate::db) fn clear_routing_examples(w: &mut Writer<'_>, tenant: &str) -> Result<bool> {
    if !tenant_exists(w, tenant)? {
        return Ok(false);
    }
    w.execute("DELETE FROM routing_examples WHERE tenant = $1", &[&tenant])?;
    w.execute("DELETE FROM routing_feedback WHERE tenant = $1", &[&tenant])?;
    Ok(true)
}

pub(in crate::db) fn add_feedback(
    w: &mut Writer<'_>,
    tenant: &str,
    request_id: &str,
    good: bool,
    tier: Option<Tier>,
) -> Result<bool> {
    w.execute(
        "INSERT INTO routing_feedback (tenant, request_id, good, tier, created_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, request_id) DO UPDATE SET good = excluded.good,
            tier = excluded.tier, created_ms = excluded.created_ms",
        &[
            &tenant,
            &request_id,
            &good,
            &tier.map(Tier::name),
            &to_i64(now_ms()),
        ],
    )?;
    Ok(w.query_one(
        "SELECT EXISTS(SELECT 1 FROM request_features WHERE tenant = $1 AND request_id = $2)",
        &[&tenant, &request_id],
    )?
    .get(0))
}

pub(in crate::db) fn labelled_requests(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Vec<Labelled>> {
    let mut out: Vec<Labelled> = tx
        .query(
            "SELECT tier, category, request, features FROM routing_examples
             WHERE tenant = $1 ORDER BY id",
            &[&tenant],
        )?
        .iter()
        .filter_map(|r| Labelled::example(r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    out.extend(
        tx.query(
            "SELECT f.good, f.tier, r.complexity, r.features FROM routing_feedback f
             JOIN request_features r ON r.tenant = f.tenant AND r.request_id = f.request_id
             WHERE f.tenant = $1 ORDER BY f.created_ms, f.request_id",
            &[&tenant],
        )?
        .iter()
        .filter_map(|r| Labelled::rating(r.get(0), r.get(1), r.get(2), r.get(3))),
    );
    Ok(out)
}

pub(in crate::db) fn save_tenant_router(
    w: &mut Writer<'_>,
    tenant: &str,
    fitted: Option<(u32, u64, u64, Vec<u8>)>,
) -> Result<()> {
    if !tenant_exists(w, tenant)? {
        return Ok(());
    }
    let changed = match fitted {
        Some((version, examples, rows, blob)) => w.execute(
            "INSERT INTO tenant_routers (tenant, model_version, examples, rows, blob, fitted_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant) DO UPDATE SET model_version = excluded.model_version,
                examples = excluded.examples, rows = excluded.rows, blob = excluded.blob,
                fitted_ms = excluded.fitted_ms",
            &[
                &tenant,
                &i64::from(version),
                &to_i64(examples),
                &to_i64(rows),
                &blob,
                &to_i64(now_ms()),
            ],
        )?,
        None => w.execute("DELETE FROM tenant_routers WHERE tenant = $1", &[&tenant])?,
    };
    if changed > 0 {
        record_change(w, Change::Tenant(tenant))?;
    }
    Ok(())
}

pub(in crate::db) fn routing_state(
    tx: &mut Transaction<'_>,
    tenant: &str,
) -> Result<Option<RoutingState>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    let mut count =
        |sql: &str| -> Result<u64> { Ok(to_u64(tx.query_one(sql, &[&tenant])?.get::<_, i64>(0))) };
    let examples = count("SELECT COUNT(*) FROM routing_examples WHERE tenant = $1")?;
    let ratings = count("SELECT COUNT(*) FROM routing_feedback WHERE tenant = $1")?;
    let ratings_learnable = count(
        "SELECT COUNT(*) FROM routing_feedback f JOIN request_features r
         ON r.tenant = f.tenant AND r.request_id = f.request_id WHERE f.tenant = $1",
    )?;
    let features_kept = count("SELECT COUNT(*) FROM request_features WHERE tenant = $1")?;
    let router = tx
        .query_opt(
            "SELECT model_version, examples, rows, blob, fitted_ms FROM tenant_routers
             WHERE tenant = $1",
            &[&tenant],
        )?
        .map(|r| FittedRouter::of(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)).0);
    Ok(Some(RoutingState {
        examples,
        ratings,
        ratings_learnable,
        features_kept,
        router,
    }))
}
