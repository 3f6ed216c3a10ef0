//! The official `openai` and `anthropic` Python SDKs (pinned; the Makefile
//! installs them into `.venv/`) against real Envoy with the real filter and
//! the mock providers (issue #4, filter/README.md, "Client protocols" and
//! "Providers and catalog").
//!
//! - OpenAI SDK → `POST /v1/chat/completions`: OpenAI models as is; Anthropic
//!   models translated to Anthropic's native Messages API (`/v1/messages`,
//!   `x-api-key`, `anthropic-version`) and back, plain and streamed.
//! - Anthropic SDK → `POST /v1/messages` (virtual key in `x-api-key`), routed
//!   by the same scorer: Anthropic models as is, OpenAI-format providers
//!   translated to Chat Completions and back.
//!
//! Each SDK's cases run in one Python process (`tests/sdk/*_cases.py
//! --batch`, SDK imports cost a second or two) against one stack started for
//! it; the script checks what the SDK parsed (types, streamed reassembly,
//! usage, tool calls) and prints one JSON line per case with what it observed
//! and what the mock provider received for it (cleared between cases). Each
//! case is its own `#[test]` here, which checks where the request went: the
//! `x-aipipe-*` headers the SDK exposed, the endpoint, key and translated body
//! the provider got. The stack is stopped as soon as the batch has run.
//!
//! Cases that would share a routed model and a body get different prompts, so
//! that the answer cache (keyed on the routed model) cannot answer one of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::scripts::{
    Batch, Case, PNG_1X1, Run, SYSTEM, assert_answered_by, assert_mock_text, assert_weather_args,
    caught, png_data_url, python, spec,
};
use common::{ACME, Stack};
use serde_json::{Value, json};

const HARD_PROMPT: &str = "Prove by induction that every finite tree with n vertices has exactly n-1 edges. \
     Then give a formal proof that a connected graph with n-1 edges is a tree, and show the bound is tight.";
/// How long one SDK's batch may run (each call times out after 20 s).
const BATCH_PATIENCE: Duration = Duration::from_secs(120);

const OPENAI_CASES: &[Case] = &[
    ("plain_auto", "plain", "auto", None),
    (
        "plain_gpt",
        "plain",
        "gpt-4o-mini",
        Some("hi! how is your day going?"),
    ),
    ("stream_gpt", "stream", "gpt-4o-mini", None),
    (
        "stream_usage_gpt",
        "stream_usage",
        "gpt-4o-mini",
        Some("good morning! how are you?"),
    ),
    ("tools_gpt", "tools", "gpt-4o-mini", None),
    (
        "stream_tools_gpt",
        "stream_tools",
        "gpt-4o-mini",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    ("image_gpt", "image", "gpt-4o-mini", None),
    (
        "image_auto",
        "image",
        "auto",
        Some("Describe this image in one word."),
    ),
    ("models", "models", "auto", None),
    ("plain_claude", "plain", "claude-opus-4-5", None),
    ("stream_claude", "stream", "claude-opus-4-5", None),
    (
        "stream_usage_claude",
        "stream_usage",
        "claude-opus-4-5",
        Some("good morning! how are you?"),
    ),
    ("tools_claude", "tools", "claude-opus-4-5", None),
    (
        "stream_tools_claude",
        "stream_tools",
        "claude-opus-4-5",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    ("image_claude", "image", "claude-opus-4-5", None),
    (
        "stream_auto_proof",
        "stream_usage",
        "auto",
        Some(HARD_PROMPT),
    ),
];

const ANTHROPIC_CASES: &[Case] = &[
    ("plain_claude", "plain", "claude-opus-4-5", None),
    ("stream_claude", "stream", "claude-opus-4-5", None),
    ("tools_claude", "tools", "claude-opus-4-5", None),
    (
        "stream_tools_claude",
        "stream_tools",
        "claude-opus-4-5",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    ("image_claude", "image", "claude-opus-4-5", None),
    ("plain_gpt", "plain", "gpt-4o-mini", None),
    ("stream_gpt", "stream", "gpt-4o-mini", None),
    ("tools_gpt", "tools", "gpt-4o-mini", None),
    (
        "stream_tools_gpt",
        "stream_tools",
        "gpt-4o-mini",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    ("image_gpt", "image", "gpt-4o-mini", None),
    (
        "plain_auto",
        "plain",
        "auto",
        Some("hi! how is your day going?"),
    ),
    ("stream_auto_proof", "stream", "auto", Some(HARD_PROMPT)),
];

#[derive(Clone, Copy)]
enum Sdk {
    OpenAi,
    Anthropic,
}

impl Sdk {
    fn script(self) -> &'static str {
        match self {
            Sdk::OpenAi => "tests/sdk/openai_cases.py",
            Sdk::Anthropic => "tests/sdk/anthropic_cases.py",
        }
    }

    fn cases(self) -> &'static [Case] {
        match self {
            Sdk::OpenAi => OPENAI_CASES,
            Sdk::Anthropic => ANTHROPIC_CASES,
        }
    }

    /// The batch of this SDK, run once by whichever test asks first.
    fn batch(self) -> &'static Result<Batch, String> {
        static OPENAI: OnceLock<Result<Batch, String>> = OnceLock::new();
        static ANTHROPIC: OnceLock<Result<Batch, String>> = OnceLock::new();
        let cell = match self {
            Sdk::OpenAi => &OPENAI,
            Sdk::Anthropic => &ANTHROPIC,
        };
        cell.get_or_init(|| caught(&format!("the {} batch", self.script()), || run_batch(self)))
    }
}

/// Starts a stack, runs every case of `sdk` in one Python process, stops
/// the stack. Err: the batch did not run (no interpreter, the script died).
fn run_batch(sdk: Sdk) -> Result<Batch, String> {
    let python = python()?;
    let stack = Stack::start();
    let specs = sdk
        .cases()
        .iter()
        .map(|&(id, case, model, prompt)| spec(id, case, model, prompt))
        .collect();
    Batch::run(
        &python,
        vec![(sdk.script(), specs)],
        ACME.key,
        &stack.envoy,
        &stack.mock,
        BATCH_PATIENCE,
    )
}

/// The result of case `id` of `sdk`'s batch; panics with the script's
/// message (and the filter's log lines) if the case failed.
fn run(sdk: Sdk, id: &str) -> Run {
    match sdk.batch() {
        Ok(batch) => batch.case(sdk.script(), id),
        Err(e) => panic!("{e}"),
    }
}

// ------------------------------------------------------------------ checks

/// A request that reached OpenAI's Chat Completions with the tenant's key.
fn assert_openai_request(got: &Value, model: &str) {
    assert_eq!(got["provider"], "openai", "{got}");
    assert_eq!(got["path"], "/v1/chat/completions", "{got}");
    assert_eq!(got["authorization"], "Bearer sk-acme-openai", "{got}");
    assert_eq!(got["x_api_key"], Value::Null, "{got}");
    assert_eq!(got["model"], model, "{got}");
    assert!(got["body"]["messages"].is_array(), "not a chat body: {got}");
}

/// A request that reached Anthropic's native Messages API with the tenant's key.
fn assert_anthropic_request(got: &Value, model: &str) {
    assert_eq!(got["provider"], "anthropic", "{got}");
    assert_eq!(
        got["path"], "/v1/messages",
        "Anthropic models must be called on the native Messages API: {got}"
    );
    assert_eq!(got["x_api_key"], "sk-acme-anthropic", "{got}");
    assert!(
        got["anthropic_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "no anthropic-version: {got}"
    );
    assert!(
        !got["authorization"]
            .as_str()
            .unwrap_or("")
            .contains("sk-acme-openai"),
        "{got}"
    );
    assert_eq!(got["model"], model, "{got}");
    assert!(
        got["body"]["max_tokens"].as_u64().is_some_and(|n| n > 0),
        "no max_tokens: {got}"
    );
    for m in got["body"]["messages"].as_array().expect("no messages") {
        assert!(
            m["role"] == "user" || m["role"] == "assistant",
            "Anthropic accepts only user/assistant messages: {m}"
        );
    }
}

/// Where a tool call was made: its id's prefix.
const ANTHROPIC_CALL: &str = "toolu_mock_";
const OPENAI_CALL: &str = "call_mock_";

/// The mock's tool call for the weather question (Anthropic's `toolu_mock_…`
/// or the OpenAI format's `call_mock_…`), as the SDK parsed it.
fn assert_weather_call(call: &Value, input_field: &str, id_prefix: &str) {
    assert_eq!(call["name"], "get_weather", "{call}");
    assert_weather_args(&call[input_field]);
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(id_prefix)),
        "{call}"
    );
}

// ------------------------------------------------- OpenAI SDK, OpenAI models

#[test]
fn openai_sdk_plain_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Sdk::OpenAi, "plain_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    let c: f64 = r.header("x-aipipe-complexity").unwrap().parse().unwrap();
    assert!(c <= 0.2, "a greeting scored {c}");
    assert_eq!(r.out["answer_model"], "gpt-4o-mini");
    assert_eq!(r.out["finish_reason"], "stop");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["body"]["messages"][0]["content"], SYSTEM);
}

#[test]
fn openai_sdk_plain_explicit_gpt_4o_mini() {
    let r = run(Sdk::OpenAi, "plain_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_eq!(r.header("x-aipipe-complexity"), None);
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["body"]["max_tokens"], 256);
    assert_eq!(got["body"]["temperature"], 0.5);
}

#[test]
fn openai_sdk_stream_gpt_4o_mini_without_usage() {
    let r = run(Sdk::OpenAi, "stream_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_eq!(r.out["finish_reason"], "stop");
    // The script checked that no chunk carried usage: the filter asked for
    // it upstream, and hid it from a client that did not.
    assert_eq!(r.out["usage"], Value::Null);
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["stream"], true);
    assert_eq!(got["body"]["stream_options"]["include_usage"], true);
}

#[test]
fn openai_sdk_stream_gpt_4o_mini_with_include_usage() {
    let r = run(Sdk::OpenAi, "stream_usage_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let usage = &r.out["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["body"]["stream_options"]["include_usage"], true);
}

#[test]
fn openai_sdk_tools_gpt_4o_mini_round_trip() {
    let r = run(Sdk::OpenAi, "tools_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    // The mock called the tool: the SDK parsed message.tool_calls[0].
    let first = &r.out["first"];
    assert_eq!(first["finish_reason"], "tool_calls", "{first}");
    assert_eq!(first["content"], Value::Null, "{first}");
    let calls = first["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{first}");
    assert_weather_call(&calls[0], "arguments", OPENAI_CALL);
    assert_mock_text(&r.out["second"]["content"], "openai", "gpt-4o-mini");
    assert_eq!(r.out["second"]["finish_reason"], "stop");
    let got = &r.upstream;
    assert_eq!(got.len(), 2, "{got:#?}");
    for g in got {
        assert_openai_request(g, "gpt-4o-mini");
        assert_eq!(
            g["body"]["tools"][0]["function"]["name"], "get_weather",
            "{g}"
        );
    }
    // The second turn sent the model's own call back, then its result.
    let turn = &got[1]["body"]["messages"];
    let sent = &turn[1]["tool_calls"][0];
    assert_eq!(sent["id"], calls[0]["id"], "{turn}");
    assert_eq!(sent["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(sent["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, calls[0]["arguments"]);
    assert_eq!(turn[2]["role"], "tool");
    assert_eq!(turn[2]["tool_call_id"], sent["id"]);
}

#[test]
fn openai_sdk_stream_tools_gpt_4o_mini_streams_tool_call_deltas() {
    let r = run(Sdk::OpenAi, "stream_tools_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_eq!(r.out["finish_reason"], "tool_calls", "{}", r.out);
    let calls = r.out["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{}", r.out);
    assert_weather_call(&calls[0], "arguments", OPENAI_CALL);
    assert!(r.out["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["stream"], true);
}

#[test]
fn openai_sdk_image_gpt_4o_mini() {
    let r = run(Sdk::OpenAi, "image_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    let parts = &got["body"]["messages"][0]["content"];
    assert_eq!(parts[1]["type"], "image_url", "{parts}");
    assert_eq!(parts[1]["image_url"]["url"], png_data_url().as_str());
}

#[test]
fn openai_sdk_image_auto_picks_a_vision_model() {
    let r = run(Sdk::OpenAi, "image_auto");
    assert_eq!(r.header("x-aipipe-route"), Some("auto"));
    let got = r.only_upstream();
    assert_eq!(
        got["body"]["messages"][0]["content"][1]["type"],
        "image_url"
    );
}

#[test]
fn openai_sdk_lists_models() {
    let r = run(Sdk::OpenAi, "models");
    let ids: Vec<&str> = r.out["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"auto"), "{ids:?}");
    for id in [
        "gpt-4o-mini",
        "gpt-4o",
        "claude-opus-4-5",
        "claude-opus-4-5",
        "claude-sonnet-5-5",
        "claude-opus-5-5",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    // ACME has OpenAI and Anthropic keys only.
    for (id, owner) in r.out["owned_by"].as_object().unwrap() {
        assert!(
            ["aipipe", "openai", "anthropic"].contains(&owner.as_str().unwrap()),
            "{id} owned by {owner}: ACME has no key for it"
        );
    }
    assert!(
        r.upstream.is_empty(),
        "the filter answers /v1/models itself"
    );
}

// ---------------------------------------------- OpenAI SDK, Anthropic models

#[test]
fn openai_sdk_plain_claude_is_translated_to_messages_and_back() {
    let r = run(Sdk::OpenAi, "plain_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    assert_eq!(r.out["finish_reason"], "stop");
    assert_eq!(r.out["answer_model"], "claude-opus-4-5");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    let body = &got["body"];
    assert_eq!(body["max_tokens"], 256, "{body}");
    assert_eq!(body["temperature"], 0.5, "{body}");
    // The system message moved to `system`.
    let system = match &body["system"] {
        Value::String(s) => s.clone(),
        blocks => blocks[0]["text"].as_str().unwrap_or("").to_owned(),
    };
    assert_eq!(system, SYSTEM, "{body}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1, "{body}");
}

#[test]
fn openai_sdk_stream_claude_becomes_chat_completion_chunks() {
    let r = run(Sdk::OpenAi, "stream_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    assert_eq!(r.out["finish_reason"], "stop");
    assert_eq!(r.out["usage"], Value::Null);
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    assert_eq!(got["stream"], true);
}

#[test]
fn openai_sdk_stream_claude_with_include_usage() {
    let r = run(Sdk::OpenAi, "stream_usage_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    let usage = &r.out["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    assert!(
        got["body"].get("stream_options").is_none(),
        "stream_options is not an Anthropic field: {got}"
    );
}

#[test]
fn openai_sdk_tools_claude_tool_use_becomes_tool_calls() {
    let r = run(Sdk::OpenAi, "tools_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    let first = &r.out["first"];
    assert_eq!(first["finish_reason"], "tool_calls", "{first}");
    let calls = first["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{first}");
    assert_weather_call(&calls[0], "arguments", ANTHROPIC_CALL);
    assert_mock_text(&r.out["second"]["content"], "anthropic", "claude-opus-4-5");
    assert_eq!(r.out["second"]["finish_reason"], "stop");
    let got = &r.upstream;
    assert_eq!(got.len(), 2, "{got:#?}");
    for g in got {
        assert_anthropic_request(g, "claude-opus-4-5");
        let tool = &g["body"]["tools"][0];
        assert_eq!(tool["name"], "get_weather", "{g}");
        assert_eq!(
            tool["input_schema"]["required"],
            json!(["location", "unit"])
        );
    }
    // The second turn: the call as a tool_use block, its result as a
    // tool_result block in a user message.
    let turn = got[1]["body"]["messages"].as_array().unwrap();
    assert_eq!(turn.len(), 3, "{turn:?}");
    let call_id = calls[0]["id"].as_str().unwrap();
    let tool_use = turn[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use block in {}", turn[1]));
    assert_eq!(tool_use["id"], call_id);
    assert_eq!(tool_use["input"]["location"], "San Francisco, CA");
    assert_eq!(turn[2]["role"], "user");
    assert_eq!(turn[2]["content"][0]["type"], "tool_result", "{}", turn[2]);
    assert_eq!(turn[2]["content"][0]["tool_use_id"], call_id);
}

#[test]
fn openai_sdk_stream_tools_claude_streams_tool_call_deltas() {
    let r = run(Sdk::OpenAi, "stream_tools_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_eq!(r.out["finish_reason"], "tool_calls", "{}", r.out);
    let calls = r.out["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{}", r.out);
    assert_weather_call(&calls[0], "arguments", ANTHROPIC_CALL);
    assert!(r.out["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_anthropic_request(r.only_upstream(), "claude-opus-4-5");
}

#[test]
fn openai_sdk_image_claude_becomes_a_base64_image_block() {
    let r = run(Sdk::OpenAi, "image_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    let blocks = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = blocks
        .iter()
        .find(|b| b["type"] == "image")
        .unwrap_or_else(|| panic!("no image block in {blocks:?}"));
    assert_eq!(
        image["source"],
        json!({"type": "base64", "media_type": "image/png", "data": PNG_1X1})
    );
}

#[test]
fn openai_sdk_stream_auto_sends_a_proof_to_claude() {
    let r = run(Sdk::OpenAi, "stream_auto_proof");
    assert_eq!(
        r.header("x-aipipe-provider"),
        Some("anthropic"),
        "{}",
        r.out
    );
    assert_eq!(r.header("x-aipipe-route"), Some("auto"));
    let model = r.header("x-aipipe-model").unwrap();
    assert!(
        ["claude-sonnet-5-5", "claude-opus-5-5"].contains(&model),
        "{model}"
    );
    assert_mock_text(&r.out["content"], "anthropic", model);
    assert_anthropic_request(r.only_upstream(), model);
}

// ------------------------------------------- Anthropic SDK, Anthropic models

#[test]
fn anthropic_sdk_plain_claude_passes_through() {
    let r = run(Sdk::Anthropic, "plain_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    assert_eq!(r.out["stop_reason"], "end_turn");
    assert_eq!(r.out["answer_model"], "claude-opus-4-5");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    assert_eq!(got["body"]["system"], SYSTEM);
    assert_eq!(got["body"]["max_tokens"], 256);
    assert_eq!(got["body"]["stop_sequences"], json!(["###"]));
}

#[test]
fn anthropic_sdk_stream_claude_passes_through() {
    let r = run(Sdk::Anthropic, "stream_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    assert_eq!(r.out["stop_reason"], "end_turn");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    assert_eq!(got["stream"], true);
}

#[test]
fn anthropic_sdk_tools_claude_round_trip() {
    let r = run(Sdk::Anthropic, "tools_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    let first = &r.out["first"];
    assert_eq!(first["stop_reason"], "tool_use", "{first}");
    assert_weather_call(&first["tool_calls"][0], "input", ANTHROPIC_CALL);
    assert_eq!(r.out["second"]["stop_reason"], "end_turn");
    let got = &r.upstream;
    assert_eq!(got.len(), 2, "{got:#?}");
    for g in got {
        assert_anthropic_request(g, "claude-opus-4-5");
        assert_eq!(g["body"]["tools"][0]["name"], "get_weather");
    }
    assert_eq!(
        got[1]["body"]["messages"][2]["content"][0]["type"],
        "tool_result"
    );
}

#[test]
fn anthropic_sdk_stream_tools_claude() {
    let r = run(Sdk::Anthropic, "stream_tools_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_eq!(r.out["stop_reason"], "tool_use", "{}", r.out);
    assert_weather_call(&r.out["tool_calls"][0], "input", ANTHROPIC_CALL);
    assert_anthropic_request(r.only_upstream(), "claude-opus-4-5");
}

#[test]
fn anthropic_sdk_image_claude_passes_through() {
    let r = run(Sdk::Anthropic, "image_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    assert_mock_text(&r.out["content"], "anthropic", "claude-opus-4-5");
    let got = r.only_upstream();
    assert_anthropic_request(got, "claude-opus-4-5");
    assert_eq!(
        got["body"]["messages"][0]["content"][0]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": PNG_1X1})
    );
}

// -------------------------------------- Anthropic SDK, OpenAI-format models

#[test]
fn anthropic_sdk_plain_gpt_4o_mini_is_translated_to_chat_and_back() {
    let r = run(Sdk::Anthropic, "plain_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_eq!(r.out["stop_reason"], "end_turn");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    let messages = &got["body"]["messages"];
    assert_eq!(messages[0], json!({"role": "system", "content": SYSTEM}));
    assert_eq!(messages[1]["role"], "user");
    assert!(
        got["body"]["max_tokens"] == 256 || got["body"]["max_completion_tokens"] == 256,
        "{got}"
    );
    assert_eq!(
        got["body"]["stop"],
        json!(["###"]),
        "stop_sequences become stop"
    );
}

#[test]
fn anthropic_sdk_stream_gpt_4o_mini_becomes_message_events() {
    let r = run(Sdk::Anthropic, "stream_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_eq!(r.out["stop_reason"], "end_turn");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["stream"], true);
}

#[test]
fn anthropic_sdk_tools_gpt_4o_mini_round_trip() {
    let r = run(Sdk::Anthropic, "tools_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    // The mock's tool_calls, translated by the filter: a ToolUseBlock.
    let first = &r.out["first"];
    assert_eq!(first["stop_reason"], "tool_use", "{first}");
    assert_eq!(first["blocks"], json!(["tool_use"]), "{first}");
    assert_weather_call(&first["tool_calls"][0], "input", OPENAI_CALL);
    assert_mock_text(&r.out["second"]["content"], "openai", "gpt-4o-mini");
    assert_eq!(r.out["second"]["stop_reason"], "end_turn");
    let got = &r.upstream;
    assert_eq!(got.len(), 2, "{got:#?}");
    for g in got {
        assert_openai_request(g, "gpt-4o-mini");
        let tool = &g["body"]["tools"][0];
        assert_eq!(tool["type"], "function", "{g}");
        assert_eq!(tool["function"]["name"], "get_weather", "{g}");
        assert_eq!(
            tool["function"]["parameters"]["required"],
            json!(["location", "unit"])
        );
    }
    // The second turn: tool_use → assistant tool_calls, tool_result → a tool message.
    let turn = got[1]["body"]["messages"].as_array().unwrap();
    let assistant = turn
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap_or_else(|| panic!("no assistant message in {turn:?}"));
    let call = &assistant["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{assistant}");
    assert_eq!(call["id"], first["tool_calls"][0]["id"], "{assistant}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, first["tool_calls"][0]["input"], "{args}");
    let result = turn
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool message in {turn:?}"));
    assert_eq!(result["tool_call_id"], call["id"]);
}

#[test]
fn anthropic_sdk_stream_tools_gpt_4o_mini_becomes_a_tool_use_block() {
    let r = run(Sdk::Anthropic, "stream_tools_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_eq!(r.out["stop_reason"], "tool_use", "{}", r.out);
    assert_eq!(r.out["blocks"], json!(["tool_use"]), "{}", r.out);
    assert_weather_call(&r.out["tool_calls"][0], "input", OPENAI_CALL);
    assert_eq!(r.out["deltas"], json!(["input_json_delta"]), "{}", r.out);
    assert!(r.out["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    assert_eq!(got["stream"], true);
}

#[test]
fn anthropic_sdk_image_gpt_4o_mini_becomes_an_image_url_part() {
    let r = run(Sdk::Anthropic, "image_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_openai_request(got, "gpt-4o-mini");
    let parts = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = parts
        .iter()
        .find(|p| p["type"] == "image_url")
        .unwrap_or_else(|| panic!("no image_url part in {parts:?}"));
    assert_eq!(image["image_url"]["url"], png_data_url().as_str());
}

// ------------------------------------------------------ Anthropic SDK, auto

#[test]
fn anthropic_sdk_plain_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Sdk::Anthropic, "plain_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    assert!(r.header("x-aipipe-complexity").is_some());
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_openai_request(r.only_upstream(), "gpt-4o-mini");
}

#[test]
fn anthropic_sdk_stream_auto_sends_a_proof_to_claude() {
    let r = run(Sdk::Anthropic, "stream_auto_proof");
    assert_eq!(
        r.header("x-aipipe-provider"),
        Some("anthropic"),
        "{}",
        r.out
    );
    assert_eq!(r.header("x-aipipe-route"), Some("auto"));
    let model = r.header("x-aipipe-model").unwrap();
    assert!(
        ["claude-sonnet-5-5", "claude-opus-5-5"].contains(&model),
        "{model}"
    );
    assert_mock_text(&r.out["content"], "anthropic", model);
    assert_anthropic_request(r.only_upstream(), model);
}
