//! The client protocols beyond Chat Completions and Anthropic Messages,
//! each through its official client against real Envoy with the real filter,
//! the mock providers and the real control plane:
//!
//! - the `openai` SDK's Responses API (`POST /v1/responses`,
//!   `tests/sdk/responses_cases.py`): plain, streamed, a function tool round
//!   trip (the conversation sent back whole: aipipe is stateless);
//! - the `ollama` client (`POST /api/chat`, `POST /api/generate`, `GET
//!   /api/tags`, `tests/sdk/ollama_cases.py`), as Open WebUI uses aipipe:
//!   chat and generate, plain and streamed (Ollama streams by default), tool
//!   calls answered by `tool_name`, images, the model list.
//!
//! Every request is routed internally as Chat Completions: an OpenAI-format
//! model (gpt-4o-mini) gets a chat request, Claude (claude-opus-4-5) its
//! native Messages request, and the answer comes back in the client's
//! protocol. Each case runs as its own tenant, so the control plane's stats
//! for that tenant are that case's usage records: they must hold exactly the
//! tokens the mock sent, and the catalog's cost for them.
//!
//! Both scripts run in batch form (one Python process each, against one
//! stack) the first time a test asks; each case is its own `#[test]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::OnceLock;
use std::time::Duration;

use aipipe_tests::{ControlPlane, Mock, eventually};
use common::control_plane::{
    envoy_polling, in_service_now, tenant_stats, tenant_with_own_keys, tenants_served,
};
use common::input_kinds;
use common::scripts::{
    self, Batch, Case, PNG_1X1, SYSTEM, assert_answered_by, assert_mock_text, assert_weather_args,
    caught, png_data_url, python, spec,
};
use common::usage::{Counts, expected_cost, read_sent, stored_cost};
use serde_json::{Value, json};

const GREETING: &str = "hello! how are you today?";
const WEATHER: &str = "What's the weather in Paris right now?";
/// How long one script's batch may run (each call times out after 20 s).
const BATCH_PATIENCE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Responses,
    Ollama,
    /// The `openai` SDK's Chat Completions, here for the reasoning cases
    /// only (its other cases are tests/sdk.rs's).
    Chat,
}

impl Client {
    fn script(self) -> &'static str {
        match self {
            Client::Responses => "tests/sdk/responses_cases.py",
            Client::Ollama => "tests/sdk/ollama_cases.py",
            Client::Chat => "tests/sdk/openai_cases.py",
        }
    }

    /// Every case of the script, in the order it runs them: each case of
    /// both models on gpt-4o-mini, then on claude-opus-4-5, then the
    /// others.
    fn cases(self) -> Vec<(String, &'static str, &'static str, Option<&'static str>)> {
        let (on_both, others): (OnBoth, &[Case]) = match self {
            Client::Responses => (RESPONSES_ON_BOTH, RESPONSES_OTHERS),
            Client::Ollama => (OLLAMA_ON_BOTH, OLLAMA_OTHERS),
            Client::Chat => (&[], &[]),
        };
        let mut cases = Vec::new();
        for (suffix, model) in BOTH_MODELS {
            for &(case, prompt) in on_both {
                cases.push((format!("{case}_{suffix}"), case, model, prompt));
            }
        }
        for &(id, case, model, prompt) in others {
            cases.push((id.to_owned(), case, model, prompt));
        }
        cases
    }

    /// The tenant a case runs as: its records are that case's alone.
    fn tenant(self, id: &str) -> String {
        let prefix = match self {
            Client::Responses => "resp",
            Client::Ollama => "ollama",
            Client::Chat => "chat",
        };
        format!("{prefix}-{}", id.replace('_', "-"))
    }
}

/// The two models a case of both runs on, as `<case>_<suffix>`: an
/// OpenAI-format one, answered on Chat Completions, and Claude, answered on
/// native Messages.
const BOTH_MODELS: [(&str, &str); 2] = [("gpt", "gpt-4o-mini"), ("claude", "claude-opus-4-5")];

/// A case of both models: (case function of the script, prompt).
type OnBoth = &'static [(&'static str, Option<&'static str>)];

const RESPONSES_ON_BOTH: OnBoth = &[
    ("plain", None),
    ("stream", None),
    ("tools", None),
    (
        "stream_tools",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
];

const RESPONSES_OTHERS: &[Case] = &[(
    "plain_auto",
    "plain",
    "auto",
    Some("hi! how is your day going?"),
)];

/// A reasoning model that takes tools with an effort only over OpenAI's
/// Responses API (in service from 2027-01-14; put in service for the test).
const LUNA: &str = "gpt-6-luna";
/// A Claude that thinks unless told not to.
const SONNET: &str = "claude-sonnet-5-5";
/// What the mock's reasoning items carry as `encrypted_content`.
const ENCRYPTED_REASONING: &str = "gAAAAABmock-provider-encrypted-reasoning";

const OLLAMA_ON_BOTH: OnBoth = &[
    ("chat", None),
    ("stream", None),
    ("generate", None),
    ("generate_stream", None),
    ("tools", None),
    ("image", None),
];

const OLLAMA_OTHERS: &[Case] = &[
    (
        "chat_auto",
        "chat",
        "auto",
        Some("hi! how is your day going?"),
    ),
    ("list", "list", "auto", None),
];

const CLIENTS: [Client; 2] = [Client::Responses, Client::Ollama];

/// What both scripts printed, and each case's control-plane stats by tenant.
struct Batches {
    batch: Batch,
    stats: HashMap<String, Value>,
}

fn batches() -> &'static Result<Batches, String> {
    static BATCHES: OnceLock<Result<Batches, String>> = OnceLock::new();
    BATCHES.get_or_init(|| {
        let cases: Vec<_> = CLIENTS
            .iter()
            .flat_map(|&client| client.cases().into_iter().map(move |c| (client, c)))
            .collect();
        caught("the client batches", || {
            run_batches(&cases, &["openai", "anthropic"], |_| {})
        })
    })
}

/// One case of a client's script: (client, (case id, script case, model,
/// prompt)).
type ClientCase = (
    Client,
    (String, &'static str, &'static str, Option<&'static str>),
);

/// Starts the stack, runs `setup` on its control plane, gives every case its
/// tenant (with keys for `providers`), runs the scripts, waits until every
/// case's usage is stored, stops the stack.
fn run_batches(
    cases: &[ClientCase],
    providers: &[&str],
    setup: fn(&ControlPlane),
) -> Result<Batches, String> {
    let python = python()?;
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let envoy = envoy_polling(&mock, "{}", cp.internal_port, &cp.internal_token);
    setup(&cp);
    let mut scripts: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (client, (id, case, model, prompt)) in cases {
        let key = tenant_with_own_keys(&cp, &client.tenant(id), providers);
        let mut spec = spec(id, case, model, *prompt);
        spec["key"] = json!(key);
        match scripts.iter_mut().find(|(s, _)| *s == client.script()) {
            Some((_, specs)) => specs.push(spec),
            None => scripts.push((client.script(), vec![spec])),
        }
    }
    if !tenants_served(&cp, &envoy) {
        return Err("the routing table with the test tenants never reached Envoy".into());
    }
    // Each case names its own key; this one is never used.
    let batch = Batch::run(&python, scripts, "vk-unused", &envoy, &mock, BATCH_PATIENCE)?;

    // Each case's records, stored: as many as the requests the mock got.
    let expected: Vec<(String, usize)> = cases
        .iter()
        .filter_map(|(client, (id, ..))| {
            let line = batch.line(client.script(), id)?;
            let n = line["upstream"].as_array().map_or(0, Vec::len);
            (n > 0).then(|| (client.tenant(id), n))
        })
        .collect();
    let stats = eventually(Duration::from_secs(20), || {
        let mut all = HashMap::new();
        for (tenant, n) in &expected {
            let st = tenant_stats(&cp, tenant);
            if st["totals"]["requests"].as_u64() != Some(*n as u64) {
                return None;
            }
            all.insert(tenant.clone(), st);
        }
        Some(all)
    })
    .unwrap_or_else(|| {
        expected
            .iter()
            .map(|(tenant, _)| (tenant.clone(), tenant_stats(&cp, tenant)))
            .collect()
    });
    Ok(Batches { batch, stats })
}

/// A case's result, with the case's tenant and its control-plane stats.
struct Run {
    case: scripts::Run,
    tenant: String,
    stats: Value,
}

impl Deref for Run {
    type Target = scripts::Run;
    fn deref(&self) -> &scripts::Run {
        &self.case
    }
}

/// The result of case `id` of `client`'s script; panics with the script's
/// message (and the filter's log lines) if the case failed.
fn run(client: Client, id: &str) -> Run {
    run_in(batches(), client, id)
}

/// [`run`] from `batches`.
fn run_in(batches: &Result<Batches, String>, client: Client, id: &str) -> Run {
    let batches = match batches {
        Ok(batches) => batches,
        Err(e) => panic!("{e}"),
    };
    let tenant = client.tenant(id);
    Run {
        case: batches.batch.case(client.script(), id),
        stats: batches.stats.get(&tenant).cloned().unwrap_or(Value::Null),
        tenant,
    }
}

// ------------------------------------------------------------------ checks

/// A request that reached `provider`'s API for `model` with the case
/// tenant's own key: Chat Completions for OpenAI, native Messages for
/// Anthropic.
fn assert_upstream(r: &Run, got: &Value, provider: &str, model: &str) {
    let key = format!("sk-{}-{provider}", r.tenant);
    assert_eq!(got["provider"], provider, "{got}");
    assert_eq!(got["model"], model, "{got}");
    match provider {
        "openai" => {
            assert_eq!(got["path"], "/v1/chat/completions", "{got}");
            assert_eq!(got["authorization"], format!("Bearer {key}"), "{got}");
            assert!(got["body"]["messages"].is_array(), "not a chat body: {got}");
        }
        "anthropic" => {
            assert_eq!(got["path"], "/v1/messages", "{got}");
            assert_eq!(got["x_api_key"], key, "{got}");
            assert!(
                got["body"]["max_tokens"].as_u64().is_some_and(|n| n > 0),
                "{got}"
            );
        }
        other => panic!("unexpected provider {other}"),
    }
}

/// The user's text as the provider got it: the last user message's text
/// (a string, or the text of its parts / blocks).
fn last_user_text(got: &Value) -> String {
    let messages = got["body"]["messages"].as_array().unwrap();
    let m = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        other => panic!("content {other}"),
    }
}

/// The system prompt as the provider got it.
fn system_text(got: &Value, provider: &str) -> Value {
    match provider {
        "anthropic" => match &got["body"]["system"] {
            Value::Array(blocks) => blocks[0]["text"].clone(),
            other => other.clone(),
        },
        _ => got["body"]["messages"][0]["content"].clone(),
    }
}

/// What the `usage` the mock sent for this request says.
fn sent(got: &Value) -> Counts {
    read_sent(got["provider"].as_str().unwrap_or(""), &got["sent_usage"])
        .unwrap_or_else(|| panic!("no usage sent: {got}"))
}

/// The tenant's stored records hold exactly what the mock sent, one record
/// per upstream request, priced by the catalog.
fn assert_usage_recorded(r: &Run, model: &str) {
    let want = r
        .upstream
        .iter()
        .map(sent)
        .fold(Counts::default(), |a, b| a + b);
    let totals = &r.stats["totals"];
    let stored = |k: &str| totals[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        stored("requests"),
        r.upstream.len() as u64,
        "stats of {}: {}",
        r.tenant,
        r.stats
    );
    assert_eq!(stored("unparsed"), 0, "{}", r.stats);
    let got = Counts {
        prompt: stored("prompt_tokens"),
        completion: stored("completion_tokens"),
        cached: stored("cached_tokens"),
        cache_write: stored("cache_write_tokens"),
    };
    assert_eq!(got, want, "stored usage of {}: {}", r.tenant, r.stats);
    let catalog = aipipe_core::catalog::default_models();
    let m = catalog.iter().find(|m| m.id == model).unwrap();
    assert_eq!(
        stored_cost(totals),
        Some(expected_cost(m, &want)),
        "{}",
        r.stats
    );
    assert_eq!(r.stats["by_model"][0]["model"], model, "{}", r.stats);
}

/// The usage the client saw in a Responses answer is the mock's.
fn assert_responses_usage(usage: &Value, got: &Value) {
    let c = sent(got);
    assert_eq!(usage["input_tokens"], c.prompt, "{usage} vs {got}");
    assert_eq!(usage["output_tokens"], c.completion, "{usage} vs {got}");
    assert_eq!(usage["cached_tokens"], c.cached, "{usage} vs {got}");
}

/// The usage the client saw in an Ollama answer is the mock's.
fn assert_ollama_usage(usage: &Value, got: &Value) {
    let c = sent(got);
    assert_eq!(usage["prompt_eval_count"], c.prompt, "{usage} vs {got}");
    assert_eq!(usage["eval_count"], c.completion, "{usage} vs {got}");
}

/// The tool round trip of both clients: the weather question answered by
/// one `get_weather` call (arguments as an object), the call's result by the
/// mock's text; each turn one request to `model`, whose usage the client saw
/// (`assert_usage`). Returns the call the client got.
fn assert_tool_round_trip<'r>(
    r: &'r Run,
    model: &str,
    assert_usage: fn(&Value, &Value),
) -> &'r Value {
    let provider = provider_of(model);
    assert_answered_by(r, provider, model, "explicit");
    let first = &r.out["first"];
    let calls = first["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{first}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_weather_args(&calls[0]["arguments"]);
    assert_mock_text(&r.out["second"]["content"], provider, model);
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    assert_eq!(last_user_text(&r.upstream[0]), WEATHER);
    for (g, answer) in r.upstream.iter().zip([first, &r.out["second"]]) {
        assert_upstream(r, g, provider, model);
        assert_usage(&answer["usage"], g);
    }
    &calls[0]
}

/// A chat body's assistant message (with the tool call) and tool message
/// (with its result).
fn call_and_result_messages(body: &Value) -> (&Value, &Value) {
    let messages = body["messages"].as_array().unwrap();
    let with_role = |role: &str| messages.iter().find(|m| m["role"] == role).unwrap();
    (with_role("assistant"), with_role("tool"))
}

/// A Messages body's `tool_use` block and `tool_result` block.
fn call_and_result_blocks(body: &Value) -> (&Value, &Value) {
    let blocks: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .collect();
    let of_type = |t: &str| *blocks.iter().find(|b| b["type"] == t).unwrap();
    (of_type("tool_use"), of_type("tool_result"))
}

/// Where a tool call was made: its id's prefix.
fn call_prefix(provider: &str) -> &'static str {
    if provider == "anthropic" {
        "toolu_mock_"
    } else {
        "call_mock_"
    }
}

fn provider_of(model: &str) -> &'static str {
    if model.starts_with("claude") {
        "anthropic"
    } else {
        "openai"
    }
}

// ------------------------------------------------------- Responses API

fn responses_plain(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_eq!(r.out["answer_model"], model);
    assert_eq!(r.out["status"], "completed");
    assert_eq!(r.out["items"], json!(["message"]));
    assert_mock_text(&r.out["content"], provider, model);
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], false, "{got}");
    // `instructions` is the system prompt; the input the user's turn.
    assert_eq!(system_text(got, provider), SYSTEM, "{got}");
    assert_eq!(last_user_text(got), GREETING);
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
    assert_eq!(got["body"]["temperature"], 0.5, "{got}");
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

fn responses_stream(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_mock_text(&r.out["content"], provider, model);
    let events = r.out["events"].as_array().unwrap();
    for e in [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ] {
        assert!(events.contains(&json!(e)), "no {e} in {events:?}");
    }
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], true, "{got}");
    if provider == "openai" {
        assert_eq!(got["body"]["stream_options"]["include_usage"], true);
    }
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

fn responses_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    let call = assert_tool_round_trip(&r, model, assert_responses_usage);
    let call_id = call["call_id"].as_str().unwrap();
    assert!(call_id.starts_with(call_prefix(provider)), "{call}");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"), "{call}");
    // The second turn carried the call and its output, paired by call id.
    let second = &r.upstream[1]["body"];
    if provider == "openai" {
        assert_eq!(second["tools"][0]["function"]["name"], "get_weather");
        let (assistant, tool) = call_and_result_messages(second);
        assert_eq!(assistant["tool_calls"][0]["id"], call_id, "{second}");
        assert_eq!(tool["tool_call_id"], call_id, "{second}");
    } else {
        assert_eq!(second["tools"][0]["name"], "get_weather");
        let (tool_use, result) = call_and_result_blocks(second);
        assert_eq!(tool_use["id"], call_id, "{second}");
        assert_eq!(result["tool_use_id"], call_id, "{second}");
    }
    assert_usage_recorded(&r, model);
}

fn responses_stream_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    let calls = r.out["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{}", r.out);
    assert_weather_args(&calls[0]["arguments"]);
    assert!(
        calls[0]["call_id"]
            .as_str()
            .unwrap()
            .starts_with(call_prefix(provider))
    );
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], true);
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

/// The reasoning cases (case id, script case), whole and streamed.
const REASONING_CASES: [(Client, &str, &str, &str); 6] = [
    (
        Client::Responses,
        "reasoning_tools_luna",
        "reasoning_tools",
        LUNA,
    ),
    (
        Client::Responses,
        "stream_reasoning_tools_luna",
        "stream_reasoning_tools",
        LUNA,
    ),
    (
        Client::Chat,
        "chat_reasoning_tools_luna",
        "reasoning_tools",
        LUNA,
    ),
    (
        Client::Chat,
        "chat_stream_reasoning_tools_luna",
        "stream_reasoning_tools",
        LUNA,
    ),
    (
        Client::Responses,
        "reasoning_tools_sonnet",
        "reasoning_tools",
        SONNET,
    ),
    (
        Client::Responses,
        "stream_reasoning_tools_sonnet",
        "stream_reasoning_tools",
        SONNET,
    ),
];

/// The reasoning cases on a stack of their own: gpt-6-luna is put in
/// service there before its date, where auto routing would send the other
/// cases' greetings to it.
fn reasoning_batches() -> &'static Result<Batches, String> {
    static BATCHES: OnceLock<Result<Batches, String>> = OnceLock::new();
    BATCHES.get_or_init(|| {
        let cases: Vec<ClientCase> = REASONING_CASES
            .iter()
            .map(|&(client, id, case, model)| (client, (id.to_owned(), case, model, None)))
            .collect();
        caught("the reasoning cases", || {
            run_batches(&cases, &["openai", "anthropic"], |cp| {
                in_service_now(cp, LUNA)
            })
        })
    })
}

/// A reasoning model's tool loop without state, as Codex runs it (whole or
/// streamed): the client's request goes to OpenAI's Responses API as the
/// client wrote it (model named, `store: false`) and the answer comes back
/// as OpenAI sent it, so the reasoning the client got back encrypted reaches
/// the model again beside the call and its output. (Through Chat
/// Completions both directions dropped it.)
fn assert_reasoning_round_trip(id: &str, stream: bool) {
    let r = run_in(reasoning_batches(), Client::Responses, id);
    assert_answered_by(&r, "openai", LUNA, "explicit");
    let first = &r.out["first"];
    assert_eq!(
        first["items"],
        json!(["reasoning", "function_call"]),
        "{first}"
    );
    assert_eq!(first["encrypted_reasoning"], json!([ENCRYPTED_REASONING]));
    assert!(
        first["usage"]["reasoning_tokens"].as_u64() > Some(0),
        "{first}"
    );
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    for got in &r.upstream {
        assert_eq!(got["path"], "/v1/responses", "{got}");
        assert_eq!(
            got["authorization"],
            format!("Bearer sk-{}-openai", r.tenant),
            "{got}"
        );
        assert_eq!(got["model"], LUNA, "{got}");
        assert_eq!(got["stream"], stream, "{got}");
        let body = &got["body"];
        assert_eq!(body["store"], false, "{got}");
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(body["reasoning"]["effort"], "low", "{got}");
        assert_eq!(body["tools"][0]["name"], "get_weather", "{got}");
    }
    let input = second_turn_input(&r);
    assert_eq!(input[1]["encrypted_content"], ENCRYPTED_REASONING);
    assert_eq!(input[2]["call_id"], input[3]["call_id"]);
    assert_eq!(input[2]["call_id"], first["tool_calls"][0]["call_id"]);
    let second = &r.out["second"];
    assert_eq!(second["items"], json!(["reasoning", "message"]), "{second}");
    assert_mock_text(&second["content"], "openai", LUNA);
    for (answer, got) in [first, second].into_iter().zip(&r.upstream) {
        assert_responses_usage(&answer["usage"], got);
        if stream {
            // OpenAI's events as they are, the reasoning item's among them.
            let events = answer["events"].as_array().unwrap();
            assert!(
                events.contains(&json!("response.output_item.done")),
                "{answer}"
            );
        }
    }
    assert_usage_recorded(&r, LUNA);
}

/// The input the model got on the second turn: the question, the
/// reasoning of the first turn, its call and the call's output, in order.
fn second_turn_input(r: &Run) -> &[Value] {
    let input = r.upstream[1]["body"]["input"].as_array().unwrap();
    assert_eq!(input_kinds(input), common::REASONING_TURN, "{input:?}");
    input
}

/// The same loop from a Chat Completions client (the `openai` SDK's chat
/// API, whole or streamed): the answer comes from OpenAI's Responses API
/// with the reasoning in the assistant message's `reasoning_details`
/// (encrypted, as OpenRouter's clients keep it); the message sent back as
/// the SDK gave it reaches the model with the reasoning item again, before
/// its call. (Before, Chat Completions had no place for it and the model
/// started over every turn.)
fn assert_chat_reasoning_round_trip(id: &str, stream: bool) {
    let r = run_in(reasoning_batches(), Client::Chat, id);
    assert_answered_by(&r, "openai", LUNA, "explicit");
    let first = &r.out["first"];
    let details = &first["reasoning_details"];
    assert_eq!(details.as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(details[0]["type"], "reasoning.encrypted", "{first}");
    assert_eq!(details[0]["format"], "openai-responses-v1", "{first}");
    assert_eq!(details[0]["data"], ENCRYPTED_REASONING, "{first}");
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    // (The second turn is asked whole either way.)
    for (got, streamed) in r.upstream.iter().zip([stream, false]) {
        assert_eq!(got["path"], "/v1/responses", "{got}");
        assert_eq!(got["stream"], streamed, "{got}");
        assert_eq!(got["body"]["store"], false, "{got}");
        assert_eq!(
            got["body"]["include"],
            json!(["reasoning.encrypted_content"])
        );
    }
    let input = second_turn_input(&r);
    assert_eq!(input[1]["id"], details[0]["id"], "{input:?}");
    assert_eq!(input[1]["encrypted_content"], ENCRYPTED_REASONING);
    assert_eq!(input[2]["call_id"], first["tool_calls"][0]["id"]);
    assert_mock_text(&r.out["second"]["content"], "openai", LUNA);
    assert_usage_recorded(&r, LUNA);
}

#[test]
fn chat_reasoning_goes_back_to_gpt_6_luna_with_the_tool_output() {
    assert_chat_reasoning_round_trip("chat_reasoning_tools_luna", false);
}

#[test]
fn chat_streamed_reasoning_goes_back_to_gpt_6_luna_with_the_tool_output() {
    assert_chat_reasoning_round_trip("chat_stream_reasoning_tools_luna", true);
}

#[test]
fn responses_reasoning_items_go_back_to_gpt_6_luna_with_the_tool_output() {
    assert_reasoning_round_trip("reasoning_tools_luna", false);
}

#[test]
fn responses_streamed_reasoning_items_go_back_to_gpt_6_luna_with_the_tool_output() {
    assert_reasoning_round_trip("stream_reasoning_tools_luna", true);
}

/// The same loop, as Codex runs it, on a Claude that thinks: its thinking
/// block reaches the client as a `reasoning` item (the block carried in
/// `encrypted_content`), and sent back with the call and its output it is
/// the block Claude gets first again, its signature checked by the mock as
/// Anthropic checks it.
fn assert_claude_reasoning_round_trip(id: &str, stream: bool) {
    let r = run_in(reasoning_batches(), Client::Responses, id);
    assert_answered_by(&r, "anthropic", SONNET, "explicit");
    let first = &r.out["first"];
    assert_eq!(
        first["items"],
        json!(["reasoning", "message", "function_call"]),
        "{first}"
    );
    let carried = first["encrypted_reasoning"][0].as_str().unwrap_or_default();
    assert!(carried.starts_with("aipipe-reasoning-v1."), "{first}");
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    for got in &r.upstream {
        assert_eq!(got["path"], "/v1/messages", "{got}");
        assert_eq!(got["stream"], stream, "{got}");
    }
    let assistant = &r.upstream[1]["body"]["messages"][1]["content"];
    assert_eq!(assistant[0]["type"], "thinking", "{assistant}");
    assert!(
        assistant[0]["thinking"]
            .as_str()
            .is_some_and(|t| t.starts_with("Mock thinking for anthropic/claude-sonnet-5-5")),
        "{assistant}"
    );
    assert_eq!(
        assistant
            .as_array()
            .and_then(|a| a.last())
            .map(|b| &b["type"]),
        Some(&json!("tool_use")),
        "{assistant}"
    );
    let second = &r.out["second"];
    assert_eq!(second["items"], json!(["reasoning", "message"]), "{second}");
    assert_mock_text(&second["content"], "anthropic", SONNET);
    assert_usage_recorded(&r, SONNET);
}

#[test]
fn responses_claude_thinking_goes_back_to_claude_with_the_tool_output() {
    assert_claude_reasoning_round_trip("reasoning_tools_sonnet", false);
}

#[test]
fn responses_streamed_claude_thinking_goes_back_to_claude_with_the_tool_output() {
    assert_claude_reasoning_round_trip("stream_reasoning_tools_sonnet", true);
}

#[test]
fn responses_plain_gpt_4o_mini_becomes_a_chat_request_and_back() {
    responses_plain("plain_gpt", "gpt-4o-mini");
}

#[test]
fn responses_plain_claude_goes_to_anthropic_messages_and_back() {
    responses_plain("plain_claude", "claude-opus-4-5");
}

#[test]
fn responses_stream_gpt_4o_mini_becomes_response_events() {
    responses_stream("stream_gpt", "gpt-4o-mini");
}

#[test]
fn responses_stream_claude_becomes_response_events() {
    responses_stream("stream_claude", "claude-opus-4-5");
}

#[test]
fn responses_function_tool_round_trip_on_gpt_4o_mini() {
    responses_tools("tools_gpt", "gpt-4o-mini");
}

#[test]
fn responses_function_tool_round_trip_on_claude() {
    responses_tools("tools_claude", "claude-opus-4-5");
}

#[test]
fn responses_streamed_function_call_on_gpt_4o_mini() {
    responses_stream_tools("stream_tools_gpt", "gpt-4o-mini");
}

#[test]
fn responses_streamed_function_call_on_claude() {
    responses_stream_tools("stream_tools_claude", "claude-opus-4-5");
}

#[test]
fn responses_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Client::Responses, "plain_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    assert!(r.header("x-aipipe-complexity").is_some(), "{}", r.out);
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_upstream(&r, got, "openai", "gpt-4o-mini");
    assert_usage_recorded(&r, "gpt-4o-mini");
}

// -------------------------------------------------------------- Ollama

fn ollama_answer(id: &str, model: &str, stream: bool, prompt: &str) -> Run {
    let provider = provider_of(model);
    let r = run(Client::Ollama, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_mock_text(&r.out["content"], provider, model);
    assert_eq!(r.out["done_reason"], "stop");
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    // Ollama streams unless told not to; the provider is asked the same.
    assert_eq!(got["stream"], stream, "{got}");
    assert_eq!(last_user_text(got), prompt);
    assert_ollama_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
    r
}

#[test]
fn ollama_chat_gpt_4o_mini_becomes_a_chat_request_and_back() {
    let r = ollama_answer("chat_gpt", "gpt-4o-mini", false, GREETING);
    let got = r.only_upstream();
    assert_eq!(system_text(got, "openai"), SYSTEM);
    // options.num_predict → max_tokens, options.temperature kept.
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
    assert_eq!(got["body"]["temperature"], 0.5, "{got}");
}

#[test]
fn ollama_chat_claude_goes_to_anthropic_messages_and_back() {
    let r = ollama_answer("chat_claude", "claude-opus-4-5", false, GREETING);
    let got = r.only_upstream();
    assert_eq!(system_text(got, "anthropic"), SYSTEM);
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
}

#[test]
fn ollama_chat_streams_ndjson_by_default_from_gpt_4o_mini() {
    let r = ollama_answer("stream_gpt", "gpt-4o-mini", true, GREETING);
    assert!(r.out["lines"].as_u64().unwrap() > 2, "{}", r.out);
}

#[test]
fn ollama_chat_streams_ndjson_by_default_from_claude() {
    let r = ollama_answer("stream_claude", "claude-opus-4-5", true, GREETING);
    assert!(r.out["lines"].as_u64().unwrap() > 2, "{}", r.out);
}

#[test]
fn ollama_generate_gpt_4o_mini_answers_a_response_string() {
    let r = ollama_answer("generate_gpt", "gpt-4o-mini", false, GREETING);
    assert_eq!(system_text(r.only_upstream(), "openai"), SYSTEM);
}

#[test]
fn ollama_generate_claude_answers_a_response_string() {
    let r = ollama_answer("generate_claude", "claude-opus-4-5", false, GREETING);
    assert_eq!(system_text(r.only_upstream(), "anthropic"), SYSTEM);
}

#[test]
fn ollama_generate_streams_from_gpt_4o_mini() {
    ollama_answer("generate_stream_gpt", "gpt-4o-mini", true, GREETING);
}

#[test]
fn ollama_generate_streams_from_claude() {
    ollama_answer("generate_stream_claude", "claude-opus-4-5", true, GREETING);
}

fn ollama_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Ollama, id);
    assert_tool_round_trip(&r, model, assert_ollama_usage);
    for g in &r.upstream {
        assert_eq!(g["stream"], false);
    }
    // The result, sent back by `tool_name` only, answers the call it names.
    let second = &r.upstream[1]["body"];
    if provider == "openai" {
        let (assistant, tool) = call_and_result_messages(second);
        let call = &assistant["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{second}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_weather_args(&args);
        assert_eq!(tool["tool_call_id"], call["id"], "{second}");
    } else {
        let (tool_use, result) = call_and_result_blocks(second);
        assert_weather_args(&tool_use["input"]);
        assert_eq!(result["tool_use_id"], tool_use["id"], "{second}");
    }
    assert_usage_recorded(&r, model);
}

#[test]
fn ollama_tool_call_round_trip_on_gpt_4o_mini() {
    ollama_tools("tools_gpt", "gpt-4o-mini");
}

#[test]
fn ollama_tool_call_round_trip_on_claude() {
    ollama_tools("tools_claude", "claude-opus-4-5");
}

#[test]
fn ollama_image_reaches_gpt_4o_mini_as_a_png_data_url() {
    let r = run(Client::Ollama, "image_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    let got = r.only_upstream();
    assert_upstream(&r, got, "openai", "gpt-4o-mini");
    let parts = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = parts.iter().find(|p| p["type"] == "image_url").unwrap();
    assert_eq!(image["image_url"]["url"], png_data_url());
    assert_usage_recorded(&r, "gpt-4o-mini");
}

#[test]
fn ollama_image_reaches_claude_as_a_base64_image_block() {
    let r = run(Client::Ollama, "image_claude");
    assert_answered_by(&r, "anthropic", "claude-opus-4-5", "explicit");
    let got = r.only_upstream();
    assert_upstream(&r, got, "anthropic", "claude-opus-4-5");
    let blocks = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = blocks.iter().find(|b| b["type"] == "image").unwrap();
    assert_eq!(
        image["source"],
        json!({"type": "base64", "media_type": "image/png", "data": PNG_1X1})
    );
    assert_usage_recorded(&r, "claude-opus-4-5");
}

#[test]
fn ollama_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Client::Ollama, "chat_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    assert!(r.header("x-aipipe-complexity").is_some(), "{}", r.out);
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_upstream(&r, r.only_upstream(), "openai", "gpt-4o-mini");
    assert_usage_recorded(&r, "gpt-4o-mini");
}

#[test]
fn ollama_list_shows_auto_and_the_tenants_models() {
    let r = run(Client::Ollama, "list");
    assert!(
        r.upstream.is_empty(),
        "the list went upstream: {:#?}",
        r.upstream
    );
    let models: Vec<&str> = r.out["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(models.first(), Some(&"auto"), "{models:?}");
    for m in ["gpt-4o-mini", "claude-opus-4-5"] {
        assert!(models.contains(&m), "{m} missing from {models:?}");
    }
    // Only the providers the tenant has keys for.
    for (model, family) in r.out["families"].as_object().unwrap() {
        assert!(
            ["aipipe", "openai", "anthropic"].contains(&family.as_str().unwrap()),
            "{model} of {family}: the tenant has no key for it"
        );
    }
}
