//! A stop loses no usage (control-plane/README.md, "Stopping without losing
//! usage"): 200 requests answered — plain, streamed, and streams whose client
//! went away mid-answer — then the documented stop order (Envoy's listeners
//! closed, in-flight requests finished, the filter's buffer flushed, Envoy
//! stopped, then the control plane), then the control plane started again on
//! its database: all 200 are recorded, once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{ControlPlane, assert_eventually, stream_lines};
use common::control_plane::{CpStack, tenant_stats, tenant_with_own_keys};
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
