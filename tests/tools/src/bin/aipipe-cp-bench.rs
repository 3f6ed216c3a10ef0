//! `aipipe-cp-bench`: the control plane's numbers (tests/README.md,
//! "Performance goals"), measured on this machine. Ingest: batches of 500
//! usage records POSTed over real loopback HTTP to the internal API (each
//! acknowledged only after its durable commit, rollups included), stamped
//! the last hour so every rollup width is written, each with the `source`
//! a filter sends (its queue and in-flight reservations, stored per Envoy).
//! Stats: 10,000,000 records stored through the ingest service (10 tenants
//! × 8 models over 90 days), then `GET /admin/tenants/{id}/stats` over real
//! HTTP for windows of one tenant — 1, 7, 30 and 90 days at random offsets
//! and odd millisecond edges (so raw edges are read too) — p99 of 200
//! queries each.
//!
//! On SQLite (the default: fresh files in the temp directory) it prints
//! `bench: ingest_records_per_s <x>`,
//! `bench: stats_query_p99_ms_1d_10m <x>`, `bench: stats_query_p99_ms_7d_10m <x>`,
//! `bench: stats_query_p99_ms_30d_10m <x>` and `bench: stats_query_p99_ms_90d_10m <x>`
//! (plus `bench-info:` lines); on PostgreSQL the same names with `pg_` in
//! front. `--database-url URL` runs on that database (`sqlite://PATH` or
//! `postgres://…`; it must hold no tenant: both phases write it, with
//! tenants of their own); `--postgres` starts a throwaway PostgreSQL server
//! with its durability defaults (`aipipe_tests::postgres`) and runs on two
//! fresh databases of it. `AIPIPE_BENCH_STATS_RECORDS` stores fewer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aipipe_control_plane::config::{Database, Secrets, parse_database_url};
use aipipe_control_plane::db::Db;
use aipipe_control_plane::ingest;
use aipipe_control_plane::{AppState, admin_app, internal_app};
use aipipe_core::contract::{TOKEN_HEADER, USAGE_PATH};
use aipipe_core::usage::{UsageBatch, UsageRecord, UsageSource, UsageUpload};

const ADMIN: &str = "bench-admin";
const TOKEN: &str = "bench-token";
const DAY_MS: u64 = 86_400_000;
const T0: u64 = 1_790_000_000_000;
const MODELS: [(&str, &str); 8] = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("xai", "grok-3-mini"),
    ("openrouter", "llama-3.3-70b"),
    ("moonshot", "kimi-k2"),
];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Deterministic xorshift, so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn record(i: u64, tenant: &str, ts_ms: u64, rng: &mut Rng) -> UsageRecord {
    let (provider, model) = MODELS[(rng.below(MODELS.len() as u64)) as usize];
    let latency = 50.0 + rng.below(5_000) as f64 / 3.0;
    UsageRecord {
        id: format!("bench-{i:016x}-{:08x}", rng.next() as u32),
        tenant: tenant.to_owned(),
        provider: provider.into(),
        model: model.into(),
        status: if rng.below(50) == 0 { 500 } else { 200 },
        prompt_tokens: 100 + rng.below(4_000),
        completion_tokens: rng.below(1_000),
        cached_tokens: rng.below(100),
        cache_write_tokens: 0,
        cost_nusd: rng.below(5_000_000),
        latency_ms: latency,
        ttft_ms: Some(latency / 5.0),
        complexity: Some(rng.below(1000) as f64 / 1000.0),
        stream: rng.below(2) == 0,
        usage_parsed: true,
        ts_ms,
        failed_attempts: Vec::new(),
        cache_hit: false,
        estimated: false,
        key_tag: None,
        reserved_nusd: None,
        virtual_key: None,
        key_reserved_nusd: None,
        router_features: None,
    }
}

fn temp_db(name: &str) -> Result<PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("aipipe-cp-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("aipipe.db"))
}

/// Where the bench stores: fresh SQLite files, or one database per phase
/// (the same one for both when given by URL).
enum Target {
    TempSqlite,
    Url(Database),
    /// A throwaway server, kept running until the bench ends.
    Throwaway(aipipe_tests::postgres::Postgres),
}

/// A phase's store, opened.
struct Store {
    db: Db,
    /// A temporary SQLite file's directory, removed at the end.
    scratch: Option<PathBuf>,
    /// The SQLite file, for its size.
    file: Option<PathBuf>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Target {
    fn postgres(&self) -> bool {
        matches!(self, Self::Url(Database::Postgres(_)) | Self::Throwaway(_))
    }

    /// A `bench:` name on this engine: `pg_` in front on PostgreSQL.
    fn name(&self, metric: &str) -> String {
        if self.postgres() {
            format!("pg_{metric}")
        } else {
            metric.to_owned()
        }
    }

    /// The store of phase `phase` (`ingest`, `stats`), with no tenant yet.
    async fn open(&self, phase: &str) -> Result<Store, BoxError> {
        let database = match self {
            Self::TempSqlite => {
                let path = temp_db(phase)?;
                return Ok(Store {
                    db: Db::open(&path)?,
                    scratch: path.parent().map(PathBuf::from),
                    file: Some(path),
                });
            }
            Self::Url(database) => database.clone(),
            Self::Throwaway(pg) => {
                parse_database_url("bench", &pg.create_database(&format!("bench_{phase}")))?
            }
        };
        let (db, file) = match &database {
            Database::Sqlite(path) => (Db::open(path)?, Some(path.clone())),
            Database::Postgres(url) => (
                Db::open_postgres(url, aipipe_control_plane::penalty::DEFAULT_DECAY_MS).await?,
                None,
            ),
        };
        Ok(Store {
            db,
            scratch: None,
            file,
        })
    }
}

fn state(db: Db) -> AppState {
    AppState::new(
        db,
        &Secrets {
            admin_secret: ADMIN.into(),
            master_key: [7; 32],
            internal_token: TOKEN.into(),
        },
    )
}

async fn serve(app: axum::Router) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// `{prefix}-0` … `{prefix}-{n-1}`: usage of tenants that never existed is
/// refused. A tenant already there means the database was used before:
/// its records would be duplicates (ids are deterministic), so it is refused.
async fn create_tenants(db: &Db, prefix: &str, n: u64) -> Result<(), BoxError> {
    for t in 0..n {
        let id = format!("{prefix}-{t}");
        if !db.ensure_tenant(id.clone(), format!("Tenant {t}")).await? {
            return Err(
                format!("tenant {id} already exists: give the bench an empty database").into(),
            );
        }
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted
        .get(rank.min(sorted.len()).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

/// What a filter's singleton sends with a batch: its queue and what its
/// requests in flight hold reserved (a few tenants' and a key's).
fn source(client: u64, sent: u64) -> UsageSource {
    UsageSource {
        node: format!("bench-envoy-{client}"),
        queued: 0,
        dropped: 0,
        sent,
        reserved_nusd: (0..3)
            .map(|t| (format!("ingest-{t}"), 1_000 * (client + 1)))
            .collect(),
        key_reserved_nusd: [(format!("vk_bench{client}"), 500)].into_iter().collect(),
    }
}

/// 400 batches of 500 records over `clients` keep-alive connections, each
/// client an Envoy of its own (its batches carry its `source`).
async fn bench_ingest(rt: &tokio::runtime::Handle, target: &Target) -> Result<f64, BoxError> {
    const BATCHES: u64 = 400;
    const BATCH: u64 = 500;
    const CLIENTS: u64 = 4;
    let store = target.open("ingest").await?;
    create_tenants(&store.db, "ingest", 10).await?;
    let addr = rt
        .spawn(serve(internal_app(state(store.db.clone()))))
        .await??;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = aipipe_control_plane::db::now_ms() - 3_600_000;
    // Bodies are serialised up front: the client's JSON work is not the server's.
    let bodies: Vec<Vec<u8>> = (0..BATCHES)
        .map(|b| {
            let tenant = format!("ingest-{}", b % 10);
            let records = (0..BATCH)
                .map(|i| record(b * BATCH + i, &tenant, t0 + b * 1000 + i, &mut rng))
                .collect();
            let client = b % CLIENTS;
            serde_json::to_vec(&UsageUpload {
                records,
                source: Some(source(client, (b / CLIENTS) * BATCH)),
            })
        })
        .collect::<Result<_, _>>()?;
    let url = format!("http://{addr}{USAGE_PATH}");
    // Warm-up batch (connection, statement cache), not counted.
    let warm = UsageBatch {
        records: (0..BATCH)
            .map(|i| record(u64::MAX / 2 + i, "ingest-0", t0, &mut rng))
            .collect(),
    };
    agent()
        .post(&url)
        .header(TOKEN_HEADER, TOKEN)
        .send_json(&warm)?;

    let start = Instant::now();
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let bodies = &bodies;
                let url = &url;
                s.spawn(move || -> Result<u64, String> {
                    let a = agent();
                    let mut accepted = 0;
                    for body in bodies.iter().skip(c as usize).step_by(CLIENTS as usize) {
                        let mut r = a
                            .post(url)
                            .header(TOKEN_HEADER, TOKEN)
                            .header("content-type", "application/json")
                            .send(&body[..])
                            .map_err(|e| e.to_string())?;
                        if r.status() != 200 {
                            return Err(format!("status {}", r.status()));
                        }
                        let ack: serde_json::Value =
                            r.body_mut().read_json().map_err(|e| e.to_string())?;
                        accepted += ack["accepted"].as_u64().unwrap_or(0);
                    }
                    Ok(accepted)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut accepted = 0;
    for r in results {
        accepted += r?;
    }
    if accepted != BATCHES * BATCH {
        return Err(format!("accepted {accepted} of {}", BATCHES * BATCH).into());
    }
    Ok(accepted as f64 / elapsed)
}

async fn bench_stats(rt: &tokio::runtime::Handle, target: &Target) -> Result<(), BoxError> {
    const TENANTS: u64 = 10;
    const DAYS: u64 = 90;
    let total: u64 = std::env::var("AIPIPE_BENCH_STATS_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let store = target.open("stats").await?;
    let db = store.db.clone();
    create_tenants(&db, "tenant", TENANTS).await?;
    let tenants: Vec<String> = (0..TENANTS).map(|t| format!("tenant-{t}")).collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let fill = Instant::now();
    let chunk = 10_000;
    let step = (DAYS * DAY_MS / total.max(1)).max(1);
    for c in 0..total.div_ceil(chunk) {
        let records: Vec<UsageRecord> = (c * chunk..((c + 1) * chunk).min(total))
            .map(|n| {
                // Spread evenly over 90 days, tenants interleaved.
                let tenant = &tenants[(n % TENANTS) as usize];
                record(n, tenant, T0 + n * step, &mut rng)
            })
            .collect();
        ingest::ingest(&db, ingest::Batch::new(records)).await?;
    }
    let fill_s = fill.elapsed().as_secs_f64();
    eprintln!(
        "bench-info: stored {total} records ({TENANTS} tenants, {DAYS} days) in {fill_s:.1}s ({:.0}/s in batches of {chunk})",
        total as f64 / fill_s
    );
    if let Some(file) = &store.file {
        let bytes = std::fs::metadata(file).map_or(0, |m| m.len());
        eprintln!("bench-info: database {:.0} MiB", bytes as f64 / 1_048_576.0);
    }
    let addr = rt.spawn(serve(admin_app(state(db)))).await??;
    let a = agent();
    let query = |tenant: u64, since: u64, until: u64| -> Result<(f64, u64), BoxError> {
        let t = Instant::now();
        let mut r = a
            .get(format!(
                "http://{addr}/admin/tenants/tenant-{tenant}/stats?since={since}&until={until}"
            ))
            .header("x-admin-secret", ADMIN)
            .call()?;
        let v: serde_json::Value = r.body_mut().read_json()?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if r.status() != 200 {
            return Err(format!("stats status {}: {v}", r.status()).into());
        }
        Ok((ms, v["totals"]["requests"].as_u64().unwrap_or(0)))
    };
    let mut run = |label: &str, n: usize, window_days: u64| -> Result<f64, BoxError> {
        let mut times = Vec::with_capacity(n);
        let mut rows = 0;
        for _ in 0..n {
            let tenant = rng.below(TENANTS);
            // Any start, to the millisecond: whole days, hours and raw edges.
            let since = T0 + rng.below((DAYS - window_days) * DAY_MS + 1);
            let (ms, r) = query(tenant, since, since + window_days * DAY_MS)?;
            times.push(ms);
            rows = r;
        }
        times.sort_by(f64::total_cmp);
        let p99 = percentile(&times, 99.0);
        eprintln!(
            "bench-info: stats {label}: ~{rows} records per query, p50 {:.2} ms, p99 {p99:.2} ms over {n} queries",
            percentile(&times, 50.0)
        );
        Ok(p99)
    };
    // Warm the page cache and statement caches.
    run("warm-up", 20, 1)?;
    for days in [1, 7, 30, 90] {
        let p99 = run(&format!("one tenant, {days}-day window"), 200, days)?;
        let name = target.name(&format!("stats_query_p99_ms_{days}d_10m"));
        println!("bench: {name} {p99:.2}");
    }
    drop(store);
    Ok(())
}

/// The store from the arguments: none, `--database-url URL` or `--postgres`.
fn target(args: &[String]) -> Result<Target, BoxError> {
    match args {
        [] => Ok(Target::TempSqlite),
        [flag, url] if flag == "--database-url" => {
            Ok(Target::Url(parse_database_url("--database-url", url)?))
        }
        [flag] if flag == "--postgres" => {
            if aipipe_tests::postgres::bin_dir().is_none() {
                return Err("--postgres: PostgreSQL's binaries were not found under \
                    /usr/lib/postgresql/*/bin (apt-get install postgresql, or set AIPIPE_PG_BIN)"
                    .into());
            }
            Ok(Target::Throwaway(
                aipipe_tests::postgres::Postgres::start_durable(),
            ))
        }
        _ => Err("usage: aipipe-cp-bench [--database-url sqlite://PATH|postgres://USER@HOST:PORT/DB | --postgres]".into()),
    }
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let handle = rt.handle().clone();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result: Result<(), BoxError> = rt.block_on(async {
        let target = target(&args)?;
        let per_s = bench_ingest(&handle, &target).await?;
        println!("bench: {} {per_s:.0}", target.name("ingest_records_per_s"));
        bench_stats(&handle, &target).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
