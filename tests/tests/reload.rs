//! A reload loses no usage record (filter/README.md, "Usage and
//! accounting"): Envoy's listeners come from a file it watches (LDS,
//! `aipipe_tests::LdsEnvoy`), and the tests replace the aipipe plugin's
//! configuration, or (native build) the singleton's, while records are held,
//! then check that the control plane recorded every request, once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{
    ControlPlane, FilterBuild, LdsEnvoy, Mock, assert_eventually, custom_stat, filter_build,
    stream_lines,
};
use common::control_plane::{chat_as, tenant_stats, tenant_with_own_keys};
use serde_json::json;

/// The plugin configuration of round `n`: each round's differs, so Envoy
/// builds a new plugin and tears the last one down.
fn plugin(n: usize) -> String {
    format!(r#"{{"max_body_bytes": {}}}"#, 4_194_304 - n)
}

fn recorded(cp: &ControlPlane) -> Option<u64> {
    tenant_stats(cp, "acme")["totals"]["requests"].as_u64()
}

/// Four times: a slow stream keeps Envoy's only worker busy, so the records
/// of the plain requests answered meanwhile are held by the worker (Wasm
/// build), when the listener is updated; more requests follow on the new
/// listener; the old one is dropped once the drain time (1 s) has closed
/// its last connection, the stream's (recorded as cut short). The first
/// three updates replace the plugin's configuration (a new plugin; the old
/// one is torn down), the last one only an HTTP connection manager setting
/// (the plugin, its configuration unchanged, goes on as it was).
#[test]
fn replacing_the_plugin_configuration_loses_no_usage_record() {
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let mut lds = LdsEnvoy::start(
        "demo.yaml",
        mock.port,
        Some(plugin(0)),
        Some((cp.internal_port, cp.internal_token.clone())),
        1,
        1,
    );
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&lds.envoy, &key, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "the tenant never worked"
    );
    let mut answered = 1u64;
    mock.fault(json!({"provider": "openai", "stream_chunk_delay_ms": 150}));
    for round in 1..=4 {
        let url = lds.envoy.url("/v1/chat/completions");
        let auth = format!("Bearer {key}");
        let stream = std::thread::spawn(move || {
            let body = json!({"model": "gpt-4o-mini", "stream": true,
                "messages": [{"role": "user", "content": format!("a story {round}")}]});
            stream_lines(&url, &[("authorization", &auth)], &body).0
        });
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..5 {
            let r = chat_as(
                &lds.envoy,
                &key,
                &common::chat("gpt-4o-mini", &format!("{round}.{i}")),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            answered += 1;
        }
        assert!(!stream.is_finished(), "the stream ended too soon to tell");
        if round < 4 {
            lds.set_filter_config("aipipe", "aipipe", &plugin(round))
                .unwrap();
        } else {
            lds.edit_listeners(|listeners| {
                let aipipe = listeners.iter_mut().find(|l| l["name"] == "aipipe");
                let hcm = &mut aipipe.unwrap()["filter_chains"][0]["filters"][0]["typed_config"];
                assert!(hcm["stream_idle_timeout"].is_string());
                hcm["stream_idle_timeout"] = "301s".into();
            })
            .unwrap();
        }
        for i in 5..10 {
            let r = chat_as(
                &lds.envoy,
                &key,
                &common::chat("gpt-4o-mini", &format!("{round}.{i}")),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            answered += 1;
        }
        assert_eq!(stream.join().ok(), Some(200));
        answered += 1;
        lds.wait_drained(Duration::from_secs(10)).unwrap();
    }
    assert_eventually!(
        Duration::from_secs(10),
        recorded(&cp) == Some(answered),
        "records lost: {:?} of {answered}\n{}",
        recorded(&cp),
        lds.envoy.process.logs()
    );
}

/// Records the singleton holds because the control plane is away survive a
/// reload. In the native build the singleton is a listener's filter
/// configuration, and the test replaces it: the old one hands what it has
/// not shipped to the new one. In the Wasm build it is a bootstrap
/// extension, which no listener update reaches: the test replaces the
/// plugin's configuration, and the singleton must keep what it holds.
#[test]
fn records_waiting_for_the_control_plane_survive_a_reload() {
    let mut cp = ControlPlane::start();
    let mock = Mock::start();
    let mut lds = LdsEnvoy::start(
        "demo.yaml",
        mock.port,
        Some(plugin(0)),
        Some((cp.internal_port, cp.internal_token.clone())),
        1,
        1,
    );
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    assert_eventually!(
        Duration::from_secs(20),
        chat_as(&lds.envoy, &key, &common::chat("gpt-4o-mini", "hi")).status == 200,
        "the tenant never worked"
    );
    assert_eventually!(
        Duration::from_secs(10),
        recorded(&cp) == Some(1),
        "the first record never arrived"
    );
    let (admin, internal, data) = (cp.admin_port, cp.internal_port, cp.data.clone());
    cp.process.stop();
    let mut answered = 1u64;
    for i in 0..20 {
        let r = chat_as(
            &lds.envoy,
            &key,
            &common::chat("gpt-4o-mini", &format!("away {i}")),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        answered += 1;
    }
    let buffered = custom_stat("aipipe.usage.buffered");
    assert_eventually!(
        Duration::from_secs(5),
        lds.envoy.stat(&buffered) == Some(20),
        "the singleton never held the 20 records: {:?}",
        lds.envoy.stat(&buffered)
    );
    match filter_build() {
        FilterBuild::Native => {
            let singleton = r#"{"control_plane": {"cluster": "aipipe_control_plane", "poll_ms": 900, "token_env": "AIPIPE_INTERNAL_TOKEN"}}"#;
            lds.set_filter_config("aipipe_singleton", "aipipe_singleton", singleton)
                .unwrap();
        }
        FilterBuild::Wasm => lds
            .set_filter_config("aipipe", "aipipe", &plugin(1))
            .unwrap(),
    }
    lds.wait_drained(Duration::from_secs(10)).unwrap();
    cp = ControlPlane::start_on(data, admin, internal);
    assert_eventually!(
        Duration::from_secs(10),
        recorded(&cp) == Some(answered),
        "records lost: {:?} of {answered}\n{}",
        recorded(&cp),
        lds.envoy.process.logs()
    );
}
