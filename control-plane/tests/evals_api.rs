//! Tenant evals (control-plane/README.md, "Evals") through the admin API
//! in-process, against a stand-in gateway on loopback that answers like
//! Envoy with the filter (`x-aipipe-model`, OpenAI bodies): validation
//! before anything is stored, the run, scores, the judge, failover and
//! error calls, applying the figures to the policy (and explain using them),
//! tenant scoping, and the key kept out of everything stored or answered.
//! The real path (Envoy, the filter, the mock providers) is
//! tests/tests/evals.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aipipe_control_plane::admin_app;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{ADMIN, Harness, harness_named};

const MATH: &str =
    "Prove that R(3,3,3) >= 17, then analyze the complexity of checking a colouring.";

async fn admin(
    h: &Harness,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-admin-secret", ADMIN)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |v| Body::from(v.to_string())))
        .unwrap();
    let resp = admin_app(h.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&b).into_owned();
    (
        status,
        serde_json::from_slice(&b).unwrap_or(Value::Null),
        text,
    )
}

/// A tenant with OpenAI and Anthropic keys and a virtual key; returns it.
async fn tenant(h: &Harness, id: &str) -> String {
    let (s, v, _) = admin(
        h,
        Method::POST,
        "/admin/tenants",
        Some(json!({"id": id, "name": id})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let keys = json!({"openai": format!("sk-{id}-o"), "anthropic": format!("sk-{id}-a")});
    let (s, v, _) = admin(
        h,
        Method::POST,
        &format!("/admin/tenants/{id}/keys"),
        Some(keys),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = admin(
        h,
        Method::POST,
        &format!("/admin/tenants/{id}/virtual-keys"),
        Some(json!({"name": "evals"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["key"].as_str().unwrap().to_owned()
}

/// What the stand-in gateway saw: (authorization, cache-control, body).
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A gateway stand-in: `gpt-4o-mini` solves what mentions "2+2" and fails
/// the rest, `claude-opus-4-5` the reverse, except that a prompt with
/// "failover" is answered by another model and one with "boom" gets a 503;
/// the judge `gpt-4o` says PASS when the answer it is shown says "Paris".
async fn gateway(key: String) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (log, key) = (log.clone(), key.clone());
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|x| x.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                log.lock()
                    .unwrap()
                    .push((h("authorization"), h("cache-control"), v.clone()));
                if h("authorization") != format!("Bearer {key}") {
                    return answer(401, "gpt-4o-mini", "Invalid API key");
                }
                let model = v["model"].as_str().unwrap_or("").to_owned();
                let last = v["messages"].as_array().unwrap().last().unwrap()["content"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                if last.contains("boom") {
                    return answer(503, &model, "upstream_failed");
                }
                if last.contains("failover") {
                    return answer(200, "gpt-4o", "whatever");
                }
                let text = match model.as_str() {
                    "gpt-4o" => if last.contains("Answer:\nParis") {
                        "PASS"
                    } else {
                        "FAIL"
                    }
                    .to_owned(),
                    "gpt-4o-mini" if last.contains("2+2") => "{\"answer\": 4}".to_owned(),
                    "gpt-4o-mini" => "no idea".to_owned(),
                    _ if last.contains("2+2") => "five".to_owned(),
                    _ => "Paris. QED, by induction.".to_owned(),
                };
                answer(200, &model, &text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn answer(status: u16, model: &str, text: &str) -> axum::response::Response {
    let body = if status == 200 {
        json!({"choices": [{"message": {"role": "assistant", "content": text}}]})
    } else {
        json!({"error": {"message": text}})
    };
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-aipipe-model", model)
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn finished(h: &Harness, id: &str) -> Value {
    for _ in 0..200 {
        let (s, v, _) = admin(h, Method::GET, &format!("/admin/evals/{id}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("eval {id} never finished");
}

/// As `finished`, for an eval asked to apply its figures: they are applied
/// (or refused) after the eval is recorded done, so wait for that too.
async fn applied(h: &Harness, id: &str) -> Value {
    for _ in 0..200 {
        let v = finished(h, id).await;
        if v["status"] != "done" || v["applied_ms"].is_u64() || !v["apply_error"].is_null() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("eval {id} was never applied");
}

fn suite(key: &str) -> Value {
    json!({
        "tenant_id": "acme", "virtual_key": key,
        "models": ["gpt-4o-mini", "claude-opus-4-5"], "judge_model": "gpt-4o",
        "tasks": [
            {"id": "add", "category": "math_reasoning", "prompt": "What is 2+2? Answer as JSON.",
             "check": {"json_schema": {"type": "object", "required": ["answer"],
                                       "properties": {"answer": {"const": 4}}}}},
            {"id": "add-exact", "category": "math_reasoning", "max_tokens": 20,
             "messages": [{"role": "system", "content": "JSON only"}, {"role": "user", "content": "2+2 as {\"answer\": n}"}],
             "check": {"exact": "{\"answer\": 4}"}},
            {"id": "capital", "category": "factual_qa", "prompt": "Capital of France?",
             "check": {"judge": "names Paris"}},
            {"id": "proof", "category": "factual_qa", "prompt": MATH, "check": {"regex": "QED"}},
            {"id": "flaky", "category": "chat", "prompt": "boom", "check": {"contains": "x"}},
            {"id": "moved", "category": "chat", "prompt": "failover", "check": {"contains": "x"}},
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_scores_models_per_category_and_applies_them_to_the_tenants_routing() {
    let h = harness_named("evals", None).await;
    let key = tenant(&h, "acme").await;
    let other_key = tenant(&h, "globex").await;
    let (url, seen) = gateway(key.clone()).await;
    h.state.evals.set_gateway_url(&url);

    // Before: hard math goes to the frontier model for both tenants.
    let explain = |t: &str| json!({"tenant": t, "request": {"messages": [{"role": "user", "content": MATH}]}});
    let (_, before, _) = admin(
        &h,
        Method::POST,
        "/admin/route/explain",
        Some(explain("acme")),
    )
    .await;
    assert_eq!(before["router"]["category"], "math_reasoning", "{before}");
    assert_ne!(before["choice"], "gpt-4o-mini", "{before}");

    let mut body = suite(&key);
    body["apply"] = json!(true);
    let (s, v, text) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert!(!text.contains(&key), "the key is never answered");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ev_"));
    let e = applied(&h, &id).await;
    assert_eq!(e["status"], "done", "{e}");
    assert!(!e.to_string().contains(&key), "nor stored");

    // Every task against every model, with the key, uncached, by name.
    let calls = seen.lock().unwrap().clone();
    let model_calls: Vec<_> = calls
        .iter()
        .filter(|(_, _, b)| b["max_tokens"] != 8)
        .collect();
    assert_eq!(model_calls.len(), 12);
    for (auth, cache, b) in &calls {
        assert_eq!(auth, &format!("Bearer {key}"));
        assert_eq!(cache, "no-store");
        assert_eq!(b["temperature"], 0);
    }
    assert!(model_calls.iter().any(|(_, _, b)| b["max_tokens"] == 20));

    let result = |task: &str, model: &str| {
        e["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["task"] == task && r["model"] == model)
            .unwrap_or_else(|| panic!("{task}/{model}: {e}"))
            .clone()
    };
    assert_eq!(result("add", "gpt-4o-mini")["passed"], true);
    assert_eq!(result("add-exact", "gpt-4o-mini")["passed"], true);
    let r = result("add", "claude-opus-4-5");
    assert_eq!(
        (r["passed"].clone(), r["error"].clone()),
        (json!(false), json!(false))
    );
    assert!(r["detail"].as_str().unwrap().starts_with("not JSON"), "{r}");
    assert_eq!(
        result("capital", "claude-opus-4-5")["passed"],
        true,
        "the judge said PASS"
    );
    let r = result("capital", "gpt-4o-mini");
    assert_eq!(r["detail"], "the judge (gpt-4o) said FAIL", "{r}");
    assert_eq!(result("proof", "claude-opus-4-5")["passed"], true);
    let r = result("flaky", "gpt-4o-mini");
    assert_eq!(
        (r["error"].clone(), r["status"].clone()),
        (json!(true), json!(503))
    );
    assert!(r["detail"].as_str().unwrap().contains("HTTP 503"), "{r}");
    let r = result("moved", "claude-opus-4-5");
    assert_eq!(r["error"], true);
    assert!(
        r["detail"].as_str().unwrap().contains("answered by gpt-4o"),
        "{r}"
    );

    let summary = |model: &str, category: &str| {
        e["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["model"] == model && s["category"] == category)
            .unwrap_or_else(|| panic!("{model}/{category}: {e}"))
            .clone()
    };
    let s = summary("gpt-4o-mini", "math_reasoning");
    assert_eq!(
        (s["tasks"].clone(), s["passed"].clone(), s["score"].clone()),
        (json!(2), json!(2), json!(1.0))
    );
    assert!(s["p50_latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(summary("claude-opus-4-5", "math_reasoning")["score"], 0.0);
    assert_eq!(summary("claude-opus-4-5", "factual_qa")["score"], 1.0);
    let chat = summary("gpt-4o-mini", "chat");
    assert_eq!(
        (chat["errors"].clone(), chat["p50_latency_ms"].clone()),
        (json!(2), Value::Null)
    );
    assert_eq!(e["quality"]["gpt-4o-mini"]["math_reasoning"], 1.0);
    assert_eq!(e["quality"]["claude-opus-4-5"]["math_reasoning"], 0.05);

    // Applied: the policy holds the figures, and hard math for acme now
    // goes to the model that solved acme's math — explain shows the quality
    // it ranked with. Globex routes as before.
    assert!(e["applied_ms"].is_u64(), "{e}");
    let (s, p, _) = admin(&h, Method::GET, "/admin/tenants/acme/policy", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        p["category_quality"]["gpt-4o-mini"]["math_reasoning"], 1.0,
        "{p}"
    );
    // Nothing else set: named models still fail over as without a policy.
    assert_eq!(p.as_object().unwrap().len(), 1, "{p}");
    let (_, after, _) = admin(
        &h,
        Method::POST,
        "/admin/route/explain",
        Some(explain("acme")),
    )
    .await;
    assert_eq!(after["choice"], "gpt-4o-mini", "{after}");
    let mini = after["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "gpt-4o-mini")
        .unwrap();
    assert_eq!(mini["quality"], 1.0);
    let (_, globex, _) = admin(
        &h,
        Method::POST,
        "/admin/route/explain",
        Some(explain("globex")),
    )
    .await;
    assert_eq!(globex["choice"], before["choice"], "{globex}");

    // Scoped to the tenant: another tenant's eval is not found; the list
    // shows it without per-task results.
    let (s, _, _) = admin(
        &h,
        Method::GET,
        &format!("/admin/tenants/globex/evals/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, mine, _) = admin(
        &h,
        Method::GET,
        &format!("/admin/tenants/acme/evals/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine["id"], id.as_str());
    let (_, list, _) = admin(&h, Method::GET, "/admin/tenants/acme/evals", None).await;
    assert_eq!(list["evals"][0]["id"], id.as_str());
    assert!(list["evals"][0].get("results").is_none());
    let (_, none, _) = admin(&h, Method::GET, "/admin/tenants/globex/evals", None).await;
    assert_eq!(none["evals"], json!([]));
    assert_eq!(
        admin(&h, Method::GET, "/admin/tenants/nobody/evals", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Apply again by hand (the same figures; the other fields kept).
    let (s, _, _) = admin(
        &h,
        Method::PUT,
        "/admin/tenants/acme/policy",
        Some(json!({"max_tier": "frontier", "category_quality": {"gpt-4o": {"chat": 0.3}}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, _) = admin(&h, Method::POST, &format!("/admin/evals/{id}/apply"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["policy"]["max_tier"], "frontier");
    assert_eq!(v["policy"]["category_quality"]["gpt-4o"]["chat"], 0.3);
    assert_eq!(
        v["policy"]["category_quality"]["gpt-4o-mini"]["math_reasoning"],
        1.0
    );

    // A key of another tenant is refused before anything runs.
    let mut body = suite(&other_key);
    body["tasks"] = json!([body["tasks"][0]]);
    let before_calls = seen.lock().unwrap().len();
    let (s, v, text) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("virtual_key: not a live virtual key")
    );
    assert!(!text.contains(&other_key));
    assert_eq!(seen.lock().unwrap().len(), before_calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_suites_are_refused_by_field_and_store_nothing() {
    let h = harness_named("evals-bad", None).await;
    let key = tenant(&h, "acme").await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"models": ["gpt-99"]}),
            "models[0]: unknown model \"gpt-99\"",
        ),
        (
            json!({"tasks": [{"id": "t", "category": "coding", "prompt": "x", "check": {"regex": "(["}}]}),
            "tasks[0].check.regex: not a valid regex",
        ),
        (
            json!({"tasks": [{"id": "t", "category": "coding", "prompt": "x", "check": {"json_schema": {"$ref": "#"}}}]}),
            "tasks[0].check.json_schema/$ref",
        ),
        (
            json!({"tasks": [{"id": "t", "category": "poetry", "prompt": "x", "check": {"exact": "y"}}]}),
            "tasks[0].category: unknown category",
        ),
        (
            json!({"tasks": [{"id": "t", "category": "chat", "prompt": "x", "check": {"judge": "ok"}}], "judge_model": null}),
            "needs `judge_model`",
        ),
        (json!({"virtual_key": "no such key"}), "virtual_key"),
        (json!({"tenant_id": "Not Valid"}), "tenant_id"),
    ];
    for (change, says) in cases {
        let mut body = suite(&key);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v, _) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{says}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{says}: {m}");
    }
    let mut body = suite(&key);
    body["tenant_id"] = json!("nobody");
    assert_eq!(
        admin(&h, Method::POST, "/admin/evals", Some(body)).await.0,
        StatusCode::NOT_FOUND
    );
    let mut body = suite(&key);
    body["surprise"] = json!(1);
    let (s, v, _) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
    assert!(
        s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST,
        "{v}"
    );
    let (_, list, _) = admin(&h, Method::GET, "/admin/tenants/acme/evals", None).await;
    assert_eq!(list["evals"], json!([]), "nothing stored");
    assert_eq!(
        admin(&h, Method::GET, "/admin/evals/ev_nothing", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The policy's own per-category figures are validated like the rest.
    for (policy, says) in [
        (
            json!({"category_quality": {"gpt-99": {"coding": 0.5}}}),
            "category_quality: unknown model",
        ),
        (
            json!({"category_quality": {"gpt-4o": {"poetry": 0.5}}}),
            "category_quality.gpt-4o: unknown category",
        ),
        (
            json!({"category_quality": {"gpt-4o": {"coding": 0}}}),
            "category_quality.gpt-4o.coding: must be in (0, 1]",
        ),
        (
            json!({"category_quality": {"gpt-4o": {"coding": 1.5}}}),
            "category_quality.gpt-4o.coding: must be in (0, 1]",
        ),
    ] {
        let (s, v, _) = admin(&h, Method::PUT, "/admin/tenants/acme/policy", Some(policy)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{says}: {v}"
        );
    }
    assert_eq!(
        admin(&h, Method::GET, "/admin/tenants/acme/policy", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // A model a policy rates cannot be deleted from the catalog.
    let (s, _, _) = admin(
        &h,
        Method::PUT,
        "/admin/tenants/acme/policy",
        Some(json!({"category_quality": {"gpt-4o": {"coding": 0.7}}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        admin(&h, Method::DELETE, "/admin/models/gpt-4o", None)
            .await
            .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_whose_gateway_answers_nothing_fails_and_applies_nothing() {
    let h = harness_named("evals-down", None).await;
    let key = tenant(&h, "acme").await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    h.state
        .evals
        .set_gateway_url(&format!("http://127.0.0.1:{port}"));
    let mut body = suite(&key);
    body["apply"] = json!(true);
    body["tasks"] = json!([body["tasks"][0]]);
    let (s, v, _) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let e = finished(&h, v["id"].as_str().unwrap()).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{e}"
    );
    assert!(e["applied_ms"].is_null());
    let (s, v, _) = admin(
        &h,
        Method::POST,
        &format!("/admin/evals/{}/apply", e["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        admin(&h, Method::GET, "/admin/tenants/acme/policy", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// A gateway stand-in that holds every call until `release` is sent, then
/// answers it 200 from the model named; counts the calls it received.
async fn held_gateway() -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::sync::watch::Sender<bool>,
) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let counted = calls.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (counted, mut released) = (counted.clone(), released.clone());
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
                let v: Value = serde_json::from_slice(&body).unwrap();
                answer(200, v["model"].as_str().unwrap_or(""), "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls, release)
}

/// The `evals` row's (status, heartbeat_ms, created_ms), read behind the
/// control plane's back.
fn eval_row(h: &Harness, id: &str) -> (String, i64, i64) {
    let conn = rusqlite::Connection::open(h.dir.join("aipipe.db")).unwrap();
    conn.query_row(
        "SELECT status, heartbeat_ms, created_ms FROM evals WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// A running eval's heartbeat is written while its calls are out
/// (control-plane/README.md, "Replicas"), so another control plane on the
/// database does not take it for interrupted; once another one has failed
/// it anyway, its runner notices at its next heartbeat and abandons it:
/// the calls not yet sent are never sent, and it stays failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_eval_writes_its_heartbeat_and_is_abandoned_once_failed_elsewhere() {
    // It reads the SQLite file and opens a second store on it: on
    // PostgreSQL, tests/engines.rs and tests/process.rs check the same.
    let h = common::sqlite_harness("evals-heartbeat", None);
    let key = tenant(&h, "acme").await;
    let (url, calls, release) = held_gateway().await;
    h.state.evals.set_gateway_url(&url);
    h.state.evals.set_stale_ms(1_200); // a heartbeat every 200 ms
    let tasks: Vec<Value> = (0..4)
        .map(|i| json!({"id": format!("t{i}"), "category": "chat", "prompt": "hi", "check": {"contains": "ok"}}))
        .collect();
    let body = json!({"tenant_id": "acme", "virtual_key": key,
        "models": ["gpt-4o-mini", "claude-opus-4-5"], "tasks": tasks});
    let (s, v, _) = admin(&h, Method::POST, "/admin/evals", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, beat, created) = eval_row(&h, &id);
    assert_eq!(status, "running");
    assert!(beat >= created + 200, "heartbeat {beat}, created {created}");
    // Four calls at a time per eval: four out, four waiting.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);

    // Another control plane on the file: fresh heartbeat, nothing to fail
    // within the bound; told no bound, it fails the eval.
    let other = aipipe_control_plane::db::Db::open(&h.dir.join("aipipe.db")).unwrap();
    assert_eq!(other.fail_interrupted_evals(1_200).await.unwrap(), 0);
    assert_eq!(other.fail_interrupted_evals(0).await.unwrap(), 1);
    // At its next heartbeat (every 200 ms) the runner learns it and drops
    // its calls; a waiting call must not take the permits the aborted ones
    // hand back (a fifth call once went out that way, under the whole suite
    // on two cores). Fifteen heartbeats' time.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    release.send_replace(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "the waiting calls were never sent"
    );
    let (_, e, _) = admin(&h, Method::GET, &format!("/admin/evals/{id}"), None).await;
    assert_eq!(
        (&e["status"], &e["error"]),
        (
            &json!("failed"),
            &json!("interrupted: the control plane stopped while it ran")
        ),
        "{e}"
    );
    drop(other);
}
