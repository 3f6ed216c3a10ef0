//! Helpers shared by the control plane's test files.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use aipipe_control_plane::AppState;
use aipipe_control_plane::config::Secrets;
use aipipe_control_plane::db::Db;

pub const ADMIN: &str = "admin-secret-for-tests";
pub const TOKEN: &str = "internal-token-for-tests";

/// The control plane's state on a fresh SQLite file, removed afterwards.
pub struct Harness {
    pub state: AppState,
    pub dir: PathBuf,
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
/// `decay_ms` (None: the default).
pub fn harness_named(name: &str, decay_ms: Option<u64>) -> Harness {
    let dir = temp_dir(name);
    let path = dir.join("aipipe.db");
    let db = match decay_ms {
        Some(d) => Db::open_with(&path, d),
        None => Db::open(&path),
    }
    .unwrap();
    Harness {
        state: AppState::new(db, &secrets()),
        dir,
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
