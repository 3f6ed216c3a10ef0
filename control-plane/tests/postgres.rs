//! `migrate` into a real, throwaway PostgreSQL (Debian's binaries, started by
//! `aipipe_tests::postgres`): a SQLite database populated through the admin
//! and internal APIs is copied with every table's rows, the sealed keys' bytes
//! and the revision intact; a re-run adds nothing; a refreshed source is
//! copied again; a target with other data, or a copy written to since, is
//! refused untouched; bad URLs are refused without their password
//! (control-plane/README.md, "PostgreSQL").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{ADMIN, Harness, TOKEN, sqlite_harness, temp_dir};

use std::collections::BTreeMap;
use std::process::Command;

use aipipe_control_plane::config::{Database, PostgresUrl, parse_database_url};
use aipipe_control_plane::db::pg::copy::{self, Outcome, TABLES};
use aipipe_control_plane::db::pg::partitions;
use aipipe_control_plane::{admin_app, internal_app};
use aipipe_core::contract::{TOKEN_HEADER, USAGE_PATH};
use aipipe_core::usage::{FailedAttempt, UsageRecord, UsageSource, UsageUpload};
use aipipe_tests::postgres::Postgres;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

const DAY: u64 = 86_400_000;

async fn call(
    app: axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn admin(h: &Harness, method: Method, uri: &str, body: Option<Value>) -> Value {
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let (s, v) = call(
        admin_app(h.state.clone()),
        method,
        uri,
        &[("x-admin-secret", ADMIN)],
        body,
    )
    .await;
    assert!(s.is_success(), "{uri}: {s} {v}");
    v
}

/// Posts a batch as an Envoy's singleton does, with its `source` (its
/// queue and one in-flight reservation).
async fn ingest(h: &Harness, records: Vec<UsageRecord>) {
    let body = serde_json::to_vec(&UsageUpload {
        records,
        source: Some(UsageSource {
            node: "edge-1".into(),
            queued: 2,
            dropped: 0,
            sent: 10,
            reserved_nusd: [("acme".to_owned(), 1_000)].into_iter().collect(),
            key_reserved_nusd: Default::default(),
        }),
    })
    .unwrap();
    let (s, v) = call(
        internal_app(h.state.clone()),
        Method::POST,
        USAGE_PATH,
        &[(TOKEN_HEADER, TOKEN)],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn record(id: &str, tenant: &str, model: &str, status: u16, ts_ms: u64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        tenant: tenant.into(),
        provider: "openai".into(),
        model: model.into(),
        status,
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 10,
        cache_write_tokens: 5,
        cost_nusd: 45_000,
        latency_ms: 120.5,
        ttft_ms: Some(30.25),
        complexity: Some(0.3),
        stream: false,
        usage_parsed: status < 400,
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

fn now_ms() -> u64 {
    aipipe_control_plane::db::now_ms()
}

/// A database with something in (nearly) every table, made the way the
/// service makes it: tenants, keys, budgets, limits, policies, usage over
/// three days with failures, failovers, cache hits and a virtual key,
/// penalties, a cost adjustment, routing examples and ratings, an eval, a
/// deleted tenant, alerts waiting for the webhook, an Envoy's report.
async fn populate(h: &Harness) -> String {
    h.state.db.enable_alerts();
    h.state
        .db
        .set_master_key_check(vec![7, 0, 255, 42])
        .await
        .unwrap();
    for id in ["acme", "beta", "gone"] {
        admin(
            h,
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": id, "name": id.to_uppercase()})),
        )
        .await;
    }
    admin(
        h,
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-acme-openai", "anthropic": "sk-ant-acme"})),
    )
    .await;
    admin(
        h,
        Method::POST,
        "/admin/tenants/beta/keys",
        Some(json!({"openai": "sk-beta-openai"})),
    )
    .await;
    let vk = admin(
        h,
        Method::POST,
        "/admin/tenants/acme/virtual-keys",
        Some(json!({"name": "ci"})),
    )
    .await;
    let vk_id = vk["id"].as_str().unwrap().to_owned();
    admin(
        h,
        Method::POST,
        "/admin/tenants/beta/virtual-keys",
        Some(json!({"name": "web"})),
    )
    .await;
    admin(
        h,
        Method::PATCH,
        "/admin/tenants/beta",
        Some(json!({"disabled": true, "pass_through": false})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        "/admin/tenants/acme/budget",
        Some(json!({"limit_usd": 0.0001, "days": 30})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        &format!("/admin/tenants/acme/virtual-keys/{vk_id}/budget"),
        Some(json!({"limit_usd": 0.00005, "days": 7})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        "/admin/budget-default",
        Some(json!({"limit_usd": 5, "days": 7})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        "/admin/tenants/acme/limits",
        Some(json!({"requests_per_minute": 600, "tokens_per_minute": 100000})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        &format!("/admin/tenants/acme/virtual-keys/{vk_id}/limits"),
        Some(json!({"requests_per_minute": 60})),
    )
    .await;
    admin(
        h,
        Method::PUT,
        "/admin/tenants/beta/policy",
        Some(json!({"max_tier": "mid"})),
    )
    .await;
    admin(
        h,
        Method::POST,
        "/admin/tenants/acme/routing/examples",
        Some(json!([
            {"request": {"messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}, "tier": "frontier", "category": "math_reasoning"},
            {"request": {"messages": [{"role": "user", "content": "hi there"}]}, "tier": "cheap", "category": "chat"},
        ])),
    )
    .await;
    h.state
        .db
        .add_feedback("acme".into(), "rated-1".into(), true, None)
        .await
        .unwrap();
    h.state
        .db
        .add_feedback("acme".into(), "rated-2".into(), false, None)
        .await
        .unwrap();
    assert!(
        h.state
            .db
            .create_eval("ev_1".into(), "acme".into(), r#"{"tasks":[]}"#.into())
            .await
            .unwrap()
    );
    h.state
        .db
        .finish_eval("ev_1".into(), "done", Some(r#"{"score":0.5}"#.into()), None)
        .await
        .unwrap();

    // Usage over three UTC days: successes, a failure (penalty), a
    // failover (attempt failures), a key's 429 (a key-scoped penalty), a
    // cache hit, a stream, an estimate, the virtual key's spend.
    // Not in the first seconds of a UTC day: today's records stay on today.
    while now_ms() % DAY < 5_000 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let now = now_ms();
    let mut records = Vec::new();
    for (d, day) in [2u64, 1, 0].into_iter().enumerate() {
        let ts = now - day * DAY - 1_000;
        records.push(record(&format!("ok-{d}"), "acme", "gpt-4o-mini", 200, ts));
        records.push(record(&format!("bad-{d}"), "acme", "gpt-4o", 500, ts + 1));
    }
    let mut failover = record("failover", "acme", "gpt-4o-mini", 200, now - 500);
    failover.failed_attempts = vec![FailedAttempt {
        provider: "openai".into(),
        model: "gpt-4o".into(),
        status: 503,
        key_tag: None,
    }];
    failover.stream = true;
    failover.virtual_key = Some(vk_id.clone());
    let mut limited = record("limited", "acme", "gpt-4o", 429, now - 400);
    limited.key_tag = Some("k1".into());
    let mut hit = record("hit", "acme", "gpt-4o-mini", 200, now - 300);
    hit.cache_hit = true;
    hit.cost_nusd = 0;
    let mut estimated = record("estimated", "acme", "gpt-4o-mini", 200, now - 200);
    estimated.estimated = true;
    estimated.usage_parsed = false;
    records.extend([
        failover,
        limited,
        hit,
        estimated,
        record("beta-1", "beta", "gpt-4o-mini", 200, now - 100),
    ]);
    ingest(h, records).await;

    let yesterday = Command::new("date")
        .args(["-u", "-d", &format!("@{}", (now - DAY) / 1000), "+%F"])
        .output()
        .unwrap();
    let yesterday = String::from_utf8(yesterday.stdout)
        .unwrap()
        .trim()
        .to_owned();
    admin(
        h,
        Method::POST,
        "/admin/cost",
        Some(json!({"tenant": "acme", "date": yesterday, "cost": 0.25})),
    )
    .await;
    admin(h, Method::DELETE, "/admin/tenants/gone", None).await;
    vk_id
}

/// Rows per table as SQLite has them.
fn sqlite_rows(conn: &rusqlite::Connection) -> BTreeMap<String, u64> {
    TABLES
        .iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .unwrap();
            ((*t).to_owned(), n as u64)
        })
        .collect()
}

fn pg_rows(client: &mut postgres::Client) -> BTreeMap<String, u64> {
    TABLES
        .iter()
        .map(|t| {
            let n: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
                .unwrap()
                .get(0);
            ((*t).to_owned(), n as u64)
        })
        .collect()
}

fn pg_url(url: &str) -> PostgresUrl {
    match parse_database_url("test", url).unwrap() {
        Database::Postgres(u) => u,
        Database::Sqlite(p) => panic!("{} is not PostgreSQL", p.display()),
    }
}

#[test]
fn a_populated_database_is_copied_verified_and_a_rerun_adds_nothing() {
    let h = sqlite_harness("pg-migrate", None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vk_id = rt.block_on(populate(&h));
    let path = h.dir.join("aipipe.db");
    let lite = rusqlite::Connection::open(&path).unwrap();
    let mut want = sqlite_rows(&lite);
    // Every table the test means to fill has rows (else it proves nothing).
    let empty: Vec<&String> = want
        .iter()
        .filter(|(t, n)| **n == 0 && !["request_features", "tenant_routers"].contains(&t.as_str()))
        .map(|(t, _)| t)
        .collect();
    assert!(
        empty.is_empty(),
        "tables the population left empty: {empty:?}"
    );
    // `meta.table_version` becomes the revision sequence.
    *want.get_mut("meta").unwrap() -= 1;
    let revision: i64 = lite
        .query_row(
            "SELECT value FROM meta WHERE key = 'table_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();

    let pg = Postgres::start();
    let url = pg.create_database("aipipe");
    let report = copy::run(&path, &pg_url(&url)).unwrap();
    assert_eq!(report.outcome, Outcome::Copied);
    assert_eq!(report.state.rows, want);
    assert_eq!(report.state.revision, revision as u64);
    let printed = report.to_string();
    assert!(
        printed.contains("copied sqlite://") && printed.contains("verified"),
        "{printed}"
    );
    assert!(
        printed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["usage", &want["usage"].to_string()]),
        "{printed}"
    );

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(pg_rows(&mut client), want);
    // The revision goes on from SQLite's.
    let last: i64 = client
        .query_one("SELECT last_value FROM change_revision", &[])
        .unwrap()
        .get(0);
    assert_eq!(last, revision);
    let next: i64 = client
        .query_one("SELECT nextval('change_revision')", &[])
        .unwrap()
        .get(0);
    assert_eq!(next, revision + 1);
    client
        .execute("SELECT setval('change_revision', $1, true)", &[&revision])
        .unwrap();
    // A sealed key: the same bytes, still sealed (the clear key is not in them).
    let sealed: Vec<u8> = lite
        .query_row(
            "SELECT sealed FROM provider_keys WHERE tenant = 'acme' AND provider = 'openai'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let copied: Vec<u8> = client
        .query_one(
            "SELECT sealed FROM provider_keys WHERE tenant = 'acme' AND provider = 'openai'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(copied, sealed);
    assert!(
        !copied
            .windows(b"sk-acme-openai".len())
            .any(|w| w == b"sk-acme-openai")
    );
    // meta: integers, bytes, in their typed columns.
    let check: Vec<u8> = client
        .query_one(
            "SELECT bytes_value FROM meta WHERE key = 'master_key_check'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(check, [7, 0, 255, 42]);
    let epoch: i64 = lite
        .query_row(
            "SELECT value FROM meta WHERE key = 'penalty_epoch'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let copied_epoch: i64 = client
        .query_one(
            "SELECT int_value FROM meta WHERE key = 'penalty_epoch'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(copied_epoch, epoch);
    // A usage record, field by field; its 0/1 flags as booleans.
    let row = client
        .query_one(
            "SELECT tenant, model, status, prompt_tokens, cache_write_tokens, cost_nusd, latency_ms, ttft_ms,
                complexity, stream, usage_parsed, cache_hit, estimated, virtual_key
             FROM usage WHERE id = 'failover'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "acme");
    assert_eq!(row.get::<_, &str>(1), "gpt-4o-mini");
    assert_eq!(row.get::<_, i64>(2), 200);
    assert_eq!(row.get::<_, i64>(3), 100);
    assert_eq!(row.get::<_, i64>(4), 5);
    assert_eq!(row.get::<_, i64>(5), 45_000);
    assert_eq!(row.get::<_, f64>(6), 120.5);
    assert_eq!(row.get::<_, Option<f64>>(7), Some(30.25));
    assert_eq!(row.get::<_, Option<f64>>(8), Some(0.3));
    assert_eq!(
        (
            row.get::<_, bool>(9),
            row.get::<_, bool>(10),
            row.get::<_, bool>(11),
            row.get::<_, bool>(12)
        ),
        (true, true, false, false)
    );
    assert_eq!(row.get::<_, Option<String>>(13), Some(vk_id));
    let flags: (bool, bool) = {
        let r = client
            .query_one(
                "SELECT disabled, pass_through FROM tenants WHERE id = 'beta'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(flags, (true, false));
    // Rollup sketches (bytes) and penalties (reals) as SQLite has them.
    let sketch: Vec<u8> = lite
        .query_row("SELECT latency FROM usage_rollups WHERE latency IS NOT NULL ORDER BY tenant, width_ms, start_ms, provider, model LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let copied_sketch: Vec<u8> = client
        .query_one("SELECT latency FROM usage_rollups WHERE latency IS NOT NULL ORDER BY tenant COLLATE \"C\", width_ms, start_ms, provider COLLATE \"C\", model COLLATE \"C\" LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(copied_sketch, sketch);
    let penalty: f64 = lite
        .query_row(
            "SELECT penalty FROM penalties WHERE model = 'gpt-4o' AND key_tag = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(penalty > 0.0);
    let copied_penalty: f64 = client
        .query_one(
            "SELECT penalty FROM penalties WHERE model = 'gpt-4o' AND key_tag = ''",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(copied_penalty.to_bits(), penalty.to_bits());
    // Usage sits in one partition per UTC day; ids go on after the copied ones.
    let days: Vec<i64> = {
        let mut s = lite
            .prepare("SELECT DISTINCT ts_ms / 86400000 FROM usage ORDER BY 1")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(days.len(), 3);
    assert_eq!(partitions::existing(&mut client, "usage").unwrap(), days);
    let max_id: i64 = lite
        .query_row("SELECT MAX(id) FROM cost_adjustments", [], |r| r.get(0))
        .unwrap();
    let mut tx = client.transaction().unwrap();
    let new_id: i64 = tx
        .query_one("INSERT INTO cost_adjustments (tenant, day, previous_nusd, cost_nusd, at_ms) VALUES ('acme', 1, 0, 0, 0) RETURNING id", &[])
        .unwrap()
        .get(0);
    assert_eq!(new_id, max_id + 1);
    tx.rollback().unwrap();

    // Again: nothing to add, nothing written.
    let again = copy::run(&path, &pg_url(&url)).unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyCurrent);
    assert!(again.to_string().contains("nothing added"), "{again}");
    assert_eq!(pg_rows(&mut client), want);

    // The source moved on: the untouched copy is refreshed.
    let mut late = record("late", "acme", "gpt-4o-mini", 200, now_ms());
    late.cost_nusd = 1;
    rt.block_on(ingest(&h, vec![late]));
    let refreshed = copy::run(&path, &pg_url(&url)).unwrap();
    assert_eq!(refreshed.outcome, Outcome::Refreshed);
    assert_eq!(refreshed.state.rows["usage"], want["usage"] + 1);
    assert_eq!(pg_rows(&mut client), refreshed.state.rows);

    // A copy written to since is refused, and stays as it is.
    client
        .execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ('pg-only', 'x', 0)",
            &[],
        )
        .unwrap();
    let e = copy::run(&path, &pg_url(&url)).unwrap_err();
    assert!(e.contains("written to since"), "{e}");
    let kept: i64 = client
        .query_one("SELECT COUNT(*) FROM tenants WHERE id = 'pg-only'", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);

    // Retention drops whole days: the oldest day's partitions go with their rows.
    let before = pg_rows(&mut client)["usage"];
    let dropped =
        partitions::drop_days_before(&mut client, ((days[0] + 1) as u64 * DAY) as i64).unwrap();
    assert_eq!(
        dropped,
        [
            partitions::name("usage", days[0]),
            partitions::name("attempt_failures", days[0])
        ]
    );
    assert_eq!(
        pg_rows(&mut client)["usage"],
        before - 2,
        "the oldest day had two records"
    );
    assert_eq!(
        partitions::existing(&mut client, "usage").unwrap(),
        days[1..]
    );
    drop(client);
    drop(pg);
}

#[test]
fn a_target_holding_other_data_is_refused_untouched() {
    let h = sqlite_harness("pg-foreign", None);
    let path = h.dir.join("aipipe.db");
    let pg = Postgres::start();
    let url = pg.create_database("shared");
    pg.psql(
        "shared",
        "CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (1)",
    );
    let e = copy::run(&path, &pg_url(&url)).unwrap_err();
    assert!(e.contains("not empty") && e.contains("invoices"), "{e}");
    assert_eq!(
        pg.psql(
            "shared",
            "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
        )
        .trim(),
        "invoices"
    );

    // A copy of another SQLite database is not this one's either.
    let other = sqlite_harness("pg-other", None);
    let url = pg.create_database("copy");
    assert_eq!(
        copy::run(&other.dir.join("aipipe.db"), &pg_url(&url))
            .unwrap()
            .outcome,
        Outcome::Copied
    );
    let e = copy::run(&path, &pg_url(&url)).unwrap_err();
    assert!(e.contains("holds no copy of"), "{e}");
}

/// Through the real binary: a URL's password is in no message, `serve`
/// refuses PostgreSQL until its engine exists, and bad URLs say what is wrong.
#[test]
fn bad_urls_are_refused_clearly_without_the_password() {
    let dir = temp_dir("pg-urls");
    let db = dir.join("aipipe.db");
    drop(aipipe_control_plane::db::Db::open(&db).unwrap());
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aipipe-control-plane"))
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains("hunter2-pw"),
            "the password is shown: {text}"
        );
        text
    };
    let from = format!("sqlite://{}", db.display());
    // Nothing listens on port 1: the connection fails, naming the URL without its password.
    let text = run(
        &[
            "migrate",
            "--from",
            &from,
            "--to",
            "postgres://aipipe:hunter2-pw@127.0.0.1:1/aipipe",
        ],
        &[],
    );
    assert!(
        text.contains("connecting to postgres://aipipe:***@127.0.0.1:1/aipipe"),
        "{text}"
    );
    // From the environment too.
    let text = run(
        &["migrate", "--from", &from],
        &[(
            "AIPIPE_DATABASE_URL",
            "postgres://aipipe:hunter2-pw@127.0.0.1:1/aipipe",
        )],
    );
    assert!(
        text.contains("postgres://aipipe:***@127.0.0.1:1/aipipe"),
        "{text}"
    );
    let text = run(
        &[
            "migrate",
            "--from",
            &from,
            "--to",
            "postgres://aipipe@127.0.0.1:1/aipipe?password=hunter2-pw&sslmode=require",
        ],
        &[],
    );
    assert!(
        text.contains("sslmode=require") && text.contains("password=***"),
        "{text}"
    );
    let text = run(
        &[
            "migrate",
            "--from",
            &from,
            "--to",
            "mysql://root:hunter2-pw@db/aipipe",
        ],
        &[],
    );
    assert!(
        text.contains("neither sqlite://PATH nor postgres://"),
        "{text}"
    );
    let text = run(
        &[
            "migrate",
            "--from",
            "postgres://u:hunter2-pw@h/db",
            "--to",
            "postgres://u@h/db",
        ],
        &[],
    );
    assert!(text.contains("migrate copies from sqlite://PATH"), "{text}");
    let text = run(
        &[
            "migrate",
            "--from",
            &format!("sqlite://{}/missing.db", dir.display()),
            "--to",
            "postgres://u@h/db",
        ],
        &[],
    );
    assert!(text.contains("no such file"), "{text}");
    // A server that cannot be reached is named, never with its password.
    let (admin, token, key) = ("a1".repeat(16), "b2".repeat(16), "c3".repeat(32));
    let text = run(
        &[],
        &[
            (
                "AIPIPE_DATABASE_URL",
                "postgres://aipipe:hunter2-pw@127.0.0.1:1/aipipe",
            ),
            ("AIPIPE_ADMIN_SECRET", &admin),
            ("AIPIPE_INTERNAL_TOKEN", &token),
            ("AIPIPE_MASTER_KEY", &key),
        ],
    );
    assert!(
        text.contains("connecting to postgres://aipipe:***@127.0.0.1:1/aipipe")
            && !text.contains("hunter2"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
