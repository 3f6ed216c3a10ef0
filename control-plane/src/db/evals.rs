//! Tenant evals (control-plane/README.md, "Evals"): one row per eval, its
//! request (without the virtual key) and, once finished, its results, as
//! JSON. A tenant's evals go with it when it is deleted.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, now_ms, pg, to_i64, to_u64};
use crate::error::Result;

/// An eval as stored.
#[derive(Debug, Clone)]
pub struct EvalRow {
    pub id: String,
    pub tenant: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// `evals::StoredSpec` as JSON.
    pub spec: String,
    /// `evals::run::Outcome` as JSON, once finished.
    pub results: Option<String>,
    pub error: Option<String>,
    pub applied_ms: Option<u64>,
    pub apply_error: Option<String>,
}

pub(super) const COLUMNS: &str =
    "id, tenant, status, created_ms, finished_ms, spec, results, error, applied_ms, apply_error";

fn row(r: &Row<'_>) -> rusqlite::Result<EvalRow> {
    Ok(EvalRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        status: r.get(2)?,
        created_ms: to_u64(r.get(3)?),
        finished_ms: r.get::<_, Option<i64>>(4)?.map(to_u64),
        spec: r.get(5)?,
        results: r.get(6)?,
        error: r.get(7)?,
        applied_ms: r.get::<_, Option<i64>>(8)?.map(to_u64),
        apply_error: r.get(9)?,
    })
}

impl Db {
    /// Whether `key_hash` is a live virtual key of `tenant`; None when the
    /// tenant does not exist.
    pub async fn tenant_key_is_live(
        &self,
        tenant: String,
        key_hash: String,
    ) -> Result<Option<bool>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::evals::tenant_key_is_live(tx, &tenant, &key_hash))
                .await;
        }
        self.read(move |tx| {
            if !super::tenants::tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            Ok(Some(tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM virtual_keys
                   WHERE tenant = ?1 AND key_hash = ?2 AND revoked_at IS NULL)",
                params![tenant, key_hash],
                |r| r.get(0),
            )?))
        })
        .await
    }

    /// Records a new eval as running; false when the tenant does not exist.
    pub async fn create_eval(&self, id: String, tenant: String, spec: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::create(w, &id, &tenant, &spec))
                .await;
        }
        self.write(move |tx| {
            if !super::tenants::tenant_exists(tx, &tenant)? {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO evals (id, tenant, status, created_ms, spec) VALUES (?1, ?2, 'running', ?3, ?4)",
                params![id, tenant, to_i64(now_ms()), spec],
            )?;
            Ok(true)
        })
        .await
    }

    /// Ends a running eval: `done` with its results, or `failed` with why.
    pub async fn finish_eval(
        &self,
        id: String,
        status: &'static str,
        results: Option<String>,
        error: Option<String>,
    ) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::finish(w, &id, status, results, error))
                .await;
        }
        self.write(move |tx| {
            tx.execute(
                "UPDATE evals SET status = ?2, results = ?3, error = ?4, finished_ms = ?5
                 WHERE id = ?1 AND status = 'running'",
                params![id, status, results, error, to_i64(now_ms())],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that an eval's figures were written into its tenant's policy
    /// (Ok), or why they could not be (Err).
    pub async fn eval_applied(
        &self,
        id: String,
        outcome: std::result::Result<(), String>,
    ) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::applied(w, &id, outcome))
                .await;
        }
        self.write(move |tx| {
            match outcome {
                Ok(()) => tx.execute(
                    "UPDATE evals SET applied_ms = ?2, apply_error = NULL WHERE id = ?1",
                    params![id, to_i64(now_ms())],
                )?,
                Err(why) => tx.execute(
                    "UPDATE evals SET apply_error = ?2 WHERE id = ?1",
                    params![id, why],
                )?,
            };
            Ok(())
        })
        .await
    }

    pub async fn eval(&self, id: String) -> Result<Option<EvalRow>> {
        if self.postgres().is_some() {
            return self.pg_read(move |tx| pg::evals::eval(tx, &id)).await;
        }
        self.read(move |tx| {
            Ok(tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM evals WHERE id = ?1"),
                    [id],
                    row,
                )
                .optional()?)
        })
        .await
    }

    /// A tenant's newest evals (at most `limit`); None when the tenant does
    /// not exist.
    pub async fn tenant_evals(&self, tenant: String, limit: u32) -> Result<Option<Vec<EvalRow>>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::evals::tenant_evals(tx, &tenant, limit))
                .await;
        }
        self.read(move |tx| {
            if !super::tenants::tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let rows = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM evals WHERE tenant = ?1
                     ORDER BY created_ms DESC, id DESC LIMIT ?2"
                ))?
                .query_map(params![tenant, limit], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(rows))
        })
        .await
    }

    /// At start: evals left running by a stopped process cannot finish (the
    /// key they ran with was never stored); they are marked failed.
    pub async fn fail_interrupted_evals(&self) -> Result<usize> {
        if self.postgres().is_some() {
            return self.pg_write(pg::evals::fail_interrupted).await;
        }
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE evals SET status = 'failed', finished_ms = ?1,
                   error = 'interrupted: the control plane stopped while it ran'
                 WHERE status = 'running'",
                [to_i64(now_ms())],
            )?)
        })
        .await
    }
}
