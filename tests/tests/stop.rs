//! A stop loses no usage (control-plane/README.md, "Stopping without losing
//! usage"): 200 requests answered — plain, streamed, and streams whose client
//! went away mid-answer — then the documented stop order (Envoy's listeners
//! closed, in-flight requests finished, the filter's buffer flushed, Envoy
//! stopped, then the control plane), then the control plane started again on
//! its database: all 200 are recorded, once. And the same through a
//! container's stop: SIGTERM to `envoy-graceful`, which runs Envoy in the
//! compose file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{ControlPlane, Envoy, Mock, assert_eventually, stream_lines};
use common::control_plane::{CpStack, chat_as, tenant_stats, tenant_with_own_keys};
use serde_json::json;

/// A streamed request whose client reads the head of the answer and hangs
/// up.
fn stream_and_hang_up(port: u16, key: &str, i: usize) {
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": format!("tell me a long story {i}")}]});
    let head = common::read_head_and_hang_up(port, key, &body);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn the_documented_stop_loses_no_usage_record() {
    let mut s = CpStack::start();
    let key = tenant_with_own_keys(&s.cp, "acme", &["openai", "anthropic"]);
    assert_eventually!(
        Duration::from_secs(20),
        s.chat(&key, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "the tenant never worked"
    );
    let url = s.envoy.url("/v1/chat/completions");
    let auth = format!("Bearer {key}");
    for i in 0..99 {
        let r = s.chat(&key, &common::chat("gpt-4o-mini", &format!("plain {i}")));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for i in 0..80 {
        let body = json!({"model": "auto", "stream": true,
            "messages": [{"role": "user", "content": format!("streamed {i}")}]});
        let (status, _) = stream_lines(&url, &[("authorization", &auth)], &body);
        assert_eq!(status, 200);
    }
    // The last 20 are streams paced 100 ms per event, their clients gone
    // after the head: the stop begins while their answers still run.
    s.mock
        .fault(json!({"provider": "openai", "stream_chunk_delay_ms": 100}));
    for i in 0..20 {
        stream_and_hang_up(s.envoy.port, &key, i);
    }

    s.envoy
        .drain_usage(Duration::from_millis(2500), Duration::from_secs(30))
        .unwrap();
    s.envoy.process.stop();
    let (admin, internal, data) = (s.cp.admin_port, s.cp.internal_port, s.cp.data.clone());
    s.cp.process.stop();

    s.cp = ControlPlane::start_on(data, admin, internal);
    let requests = tenant_stats(&s.cp, "acme")["totals"]["requests"].as_u64();
    assert_eq!(requests, Some(200), "records lost or counted twice");
}

/// `docker compose down` sends Envoy's container SIGTERM, on which Envoy
/// itself exits at once (with no supervisor this test sees 0 of 50
/// records). Run as the compose file runs it, under `envoy-graceful`, it
/// drains first: every answer given, streams still running included, is
/// recorded, and it exits 0.
#[test]
fn sigterm_to_envoy_graceful_loses_no_usage_record() {
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let mut envoy = Envoy::start_rendered_under(
        "demo.yaml",
        mock.port,
        Some("{}".into()),
        true,
        Some((cp.internal_port, cp.internal_token.clone())),
        2,
        Some(std::path::Path::new(env!("CARGO_BIN_EXE_envoy-graceful"))),
    );
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&envoy, &key, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "the tenant never worked"
    );
    for i in 0..39 {
        let r = chat_as(
            &envoy,
            &key,
            &common::chat("gpt-4o-mini", &format!("plain {i}")),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Ten streams paced 100 ms per event, their clients gone after the
    // head: SIGTERM arrives while their answers still run.
    mock.fault(json!({"provider": "openai", "stream_chunk_delay_ms": 100}));
    for i in 0..10 {
        stream_and_hang_up(envoy.port, &key, i);
    }
    let status = envoy.process.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "envoy-graceful: {status:?}\n{}",
        envoy.process.logs()
    );
    let requests = tenant_stats(&cp, "acme")["totals"]["requests"].as_u64();
    assert_eq!(requests, Some(50), "records lost or counted twice");
}

/// A worker holds usage records while its streams go on (the Wasm build
/// sends them to the singleton as one message when none is in flight:
/// `aipipe_core::flow::batch`), but not for long: with a slow stream open on
/// Envoy's only worker, a plain request's record reaches the control plane
/// while the stream still runs.
#[test]
fn a_record_is_shipped_while_the_worker_serves_a_long_stream() {
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let envoy = Envoy::start_rendered_with(
        "demo.yaml",
        mock.port,
        Some("{}".into()),
        true,
        Some((cp.internal_port, cp.internal_token.clone())),
        1,
    );
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&envoy, &key, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "the tenant never worked"
    );
    assert_eventually!(
        Duration::from_secs(10),
        tenant_stats(&cp, "acme")["totals"]["requests"].as_u64() == Some(1),
        "the first record never arrived"
    );
    // About 14 events 600 ms apart: the stream runs for some 8 s.
    mock.fault(json!({"provider": "openai", "stream_chunk_delay_ms": 600}));
    let url = envoy.url("/v1/chat/completions");
    let auth = format!("Bearer {key}");
    let stream = std::thread::spawn(move || {
        let body = json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "tell me a long story"}]});
        stream_lines(&url, &[("authorization", &auth)], &body).0
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = chat_as(
        &envoy,
        &key,
        &common::chat("gpt-4o-mini", "while it streams"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        Duration::from_secs(4),
        tenant_stats(&cp, "acme")["totals"]["requests"].as_u64() == Some(2),
        "the plain request's record was held while the stream ran"
    );
    assert!(!stream.is_finished(), "the stream ended too soon to tell");
    assert_eq!(stream.join().ok(), Some(200));
    assert_eventually!(
        Duration::from_secs(10),
        tenant_stats(&cp, "acme")["totals"]["requests"].as_u64() == Some(3),
        "the stream's record never arrived"
    );
}
