//! `aipipe-control-plane migrate --from sqlite://… --to postgres://…`: copies
//! a SQLite database into PostgreSQL (control-plane/README.md, "PostgreSQL").
//!
//! - The source is opened read-only and read in one transaction: one
//!   consistent snapshot, even while a control plane is writing it. It must
//!   be at this build's SQLite schema version (a control plane upgrades its
//!   file at start).
//! - The target gets the PostgreSQL schema, then every table in **one
//!   transaction**: it is a complete copy or has nothing of this run, so a
//!   failed run is simply run again. Each table is streamed with one binary
//!   `COPY` (the driver sends it in small chunks, so memory stays flat
//!   whatever the size), values converted by the target column's type
//!   (0/1 → BOOLEAN; blobs, such as the sealed provider keys, as they are).
//! - Row counts are verified per table before commit; the change log's
//!   revision goes on from the source's `table_version`; identity sequences
//!   are set past the copied ids.
//! - Re-running is safe. The target remembers which source it is a copy of
//!   (`migrated_from`: the source's creation time and master-key check) and
//!   the counts and revision the copy left. Against the same source: nothing
//!   changed → nothing is written ("already a complete copy"); the source
//!   moved on and the target is as the copy left it → the copy is refreshed
//!   (emptied and copied again, in one transaction). A target that holds
//!   anything else — other tables, another source's copy, or a copy that was
//!   written to since — is refused, untouched.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{SCHEMA_LOCK, describe, partitions};
use crate::config::PostgresUrl;

/// Every table of the schema, in an order that satisfies its foreign keys.
/// SQLite's `schema_migrations` is not copied: PostgreSQL has its own.
pub const TABLES: &[&str] = &[
    "meta",
    "tenants",
    "provider_keys",
    "virtual_keys",
    "models",
    "usage",
    "usage_totals",
    "attempt_failures",
    "penalties",
    "changes",
    "tenant_deletions",
    "budgets",
    "usage_days",
    "rate_limits",
    "budget_alerts",
    "webhook_outbox",
    "cost_adjustments",
    "usage_rollups",
    "usage_key_days",
    "key_budgets",
    "key_budget_alerts",
    "routing_examples",
    "routing_feedback",
    "request_features",
    "tenant_routers",
    "evals",
    "envoy_reports",
];

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An empty target now holds the copy.
    Copied,
    /// A previous copy of the same source was replaced by a new one.
    Refreshed,
    /// The target already was a complete copy of the source: nothing written.
    AlreadyCurrent,
}

/// Rows per table and the revision, as a copy left the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub rows: BTreeMap<String, u64>,
    pub revision: u64,
}

/// The result of a run, printed by the command.
#[derive(Debug)]
pub struct Report {
    pub source: String,
    pub target: String,
    pub outcome: Outcome,
    pub state: State,
    /// Day partitions of usage made by this run.
    pub partitions_made: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = TABLES.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (table, n) in &self.state.rows {
            let _ = writeln!(out, "  {table:<width$}  {n:>10}");
        }
        let total: u64 = self.state.rows.values().sum();
        let _ = writeln!(out, "  {:<width$}  {total:>10}", "total rows");
        let what = match self.outcome {
            Outcome::Copied => format!(
                "copied {} into {}: every table's rows verified, revision {}",
                self.source, self.target, self.state.revision
            ),
            Outcome::Refreshed => format!(
                "refreshed the copy of {} in {}: every table's rows verified, revision {}",
                self.source, self.target, self.state.revision
            ),
            Outcome::AlreadyCurrent => format!(
                "{} already holds a complete copy of {} (revision {}): nothing added",
                self.target, self.source, self.state.revision
            ),
        };
        let _ = writeln!(out, "{what}");
        if self.partitions_made > 0 {
            let _ = writeln!(
                out,
                "({} day partitions made for {})",
                self.partitions_made,
                partitions::PARTITIONED.join(" and ")
            );
        }
        f.write_str(&out)
    }
}

/// One value on its way to a binary COPY, typed as its target column.
#[derive(Debug)]
enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Int(v) => v.to_sql(ty, out),
            Self::Float(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Bytes(v) => v.to_sql(ty, out),
            Self::Bool(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::FLOAT8,
            Type::TEXT,
            Type::BYTEA,
            Type::BOOL,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// A target column's type, as far as the copy needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Text,
    Bytes,
    Bool,
}

impl Kind {
    fn of(udt: &str) -> Option<(Self, Type)> {
        Some(match udt {
            "int8" => (Self::Int, Type::INT8),
            "float8" => (Self::Float, Type::FLOAT8),
            "text" => (Self::Text, Type::TEXT),
            "bytea" => (Self::Bytes, Type::BYTEA),
            "bool" => (Self::Bool, Type::BOOL),
            _ => return None,
        })
    }

    /// SQLite's value as this type: SQLite stores what it is given, so
    /// anything else than the column's kind is refused, naming the place.
    fn cell(self, v: ValueRef<'_>, place: &dyn Fn() -> String) -> Result<Cell, String> {
        let wrong = |got: &str| format!("{}: a {got} where {self:?} was expected", place());
        Ok(match (self, v) {
            (Self::Int, ValueRef::Null) => Cell::Int(None),
            (Self::Float, ValueRef::Null) => Cell::Float(None),
            (Self::Text, ValueRef::Null) => Cell::Text(None),
            (Self::Bytes, ValueRef::Null) => Cell::Bytes(None),
            (Self::Bool, ValueRef::Null) => Cell::Bool(None),
            (Self::Int, ValueRef::Integer(i)) => Cell::Int(Some(i)),
            (Self::Float, ValueRef::Real(f)) => Cell::Float(Some(f)),
            // A REAL column holds a whole number as an integer only when
            // written without REAL affinity; the value is the same.
            (Self::Float, ValueRef::Integer(i)) => Cell::Float(Some(i as f64)),
            (Self::Bool, ValueRef::Integer(0)) => Cell::Bool(Some(false)),
            (Self::Bool, ValueRef::Integer(1)) => Cell::Bool(Some(true)),
            (Self::Bool, ValueRef::Integer(i)) => {
                return Err(format!("{}: {i} where a 0/1 flag was expected", place()));
            }
            (Self::Text, ValueRef::Text(t)) => Cell::Text(Some(
                std::str::from_utf8(t)
                    .map_err(|_| format!("{}: text that is not UTF-8", place()))?
                    .to_owned(),
            )),
            (Self::Bytes, ValueRef::Blob(b)) => Cell::Bytes(Some(b.to_vec())),
            (_, ValueRef::Integer(_)) => return Err(wrong("integer")),
            (_, ValueRef::Real(_)) => return Err(wrong("real")),
            (_, ValueRef::Text(_)) => return Err(wrong("text")),
            (_, ValueRef::Blob(_)) => return Err(wrong("blob")),
        })
    }
}

fn pg(context: &str) -> impl Fn(postgres::Error) -> String + '_ {
    move |e| format!("{context}: {}", describe(&e))
}

fn lite(context: &str) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// The source, open read-only inside one read transaction.
struct Source {
    conn: Connection,
    shown: String,
}

impl Source {
    fn open(path: &Path) -> Result<Self, String> {
        let shown = format!("sqlite://{}", path.display());
        if !path.is_file() {
            return Err(format!("{shown}: no such file"));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(lite(&shown))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(lite(&shown))?;
        // One snapshot for the whole run (BEGIN is deferred: it starts at
        // the first read below).
        conn.execute_batch("BEGIN").map_err(lite(&shown))?;
        let source = Self { conn, shown };
        source.check_version()?;
        Ok(source)
    }

    fn check_version(&self) -> Result<(), String> {
        let version: Option<i64> = self
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(|e| format!("{}: not an aipipe control-plane database ({e})", self.shown))?;
        let latest = crate::db::migrations::latest_version();
        match version {
            Some(v) if v == latest => Ok(()),
            Some(v) if v < latest => Err(format!(
                "{}: its schema is version {v}, this control plane's is {latest}: start this \
                 version's control plane on it once (it upgrades the file at start), then migrate",
                self.shown
            )),
            Some(v) => Err(format!(
                "{}: its schema is version {v}, newer than this control plane's ({latest}): \
                 migrate with the version that wrote it",
                self.shown
            )),
            None => Err(format!(
                "{}: not an aipipe control-plane database (no schema version)",
                self.shown
            )),
        }
    }

    /// Which database this is, whatever its path: its creation time (its
    /// first migration's) and the sealed master-key check written at its
    /// first start (random nonce: no two databases share it).
    fn fingerprint(&self) -> Result<String, String> {
        let created: i64 = self
            .conn
            .query_row(
                "SELECT applied_at FROM schema_migrations WHERE version = 1",
                [],
                |r| r.get(0),
            )
            .map_err(lite(&self.shown))?;
        let check: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'master_key_check'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(lite(&self.shown))?;
        let check = check.map_or_else(|| "none".to_owned(), |c| aipipe_core::sha::sha256_hex(&c));
        Ok(format!(
            "sqlite created_ms={created} master_key_check={check}"
        ))
    }

    fn tables(&self) -> Result<Vec<String>, String> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name",
            )
            .map_err(lite(&self.shown))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(lite(&self.shown))
    }

    fn columns(&self, table: &str) -> Result<Vec<String>, String> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .map_err(lite(&self.shown))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(lite(&self.shown))
    }

    fn count(&self, table: &str) -> Result<u64, String> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(crate::db::to_u64)
            .map_err(lite(&self.shown))
    }

    fn table_version(&self) -> Result<u64, String> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'table_version'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(crate::db::to_u64)
            .map_err(lite(&self.shown))
    }

    /// The rows and revision a complete copy of this snapshot has in
    /// PostgreSQL (`meta` there lacks `table_version`: it is the sequence).
    fn expected(&self) -> Result<State, String> {
        let mut rows = BTreeMap::new();
        for table in TABLES {
            let mut n = self.count(table)?;
            if *table == "meta" {
                n = n.saturating_sub(1);
            }
            rows.insert((*table).to_owned(), n);
        }
        Ok(State {
            rows,
            revision: self.table_version()?,
        })
    }

    /// The UTC days the source's partitioned tables have rows on.
    fn days(&self) -> Result<Vec<i64>, String> {
        let mut days = Vec::new();
        for table in partitions::PARTITIONED {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT DISTINCT ts_ms / 86400000 FROM {table}"))
                .map_err(lite(&self.shown))?;
            let found: Vec<i64> = stmt
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(lite(&self.shown))?;
            days.extend(found);
        }
        if days.iter().any(|d| *d < 0) {
            return Err(format!(
                "{}: usage recorded before 1970 (a negative ts_ms) cannot be partitioned by day",
                self.shown
            ));
        }
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }
}

/// The target's columns of `table`: name and kind, in order.
fn target_columns(
    tx: &mut Transaction<'_>,
    table: &str,
) -> Result<Vec<(String, Kind, Type)>, String> {
    let rows = tx
        .query(
            "SELECT column_name::text, udt_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .map_err(pg("reading the target's columns"))?;
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let udt: String = r.get(1);
            let (kind, ty) = Kind::of(&udt).ok_or_else(|| {
                format!("target column {table}.{name} has type {udt}, unknown to migrate")
            })?;
            Ok((name, kind, ty))
        })
        .collect()
}

/// Tables in the target's schema (partitions included).
fn target_tables(tx: &mut Transaction<'_>) -> Result<Vec<String>, String> {
    let rows = tx
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
            &[],
        )
        .map_err(pg("listing the target's tables"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The target's rows per copied table and its revision.
fn target_state(tx: &mut Transaction<'_>) -> Result<State, String> {
    let mut rows = BTreeMap::new();
    for table in TABLES {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .map_err(pg(&format!("counting the target's {table}")))?
            .get(0);
        rows.insert((*table).to_owned(), crate::db::to_u64(n));
    }
    let revision = super::revision(tx).map_err(pg("reading the target's revision"))?;
    Ok(State { rows, revision })
}

/// Copies one table with a binary COPY; returns the rows sent.
fn copy_table(source: &Source, tx: &mut Transaction<'_>, table: &str) -> Result<u64, String> {
    let target = target_columns(tx, table)?;
    let meta = table == "meta";
    let mut wanted: Vec<String> = target.iter().map(|c| c.0.clone()).collect();
    let mut have = source.columns(table)?;
    if meta {
        // SQLite's one untyped `value` is spread over typed columns.
        wanted.retain(|c| !c.ends_with("_value"));
        have.retain(|c| c != "value");
    }
    let (mut a, mut b) = (wanted.clone(), have.clone());
    a.sort();
    b.sort();
    if a != b {
        let only_pg: Vec<&String> = a.iter().filter(|c| !b.contains(c)).collect();
        let only_lite: Vec<&String> = b.iter().filter(|c| !a.contains(c)).collect();
        return Err(format!(
            "table {table}: the schemas differ (only in PostgreSQL: {only_pg:?}; only in SQLite: {only_lite:?})"
        ));
    }
    let names: Vec<&str> = target.iter().map(|c| c.0.as_str()).collect();
    let types: Vec<Type> = target.iter().map(|c| c.2.clone()).collect();
    let select = if meta {
        "SELECT key, value FROM meta WHERE key != 'table_version' ORDER BY key".to_owned()
    } else {
        format!("SELECT {} FROM {table}", names.join(", "))
    };
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        ))
        .map_err(pg(&format!("starting the copy of {table}")))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut stmt = source.conn.prepare(&select).map_err(lite(&source.shown))?;
    let mut rows = stmt.query([]).map_err(lite(&source.shown))?;
    let mut n = 0u64;
    while let Some(row) = rows.next().map_err(lite(&source.shown))? {
        n += 1;
        let place = || format!("{}: table {table}, row {n}", source.shown);
        let cells = if meta {
            meta_cells(row, &target, &place)?
        } else {
            let mut cells = Vec::with_capacity(target.len());
            for (i, (column, kind, _)) in target.iter().enumerate() {
                let v = row.get_ref(i).map_err(lite(&source.shown))?;
                cells.push(kind.cell(v, &|| format!("{}, column {column}", place()))?);
            }
            cells
        };
        let refs: Vec<&(dyn ToSql + Sync)> =
            cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        writer
            .write(&refs)
            .map_err(pg(&format!("copying {table}")))?;
    }
    writer
        .finish()
        .map_err(pg(&format!("finishing the copy of {table}")))?;
    Ok(n)
}

/// A `meta` row: its key, and its value in the typed column of its kind.
fn meta_cells(
    row: &rusqlite::Row<'_>,
    target: &[(String, Kind, Type)],
    place: &dyn Fn() -> String,
) -> Result<Vec<Cell>, String> {
    let key: String = row.get(0).map_err(|e| format!("{}: {e}", place()))?;
    let value = row.get_ref(1).map_err(|e| format!("{}: {e}", place()))?;
    target
        .iter()
        .map(|(column, _, _)| {
            Ok(match (column.as_str(), value) {
                ("key", _) => Cell::Text(Some(key.clone())),
                ("int_value", ValueRef::Integer(i)) => Cell::Int(Some(i)),
                ("int_value", _) => Cell::Int(None),
                ("text_value", ValueRef::Text(t)) => Cell::Text(Some(
                    String::from_utf8(t.to_vec())
                        .map_err(|_| format!("{}: meta {key} is not UTF-8", place()))?,
                )),
                ("text_value", _) => Cell::Text(None),
                ("bytes_value", ValueRef::Blob(b)) => Cell::Bytes(Some(b.to_vec())),
                ("bytes_value", _) => Cell::Bytes(None),
                (other, _) => return Err(format!("{}: unexpected meta column {other}", place())),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .and_then(|cells| match value {
            ValueRef::Integer(_) | ValueRef::Text(_) | ValueRef::Blob(_) => Ok(cells),
            _ => Err(format!(
                "{}: meta {key} holds a value of a kind the target cannot keep",
                place()
            )),
        })
}

/// Copies every table into the (empty) target and checks the counts.
fn copy_all(source: &Source, tx: &mut Transaction<'_>, expected: &State) -> Result<usize, String> {
    let made = partitions::ensure_days(tx, &source.days()?)?;
    for table in TABLES {
        let sent = copy_table(source, tx, table)?;
        let want = expected.rows.get(*table).copied().unwrap_or(0);
        if sent != want {
            return Err(format!(
                "table {table}: read {sent} rows where the snapshot counted {want}"
            ));
        }
    }
    // The revision goes on from the source's; new ids after the copied ones.
    tx.execute(
        "SELECT setval('change_revision', $1, true)",
        &[&crate::db::to_i64(expected.revision)],
    )
    .map_err(pg("setting the revision"))?;
    let identities = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )
        .map_err(pg("listing identity columns"))?;
    for row in identities {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                    GREATEST(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}"
            ),
            &[],
        )
        .map_err(pg(&format!("setting {table}'s id sequence")))?;
    }
    let got = target_state(tx)?;
    if got != *expected {
        let differ: Vec<String> = expected
            .rows
            .iter()
            .filter(|(t, n)| got.rows.get(*t) != Some(n))
            .map(|(t, n)| format!("{t}: {} of {n}", got.rows.get(t).copied().unwrap_or(0)))
            .collect();
        return Err(format!(
            "the copy does not match the source (rows {differ:?}; revision {} of {}): nothing was written",
            got.revision, expected.revision
        ));
    }
    Ok(made)
}

/// Runs the migration: `from` (a SQLite file) into `to`.
pub fn run(from: &Path, to: &PostgresUrl) -> Result<Report, String> {
    let source = Source::open(from)?;
    let fingerprint = source.fingerprint()?;
    let source_tables = source.tables()?;
    let unknown: Vec<&String> = source_tables
        .iter()
        .filter(|t| !TABLES.contains(&t.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{}: tables this migrate does not know: {unknown:?}",
            source.shown
        ));
    }
    let expected = source.expected()?;
    let mut client = super::connect(to)?;
    transfer(
        &mut client,
        &source,
        &fingerprint,
        &expected,
        &to.to_string(),
    )
    .map_err(|e| to.scrub(&e))
}

/// Copies `source` into the target `client` is connected to, in one
/// transaction: into an empty database, or over an untouched previous copy
/// of the same source; nothing when that copy is current.
fn transfer(
    client: &mut postgres::Client,
    source: &Source,
    fingerprint: &str,
    expected: &State,
    target: &str,
) -> Result<Report, String> {
    let mut tx = client.transaction().map_err(pg("starting a transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(pg("locking the target"))?;
    let tables = target_tables(&mut tx)?;
    let outcome = if tables.is_empty() {
        super::migrate(&mut tx).map_err(pg("creating the schema"))?;
        Outcome::Copied
    } else {
        let previous = if tables.iter().any(|t| t == "migrated_from") {
            tx.query_opt(
                "SELECT state FROM migrated_from WHERE source = $1",
                &[&fingerprint],
            )
            .map_err(pg("reading migrated_from"))?
            .map(|r| r.get::<_, String>(0))
        } else {
            None
        };
        let Some(previous) = previous else {
            let shown: Vec<&String> = tables.iter().take(5).collect();
            return Err(format!(
                "refusing to migrate into {target}: it is not empty ({} tables, e.g. {shown:?}) \
                 and holds no copy of {}; give an empty database",
                tables.len(),
                source.shown
            ));
        };
        super::migrate(&mut tx).map_err(pg("upgrading the schema"))?;
        let previous: State = serde_json::from_str(&previous)
            .map_err(|e| format!("{target}: migrated_from.state is unreadable: {e}"))?;
        let now = target_state(&mut tx)?;
        if now != previous {
            return Err(format!(
                "refusing to migrate into {target}: it holds a copy of {} that was written \
                 to since (rows or revision differ from what the copy left), so it may be \
                 in use; give an empty database",
                source.shown
            ));
        }
        if previous == *expected {
            return Ok(Report {
                source: source.shown.clone(),
                target: target.to_owned(),
                outcome: Outcome::AlreadyCurrent,
                state: previous,
                partitions_made: 0,
            });
        }
        let list = TABLES.join(", ");
        tx.batch_execute(&format!("TRUNCATE {list} RESTART IDENTITY"))
            .map_err(pg("emptying the previous copy"))?;
        Outcome::Refreshed
    };
    let made = copy_all(source, &mut tx, expected)?;
    let state = serde_json::to_string(expected).map_err(|e| e.to_string())?;
    tx.execute(
        "INSERT INTO migrated_from (source, state, copied_ms) VALUES ($1, $2, $3)
         ON CONFLICT (source) DO UPDATE SET state = excluded.state, copied_ms = excluded.copied_ms",
        &[
            &fingerprint,
            &state,
            &crate::db::to_i64(crate::db::now_ms()),
        ],
    )
    .map_err(pg("recording the copy"))?;
    tx.commit().map_err(pg("committing the copy"))?;
    Ok(Report {
        source: source.shown.clone(),
        target: target.to_owned(),
        outcome,
        state: expected.clone(),
        partitions_made: made,
    })
}
