//! The PostgreSQL engine's connections (control-plane/README.md,
//! "PostgreSQL"): one writer and a few readers, as on SQLite, each a
//! synchronous client behind a `Mutex`, used from `spawn_blocking`.
//!
//! One writer per process keeps what SQLite's single writer gives the code
//! above it: announcements of new revisions in commit order and the penalty
//! deadline written by the latest commit (another process's commits make
//! it "now": `db::Pool::heard`). Across processes every write
//! transaction takes [`WRITE_LOCK`] first, so writers of all replicas are
//! serialised as SQLite's `BEGIN IMMEDIATE` serialises them: a check and
//! the write it guards see the same data, and change-log revisions (taken
//! from a sequence, which hands them out at `nextval`, not at commit)
//! commit in the order they were taken — a reader never sees revision N+1
//! without N.
//!
//! A client whose connection broke is replaced at its next use, so the pool
//! outlives a database restart (the statement that met the break fails).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use postgres::{Client, IsolationLevel, Transaction};

use super::{connect, describe};
use crate::config::PostgresUrl;
use crate::error::{Error, Result};

/// Held by every write transaction to its end (see the module's doc).
pub(crate) const WRITE_LOCK: i64 = 0x6169_7069_7065_0003; // "aipipe" 3 (1: schema, 2: partitions)

const READERS: usize = 3;

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Self::internal("postgres", describe(&e))
    }
}

/// A write transaction that holds [`WRITE_LOCK`]: the only kind the change
/// log records in (`db::pg::changes::record_change`), which notes the
/// revisions it takes here.
pub struct Writer<'a> {
    tx: Transaction<'a>,
    /// The newest revision this transaction recorded a change at.
    recorded: Option<u64>,
}

impl Writer<'_> {
    /// This transaction recorded a change at `rev`.
    pub(in crate::db) fn recorded(&mut self, rev: u64) {
        self.recorded = Some(self.recorded.map_or(rev, |r| r.max(rev)));
    }
}

impl<'a> std::ops::Deref for Writer<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// A connection slot: None until first used, and again after its
/// connection broke.
type Slot = Mutex<Option<Client>>;

pub struct Pool {
    url: PostgresUrl,
    writer: Slot,
    readers: Vec<Slot>,
    next: AtomicUsize,
    /// The UTC days whose usage partitions exist (made by this process or
    /// found made): ingest asks for a day's only once.
    days: Mutex<BTreeSet<i64>>,
}

impl Pool {
    /// Connects the writer at once (so a wrong URL fails at start); readers
    /// connect when first used.
    pub fn open(url: &PostgresUrl) -> Result<Self> {
        let writer = connect(url).map_err(Error::Internal)?;
        Ok(Self {
            url: url.clone(),
            writer: Mutex::new(Some(writer)),
            readers: (0..READERS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            days: Mutex::new(BTreeSet::new()),
        })
    }

    /// Runs `f` on `slot`'s client, connecting first if it has none; a
    /// client found closed afterwards is dropped, to be replaced next time.
    fn with<T>(&self, slot: &Slot, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if held.as_ref().is_none_or(Client::is_closed) {
            if let Some(old) = held.take() {
                drop_off_runtime(vec![old]);
            }
            *held = Some(connect(&self.url).map_err(Error::Internal)?);
        }
        let Some(client) = held.as_mut() else {
            return Err(Error::Internal("no PostgreSQL connection".into()));
        };
        let out = f(client);
        // A connection the server ended may not know it yet when its
        // statement failed: after a database error, ask it (one round trip,
        // failures only), so the next call does not fail on it too.
        let broken = client.is_closed()
            || (matches!(out, Err(Error::Internal(_)))
                && client.is_valid(std::time::Duration::from_secs(2)).is_err());
        if broken && let Some(old) = held.take() {
            drop_off_runtime(vec![old]);
        }
        out
    }

    /// Runs `f` in one write transaction holding [`WRITE_LOCK`]; commits if
    /// it returns Ok, rolls back otherwise. `after` runs on the same client
    /// after the commit, the writer still held (announcements), with the
    /// revision the transaction recorded its newest change at, if any.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
        after: impl FnOnce(&mut Client, &T, Option<u64>),
    ) -> Result<T> {
        self.with(&self.writer, |client| {
            let (out, recorded) = {
                let mut tx = client.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
                let mut w = Writer { tx, recorded: None };
                let out = f(&mut w)?;
                let Writer { tx, recorded } = w;
                tx.commit()?;
                (out, recorded)
            };
            after(client, &out, recorded);
            Ok(out)
        })
    }

    /// Runs `f` in one read-only REPEATABLE READ transaction (one snapshot,
    /// as SQLite's read transactions) on a reader.
    pub fn read<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        let Some(slot) = self.readers.get(i) else {
            return Err(Error::Internal("no reader connection".into()));
        };
        self.with(slot, |client| {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

impl Pool {
    /// Whether `day`'s usage partitions are known to exist. Only today's
    /// and yesterday's are trusted from memory: retention (of this process
    /// or another) drops nothing younger, but an older day may be gone.
    pub fn has_day(&self, day: i64, today: i64) -> bool {
        if day + 1 < today {
            return false;
        }
        self.days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&day)
    }

    /// Minute cells past `minutes_before` and, with `raw_before`, the day
    /// partitions wholly before it (`rollups::prune`); the days dropped are
    /// forgotten. Returns the records dropped.
    pub fn prune(&self, minutes_before: u64, raw_before: Option<u64>) -> Result<u64> {
        let (n, first_kept) = self.with(&self.writer, |client| {
            super::rollups::prune(client, minutes_before, raw_before)
        })?;
        self.days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|d| *d >= first_kept);
        Ok(n)
    }

    /// Makes the usage partitions of `days` that are missing (on the
    /// writer, in a transaction of its own) and remembers them.
    pub fn make_days(&self, days: &[i64]) -> Result<()> {
        self.with(&self.writer, |client| {
            super::partitions::ensure_days(client, days).map_err(Error::Internal)
        })?;
        self.days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(days);
        Ok(())
    }
}

/// A synchronous client runs its own small runtime, which must not be
/// dropped on an async thread (tokio panics): the last `Db` may well be
/// dropped in async code, so clients are dropped on a thread of their own.
fn drop_off_runtime(clients: Vec<Client>) {
    if clients.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("aipipe-pg-close".into())
        .spawn(move || drop(clients));
    if let Err(e) = spawned {
        tracing::warn!("closing PostgreSQL connections: {e}");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut clients = Vec::new();
        for slot in std::iter::once(&self.writer).chain(&self.readers) {
            if let Some(c) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                clients.push(c);
            }
        }
        drop_off_runtime(clients);
    }
}
