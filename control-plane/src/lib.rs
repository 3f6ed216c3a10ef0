//! aipipe's control plane: owns tenants, encrypted provider keys, virtual
//! keys, the model catalog and usage, and serves the routing table to every
//! Envoy's filter. Two routers — [`admin_app`] for operators and
//! [`internal_app`] for filters — built from one [`AppState`], so both are
//! testable in-process; [`run`] binds them and owns the process lifecycle.

#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod body;
pub mod catalog_import;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod envoys;
pub mod error;
pub mod evals;
pub mod ingest;
pub mod internal;
pub mod learning;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod penalty;
pub mod routing;
pub mod stats;

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::{Database, Secrets, Settings};
use crate::crypto::Cipher;
use crate::db::Db;

pub use admin::app as admin_app;
pub use internal::app as internal_app;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub cipher: Arc<Cipher>,
    /// SHA-256 of the admin secret and the internal token: compared in
    /// constant time against the hash of what a caller sent, so neither the
    /// content nor the length of the secret leaks through timing.
    admin_secret_hash: [u8; 32],
    internal_token_hash: [u8; 32],
    pub table_cache: routing::Cache,
    pub counters: metrics::Counters,
    /// Set when the process stops: requests held for changes end at once.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Wrong admin secrets per client address.
    pub admin_throttle: admin::throttle::Throttle,
    /// How long raw usage records are kept (ms; 0: forever): stats round
    /// window edges older than that to the hour.
    usage_kept_ms: std::sync::atomic::AtomicU64,
    /// Per-tenant router refits.
    pub learner: learning::Learner,
    /// Runs evals through the gateway (`--gateway-url`).
    pub evals: evals::Runner,
    /// When the database was last read for a health check, and whether it
    /// could be (`internal::healthz`): every Envoy asks every second.
    pub db_checked: tokio::sync::Mutex<Option<(tokio::time::Instant, bool)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(db: Db, secrets: &Secrets) -> Self {
        Self::with_throttle(db, secrets, admin::throttle::Throttle::default())
    }

    /// As [`AppState::new`], with its own throttle for wrong admin secrets.
    pub fn with_throttle(
        db: Db,
        secrets: &Secrets,
        admin_throttle: admin::throttle::Throttle,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            cipher: Arc::new(Cipher::new(&secrets.master_key)),
            admin_secret_hash: aipipe_core::table::hash_virtual_key(&secrets.admin_secret),
            internal_token_hash: aipipe_core::table::hash_virtual_key(&secrets.internal_token),
            table_cache: routing::Cache::default(),
            counters: metrics::Counters::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            admin_throttle,
            usage_kept_ms: std::sync::atomic::AtomicU64::new(0),
            learner: learning::Learner::default(),
            evals: evals::Runner::default(),
            db_checked: tokio::sync::Mutex::new(None),
        }))
    }

    /// How long raw usage records are kept (None: forever).
    pub fn set_usage_kept_ms(&self, kept: Option<u64>) {
        self.usage_kept_ms
            .store(kept.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// What stats can read raw, as of now.
    pub fn horizons(&self) -> db::Horizons {
        let kept = self
            .usage_kept_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        db::Horizons::at(db::now_ms(), (kept > 0).then_some(kept))
    }

    pub fn admin_secret_ok(&self, given: Option<&[u8]>) -> bool {
        secret_matches(&self.admin_secret_hash, given)
    }

    pub fn internal_token_ok(&self, given: Option<&[u8]>) -> bool {
        secret_matches(&self.internal_token_hash, given)
    }
}

fn secret_matches(expected_hash: &[u8; 32], given: Option<&[u8]>) -> bool {
    let given = given.unwrap_or_default();
    // Bytes that are not UTF-8 can never equal the secret; they are hashed
    // all the same so the work done does not depend on it.
    let utf8 = std::str::from_utf8(given).is_ok();
    let hash = aipipe_core::table::hash_virtual_key(&String::from_utf8_lossy(given));
    let same: bool = hash.ct_eq(expected_hash).into();
    same && utf8 && !given.is_empty()
}

/// Provider keys found in the environment, by provider id
/// (control-plane/README.md, "Tenants and keys": they belong to the
/// `default` tenant).
pub const ENV_PROVIDER_KEYS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "openai"),
    ("ANTHROPIC_API_KEY", "anthropic"),
    ("XAI_API_KEY", "xai"),
    ("OPENROUTER_API_KEY", "openrouter"),
    ("MINIMAX_API_KEY", "minimax"),
    ("MOONSHOT_API_KEY", "moonshot"),
    ("GEMINI_API_KEY", "gemini"),
];

/// Gives the `default` tenant the provider keys present in `env` (created if
/// absent). Keys that did not change are not rewritten, so a restart does not
/// bump the table version.
pub async fn adopt_env_keys(
    state: &AppState,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, error::Error> {
    let mut keys = std::collections::BTreeMap::new();
    for (var, provider) in ENV_PROVIDER_KEYS {
        if let Some(value) = env(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            if let Err(e) = admin::check_provider_key(provider, &value) {
                // The message names the provider, never the value.
                tracing::warn!("ignoring {var}: {e}");
                continue;
            }
            keys.insert((*provider).to_owned(), value);
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    state
        .db
        .ensure_tenant("default".into(), "Default".into())
        .await?;
    for (provider, sealed) in state.db.sealed_keys("default".into()).await? {
        let unchanged = keys.get(&provider).is_some_and(|k| {
            state
                .cipher
                .open("default", &provider, &sealed)
                .ok()
                .as_ref()
                == Some(k)
        });
        if unchanged {
            keys.remove(&provider);
        }
    }
    let adopted: Vec<String> = keys.keys().cloned().collect();
    if !keys.is_empty() {
        admin::upsert_provider_keys(state, "default", keys).await?;
    }
    Ok(adopted)
}

/// Starts the service and runs until SIGTERM/SIGINT. `Err` is a message for
/// the operator (missing secret, unusable database, address in use).
pub async fn run(settings: Settings) -> Result<(), String> {
    let database = settings.database()?;
    let (secrets, generated) = settings.secrets()?;
    if let Some(url) = &settings.budget_webhook_url {
        alerts::check_url(url)?;
    }
    evals::run::check_url(&settings.gateway_url)?;
    let db = match &database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            Db::open_with(path, settings.penalty_decay_ms)
        }
        // Other control planes may share it (control-plane/README.md,
        // "Replicas").
        Database::Postgres(url) => Db::open_postgres(url, settings.penalty_decay_ms).await,
    }
    .map_err(|e| format!("{database}: {e}"))?;
    let state = AppState::with_throttle(
        db.clone(),
        &secrets,
        admin::throttle::Throttle::new(settings.admin_failures_per_minute),
    );
    check_master_key(&state).await?;
    state.evals.set_gateway_url(&settings.gateway_url);
    state.evals.set_stale_ms(settings.eval_stale_ms);
    // Evals a stopped control plane left running: on SQLite every one (no
    // other process runs any); on a shared database those whose heartbeat
    // stopped (control-plane/README.md, "Replicas"), then periodically.
    let stale_ms = if db.shared() {
        state.evals.stale_ms()
    } else {
        0
    };
    let interrupted = db
        .fail_interrupted_evals(stale_ms)
        .await
        .map_err(|e| e.to_string())?;
    if interrupted > 0 {
        tracing::warn!(
            evals = interrupted,
            "evals left running by a stopped control plane marked failed"
        );
    }
    let adopted = adopt_env_keys(&state, |v| std::env::var(v).ok())
        .await
        .map_err(|e| e.to_string())?;
    if !adopted.is_empty() {
        tracing::info!(providers = ?adopted, "provider keys from the environment stored for tenant `default`");
    }

    let admin = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .map_err(|e| format!("binding admin listener {}: {e}", settings.admin_listen))?;
    let internal = tokio::net::TcpListener::bind(settings.internal_listen)
        .await
        .map_err(|e| {
            format!(
                "binding internal listener {}: {e}",
                settings.internal_listen
            )
        })?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    let internal_addr = internal.local_addr().map_err(|e| e.to_string())?;

    // Dev mode only: generated secrets are printed once, on stdout, for the
    // operator; they are never logged.
    if generated.admin_secret {
        println!("admin secret: {}", secrets.admin_secret);
    }
    if generated.internal_token {
        println!("internal token: {}", secrets.internal_token);
    }
    if let Some(file) = &generated.master_key_file {
        tracing::warn!(
            "dev mode: provider keys are encrypted with a development master key stored in {}; set AIPIPE_MASTER_KEY in production",
            file.display()
        );
    }
    println!("aipipe-control-plane listening admin={admin_addr} internal={internal_addr}");
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }

    if let Some(url) = &settings.budget_webhook_url {
        alerts::spawn(state.clone(), url.clone());
    }
    state.set_usage_kept_ms(settings.usage_kept_ms());
    db::spawn_pruning(db.clone(), settings.usage_kept_ms());
    learning::spawn(state.clone());
    evals::spawn_sweeper(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let held = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
        held.stopping.send_replace(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // The client's address reaches the admin routes (wrong secrets are
    // throttled per address).
    let admin_server = axum::serve(
        admin,
        admin_app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let internal_server =
        axum::serve(internal, internal_app(state.clone())).with_graceful_shutdown(stopped(stop_rx));
    let (a, i) = tokio::join!(admin_server, internal_server);
    a.map_err(|e| format!("admin server: {e}"))?;
    i.map_err(|e| format!("internal server: {e}"))?;

    if let Err(e) = db.checkpoint().await {
        tracing::warn!("final WAL checkpoint failed (the WAL is still durable): {e}");
    }
    drop(state);
    drop(db);
    tracing::info!("stopped");
    Ok(())
}

/// Refuses a master key that differs from the one the database was first
/// used with (provider keys would not decrypt); records it on first use.
async fn check_master_key(state: &AppState) -> Result<(), String> {
    match state.db.master_key_check().await.map_err(|e| e.to_string())? {
        Some(sealed) => match state.cipher.open("", "master-key-check", &sealed) {
            Ok(text) if text == crypto::CHECK_PLAINTEXT => Ok(()),
            _ => Err(
                "refusing to start: AIPIPE_MASTER_KEY is not the key this database's provider keys were encrypted with"
                    .into(),
            ),
        },
        None => {
            let sealed = state
                .cipher
                .seal("", "master-key-check", crypto::CHECK_PLAINTEXT)
                .map_err(|e| e.to_string())?;
            state
                .db
                .set_master_key_check(sealed)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
