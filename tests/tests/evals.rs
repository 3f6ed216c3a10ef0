//! Tenant evals (control-plane/README.md, "Evals") through the real path:
//! the control plane sends each task through Envoy with the filter (the
//! tenant's virtual key, its own provider keys) to the mock providers, told
//! which answers to give: `gpt-4o-mini` solves the tenant's coding tasks and
//! fails its math, `claude-sonnet-5-5` the reverse, and a judge model
//! (`gpt-4o`, asked through the gateway too) passes only one model's polite
//! refusal. Applied, the scores move
//! that tenant's `auto` routing — a hard coding request goes to
//! `gpt-4o-mini`, a hard proof stays with `claude-sonnet-5-5` — and leave
//! every other tenant's as it was.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, Launch, Mock, TEST_MASTER_KEY, TempDir, assert_eventually,
    eventually, free_port, render_envoy_config,
};
use common::control_plane::{chat_as, tenant_with_own_keys};
use serde_json::{Value, json};

/// Classified `coding` at the frontier tier by the built-in router model.
const HARD_CODING: &str = "Implement a lock-free concurrent hash map in Rust with resizing, and prove its linearizability.";
/// Classified `math_reasoning` at the frontier tier.
const HARD_MATH: &str =
    "Prove that R(3,3,3) >= 17, then analyze the complexity of checking a colouring.";

/// The control plane with its gateway URL set to `listener_port`, then
/// Envoy on that port polling it.
fn stack() -> (ControlPlane, Mock, Envoy, TempDir) {
    let data = TempDir::new("evals-cp");
    let (listener_port, admin_port) = (free_port(), free_port());
    let cp = ControlPlane::launch(&Launch {
        db: data.path().join("aipipe.db"),
        admin_port: 0,
        internal_port: 0,
        admin_secret: "test-admin-secret-0123456789".into(),
        internal_token: "test-internal-token-0123456789".into(),
        master_key: Some(TEST_MASTER_KEY.into()),
        env: vec![(
            "AIPIPE_GATEWAY_URL".into(),
            format!("http://127.0.0.1:{listener_port}"),
        )],
    });
    cp.undate_catalog();
    let mock = Mock::start();
    let yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some("{}".into()),
            with_filter: true,
            control_plane: Some((cp.internal_port, cp.internal_token.clone())),
        },
    );
    let token = cp.internal_token.clone();
    let envoy = Envoy::start_with_env(
        &yaml,
        listener_port,
        admin_port,
        2,
        &[("AIPIPE_INTERNAL_TOKEN", token.as_str())],
    );
    (cp, mock, envoy, data)
}

fn task(id: &str, category: &str, prompt: &str, check: Value) -> Value {
    json!({"id": id, "category": category, "prompt": prompt, "check": check})
}

#[test]
fn an_applied_eval_moves_the_tenants_auto_routing_and_no_one_elses() {
    let (cp, mock, envoy, _data) = stack();
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    let other = tenant_with_own_keys(&cp, "globex", &["openai", "anthropic"]);
    let model_for = |key: &str, text: &str| {
        let r = chat_as(&envoy, key, &common::chat("auto", text));
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-aipipe-model").unwrap_or_default().to_owned()
    };
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&envoy, &key, &common::chat("auto", "hi")).status == 200,
        "acme never reached Envoy"
    );
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&envoy, &other, &common::chat("auto", "hi")).status == 200,
        "globex never reached Envoy"
    );
    // Before: both hard requests go to the frontier model, for both.
    for k in [&key, &other] {
        assert_eq!(model_for(k, HARD_CODING), "claude-sonnet-5-5");
        assert_eq!(model_for(k, HARD_MATH), "claude-sonnet-5-5");
    }

    // OpenAI's model (gpt-4o-mini) writes the code and fumbles the
    // arithmetic; Anthropic's (claude-sonnet-5-5) the reverse.
    let (add, reverse, product, json_sum) = (
        "Write a Python function add(a, b) that returns their sum.",
        "Write a Python one-liner that reverses a string s.",
        "What is 17 * 3? Reply with the number only.",
        "What is 40 + 2? Reply as JSON {\"answer\": n}.",
    );
    // The judge (gpt-4o) passes the polite refusal and nothing else; its
    // rules come first, as its prompt quotes the task.
    let decline = "Decline a meeting invitation politely.";
    mock.answers(json!([
        {"model": "gpt-4o", "contains": "Answer:\nI am sorry, I must decline", "answer": "PASS"},
        {"model": "gpt-4o", "contains": "Reply PASS or FAIL", "answer": "FAIL"},
        {"provider": "openai", "contains": "Decline a meeting", "answer": "I am sorry, I must decline."},
        {"provider": "anthropic", "contains": "Decline a meeting", "answer": "No."},
        {"provider": "openai", "contains": "add(a, b)", "answer": "def add(a, b):\n    return a + b"},
        {"provider": "anthropic", "contains": "add(a, b)", "answer": "I would rather not."},
        {"provider": "openai", "contains": "reverses a string", "answer": "s[::-1]"},
        {"provider": "anthropic", "contains": "reverses a string", "answer": "reversed(s)"},
        {"provider": "openai", "contains": "17 * 3", "answer": "50"},
        {"provider": "anthropic", "contains": "17 * 3", "answer": "51"},
        {"provider": "openai", "contains": "40 + 2", "answer": "{\"answer\": \"forty-two\"}"},
        {"provider": "anthropic", "contains": "40 + 2", "answer": "```json\n{\"answer\": 42}\n```"},
    ]));
    mock.clear_received();
    let suite = json!({
        "tenant_id": "acme", "virtual_key": key, "apply": true, "judge_model": "gpt-4o",
        "models": ["gpt-4o-mini", "claude-sonnet-5-5"],
        "tasks": [
            task("add", "coding", add, json!({"regex": "def add\\(a, b\\):\\s+return a \\+ b"})),
            task("reverse", "coding", reverse, json!({"contains": "[::-1]"})),
            task("product", "math_reasoning", product, json!({"exact": "51"})),
            task("json-sum", "math_reasoning", json_sum, json!({"json_schema": {
                "type": "object", "required": ["answer"],
                "properties": {"answer": {"type": "integer", "const": 42}}}})),
            task("decline", "chat", decline, json!({"judge": "politely declines"})),
        ]
    });
    let r = cp.admin("POST", "/admin/evals", Some(&suite));
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(!r.text().contains(&key), "the key is never answered");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let e = eventually(Duration::from_secs(60), || {
        let v = cp.admin("GET", &format!("/admin/evals/{id}"), None).json();
        (v["status"] != "running").then_some(v)
    })
    .expect("the eval never finished");
    assert_eq!(e["status"], "done", "{e}");
    assert!(!e.to_string().contains(&key), "nor stored");
    let score = |model: &str, category: &str| {
        e["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["model"] == model && s["category"] == category)
            .map(|s| s["score"].as_f64().unwrap())
            .unwrap_or_else(|| panic!("{model}/{category}: {e}"))
    };
    assert_eq!(score("gpt-4o-mini", "coding"), 1.0, "{e}");
    assert_eq!(score("gpt-4o-mini", "math_reasoning"), 0.0, "{e}");
    assert_eq!(score("claude-sonnet-5-5", "coding"), 0.0, "{e}");
    assert_eq!(score("claude-sonnet-5-5", "math_reasoning"), 1.0, "{e}");
    assert_eq!(
        score("gpt-4o-mini", "chat"),
        1.0,
        "the judge said PASS: {e}"
    );
    assert_eq!(
        score("claude-sonnet-5-5", "chat"),
        0.0,
        "the judge said FAIL: {e}"
    );
    for s in e["summary"].as_array().unwrap() {
        assert!(s["p50_latency_ms"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["errors"], 0, "{s}");
    }
    assert!(e["applied_ms"].is_u64(), "{e}");

    // It went through Envoy: each call (the judge's too) reached its
    // provider with acme's own key for it.
    let received = mock.received();
    assert_eq!(received.len(), 12, "5 tasks × 2 models, and 2 judge calls");
    let judged = received.iter().filter(|r| r["model"] == "gpt-4o").count();
    assert_eq!(judged, 2, "the judge model, by name");
    for r in &received {
        let auth = r["authorization"]
            .as_str()
            .or(r["x_api_key"].as_str())
            .unwrap_or("");
        assert!(
            auth.contains(&format!("sk-acme-{}", r["provider"].as_str().unwrap())),
            "{r}"
        );
    }

    // After: acme's hard coding goes to the model that solved its coding
    // tasks (once the policy reached Envoy); its hard math stays with the
    // one that solved its math. Globex routes as before.
    assert_eventually!(
        Duration::from_secs(20),
        model_for(&key, HARD_CODING) == "gpt-4o-mini",
        "acme's coding never moved: {}",
        model_for(&key, HARD_CODING)
    );
    assert_eq!(model_for(&key, HARD_MATH), "claude-sonnet-5-5");
    assert_eq!(model_for(&other, HARD_CODING), "claude-sonnet-5-5");
    assert_eq!(model_for(&other, HARD_MATH), "claude-sonnet-5-5");

    // The explain API says why: the quality each was ranked with.
    let explain = cp.admin(
        "POST",
        "/admin/route/explain",
        Some(&json!({"tenant": "acme", "request": common::chat("auto", HARD_CODING)})),
    );
    let v = explain.json();
    assert_eq!(v["router"]["category"], "coding", "{v}");
    let quality = |m: &str| {
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == m)
            .unwrap()["quality"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(quality("gpt-4o-mini"), 1.0);
    assert!((quality("claude-sonnet-5-5") - 0.05).abs() < 1e-9, "{v}");

    // Scoped to its tenant.
    assert_eq!(
        cp.admin("GET", &format!("/admin/tenants/globex/evals/{id}"), None)
            .status,
        404
    );
    let list = cp.admin("GET", "/admin/tenants/acme/evals", None).json();
    assert_eq!(list["evals"][0]["id"], id.as_str());
}
