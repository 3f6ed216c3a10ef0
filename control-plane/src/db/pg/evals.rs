//! Tenant evals on PostgreSQL (`db/evals.rs`'s functions).

use postgres::{Row, Transaction};

use super::super::evals::{COLUMNS, EvalRow, INTERRUPTED};
use super::super::{now_ms, to_i64, to_u64};
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::Result;

fn row(r: &Row) -> EvalRow {
    EvalRow {
        id: r.get(0),
        tenant: r.get(1),
        status: r.get(2),
        created_ms: to_u64(r.get(3)),
        finished_ms: r.get::<_, Option<i64>>(4).map(to_u64),
        spec: r.get(5),
        results: r.get(6),
        error: r.get(7),
        applied_ms: r.get::<_, Option<i64>>(8).map(to_u64),
        apply_error: r.get(9),
    }
}

pub(in crate::db) fn tenant_key_is_live(
    tx: &mut Transaction<'_>,
    tenant: &str,
    key_hash: &str,
) -> Result<Option<bool>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    Ok(Some(
        tx.query_one(
            "SELECT EXISTS(SELECT 1 FROM virtual_keys
               WHERE tenant = $1 AND key_hash = $2 AND revoked_at IS NULL)",
            &[&tenant, &key_hash],
        )?
        .get(0),
    ))
}

pub(in crate::db) fn create(
    w: &mut Writer<'_>,
    id: &str,
    tenant: &str,
    spec: &str,
    owner: &str,
) -> Result<bool> {
    if !tenant_exists(w, tenant)? {
        return Ok(false);
    }
    w.execute(
        "INSERT INTO evals (id, tenant, status, created_ms, spec, owner, heartbeat_ms)
         VALUES ($1, $2, 'running', $3, $4, $5, $3)",
        &[&id, &tenant, &to_i64(now_ms()), &spec, &owner],
    )?;
    Ok(true)
}

pub(in crate::db) fn heartbeat(w: &mut Writer<'_>, id: &str, owner: &str) -> Result<bool> {
    Ok(w.execute(
        "UPDATE evals SET heartbeat_ms = $3
         WHERE id = $1 AND owner = $2 AND status = 'running'",
        &[&id, &owner, &to_i64(now_ms())],
    )? > 0)
}

pub(in crate::db) fn finish(
    w: &mut Writer<'_>,
    id: &str,
    status: &str,
    results: Option<String>,
    error: Option<String>,
) -> Result<()> {
    w.execute(
        "UPDATE evals SET status = $2, results = $3, error = $4, finished_ms = $5
         WHERE id = $1 AND status = 'running'",
        &[&id, &status, &results, &error, &to_i64(now_ms())],
    )?;
    Ok(())
}

pub(in crate::db) fn applied(
    w: &mut Writer<'_>,
    id: &str,
    outcome: std::result::Result<(), String>,
) -> Result<()> {
    match outcome {
        Ok(()) => w.execute(
            "UPDATE evals SET applied_ms = $2, apply_error = NULL WHERE id = $1",
            &[&id, &to_i64(now_ms())],
        )?,
        Err(why) => w.execute(
            "UPDATE evals SET apply_error = $2 WHERE id = $1",
            &[&id, &why],
        )?,
    };
    Ok(())
}

pub(in crate::db) fn eval(tx: &mut Transaction<'_>, id: &str) -> Result<Option<EvalRow>> {
    Ok(tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM evals WHERE id = $1"),
            &[&id],
        )?
        .map(|r| row(&r)))
}

pub(in crate::db) fn tenant_evals(
    tx: &mut Transaction<'_>,
    tenant: &str,
    limit: u32,
) -> Result<Option<Vec<EvalRow>>> {
    if !tenant_exists(tx, tenant)? {
        return Ok(None);
    }
    Ok(Some(
        tx.query(
            &format!(
                "SELECT {COLUMNS} FROM evals WHERE tenant = $1
                 ORDER BY created_ms DESC, id DESC LIMIT $2"
            ),
            &[&tenant, &i64::from(limit)],
        )?
        .iter()
        .map(row)
        .collect(),
    ))
}

/// Every eval running under another owner whose heartbeat is at or before
/// `before` (unix ms) is marked failed (`Db::fail_interrupted_evals`).
pub(in crate::db) fn fail_interrupted(
    w: &mut Writer<'_>,
    owner: &str,
    before: u64,
) -> Result<usize> {
    let n = w.execute(
        &format!(
            "UPDATE evals SET status = 'failed', finished_ms = $3, error = '{INTERRUPTED}'
             WHERE status = 'running' AND owner IS DISTINCT FROM $1
               AND COALESCE(heartbeat_ms, created_ms) <= $2"
        ),
        &[&owner, &to_i64(before), &to_i64(now_ms())],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
