//! Tenant evals (control-plane/README.md, "Evals"): one row per eval, its
//! request (without the virtual key) and, once finished, its results, as
//! JSON. A tenant's evals go with it when it is deleted.
//!
//! A running eval has an owner — the control plane (process) running it,
//! [`Db::owner`] — and a heartbeat its runner refreshes; one whose
//! heartbeat is older than a bound is failed as interrupted by any control
//! plane on the database (control-plane/README.md, "Replicas").

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

/// Why an eval its control plane stopped running failed.
pub(super) const INTERRUPTED: &str = "interrupted: the control plane stopped while it ran";

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

    /// Records a new eval as running, owned by this control plane;
    /// false when the tenant does not exist.
    pub async fn create_eval(&self, id: String, tenant: String, spec: String) -> Result<bool> {
        let owner = self.owner().to_owned();
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::create(w, &id, &tenant, &spec, &owner))
                .await;
        }
        self.write(move |tx| {
            if !super::tenants::tenant_exists(tx, &tenant)? {
                return Ok(false);
            }
            let now = to_i64(now_ms());
            tx.execute(
                "INSERT INTO evals (id, tenant, status, created_ms, spec, owner, heartbeat_ms)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?3)",
                params![id, tenant, now, spec, owner],
            )?;
            Ok(true)
        })
        .await
    }

    /// The runner of eval `id` says it still runs it: its heartbeat is now.
    /// False when the eval is no longer running here (another control plane
    /// failed it as interrupted, or it ended): the runner stops.
    pub async fn eval_heartbeat(&self, id: String) -> Result<bool> {
        let owner = self.owner().to_owned();
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::heartbeat(w, &id, &owner))
                .await;
        }
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE evals SET heartbeat_ms = ?3
                 WHERE id = ?1 AND owner = ?2 AND status = 'running'",
                params![id, owner, to_i64(now_ms())],
            )? > 0)
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

    /// Evals another control plane left running and no longer runs — its
    /// heartbeat (or, from before heartbeats, its creation) older than
    /// `stale_ms` — cannot finish (the key they ran with was never stored):
    /// they are marked failed. This control plane's own are never touched
    /// (its runner ends them). With `stale_ms` 0, every running eval of
    /// another owner: at start on SQLite, where no other process runs any.
    pub async fn fail_interrupted_evals(&self, stale_ms: u64) -> Result<usize> {
        let owner = self.owner().to_owned();
        let before = now_ms().saturating_sub(stale_ms);
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::evals::fail_interrupted(w, &owner, before))
                .await;
        }
        self.write(move |tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE evals SET status = 'failed', finished_ms = ?3, error = '{INTERRUPTED}'
                     WHERE status = 'running' AND owner IS NOT ?1
                       AND COALESCE(heartbeat_ms, created_ms) <= ?2"
                ),
                params![owner, to_i64(before), to_i64(now_ms())],
            )?)
        })
        .await
    }
}
