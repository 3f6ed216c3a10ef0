//! Anthropic's native Messages API (`POST /v1/messages` on api.anthropic.com)
//! on the wire: header and body validation with Anthropic-shaped errors, the
//! deterministic `message` answer (text or `tool_use`), its usage with cache
//! tokens, and the SSE event stream.
//!
//! Checks, in order (after any injected fault): `x-api-key` (else 401
//! `authentication_error`), `anthropic-version` (else 400), then the body —
//! JSON object; `model`, `max_tokens` (≥ 1), `messages` (non-empty, roles
//! `user`/`assistant` only: a `system` role is refused as the real API does);
//! content blocks well-formed; `system` a string or text blocks; tools with
//! `name` and `input_schema`; `temperature` in 0..=1; no unknown top-level
//! field (OpenAI-only fields such as `stream_options` or `n` are "Extra inputs
//! are not permitted"). Each failure is a 400 `invalid_request_error` whose
//! message starts with the offending field's path (`messages.1.content.0.text: …`).
//! A `claude-*-5-5` model (Claude 5.x) also refuses, like the real API, any
//! `temperature`, `top_p` or `top_k` and a forced `tool_choice` (`any`,
//! `tool`): 400 `invalid_request_error` naming the field. Of them only
//! `claude-haiku-5-5` takes `thinking` `{"type":"disabled"}` (the others,
//! which think always or whose `between_tools` replaced it, answer 400);
//! only `claude-sonnet-5-5` takes `{"type":"between_tools"}` (no up-front
//! thinking; not at effort `xhigh` or `max`); and
//! all three refuse `{"type":"enabled"}` with a budget (adaptive thinking
//! only, steered by `output_config.effort`: Anthropic's migration guides for
//! Sonnet and Opus 5.5 list the thinking budget among the settings that
//! return 400). `output_config.effort` (`low` … `max`) is taken by the
//! Claude 5.x alone (earlier models: 400, as Opus 4.5 takes it only behind
//! a beta header).
//!
//! Thinking: a request that turns it on (`thinking.type` `enabled` or
//! `adaptive`, or none to a Claude 5.x, which thinks by default) gets
//! an answer that starts with a `thinking` block (`Mock thinking for
//! anthropic/<model>: …`, signed by [`thinking_signature`]; streamed as
//! `thinking_delta`s, then a `signature_delta`), its tokens billed as output.
//! As on Anthropic, such a request that continues a tool use (its last
//! message holds a `tool_result`) brings that thinking back: with `enabled`,
//! the turn's first assistant message (the one after the last user message
//! that is not a tool result: Claude thinks at a turn's start) must start
//! with a `thinking` or `redacted_thinking` block, else 400 (adaptive
//! thinking is the model's choice each turn, so a turn without it passes);
//! in both modes a thinking block's signature must match its text, else 400.
//!
//! Answer: the same text as the OpenAI path (a scripted answer, else `Mock answer from
//! anthropic/<model>: …`, capped by `max_tokens`), `stop_reason` `end_turn`
//! — or `stop_sequence` when one of `stop_sequences` occurs in it (the text
//! is cut before it), or `max_tokens` when even the shortest answer exceeds
//! the cap.
//!
//! Tool use: when the request has `tools` and either `tool_choice` is
//! `{"type":"any"}`/`{"type":"tool","name":…}`, or (`auto`/absent) the last
//! message is a user message whose text mentions "weather" (any case) and
//! that holds no `tool_result`, the answer is a text block plus a `tool_use`
//! block (`id` `toolu_mock_<n>`; the named tool, else the first tool whose
//! name contains "weather", else the first tool; `input` built from its
//! `input_schema`: each required property, or every property when none is
//! required, as its first `enum` value, else "San Francisco, CA" for string
//! properties named like location/city, "mock" for other strings, 1, true,
//! [] or {}) and `stop_reason` `tool_use`. `tool_choice` `none` never calls.
//!
//! Usage ([`crate::tokens`] rule): the prompt is the system text plus all
//! message text (tool results included), plus 4 tokens per message and 4 for
//! a system prompt — the count the OpenAI path gives the same conversation.
//! Of it, `cache_read_input_tokens` is the system prompt (its tokens + 4) when
//! it is at least 1024 tokens long or any of its blocks has `cache_control`;
//! `cache_creation_input_tokens` is the messages up to and including the last
//! message block with `cache_control`; `input_tokens` is the rest, so the
//! three always add up to the whole prompt.
//!
//! Stream: `message_start` (usage with the input and cache tokens,
//! `output_tokens` 1), then per block `content_block_start`, (`ping` after
//! the first), `content_block_delta` (`text_delta` a word at a time, or
//! `input_json_delta` fragments starting with an empty one),
//! `content_block_stop`; then `message_delta` (stop reason, cumulative
//! `usage.output_tokens`) and `message_stop`. Each event is
//! `event: <type>\ndata: <json>\n\n`.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::compat::UNREADABLE_USAGE;
use crate::openai::{Answer, ChatRequest, json_response, sse_response, word_pieces};
use crate::tokens::{
    MIN_CACHEABLE_TOKENS, content_chars, has_cache_control, marked_prefix_tokens, message_overhead,
    tokens_for_chars,
};

pub const VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");
const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("request-id");

/// The top-level request fields the Messages API accepts.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "stream",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
    "output_format",
    "cache_control",
];
const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
];
/// Tool input JSON is streamed in fragments of at most this many chars.
const JSON_FRAGMENT_CHARS: usize = 16;

// ------------------------------------------------------------------ errors

/// An Anthropic-shaped error:
/// `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

impl AnthropicError {
    pub fn invalid_request(message: String) -> AnthropicError {
        AnthropicError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message,
        }
    }

    /// The error Anthropic answers with `status`, for an injected fault.
    pub fn for_status(status: StatusCode) -> AnthropicError {
        let (kind, message) = match status.as_u16() {
            401 => ("authentication_error", "invalid x-api-key (mock fault)"),
            402 => (
                "billing_error",
                "Your credit balance is too low to access the Anthropic API (mock fault).",
            ),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource (mock fault).",
            ),
            404 => (
                "not_found_error",
                "The requested resource could not be found (mock fault).",
            ),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes (mock fault).",
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed the rate limit for your organization (mock fault).",
            ),
            500 => ("api_error", "Internal server error (mock fault)"),
            504 => ("timeout_error", "Request timed out (mock fault)"),
            529 => ("overloaded_error", "Overloaded (mock fault)"),
            400..=499 => ("invalid_request_error", "Invalid request (mock fault)."),
            _ => ("api_error", "Internal server error (mock fault)"),
        };
        AnthropicError {
            status,
            kind,
            message: message.to_owned(),
        }
    }

    fn internal(error: &dyn std::error::Error) -> AnthropicError {
        AnthropicError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            message: format!("mock-provider internal error: {error}"),
        }
    }

    pub fn body_json(&self, request_id: &str) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&ErrorBody {
            kind: "error",
            error: ErrorDetail {
                kind: self.kind,
                message: &self.message,
            },
            request_id,
        })
    }

    pub fn into_response(self, request_id: &str) -> Response {
        let mut response = match self.body_json(request_id) {
            Ok(json) => json_response(self.status, json),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        with_request_id(response, request_id)
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

// ----------------------------------------------------------------- request

/// Input-side usage of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputTokens {
    pub input: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

/// A tool the answer calls.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub input: Value,
}

/// What the mock needs from a valid Messages request.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    pub stream: bool,
    pub stop_sequences: Vec<String>,
    pub tokens: InputTokens,
    pub tool_call: Option<ToolCall>,
    /// A scripted answer ([`crate::answers`]), set after parsing.
    pub answer: Option<String>,
    /// The request turns thinking on (`thinking.type` `enabled` or
    /// `adaptive`): the answer starts with a thinking block.
    pub thinking: bool,
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn invalid(path: &str, problem: &str) -> AnthropicError {
    AnthropicError::invalid_request(format!("{path}: {problem}"))
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Value, AnthropicError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(invalid(&join(path, key), "Field required")),
        Some(value) => Ok(value),
    }
}

fn join(path: &str, key: &str) -> String {
    match path.is_empty() {
        true => key.to_owned(),
        false => format!("{path}.{key}"),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AnthropicError> {
    value.as_object().ok_or_else(|| {
        invalid(
            path,
            &format!("Input should be an object, got {}", json_type(value)),
        )
    })
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, AnthropicError> {
    required(obj, key, path)?
        .as_str()
        .ok_or_else(|| invalid(&join(path, key), "Input should be a valid string"))
}

impl MessagesRequest {
    /// Reads and validates a parsed body (`None`: it was not JSON).
    pub fn from_json(body: Option<&Value>) -> Result<MessagesRequest, AnthropicError> {
        let body = body.ok_or_else(|| {
            AnthropicError::invalid_request(
                "There was an issue with your request body: it is not valid JSON (mock-provider)."
                    .into(),
            )
        })?;
        let obj = body.as_object().ok_or_else(|| {
            AnthropicError::invalid_request(format!(
                "There was an issue with your request body: expected an object, got {}.",
                json_type(body)
            ))
        })?;
        if let Some(extra) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(invalid(extra, "Extra inputs are not permitted"));
        }
        let model = string(obj, "model", "")?.to_owned();
        let max_tokens = match required(obj, "max_tokens", "")?.as_u64() {
            Some(0) => {
                return Err(invalid(
                    "max_tokens",
                    "Input should be greater than or equal to 1",
                ));
            }
            Some(n) => n,
            None => return Err(invalid("max_tokens", "Input should be a valid integer")),
        };
        let messages = match required(obj, "messages", "")? {
            Value::Array(messages) if messages.is_empty() => {
                return Err(invalid("messages", "at least one message is required"));
            }
            Value::Array(messages) => messages,
            _ => return Err(invalid("messages", "Input should be a valid list")),
        };
        for (i, message) in messages.iter().enumerate() {
            check_message(message, &format!("messages.{i}"))?;
        }
        let (system_chars, system_marked, has_system) = check_system(obj.get("system"))?;
        let tools = check_tools(obj.get("tools"))?;
        if let Some(t) = obj.get("temperature") {
            match t.as_f64() {
                Some(t) if t > 1.0 => {
                    return Err(invalid(
                        "temperature",
                        "Input should be less than or equal to 1",
                    ));
                }
                Some(t) if t < 0.0 => {
                    return Err(invalid(
                        "temperature",
                        "Input should be greater than or equal to 0",
                    ));
                }
                Some(_) => {}
                None => return Err(invalid("temperature", "Input should be a valid number")),
            }
        }
        let stop_sequences = match obj.get("stop_sequences") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(seqs)) => seqs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid(
                            &format!("stop_sequences.{i}"),
                            "Input should be a valid string",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("stop_sequences", "Input should be a valid list")),
        };
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("stream", "Input should be a valid boolean")),
        };
        let effort = obj.get("output_config").and_then(|c| c.get("effort"));
        if let Some(effort) = effort {
            if !refuses_sampling_and_forced_tools(&model) {
                return Err(invalid(
                    "output_config.effort",
                    "this model does not support the effort parameter",
                ));
            }
            if !effort
                .as_str()
                .is_some_and(|e| ["low", "medium", "high", "xhigh", "max"].contains(&e))
            {
                return Err(invalid(
                    "output_config.effort",
                    "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
                ));
            }
        }
        if refuses_sampling_and_forced_tools(&model) {
            check_claude_5(&model, obj, messages)?;
        }
        let thinking_type = obj
            .get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str);
        // A Claude 5.x thinks unless told not to (adaptive by default).
        let thinking = matches!(thinking_type, Some("enabled" | "adaptive"))
            || (thinking_type.is_none() && refuses_sampling_and_forced_tools(&model));
        if thinking {
            check_thinking_kept(messages, thinking_type == Some("enabled"))?;
        }
        let tool_call = tool_to_call(&tools, obj.get("tool_choice"), messages)?;

        let message_chars: usize = messages
            .iter()
            .map(|m| content_chars(m.get("content")))
            .sum();
        let total = tokens_for_chars(system_chars + message_chars)
            .saturating_add(message_overhead(messages.len() + usize::from(has_system)));
        let system_tokens = tokens_for_chars(system_chars);
        let cache_read =
            match has_system && (system_marked || system_tokens >= MIN_CACHEABLE_TOKENS) {
                true => system_tokens.saturating_add(4).min(total),
                false => 0,
            };
        let cache_creation = marked_prefix_tokens(messages).min(total - cache_read);
        Ok(MessagesRequest {
            model,
            max_tokens,
            stream,
            stop_sequences,
            tokens: InputTokens {
                input: total - cache_read - cache_creation,
                cache_creation,
                cache_read,
            },
            tool_call,
            answer: None,
            thinking,
        })
    }
}

/// The signature the mock gives its thinking text, and checks when the text
/// comes back (Anthropic's is a cryptographic check of the same kind: an
/// edited block is refused).
pub fn thinking_signature(thinking: &str) -> String {
    let hash = thinking.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("mock-signature-{hash:016x}")
}

/// With thinking on, a tool-use turn continues from the model's thinking:
/// the turn's first assistant message starts with its thinking block, as
/// Anthropic answered it — required when `enabled` says Claude always thinks
/// (a 400 otherwise, in Anthropic's words), and its signature checked in
/// both modes.
fn check_thinking_kept(messages: &[Value], required: bool) -> Result<(), AnthropicError> {
    let blocks = |m: &Value| -> Vec<Value> {
        m.get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let is_tool_result = |b: &Value| b.get("type").and_then(Value::as_str) == Some("tool_result");
    let role = |m: &Value, r: &str| m.get("role").and_then(Value::as_str) == Some(r);
    let Some(last) = messages.last() else {
        return Ok(());
    };
    if !blocks(last).iter().any(is_tool_result) {
        return Ok(());
    }
    let start = messages
        .iter()
        .rposition(|m| role(m, "user") && !blocks(m).iter().any(is_tool_result))
        .map_or(0, |i| i + 1);
    let Some((i, assistant)) = messages
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, m)| role(m, "assistant"))
    else {
        return Ok(());
    };
    let content = blocks(assistant);
    let first = content
        .first()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("text");
    if required && !matches!(first, "thinking" | "redacted_thinking") {
        return Err(invalid(
            &format!("messages.{i}.content.0.type"),
            &format!(
                "Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
            ),
        ));
    }
    for (j, block) in content.iter().enumerate() {
        if block.get("type").and_then(Value::as_str) != Some("thinking") {
            continue;
        }
        let text = block
            .get("thinking")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if block.get("signature").and_then(Value::as_str) != Some(thinking_signature(text).as_str())
        {
            return Err(invalid(
                &format!("messages.{i}.content.{j}"),
                "Invalid `signature` in `thinking` block",
            ));
        }
    }
    Ok(())
}

fn check_message(message: &Value, path: &str) -> Result<(), AnthropicError> {
    let obj = object(message, path)?;
    match string(obj, "role", path)? {
        "user" | "assistant" => {}
        "system" => {
            return Err(invalid(
                &join(path, "role"),
                "Unexpected role \"system\". The Messages API accepts a top-level `system` \
                 parameter, not \"system\" as an input message role.",
            ));
        }
        other => {
            return Err(invalid(
                &join(path, "role"),
                &format!("Input should be 'user' or 'assistant', got '{other}'"),
            ));
        }
    }
    let content_path = join(path, "content");
    match required(obj, "content", path)? {
        Value::String(_) => Ok(()),
        Value::Array(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                check_block(block, &format!("{content_path}.{j}"))?;
            }
            Ok(())
        }
        _ => Err(invalid(
            &content_path,
            "Input should be a valid string or list of content blocks",
        )),
    }
}

fn check_block(block: &Value, path: &str) -> Result<(), AnthropicError> {
    let obj = object(block, path)?;
    let kind = string(obj, "type", path)?;
    if !BLOCK_TYPES.contains(&kind) {
        return Err(invalid(
            &join(path, "type"),
            &format!(
                "Input tag '{kind}' found using 'type' does not match any of the expected tags"
            ),
        ));
    }
    let needs: &[&str] = match kind {
        "text" => &["text"],
        "thinking" => &["thinking", "signature"],
        "redacted_thinking" => &["data"],
        "image" | "document" => &["source"],
        "tool_use" | "server_tool_use" => &["id", "name", "input"],
        "tool_result" => &["tool_use_id"],
        _ => &[],
    };
    for key in needs {
        required(obj, key, path)?;
    }
    if kind == "text" {
        string(obj, "text", path)?;
    }
    Ok(())
}

/// `(chars, marked with cache_control, present)` of the `system` prompt.
fn check_system(system: Option<&Value>) -> Result<(usize, bool, bool), AnthropicError> {
    match system {
        None | Some(Value::Null) => Ok((0, false, false)),
        Some(Value::String(text)) => Ok((text.chars().count(), false, !text.is_empty())),
        Some(Value::Array(blocks)) => {
            let mut chars = 0;
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let obj = object(block, &path)?;
                if string(obj, "type", &path)? != "text" {
                    return Err(invalid(&join(&path, "type"), "Input should be 'text'"));
                }
                chars += string(obj, "text", &path)?.chars().count();
            }
            Ok((
                chars,
                blocks.iter().any(has_cache_control),
                !blocks.is_empty(),
            ))
        }
        Some(_) => Err(invalid(
            "system",
            "Input should be a valid string or list of text blocks",
        )),
    }
}

/// The client tools (`(name, input_schema)`); server tools are accepted and skipped.
fn check_tools(tools: Option<&Value>) -> Result<Vec<(&str, &Value)>, AnthropicError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools", "Input should be a valid list")),
    };
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools.{i}");
        let obj = object(tool, &path)?;
        let name = string(obj, "name", &path)?;
        match obj.get("type").and_then(Value::as_str) {
            None | Some("custom") => {
                let schema = required(obj, "input_schema", &path)?;
                object(schema, &join(&path, "input_schema"))?;
                out.push((name, schema));
            }
            Some(_) => {} // a server tool (web search, …)
        }
    }
    Ok(out)
}

/// The Claude 5.x generation (`claude-sonnet-5-5`, `claude-opus-5-5`, any
/// `claude-*-5-5`): reported to answer 400 to a non-default `temperature`,
/// `top_p` or `top_k`, to refuse a forced tool choice, and a conversation
/// that ends with an assistant message (a prefill; filter/README.md,
/// "Catalog changes").
fn refuses_sampling_and_forced_tools(model: &str) -> bool {
    model.starts_with("claude-") && model.ends_with("-5-5")
}

/// What such a model refuses. Stricter than the real API, which is reported
/// to take a parameter left at its default: any value set is refused, so
/// that a gateway that stops dropping them is caught whatever value a test
/// sends.
fn check_claude_5(
    model: &str,
    obj: &Map<String, Value>,
    messages: &[Value],
) -> Result<(), AnthropicError> {
    let thinking = obj
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str);
    match thinking {
        Some("between_tools") if model != "claude-sonnet-5-5" => {
            return Err(invalid(
                "thinking.type",
                "'between_tools' is not supported for this model",
            ));
        }
        Some("between_tools")
            if matches!(
                obj.get("output_config")
                    .and_then(|o| o.get("effort"))
                    .and_then(Value::as_str),
                Some("xhigh" | "max")
            ) =>
        {
            return Err(invalid(
                "thinking.type",
                "'between_tools' is not supported at effort 'xhigh' or 'max': use 'adaptive'",
            ));
        }
        Some("disabled") if model == "claude-sonnet-5-5" => {
            return Err(invalid(
                "thinking.type",
                "'disabled' is not supported for this model: use 'between_tools'",
            ));
        }
        Some("disabled") if model != "claude-haiku-5-5" => {
            return Err(invalid(
                "thinking.type",
                "'disabled' is not supported for this model: thinking can't be turned off",
            ));
        }
        Some("enabled") => {
            return Err(invalid(
                "thinking.type",
                "'enabled' is not supported for this model: use 'adaptive' and `output_config.effort` to control thinking",
            ));
        }
        _ => {}
    }
    if messages
        .last()
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
    {
        return Err(invalid(
            &format!("messages.{}", messages.len() - 1),
            "this model does not support assistant message prefill: the conversation must end with a user message",
        ));
    }
    for param in ["temperature", "top_p", "top_k"] {
        if obj.get(param).is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                param,
                "this model does not support sampling parameters: remove it from the request",
            ));
        }
    }
    let forced = obj
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .filter(|t| matches!(*t, "any" | "tool"));
    if let Some(kind) = forced {
        return Err(invalid(
            "tool_choice.type",
            &format!(
                "'{kind}' is not supported for this model: a forced tool choice is not available; use 'auto' or 'none'"
            ),
        ));
    }
    Ok(())
}

fn tool_to_call(
    tools: &[(&str, &Value)],
    choice: Option<&Value>,
    messages: &[Value],
) -> Result<Option<ToolCall>, AnthropicError> {
    let choice_type = match choice {
        None | Some(Value::Null) => "auto",
        Some(choice) => string(object(choice, "tool_choice")?, "type", "tool_choice")?,
    };
    let pick = || {
        tools
            .iter()
            .find(|(name, _)| name.to_ascii_lowercase().contains("weather"))
            .or_else(|| tools.first())
    };
    let tool = match choice_type {
        "none" => None,
        "any" => pick(),
        "tool" => {
            let name = choice
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "Field required"))?;
            Some(tools.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                invalid(
                    "tool_choice.name",
                    &format!("Tool '{name}' not found in tools"),
                )
            })?)
        }
        "auto" => match asks_for_weather(messages.last()) {
            true => pick(),
            false => None,
        },
        other => {
            return Err(invalid(
                "tool_choice.type",
                &format!("Input should be 'auto', 'any', 'tool' or 'none', got '{other}'"),
            ));
        }
    };
    Ok(tool.map(|(name, schema)| ToolCall {
        name: (*name).to_owned(),
        input: sample_input(schema),
    }))
}

/// A user message mentioning the weather that is not a tool result.
fn asks_for_weather(message: Option<&Value>) -> bool {
    let Some(message) = message else { return false };
    if message.get("role").and_then(Value::as_str) != Some("user") {
        return false;
    }
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            if blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            {
                return false;
            }
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => return false,
    };
    text.to_ascii_lowercase().contains("weather")
}

/// A deterministic input for a tool's JSON schema (the OpenAI mock's
/// tool call arguments too).
pub fn sample_input(schema: &Value) -> Value {
    let mut input = Map::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(input);
    };
    let required: Option<Vec<&str>> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect());
    for (name, property) in properties {
        if required
            .as_ref()
            .is_some_and(|r| !r.contains(&name.as_str()))
        {
            continue;
        }
        input.insert(name.clone(), sample_value(name, property));
    }
    Value::Object(input)
}

fn sample_value(name: &str, property: &Value) -> Value {
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let lower = name.to_ascii_lowercase();
    match property.get("type").and_then(Value::as_str) {
        Some("string") if lower.contains("location") || lower.contains("city") => {
            Value::from("San Francisco, CA")
        }
        Some("string") => Value::from("mock"),
        Some("integer" | "number") => Value::from(1),
        Some("boolean") => Value::from(true),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

// ------------------------------------------------------------------ answer

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Thinking {
        thinking: String,
        signature: String,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation: CacheCreation,
    pub output_tokens: u64,
    pub service_tier: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheCreation {
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
}

/// One answer as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: String,
    pub model: String,
    pub content: Vec<Block>,
    pub stop_reason: &'static str,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
    /// An `unreadable_usage` fault: every usage object is sent as a string.
    pub unreadable_usage: bool,
}

/// A `usage` as sent: the object, or what an `unreadable_usage` fault sends.
#[derive(Serialize)]
#[serde(untagged)]
enum Sent<T> {
    Usage(T),
    Unreadable(&'static str),
}

#[derive(Serialize)]
struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: &'a [Block],
    stop_reason: Option<&'a str>,
    stop_sequence: Option<&'a str>,
    usage: Sent<Usage>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: MessageBody<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta<'a>,
        usage: Sent<OutputUsage>,
    },
    MessageStop,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// The variant names are Anthropic's delta types (the serde tag).
#[allow(clippy::enum_variant_names)]
enum BlockDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
}

#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }

    fn to_sse(&self) -> serde_json::Result<Bytes> {
        let data = serde_json::to_vec(self)?;
        let name = self.name();
        let mut event = Vec::with_capacity(name.len() + data.len() + 16);
        event.extend_from_slice(b"event: ");
        event.extend_from_slice(name.as_bytes());
        event.extend_from_slice(b"\ndata: ");
        event.extend_from_slice(&data);
        event.extend_from_slice(b"\n\n");
        Ok(Bytes::from(event))
    }
}

/// `text` cut into pieces of at most `max` chars.
pub fn fragments(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (count, (i, _)) in text.char_indices().enumerate() {
        if count > 0 && count % max == 0 {
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

impl Reply {
    pub fn new(request: &MessagesRequest, id: u64) -> Reply {
        let t = request.tokens;
        let (mut content, stop_reason, stop_sequence, mut output_tokens) = match &request.tool_call
        {
            Some(call) => tool_answer(call, id),
            None => text_answer(request),
        };
        if request.thinking {
            let thinking = format!(
                "Mock thinking for anthropic/{}: {} tokens of prompt.",
                request.model, request.tokens.input
            );
            output_tokens += tokens_for_chars(thinking.chars().count());
            let signature = thinking_signature(&thinking);
            content.insert(
                0,
                Block::Thinking {
                    thinking,
                    signature,
                },
            );
        }
        Reply {
            id: format!("msg_mock_{id}"),
            model: request.model.clone(),
            content,
            stop_reason,
            stop_sequence,
            usage: Usage {
                input_tokens: t.input,
                cache_creation_input_tokens: t.cache_creation,
                cache_read_input_tokens: t.cache_read,
                cache_creation: CacheCreation {
                    ephemeral_5m_input_tokens: t.cache_creation,
                    ephemeral_1h_input_tokens: 0,
                },
                output_tokens,
                service_tier: "standard",
            },
            unreadable_usage: false,
        }
    }

    fn sent<T>(&self, usage: T) -> Sent<T> {
        match self.unreadable_usage {
            true => Sent::Unreadable(UNREADABLE_USAGE),
            false => Sent::Usage(usage),
        }
    }

    /// The `usage` this answer sends, as JSON (for a stream: the final
    /// cumulative one, `message_start`'s counts with `message_delta`'s output).
    pub fn sent_usage(&self) -> Option<Value> {
        serde_json::to_value(self.sent(self.usage)).ok()
    }

    /// The `message` object.
    pub fn message_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&MessageBody {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: &self.content,
            stop_reason: Some(self.stop_reason),
            stop_sequence: self.stop_sequence.as_deref(),
            usage: self.sent(self.usage),
        })
    }

    /// The SSE events of the streamed answer.
    pub fn sse_events(&self) -> serde_json::Result<Vec<Bytes>> {
        let mut events = vec![Event::MessageStart {
            message: MessageBody {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: &[],
                stop_reason: None,
                stop_sequence: None,
                usage: self.sent(Usage {
                    output_tokens: 1,
                    ..self.usage
                }),
            },
        }];
        let mut json_inputs = Vec::new();
        for block in &self.content {
            if let Block::ToolUse { input, .. } = block {
                json_inputs.push(serde_json::to_string(input)?);
            }
        }
        let mut json_inputs = json_inputs.iter();
        for (index, block) in self.content.iter().enumerate() {
            let opening = match block {
                Block::Thinking { .. } => Block::Thinking {
                    thinking: String::new(),
                    signature: String::new(),
                },
                Block::Text { .. } => Block::Text {
                    text: String::new(),
                },
                Block::ToolUse { id, name, .. } => Block::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    input: Value::Object(Map::new()),
                },
            };
            events.push(Event::ContentBlockStart {
                index,
                content_block: opening,
            });
            if index == 0 {
                events.push(Event::Ping);
            }
            let delta = |delta| Event::ContentBlockDelta { index, delta };
            match block {
                Block::Thinking {
                    thinking,
                    signature,
                } => {
                    for piece in word_pieces(thinking) {
                        events.push(delta(BlockDelta::ThinkingDelta { thinking: piece }));
                    }
                    events.push(delta(BlockDelta::SignatureDelta { signature }));
                }
                Block::Text { text } => {
                    for piece in word_pieces(text) {
                        events.push(delta(BlockDelta::TextDelta { text: piece }));
                    }
                }
                Block::ToolUse { .. } => {
                    let json = json_inputs.next().map_or("", String::as_str);
                    events.push(delta(BlockDelta::InputJsonDelta { partial_json: "" }));
                    for piece in fragments(json, JSON_FRAGMENT_CHARS) {
                        events.push(delta(BlockDelta::InputJsonDelta {
                            partial_json: piece,
                        }));
                    }
                }
            }
            events.push(Event::ContentBlockStop { index });
        }
        events.push(Event::MessageDelta {
            delta: StopDelta {
                stop_reason: self.stop_reason,
                stop_sequence: self.stop_sequence.as_deref(),
            },
            usage: self.sent(OutputUsage {
                output_tokens: self.usage.output_tokens,
            }),
        });
        events.push(Event::MessageStop);
        events.iter().map(Event::to_sse).collect()
    }
}

type Content = (Vec<Block>, &'static str, Option<String>, u64);

fn text_answer(request: &MessagesRequest) -> Content {
    let chat = ChatRequest {
        model: request.model.clone(),
        stream: request.stream,
        include_usage: false,
        max_tokens: Some(request.max_tokens),
        prompt_tokens: request.tokens.input
            + request.tokens.cache_creation
            + request.tokens.cache_read,
        cached_tokens: 0,
        reasoning_effort: None,
        reasoning_split: false,
        tool_call: None,
        answer: request.answer.clone(),
    };
    let mut text = Answer::new("anthropic", &chat).content;
    let first_stop = request
        .stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    let (stop_reason, stop_sequence) = match first_stop {
        Some((at, seq)) => {
            text.truncate(at);
            ("stop_sequence", Some(seq.clone()))
        }
        None => ("end_turn", None),
    };
    let output = tokens_for_chars(text.chars().count());
    let stop_reason = match stop_reason == "end_turn" && output > request.max_tokens {
        true => "max_tokens",
        false => stop_reason,
    };
    (
        vec![Block::Text { text }],
        stop_reason,
        stop_sequence,
        output,
    )
}

fn tool_answer(call: &ToolCall, id: u64) -> Content {
    let text = format!("I'll use the {} tool to answer that.", call.name);
    let input_chars = call.input.to_string().chars().count();
    let output = tokens_for_chars(text.chars().count()) + tokens_for_chars(input_chars);
    let blocks = vec![
        Block::Text { text },
        Block::ToolUse {
            id: format!("toolu_mock_{id}"),
            name: call.name.clone(),
            input: call.input.clone(),
        },
    ];
    (blocks, "tool_use", None, output)
}

/// The constant answer of `--fast` mode to a Messages request.
pub fn fast_message() -> serde_json::Result<Bytes> {
    let request = MessagesRequest {
        model: "mock-fast".into(),
        max_tokens: 1024,
        stream: false,
        stop_sequences: Vec::new(),
        tokens: InputTokens {
            input: 16,
            ..InputTokens::default()
        },
        tool_call: None,
        answer: None,
        thinking: false,
    };
    Reply::new(&request, 0).message_json().map(Bytes::from)
}

// ----------------------------------------------------------------- handler

fn has_header(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

/// How a Messages request is to be answered, after the faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    /// An injected error status.
    pub fault: Option<StatusCode>,
    /// The pause between streamed events.
    pub gap: Duration,
    /// Send the usage as an unreadable string.
    pub unreadable_usage: bool,
}

/// Answers a native Messages request: an injected fault status, a header or
/// body error, or the answer (streamed events `gap` apart). Returns the
/// response and the usage it carries (None for an error).
pub fn respond(
    headers: &HeaderMap,
    body: Option<&Value>,
    plan: Plan,
    id: u64,
    answer: Option<String>,
) -> (Response, Option<Value>) {
    let request_id = format!("req_mock_{id}");
    if let Some(status) = plan.fault {
        return (
            AnthropicError::for_status(status).into_response(&request_id),
            None,
        );
    }
    if !has_header(headers, &API_KEY_HEADER) {
        let error = AnthropicError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: "x-api-key header is required".into(),
        };
        return (error.into_response(&request_id), None);
    }
    if !has_header(headers, &VERSION_HEADER) {
        let error = AnthropicError::invalid_request("anthropic-version: header is required".into());
        return (error.into_response(&request_id), None);
    }
    let mut request = match MessagesRequest::from_json(body) {
        Ok(request) => request,
        Err(e) => return (e.into_response(&request_id), None),
    };
    request.answer = answer;
    let mut reply = Reply::new(&request, id);
    reply.unreadable_usage = plan.unreadable_usage;
    let response = match request.stream {
        false => reply
            .message_json()
            .map(|json| json_response(StatusCode::OK, json)),
        true => reply
            .sse_events()
            .map(|events| sse_response(events, plan.gap)),
    };
    match response {
        Ok(response) => (with_request_id(response, &request_id), reply.sent_usage()),
        Err(e) => (
            AnthropicError::internal(&e).into_response(&request_id),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> MessagesRequest {
        MessagesRequest::from_json(Some(&body)).unwrap()
    }

    fn error(body: Value) -> AnthropicError {
        MessagesRequest::from_json(Some(&body)).unwrap_err()
    }

    fn hello() -> Value {
        json!({"model": "claude-opus-4-5", "max_tokens": 1024,
               "messages": [{"role": "user", "content": "Hello there"}]})
    }

    fn events(reply: &Reply) -> Vec<(String, Value)> {
        reply
            .sse_events()
            .unwrap()
            .iter()
            .map(|e| {
                let text = std::str::from_utf8(e).unwrap();
                let (head, data) = text.strip_suffix("\n\n").unwrap().split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_text_answer_is_a_message() {
        let reply = Reply::new(&request(hello()), 3);
        let m: Value = serde_json::from_slice(&reply.message_json().unwrap()).unwrap();
        let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 8);
        assert_eq!(m["id"], "msg_mock_3");
        assert_eq!(m["type"], "message");
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["model"], "claude-opus-4-5");
        assert_eq!(m["stop_reason"], "end_turn");
        assert!(m["stop_sequence"].is_null());
        assert_eq!(m["content"][0]["type"], "text");
        let text = m["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Mock answer from anthropic/claude-opus-4-5: "));
        // "Hello there": 11 chars -> 3 tokens, + 4 for the message.
        let u = &m["usage"];
        assert_eq!(u["input_tokens"], 7);
        assert_eq!(u["cache_creation_input_tokens"], 0);
        assert_eq!(u["cache_read_input_tokens"], 0);
        assert_eq!(u["output_tokens"], tokens_for_chars(text.chars().count()));
        assert_eq!(u["service_tier"], "standard");
    }

    #[test]
    fn the_prompt_count_matches_the_openai_path() {
        let system = "You are terse.";
        let r = request(json!({"model": "m", "max_tokens": 50, "system": system,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "héllo"}]}]}));
        let openai = crate::tokens::prompt_tokens(&[
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": "héllo"}),
        ]);
        assert_eq!(r.tokens.input, openai);
    }

    #[test]
    fn cache_tokens_follow_the_documented_rule() {
        // A long system prompt is read from the cache.
        let long = "s".repeat(4096);
        let r = request(json!({"model": "m", "max_tokens": 50, "system": long,
            "messages": [{"role": "user", "content": "12345678"}]}));
        assert_eq!(
            r.tokens,
            InputTokens {
                input: 2 + 4,
                cache_creation: 0,
                cache_read: 1024 + 4
            }
        );
        // A short system prompt is not, unless marked.
        let r = request(json!({"model": "m", "max_tokens": 50, "system": "short",
            "messages": [{"role": "user", "content": "12345678"}]}));
        assert_eq!(r.tokens.cache_read, 0);
        let r = request(json!({"model": "m", "max_tokens": 50,
            "system": [{"type": "text", "text": "abcd", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "12345678",
                    "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "more"}]}));
        // Read: 1 + 4. Written: the first message, 2 + 4. Rest: the total minus both.
        assert_eq!(r.tokens.cache_read, 5);
        assert_eq!(r.tokens.cache_creation, 6);
        let total = tokens_for_chars(4 + 8 + 2 + 4) + 4 * 4;
        assert_eq!(r.tokens.input, total - 11);
        let u = Reply::new(&r, 1).usage;
        assert_eq!(u.cache_creation.ephemeral_5m_input_tokens, 6);
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let cases = [
            (
                json!({"max_tokens": 5, "messages": []}),
                "model: Field required",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 5}),
                "messages: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": []}),
                "max_tokens: Input should be greater",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": []}),
                "messages: at least one",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role: Unexpected role \"system\"",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user",
                "content": [{"type": "text"}]}]}),
                "messages.0.content.0.text: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user",
                "content": [{"type": "image_url", "image_url": {}}]}]}),
                "messages.0.content.0.type: Input tag 'image_url'",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "parameters": {}}]}),
                "tools.0.input_schema: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "temperature": 1.5,
                "messages": [{"role": "user", "content": "x"}]}),
                "temperature: Input should be less",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "x"}]}),
                "stream_options: Extra inputs are not permitted",
            ),
        ];
        for (body, start) in cases {
            let e = error(body);
            assert_eq!(
                (e.status, e.kind),
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            );
            assert!(
                e.message.starts_with(start),
                "{} does not start with {start}",
                e.message
            );
        }
        assert_eq!(
            MessagesRequest::from_json(None).unwrap_err().kind,
            "invalid_request_error"
        );
    }

    #[test]
    fn claude_5_refuses_sampling_parameters_forced_tools_and_a_prefill() {
        let body = |extra: Value| {
            let mut b = json!({"model": "claude-opus-5-5", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            b
        };
        for (extra, field) in [
            (json!({"temperature": 0.5}), "temperature"),
            (json!({"top_p": 0.9}), "top_p"),
            (json!({"top_k": 5}), "top_k"),
            (json!({"tool_choice": {"type": "any"}}), "tool_choice.type"),
            (
                json!({"tool_choice": {"type": "tool", "name": "f"}}),
                "tool_choice.type",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "Hello"}]}),
                "messages.1",
            ),
            (json!({"thinking": {"type": "disabled"}}), "thinking.type"),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
                "thinking.type",
            ),
        ] {
            let e = error(body(extra.clone()));
            assert_eq!(e.kind, "invalid_request_error", "{extra}");
            assert!(
                e.message.starts_with(&format!("{field}: ")),
                "{extra}: {}",
                e.message
            );
        }
        // What it takes, and what an older model takes; Haiku 5.5 takes
        // thinking disabled.
        request(body(json!({"tool_choice": {"type": "auto"}})));
        request(body(json!({"thinking": {"type": "adaptive"}})));
        let mut sonnet = body(json!({"thinking": {"type": "between_tools"}}));
        sonnet["model"] = json!("claude-sonnet-5-5");
        let plain = request(sonnet.clone());
        assert!(!plain.thinking, "no up-front thinking");
        sonnet["output_config"] = json!({"effort": "max"});
        assert!(error(sonnet).message.starts_with("thinking.type: "));
        assert!(
            error(body(json!({"thinking": {"type": "between_tools"}})))
                .message
                .starts_with("thinking.type: ")
        );
        let mut haiku = body(json!({"thinking": {"type": "disabled"}}));
        haiku["model"] = json!("claude-haiku-5-5");
        request(haiku.clone());
        haiku["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        assert!(error(haiku).message.starts_with("thinking.type: "));
        // An effort: the 5.x take one of theirs, an earlier model none.
        request(body(json!({"output_config": {"effort": "xhigh"}})));
        assert!(
            error(body(json!({"output_config": {"effort": "minimal"}})))
                .message
                .starts_with("output_config.effort: ")
        );
        let mut older = body(json!({"temperature": 0.5, "tool_choice": {"type": "any"},
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]}));
        older["model"] = json!("claude-opus-4-5");
        request(older.clone());
        older["output_config"] = json!({"effort": "low"});
        assert!(error(older).message.starts_with("output_config.effort: "));
    }

    #[test]
    fn errors_are_anthropic_shaped() {
        for (status, kind) in [
            (529, "overloaded_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (504, "timeout_error"),
            (503, "api_error"),
            (422, "invalid_request_error"),
        ] {
            let e = AnthropicError::for_status(StatusCode::from_u16(status).unwrap());
            assert_eq!(e.kind, kind, "{status}");
            let body: Value = serde_json::from_slice(&e.body_json("req_mock_1").unwrap()).unwrap();
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], kind);
            assert!(body["error"]["message"].is_string());
            assert_eq!(body["request_id"], "req_mock_1");
        }
        let limited = AnthropicError::for_status(StatusCode::TOO_MANY_REQUESTS).into_response("r");
        assert_eq!(limited.headers()[RETRY_AFTER], "1");
        assert_eq!(limited.headers()[REQUEST_ID_HEADER], "r");
        let overloaded =
            AnthropicError::for_status(StatusCode::from_u16(529).unwrap()).into_response("r");
        assert_eq!(overloaded.status().as_u16(), 529);
        assert!(overloaded.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn headers_are_checked_before_the_body() {
        let mut headers = HeaderMap::new();
        let (none, sent) = respond(&headers, None, Plan::default(), 1, None);
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(sent, None);
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("sk-ant-test"));
        let (no_version, _) = respond(&headers, Some(&hello()), Plan::default(), 1, None);
        assert_eq!(no_version.status(), StatusCode::BAD_REQUEST);
        headers.insert(VERSION_HEADER, HeaderValue::from_static("2023-06-01"));
        let (ok, sent) = respond(&headers, Some(&hello()), Plan::default(), 1, None);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[REQUEST_ID_HEADER], "req_mock_1");
        assert!(sent.unwrap()["input_tokens"].is_u64());
        let fault = Plan {
            fault: StatusCode::from_u16(529).ok(),
            ..Plan::default()
        };
        let (fault, sent) = respond(&headers, Some(&hello()), fault, 2, None);
        assert_eq!(fault.status().as_u16(), 529);
        assert_eq!(sent, None);
    }

    #[test]
    fn an_unreadable_usage_fault_spoils_every_usage_object() {
        let mut reply = Reply::new(&request(hello()), 1);
        reply.unreadable_usage = true;
        assert_eq!(reply.sent_usage(), Some(Value::from(UNREADABLE_USAGE)));
        let message: Value = serde_json::from_slice(&reply.message_json().unwrap()).unwrap();
        assert_eq!(message["usage"], UNREADABLE_USAGE);
        let with_usage: Vec<(String, Value)> = events(&reply)
            .into_iter()
            .filter(|(_, data)| {
                data.get("usage").is_some() || data["message"].get("usage").is_some()
            })
            .collect();
        assert_eq!(with_usage.len(), 2, "{with_usage:?}");
        for (name, data) in with_usage {
            let usage = match name.as_str() {
                "message_start" => &data["message"]["usage"],
                _ => &data["usage"],
            };
            assert_eq!(usage, UNREADABLE_USAGE, "{name}");
        }
    }

    #[test]
    fn stop_sequences_and_max_tokens_end_the_answer() {
        let mut body = hello();
        body["stop_sequences"] = json!(["nothing matches", "reply"]);
        let reply = Reply::new(&request(body), 1);
        assert_eq!(reply.stop_reason, "stop_sequence");
        assert_eq!(reply.stop_sequence.as_deref(), Some("reply"));
        let Block::Text { text } = &reply.content[0] else {
            panic!()
        };
        assert!(text.ends_with("claude-opus-4-5: this "), "{text}");
        let mut body = hello();
        body["max_tokens"] = json!(1);
        assert_eq!(Reply::new(&request(body), 1).stop_reason, "max_tokens");
    }

    fn weather_tools() -> Value {
        json!([
            {"name": "lookup", "description": "d", "input_schema": {"type": "object"}},
            {"name": "get_weather", "description": "Get the weather",
             "input_schema": {"type": "object", "properties": {
                "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"}},
              "required": ["location", "unit"]}}
        ])
    }

    /// Thinking on: the answer starts with a signed thinking block (streamed
    /// as thinking deltas, then the signature), billed as output; the next
    /// tool-use turn must start with it again, unedited.
    #[test]
    fn thinking_answers_start_with_a_block_that_must_come_back() {
        let ask = |messages: Value| {
            json!({"model": "claude-opus-4-5", "max_tokens": 4096,
                   "thinking": {"type": "enabled", "budget_tokens": 1024},
                   "tools": weather_tools(), "messages": messages})
        };
        let question = json!({"role": "user", "content": "What is the weather in Oslo?"});
        let first = request(ask(json!([question])));
        let plain = request(json!({"model": "claude-opus-4-5", "max_tokens": 4096,
            "tools": weather_tools(), "messages": [question]}));
        let reply = Reply::new(&first, 1);
        let Block::Thinking {
            thinking,
            signature,
        } = &reply.content[0]
        else {
            panic!("{:?}", reply.content);
        };
        assert_eq!(signature, &thinking_signature(thinking));
        assert!(matches!(reply.content.last(), Some(Block::ToolUse { .. })));
        assert!(reply.usage.output_tokens > Reply::new(&plain, 1).usage.output_tokens);
        let e = events(&reply);
        let deltas: Vec<&str> = e
            .iter()
            .filter(|(_, d)| d["index"] == 0 && d["type"] == "content_block_delta")
            .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(deltas.last(), Some(&"signature_delta"));
        assert!(deltas.iter().rev().skip(1).all(|d| *d == "thinking_delta"));

        let m: Value = serde_json::from_slice(&reply.message_json().unwrap()).unwrap();
        let result = json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_mock_1", "content": "4 degrees"}]});
        let kept = json!([question, {"role": "assistant", "content": m["content"]}, result]);
        assert!(MessagesRequest::from_json(Some(&ask(kept.clone()))).is_ok());
        let mut dropped = kept.clone();
        dropped[1]["content"].as_array_mut().unwrap().remove(0);
        let e = error(ask(dropped.clone()));
        assert!(
            e.message
                .starts_with("messages.1.content.0.type: Expected `thinking`"),
            "{}",
            e.message
        );
        // Without thinking on, or with adaptive thinking (the model's choice
        // each turn), the same conversation is fine.
        let mut off = ask(dropped.clone());
        off.as_object_mut().unwrap().remove("thinking");
        assert!(MessagesRequest::from_json(Some(&off)).is_ok());
        let mut adaptive = ask(dropped);
        adaptive["thinking"] = json!({"type": "adaptive"});
        assert!(MessagesRequest::from_json(Some(&adaptive)).is_ok());
        let mut edited = kept.clone();
        edited[1]["content"][0]["thinking"] = json!("something else");
        assert!(error(ask(edited)).message.contains("Invalid `signature`"));
        // A later step of the turn needs none: the turn started with it.
        let mut steps = kept.as_array().unwrap().clone();
        steps.push(json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_mock_2", "name": "get_weather", "input": {"location": "Bergen"}}]}));
        steps.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_mock_2", "content": "9 degrees"}]}));
        assert!(MessagesRequest::from_json(Some(&ask(Value::Array(steps)))).is_ok());
    }

    #[test]
    fn weather_questions_call_the_weather_tool() {
        let body = json!({"model": "claude-opus-4-5", "max_tokens": 200, "tools": weather_tools(),
            "messages": [{"role": "user", "content": "What's the Weather in Paris?"}]});
        let reply = Reply::new(&request(body.clone()), 9);
        assert_eq!(reply.stop_reason, "tool_use");
        let m: Value = serde_json::from_slice(&reply.message_json().unwrap()).unwrap();
        assert_eq!(m["content"][0]["type"], "text");
        assert_eq!(
            m["content"][1],
            json!({"type": "tool_use", "id": "toolu_mock_9", "name": "get_weather",
                   "input": {"location": "San Francisco, CA", "unit": "celsius"}})
        );
        // Streamed: the input arrives as JSON fragments that rebuild it.
        let events = events(&reply);
        let json: String = events
            .iter()
            .filter(|(_, d)| d["index"] == 1 && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            m["content"][1]["input"]
        );
        let start = events
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["index"] == 1)
            .unwrap();
        assert_eq!(start.1["content_block"]["input"], json!({}));
        let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

        // A tool result, or no weather, gets text; tool_choice overrides.
        let mut answered = body.clone();
        answered["messages"] = json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny weather"}]}]);
        assert_eq!(Reply::new(&request(answered), 1).stop_reason, "end_turn");
        let mut none = body.clone();
        none["tool_choice"] = json!({"type": "none"});
        assert!(request(none).tool_call.is_none());
        let mut forced = body;
        forced["messages"] = json!([{"role": "user", "content": "hi"}]);
        forced["tool_choice"] = json!({"type": "tool", "name": "lookup"});
        assert_eq!(
            request(forced).tool_call.unwrap(),
            ToolCall {
                name: "lookup".into(),
                input: json!({})
            }
        );
    }

    #[test]
    fn the_stream_is_the_real_event_sequence() {
        let mut body = hello();
        body["stream"] = json!(true);
        body["system"] = json!("s".repeat(5000));
        let reply = Reply::new(&request(body), 4);
        let events = events(&reply);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        let deltas = names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count();
        assert!(deltas >= 5);
        let mut expected = vec!["message_start", "content_block_start", "ping"];
        expected.extend(std::iter::repeat_n("content_block_delta", deltas));
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names, expected);

        let start = &events[0].1["message"];
        assert_eq!(start["id"], "msg_mock_4");
        assert_eq!(start["content"], json!([]));
        assert!(start["stop_reason"].is_null());
        assert_eq!(start["usage"]["input_tokens"], 7);
        assert_eq!(start["usage"]["cache_read_input_tokens"], 1250 + 4);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(
            events[1].1,
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})
        );
        let text: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| {
                assert_eq!(d["delta"]["type"], "text_delta");
                d["delta"]["text"].as_str().unwrap()
            })
            .collect();
        let Block::Text { text: whole } = &reply.content[0] else {
            panic!()
        };
        assert_eq!(&text, whole);
        let delta = &events[events.len() - 2].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(
            delta["usage"],
            json!({"output_tokens": reply.usage.output_tokens})
        );
    }

    #[test]
    fn fragments_split_on_char_boundaries() {
        assert_eq!(fragments("abcdé", 2), ["ab", "cd", "é"]);
        assert_eq!(fragments("", 2), Vec::<&str>::new());
    }
}
