//! The PostgreSQL engine (control-plane/README.md, "PostgreSQL"):
//! connecting, the versioned schema and first-start seeding, the connection
//! pool (`pool`), the change log's revision sequence, the day partitions of
//! usage, `migrate` (a SQLite database copied in), and one file of SQL per
//! ported aggregate, each function with the shape its SQLite twin in
//! `db/<aggregate>.rs` has (a function of one transaction, run on a blocking
//! thread) — which is why the driver is the synchronous `postgres` crate.
//!
//! The synchronous client runs its own small runtime: call it from a
//! blocking thread (`spawn_blocking`) or outside tokio, never from async code.

pub(super) mod alerts;
pub(super) mod budgets;
pub(super) mod catalog;
pub(super) mod changes;
pub mod copy;
pub(super) mod envoys;
pub(super) mod evals;
pub(super) mod import;
pub(super) mod keys;
pub(super) mod learning;
pub(super) mod limits;
pub(super) mod listen;
pub mod partitions;
pub(super) mod penalties;
pub mod pool;
pub(super) mod rollups;
mod schema;
pub(super) mod tenants;
mod tls;
pub(super) mod usage;
pub(super) mod usage_days;

use postgres::{Client, GenericClient, NoTls};

use crate::error::Result;
use pool::{Pool, Writer};

use crate::config::PostgresUrl;

/// Every migration runner and every `migrate` holds this advisory
/// transaction lock, so two processes never apply the schema or copy at once.
const SCHEMA_LOCK: i64 = 0x6169_7069_7065_0001; // "aipipe" 1

/// A driver error as an operator reads it: the server's message with its
/// detail and hint when it sent one (the `postgres` crate's own `Display`
/// says only "db error").
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !s.contains(&text) {
                    s.push_str(&format!(": {text}"));
                }
                source = cause.source();
            }
            s
        }
    }
}

/// Connects: every connection the control plane makes to PostgreSQL (the
/// pool, the listener, `migrate`, `catalog import`) comes here, with the TLS
/// the URL's `sslmode` and `sslrootcert` ask for (`tls`). Errors name the
/// URL without its password, and say what was checked when TLS failed.
pub fn connect(url: &PostgresUrl) -> Result<Client, String> {
    let fail = |e: String| url.scrub(&format!("connecting to {url}: {e}"));
    let config = url.config().map_err(&fail)?;
    let tls = url.tls().map_err(&fail)?;
    let connected = match tls::connector(&tls).map_err(&fail)? {
        None => config.connect(NoTls),
        Some(connector) => config.connect(connector),
    };
    connected.map_err(|e| {
        let mut text = describe(&e);
        if text.contains("does not support TLS") {
            text.push_str(&format!(
                " (sslmode={} needs TLS: the server has ssl off)",
                tls.mode.name()
            ));
        } else if text.contains("certificate") {
            text.push_str(&format!(
                " (sslmode={}: {})",
                tls.mode.name(),
                checked(&tls)
            ));
        }
        fail(text)
    })
}

/// What the server's certificate was checked for, in words.
fn checked(tls: &crate::config::Tls) -> String {
    use crate::config::{RootCerts, Verify};
    let roots = match &tls.roots {
        Some(RootCerts::File(path)) => format!("the CA certificates of {}", path.display()),
        Some(RootCerts::System) => "the system's root certificates".to_owned(),
        None => "no roots".to_owned(),
    };
    match tls.verify {
        Verify::Nothing => "encrypted, the certificate not checked".to_owned(),
        Verify::Chain => format!("the certificate must be signed by {roots}"),
        Verify::ChainAndHost => {
            format!("the certificate must be signed by {roots} and name the host")
        }
    }
}

/// The latest schema version this build knows.
pub fn latest_version() -> i64 {
    schema::MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Applies every migration the database has not had, in the caller's
/// transaction (PostgreSQL's DDL is transactional: all or nothing), under
/// [`SCHEMA_LOCK`]. Returns the versions applied.
pub fn migrate(tx: &mut impl GenericClient) -> Result<Vec<i64>, postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    let fresh: bool = tx
        .query_one("SELECT to_regclass('schema_migrations') IS NULL", &[])?
        .get(0);
    if fresh {
        tx.batch_execute(
            "CREATE TABLE schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )?;
    }
    let mut applied = Vec::new();
    for &(version, name, sql) in schema::MIGRATIONS {
        let done: bool = tx
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[&version],
            )?
            .get(0);
        if done {
            continue;
        }
        tracing::info!(version, name, "applying PostgreSQL migration");
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &name, &super::to_i64(super::now_ms())],
        )?;
        applied.push(version);
    }
    Ok(applied)
}

/// The change log's current revision: the last value `change_revision` gave
/// (or was set to).
pub fn revision(client: &mut impl GenericClient) -> Result<u64, postgres::Error> {
    let v: i64 = client
        .query_one("SELECT last_value FROM change_revision", &[])?
        .get(0);
    Ok(super::to_u64(v))
}

/// The change log's revision as a snapshot sees it: the newest committed
/// change's. Writers are serialised to commit (`pool::WRITE_LOCK`), so the
/// changes a snapshot holds are every revision up to this one — unlike the
/// sequence's `last_value`, which counts revisions still in flight.
pub(super) fn committed_revision(c: &mut impl GenericClient) -> Result<u64> {
    let v: i64 = c
        .query_one("SELECT COALESCE(MAX(rev), 0) FROM changes", &[])?
        .get(0);
    Ok(super::to_u64(v))
}

/// Applies the migrations the database has not had; on a new database (one
/// that got migration 1 now), seeds it in the same transaction.
pub(super) fn prepare(pool: &Pool) -> Result<()> {
    pool.write(
        |w| {
            let applied = migrate(&mut **w)?;
            if applied.first() == Some(&1) {
                seed(w)?;
            }
            // A no-op on a database seeded just now.
            if applied.contains(&3) {
                use crate::db::migrations::catalog_2026_12::{ADDED, RETIRED};
                let n = catalog::catalog_2026_12(w, RETIRED, ADDED)?;
                tracing::info!(writes = n, "catalog of 2026-12-05 applied");
            }
            if applied.contains(&4) {
                let n = catalog::rewrite_models(w, crate::db::migrations::claude_5::plan)?;
                tracing::info!(writes = n, "Claude 5.x enabled");
            }
            if applied.contains(&5) {
                let retired = crate::db::migrations::sonnet_4_5::RETIRED;
                let n = catalog::catalog_2026_12(w, retired, &[])?;
                tracing::info!(writes = n, "claude-sonnet-4-5 retired");
            }
            if applied.contains(&6) {
                let added = crate::db::migrations::gpt_6_luna::ADDED;
                let n = catalog::catalog_2026_12(w, &[], added)?;
                tracing::info!(writes = n, "gpt-6-luna added, disabled");
            }
            if applied.contains(&7) {
                let n = catalog::rewrite_models(w, crate::db::migrations::scheduled_prices::plan)?;
                tracing::info!(writes = n, "gemini-3.8-flash price change scheduled");
            }
            if applied.contains(&8) {
                let n =
                    catalog::rewrite_models(w, crate::db::migrations::scheduled_retirements::plan)?;
                tracing::info!(writes = n, "retirements of 2027-01 scheduled");
            }
            if applied.contains(&9) {
                let n = catalog::rewrite_models(w, crate::db::migrations::luna_in_service::plan)?;
                tracing::info!(writes = n, "gpt-6-luna in service from 2027-01-14");
            }
            if applied.contains(&10) {
                let n = catalog::rewrite_models(w, crate::db::migrations::claude_5_prefill::plan)?;
                tracing::info!(writes = n, "Claude 5.x refuse a prefill");
            }
            if applied.contains(&11) {
                let plan = crate::db::migrations::long_context_rates::plan;
                let n = catalog::rewrite_models(w, plan)?;
                tracing::info!(writes = n, "long-context rates given");
            }
            if applied.contains(&12) {
                let added = crate::db::migrations::claude_haiku_5_5::ADDED;
                let n = catalog::catalog_2026_12(w, &[], added)?;
                tracing::info!(writes = n, "claude-haiku-5-5 added, disabled");
            }
            if applied.contains(&13) {
                let n = catalog::rewrite_models(w, crate::db::migrations::output_effort::plan)?;
                tracing::info!(writes = n, "Claude 5.x take a reasoning effort");
            }
            if applied.contains(&14) {
                let n = catalog::rewrite_models(w, crate::db::migrations::reasoning_effort::plan)?;
                tracing::info!(
                    writes = n,
                    "the GPT-4o generation takes no reasoning effort"
                );
            }
            if applied.contains(&15) {
                let n = catalog::rewrite_models(w, crate::db::migrations::responses_api::plan)?;
                tracing::info!(
                    writes = n,
                    "gpt-6-luna takes tools with an effort over the Responses API"
                );
            }
            if applied.contains(&16) {
                let plan = crate::db::migrations::thinking_extensions::plan;
                let n = catalog::rewrite_models(w, plan)?;
                tracing::info!(writes = n, "OpenAI's models take no Anthropic extensions");
            }
            if applied.contains(&17) {
                let plan = crate::db::migrations::adaptive_thinking::plan;
                let n = catalog::rewrite_models(w, plan)?;
                tracing::info!(writes = n, "Claude 5.x take adaptive thinking only");
            }
            if applied.contains(&18) {
                let plan = crate::db::migrations::between_tools::plan;
                let n = catalog::rewrite_models(w, plan)?;
                tracing::info!(
                    writes = n,
                    "Claude Sonnet 5.5 turns thinking off with between_tools"
                );
            }
            Ok(())
        },
        |_, _, _| {},
    )
}

/// First start, as SQLite's (`db/migrations.rs`: the seed of migration 1 and
/// what migrations 4 to 18 add to a new database): the default catalog, a
/// penalty epoch and a revision that start at the current time (so both stay
/// increasing across a wiped database), and the global table's first change.
fn seed(w: &mut Writer<'_>) -> Result<()> {
    let insert = w.prepare("INSERT INTO models (id, position, json) VALUES ($1, $2, $3)")?;
    for (i, m) in aipipe_core::catalog::default_models().iter().enumerate() {
        w.execute(&insert, &[&m.id, &(i as i64), &serde_json::to_string(m)?])?;
    }
    let now = super::to_i64(super::now_ms());
    w.execute(
        "INSERT INTO meta (key, int_value) VALUES ('penalty_epoch', $1)",
        &[&(now / 1000 * 1000)],
    )?;
    w.execute("SELECT setval('change_revision', $1)", &[&now])?;
    changes::record_change(w, super::Change::Global)?;
    Ok(())
}

/// An integer `meta` value.
pub(super) fn meta_int(c: &mut impl GenericClient, key: &str) -> Result<Option<i64>> {
    Ok(
        c.query_opt("SELECT int_value FROM meta WHERE key = $1", &[&key])?
            .and_then(|r| r.get(0)),
    )
}

/// The penalty epoch (set at seeding).
pub(super) fn penalty_epoch(c: &mut impl GenericClient) -> Result<u64> {
    Ok(super::to_u64(meta_int(c, "penalty_epoch")?.unwrap_or(0)))
}
