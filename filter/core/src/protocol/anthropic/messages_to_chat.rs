//! An Anthropic Messages answer or error → an OpenAI `chat.completion`
//! answer or error. The mappings at the bottom (usage, stop reason, error
//! type, error body) serve the streamed answer too
//! (`messages_stream_to_chat.rs`).

use serde::Serialize;
use serde_json::Value;

use super::wire::{WireBlock, WireErrorBody, WireMessage};
use super::{JSON_TOOL, TranslateError};
use crate::protocol::chat::{ReasoningDetailOut, UsageOut};

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasoning_details: Vec<ReasoningDetailOut<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: String,
}

/// Translates a (successful) Anthropic Messages answer into an OpenAI
/// `chat.completion` body reporting `model`, created at unix time `created`.
///
/// Text blocks are concatenated into `message.content`; `tool_use` blocks
/// become `message.tool_calls` (`arguments` is the JSON text of `input`),
/// except the [`JSON_TOOL`] call, whose input is the answer text itself.
/// `thinking` and `redacted_thinking` blocks become the message's
/// `reasoning_details` ([`ReasoningDetailOut::thinking`], [`ReasoningDetailOut::redacted`]), which
/// `chat_to_messages` turns back into those blocks when the client sends the
/// message again: Anthropic wants them back, unchanged, in a tool-use turn
/// while thinking is on. Server-tool blocks are dropped. The Anthropic
/// message id is kept as the completion id.
pub fn messages_to_chat(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    // serde would also read a struct from a JSON array.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(TranslateError(
            "the Anthropic answer is not a JSON object".into(),
        ));
    }
    let msg: WireMessage = serde_json::from_slice(body).map_err(|e| {
        TranslateError(format!(
            "the Anthropic answer is not a readable message: {e}"
        ))
    })?;
    if msg.kind.as_deref().is_some_and(|k| k != "message") {
        return Err(TranslateError(format!(
            "the Anthropic answer has type `{}`, expected `message`",
            msg.kind.as_deref().unwrap_or_default()
        )));
    }
    let mut content: Option<String> = None;
    let mut json_answer: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut reasoning_details = Vec::new();
    for block in &msg.content {
        match block.kind.as_str() {
            "thinking" | "redacted_thinking" => {
                if let Some(detail) = reasoning_detail(reasoning_details.len(), block) {
                    reasoning_details.push(detail);
                }
            }
            "text" => {
                if let Some(t) = &block.text {
                    content.get_or_insert_default().push_str(t);
                }
            }
            "tool_use" => {
                let input = block.input.as_ref();
                let arguments = match input {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned()),
                };
                let name = block.name.as_deref().unwrap_or_default();
                if name == JSON_TOOL {
                    json_answer = Some(arguments);
                    continue;
                }
                tool_calls.push(ToolCall {
                    id: block.id.as_deref().unwrap_or_default(),
                    kind: "function",
                    function: FunctionCall { name, arguments },
                });
            }
            _ => {}
        }
    }
    let finish = finish_reason(
        msg.stop_reason.as_deref().unwrap_or("end_turn"),
        !tool_calls.is_empty(),
    );
    // The forced JSON tool's input is the whole answer.
    if json_answer.is_some() {
        content = json_answer;
    }
    if content.is_none() && tool_calls.is_empty() {
        content = Some(String::new());
    }
    let completion = Completion {
        id: msg.id.as_deref().unwrap_or("msg_unknown"),
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: ChatMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
                reasoning_details,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: msg.usage.map(|u| UsageOut::from(u.tokens())),
    };
    serde_json::to_vec(&completion)
        .map_err(|e| TranslateError(format!("could not encode the chat completion: {e}")))
}

/// The `index`-th `reasoning_details` entry for a thinking block (it needs
/// its signature) or a redacted one (its data); None for one without.
pub(super) fn reasoning_detail(index: usize, block: &WireBlock) -> Option<ReasoningDetailOut<'_>> {
    match (
        block.kind.as_str(),
        &block.thinking,
        &block.signature,
        &block.data,
    ) {
        ("thinking", Some(text), Some(signature), _) => {
            Some(ReasoningDetailOut::thinking(index, text, signature))
        }
        ("redacted_thinking", _, _, Some(data)) => Some(ReasoningDetailOut::redacted(index, data)),
        _ => None,
    }
}

/// Translates an Anthropic error answer (HTTP `status`, `body`) into the
/// status and OpenAI-shaped body the client gets: 529 `overloaded_error` →
/// 503, `rate_limit_error` → 429, `authentication_error` → 401,
/// `permission_error` → 403, `not_found_error` → 404, `request_too_large` →
/// 413, `invalid_request_error` → 400 (or Anthropic's other 4xx),
/// `api_error` → 502. A body that is not an Anthropic error → 502 saying so.
pub fn error_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    match serde_json::from_slice::<WireErrorBody>(body) {
        Ok(b) => {
            let (status, kind, code) = error_kind(&b.error.kind, status);
            let message = error_message(
                &b.error.kind,
                b.error
                    .message
                    .as_deref()
                    .unwrap_or("Anthropic reported an error without a message"),
            );
            (status, error_body(&message, kind, code))
        }
        Err(_) => (
            502,
            error_body(
                &format!(
                    "The upstream provider (Anthropic) answered HTTP {status} with a body aipipe could not read. Retry the request; if it persists, tell your aipipe operator."
                ),
                "api_error",
                "bad_upstream_response",
            ),
        ),
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`. `pause_turn` (a server
/// tool loop paused) is a normal stop for the client; unknown future values
/// also read as `stop` rather than failing the answer.
pub(super) fn finish_reason(stop_reason: &str, real_tool_calls: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if real_tool_calls => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's error object, as sent to clients.
#[derive(Debug, Serialize)]
struct ChatError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: &'a str,
}

#[derive(Debug, Serialize)]
struct ChatErrorBody<'a> {
    error: ChatError<'a>,
}

/// How one Anthropic error type reaches the client: status, OpenAI `type`
/// and `code`, and whether the message should say the provider's key (not
/// the client's) is at fault. `status` is what Anthropic sent, used for
/// types it may grow in future.
pub(super) fn error_kind(anthropic_type: &str, status: u16) -> (u16, &'static str, &'static str) {
    match anthropic_type {
        // Anthropic uses this type for other 4xx statuses too: keep theirs.
        "invalid_request_error" => (
            if (400..500).contains(&status) {
                status
            } else {
                400
            },
            "invalid_request_error",
            "invalid_request",
        ),
        "authentication_error" => (401, "authentication_error", "provider_authentication_error"),
        "permission_error" => (403, "permission_error", "provider_permission_denied"),
        "billing_error" => (402, "billing_error", "provider_billing_error"),
        "not_found_error" => (404, "invalid_request_error", "not_found"),
        "request_too_large" => (413, "invalid_request_error", "request_too_large"),
        "rate_limit_error" => (429, "rate_limit_error", "rate_limit_exceeded"),
        "timeout_error" => (504, "timeout_error", "upstream_timeout"),
        "api_error" => (502, "api_error", "upstream_error"),
        "overloaded_error" => (503, "service_unavailable", "provider_overloaded"),
        _ => match status {
            529 => (503, "service_unavailable", "provider_overloaded"),
            400..=499 => (status, "invalid_request_error", "upstream_error"),
            _ => (502, "api_error", "upstream_error"),
        },
    }
}

/// The client-facing message for an Anthropic error: Anthropic's own text,
/// except where it would mislead — a key problem is aipipe's provider key,
/// not the key the client sent.
pub(super) fn error_message(anthropic_type: &str, message: &str) -> String {
    match anthropic_type {
        "authentication_error" | "permission_error" | "billing_error" => format!(
            "Anthropic rejected the provider key aipipe used for this model ({message}). \
             Ask your aipipe operator to check the tenant's Anthropic key and account."
        ),
        _ => message.to_owned(),
    }
}

/// An OpenAI-shaped error body.
pub(super) fn error_body(message: &str, kind: &str, code: &str) -> Vec<u8> {
    let body = ChatErrorBody {
        error: ChatError {
            message,
            kind,
            param: None,
            code,
        },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(answer: Value) -> Value {
        let body = serde_json::to_vec(&answer).unwrap();
        serde_json::from_slice(
            &messages_to_chat(&body, "claude-sonnet-4-5", 1_750_000_000).unwrap(),
        )
        .unwrap()
    }

    fn answer(content: Value, stop_reason: &str) -> Value {
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": content,
            "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 6}
        })
    }

    /// Text blocks joined; the thinking (kept for the next turn, which
    /// Anthropic wants it back in) in `reasoning_details`.
    #[test]
    fn a_text_answer_becomes_a_chat_completion() {
        let out = chat(json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "Let me think", "signature": "sig"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                {"type": "thinking", "thinking": "no signature, not taken back"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": ", world"}
            ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 400}
        }));
        assert_eq!(
            out,
            json!({
                "id": "msg_01",
                "object": "chat.completion",
                "created": 1_750_000_000,
                "model": "claude-sonnet-4-5",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello, world", "refusal": null,
                        "reasoning_details": [
                            {"type": "reasoning.text", "text": "Let me think", "signature": "sig",
                             "format": "anthropic-claude-v1", "index": 0},
                            {"type": "reasoning.encrypted", "data": "EmwKAhgBEgy",
                             "format": "anthropic-claude-v1", "index": 1}]},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 530, "completion_tokens": 20, "total_tokens": 550,
                    "prompt_tokens_details": {"cached_tokens": 400}}
            })
        );
    }

    #[test]
    fn tool_use_blocks_become_tool_calls() {
        let out = chat(answer(
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "units": ["c"]}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}
            ]),
            "tool_use",
        ));
        assert_eq!(
            out["choices"][0],
            json!({
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "refusal": null,
                    "tool_calls": [
                        {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"units\":[\"c\"]}"}},
                        {"id": "toolu_02", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                    ]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            })
        );
        let only_tool = chat(answer(
            json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            "tool_use",
        ));
        assert_eq!(only_tool["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn the_forced_json_tool_comes_back_as_text() {
        let out = chat(answer(
            json!([{"type": "tool_use", "id": "toolu_9", "name": JSON_TOOL, "input": {"answer": 4}}]),
            "tool_use",
        ));
        assert_eq!(out["choices"][0]["message"]["content"], "{\"answer\":4}");
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn every_stop_reason_maps_to_a_finish_reason() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("something_new", "stop"),
        ] {
            let out = chat(answer(json!([{"type": "text", "text": "x"}]), stop));
            assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
        }
        let out = chat(answer(json!([]), "end_turn"));
        assert_eq!(out["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn an_answer_with_unreadable_usage_is_still_translated() {
        let mut a = answer(json!([{"type": "text", "text": "hi"}]), "end_turn");
        a["usage"] = json!("unreadable");
        let v = chat(a);
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
    }

    #[test]
    fn unreadable_answers_are_errors() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{\"content\":7}",
            b"{\"content\":[{\"text\":\"no type\"}]}",
            b"",
        ] {
            assert!(
                messages_to_chat(body, "m", 0).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let e = messages_to_chat(
            br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
            "m",
            0,
        )
        .unwrap_err();
        assert!(e.0.contains("type `error`"), "{e}");
        // Odd but harmless shapes still translate.
        assert!(
            messages_to_chat(
                br#"{"content":[{"type":"tool_use"},{"type":"image"}]}"#,
                "m",
                0
            )
            .is_ok()
        );
    }

    fn openai_error(status: u16, body: &str) -> (u16, Value) {
        let (status, body) = error_to_openai(status, body.as_bytes());
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn each_anthropic_error_type_gets_its_status() {
        for (status, kind, want_status, want_type, want_code) in [
            (
                400,
                "invalid_request_error",
                400,
                "invalid_request_error",
                "invalid_request",
            ),
            (
                422,
                "invalid_request_error",
                422,
                "invalid_request_error",
                "invalid_request",
            ),
            (
                401,
                "authentication_error",
                401,
                "authentication_error",
                "provider_authentication_error",
            ),
            (
                402,
                "billing_error",
                402,
                "billing_error",
                "provider_billing_error",
            ),
            (
                403,
                "permission_error",
                403,
                "permission_error",
                "provider_permission_denied",
            ),
            (
                404,
                "not_found_error",
                404,
                "invalid_request_error",
                "not_found",
            ),
            (
                413,
                "request_too_large",
                413,
                "invalid_request_error",
                "request_too_large",
            ),
            (
                429,
                "rate_limit_error",
                429,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            (500, "api_error", 502, "api_error", "upstream_error"),
            (
                504,
                "timeout_error",
                504,
                "timeout_error",
                "upstream_timeout",
            ),
            (
                529,
                "overloaded_error",
                503,
                "service_unavailable",
                "provider_overloaded",
            ),
            (
                529,
                "brand_new_error",
                503,
                "service_unavailable",
                "provider_overloaded",
            ),
            (
                409,
                "brand_new_error",
                409,
                "invalid_request_error",
                "upstream_error",
            ),
            (500, "brand_new_error", 502, "api_error", "upstream_error"),
        ] {
            let body = format!(
                r#"{{"type":"error","error":{{"type":"{kind}","message":"Boom"}},"request_id":"req_1"}}"#
            );
            let (got_status, v) = openai_error(status, &body);
            assert_eq!(got_status, want_status, "{kind}");
            assert_eq!(v["error"]["type"], want_type, "{kind}");
            assert_eq!(v["error"]["code"], want_code, "{kind}");
            assert_eq!(v["error"]["param"], Value::Null);
            assert!(v["error"]["message"].as_str().unwrap().contains("Boom"));
        }
    }

    #[test]
    fn the_overloaded_error_reads_like_openai() {
        let (status, v) = openai_error(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(status, 503);
        assert_eq!(
            v,
            json!({"error": {"message": "Overloaded", "type": "service_unavailable", "param": null, "code": "provider_overloaded"}})
        );
        let (_, v) = openai_error(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("provider key") && msg.contains("invalid x-api-key"),
            "{msg}"
        );
    }

    #[test]
    fn unreadable_error_bodies_are_a_502() {
        for body in [
            "",
            "<html>Bad Gateway</html>",
            "{\"error\":\"x\"}",
            "{\"type\":\"error\"}",
            "null",
        ] {
            let (status, v) = openai_error(503, body);
            assert_eq!(status, 502, "{body}");
            assert_eq!(v["error"]["code"], "bad_upstream_response");
            assert!(v["error"]["message"].as_str().unwrap().contains("HTTP 503"));
        }
    }
}
