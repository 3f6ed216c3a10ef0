//! Failover inside one request (SPEC §10), through real Envoy and the mock's
//! injected faults: a failing model hands the request to the next candidate
//! before any byte reached the client; the client sees one success.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_tests::{Envoy, EnvoyConfig, Mock, free_port, post_json, render_envoy_config};
use common::{ACME, BETA, Stack, chat, complete_stream, test_plugin_config};
use serde_json::{Value, json};

/// The test plugin configuration with some fields added.
fn with(fields: &[(&str, Value)]) -> String {
    let mut config: Value = serde_json::from_str(&test_plugin_config()).unwrap();
    for (k, v) in fields {
        config[*k] = v.clone();
    }
    config.to_string()
}

fn providers_hit(s: &Stack) -> Vec<String> {
    s.mock
        .received()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["provider"].as_str().unwrap(),
                r["model"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_failing_provider_is_failed_over_within_the_request() {
    let s = Stack::start();
    for status in [503, 429, 500] {
        s.mock.clear_received();
        s.mock
            .fault(json!({"provider": "openai", "status": status}));
        let r = post_json(&s.chat_url(), &ACME.auth(), &chat("auto", "hi"));
        assert_eq!(r.status, 200, "{status}: {}", r.text());
        assert_eq!(
            r.header("x-aipipe-failover"),
            Some("gpt-4o-mini"),
            "{status}"
        );
        assert_eq!(r.header("x-aipipe-provider"), Some("anthropic"), "{status}");
        assert_eq!(r.header("x-aipipe-cache"), Some("bypass"), "{status}");
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{v}");
        assert!(v["choices"][0]["message"]["content"].is_string());
        let hit = providers_hit(&s);
        assert_eq!(
            hit.first().map(String::as_str),
            Some("openai:gpt-4o-mini"),
            "{hit:?}"
        );
        assert!(hit.last().unwrap().starts_with("anthropic:"), "{hit:?}");
        s.mock.clear_faults();
    }
}

#[test]
fn a_streamed_request_still_streams_after_a_failover() {
    let s = Stack::start();
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    let mut body = chat("gpt-4o-mini", "tell me a story");
    body["stream"] = json!(true);
    let text = complete_stream(&s.chat_url(), &ACME.auth(), &body);
    // The usage chunk the filter asked for stays hidden.
    assert!(!text.iter().any(|l| l.contains("\"usage\":{")), "{text:?}");
}

#[test]
fn when_every_candidate_fails_the_error_names_each_attempt() {
    let s = Stack::start();
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    let r = post_json(&s.chat_url(), &BETA.auth(), &chat("auto", "hi"));
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gpt-4o-mini (openai) answered HTTP 503"),
        "{message}"
    );
    assert_eq!(v["error"]["code"], "upstream_failed");
    // A client error is the client's: no failover.
    s.mock.clear_faults();
    s.mock.fault(json!({"provider": "openai", "status": 400}));
    s.mock.clear_received();
    let r = post_json(&s.chat_url(), &ACME.auth(), &chat("gpt-4o-mini", "hi"));
    assert_eq!(r.status, 400);
    assert_eq!(s.mock.received().len(), 1);
}

#[test]
fn a_slow_provider_past_the_timeout_is_failed_over() {
    let mock = Mock::start();
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some(with(&[("attempt_timeout_ms", json!(1000))])),
            with_filter: true,
            control_plane: None,
        },
    )
    .replace("timeout: 300s", "timeout: 1s");
    let envoy = Envoy::start(&yaml, listener_port, admin_port, 2);
    // Every OpenAI model is slow: the first attempt meets the route's
    // timeout, the second (gpt-4o) the failover attempt's, Claude answers.
    mock.fault(json!({"provider": "openai", "delay_ms": 5000}));
    let url = envoy.url("/v1/chat/completions");
    let r = post_json(&url, &ACME.auth(), &chat("auto", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-failover"), Some("gpt-4o-mini"));
    assert_eq!(r.header("x-aipipe-provider"), Some("anthropic"));
    let v: Value = r.json();
    assert_eq!(v["object"], "chat.completion");

    // Everything slow: 504, naming each timeout.
    mock.fault(json!({"provider": "anthropic", "delay_ms": 5000}));
    let r = post_json(&url, &ACME.auth(), &chat("auto", "hi"));
    assert_eq!(r.status, 504, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("gpt-4o-mini (openai) timed out"),
        "{message}"
    );
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
}

/// The stack with a short penalty decay, so recovery shows within seconds.
fn stack_with(fields: &[(&str, Value)]) -> Stack {
    let mock = Mock::start();
    let envoy = Envoy::start_rendered("demo.yaml", mock.port, Some(with(fields)), true, 2);
    Stack { mock, envoy }
}

/// Sends a greeting; returns (answering provider, whether it failed over).
fn greet(s: &Stack) -> (String, bool) {
    let r = post_json(&s.chat_url(), &ACME.auth(), &chat("auto", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    (
        r.header("x-aipipe-provider").unwrap().to_owned(),
        r.header("x-aipipe-failover").is_some(),
    )
}

#[test]
fn traffic_moves_away_from_a_failing_provider_and_back_after_it_recovers() {
    let s = stack_with(&[("penalty_decay_ms", json!(500))]);
    assert_eq!(greet(&s), ("openai".to_owned(), false));
    for status in [503, 429] {
        s.mock
            .fault(json!({"provider": "openai", "status": status}));
        // Every request is answered; within a few the failing provider is no
        // longer even tried first (no failover needed).
        let mut moved_after = None;
        for i in 1..=6 {
            let (provider, failed_over) = greet(&s);
            assert_eq!(provider, "anthropic", "{status}: request {i}");
            if !failed_over {
                moved_after = Some(i);
                break;
            }
        }
        let moved_after = moved_after.unwrap_or_else(|| panic!("{status}: traffic never moved"));
        assert!(
            moved_after <= 4,
            "{status}: moved after {moved_after} requests"
        );
        let metrics = s.envoy.stats_text("aipipe");
        assert!(metrics.contains("gpt-4o-mini"), "{metrics}");

        // Recovered: once the penalty decays, the cheap model wins again.
        s.mock.clear_faults();
        let back = aipipe_tests::eventually(std::time::Duration::from_secs(15), || {
            std::thread::sleep(std::time::Duration::from_millis(250));
            (greet(&s) == ("openai".to_owned(), false)).then_some(())
        });
        assert!(back.is_some(), "{status}: traffic never came back");
    }
}
