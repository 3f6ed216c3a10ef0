//! The tenant directory through real Envoy and the real control plane
//! (filter/README.md, "Tenant directory"): a change is pushed to a waiting
//! singleton and reaches every worker; an Envoy that was away catches up
//! from a snapshot; a restarted control plane resumes from the revision each
//! Envoy holds instead of sending everything again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use aipipe_tests::{ControlPlane, assert_eventually};
use common::chat;
use common::control_plane::{CpStack, envoy_polling, tenant_with_own_keys};

fn hello() -> serde_json::Value {
    chat("gpt-4o-mini", "hello")
}

/// Time until `ok` holds, polling every 2 ms, or None after 5 s.
fn time_until(mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if ok() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// A counter of the control plane's /metrics.
fn cp_metric(cp: &ControlPlane, name: &str) -> f64 {
    let text = cp.admin("GET", "/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

fn revoke_all(cp: &ControlPlane, tenant: &str) {
    let list = cp
        .admin(
            "GET",
            &format!("/admin/tenants/{tenant}/virtual-keys"),
            None,
        )
        .json();
    for k in list["virtual_keys"].as_array().unwrap() {
        let r = cp.admin(
            "DELETE",
            &format!(
                "/admin/tenants/{tenant}/virtual-keys/{}",
                k["id"].as_str().unwrap()
            ),
            None,
        );
        assert!(r.status < 300, "{}", r.text());
    }
}

#[test]
fn a_new_key_and_a_revocation_reach_every_worker_as_soon_as_they_commit() {
    let s = CpStack::start();
    let first = tenant_with_own_keys(&s.cp, "acme", &["openai"]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&first, &hello()).status == 200,
        "the first tenant never worked"
    );
    // Each new key answers 200 soon after its creation returned (pushed, not
    // polled: Envoy's poll interval is a second).
    let mut took = Vec::new();
    for i in 0..5 {
        let key = tenant_with_own_keys(&s.cp, &format!("t{i}"), &["openai"]);
        let t = time_until(|| s.chat(&key, &hello()).status == 200)
            .unwrap_or_else(|| panic!("tenant t{i}'s key never worked"));
        took.push(t);
    }
    eprintln!("a new key worked after {took:?}");
    // A revoked key is refused by every worker (two) after the push.
    revoke_all(&s.cp, "acme");
    let t = time_until(|| s.chat(&first, &hello()).status == 401)
        .expect("the revoked key still worked after 5 s");
    eprintln!("the revoked key was refused after {t:?}");
    for _ in 0..10 {
        assert_eq!(s.chat(&first, &hello()).status, 401);
    }
}

#[test]
fn an_envoy_away_catches_up_and_a_restarted_control_plane_resumes_by_revision() {
    let mut s = CpStack::start();
    let early = tenant_with_own_keys(&s.cp, "early", &["openai"]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&early, &hello()).status == 200,
        "the first tenant never worked"
    );

    // Envoy away through many changes: 40 new tenants, one revocation.
    s.envoy.process.stop();
    let keys: Vec<String> = (0..40)
        .map(|i| tenant_with_own_keys(&s.cp, &format!("away{i:02}"), &["openai", "anthropic"]))
        .collect();
    revoke_all(&s.cp, "early");
    // A new Envoy starts from a snapshot.
    s.envoy = envoy_polling(&s.mock, "{}", s.cp.internal_port, &s.cp.internal_token);
    assert_eventually!(
        Duration::from_secs(15),
        s.chat(keys.last().unwrap(), &hello()).status == 200,
        "the new Envoy never caught up"
    );
    for key in &keys {
        assert_eq!(s.chat(key, &hello()).status, 200);
    }
    assert_eq!(
        s.chat(&early, &hello()).status,
        401,
        "a revocation was lost"
    );

    // The control plane restarts (same database and ports) while the Envoy
    // waits on it: the singleton asks again from its revision, so what the
    // new process sends is the one change made after it, not the directory.
    let (admin, internal, data) = (s.cp.admin_port, s.cp.internal_port, s.cp.data.clone());
    s.cp.process.stop();
    s.cp = ControlPlane::start_on(data, admin, internal);
    let late = tenant_with_own_keys(&s.cp, "late", &["openai"]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&late, &hello()).status == 200,
        "a change after the restart never arrived"
    );
    let sent = cp_metric(&s.cp, "aipipe_cp_delta_bytes_total");
    eprintln!("the restarted control plane sent {sent} bytes of deltas");
    assert!(
        sent < 2_000.0,
        "{sent} bytes after a restart: the directory (40+ tenants) was sent again"
    );
    assert_eq!(s.chat(&keys[0], &hello()).status, 200);
    assert_eq!(s.chat(&early, &hello()).status, 401);
}
