//! The fleet-wide rate limits (envoy/ratelimit/README.md) through real
//! Envoy: two Envoys with the shipped rate-limit blocks share one rate-limit
//! service (`rls`, which speaks envoy.service.ratelimit.v3 and runs the
//! shipped envoyproxy/ratelimit config) and the real control plane. Of a
//! burst of three times the tenant's limit split between them, exactly the
//! limit is admitted in all; the rest get the project's 429 `rate_limited`
//! with `retry-after`. A virtual key's limit applies within its tenant's,
//! other tenants are untouched, a client cannot name whose counter moves,
//! and with the service down Envoy fails open (or, set to deny, answers 503
//! `rate_limit_unavailable`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, Mock, Process, Reply, eventually, free_port, get, post_json,
    render_envoy_config, repo_root, sibling_binary, with_fleet_rate_limits,
};
use serde_json::{Value, json};

const SERVICE_CONFIG: &str = "envoy/ratelimit/service-config.yaml";

/// The rate-limit test service on free ports, with the shipped config.
struct Rls {
    grpc_port: u16,
    admin_port: u16,
    _process: Process,
}

impl Rls {
    fn start() -> Self {
        let mut cmd = Command::new(sibling_binary("rls"));
        cmd.arg("--config").arg(repo_root().join(SERVICE_CONFIG));
        let process = Process::spawn("rls", cmd).unwrap();
        let ports = eventually(Duration::from_secs(20), || {
            let logs = process.logs();
            let line = logs.lines().find(|l| l.starts_with("rls listening on "))?;
            let mut words = line.split_whitespace();
            let port = |w: Option<&str>| w?.rsplit(':').next()?.parse::<u16>().ok();
            Some((port(words.nth(3))?, port(words.nth(1))?))
        })
        .unwrap_or_else(|| panic!("rls did not start:\n{}", process.logs()));
        Self {
            grpc_port: ports.0,
            admin_port: ports.1,
            _process: process,
        }
    }

    /// Every descriptor the service was asked about, and its hits.
    fn hits(&self) -> HashMap<String, u64> {
        let r = get(&format!("http://127.0.0.1:{}/hits", self.admin_port), &[]);
        assert_eq!(r.status, 200);
        serde_json::from_value(r.json()).unwrap()
    }

    fn reset(&self) {
        let r = aipipe_tests::request(
            "POST",
            &format!("http://127.0.0.1:{}/reset", self.admin_port),
            &[],
            None,
        );
        assert_eq!(r.status, 200);
    }
}

/// The demo tenant's limits in the shipped service config: (tenant, key)
/// requests per minute.
fn demo_limits() -> (usize, usize) {
    let text = std::fs::read_to_string(repo_root().join(SERVICE_CONFIG)).unwrap();
    let v: Value = serde_yaml_ng::from_str(&text).unwrap();
    let demo = v["descriptors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "tenant" && d["value"] == "demo")
        .unwrap();
    let per_minute = |d: &Value| {
        assert_eq!(d["rate_limit"]["unit"], "minute");
        d["rate_limit"]["requests_per_unit"].as_u64().unwrap() as usize
    };
    (per_minute(demo), per_minute(&demo["descriptors"][0]))
}

/// Envoy (two workers) as demo.yaml with the shipped rate-limit blocks, its
/// singleton polling the control plane (when given) and its rate-limit
/// filter asking the service on `rls_port`.
fn envoy_with_fleet_limits(
    mock: &Mock,
    cp: Option<&ControlPlane>,
    rls_port: u16,
    failure_mode_deny: bool,
) -> Envoy {
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: cp.map(|_| "{}".to_owned()),
            with_filter: true,
            control_plane: cp.map(|cp| (cp.internal_port, cp.internal_token.clone())),
        },
    );
    // Without a control plane, demo.yaml's own table, over the suite's
    // undated catalog (`aipipe_tests::undated_catalog`).
    let yaml = aipipe_tests::undate_bootstrap(&yaml);
    let yaml = with_fleet_rate_limits(&yaml, rls_port, failure_mode_deny);
    let env: Vec<(&str, &str)> = cp
        .map(|cp| ("AIPIPE_INTERNAL_TOKEN", cp.internal_token.as_str()))
        .into_iter()
        .collect();
    Envoy::start_with_env(&yaml, listener_port, admin_port, 2, &env)
}

/// Creates tenant `id` with an OpenAI key and `n` virtual keys: (key, key id).
fn tenant_with_keys(cp: &ControlPlane, id: &str, n: usize) -> Vec<(String, String)> {
    let r = cp.admin(
        "POST",
        "/admin/tenants",
        Some(&json!({"id": id, "name": id})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = cp.admin(
        "POST",
        &format!("/admin/tenants/{id}/keys"),
        Some(&json!({"openai": format!("sk-{id}")})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    (0..n)
        .map(|i| {
            let r = cp.admin(
                "POST",
                &format!("/admin/tenants/{id}/virtual-keys"),
                Some(&json!({"name": format!("k{i}")})),
            );
            assert_eq!(r.status, 201, "{}", r.text());
            let v = r.json();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn hi(i: usize) -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": format!("hello number {i}")}]})
}

fn chat(envoy: &Envoy, key: &str, i: usize, extra: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    post_json(&envoy.url("/v1/chat/completions"), &headers, &hi(i))
}

/// Sends every (envoy, key) request at once; the replies in order.
fn burst(requests: &[(&Envoy, &str)]) -> Vec<Reply> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, (envoy, key))| scope.spawn(move || chat(envoy, key, i, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every refusal is the project's 429 with a usable `retry-after`.
fn assert_refused_properly(replies: &[Reply]) {
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], "rate_limit_error", "{}", r.text());
        assert_eq!(e["code"], "rate_limited", "{}", r.text());
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "retry-after {retry}");
    }
}

fn admitted(replies: &[Reply]) -> usize {
    replies.iter().filter(|r| r.status == 200).count()
}

/// Sent upstream with the tenant's provider key.
fn forwarded(mock: &Mock, provider_key: &str) -> Vec<Value> {
    let want = format!("Bearer {provider_key}");
    mock.received()
        .into_iter()
        .filter(|r| r["authorization"] == want.as_str())
        .collect()
}

#[test]
fn a_tenants_limit_holds_across_two_envoys_and_a_keys_within_it() {
    let (tenant_limit, key_limit) = demo_limits();
    assert!(key_limit < tenant_limit);
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let rls = Rls::start();
    let envoys = [
        envoy_with_fleet_limits(&mock, Some(&cp), rls.grpc_port, false),
        envoy_with_fleet_limits(&mock, Some(&cp), rls.grpc_port, false),
    ];
    // Three times the tenant's limit, in bursts of at most a key's limit
    // per key: only the tenant's limit can refuse.
    let burst_size = 3 * tenant_limit;
    let keys = tenant_with_keys(&cp, "demo", burst_size.div_ceil(key_limit) + 1);
    let other = tenant_with_keys(&cp, "acme", 1);
    // Every key served by both Envoys (GET /v1/models asks no limit).
    for envoy in &envoys {
        for (key, _) in keys.iter().chain(&other) {
            aipipe_tests::assert_eventually!(
                Duration::from_secs(20),
                get(
                    &envoy.url("/v1/models"),
                    &[("authorization", &format!("Bearer {key}"))]
                )
                .status
                    == 200,
                "the key never served"
            );
        }
    }
    assert!(rls.hits().is_empty(), "nothing counted yet");

    // The tenant's limit, across the fleet.
    let requests: Vec<(&Envoy, &str)> = (0..burst_size)
        .map(|i| (&envoys[i % 2], keys[i / key_limit].0.as_str()))
        .collect();
    let replies = burst(&requests);
    assert_eq!(
        admitted(&replies),
        tenant_limit,
        "exactly the limit, in all"
    );
    assert_refused_properly(&replies);
    let per_envoy: Vec<usize> = (0..2)
        .map(|e| admitted(&replies[e..].iter().step_by(2).cloned().collect::<Vec<_>>()))
        .collect();
    assert!(
        per_envoy.iter().all(|&n| n < tenant_limit),
        "both Envoys admitted some: {per_envoy:?}"
    );
    assert_eq!(
        forwarded(&mock, "sk-demo").len(),
        tenant_limit,
        "no refused request reached a provider (none failed over)"
    );
    let hits = rls.hits();
    assert_eq!(hits["tenant=demo"], burst_size as u64);
    for (_, id) in &keys[..burst_size / key_limit] {
        assert_eq!(hits[&format!("tenant=demo,key={id}")], key_limit as u64);
    }
    // Another tenant is untouched by the demo tenant's refusals.
    assert_eq!(chat(&envoys[0], &other[0].0, 0, &[]).status, 200);
    assert_eq!(chat(&envoys[1], &other[0].0, 1, &[]).status, 200);

    // A key's limit within its tenant's: one key's burst of twice its
    // limit, split between the Envoys, gets exactly its limit.
    rls.reset();
    let key = keys.last().unwrap();
    let requests: Vec<(&Envoy, &str)> = (0..2 * key_limit)
        .map(|i| (&envoys[i % 2], key.0.as_str()))
        .collect();
    let replies = burst(&requests);
    assert_eq!(admitted(&replies), key_limit);
    assert_refused_properly(&replies);
    let hits = rls.hits();
    assert_eq!(
        hits[&format!("tenant=demo,key={}", key.1)],
        2 * key_limit as u64
    );

    // A client naming another tenant or key moves only its own counters,
    // and no provider ever sees the descriptor headers.
    rls.reset();
    let spoofed = [
        ("x-aipipe-rl-tenant", "acme"),
        ("x-aipipe-rl-key", other[0].1.as_str()),
    ];
    assert_eq!(chat(&envoys[0], &keys[0].0, 0, &spoofed).status, 200);
    let hits = rls.hits();
    let want: HashMap<String, u64> = [
        ("tenant=demo".to_owned(), 1),
        (format!("tenant=demo,key={}", keys[0].1), 1),
    ]
    .into();
    assert_eq!(hits, want);
    for r in mock.received() {
        assert_eq!(r["internal_headers"], json!([]), "{r}");
    }
}

#[test]
fn with_the_service_down_envoy_fails_open_or_when_set_to_deny_answers_503() {
    // The bootstrap table's demo tenant and key; no service on this port.
    let mock = Mock::start();
    let down = free_port();
    let open = envoy_with_fleet_limits(&mock, None, down, false);
    let deny = envoy_with_fleet_limits(&mock, None, down, true);
    let (tenant_limit, _) = demo_limits();
    for i in 0..tenant_limit + 5 {
        let r = chat(&open, "aipipe-demo-key", i, &[]);
        assert_eq!(
            r.status,
            200,
            "fail-open admits past the limit: {}",
            r.text()
        );
    }
    let allowed: u64 = open
        .stats_text("ratelimit.failure_mode_allowed")
        .lines()
        .filter_map(|l| l.rsplit(": ").next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(allowed, (tenant_limit + 5) as u64, "counted by Envoy");
    mock.clear_received();

    let r = chat(&deny, "aipipe-demo-key", 0, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limit_unavailable");
    assert!(r.header("x-aipipe-request-id").is_some());
    assert!(mock.received().is_empty(), "no provider was asked");
    // An Anthropic client gets Anthropic's error shape.
    let r = post_json(
        &deny.url("/v1/messages"),
        &[("x-api-key", "aipipe-demo-key")],
        &json!({"model": "auto", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    assert!(mock.received().is_empty());
}
