//! The control plane and Envoy together (real binaries, SQLite on disk, the
//! mock providers): what an operator does through the admin API reaches every
//! Envoy worker within 2 s, usage flows back exactly, tenants never touch
//! each other's keys, and a control plane outage loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{ControlPlane, assert_eventually, eventually, post_json};
use common::chat;
use common::control_plane::{CpStack, chat_as, envoy_polling, tenant_with_own_keys};
use serde_json::{Value, json};

fn hello(text: &str) -> Value {
    chat("gpt-4o-mini", text)
}

#[test]
fn admin_changes_reach_every_worker_within_two_seconds() {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme-first")]);
    // First table (Envoy may have started before the tenant existed).
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &hello("hi")).status == 200,
        "the new tenant never worked"
    );
    assert_eq!(
        s.mock.received().last().unwrap()["authorization"],
        "Bearer sk-acme-first"
    );

    // A key upsert: within 2 s every request carries the new key.
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/keys",
        Some(&json!({"openai": "sk-acme-second"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !r.text().contains("sk-acme-second"),
        "a provider key was echoed: {}",
        r.text()
    );
    assert_eventually!(
        Duration::from_secs(2),
        {
            s.chat(&key, &hello("hi"));
            s.mock.received().last().unwrap()["authorization"] == "Bearer sk-acme-second"
        },
        "the new provider key did not reach Envoy within 2 s"
    );
    for _ in 0..10 {
        assert_eq!(s.chat(&key, &hello("hi")).status, 200);
        assert_eq!(
            s.mock.received().last().unwrap()["authorization"],
            "Bearer sk-acme-second"
        );
    }

    // A revocation: within 2 s the key is refused on every worker.
    let list =
        s.cp.admin("GET", "/admin/tenants/acme/virtual-keys", None)
            .json();
    let keys = list
        .as_array()
        .cloned()
        .or_else(|| list["virtual_keys"].as_array().cloned())
        .unwrap();
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert!(!list.to_string().contains(&key), "a virtual key was listed");
    let r = s.cp.admin(
        "DELETE",
        &format!("/admin/tenants/acme/virtual-keys/{id}"),
        None,
    );
    assert!(r.status < 300, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(2),
        s.chat(&key, &hello("hi")).status == 401,
        "the revoked key still worked after 2 s"
    );
    for _ in 0..10 {
        assert_eq!(s.chat(&key, &hello("hi")).status, 401);
    }

    // The internal token is in Envoy's environment, not its configuration.
    let dump = aipipe_tests::get(
        &format!("http://127.0.0.1:{}/config_dump", s.envoy.admin_port),
        &[],
    )
    .text();
    assert!(dump.contains("aipipe_singleton") && dump.contains("AIPIPE_INTERNAL_TOKEN"));
    assert!(
        !dump.contains(&s.cp.internal_token),
        "the internal token is in /config_dump"
    );

    // No secret in any log line.
    let logs = s.cp.process.logs() + &s.envoy.process.logs();
    for secret in [
        "sk-acme-first",
        "sk-acme-second",
        key.as_str(),
        s.cp.admin_secret.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret appeared in the logs");
    }
}

/// Usage of an answer as the client saw it: (prompt, completion).
fn usage_seen(reply: &aipipe_tests::Reply) -> (u64, u64) {
    let text = reply.text();
    let usage = if text.starts_with("data:") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v["usage"].is_object())
            .map(|v| v["usage"].clone())
            .unwrap_or(Value::Null)
    } else {
        reply.json()["usage"].clone()
    };
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

#[test]
fn usage_flows_back_and_stats_are_exact() {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &hello("warm up")).status == 200,
        "tenant never worked"
    );
    // The warm-up request's tokens, as stored, are the starting point.
    let (mut prompt, mut completion, mut requests) = (0, 0, 1);
    let base = eventually(Duration::from_secs(10), || {
        let st = s.stats("acme");
        (st["totals"]["requests"].as_u64()? == 1).then_some(st)
    })
    .expect("the warm-up request was never counted");
    prompt += base["totals"]["prompt_tokens"].as_u64().unwrap();
    completion += base["totals"]["completion_tokens"].as_u64().unwrap();

    for i in 0..6 {
        let r = s.chat(
            &key,
            &hello(&"a longer question about usage accounting ".repeat(i + 1)),
        );
        assert_eq!(r.status, 200);
        let (p, c) = usage_seen(&r);
        prompt += p;
        completion += c;
        requests += 1;
    }
    for i in 0..4 {
        let mut body = hello(&"stream me ".repeat(i + 2));
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let r = s.chat(&key, &body);
        assert_eq!(r.status, 200);
        let (p, c) = usage_seen(&r);
        prompt += p;
        completion += c;
        requests += 1;
    }
    // Streams whose client did not ask for usage are counted all the same:
    // the filter asked for it. The mock is deterministic, so the same request
    // with usage shown tells what it was.
    for i in 0..3 {
        let mut body = hello(&"quiet stream ".repeat(i + 2));
        body["stream"] = json!(true);
        let r = s.chat(&key, &body);
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("usage"), "{}", r.text());
        body["stream_options"] = json!({"include_usage": true});
        let (p, c) = usage_seen(&s.chat(&key, &body));
        prompt += 2 * p;
        completion += 2 * c;
        requests += 2;
    }
    let st = eventually(Duration::from_secs(10), || {
        let st = s.stats("acme");
        (st["totals"]["requests"].as_u64()? == requests).then_some(st)
    })
    .unwrap_or_else(|| panic!("usage did not arrive: {}", s.stats("acme")));
    let t = &st["totals"];
    assert_eq!(t["prompt_tokens"].as_u64(), Some(prompt), "{st}");
    assert_eq!(t["completion_tokens"].as_u64(), Some(completion), "{st}");
    // gpt-4o-mini: $0.15 / $0.60 per million tokens, exactly.
    let cost = (prompt * 150 + completion * 600) as f64 / 1e9;
    assert!(
        (t["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{st} vs {cost}"
    );
    let model = st["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gpt-4o-mini")
        .unwrap();
    assert_eq!(model["requests"].as_u64(), Some(requests));
    assert!(
        model["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
        "{model}"
    );
    assert!(model["ttft_ms"]["p99"].as_f64().unwrap() > 0.0, "{model}");
}

#[test]
fn tenants_never_use_each_others_keys_under_concurrency() {
    let s = CpStack::start();
    let a = s.cp.tenant(
        "alpha",
        &[("openai", "sk-alpha"), ("anthropic", "ak-alpha")],
    );
    let b =
        s.cp.tenant("beta", &[("openai", "sk-beta"), ("anthropic", "ak-beta")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&a, &hello("x")).status == 200 && s.chat(&b, &hello("x")).status == 200,
        "tenants never worked"
    );
    s.mock.clear_received();
    std::thread::scope(|scope| {
        for (tenant, key) in [("alpha", &a), ("beta", &b)] {
            for worker in 0..2 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..15 {
                        let model = if i % 2 == 0 { "gpt-4o-mini" } else { "auto" };
                        let body = json!({"model": model, "messages": [{"role": "user", "content": format!("from {tenant} {worker} {i}")}]});
                        assert_eq!(s.chat(key, &body).status, 200);
                    }
                });
            }
        }
    });
    let got = s.mock.received();
    assert_eq!(got.len(), 60);
    for r in got {
        // A string in either wire format (auto may have chosen Claude).
        let content = r["body"]["messages"][0]["content"]
            .as_str()
            .or(r["body"]["messages"][0]["content"][0]["text"].as_str())
            .unwrap()
            .to_owned();
        let tenant = content.split_whitespace().nth(1).unwrap();
        // OpenAI takes a bearer token, Anthropic the bare key in x-api-key.
        let (auth, expected) = match (tenant, r["provider"].as_str().unwrap()) {
            ("alpha", "openai") => (&r["authorization"], "Bearer sk-alpha"),
            ("alpha", _) => (&r["x_api_key"], "ak-alpha"),
            ("beta", "openai") => (&r["authorization"], "Bearer sk-beta"),
            _ => (&r["x_api_key"], "ak-beta"),
        };
        assert_eq!(auth, expected, "{content} went out with the wrong key");
    }
}

#[test]
fn a_control_plane_outage_loses_no_usage() {
    let mut s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &hello("hi")).status == 200,
        "tenant never worked"
    );
    assert_eventually!(
        Duration::from_secs(10),
        s.stats("acme")["totals"]["requests"].as_u64() == Some(1),
        "first request never counted"
    );
    let (admin, internal, data) = (s.cp.admin_port, s.cp.internal_port, s.cp.data.clone());
    s.cp.process.stop();

    // Down: Envoy keeps routing with the last table and keeps the records.
    for i in 0..8 {
        let r = s.chat(&key, &hello(&format!("while down {i}")));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    std::thread::sleep(Duration::from_millis(1500));

    // Back on the same database and ports: everything arrives, once.
    s.cp = ControlPlane::start_on(data, admin, internal);
    assert_eventually!(
        Duration::from_secs(10),
        s.stats("acme")["totals"]["requests"].as_u64() == Some(9),
        "usage recorded while the control plane was down did not arrive"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.stats("acme")["totals"]["requests"].as_u64(),
        Some(9),
        "a record was counted twice"
    );
}

/// Failover and penalties with the control plane: a failing provider's
/// failed attempts reach the control plane (usage counted once, for the
/// model that answered), its penalty shows in the admin API, and an
/// operator's reset clears every filter's local penalty at once.
#[test]
fn failovers_are_counted_once_and_penalties_reach_the_control_plane_and_reset() {
    // A decay far longer than the test: only a reset can clear the penalty.
    let s = CpStack::start_with(r#"{"penalty_decay_ms": 600000}"#);
    let key = s.cp.tenant(
        "acme",
        &[
            ("openai", "sk-acme-openai"),
            ("anthropic", "sk-acme-anthropic"),
        ],
    );
    let greet = || {
        s.chat(
            &key,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    assert_eventually!(
        Duration::from_secs(20),
        greet().status == 200,
        "the tenant never worked"
    );
    assert_eq!(greet().header("x-aipipe-model"), Some("gpt-4o-mini"));

    s.mock.fault(json!({"provider": "openai", "status": 503}));
    let mut failovers = 0;
    for _ in 0..4 {
        let r = greet();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-aipipe-provider"), Some("anthropic"));
        failovers += usize::from(r.header("x-aipipe-failover").is_some());
    }
    assert!(failovers >= 1);
    s.mock.clear_faults();
    // Still penalised here: the cheap model is not even tried.
    assert_eq!(greet().header("x-aipipe-provider"), Some("anthropic"));

    // The control plane has the failed attempts and the penalty.
    let penalty = |model: &str| {
        let v = s.cp.admin("GET", "/admin/penalties", None).json();
        v["penalties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["model"] == model)
            .cloned()
            .unwrap()
    };
    let mini = eventually(Duration::from_secs(20), || {
        let p = penalty("gpt-4o-mini");
        (p["penalty"].as_f64().unwrap() > 1.0).then_some(p)
    })
    .expect("the penalty never reached the control plane");
    assert!(mini["failures"].as_u64().unwrap() >= 1, "{mini}");
    // Usage counted once per request: 2 healthy + 5 answered after the fault.
    let stats = eventually(Duration::from_secs(20), || {
        let st = s.stats("acme");
        (st["totals"]["requests"].as_u64() == Some(7)).then_some(st)
    })
    .unwrap_or_else(|| panic!("{}", s.stats("acme")));
    assert_eq!(stats["totals"]["errors"].as_u64(), Some(0), "{stats}");
    let by_model = stats["by_model"].as_array().unwrap();
    let row = |m: &str| by_model.iter().find(|r| r["model"] == m).cloned().unwrap();
    assert_eq!(row("gpt-4o-mini")["requests"].as_u64(), Some(2), "{stats}");
    assert!(
        row("gpt-4o-mini")["failed_attempts"].as_u64().unwrap() >= 1,
        "{stats}"
    );

    // An operator's reset reaches every worker: the cheap model is back at
    // once (the window allows for a control plane slowed by a busy machine).
    let r =
        s.cp.admin("POST", "/admin/penalties/reset", Some(&json!({})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(20),
        (0..4).all(|_| greet().header("x-aipipe-model") == Some("gpt-4o-mini")),
        "the reset never reached the filters"
    );
    assert_eq!(penalty("gpt-4o-mini")["penalty"].as_f64(), Some(0.0));
}

/// Pass-through answers are accounted where they carry usage, for the
/// catalog model they name; every other pass-through call unpriced.
#[test]
fn pass_through_answers_are_accounted_when_they_carry_usage() {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme-openai")]);
    let url = s.envoy.url("/openai/v1/chat/completions");
    let auth = [("authorization", format!("Bearer {key}"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eventually!(
        Duration::from_secs(10),
        post_json(&url, &auth, &hello("hi")).status == 200,
        "the tenant never worked"
    );
    let r = post_json(&url, &auth, &hello("how are you?"));
    assert_eq!(r.status, 200);
    let sent = r.json()["usage"].clone();
    // A call whose answer names no model is recorded too, unpriced
    // (model `-`, usage not read): never missing, never $0 as if free.
    let models = aipipe_tests::request("GET", &s.envoy.url("/openai/v1/models"), &auth, None);
    assert!(models.status < 500);
    let stats = eventually(Duration::from_secs(10), || {
        let st = s.stats("acme");
        (st["totals"]["requests"].as_u64() == Some(3)).then_some(st)
    })
    .unwrap_or_else(|| panic!("{}", s.stats("acme")));
    let by_model = stats["by_model"].as_array().unwrap();
    let row = by_model
        .iter()
        .find(|r| r["model"] == "gpt-4o-mini")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(row["requests"].as_u64(), Some(2), "{stats}");
    assert!(by_model.iter().any(|r| r["model"] == "-"), "{stats}");
    assert_eq!(stats["totals"]["unparsed"].as_u64(), Some(1), "{stats}");
    assert!(
        stats["totals"]["prompt_tokens"].as_u64().unwrap()
            >= sent["prompt_tokens"].as_u64().unwrap(),
        "{stats}"
    );
    assert!(
        stats["totals"]["cost_usd"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
}

/// A streamed request fails over by Envoy's internal redirect: the request
/// runs through the filter again, and the first attempt's context ends
/// without an answer. Still one usage record per request, with the failed
/// attempts, and none more later (no orphaned first attempt is sent).
#[test]
fn a_streamed_failover_is_recorded_once_with_its_failed_attempts() {
    let s = CpStack::start();
    let key = s.cp.tenant(
        "acme",
        &[
            ("openai", "sk-acme-openai"),
            ("anthropic", "sk-acme-anthropic"),
        ],
    );
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &hello("hi")).status == 200,
        "the tenant never worked"
    );
    let auth = format!("Bearer {key}");
    let stream = |text: &str| {
        let mut body = hello(text);
        body["stream"] = json!(true);
        let (status, lines) = aipipe_tests::stream_lines(
            &s.envoy.url("/v1/chat/completions"),
            &[("authorization", auth.as_str())],
            &body,
        );
        assert_eq!(status, 200, "{lines:?}");
        assert!(lines.iter().any(|(_, l)| l == "data: [DONE]"), "{lines:?}");
    };
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    for i in 0..3 {
        stream(&format!("tell me story {i}"));
    }
    s.mock.clear_faults();
    let requests = |n: u64| {
        eventually(Duration::from_secs(20), || {
            let st = s.stats("acme");
            (st["totals"]["requests"].as_u64() == Some(n)).then_some(st)
        })
        .unwrap_or_else(|| panic!("expected {n} requests: {}", s.stats("acme")))
    };
    let stats = requests(4);
    assert_eq!(stats["totals"]["errors"].as_u64(), Some(0), "{stats}");
    assert_eq!(stats["totals"]["unparsed"].as_u64(), Some(0), "{stats}");
    let by_model = stats["by_model"].as_array().unwrap();
    let row = |m: &str| by_model.iter().find(|r| r["model"] == m).cloned();
    let mini = row("gpt-4o-mini").unwrap();
    assert_eq!(mini["requests"].as_u64(), Some(1), "{stats}");
    assert!(mini["failed_attempts"].as_u64().unwrap() >= 3, "{stats}");
    let answered: u64 = by_model
        .iter()
        .filter(|r| r["provider"] == "anthropic")
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(answered, 3, "{stats}");
    // Past the time an orphaned attempt's record would be sent, another
    // stream (its carry sweeps orphans out): one more record, no more.
    std::thread::sleep(Duration::from_millis(1500));
    stream("one more");
    requests(5);
    std::thread::sleep(Duration::from_secs(2));
    let st = s.stats("acme");
    assert_eq!(st["totals"]["requests"].as_u64(), Some(5), "{st}");
}

/// One tenant's traffic never changes another tenant's routing: tenant A's
/// own OpenAI key is rate-limited (429s for A's key only) — A routes away
/// from OpenAI, B's greetings stay on the cheapest model, at this Envoy and
/// in what the control plane publishes; a provider outage (503 for every
/// key) still moves both.
#[test]
fn a_tenants_rate_limited_key_never_moves_another_tenants_routing() {
    let s = CpStack::start_with(r#"{"penalty_decay_ms": 600000}"#);
    let a = tenant_with_own_keys(&s.cp, "tenant-a", &["openai", "anthropic"]);
    let b = tenant_with_own_keys(&s.cp, "tenant-b", &["openai", "anthropic"]);
    let greet = |key: &str| {
        s.chat(
            key,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    assert_eventually!(
        Duration::from_secs(20),
        greet(&a).status == 200 && greet(&b).status == 200,
        "the tenants never worked"
    );
    assert_eq!(greet(&b).header("x-aipipe-model"), Some("gpt-4o-mini"));

    s.mock
        .fault(json!({"provider": "openai", "key": "sk-tenant-a-openai", "status": 429}));
    for _ in 0..4 {
        let r = greet(&a);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-aipipe-provider"), Some("anthropic"));
    }
    // A's key is penalized here: its cheap model is not even tried.
    let before = s.mock.received().len();
    assert_eq!(greet(&a).header("x-aipipe-provider"), Some("anthropic"));
    assert_eq!(s.mock.received().len(), before + 1, "A tried OpenAI again");
    // B never moved, now or after the usage reached the control plane.
    for _ in 0..3 {
        let r = greet(&b);
        assert_eq!(
            r.header("x-aipipe-model"),
            Some("gpt-4o-mini"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("x-aipipe-failover"), None);
    }
    assert_eventually!(
        Duration::from_secs(10),
        s.stats("tenant-a")["totals"]["requests"].as_u64() >= Some(5),
        "A's usage never arrived"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(greet(&b).header("x-aipipe-model"), Some("gpt-4o-mini"));
    let v = s.cp.admin("GET", "/admin/penalties", None).json();
    let mini = v["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "gpt-4o-mini")
        .unwrap()
        .clone();
    assert_eq!(
        mini["penalty"], 0.0,
        "a 429 of one key moved the model: {mini}"
    );
    // …but the (model, A's key) pair has one, shown in penalties (by its
    // tag, never the key) and in explain for A only.
    let a_tag = &aipipe_core::sha::sha256_hex(b"sk-tenant-a-openai")[..16];
    let pairs = v["key_penalties"].as_array().unwrap();
    assert!(
        pairs.iter().any(|p| p["model"] == "gpt-4o-mini"
            && p["key_tag"] == a_tag
            && p["penalty"].as_f64() > Some(0.0)),
        "{v}"
    );
    assert!(!v.to_string().contains("sk-tenant"), "a key in {v}");
    let only_b =
        s.cp.admin("GET", "/admin/penalties?tenant=tenant-b", None)
            .json();
    assert_eq!(only_b["key_penalties"], json!([]), "{only_b}");
    let explain = |tenant: &str| {
        let v =
            s.cp.admin(
                "POST",
                "/admin/route/explain",
                Some(&json!({"tenant": tenant, "request": {"model": "auto",
                    "messages": [{"role": "user", "content": "hi"}]}})),
            )
            .json();
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == "gpt-4o-mini")
            .unwrap()["key_penalty"]
            .as_f64()
            .unwrap()
    };
    assert!(explain("tenant-a") > 0.0);
    assert_eq!(explain("tenant-b"), 0.0);
    // A second Envoy that never saw a 429 routes A around the pair from its
    // first request (the published table carries it), and B as before.
    let second = envoy_polling(
        &s.mock,
        r#"{"penalty_decay_ms": 600000}"#,
        s.cp.internal_port,
        &s.cp.internal_token,
    );
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(
            &second,
            &b,
            &json!({"messages": [{"role": "user", "content": "hi"}]})
        )
        .status
            == 200,
        "the second Envoy never served"
    );
    let before = s.mock.received().len();
    let r = chat_as(
        &second,
        &a,
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        r.header("x-aipipe-provider"),
        Some("anthropic"),
        "{}",
        r.text()
    );
    assert_eq!(
        s.mock.received().len(),
        before + 1,
        "A's key was tried at OpenAI"
    );
    let r = chat_as(
        &second,
        &b,
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    drop(second);

    // The provider itself down: everybody moves.
    s.mock.clear_faults();
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    for _ in 0..3 {
        assert_eq!(greet(&b).status, 200);
    }
    s.mock.clear_faults();
    assert_eq!(greet(&b).header("x-aipipe-provider"), Some("anthropic"));
    assert_eq!(greet(&a).header("x-aipipe-provider"), Some("anthropic"));
}

/// Admin and internal input that could do harm is refused by the real
/// binary before anything is written, and what an Envoy routes follows the
/// catalog: a model id with CR/LF (it would land in `x-aipipe-model`),
/// `auto`, a 1e308 price; usage with i64::MAX tokens or for a tenant that
/// never existed (refused and counted, the batch still acknowledged); a
/// deleted model is no longer routed to.
#[test]
fn harmful_admin_and_usage_input_is_refused_and_a_deleted_model_is_not_routed() {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme-openai")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &hello("hi")).status == 200,
        "the tenant never worked"
    );
    let models = s.cp.admin("GET", "/admin/models", None).json();
    let base = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o")
        .unwrap()
        .clone();
    let revision = || {
        s.cp.admin("GET", "/metrics", None)
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix("aipipe_cp_table_version ")
                    .map(str::to_owned)
            })
            .unwrap()
    };
    let before = revision();
    for (path_id, patch) in [
        (
            "evil%0D%0Ax-injected:%201",
            json!({"id": "evil\r\nx-injected: 1"}),
        ),
        ("auto", json!({"id": "auto"})),
        ("gpt-4o", json!({"input_per_mtok": 1e308})),
        ("gpt-4o", json!({"max_output_tokens": 0})),
    ] {
        let mut m = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        let r =
            s.cp.admin("PUT", &format!("/admin/models/{path_id}"), Some(&m));
        assert_eq!(r.status, 422, "{patch}: {}", r.text());
    }
    assert_eq!(revision(), before, "nothing was written");
    assert_eq!(s.cp.admin("GET", "/metrics", None).status, 200);

    // Usage: impossible counts and strangers refused one by one.
    let record = |id: &str, tenant: &str, tokens: u64| {
        json!({"id": id, "tenant": tenant, "provider": "openai", "model": "gpt-4o-mini",
            "status": 200, "prompt_tokens": tokens, "completion_tokens": 1, "cost_nusd": 1,
            "latency_ms": 1.0, "usage_parsed": true, "ts_ms": 1})
    };
    let r = post_json(
        &format!("http://127.0.0.1:{}/internal/v1/usage", s.cp.internal_port),
        &[("x-aipipe-internal-token", &s.cp.internal_token)],
        &json!({"records": [
            record("huge", "acme", i64::MAX as u64),
            record("stranger", "nobody", 1),
        ]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["refused"], 2, "{}", r.text());

    // A deleted model: the next request naming it gets 404 from Envoy.
    let r = s.cp.admin("DELETE", "/admin/models/gpt-4o", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(5),
        s.chat(&key, &chat("gpt-4o", "hi")).status == 404,
        "Envoy still routes to the deleted model"
    );
    let r = s.chat(&key, &chat("gpt-4o", "hi"));
    assert_eq!(r.json()["error"]["code"], "model_not_found");
}
