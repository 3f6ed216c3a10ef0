//! Every SQL statement of the control plane. SQLite in WAL mode with
//! `synchronous=FULL`, so a commit that returned is on disk and an
//! acknowledged usage batch survives `kill -9` (and power loss). One writer
//! connection (SQLite serialises writers anyway) and a few reader connections
//! that WAL lets run beside it; rusqlite connections are not `Sync`, so each
//! sits behind a `Mutex` and is used from `spawn_blocking`.
//!
//! `table_version` in `meta` is bumped inside the same transaction as every
//! change that reaches the routing table, so a filter holding version N has
//! exactly what the database held at N.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aipipe_core::table::Model;
use aipipe_core::usage::{UsageAck, UsageRecord};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::penalty::{self, Outcome};
use crate::stats::{Row, Window};

const READERS: usize = 3;

/// Versioned migrations, applied in order, each in its own transaction and
/// recorded in `schema_migrations`. Never edit one that shipped; add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- sealed = nonce || XChaCha20-Poly1305(key), tenant+provider as associated data.
    CREATE TABLE provider_keys (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        provider TEXT NOT NULL,
        sealed BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, provider)
    ) WITHOUT ROWID;
    -- Only the SHA-256 of a virtual key is kept.
    CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant);
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        json TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Usage rows outlive their tenant (accounting). The id is the filter's
    -- request id: the idempotency key of ingestion.
    CREATE TABLE usage (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        complexity REAL,
        stream INTEGER NOT NULL,
        usage_parsed INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Covering index of the stats query: a tenant's window is one range scan
    -- that never touches the table.
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cost_nusd, usage_parsed,
        latency_ms, ttft_ms);
    -- Running totals per tenant/provider/model for /metrics, maintained by
    -- ingestion in the same transaction (a scrape never scans `usage`).
    CREATE TABLE usage_totals (
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        unparsed INTEGER NOT NULL,
        PRIMARY KEY (tenant, provider, model)
    ) WITHOUT ROWID;
    "#,
    ),
    (
        2,
        "cache-write tokens, failed attempts, penalties",
        r#"
    ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    -- The stats query reads the new column too: rebuild its covering index.
    DROP INDEX usage_stats;
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_nusd,
        usage_parsed, latency_ms, ttft_ms);
    ALTER TABLE usage_totals ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
    -- Upstream attempts that failed before another model answered (failover).
    -- Written with their record, in the same transaction, only when the record
    -- is new: as idempotent as the record. `n` is the attempt's position.
    CREATE TABLE attempt_failures (
        record_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status INTEGER NOT NULL,
        PRIMARY KEY (record_id, n)
    ) WITHOUT ROWID;
    CREATE INDEX attempt_failures_stats ON attempt_failures(tenant, ts_ms, provider, model);
    -- Each model's penalty (see penalty.rs) as of its last decay step
    -- `decayed_ms`, its counts since the last reset, the time of its last
    -- event (or reset), and `published`: the value the routing table carries.
    CREATE TABLE penalties (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        penalty REAL NOT NULL,
        decayed_ms INTEGER NOT NULL,
        successes INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        published REAL NOT NULL,
        PRIMARY KEY (provider, model)
    ) WITHOUT ROWID;
    -- Bumped by a penalty reset: filters then forget their local penalties.
    INSERT OR IGNORE INTO meta (key, value) VALUES ('penalty_epoch', 0);
    "#,
    ),
    (
        3,
        "answer-cache hits",
        r#"
    -- 1 when the filter answered from its cache (SPEC §11): no provider was
    -- called, so the row stays out of percentiles, success rates, penalties.
    ALTER TABLE usage ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
    -- The stats query reads the new column too: rebuild its covering index.
    DROP INDEX usage_stats;
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_nusd,
        usage_parsed, latency_ms, ttft_ms, cache_hit);
    ALTER TABLE usage_totals ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;
    "#,
    ),
    (
        4,
        "penalty epoch from the clock",
        r#"
    -- Filters act only on a higher penalty_epoch than the one they hold, so a
    -- new database counting resets from 0 had its resets ignored until they
    -- passed the old database's count. A new database now starts at its
    -- creation time in ms (a reset adds one), above any epoch before it. A
    -- database never reset moves there too: filters forget their local
    -- penalties once, as after a reset.
    UPDATE meta SET value = CAST(strftime('%s', 'now') AS INTEGER) * 1000
        WHERE key = 'penalty_epoch' AND value = 0;
    "#,
    ),
];

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

struct Pool {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Penalties halve every this many ms (SPEC §10).
    decay_ms: u64,
    /// Unix ms from which time decay alone makes the published penalties
    /// stale (so the table must be republished); set after every commit that
    /// touches penalties, while the writer is still held. 0 = check now.
    penalty_due: AtomicU64,
    /// One republish at a time when many polls find it due together.
    republishing: tokio::sync::Mutex<()>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Pool>);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    /// Unix ms.
    pub created_at: u64,
    /// Providers the tenant has a key for (never the keys).
    pub providers: Vec<String>,
    /// Live (unrevoked) virtual keys.
    pub virtual_keys: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VirtualKeyView {
    pub id: String,
    pub name: String,
    pub created_at: u64,
    pub revoked: bool,
}

/// What the routing table is built from, read in one snapshot.
#[derive(Debug)]
pub struct TableSnapshot {
    pub version: u64,
    pub models: Vec<Model>,
    pub tenants: Vec<TenantRow>,
    /// (provider, model, penalty) as published at this version.
    pub penalties: Vec<(String, String, f64)>,
    pub penalty_epoch: u64,
}

/// One model's penalty as `GET /admin/penalties` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PenaltyView {
    pub model: String,
    pub provider: String,
    /// Current value, decayed to now.
    pub penalty: f64,
    /// The value the current routing table carries (republished when the
    /// current one differs by more than 5 % in `1 + penalty`, or crosses 0).
    pub table_penalty: f64,
    /// successes / (successes + failures); null without either.
    pub success_rate: Option<f64>,
    pub successes: u64,
    pub failures: u64,
    /// Time of the last event applied (or of the last reset), unix ms; null
    /// when the model never had one.
    pub updated_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Penalties {
    pub penalty_epoch: u64,
    pub decay_ms: u64,
    pub table_version: u64,
    pub penalties: Vec<PenaltyView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PenaltyReset {
    /// Models whose penalty was zeroed.
    pub reset: Vec<String>,
    pub penalty_epoch: u64,
    pub table_version: u64,
}

/// A stored penalty row.
#[derive(Debug, Clone)]
struct PenaltyRow {
    provider: String,
    model: String,
    state: penalty::State,
    successes: u64,
    failures: u64,
    updated_ms: u64,
    published: f64,
}

#[derive(Debug)]
pub struct TenantRow {
    pub id: String,
    pub disabled: bool,
    pub virtual_key_hashes: Vec<String>,
    /// (provider, sealed key).
    pub sealed_keys: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Default)]
pub struct UsageTotals {
    pub tenant: String,
    pub provider: String,
    pub model: String,
    pub sums: crate::stats::Sums,
}

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // FULL: the WAL is fsynced at every commit, so "committed" means durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if !writer {
        // Stats scans read a lot of index pages; keep them cached (64 MiB).
        conn.pragma_update(None, "cache_size", -65_536)?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    for &(version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        tracing::info!(version, name, "applying migration");
        tx.execute_batch(sql)?;
        if version == 1 {
            seed(&tx)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, to_i64(now_ms())],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// First start: the default catalog, and a table version that starts at the
/// current time in ms so versions stay increasing even across a wiped database.
fn seed(tx: &Transaction<'_>) -> Result<()> {
    let mut insert = tx.prepare("INSERT INTO models (id, position, json) VALUES (?1, ?2, ?3)")?;
    for (i, m) in aipipe_core::catalog::default_models().iter().enumerate() {
        insert.execute(params![m.id, i as i64, serde_json::to_string(m)?])?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('table_version', ?1)",
        [to_i64(now_ms())],
    )?;
    Ok(())
}

fn bump_version(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'table_version'",
        [],
    )?;
    Ok(())
}

fn penalty_epoch(conn: &Connection) -> Result<u64> {
    let v: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'penalty_epoch'",
        [],
        |r| r.get(0),
    )?;
    Ok(to_u64(v))
}

fn penalty_rows(conn: &Connection) -> Result<Vec<PenaltyRow>> {
    let mut st = conn.prepare_cached(
        "SELECT provider, model, penalty, decayed_ms, successes, failures, updated_ms, published
         FROM penalties ORDER BY provider, model",
    )?;
    let rows = st.query_map([], |r| {
        Ok(PenaltyRow {
            provider: r.get(0)?,
            model: r.get(1)?,
            state: penalty::State {
                penalty: r.get(2)?,
                decayed_ms: to_u64(r.get(3)?),
            },
            successes: to_u64(r.get(4)?),
            failures: to_u64(r.get(5)?),
            updated_ms: to_u64(r.get(6)?),
            published: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Republishes every penalty (and bumps the table version) when any one,
/// decayed to `now`, differs meaningfully from what the table carries.
/// Returns when decay alone will next make them differ.
fn republish(tx: &Transaction<'_>, now: u64, decay_ms: u64) -> Result<u64> {
    let rows = penalty_rows(tx)?;
    let stale = rows
        .iter()
        .any(|r| penalty::meaningful(r.state.at(now, decay_ms), r.published));
    let mut due = u64::MAX;
    let mut update = tx
        .prepare_cached("UPDATE penalties SET published = ?3 WHERE provider = ?1 AND model = ?2")?;
    for r in &rows {
        let published = if stale {
            let p = r.state.at(now, decay_ms);
            update.execute(params![r.provider, r.model, p])?;
            p
        } else {
            r.published
        };
        due = due.min(r.state.republish_due(published, now, decay_ms));
    }
    if stale {
        bump_version(tx)?;
    }
    Ok(due)
}

fn version(conn: &Connection) -> Result<u64> {
    let v: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'table_version'",
        [],
        |r| r.get(0),
    )?;
    Ok(to_u64(v))
}

fn tenant_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM tenants WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?)
}

fn tenant_view(conn: &Connection, id: &str) -> Result<Option<TenantView>> {
    let row = conn
        .query_row(
            "SELECT id, name, disabled, created_at FROM tenants WHERE id = ?1",
            [id],
            |r| {
                Ok(TenantView {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    disabled: r.get(2)?,
                    created_at: to_u64(r.get(3)?),
                    providers: Vec::new(),
                    virtual_keys: 0,
                })
            },
        )
        .optional()?;
    let Some(mut t) = row else { return Ok(None) };
    t.providers = providers_of(conn, id)?;
    t.virtual_keys = to_u64(conn.query_row(
        "SELECT COUNT(*) FROM virtual_keys WHERE tenant = ?1 AND revoked_at IS NULL",
        [id],
        |r| r.get(0),
    )?);
    Ok(Some(t))
}

fn providers_of(conn: &Connection, tenant: &str) -> Result<Vec<String>> {
    let mut st = conn
        .prepare_cached("SELECT provider FROM provider_keys WHERE tenant = ?1 ORDER BY provider")?;
    let rows = st.query_map([tenant], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn models(conn: &Connection) -> Result<Vec<Model>> {
    let mut st = conn.prepare_cached("SELECT json FROM models ORDER BY position, id")?;
    let texts: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    texts
        .iter()
        .map(|t| serde_json::from_str(t).map_err(Error::from))
        .collect()
}

impl Db {
    /// Opens (creating the file if needed) and migrates the database, with
    /// the default penalty decay interval.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, penalty::DEFAULT_DECAY_MS)
    }

    /// As [`Db::open`], with penalties halving every `penalty_decay_ms` (> 0).
    pub fn open_with(path: &Path, penalty_decay_ms: u64) -> Result<Self> {
        let mut writer = Connection::open(path)
            .map_err(|e| Error::internal(&format!("opening {}", path.display()), e))?;
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Internal(format!(
                "{} could not be put in WAL mode (got {mode})",
                path.display()
            )));
        }
        configure(&writer, true)?;
        migrate(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path)?;
            configure(&r, false)?;
            readers.push(Mutex::new(r));
        }
        Ok(Self(Arc::new(Pool {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
            decay_ms: penalty_decay_ms.max(1),
            penalty_due: AtomicU64::new(0),
            republishing: tokio::sync::Mutex::new(()),
        })))
    }

    pub fn penalty_decay_ms(&self) -> u64 {
        self.0.decay_ms
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer; commits if it
    /// returns Ok, rolls back (drops) otherwise — no partial writes.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await?
    }

    /// As [`Db::write`] for writes that touch penalties: `f` also gets the
    /// decay interval and returns when the published penalties next go stale,
    /// which is recorded after the commit, while the writer is still held
    /// (so a slower, older write can never overwrite a newer deadline).
    async fn write_penalties<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, u64) -> Result<(T, u64)> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (out, due) = f(&tx, pool.decay_ms)?;
            tx.commit()?;
            pool.penalty_due.store(due, Ordering::Release);
            Ok(out)
        })
        .await?
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on a reader.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.readers.len().max(1);
            let Some(slot) = pool.readers.get(i) else {
                return Err(Error::Internal("no reader connection".into()));
            };
            let mut conn = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction()?;
            f(&tx)
        })
        .await?
    }

    /// Checkpoints the WAL into the main file; called on graceful shutdown.
    pub async fn checkpoint(&self) -> Result<()> {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.writer.lock().unwrap_or_else(PoisonError::into_inner);
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await?
    }

    // ---- master key check ------------------------------------------------

    pub async fn master_key_check(&self) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'master_key_check'",
                    [],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    pub async fn set_master_key_check(&self, sealed: Vec<u8>) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('master_key_check', ?1)",
                [sealed],
            )?;
            Ok(())
        })
        .await
    }

    // ---- tenants -----------------------------------------------------------

    pub async fn create_tenant(&self, id: String, name: String) -> Result<TenantView> {
        self.write(move |tx| {
            if tenant_exists(tx, &id)? {
                return Err(Error::Conflict(format!("tenant `{id}` already exists")));
            }
            tx.execute(
                "INSERT INTO tenants (id, name, disabled, created_at) VALUES (?1, ?2, 0, ?3)",
                params![id, name, to_i64(now_ms())],
            )?;
            bump_version(tx)?;
            tenant_view(tx, &id)?.ok_or_else(|| Error::Internal("tenant vanished".into()))
        })
        .await
    }

    /// Creates the tenant unless it exists; true when created.
    pub async fn ensure_tenant(&self, id: String, name: String) -> Result<bool> {
        self.write(move |tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO tenants (id, name, disabled, created_at) VALUES (?1, ?2, 0, ?3)",
                params![id, name, to_i64(now_ms())],
            )?;
            if n > 0 {
                bump_version(tx)?;
            }
            Ok(n > 0)
        })
        .await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantView>> {
        self.read(|tx| {
            let ids: Vec<String> = tx
                .prepare("SELECT id FROM tenants ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(tenant_view(tx, &id)?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_tenant(&self, id: String) -> Result<Option<TenantView>> {
        self.read(move |tx| tenant_view(tx, &id)).await
    }

    pub async fn update_tenant(
        &self,
        id: String,
        name: Option<String>,
        disabled: Option<bool>,
    ) -> Result<Option<TenantView>> {
        self.write(move |tx| {
            if !tenant_exists(tx, &id)? {
                return Ok(None);
            }
            if let Some(name) = name {
                tx.execute(
                    "UPDATE tenants SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
            }
            if let Some(disabled) = disabled {
                let n = tx.execute(
                    "UPDATE tenants SET disabled = ?2 WHERE id = ?1 AND disabled <> ?2",
                    params![id, disabled],
                )?;
                if n > 0 {
                    bump_version(tx)?;
                }
            }
            tenant_view(tx, &id)
        })
        .await
    }

    /// Deletes the tenant with its provider keys and virtual keys (cascade);
    /// its usage rows stay. False when there was no such tenant.
    pub async fn delete_tenant(&self, id: String) -> Result<bool> {
        self.write(move |tx| {
            let n = tx.execute("DELETE FROM tenants WHERE id = ?1", [&id])?;
            if n > 0 {
                bump_version(tx)?;
            }
            Ok(n > 0)
        })
        .await
    }

    // ---- provider keys -------------------------------------------------------

    /// Upserts already-sealed keys; returns every provider the tenant now has
    /// a key for, or None when the tenant does not exist (nothing written).
    pub async fn upsert_provider_keys(
        &self,
        tenant: String,
        sealed: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<String>>> {
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let now = to_i64(now_ms());
            let mut st = tx.prepare_cached(
                "INSERT INTO provider_keys (tenant, provider, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, provider) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )?;
            for (provider, blob) in &sealed {
                st.execute(params![tenant, provider, blob, now])?;
            }
            bump_version(tx)?;
            Ok(Some(providers_of(tx, &tenant)?))
        })
        .await
    }

    /// Sealed keys of one tenant (used to skip re-writing unchanged env keys).
    pub async fn sealed_keys(&self, tenant: String) -> Result<Vec<(String, Vec<u8>)>> {
        self.read(move |tx| {
            let mut st =
                tx.prepare("SELECT provider, sealed FROM provider_keys WHERE tenant = ?1")?;
            let rows = st.query_map([&tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn delete_provider_key(&self, tenant: String, provider: String) -> Result<bool> {
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM provider_keys WHERE tenant = ?1 AND provider = ?2",
                params![tenant, provider],
            )?;
            if n > 0 {
                bump_version(tx)?;
            }
            Ok(n > 0)
        })
        .await
    }

    // ---- virtual keys ----------------------------------------------------------

    /// Stores a new virtual key's hash; None when the tenant does not exist.
    pub async fn create_virtual_key(
        &self,
        tenant: String,
        id: String,
        name: String,
        key_hash: String,
    ) -> Result<Option<VirtualKeyView>> {
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE key_hash = ?1)",
                [&key_hash],
                |r| r.get(0),
            )?;
            if taken {
                return Err(Error::Conflict("this virtual key is already registered".into()));
            }
            let now = now_ms();
            tx.execute(
                "INSERT INTO virtual_keys (id, tenant, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, tenant, name, key_hash, to_i64(now)],
            )?;
            bump_version(tx)?;
            Ok(Some(VirtualKeyView {
                id,
                name,
                created_at: now,
                revoked: false,
            }))
        })
        .await
    }

    pub async fn list_virtual_keys(&self, tenant: String) -> Result<Option<Vec<VirtualKeyView>>> {
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let mut st = tx.prepare(
                "SELECT id, name, created_at, revoked_at IS NOT NULL FROM virtual_keys
                 WHERE tenant = ?1 ORDER BY created_at, id",
            )?;
            let rows = st.query_map([&tenant], |r| {
                Ok(VirtualKeyView {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: to_u64(r.get(2)?),
                    revoked: r.get(3)?,
                })
            })?;
            Ok(Some(rows.collect::<Result<_, _>>()?))
        })
        .await
    }

    /// Revokes one key of one tenant. False when the tenant has no such key;
    /// revoking twice is a no-op (and does not bump the version).
    pub async fn revoke_virtual_key(&self, tenant: String, key_id: String) -> Result<bool> {
        self.write(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM virtual_keys WHERE id = ?1 AND tenant = ?2)",
                params![key_id, tenant],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            let n = tx.execute(
                "UPDATE virtual_keys SET revoked_at = ?3 WHERE id = ?1 AND tenant = ?2 AND revoked_at IS NULL",
                params![key_id, tenant, to_i64(now_ms())],
            )?;
            if n > 0 {
                bump_version(tx)?;
            }
            Ok(true)
        })
        .await
    }

    // ---- catalog -----------------------------------------------------------------

    pub async fn models(&self) -> Result<Vec<Model>> {
        self.read(|tx| models(tx)).await
    }

    /// Replaces (or appends) one model after `validate` accepted the whole
    /// resulting catalog, all inside one transaction. True when it was new.
    pub async fn put_model<V>(&self, model: Model, validate: V) -> Result<bool>
    where
        V: FnOnce(Vec<Model>) -> Result<()> + Send + 'static,
    {
        self.write(move |tx| {
            let mut all = models(tx)?;
            let created = match all.iter_mut().find(|m| m.id == model.id) {
                Some(slot) => {
                    *slot = model.clone();
                    false
                }
                None => {
                    all.push(model.clone());
                    true
                }
            };
            validate(all)?;
            tx.execute(
                "INSERT INTO models (id, position, json)
                 VALUES (?1, (SELECT COALESCE(MAX(position), -1) + 1 FROM models), ?2)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                params![model.id, serde_json::to_string(&model)?],
            )?;
            bump_version(tx)?;
            Ok(created)
        })
        .await
    }

    // ---- routing table -------------------------------------------------------------

    pub async fn table_version(&self) -> Result<u64> {
        self.read(|tx| version(tx)).await
    }

    pub async fn table_snapshot(&self) -> Result<TableSnapshot> {
        self.read(|tx| {
            let version = version(tx)?;
            let models = models(tx)?;
            let mut tenants: Vec<TenantRow> = tx
                .prepare("SELECT id, disabled FROM tenants ORDER BY id")?
                .query_map([], |r| {
                    Ok(TenantRow {
                        id: r.get(0)?,
                        disabled: r.get(1)?,
                        virtual_key_hashes: Vec::new(),
                        sealed_keys: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let index: HashMap<String, usize> = tenants
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect();
            let mut st = tx.prepare(
                "SELECT tenant, key_hash FROM virtual_keys WHERE revoked_at IS NULL ORDER BY tenant, created_at, id",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let tenant: String = r.get(0)?;
                if let Some(t) = index.get(&tenant).and_then(|&i| tenants.get_mut(i)) {
                    t.virtual_key_hashes.push(r.get(1)?);
                }
            }
            let mut st = tx
                .prepare("SELECT tenant, provider, sealed FROM provider_keys ORDER BY tenant, provider")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let tenant: String = r.get(0)?;
                if let Some(t) = index.get(&tenant).and_then(|&i| tenants.get_mut(i)) {
                    t.sealed_keys.push((r.get(1)?, r.get(2)?));
                }
            }
            let penalties = penalty_rows(tx)?
                .into_iter()
                .map(|r| (r.provider, r.model, r.published))
                .collect();
            Ok(TableSnapshot {
                version,
                models,
                tenants,
                penalties,
                penalty_epoch: penalty_epoch(tx)?,
            })
        })
        .await
    }

    // ---- usage ---------------------------------------------------------------------

    /// Stores a batch in one transaction, idempotent by record id; returns
    /// only after the commit (fsync) so the ack means durable. New records
    /// (never a duplicate) also store their failed attempts, add to the
    /// running totals and move their models' penalties, in time order; the
    /// table version is bumped when a penalty changed meaningfully.
    pub async fn ingest(&self, records: Vec<UsageRecord>) -> Result<UsageAck> {
        self.write_penalties(move |tx, decay_ms| {
            let now = now_ms();
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO usage (id, tenant, provider, model, status, prompt_tokens,
                    completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, latency_ms,
                    ttft_ms, complexity, stream, usage_parsed, ts_ms, cache_hit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17)",
            )?;
            let mut insert_attempt = tx.prepare_cached(
                "INSERT OR IGNORE INTO attempt_failures (record_id, n, ts_ms, tenant, provider, model, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut totals: HashMap<(&str, &str, &str), crate::stats::Sums> = HashMap::new();
            // (time, provider, model, outcome): a record's failed attempts
            // come before its own outcome (they happened first).
            let mut events: Vec<(u64, &str, &str, Outcome)> = Vec::new();
            let mut accepted = 0u64;
            for r in &records {
                let n = insert.execute(params![
                    r.id,
                    r.tenant,
                    r.provider,
                    r.model,
                    r.status,
                    to_i64(r.prompt_tokens),
                    to_i64(r.completion_tokens),
                    to_i64(r.cached_tokens),
                    to_i64(r.cache_write_tokens),
                    to_i64(r.cost_nusd),
                    r.latency_ms,
                    r.ttft_ms,
                    r.complexity,
                    r.stream,
                    r.usage_parsed,
                    to_i64(r.ts_ms),
                    r.cache_hit,
                ])?;
                if n == 0 {
                    continue;
                }
                accepted += 1;
                totals
                    .entry((&r.tenant, &r.provider, &r.model))
                    .or_default()
                    .add_record(r);
                for (i, a) in r.failed_attempts.iter().enumerate() {
                    insert_attempt.execute(params![
                        r.id,
                        i as i64,
                        to_i64(r.ts_ms),
                        r.tenant,
                        a.provider,
                        a.model,
                        a.status,
                    ])?;
                    totals
                        .entry((&r.tenant, &a.provider, &a.model))
                        .or_default()
                        .failed_attempts += 1;
                    events.push((r.ts_ms, &a.provider, &a.model, Outcome::Failure));
                }
                events.push((r.ts_ms, &r.provider, &r.model, Outcome::of_record(r)));
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO usage_totals (tenant, provider, model, requests, errors, prompt_tokens,
                    completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, unparsed,
                    failed_attempts, cache_hits)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (tenant, provider, model) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors = errors + excluded.errors,
                    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                    completion_tokens = completion_tokens + excluded.completion_tokens,
                    cached_tokens = cached_tokens + excluded.cached_tokens,
                    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
                    cost_nusd = cost_nusd + excluded.cost_nusd,
                    unparsed = unparsed + excluded.unparsed,
                    failed_attempts = failed_attempts + excluded.failed_attempts,
                    cache_hits = cache_hits + excluded.cache_hits",
            )?;
            for ((tenant, provider, model), t) in &totals {
                upsert.execute(params![
                    tenant,
                    provider,
                    model,
                    to_i64(t.requests),
                    to_i64(t.errors),
                    to_i64(t.prompt_tokens),
                    to_i64(t.completion_tokens),
                    to_i64(t.cached_tokens),
                    to_i64(t.cache_write_tokens),
                    to_i64(t.cost_nusd),
                    to_i64(t.unparsed),
                    to_i64(t.failed_attempts),
                    to_i64(t.cache_hits),
                ])?;
            }
            apply_penalty_events(tx, events, now, decay_ms)?;
            let due = republish(tx, now, decay_ms)?;
            Ok((
                UsageAck {
                    accepted,
                    duplicates: records.len() as u64 - accepted,
                },
                due,
            ))
        })
        .await
    }

    /// One tenant's records with `since <= ts_ms < until`, accumulated. None
    /// when the tenant is unknown and has no usage at all.
    pub async fn stats_window(
        &self,
        tenant: String,
        since: u64,
        until: u64,
    ) -> Result<Option<Window>> {
        self.read(move |tx| {
            let mut st = tx.prepare_cached(
                "SELECT provider, model, status, prompt_tokens, completion_tokens, cached_tokens,
                    cache_write_tokens, cost_nusd, usage_parsed, latency_ms, ttft_ms, cache_hit
                 FROM usage INDEXED BY usage_stats
                 WHERE tenant = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            )?;
            let mut rows = st.query(params![tenant, to_i64(since), to_i64(until)])?;
            let mut w = Window::default();
            while let Some(r) = rows.next()? {
                w.add(Row {
                    provider: r.get_ref(0)?.as_str()?,
                    model: r.get_ref(1)?.as_str()?,
                    status: u16::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    prompt_tokens: to_u64(r.get(3)?),
                    completion_tokens: to_u64(r.get(4)?),
                    cached_tokens: to_u64(r.get(5)?),
                    cache_write_tokens: to_u64(r.get(6)?),
                    cost_nusd: to_u64(r.get(7)?),
                    usage_parsed: r.get(8)?,
                    latency_ms: r.get(9)?,
                    ttft_ms: r.get(10)?,
                    cache_hit: r.get(11)?,
                });
            }
            let mut st = tx.prepare_cached(
                "SELECT provider, model, COUNT(*) FROM attempt_failures INDEXED BY attempt_failures_stats
                 WHERE tenant = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 GROUP BY provider, model",
            )?;
            let mut rows = st.query(params![tenant, to_i64(since), to_i64(until)])?;
            while let Some(r) = rows.next()? {
                w.add_failed_attempts(
                    r.get_ref(0)?.as_str()?,
                    r.get_ref(1)?.as_str()?,
                    to_u64(r.get(2)?),
                );
            }
            if w.is_empty() && !tenant_exists(tx, &tenant)? {
                let any: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM usage WHERE tenant = ?1)",
                    [&tenant],
                    |r| r.get(0),
                )?;
                if !any {
                    return Ok(None);
                }
            }
            Ok(Some(w))
        })
        .await
    }

    /// All-time totals per tenant/provider/model (for /metrics).
    pub async fn usage_totals(&self) -> Result<Vec<UsageTotals>> {
        self.read(|tx| {
            let mut st = tx.prepare(
                "SELECT tenant, provider, model, requests, errors, prompt_tokens, completion_tokens,
                    cached_tokens, cost_nusd, unparsed, cache_write_tokens, failed_attempts,
                    cache_hits
                 FROM usage_totals ORDER BY tenant, provider, model",
            )?;
            let rows = st.query_map([], |r| {
                Ok(UsageTotals {
                    tenant: r.get(0)?,
                    provider: r.get(1)?,
                    model: r.get(2)?,
                    sums: crate::stats::Sums {
                        requests: to_u64(r.get(3)?),
                        errors: to_u64(r.get(4)?),
                        prompt_tokens: to_u64(r.get(5)?),
                        completion_tokens: to_u64(r.get(6)?),
                        cached_tokens: to_u64(r.get(7)?),
                        cost_nusd: to_u64(r.get(8)?),
                        unparsed: to_u64(r.get(9)?),
                        cache_write_tokens: to_u64(r.get(10)?),
                        failed_attempts: to_u64(r.get(11)?),
                        cache_hits: to_u64(r.get(12)?),
                    },
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    // ---- penalties ---------------------------------------------------------------

    /// Republishes the penalties if time decay alone has made the table's
    /// values stale since the last write; free (one atomic load) otherwise.
    /// Called before every table poll is answered, so a filter is never told
    /// "not modified" while the decayed values differ meaningfully.
    pub async fn republish_penalties_if_due(&self) -> Result<()> {
        if now_ms() < self.0.penalty_due.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.0.republishing.lock().await;
        if now_ms() < self.0.penalty_due.load(Ordering::Acquire) {
            return Ok(()); // another poll just did it
        }
        self.write_penalties(|tx, decay_ms| Ok(((), republish(tx, now_ms(), decay_ms)?)))
            .await
    }

    /// Every catalog model (in catalog order) and every other model with
    /// recorded outcomes, with penalties decayed to now.
    pub async fn penalties(&self) -> Result<Penalties> {
        let decay_ms = self.0.decay_ms;
        self.read(move |tx| {
            let now = now_ms();
            let mut rows: HashMap<(String, String), PenaltyRow> = penalty_rows(tx)?
                .into_iter()
                .map(|r| ((r.provider.clone(), r.model.clone()), r))
                .collect();
            let view = |provider: String, model: String, row: Option<PenaltyRow>| match row {
                Some(r) => PenaltyView {
                    penalty: r.state.at(now, decay_ms),
                    table_penalty: r.published,
                    success_rate: (r.successes + r.failures > 0)
                        .then(|| r.successes as f64 / (r.successes + r.failures) as f64),
                    successes: r.successes,
                    failures: r.failures,
                    updated_ms: Some(r.updated_ms),
                    provider,
                    model,
                },
                None => PenaltyView {
                    model,
                    provider,
                    penalty: 0.0,
                    table_penalty: 0.0,
                    success_rate: None,
                    successes: 0,
                    failures: 0,
                    updated_ms: None,
                },
            };
            let mut out = Vec::new();
            for m in models(tx)? {
                let row = rows.remove(&(m.provider.clone(), m.id.clone()));
                out.push(view(m.provider, m.id, row));
            }
            let mut rest: Vec<PenaltyRow> = rows.into_values().collect();
            rest.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
            for r in rest {
                out.push(view(r.provider.clone(), r.model.clone(), Some(r)));
            }
            Ok(Penalties {
                penalty_epoch: penalty_epoch(tx)?,
                decay_ms,
                table_version: version(tx)?,
                penalties: out,
            })
        })
        .await
    }

    /// Zeroes the penalty and counts of `model` (every provider's model of
    /// that id), or of every model, bumps the penalty epoch (filters forget
    /// their local penalties) and the table version. None when `model` is
    /// neither in the catalog nor has a penalty.
    pub async fn reset_penalties(&self, model: Option<String>) -> Result<Option<PenaltyReset>> {
        self.write_penalties(move |tx, decay_ms| {
            let now = now_ms();
            let reset: Vec<String> = match &model {
                Some(m) => {
                    let known = models(tx)?.iter().any(|c| &c.id == m)
                        || tx.query_row(
                            "SELECT EXISTS(SELECT 1 FROM penalties WHERE model = ?1)",
                            [m],
                            |r| r.get(0),
                        )?;
                    if !known {
                        // Nothing written; 0 = recheck the deadline at the next poll.
                        return Ok((None, 0));
                    }
                    tx.execute(
                        "UPDATE penalties SET penalty = 0, decayed_ms = ?2, successes = 0,
                            failures = 0, published = 0, updated_ms = ?2 WHERE model = ?1",
                        params![m, to_i64(now)],
                    )?;
                    vec![m.clone()]
                }
                None => {
                    let names: Vec<String> = tx
                        .prepare("SELECT DISTINCT model FROM penalties ORDER BY model")?
                        .query_map([], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    tx.execute(
                        "UPDATE penalties SET penalty = 0, decayed_ms = ?1, successes = 0,
                            failures = 0, published = 0, updated_ms = ?1",
                        [to_i64(now)],
                    )?;
                    names
                }
            };
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'penalty_epoch'",
                [],
            )?;
            bump_version(tx)?;
            let due = republish(tx, now, decay_ms)?;
            Ok((
                Some(PenaltyReset {
                    reset,
                    penalty_epoch: penalty_epoch(tx)?,
                    table_version: version(tx)?,
                }),
                due,
            ))
        })
        .await
    }
}

/// Applies outcome events to the stored penalties, in time order (stable, so
/// a record's failed attempts stay before its own outcome). An event stamped
/// in the future (a skewed clock) counts as now.
fn apply_penalty_events(
    tx: &Transaction<'_>,
    mut events: Vec<(u64, &str, &str, Outcome)>,
    now: u64,
    decay_ms: u64,
) -> Result<()> {
    events.retain(|e| e.3 != Outcome::Neutral);
    if events.is_empty() {
        return Ok(());
    }
    events.sort_by_key(|e| e.0);
    let mut load = tx.prepare_cached(
        "SELECT penalty, decayed_ms, successes, failures, updated_ms FROM penalties
         WHERE provider = ?1 AND model = ?2",
    )?;
    #[derive(Clone, Copy)]
    struct Touched {
        state: penalty::State,
        successes: u64,
        failures: u64,
        updated_ms: u64,
    }
    let mut touched: HashMap<(&str, &str), Touched> = HashMap::new();
    for (ts, provider, model, outcome) in events {
        let at = ts.min(now);
        let t = match touched.entry((provider, model)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored = load
                    .query_row(params![provider, model], |r| {
                        Ok(Touched {
                            state: penalty::State {
                                penalty: r.get(0)?,
                                decayed_ms: to_u64(r.get(1)?),
                            },
                            successes: to_u64(r.get(2)?),
                            failures: to_u64(r.get(3)?),
                            updated_ms: to_u64(r.get(4)?),
                        })
                    })
                    .optional()?;
                v.insert(stored.unwrap_or(Touched {
                    state: penalty::State {
                        penalty: 0.0,
                        decayed_ms: at,
                    },
                    successes: 0,
                    failures: 0,
                    updated_ms: at,
                }))
            }
        };
        t.state.apply(outcome, at, decay_ms);
        t.updated_ms = t.updated_ms.max(at);
        match outcome {
            Outcome::Success => t.successes = t.successes.saturating_add(1),
            Outcome::Failure => t.failures = t.failures.saturating_add(1),
            Outcome::Neutral => {}
        }
    }
    let mut save = tx.prepare_cached(
        "INSERT INTO penalties (provider, model, penalty, decayed_ms, successes, failures,
            updated_ms, published)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
         ON CONFLICT (provider, model) DO UPDATE SET penalty = excluded.penalty,
            decayed_ms = excluded.decayed_ms, successes = excluded.successes,
            failures = excluded.failures, updated_ms = excluded.updated_ms",
    )?;
    for ((provider, model), t) in touched {
        save.execute(params![
            provider,
            model,
            t.state.penalty,
            to_i64(t.state.decayed_ms),
            to_i64(t.successes),
            to_i64(t.failures),
            to_i64(t.updated_ms),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database written by the first release (migration 1 only, with a
    /// usage row) opens, is migrated in place, and keeps its data.
    #[tokio::test]
    async fn a_version_1_database_is_upgraded_in_place() {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-db-v1-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("aipipe.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);",
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            let (_, _, v1) = MIGRATIONS[0];
            tx.execute_batch(v1).unwrap();
            seed(&tx).unwrap();
            tx.execute_batch(
                "INSERT INTO schema_migrations VALUES (1, 'initial schema', 0);
                 INSERT INTO usage (id, tenant, provider, model, status, prompt_tokens,
                    completion_tokens, cached_tokens, cost_nusd, latency_ms, ttft_ms, complexity,
                    stream, usage_parsed, ts_ms)
                 VALUES ('old', 'acme', 'openai', 'gpt-4o-mini', 200, 10, 5, 2, 100, 12.0, NULL, NULL, 0, 1, 1000);
                 INSERT INTO usage_totals VALUES ('acme', 'openai', 'gpt-4o-mini', 1, 0, 10, 5, 2, 100, 0);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let w = db
            .stats_window("acme".into(), 0, 10_000)
            .await
            .unwrap()
            .unwrap();
        let r = w.report("acme", 0, 10_000);
        assert_eq!(r.totals.numbers.requests, 1);
        assert_eq!(r.totals.numbers.cached_tokens, 2);
        assert_eq!(r.totals.numbers.cache_write_tokens, 0);
        let totals = db.usage_totals().await.unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].sums.requests, 1);
        assert_eq!(totals[0].sums.failed_attempts, 0);
        assert_eq!(totals[0].sums.cache_hits, 0);
        assert_eq!(r.totals.numbers.cache_hits, 0);
        let p = db.penalties().await.unwrap();
        // Creation time in ms: above any epoch an older database reached.
        assert!(p.penalty_epoch > 1_700_000_000_000, "{}", p.penalty_epoch);
        assert!(p.penalty_epoch <= now_ms());
        assert!(p.penalties.iter().all(|v| v.penalty == 0.0));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
