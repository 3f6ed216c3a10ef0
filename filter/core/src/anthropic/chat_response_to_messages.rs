//! An OpenAI `chat.completion` answer or error → Anthropic's answer or
//! error, for Anthropic clients routed to a Chat Completions provider.

use serde::Deserialize;
use serde_json::{Value, json};

use super::TranslateError;
use super::wire::MessagesUsage;
use crate::usage::openai_usage;

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

#[derive(Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    #[serde(default)]
    message: Option<ChatMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
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

/// Tool call arguments as Anthropic `input` (always an object): text that
/// does not parse to one is kept under `_raw` rather than lost.
fn tool_input(arguments: Option<&str>) -> Value {
    match arguments.map(str::trim) {
        None | Some("") => json!({}),
        Some(a) => match serde_json::from_str::<Value>(a) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "_raw": a }),
        },
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
    let Some(choice) = answer.choices.into_iter().next() else {
        return fail("the provider's answer has no choices");
    };
    let mut content = Vec::new();
    if let Some(m) = &choice.message {
        match &m.content {
            Some(Value::String(t)) if !t.is_empty() => {
                content.push(json!({"type": "text", "text": t}))
            }
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        content.push(json!({"type": "text", "text": t}));
                    }
                }
            }
            _ => {}
        }
        for call in &m.tool_calls {
            let f = call.function.as_ref();
            content.push(json!({
                "type": "tool_use",
                "id": call.id.as_deref().unwrap_or_default(),
                "name": f.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                "input": tool_input(f.and_then(|f| f.arguments.as_deref())),
            }));
        }
    }
    let usage = openai_usage(body)
        .map(MessagesUsage::from)
        .unwrap_or_default();
    let out = json!({
        "id": answer.id.unwrap_or_else(|| "msg_unknown".into()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason.as_deref()),
        "stop_sequence": null,
        "usage": usage,
    });
    serde_json::to_vec(&out)
        .map_err(|e| TranslateError(format!("could not encode the message: {e}")))
}

/// Translates an OpenAI-shaped error answer into Anthropic's error shape,
/// keeping the status (Anthropic clients key their retries off it).
pub fn chat_error_to_messages(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            format!(
                "The upstream provider answered HTTP {status} with a body aipipe could not read."
            )
        });
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
