//! The real `aipipe-control-plane` binary: it prints a parseable listening
//! line, serves on the ports it reports, stops cleanly on SIGTERM, refuses to
//! start without its secrets, and never loses an acknowledged usage batch to
//! `kill -9` — on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::temp_dir;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aipipe_core::contract::{TOKEN_HEADER, USAGE_PATH};
use aipipe_core::usage::{UsageBatch, UsageRecord};

const ADMIN: &str = "process-test-admin-secret";
const TOKEN: &str = "process-test-internal-token";

/// A running control plane; killed on drop, its stderr printed if a test fails.
struct Proc {
    child: Child,
    admin: String,
    internal: String,
    stdout_lines: Vec<String>,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- control plane stderr ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn base_command(log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aipipe-control-plane"));
    cmd.args([
        "--admin-listen",
        "127.0.0.1:0",
        "--internal-listen",
        "127.0.0.1:0",
    ])
    .env_clear()
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(log).unwrap());
    cmd
}

fn command(db: &Path, log: &Path) -> Command {
    let mut cmd = base_command(log);
    cmd.arg("--db").arg(db);
    cmd
}

/// The control plane on a PostgreSQL database.
fn command_on(url: &str, log: &Path) -> Command {
    let mut cmd = base_command(log);
    cmd.env("AIPIPE_DATABASE_URL", url);
    cmd
}

fn with_secrets(mut cmd: Command) -> Command {
    cmd.env("AIPIPE_ADMIN_SECRET", ADMIN)
        .env("AIPIPE_INTERNAL_TOKEN", TOKEN)
        .env("AIPIPE_MASTER_KEY", "ab".repeat(32));
    cmd
}

fn start(mut cmd: Command, log: &Path) -> Proc {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no listening line; stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        };
        if let Some(rest) = line.strip_prefix("aipipe-control-plane listening ") {
            let mut admin = String::new();
            let mut internal = String::new();
            for part in rest.split_whitespace() {
                if let Some(a) = part.strip_prefix("admin=") {
                    admin = a.to_owned();
                } else if let Some(i) = part.strip_prefix("internal=") {
                    internal = i.to_owned();
                }
            }
            assert!(
                admin.starts_with("127.0.0.1:") && !admin.ends_with(":0"),
                "{line}"
            );
            assert!(
                internal.starts_with("127.0.0.1:") && !internal.ends_with(":0"),
                "{line}"
            );
            return Proc {
                child,
                admin,
                internal,
                stdout_lines: lines,
                log: log.to_owned(),
            };
        }
        lines.push(line);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn wait_exit(child: &mut Child, patience: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit in {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Usage is accepted only for tenants that exist (or existed).
fn create_acme(p: &Proc) {
    let r = agent()
        .post(format!("http://{}/admin/tenants", p.admin))
        .header("x-admin-secret", ADMIN)
        .send_json(serde_json::json!({"id": "acme"}))
        .unwrap();
    assert_eq!(r.status(), 201);
}

fn record(i: u32) -> UsageRecord {
    UsageRecord {
        id: format!("durable-{i}"),
        tenant: "acme".into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        status: 200,
        prompt_tokens: 10,
        completion_tokens: 20,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cost_nusd: 13_500,
        latency_ms: 12.5,
        ttft_ms: Some(3.0),
        complexity: None,
        stream: false,
        usage_parsed: true,
        ts_ms: 1_000 + u64::from(i),
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

#[test]
fn serves_health_on_the_reported_ports_and_exits_0_on_sigterm() {
    let dir = temp_dir("sigterm");
    let log = dir.join("stderr.log");
    let mut p = start(
        with_secrets(command(&dir.join("sub/aipipe.db"), &log)),
        &log,
    );
    let a = agent();
    let mut r = a.get(format!("http://{}/healthz", p.admin)).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "ok");
    let r = a
        .get(format!("http://{}/admin/tenants", p.admin))
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = a
        .get(format!("http://{}/admin/tenants", p.admin))
        .header("x-admin-secret", ADMIN)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = a
        .get(format!(
            "http://{}{}",
            p.internal,
            aipipe_core::contract::TABLE_PATH
        ))
        .header(TOKEN_HEADER, TOKEN)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        p.stdout_lines.is_empty(),
        "nothing else on stdout: {:?}",
        p.stdout_lines
    );

    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_exit(&mut p.child, Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit:?}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log_text.contains(ADMIN) && !log_text.contains(TOKEN),
        "a secret reached the log"
    );
    assert!(
        dir.join("sub/aipipe.db").exists(),
        "the db directory is created"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_acknowledged_batch_survives_kill_9() {
    let dir = temp_dir("kill9");
    let db = dir.join("aipipe.db");
    batch_survives_kill_9(&dir, |log| command(&db, log));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on PostgreSQL (a throwaway server, its durability off: what
/// is tested is that the control plane acknowledges only what committed,
/// and serves it again after `kill -9`).
#[test]
fn an_acknowledged_batch_survives_kill_9_on_postgres() {
    let pg = aipipe_tests::postgres::Postgres::start();
    let url = pg.create_database("cp");
    let dir = temp_dir("kill9-pg");
    batch_survives_kill_9(&dir, |log| command_on(&url, log));
    let _ = std::fs::remove_dir_all(&dir);
}

fn batch_survives_kill_9(dir: &Path, command: impl Fn(&Path) -> Command) {
    let log = dir.join("stderr.log");
    let mut p = start(with_secrets(command(&log)), &log);
    create_acme(&p);
    let batch = UsageBatch {
        records: (0..500).map(record).collect(),
    };
    let mut r = agent()
        .post(format!("http://{}{USAGE_PATH}", p.internal))
        .header(TOKEN_HEADER, TOKEN)
        .send_json(&batch)
        .unwrap();
    assert_eq!(r.status(), 200);
    let ack: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(ack["accepted"], 500);

    p.child.kill().unwrap(); // SIGKILL: no shutdown path runs.
    p.child.wait().unwrap();
    drop(p);

    let log2 = dir.join("stderr2.log");
    let p = start(with_secrets(command(&log2)), &log2);
    let a = agent();
    let mut r = a
        .get(format!(
            "http://{}/admin/tenants/acme/stats?since=0&until=100000",
            p.admin
        ))
        .header("x-admin-secret", ADMIN)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(stats["totals"]["requests"], 500);
    // And a retry of the same batch after the restart counts nothing twice.
    let mut r = a
        .post(format!("http://{}{USAGE_PATH}", p.internal))
        .header(TOKEN_HEADER, TOKEN)
        .send_json(&batch)
        .unwrap();
    let ack: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(
        (&ack["accepted"], &ack["duplicates"]),
        (&serde_json::json!(0), &serde_json::json!(500)),
        "{ack}"
    );
    drop(p);
}

/// Two control planes on one PostgreSQL database, evals failed as
/// interrupted after 2 s without a heartbeat (`--eval-stale-ms`): an eval
/// one of them runs (its calls held by a gateway that never answers) is
/// left alone by the other for as long as its runner lives, however long
/// it runs; once its control plane is killed with -9, the survivor fails
/// it (control-plane/README.md, "Replicas").
#[test]
fn an_eval_of_a_replica_killed_mid_run_is_failed_by_the_survivor_and_not_before() {
    let pg = aipipe_tests::postgres::Postgres::start();
    let url = pg.create_database("cp");
    let dir = temp_dir("eval-replicas");
    // A gateway that takes connections and never answers.
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway_url = format!("http://{}", gateway.local_addr().unwrap());
    let replica = |name: &str| {
        let log = dir.join(format!("{name}.log"));
        let mut cmd = with_secrets(command_on(&url, &log));
        cmd.args(["--eval-stale-ms", "2000", "--gateway-url", &gateway_url]);
        start(cmd, &log)
    };
    let mut a = replica("a");
    create_acme(&a);
    let web = agent();
    let mut r = web
        .post(format!(
            "http://{}/admin/tenants/acme/virtual-keys",
            a.admin
        ))
        .header("x-admin-secret", ADMIN)
        .send_json(serde_json::json!({"name": "evals"}))
        .unwrap();
    assert_eq!(r.status(), 201);
    let key: serde_json::Value = r.body_mut().read_json().unwrap();
    let suite = serde_json::json!({"tenant_id": "acme", "virtual_key": key["key"],
        "models": ["gpt-4o-mini"],
        "tasks": [{"id": "t", "category": "chat", "prompt": "hi", "check": {"contains": "x"}}]});
    let mut r = web
        .post(format!("http://{}/admin/evals", a.admin))
        .header("x-admin-secret", ADMIN)
        .send_json(&suite)
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.body_mut().read_json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = replica("b");
    let status_on_b = || {
        let mut r = web
            .get(format!("http://{}/admin/evals/{id}", b.admin))
            .header("x-admin-secret", ADMIN)
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.body_mut().read_json::<serde_json::Value>().unwrap()
    };
    // Twice the bound with its runner alive: b's start and its sweeps
    // (every 500 ms) leave it running.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(status_on_b()["status"], "running");

    a.child.kill().unwrap(); // SIGKILL: no shutdown path runs.
    a.child.wait().unwrap();
    let killed = Instant::now();
    let e = loop {
        let e = status_on_b();
        if e["status"] != "running" {
            break e;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still running 10 s after its control plane died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Within the bound plus a sweep (2 s + 0.5 s) of its last heartbeat,
    // which was at most a heartbeat (333 ms) before the kill.
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(
        (&e["status"], &e["error"]),
        (
            &serde_json::json!("failed"),
            &serde_json::json!("interrupted: the control plane stopped while it ran")
        ),
        "{e}"
    );
    let log = std::fs::read_to_string(dir.join("b.log")).unwrap();
    assert!(
        log.contains("evals whose control plane stopped running them marked failed"),
        "{log}"
    );
    drop((a, b, gateway));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_to_start_without_its_secrets_naming_them() {
    let dir = temp_dir("nosecret");
    let log = dir.join("stderr.log");
    let mut cmd = command(&dir.join("aipipe.db"), &log);
    cmd.env("AIPIPE_ADMIN_SECRET", ADMIN);
    let mut child = cmd.spawn().unwrap();
    let exit = wait_exit(&mut child, Duration::from_secs(15));
    assert!(!exit.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("AIPIPE_MASTER_KEY") && text.contains("AIPIPE_INTERNAL_TOKEN"),
        "{text}"
    );
    assert!(!text.contains(ADMIN));

    // A master key other than the one the database was created with is refused.
    let db = dir.join("keyed.db");
    let p = start(with_secrets(command(&db, &log)), &log);
    drop(p);
    let log2 = dir.join("stderr2.log");
    let mut cmd = with_secrets(command(&db, &log2));
    cmd.env("AIPIPE_MASTER_KEY", "cd".repeat(32));
    let mut child = cmd.spawn().unwrap();
    assert!(!wait_exit(&mut child, Duration::from_secs(15)).success());
    assert!(
        std::fs::read_to_string(&log2)
            .unwrap()
            .contains("AIPIPE_MASTER_KEY is not the key")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dev_mode_generates_and_prints_the_admin_secret_once() {
    let dir = temp_dir("dev");
    let log = dir.join("stderr.log");
    let mut cmd = command(&dir.join("aipipe.db"), &log);
    cmd.arg("--dev").env("OPENAI_API_KEY", "sk-from-env-SECRET");
    let p = start(cmd, &log);
    let secret = p
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("admin secret: "))
        .expect("admin secret printed")
        .to_owned();
    assert!(dir.join("dev-master-key").exists());
    let mut r = agent()
        .get(format!("http://{}/admin/tenants/default", p.admin))
        .header("x-admin-secret", &secret)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    assert!(
        body.contains("\"openai\"") && !body.contains("SECRET"),
        "{body}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log_text.contains(&secret) && !log_text.contains("SECRET"),
        "{log_text}"
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn penalties_persist_across_kill_9_and_the_decay_interval_is_configurable() {
    let dir = temp_dir("penalties");
    let db = dir.join("aipipe.db");
    let log = dir.join("stderr.log");
    // Env var: an hour, so the penalty barely moves during the test.
    let mut cmd = with_secrets(command(&db, &log));
    cmd.env("AIPIPE_PENALTY_DECAY_MS", "3600000");
    let mut p = start(cmd, &log);
    create_acme(&p);
    let a = agent();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut failing = record(1);
    failing.status = 502;
    failing.ts_ms = now;
    let mut failing2 = failing.clone();
    failing2.id = "durable-2".into();
    let r = a
        .post(format!("http://{}{USAGE_PATH}", p.internal))
        .header(TOKEN_HEADER, TOKEN)
        .send_json(&UsageBatch {
            records: vec![failing, failing2],
        })
        .unwrap();
    assert_eq!(r.status(), 200);
    let penalties = |p: &Proc| -> serde_json::Value {
        agent()
            .get(format!("http://{}/admin/penalties", p.admin))
            .header("x-admin-secret", ADMIN)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let mini = |v: &serde_json::Value| -> serde_json::Value {
        v["penalties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "gpt-4o-mini")
            .unwrap()
            .clone()
    };
    let v = penalties(&p);
    assert_eq!(v["decay_ms"], 3_600_000);
    let before = mini(&v)["penalty"].as_f64().unwrap();
    assert!((before - 15.0).abs() < 0.1, "{v}");

    p.child.kill().unwrap();
    p.child.wait().unwrap();
    drop(p);

    // Flag: overrides the environment.
    let log2 = dir.join("stderr2.log");
    let mut cmd = with_secrets(command(&db, &log2));
    cmd.env("AIPIPE_PENALTY_DECAY_MS", "1000")
        .args(["--penalty-decay-ms", "7200000"]);
    let p = start(cmd, &log2);
    let v = penalties(&p);
    assert_eq!(v["decay_ms"], 7_200_000);
    assert_eq!(mini(&v)["failures"], 2);
    let after = mini(&v)["penalty"].as_f64().unwrap();
    assert!((after - 15.0).abs() < 0.1, "{v}");
    let table: aipipe_core::table::RoutingTable = agent()
        .get(format!(
            "http://{}{}",
            p.internal,
            aipipe_core::contract::TABLE_PATH
        ))
        .header(TOKEN_HEADER, TOKEN)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let m = table.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert!((m.penalty - 15.0).abs() < 0.1, "{}", m.penalty);
    drop(p);

    // 0 is refused at start, naming the flag.
    let log3 = dir.join("stderr3.log");
    let mut cmd = with_secrets(command(&db, &log3));
    cmd.args(["--penalty-decay-ms", "0"]);
    let mut child = cmd.spawn().unwrap();
    assert!(!wait_exit(&mut child, Duration::from_secs(15)).success());
    let text = std::fs::read_to_string(&log3).unwrap();
    assert!(text.contains("--penalty-decay-ms"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
