//! Several control planes on one PostgreSQL, active-active
//! (control-plane/README.md, "Replicas"), through real Envoy: two replicas of
//! the real binary share a throwaway PostgreSQL server; every Envoy's
//! `aipipe_control_plane` cluster lists both, health-checked, as the shipped
//! configs do.
//!
//! - one replica is killed (`kill -9`) under 50 requests/s of streamed and
//!   plain traffic: no client request fails, every answered request is
//!   recorded exactly once, admin writes go on at the survivor and a key it
//!   revokes is refused within moments; restarted, the replica answers the
//!   Envoys with deltas, never a full snapshot;
//! - PostgreSQL is stopped and started again under load: Envoy serves on the
//!   table it holds, the replicas reconnect by themselves, nothing
//!   acknowledged is lost and nothing is counted twice;
//! - one small budget, 100 concurrent requests over two Envoys whose usage
//!   and polls spread over both replicas: the spend stays within the limit.
//!
//! The scenarios take turns (a lock): each loads both cores for a while.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aipipe_tests::postgres::Postgres;
use aipipe_tests::{
    ControlPlane, Envoy, Launch, Mock, TEST_MASTER_KEY, assert_eventually, eventually, free_port,
    get, stream_lines,
};
use common::control_plane::{chat_as, tenant_stats};
use serde_json::json;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// PostgreSQL, two control-plane replicas on it, and the mock providers.
struct Ha {
    // Dropped in this order: the replicas before their database.
    replicas: Vec<ControlPlane>,
    mock: Mock,
    launches: Vec<Launch>,
    pg: Postgres,
    db: String,
}

impl Ha {
    fn start() -> Self {
        let pg = Postgres::start();
        let url = pg.create_database("aipipe");
        let launches: Vec<Launch> = (0..2)
            .map(|_| Launch {
                db: PathBuf::new(),
                admin_port: free_port(),
                internal_port: free_port(),
                admin_secret: "test-admin-secret-0123456789".to_owned(),
                internal_token: "test-internal-token-0123456789".to_owned(),
                master_key: Some(TEST_MASTER_KEY.to_owned()),
                env: vec![("AIPIPE_DATABASE_URL".to_owned(), url.clone())],
            })
            .collect();
        let replicas: Vec<ControlPlane> = launches.iter().map(ControlPlane::launch).collect();
        // They share one database: clearing the dates through one is enough.
        if let Some(first) = replicas.first() {
            first.undate_catalog();
        }
        Self {
            pg,
            db: "aipipe".to_owned(),
            launches,
            replicas,
            mock: Mock::start(),
        }
    }

    fn internal_ports(&self) -> Vec<u16> {
        self.launches.iter().map(|l| l.internal_port).collect()
    }

    /// Envoy (two workers) whose singleton polls both replicas.
    fn envoy(&self, plugin_config: &str) -> Envoy {
        Envoy::start_polling_replicas(
            "demo.yaml",
            self.mock.port,
            Some(plugin_config.to_owned()),
            &self.internal_ports(),
            &self.launches[0].internal_token,
            2,
        )
    }

    /// Records in the usage table, and distinct record ids among them.
    fn usage_rows(&self, tenant: &str) -> (u64, u64) {
        let out = self.pg.psql(
            &self.db,
            &format!("SELECT count(*), count(DISTINCT id) FROM usage WHERE tenant = '{tenant}'"),
        );
        let mut it = out.trim().split('|').map(|n| n.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    fn kill(&mut self, i: usize) {
        let pid = self.replicas[i].process.pid();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        assert_eventually!(
            Duration::from_secs(5),
            !self.replicas[i].process.alive(),
            "replica {i} outlived kill -9"
        );
    }
}

/// The value of a `/metrics` counter of a replica (0 when absent).
fn counter(cp: &ControlPlane, name: &str) -> u64 {
    let text = get(&cp.admin_url("/metrics"), &[]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// A virtual key's id, by creating one more key for `tenant`.
fn another_key(cp: &ControlPlane, tenant: &str) -> (String, String) {
    let r = cp.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/virtual-keys"),
        Some(&json!({"name": "second"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

/// Until `envoy` answers a request with `key`.
fn served(envoy: &Envoy, key: &str) -> bool {
    eventually(Duration::from_secs(20), || {
        (chat_as(envoy, key, &common::chat("gpt-4o-mini", "probe")).status == 200).then_some(())
    })
    .is_some()
}

/// One request of the load: plain, or streamed to the end (each third).
/// Err says what went wrong.
fn one(envoy: &Envoy, key: &str, i: usize) -> Result<(), String> {
    let stream = i % 3 == 2;
    let body = json!({"model": if i.is_multiple_of(2) { "auto" } else { "gpt-4o-mini" },
        "max_tokens": 16, "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": format!("say something about number {i}")}]});
    if stream {
        let auth = format!("Bearer {key}");
        let (status, lines) = stream_lines(
            &envoy.url("/v1/chat/completions"),
            &[("authorization", auth.as_str())],
            &body,
        );
        let done = lines.iter().any(|(_, l)| l == "data: [DONE]");
        if status == 200 && done {
            Ok(())
        } else {
            Err(format!("stream {i}: {status}, done: {done}"))
        }
    } else {
        let r = chat_as(envoy, key, &body);
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("request {i}: {} {}", r.status, r.text()))
        }
    }
}

/// Sends `rps` requests a second for `length` over `envoy`, while `during`
/// runs on this thread; returns how many were answered and what failed.
fn under_load(
    envoy: &Envoy,
    key: &str,
    rps: u32,
    length: Duration,
    during: impl FnOnce(),
) -> (usize, Vec<String>) {
    let total = (length.as_secs_f64() * f64::from(rps)) as usize;
    let period = Duration::from_secs(1) / rps;
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let answered = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let at = start + period * u32::try_from(i).unwrap();
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    match one(envoy, key, i) {
                        Ok(()) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
        during();
    });
    let took = start.elapsed();
    eprintln!("load: {total} requests in {took:?}");
    (answered.into_inner(), failures.into_inner().unwrap())
}

/// Every answered request of `tenant` is in its stats and in the usage
/// table exactly once. Drains Envoy first (its listener stops).
fn recorded_exactly_once(ha: &Ha, envoy: &Envoy, cp: &ControlPlane, tenant: &str, answered: usize) {
    envoy
        .drain_usage(Duration::from_millis(1500), Duration::from_secs(60))
        .unwrap();
    assert_eventually!(
        Duration::from_secs(30),
        tenant_stats(cp, tenant)["totals"]["requests"].as_u64() == Some(answered as u64),
        "{answered} answered, stats {}",
        tenant_stats(cp, tenant)["totals"]
    );
    let (rows, distinct) = ha.usage_rows(tenant);
    assert_eq!(
        (rows, distinct),
        (answered as u64, answered as u64),
        "usage rows (all, distinct ids) for {answered} answered"
    );
}

#[test]
fn killing_one_of_two_replicas_under_load_loses_nothing_and_stops_no_admin_write() {
    let _turn = turn();
    let mut ha = Ha::start();
    let envoy = ha.envoy("{}");
    // The load's tenant gets nothing but the load: its records are counted.
    let load_key = ha.replicas[0].tenant("load", &[("openai", "sk-load")]);
    let probe_key = ha.replicas[0].tenant("probe", &[("openai", "sk-probe")]);
    let (doomed_key, doomed_id) = another_key(&ha.replicas[1], "probe");
    assert!(served(&envoy, &probe_key) && served(&envoy, &doomed_key));
    // Both replicas take usage uploads before the kill (Envoy takes turns).
    assert_eventually!(
        Duration::from_secs(20),
        {
            served(&envoy, &probe_key);
            ha.replicas
                .iter()
                .all(|cp| counter(cp, "aipipe_cp_ingest_batches_total") > 0)
        },
        "the Envoy never uploaded to both replicas"
    );

    let mut revoked_after = None;
    let (answered, failures) = under_load(&envoy, &load_key, 50, Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_secs(8));
        ha.kill(0);
        // A caller's own usage, which Envoy asks a replica for: none fails
        // while Envoy has yet to notice the dead one (it tries the other).
        let auth = format!("Bearer {probe_key}");
        for _ in 0..10 {
            let r = get(&envoy.url("/usage"), &[("authorization", auth.as_str())]);
            assert_eq!(r.status, 200, "GET /usage after the kill: {}", r.text());
        }
        // Admin writes keep working on the survivor, and reach Envoy.
        let survivor = &ha.replicas[1];
        let late_key = survivor.tenant("late", &[("openai", "sk-late")]);
        let revoke = Instant::now();
        let r = survivor.admin(
            "DELETE",
            &format!("/admin/tenants/probe/virtual-keys/{doomed_id}"),
            None,
        );
        assert!(r.status < 300, "{}", r.text());
        let refused = eventually(Duration::from_secs(10), || {
            let r = chat_as(&envoy, &doomed_key, &common::chat("gpt-4o-mini", "hi"));
            (r.status == 401).then_some(())
        });
        revoked_after = refused.map(|()| revoke.elapsed());
        assert!(served(&envoy, &late_key), "a tenant made on the survivor");
        std::thread::sleep(Duration::from_secs(18).saturating_sub(revoke.elapsed()));
        let restarted = ControlPlane::launch(&ha.launches[0]);
        ha.replicas[0] = restarted;
    });
    eprintln!(
        "kill -9 under load: {answered} answered, {} failed; revoked key refused after {revoked_after:?}",
        failures.len()
    );
    assert!(failures.is_empty(), "failed client requests: {failures:?}");
    let revoked_after = revoked_after.expect("the revoked key was still served after 10 s");
    assert!(
        revoked_after < Duration::from_secs(5),
        "the revocation took {revoked_after:?} to reach Envoy"
    );
    recorded_exactly_once(&ha, &envoy, &ha.replicas[1], "load", answered);

    // The restarted replica catches up from the database: it answers the
    // Envoy's polls with deltas after the revision it holds, never a
    // snapshot from scratch. (Each change wakes the held poll; the next one
    // goes to the other replica in turn.)
    let mut n = 0;
    assert_eventually!(
        Duration::from_secs(30),
        {
            n += 1;
            ha.replicas[1].tenant(&format!("after-{n}"), &[]);
            std::thread::sleep(Duration::from_millis(300));
            counter(&ha.replicas[0], "aipipe_cp_deltas_total") > 0
        },
        "the restarted replica never answered a poll"
    );
    assert_eq!(
        counter(&ha.replicas[0], "aipipe_cp_snapshots_total"),
        0,
        "the restarted replica sent a full snapshot"
    );
    // And its admin API sees what the survivor wrote meanwhile.
    let r = ha.replicas[0].admin("GET", "/admin/tenants/late", None);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn restarting_postgres_under_load_loses_nothing_and_counts_nothing_twice() {
    let _turn = turn();
    let mut ha = Ha::start();
    let envoy = ha.envoy("{}");
    let key = ha.replicas[0].tenant("load", &[("openai", "sk-load")]);
    let probe = ha.replicas[0].tenant("probe", &[("openai", "sk-probe")]);
    assert!(served(&envoy, &probe));
    let (answered, failures) = under_load(&envoy, &key, 50, Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_secs(5));
        ha.pg.stop();
        std::thread::sleep(Duration::from_secs(4));
        ha.pg.restart();
    });
    eprintln!(
        "PostgreSQL restarted under load: {answered} answered, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed client requests: {failures:?}");
    // The replicas reconnected by themselves: both answer admin reads and
    // take the usage held meanwhile.
    for cp in &ha.replicas {
        assert_eventually!(
            Duration::from_secs(20),
            cp.admin("GET", "/admin/tenants/load", None).status == 200,
            "a replica did not reconnect"
        );
    }
    // A write after the restart reaches Envoy: the replicas listen again.
    let late = ha.replicas[1].tenant("late", &[("openai", "sk-late")]);
    assert!(served(&envoy, &late), "a tenant made after the restart");
    // (Draining stops Envoy's listener: last.)
    recorded_exactly_once(&ha, &envoy, &ha.replicas[1], "load", answered);
}

#[test]
fn one_budget_over_two_envoys_and_two_replicas_is_not_overspent() {
    let _turn = turn();
    let ha = Ha::start();
    // As tests/tests/budgets.rs: one attempt, so the reservation is the
    // named model's worst case; two Envoys share the budget.
    let config = r#"{"budget": {"fleet_size": 2}, "max_attempts": 1}"#;
    let envoys = [ha.envoy(config), ha.envoy(config)];
    let cp = &ha.replicas[0];
    let key = cp.tenant("acme", &[("openai", "sk-acme")]);
    let r = ha.replicas[1].admin(
        "PUT",
        "/admin/tenants/acme/budget",
        Some(&json!({"limit_usd": 0.0002, "days": 30})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let limit_nusd = 200_000u64;
    // A tenant made after the budget, served by both Envoys: they hold it.
    let probe = cp.tenant("probe", &[("openai", "sk-probe")]);
    for envoy in &envoys {
        assert!(served(envoy, &probe));
    }
    let outcomes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (key, envoy) = (&key, &envoys[i % 2]);
                scope.spawn(move || {
                    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20,
                        "messages": [{"role": "user", "content": format!("count to {i} please")}]});
                    let r = chat_as(envoy, key, &body);
                    if r.status == 429 {
                        assert_eq!(r.json()["error"]["code"], "budget_exceeded", "{}", r.text());
                    }
                    r.status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        outcomes.iter().all(|s| *s == 200 || *s == 429),
        "{outcomes:?}"
    );
    let answered = outcomes.iter().filter(|s| **s == 200).count() as u64;
    assert!(answered >= 10, "only {answered} answered");
    assert!(
        answered < 100,
        "nothing was refused: the limit was never reached"
    );
    for envoy in &envoys {
        envoy
            .drain_usage(Duration::from_millis(1500), Duration::from_secs(60))
            .unwrap();
    }
    assert_eventually!(
        Duration::from_secs(30),
        tenant_stats(cp, "acme")["totals"]["requests"].as_u64() == Some(answered),
        "records missing: {answered} answered, stats {}",
        tenant_stats(cp, "acme")["totals"]
    );
    let b = ha.replicas[1]
        .admin("GET", "/admin/tenants/acme/budget", None)
        .json();
    let spent = (b["spent_usd"].as_f64().unwrap() * 1e9).round() as u64;
    eprintln!(
        "two replicas: {answered} answered, {} refused, {spent} of {limit_nusd} n$ spent",
        100 - answered
    );
    assert!(spent <= limit_nusd, "spent {spent} n$ of {limit_nusd}: {b}");
    assert!(spent > limit_nusd / 2, "the budget was barely used: {b}");
}
