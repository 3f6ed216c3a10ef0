//! Clients that speak the Ollama API (Open WebUI, the official `ollama`
//! Python client, editors' Ollama integrations) pointed at aipipe as if it
//! were an Ollama server.
//!
//! `POST /api/chat` and `POST /api/generate` become Chat Completions requests
//! ([`chat_request_to_chat`], [`generate_request_to_chat`]); the chat answer
//! comes back as Ollama's answer: one JSON object ([`chat_to_ollama`]) or,
//! streamed (Ollama's default), newline-delimited JSON
//! ([`ChatToOllamaStream`], content type [`NDJSON`]). Errors are Ollama's
//! `{"error":"…"}` ([`error_body`]); `GET /api/tags` and `GET /api/version`
//! are answered by the gateway itself ([`tags`], [`version`]).
//!
//! aipipe routes to hosted chat models, so what only a local runtime can do
//! is refused with a message that says what to send instead: raw prompts,
//! fill-in-the-middle `suffix`, a `template` and the `context` of an earlier
//! generate call. Runtime settings (`keep_alive`, `num_ctx`, `num_gpu`, …)
//! are accepted and ignored; `think` becomes the Chat request's
//! `reasoning_effort` ([`think_effort`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::chat;
use crate::error::ApiError;
use crate::protocol::Tokens;
use crate::protocol::TranslateError;
use crate::protocol::chat::openai_usage;
use crate::sha::sha256_hex;
use crate::sse::SseParser;

/// The content type of a streamed Ollama answer.
pub const NDJSON: &str = "application/x-ndjson";

/// The Ollama server version aipipe answers as: clients gate features (tool
/// calls, structured outputs) on it.
const OLLAMA_VERSION: &str = "0.12.0";

/// Which Ollama endpoint an answer goes back to: `/api/chat` answers carry
/// a `message`, `/api/generate` answers a `response` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Generate,
}

fn bad<T>(message: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::BadRequest(message.into()))
}

// ================================================================ requests

#[derive(Deserialize)]
struct ChatWire<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Option<Vec<WireMessage<'a>>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tools: Vec<WireTool<'a>>,
    #[serde(borrow, default)]
    format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    options: Option<WireOptions<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    think: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct GenerateWire<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    prompt: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    images: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    options: Option<WireOptions<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    think: Option<&'a RawValue>,
    #[serde(default)]
    raw: Option<bool>,
    #[serde(borrow, default)]
    suffix: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    template: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "chat::nullable")]
    context: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    images: Vec<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(borrow, default)]
    tool_name: Option<Cow<'a, str>>,
    /// Not Ollama's, but clients that also speak OpenAI send it.
    #[serde(borrow, default)]
    tool_call_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: WireCallFunction<'a>,
}

#[derive(Deserialize)]
struct WireCallFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// An object in Ollama's API; some clients send the JSON text instead.
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireTool<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: WireFunction<'a>,
}

#[derive(Deserialize)]
struct WireFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

/// The sampling options a chat model understands; the runtime's own
/// (`num_ctx`, `num_gpu`, `top_k`, `mirostat`, …) are ignored.
#[derive(Deserialize, Default)]
struct WireOptions<'a> {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    num_predict: Option<i64>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    stop: Vec<Cow<'a, str>>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
}

/// Translates an Ollama `/api/chat` request body into a Chat Completions
/// request body.
///
/// `model` is kept (`"auto"` when absent or empty); `messages`: `system`,
/// `user`, `assistant` and `tool` roles, `images` (base64, Ollama-style
/// without a data-URL prefix: PNG, JPEG, GIF and WebP, told apart by their
/// first bytes) → `image_url` parts with a data URL, assistant `tool_calls`
/// (arguments as an object) → chat `tool_calls`, a `tool` message → the
/// result of the earliest unanswered call of that `tool_name` (calls get
/// ids, which Ollama's API does not have; a result that answers no call
/// becomes a user message saying so). `tools` (function tools), `format`
/// (`"json"` → `json_object`, a JSON schema → `json_schema`), `options`
/// (`temperature`, `top_p`, `num_predict` → `max_tokens`, `stop`, `seed`,
/// `frequency_penalty`, `presence_penalty`) are mapped; `stream` defaults to
/// true, as in Ollama, and is always written.
pub fn chat_request_to_chat(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let wire: ChatWire<'_> = chat::parse_request(body, "an Ollama /api/chat request")?;
    let Some(list) = wire.messages else {
        return bad("missing field `messages`: send the conversation as a list of messages");
    };
    if list.is_empty() {
        return bad("`messages` must contain at least one message");
    }
    let mut messages = Vec::with_capacity(list.len());
    let mut unanswered: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    for (i, m) in list.into_iter().enumerate() {
        add_message(i, m, &mut messages, &mut unanswered)?;
    }
    let mut tools = Vec::with_capacity(wire.tools.len());
    for (k, t) in wire.tools.into_iter().enumerate() {
        if let Some(kind) = t.kind.filter(|k| k != "function") {
            return bad(format!(
                "tools[{k}]: tool type `{kind}` is not supported: only `function` tools are"
            ));
        }
        let f = t.function;
        tools.push(chat::Tool::function(
            f.name,
            f.description,
            f.parameters,
            None,
        ));
    }
    let mut req = chat::Request::new(model_or_auto(wire.model), messages);
    req.set_tools(tools, None, None);
    req.response_format = response_format(wire.format)?;
    apply_options(&mut req, wire.options.unwrap_or_default());
    req.reasoning_effort = think_effort(wire.think);
    req.set_stream(wire.stream.unwrap_or(true));
    req.encode()
}

/// Translates an Ollama `/api/generate` request body into a Chat Completions
/// request body: `system` → a system message, `prompt` and `images` → one
/// user message; `format`, `options` and `stream` (default true) as for
/// [`chat_request_to_chat`]. `raw`, a `suffix`, a `template` and `context`
/// are refused: they need a local model's own prompt format or state.
pub fn generate_request_to_chat(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let wire: GenerateWire<'_> = chat::parse_request(body, "an Ollama /api/generate request")?;
    if wire.raw == Some(true) {
        return bad(
            "`raw: true` is not supported: aipipe sends every prompt to a hosted chat model, which applies its own template. Send the prompt without `raw`, or the conversation as messages to /api/chat.",
        );
    }
    if wire.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return bad(
            "`suffix` (fill-in-the-middle) is not supported: aipipe routes to hosted chat models. Put the text that follows the gap in the prompt instead.",
        );
    }
    if wire.template.as_deref().is_some_and(|t| !t.is_empty()) {
        return bad(
            "`template` is not supported: hosted chat models apply their own. Send the prompt without `template`.",
        );
    }
    if !wire.context.is_empty() {
        return bad(
            "`context` is not supported: aipipe keeps no model state between calls. Send the earlier turns as messages to /api/chat.",
        );
    }
    let prompt = wire.prompt.unwrap_or_default();
    if prompt.is_empty() && wire.images.is_empty() {
        return bad("`prompt` is empty: send the text to answer (aipipe has no model to load)");
    }
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = wire.system.filter(|s| !s.is_empty()) {
        messages.push(chat::Message::text("system", system));
    }
    messages.push(user_message(prompt, wire.images, "images")?);
    let mut req = chat::Request::new(model_or_auto(wire.model), messages);
    req.response_format = response_format(wire.format)?;
    apply_options(&mut req, wire.options.unwrap_or_default());
    req.reasoning_effort = think_effort(wire.think);
    req.set_stream(wire.stream.unwrap_or(true));
    req.encode()
}

fn model_or_auto(model: Option<Cow<'_, str>>) -> Cow<'_, str> {
    model
        .filter(|m| !m.is_empty())
        .unwrap_or(Cow::Borrowed("auto"))
}

fn add_message<'a>(
    i: usize,
    m: WireMessage<'a>,
    messages: &mut Vec<chat::Message<'a>>,
    unanswered: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
) -> Result<(), ApiError> {
    let content = m.content.unwrap_or_default();
    if !m.images.is_empty() && m.role != "user" {
        return bad(format!(
            "messages[{i}]: only user messages can carry images, not {} messages",
            m.role
        ));
    }
    match &*m.role {
        "system" => messages.push(chat::Message::text("system", content)),
        "user" => messages.push(user_message(
            content,
            m.images,
            &format!("messages[{i}].images"),
        )?),
        "assistant" => {
            // Ollama's tool calls have no ids; chat needs them to pair each
            // result with its call.
            unanswered.clear();
            let mut calls = Vec::with_capacity(m.tool_calls.len());
            for (k, call) in m.tool_calls.into_iter().enumerate() {
                let id = call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| Cow::Owned(format!("call_{i}_{k}")));
                let arguments = match call.function.arguments {
                    None => Cow::Borrowed("{}"),
                    Some(raw) if raw.get().starts_with('"') => {
                        serde_json::from_str::<Cow<'a, str>>(raw.get()).map_err(|e| {
                            ApiError::BadRequest(format!(
                                "messages[{i}].tool_calls[{k}].function.arguments: {e}"
                            ))
                        })?
                    }
                    Some(raw) => Cow::Borrowed(raw.get()),
                };
                unanswered.push((id.clone(), call.function.name.clone()));
                calls.push(chat::ToolCall::new(id, call.function.name, arguments));
            }
            if calls.is_empty() || !content.is_empty() {
                messages.push(chat::Message::text("assistant", content));
            }
            for call in calls {
                chat::push_call(messages, call);
            }
        }
        "tool" => {
            let answered = match (&m.tool_call_id, &m.tool_name) {
                (Some(id), _) => unanswered.iter().position(|(c, _)| c == id),
                (None, Some(name)) => unanswered.iter().position(|(_, n)| n == name),
                (None, None) => (!unanswered.is_empty()).then_some(0),
            };
            match answered {
                Some(k) => {
                    let (id, _) = unanswered.remove(k);
                    messages.push(chat::Message::tool_result(id, content));
                }
                // Chat refuses a tool result that answers no call: the model
                // still gets to read it.
                None => {
                    let text = match &m.tool_name {
                        Some(name) => format!("Result of the tool `{name}`:\n{content}"),
                        None => format!("Tool result:\n{content}"),
                    };
                    messages.push(chat::Message::text("user", text));
                }
            }
        }
        other => {
            return bad(format!(
                "messages[{i}]: unknown role `{other}`, expected system, user, assistant or tool"
            ));
        }
    }
    Ok(())
}

/// A user message with its images as data-URL parts.
fn user_message<'a>(
    text: Cow<'a, str>,
    images: Vec<Cow<'a, str>>,
    path: &str,
) -> Result<chat::Message<'a>, ApiError> {
    if images.is_empty() {
        return Ok(chat::Message::text("user", text));
    }
    let mut parts = Vec::with_capacity(images.len() + 1);
    if !text.is_empty() {
        parts.push(chat::Part::Text { text });
    }
    for (k, image) in images.into_iter().enumerate() {
        let url = if image.starts_with("data:") {
            image
        } else {
            match image_type(&image) {
                Some(mime) => Cow::Owned(format!("data:{mime};base64,{image}")),
                None => {
                    return bad(format!(
                        "{path}[{k}] is not a base64-encoded PNG, JPEG, GIF or WebP image"
                    ));
                }
            }
        };
        parts.push(chat::Part::ImageUrl {
            image_url: chat::ImageUrl { url, detail: None },
        });
    }
    Ok(chat::Message::parts("user", parts))
}

/// The media type of a base64-encoded image, from its first bytes.
fn image_type(base64: &str) -> Option<&'static str> {
    let head = decode_base64_prefix(base64, 12);
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

/// Up to `n` bytes decoded from the start of standard base64, stopping at
/// padding or anything that is not base64.
fn decode_base64_prefix(text: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => break,
        };
        acc = (acc << 6 | u32::from(v)) & 0xFFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn response_format(
    format: Option<&RawValue>,
) -> Result<Option<chat::ResponseFormat<'_>>, ApiError> {
    let Some(raw) = format else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with('{') {
        return Ok(Some(chat::ResponseFormat::JsonSchema {
            json_schema: chat::JsonSchema {
                name: Cow::Borrowed("response"),
                description: None,
                schema: raw,
                strict: None,
            },
        }));
    }
    match serde_json::from_str::<Cow<'_, str>>(text).as_deref() {
        Ok("") => Ok(None),
        Ok("json") => Ok(Some(chat::ResponseFormat::JsonObject)),
        _ => bad("`format` must be \"json\" or a JSON schema object"),
    }
}

/// The `reasoning_effort` an Ollama `think` asks for: `"low"`, `"medium"`
/// and `"high"` as they are, `true` the reasoning models' usual default
/// (`"medium"`); `false` and anything else nothing (the model's default).
fn think_effort(think: Option<&RawValue>) -> Option<Cow<'static, str>> {
    let effort = match think?.get() {
        "true" | r#""medium""# => "medium",
        r#""low""# => "low",
        r#""high""# => "high",
        _ => return None,
    };
    Some(Cow::Borrowed(effort))
}

fn apply_options<'a>(req: &mut chat::Request<'a>, o: WireOptions<'a>) {
    req.temperature = o.temperature;
    req.top_p = o.top_p;
    // -1 (no limit) and -2 (fill the context) leave the provider's default.
    req.max_tokens = o
        .num_predict
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n > 0);
    req.stop = o.stop;
    req.seed = o.seed;
    req.frequency_penalty = o.frequency_penalty;
    req.presence_penalty = o.presence_penalty;
}

// ================================================================= answers

/// One Ollama answer object: a whole answer, or one line of a stream.
#[derive(Serialize)]
struct Line<'a> {
    model: &'a str,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<LineMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a str>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    end: Option<End>,
}

#[derive(Serialize)]
struct LineMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<LineToolCall<'a>>,
}

#[derive(Serialize)]
struct LineToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    function: LineFunction<'a>,
}

#[derive(Serialize)]
struct LineFunction<'a> {
    index: usize,
    name: &'a str,
    arguments: Value,
}

/// What the last object of an answer adds. aipipe does not time the model
/// itself, so the durations are 0 (clients show no speed for them); the
/// counts are the provider's usage, absent when it sent none.
#[derive(Serialize)]
struct End {
    done_reason: &'static str,
    total_duration: u64,
    load_duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    eval_count: Option<u64>,
    eval_duration: u64,
}

impl End {
    fn new(done_reason: &'static str, tokens: Option<Tokens>) -> Self {
        End {
            done_reason,
            total_duration: 0,
            load_duration: 0,
            prompt_eval_count: tokens.map(|t| t.prompt),
            prompt_eval_duration: 0,
            eval_count: tokens.map(|t| t.completion),
            eval_duration: 0,
        }
    }
}

/// OpenAI `finish_reason` → Ollama `done_reason` (Ollama reports a tool
/// call as a normal stop).
fn done_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "length",
        _ => "stop",
    }
}

/// Tool-call arguments as Ollama's object: text that does not parse to one
/// is kept under `_raw` rather than lost.
fn arguments_object(arguments: &str) -> Value {
    match arguments.trim() {
        "" => Value::Object(serde_json::Map::new()),
        text => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => serde_json::json!({ "_raw": text }),
        },
    }
}

/// A tool call of the answer, whole.
struct Call {
    id: Option<String>,
    name: String,
    arguments: String,
}

impl Call {
    fn line(&self, index: usize) -> LineToolCall<'_> {
        LineToolCall {
            id: self.id.as_deref(),
            function: LineFunction {
                index,
                name: &self.name,
                arguments: arguments_object(&self.arguments),
            },
        }
    }
}

fn line<'a>(
    endpoint: Endpoint,
    model: &'a str,
    created_at: &'a str,
    text: &'a str,
    calls: &'a [Call],
    end: Option<End>,
) -> Line<'a> {
    let (message, response) = match endpoint {
        Endpoint::Chat => (
            Some(LineMessage {
                role: "assistant",
                content: text,
                tool_calls: calls.iter().enumerate().map(|(k, c)| c.line(k)).collect(),
            }),
            None,
        ),
        Endpoint::Generate => (None, Some(text)),
    };
    Line {
        model,
        created_at,
        message,
        response,
        done: end.is_some(),
        end,
    }
}

/// Translates a whole `chat.completion` into Ollama's non-streamed answer
/// for `endpoint`, reporting `model`, created at `created` (unix seconds):
/// the text as `message.content` (chat) or `response` (generate), tool calls
/// as `message.tool_calls` with their arguments as objects (chat only: the
/// generate API has none), `done: true`, `done_reason` and the usage as
/// `prompt_eval_count` / `eval_count`.
pub fn chat_to_ollama(
    body: &[u8],
    model: &str,
    created: u64,
    endpoint: Endpoint,
) -> Result<Vec<u8>, TranslateError> {
    let (_, choice) = chat::Completion::parse(body)?.into_choice()?;
    let message = choice.message.unwrap_or_default();
    let text = message.text();
    let calls: Vec<Call> = match endpoint {
        Endpoint::Chat => message
            .tool_calls
            .into_iter()
            .map(|c| {
                let f = c.function.unwrap_or_default();
                Call {
                    id: c.id,
                    name: f.name.unwrap_or_default(),
                    arguments: f.arguments.unwrap_or_default(),
                }
            })
            .collect(),
        Endpoint::Generate => Vec::new(),
    };
    let created_at = rfc3339(created);
    let end = End::new(
        done_reason(choice.finish_reason.as_deref()),
        openai_usage(body),
    );
    let answer = line(endpoint, model, &created_at, &text, &calls, Some(end));
    serde_json::to_vec(&answer)
        .map_err(|e| TranslateError(format!("could not encode the Ollama answer: {e}")))
}

/// Translates a streamed chat answer (`chat.completion.chunk` SSE) into
/// Ollama's stream for `endpoint`: one JSON object per line, whatever the
/// chunk boundaries.
///
/// - each text delta → `{…, "message": {"role": "assistant", "content":
///   "<delta>"}, "done": false}` (generate: `"response": "<delta>"`);
/// - tool calls (chat only) are gathered, since Ollama sends each call
///   whole, and go out in one line when the choice finishes;
/// - at `[DONE]` (after the usage chunk), or when the body ends after a
///   `finish_reason` → a last line with empty content, `"done": true`,
///   `done_reason`, `prompt_eval_count` and `eval_count`;
/// - an error chunk, or a body that ends before any `finish_reason` →
///   `{"error": "…"}`, which Ollama clients raise.
///
/// Nothing is written after the last line.
#[derive(Debug)]
pub struct ChatToOllamaStream {
    parser: SseParser,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    model: String,
    created_at: String,
    endpoint: Endpoint,
    /// Tool calls being streamed: the chat tool index and the call so far.
    calls: Vec<(u64, PendingCall)>,
    finish: Option<&'static str>,
    tokens: Option<Tokens>,
    done: bool,
}

#[derive(Debug, Default)]
struct PendingCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

const CUT_SHORT: &str =
    "The upstream stream ended before the answer was complete. Retry the request.";

impl ChatToOllamaStream {
    /// `model` is the name the client sees; `created` the unix time of the
    /// request.
    pub fn new(model: &str, created: u64, endpoint: Endpoint) -> Self {
        ChatToOllamaStream {
            parser: SseParser::default(),
            state: StreamState {
                model: model.to_owned(),
                created_at: rfc3339(created),
                endpoint,
                calls: Vec::new(),
                finish: None,
                tokens: None,
                done: false,
            },
        }
    }

    /// Feeds a chunk of the upstream body; appends the lines it completes.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    /// The upstream body ended: writes the last line if it is not written.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        if !state.done {
            if state.finish.is_some() {
                state.end(out);
            } else {
                state.error(CUT_SHORT, out);
            }
        }
    }

    /// Usage from the provider's final usage chunk.
    pub fn tokens(&self) -> Option<Tokens> {
        self.state.tokens
    }
}

impl StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<chat::Chunk>(data) else {
            log::debug!("skipping an unreadable chat.completion.chunk");
            return;
        };
        if let Some(message) = chunk.error_message() {
            self.error(&message, out);
            return;
        }
        if chunk.usage.is_some()
            && let Some(t) = openai_usage(data)
        {
            self.tokens = Some(t);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.write(&text, &[], None, out);
            }
            if self.endpoint == Endpoint::Chat {
                for call in delta.tool_calls {
                    self.gather(call);
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(done_reason(Some(&reason)));
            self.flush_calls(out);
        }
    }

    fn gather(&mut self, call: chat::ChunkToolCall) {
        let slot = match self.calls.iter().position(|(i, _)| *i == call.index) {
            Some(k) => k,
            None => {
                self.calls.push((call.index, PendingCall::default()));
                self.calls.len() - 1
            }
        };
        let Some((_, pending)) = self.calls.get_mut(slot) else {
            return;
        };
        if call.id.is_some() {
            pending.id = call.id;
        }
        if let Some(f) = call.function {
            if let Some(name) = f.name {
                pending.name.push_str(&name);
            }
            if let Some(arguments) = f.arguments {
                pending.arguments.push_str(&arguments);
            }
        }
    }

    fn flush_calls(&mut self, out: &mut Vec<u8>) {
        if self.calls.is_empty() {
            return;
        }
        let calls: Vec<Call> = std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(_, p)| Call {
                id: p.id,
                name: p.name,
                arguments: p.arguments,
            })
            .collect();
        self.write("", &calls, None, out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.flush_calls(out);
        let end = End::new(self.finish.unwrap_or("stop"), self.tokens);
        self.write("", &[], Some(end), out);
        self.done = true;
    }

    fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_body(message));
        out.push(b'\n');
        self.done = true;
    }

    fn write(&self, text: &str, calls: &[Call], end: Option<End>, out: &mut Vec<u8>) {
        let l = line(
            self.endpoint,
            &self.model,
            &self.created_at,
            text,
            calls,
            end,
        );
        match serde_json::to_vec(&l) {
            Ok(json) => {
                out.extend_from_slice(&json);
                out.push(b'\n');
            }
            Err(e) => log::warn!("could not encode an Ollama stream line: {e}"),
        }
    }
}

// ================================================================== others

/// An error in Ollama's shape: `{"error":"…"}`.
pub fn error_body(message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Error<'a> {
        error: &'a str,
    }
    serde_json::to_vec(&Error { error: message })
        .unwrap_or_else(|_| br#"{"error":"aipipe could not encode its error"}"#.to_vec())
}

#[derive(Serialize)]
struct Tags<'a> {
    models: Vec<TagModel<'a>>,
}

#[derive(Serialize)]
struct TagModel<'a> {
    name: &'a str,
    model: &'a str,
    /// Unknown: hosted models have no local file.
    modified_at: &'static str,
    size: u64,
    digest: String,
    details: TagDetails<'a>,
}

#[derive(Serialize)]
struct TagDetails<'a> {
    parent_model: &'static str,
    format: &'static str,
    family: &'a str,
    families: [&'a str; 1],
    parameter_size: &'static str,
    quantization_level: &'static str,
}

/// The `GET /api/tags` body: `auto` (routed by complexity) first, then each
/// (model id, provider id) pair, as Ollama lists its local models. A hosted
/// model has no file: its size is 0, its digest the SHA-256 of its name, its
/// family the provider.
pub fn tags(models: &[(&str, &str)]) -> String {
    let entry = |id, provider| TagModel {
        name: id,
        model: id,
        modified_at: "1970-01-01T00:00:00Z",
        size: 0,
        // A stable stand-in for a local model file's digest.
        digest: sha256_hex(id.as_bytes()),
        details: TagDetails {
            parent_model: "",
            format: "api",
            family: provider,
            families: [provider],
            parameter_size: "",
            quantization_level: "",
        },
    };
    let mut list = Vec::with_capacity(models.len() + 1);
    list.push(entry("auto", "aipipe"));
    for &(id, provider) in models {
        if id != "auto" {
            list.push(entry(id, provider));
        }
    }
    serde_json::to_string(&Tags { models: list }).unwrap_or_else(|_| r#"{"models":[]}"#.into())
}

/// The `GET /api/version` body.
pub fn version() -> String {
    format!(r#"{{"version":"{OLLAMA_VERSION}"}}"#)
}

/// RFC 3339 UTC time of a unix time in seconds, as Ollama's `created_at`.
fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (H. Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

    fn chat_req(req: Value) -> Value {
        let out = chat_request_to_chat(&serde_json::to_vec(&req).unwrap()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn generate_req(req: Value) -> Value {
        let out = generate_request_to_chat(&serde_json::to_vec(&req).unwrap()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn refused(f: fn(&[u8]) -> Result<Vec<u8>, ApiError>, body: &str) -> String {
        match f(body.as_bytes()) {
            Err(ApiError::BadRequest(why)) => why,
            other => panic!("{body}: {other:?}"),
        }
    }

    /// `think` is the effort a reasoning model reasons at, from either
    /// endpoint; `false` leaves the model's default.
    #[test]
    fn think_becomes_the_reasoning_effort() {
        for (think, effort) in [
            (json!(true), Some("medium")),
            (json!("low"), Some("low")),
            (json!("medium"), Some("medium")),
            (json!("high"), Some("high")),
            (json!(false), None),
            (json!(null), None),
            (json!("max"), None),
        ] {
            let chat =
                chat_req(json!({"think": think, "messages": [{"role": "user", "content": "hi"}]}));
            let generate = generate_req(json!({"think": think, "prompt": "hi"}));
            for out in [chat, generate] {
                assert_eq!(
                    out.get("reasoning_effort").and_then(Value::as_str),
                    effort,
                    "{think}: {out}"
                );
            }
        }
    }

    #[test]
    fn an_ollama_chat_request_becomes_a_chat_request() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let req = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is in this image?", "images": [PNG]},
                {"role": "assistant", "content": "", "thinking": "hmm", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}}
                ]},
                {"role": "tool", "tool_name": "get_time", "content": "noon"},
                {"role": "tool", "tool_name": "get_weather", "content": "18C"},
                {"role": "tool", "tool_name": "get_weather", "content": "again"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}}],
            "format": schema,
            "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 100, "stop": ["END"], "seed": 7,
                        "num_ctx": 8192, "top_k": 40, "frequency_penalty": 0.5, "presence_penalty": 0.25},
            "keep_alive": "5m",
            "think": false
        });
        assert_eq!(
            chat_req(req),
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_2_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_2_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "content": "noon", "tool_call_id": "call_2_1"},
                    {"role": "tool", "content": "18C", "tool_call_id": "call_2_0"},
                    {"role": "user", "content": "Result of the tool `get_weather`:\nagain"}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}},
                "max_tokens": 100,
                "temperature": 0.2,
                "top_p": 0.9,
                "stop": ["END"],
                "seed": 7,
                "frequency_penalty": 0.5,
                "presence_penalty": 0.25,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn ollama_chat_defaults_ids_and_formats() {
        // Stream defaults to true; an explicit false is kept; no model → auto.
        let out = chat_req(json!({"messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(out["stream"], true);
        assert_eq!(out["model"], "auto");
        let out = chat_req(
            json!({"model": "", "stream": false, "format": "json", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(out["stream"], false);
        assert!(out.get("stream_options").is_none());
        assert_eq!(out["model"], "auto");
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        let out = chat_req(
            json!({"format": "", "options": {"num_predict": -1}, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert!(out.get("response_format").is_none() && out.get("max_tokens").is_none());
        // Clients that keep OpenAI-style ids and JSON-text arguments.
        let out = chat_req(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_x", "function": {"index": 0, "name": "w", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_x", "content": "sunny"},
            {"role": "tool", "content": "orphan"}
        ]}));
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_x", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(out["messages"][2]["tool_call_id"], "call_x");
        assert_eq!(
            out["messages"][3],
            json!({"role": "user", "content": "Tool result:\norphan"})
        );
        // Images of every kind, and one already a data URL.
        for (b64, mime) in [
            ("/9j/4AAQSkZJRgABAQ", "image/jpeg"),
            ("R0lGODlhAQABAIAAAP", "image/gif"),
            ("UklGRiQAAABXRUJQVlA4", "image/webp"),
        ] {
            let out = chat_req(json!({"messages": [{"role": "user", "images": [b64]}]}));
            assert_eq!(
                out["messages"][0]["content"],
                json!([{"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{b64}")}}])
            );
        }
        let out = chat_req(
            json!({"messages": [{"role": "user", "content": "x", "images": ["data:image/png;base64,AAAA"]}]}),
        );
        assert_eq!(
            out["messages"][0]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
    }

    #[test]
    fn an_ollama_generate_request_becomes_a_chat_request() {
        assert_eq!(
            generate_req(json!({
                "model": "claude-sonnet-4-5", "prompt": "Why is the sky blue?", "system": "Be brief.",
                "images": [PNG], "options": {"temperature": 0}, "stream": false,
                "suffix": "", "context": null, "raw": false, "keep_alive": 0
            })),
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Why is the sky blue?"},
                        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
                    ]}
                ],
                "temperature": 0.0,
                "stream": false
            })
        );
        let out = generate_req(json!({"prompt": "hi"}));
        assert_eq!(
            out,
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                "stream": true, "stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn bad_ollama_requests_are_refused_with_what_to_do() {
        for (body, want) in [
            ("", "request body is empty"),
            ("[1]", "must be a JSON object: an Ollama /api/chat request"),
            ("{\"messages\":", "not valid JSON"),
            (r#"{"model":"m"}"#, "missing field `messages`"),
            (r#"{"messages":[]}"#, "at least one message"),
            (r#"{"messages":[{"content":"x"}]}"#, "missing field `role`"),
            (
                r#"{"messages":[{"role":"bot","content":"x"}]}"#,
                "messages[0]: unknown role `bot`",
            ),
            (
                r#"{"messages":[{"role":"user","images":["bm90IGFuIGltYWdl"]}]}"#,
                "messages[0].images[0] is not a base64-encoded PNG",
            ),
            (
                r#"{"messages":[{"role":"assistant","content":"x","images":["iVBO"]}]}"#,
                "only user messages can carry images",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"format":"yaml"}"#,
                "`format` must be \"json\" or a JSON schema",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"format":3}"#,
                "`format` must be",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"retrieval","function":{"name":"f"}}]}"#,
                "tools[0]: tool type `retrieval` is not supported",
            ),
            (
                r#"{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"\u"}}]}]}"#,
                "not valid JSON",
            ),
        ] {
            let why = refused(chat_request_to_chat, body);
            assert!(why.contains(want), "{body}: {why}");
        }
        for (body, want) in [
            ("[]", "an Ollama /api/generate request"),
            (r#"{"model":"m"}"#, "`prompt` is empty"),
            (r#"{"prompt":""}"#, "`prompt` is empty"),
            (
                r#"{"prompt":"x","raw":true}"#,
                "`raw: true` is not supported",
            ),
            (
                r#"{"prompt":"x","suffix":"end"}"#,
                "`suffix` (fill-in-the-middle)",
            ),
            (
                r#"{"prompt":"x","template":"{{ .Prompt }}"}"#,
                "`template` is not supported",
            ),
            (
                r#"{"prompt":"x","context":[1,2,3]}"#,
                "`context` is not supported",
            ),
            (
                r#"{"prompt":"x","images":["AAAA"]}"#,
                "images[0] is not a base64-encoded",
            ),
        ] {
            let why = refused(generate_request_to_chat, body);
            assert!(why.contains(want), "{body}: {why}");
        }
    }

    const ANSWER: &[u8] =
        br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
            {"id":"call_2","type":"function","function":{"name":"g","arguments":"{oops"}},
            {"type":"function","function":{"name":"h","arguments":""}}]},
            "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107}}"#;

    #[test]
    fn a_chat_answer_becomes_an_ollama_answer() {
        let out: Value = serde_json::from_slice(
            &chat_to_ollama(ANSWER, "auto", 1_700_000_000, Endpoint::Chat).unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "auto", "created_at": "2023-11-14T22:13:20Z",
                "message": {"role": "assistant", "content": "Sure.", "tool_calls": [
                    {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}},
                    {"id": "call_2", "function": {"index": 1, "name": "g", "arguments": {"_raw": "{oops"}}},
                    {"function": {"index": 2, "name": "h", "arguments": {}}}
                ]},
                "done": true, "done_reason": "stop",
                "total_duration": 0, "load_duration": 0,
                "prompt_eval_count": 100, "prompt_eval_duration": 0,
                "eval_count": 7, "eval_duration": 0
            })
        );
        let out: Value =
            serde_json::from_slice(&chat_to_ollama(ANSWER, "m", 0, Endpoint::Generate).unwrap())
                .unwrap();
        assert_eq!(out["response"], "Sure.");
        assert_eq!(out["created_at"], "1970-01-01T00:00:00Z");
        assert!(out.get("message").is_none());
        let body = br#"{"choices":[{"message":{"content":"Once"},"finish_reason":"length"}]}"#;
        let out: Value =
            serde_json::from_slice(&chat_to_ollama(body, "m", 0, Endpoint::Chat).unwrap()).unwrap();
        assert_eq!(out["done_reason"], "length");
        assert!(out.get("eval_count").is_none() && out.get("prompt_eval_count").is_none());
        assert!(out["message"].get("tool_calls").is_none());
        for bad in [&b""[..], b"[]", b"{\"choices\":[]}", b"{\"choices\":7}"] {
            assert!(chat_to_ollama(bad, "m", 0, Endpoint::Chat).is_err());
        }
    }

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(endpoint: Endpoint, pieces: &[&[u8]]) -> (String, Option<Tokens>) {
        let mut s = ChatToOllamaStream::new("auto", 86_400, endpoint);
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, &mut out);
        }
        s.finish(&mut out);
        let mut more = Vec::new();
        s.finish(&mut more);
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
            &mut more,
        );
        assert!(more.is_empty(), "nothing after the last line");
        (String::from_utf8(out).unwrap(), s.tokens())
    }

    fn lines(out: &str) -> Vec<Value> {
        assert!(out.ends_with('\n'), "{out}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_chat_stream_becomes_ndjson_at_any_split() {
        let (out, tokens) = run(Endpoint::Chat, &[CHUNKS.as_bytes()]);
        let at = "1970-01-02T00:00:00Z";
        assert_eq!(
            lines(&out),
            [
                json!({"model": "auto", "created_at": at, "message": {"role": "assistant", "content": "Hi "}, "done": false}),
                json!({"model": "auto", "created_at": at, "message": {"role": "assistant", "content": "there"}, "done": false}),
                json!({"model": "auto", "created_at": at, "message": {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}]}, "done": false}),
                json!({"model": "auto", "created_at": at, "message": {"role": "assistant", "content": ""}, "done": true,
                    "done_reason": "stop", "total_duration": 0, "load_duration": 0, "prompt_eval_count": 20,
                    "prompt_eval_duration": 0, "eval_count": 9, "eval_duration": 0}),
            ]
        );
        assert_eq!(
            tokens,
            Some(Tokens {
                prompt: 20,
                completion: 9,
                cached: 0,
                cache_write: 0
            })
        );
        let bytes = CHUNKS.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(
                run(Endpoint::Chat, &[a, b]),
                (out.clone(), tokens),
                "split at {i}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(Endpoint::Chat, &one_by_one), (out, tokens));
    }

    #[test]
    fn a_generate_stream_carries_responses_and_no_tool_calls() {
        let (out, _) = run(Endpoint::Generate, &[CHUNKS.as_bytes()]);
        let l = lines(&out);
        let texts: Vec<&str> = l.iter().map(|v| v["response"].as_str().unwrap()).collect();
        assert_eq!(texts, ["Hi ", "there", ""]);
        assert!(l.iter().all(|v| v.get("message").is_none()));
        assert_eq!(l[2]["done"], true);
        assert_eq!(l[2]["eval_count"], 9);
    }

    #[test]
    fn cut_streams_and_errors_end_with_an_error_line() {
        // Cut before any finish_reason.
        let cut = &CHUNKS[..CHUNKS
            .find("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},")
            .unwrap()];
        let (out, _) = run(Endpoint::Chat, &[cut.as_bytes()]);
        let l = lines(&out);
        assert_eq!(l.len(), 3);
        assert!(l[2]["error"].as_str().unwrap().contains("Retry"), "{out}");
        // Cut after the finish_reason: a normal end, without usage.
        let cut = &CHUNKS[..CHUNKS.find("data: {\"id\":\"c1\",\"choices\":[]").unwrap()];
        let (out, tokens) = run(Endpoint::Chat, &[cut.as_bytes()]);
        let l = lines(&out);
        assert_eq!(tokens, None);
        assert_eq!(l.last().unwrap()["done"], true);
        assert!(l.last().unwrap().get("eval_count").is_none());
        // The provider's error.
        let (out, _) = run(
            Endpoint::Chat,
            &[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"],
        );
        assert_eq!(out, "{\"error\":\"boom\"}\n");
        let (out, _) = run(Endpoint::Generate, &[]);
        assert!(out.starts_with("{\"error\":"), "{out}");
        // Garbage is skipped; [DONE] alone ends the answer.
        let (out, _) = run(
            Endpoint::Chat,
            &[b"data: {\"choices\":\"x\"}\n\ndata: \xff\n\ndata: [DONE]\n\n"],
        );
        assert_eq!(lines(&out).len(), 1);
        assert_eq!(lines(&out)[0]["done_reason"], "stop");
        // Tool calls still open at [DONE] are sent before the last line.
        let (out, _) = run(
            Endpoint::Chat,
            &[b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\ndata: [DONE]\n\n"],
        );
        let l = lines(&out);
        assert_eq!(l[0]["message"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(l[1]["done"], true);
    }

    #[test]
    fn errors_tags_and_version_are_ollama_shaped() {
        assert_eq!(error_body("a \"b\""), br#"{"error":"a \"b\""}"#);
        let t: Value = serde_json::from_str(&tags(&[
            ("auto", "aipipe"),
            ("gpt-4o-mini", "openai"),
            ("claude-sonnet-4-5", "anthropic"),
        ]))
        .unwrap();
        let names: Vec<&str> = t["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["auto", "gpt-4o-mini", "claude-sonnet-4-5"]);
        assert_eq!(
            t["models"][1],
            json!({"name": "gpt-4o-mini", "model": "gpt-4o-mini", "modified_at": "1970-01-01T00:00:00Z",
                "size": 0, "digest": sha256_hex(b"gpt-4o-mini"),
                "details": {"parent_model": "", "format": "api", "family": "openai", "families": ["openai"],
                    "parameter_size": "", "quantization_level": ""}})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tags(&[])).unwrap()["models"][0]["name"],
            "auto"
        );
        let v: Value = serde_json::from_str(&version()).unwrap();
        assert!(v["version"].as_str().unwrap().starts_with("0."));
        assert_eq!(NDJSON, "application/x-ndjson");
    }

    #[test]
    fn rfc3339_dates() {
        for (unix, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(unix), want);
        }
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn base64_prefixes_decode() {
        assert_eq!(decode_base64_prefix("aGVsbG8gd29ybGQ=", 5), b"hello");
        assert_eq!(
            decode_base64_prefix("aGVsbG8gd29ybGQ=", 100),
            b"hello world"
        );
        assert_eq!(decode_base64_prefix("", 3), b"");
        assert_eq!(decode_base64_prefix("!!", 3), b"");
        assert_eq!(image_type("iVBO"), None);
    }
}
