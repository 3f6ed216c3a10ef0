//! Failover inside one request (filter/README.md, "Failover"), through real
//! Envoy and the mock's injected faults: a failing model hands the request
//! to the next candidate before any byte reached the client; the client sees
//! one success.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{
    Envoy, EnvoyConfig, Mock, free_port, post_json, render_envoy_config, stream_lines,
};
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

/// Envoy with the filter on `envoy/demo.yaml`, its YAML changed by `edit`.
fn envoy_with(mock: &Mock, plugin_config: String, edit: impl FnOnce(String) -> String) -> Envoy {
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some(plugin_config),
            with_filter: true,
            control_plane: None,
        },
    );
    Envoy::start(&edit(yaml), listener_port, admin_port, 2)
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

/// The `data:` lines of a stream with their arrival times; asserts the
/// events arrived spread out over at least `gap` each (not all at once at
/// the end, as a buffered failover answer would).
fn spread_events(lines: &[(Duration, String)], gap: Duration) -> Vec<(Duration, String)> {
    let events: Vec<_> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("data: "))
        .cloned()
        .collect();
    assert!(events.len() >= 7, "{lines:?}");
    let (first, last) = (events[0].0, events[events.len() - 1].0);
    assert!(
        last - first >= gap * (events.len() as u32 - 2),
        "events arrived bunched: first at {first:?}, last at {last:?}: {lines:?}"
    );
    events
}

#[test]
fn a_streamed_request_still_streams_after_a_failover() {
    let s = Stack::start();
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    s.mock
        .fault(json!({"provider": "anthropic", "stream_chunk_delay_ms": 200}));
    let mut body = chat("gpt-4o-mini", "tell me a story");
    body["stream"] = json!(true);
    let (status, lines) = stream_lines(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(status, 200, "{lines:?}");
    // Claude answered (its events translated), event by event as the mock
    // sent them 200 ms apart.
    let events = spread_events(&lines, Duration::from_millis(200));
    assert_eq!(events.last().unwrap().1, "data: [DONE]");
    let first: Value = serde_json::from_str(&events[0].1["data: ".len()..]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk", "{first}");
    assert!(
        first["model"].as_str().unwrap().starts_with("claude"),
        "{first}"
    );
    // The usage chunk the filter asked for stays hidden.
    assert!(
        !lines.iter().any(|(_, l)| l.contains("\"usage\":{")),
        "{lines:?}"
    );
    // One redirect (gpt-4o-mini failed; the next candidate is Claude
    // Sonnet 5.5, cheaper than gpt-4o), none handed back.
    let stat = |name: &str| {
        s.envoy.stat(&aipipe_tests::custom_stat(&format!(
            "aipipe.failover.{name}"
        )))
    };
    assert_eq!(stat("redirects"), Some(1));
    assert_eq!(stat("unfollowed"), Some(0));
    let hit = s.mock.received();
    let providers: Vec<_> = hit
        .iter()
        .map(|r| r["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.first(), Some(&"openai"), "{providers:?}");
    assert_eq!(providers.last(), Some(&"anthropic"), "{providers:?}");
    // The redirected attempt carries Anthropic's key only, the client's
    // body translated afresh, and nothing internal.
    let last = hit.last().unwrap();
    assert_eq!(last["x_api_key"], "sk-acme-anthropic", "{last}");
    assert_eq!(last["authorization"], Value::Null, "{last}");
    assert_eq!(last["path"], "/v1/messages", "{last}");
    assert_eq!(last["body"]["stream"], true, "{last}");
    assert!(last["body"]["messages"].is_array(), "{last}");
    for r in &hit {
        assert_eq!(r["internal_headers"], json!([]), "{r}");
    }
}

#[test]
fn an_anthropic_client_streams_after_a_failover_to_an_openai_model() {
    let s = Stack::start();
    s.mock
        .fault(json!({"provider": "anthropic", "status": 529}));
    s.mock
        .fault(json!({"provider": "openai", "stream_chunk_delay_ms": 200}));
    let body = json!({
        "model": "claude-opus-4-5",
        "max_tokens": 200,
        "stream": true,
        "messages": [{"role": "user", "content": "tell me a story"}],
    });
    let headers = [
        ("x-api-key", ACME.key),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "some-beta-2025-01-01"),
    ];
    let (status, lines) = stream_lines(&s.envoy.url("/v1/messages"), &headers, &body);
    assert_eq!(status, 200, "{lines:?}");
    // OpenAI's chunks, as Anthropic events, still spread out.
    let events = spread_events(&lines, Duration::from_millis(200));
    assert!(events[0].1.contains("message_start"), "{events:?}");
    assert!(
        lines.iter().any(|(_, l)| l == "event: message_stop"),
        "{lines:?}"
    );
    let hit = s.mock.received();
    let first = hit.first().unwrap();
    assert_eq!(first["provider"], "anthropic", "{first}");
    assert_eq!(first["x_api_key"], "sk-acme-anthropic", "{first}");
    let last = hit.last().unwrap();
    assert_eq!(last["provider"], "openai", "{last}");
    // The failed attempt's Anthropic key and headers stay behind.
    assert_eq!(last["authorization"], "Bearer sk-acme-openai", "{last}");
    assert_eq!(last["x_api_key"], Value::Null, "{last}");
    assert_eq!(last["anthropic_version"], Value::Null, "{last}");
    assert_eq!(last["path"], "/v1/chat/completions", "{last}");
    assert!(last["body"]["messages"].is_array(), "{last}");
    assert_eq!(last["body"]["stream"], true, "{last}");
    for r in &hit {
        assert_eq!(r["internal_headers"], json!([]), "{r}");
    }
}

#[test]
fn ollama_and_responses_streams_still_stream_after_a_failover() {
    let s = Stack::start();
    s.mock.fault(json!({"provider": "openai", "status": 503}));
    s.mock
        .fault(json!({"provider": "anthropic", "stream_chunk_delay_ms": 200}));
    // Ollama streams NDJSON by default; Claude answers after the redirects.
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tell me a story"}]});
    let (status, lines) = stream_lines(&s.envoy.url("/api/chat"), &ACME.auth(), &body);
    assert_eq!(status, 200, "{lines:?}");
    let first = lines.first().map(|(at, _)| *at).unwrap_or_default();
    let last = lines.last().map(|(at, _)| *at).unwrap_or_default();
    assert!(
        last - first >= Duration::from_millis(400),
        "lines arrived bunched: {lines:?}"
    );
    let done: Value = serde_json::from_str(&lines.last().unwrap().1).unwrap();
    assert_eq!(done["done"], true, "{done}");
    assert!(
        done["model"].as_str().unwrap().starts_with("claude"),
        "{done}"
    );
    assert!(done["eval_count"].as_u64().unwrap() > 0, "{done}");

    // The Responses API, streamed: events, ending in response.completed.
    let body = json!({"model": "gpt-4o-mini", "input": "tell me a story", "stream": true});
    let (status, lines) = stream_lines(&s.envoy.url("/v1/responses"), &ACME.auth(), &body);
    assert_eq!(status, 200, "{lines:?}");
    // One Anthropic event may become several Responses events: the text
    // deltas are what must arrive spread out, as the mock sent them.
    let deltas: Vec<Duration> = lines
        .iter()
        .filter(|(_, l)| l == "event: response.output_text.delta")
        .map(|(at, _)| *at)
        .collect();
    assert!(deltas.len() >= 5, "{lines:?}");
    assert!(
        deltas
            .windows(2)
            .all(|w| w[1] - w[0] >= Duration::from_millis(150)),
        "deltas arrived bunched: {deltas:?}"
    );
    assert!(lines[0].1.contains("response.created"), "{lines:?}");
    assert!(
        lines.iter().any(|(_, l)| l == "event: response.completed"),
        "{lines:?}"
    );
    let stat = |name: &str| {
        s.envoy.stat(&aipipe_tests::custom_stat(&format!(
            "aipipe.failover.{name}"
        )))
    };
    // One for each request: Claude Sonnet 5.5 follows gpt-4o-mini.
    assert_eq!(stat("redirects"), Some(2));
    assert_eq!(stat("unfollowed"), Some(0));
}

/// The rendered config without the route's `internal_redirect_policy`
/// block: Envoy then hands the upstream filter's 307 back to the filter,
/// which calls the next candidate.
fn without_redirect_policy(yaml: String) -> String {
    let (start, end) = (
        "internal_redirect_policy:",
        "allowed_route_names: [aipipe_failover]",
    );
    assert!(yaml.contains(start) && yaml.contains(end));
    let mut inside = false;
    let mut out = String::new();
    for line in yaml.lines() {
        let t = line.trim();
        if t == start {
            inside = true;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
        if t == end {
            inside = false;
        }
    }
    out
}

#[test]
fn without_the_redirect_policy_failover_still_answers_by_call() {
    let mock = Mock::start();
    let envoy = envoy_with(
        &mock,
        with(&[("failover_redirect", json!("all"))]),
        without_redirect_policy,
    );
    mock.fault(json!({"provider": "openai", "status": 503}));
    let r = post_json(
        &envoy.url("/v1/chat/completions"),
        &ACME.auth(),
        &chat("auto", "hi"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-failover"), Some("gpt-4o-mini"));
    assert_eq!(r.header("x-aipipe-provider"), Some("anthropic"));
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("x-aipipe-failed-status"), None);
    assert_eq!(r.json()["object"], "chat.completion");
    let mut body = chat("auto", "tell me a story");
    body["stream"] = json!(true);
    complete_stream(&envoy.url("/v1/chat/completions"), &ACME.auth(), &body);
    // What tells an operator the config needs a look.
    let stat = |name: &str| {
        envoy.stat(&aipipe_tests::custom_stat(&format!(
            "aipipe.failover.{name}"
        )))
    };
    assert!(
        stat("unfollowed").unwrap_or(0) >= 2,
        "{:?}",
        stat("unfollowed")
    );
    assert_eq!(stat("redirects"), Some(0));
}

#[test]
fn a_providers_own_redirect_goes_to_the_client_not_round_envoy() {
    let s = Stack::start();
    s.mock.fault(json!({"provider": "openai", "status": 307}));
    for url in [s.chat_url(), s.envoy.url("/openai/v1/chat/completions")] {
        s.mock.clear_received();
        let r = post_json(&url, &ACME.auth(), &chat("gpt-4o-mini", "hi"));
        assert_eq!(r.status, 307, "{url}: {}", r.text());
        assert_eq!(
            r.header("location"),
            Some("http://files.example.com/mock/redirected"),
            "{url}"
        );
        assert_eq!(r.header("x-aipipe-provider-location"), None, "{url}");
        assert_eq!(r.header("x-aipipe-failover"), None, "{url}");
        assert_eq!(s.mock.received().len(), 1, "{url}");
    }
}

#[test]
fn a_forged_failover_redirect_is_refused() {
    let s = Stack::start();
    s.mock.clear_received();
    let forged = format!(
        "{}?aipipe-failover={}&status=503",
        s.chat_url(),
        "0123456789abcdef0123456789abcdef"
    );
    for auth in [ACME.auth(), Vec::new()] {
        let r = post_json(&forged, &auth, &chat("auto", "hi"));
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failover redirect"),
            "{}",
            r.text()
        );
    }
    assert!(s.mock.received().is_empty());
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
    let envoy = envoy_with(
        &mock,
        with(&[("attempt_timeout_ms", json!(1000))]),
        |yaml| yaml.replace(" timeout: 300s", " timeout: 1s"),
    );
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
