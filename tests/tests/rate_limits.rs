//! Rate limits (control-plane/README.md, "Rate limits") through real Envoy
//! (two workers) and the control plane: of a burst, exactly the limit is
//! admitted per Envoy, the rest get 429 `rate_limited` with `retry-after`;
//! OpenAI's `x-ratelimit-*` headers count down; tokens per minute and a
//! virtual key's own limits likewise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{Reply, assert_eventually};
use common::control_plane::{CpStack, chat_as, envoy_polling};
use serde_json::json;

fn put(s: &CpStack, path: &str, body: serde_json::Value) {
    let r = s.cp.admin("PUT", path, Some(&body));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

/// Creates `id` with an OpenAI key and a virtual key, after `limits` (so an
/// Envoy serving the key holds them); returns (key, key id).
fn tenant_with_limits(s: &CpStack, id: &str, limits: serde_json::Value) -> (String, String) {
    let r = s.cp.admin(
        "POST",
        "/admin/tenants",
        Some(&json!({"id": id, "name": id})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    put(s, &format!("/admin/tenants/{id}/limits"), limits);
    let r = s.cp.admin(
        "POST",
        &format!("/admin/tenants/{id}/keys"),
        Some(&json!({"openai": format!("sk-{id}")})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.cp.admin(
        "POST",
        &format!("/admin/tenants/{id}/virtual-keys"),
        Some(&json!({"name": "t"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

fn hi(i: usize) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 50,
        "messages": [{"role": "user", "content": format!("hello number {i}")}]})
}

fn burst(envoy: &aipipe_tests::Envoy, key: &str, n: usize) -> Vec<Reply> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| scope.spawn(move || chat_as(envoy, key, &hi(i))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn requests_per_minute_admit_exactly_the_limit_per_envoy_and_count_down() {
    let s = CpStack::start();
    let (key, _) = tenant_with_limits(&s, "acme", json!({"requests_per_minute": 10}));
    let second = envoy_polling(&s.mock, "{}", s.cp.internal_port, &s.cp.internal_token);
    // One probe each to see the key served; they count: 8 left per Envoy.
    for envoy in [&s.envoy, &second] {
        assert_eventually!(
            Duration::from_secs(20),
            chat_as(envoy, &key, &hi(0)).status == 200,
            "the key never served"
        );
    }
    let mut probes = Vec::new();
    for envoy in [&s.envoy, &second] {
        let r = chat_as(envoy, &key, &hi(1));
        assert_eq!(r.status, 200, "{}", r.text());
        probes.push(
            r.header("x-ratelimit-remaining-requests")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    for (envoy, left) in [&s.envoy, &second].into_iter().zip(probes) {
        assert_eq!(left, 8, "two requests counted at this Envoy");
        let replies = burst(envoy, &key, 30);
        let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 8, "exactly the limit admitted");
        let mut remaining: Vec<u32> = ok
            .iter()
            .map(|r| {
                assert_eq!(r.header("x-ratelimit-limit-requests"), Some("10"));
                assert!(
                    r.header("x-ratelimit-reset-requests")
                        .unwrap()
                        .ends_with('s')
                );
                r.header("x-ratelimit-remaining-requests")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        remaining.sort_unstable();
        assert_eq!(
            remaining,
            [0, 1, 2, 3, 4, 5, 6, 7],
            "each admitted one counts down"
        );
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(r.status, 429, "{}", r.text());
            assert_eq!(r.json()["error"]["code"], "rate_limited");
            let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&after), "{after}");
        }
    }
}

#[test]
fn tokens_per_minute_and_a_keys_own_limit() {
    let s = CpStack::start();
    // "hello number N" is 4 tokens + 4 overhead, + max_tokens 50: 58
    // reserved; settled to what the mock counted (8 prompt + a short answer).
    let (key, _) = tenant_with_limits(&s, "acme", json!({"tokens_per_minute": 300}));
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&s.envoy, &key, &hi(0)).status == 200,
        "the key never served"
    );
    let mut admitted = 1;
    let mut last_remaining = None;
    for i in 1..40 {
        let r = chat_as(&s.envoy, &key, &hi(i));
        if r.status == 200 {
            admitted += 1;
            last_remaining = r.header("x-ratelimit-remaining-tokens").map(str::to_owned);
            assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("300"));
            assert_eq!(
                r.header("x-ratelimit-limit-requests"),
                None,
                "no request limit"
            );
        } else {
            assert_eq!(r.status, 429, "{}", r.text());
            assert_eq!(r.json()["error"]["code"], "rate_limited");
            assert!(
                r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("300 tokens per minute")
            );
            break;
        }
    }
    // Settled to real counts (~10 a request), more than the ~18 reserved
    // would allow (5), fewer than the limit over the smallest request.
    assert!(
        (6..=12).contains(&admitted),
        "{admitted} admitted, last remaining {last_remaining:?}"
    );

    // A key of its own limit, on top of its tenant's (none on requests).
    let (other, other_id) = tenant_with_limits(&s, "beta", json!({"tokens_per_minute": 1000000}));
    put(
        &s,
        &format!("/admin/tenants/beta/virtual-keys/{other_id}/limits"),
        json!({"requests_per_minute": 3}),
    );
    let r = s.cp.admin(
        "GET",
        &format!("/admin/tenants/beta/virtual-keys/{other_id}/limits"),
        None,
    );
    assert_eq!(
        r.json(),
        json!({"requests_per_minute": 3, "tokens_per_minute": 0})
    );
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&s.envoy, &other, &hi(0)).header("x-ratelimit-limit-requests") == Some("3"),
        "the key's limit never arrived"
    );
    let codes: Vec<u16> = (0..5)
        .map(|i| chat_as(&s.envoy, &other, &hi(i)).status)
        .collect();
    assert!(
        codes.iter().filter(|&&c| c == 429).count() >= 3,
        "{codes:?}"
    );
    let r = chat_as(&s.envoy, &other, &hi(9));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("virtual key"),
        "{}",
        r.text()
    );

    // Bad input changes nothing.
    for bad in [
        json!({}),
        json!({"requests_per_minute": -1}),
        json!({"requests_per_minute": 1, "extra": true}),
        json!({"tokens_per_minute": 1e15}),
    ] {
        let r = s.cp.admin("PUT", "/admin/tenants/acme/limits", Some(&bad));
        assert!(r.status == 400 || r.status == 422, "{bad}: {}", r.text());
    }
    assert_eq!(
        s.cp.admin(
            "PUT",
            "/admin/tenants/nope/limits",
            Some(&json!({"requests_per_minute": 1}))
        )
        .status,
        404
    );
    assert_eq!(
        s.cp.admin(
            "GET",
            &format!("/admin/tenants/acme/virtual-keys/{other_id}/limits"),
            None
        )
        .status,
        404
    );
    assert_eq!(
        s.cp.admin("GET", "/admin/tenants/acme/limits", None).json(),
        json!({"requests_per_minute": 0, "tokens_per_minute": 300})
    );
}
