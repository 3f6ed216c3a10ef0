//! OpenAI's Responses API (`POST /v1/responses`, OpenAI only) on the wire:
//! reading a request as OpenAI does, and answering it with a `response`
//! object, whole or as its SSE event stream.
//!
//! The answer is the chat endpoint's ([`crate::openai`]) for the same
//! conversation, so text, tool calls and token counts agree: the request's
//! `instructions` and `input` become the Chat messages a gateway would have
//! sent — `instructions` a leading system message, a string `input` one user
//! message, each `message` item one message (its text parts counted as
//! Chat's), `function_call` items the `tool_calls` of one assistant message
//! (with the assistant message just before them, if any), each
//! `function_call_output` a `tool` message; `reasoning` and `item_reference`
//! items count nothing. The prompt, cache and tool-call rules of the chat
//! mock then apply unchanged (function `tools` are flat here:
//! `{"type":"function","name",…}`; `tool_choice` `{"type":"function","name"}`,
//! or `allowed_tools`, which keeps only the tools it lists).
//!
//! Reasoning: `gpt-6-*` models reason unless `reasoning.effort` is `"none"`
//! (absent: `"medium"`), and take function tools with any effort here (Chat
//! Completions refuses tools with an effort). A reasoning model's `output`
//! starts with a `reasoning` item (empty `summary`; `encrypted_content` when
//! `include` asks for `reasoning.encrypted_content`), and it bills a fixed
//! number of reasoning tokens per effort ([`reasoning_tokens`]: minimal 16,
//! low 32, medium 64, high 128, xhigh 256) as output tokens:
//! `output_tokens` = the chat answer's completion tokens + reasoning tokens,
//! `output_tokens_details.reasoning_tokens` = reasoning tokens. As on OpenAI,
//! `max_output_tokens` (at least 16) bounds both: the reasoning is spent
//! first, the text gets the rest (the chat mock's cap rule); a cap the
//! reasoning alone reaches ends the answer `incomplete`
//! (`incomplete_details.reason` `max_output_tokens`) with only the
//! reasoning item and `output_tokens` = the cap. Other models never reason
//! and their answers are always `completed` (the chat mock fits the text to
//! the cap rather than cutting it). `gpt-4o*` refuse any `reasoning.effort`,
//! and a reasoning `gpt-6-*` refuses `temperature` / `top_p`, in OpenAI's
//! words.
//!
//! An unknown top-level parameter (Chat's `messages`, `max_tokens`,
//! `response_format`, …) is OpenAI's 400 `unknown_parameter`, as is any
//! member of `stream_options` but `include_obfuscation` (Chat's
//! `include_usage`).
//!
//! Streamed: `event: <type>` / `data: <json>` pairs, each with its
//! `sequence_number` from 0, as OpenAI sends them: `response.created`,
//! `response.in_progress`; per output item `response.output_item.added`,
//! then for a message `response.content_part.added`,
//! `response.output_text.delta` (one per word, as the chat mock's chunks),
//! `response.output_text.done`, `response.content_part.done`; for a
//! function call `response.function_call_arguments.delta` (fragments of at
//! most [`ARGUMENT_FRAGMENT_CHARS`] chars), `.done`; then
//! `response.output_item.done`; last `response.completed` (or
//! `response.incomplete`) with the whole response and its `usage`. No
//! `[DONE]` line: the Responses API sends none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::anthropic::fragments;
use crate::compat::UNREADABLE_USAGE;
use crate::openai::{
    ARGUMENT_FRAGMENT_CHARS, Answer, ApiError, ChatRequest, json_response, json_type, sse_response,
    tool_to_call, word_pieces,
};
use crate::tokens::{openai_cached_tokens, prompt_tokens};

/// The top-level parameters of `POST /v1/responses` (the `openai` SDK's
/// `ResponseCreateParams`); anything else is an unknown parameter.
const KNOWN_PARAMETERS: [&str; 29] = [
    "background",
    "context_management",
    "conversation",
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "model",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
];

/// The reasoning efforts, and the reasoning tokens the mock bills for each.
const EFFORTS: [(&str, u64); 6] = [
    ("none", 0),
    ("minimal", 16),
    ("low", 32),
    ("medium", 64),
    ("high", 128),
    ("xhigh", 256),
];

/// The effort of a `gpt-6-*` request that names none.
const DEFAULT_EFFORT: &str = "medium";

/// OpenAI's floor for `max_output_tokens`.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// What a reasoning item carries as `encrypted_content` when asked for: the
/// mock's reasoning is opaque, like OpenAI's.
pub const ENCRYPTED_REASONING: &str = "gAAAAABmock-provider-encrypted-reasoning";

/// The reasoning tokens billed for `effort` (0 for `"none"` or an unknown
/// effort, which parsing refuses).
pub fn reasoning_tokens(effort: &str) -> u64 {
    EFFORTS
        .iter()
        .find(|(name, _)| *name == effort)
        .map_or(0, |(_, tokens)| *tokens)
}

/// What the mock needs from a Responses request.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// The same conversation as a chat request: model, stream, the cap left
    /// for the text, prompt and cached tokens, the tool call; the caller
    /// sets its scripted `answer`.
    pub chat: ChatRequest,
    /// `instructions` and `input` as Chat messages.
    pub messages: Vec<Value>,
    /// The effort the model reasons with; `None`: it does not reason.
    pub effort: Option<String>,
    /// The reasoning used all of `max_output_tokens`: no text, no call.
    pub cut: bool,
    /// `include` asks for `reasoning.encrypted_content`.
    pub encrypted_reasoning: bool,
    echo: Echo,
}

/// The request's settings a `response` object repeats, with OpenAI's
/// defaults for those not sent.
#[derive(Debug, Clone)]
struct Echo {
    instructions: Value,
    max_output_tokens: Value,
    max_tool_calls: Value,
    parallel_tool_calls: Value,
    previous_response_id: Value,
    prompt_cache_key: Value,
    reasoning: Value,
    safety_identifier: Value,
    /// As asked (default `"auto"`), while in progress.
    service_tier: Value,
    /// The tier that served it, in the finished response: `"default"` for
    /// `"auto"`, as OpenAI reports.
    served_tier: Value,
    store: Value,
    temperature: Value,
    text: Value,
    tool_choice: Value,
    tools: Value,
    top_p: Value,
    truncation: Value,
    user: Value,
    metadata: Value,
}

impl Echo {
    fn new(obj: &Map<String, Value>, effort: Option<&str>) -> Echo {
        let or = |key: &str, default: Value| match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(value) => value.clone(),
        };
        let summary = obj
            .get("reasoning")
            .and_then(|r| r.get("summary"))
            .cloned()
            .unwrap_or(Value::Null);
        let service_tier = or("service_tier", Value::from("auto"));
        let served_tier = match service_tier.as_str() {
            Some("auto") => Value::from("default"),
            _ => service_tier.clone(),
        };
        Echo {
            instructions: or("instructions", Value::Null),
            max_output_tokens: or("max_output_tokens", Value::Null),
            max_tool_calls: or("max_tool_calls", Value::Null),
            parallel_tool_calls: or("parallel_tool_calls", Value::Bool(true)),
            previous_response_id: or("previous_response_id", Value::Null),
            prompt_cache_key: or("prompt_cache_key", Value::Null),
            reasoning: json!({"effort": effort, "summary": summary}),
            safety_identifier: or("safety_identifier", Value::Null),
            service_tier,
            served_tier,
            store: or("store", Value::Bool(true)),
            temperature: or("temperature", Value::from(1.0)),
            text: or("text", json!({"format": {"type": "text"}})),
            tool_choice: or("tool_choice", Value::from("auto")),
            tools: or("tools", json!([])),
            top_p: or("top_p", Value::from(1.0)),
            truncation: or("truncation", Value::from("disabled")),
            user: or("user", Value::Null),
            metadata: or("metadata", json!({})),
        }
    }
}

fn missing(param: String) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{param}'."))
        .with_param(param, "missing_required_parameter")
}

fn invalid_type(param: String, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid_request(format!(
        "Invalid type for '{param}': expected {expected}, but got {} instead.",
        json_type(got)
    ))
    .with_param(param, "invalid_type")
}

fn invalid_value(param: String, value: &str, supported: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "Invalid value: '{value}'. Supported values are: {supported}."
    ))
    .with_param(param, "invalid_value")
}

fn unknown_parameter(param: String) -> ApiError {
    ApiError::invalid_request(format!("Unknown parameter: '{param}'."))
        .with_param(param, "unknown_parameter")
}

fn unsupported(param: &'static str, message: String) -> ApiError {
    ApiError::invalid_request(message).with_param(param, "unsupported_parameter")
}

/// A set value (absent and null are not).
fn set<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

impl ResponsesRequest {
    /// Reads a parsed body (`None`: it was not JSON), refusing what OpenAI
    /// refuses.
    pub fn from_json(body: Option<&Value>) -> Result<ResponsesRequest, ApiError> {
        let body = body.ok_or_else(ApiError::invalid_json)?;
        let obj = body.as_object().ok_or_else(|| {
            ApiError::invalid_request(format!(
                "Invalid type for request body: expected an object, but got {} instead.",
                json_type(body)
            ))
        })?;
        if let Some(key) = obj.keys().find(|k| !KNOWN_PARAMETERS.contains(&k.as_str())) {
            return Err(unknown_parameter(key.clone()));
        }
        if let Some(options) = set(obj, "stream_options") {
            let options = options
                .as_object()
                .ok_or_else(|| invalid_type("stream_options".into(), "an object", options))?;
            if let Some(key) = options.keys().find(|k| *k != "include_obfuscation") {
                return Err(unknown_parameter(format!("stream_options.{key}")));
            }
        }
        let model = match obj.get("model") {
            Some(Value::String(model)) => model.clone(),
            None | Some(Value::Null) => return Err(missing("model".into())),
            Some(other) => return Err(invalid_type("model".into(), "a string", other)),
        };

        let messages = conversation(obj)?;
        let mut tools = function_tools(obj.get("tools"))?;
        let choice = chat_tool_choice(obj.get("tool_choice"), &mut tools)?;
        let tool_call = tool_to_call(Some(&tools), choice.as_ref(), &messages)?;

        let effort = reasoning_effort(obj, &model)?;
        let cap = match set(obj, "max_output_tokens") {
            None => None,
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => {
                let cap = n.as_u64().unwrap_or(0);
                if cap < MIN_OUTPUT_TOKENS {
                    return Err(ApiError::invalid_request(format!(
                        "Invalid 'max_output_tokens': integer below minimum value. Expected a \
                         value >= {MIN_OUTPUT_TOKENS}, but got {n} instead."
                    ))
                    .with_param("max_output_tokens", "integer_below_min_value"));
                }
                Some(cap)
            }
            Some(other) => {
                return Err(invalid_type(
                    "max_output_tokens".into(),
                    "an integer",
                    other,
                ));
            }
        };
        let reasoning = effort.as_deref().map_or(0, reasoning_tokens);
        // The reasoning is spent first; the text gets what is left.
        let cut = cap.is_some_and(|cap| cap <= reasoning);
        let max_tokens = cap.map(|cap| cap.saturating_sub(reasoning));
        let encrypted_reasoning = obj
            .get("include")
            .and_then(Value::as_array)
            .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
        let echo = Echo::new(obj, echoed_effort(obj, &model, effort.as_deref()));
        Ok(ResponsesRequest {
            chat: ChatRequest {
                model,
                stream: obj.get("stream").and_then(Value::as_bool) == Some(true),
                include_usage: true,
                max_tokens,
                prompt_tokens: prompt_tokens(&messages),
                cached_tokens: openai_cached_tokens(&messages),
                reasoning_effort: None,
                reasoning_split: false,
                tool_call: if cut { None } else { tool_call },
                answer: None,
            },
            messages,
            effort,
            cut,
            encrypted_reasoning,
            echo,
        })
    }

    /// The conversation as a chat body, for [`crate::answers`] lookups.
    pub fn answers_body(&self) -> Value {
        json!({"model": self.chat.model, "messages": self.messages})
    }
}

/// The effort a `gpt-6-*` model reasons with (`None`: `"none"`), after the
/// model rules: `gpt-4o*` take no effort, a reasoning `gpt-6-*` no
/// sampling parameters. Other models do not reason in the mock.
fn reasoning_effort(obj: &Map<String, Value>, model: &str) -> Result<Option<String>, ApiError> {
    let effort = match set(obj, "reasoning") {
        None => None,
        Some(Value::Object(reasoning)) => match set(reasoning, "effort") {
            None => None,
            Some(Value::String(effort)) => {
                if !EFFORTS.iter().any(|(name, _)| name == effort) {
                    return Err(invalid_value(
                        "reasoning.effort".into(),
                        effort,
                        "'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'",
                    ));
                }
                Some(effort.as_str())
            }
            Some(other) => {
                return Err(invalid_type("reasoning.effort".into(), "a string", other));
            }
        },
        Some(other) => return Err(invalid_type("reasoning".into(), "an object", other)),
    };
    let gpt_4o = model == "gpt-4o" || model.starts_with("gpt-4o-");
    if gpt_4o && effort.is_some() {
        return Err(unsupported(
            "reasoning.effort",
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.".into(),
        ));
    }
    if !model.starts_with("gpt-6-") {
        return Ok(None);
    }
    let effort = effort.unwrap_or(DEFAULT_EFFORT);
    if effort == "none" {
        return Ok(None);
    }
    for param in ["temperature", "top_p"] {
        if set(obj, param).is_some() {
            return Err(unsupported(
                param,
                format!(
                    "Unsupported parameter: '{param}' is not supported with this model unless \
                     reasoning.effort is 'none'."
                ),
            ));
        }
    }
    Ok(Some(effort.to_owned()))
}

/// The effort the response reports in `reasoning.effort`: the one used, or
/// for a `gpt-6-*` model asked for none, `"none"`; else what was sent.
fn echoed_effort<'a>(
    obj: &'a Map<String, Value>,
    model: &str,
    used: Option<&'a str>,
) -> Option<&'a str> {
    let sent = obj
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str);
    match (model.starts_with("gpt-6-"), used) {
        (true, Some(effort)) => Some(effort),
        (true, None) => Some("none"),
        (false, _) => sent,
    }
}

/// `instructions` and `input` as Chat messages (see the module doc).
fn conversation(obj: &Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(other) => return Err(invalid_type("instructions".into(), "a string", other)),
    }
    match obj.get("input") {
        None | Some(Value::Null) => return Err(missing("input".into())),
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(i, item, &mut messages)?;
            }
        }
        Some(other) => {
            return Err(invalid_type(
                "input".into(),
                "a string or an array of input items",
                other,
            ));
        }
    }
    Ok(messages)
}

/// A required string member of input item `i`.
fn item_str<'a>(i: usize, item: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(missing(format!("input[{i}].{key}"))),
        Some(other) => Err(invalid_type(format!("input[{i}].{key}"), "a string", other)),
    }
}

fn add_item(i: usize, item: &Value, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    let Some(item) = item.as_object() else {
        return Err(invalid_type(format!("input[{i}]"), "an object", item));
    };
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => add_message(i, item, messages),
        Some("function_call") => {
            let call = json!({
                "id": item_str(i, item, "call_id")?,
                "type": "function",
                "function": {
                    "name": item_str(i, item, "name")?,
                    "arguments": item_str(i, item, "arguments")?,
                },
            });
            // Calls in a row, and the assistant message just before them,
            // are one Chat message.
            let assistant = messages
                .last_mut()
                .and_then(Value::as_object_mut)
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
            match assistant {
                Some(message) => match message.get_mut("tool_calls") {
                    Some(Value::Array(calls)) => calls.push(call),
                    _ => {
                        message.insert("tool_calls".into(), json!([call]));
                    }
                },
                None => messages.push(json!({
                    "role": "assistant", "content": null, "tool_calls": [call]
                })),
            }
            Ok(())
        }
        Some("function_call_output") => {
            let call_id = item_str(i, item, "call_id")?;
            let content = text_or_parts(item.get("output"), &format!("input[{i}].output"), false)?;
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            Ok(())
        }
        // A reasoning model's earlier reasoning, and stored items: no prompt text.
        Some("reasoning" | "item_reference") => Ok(()),
        Some(other) => Err(invalid_value(
            format!("input[{i}].type"),
            other,
            "'message', 'function_call', 'function_call_output', 'reasoning', and \
             'item_reference'",
        )),
    }
}

fn add_message(
    i: usize,
    item: &Map<String, Value>,
    messages: &mut Vec<Value>,
) -> Result<(), ApiError> {
    let role = item_str(i, item, "role")?;
    if !matches!(role, "user" | "assistant" | "system" | "developer") {
        return Err(invalid_value(
            format!("input[{i}].role"),
            role,
            "'assistant', 'system', 'developer', and 'user'",
        ));
    }
    let content = text_or_parts(
        item.get("content"),
        &format!("input[{i}].content"),
        role == "assistant",
    )?;
    messages.push(json!({"role": role, "content": content}));
    Ok(())
}

/// An item's `content` or `output` (named `at`): a string, or parts read by
/// [`content_part`].
fn text_or_parts(value: Option<&Value>, at: &str, assistant: bool) -> Result<Value, ApiError> {
    match value {
        Some(Value::String(text)) => Ok(Value::from(text.as_str())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| content_part(part, format!("{at}[{j}]"), assistant))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        None | Some(Value::Null) => Err(missing(at.to_owned())),
        Some(other) => Err(invalid_type(at.to_owned(), "a string or an array", other)),
    }
}

/// One content part as a Chat part (its text is what counts); output text
/// and refusals only in assistant messages, as OpenAI checks.
fn content_part(part: &Value, at: String, assistant: bool) -> Result<Value, ApiError> {
    let Some(obj) = part.as_object() else {
        return Err(invalid_type(at, "an object", part));
    };
    let kind = match obj.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        None | Some(Value::Null) => return Err(missing(format!("{at}.type"))),
        Some(other) => return Err(invalid_type(format!("{at}.type"), "a string", other)),
    };
    let text_of = |key: &str| match obj.get(key) {
        Some(Value::String(text)) => Ok(json!({"type": "text", "text": text})),
        None | Some(Value::Null) => Err(missing(format!("{at}.{key}"))),
        Some(other) => Err(invalid_type(format!("{at}.{key}"), "a string", other)),
    };
    match kind {
        "input_text" => text_of("text"),
        "output_text" | "refusal" if !assistant => Err(invalid_value(
            at,
            kind,
            "'input_text', 'input_image', and 'input_file'",
        )),
        "output_text" => text_of("text"),
        "refusal" => text_of("refusal"),
        // No text: no tokens, as a Chat image or file part.
        "input_image" => Ok(json!({"type": "image_url"})),
        "input_file" => Ok(json!({"type": "file"})),
        other => Err(invalid_value(
            format!("{at}.type"),
            other,
            "'input_text', 'input_image', 'output_text', 'refusal', 'input_file', \
             'computer_screenshot', and 'summary_text'",
        )),
    }
}

/// The function tools (`(name, parameters)`); OpenAI's hosted tools are
/// accepted and never called. A Chat-shaped tool (`{"type":"function",
/// "function":{…}}`) has no `name`: OpenAI's 400.
fn function_tools(tools: Option<&Value>) -> Result<Vec<(&str, &Value)>, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(other) => return Err(invalid_type("tools".into(), "an array", other)),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type") {
            Some(Value::String(kind)) if kind == "function" => {}
            Some(Value::String(_)) => continue,
            None | Some(Value::Null) => return Err(missing(format!("tools[{i}].type"))),
            Some(other) => {
                return Err(invalid_type(format!("tools[{i}].type"), "a string", other));
            }
        }
        let name = match tool.get("name") {
            Some(Value::String(name)) => name.as_str(),
            None | Some(Value::Null) => return Err(missing(format!("tools[{i}].name"))),
            Some(other) => {
                return Err(invalid_type(format!("tools[{i}].name"), "a string", other));
            }
        };
        out.push((name, tool.get("parameters").unwrap_or(&Value::Null)));
    }
    Ok(out)
}

/// `tool_choice` in Chat's shape, for [`tool_to_call`]; `allowed_tools`
/// narrows `tools` to those it lists and keeps its mode.
fn chat_tool_choice(
    choice: Option<&Value>,
    tools: &mut Vec<(&str, &Value)>,
) -> Result<Option<Value>, ApiError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let Some(obj) = choice.as_object() else {
        return Ok(Some(choice.clone()));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("function") => match obj.get("name") {
            Some(Value::String(name)) => Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            )),
            _ => Err(missing("tool_choice.name".into())),
        },
        Some("allowed_tools") => {
            let allowed: Vec<&str> = obj
                .get("tools")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.get("name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            tools.retain(|(name, _)| allowed.contains(name));
            let mode = obj.get("mode").and_then(Value::as_str).unwrap_or("auto");
            Ok(Some(Value::from(mode)))
        }
        _ => Ok(Some(choice.clone())),
    }
}

/// The `usage` object of a Responses answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// `usage` as sent: the object, or an `unreadable_usage` fault's string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
enum WireUsage {
    Usage(Usage),
    Unreadable(&'static str),
}

/// One answer as sent.
#[derive(Debug)]
pub struct Reply {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    /// The chat answer (empty, with only its prompt tokens, when cut).
    pub answer: Answer,
    /// Reasoning tokens billed, when the model reasons.
    pub reasoning_tokens: Option<u64>,
    cut: bool,
    encrypted_reasoning: bool,
    usage: WireUsage,
    echo: Echo,
    reasoning_id: String,
    message_id: String,
    call_item_id: String,
    call_id: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Reasoning {
        id: &'a str,
        summary: [(); 0],
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'static str>,
    },
    Message {
        id: &'a str,
        status: &'static str,
        content: Vec<OutputText<'a>>,
        role: &'static str,
    },
    FunctionCall {
        id: &'a str,
        status: &'static str,
        arguments: &'a str,
        call_id: &'a str,
        name: &'a str,
    },
}

#[derive(Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    annotations: [(); 0],
    logprobs: [(); 0],
    text: &'a str,
}

fn output_text(text: &str) -> OutputText<'_> {
    OutputText {
        kind: "output_text",
        annotations: [],
        logprobs: [],
        text,
    }
}

#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    background: bool,
    error: Option<()>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: &'a Value,
    max_output_tokens: &'a Value,
    max_tool_calls: &'a Value,
    model: &'a str,
    output: Vec<Item<'a>>,
    parallel_tool_calls: &'a Value,
    previous_response_id: &'a Value,
    prompt_cache_key: &'a Value,
    reasoning: &'a Value,
    safety_identifier: &'a Value,
    service_tier: &'a Value,
    store: &'a Value,
    temperature: &'a Value,
    text: &'a Value,
    tool_choice: &'a Value,
    tools: &'a Value,
    top_p: &'a Value,
    truncation: &'a Value,
    usage: Option<&'a WireUsage>,
    user: &'a Value,
    metadata: &'a Value,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// An event's JSON: its `type` and `sequence_number`, then its own fields.
#[derive(Serialize)]
struct Event<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct WithResponse<'a> {
    response: ResponseObject<'a>,
}

#[derive(Serialize)]
struct WithItem<'a> {
    output_index: usize,
    item: Item<'a>,
}

#[derive(Serialize)]
struct WithPart<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: OutputText<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

/// The SSE events of one stream, numbered as they are written.
#[derive(Default)]
struct Events {
    out: Vec<Bytes>,
}

impl Events {
    fn push<T: Serialize>(&mut self, kind: &str, body: T) -> serde_json::Result<()> {
        let data = serde_json::to_vec(&Event {
            kind,
            sequence_number: u64::try_from(self.out.len()).unwrap_or(u64::MAX),
            body,
        })?;
        let mut event = Vec::with_capacity(data.len() + kind.len() + 16);
        event.extend_from_slice(b"event: ");
        event.extend_from_slice(kind.as_bytes());
        event.extend_from_slice(b"\ndata: ");
        event.extend_from_slice(&data);
        event.extend_from_slice(b"\n\n");
        self.out.push(Bytes::from(event));
        Ok(())
    }
}

/// An item of the output, while streamed or when done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Added,
    Done,
}

impl Reply {
    pub fn new(request: &ResponsesRequest, id: u64) -> Reply {
        let mut answer = Answer::new("openai", &request.chat);
        if request.cut {
            answer.content.clear();
            answer.usage.completion_tokens = 0;
        }
        let reasoning_tokens = request.effort.as_deref().map(|effort| {
            let tokens = reasoning_tokens(effort);
            match request.chat.max_tokens {
                // All the cap went to reasoning.
                Some(_) if request.cut => request
                    .echo
                    .max_output_tokens
                    .as_u64()
                    .map_or(tokens, |cap| cap.min(tokens)),
                _ => tokens,
            }
        });
        let reasoning = reasoning_tokens.unwrap_or(0);
        let output_tokens = answer.usage.completion_tokens.saturating_add(reasoning);
        let input_tokens = answer.usage.prompt_tokens;
        let usage = Usage {
            input_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: answer.usage.prompt_tokens_details.cached_tokens,
            },
            output_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: reasoning,
            },
            total_tokens: input_tokens.saturating_add(output_tokens),
        };
        Reply {
            id: format!("resp_mock_{id}"),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: request.chat.model.clone(),
            answer,
            reasoning_tokens,
            cut: request.cut,
            encrypted_reasoning: request.encrypted_reasoning,
            usage: WireUsage::Usage(usage),
            echo: request.echo.clone(),
            reasoning_id: format!("rs_mock_{id}"),
            message_id: format!("msg_mock_{id}"),
            call_item_id: format!("fc_mock_{id}"),
            call_id: format!("call_mock_{id}"),
        }
    }

    /// Sends an unreadable `usage` instead of the object.
    pub fn spoil_usage(&mut self) {
        self.usage = WireUsage::Unreadable(UNREADABLE_USAGE);
    }

    /// The `usage` this answer sends, as JSON (plain and streamed alike).
    pub fn sent_usage(&self) -> Option<Value> {
        serde_json::to_value(self.usage).ok()
    }

    fn status(&self) -> &'static str {
        match self.cut {
            true => "incomplete",
            false => "completed",
        }
    }

    /// The output items, in order: reasoning, then the message or the call.
    fn items(&self, stage: Stage) -> Vec<Item<'_>> {
        let done = stage == Stage::Done;
        let status = match done {
            true => "completed",
            false => "in_progress",
        };
        let mut items = Vec::with_capacity(2);
        if self.reasoning_tokens.is_some() {
            items.push(Item::Reasoning {
                id: &self.reasoning_id,
                summary: [],
                encrypted_content: self.encrypted_reasoning.then_some(ENCRYPTED_REASONING),
            });
        }
        if self.cut {
            return items;
        }
        match &self.answer.tool_call {
            Some(call) => items.push(Item::FunctionCall {
                id: &self.call_item_id,
                status,
                arguments: if done { &call.arguments } else { "" },
                call_id: &self.call_id,
                name: &call.name,
            }),
            None => items.push(Item::Message {
                id: &self.message_id,
                status,
                content: match done {
                    true => vec![output_text(&self.answer.content)],
                    false => Vec::new(),
                },
                role: "assistant",
            }),
        }
        items
    }

    /// The `response` object: in progress (no output, no usage) or done.
    fn response(&self, stage: Stage) -> ResponseObject<'_> {
        let e = &self.echo;
        let done = stage == Stage::Done;
        ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: if done { self.status() } else { "in_progress" },
            background: false,
            error: None,
            incomplete_details: (done && self.cut).then_some(IncompleteDetails {
                reason: "max_output_tokens",
            }),
            instructions: &e.instructions,
            max_output_tokens: &e.max_output_tokens,
            max_tool_calls: &e.max_tool_calls,
            model: &self.model,
            output: if done { self.items(stage) } else { Vec::new() },
            parallel_tool_calls: &e.parallel_tool_calls,
            previous_response_id: &e.previous_response_id,
            prompt_cache_key: &e.prompt_cache_key,
            reasoning: &e.reasoning,
            safety_identifier: &e.safety_identifier,
            service_tier: if done {
                &e.served_tier
            } else {
                &e.service_tier
            },
            store: &e.store,
            temperature: &e.temperature,
            text: &e.text,
            tool_choice: &e.tool_choice,
            tools: &e.tools,
            top_p: &e.top_p,
            truncation: &e.truncation,
            usage: done.then_some(&self.usage),
            user: &e.user,
            metadata: &e.metadata,
        }
    }

    /// The whole `response` object.
    pub fn response_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.response(Stage::Done))
    }

    /// The SSE events of the streamed answer (see the module doc).
    pub fn sse_events(&self) -> serde_json::Result<Vec<Bytes>> {
        let mut events = Events::default();
        for kind in ["response.created", "response.in_progress"] {
            let response = self.response(Stage::Added);
            events.push(kind, WithResponse { response })?;
        }
        let added = self.items(Stage::Added);
        let done = self.items(Stage::Done);
        for (output_index, (added, done)) in added.into_iter().zip(done).enumerate() {
            let streams_text = matches!(added, Item::Message { .. });
            let streams_call = matches!(added, Item::FunctionCall { .. });
            events.push(
                "response.output_item.added",
                WithItem {
                    output_index,
                    item: added,
                },
            )?;
            if streams_text {
                self.text_events(&mut events, output_index)?;
            }
            if streams_call && let Some(call) = &self.answer.tool_call {
                for delta in fragments(&call.arguments, ARGUMENT_FRAGMENT_CHARS) {
                    events.push(
                        "response.function_call_arguments.delta",
                        ArgumentsDelta {
                            item_id: &self.call_item_id,
                            output_index,
                            delta,
                        },
                    )?;
                }
                events.push(
                    "response.function_call_arguments.done",
                    ArgumentsDone {
                        item_id: &self.call_item_id,
                        output_index,
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                )?;
            }
            events.push(
                "response.output_item.done",
                WithItem {
                    output_index,
                    item: done,
                },
            )?;
        }
        let kind = match self.cut {
            true => "response.incomplete",
            false => "response.completed",
        };
        let response = self.response(Stage::Done);
        events.push(kind, WithResponse { response })?;
        Ok(events.out)
    }

    /// A message's content part, its text word by word, and their ends.
    fn text_events(&self, events: &mut Events, output_index: usize) -> serde_json::Result<()> {
        let item_id = self.message_id.as_str();
        let text = self.answer.content.as_str();
        events.push(
            "response.content_part.added",
            WithPart {
                item_id,
                output_index,
                content_index: 0,
                part: output_text(""),
            },
        )?;
        for delta in word_pieces(text) {
            events.push(
                "response.output_text.delta",
                TextDelta {
                    item_id,
                    output_index,
                    content_index: 0,
                    delta,
                    logprobs: [],
                },
            )?;
        }
        events.push(
            "response.output_text.done",
            TextDone {
                item_id,
                output_index,
                content_index: 0,
                text,
                logprobs: [],
            },
        )?;
        events.push(
            "response.content_part.done",
            WithPart {
                item_id,
                output_index,
                content_index: 0,
                part: output_text(text),
            },
        )
    }
}

/// Answers a valid Responses request, streamed or not (`unreadable_usage`:
/// with a spoiled `usage`); returns the answer and the usage it carries.
pub fn respond(
    request: &ResponsesRequest,
    id: u64,
    gap: Duration,
    unreadable_usage: bool,
) -> (Response, Option<Value>) {
    let mut reply = Reply::new(request, id);
    if unreadable_usage {
        reply.spoil_usage();
    }
    let sent = reply.sent_usage();
    let response = match request.chat.stream {
        false => match reply.response_json() {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(e) => ApiError::internal(&e).into_response(),
        },
        true => match reply.sse_events() {
            Ok(events) => sse_response(events, gap),
            Err(e) => ApiError::internal(&e).into_response(),
        },
    };
    (response, sent)
}

/// The constant answer of `--fast` mode, serialized once at startup.
pub fn fast_response() -> Result<Bytes, String> {
    let body = json!({"model": "mock-fast", "input": "Say something."});
    let request = ResponsesRequest::from_json(Some(&body)).map_err(|e| e.message)?;
    Reply::new(&request, 0)
        .response_json()
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::tokens_for_chars;

    fn request(body: Value) -> ResponsesRequest {
        ResponsesRequest::from_json(Some(&body)).unwrap()
    }

    fn refused(body: Value) -> ApiError {
        ResponsesRequest::from_json(Some(&body)).unwrap_err()
    }

    fn whole(body: Value, id: u64) -> Value {
        let reply = Reply::new(&request(body), id);
        serde_json::from_slice(&reply.response_json().unwrap()).unwrap()
    }

    /// `(event line's type, data)` of each SSE event.
    fn events(body: Value, id: u64) -> Vec<(String, Value)> {
        let reply = Reply::new(&request(body), id);
        reply
            .sse_events()
            .unwrap()
            .iter()
            .map(|event| {
                let text = std::str::from_utf8(event).unwrap();
                let (head, data) = text.split_once('\n').unwrap();
                let kind = head.strip_prefix("event: ").unwrap().to_owned();
                let data = data.strip_prefix("data: ").unwrap().strip_suffix("\n\n");
                (kind, serde_json::from_str(data.unwrap()).unwrap())
            })
            .collect()
    }

    fn chat(body: Value) -> ChatRequest {
        ChatRequest::from_json(Some(&body)).unwrap()
    }

    fn weather_tools() -> Value {
        json!([
            {"type": "function", "name": "lookup", "parameters": {
                "type": "object", "properties": {"q": {"type": "string"}}}},
            {"type": "function", "name": "get_weather", "description": "Weather", "strict": true,
                "parameters": {"type": "object", "properties": {
                    "location": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location", "unit"]}}
        ])
    }

    #[test]
    fn a_whole_answer_is_a_response_object_with_the_chat_answer() {
        let body = json!({"model": "gpt-4o-mini", "instructions": "Be brief.",
            "input": "Tell me something.", "metadata": {"k": "v"}, "store": false});
        let r = whole(body, 7);
        assert_eq!(r["id"], "resp_mock_7");
        assert_eq!(r["object"], "response");
        assert!(r["created_at"].as_u64().unwrap() > 0);
        assert_eq!(r["status"], "completed");
        assert!(r["incomplete_details"].is_null() && r["error"].is_null());
        assert_eq!(r["model"], "gpt-4o-mini");
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["metadata"], json!({"k": "v"}));
        assert_eq!(r["store"], false);
        assert_eq!(r["tool_choice"], "auto");
        assert_eq!(r["reasoning"], json!({"effort": null, "summary": null}));
        assert_eq!(r["service_tier"], "default");
        let output = r["output"].as_array().unwrap();
        assert_eq!(
            output.len(),
            1,
            "a model that does not reason: no reasoning item"
        );
        let message = &output[0];
        assert_eq!(message["type"], "message");
        assert_eq!(message["id"], "msg_mock_7");
        assert_eq!(message["status"], "completed");
        assert_eq!(message["role"], "assistant");
        let part = &message["content"][0];
        assert_eq!(part["type"], "output_text");
        assert_eq!(part["annotations"], json!([]));

        // The chat endpoint's answer to the same conversation, word for word.
        let same = chat(json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me something."}]}));
        let answer = Answer::new("openai", &same);
        assert_eq!(part["text"], answer.content.as_str());
        let u = &r["usage"];
        assert_eq!(u["input_tokens"], answer.usage.prompt_tokens);
        assert_eq!(u["input_tokens_details"], json!({"cached_tokens": 0}));
        assert_eq!(u["output_tokens"], answer.usage.completion_tokens);
        assert_eq!(u["output_tokens_details"], json!({"reasoning_tokens": 0}));
        assert_eq!(
            u["total_tokens"],
            answer.usage.prompt_tokens + answer.usage.completion_tokens
        );
    }

    #[test]
    fn input_items_count_as_the_chat_messages_they_stand_for() {
        let items = json!({"model": "m", "input": [
            {"role": "developer", "content": "x".repeat(4096)},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What's the"},
                {"type": "input_image", "image_url": "https://x/y.png"},
                {"type": "input_text", "text": "weather?"}]},
            {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                "arguments": "{\"location\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather",
                "arguments": "{}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2",
                "output": [{"type": "input_text", "text": "rainy"}]}]});
        let messages = json!({"model": "m", "messages": [
            {"role": "developer", "content": "x".repeat(4096)},
            {"role": "user", "content": [{"type": "text", "text": "What's the"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rainy"}]});
        let (responses, chat) = (request(items), chat(messages));
        assert_eq!(responses.messages.len(), 5);
        assert_eq!(responses.chat.prompt_tokens, chat.prompt_tokens);
        assert_eq!(responses.chat.cached_tokens, chat.cached_tokens);
        assert_eq!(responses.chat.cached_tokens, 1024 + 4);
        assert_eq!(
            Answer::new("openai", &responses.chat),
            Answer::new("openai", &chat)
        );
        let r = whole(responses_body_with_cache(), 1);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 1028);
    }

    fn responses_body_with_cache() -> Value {
        json!({"model": "m", "instructions": "s".repeat(4096), "input": "hi"})
    }

    #[test]
    fn a_stream_is_openais_event_sequence_and_its_deltas_join_to_the_text() {
        let body = json!({"model": "gpt-4o", "stream": true, "input": "Tell me something."});
        let events = events(body.clone(), 3);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        let deltas = kinds
            .iter()
            .filter(|k| **k == "response.output_text.delta")
            .count();
        assert!(deltas >= 5);
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ];
        expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(kinds, expected);
        for (n, (kind, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], kind.as_str(), "the event line names the type");
            assert_eq!(data["sequence_number"], n, "{kind}");
        }
        let created = &events[0].1["response"];
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["service_tier"], "auto");
        assert_eq!(created["output"], json!([]));
        assert!(created["usage"].is_null());
        let added = &events[2].1;
        assert_eq!(added["output_index"], 0);
        assert_eq!(
            added["item"],
            json!({"type": "message", "id": "msg_mock_3", "status": "in_progress",
                "content": [], "role": "assistant"})
        );
        assert_eq!(events[3].1["part"]["text"], "");
        let text: String = events
            .iter()
            .filter(|(k, _)| k == "response.output_text.delta")
            .map(|(_, d)| {
                assert_eq!(
                    (d["item_id"].as_str(), d["content_index"].as_u64()),
                    (Some("msg_mock_3"), Some(0))
                );
                d["delta"].as_str().unwrap()
            })
            .collect();
        let plain = whole(json!({"model": "gpt-4o", "input": "Tell me something."}), 3);
        assert_eq!(plain["output"][0]["content"][0]["text"], text.as_str());
        let n = events.len();
        assert_eq!(events[n - 4].1["text"], text.as_str());
        assert_eq!(events[n - 3].1["part"]["text"], text.as_str());
        assert_eq!(events[n - 2].1["item"], plain["output"][0]);
        let completed = &events[n - 1].1["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["output"], plain["output"]);
        assert_eq!(completed["usage"], plain["usage"]);
        // No `[DONE]`: the last bytes are the completed event's.
        let reply = Reply::new(&request(body), 3);
        let last = reply.sse_events().unwrap().pop().unwrap();
        assert!(last.starts_with(b"event: response.completed\ndata: {"));
    }

    #[test]
    fn gpt_6_reasons_first_and_calls_tools_with_an_effort() {
        let body = json!({"model": "gpt-6-luna", "tools": weather_tools(),
            "reasoning": {"effort": "high"},
            "input": [{"role": "user", "content": "What's the weather in Paris?"}]});
        let r = whole(body.clone(), 4);
        let output = r["output"].as_array().unwrap();
        assert_eq!(output.len(), 2);
        assert_eq!(
            output[0],
            json!({"type": "reasoning", "id": "rs_mock_4", "summary": []})
        );
        let call = &output[1];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["id"], "fc_mock_4");
        assert_eq!(call["call_id"], "call_mock_4");
        assert_eq!(call["status"], "completed");
        assert_eq!(call["name"], "get_weather");
        let arguments = call["arguments"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(r["reasoning"]["effort"], "high");
        let u = &r["usage"];
        let call_tokens = tokens_for_chars("get_weather".len()) + tokens_for_chars(arguments.len());
        assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 128);
        assert_eq!(u["output_tokens"], call_tokens + 128);
        assert_eq!(
            u["total_tokens"],
            u["input_tokens"].as_u64().unwrap() + call_tokens + 128
        );

        // Streamed: the reasoning item opens and closes, then the call's arguments.
        let events = events(
            json!({"stream": true, "model": "gpt-6-luna",
            "tools": weather_tools(), "reasoning": {"effort": "high"},
            "input": [{"role": "user", "content": "What's the weather in Paris?"}]}),
            4,
        );
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        let fragments = kinds
            .iter()
            .filter(|k| **k == "response.function_call_arguments.delta")
            .count();
        assert!(fragments > 3);
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
        ];
        expected.extend(std::iter::repeat_n(
            "response.function_call_arguments.delta",
            fragments,
        ));
        expected.extend([
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(kinds, expected);
        assert_eq!(events[2].1["item"], output[0]);
        let opened = &events[4].1;
        assert_eq!(opened["output_index"], 1);
        assert_eq!(opened["item"]["arguments"], "");
        assert_eq!(opened["item"]["status"], "in_progress");
        let joined: String = events
            .iter()
            .filter(|(k, _)| k == "response.function_call_arguments.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(joined, arguments);
        let done = &events[events.len() - 3].1;
        assert_eq!(
            (&done["name"], &done["arguments"]),
            (&call["name"], &call["arguments"])
        );
        assert_eq!(events[events.len() - 2].1["item"], *call);
        assert_eq!(events[events.len() - 1].1["response"]["usage"], r["usage"]);
    }

    #[test]
    fn reasoning_tokens_follow_the_effort_and_count_as_output() {
        let usage = |effort: Value| {
            let mut body = json!({"model": "gpt-6-luna", "input": "hi"});
            if !effort.is_null() {
                body["reasoning"] = json!({"effort": effort});
            }
            let r = whole(body, 1);
            let u = r["usage"].clone();
            let reasoning = u["output_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap();
            let items = r["output"].as_array().unwrap().len();
            (
                reasoning,
                u["output_tokens"].as_u64().unwrap(),
                items,
                r["reasoning"]["effort"].clone(),
            )
        };
        let (_, text_tokens, items, effort) = usage(json!("none"));
        assert_eq!((items, effort), (1, json!("none")));
        for (effort, tokens) in [
            ("minimal", 16),
            ("low", 32),
            ("medium", 64),
            ("high", 128),
            ("xhigh", 256),
        ] {
            let got = usage(json!(effort));
            assert_eq!(
                got,
                (tokens, text_tokens + tokens, 2, json!(effort)),
                "{effort}"
            );
        }
        // No effort: gpt-6 reasons at medium.
        assert_eq!(
            usage(Value::Null),
            (64, text_tokens + 64, 2, json!("medium"))
        );
        // Other models never reason, whatever the effort.
        let o = whole(
            json!({"model": "o4-mini", "reasoning": {"effort": "high"}, "input": "hi"}),
            1,
        );
        assert_eq!(o["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
        assert_eq!(o["reasoning"]["effort"], "high");
    }

    #[test]
    fn max_output_tokens_spends_the_reasoning_first() {
        let long = "word ".repeat(400);
        // Room left after the reasoning: the text fits what is left.
        let r = whole(
            json!({"model": "gpt-6-luna", "max_output_tokens": 94, "input": long}),
            2,
        );
        assert_eq!(r["status"], "completed");
        assert_eq!(r["max_output_tokens"], 94);
        let u = &r["usage"];
        assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 64);
        let out = u["output_tokens"].as_u64().unwrap();
        assert!(out <= 94 && out > 90, "{out}");
        // The reasoning reaches the cap: incomplete, only the reasoning.
        let body = json!({"model": "gpt-6-luna", "max_output_tokens": 40, "input": "hi",
            "tools": weather_tools(), "tool_choice": "required"});
        let r = whole(body.clone(), 2);
        assert_eq!(r["status"], "incomplete");
        assert_eq!(
            r["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(r["output"].as_array().unwrap().len(), 1);
        assert_eq!(r["output"][0]["type"], "reasoning");
        assert_eq!(r["usage"]["output_tokens"], 40);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 40);
        let mut streamed = body;
        streamed["stream"] = json!(true);
        let events = events(streamed, 2);
        let last = events.last().unwrap();
        assert_eq!(last.0, "response.incomplete");
        assert_eq!(last.1["response"]["status"], "incomplete");
        assert_eq!(events.len(), 5);
        // Below OpenAI's floor of 16.
        let e = refused(json!({"model": "gpt-6-luna", "max_output_tokens": 10, "input": "hi"}));
        assert_eq!(e.code, Some("integer_below_min_value"));
        assert_eq!(
            e.message,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, \
             but got 10 instead."
        );
    }

    #[test]
    fn chat_completions_parameters_are_unknown_here() {
        let base = json!({"model": "gpt-6-luna", "input": "hi"});
        for key in [
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "reasoning_effort",
            "response_format",
            "functions",
            "n",
        ] {
            let mut body = base.clone();
            body[key] = json!(1);
            let e = refused(body);
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.message, format!("Unknown parameter: '{key}'."));
            assert_eq!(e.param.as_deref(), Some(key));
            assert_eq!(e.code, Some("unknown_parameter"));
            assert_eq!(e.kind, "invalid_request_error");
        }
        let mut body = base.clone();
        body["stream_options"] = json!({"include_usage": true});
        let e = refused(body);
        assert_eq!(
            e.message,
            "Unknown parameter: 'stream_options.include_usage'."
        );
        assert_eq!(e.param.as_deref(), Some("stream_options.include_usage"));
        // The Responses API's own stream option, and its other parameters, pass.
        request(json!({"model": "gpt-6-luna", "input": "hi", "stream": true,
            "stream_options": {"include_obfuscation": false}, "store": false, "user": "u",
            "safety_identifier": "s", "metadata": {}, "include": [], "parallel_tool_calls": false,
            "text": {"format": {"type": "text"}}, "prompt_cache_key": "k", "truncation": "auto"}));
    }

    #[test]
    fn chat_shaped_tools_and_content_are_refused_as_openai_does() {
        let refused_at = |body: Value, param: &str, code: &str| {
            let e = refused(body.clone());
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
            assert_eq!(e.code, Some(code), "{body}");
        };
        let nested = json!({"model": "gpt-4o", "input": "hi", "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {}}}]});
        refused_at(
            nested.clone(),
            "tools[0].name",
            "missing_required_parameter",
        );
        assert_eq!(
            refused(nested).message,
            "Missing required parameter: 'tools[0].name'."
        );
        refused_at(
            json!({"model": "gpt-4o", "input": "hi", "tools": weather_tools(),
                "tool_choice": {"type": "function", "function": {"name": "lookup"}}}),
            "tool_choice.name",
            "missing_required_parameter",
        );
        refused_at(
            json!({"model": "gpt-4o", "input": "hi", "tools": weather_tools(),
                "tool_choice": {"type": "function", "name": "nope"}}),
            "tool_choice",
            "invalid_value",
        );
        refused_at(
            json!({"model": "gpt-4o", "input": "hi", "tools": weather_tools(), "tool_choice": "any"}),
            "tool_choice",
            "invalid_value",
        );
        // Chat's `text` part, and output text in a user message.
        let text_part = json!({"model": "gpt-4o", "input": [{"role": "user",
            "content": [{"type": "text", "text": "hi"}]}]});
        refused_at(
            text_part.clone(),
            "input[0].content[0].type",
            "invalid_value",
        );
        assert!(refused(text_part).message.starts_with(
            "Invalid value: 'text'. Supported values are: 'input_text', 'input_image', \
             'output_text', 'refusal', 'input_file'"
        ));
        let output_in_user = json!({"model": "gpt-4o", "input": [{"role": "user",
            "content": [{"type": "output_text", "text": "hi"}]}]});
        refused_at(
            output_in_user.clone(),
            "input[0].content[0]",
            "invalid_value",
        );
        assert_eq!(
            refused(output_in_user).message,
            "Invalid value: 'output_text'. Supported values are: 'input_text', 'input_image', \
             and 'input_file'."
        );
        refused_at(
            json!({"model": "gpt-4o", "input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
            "invalid_value",
        );
        refused_at(
            json!({"model": "gpt-4o", "input": [{"type": "function_call", "name": "f",
                "arguments": "{}"}]}),
            "input[0].call_id",
            "missing_required_parameter",
        );
        refused_at(
            json!({"input": "hi"}),
            "model",
            "missing_required_parameter",
        );
        refused_at(
            json!({"model": "gpt-4o"}),
            "input",
            "missing_required_parameter",
        );
        assert_eq!(
            ResponsesRequest::from_json(None).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_model_rules_of_the_chat_endpoint_hold_with_responses_names() {
        for model in ["gpt-4o", "gpt-4o-mini", "gpt-4o-2024-11-20"] {
            for effort in ["low", "none"] {
                let e = refused(json!({"model": model, "input": "hi",
                    "reasoning": {"effort": effort}}));
                assert_eq!(e.param.as_deref(), Some("reasoning.effort"), "{model}");
                assert_eq!(e.code, Some("unsupported_parameter"));
                assert_eq!(
                    e.message,
                    "Unsupported parameter: 'reasoning.effort' is not supported with this model."
                );
            }
            request(json!({"model": model, "input": "hi", "reasoning": {"effort": null}}));
        }
        // A reasoning gpt-6 takes no sampling parameters; with effort none it does.
        for param in ["temperature", "top_p"] {
            for reasoning in [json!(null), json!({"effort": "low"})] {
                let mut body =
                    json!({"model": "gpt-6-luna", "input": "hi", "reasoning": reasoning});
                body[param] = json!(0.5);
                let e = refused(body);
                assert_eq!(e.param.as_deref(), Some(param));
                assert_eq!(e.code, Some("unsupported_parameter"));
            }
            let mut body = json!({"model": "gpt-6-luna", "input": "hi",
                "reasoning": {"effort": "none"}});
            body[param] = json!(0.5);
            let r = whole(body, 1);
            assert_eq!(r[param], 0.5);
        }
        let e = refused(json!({"model": "gpt-6-luna", "input": "hi",
            "reasoning": {"effort": "ultra"}}));
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("reasoning.effort"), Some("invalid_value"))
        );
        // Tools with an effort: fine here (Chat Completions refuses them).
        let tools = json!({"model": "gpt-6-luna", "input": "weather?", "tools": weather_tools(),
            "reasoning": {"effort": "low"}});
        assert_eq!(request(tools).chat.tool_call.unwrap().name, "get_weather");
    }

    #[test]
    fn tool_choice_picks_the_call_as_on_chat() {
        let called = |extra: Value| {
            let mut body = json!({"model": "gpt-4o", "tools": weather_tools(),
                "input": [{"role": "user", "content": "Hello!"}]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            request(body).chat.tool_call.map(|c| c.name)
        };
        assert_eq!(called(json!({})), None);
        assert_eq!(
            called(json!({"tool_choice": "required"})).as_deref(),
            Some("get_weather")
        );
        assert_eq!(
            called(json!({"tool_choice": {"type": "function", "name": "lookup"}})).as_deref(),
            Some("lookup")
        );
        assert_eq!(
            called(
                json!({"tool_choice": {"type": "allowed_tools", "mode": "required",
                "tools": [{"type": "function", "name": "lookup"}]}})
            )
            .as_deref(),
            Some("lookup")
        );
        assert_eq!(
            called(json!({"input": "What's the weather?"})).as_deref(),
            Some("get_weather")
        );
        assert_eq!(
            called(json!({"input": "weather?", "tool_choice": "none"})),
            None
        );
        // After the tool's output: text.
        assert_eq!(
            called(json!({"input": [
                {"role": "user", "content": "What's the weather?"},
                {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "sunny weather"}]})),
            None
        );
        // Hosted tools are accepted and never called; no tools, no call.
        assert_eq!(
            called(json!({"input": "weather?", "tools": [{"type": "web_search"}]})),
            None
        );
        assert_eq!(
            request(json!({"model": "m", "input": "weather?", "tool_choice": "auto"}))
                .chat
                .tool_call,
            None
        );
    }

    #[test]
    fn scripted_answers_see_the_converted_conversation() {
        let r = request(json!({"model": "gpt-4o", "instructions": "sys",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "capital?"}]}]}));
        assert_eq!(
            crate::answers::last_user_text(&r.answers_body()),
            "capital?"
        );
        let mut scripted = r.clone();
        scripted.chat.answer = Some("Paris.".into());
        let reply = Reply::new(&scripted, 1);
        assert_eq!(reply.answer.content, "Paris.");
        let r: Value = serde_json::from_slice(&reply.response_json().unwrap()).unwrap();
        assert_eq!(r["output"][0]["content"][0]["text"], "Paris.");
        assert_eq!(r["usage"]["output_tokens"], tokens_for_chars(6));
    }

    #[test]
    fn encrypted_reasoning_comes_when_included() {
        let r = whole(
            json!({"model": "gpt-6-luna", "input": "hi", "store": false,
            "include": ["reasoning.encrypted_content"]}),
            1,
        );
        assert_eq!(r["output"][0]["encrypted_content"], ENCRYPTED_REASONING);
    }

    #[test]
    fn an_unreadable_usage_fault_spoils_the_usage_everywhere() {
        let body = json!({"model": "gpt-4o", "input": "hi", "stream": true});
        let mut reply = Reply::new(&request(body), 1);
        assert!(reply.sent_usage().unwrap()["input_tokens"].is_u64());
        reply.spoil_usage();
        assert_eq!(reply.sent_usage(), Some(Value::from(UNREADABLE_USAGE)));
        let r: Value = serde_json::from_slice(&reply.response_json().unwrap()).unwrap();
        assert_eq!(r["usage"], UNREADABLE_USAGE);
        let last = reply.sse_events().unwrap().pop().unwrap();
        let text = std::str::from_utf8(&last).unwrap();
        assert!(
            text.contains(&format!("\"usage\":\"{UNREADABLE_USAGE}\"")),
            "{text}"
        );
    }

    #[test]
    fn the_fast_answer_is_a_response() {
        let r: Value = serde_json::from_slice(&fast_response().unwrap()).unwrap();
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
    }
}
