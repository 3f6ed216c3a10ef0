//! `/metrics` and `GET /admin/envoys` driven in-process (`oneshot`, no
//! socket) on a fresh SQLite file per test (control-plane/README.md,
//! "Metrics"): latency and TTFT histograms and outcome counters from each
//! newly stored usage record, the ingest queue and batch latency, budget
//! gauges, and each Envoy's usage queue as its batches report it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_control_plane::{admin_app, internal_app};
use aipipe_core::contract::{TOKEN_HEADER, USAGE_PATH};
use aipipe_core::usage::UsageRecord;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, Harness, TOKEN, harness_named};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn harness() -> Harness {
    harness_named("metrics", None).await
}

async fn send(
    app: Router,
    method: Method,
    uri: &str,
    header: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header.0, header.1)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

impl Harness {
    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, String) {
        send(
            admin_app(self.state.clone()),
            method,
            uri,
            ("x-admin-secret", ADMIN),
            body,
        )
        .await
    }

    async fn upload(&self, body: Value) -> (StatusCode, String) {
        send(
            internal_app(self.state.clone()),
            Method::POST,
            USAGE_PATH,
            (TOKEN_HEADER, TOKEN),
            Some(body),
        )
        .await
    }

    async fn metrics(&self) -> String {
        let (s, text) = self.admin(Method::GET, "/metrics", None).await;
        assert_eq!(s, StatusCode::OK);
        text
    }

    async fn envoys(&self) -> Value {
        let (s, text) = self.admin(Method::GET, "/admin/envoys", None).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        serde_json::from_str(&text).unwrap()
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    model: &str,
    status: u16,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    cache_hit: bool,
) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        tenant: "acme".into(),
        provider: "openai".into(),
        model: model.into(),
        status,
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cost_nusd: if cache_hit { 0 } else { 250_000_000 },
        latency_ms,
        ttft_ms,
        complexity: None,
        stream: false,
        usage_parsed: status < 400,
        ts_ms: aipipe_control_plane::db::now_ms(),
        failed_attempts: Vec::new(),
        cache_hit,
        estimated: false,
        key_tag: None,
        reserved_nusd: None,
        virtual_key: None,
        key_reserved_nusd: None,
        router_features: None,
    }
}

/// The sample line of `series` (name and labels, as written), parsed.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn stored_records_make_latency_and_ttft_histograms_and_outcome_counters() {
    let h = harness().await;
    h.admin(
        Method::POST,
        "/admin/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    let records = vec![
        record("a", "gpt-4o-mini", 200, 300.0, Some(100.0), false),
        record("b", "gpt-4o-mini", 200, 2500.0, Some(700.0), false),
        record("c", "gpt-4o-mini", 429, 50.0, Some(40.0), false),
        record("d", "gpt-4o-mini", 502, 90.0, None, false),
        record("e", "gpt-4o-mini", 200, 1.0, Some(1.0), true),
        record("f", "gpt-4o", 200, 1.0, Some(1.0), true),
    ];
    let (s, ack) = h.upload(json!({"records": records})).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    // A retry of the same batch stores nothing new and observes nothing.
    let (s, _) = h.upload(json!({"records": records})).await;
    assert_eq!(s, StatusCode::OK);

    let m = h.metrics().await;
    let l = r#"{provider="openai",model="gpt-4o-mini""#;
    let at = |name: &str, more: &str| sample(&m, &format!("{name}{l}{more}}}"));
    // Latency: every answer a provider gave (not the cache hit), in seconds.
    assert_eq!(
        at("aipipe_cp_request_duration_seconds_count", ""),
        Some(4.0),
        "{m}"
    );
    let close = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
    assert!(
        close(at("aipipe_cp_request_duration_seconds_sum", ""), 2.94),
        "{m}"
    );
    assert_eq!(
        at("aipipe_cp_request_duration_seconds_bucket", r#",le="0.1""#),
        Some(2.0)
    );
    assert_eq!(
        at("aipipe_cp_request_duration_seconds_bucket", r#",le="2.5""#),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        at("aipipe_cp_request_duration_seconds_bucket", r#",le="600""#),
        Some(4.0),
        "{m}"
    );
    // TTFT: answers that succeeded.
    assert_eq!(
        at("aipipe_cp_time_to_first_token_seconds_count", ""),
        Some(2.0),
        "{m}"
    );
    assert!(close(
        at("aipipe_cp_time_to_first_token_seconds_sum", ""),
        0.8
    ));
    for (outcome, n) in [
        ("ok", 2.0),
        ("client_error", 1.0),
        ("server_error", 1.0),
        ("cache_hit", 1.0),
    ] {
        assert_eq!(
            at(
                "aipipe_cp_request_outcomes_total",
                &format!(r#",outcome="{outcome}""#)
            ),
            Some(n),
            "{outcome}\n{m}"
        );
    }
    // A model only the cache answered has outcomes, no latency series.
    assert_eq!(
        sample(
            &m,
            r#"aipipe_cp_request_outcomes_total{provider="openai",model="gpt-4o",outcome="cache_hit"}"#
        ),
        Some(1.0)
    );
    assert!(
        !m.contains(r#"seconds_count{provider="openai",model="gpt-4o"}"#),
        "{m}"
    );
    // Two batches went through the ingest queue, which is empty again.
    assert_eq!(
        sample(&m, "aipipe_cp_ingest_batch_duration_seconds_count"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(sample(&m, "aipipe_cp_ingest_queue_depth"), Some(0.0));
}

#[tokio::test]
async fn a_tenants_own_budget_is_two_gauges_read_at_scrape_time() {
    let h = harness().await;
    h.admin(
        Method::POST,
        "/admin/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    h.admin(
        Method::POST,
        "/admin/tenants",
        Some(json!({"id": "beta", "name": "Beta"})),
    )
    .await;
    let (s, body) = h
        .admin(
            Method::PUT,
            "/admin/tenants/acme/budget",
            Some(json!({"limit_usd": 10, "days": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let m = h.metrics().await;
    assert_eq!(
        sample(&m, r#"aipipe_cp_budget_limit_usd{tenant="acme"}"#),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"aipipe_cp_budget_spent_usd{tenant="acme"}"#),
        Some(0.0)
    );
    assert!(
        !m.contains(r#"tenant="beta""#),
        "no budget of its own, no gauge: {m}"
    );

    let (s, _) = h
        .upload(json!({"records": [record("a", "gpt-4o-mini", 200, 1.0, None, false), record("b", "gpt-4o", 200, 1.0, None, false)]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = h.metrics().await;
    assert_eq!(
        sample(&m, r#"aipipe_cp_budget_spent_usd{tenant="acme"}"#),
        Some(0.5),
        "{m}"
    );
    let (_, budget) = h
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    let budget: Value = serde_json::from_str(&budget).unwrap();
    assert_eq!(budget["spent_usd"], 0.5, "the same as the budget API says");
}

#[tokio::test]
async fn each_envoy_reports_its_usage_queue_with_its_batches() {
    let h = harness().await;
    h.admin(
        Method::POST,
        "/admin/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(h.envoys().await, json!({"envoys": []}));
    let batch = |ids: &[&str], node: &str, queued: u64, sent: u64| {
        json!({
            "records": ids.iter().map(|id| record(id, "gpt-4o-mini", 200, 1.0, None, false)).collect::<Vec<_>>(),
            "source": {"node": node, "queued": queued, "dropped": 3, "sent": sent},
        })
    };
    let (s, ack) = h.upload(batch(&["a", "b"], "edge-1", 7, 40)).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    let (s, _) = h
        .upload(batch(
            &["c"],
            "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local",
            0,
            0,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    // A batch without a source (a filter from before) is stored as ever.
    let (s, _) = h
        .upload(json!({"records": [record("d", "gpt-4o-mini", 200, 1.0, None, false)]}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let v = h.envoys().await;
    let all = v["envoys"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{v}");
    // Acknowledged: `sent` counts the batch it came with.
    assert_eq!(
        (
            &all[0]["node"],
            &all[0]["queued"],
            &all[0]["dropped"],
            &all[0]["sent"]
        ),
        (&json!("edge-1"), &json!(7), &json!(3), &json!(42)),
        "{v}"
    );
    assert!(all[0]["last_seen_ms"].as_u64().unwrap() > 0);
    assert_eq!(all[1]["sent"], 1);
    let m = h.metrics().await;
    assert_eq!(
        sample(&m, r#"aipipe_cp_envoy_usage_queued{node="edge-1"}"#),
        Some(7.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"aipipe_cp_envoy_usage_dropped{node="edge-1"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, r#"aipipe_cp_envoy_usage_sent{node="edge-1"}"#),
        Some(42.0)
    );

    // A source that is not valid is ignored, never the records with it.
    for (i, node) in ["", "a b", "x\"y", &"n".repeat(129)].iter().enumerate() {
        let (s, ack) = h.upload(batch(&[&format!("e{i}")], node, 1, 1)).await;
        assert_eq!(s, StatusCode::OK, "{ack}");
        assert!(ack.contains("\"accepted\":1"), "{ack}");
    }
    assert_eq!(h.envoys().await["envoys"].as_array().unwrap().len(), 2);
    let (_, stats) = h
        .admin(Method::GET, "/admin/tenants/acme/stats", None)
        .await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["totals"]["requests"], 8, "{stats}");
    // Unknown fields in a source are a malformed batch, like anywhere else.
    let (s, body) = h
        .upload(json!({"records": [], "source": {"node": "n", "queued": 0, "dropped": 0, "sent": 0, "x": 1}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // The list needs the admin secret.
    let (s, _) = send(
        admin_app(h.state.clone()),
        Method::GET,
        "/admin/envoys",
        ("x-admin-secret", "wrong"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
