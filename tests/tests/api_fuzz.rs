//! The admin API fuzzed by Schemathesis (pinned in the Makefile, installed
//! into `.venv/`) against the control plane's own OpenAPI document: every
//! operation with generated valid and invalid input, and stateful sequences
//! built from the document's links. Nothing may answer 5xx, answer outside
//! its documented statuses, content types and schemas, work without the
//! admin secret, or accept an undocumented method; `/metrics` still answers
//! afterwards. (`POST /admin/tenants/import` takes NDJSON, which Schemathesis
//! cannot generate; `control-plane/tests/api.rs` covers it.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use aipipe_tests::{ControlPlane, Launch, TEST_MASTER_KEY, TempDir, get, repo_root};

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let st = repo_root().join(".venv/bin/schemathesis");
    assert!(
        st.exists(),
        "{} is missing: run `make test` (it installs Schemathesis into .venv/)",
        st.display()
    );
    let data = Arc::new(TempDir::new("schemathesis"));
    let secret = "schemathesis-admin-secret-0123456789";
    let mut cp = ControlPlane::launch(&Launch {
        db: data.path().join("aipipe.db"),
        admin_port: 0,
        internal_port: 0,
        admin_secret: secret.to_owned(),
        internal_token: "schemathesis-internal-token-0123456789".to_owned(),
        master_key: Some(TEST_MASTER_KEY.to_owned()),
        // The fuzzer sends wrong secrets on purpose: no throttle here.
        env: vec![("AIPIPE_ADMIN_FAILURES_PER_MINUTE".into(), "0".into())],
    });
    cp.data = data;
    let out = Command::new(&st)
        .current_dir(cp.data.path())
        .env("NO_COLOR", "1")
        .args([
            "run",
            &cp.admin_url("/admin/openapi.json"),
            "--header",
            &format!("X-Admin-Secret: {secret}"),
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--exclude-path",
            "/admin/tenants/import",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,ignored_auth,unsupported_method",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Schemathesis found problems:\n{text}");
    assert!(text.contains("passed"), "{text}");
    assert_eq!(get(&cp.admin_url("/metrics"), &[]).status, 200);
    assert_eq!(get(&cp.admin_url("/healthz"), &[]).status, 200);
    eprintln!(
        "{}",
        text.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
}
