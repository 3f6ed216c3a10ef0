//! The native build never takes Envoy down: a panic inside one of its hooks
//! (forced here by the test-only `panic-probe` build of the module, `make
//! native-probe`) is caught, answers that request 500 with the usual error
//! shape, is counted, and every request after it is served as before, on
//! every worker. The Wasm build's counterpart (a crashed VM is reloaded) is
//! bad_input.rs. This test runs against the native build whatever
//! `AIPIPE_FILTER` says: it is about that build only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_tests::{
    Envoy, EnvoyConfig, FilterBuild, Mock, free_port, native_path, post_json,
    render_envoy_config_as, repo_root,
};
use common::{ACME, chat, test_plugin_config};

#[test]
fn a_panicking_hook_answers_500_and_envoy_keeps_serving() {
    let probe = repo_root().join("target/probe/native/libaipipe_native.so");
    assert!(
        probe.exists(),
        "{} is missing: run `make native-probe`",
        probe.display()
    );
    let mock = Mock::start();
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config_as(
        FilterBuild::Native,
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some(test_plugin_config()),
            with_filter: true,
            control_plane: None,
        },
    )
    .replace(
        &native_path().display().to_string(),
        &probe.display().to_string(),
    );
    assert!(yaml.contains("target/probe/native"));
    let mut envoy = Envoy::start(&yaml, listener_port, admin_port, 2);
    let url = envoy.url("/v1/chat/completions");
    let panics = |e: &Envoy| e.stat("dynamicmodulescustom.aipipe.native.panics");
    assert_eq!(panics(&envoy), Some(0));

    let mut probe_headers = ACME.auth();
    probe_headers.push(("x-aipipe-panic-probe", "1"));
    for i in 1..=3 {
        let r = post_json(&url, &probe_headers, &chat("auto", "hello"));
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "internal_error", "{}", r.text());
        assert_eq!(panics(&envoy), Some(i));
    }
    // Envoy is alive and every worker still serves (fresh connections
    // spread over both).
    for _ in 0..20 {
        let r = post_json(&url, &ACME.auth(), &chat("auto", "hello"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-aipipe-model").is_some());
    }
    assert!(envoy.process.alive(), "Envoy died");
    assert_eq!(panics(&envoy), Some(3));
    assert!(
        envoy.process.logs().contains("aipipe: panic at "),
        "the panic was not logged"
    );
}
