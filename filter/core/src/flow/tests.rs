//! The request flow on a fake host: what the integration tests prove through
//! real Envoy (routing, bad input, failover by call and by redirect, the
//! cache, usage records, penalties), in-process and fast.

use std::rc::Rc;

use super::fake::FakeHost;
use super::{Action, Filter, Request};
use crate::config::Config;
use crate::contract::PENALTIES_KEY;
use crate::contract::{DIRECTORY_REVISION_KEY, SHARED_VERSION_KEY};
use crate::contract::{FAILED_STATUS_HEADER, FAILOVER_LOCATION_HEADER};
use crate::counters;
use crate::directory::{DeltaWriter, KeyEntry, Kind, TenantEntry};
use crate::penalty::Penalties;
use crate::table::hex_hash;

const KEY: &str = "vk-acme";
const OTHER_KEY: &str = "vk-other";
const ROUTER_KEY: &str = "vk-router";

fn config(extra: &str) -> Config {
    config_with("", extra)
}

/// `table_extra`: more fields of the bootstrap table (after its version).
fn config_with(table_extra: &str, extra: &str) -> Config {
    let json = format!(
        r#"{{
            "table": {{"version": 1 {table_extra}, "tenants": [
                {{"id": "acme", "virtual_key_hashes": ["{}"],
                  "provider_keys": {{"openai": "sk-acme", "anthropic": "ak-acme"}}}},
                {{"id": "router", "virtual_key_hashes": ["{}"],
                  "provider_keys": {{"openrouter": "or-router"}}}},
                {{"id": "other", "virtual_key_hashes": ["{}"],
                  "provider_keys": {{"openai": "sk-other"}}}}
            ]}}
            {extra}
        }}"#,
        hex_hash(KEY),
        hex_hash(ROUTER_KEY),
        hex_hash(OTHER_KEY)
    );
    Config::parse(json.as_bytes()).unwrap()
}

fn setup(extra: &str) -> (Rc<Filter>, FakeHost) {
    let host = FakeHost::new();
    let filter = Filter::new(config(extra), &host);
    (filter, host)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Sends a request through the headers and body phases.
fn send(f: &Rc<Filter>, h: &FakeHost, path: &str, key: &str, body: &str) -> (Request, Action) {
    send_with(f, h, path, &[("authorization", &bearer(key))], body)
}

fn send_with(
    f: &Rc<Filter>,
    h: &FakeHost,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Request, Action) {
    h.request("POST", path, headers, body.as_bytes());
    let mut r = f.request();
    let a = r.on_request_headers(h, body.is_empty());
    if a != Action::Pause || h.reply().is_some() {
        return (r, a);
    }
    let size = h.request_body.borrow().len();
    let a = r.on_request_body(h, size, true);
    (r, a)
}

/// Feeds the provider's whole answer through the response phases and ends
/// the request.
fn answer(r: &mut Request, h: &FakeHost, status: u16, content_type: &str, body: &str) -> Action {
    h.answer(status, &[("content-type", content_type)], body.as_bytes());
    let a = r.on_response_headers(h, false);
    if a == Action::Pause {
        return a;
    }
    let size = h.response_body.borrow().len();
    r.on_response_body(h, size, true)
}

fn chat_answer(model: &str, prompt: u64, completion: u64) -> String {
    format!(
        r#"{{"id":"c1","object":"chat.completion","created":1,"model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
        prompt + completion
    )
}

fn messages_answer(prompt: u64, completion: u64) -> String {
    format!(
        r#"{{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-5","content":[{{"type":"text","text":"hi"}}],"stop_reason":"end_turn","usage":{{"input_tokens":{prompt},"output_tokens":{completion}}}}}"#
    )
}

const GREETING: &str =
    r#"{"model":"auto","messages":[{"role":"user","content":"hello! how are you today?"}]}"#;
const PROOF: &str = r#"{"model":"auto","messages":[{"role":"user","content":"Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation."}]}"#;

#[test]
fn a_greeting_goes_to_the_cheapest_model_with_the_tenants_own_key() {
    let (f, h) = setup("");
    let (mut r, a) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("openai"));
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-acme"));
    assert_eq!(h.header(":path").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(h.header(":authority").as_deref(), Some("api.openai.com"));
    assert_eq!(h.body_json()["model"], "gpt-4o-mini");
    let len = h.request_body.borrow().len().to_string();
    assert_eq!(
        h.header("content-length"),
        Some(len),
        "the length follows the edit"
    );
    assert!(h.route_cache_cleared.get() > 0);

    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 12, 3),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-model").as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        h.response_header_value("x-aipipe-provider").as_deref(),
        Some("openai")
    );
    assert_eq!(
        h.response_header_value("x-aipipe-route").as_deref(),
        Some("auto")
    );
    assert!(h.response_header_value("x-aipipe-complexity").is_some());
    r.on_log(&h);
    let records = h.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(
        (rec.tenant.as_str(), rec.model.as_str()),
        ("acme", "gpt-4o-mini")
    );
    assert_eq!(
        (rec.prompt_tokens, rec.completion_tokens, rec.status),
        (12, 3, 200)
    );
    assert!(rec.usage_parsed && rec.cost_nusd > 0 && rec.complexity.is_some());
}

#[test]
fn tenant_b_never_uses_tenant_as_key() {
    let (f, h) = setup("");
    let body = r#"{"model":"claude-opus-4-5","messages":[{"role":"user","content":"hi"}]}"#;
    let (_, _) = send(&f, &h, "/v1/chat/completions", OTHER_KEY, body);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "no_provider_key");
    assert!(!String::from_utf8_lossy(&reply.body).contains("ak-acme"));
    assert_eq!(h.header("x-aipipe-cluster"), None, "nothing forwarded");
    // What it can reach goes with its own key.
    let (_, a) = send(&f, &h, "/v1/chat/completions", OTHER_KEY, GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(
        h.header("authorization").as_deref(),
        Some("Bearer sk-other")
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_nothing_is_forwarded() {
    let (f, h) = setup(r#", "max_body_bytes": 200"#);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, u32, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            "/v1/chat/completions",
            &[("authorization", "Bearer vk-acme")],
            "not json",
            400,
            "invalid_request",
        ),
        (
            "/v1/chat/completions",
            &[],
            GREETING,
            401,
            "missing_api_key",
        ),
        (
            "/v1/chat/completions",
            &[("authorization", "Bearer nope")],
            GREETING,
            401,
            "invalid_api_key",
        ),
        (
            "/v1/chat/completions",
            &[("authorization", "Bearer vk-acme")],
            r#"{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}"#,
            404,
            "model_not_found",
        ),
        (
            "/v1/chat/completions",
            &[("authorization", "Bearer vk-acme")],
            PROOF,
            413,
            "request_too_large",
        ),
        (
            "/v1/nowhere",
            &[("authorization", "Bearer vk-acme")],
            GREETING,
            404,
            "unknown_url",
        ),
    ];
    for (path, headers, body, status, code) in cases {
        let (mut r, a) = send_with(&f, &h, path, headers, body);
        assert_eq!(a, Action::Pause, "{code}");
        let reply = h.reply().unwrap_or_else(|| panic!("{code}: no reply"));
        assert_eq!(reply.status, status, "{code}");
        assert_eq!(reply.json()["error"]["code"], code);
        assert!(reply.header("x-aipipe-request-id").is_some());
        assert_eq!(
            h.header("x-aipipe-cluster"),
            None,
            "{code}: nothing forwarded"
        );
        r.on_log(&h);
    }
    assert!(
        h.records().is_empty(),
        "refused requests leave no usage record"
    );
}

#[test]
fn client_sent_internal_headers_are_stripped_and_never_route() {
    let (f, h) = setup("");
    let headers = [
        ("authorization", "Bearer vk-acme"),
        ("x-aipipe-cluster", "anthropic"),
        ("x-tenant-id", "other"),
    ];
    let (_, a) = send_with(&f, &h, "/v1/chat/completions", &headers, GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("openai"));
    assert_eq!(h.header("x-tenant-id"), None);
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-acme"));
}

#[test]
fn an_anthropic_client_gets_its_errors_and_answers_in_its_own_shape() {
    let (f, h) = setup("");
    let (_, _) = send_with(&f, &h, "/v1/messages", &[("x-api-key", "nope")], GREETING);
    let v = h.reply().unwrap().json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    // To an OpenAI model: translated there and back.
    let body =
        r#"{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let (mut r, _) = send_with(
        &f,
        &h,
        "/v1/messages",
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        body,
    );
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("openai"));
    assert_eq!(
        h.header("x-api-key"),
        None,
        "the virtual key never goes upstream"
    );
    assert_eq!(h.header("anthropic-version"), None);
    assert_eq!(h.body_json()["messages"][0]["content"], "hi");
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 5, 1),
    );
    let out: serde_json::Value = serde_json::from_slice(&h.response_body.borrow()).unwrap();
    assert_eq!(out["type"], "message");
    assert_eq!(out["content"][0]["text"], "hi");
}

#[test]
fn an_openai_client_routed_to_claude_is_translated_both_ways() {
    let (f, h) = setup("");
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, PROOF);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("anthropic"));
    assert_eq!(h.header("x-api-key").as_deref(), Some("ak-acme"));
    assert_eq!(h.header("authorization"), None);
    assert_eq!(h.header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert!(h.body_json()["max_tokens"].is_u64());
    // A whole answer is buffered, then translated.
    h.answer(
        200,
        &[("content-type", "application/json")],
        messages_answer(40, 7).as_bytes(),
    );
    assert_eq!(r.on_response_headers(&h, false), Action::Continue);
    assert_eq!(h.response_header_value("content-length"), None);
    assert_eq!(r.on_response_body(&h, 10, false), Action::Pause);
    let size = h.response_body.borrow().len();
    assert_eq!(r.on_response_body(&h, size, true), Action::Continue);
    let out: serde_json::Value = serde_json::from_slice(&h.response_body.borrow()).unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["usage"]["prompt_tokens"], 40);
    r.on_log(&h);
    let rec = &h.records()[0];
    assert_eq!(
        (rec.model.as_str(), rec.prompt_tokens, rec.completion_tokens),
        ("claude-sonnet-5-5", 40, 7)
    );
}

#[test]
fn a_forced_usage_chunk_is_hidden_from_a_chat_stream_but_counted() {
    let (f, h) = setup("");
    // OpenRouter sends a usage chunk whether asked or not: hidden too.
    for (key, model) in [
        (KEY, "gpt-4o-mini"),
        (ROUTER_KEY, "openrouter/meta-llama/llama-3.3-70b-instruct"),
    ] {
        let body = format!(
            r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let (mut r, _) = send(&f, &h, "/v1/chat/completions", key, &body);
        assert_eq!(
            h.body_json()["stream_options"]["include_usage"],
            true,
            "{model}"
        );
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
            "data: [DONE]\n\n"
        );
        answer(&mut r, &h, 200, "text/event-stream", stream);
        let out = String::from_utf8(h.response_body.borrow().clone()).unwrap();
        assert!(!out.contains("usage"), "{model}: {out}");
        assert!(
            out.contains("\"hi\"") && out.ends_with("data: [DONE]\n\n"),
            "{out}"
        );
        r.on_log(&h);
    }
    let records = h.records();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.prompt_tokens == 7 && r.completion_tokens == 2 && r.stream)
    );
}

#[test]
fn failover_by_call_answers_from_the_next_candidate_and_counts_once() {
    let (f, h) = setup(r#", "failover_redirect": "off""#);
    let before = counters::snapshot();
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    assert_eq!(
        h.header(FAILOVER_LOCATION_HEADER),
        None,
        "no redirect when off"
    );
    assert_eq!(
        answer(
            &mut r,
            &h,
            503,
            "application/json",
            r#"{"error":{"message":"down"}}"#
        ),
        Action::Pause
    );
    let calls = h.calls.borrow().clone();
    assert_eq!(calls.len(), 1, "the next candidate is called");
    let next: serde_json::Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_ne!(next["model"], "gpt-4o-mini");
    let key = calls[0]
        .headers
        .iter()
        .find(|(n, _)| n == "authorization" || n == "x-api-key");
    let key = key.map(|(_, v)| v.as_str());
    match calls[0].cluster.as_str() {
        "anthropic" => assert_eq!(key, Some("ak-acme")),
        _ => assert_eq!(key, Some("Bearer sk-acme")),
    }
    // The failed answer's body goes nowhere while the call is out.
    assert_eq!(r.on_response_body(&h, 0, true), Action::Pause);
    *h.call_status.borrow_mut() = Some(200);
    let model = next["model"].as_str().unwrap().to_owned();
    *h.call_body.borrow_mut() = chat_answer(&model, 9, 4).into_bytes();
    let size = h.call_body.borrow().len();
    r.on_call_response(&h, h.calls.borrow()[0].token, size);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-aipipe-failover"), Some("gpt-4o-mini"));
    r.on_log(&h);
    let rec = &h.records()[0];
    assert_eq!(rec.failed_attempts.len(), 1);
    assert_eq!(rec.failed_attempts[0].model, "gpt-4o-mini");
    assert_eq!(
        (rec.prompt_tokens, rec.completion_tokens),
        (9, 4),
        "counted once, for the model that answered"
    );
    assert_eq!(
        counters::since(before),
        (1, 1, 1),
        "the failover attempt parsed, scored and ranked nothing again"
    );
    // The failure raised the model's penalty for every worker.
    let (bytes, _) = h
        .shared
        .borrow()
        .get(PENALTIES_KEY)
        .cloned()
        .map_or((None, 0), |(b, c)| (Some(b), c));
    let p = Penalties::decode(&bytes.unwrap());
    assert!(p.penalty("gpt-4o-mini", h.now_ms.get(), 30_000) > 0.0);
    assert_eq!(h.metric("aipipe.model.gpt-4o-mini.attempts_failed"), 1);
    assert_eq!(h.metric("aipipe.failovers"), 1);
}

#[test]
fn when_every_candidate_fails_the_client_gets_one_error_naming_each() {
    let (f, h) = setup(r#", "failover_redirect": "off", "max_attempts": 2"#);
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    answer(&mut r, &h, 429, "application/json", "{}");
    *h.call_status.borrow_mut() = Some(500);
    r.on_call_response(&h, h.calls.borrow()[0].token, 0);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 503);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("gpt-4o-mini (openai) answered HTTP 429"),
        "{message}"
    );
    r.on_log(&h);
    let rec = &h.records()[0];
    assert_eq!(rec.status, 503);
    assert_eq!(
        rec.failed_attempts.len(),
        1,
        "the last attempt is the record itself"
    );
}

#[test]
fn failover_by_redirect_streams_the_next_candidate_and_records_once() {
    let (f, h) = setup("");
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let before = counters::snapshot();
    let (mut first, _) = send(&f, &h, "/v1/chat/completions", KEY, body);
    let location = h
        .header(FAILOVER_LOCATION_HEADER)
        .expect("a redirect location");
    let sent_headers: Vec<(String, String)> = h
        .request_headers
        .borrow()
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let sent_body = String::from_utf8(h.request_body.borrow().clone()).unwrap();
    // Envoy follows the upstream filter's 307: the first stream ends
    // without an answer, and the request re-enters on the same worker.
    first.on_log(&h);
    assert!(
        h.records().is_empty(),
        "the first attempt leaves no record of its own"
    );
    let path = format!(
        "{}&status=503",
        location.trim_start_matches("http://aipipe.failover")
    );
    let headers: Vec<(&str, &str)> = sent_headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':') && n != "content-length")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (mut second, a) = send_with(&f, &h, &path, &headers, &sent_body);
    assert_eq!(a, Action::Continue);
    assert_ne!(h.body_json()["model"], "gpt-4o-mini", "the next candidate");
    // The next candidate's own event stream: Chat Completions or, for
    // Claude (the next cheapest since Claude 5.x), Anthropic's.
    let stream = if h.header("x-aipipe-cluster").as_deref() == Some("anthropic") {
        crate::reshape::tests::ANTHROPIC_HI_STREAM
    } else {
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n"
    };
    answer(&mut second, &h, 200, "text/event-stream", stream);
    assert_eq!(
        h.response_header_value("x-aipipe-failover").as_deref(),
        Some("gpt-4o-mini")
    );
    second.on_log(&h);
    let records = h.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].failed_attempts.len(), 1);
    assert_eq!(records[0].failed_attempts[0].status, 503);
    assert_eq!(h.metric("aipipe.failover.redirects"), 1);
    assert_eq!(
        counters::since(before),
        (2, 1, 1),
        "the named model's fallbacks were ranked once, when it failed; the redirected attempt did not plan again"
    );
    // The token works once.
    let (_, _) = send_with(&f, &h, &path, &headers, &sent_body);
    assert_eq!(h.reply().unwrap().status, 400);
}

#[test]
fn a_redirect_envoy_did_not_follow_fails_over_by_call() {
    let (f, h) = setup("");
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, body);
    assert!(h.header(FAILOVER_LOCATION_HEADER).is_some());
    h.answer(
        307,
        &[
            ("location", "http://aipipe.failover/x"),
            (FAILED_STATUS_HEADER, "502"),
        ],
        b"",
    );
    assert_eq!(r.on_response_headers(&h, true), Action::Pause);
    assert_eq!(h.calls.borrow().len(), 1);
    assert_eq!(h.metric("aipipe.failover.unfollowed"), 1);
}

#[test]
fn the_cache_answers_a_repeat_and_respects_no_cache() {
    let (f, h) = setup("");
    let body = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"what is 2+2?"}]}"#;
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, body);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 8, 1),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-cache").as_deref(),
        Some("miss")
    );
    r.on_log(&h);

    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, body);
    let reply = h.reply().expect("answered from the cache");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-aipipe-cache"), Some("hit"));
    assert_eq!(reply.json()["usage"]["prompt_tokens"], 8);
    assert_eq!(h.header("x-aipipe-cluster"), None, "nothing went upstream");
    r.on_log(&h);

    // Another tenant never gets acme's answer.
    let (_, _) = send(&f, &h, "/v1/chat/completions", OTHER_KEY, body);
    assert!(h.reply().is_none());
    assert_eq!(
        h.header("authorization").as_deref(),
        Some("Bearer sk-other")
    );

    let headers = [
        ("authorization", "Bearer vk-acme"),
        ("cache-control", "no-cache"),
    ];
    let (mut r, _) = send_with(&f, &h, "/v1/chat/completions", &headers, body);
    assert!(h.reply().is_none());
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 8, 1),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-cache").as_deref(),
        Some("bypass")
    );
    let records = h.records();
    assert_eq!(records.len(), 2);
    assert!(records[1].cache_hit && records[1].cost_nusd == 0);
    assert_eq!(
        (h.metric("aipipe.cache.hit"), h.metric("aipipe.cache.miss")),
        (1, 1)
    );
}

#[test]
fn pass_through_forwards_with_the_tenants_key_and_records_the_named_model() {
    let (f, h) = setup("");
    h.request(
        "POST",
        "/openai/v1/embeddings",
        &[("authorization", "Bearer vk-acme")],
        b"{}",
    );
    let mut r = f.request();
    assert_eq!(r.on_request_headers(&h, false), Action::Continue);
    assert_eq!(h.header(":path").as_deref(), Some("/v1/embeddings"));
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-acme"));
    assert_eq!(r.on_request_body(&h, 2, true), Action::Continue);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini-2024-07-18", 2, 0),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-route").as_deref(),
        Some("pass-through")
    );
    r.on_log(&h);
    assert_eq!(h.records()[0].model, "gpt-4o-mini");
}

#[test]
fn genai_metrics_name_what_the_client_asked_and_who_answered() {
    use crate::flow::genai::{REQUEST_DURATION, TOKENS};
    let (f, h) = setup("");
    // auto: the cheapest model answers.
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 9, 4),
    );
    r.on_log(&h);
    // A named model.
    let named = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, named);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o", 7, 3),
    );
    r.on_log(&h);
    // Pass-through: the model its body named, and the one its answer names.
    h.request(
        "POST",
        "/openai/v1/chat/completions",
        &[
            ("authorization", "Bearer vk-acme"),
            ("content-type", "application/json"),
        ],
        br#"{"model":"gpt-4o-mini"}"#,
    );
    let mut r = f.request();
    r.on_request_headers(&h, false);
    r.on_request_body(&h, 23, true);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 5, 1),
    );
    r.on_log(&h);

    assert_eq!(
        h.samples(&format!("{REQUEST_DURATION}.chat.openai.auto.gpt-4o-mini"))
            .len(),
        1
    );
    assert_eq!(
        h.samples(&format!("{REQUEST_DURATION}.chat.openai.gpt-4o.gpt-4o"))
            .len(),
        1
    );
    assert_eq!(
        h.samples(&format!(
            "{REQUEST_DURATION}.pass_through.openai.gpt-4o-mini.gpt-4o-mini"
        ))
        .len(),
        1
    );
    assert_eq!(
        h.metric(&format!("{TOKENS}.chat.openai.auto.gpt-4o-mini.input")),
        9
    );
    assert_eq!(
        h.metric(&format!("{TOKENS}.chat.openai.gpt-4o.gpt-4o.output")),
        3
    );
    assert_eq!(
        h.metric(&format!(
            "{TOKENS}.pass_through.openai.gpt-4o-mini.gpt-4o-mini.input"
        )),
        5
    );
}

#[test]
fn the_models_list_holds_auto_and_what_the_tenant_can_reach() {
    let (f, h) = setup("");
    h.request(
        "GET",
        "/v1/models",
        &[("authorization", "Bearer vk-other")],
        b"",
    );
    let mut r = f.request();
    assert_eq!(r.on_request_headers(&h, true), Action::Pause);
    let v = h.reply().unwrap().json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids.first(), Some(&"auto"));
    assert!(ids.contains(&"gpt-4o-mini") && !ids.contains(&"claude-opus-4-5"));
}

#[test]
fn a_published_table_replaces_the_bootstrap_one() {
    let (f, h) = setup("");
    let table = format!(
        r#"{{"version": 7, "tenants": [{{"id": "late", "virtual_key_hashes": ["{}"], "provider_keys": {{"openai": "sk-late"}}}}]}}"#,
        hex_hash("vk-late")
    );
    h.shared.borrow_mut().insert(
        crate::contract::SHARED_TABLE_KEY.into(),
        (table.into_bytes(), 1),
    );
    h.shared.borrow_mut().insert(
        crate::contract::SHARED_VERSION_KEY.into(),
        (b"7".to_vec(), 1),
    );
    let (_, a) = send(&f, &h, "/v1/chat/completions", "vk-late", GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-late"));
    assert_eq!(f.table_version(), Some(7));
}

/// Short, hard and in plain words: the heuristic scores it cheap.
const PLAIN_HARD: &str = r#"{"model":"auto","messages":[{"role":"user","content":"Is every even number above 2 a sum of two primes, and why has nobody shown it?"}]}"#;

#[test]
fn a_tables_router_model_routes_auto_requests_and_sets_the_complexity_header() {
    let routed = |table_extra: &str, body: &str| {
        let h = FakeHost::new();
        let f = Filter::new(config_with(table_extra, ""), &h);
        let (mut r, a) = send(&f, &h, "/v1/chat/completions", KEY, body);
        assert_eq!(a, Action::Continue);
        let cluster = h.header("x-aipipe-cluster").unwrap();
        let reply = match cluster.as_str() {
            "anthropic" => messages_answer(10, 5),
            _ => chat_answer("gpt-4o-mini", 10, 5),
        };
        answer(&mut r, &h, 200, "application/json", &reply);
        let c: f64 = h
            .response_header_value("x-aipipe-complexity")
            .unwrap()
            .parse()
            .unwrap();
        (cluster, c)
    };
    // The heuristic alone: cheap.
    let (cluster, c) = routed("", PLAIN_HARD);
    assert_eq!(cluster, "openai");
    assert!(c < 0.55, "heuristic {c}");
    // The model: frontier, and the header says so in the complexity bands (filter/README.md, "Model selection").
    let model = r#", "router_model": "builtin""#;
    let (cluster, c) = routed(model, PLAIN_HARD);
    assert_eq!(cluster, "anthropic");
    assert!(c >= 0.70, "model {c}");
    let (cluster, c) = routed(model, GREETING);
    assert_eq!(cluster, "openai");
    assert!(c < 0.20, "greeting {c}");
}

#[test]
fn a_published_table_with_a_bad_router_model_is_refused_and_routing_goes_on() {
    let (f, h) = setup("");
    let table = r#"{"version": 9, "router_model": {"blob": "QUlQUgEAAAAAAA=="}}"#;
    h.shared.borrow_mut().insert(
        crate::contract::SHARED_TABLE_KEY.into(),
        (table.as_bytes().to_vec(), 1),
    );
    h.shared.borrow_mut().insert(
        crate::contract::SHARED_VERSION_KEY.into(),
        (b"9".to_vec(), 1),
    );
    let (_, a) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    assert_eq!(a, Action::Continue, "the bootstrap table still routes");
    assert_eq!(f.table_version(), Some(1));
}

#[test]
fn a_responses_client_is_routed_like_chat_and_answered_in_its_own_format() {
    let (f, h) = setup("");
    let body = r#"{"model":"auto","input":"hello! how are you today?","instructions":"Be brief."}"#;
    let (mut r, a) = send(&f, &h, "/v1/responses", KEY, body);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("openai"));
    let sent = h.body_json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0]["role"], "system");
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 11, 2),
    );
    let out: serde_json::Value = serde_json::from_slice(&h.response_body.borrow()).unwrap();
    assert_eq!(out["object"], "response");
    assert_eq!(out["output"][0]["content"][0]["text"], "hi");
    assert_eq!(out["usage"]["input_tokens"], 11);
    r.on_log(&h);
    let rec = &h.records()[0];
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (11, 2));

    // Streamed from Claude: Anthropic events → Responses events.
    let body = r#"{"model":"claude-opus-4-5","input":"hi","stream":true}"#;
    let (mut r, _) = send(&f, &h, "/v1/responses", KEY, body);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("anthropic"));
    let events = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    answer(&mut r, &h, 200, "text/event-stream", events);
    let out = String::from_utf8(h.response_body.borrow().clone()).unwrap();
    assert!(out.contains("event: response.output_text.delta"), "{out}");
    assert!(out.contains("event: response.completed"), "{out}");
    r.on_log(&h);
    let rec = &h.records()[1];
    assert_eq!(
        (rec.model.as_str(), rec.prompt_tokens, rec.completion_tokens),
        ("claude-opus-4-5", 5, 3)
    );
}

#[test]
fn an_ollama_client_streams_ndjson_lists_its_models_and_gets_its_error_shape() {
    let (f, h) = setup("");
    let body =
        r#"{"model":"auto","messages":[{"role":"user","content":"hello! how are you today?"}]}"#;
    let (mut r, _) = send(&f, &h, "/api/chat", KEY, body);
    let sent = h.body_json();
    assert_eq!(sent["stream"], true, "Ollama streams unless told not to");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let stream = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
        "data: [DONE]\n\n"
    );
    answer(&mut r, &h, 200, "text/event-stream", stream);
    assert_eq!(
        h.response_header_value("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    let out = String::from_utf8(h.response_body.borrow().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["message"]["content"], "hi");
    let last = lines.last().unwrap();
    assert_eq!(
        (last["done"].as_bool(), last["eval_count"].as_u64()),
        (Some(true), Some(2))
    );
    r.on_log(&h);
    assert_eq!(h.records()[0].completion_tokens, 2);

    h.request(
        "GET",
        "/api/tags",
        &[("authorization", "Bearer vk-other")],
        b"",
    );
    let mut r = f.request();
    assert_eq!(r.on_request_headers(&h, true), Action::Pause);
    let names: Vec<String> = h.reply().unwrap().json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("auto"));
    assert!(
        names.iter().any(|n| n == "gpt-4o-mini") && !names.iter().any(|n| n == "claude-opus-4-5")
    );

    let (_, _) = send(&f, &h, "/api/chat", "nope", body);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 401);
    assert!(
        reply.json()["error"].is_string(),
        "Ollama's error shape: {:?}",
        reply.json()
    );
}

#[test]
fn new_client_protocols_fail_over_and_hit_the_cache_like_chat() {
    let (f, h) = setup(r#", "failover_redirect": "off""#);
    // A whole Responses answer, cached and answered again in its format.
    let body = r#"{"model":"gpt-4o-mini","input":"what is 2+2?","temperature":0}"#;
    let (mut r, _) = send(&f, &h, "/v1/responses", KEY, body);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 6, 1),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-cache").as_deref(),
        Some("miss")
    );
    let (_, _) = send(&f, &h, "/v1/responses", KEY, body);
    let reply = h.reply().expect("a cache hit");
    assert_eq!(reply.json()["object"], "response");
    // The same prompt as Chat Completions is another answer.
    let chat = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"what is 2+2?"}]}"#;
    let (_, _) = send(&f, &h, "/v1/chat/completions", KEY, chat);
    assert!(h.reply().is_none(), "keyed apart by protocol");

    // An Ollama request whose first model fails: the next one answers,
    // in Ollama's shape.
    let body = r#"{"model":"auto","stream":false,"messages":[{"role":"user","content":"hello!"}]}"#;
    let (mut r, _) = send(&f, &h, "/api/chat", KEY, body);
    assert_eq!(
        answer(&mut r, &h, 503, "application/json", "{}"),
        Action::Pause
    );
    let next: serde_json::Value = serde_json::from_slice(&h.calls.borrow()[0].body).unwrap();
    let model = next["model"].as_str().unwrap_or_default().to_owned();
    *h.call_status.borrow_mut() = Some(200);
    *h.call_body.borrow_mut() = match h.calls.borrow()[0].cluster.as_str() {
        "anthropic" => messages_answer(4, 2),
        _ => chat_answer(&model, 4, 2),
    }
    .into_bytes();
    let size = h.call_body.borrow().len();
    r.on_call_response(&h, h.calls.borrow()[0].token, size);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["done"], true, "{:?}", reply.json());
    assert_eq!(reply.header("x-aipipe-failover"), Some("gpt-4o-mini"));
}

/// A directory delta: the global table (if given), then entries.
fn delta(
    since: u64,
    revision: u64,
    global: Option<&str>,
    entries: &[(Kind, &str, Vec<u8>)],
) -> Vec<u8> {
    let mut w = DeltaWriter::new(since);
    if let Some(json) = global {
        w.push(Kind::Global, "", json.as_bytes());
    }
    for (kind, name, value) in entries {
        w.push(*kind, name, value);
    }
    w.finish(revision, false)
}

fn tenant_entry(rev: u64, disabled: bool, keys: &[(&str, &str)]) -> Vec<u8> {
    TenantEntry {
        rev,
        removed: false,
        disabled,
        pass_through: true,
        provider_keys: keys
            .iter()
            .map(|(p, k)| ((*p).into(), (*k).into()))
            .collect(),
        limits: Default::default(),
        policy: Default::default(),
        router: Vec::new(),
    }
    .encode()
}

fn key_entry(rev: u64, removed: bool, tenant: &str) -> Vec<u8> {
    KeyEntry {
        rev,
        removed,
        tenant: tenant.into(),
        limits: Default::default(),
        id: format!("vk_{tenant}"),
        budgeted: false,
    }
    .encode()
}

fn singleton(h: &FakeHost, extra: serde_json::Value) -> crate::flow::Singleton {
    let mut cp = serde_json::json!({"cluster": "aipipe_control_plane"});
    if let (Some(cp), Some(extra)) = (cp.as_object_mut(), extra.as_object()) {
        cp.extend(extra.clone());
    }
    let config = serde_json::json!({"control_plane": cp}).to_string();
    let config = crate::config::SingletonConfig::parse_with(config.as_bytes(), |name| {
        (name == "AIPIPE_INTERNAL_TOKEN").then(|| "t0ken".to_owned())
    })
    .unwrap();
    crate::flow::Singleton::new(config.control_plane, h)
}

/// Answers the singleton's last call with `body`; returns the path of the
/// call it makes next, if it makes one at once.
fn answer_changes(s: &mut crate::flow::Singleton, h: &FakeHost, body: Vec<u8>) -> Option<String> {
    let token = h.last_token();
    *h.call_status.borrow_mut() = Some(200);
    *h.call_body.borrow_mut() = body;
    let size = h.call_body.borrow().len();
    s.on_call_response(h, token, size);
    let calls = h.calls.borrow();
    let next = calls.last().filter(|c| c.token > token)?;
    Some(next.header(":path")?.to_owned())
}

/// A filter and its singleton on one host, the singleton holding a global
/// table and the directory `entries` at `revision`.
fn with_directory(
    revision: u64,
    entries: &[(Kind, &str, Vec<u8>)],
) -> (Rc<Filter>, FakeHost, crate::flow::Singleton) {
    with_directory_and(r#"{"version": 1}"#, revision, entries)
}

/// As `with_directory`, with this global table.
fn with_directory_and(
    global: &str,
    revision: u64,
    entries: &[(Kind, &str, Vec<u8>)],
) -> (Rc<Filter>, FakeHost, crate::flow::Singleton) {
    let h = FakeHost::new();
    let f = Filter::new(Config::parse(b"{}").unwrap(), &h);
    let mut s = singleton(&h, serde_json::json!({"wait_ms": 0}));
    s.poll(&h);
    answer_changes(&mut s, &h, delta(0, revision, Some(global), entries));
    (f, h, s)
}

/// A filter and its singleton holding `global` and tenant `t` (virtual key
/// `vk-t`, OpenAI and Anthropic keys, pass-through allowed).
fn pass_through_tenant(global: &str) -> (Rc<Filter>, FakeHost, crate::flow::Singleton) {
    let t = TenantEntry {
        rev: 1,
        removed: false,
        disabled: false,
        pass_through: true,
        provider_keys: vec![
            ("openai".into(), "sk-t".into()),
            ("anthropic".into(), "ak-t".into()),
        ],
        limits: Default::default(),
        policy: Default::default(),
        router: Vec::new(),
    }
    .encode();
    let hash = hex_hash("vk-t");
    with_directory_and(
        global,
        2,
        &[
            (Kind::Tenant, "t", t),
            (Kind::Key, &hash, key_entry(2, false, "t")),
        ],
    )
}

fn shared(h: &FakeHost, key: &str) -> Option<Vec<u8>> {
    h.shared.borrow().get(key).map(|(v, _)| v.clone())
}

#[test]
fn the_singleton_applies_each_delta_once_in_order_and_asks_again_at_once() {
    let h = FakeHost::new();
    let mut s = singleton(&h, serde_json::json!({"wait_ms": 0}));
    s.poll(&h);
    let call = h.calls.borrow().last().cloned().unwrap();
    assert_eq!(call.cluster, "aipipe_control_plane");
    assert_eq!(
        call.header(":path"),
        Some("/internal/v1/changes?since=0&wait_ms=0")
    );
    assert_eq!(call.header("x-aipipe-internal-token"), Some("t0ken"));

    let acme = hex_hash("vk-dir");
    let next = answer_changes(
        &mut s,
        &h,
        delta(
            0,
            4,
            Some(r#"{"version": 9}"#),
            &[
                (
                    Kind::Tenant,
                    "acme",
                    tenant_entry(3, false, &[("openai", "sk-dir")]),
                ),
                (Kind::Key, &acme, key_entry(4, false, "acme")),
            ],
        ),
    );
    assert_eq!(shared(&h, SHARED_VERSION_KEY), Some(b"9".to_vec()));
    assert_eq!(
        shared(&h, "aipipe.t.acme"),
        Some(tenant_entry(3, false, &[("openai", "sk-dir")]))
    );
    assert_eq!(shared(&h, DIRECTORY_REVISION_KEY), Some(b"4".to_vec()));
    assert_eq!(
        next.as_deref(),
        Some("/internal/v1/changes?since=4&wait_ms=0"),
        "a delta that carried something: ask again at once"
    );

    // The same delta again (or any not starting at 4) changes nothing.
    let again = delta(
        0,
        4,
        None,
        &[(Kind::Key, &acme, key_entry(4, true, "acme"))],
    );
    answer_changes(&mut s, &h, again);
    assert_eq!(
        shared(&h, &format!("aipipe.k.{acme}")),
        Some(key_entry(4, false, "acme"))
    );
    assert_eq!(shared(&h, DIRECTORY_REVISION_KEY), Some(b"4".to_vec()));

    // An entry older than the one held is not written; a newer one is; the
    // removal of a key this Envoy never held writes nothing.
    let stranger = hex_hash("vk-never-seen");
    s.poll(&h);
    answer_changes(
        &mut s,
        &h,
        delta(
            4,
            6,
            None,
            &[
                (Kind::Key, &stranger, key_entry(5, true, "x")),
                (Kind::Tenant, "acme", tenant_entry(2, true, &[])),
                (Kind::Key, &acme, key_entry(6, true, "acme")),
            ],
        ),
    );
    assert_eq!(
        shared(&h, "aipipe.t.acme"),
        Some(tenant_entry(3, false, &[("openai", "sk-dir")]))
    );
    assert_eq!(
        shared(&h, &format!("aipipe.k.{acme}")),
        Some(key_entry(6, true, "acme"))
    );
    assert_eq!(shared(&h, &format!("aipipe.k.{stranger}")), None);

    // A table that does not compile refuses the whole delta.
    s.poll(&h);
    let bad = delta(
        6,
        7,
        Some(r#"{"version": 10, "tenants": [{"id": ""}]}"#),
        &[(Kind::Tenant, "acme", tenant_entry(7, true, &[]))],
    );
    assert_eq!(
        answer_changes(&mut s, &h, bad),
        None,
        "retried at the next tick"
    );
    assert_eq!(shared(&h, SHARED_VERSION_KEY), Some(b"9".to_vec()));
    assert_eq!(shared(&h, DIRECTORY_REVISION_KEY), Some(b"6".to_vec()));
    assert_eq!(
        shared(&h, "aipipe.t.acme"),
        Some(tenant_entry(3, false, &[("openai", "sk-dir")]))
    );

    // A new singleton in the same Envoy (a configuration reload) resumes
    // from the revision held.
    let mut restarted = singleton(&h, serde_json::json!({}));
    restarted.poll(&h);
    let call = h.calls.borrow().last().cloned().unwrap();
    assert_eq!(
        call.header(":path"),
        Some("/internal/v1/changes?since=6&wait_ms=25000")
    );
}

#[test]
fn a_request_finds_its_tenant_in_the_directory_and_loses_it_when_revoked() {
    let (a, b) = (hex_hash("vk-a"), hex_hash("vk-b"));
    let (f, h, mut s) = with_directory(
        5,
        &[
            (
                Kind::Tenant,
                "a",
                tenant_entry(1, false, &[("openai", "sk-a")]),
            ),
            (
                Kind::Tenant,
                "b",
                tenant_entry(2, false, &[("openai", "sk-b")]),
            ),
            (Kind::Key, &a, key_entry(3, false, "a")),
            (Kind::Key, &b, key_entry(4, false, "b")),
        ],
    );
    let (_, act) = send(&f, &h, "/v1/chat/completions", "vk-a", GREETING);
    assert_eq!(act, Action::Continue);
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-a"));
    send(&f, &h, "/v1/chat/completions", "vk-b", GREETING);
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-b"));
    send(&f, &h, "/v1/chat/completions", "vk-none", GREETING);
    assert_eq!(h.reply().unwrap().status, 401);

    // A's key is rotated, then B's tenant disabled, then A's key revoked:
    // each is seen by the next request.
    s.poll(&h);
    answer_changes(
        &mut s,
        &h,
        delta(
            5,
            7,
            None,
            &[
                (
                    Kind::Tenant,
                    "a",
                    tenant_entry(6, false, &[("openai", "sk-a2")]),
                ),
                (
                    Kind::Tenant,
                    "b",
                    tenant_entry(7, true, &[("openai", "sk-b")]),
                ),
            ],
        ),
    );
    assert_eq!(
        shared(&h, "aipipe.t.a"),
        Some(tenant_entry(6, false, &[("openai", "sk-a2")]))
    );
    send(&f, &h, "/v1/chat/completions", "vk-a", GREETING);
    assert_eq!(h.header("authorization").as_deref(), Some("Bearer sk-a2"));
    send(&f, &h, "/v1/chat/completions", "vk-b", GREETING);
    assert_eq!(h.reply().unwrap().status, 403);
    s.poll(&h);
    answer_changes(
        &mut s,
        &h,
        delta(7, 8, None, &[(Kind::Key, &a, key_entry(8, true, "a"))]),
    );
    send(&f, &h, "/v1/chat/completions", "vk-a", GREETING);
    assert_eq!(h.reply().unwrap().status, 401);
}

#[test]
fn the_singleton_ships_usage_until_acknowledged() {
    let h = FakeHost::new();
    *h.node.borrow_mut() = Some("edge 1".into());
    let mut s = singleton(
        &h,
        serde_json::json!({"batch_records": 2, "max_buffered_records": 3}),
    );
    // Usage: a full batch is posted; past the bound records are dropped and
    // counted; only an acknowledged batch leaves the buffer.
    let record = |id: &str| format!(r#"{{"id":"{id}"}}"#).into_bytes();
    s.take_records(&h, [record("a"), record("b"), record("c"), record("d")]);
    assert_eq!(h.metric("aipipe.usage.dropped"), 1);
    let post = h.calls.borrow().last().cloned().unwrap();
    assert!(
        post.headers
            .iter()
            .any(|(n, v)| n == ":path" && v == "/internal/v1/usage")
    );
    // Each batch says how this Envoy's queue stands (its node id made
    // acceptable: the space is not).
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        r#"{"records":[{"id":"a"},{"id":"b"}],"source":{"node":"edge_1","queued":1,"dropped":1,"sent":0}}"#
    );
    let token = post.token;
    *h.call_status.borrow_mut() = Some(503);
    s.on_call_response(&h, token, 0);
    assert_eq!(
        h.metric("aipipe.usage.sent"),
        0,
        "refused: kept for a retry"
    );
    s.poll(&h);
    let retry = h
        .calls
        .borrow()
        .iter()
        .rev()
        .find(|c| {
            c.headers
                .iter()
                .any(|(n, v)| n == ":path" && v == "/internal/v1/usage")
        })
        .cloned()
        .unwrap();
    assert_eq!(retry.body, post.body, "the same records again");
    let token = retry.token;
    *h.call_status.borrow_mut() = Some(200);
    s.on_call_response(&h, token, 0);
    assert_eq!(h.metric("aipipe.usage.sent"), 2);
    assert_eq!(h.metric("aipipe.usage.buffered"), 1);
    s.poll(&h);
    let next = h.calls.borrow().last().cloned().unwrap();
    let batch: serde_json::Value = serde_json::from_slice(&next.body).unwrap();
    assert_eq!(
        serde_json::from_value::<crate::usage::UsageSource>(batch["source"].clone()).unwrap(),
        crate::usage::UsageSource {
            node: "edge_1".into(),
            queued: 0,
            dropped: 1,
            sent: 2,
            reserved_nusd: Default::default(),
            key_reserved_nusd: Default::default(),
        }
    );
}

#[test]
fn a_replaced_singleton_hands_over_what_it_has_not_shipped() {
    let h = FakeHost::new();
    let mut s = singleton(&h, serde_json::json!({"batch_records": 2}));
    let record = |id: &str| format!(r#"{{"id":"{id}"}}"#).into_bytes();
    let notice = |key: &str| [&[crate::contract::RESERVATION_NOTICE][..], key.as_bytes()].concat();
    let watched = format!("{}acme", crate::contract::RESERVATIONS_PREFIX);
    let held = crate::budget::Held {
        inflight_nusd: 5,
        ..Default::default()
    };
    crate::flow::Host::shared_set(&h, &watched, &held.encode(), None).unwrap();
    // A batch of two is in flight, a third record waits behind it, and a
    // budget scope is watched.
    s.take_records(
        &h,
        [record("a"), record("b"), record("c"), notice(&watched)],
    );
    let posted = h.calls.borrow().last().cloned().unwrap();
    assert_eq!(posted.header(":path"), Some("/internal/v1/usage"));
    assert_eq!(s.unacknowledged(), 3);
    let handed = s.hand_over();
    assert_eq!(
        handed,
        [record("a"), record("b"), record("c"), notice(&watched)],
        "oldest first, the batch in flight included, then the notices"
    );
    assert_eq!(s.unacknowledged(), 0);
    assert!(s.hand_over().is_empty(), "nothing is handed over twice");
    // The next singleton takes them as the workers' own records and ships
    // them all.
    let h2 = FakeHost::new();
    let mut next = singleton(&h2, serde_json::json!({"batch_records": 10}));
    next.take_records(&h2, handed);
    next.poll(&h2);
    let post = h2
        .calls
        .borrow()
        .iter()
        .find(|c| c.header(":path") == Some("/internal/v1/usage"))
        .cloned()
        .unwrap();
    let batch: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        batch["records"],
        serde_json::json!([{"id": "a"}, {"id": "b"}, {"id": "c"}])
    );
}

#[test]
fn a_singleton_goes_by_its_configured_node_else_the_proxys_else_a_random_name() {
    let h = FakeHost::new();
    *h.node.borrow_mut() = Some("sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local".into());
    assert_eq!(
        singleton(&h, serde_json::json!({})).node(),
        "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local"
    );
    assert_eq!(
        singleton(&h, serde_json::json!({"node": "edge-a"})).node(),
        "edge-a"
    );
    *h.node.borrow_mut() = None;
    let (a, b) = (
        singleton(&h, serde_json::json!({})),
        singleton(&h, serde_json::json!({})),
    );
    assert!(
        a.node().starts_with("envoy-") && a.node().len() == 22,
        "{}",
        a.node()
    );
    assert_ne!(a.node(), b.node());
    let bad = crate::config::SingletonConfig::parse_with(
        br#"{"control_plane":{"cluster":"c","node":"a b"}}"#,
        |_| Some("t".into()),
    )
    .unwrap_err();
    assert!(bad.starts_with("control_plane.node:"), "{bad}");
}

/// The model each tenant's next greeting goes to.
fn greeting_goes_to(f: &Rc<Filter>, h: &FakeHost, key: &str) -> String {
    let (mut r, a) = send(f, h, "/v1/chat/completions", key, GREETING);
    assert_eq!(a, Action::Continue);
    let model = h.body_json()["model"].as_str().unwrap().to_owned();
    // End it well without lowering anything: a 400 says nothing.
    answer(&mut r, h, 400, "application/json", "{}");
    model
}

/// One attempt of `key`'s tenant answered `status` by the provider
/// (failover off and one attempt: nothing else is tried).
fn one_attempt_answered(f: &Rc<Filter>, h: &FakeHost, key: &str, status: u16) {
    let (mut r, _) = send(f, h, "/v1/chat/completions", key, GREETING);
    answer(&mut r, h, status, "application/json", "{}");
}

#[test]
fn a_tenants_rate_limited_key_moves_its_own_routing_and_nobody_elses() {
    let (f, h) = setup(r#", "failover_redirect": "off", "max_attempts": 1"#);
    assert_eq!(greeting_goes_to(&f, &h, KEY), "gpt-4o-mini");
    assert_eq!(greeting_goes_to(&f, &h, OTHER_KEY), "gpt-4o-mini");

    // acme's own key is rate-limited: acme moves, other (its own key) stays.
    for _ in 0..3 {
        one_attempt_answered(&f, &h, KEY, 429);
    }
    assert_ne!(greeting_goes_to(&f, &h, KEY), "gpt-4o-mini");
    assert_eq!(
        greeting_goes_to(&f, &h, OTHER_KEY),
        "gpt-4o-mini",
        "another tenant's 429s moved this tenant's routing"
    );
    let (bytes, _) = h.shared.borrow().get(PENALTIES_KEY).cloned().unwrap();
    let p = Penalties::decode(&bytes);
    assert_eq!(p.penalty("gpt-4o-mini", h.now_ms.get(), 30_000), 0.0);
    assert!(p.has_key_scoped());

    // The provider itself failing (5xx) is everybody's business.
    for _ in 0..3 {
        one_attempt_answered(&f, &h, OTHER_KEY, 503);
    }
    assert_ne!(greeting_goes_to(&f, &h, OTHER_KEY), "gpt-4o-mini");
    assert_ne!(greeting_goes_to(&f, &h, KEY), "gpt-4o-mini");
}

/// The tag a provider key is named by in penalties.
fn tag(key: &str) -> String {
    crate::sha::sha256_hex(key.as_bytes())[..16].to_owned()
}

#[test]
fn the_tables_key_penalty_moves_the_tenants_holding_that_key_only() {
    // The control plane saw acme's key 429ed through other Envoys: this one
    // holds no penalty of its own, yet routes acme around that pair.
    let table_extra = format!(
        r#", "key_penalties": [{{"model": "gpt-4o-mini", "key_tag": "{}", "penalty": 63}}]"#,
        tag("sk-acme")
    );
    let h = FakeHost::new();
    let f = Filter::new(
        config_with(
            &table_extra,
            r#", "failover_redirect": "off", "max_attempts": 1"#,
        ),
        &h,
    );
    assert_ne!(greeting_goes_to(&f, &h, KEY), "gpt-4o-mini");
    assert_eq!(greeting_goes_to(&f, &h, OTHER_KEY), "gpt-4o-mini");
    assert!(
        h.shared.borrow().get(PENALTIES_KEY).is_none(),
        "nothing local"
    );
}

#[test]
fn records_name_the_key_each_attempt_was_sent_with() {
    let (f, h) = setup("");
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", OTHER_KEY, GREETING);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 5, 2),
    );
    r.on_log(&h);
    let records = h.records();
    let other = records.iter().find(|r| r.tenant == "other").unwrap();
    assert_eq!(other.key_tag.as_deref(), Some(tag("sk-other").as_str()));
    assert!(
        !format!("{records:?}").contains("sk-"),
        "tags only, never keys"
    );
}

#[test]
fn pass_through_switched_off_for_a_tenant_is_refused_and_routing_still_works() {
    let closed = TenantEntry {
        rev: 1,
        removed: false,
        disabled: false,
        pass_through: false,
        provider_keys: vec![("openai".into(), "sk-closed".into())],
        limits: Default::default(),
        policy: Default::default(),
        router: Vec::new(),
    }
    .encode();
    let hash = hex_hash("vk-closed");
    let (f, h, _s) = with_directory(
        2,
        &[
            (Kind::Tenant, "closed", closed),
            (Kind::Key, &hash, key_entry(2, false, "closed")),
        ],
    );
    h.request(
        "GET",
        "/openai/v1/models",
        &[("authorization", "Bearer vk-closed")],
        b"",
    );
    let mut r = f.request();
    r.on_request_headers(&h, true);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "pass_through_disabled");
    let (_, a) = send(&f, &h, "/v1/chat/completions", "vk-closed", GREETING);
    assert_eq!(a, Action::Continue, "the routed API stays open");
}

#[test]
fn every_pass_through_call_is_recorded_unpriced_when_no_catalog_model_answered() {
    let (f, h) = setup("");
    // A files upload: the answer names no model.
    h.request(
        "POST",
        "/openai/v1/files",
        &[("authorization", "Bearer vk-acme")],
        b"--boundary--",
    );
    let mut r = f.request();
    assert_eq!(r.on_request_headers(&h, false), Action::Continue);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        r#"{"id":"file-1","object":"file"}"#,
    );
    r.on_log(&h);
    // A model the catalog does not know: its tokens, unpriced.
    h.request(
        "POST",
        "/openai/v1/chat/completions",
        &[("authorization", "Bearer vk-acme")],
        b"{}",
    );
    let mut r = f.request();
    r.on_request_headers(&h, false);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("o9-preview", 7, 3),
    );
    r.on_log(&h);
    let records = h.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].model.as_str(), records[0].usage_parsed),
        ("-", false)
    );
    assert_eq!(
        (records[1].model.as_str(), records[1].usage_parsed),
        ("o9-preview", false),
        "never $0 as if free"
    );
    assert_eq!(
        (records[1].prompt_tokens, records[1].completion_tokens),
        (7, 3)
    );
}

#[test]
fn a_stream_cut_before_its_usage_is_charged_an_estimate_marked_so() {
    let (f, h) = setup("");
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"tell me a long story about a lighthouse keeper and the sea"}]}"#;
    let (mut r, a) = send(&f, &h, "/v1/chat/completions", KEY, body);
    assert_eq!(a, Action::Continue);
    h.answer(200, &[("content-type", "text/event-stream")], b"");
    r.on_response_headers(&h, false);
    // Three events, then the client goes away: no end of stream, no usage.
    let chunk = |text: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        )
    };
    let part = chunk("Once") + &chunk(" upon") + &chunk(" a time");
    *h.response_body.borrow_mut() = part.clone().into_bytes();
    r.on_response_body(&h, part.len(), false);
    r.on_log(&h);
    let rec = &h.records()[0];
    assert!(rec.estimated && !rec.usage_parsed, "{rec:?}");
    assert!(rec.prompt_tokens > 0, "{rec:?}");
    assert_eq!(rec.completion_tokens, 3, "{rec:?}");
    assert!(rec.cost_nusd > 0, "never $0: {rec:?}");
}

#[test]
fn a_pass_through_body_naming_a_disabled_model_is_refused_in_the_providers_shape() {
    let mut global = crate::table::RoutingTable {
        version: 1,
        ..crate::table::RoutingTable::default()
    };
    for m in &mut global.models {
        if m.id == "gpt-4o" || m.id == "claude-opus-4-5" {
            m.enabled = false;
        }
    }
    let global = serde_json::to_string(&global).unwrap();
    let (f, h, _s) = pass_through_tenant(&global);
    let post = |path: &str, body: &str| {
        let headers = [
            ("authorization", "Bearer vk-t"),
            ("content-type", "application/json"),
        ];
        send_with(&f, &h, path, &headers, body).1
    };
    // Disabled: refused, nothing forwarded, in the provider's own shape.
    post(
        "/openai/v1/chat/completions",
        r#"{"model":"gpt-4o","messages":[]}"#,
    );
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "model_disabled");
    post(
        "/anthropic/v1/messages",
        r#"{"model":"claude-opus-4-5","max_tokens":5,"messages":[]}"#,
    );
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "permission_error");
    // Enabled, or unknown to the catalog: forwarded as it came.
    assert_eq!(
        post(
            "/openai/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#
        ),
        Action::Continue
    );
    assert!(h.reply().is_none());
    assert_eq!(
        post(
            "/openai/v1/chat/completions",
            r#"{"model":"o9-preview","messages":[]}"#
        ),
        Action::Continue
    );
    assert_eq!(h.header(":path").as_deref(), Some("/v1/chat/completions"));
}

fn budget_entry(rev: u64, limit: u64, spent: u64) -> Vec<u8> {
    crate::directory::BudgetEntry {
        rev,
        removed: false,
        limit_nusd: limit,
        days: 30,
        spent_nusd: spent,
        // Yesterday's spend leaves the window in 29 days.
        frees: vec![(1_700_000_000_000 + 29 * 86_400_000, spent)],
    }
    .encode()
}

fn held(h: &FakeHost, tenant: &str) -> crate::budget::Held {
    shared(h, &format!("aipipe.rv.{tenant}"))
        .and_then(|b| crate::budget::Held::decode(&b))
        .unwrap_or_default()
}

/// A budget reserves each request's worst case before it goes upstream,
/// refuses what would pass this Envoy's lease (429 budget_exceeded with
/// retry-after), settles with the exact cost, and hands acknowledged spend
/// over to the control plane's next entry.
#[test]
fn a_budget_reserves_refuses_settles_and_hands_spend_to_the_entry() {
    budget_flow(false);
}

/// As above, with the singleton replaced (a native configuration reload)
/// between the acknowledgement and the entry that counts it: the next one
/// is handed the scope that waits, so the spend still leaves the count.
#[test]
fn acknowledged_spend_waiting_for_its_entry_survives_a_replaced_singleton() {
    budget_flow(true);
}

/// A named model is scored and ranked only when its fallbacks are needed;
/// a budget's reservation needs them (it covers the dearest attempt the
/// request may make), so a named request under a budget with room to fail
/// over reserves more than its model alone would cost.
#[test]
fn a_named_models_reservation_covers_its_fallbacks() {
    let hash = hex_hash("vk-b");
    let h = FakeHost::new();
    let config = |attempts: u32| {
        Config::parse(
            format!(r#"{{"max_attempts": {attempts}, "failover_redirect": "off"}}"#).as_bytes(),
        )
        .unwrap()
    };
    let (alone, with_fallbacks) = (Filter::new(config(1), &h), Filter::new(config(3), &h));
    let mut s = singleton(&h, serde_json::json!({"wait_ms": 0}));
    s.poll(&h);
    let keys = [("openai", "sk-b"), ("anthropic", "ak-b")];
    let entries = vec![
        (Kind::Tenant, "b", tenant_entry(2, false, &keys)),
        (Kind::Key, hash.as_str(), key_entry(3, false, "b")),
        (Kind::Budget, "b", budget_entry(4, u64::MAX, 0)),
    ];
    answer_changes(&mut s, &h, delta(0, 5, Some(r#"{"version": 1}"#), &entries));
    let body = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}"#;
    let reserve = |f: &std::rc::Rc<Filter>| {
        let before = counters::snapshot();
        let (mut r, a) = send(f, &h, "/v1/chat/completions", "vk-b", body);
        assert_eq!(a, Action::Continue);
        let worst = held(&h, "b").inflight_nusd;
        r.on_log(&h); // never answered: handed back
        assert_eq!(held(&h, "b").inflight_nusd, 0);
        (worst, counters::since(before))
    };
    let (one, counted) = reserve(&alone);
    assert_eq!(counted, (1, 0, 0), "one attempt: nothing to rank");
    let (three, counted) = reserve(&with_fallbacks);
    assert_eq!(counted, (2, 1, 1), "ranked for the reservation");
    assert!(
        three > one,
        "{three} > {one}: a dearer fallback's worst case"
    );
}

fn budget_flow(replace_singleton: bool) {
    let hash = hex_hash("vk-b");
    let entries = |limit: u64, spent: u64, rev: u64| {
        vec![
            (
                Kind::Tenant,
                "b",
                tenant_entry(2, false, &[("openai", "sk-b")]),
            ),
            (Kind::Key, hash.as_str(), key_entry(3, false, "b")),
            (Kind::Budget, "b", budget_entry(rev, limit, spent)),
        ]
    };
    let h = FakeHost::new();
    let f = Filter::new(
        Config::parse(br#"{"max_attempts": 1, "failover_redirect": "off"}"#).unwrap(),
        &h,
    );
    let mut s = singleton(&h, serde_json::json!({"wait_ms": 0}));
    s.poll(&h);
    // Room for exactly two worst cases; measure one first.
    answer_changes(
        &mut s,
        &h,
        delta(0, 5, Some(r#"{"version": 1}"#), &entries(u64::MAX, 0, 4)),
    );
    let body = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}"#;
    let (mut probe, a) = send(&f, &h, "/v1/chat/completions", "vk-b", body);
    assert_eq!(a, Action::Continue);
    let worst = held(&h, "b").inflight_nusd;
    assert!(worst >= 100 * 600, "{worst}");
    probe.on_log(&h); // never answered: handed back
    assert_eq!(held(&h, "b").inflight_nusd, 0);
    h.queue.borrow_mut().clear();

    let limit = 1_000_000_000;
    let spent = limit - 2 * worst - worst / 2;
    let mut page = delta(5, 6, None, &entries(limit, spent, 6));
    answer_changes(&mut s, &h, std::mem::take(&mut page));
    // The request for changes now waiting at the control plane.
    let changes_token = h.last_token();
    let (mut first, a) = send(&f, &h, "/v1/chat/completions", "vk-b", body);
    assert_eq!(a, Action::Continue);
    let (_second, a) = send(&f, &h, "/v1/chat/completions", "vk-b", body);
    assert_eq!(a, Action::Continue);
    assert_eq!(held(&h, "b").inflight_nusd, 2 * worst);
    let (_third, _) = send(&f, &h, "/v1/chat/completions", "vk-b", body);
    let reply = h.reply().expect("refused");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["code"], "budget_exceeded");
    let msg = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("$1.00 per 30 days"), "{msg}");
    // Yesterday's spend frees up in 29 days.
    assert_eq!(reply.header("retry-after"), Some("2505600"));
    assert_eq!(held(&h, "b").inflight_nusd, 2 * worst, "nothing reserved");

    // The first ends: its reservation becomes its exact cost.
    answer(
        &mut first,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 7, 3),
    );
    first.on_log(&h);
    let cost = 7 * 150 + 3 * 600;
    let after = held(&h, "b");
    assert_eq!((after.inflight_nusd, after.unacked_nusd), (worst, cost));
    let records = h.records();
    let record = records.last().unwrap();
    assert_eq!(
        (record.reserved_nusd, record.cost_nusd),
        (Some(worst), cost)
    );

    // Shipped and acknowledged at revision 9: waits for that revision.
    let queued: Vec<Vec<u8>> = h.queue.borrow_mut().drain(..).collect();
    s.take_records(&h, queued);
    s.poll(&h);
    let post = h
        .calls
        .borrow()
        .iter()
        .rev()
        .find(|c| c.header(":path") == Some("/internal/v1/usage"))
        .cloned()
        .unwrap();
    *h.call_status.borrow_mut() = Some(200);
    *h.call_body.borrow_mut() = br#"{"accepted":1,"duplicates":0,"revision":9}"#.to_vec();
    s.on_call_response(&h, post.token, h.call_body.borrow().len());
    let after = held(&h, "b");
    assert_eq!(
        (after.unacked_nusd, after.acked.clone()),
        (0, vec![(9, cost)])
    );
    // The entry that counts it arrives: it leaves this Envoy's count.
    let counted = delta(6, 9, None, &entries(limit, spent + cost, 9));
    if replace_singleton {
        let handed = s.hand_over();
        let mut next = singleton(&h, serde_json::json!({"wait_ms": 0}));
        next.take_records(&h, handed);
        next.poll(&h);
        answer_changes(&mut next, &h, counted);
    } else {
        *h.call_body.borrow_mut() = counted;
        let size = h.call_body.borrow().len();
        s.on_call_response(&h, changes_token, size);
    }
    let after = held(&h, "b");
    assert_eq!((after.inflight_nusd, after.outstanding()), (worst, worst));
}

/// A virtual key's own budget: reserved and refused by itself (its
/// tenant has none), another key of the tenant untouched, the record names
/// the key and what it reserved, and the acknowledgement moves the key's
/// held spend.
#[test]
fn a_virtual_keys_budget_binds_that_key_only() {
    let (one, two) = (hex_hash("vk-one"), hex_hash("vk-two"));
    let key = |rev: u64, id: &str| {
        KeyEntry {
            rev,
            removed: false,
            tenant: "b".into(),
            limits: Default::default(),
            id: id.into(),
            budgeted: id == "vk_one",
        }
        .encode()
    };
    let entries = |limit: u64, rev: u64| {
        vec![
            (
                Kind::Tenant,
                "b",
                tenant_entry(2, false, &[("openai", "sk-b")]),
            ),
            (Kind::Key, one.as_str(), key(3, "vk_one")),
            (Kind::Key, two.as_str(), key(4, "vk_two")),
            (Kind::KeyBudget, "vk_one", budget_entry(rev, limit, 0)),
        ]
    };
    let h = FakeHost::new();
    let f = Filter::new(
        Config::parse(br#"{"max_attempts": 1, "failover_redirect": "off"}"#).unwrap(),
        &h,
    );
    let mut s = singleton(&h, serde_json::json!({"wait_ms": 0}));
    s.poll(&h);
    answer_changes(
        &mut s,
        &h,
        delta(0, 5, Some(r#"{"version": 1}"#), &entries(u64::MAX, 5)),
    );
    let key_held = |id: &str| {
        shared(&h, &format!("aipipe.rk.{id}"))
            .and_then(|b| crate::budget::Held::decode(&b))
            .unwrap_or_default()
    };
    let body = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}"#;
    let (mut probe, a) = send(&f, &h, "/v1/chat/completions", "vk-one", body);
    assert_eq!(a, Action::Continue);
    let worst = key_held("vk_one").inflight_nusd;
    assert!(worst >= 100 * 600, "{worst}");
    assert_eq!(
        held(&h, "b"),
        Default::default(),
        "the tenant has no budget"
    );
    probe.on_log(&h);
    assert_eq!(key_held("vk_one").inflight_nusd, 0, "handed back");
    h.queue.borrow_mut().clear();

    // Room for one worst case.
    answer_changes(
        &mut s,
        &h,
        delta(5, 6, None, &entries(worst + worst / 2, 6)),
    );
    let (mut first, a) = send(&f, &h, "/v1/chat/completions", "vk-one", body);
    assert_eq!(a, Action::Continue);
    let _ = send(&f, &h, "/v1/chat/completions", "vk-one", body);
    let reply = h.reply().expect("refused");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["code"], "budget_exceeded");
    let msg = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("virtual key's budget"), "{msg}");
    // The tenant's other key is not bound by it.
    let (_other, a) = send(&f, &h, "/v1/chat/completions", "vk-two", body);
    assert_eq!(a, Action::Continue);
    assert_eq!(key_held("vk_two"), Default::default());

    // The singleton reports what is in flight, with no record to send yet.
    let notices: Vec<Vec<u8>> = h.queue.borrow_mut().drain(..).collect();
    assert!(!notices.is_empty() && notices.iter().all(|n| n[0] == 0));
    s.take_records(&h, notices);
    s.poll(&h);
    let report = h
        .calls
        .borrow()
        .iter()
        .rev()
        .find(|c| c.header(":path") == Some("/internal/v1/usage"))
        .cloned()
        .unwrap();
    let batch: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
    assert_eq!(batch["records"], serde_json::json!([]));
    assert_eq!(
        batch["source"]["key_reserved_nusd"],
        serde_json::json!({"vk_one": worst})
    );
    assert!(batch["source"].get("reserved_nusd").is_none(), "{batch}");
    *h.call_status.borrow_mut() = Some(200);
    *h.call_body.borrow_mut() = br#"{"accepted":0,"duplicates":0,"revision":6}"#.to_vec();
    s.on_call_response(&h, report.token, h.call_body.borrow().len());
    s.poll(&h);
    assert_eq!(
        h.calls.borrow().last().map(|c| c.token),
        Some(report.token),
        "unchanged: not sent again"
    );

    answer(
        &mut first,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o-mini", 7, 3),
    );
    first.on_log(&h);
    let cost = 7 * 150 + 3 * 600;
    let records = h.records();
    let record = records.last().unwrap();
    assert_eq!(record.virtual_key.as_deref(), Some("vk_one"));
    assert_eq!(
        (record.reserved_nusd, record.key_reserved_nusd),
        (None, Some(worst))
    );
    let after = key_held("vk_one");
    assert_eq!((after.inflight_nusd, after.unacked_nusd), (0, cost));

    let queued: Vec<Vec<u8>> = h.queue.borrow_mut().drain(..).collect();
    s.take_records(&h, queued);
    s.poll(&h);
    let post = h
        .calls
        .borrow()
        .iter()
        .rev()
        .find(|c| c.header(":path") == Some("/internal/v1/usage"))
        .cloned()
        .unwrap();
    *h.call_status.borrow_mut() = Some(200);
    *h.call_body.borrow_mut() = br#"{"accepted":1,"duplicates":0,"revision":9}"#.to_vec();
    s.on_call_response(&h, post.token, h.call_body.borrow().len());
    let after = key_held("vk_one");
    assert_eq!(
        (after.unacked_nusd, after.acked.clone()),
        (0, vec![(9, cost)])
    );
}
// ---- the fleet-wide rate limits (Envoy's rate-limit filter, envoy/ratelimit/)

#[test]
fn the_rate_limit_descriptor_names_the_authenticated_tenant_never_the_clients_pick() {
    let (f, h) = setup("");
    let spoofed = [
        ("authorization", "Bearer vk-acme"),
        ("x-aipipe-rl-tenant", "other"),
        ("x-aipipe-rl-key", "vk_someone_else"),
    ];
    let (_, a) = send_with(&f, &h, "/v1/chat/completions", &spoofed, GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("x-aipipe-rl-tenant").as_deref(), Some("acme"));
    assert_eq!(
        h.header("x-aipipe-rl-key"),
        None,
        "a client copy is removed"
    );

    // Pass-through requests are counted too.
    h.request(
        "GET",
        "/openai/v1/files",
        &[
            ("authorization", "Bearer vk-other"),
            ("x-aipipe-rl-tenant", "acme"),
        ],
        b"",
    );
    let mut r = f.request();
    assert_eq!(r.on_request_headers(&h, true), Action::Continue);
    assert_eq!(h.header("x-aipipe-rl-tenant").as_deref(), Some("other"));

    // Not authenticated: answered by the filter, nothing set, the client's
    // copy gone.
    let (_, _) = send_with(
        &f,
        &h,
        "/v1/chat/completions",
        &[
            ("authorization", "Bearer nope"),
            ("x-aipipe-rl-tenant", "acme"),
        ],
        GREETING,
    );
    assert_eq!(h.reply().unwrap().status, 401);
    assert_eq!(h.header("x-aipipe-rl-tenant"), None);
}

/// Envoy's rate-limit filter answers in the request's place: its local
/// reply passes through this filter's response phase like a provider's.
fn envoy_refuses(r: &mut Request, h: &FakeHost, details: &str, status: u16, reset: Option<&str>) {
    *h.code_details.borrow_mut() = Some(details.to_owned());
    let mut headers = vec![("content-type", "text/plain")];
    if let Some(reset) = reset {
        headers.push(("x-ratelimit-reset", reset));
    }
    h.answer(status, &headers, b"");
    r.on_response_headers(h, false);
}

#[test]
fn a_fleet_rate_limit_refusal_is_the_projects_429_with_no_failover_and_no_record() {
    let (f, h) = setup("");
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    envoy_refuses(&mut r, &h, "request_rate_limited", 429, Some("17"));
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("17"));
    let e = &reply.json()["error"];
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "rate_limited");
    assert!(h.calls.borrow().is_empty(), "no failover call");
    r.on_log(&h);
    assert!(h.records().is_empty(), "no provider answered: no usage");

    // An Anthropic client gets Anthropic's shape; no reset header: a minute.
    let body = r#"{"model":"auto","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let (mut r, a) = send_with(&f, &h, "/v1/messages", &[("x-api-key", KEY)], body);
    assert_eq!(a, Action::Continue);
    envoy_refuses(&mut r, &h, "request_rate_limited", 429, None);
    let reply = h.reply().unwrap();
    assert_eq!(reply.header("retry-after"), Some("60"));
    let v = reply.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[test]
fn a_rate_limit_service_failure_under_deny_is_a_503_and_a_providers_429_still_fails_over() {
    let (f, h) = setup(r#", "failover_redirect": "off""#);
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    envoy_refuses(&mut r, &h, "rate_limiter_error", 500, None);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "rate_limit_unavailable");
    assert!(h.calls.borrow().is_empty());

    // The same status from a provider is its failure: the next candidate.
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    envoy_refuses(&mut r, &h, "via_upstream", 429, Some("17"));
    assert_eq!(h.calls.borrow().len(), 1, "failed over");

    // A pass-through request to Anthropic gets Anthropic's shape.
    h.request(
        "GET",
        "/anthropic/v1/models",
        &[("authorization", "Bearer vk-acme")],
        b"",
    );
    let mut r = f.request();
    r.on_request_headers(&h, true);
    envoy_refuses(&mut r, &h, "request_rate_limited", 429, Some("3"));
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error");
    assert_eq!(reply.json()["type"], "error");
    r.on_log(&h);
    assert!(h.records().is_empty());
}

#[test]
fn a_directory_keys_id_is_its_rate_limit_descriptor_beside_its_tenant() {
    let tenant = tenant_entry(1, false, &[("openai", "sk-dir")]);
    let hash = hex_hash("vk-dir");
    let (f, h, _s) = with_directory(
        2,
        &[
            (Kind::Tenant, "dir", tenant),
            (Kind::Key, &hash, key_entry(2, false, "dir")),
        ],
    );
    let spoofed = [
        ("authorization", "Bearer vk-dir"),
        ("x-aipipe-rl-key", "vk_acme"),
    ];
    let (_, a) = send_with(&f, &h, "/v1/chat/completions", &spoofed, GREETING);
    assert_eq!(a, Action::Continue);
    assert_eq!(h.header("x-aipipe-rl-tenant").as_deref(), Some("dir"));
    assert_eq!(h.header("x-aipipe-rl-key").as_deref(), Some("vk_dir"));
}

/// A tenant whose directory entry carries its own correction to the router
/// model has its unseen requests of that kind routed to the frontier tier;
/// another tenant's same request keeps the global model's tier.
#[test]
fn a_tenants_router_correction_routes_its_pattern_and_only_its_own() {
    use crate::tenant_router::{Adjustment, FitOptions, fixtures};
    let model = crate::classify::bundled().unwrap();
    let (tenant, background) = fixtures::drafting(&model);
    let adj = Adjustment::fit(&model, &tenant, &background, FitOptions::default());
    let entry = |id: &str, router: Vec<u8>| {
        TenantEntry {
            rev: 2,
            removed: false,
            disabled: false,
            pass_through: true,
            provider_keys: vec![
                ("openai".into(), format!("sk-{id}")),
                ("anthropic".into(), format!("ska-{id}")),
            ],
            limits: Default::default(),
            policy: Default::default(),
            router,
        }
        .encode()
    };
    let (learnt, plain) = (hex_hash("vk-learnt"), hex_hash("vk-plain"));
    let (f, h, _s) = with_directory_and(
        r#"{"version": 1, "router_model": "builtin"}"#,
        3,
        &[
            (Kind::Tenant, "learnt", entry("learnt", adj.encode())),
            (Kind::Tenant, "plain", entry("plain", Vec::new())),
            (Kind::Key, &learnt, key_entry(3, false, "learnt")),
            (Kind::Key, &plain, key_entry(3, false, "plain")),
        ],
    );
    let body = format!(
        r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#,
        // One the global model routes below the frontier tier.
        fixtures::UNSEEN[1]
    );
    let complexity = |key: &str| {
        let (mut r, a) = send(&f, &h, "/v1/chat/completions", key, &body);
        assert_eq!(a, Action::Continue);
        let reply = match h.header("x-aipipe-cluster").as_deref() {
            Some("anthropic") => messages_answer(10, 5),
            _ => chat_answer("gpt-4o-mini", 10, 5),
        };
        answer(&mut r, &h, 200, "application/json", &reply);
        h.response_header_value("x-aipipe-complexity")
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let (theirs, others) = (complexity("vk-learnt"), complexity("vk-plain"));
    assert!(theirs >= 0.70, "the tenant's own: {theirs}");
    assert!(others < 0.70, "another tenant's: {others}");
}

/// Claude 5.x refuses sampling parameters: routed there, the request goes
/// without them and the answer names what was dropped; a model that takes
/// them gets them, and its answer names nothing.
#[test]
fn dropped_sampling_parameters_are_named_in_the_answer() {
    let (f, h) = setup("");
    let hot = PROOF.replace(
        r#""model":"auto","#,
        r#""model":"auto","temperature":0.7,"top_p":0.9,"#,
    );
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, &hot);
    assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("anthropic"));
    let sent = h.body_json();
    assert!(sent["model"].as_str().unwrap().ends_with("-5-5"), "{sent}");
    assert!(sent.get("temperature").is_none() && sent.get("top_p").is_none());
    assert_eq!(
        h.header("content-length"),
        Some(h.request_body.borrow().len().to_string())
    );
    answer(&mut r, &h, 200, "application/json", &messages_answer(40, 7));
    assert_eq!(
        h.response_header_value("x-aipipe-dropped-params")
            .as_deref(),
        Some("temperature,top_p")
    );

    let named = hot.replace(r#""model":"auto""#, r#""model":"gpt-4o""#);
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, &named);
    assert_eq!(h.body_json()["temperature"], 0.7);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o", 9, 2),
    );
    assert_eq!(h.response_header_value("x-aipipe-dropped-params"), None);
}

/// `temperature` 0 makes a request cacheable, but a model that refuses
/// sampling parameters never sees it: its answer is not replayed.
#[test]
fn a_temperature_a_model_never_saw_does_not_make_its_answer_cacheable() {
    let (f, h) = setup("");
    let cold = PROOF.replace(r#""model":"auto","#, r#""model":"auto","temperature":0,"#);
    for _ in 0..2 {
        let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, &cold);
        assert!(h.reply().is_none(), "went upstream, not to the cache");
        assert_eq!(h.header("x-aipipe-cluster").as_deref(), Some("anthropic"));
        answer(&mut r, &h, 200, "application/json", &messages_answer(40, 7));
        assert_eq!(
            h.response_header_value("x-aipipe-cache").as_deref(),
            Some("bypass")
        );
        assert_eq!(
            h.response_header_value("x-aipipe-dropped-params")
                .as_deref(),
            Some("temperature")
        );
        r.on_log(&h);
    }
    // The same request named to a model that takes the temperature is cached.
    let named = cold.replace(r#""model":"auto""#, r#""model":"gpt-4o""#);
    let (mut r, _) = send(&f, &h, "/v1/chat/completions", KEY, &named);
    answer(
        &mut r,
        &h,
        200,
        "application/json",
        &chat_answer("gpt-4o", 9, 2),
    );
    assert_eq!(
        h.response_header_value("x-aipipe-cache").as_deref(),
        Some("miss")
    );
    r.on_log(&h);
    let _ = send(&f, &h, "/v1/chat/completions", KEY, &named);
    assert_eq!(h.reply().map(|r| r.status), Some(200), "a hit");
}

/// Naming Claude 5.x with a forced tool is the gateway's 400, in the
/// client's shape, and nothing goes upstream.
#[test]
fn a_forced_tool_to_a_model_that_refuses_it_is_refused_before_any_provider() {
    let (f, h) = setup("");
    let chat = r#"{"model":"claude-sonnet-5-5","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","messages":[{"role":"user","content":"hi"}]}"#;
    send(&f, &h, "/v1/chat/completions", KEY, chat);
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 400);
    let v = reply.json();
    assert_eq!(v["error"]["code"], "unsupported_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-sonnet-5-5")
    );
    assert_eq!(h.header("x-aipipe-cluster"), None, "nothing forwarded");

    let messages = r#"{"model":"claude-opus-5-5","max_tokens":10,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"hi"}]}"#;
    send_with(
        &f,
        &h,
        "/v1/messages",
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        messages,
    );
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 400);
    let v = reply.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-opus-5-5")
    );
}

/// Every host call is a crossing out of the VM (in Wasm, with a copy into
/// it for those that return data): a routed request's count is held here,
/// so a new one is a decision, not an accident (tests/README.md, "Where
/// the Wasm build's time goes"). The first request of a worker also
/// defines its metrics.
#[test]
fn a_routed_request_makes_a_bounded_number_of_host_calls() {
    // The common path: the answering model has no retirement date, so no
    // `Sunset` header (gpt-4o-mini has one in the default catalog; it is
    // taken off here, and `a_retiring_model_is_sunset_then_retired`
    // counts the one header a dated model adds).
    let mut models = crate::catalog::default_models();
    for m in &mut models {
        m.retires_at = None;
    }
    let extra = format!(r#", "models": {}"#, serde_json::to_string(&models).unwrap());
    let h = FakeHost::new();
    let f = Filter::new(config_with(&extra, ""), &h);
    let mut counts = Vec::new();
    for _ in 0..2 {
        h.host_calls.borrow_mut().clear();
        let (mut r, a) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
        assert_eq!(a, Action::Continue);
        let request = h.host_calls.borrow().len();
        answer(
            &mut r,
            &h,
            200,
            "application/json",
            &chat_answer("gpt-4o-mini", 9, 3),
        );
        r.on_log(&h);
        let calls = h.host_calls.borrow();
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in calls.iter() {
            *by.entry(c).or_default() += 1;
        }
        counts.push((request, calls.len(), by));
    }
    let (request, total, by) = &counts[1];
    // Request side: the headers read, the tenant's shared state (table
    // version, penalties, directory), the body read and its model spliced,
    // six headers set, the route cleared; the answer: its headers read and
    // six x-aipipe-* set, its body read; the metrics and the usage record.
    assert!(
        *request <= 14 && *total <= 34,
        "{request} / {total}: {by:?}"
    );
    assert_eq!(by.get("request_body"), Some(&1), "{by:?}");
    assert_eq!(
        by.get("define_metric"),
        None,
        "defined once a worker: {by:?}"
    );
    assert!(counts[0].1 > *total, "{:?}", counts[0]);
    assert_eq!(
        h.response_header_value("sunset"),
        None,
        "no date, no header"
    );
}

/// A scheduled retirement (filter/README.md, "Scheduled retirements"),
/// by the host's clock with no new table: before the instant, gpt-4o-mini
/// (retiring 2027-01-14 in the default catalog) is routed to and its
/// answers carry `Sunset` — one header more than a model without a date,
/// whose answers carry none; from the instant, `auto` never picks it, a
/// request naming it is a 404 `model_not_found` giving the date, a
/// pass-through body naming it is refused as a disabled model is (403,
/// the provider's shape, the date), and `/v1/models` no longer lists it.
#[test]
fn a_retiring_model_is_sunset_then_retired() {
    const R: u64 = 1_799_884_800_000; // 2027-01-14T00:00:00Z
    let global = serde_json::to_string(&crate::table::RoutingTable {
        version: 1,
        ..crate::table::RoutingTable::default()
    })
    .unwrap();
    let (f, h, _s) = pass_through_tenant(&global);
    let headers = [
        ("authorization", "Bearer vk-t"),
        ("content-type", "application/json"),
    ];
    let post = |path: &str, body: &str| send_with(&f, &h, path, &headers, body);
    let named =
        |m: &str| format!(r#"{{"model":"{m}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    // Answers a routed request; the number of response headers set.
    let answered = |r: &mut Request, model: &str| {
        h.host_calls.borrow_mut().clear();
        let body = if model.starts_with("claude") {
            messages_answer(9, 3)
        } else {
            chat_answer(model, 9, 3)
        };
        answer(r, &h, 200, "application/json", &body);
        r.on_log(&h);
        h.host_calls
            .borrow()
            .iter()
            .filter(|c| **c == "set_response_header")
            .count()
    };
    let listed = || {
        h.request("GET", "/v1/models", &headers, b"");
        let mut r = f.request();
        assert_eq!(r.on_request_headers(&h, true), Action::Pause);
        let v = h.reply().unwrap().json();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };

    h.now_ms.set(R - 1);
    let (mut r, a) = post("/v1/chat/completions", &named("gpt-4o-mini"));
    assert_eq!(a, Action::Continue);
    answered(&mut r, "gpt-4o-mini");
    assert_eq!(
        h.response_header_value("sunset").as_deref(),
        Some("Thu, 14 Jan 2027 00:00:00 GMT")
    );
    // Two models of one provider, the same request: the dated one's answer
    // sets one header more.
    let (mut r, a) = post("/v1/chat/completions", &named("claude-opus-4-5"));
    assert_eq!(a, Action::Continue);
    let dated = answered(&mut r, "claude-opus-4-5");
    assert_eq!(
        h.response_header_value("sunset").as_deref(),
        Some("Fri, 22 Jan 2027 00:00:00 GMT")
    );
    let (mut r, a) = post("/v1/chat/completions", &named("claude-sonnet-5-5"));
    assert_eq!(a, Action::Continue);
    let undated = answered(&mut r, "claude-sonnet-5-5");
    assert_eq!(h.response_header_value("sunset"), None);
    assert_eq!(
        dated,
        undated + 1,
        "one header more, only for a dated model"
    );
    post("/v1/chat/completions", GREETING);
    assert_eq!(h.body_json()["model"], "gpt-4o-mini", "the cheapest before");
    assert!(listed().iter().any(|m| m == "gpt-4o-mini"));

    h.now_ms.set(R);
    let (_, a) = post("/v1/chat/completions", GREETING);
    assert_eq!(a, Action::Continue);
    let routed = h.body_json()["model"].as_str().unwrap().to_owned();
    assert!(
        !["gpt-4o-mini", "gpt-4o"].contains(&routed.as_str()),
        "{routed}"
    );
    post("/v1/chat/completions", &named("gpt-4o-mini"));
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 404);
    let v = reply.json();
    assert_eq!(v["error"]["code"], "model_not_found");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`gpt-4o-mini` was retired by its provider on 2027-01-14"),
        "{message}"
    );
    assert!(!message.contains("sk-t"), "{message}");
    post(
        "/openai/v1/chat/completions",
        r#"{"model":"gpt-4o","messages":[]}"#,
    );
    let reply = h.reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "model_disabled");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("retired by its provider on 2027-01-14"),
        "{message}"
    );
    // claude-opus-4-5 retires later: still served, its Sunset its own date.
    let (mut r, a) = post("/v1/chat/completions", &named("claude-opus-4-5"));
    assert_eq!(a, Action::Continue);
    answered(&mut r, "claude-opus-4-5");
    assert_eq!(
        h.response_header_value("sunset").as_deref(),
        Some("Fri, 22 Jan 2027 00:00:00 GMT")
    );
    let ids = listed();
    assert!(
        !ids.iter().any(|m| m == "gpt-4o-mini" || m == "gpt-4o"),
        "{ids:?}"
    );
    assert!(ids.iter().any(|m| m == "claude-opus-4-5"), "{ids:?}");
}

/// A scheduled price change (filter/README.md, "Scheduled price changes"):
/// a request is priced — its cost, and the model selection — at the prices
/// in force when it started, by the host's clock, with no new table: one
/// that started a millisecond before the instant is costed at the old
/// prices even when it ends after it; one that starts at the instant is
/// costed at the new ones, and auto routing ranks with them.
#[test]
fn a_scheduled_price_change_prices_requests_by_their_start() {
    // 2027-01-03, before gpt-4o-mini retires (2027-01-14).
    const AT: u64 = 1_799_000_000_000;
    let mut models = crate::catalog::default_models();
    for m in models.iter_mut().filter(|m| m.id == "gpt-4o-mini") {
        m.price_changes = vec![crate::catalog::PriceChange {
            from: crate::timestamp::Timestamp(AT),
            input_per_mtok: 30.0,
            output_per_mtok: 120.0,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }];
    }
    let extra = format!(r#", "models": {}"#, serde_json::to_string(&models).unwrap());
    let h = FakeHost::new();
    let f = Filter::new(config_with(&extra, ""), &h);
    let named = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let cost = |r: &mut Request| {
        answer(
            r,
            &h,
            200,
            "application/json",
            &chat_answer("gpt-4o-mini", 1000, 500),
        );
        r.on_log(&h);
        h.records().last().map(|rec| rec.cost_nusd)
    };

    h.now_ms.set(AT - 1);
    let (mut before, _) = send(&f, &h, "/v1/chat/completions", KEY, named);
    let (mut greeting, _) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    assert_eq!(h.body_json()["model"], "gpt-4o-mini", "the cheapest before");
    assert_eq!(cost(&mut greeting), Some(1000 * 150 + 500 * 600));

    h.now_ms.set(AT);
    let (mut at, _) = send(&f, &h, "/v1/chat/completions", KEY, named);
    // Ends after the instant, after the worker repriced its table: still
    // its start's prices.
    h.now_ms.set(AT + 5);
    assert_eq!(cost(&mut before), Some(1000 * 150 + 500 * 600));
    assert_eq!(cost(&mut at), Some(1000 * 30_000 + 500 * 120_000));
    // Auto routing ranks with the new prices: $30 / $120 is no longer the
    // cheapest.
    let (_, a) = send(&f, &h, "/v1/chat/completions", KEY, GREETING);
    assert_eq!(a, Action::Continue);
    assert_ne!(h.body_json()["model"], "gpt-4o-mini");
}
