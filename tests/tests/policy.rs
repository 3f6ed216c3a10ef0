//! Per-tenant policy (control-plane/README.md, "Policy") through real Envoy
//! and the control plane: a denied model is never used by `auto` and a
//! named request for it gets 403; an alias routes where it says and is
//! listed; `max_tier` caps auto routing; `substitute_named_models: false`
//! keeps a failing named model's request off other models; explain shows
//! what the policy did; bad policies change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::assert_eventually;
use common::control_plane::{CpStack, tenant_with_own_keys};
use serde_json::json;

const PROOF: &str = "Prove by induction that every tree with n vertices has n-1 edges, \
    then prove the handshake lemma rigorously and analyse the complexity of checking it.";

#[test]
fn a_policy_allows_denies_aliases_caps_and_keeps_named_models() {
    let s = CpStack::start();
    let key = tenant_with_own_keys(&s.cp, "acme", &["openai", "anthropic"]);
    let chat = |model: &str, text: &str| s.chat(&key, &common::chat(model, text));
    assert_eventually!(
        Duration::from_secs(20),
        chat("auto", "hi").status == 200,
        "the tenant never worked"
    );
    assert_eq!(
        chat("auto", "hi").header("x-aipipe-model"),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        chat("auto", PROOF).header("x-aipipe-model"),
        Some("claude-sonnet-5-5")
    );

    // Bad policies: refused, nothing stored.
    for bad in [
        json!({"deny_models": ["gpt-99"]}),
        json!({"allow_providers": ["nowhere"]}),
        json!({"aliases": {"fast": "gpt-99"}}),
        json!({"aliases": {"auto": "gpt-4o"}}),
        json!({"quality": {"gpt-4o": 2.0}}),
        json!({"max_tier": "huge"}),
        json!({"pin": "gpt-4o", "deny_models": ["gpt-4o"]}),
        json!({"nope": true}),
    ] {
        let r = s.cp.admin("PUT", "/admin/tenants/acme/policy", Some(&bad));
        assert!(
            r.status == 400 || r.status == 422,
            "{bad}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(
        s.cp.admin("GET", "/admin/tenants/acme/policy", None).status,
        404
    );

    let r = s.cp.admin(
        "PUT",
        "/admin/tenants/acme/policy",
        Some(&json!({"deny_models": ["gpt-4o"], "max_tier": "cheap",
            "aliases": {"fast": "claude-opus-4-5", "cheap-auto": {"auto": {"max_tier": "cheap"}}},
            "substitute_named_models": false})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(20),
        chat("gpt-4o", "hi").status == 403,
        "the policy never arrived: {}",
        chat("gpt-4o", "hi").text()
    );
    // Denied: 403 by name, never by auto.
    let r = chat("gpt-4o", "hi");
    assert_eq!(
        r.json()["error"]["code"],
        "model_not_allowed",
        "{}",
        r.text()
    );
    for text in [
        "hi",
        "translate hello to French",
        "review this code: fn f() {}",
        PROOF,
    ] {
        let r = chat("auto", text);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_ne!(r.header("x-aipipe-model"), Some("gpt-4o"));
    }
    // max_tier cheap: the proof no longer reaches the frontier model.
    assert_eq!(
        chat("auto", PROOF).header("x-aipipe-model"),
        Some("gpt-4o-mini")
    );
    // Aliases route where they say, and are listed.
    let r = chat("fast", "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("claude-opus-4-5"));
    assert_eq!(r.header("x-aipipe-route"), Some("explicit"));
    let r = chat("cheap-auto", PROOF);
    assert_eq!(r.status, 200, "{}", r.text());
    let models = aipipe_tests::get(
        &s.envoy.url("/v1/models"),
        &[("authorization", &format!("Bearer {key}"))],
    )
    .json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"fast") && ids.contains(&"cheap-auto"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"gpt-4o"), "a denied model listed: {ids:?}");

    // A named model failing: retried on itself, never another model.
    s.mock
        .fault(json!({"provider": "anthropic", "status": 503}));
    s.mock.clear_received();
    let r = chat("claude-opus-4-5", "hi");
    assert_eq!(r.status, 503, "{}", r.text());
    let got = s.mock.received();
    assert!(got.len() >= 2, "no retry: {got:?}");
    assert!(
        got.iter().all(|g| g["provider"] == "anthropic"),
        "another model was tried: {got:?}"
    );
    s.mock.clear_faults();

    // Explain shows the policy's effect.
    let v =
        s.cp.admin(
            "POST",
            "/admin/route/explain",
            Some(&json!({"tenant": "acme", "request": {"model": "auto",
                "messages": [{"role": "user", "content": PROOF}]}})),
        )
        .json();
    assert_eq!(v["policy"]["excluded"], json!(["gpt-4o"]), "{v}");
    assert_eq!(v["policy"]["max_tier"], "cheap");
    assert!(
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["model"] != "gpt-4o"),
        "{v}"
    );
    assert_eq!(v["choice"], "gpt-4o-mini", "{v}");

    // A model a policy names cannot be deleted.
    let r = s.cp.admin("DELETE", "/admin/models/gpt-4o", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("acme"));
    assert_eq!(
        s.cp.admin("DELETE", "/admin/tenants/acme/policy", None)
            .status,
        204
    );
    assert_eventually!(
        Duration::from_secs(20),
        chat("gpt-4o", "hi").status == 200,
        "removing the policy never arrived"
    );
}

/// `cache: {nondeterministic, ttl_ms}`: without it a request at the default
/// temperature is never cached; with it the same request is answered from
/// the cache (the provider not asked again) until the tenant's own
/// lifetime ends; another tenant's requests are untouched by it.
#[test]
fn a_policy_caches_nondeterministic_answers_for_its_own_lifetime() {
    let s = CpStack::start();
    let key = tenant_with_own_keys(&s.cp, "acme", &["openai", "anthropic"]);
    let other = tenant_with_own_keys(&s.cp, "other", &["openai", "anthropic"]);
    let warm = |k: &str| {
        assert_eventually!(
            Duration::from_secs(20),
            s.chat(k, &common::chat("gpt-4o-mini", "hi")).status == 200,
            "the tenant never worked"
        );
    };
    warm(&key);
    warm(&other);
    // No temperature: the providers' default, 1.
    let ask = |k: &str, text: &str| {
        let r = s.chat(k, &common::chat("gpt-4o-mini", text));
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-aipipe-cache").unwrap_or("").to_owned()
    };
    assert_eq!(ask(&key, "a poem"), "bypass");
    assert_eq!(ask(&key, "a poem"), "bypass");

    let r = s.cp.admin(
        "PUT",
        "/admin/tenants/acme/policy",
        Some(&json!({"cache": {"nondeterministic": true, "ttl_ms": 1500}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.cp.admin(
            "PUT",
            "/admin/tenants/acme/policy",
            Some(&json!({"cache": {"ttl_ms": 0}}))
        )
        .status,
        422
    );
    assert_eventually!(
        Duration::from_secs(20),
        ask(&key, "policy arrived?") == "miss",
        "the policy never arrived"
    );
    s.mock.clear_received();
    assert_eq!(ask(&key, "a story"), "miss");
    assert_eq!(ask(&key, "a story"), "hit");
    assert_eq!(s.mock.received().len(), 1, "a hit asked the provider");
    // Another tenant keeps the filter's rules.
    assert_eq!(ask(&other, "a story"), "bypass");
    // The tenant's lifetime, not the filter's 5 minutes.
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(ask(&key, "a story"), "miss");
}
