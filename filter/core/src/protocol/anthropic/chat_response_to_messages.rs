//! An OpenAI `chat.completion` answer or error → Anthropic's answer or
//! error, for Anthropic clients routed to a Chat Completions provider.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use super::TranslateError;
use super::lax::{Lax, List, is_object};
use super::wire::{Block, MessagesUsage, ToolInput};
use crate::protocol::chat::{self, openai_usage};

type Result<T> = std::result::Result<T, TranslateError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(TranslateError(message.into()))
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub(super) fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Translates an OpenAI `chat.completion` answer into an Anthropic Messages
/// answer reporting `model`.
pub fn chat_response_to_messages(body: &[u8], model: &str) -> Result<Vec<u8>> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return fail("the provider's answer is not a JSON object");
    }
    let answer: ChatAnswer = serde_json::from_slice(body).map_err(|e| {
        TranslateError(format!(
            "the provider's answer is not a readable chat completion: {e}"
        ))
    })?;
    let Some(choice) = answer.choices.first() else {
        return fail("the provider's answer has no choices");
    };
    // Another provider's reasoning, first as it came, each in a thinking
    // block's signature for the client to send back (`chat::carry`).
    let carried: Vec<(&str, String)> = choice
        .message
        .iter()
        .flat_map(|m| &m.reasoning_details)
        .map(|d| (chat::reasoning_text(d), chat::carry(d)))
        .collect();
    let mut content: Vec<Block> = carried
        .iter()
        .map(|(thinking, signature)| Block::Thinking {
            thinking,
            signature,
        })
        .collect();
    if let Some(m) = &choice.message {
        match &m.content {
            Lax::Str(t) if !t.is_empty() => content.push(Block::text(t.as_ref())),
            Lax::Array(parts) => {
                for p in parts {
                    if let Some(t) = p.object().and_then(|p| p.text.as_str()) {
                        content.push(Block::text(t));
                    }
                }
            }
            _ => {}
        }
        for call in &m.tool_calls {
            let f = call.function.as_ref();
            content.push(Block::ToolUse {
                id: call.id.as_deref().unwrap_or_default(),
                name: f.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                input: tool_input(f.and_then(|f| f.arguments.as_deref())),
            });
        }
    }
    let out = Answer {
        id: answer.id.as_deref().unwrap_or("msg_unknown"),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: stop_reason(choice.finish_reason.as_deref()),
        stop_sequence: None,
        usage: openai_usage(body)
            .map(MessagesUsage::from)
            .unwrap_or_default(),
    };
    serde_json::to_vec(&out)
        .map_err(|e| TranslateError(format!("could not encode the message: {e}")))
}

/// Tool call arguments as Anthropic `input` (always an object): text that
/// does not parse to one is kept under `_raw` rather than lost.
fn tool_input(arguments: Option<&str>) -> ToolInput<'_> {
    match arguments.map(str::trim) {
        None | Some("") => ToolInput::Empty {},
        Some(a) => match serde_json::from_str::<&RawValue>(a) {
            Ok(raw) if is_object(raw) => ToolInput::Object(Cow::Borrowed(raw)),
            _ => ToolInput::Unparsed { raw: a },
        },
    }
}

/// Translates an OpenAI-shaped error answer into Anthropic's error shape,
/// keeping the status (Anthropic clients key their retries off it).
pub fn chat_error_to_messages(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let error = match serde_json::from_slice::<Lax<ErrorBody>>(body) {
        Ok(Lax::Object(b)) => b.error,
        _ => Lax::Absent,
    };
    // `{"error":{"message":…}}`, or a bare `{"error":"…"}`.
    let message = match &error {
        Lax::Object(e) => e.message.as_str(),
        Lax::Str(s) => Some(s.as_ref()),
        _ => None,
    };
    let message = match message {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(format!(
            "The upstream provider answered HTTP {status} with a body aipipe could not read."
        )),
    };
    let (status, kind) = match status {
        400 | 422 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        402 => (402, "billing_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        504 => (504, "timeout_error"),
        s @ 400..=499 => (s, "invalid_request_error"),
        _ => (500, "api_error"),
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, serde_json::to_vec(&body).unwrap_or_default())
}

// ----------------------------------------------- the answer, as read

/// A whole `chat.completion`: the fields this translation reads.
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct ChatAnswer<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice<'a>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct ChatChoice<'a> {
    #[serde(default)]
    message: Option<ChatMessage<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct ChatMessage<'a> {
    /// A string or content parts; anything else carries no text.
    #[serde(default)]
    content: List<'a, TextPart<'a>>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
    #[serde(default, deserialize_with = "chat::nullable")]
    reasoning_details: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct TextPart<'a> {
    text: Lax<'a>,
}

#[derive(Deserialize)]
struct ChatToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChatFunction>,
}

/// A tool call's function, whole or as a streamed fragment.
#[derive(Deserialize)]
pub(super) struct ChatFunction {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<String>,
}

/// An OpenAI-shaped error body: its message is all that is kept.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ErrorBody<'a> {
    error: Lax<'a, ErrorObject<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ErrorObject<'a> {
    message: Lax<'a>,
}

// -------------------------------------------- the answer, as written

/// An Anthropic Messages answer.
#[derive(Serialize)]
struct Answer<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    usage: MessagesUsage,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_chat_answer_becomes_an_anthropic_message() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
                {"id":"call_2","type":"function","function":{"name":"g","arguments":"{oops"}}]},
                "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60}}}"#;
        let out: Value =
            serde_json::from_slice(&chat_response_to_messages(body, "claude-sonnet-4-5").unwrap())
                .unwrap();
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "text", "text": "Sure."},
                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_raw": "{oops"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0}
            })
        );
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
        ] {
            let body = format!(
                r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":"{finish}"}}]}}"#
            );
            let out: Value =
                serde_json::from_slice(&chat_response_to_messages(body.as_bytes(), "m").unwrap())
                    .unwrap();
            assert_eq!(out["stop_reason"], stop);
        }
        for bad in [&b""[..], b"[]", b"{\"choices\":[]}", b"{\"choices\":7}"] {
            assert!(chat_response_to_messages(bad, "m").is_err());
        }
    }

    #[test]
    fn text_parts_and_bare_error_strings_are_read() {
        let body = br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},7,{"type":"text","text":"b"}],
            "tool_calls":[{"id":"c","function":{"name":"f","arguments":" [1] "}}]},"finish_reason":"tool_calls"}]}"#;
        let out: Value =
            serde_json::from_slice(&chat_response_to_messages(body, "m").unwrap()).unwrap();
        assert_eq!(
            out["content"],
            json!([
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
                {"type": "tool_use", "id": "c", "name": "f", "input": {"_raw": "[1]"}}
            ])
        );
        let (_, body) = chat_error_to_messages(400, br#"{"error":"model not found"}"#);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "model not found");
    }

    #[test]
    fn chat_errors_become_anthropic_errors() {
        let (status, body) = chat_error_to_messages(
            429,
            br#"{"error":{"message":"Slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(status, 429);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}})
        );
        assert_eq!(chat_error_to_messages(503, b"x").0, 529);
        let (status, body) = chat_error_to_messages(500, b"<html>");
        assert_eq!(status, 500);
        assert!(String::from_utf8(body).unwrap().contains("HTTP 500"));
    }

    /// Another provider's reasoning (gpt-6-luna's, over the Responses API)
    /// reaches an Anthropic client as a thinking block first, carried in its
    /// signature, which the request translation reads back.
    #[test]
    fn reasoning_details_become_thinking_blocks_that_carry_them() {
        let body = br#"{"id":"chatcmpl-2","choices":[{"index":0,"finish_reason":"tool_calls","message":{
            "role":"assistant","content":null,"reasoning_details":[{"type":"reasoning.encrypted","id":"rs_1",
            "data":"gAAAA-one","format":"openai-responses-v1","index":0}],
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#;
        let out: Value =
            serde_json::from_slice(&chat_response_to_messages(body, "gpt-6-luna").unwrap())
                .unwrap();
        let block = &out["content"][0];
        assert_eq!(block["type"], "thinking", "{out}");
        assert_eq!(block["thinking"], "");
        let detail = chat::carried(block["signature"].as_str().unwrap()).unwrap();
        assert_eq!(
            detail,
            json!({"type": "reasoning.encrypted", "id": "rs_1", "data": "gAAAA-one", "format": "openai-responses-v1"})
        );
        assert_eq!(out["content"][1]["type"], "tool_use", "{out}");
    }
}
