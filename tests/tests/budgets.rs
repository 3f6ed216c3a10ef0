//! Budgets by reservation (control-plane/README.md, "Budgets") through real
//! Envoys and the real control plane: concurrent requests over two Envoys
//! and both workers of each, streamed and not, some clients hanging up
//! mid-stream, never spend past the limit; pass-through requests reserve
//! and settle like routed ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use aipipe_tests::{Envoy, assert_eventually, stream_lines};
use common::control_plane::{CpStack, chat_as, envoy_polling, tenant_stats};
use serde_json::{Value, json};

/// What one request came to.
#[derive(Debug)]
struct Outcome {
    status: u16,
    code: Option<String>,
    retry_after: Option<u64>,
}

/// A streamed request whose client reads the head of the answer and hangs
/// up (when it was admitted).
fn stream_and_hang_up(envoy: &Envoy, key: &str, body: &Value) -> Outcome {
    let head = common::read_head_and_hang_up(envoy.port, key, body);
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok());
    let code = head
        .contains("budget_exceeded")
        .then(|| "budget_exceeded".to_owned());
    Outcome {
        status,
        code,
        retry_after,
    }
}

fn plain(envoy: &Envoy, key: &str, body: &Value) -> Outcome {
    let r = chat_as(envoy, key, body);
    Outcome {
        status: r.status,
        code: (r.status != 200)
            .then(|| r.json()["error"]["code"].as_str().unwrap_or("").to_owned()),
        retry_after: r.header("retry-after").and_then(|v| v.parse().ok()),
    }
}

fn streamed(envoy: &Envoy, key: &str, body: &Value) -> Outcome {
    let auth = format!("Bearer {key}");
    let (status, lines) = stream_lines(
        &envoy.url("/v1/chat/completions"),
        &[("authorization", auth.as_str())],
        body,
    );
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    if status == 200 {
        assert!(text.contains(&"data: [DONE]"), "{text:?}");
    }
    Outcome {
        status,
        code: text
            .iter()
            .any(|l| l.contains("budget_exceeded"))
            .then(|| "budget_exceeded".to_owned()),
        // The reader does not keep headers; the plain requests check them.
        retry_after: (status == 429).then_some(1),
    }
}

/// Creates tenant `acme` with a budget, then its OpenAI key and a virtual
/// key (so an Envoy that serves the key holds the budget too).
fn acme_with_budget(s: &CpStack, limit_usd: f64, days: u32) -> String {
    let r = s.cp.admin(
        "POST",
        "/admin/tenants",
        Some(&json!({"id": "acme", "name": "Acme"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    put_budget(s, limit_usd, days);
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/keys",
        Some(&json!({"openai": "sk-acme-openai"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/virtual-keys",
        Some(&json!({"name": "test"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_owned()
}

fn put_budget(s: &CpStack, limit_usd: f64, days: u32) {
    let r = s.cp.admin(
        "PUT",
        "/admin/tenants/acme/budget",
        Some(&json!({"limit_usd": limit_usd, "days": days})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Waits until `envoy` serves a tenant created now: it then holds every
/// change made before (the budget).
fn caught_up(s: &CpStack, envoy: &Envoy, probe: &str) {
    let key = s.cp.tenant(probe, &[("openai", "sk-probe")]);
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(envoy, &key, &common::chat("gpt-4o-mini", "probe")).status == 200,
        "{probe} never served"
    );
}

fn budget(s: &CpStack, tenant: &str) -> Value {
    let r =
        s.cp.admin("GET", &format!("/admin/tenants/{tenant}/budget"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// 100 concurrent requests of one tenant over two Envoys (two workers each)
/// against a budget of a few dozen answers: plain, streamed, and streams
/// whose client hangs up after the head. Each is answered or refused with
/// 429 `budget_exceeded` and a `retry-after`; every answered request is in
/// the spend; the spend stays within the limit — the bound README states
/// is 0 here: the mock counts prompts as the filter estimates them and
/// honours `max_tokens`, so no answer costs more than it reserved.
#[test]
fn a_budget_holds_under_concurrent_requests_across_two_envoys() {
    // One attempt: the reservation is the named model's worst case, so the
    // limit below is a known number of them.
    let config = r#"{"budget": {"fleet_size": 2}, "max_attempts": 1}"#;
    let s = CpStack::start_with(config);
    let second = envoy_polling(&s.mock, config, s.cp.internal_port, &s.cp.internal_token);
    // $0.0002: gpt-4o-mini with max_tokens 20 reserves at most ~13,500 n$
    // and costs ~3,300 n$ (the mock answers ~1 token per 4 of prompt).
    let limit_nusd = 200_000u64;
    let key = acme_with_budget(&s, 0.0002, 30);
    caught_up(&s, &s.envoy, "probe-a");
    caught_up(&s, &second, "probe-b");
    // Streams pace their events, so a hang-up lands mid-answer.
    s.mock
        .fault(json!({"provider": "openai", "stream_chunk_delay_ms": 20}));

    let outcomes: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (key, envoy) = (&key, if i % 2 == 0 { &s.envoy } else { &second });
                scope.spawn(move || {
                    let stream = i % 5 >= 3;
                    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20, "stream": stream,
                        "stream_options": {"include_usage": true},
                        "messages": [{"role": "user", "content": format!("count to {i} please")}]});
                    let o = match i % 5 {
                        4 => stream_and_hang_up(envoy, key, &body),
                        3 => streamed(envoy, key, &body),
                        _ => plain(envoy, key, &body),
                    };
                    (i, o)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut answered = 0u64;
    for (i, o) in &outcomes {
        match o.status {
            200 => answered += 1,
            429 => {
                assert_eq!(o.code.as_deref(), Some("budget_exceeded"), "{i}: {o:?}");
                assert!(o.retry_after.is_some_and(|s| s > 0), "{i}: {o:?}");
            }
            _ => panic!("request {i}: {o:?}"),
        }
    }
    let refused = outcomes.len() as u64 - answered;
    assert!(answered >= 10, "only {answered} answered: {outcomes:?}");
    assert!(
        refused >= 10,
        "only {refused} refused: the limit was never reached"
    );

    // Every answered request reaches the spend, hung-up streams included.
    assert_eventually!(
        Duration::from_secs(30),
        tenant_stats(&s.cp, "acme")["totals"]["requests"].as_u64() == Some(answered),
        "records missing: {} answered, stats {}",
        answered,
        tenant_stats(&s.cp, "acme")["totals"]
    );
    let b = budget(&s, "acme");
    let spent = (b["spent_usd"].as_f64().unwrap() * 1e9).round() as u64;
    eprintln!("{answered} answered, {refused} refused, {spent} of {limit_nusd} n$ spent");
    assert!(spent <= limit_nusd, "spent {spent} n$ of {limit_nusd}: {b}");
    assert!(spent > limit_nusd / 2, "the budget was barely used: {b}");
    let cost = tenant_stats(&s.cp, "acme")["totals"]["cost_usd"]
        .as_f64()
        .unwrap();
    assert!(
        (cost * 1e9 - spent as f64).abs() < 1.0,
        "stats {cost} vs budget {spent}"
    );

    // Spent: even one more request is refused at either Envoy, and the
    // refusal says the limit and the window.
    for envoy in [&s.envoy, &second] {
        let r = chat_as(
            envoy,
            &key,
            &json!({"model": "gpt-4o-mini", "max_tokens": 20,
                "messages": [{"role": "user", "content": "one more"}]}),
        );
        if r.status == 429 {
            let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(m.contains("$0.000200 per 30 days"), "{m}");
        }
    }
}

/// A virtual key's own budget binds that key alone, on top of its tenant's
/// (none here): concurrent requests with it are answered or refused with
/// 429 `budget_exceeded` naming the key's budget, its spend stays within
/// the limit, and the tenant's other key is never refused.
#[test]
fn a_virtual_keys_budget_binds_that_key_only() {
    let config = r#"{"max_attempts": 1}"#;
    let s = CpStack::start_with(config);
    let r = s.cp.admin(
        "POST",
        "/admin/tenants",
        Some(&json!({"id": "acme", "name": "Acme"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/keys",
        Some(&json!({"openai": "sk-acme-openai"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new_key = |name: &str| {
        let r = s.cp.admin(
            "POST",
            "/admin/tenants/acme/virtual-keys",
            Some(&json!({"name": name})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    };
    let (bound_id, bound) = new_key("bound");
    let (_, free) = new_key("free");
    let path = format!("/admin/tenants/acme/virtual-keys/{bound_id}/budget");
    let limit_nusd = 100_000u64;
    let r =
        s.cp.admin("PUT", &path, Some(&json!({"limit_usd": 0.0001, "days": 1})));
    assert_eq!(r.status, 200, "{}", r.text());
    caught_up(&s, &s.envoy, "probe-a");

    let outcomes: Vec<(bool, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (key, is_bound) = if i % 4 == 3 {
                    (&free, false)
                } else {
                    (&bound, true)
                };
                let envoy = &s.envoy;
                scope.spawn(move || {
                    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20,
                        "messages": [{"role": "user", "content": format!("count to {i} please")}]});
                    (is_bound, plain(envoy, key, &body))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut answered = 0u64;
    let mut bound_answered = 0u64;
    let mut refused = 0u64;
    for (is_bound, o) in &outcomes {
        match (is_bound, o.status) {
            (_, 200) => {
                answered += 1;
                bound_answered += u64::from(*is_bound);
            }
            (true, 429) => {
                assert_eq!(o.code.as_deref(), Some("budget_exceeded"), "{o:?}");
                refused += 1;
            }
            _ => panic!("{is_bound}: {o:?}"),
        }
    }
    assert!(
        refused >= 5,
        "the key's limit was never reached: {outcomes:?}"
    );
    assert!(bound_answered >= 3, "{outcomes:?}");
    // One at a time until the key is refused: a burst whose requests all
    // reserved before any settled leaves room for one more (each answer
    // costs less than its reservation).
    let mut later = 0u64;
    let r = loop {
        let r = chat_as(
            &s.envoy,
            &bound,
            &json!({"model": "gpt-4o-mini", "max_tokens": 20,
                "messages": [{"role": "user", "content": "one more"}]}),
        );
        if r.status != 200 || later == 3 {
            break r;
        }
        later += 1;
    };
    answered += later;
    assert_eq!(r.status, 429, "{}", r.text());
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        m.contains("virtual key's budget of $0.000100 per 1 days"),
        "{m}"
    );
    assert_eq!(
        chat_as(&s.envoy, &free, &common::chat("gpt-4o-mini", "still free")).status,
        200
    );

    assert_eventually!(
        Duration::from_secs(30),
        tenant_stats(&s.cp, "acme")["totals"]["requests"].as_u64() == Some(answered + 1),
        "records missing: {} answered, stats {}",
        answered + 1,
        tenant_stats(&s.cp, "acme")["totals"]
    );
    let b = s.cp.admin("GET", &path, None).json();
    let spent = (b["spent_usd"].as_f64().unwrap() * 1e9).round() as u64;
    eprintln!(
        "{bound_answered} answered with the bound key, {refused} refused, {spent} of {limit_nusd} n$"
    );
    assert!(spent <= limit_nusd, "spent {spent} n$ of {limit_nusd}: {b}");
    assert!(spent > limit_nusd / 2, "the budget was barely used: {b}");
    assert_eq!(b["virtual_key"], bound_id.as_str());
    let reserved = || s.cp.admin("GET", &path, None).json()["reserved_usd"].as_f64();
    // The Envoy's last report, sent after its last request settled, says
    // nothing is in flight.
    assert_eventually!(
        Duration::from_secs(10),
        reserved() == Some(0.0),
        "reservations reported with nothing in flight: {:?}",
        reserved()
    );

    // Requests in flight: the Envoy reports what they hold reserved, and
    // the budget shows it until they end.
    let r =
        s.cp.admin("PUT", &path, Some(&json!({"limit_usd": 1, "days": 1})));
    assert_eq!(r.status, 200, "{}", r.text());
    caught_up(&s, &s.envoy, "probe-b");
    // Held long enough for the report (each Envoy sends its reservations
    // at its next tick, 1 s here) to arrive even on a loaded machine.
    s.mock
        .fault(json!({"provider": "openai", "delay_ms": 8000}));
    std::thread::scope(|scope| {
        let slow: Vec<_> = (0..3)
            .map(|i| {
                let (bound, envoy) = (&bound, &s.envoy);
                scope.spawn(move || {
                    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20,
                        "messages": [{"role": "user", "content": format!("slow {i}")}]});
                    plain(envoy, bound, &body).status
                })
            })
            .collect();
        assert_eventually!(
            Duration::from_millis(7500),
            reserved().is_some_and(|r| r > 0.0),
            "no reservation reported while requests were in flight: {:?}",
            reserved()
        );
        let held = s.cp.admin("GET", &path, None).json();
        let (limit, spent, res, left) = (
            held["limit_usd"].as_f64().unwrap(),
            held["spent_usd"].as_f64().unwrap(),
            held["reserved_usd"].as_f64().unwrap(),
            held["remaining_usd"].as_f64().unwrap(),
        );
        assert!((limit - spent - res - left).abs() < 1e-9, "{held}");
        for h in slow {
            assert_eq!(h.join().unwrap(), 200);
        }
    });
    s.mock.clear_faults();
    assert_eventually!(
        Duration::from_secs(5),
        reserved() == Some(0.0),
        "reservations still reported after the requests ended: {:?}",
        reserved()
    );
}

/// A pass-through request reserves `pass_through_reserve_usd` before it is
/// forwarded and settles with what its answer cost: refused (in the
/// provider's error shape) when the reservation cannot fit, counted in the
/// budget's spend when answered; `limit_usd: 0` blocks every request.
#[test]
fn pass_through_requests_are_reserved_and_settled_like_routed_ones() {
    let config = r#"{"budget": {"pass_through_reserve_usd": 0.01}}"#;
    let s = CpStack::start_with(config);
    let put = |limit: f64| put_budget(&s, limit, 1);
    let key = acme_with_budget(&s, 0.005, 1);
    caught_up(&s, &s.envoy, "probe-a");
    let pass = |key: &str| {
        aipipe_tests::post_json(
            &s.envoy.url("/openai/v1/chat/completions"),
            &[("authorization", &format!("Bearer {key}"))],
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    // $0.01 reserved cannot fit in $0.005.
    let before = s.mock.received().len();
    let r = pass(&key);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "budget_exceeded");
    assert_eq!(s.mock.received().len(), before, "it reached the provider");

    put(1.0);
    caught_up(&s, &s.envoy, "probe-b");
    let r = pass(&key);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(20),
        budget(&s, "acme")["spent_usd"].as_f64() > Some(0.0),
        "the pass-through answer never reached the spend: {}",
        budget(&s, "acme")
    );
    // The reservation was settled: another fits (a leak would hold $0.01
    // per request; 150 of them would pass $1).
    for _ in 0..150 {
        assert_eq!(pass(&key).status, 200);
    }

    put(0.0);
    caught_up(&s, &s.envoy, "probe-c");
    let r = chat_as(&s.envoy, &key, &common::chat("gpt-4o-mini", "hi"));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked")
    );
}

/// `GET /usage` through Envoy answers the caller's own tenant only (its key
/// checked by the filter and again by the control plane); the operator
/// sees every tenant by day and can overwrite a day's cost, which the
/// budget and `/usage` then show.
#[test]
fn usage_through_envoy_is_the_callers_own_and_operators_can_adjust_a_day() {
    let s = CpStack::start();
    let a = s.cp.tenant("tenant-a", &[("openai", "sk-a")]);
    let b = s.cp.tenant("tenant-b", &[("openai", "sk-b")]);
    let get = |key: &str, query: &str| {
        aipipe_tests::get(
            &s.envoy.url(&format!("/usage{query}")),
            &[("authorization", &format!("Bearer {key}"))],
        )
    };
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&s.envoy, &b, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "tenant-b never served"
    );
    for i in 0..3 {
        let r = chat_as(
            &s.envoy,
            &a,
            &common::chat("gpt-4o-mini", &format!("hello {i}")),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eventually!(
        Duration::from_secs(20),
        get(&a, "?days=7").json()["usage"][0]["requests"] == 3,
        "A's usage never arrived: {}",
        get(&a, "?days=7").text()
    );
    let mine = get(&a, "?days=7");
    assert_eq!(mine.status, 200, "{}", mine.text());
    let v = mine.json();
    assert_eq!(v["tenant"], "tenant-a");
    assert_eq!(v["days"], 7);
    assert_eq!(v["usage"].as_array().unwrap().len(), 1, "{v}");
    let today = &v["usage"][0];
    assert!(today["cost"].as_f64().unwrap() > 0.0, "{v}");
    assert!(today["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["limit"], Value::Null, "no budget");
    let theirs = get(&b, "").json();
    assert_eq!(theirs["tenant"], "tenant-b");
    assert_eq!(theirs["usage"][0]["requests"], 1, "{theirs}");
    // Bad input and strangers.
    assert_eq!(get(&a, "?days=0").status, 400);
    assert_eq!(get(&a, "?days=x").status, 400);
    assert_eq!(get(&a, "?tenant=tenant-b").status, 400);
    let r = get("vk-nope", "");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = aipipe_tests::post_json(
        &s.envoy.url("/usage"),
        &[("authorization", &format!("Bearer {a}"))],
        &json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // The control plane checks the key itself too.
    let direct = aipipe_tests::get(
        &format!(
            "http://127.0.0.1:{}/internal/v1/tenant-usage?days=7",
            s.cp.internal_port
        ),
        &[("authorization", "Bearer vk-nope")],
    );
    assert_eq!(direct.status, 401, "{}", direct.text());

    // The operator: everyone by day; a day's cost overwritten.
    let all = s.cp.admin("GET", "/admin/usage?days=30", None).json();
    let ids: Vec<&str> = all["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tenant-a", "tenant-b"], "{all}");
    let date = v["usage"][0]["date"].as_str().unwrap().to_owned();
    let r = s.cp.admin(
        "POST",
        "/admin/cost",
        Some(&json!({"tenant": "tenant-a", "date": date, "cost": 1.5})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["cost"], 1.5);
    assert_eq!(get(&a, "").json()["cost"], 1.5);
    for bad in [
        json!({"tenant": "tenant-a", "date": "2026-02-30", "cost": 1}),
        json!({"tenant": "tenant-a", "date": "2999-01-01", "cost": 1}),
        json!({"tenant": "tenant-a", "date": date, "cost": -1}),
        json!({"tenant": "tenant-a", "date": date}),
    ] {
        let r = s.cp.admin("POST", "/admin/cost", Some(&bad));
        assert!(r.status == 400 || r.status == 422, "{bad}: {}", r.text());
    }
    let r = s.cp.admin(
        "POST",
        "/admin/cost",
        Some(&json!({"tenant": "nope", "date": date, "cost": 1})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(get(&a, "").json()["cost"], 1.5, "refusals changed nothing");
}

/// A local webhook receiver: records each POSTed body; answers 500 to the
/// first `fail_first` requests, 200 after.
fn webhook(fail_first: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then content-length bytes of body.
            let body = loop {
                let Ok(k) = conn.read(&mut chunk) else {
                    break None;
                };
                if k == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string(),
                        );
                    }
                }
            };
            n += 1;
            let status = if n <= fail_first {
                "500 Oops"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if let (Some(b), true) = (body, n > fail_first) {
                seen.lock().unwrap().push(b);
            }
        }
    });
    (port, got)
}

/// The control plane POSTs one JSON event when a tenant's spend reaches
/// 50 %, 80 % and 100 % of its budget — once per crossing, retried when the
/// receiver fails, never blocking ingest — and counts them in /metrics.
#[test]
fn budget_alerts_fire_once_at_each_threshold() {
    let (port, got) = webhook(1);
    let data = aipipe_tests::TempDir::new("alerts");
    let cp = aipipe_tests::ControlPlane::launch(&aipipe_tests::Launch {
        db: data.path().join("aipipe.db"),
        admin_port: 0,
        internal_port: 0,
        admin_secret: "test-admin-secret-0123456789".into(),
        internal_token: "test-internal-token-0123456789".into(),
        master_key: Some(aipipe_tests::TEST_MASTER_KEY.into()),
        env: vec![(
            "AIPIPE_BUDGET_WEBHOOK_URL".into(),
            format!("http://127.0.0.1:{port}/hooks/budget"),
        )],
    });
    cp.undate_catalog();
    let mock = aipipe_tests::Mock::start();
    // One attempt: a request reserves the named model's worst case only.
    let envoy = envoy_polling(
        &mock,
        r#"{"max_attempts": 1}"#,
        cp.internal_port,
        &cp.internal_token,
    );
    let s = CpStack { cp, mock, envoy };
    // ~9,500 n$ an answer: 50 % after about 6, 80 % after about 9.
    let key = acme_with_budget(&s, 0.0001, 30);
    caught_up(&s, &s.envoy, "probe-a");
    let mut sent = 0;
    let percent = |s: &CpStack| {
        let b = budget(s, "acme");
        b["spent_usd"].as_f64().unwrap() / b["limit_usd"].as_f64().unwrap() * 100.0
    };
    while percent(&s) < 80.0 && sent < 40 {
        let r = chat_as(
            &s.envoy,
            &key,
            &json!({"model": "gpt-4o-mini", "max_tokens": 20,
            "messages": [{"role": "user", "content": format!("count to {sent} please")}]}),
        );
        if r.status == 429 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        sent += 1;
        // Each answer's record reaches the spend before the next.
        assert_eventually!(
            Duration::from_secs(10),
            tenant_stats(&s.cp, "acme")["totals"]["requests"].as_u64() == Some(sent),
            "record {sent} never arrived"
        );
    }
    assert!(percent(&s) >= 80.0, "{} after {sent}", percent(&s));
    // 100 %: the operator lowers the limit under the spend.
    let spent = budget(&s, "acme")["spent_usd"].as_f64().unwrap();
    put_budget(&s, spent * 0.9, 30);
    let thresholds = || -> Vec<u64> {
        got.lock()
            .unwrap()
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                assert_eq!(v["type"], "budget.threshold");
                assert_eq!(v["tenant"], "acme");
                v["threshold_percent"].as_u64().unwrap()
            })
            .collect()
    };
    assert_eventually!(
        Duration::from_secs(15),
        thresholds() == [50, 80, 100],
        "alerts: {:?}",
        thresholds()
    );
    // More spend and more writes fire nothing again.
    put_budget(&s, spent * 0.8, 30);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(thresholds(), [50, 80, 100], "an alert fired twice");
    let metrics = aipipe_tests::get(&s.cp.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("aipipe_cp_budget_alerts_total{result=\"sent\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aipipe_cp_budget_alerts_total{result=\"retried\"} 1"),
        "{metrics}"
    );

    // The key's own budget, set under what the key has spent: its three
    // thresholds at once, each naming the key.
    let keys =
        s.cp.admin("GET", "/admin/tenants/acme/virtual-keys", None)
            .json();
    let key_id = keys
        .as_array()
        .or_else(|| keys["virtual_keys"].as_array())
        .and_then(|a| a.first())
        .and_then(|k| k["id"].as_str())
        .unwrap_or_else(|| panic!("{keys}"))
        .to_owned();
    let r = s.cp.admin(
        "PUT",
        &format!("/admin/tenants/acme/virtual-keys/{key_id}/budget"),
        Some(&json!({"limit_usd": spent * 0.9, "days": 30})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let for_key = || -> Vec<u64> {
        got.lock()
            .unwrap()
            .iter()
            .filter_map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                (v["virtual_key"] == key_id.as_str())
                    .then(|| v["threshold_percent"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eventually!(
        Duration::from_secs(15),
        for_key() == [50, 80, 100],
        "key alerts: {:?}",
        for_key()
    );
}
