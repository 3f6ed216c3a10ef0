//! `aipipe-cp-bench`: the control plane's numbers (tests/README.md,
//! "Performance goals"), measured on this machine. Ingest: batches of 500
//! usage records POSTed over real loopback HTTP to the internal API (each
//! acknowledged only after its fsynced commit, rollups included), stamped
//! the last hour so every rollup width is written. Stats: 10,000,000 records
//! stored through the ingest service (10 tenants × 8 models over 90 days),
//! then `GET /admin/tenants/{id}/stats` over real HTTP for windows of one
//! tenant — 1, 7, 30 and 90 days at random offsets and odd millisecond
//! edges (so raw edges are read too) — p99 of 200 queries each.
//!
//! Prints `bench: ingest_records_per_s <x>`,
//! `bench: stats_query_p99_ms_1d_10m <x>`, `bench: stats_query_p99_ms_7d_10m <x>`,
//! `bench: stats_query_p99_ms_30d_10m <x>` and `bench: stats_query_p99_ms_90d_10m <x>`
//! (plus `bench-info:` lines). `AIPIPE_BENCH_STATS_RECORDS` stores fewer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aipipe_control_plane::config::Secrets;
use aipipe_control_plane::db::Db;
use aipipe_control_plane::ingest;
use aipipe_control_plane::{AppState, admin_app, internal_app};
use aipipe_core::contract::{TOKEN_HEADER, USAGE_PATH};
use aipipe_core::usage::{UsageBatch, UsageRecord};

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

fn record(i: u64, tenant: u64, ts_ms: u64, rng: &mut Rng) -> UsageRecord {
    let (provider, model) = MODELS[(rng.below(MODELS.len() as u64)) as usize];
    let latency = 50.0 + rng.below(5_000) as f64 / 3.0;
    UsageRecord {
        id: format!("bench-{i:016x}-{:08x}", rng.next() as u32),
        tenant: format!("tenant-{tenant}"),
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

/// `tenant-0` … `tenant-{n-1}`: usage of tenants that never existed is refused.
async fn create_tenants(db: &Db, n: u64) -> Result<(), BoxError> {
    for t in 0..n {
        db.create_tenant(format!("tenant-{t}"), format!("Tenant {t}"))
            .await?;
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

/// 400 batches of 500 records over `clients` keep-alive connections.
async fn bench_ingest(rt: &tokio::runtime::Handle) -> Result<f64, BoxError> {
    const BATCHES: u64 = 400;
    const BATCH: u64 = 500;
    const CLIENTS: u64 = 4;
    let path = temp_db("ingest")?;
    let db = Db::open(&path)?;
    create_tenants(&db, 10).await?;
    let addr = rt.spawn(serve(internal_app(state(db)))).await??;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = aipipe_control_plane::db::now_ms() - 3_600_000;
    // Bodies are serialised up front: the client's JSON work is not the server's.
    let bodies: Vec<Vec<u8>> = (0..BATCHES)
        .map(|b| {
            let records = (0..BATCH)
                .map(|i| record(b * BATCH + i, b % 10, t0 + b * 1000 + i, &mut rng))
                .collect();
            serde_json::to_vec(&UsageBatch { records })
        })
        .collect::<Result<_, _>>()?;
    let url = format!("http://{addr}{USAGE_PATH}");
    // Warm-up batch (connection, statement cache), not counted.
    let warm = UsageBatch {
        records: (0..BATCH)
            .map(|i| record(u64::MAX / 2 + i, 0, t0, &mut rng))
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
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
    Ok(accepted as f64 / elapsed)
}

async fn bench_stats(rt: &tokio::runtime::Handle) -> Result<(), BoxError> {
    const TENANTS: u64 = 10;
    const DAYS: u64 = 90;
    let total: u64 = std::env::var("AIPIPE_BENCH_STATS_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let path = temp_db("stats")?;
    let db = Db::open(&path)?;
    create_tenants(&db, TENANTS).await?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let fill = Instant::now();
    let chunk = 10_000;
    let step = (DAYS * DAY_MS / total.max(1)).max(1);
    for c in 0..total.div_ceil(chunk) {
        let records: Vec<UsageRecord> = (c * chunk..((c + 1) * chunk).min(total))
            .map(|n| {
                // Spread evenly over 90 days, tenants interleaved.
                record(n, n % TENANTS, T0 + n * step, &mut rng)
            })
            .collect();
        ingest::ingest(&db, ingest::Batch::new(records)).await?;
    }
    let fill_s = fill.elapsed().as_secs_f64();
    eprintln!(
        "bench-info: stored {total} records ({TENANTS} tenants, {DAYS} days) in {fill_s:.1}s ({:.0}/s in batches of {chunk})",
        total as f64 / fill_s
    );
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    eprintln!("bench-info: database {:.0} MiB", bytes as f64 / 1_048_576.0);
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
        println!("bench: stats_query_p99_ms_{days}d_10m {p99:.2}");
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
    Ok(())
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
    let result: Result<(), BoxError> = rt.block_on(async {
        let per_s = bench_ingest(&handle).await?;
        println!("bench: ingest_records_per_s {per_s:.0}");
        bench_stats(&handle).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
