//! Bad input and errors (filter/README.md) through real Envoy: every bad
//! input the filter alone handles gets its clear OpenAI-shaped error, nothing
//! reaches a provider, and no input — however hostile — kills a worker's VM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_tests::{Reply, post_json, raw_exchange, request};
use common::{ACME, BETA, KEYLESS, MAX_BODY, OFF, Stack, chat};
use serde_json::json;

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let e = &r.json()["error"];
    assert_eq!(e["code"], code, "{}", r.text());
    assert!(
        e["type"].is_string() && e["message"].as_str().is_some_and(|m| m.len() > 10),
        "{}",
        r.text()
    );
    assert!(r.header("x-aipipe-request-id").is_some());
}

fn post_raw(s: &Stack, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    request("POST", &s.chat_url(), headers, Some(body))
}

#[test]
fn malformed_bodies_get_400_with_the_exact_problem_and_nothing_is_forwarded() {
    let s = Stack::start();
    let auth = ACME.auth();
    let cases: [(&[u8], &str); 9] = [
        (b"this is not json", "must be a JSON object"),
        (b"{\"model\":\"auto\",\"messages\":[", "not valid JSON"),
        (b"{\"model\":\"auto\"}", "missing field `messages`"),
        (b"{\"messages\":[]}", "at least one message"),
        (
            b"{\"messages\":\"hello\"}",
            "invalid type: string \"hello\", expected a sequence",
        ),
        (
            b"{\"messages\":[{\"role\":\"user\",\"content\":42}]}",
            "expected a string or an array of content parts",
        ),
        (
            b"{\"messages\":[{\"content\":\"hi\"}]}",
            "missing field `role`",
        ),
        (
            b"{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            "`model` must be a string",
        ),
        (
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":\"lots\"}",
            "invalid type: string \"lots\"",
        ),
    ];
    for (body, expected) in cases {
        let r = post_raw(&s, &auth, body);
        assert_error(&r, 400, "invalid_request");
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(expected),
            "{}: {message}",
            String::from_utf8_lossy(body)
        );
    }
    let r = post_raw(&s, &auth, b"");
    assert_error(&r, 400, "invalid_request");
    assert!(
        s.mock.received().is_empty(),
        "a malformed request reached a provider"
    );
}

#[test]
fn oversize_bodies_get_413_declared_or_streamed() {
    let s = Stack::start();
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(MAX_BODY)}]}).to_string();
    // Declared: refused from the content-length alone.
    let r = post_raw(&s, &ACME.auth(), big.as_bytes());
    assert_error(&r, 413, "request_too_large");
    // Chunked, no length: refused once the buffered body passes the limit.
    let mut raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        ACME.key
    )
    .into_bytes();
    for part in big.as_bytes().chunks(64 * 1024) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_exchange(s.envoy.port, &raw), Some(413));
    // Just under the limit still goes through (to a named model: ~260k
    // tokens is more context than any model BETA has a key for, so auto
    // routing answers context_length_exceeded there; ACME's keys reach
    // Claude 5.x's 1M-token window).
    let fits = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(MAX_BODY - 200)}]});
    assert_eq!(post_json(&s.chat_url(), &ACME.auth(), &fits).status, 200);
    assert_eq!(s.mock.received().len(), 1);
    let fits_auto = json!({"messages": [{"role": "user", "content": "x".repeat(MAX_BODY - 200)}]});
    assert_error(
        &post_json(&s.chat_url(), &BETA.auth(), &fits_auto),
        400,
        "context_length_exceeded",
    );
    let r = post_json(&s.chat_url(), &ACME.auth(), &fits_auto);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-aipipe-model").unwrap().ends_with("-5-5"));
}

#[test]
fn missing_unknown_and_disabled_keys_are_refused() {
    let s = Stack::start();
    let body = chat("auto", "hi");
    assert_error(
        &post_json(&s.chat_url(), &[], &body),
        401,
        "missing_api_key",
    );
    assert_error(
        &post_json(
            &s.chat_url(),
            &[("authorization", "Bearer vk-nobody")],
            &body,
        ),
        401,
        "invalid_api_key",
    );
    assert_error(
        &post_json(
            &s.chat_url(),
            &[("authorization", "Basic dXNlcjpwYXNz")],
            &body,
        ),
        401,
        "missing_api_key",
    );
    assert_error(
        &post_json(&s.chat_url(), &[("x-api-key", "sk-real-openai-key")], &body),
        401,
        "invalid_api_key",
    );
    // A provider key is not a virtual key, even a tenant's own.
    assert_error(
        &post_json(
            &s.chat_url(),
            &[("authorization", "Bearer sk-acme-openai")],
            &body,
        ),
        401,
        "invalid_api_key",
    );
    assert_error(
        &post_json(&s.chat_url(), &OFF.auth(), &body),
        403,
        "tenant_disabled",
    );
    // A spoofed tenant header does not authenticate anyone.
    assert_error(
        &post_json(&s.chat_url(), &[("x-tenant-id", "acme")], &body),
        401,
        "missing_api_key",
    );
    assert!(s.mock.received().is_empty());
}

#[test]
fn spoofed_internal_headers_are_stripped_and_change_nothing() {
    let s = Stack::start();
    let mut headers = BETA.auth();
    headers.extend([
        ("x-aipipe-cluster", "anthropic"),
        ("x-tenant-id", "acme"),
        ("x-aipipe-provider", "anthropic"),
        ("x-aipipe-model", "claude-opus-4-5"),
    ]);
    let r = post_json(&s.chat_url(), &headers, &chat("gpt-4o-mini", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["provider"], "openai");
    // Beta's own key, not acme's: the tenant header was ignored.
    assert_eq!(got["authorization"], "Bearer sk-beta-openai");

    // An unknown path with a spoofed cluster header is refused, not proxied.
    let r = request(
        "POST",
        &s.envoy.url("/v1/embeddings"),
        &[
            ("authorization", "Bearer vk-acme"),
            ("x-aipipe-cluster", "openai"),
        ],
        Some(b"{}"),
    );
    assert_error(&r, 404, "unknown_url");
    assert_eq!(s.mock.received().len(), 1);
}

#[test]
fn unknown_models_get_404_model_not_found() {
    let s = Stack::start();
    for model in [
        "gpt-99",
        "openai/claude-opus-4-5",
        "nobody/gpt-4o",
        "claude-haiku-4-5",
        // Retired by Anthropic on 2026-11-30: no longer in the catalog.
        "claude-sonnet-4-5",
    ] {
        let r = post_json(&s.chat_url(), &ACME.auth(), &chat(model, "hi"));
        assert_error(&r, 404, "model_not_found");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(model)
        );
    }
    assert!(s.mock.received().is_empty());
}

#[test]
fn a_tenant_without_usable_provider_keys_gets_503_naming_the_key() {
    let s = Stack::start();
    let r = post_json(&s.chat_url(), &KEYLESS.auth(), &chat("auto", "hi"));
    assert_error(&r, 503, "no_provider_key");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openai")
    );
    let r = post_json(&s.chat_url(), &BETA.auth(), &chat("claude-opus-4-5", "hi"));
    assert_error(&r, 503, "no_provider_key");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`anthropic` provider key")
    );
    assert!(s.mock.received().is_empty());
}

/// Hostile requests as raw bytes: broken framing, invalid UTF-8, deep
/// nesting, huge numbers, lone surrogates, giant headers.
fn hostile_inputs() -> Vec<Vec<u8>> {
    let request = |headers: &[u8], body: &[u8]| {
        let mut r =
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer vk-acme\r\n"
                .to_vec();
        r.extend_from_slice(headers);
        r.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        r.extend_from_slice(body);
        r
    };
    let msg = |content: &str| {
        format!(r#"{{"model":"auto","messages":[{{"role":"user","content":{content}}}]}}"#)
    };
    let mut out = vec![
        request(b"", &[0xff, 0xfe, 0x00, 0x80, b'{', 0xc3, 0x28]),
        request(b"", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes()),
        request(b"", msg(&format!("{}\"x\"{}", "[".repeat(5000), "]".repeat(5000))).as_bytes()),
        request(b"", msg("\"\\ud800\\udc00\\ud800 lone\"").as_bytes()),
        request(b"", msg("\"\\u0000\\u0000\"").as_bytes()),
        request(b"", br#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}"#),
        request(b"", br#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"max_tokens":-1}"#),
        request(b"", br#"{"model":"gpt-4o","model":"auto","messages":[{"role":"user","content":"hi"}]}"#),
        request(b"", br#"{"model":{"$ne":null},"messages":[{"role":"user","content":"hi"}]}"#),
        request(b"", format!(r#"{{"model":"{}","messages":[{{"role":"user","content":"hi"}}]}}"#, "m".repeat(200_000)).as_bytes()),
        request(b"", msg(r#"[{"type":"text"},{"type":"image_url"},{"type":"audio","x":[1,2,3]}]"#).as_bytes()),
        request(b"", msg(r#"[{"type":"text","text":7}]"#).as_bytes()),
        request(b"", format!(r#"{{"messages":[{}]}}"#, vec![r#"{"role":"user","content":"a"}"#; 20_000].join(",")).as_bytes()),
        request(b"", b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe invalid utf-8 inside a string\"}]}"),
        request(b"x-api-key: \xff\xfe\xfd\r\nx-aipipe-cluster: \xc3\x28\r\n", msg("\"hi\"").as_bytes()),
        request(format!("x-junk: {}\r\n", "a".repeat(50_000)).as_bytes(), msg("\"hi\"").as_bytes()),
        request(b"x-aipipe-cluster: ../../admin\r\n", msg("\"hi\"").as_bytes()),
        request(b"", b"null"),
        request(b"", b"{\"messages\":null}"),
        request(b"", b"{}"),
        request(b"", b"   "),
        request(b"", format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}", "\\n".repeat(300_000)).as_bytes()),
    ];
    // A declared length the body never reaches, and a body longer than declared.
    out.push(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer vk-acme\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"messages\":".to_vec());
    out.push(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer vk-acme\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}".to_vec());
    out.push(b"GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer vk-acme\r\nconnection: close\r\n\r\n".to_vec());
    out
}

#[test]
fn hostile_inputs_never_kill_a_vm_and_every_worker_still_serves() {
    let s = Stack::start();
    let vms_created = s.envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    for (i, raw) in hostile_inputs().iter().enumerate() {
        let status = raw_exchange(s.envoy.port, raw);
        // Odd but valid requests may be served; nothing may crash (a dead VM
        // answers 503) and nothing gets a 5xx.
        assert!(
            status.is_none_or(|c| c < 500),
            "hostile input {i} got {status:?}"
        );
    }
    for got in s.mock.received() {
        assert_eq!(
            got["body_json_valid"], true,
            "an invalid body reached a provider: {got}"
        );
    }
    assert_eq!(
        s.envoy.filter_failures(),
        Some(0),
        "a VM died and was reloaded"
    );
    assert_eq!(
        s.envoy.stat("wasm.envoy.wasm.runtime.v8.created"),
        vms_created,
        "a VM was re-created"
    );

    // Each worker accepts connections; fresh connections spread across them.
    // Keep sending good requests until every worker has served some.
    let workers = ["worker_0", "worker_1"];
    let listener = format!("listener.127.0.0.1_{}", s.envoy.port);
    let served = |w: &str| {
        s.envoy
            .stat(&format!("{listener}.{w}.downstream_cx_total"))
            .unwrap_or(0)
    };
    let before: Vec<u64> = workers.iter().map(|w| served(w)).collect();
    for i in 0..200 {
        let r = post_json(&s.chat_url(), &ACME.auth(), &chat("auto", "hello"));
        assert_eq!(
            r.status,
            200,
            "good request {i} after the hostile batch: {}",
            r.text()
        );
        let done = workers.iter().zip(&before).all(|(w, b)| served(w) > *b);
        if done && i >= 10 {
            return;
        }
    }
    panic!("not every worker served a good request: {before:?}");
}

#[test]
fn a_trusted_tenant_header_is_honoured_only_in_mesh_mode() {
    // trust_tenant_header on: a trusted front names the tenant, no virtual key.
    let mut config: serde_json::Value =
        serde_json::from_str(&common::test_plugin_config()).unwrap();
    config["trust_tenant_header"] = json!(true);
    let mock = aipipe_tests::Mock::start();
    let envoy = aipipe_tests::Envoy::start_rendered(
        "demo.yaml",
        mock.port,
        Some(config.to_string()),
        true,
        2,
    );
    let url = envoy.url("/v1/chat/completions");
    let r = post_json(&url, &[("x-tenant-id", "beta")], &chat("gpt-4o-mini", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.received().pop().unwrap()["authorization"],
        "Bearer sk-beta-openai"
    );
    assert_error(
        &post_json(&url, &[("x-tenant-id", "nobody")], &body_hi()),
        401,
        "unknown_tenant",
    );
    assert_error(
        &post_json(&url, &[("x-tenant-id", "off")], &body_hi()),
        403,
        "tenant_disabled",
    );
    // Without the header, virtual keys still work.
    assert_eq!(post_json(&url, &ACME.auth(), &body_hi()).status, 200);
    assert_eq!(mock.received().len(), 2);
}

fn body_hi() -> serde_json::Value {
    chat("auto", "hi")
}

/// Every request body in the committed fuzz corpus, sent through real Envoy:
/// afterwards no VM died and every worker still serves.
#[test]
fn the_fuzz_corpus_through_envoy_kills_no_vm() {
    let dir = aipipe_tests::repo_root().join("filter/fuzz/corpus");
    let mut inputs = Vec::new();
    for target in ["chat_request", "route", "anthropic_request"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(target)) {
            inputs.extend(
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read(e.path()).ok()),
            );
        }
    }
    assert!(!inputs.is_empty(), "no corpus under {}", dir.display());
    let s = Stack::start();
    let vms_created = s.envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    // Every input as an OpenAI chat request and as an Anthropic Messages
    // request (translated when routed to an OpenAI-format model).
    let paths = ["/v1/chat/completions", "/v1/messages"];
    for (i, body) in inputs.iter().enumerate() {
        for path in paths {
            let mut raw = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer vk-acme\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            raw.extend_from_slice(body);
            // Any answer is fine here (503 no_provider_key is a real one); a
            // VM that died shows in the stats below.
            let _ = raw_exchange(s.envoy.port, &raw);
            assert_eq!(
                s.envoy.filter_failures(),
                Some(0),
                "corpus input {i} on {path} killed a VM"
            );
        }
    }
    assert_eq!(
        s.envoy.stat("wasm.envoy.wasm.runtime.v8.created"),
        vms_created
    );
    for _ in 0..20 {
        assert_eq!(
            post_json(&s.chat_url(), &ACME.auth(), &chat("auto", "hello")).status,
            200
        );
    }
}
