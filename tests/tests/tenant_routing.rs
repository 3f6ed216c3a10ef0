//! Per-tenant routing (control-plane/README.md, "Per-tenant routing")
//! through real Envoy and the control plane: fifty labelled requests of a
//! pattern the global router model gets wrong — short contract-drafting
//! requests that this tenant calls frontier work — imported as examples, or
//! sent as ratings of routed answers (`POST /v1/feedback`), change that
//! tenant's routing of new, unseen requests of the pattern, and no other
//! tenant's, nor its own routing of other kinds of request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{Reply, assert_eventually, post_json};
use common::control_plane::{CpStack, tenant_with_own_keys};
use serde_json::{Value, json};

const UNSEEN: [&str; 3] = [
    "draft a warranty clause for a furniture maker",
    "draft a late-payment clause for a printer",
    "draft a data-protection clause for a payroll provider",
];

const OTHERS: [&str; 10] = [
    "hi there",
    "what is the capital of France?",
    "translate 'good morning' to Spanish",
    "write a haiku about autumn",
    "how do I reverse a list in Python?",
    "thanks, that helped",
    "prove that the square root of 2 is irrational",
    "what does HTTP stand for?",
    "design a database schema for a library with loans and fines",
    "draft a tweet about our product launch",
];

/// The tenant's fifty drafting requests.
fn drafting() -> Vec<String> {
    let parties = [
        "a freelance designer",
        "our new CTO",
        "a cleaning company",
        "a summer intern",
        "a software vendor",
        "a landlord",
        "a marketing agency",
        "a consultant",
        "a delivery partner",
        "a photographer",
    ];
    let clauses = [
        "a confidentiality clause",
        "an NDA clause",
        "a termination clause",
        "an indemnity clause",
        "a non-solicitation clause",
    ];
    parties
        .iter()
        .flat_map(|p| clauses.iter().map(move |c| format!("draft {c} for {p}")))
        .collect()
}

fn complexity(r: &Reply) -> f64 {
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-aipipe-complexity")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no complexity header: {r:?}"))
}

/// The tier a complexity routes at (filter/README.md, "Model selection").
fn tier(c: f64) -> &'static str {
    if c < 0.55 {
        "cheap"
    } else if c < 0.70 {
        "mid"
    } else {
        "frontier"
    }
}

fn complexities(s: &CpStack, key: &str, texts: &[&str]) -> Vec<f64> {
    texts
        .iter()
        .map(|t| complexity(&s.chat(key, &common::chat("auto", t))))
        .collect()
}

/// The router's tier probabilities (cheap, mid, frontier) for a tenant's
/// request, from the explain API (the model the filter scores with).
fn tier_probs(s: &CpStack, tenant: &str, text: &str) -> [f64; 3] {
    let r = s.cp.admin(
        "POST",
        "/admin/route/explain",
        Some(&json!({"tenant": tenant, "request": common::chat("auto", text)})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let p = &r.json()["router"]["tier_probabilities"];
    ["cheap", "mid", "frontier"].map(|t| p[t].as_f64().unwrap())
}

fn two_tenants(s: &CpStack) -> (String, String) {
    let acme = tenant_with_own_keys(&s.cp, "acme", &["openai", "anthropic"]);
    let other = tenant_with_own_keys(&s.cp, "other", &["openai", "anthropic"]);
    for key in [&acme, &other] {
        assert_eventually!(
            Duration::from_secs(20),
            s.chat(key, &common::chat("auto", "hi")).status == 200,
            "a tenant never worked"
        );
    }
    (acme, other)
}

#[test]
fn imported_examples_move_a_tenants_pattern_and_nobody_elses() {
    let s = CpStack::start();
    let (acme, other) = two_tenants(&s);
    let before = complexities(&s, &acme, &UNSEEN);
    assert!(
        before.iter().any(|&c| c < 0.70),
        "the global model already sends these to the frontier: {before:?}"
    );
    assert_eq!(complexities(&s, &other, &UNSEEN), before);
    let others_before = complexities(&s, &acme, &OTHERS);
    let probs_before: Vec<[f64; 3]> = OTHERS.iter().map(|t| tier_probs(&s, "acme", t)).collect();

    // Bad imports change nothing.
    let example = |text: &str| json!({"request": common::chat("auto", text), "tier": "frontier"});
    for (bad, status) in [
        (
            json!([{"request": common::chat("auto", "x"), "tier": "huge"}]),
            422,
        ),
        (
            json!([example("x"), {"request": common::chat("auto", "y"), "tier": "mid", "category": "poetry"}]),
            422,
        ),
        (json!([{"request": {"messages": "no"}, "tier": "mid"}]), 422),
        (json!([]), 422),
        (json!([{"request": {}, "tier": "mid", "why": 1}]), 422),
    ] {
        let r =
            s.cp.admin("POST", "/admin/tenants/acme/routing/examples", Some(&bad));
        assert_eq!(r.status, status, "{bad}: {}", r.text());
    }
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/nobody/routing/examples",
        Some(&json!([example("x")])),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let state =
        s.cp.admin("GET", "/admin/tenants/acme/routing", None)
            .json();
    assert_eq!(state["examples"], 0, "{state}");
    assert!(state["router"].is_null(), "{state}");

    // Fifty examples: fitted and shipped at once.
    let examples: Vec<Value> = drafting()
        .iter()
        .map(|t| json!({"request": common::chat("auto", t), "tier": "frontier", "category": "creative"}))
        .collect();
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/routing/examples",
        Some(&Value::Array(examples)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["added"].as_u64(), v["examples"].as_u64()),
        (Some(50), Some(50)),
        "{v}"
    );
    let router = &v["routing"]["router"];
    assert_eq!(router["examples"], 50, "{v}");
    // Rows only for the tenant's own features: a small directory entry.
    let rows = router["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < 1000, "{v}");
    assert!(router["bytes"].as_u64().unwrap() < 64 * 1024, "{v}");

    assert_eventually!(
        Duration::from_secs(20),
        complexities(&s, &acme, &UNSEEN).iter().all(|&c| c >= 0.70),
        "the tenant's unseen drafting requests never reached the frontier tier: {:?}",
        complexities(&s, &acme, &UNSEEN)
    );
    // Nobody else moved; nor did the tenant's other kinds of request.
    assert_eq!(complexities(&s, &other, &UNSEEN), before);
    let others_after = complexities(&s, &acme, &OTHERS);
    // The tenant's other kinds of request keep their probabilities (the
    // pattern's own move is far larger) and so their tier — except one the
    // global model holds at a tie, which any push decides (round 22's
    // model puts "design a database schema for a library with loans and
    // fines" at 0.35 / 0.31 / 0.34; filter/README.md, "Round 22").
    for (i, t) in OTHERS.iter().enumerate() {
        let (b, a) = (others_before[i], others_after[i]);
        let (pb, pa) = (probs_before[i], tier_probs(&s, "acme", t));
        let moved = pb
            .iter()
            .zip(&pa)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(moved <= 0.1, "{t}: {pb:?} -> {pa:?}");
        let mut sorted = pb;
        sorted.sort_by(f64::total_cmp);
        if sorted[2] - sorted[1] >= 0.1 {
            assert_eq!(tier(b), tier(a), "{t}: {b} -> {a}");
        }
    }
    // Explain says whose model scored.
    let explain = |tenant: &str| {
        let r = s.cp.admin(
            "POST",
            "/admin/route/explain",
            Some(&json!({"tenant": tenant, "request": common::chat("auto", UNSEEN[0])})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    assert_eq!(explain("acme")["router"]["model"], "tenant");
    assert_ne!(explain("other")["router"]["model"], "tenant");

    // Forgotten: back to the global model.
    let r =
        s.cp.admin("DELETE", "/admin/tenants/acme/routing/examples", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(20),
        complexities(&s, &acme, &UNSEEN) == before,
        "the correction never left: {:?}",
        complexities(&s, &acme, &UNSEEN)
    );
}

fn feedback(s: &CpStack, key: &str, body: &Value) -> Reply {
    post_json(
        &s.envoy.url("/v1/feedback"),
        &[("authorization", &format!("Bearer {key}"))],
        body,
    )
}

#[test]
fn ratings_of_routed_answers_teach_that_tenants_router() {
    let s = CpStack::start();
    let (acme, other) = two_tenants(&s);
    let r = s.cp.admin(
        "PUT",
        "/admin/tenants/acme/policy",
        Some(&json!({"learning": {"feedback": true}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let before = complexities(&s, &other, &UNSEEN);
    assert!(before.iter().any(|&c| c < 0.70), "{before:?}");

    // The policy may take a moment to reach Envoy: until then records carry
    // no features.
    assert_eventually!(
        Duration::from_secs(30),
        {
            assert_eq!(s.chat(&acme, &common::chat("auto", "hi")).status, 200);
            std::thread::sleep(Duration::from_millis(500));
            s.cp.admin("GET", "/admin/tenants/acme/routing", None)
                .json()["features_kept"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
        "records never carried the router's features"
    );
    let ids: Vec<String> = drafting()
        .iter()
        .map(|t| {
            let r = s.chat(&acme, &common::chat("auto", t));
            assert_eq!(r.status, 200, "{}", r.text());
            r.header("x-aipipe-request-id").unwrap().to_owned()
        })
        .collect();

    // Bad ratings: refused.
    for (bad, status) in [
        (json!({"request_id": ids[0], "rating": "meh"}), 422),
        (
            json!({"request_id": ids[0], "rating": "bad", "tier": "huge"}),
            422,
        ),
        (json!({"request_id": "", "rating": "bad"}), 422),
        (json!({"request_id": ids[0]}), 422),
    ] {
        let r = feedback(&s, &acme, &bad);
        assert_eq!(r.status, status, "{bad}: {}", r.text());
    }
    assert_eq!(
        feedback(
            &s,
            "vk-nobody",
            &json!({"request_id": ids[0], "rating": "bad"})
        )
        .status,
        401
    );
    // Another tenant rating acme's requests teaches nobody.
    let r = feedback(
        &s,
        &other,
        &json!({"request_id": ids[0], "rating": "bad", "tier": "frontier"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["learns"], false);

    // Fifty ratings: these answers needed the frontier tier (their usage
    // records arrive within a second or two; a rating that comes first
    // waits for its record).
    for id in &ids {
        let r = feedback(
            &s,
            &acme,
            &json!({"request_id": id, "rating": "bad", "tier": "frontier"}),
        );
        assert_eq!(r.status, 202, "{}", r.text());
    }
    assert_eventually!(
        Duration::from_secs(30),
        s.cp.admin("GET", "/admin/tenants/acme/routing", None)
            .json()["router"]["examples"]
            .as_u64()
            .unwrap_or(0)
            >= 50,
        "the ratings never made a router: {}",
        s.cp.admin("GET", "/admin/tenants/acme/routing", None)
            .text()
    );
    assert_eventually!(
        Duration::from_secs(20),
        complexities(&s, &acme, &UNSEEN).iter().all(|&c| c >= 0.70),
        "the tenant's unseen drafting requests never reached the frontier tier: {:?}",
        complexities(&s, &acme, &UNSEEN)
    );
    assert_eq!(complexities(&s, &other, &UNSEEN), before);
    let r =
        s.cp.admin("GET", "/admin/tenants/other/routing", None)
            .json();
    assert!(r["router"].is_null(), "{r}");

    // Feedback is POST only.
    let r = aipipe_tests::get(
        &s.envoy.url("/v1/feedback"),
        &[("authorization", &format!("Bearer {acme}"))],
    );
    assert_eq!(r.status, 400, "{}", r.text());
}
