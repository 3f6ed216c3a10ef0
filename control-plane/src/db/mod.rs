//! Every SQL statement of the control plane. SQLite in WAL mode with
//! `synchronous=FULL`, so a commit that returned is on disk and an
//! acknowledged usage batch survives `kill -9` (and power loss). One writer
//! connection (SQLite serialises writers anyway) and a few reader connections
//! that WAL lets run beside it; rusqlite connections are not `Sync`, so each
//! sits behind a `Mutex` and is used from `spawn_blocking`.
//!
//! Every change that reaches the filters is recorded in the change log
//! (`changes`) inside its own transaction, at a new revision
//! (`table_version` in `meta`), so a filter holding revision N has exactly
//! what the database held at N; writers that commit one wake the requests
//! waiting for changes ([`Db::subscribe`]).
//!
//! One file per aggregate — `tenants`, `keys` (provider and virtual keys),
//! `catalog`, `usage`, `penalties` — plus `changes` (the log and what the
//! filters are sent from it) and `migrations`, and `pg`, the PostgreSQL
//! engine (schema, pool, partitions, `migrate`, and one file per ported
//! aggregate); this file holds the engine choice (`Engine`: each ported
//! method of [`Db`] matches on it), the connections, the transaction helpers
//! and the `meta` counters they share (control-plane/README.md,
//! "PostgreSQL").

mod alerts;
mod budgets;
mod catalog;
mod changes;
mod envoys;
mod evals;
mod import;
mod keys;
mod learning;
mod limits;
mod migrations;
mod penalties;
pub mod pg;
mod rollups;
mod scrape;
mod tenants;
mod usage;
mod usage_days;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::config::PostgresUrl;
use crate::error::{Error, Result};
use crate::penalty;
use migrations::migrate;

pub use alerts::Alert;
pub use budgets::{BudgetState, BudgetView, BudgetWrite, Limit};
use changes::{Change, record_change};
pub use changes::{ChangePage, Changed, GlobalState, KeyState, TenantState};
pub use evals::EvalRow;
pub use import::ImportTenant;
pub use keys::VirtualKeyView;
pub use learning::{FittedRouter, Labelled, NewExample, RoutingState, rated_tier};
pub use limits::{LimitsAt, Scope};
pub use penalties::{Penalties, PenaltyReset, PenaltyView};
pub use rollups::{
    Answer, DAY_MS, HOUR_MS, Horizons, MINUTE_MS, Piece, Point, plan, spawn_pruning,
};
pub use scrape::{BudgetSpend, MAX_BUDGET_SERIES};
pub use tenants::TenantView;
pub use usage::UsageTotals;
pub use usage_days::{CostAdjustment, DayUsage, TenantUsage, parse_date};

const READERS: usize = 3;

/// Prepared statements each SQLite connection keeps (see `configure`).
const STATEMENT_CACHE: usize = 128;

/// See [`Pool::deadline_moves`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DeadlineMoves {
    /// Other control planes' revisions heard (each made the deadline "now").
    heard: u64,
    /// Deadlines this process's writes planned and kept.
    written: u64,
}

/// Own revisions kept to recognise when they come back through the
/// listener (one missed while it reconnected is forgotten eventually).
const OWN_KEPT: usize = 256;

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

/// SQLite's connections: one writer (SQLite serialises writers anyway) and
/// a few readers that WAL lets run beside it.
struct Sqlite {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

/// Which database the store runs on. Every public method of [`Db`] that is
/// ported matches on it and runs its aggregate's SQL for that engine — the
/// SQLite functions in `db/<aggregate>.rs`, the PostgreSQL ones in
/// `db/pg/<aggregate>.rs` — so handlers never see which one it is
/// (control-plane/README.md, "PostgreSQL").
enum Engine {
    Sqlite(Sqlite),
    /// Boxed: the SQLite variant stays small.
    Postgres(Box<pg::pool::Pool>),
}

struct Pool {
    engine: Engine,
    /// Penalties halve every this many ms (control-plane/README.md,
    /// "Penalties").
    decay_ms: u64,
    /// Unix ms from which time decay alone makes the published penalties
    /// stale (so the table must be republished); set after every commit that
    /// touches penalties, while the writer is still held. 0 = check now:
    /// also set when another control plane's revision arrives (it may have
    /// moved penalties this one has not planned for).
    penalty_due: AtomicU64,
    /// What moved `penalty_due` so far — other control planes' revisions
    /// heard, this one's writes that planned it — written under this lock,
    /// so a deadline planned before such a move never overwrites it.
    deadline_moves: Mutex<DeadlineMoves>,
    /// Revisions this process committed and notified that its own listener
    /// has not heard back yet (PostgreSQL; at most [`OWN_KEPT`]).
    own: Mutex<std::collections::VecDeque<u64>>,
    /// One republish at a time when many polls find it due together.
    republishing: tokio::sync::Mutex<()>,
    /// The revision as of the last commit: requests waiting for changes
    /// watch it.
    revision: tokio::sync::watch::Sender<u64>,
    /// A budget webhook is configured: threshold crossings are queued for it.
    alerts: std::sync::atomic::AtomicBool,
    /// This control plane among those on the database: a random id, new at
    /// every start (the owner of the evals it runs).
    owner: String,
}

/// A random id for this process's store (16 hex digits).
fn new_owner() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| Error::internal("a control-plane id", e))?;
    Ok(hex::encode(b))
}

impl Pool {
    fn new(engine: Engine, revision: u64, penalty_decay_ms: u64) -> Result<Self> {
        Ok(Self {
            owner: new_owner()?,
            engine,
            decay_ms: penalty_decay_ms.max(1),
            penalty_due: AtomicU64::new(0),
            deadline_moves: Mutex::new(DeadlineMoves::default()),
            own: Mutex::new(std::collections::VecDeque::new()),
            republishing: tokio::sync::Mutex::new(()),
            revision: tokio::sync::watch::Sender::new(revision),
            alerts: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The SQLite connections; an error on PostgreSQL (every method takes
    /// its PostgreSQL path first, so this error means a method that lost it).
    fn sqlite(&self) -> Result<&Sqlite> {
        match &self.engine {
            Engine::Sqlite(s) => Ok(s),
            Engine::Postgres(_) => Err(Error::Internal(
                "this operation is not ported to PostgreSQL yet".into(),
            )),
        }
    }

    /// Tells the requests waiting for changes about a new revision.
    fn publish(&self, rev: u64) {
        self.revision.send_if_modified(|held| {
            let newer = rev > *held;
            if newer {
                *held = rev;
            }
            newer
        });
    }

    /// Tells the requests waiting for changes about a new revision (one
    /// indexed read on the writer, still held, so announcements are in
    /// commit order).
    fn announce(&self, writer: &Connection) {
        match version(writer) {
            Ok(rev) => self.publish(rev),
            Err(e) => tracing::warn!("reading the revision after a commit: {e}"),
        }
    }

    /// As [`Pool::announce`], on PostgreSQL's writer: the revision the
    /// committed transaction recorded its newest change at (`recorded`;
    /// none recorded, nothing to announce) is published here and notified
    /// to the other control planes on the database (`pg::listen`). Writers
    /// are serialised to commit, so every lower revision has committed.
    fn announce_pg(&self, writer: &mut postgres::Client, recorded: Option<u64>) {
        let Some(rev) = recorded else {
            return;
        };
        {
            let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
            if own.len() >= OWN_KEPT {
                own.pop_front();
            }
            own.push_back(rev);
        }
        self.publish(rev);
        if let Err(e) = writer.execute(
            "SELECT pg_notify($1, $2)",
            &[&pg::listen::CHANNEL, &rev.to_string()],
        ) {
            tracing::warn!("notifying revision {rev}: {}", pg::describe(&e));
        }
    }

    /// A revision notified on the database (`pg::listen`): published to the
    /// requests waiting for changes. Another control plane's may have moved
    /// penalties or what they are published as: this process's penalty
    /// deadline becomes "now", so the next poll re-plans it (a republish
    /// writes only values that are stale, so replicas cannot ping-pong).
    fn heard(&self, rev: u64) {
        let mine = {
            let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
            own.iter()
                .position(|r| *r == rev)
                .and_then(|i| own.remove(i))
                .is_some()
        };
        if !mine {
            let mut moves = self.moves();
            moves.heard += 1;
            self.penalty_due.store(0, Ordering::Release);
        }
        self.publish(rev);
    }

    fn moves(&self) -> std::sync::MutexGuard<'_, DeadlineMoves> {
        self.deadline_moves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the penalty deadline a write planned (PostgreSQL), unless
    /// another control plane's revision arrived since the write began
    /// (`before`: the moves then) — it may hold penalties this write did
    /// not see — in which case the deadline stays "now", to be planned again.
    fn keep_write_plan(&self, due: u64, before: DeadlineMoves) {
        let mut moves = self.moves();
        let due = if moves.heard == before.heard { due } else { 0 };
        moves.written += 1;
        self.penalty_due.store(due, Ordering::Release);
    }

    /// Records the deadline a read planned, unless anything moved it since
    /// the read began (then that move stands: a write saw newer penalties).
    fn keep_read_plan(&self, due: u64, before: DeadlineMoves) {
        let moves = self.moves();
        if *moves == before {
            self.penalty_due.store(due, Ordering::Release);
        }
    }

    fn deadline_moves(&self) -> DeadlineMoves {
        *self.moves()
    }
}

/// One open write transaction, handed to a domain service by
/// [`Db::write_penalties`]: its methods (each aggregate's, in that
/// aggregate's file) are the only way it writes, so the SQL stays here.
/// Each method runs its engine's SQL (`db/<aggregate>.rs` for SQLite,
/// `db/pg/<aggregate>.rs` for PostgreSQL).
pub struct Tx<'a, 'b> {
    on: On<'a, 'b>,
    decay_ms: u64,
    /// Budget threshold crossings are queued for the webhook.
    alerts: bool,
}

/// The engine's open transaction. PostgreSQL's client needs `&mut` for
/// every statement while `Tx`'s methods take `&self` (a domain service
/// passes it into closures, as ingest does to the penalty rules): each
/// method borrows it for its own statements only.
enum On<'a, 'b> {
    Sqlite(&'a Transaction<'b>),
    Postgres(std::cell::RefCell<&'a mut pg::pool::Writer<'b>>),
}

/// The PostgreSQL transaction of a [`Tx`], borrowed for one method.
type PgStep<'t, 'a, 'b> = std::cell::RefMut<'t, &'a mut pg::pool::Writer<'b>>;

impl<'a, 'b> Tx<'a, 'b> {
    /// Penalties halve every this many ms.
    pub fn decay_ms(&self) -> u64 {
        self.decay_ms
    }

    /// The PostgreSQL transaction, when this is one (for one method's
    /// statements; a method never calls another while it holds it).
    fn pg(&self) -> Option<Result<PgStep<'_, 'a, 'b>>> {
        match &self.on {
            On::Postgres(w) => Some(w.try_borrow_mut().map_err(|_| {
                Error::Internal("a PostgreSQL transaction was borrowed twice".into())
            })),
            On::Sqlite(_) => None,
        }
    }

    /// The SQLite transaction (an error on PostgreSQL: callers ask
    /// [`Tx::pg`] first).
    fn sqlite(&self) -> Result<&'a Transaction<'b>> {
        match &self.on {
            On::Sqlite(tx) => Ok(tx),
            On::Postgres(_) => Err(Error::Internal(
                "a SQLite statement in a PostgreSQL transaction".into(),
            )),
        }
    }

    /// The revision as this transaction sees it.
    pub fn revision(&self) -> Result<u64> {
        if let Some(w) = self.pg() {
            return pg::committed_revision(&mut ***w?);
        }
        version(self.sqlite()?)
    }
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Pool>);

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
    // Ingest runs about two dozen distinct cached statements per batch
    // (usage, totals, rollups, days, penalties, budgets and their alerts,
    // features, the change log, the Envoy's report); rusqlite keeps 16 by
    // default, least recently used out first, so past 16 every batch would
    // prepare most of them again (control-plane/README.md, "Replicas":
    // measured).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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

fn version(conn: &Connection) -> Result<u64> {
    let v: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'table_version'",
        [],
        |r| r.get(0),
    )?;
    Ok(to_u64(v))
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
        let revision = version(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path)?;
            configure(&r, false)?;
            readers.push(Mutex::new(r));
        }
        let engine = Engine::Sqlite(Sqlite {
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
        });
        Ok(Self(Arc::new(Pool::new(
            engine,
            revision,
            penalty_decay_ms,
        )?)))
    }

    /// Connects to a PostgreSQL database, applies the migrations it has not
    /// had and, on a new database, seeds it as SQLite's first start does
    /// (`db::pg::seed`). Penalties halve every `penalty_decay_ms` (> 0).
    pub async fn open_postgres(url: &PostgresUrl, penalty_decay_ms: u64) -> Result<Self> {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let pool = pg::pool::Pool::open(&url)?;
            pg::prepare(&pool)?;
            let revision = pool.read(|tx| pg::committed_revision(tx))?;
            let db = Self(Arc::new(Pool::new(
                Engine::Postgres(Box::new(pool)),
                revision,
                penalty_decay_ms,
            )?));
            // Other control planes' commits wake this one's waiting Envoys.
            let weak = Arc::downgrade(&db.0);
            let alive = weak.clone();
            std::thread::Builder::new()
                .name("aipipe-pg-listen".into())
                .spawn(move || {
                    pg::listen::run(
                        &url,
                        || alive.strong_count() > 0,
                        |rev| {
                            if let Some(pool) = weak.upgrade() {
                                pool.heard(rev);
                            }
                        },
                    );
                })
                .map_err(|e| Error::internal("starting the revision listener", e))?;
            Ok(db)
        })
        .await?
    }

    /// The PostgreSQL connections, when the store runs on PostgreSQL.
    fn postgres(&self) -> Option<&pg::pool::Pool> {
        match &self.0.engine {
            Engine::Postgres(p) => Some(p),
            Engine::Sqlite(_) => None,
        }
    }

    /// This control plane's id among those on the database (random, new at
    /// every open): the owner of the evals it runs.
    pub fn owner(&self) -> &str {
        &self.0.owner
    }

    /// Whether other control planes may share the database: on PostgreSQL
    /// (replicas); never on SQLite (one process per file).
    pub fn shared(&self) -> bool {
        self.postgres().is_some()
    }

    /// From now on budget threshold crossings are queued for a webhook
    /// (`crate::alerts` delivers them).
    pub fn enable_alerts(&self) {
        self.0.alerts.store(true, Ordering::Relaxed);
    }

    /// Watches the revision: changes after every commit that recorded one.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.revision.subscribe()
    }

    /// When decay alone next makes the published penalties stale (unix ms).
    pub fn penalty_due_ms(&self) -> u64 {
        self.0.penalty_due.load(Ordering::Acquire)
    }

    pub fn penalty_decay_ms(&self) -> u64 {
        self.0.decay_ms
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
            let mut conn = pool
                .sqlite()?
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            pool.announce(&conn);
            Ok(out)
        })
        .await?
    }

    /// As [`Db::write`] for writes that touch penalties: `f` gets the
    /// transaction as a [`Tx`] (with the decay interval) and returns when the
    /// published penalties next go stale, which is recorded after the
    /// commit, while the writer is still held (so a slower, older write can
    /// never overwrite a newer deadline). Domain services that must change
    /// several aggregates atomically (ingest) run their steps through it.
    pub async fn write_penalties<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_, '_>) -> Result<(T, u64)> + Send + 'static,
    {
        if self.postgres().is_some() {
            let (decay_ms, alerts) = (self.0.decay_ms, self.alerts_on());
            return self
                .pg_write_penalties(move |w| {
                    f(&Tx {
                        on: On::Postgres(std::cell::RefCell::new(w)),
                        decay_ms,
                        alerts,
                    })
                })
                .await;
        }
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .sqlite()?
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (out, due) = f(&Tx {
                on: On::Sqlite(&tx),
                decay_ms: pool.decay_ms,
                alerts: pool.alerts.load(Ordering::Relaxed),
            })?;
            tx.commit()?;
            pool.penalty_due.store(due, Ordering::Release);
            pool.announce(&conn);
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
            let sqlite = pool.sqlite()?;
            let i = sqlite.next.fetch_add(1, Ordering::Relaxed) % sqlite.readers.len().max(1);
            let Some(slot) = sqlite.readers.get(i) else {
                return Err(Error::Internal("no reader connection".into()));
            };
            let mut conn = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction()?;
            f(&tx)
        })
        .await?
    }

    /// As [`Db::write`] on PostgreSQL: `f` runs in one write transaction
    /// (holding the write lock: `db::pg::pool`), committed if it returns Ok.
    async fn pg_write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut pg::pool::Writer<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let Engine::Postgres(pg) = &pool.engine else {
                return Err(Error::Internal("not a PostgreSQL store".into()));
            };
            pg.write(f, |client, _, rev| pool.announce_pg(client, rev))
        })
        .await?
    }

    /// As [`Db::write_penalties`] on PostgreSQL: `f` returns when the
    /// published penalties next go stale, recorded after the commit while
    /// the writer is still held.
    async fn pg_write_penalties<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut pg::pool::Writer<'_>) -> Result<(T, u64)> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let Engine::Postgres(pg) = &pool.engine else {
                return Err(Error::Internal("not a PostgreSQL store".into()));
            };
            let before = pool.deadline_moves();
            let (out, _) = pg.write(f, |client, (_, due), rev| {
                pool.keep_write_plan(*due, before);
                pool.announce_pg(client, rev);
            })?;
            Ok(out)
        })
        .await?
    }

    /// As [`Db::read`] on PostgreSQL: one read-only snapshot.
    async fn pg_read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut postgres::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let Engine::Postgres(pg) = &pool.engine else {
                return Err(Error::Internal("not a PostgreSQL store".into()));
            };
            pg.read(f)
        })
        .await?
    }

    /// Whether the store can file a record of this time: any on SQLite; on
    /// PostgreSQL, one of a day that can have a partition (1970-9999).
    pub fn takes_time(&self, ts_ms: u64) -> bool {
        self.postgres().is_none()
            || pg::partitions::day_of(to_i64(ts_ms)) <= pg::partitions::LAST_DAY
    }

    /// Makes sure the usage tables can take the records' UTC days
    /// (unix ms / `DAY_MS`): nothing to do on SQLite; on PostgreSQL, the
    /// days' partitions (`pg::partitions::ensure_days`), made in a short
    /// transaction of their own before the ingest transaction — attaching a
    /// partition locks the parent table until commit. Days made are
    /// remembered, so a batch of recent days costs nothing (older ones are
    /// asked for each time: retention may have dropped them).
    pub async fn make_usage_days(&self, records: &[aipipe_core::usage::UsageRecord]) -> Result<()> {
        let Some(pg) = self.postgres() else {
            return Ok(());
        };
        let mut days: Vec<i64> = records
            .iter()
            .map(|r| pg::partitions::day_of(to_i64(r.ts_ms)))
            .collect();
        days.sort_unstable();
        days.dedup();
        let today = pg::partitions::day_of(to_i64(now_ms()));
        days.retain(|d| !pg.has_day(*d, today));
        if days.is_empty() {
            return Ok(());
        }
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let Engine::Postgres(pg) = &pool.engine else {
                return Ok(());
            };
            pg.make_days(&days)
        })
        .await?
    }

    /// Checkpoints the WAL into the main file; called on graceful shutdown.
    /// Nothing to do on PostgreSQL (its commits are durable as they are).
    pub async fn checkpoint(&self) -> Result<()> {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let Engine::Sqlite(sqlite) = &pool.engine else {
                return Ok(());
            };
            let conn = sqlite.writer.lock().unwrap_or_else(PoisonError::into_inner);
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await?
    }

    // ---- master key check ------------------------------------------------

    pub async fn master_key_check(&self) -> Result<Option<Vec<u8>>> {
        if self.postgres().is_some() {
            return self
                .pg_read(|tx| {
                    Ok(tx
                        .query_opt(
                            "SELECT bytes_value FROM meta WHERE key = 'master_key_check'",
                            &[],
                        )?
                        .and_then(|r| r.get(0)))
                })
                .await;
        }
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
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| {
                    w.execute(
                        "INSERT INTO meta (key, bytes_value) VALUES ('master_key_check', $1)
                         ON CONFLICT (key) DO UPDATE SET bytes_value = excluded.bytes_value",
                        &[&sealed],
                    )?;
                    Ok(())
                })
                .await;
        }
        self.write(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('master_key_check', ?1)",
                [sealed],
            )?;
            Ok(())
        })
        .await
    }
}
