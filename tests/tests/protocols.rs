//! Every provider in its own protocol, through real Envoy and the filter:
//! chat clients routed to Anthropic's native Messages API (answers and
//! errors translated back), Anthropic clients on `POST /v1/messages` routed
//! either way, and the provider pass-through paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_tests::{post_json, request, stream_lines};
use common::{
    ACME, BETA, REASONING_TURN, ROUTER, Stack, chat, complete_stream, input_kinds, streamed_content,
};
use serde_json::{Value, json};

fn messages_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

/// Anthropic SDK style: the virtual key in `x-api-key`.
const ACME_ANTHROPIC: [(&str, &str); 2] = [
    ("x-api-key", "vk-acme"),
    ("anthropic-version", "2023-06-01"),
];

#[test]
fn chat_clients_reach_claude_through_the_messages_api_plain_streamed_and_with_tools() {
    let s = Stack::start();
    // Plain.
    let r = post_json(
        &s.chat_url(),
        &ACME.auth(),
        &chat("claude-opus-4-5", "hello"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["model"], "claude-opus-4-5");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/messages");
    assert_eq!(got["body"]["max_tokens"], 4096, "the default max_tokens");
    assert_eq!(got["body"]["messages"][0]["role"], "user");
    assert_eq!(r.header("x-aipipe-dropped-params"), None);

    // What Anthropic has no place for is left out and named; `stop` goes as
    // `stop_sequences`.
    let mut body = chat("claude-opus-4-5", "hello");
    body["seed"] = json!(7);
    body["presence_penalty"] = json!(0.5);
    body["stop"] = json!(["END"]);
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-aipipe-dropped-params"),
        Some("seed,presence_penalty")
    );
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["body"]["stop_sequences"], json!(["END"]), "{got}");
    assert!(got["body"].get("seed").is_none(), "{got}");

    // Streamed, without and with the usage chunk.
    for include_usage in [false, true] {
        let mut body = chat("claude-opus-4-5", "tell me a story");
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let text = complete_stream(&s.chat_url(), &ACME.auth(), &body);
        let chunks: Vec<Value> = text
            .iter()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        let usage_chunks = chunks.iter().filter(|c| c["usage"].is_object()).count();
        assert_eq!(usage_chunks, usize::from(include_usage), "{chunks:?}");
        assert_eq!(s.mock.received().pop().unwrap()["stream"], true);
    }

    // Tools: the tool_use block comes back as tool_calls.
    let body = json!({
        "model": "claude-opus-4-5",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "required"
    });
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["body"]["tool_choice"]["type"], "any");
}

#[test]
fn anthropic_errors_reach_chat_clients_in_openai_shape() {
    let s = Stack::start();
    // A client error is not failed over: it is the client's to fix.
    s.mock
        .fault(json!({"provider": "anthropic", "status": 400}));
    let r = post_json(
        &s.chat_url(),
        &ACME.auth(),
        &chat("claude-opus-4-5", "hello"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert!(v["error"]["message"].as_str().is_some(), "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(r.header("x-aipipe-model"), Some("claude-opus-4-5"));
}

#[test]
fn anthropic_clients_are_routed_to_claude_as_is_and_to_others_translated() {
    let s = Stack::start();
    let url = s.envoy.url("/v1/messages");

    // To an Anthropic model: the request goes on in its own format.
    let r = post_json(
        &url,
        &ACME_ANTHROPIC,
        &messages_body("claude-opus-4-5", "hello"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/messages");
    assert_eq!(got["x_api_key"], "sk-acme-anthropic");
    assert_eq!(got["body"]["model"], "claude-opus-4-5");
    assert_eq!(got["body"]["max_tokens"], 256);

    // "auto": a greeting goes to the cheap OpenAI model, translated both ways.
    let r = post_json(&url, &ACME_ANTHROPIC, &messages_body("auto", "hi there"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    assert!(r.header("x-aipipe-complexity").is_some());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["role"], "assistant");
    assert!(v["content"][0]["text"].as_str().unwrap().len() > 1);
    assert_eq!(v["stop_reason"], "end_turn");
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/chat/completions");
    assert_eq!(got["authorization"], "Bearer sk-acme-openai");
    assert_eq!(got["x_api_key"], Value::Null);
    assert_eq!(got["body"]["model"], "gpt-4o-mini");

    // Streamed both ways: Anthropic's event sequence comes back.
    for model in ["claude-opus-4-5", "gpt-4o-mini"] {
        let mut body = messages_body(model, "tell me a story");
        body["stream"] = json!(true);
        let (status, lines) = stream_lines(&url, &ACME_ANTHROPIC, &body);
        assert_eq!(status, 200, "{model}");
        let events: Vec<&str> = lines
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            events.first(),
            Some(&"message_start"),
            "{model}: {events:?}"
        );
        assert!(
            events.contains(&"content_block_delta"),
            "{model}: {events:?}"
        );
        assert!(events.contains(&"message_delta"), "{model}: {events:?}");
        assert_eq!(events.last(), Some(&"message_stop"), "{model}: {events:?}");
        let text: String = lines
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
            .collect();
        assert!(!text.is_empty(), "{model}");
    }

    // Errors come back Anthropic-shaped.
    let r = post_json(
        &url,
        &[("x-api-key", "vk-nobody")],
        &messages_body("auto", "hi"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = post_json(
        &url,
        &ACME_ANTHROPIC,
        &json!({"model": "auto", "max_tokens": 5}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(r.json()["type"], "error");
    // Only OpenAI keys: Claude is not reachable, a 503 names the missing key.
    let r = post_json(
        &url,
        &[("x-api-key", BETA.key)],
        &messages_body("claude-opus-4-5", "hi"),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic")
    );
}

#[test]
fn pass_through_paths_forward_any_endpoint_with_the_tenant_key() {
    let s = Stack::start();
    // A chat completion through /openai/v1/…: forwarded as is, accounted.
    let r = post_json(
        &s.envoy.url("/openai/v1/chat/completions"),
        &ACME.auth(),
        &chat("gpt-4o-mini", "hello"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-provider"), Some("openai"));
    assert_eq!(r.header("x-aipipe-route"), Some("pass-through"));
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/chat/completions");
    assert_eq!(got["authority"], "api.openai.com");
    assert_eq!(got["authorization"], "Bearer sk-acme-openai");

    // Any method and endpoint, query string kept.
    let r = request(
        "GET",
        &s.envoy.url("/openai/v1/models?limit=2"),
        &ACME.auth(),
        None,
    );
    assert!(r.status < 500, "{}", r.text());
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["method"], "GET");
    assert_eq!(got["path"], "/v1/models");
    assert_eq!(got["authorization"], "Bearer sk-acme-openai");

    // OpenRouter's API lives under /api.
    let r = post_json(
        &s.envoy.url("/openrouter/v1/chat/completions"),
        &ROUTER.auth(),
        &chat("meta-llama/llama-3.3-70b-instruct", "hello"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/api/v1/chat/completions");
    assert_eq!(got["authorization"], "Bearer sk-router-openrouter");

    // Anthropic: its key header and a version when the client sent none.
    let r = post_json(
        &s.envoy.url("/anthropic/v1/messages"),
        &ACME.auth(),
        &messages_body("claude-opus-4-5", "hello"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/messages");
    assert_eq!(got["x_api_key"], "sk-acme-anthropic");
    assert_eq!(got["authorization"], Value::Null);
    assert_eq!(got["anthropic_version"], "2023-06-01");

    // Streams pass through unbuffered.
    let mut body = chat("gpt-4o-mini", "tell me a story");
    body["stream"] = json!(true);
    let (status, lines) = stream_lines(
        &s.envoy.url("/openai/v1/chat/completions"),
        &ACME.auth(),
        &body,
    );
    assert_eq!(status, 200);
    assert!(!streamed_content(lines.iter().map(|(_, l)| l.as_str())).is_empty());

    // No key for that provider, an unknown key, an unknown provider.
    let r = post_json(
        &s.envoy.url("/anthropic/v1/messages"),
        &BETA.auth(),
        &messages_body("claude-opus-4-5", "hello"),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let r = request(
        "GET",
        &s.envoy.url("/openai/v1/models"),
        &[("authorization", "Bearer vk-nobody")],
        None,
    );
    assert_eq!(r.status, 401);
    let r = request("GET", &s.envoy.url("/nobody/v1/models"), &ACME.auth(), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "unknown_url");
    // The virtual key never reached a provider.
    for record in s.mock.received() {
        let keys = format!("{} {}", record["authorization"], record["x_api_key"]);
        assert!(
            !keys.contains("vk-"),
            "a virtual key reached a provider: {record}"
        );
    }
}

/// The weather tool in Anthropic's format.
fn anthropic_weather_tool() -> Value {
    json!({"name": "get_weather", "description": "The weather now",
        "input_schema": {"type": "object", "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "unit"]}})
}

/// What the mock's OpenAI-format answer calls `get_weather` with.
fn weather_input() -> Value {
    json!({"location": "San Francisco, CA", "unit": "celsius"})
}

/// Every `data:` line of a stream that is JSON.
fn stream_data(lines: &[(std::time::Duration, String)]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn openai_format_tool_calls_reach_anthropic_clients_as_tool_use_and_chat_clients_as_is() {
    let s = Stack::start();
    let url = s.envoy.url("/v1/messages");

    // Plain: the mock's tool_calls come back as a tool_use block.
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 256,
        "tools": [anthropic_weather_tool()],
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}]});
    let r = post_json(&url, &ACME_ANTHROPIC, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let blocks = v["content"].as_array().unwrap();
    let tool_use: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "tool_use").collect();
    assert_eq!(tool_use.len(), 1, "{v}");
    assert_eq!(tool_use[0]["name"], "get_weather", "{v}");
    assert_eq!(tool_use[0]["input"], weather_input(), "{v}");
    assert!(
        tool_use[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_mock_")),
        "{v}"
    );
    assert!(
        blocks
            .iter()
            .all(|b| b["type"] == "tool_use" || b["type"] == "text" && b["text"] != ""),
        "no empty text block for a null content: {v}"
    );
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/chat/completions");
    assert_eq!(got["body"]["tools"][0]["function"]["name"], "get_weather");
    let sent = &got["body"];
    assert!(sent["messages"].is_array(), "{sent}");

    // A forced tool (tool_choice: tool) on a question that does not need it.
    let mut forced = body.clone();
    forced["messages"] = json!([{"role": "user", "content": "Say hello."}]);
    forced["tool_choice"] = json!({"type": "tool", "name": "get_weather"});
    let r = post_json(&url, &ACME_ANTHROPIC, &forced);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let last = v["content"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "tool_use", "{v}");
    assert_eq!(last["input"], weather_input(), "{v}");
    let got = s.mock.received().pop().unwrap();
    assert_eq!(
        got["body"]["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    // Streamed: a tool_use block whose input_json_delta pieces make the input.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["messages"] = json!([{"role": "user", "content": "Is the weather in Oslo cold?"}]);
    let (status, lines) = stream_lines(&url, &ACME_ANTHROPIC, &streamed);
    assert_eq!(status, 200, "{lines:?}");
    let events: Vec<&str> = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{events:?}");
    assert_eq!(events.last(), Some(&"message_stop"), "{events:?}");
    let data = stream_data(&lines);
    let start = data
        .iter()
        .find(|d| d["type"] == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use block started: {data:#?}"));
    assert_eq!(start["content_block"]["name"], "get_weather", "{start}");
    assert!(
        start["content_block"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_mock_")),
        "{start}"
    );
    let index = &start["index"];
    let deltas: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta" && &d["index"] == index)
        .collect();
    assert!(
        deltas
            .iter()
            .all(|d| d["delta"]["type"] == "input_json_delta"),
        "{deltas:#?}"
    );
    let json_text: String = deltas
        .iter()
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap_or_else(|e| panic!("{json_text}: {e}")),
        weather_input()
    );
    assert!(
        data.iter()
            .any(|d| d["type"] == "content_block_stop" && &d["index"] == index),
        "{data:#?}"
    );
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .unwrap_or_else(|| panic!("no message_delta: {data:#?}"));
    assert_eq!(delta["delta"]["stop_reason"], "tool_use", "{delta}");
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
    assert_eq!(s.mock.received().pop().unwrap()["stream"], true);

    // The tool's result: the mock answers in text, and so does the client's answer.
    let mut result = body.clone();
    result["messages"] = json!([
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_mock_1",
            "name": "get_weather", "input": weather_input()}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_mock_1",
            "content": "18 degrees, sunny"}]}]);
    let r = post_json(&url, &ACME_ANTHROPIC, &result);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "end_turn", "{v}");
    assert_eq!(v["content"][0]["type"], "text", "{v}");

    // A chat client gets the mock's tool_calls as they are, plain and streamed.
    let chat_tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": anthropic_weather_tool()["input_schema"]}}]);
    let body = json!({"model": "gpt-4o-mini", "tools": chat_tools,
        "messages": [{"role": "user", "content": "Weather in Lima today?"}]});
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null(), "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function", "{v}");
    assert_eq!(call["function"]["name"], "get_weather", "{v}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, weather_input());
    assert!(
        call["id"].as_str().unwrap().starts_with("call_mock_"),
        "{v}"
    );

    let mut body = body;
    body["stream"] = json!(true);
    body["messages"] = json!([{"role": "user", "content": "Weather in Quito today?"}]);
    let (status, lines) = stream_lines(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(status, 200, "{lines:?}");
    let chunks = stream_data(&lines);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{chunks:#?}");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_mock_"));
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        weather_input()
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")], "{chunks:#?}");
    assert_eq!(
        lines
            .iter()
            .rev()
            .map(|(_, l)| l.as_str())
            .find(|l| !l.is_empty()),
        Some("data: [DONE]")
    );
}

/// gpt-6-luna (filter/README.md, "Catalog changes", gpt-6-luna added),
/// out of service until 2027-01-14 (the suite's undated catalog: disabled):
/// named, it is a 404 until the catalog puts it in service. In service, a
/// chat request with tools, `max_tokens` and a temperature, named
/// or routed there, reaches OpenAI written the way it takes it — the budget
/// as `max_completion_tokens`, `reasoning_effort` `"none"` — where the mock,
/// like OpenAI, answers 400 to the body as the client wrote it; an Anthropic
/// client's request is translated the same way. A client that asks it to
/// reason with tools gets the gateway's own 400, and no provider is called.
#[test]
fn gpt_6_luna_gets_its_chat_body_written_the_way_openai_takes_it() {
    let s = Stack::start();
    let r = post_json(&s.chat_url(), &ACME.auth(), &chat("gpt-6-luna", "hi"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let r = post_json(&s.chat_url(), &ACME.auth(), &chat("auto", "hi"));
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    drop(s);

    let s = Stack::start_with_luna();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    for model in ["gpt-6-luna", "auto"] {
        let body = json!({
            "model": model, "max_tokens": 200, "temperature": 0.3, "tools": tools,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]
        });
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("x-aipipe-model"), Some("gpt-6-luna"), "{model}");
        assert_eq!(r.header("x-aipipe-dropped-params"), None, "{model}");
        let v = r.json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
        let got = s.mock.received().pop().unwrap();
        assert_eq!(got["path"], "/v1/chat/completions");
        let sent = &got["body"];
        assert_eq!(sent["model"], "gpt-6-luna");
        assert_eq!(sent["max_completion_tokens"], 200, "{sent}");
        assert!(sent.get("max_tokens").is_none(), "{sent}");
        assert_eq!(sent["reasoning_effort"], "none");
        assert_eq!(sent["temperature"], 0.3);
    }

    // An Anthropic client's request, translated: the same budget rename.
    let r = post_json(
        &s.envoy.url("/v1/messages"),
        &ACME_ANTHROPIC,
        &messages_body("gpt-6-luna", "hi there"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let sent = &s.mock.received().pop().unwrap()["body"];
    assert_eq!(sent["max_completion_tokens"], 256, "{sent}");
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    assert_eq!(sent["reasoning_effort"], "none");

    // Asked to reason with tools it goes over the Responses API instead
    // (`gpt_6_luna_reasons_with_tools_over_the_responses_api`).

    // Without tools it may reason: the temperature it would refuse is
    // dropped and named.
    let body = json!({
        "model": "gpt-6-luna", "reasoning_effort": "low", "temperature": 0.3,
        "messages": [{"role": "user", "content": "hello"}]
    });
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-dropped-params"), Some("temperature"));
    let sent = &s.mock.received().pop().unwrap()["body"];
    assert_eq!(sent["reasoning_effort"], "low");
    assert!(sent.get("temperature").is_none(), "{sent}");
}

/// gpt-6-luna takes tools with a reasoning effort only over OpenAI's
/// Responses API (filter/README.md, "What a model accepts"): such a
/// request, named or routed, whole or streamed, reaches the mock's
/// `/v1/responses` in that API's shape — where the mock, like OpenAI, answers
/// 400 to Chat Completions fields — and its answer comes back as Chat
/// Completions: the tool call, the text, the usage with the reasoning
/// tokens counted as output. The same request with effort none, or without
/// tools, keeps Chat Completions.
#[test]
fn gpt_6_luna_reasons_with_tools_over_the_responses_api() {
    let s = Stack::start_with_luna();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let ask = |model: &str, effort: &str, text: &str| {
        json!({
            "model": model, "reasoning_effort": effort, "max_tokens": 500, "temperature": 0.2,
            "stop": ["END"], "tools": tools, "messages": [{"role": "user", "content": text}]
        })
    };
    for model in ["gpt-6-luna", "auto"] {
        let r = post_json(
            &s.chat_url(),
            &ACME.auth(),
            &ask(model, "high", "What is the weather in Paris?"),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("x-aipipe-model"), Some("gpt-6-luna"), "{model}");
        // The Responses API has no `stop`: the answer says it went.
        assert_eq!(
            r.header("x-aipipe-dropped-params"),
            Some("temperature,stop")
        );
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{v}");
        assert_eq!(v["model"], "gpt-6-luna");
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{v}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{args}");
        let got = s.mock.received().pop().unwrap();
        assert_eq!(got["path"], "/v1/responses", "{got}");
        let sent = &got["body"];
        assert_eq!(sent["model"], "gpt-6-luna");
        assert_eq!(sent["store"], false);
        assert_eq!(sent["reasoning"], json!({"effort": "high"}));
        assert_eq!(sent["max_output_tokens"], 500);
        assert_eq!(sent["tools"][0]["name"], "get_weather", "{sent}");
        assert_eq!(sent["input"][0]["content"], "What is the weather in Paris?");
        for chat_only in [
            "messages",
            "max_tokens",
            "reasoning_effort",
            "temperature",
            "stop",
        ] {
            assert!(sent.get(chat_only).is_none(), "{chat_only}: {sent}");
        }
        // The usage the client sees is the mock's, reasoning included.
        let usage = &v["usage"];
        assert_eq!(usage["prompt_tokens"], got["sent_usage"]["input_tokens"]);
        assert_eq!(
            usage["completion_tokens"],
            got["sent_usage"]["output_tokens"]
        );
        assert_eq!(
            usage["completion_tokens_details"]["reasoning_tokens"],
            got["sent_usage"]["output_tokens_details"]["reasoning_tokens"]
        );
        assert!(usage["completion_tokens_details"]["reasoning_tokens"].as_u64() > Some(0));
    }

    // `n` above 1 has no place in the Responses API: routing passes luna by
    // (another model answers, and luna is not named a failover), naming it
    // is a 400 that says why, and no provider is called for it.
    let mut two = ask("auto", "high", "What is the weather in Paris?");
    two["n"] = json!(2);
    let r = post_json(&s.chat_url(), &ACME.auth(), &two);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.header("x-aipipe-model"), Some("gpt-6-luna"));
    assert_eq!(r.header("x-aipipe-failover"), None);
    assert_ne!(s.mock.received().pop().unwrap()["path"], "/v1/responses");
    two["model"] = json!("gpt-6-luna");
    let before = s.mock.received().len();
    let r = post_json(&s.chat_url(), &ACME.auth(), &two);
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(message.contains("`n` above 1"), "{message}");
    assert_eq!(s.mock.received().len(), before);

    // Streamed: text, then a tool call, as Chat Completions chunks.
    let mut body = ask("gpt-6-luna", "low", "Tell me about lighthouses.");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let lines = complete_stream(&s.chat_url(), &ACME.auth(), &body);
    let chunks: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .map(|c| &c["choices"][0]["finish_reason"])
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/responses");
    assert_eq!(got["body"]["stream"], true);
    assert!(got["body"].get("stream_options").is_none(), "{got}");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["completion_tokens"], got["sent_usage"]["output_tokens"],
        "{usage}"
    );

    body["messages"] = json!([{"role": "user", "content": "What is the weather in Oslo?"}]);
    body.as_object_mut().unwrap().remove("stream_options");
    let (status, lines) = stream_lines(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(status, 200);
    let chunks: Vec<Value> = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{chunks:?}");
    assert!(calls[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    let args: Value = serde_json::from_str(&args).unwrap();
    assert!(args["city"].is_string(), "{args}");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage asked for"
    );
    let last = lines.iter().rev().find(|(_, l)| !l.is_empty());
    assert_eq!(last.map(|(_, l)| l.as_str()), Some("data: [DONE]"));

    // Failover, whole (by call) and streamed (by redirect): from a named
    // model that failed to luna over the Responses API, and from luna (or,
    // once its failures have raised its penalty, the model ranked before
    // it) to the next candidate's own protocol. Every attempt at luna goes
    // over the Responses API, every other over its provider's.
    for (fails, named) in [("anthropic", "claude-sonnet-5-5"), ("openai", "auto")] {
        for stream in [false, true] {
            s.mock.clear_received();
            s.mock
                .fault(json!({"provider": fails, "status": 500, "times": 1}));
            let mut body = ask(named, "high", "What is the weather in Lima?");
            body["stream"] = json!(stream);
            let r = post_json(&s.chat_url(), &ACME.auth(), &body);
            s.mock.clear_faults();
            let case = format!("{fails} fails, stream={stream}");
            assert_eq!(r.status, 200, "{case}: {}", r.text());
            let got = s.mock.received();
            assert_eq!(got.len(), 2, "{case}: {got:?}");
            let failed = r.header("x-aipipe-failover");
            assert_eq!(failed, got[0]["body"]["model"].as_str(), "{case}");
            assert_eq!(
                r.header("x-aipipe-model"),
                got[1]["body"]["model"].as_str(),
                "{case}"
            );
            for g in &got {
                let want = match g["body"]["model"].as_str() {
                    Some("gpt-6-luna") => "/v1/responses",
                    Some(m) if m.starts_with("claude") => "/v1/messages",
                    _ => "/v1/chat/completions",
                };
                assert_eq!(g["path"], want, "{case}: {g}");
            }
            assert!(
                got.iter().any(|g| g["body"]["model"] == "gpt-6-luna"),
                "{case}: luna tried"
            );
            let text = r.text();
            assert!(text.contains("get_weather"), "{case}: {text}");
            if stream {
                assert!(text.trim_end().ends_with("data: [DONE]"), "{case}: {text}");
            } else {
                assert_eq!(r.json()["object"], "chat.completion", "{case}: {text}");
            }
        }
    }

    // A Responses API client's effort reaches the model too: with tools,
    // luna over the Responses API (its answer back as a response object);
    // gpt-4o-mini, which takes no effort, without it.
    let flat = json!([{"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let responses = |model: &str| {
        json!({"model": model, "reasoning": {"effort": "medium"}, "tools": flat,
            "input": "What is the weather in Quito?"})
    };
    s.mock.clear_received();
    let r = post_json(
        &s.envoy.url("/v1/responses"),
        &ACME.auth(),
        &responses("gpt-6-luna"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "response", "{v}");
    let call = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call");
    assert_eq!(call.map(|c| &c["name"]), Some(&json!("get_weather")), "{v}");
    assert!(
        v["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64() > Some(0),
        "{v}"
    );
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/responses");
    assert_eq!(got["body"]["reasoning"], json!({"effort": "medium"}));
    let r = post_json(
        &s.envoy.url("/v1/responses"),
        &ACME.auth(),
        &responses("gpt-4o-mini"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-aipipe-dropped-params"),
        Some("reasoning_effort")
    );
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/chat/completions");
    assert!(got["body"].get("reasoning_effort").is_none(), "{got}");

    // An Anthropic client's thinking (Claude Code's "think hard" budget) is
    // the effort luna reasons at, with its tools over the Responses API; the
    // answer comes back as an Anthropic message. gpt-4o-mini, which takes no
    // effort, gets neither, and the answer names the client's field.
    let anthropic = |model: &str| {
        json!({"model": model, "max_tokens": 800,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "messages": [{"role": "user", "content": "What is the weather in Lima?"}]})
    };
    let r = post_json(
        &s.envoy.url("/v1/messages"),
        &ACME_ANTHROPIC,
        &anthropic("gpt-6-luna"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-dropped-params"), None);
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/responses");
    assert_eq!(got["body"]["reasoning"], json!({"effort": "medium"}));
    assert!(got["body"].get("thinking").is_none(), "{got}");
    let r = post_json(
        &s.envoy.url("/v1/messages"),
        &ACME_ANTHROPIC,
        &anthropic("gpt-4o-mini"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-dropped-params"), Some("thinking"));
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/chat/completions");
    assert!(
        got["body"].get("reasoning_effort").is_none() && got["body"].get("thinking").is_none(),
        "{got}"
    );

    // An Ollama client's `think` is the effort, as Anthropic's thinking is.
    let ollama = json!({"model": "gpt-6-luna", "stream": false, "think": "high",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]});
    let r = post_json(&s.envoy.url("/api/chat"), &ACME.auth(), &ollama);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["message"]["tool_calls"][0]["function"]["name"], "get_weather",
        "{v}"
    );
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/responses");
    assert_eq!(got["body"]["reasoning"], json!({"effort": "high"}));

    // Effort none keeps Chat Completions (where tools are taken with it).
    let r = post_json(
        &s.chat_url(),
        &ACME.auth(),
        &ask("gpt-6-luna", "none", "What is the weather in Rome?"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.mock.received().pop().unwrap()["path"],
        "/v1/chat/completions"
    );
}

/// claude-haiku-5-5 (filter/README.md, "Catalog changes", 2026-12-06, third
/// change), enabled here (it ships disabled): it thinks unless told not to,
/// so a request that asks for no reasoning reaches it with `thinking`
/// disabled — routed or named, from an OpenAI or an Anthropic client —
/// where the mock, like Anthropic, takes that only from Haiku 5.5; one that
/// asks for reasoning gets the model's default. Sonnet 5.5 is told with
/// `between_tools` (filter/README.md, "Catalog changes", 2026-12-08, second
/// change), a client's own `disabled` too; Opus 5.5, which cannot stop
/// thinking, is told nothing.
#[test]
fn claude_5_is_told_not_to_think_unless_the_client_asks() {
    let s = Stack::start_enabling(&["claude-haiku-5-5"]);
    let disabled = json!({"type": "disabled"});
    let sent = || s.mock.received().pop().unwrap();
    for model in ["auto", "claude-haiku-5-5"] {
        let r = post_json(&s.chat_url(), &ACME.auth(), &chat(model, "hi"));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(
            r.header("x-aipipe-model"),
            Some("claude-haiku-5-5"),
            "{model}"
        );
        let got = sent();
        assert_eq!(got["path"], "/v1/messages");
        assert_eq!(got["body"]["thinking"], disabled, "{model}: {got}");
    }
    let r = post_json(
        &s.envoy.url("/v1/messages"),
        &ACME_ANTHROPIC,
        &messages_body("auto", "hi there"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    assert_eq!(sent()["body"]["thinking"], disabled);

    // Asked to reason: the model's own thinking, at the effort asked for.
    let body = json!({"model": "claude-haiku-5-5", "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "hello"}]});
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = sent();
    assert!(got["body"].get("thinking").is_none(), "{got}");
    assert_eq!(
        got["body"]["output_config"],
        json!({"effort": "low"}),
        "{got}"
    );

    // Sonnet 5.5, which refuses it (the mock, like Anthropic, answers 400),
    // is told its own way: no up-front thinking, so no thinking billed.
    for own in [None, Some(json!({"type": "disabled"}))] {
        let mut body = chat("claude-sonnet-5-5", "hi");
        if let Some(own) = &own {
            body["thinking"] = own.clone();
        }
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200, "{own:?}: {}", r.text());
        let got = sent();
        assert_eq!(
            got["body"]["thinking"],
            json!({"type": "between_tools"}),
            "{got}"
        );
        assert!(
            r.json()["choices"][0]["message"]
                .get("reasoning_details")
                .is_none()
        );
    }
    // Opus 5.5 cannot stop thinking: nothing is sent for it.
    let r = post_json(&s.chat_url(), &ACME.auth(), &chat("claude-opus-5-5", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(sent()["body"].get("thinking").is_none());
}

/// A Chat client's `reasoning_effort` reaches the Claude 5.x as
/// `output_config.effort` (filter/README.md, "Model selection", "What a
/// model accepts"): `minimal` as `low`, `"none"` — which Opus 5.5 cannot
/// honour — as the least; the mock, like Anthropic, refuses an
/// effort from an earlier model, which gets none.
#[test]
fn a_reasoning_effort_reaches_claude_5_as_its_output_effort() {
    let s = Stack::start();
    let ask = |model: &str, effort: &str| {
        let body = json!({"model": model, "reasoning_effort": effort,
            "messages": [{"role": "user", "content": "hello"}]});
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200, "{model} {effort}: {}", r.text());
        s.mock.received().pop().unwrap()["body"].clone()
    };
    for (model, effort, sent) in [
        ("claude-sonnet-5-5", "minimal", "low"),
        ("claude-sonnet-5-5", "high", "high"),
        ("claude-opus-5-5", "none", "low"),
        ("claude-opus-5-5", "xhigh", "xhigh"),
    ] {
        let body = ask(model, effort);
        assert_eq!(
            body["output_config"],
            json!({"effort": sent}),
            "{model} {effort}: {body}"
        );
        assert!(body.get("reasoning_effort").is_none(), "{body}");
    }
    let body = ask("claude-opus-4-5", "low");
    assert!(body.get("output_config").is_none(), "{body}");
}

/// OpenAI's models take no Anthropic extensions in a Chat body
/// (filter/README.md, "What a model accepts"): a Chat client's `thinking` or
/// `output_config`, named or routed there, whole or streamed, is left out and
/// named in `x-aipipe-dropped-params` — the mock, like OpenAI, answers 400 to
/// a parameter it does not know — while a Claude model gets it translated.
#[test]
fn anthropic_extensions_are_left_out_for_openai_models() {
    let s = Stack::start();
    let thinking = json!({"type": "enabled", "budget_tokens": 2048});
    for (model, stream) in [("gpt-4o-mini", false), ("auto", false), ("gpt-4o", true)] {
        let body = json!({"model": model, "stream": stream, "thinking": thinking,
            "output_config": {"effort": "low"}, "messages": [{"role": "user", "content": "hello"}]});
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert!(
            r.header("x-aipipe-model")
                .is_some_and(|m| m.starts_with("gpt-4o")),
            "{model}: {:?}",
            r.header("x-aipipe-model")
        );
        assert_eq!(
            r.header("x-aipipe-dropped-params"),
            Some("thinking,output_config"),
            "{model}"
        );
        let sent = &s.mock.received().pop().unwrap()["body"];
        assert!(
            sent.get("thinking").is_none() && sent.get("output_config").is_none(),
            "{sent}"
        );
        if stream {
            assert!(
                r.text().trim_end().ends_with("data: [DONE]"),
                "{}",
                r.text()
            );
        }
    }
    let body = json!({"model": "claude-opus-4-5", "thinking": thinking,
        "messages": [{"role": "user", "content": "hello"}]});
    let r = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-dropped-params"), None);
    let got = s.mock.received().pop().unwrap();
    assert_eq!(got["path"], "/v1/messages");
    assert_eq!(got["body"]["thinking"], thinking, "{got}");
    // A Claude 5.x takes adaptive thinking only (the mock, like Anthropic,
    // answers 400 to a budget): a Chat client's or an Anthropic client's
    // budget is the effort it asks for.
    let adaptive_at = |url: &str, key: &[(&str, &str)], body: Value, effort: &str| {
        let r = post_json(url, key, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-aipipe-dropped-params"), None);
        let got = s.mock.received().pop().unwrap();
        let sent = (&got["body"]["thinking"], &got["body"]["output_config"]);
        let want = (&json!({"type": "adaptive"}), &json!({"effort": effort}));
        assert_eq!(sent, want, "{got}");
        r
    };
    adaptive_at(
        &s.chat_url(),
        &ACME.auth(),
        json!({"model": "claude-sonnet-5-5", "thinking": thinking,
            "messages": [{"role": "user", "content": "hello"}]}),
        "low",
    );
    let r = adaptive_at(
        &s.envoy.url("/v1/messages"),
        &ACME_ANTHROPIC,
        json!({"model": "claude-opus-5-5", "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "messages": [{"role": "user", "content": "hello"}]}),
        "medium",
    );
    assert_eq!(r.json()["content"][0]["type"], "thinking", "{}", r.text());
}

/// OpenAI's GPT-4o generation takes no `reasoning_effort` (filter/README.md,
/// "Model selection", "What a model accepts"): a Chat client's, `"none"`
/// too, named or routed there, is left out and named in
/// `x-aipipe-dropped-params` — the mock, like OpenAI, answers 400 to it —
/// while a model that takes one gets it as written.
#[test]
fn a_reasoning_effort_is_left_out_for_a_model_that_takes_none() {
    let s = Stack::start();
    for (model, effort) in [("gpt-4o-mini", "low"), ("auto", "high"), ("gpt-4o", "none")] {
        let body = json!({"model": model, "reasoning_effort": effort, "temperature": 0.2,
            "messages": [{"role": "user", "content": "hello"}]});
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200, "{model} {effort}: {}", r.text());
        assert!(
            r.header("x-aipipe-model")
                .is_some_and(|m| m.starts_with("gpt-4o")),
            "{model}: {:?}",
            r.header("x-aipipe-model")
        );
        assert_eq!(
            r.header("x-aipipe-dropped-params"),
            Some("reasoning_effort")
        );
        let sent = &s.mock.received().pop().unwrap()["body"];
        assert!(sent.get("reasoning_effort").is_none(), "{sent}");
        assert_eq!(sent["temperature"], 0.2, "{sent}");
    }
    let body = json!({"model": "deepseek-v3.2", "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "hello"}]});
    let r = post_json(&s.chat_url(), &ROUTER.auth(), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-dropped-params"), None);
    assert_eq!(
        s.mock.received().pop().unwrap()["body"]["reasoning_effort"],
        "low"
    );
}

/// A Chat client's tool loop on Claude with thinking on (filter/README.md,
/// "Client protocols"): Anthropic wants the thinking block of the turn that
/// called the tool back, unedited, in front of the call — the mock, like
/// Anthropic, answers 400 without it. The answer carries it in the message's
/// `reasoning_details` (whole, and streamed at the block's end), and the
/// message sent back with the tool's output reaches Claude with the block
/// first again.
#[test]
fn claudes_thinking_goes_back_with_the_tool_output() {
    let s = Stack::start();
    let question = json!({"role": "user", "content": "What is the weather in Oslo?"});
    let ask = |messages: Value, stream: bool| {
        json!({"model": "claude-opus-4-5", "max_tokens": 4096, "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
            "messages": messages})
    };
    for stream in [false, true] {
        // The first turn: the assistant message as the client reads it.
        let message = if stream {
            let lines = complete_stream(&s.chat_url(), &ACME.auth(), &ask(json!([question]), true));
            let chunks: Vec<Value> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect();
            let delta = |key: &str| -> Vec<Value> {
                chunks
                    .iter()
                    .filter_map(|c| c["choices"][0]["delta"][key].as_array().cloned())
                    .flatten()
                    .collect()
            };
            let calls = delta("tool_calls");
            let arguments: String = calls
                .iter()
                .filter_map(|c| c["function"]["arguments"].as_str())
                .collect();
            json!({"role": "assistant", "content": null, "reasoning_details": delta("reasoning_details"),
                "tool_calls": [{"id": calls[0]["id"], "type": "function",
                    "function": {"name": calls[0]["function"]["name"], "arguments": arguments}}]})
        } else {
            let r = post_json(&s.chat_url(), &ACME.auth(), &ask(json!([question]), false));
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["choices"][0]["message"].clone()
        };
        let details = &message["reasoning_details"];
        assert_eq!(details.as_array().map(Vec::len), Some(1), "{message}");
        assert_eq!(details[0]["type"], "reasoning.text", "{message}");
        assert_eq!(details[0]["format"], "anthropic-claude-v1", "{message}");
        let thinking = details[0]["text"].as_str().unwrap_or_default();
        assert!(thinking.starts_with("Mock thinking"), "{message}");
        let call = &message["tool_calls"][0];
        let result = json!({"role": "tool", "tool_call_id": call["id"], "content": "4 degrees"});

        // The second turn, the message as it came: Claude gets the block first.
        s.mock.clear_received();
        let r = post_json(
            &s.chat_url(),
            &ACME.auth(),
            &ask(json!([question, message, result]), false),
        );
        assert_eq!(r.status, 200, "stream {stream}: {}", r.text());
        let got = s.mock.received().pop().unwrap();
        let content = &got["body"]["messages"][1]["content"];
        assert_eq!(
            content[0],
            json!({"type": "thinking", "thinking": thinking, "signature": details[0]["signature"]}),
            "{got}"
        );
        assert_eq!(
            content
                .as_array()
                .and_then(|c| c.last())
                .map(|b| &b["type"]),
            Some(&json!("tool_use")),
            "{got}"
        );

        // A client that keeps no reasoning: Claude would refuse the turn, so
        // it goes on without thinking, and the answer says so.
        let mut bare = message.clone();
        bare.as_object_mut().unwrap().remove("reasoning_details");
        s.mock.clear_received();
        let r = post_json(
            &s.chat_url(),
            &ACME.auth(),
            &ask(json!([question, bare, result]), false),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-aipipe-dropped-params"), Some("thinking"));
        let got = s.mock.received().pop().unwrap();
        assert!(got["body"].get("thinking").is_none(), "{got}");
        assert_ne!(
            got["body"]["messages"][1]["content"][0]["type"], "thinking",
            "{got}"
        );
    }
}

/// An Anthropic client's tool loop with thinking on, its tool called by
/// another model (routing chose it, here named) and continued on Claude:
/// there is no thinking to bring back, which Anthropic would refuse, so
/// Claude gets the turn without `thinking`, named in the answer. The same
/// loop started on Claude goes back with its thinking block, untouched.
#[test]
fn a_tool_loop_another_model_started_reaches_claude_without_thinking() {
    let s = Stack::start();
    let url = s.envoy.url("/v1/messages");
    let question = json!({"role": "user", "content": "What's the weather in Paris?"});
    let ask = |model: &str, messages: Value| {
        json!({"model": model, "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [anthropic_weather_tool()], "messages": messages})
    };
    for starter in ["gpt-4o-mini", "claude-opus-4-5"] {
        let r = post_json(&url, &ACME_ANTHROPIC, &ask(starter, json!([question])));
        assert_eq!(r.status, 200, "{starter}: {}", r.text());
        let v = r.json();
        assert_eq!(v["stop_reason"], "tool_use", "{starter}: {v}");
        let call = v["content"]
            .as_array()
            .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
            .cloned()
            .unwrap_or_else(|| panic!("{starter}: {v}"));
        let turn = json!([question, {"role": "assistant", "content": v["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "14 degrees"}]}]);

        s.mock.clear_received();
        let r = post_json(&url, &ACME_ANTHROPIC, &ask("claude-opus-4-5", turn));
        assert_eq!(r.status, 200, "{starter}: {}", r.text());
        let got = s.mock.received().pop().unwrap();
        let first = &got["body"]["messages"][1]["content"][0]["type"];
        if starter == "claude-opus-4-5" {
            assert_eq!(r.header("x-aipipe-dropped-params"), None);
            assert_eq!(got["body"]["thinking"]["type"], "enabled", "{got}");
            assert_eq!(first, "thinking", "{got}");
        } else {
            assert_eq!(r.header("x-aipipe-dropped-params"), Some("thinking"));
            assert!(got["body"].get("thinking").is_none(), "{got}");
            assert_ne!(first, "thinking", "{got}");
        }
    }
}

/// The content blocks an Anthropic event stream builds, as the Anthropic
/// SDK puts them together.
fn streamed_blocks(lines: &[(std::time::Duration, String)]) -> Vec<Value> {
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_input = String::new();
    for d in stream_data(lines) {
        match d["type"].as_str() {
            Some("content_block_start") => {
                blocks.push(d["content_block"].clone());
                json_input.clear();
            }
            Some("content_block_delta") => {
                let Some(block) = blocks.last_mut() else {
                    continue;
                };
                let delta = &d["delta"];
                let append = |block: &mut Value, key: &str, piece: &Value| {
                    let text = format!(
                        "{}{}",
                        block[key].as_str().unwrap_or(""),
                        piece.as_str().unwrap_or("")
                    );
                    block[key] = json!(text);
                };
                match delta["type"].as_str() {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("signature_delta") => append(block, "signature", &delta["signature"]),
                    Some("input_json_delta") => {
                        json_input.push_str(delta["partial_json"].as_str().unwrap_or(""));
                        block["input"] = serde_json::from_str(&json_input).unwrap_or(json!({}));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    blocks
}

/// An Anthropic client's tool loop with thinking on gpt-6-luna (Claude Code
/// routed to it): luna's reasoning reaches the client as a thinking block
/// that carries it in its signature, whole and streamed; sent back with the
/// tool result, luna gets its reasoning item again, before its call. A turn
/// of the same conversation on Claude goes without that block, which is
/// not Claude's (and so without thinking: the turn did not start with
/// Claude's).
#[test]
fn an_anthropic_clients_loop_on_gpt_6_luna_keeps_its_reasoning() {
    let s = Stack::start_with_luna();
    let url = s.envoy.url("/v1/messages");
    let question = json!({"role": "user", "content": "What's the weather in Paris?"});
    let ask = |model: &str, messages: Value, stream: bool| {
        json!({"model": model, "max_tokens": 4096, "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "tools": [anthropic_weather_tool()], "messages": messages})
    };
    for stream in [false, true] {
        let content = if stream {
            let (status, lines) = stream_lines(
                &url,
                &ACME_ANTHROPIC,
                &ask("gpt-6-luna", json!([question]), true),
            );
            assert_eq!(status, 200, "{lines:?}");
            Value::Array(streamed_blocks(&lines))
        } else {
            let r = post_json(
                &url,
                &ACME_ANTHROPIC,
                &ask("gpt-6-luna", json!([question]), false),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.header("x-aipipe-model"), Some("gpt-6-luna"));
            r.json()["content"].clone()
        };
        assert_eq!(content[0]["type"], "thinking", "stream {stream}: {content}");
        assert!(
            content[0]["signature"]
                .as_str()
                .is_some_and(|s| s.starts_with("aipipe-reasoning-v1.")),
            "{content}"
        );
        let call = content
            .as_array()
            .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
            .cloned()
            .unwrap_or_else(|| panic!("no call: {content}"));
        let turn = json!([question, {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "14 degrees"}]}]);

        s.mock.clear_received();
        let r = post_json(
            &url,
            &ACME_ANTHROPIC,
            &ask("gpt-6-luna", turn.clone(), false),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let got = s.mock.received().pop().unwrap();
        assert_eq!(got["path"], "/v1/responses", "{got}");
        let input = got["body"]["input"].as_array().unwrap();
        assert_eq!(input_kinds(input), REASONING_TURN, "{got}");
        assert_eq!(
            input[1]["encrypted_content"], "gAAAAABmock-provider-encrypted-reasoning",
            "{got}"
        );

        let r = post_json(&url, &ACME_ANTHROPIC, &ask("claude-opus-4-5", turn, false));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-aipipe-dropped-params"), Some("thinking"));
        let got = s.mock.received().pop().unwrap();
        assert_eq!(got["path"], "/v1/messages", "{got}");
        assert!(
            !got["body"].to_string().contains("aipipe-reasoning"),
            "{got}"
        );
    }
}
