//! Helpers shared by the control plane's test files.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use aipipe_control_plane::AppState;
use aipipe_control_plane::config::Secrets;
use aipipe_control_plane::db::Db;

pub const ADMIN: &str = "admin-secret-for-tests";
pub const TOKEN: &str = "internal-token-for-tests";

/// The control plane's state on a fresh SQLite file, removed afterwards —
/// or, with `AIPIPE_TEST_DATABASE=postgres` (`make test` runs these suites
/// both ways), on a fresh database of a throwaway PostgreSQL server.
pub struct Harness {
    pub state: AppState,
    pub dir: PathBuf,
    // Dropped after `state`: the server outlives the store's connections.
    pub pg: Option<aipipe_tests::postgres::Postgres>,
}

impl Harness {
    /// The SQLite file, for the few checks that read it directly; None on
    /// PostgreSQL (those facts are checked there by `tests/engines.rs`).
    pub fn raw_db(&self) -> Option<rusqlite::Connection> {
        if self.pg.is_some() {
            eprintln!(
                "on PostgreSQL: a check that reads the SQLite file is skipped (tests/engines.rs checks storage there)"
            );
            return None;
        }
        Some(rusqlite::Connection::open(self.dir.join("aipipe.db")).unwrap())
    }
}

/// Whether these suites run on PostgreSQL (`AIPIPE_TEST_DATABASE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("AIPIPE_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn secrets() -> Secrets {
    Secrets {
        admin_secret: ADMIN.into(),
        master_key: [0x42; 32],
        internal_token: TOKEN.into(),
    }
}

/// A harness named `name` (its directory's), its penalties halving every
/// `decay_ms` (None: the default), its catalog without the providers'
/// retirement dates ([`undate_catalog`]).
pub async fn harness_named(name: &str, decay_ms: Option<u64>) -> Harness {
    let h = harness_dated(name, decay_ms).await;
    undate_catalog(&h.state).await;
    h
}

/// Freezes the catalog as it is before its first scheduled instant, as the
/// Envoy suite does (tests/README.md, "How the tests are built"): every
/// `retires_at` cleared, a model dated to enter service (`enabled_from`)
/// disabled without its date. Explain and the listing read the real clock,
/// and tests rank gpt-4o-mini, which the catalog retires on 2027-01-14 when
/// gpt-6-luna enters service. The schedules are tested on a harness that
/// keeps the dates ([`harness_dated`]) with instants of their own.
pub async fn undate_catalog(state: &AppState) {
    for mut m in state.db.models().await.unwrap() {
        let dated = m.retires_at.take().is_some() | m.enabled_from.is_some();
        if m.enabled_from.take().is_some() {
            m.enabled = false;
        }
        if dated {
            state.db.put_model(m, |_| Ok(())).await.unwrap();
        }
    }
}

/// As [`harness_named`], with the default catalog's retirement dates.
pub async fn harness_dated(name: &str, decay_ms: Option<u64>) -> Harness {
    let dir = temp_dir(name);
    if on_postgres() {
        let pg = aipipe_tests::postgres::Postgres::start();
        let url = pg.create_database("aipipe");
        let Ok(aipipe_control_plane::config::Database::Postgres(url)) =
            aipipe_control_plane::config::parse_database_url("test", &url)
        else {
            panic!("not a PostgreSQL URL: {url}")
        };
        let decay = decay_ms.unwrap_or(aipipe_control_plane::penalty::DEFAULT_DECAY_MS);
        let db = Db::open_postgres(&url, decay).await.unwrap();
        return Harness {
            state: AppState::new(db, &secrets()),
            dir,
            pg: Some(pg),
        };
    }
    sqlite_harness_in(dir, decay_ms)
}

/// A harness on a fresh SQLite file whatever `AIPIPE_TEST_DATABASE` says
/// (the source of a `migrate`, for one).
pub fn sqlite_harness(name: &str, decay_ms: Option<u64>) -> Harness {
    sqlite_harness_in(temp_dir(name), decay_ms)
}

fn sqlite_harness_in(dir: PathBuf, decay_ms: Option<u64>) -> Harness {
    let path = dir.join("aipipe.db");
    let db = match decay_ms {
        Some(d) => Db::open_with(&path, d),
        None => Db::open(&path),
    }
    .unwrap();
    Harness {
        state: AppState::new(db, &secrets()),
        dir,
        pg: None,
    }
}

/// A fresh scratch directory for one test's database.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "aipipe-cp-{name}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
