//! OpenAI's Responses API as a provider wire: a Chat Completions request →
//! a `POST /v1/responses` body ([`chat_to_request`]), and its answer back to
//! Chat Completions, whole ([`response_to_chat`]) or streamed
//! ([`ResponsesToChatStream`]).
//!
//! The filter sends a request there only when Chat Completions would refuse
//! it: OpenAI's reasoning models that take function tools with a reasoning
//! effort on the Responses API alone (catalog `responses_api`;
//! filter/README.md, "What a model accepts"). Everything else keeps its
//! Chat Completions path.
//!
//! The gateway is stateless, so every request says `store: false` (OpenAI
//! would otherwise keep the conversation for 30 days) and carries the whole
//! conversation as input items. The answer's reasoning items come back
//! encrypted (`include`) and reach a Chat client as the assistant message's
//! `reasoning_details` (OpenRouter's convention: Chat Completions itself has
//! no place for them); sent back with that message on the next turn, they
//! become reasoning items again, so the model goes on from its own
//! reasoning between tool calls. A
//! Responses API client's own request goes as it is
//! ([`responses_to_request`]), and its answer back untranslated, reasoning
//! items and all.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::Tokens;
use super::TranslateError;
use super::chat::{
    self, ChunkChoiceOut, ChunkOut, DeltaOut, ReasoningDetailOut, TextOr, ToolDeltaOut, UsageOut,
    write_chunk,
};
use crate::error::ApiError;
use crate::sse::SseParser;

fn bad<T>(message: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::BadRequest(message.into()))
}

// ================================================================ requests

#[derive(Deserialize)]
struct ChatIn<'a> {
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    messages: Vec<MessageIn<'a>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tools: Vec<ToolIn<'a>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(borrow, default)]
    reasoning_effort: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response_format: Option<FormatIn<'a>>,
    #[serde(borrow, default)]
    verbosity: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    safety_identifier: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service_tier: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<TextOr<'a, Vec<PartIn<'a>>>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tool_calls: Vec<ToolCallIn<'a>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Cow<'a, str>>,
    /// An assistant message's reasoning, as this gateway returned it
    /// ([`chat::ReasoningDetailOut`]); entries of other kinds (another
    /// provider's reasoning text) are not this API's and are left out.
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    reasoning_details: Vec<ReasoningDetailIn<'a>>,
}

#[derive(Deserialize)]
struct ReasoningDetailIn<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    format: Option<Cow<'a, str>>,
}

impl ReasoningDetailIn<'_> {
    /// `(id, encrypted_content)` of an encrypted reasoning item of this API.
    fn encrypted(&self) -> Option<(&str, &str)> {
        let ours = self.kind.as_deref() == Some(chat::ENCRYPTED_REASONING)
            && self
                .format
                .as_deref()
                .is_none_or(|f| f == chat::RESPONSES_REASONING_FORMAT);
        match (&self.id, &self.data) {
            (Some(id), Some(data)) if ours => Some((id, data)),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct PartIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<TextOr<'a, ImageIn<'a>>>,
    #[serde(borrow, default)]
    file: Option<FileIn<'a>>,
}

#[derive(Deserialize)]
struct ImageIn<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FileIn<'a> {
    #[serde(borrow, default)]
    file_data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    filename: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolCallIn<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    function: FunctionIn<'a>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    function: Option<FunctionDefIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionDefIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct FormatIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    json_schema: Option<SchemaIn<'a>>,
}

#[derive(Deserialize)]
struct SchemaIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct RequestOut<'a> {
    model: &'a str,
    input: Vec<Item<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextOut<'a>>,
    stream: bool,
    store: bool,
    /// The reasoning items come back encrypted: `store` is false, so only
    /// their `encrypted_content` lets the next turn carry them.
    include: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Reasoning {
        id: &'a str,
        encrypted_content: &'a str,
        summary: [(); 0],
    },
    Message {
        role: &'static str,
        content: ContentOut<'a>,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: Cow<'a, str>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<PartOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum PartOut<'a> {
    #[serde(rename = "input_text")]
    Text { text: &'a str },
    #[serde(rename = "input_image")]
    Image { image_url: &'a str, detail: &'a str },
    #[serde(rename = "input_file")]
    File {
        #[serde(skip_serializing_if = "Option::is_none")]
        file_data: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<&'a str>,
    },
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: Schema<'a>,
    strict: bool,
}

/// A client's JSON schema, or an open one where Chat Completions allowed
/// none and the Responses API wants one.
#[derive(Serialize)]
#[serde(untagged)]
enum Schema<'a> {
    Raw(&'a RawValue),
    Open {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

impl<'a> Schema<'a> {
    fn of(raw: Option<&'a RawValue>) -> Self {
        raw.map_or(
            Schema::Open {
                kind: "object",
                properties: Empty {},
            },
            Schema::Raw,
        )
    }
}

#[derive(Serialize)]
struct Reasoning<'a> {
    effort: &'a str,
}

#[derive(Serialize)]
struct TextOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<FormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verbosity: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FormatOut<'a> {
    Text,
    JsonObject,
    JsonSchema {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        schema: Schema<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// The smallest `max_output_tokens` the Responses API takes.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// A Responses API client's own body for the provider's Responses API, when
/// its request is sent there (a reasoning model with tools and an effort):
/// the request as the client wrote it, with `model` named, `store: false`
/// and `max_output_tokens` at least 16. What the trip through Chat
/// Completions would lose stays: the reasoning items of earlier turns with
/// their `encrypted_content` (what lets the model go on from its own
/// reasoning between tool calls, as Codex and the Agents SDK send them with
/// `store: false`), `include`, `reasoning.summary`, `truncation`,
/// `metadata`. A reasoning item without `encrypted_content` names an item
/// OpenAI would have stored, and a stateless request cannot use it (OpenAI
/// answers 404): it is left out, as is one carrying another provider's
/// reasoning ([`chat::carry`]: a Claude thinking block from an earlier turn
/// Claude answered), which OpenAI could not decrypt.
///
/// `body` was read by [`super::responses::request_to_chat`] first: what aipipe
/// refuses of a Responses request (stored items, `previous_response_id`,
/// hosted tools) is refused there.
pub fn responses_to_request(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, ApiError> {
    let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(body) else {
        return bad("the request body must be a JSON object");
    };
    req.insert("model".into(), Value::String(upstream_model.into()));
    req.insert("store".into(), Value::Bool(false));
    if let Some(Value::Array(items)) = req.get_mut("input") {
        // OpenAI's own reasoning goes back; another provider's, which this
        // gateway carried to the client in one (`chat::carry`), is not
        // OpenAI's to read.
        items.retain(|item| {
            item.get("type").and_then(Value::as_str) != Some("reasoning")
                || item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !chat::is_carried(c))
        });
    }
    if req
        .get("max_output_tokens")
        .and_then(Value::as_u64)
        .is_some_and(|n| n < MIN_OUTPUT_TOKENS)
    {
        req.insert("max_output_tokens".into(), MIN_OUTPUT_TOKENS.into());
    }
    serde_json::to_vec(&req)
        .map_err(|e| ApiError::Internal(format!("writing the Responses request: {e}")))
}

/// Translates a Chat Completions request body into a Responses API request
/// body for `upstream_model`.
///
/// Mapped:
/// - `system` / `developer` messages → input messages of that role (in
///   place); `user` text, `image_url` and inline `file` parts →
///   `input_text`, `input_image` (detail `auto` unless set), `input_file`;
///   `assistant` text → an assistant input message, its `tool_calls` →
///   `function_call` items; `tool` messages → `function_call_output` items.
/// - `tools` (function) → flat function tools; `strict` is written `false`
///   unless the client set it, because the Responses API defaults it to
///   `true` and then refuses a schema Chat Completions takes.
/// - `tool_choice` modes as they are; a named function →
///   `{"type":"function","name"}`; `allowed_tools` → its Responses form.
/// - `max_completion_tokens`, else `max_tokens` → `max_output_tokens`
///   (at least 16, the Responses API's floor); `reasoning_effort` →
///   `reasoning.effort`; `response_format` and `verbosity` → `text`;
///   `temperature`, `top_p`, `parallel_tool_calls`, `stream`, `user`,
///   `safety_identifier`, `prompt_cache_key`, `service_tier` as they are.
/// - An assistant message's `reasoning_details` entries of kind
///   `reasoning.encrypted` (format `openai-responses-v1` or unset) →
///   `reasoning` items with their `encrypted_content`, before the message's
///   text and calls; other entries are left out.
/// - Always `store: false` and `include: ["reasoning.encrypted_content"]`.
///
/// Refused with an error naming them: `n` > 1, role `function`, audio, and
/// non-function tools (a routed request passes such a model by:
/// `plan::Plan::next_attempt`). Dropped
/// (no Responses equivalent; the answer names them: `request::ChatOnly`):
/// `stop`, `seed`, `frequency_penalty`, `presence_penalty`, `logit_bias`,
/// `logprobs`, `top_logprobs`; and silently `stream_options` (its usage
/// always comes in `response.completed`) and any other field.
pub fn chat_to_request(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, ApiError> {
    let req: ChatIn = chat::parse_request(body, "an OpenAI Chat Completions request")?;
    if req.n.is_some_and(|n| n > 1) {
        return bad("`n` above 1 cannot be sent to this model's Responses API: send n 1");
    }
    if req.messages.is_empty() {
        return bad("`messages` must contain at least one message");
    }
    let mut input = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        add_message(&mut input, i, m)?;
    }
    let mut tools = Vec::with_capacity(req.tools.len());
    for (i, t) in req.tools.iter().enumerate() {
        let Some(f) = t.function.as_ref().filter(|_| t.kind == "function") else {
            return bad(format!(
                "tools[{i}]: only function tools can be sent to this model's Responses API, got type {:?}",
                t.kind
            ));
        };
        tools.push(ToolOut {
            kind: "function",
            name: &f.name,
            description: f.description.as_deref(),
            parameters: Schema::of(f.parameters),
            strict: f.strict.unwrap_or(false),
        });
    }
    let tool_choice = if tools.is_empty() {
        None
    } else {
        req.tool_choice.as_ref().map(tool_choice).transpose()?
    };
    let format = match &req.response_format {
        None => None,
        Some(f) => Some(match f.kind.as_ref() {
            "text" => FormatOut::Text,
            "json_object" => FormatOut::JsonObject,
            "json_schema" => {
                let Some(s) = &f.json_schema else {
                    return bad("response_format.json_schema: missing");
                };
                FormatOut::JsonSchema {
                    name: &s.name,
                    description: s.description.as_deref(),
                    schema: Schema::of(s.schema),
                    strict: s.strict,
                }
            }
            other => return bad(format!("response_format.type: unknown type {other:?}")),
        }),
    };
    let text = (format.is_some() || req.verbosity.is_some()).then_some(TextOut {
        format,
        verbosity: req.verbosity.as_deref(),
    });
    let out = RequestOut {
        model: upstream_model,
        input,
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| !tools.is_empty()),
        tools,
        tool_choice,
        max_output_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .map(|n| n.max(MIN_OUTPUT_TOKENS)),
        temperature: req.temperature,
        top_p: req.top_p,
        reasoning: req
            .reasoning_effort
            .as_deref()
            .map(|effort| Reasoning { effort }),
        text,
        stream: req.stream.unwrap_or(false),
        store: false,
        include: ["reasoning.encrypted_content"],
        user: req.user.as_deref(),
        safety_identifier: req.safety_identifier.as_deref(),
        prompt_cache_key: req.prompt_cache_key.as_deref(),
        service_tier: req.service_tier.as_deref(),
    };
    serde_json::to_vec(&out).map_err(|e| {
        ApiError::BadRequest(format!("could not encode the Responses API request: {e}"))
    })
}

fn add_message<'a>(
    input: &mut Vec<Item<'a>>,
    i: usize,
    m: &'a MessageIn<'a>,
) -> Result<(), ApiError> {
    let role = match m.role.as_ref() {
        "system" => "system",
        "developer" => "developer",
        "user" => "user",
        "assistant" => "assistant",
        "tool" => {
            let Some(call_id) = m.tool_call_id.as_deref() else {
                return bad(format!("messages[{i}].tool_call_id: missing"));
            };
            input.push(Item::FunctionCallOutput {
                call_id,
                output: plain_text(i, m.content.as_ref())?,
            });
            return Ok(());
        }
        other => {
            return bad(format!(
                "messages[{i}].role: {other:?} cannot be sent to this model's Responses API"
            ));
        }
    };
    // The reasoning that led to the message and its calls comes before them,
    // as it came in the answer.
    if role == "assistant" {
        for (id, encrypted_content) in m
            .reasoning_details
            .iter()
            .filter_map(ReasoningDetailIn::encrypted)
        {
            input.push(Item::Reasoning {
                id,
                encrypted_content,
                summary: [],
            });
        }
    }
    match (role, m.content.as_ref()) {
        (_, None) => {}
        ("user", Some(TextOr::Other(parts))) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                out.push(user_part(i, j, p)?);
            }
            if !out.is_empty() {
                input.push(Item::Message {
                    role,
                    content: ContentOut::Parts(out),
                });
            }
        }
        (_, content) => {
            let text = plain_text(i, content)?;
            if !(role == "assistant" && text.is_empty()) {
                input.push(Item::Message {
                    role,
                    content: ContentOut::Text(text),
                });
            }
        }
    }
    for call in &m.tool_calls {
        input.push(Item::FunctionCall {
            call_id: &call.id,
            name: &call.function.name,
            arguments: call.function.arguments.as_deref().unwrap_or("{}"),
        });
    }
    Ok(())
}

/// A message's text: a string, or its text (and refusal) parts joined.
fn plain_text<'a>(
    i: usize,
    content: Option<&'a TextOr<'a, Vec<PartIn<'a>>>>,
) -> Result<Cow<'a, str>, ApiError> {
    match content {
        None => Ok(Cow::Borrowed("")),
        Some(TextOr::Text(t)) => Ok(Cow::Borrowed(t.as_ref())),
        Some(TextOr::Other(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.kind.as_ref(), &p.text, &p.refusal) {
                    ("text", Some(t), _) | ("refusal", _, Some(t)) => text.push_str(t),
                    (kind, ..) => {
                        return bad(format!(
                            "messages[{i}].content[{j}]: a {kind:?} part is not text, and this message's role takes only text"
                        ));
                    }
                }
            }
            Ok(Cow::Owned(text))
        }
    }
}

fn user_part<'a>(i: usize, j: usize, p: &'a PartIn<'a>) -> Result<PartOut<'a>, ApiError> {
    let at = || format!("messages[{i}].content[{j}]");
    match p.kind.as_ref() {
        "text" => match &p.text {
            Some(text) => Ok(PartOut::Text { text }),
            None => bad(format!("{}.text: missing", at())),
        },
        "image_url" => match &p.image_url {
            Some(TextOr::Text(url)) => Ok(PartOut::Image {
                image_url: url,
                detail: "auto",
            }),
            Some(TextOr::Other(image)) => Ok(PartOut::Image {
                image_url: &image.url,
                detail: image.detail.as_deref().unwrap_or("auto"),
            }),
            None => bad(format!("{}.image_url: missing", at())),
        },
        "file" => match &p.file {
            Some(f) if f.file_data.is_some() || f.file_id.is_some() => Ok(PartOut::File {
                file_data: f.file_data.as_deref(),
                file_id: f.file_id.as_deref(),
                filename: f.filename.as_deref(),
            }),
            _ => bad(format!("{}.file: needs file_data or file_id", at())),
        },
        other => bad(format!(
            "{}: a {other:?} part cannot be sent to this model's Responses API",
            at()
        )),
    }
}

/// Chat Completions' `tool_choice` in the Responses API's form.
fn tool_choice(choice: &Value) -> Result<Value, ApiError> {
    let name_of = |v: &Value| {
        v.get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => match name_of(choice) {
                Some(name) => Ok(serde_json::json!({"type": "function", "name": name})),
                None => bad("tool_choice.function.name: missing"),
            },
            Some("allowed_tools") => {
                let allowed = o.get("allowed_tools");
                let mode = allowed
                    .and_then(|a| a.get("mode"))
                    .and_then(Value::as_str)
                    .unwrap_or("auto");
                let tools: Vec<Value> = allowed
                    .and_then(|a| a.get("tools"))
                    .and_then(Value::as_array)
                    .map(|tools| {
                        tools
                            .iter()
                            .filter_map(name_of)
                            .map(|name| serde_json::json!({"type": "function", "name": name}))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(serde_json::json!({"type": "allowed_tools", "mode": mode, "tools": tools}))
            }
            _ => bad(
                "tool_choice: only \"none\", \"auto\", \"required\", a function or allowed_tools can be sent to this model's Responses API",
            ),
        },
        _ => bad("tool_choice: must be \"none\", \"auto\", \"required\" or an object"),
    }
}

// ================================================================= answers

#[derive(Deserialize)]
struct ResponseIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "chat::nullable")]
    output: Vec<OutputIn>,
    #[serde(default)]
    incomplete_details: Option<Incomplete>,
    #[serde(default, deserialize_with = "readable")]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<ErrorIn>,
}

/// A `usage` that cannot be read is no usage: the answer still reaches the
/// client (and its record says the usage was not read).
fn readable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<UsageIn>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

#[derive(Deserialize)]
struct Incomplete {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct OutputIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "chat::nullable")]
    content: Vec<OutputContentIn>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    encrypted_content: Option<String>,
}

impl OutputIn {
    /// `(id, encrypted_content)` of a reasoning item that carries both.
    fn encrypted_reasoning(&self) -> Option<(&str, &str)> {
        match (&self.id, &self.encrypted_content) {
            (Some(id), Some(data)) if self.kind == "reasoning" => Some((id, data)),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct OutputContentIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct UsageIn {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl UsageIn {
    fn tokens(&self) -> Tokens {
        Tokens {
            prompt: self.input_tokens,
            completion: self.output_tokens,
            cached: self.input_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write: 0,
        }
    }

    fn chat(&self) -> UsageOut {
        UsageOut::from(self.tokens())
            .with_reasoning(self.output_tokens_details.map_or(0, |d| d.reasoning_tokens))
    }
}

/// The token counts of a Responses API answer: a whole `response` object,
/// or a streamed event that carries one (`response.completed`,
/// `response.incomplete`, `response.failed`). None for anything else, an
/// Anthropic answer included (whose `usage` has the same field names).
pub fn responses_usage(json: &[u8]) -> Option<Tokens> {
    #[derive(Deserialize)]
    struct Holder {
        #[serde(default)]
        object: Option<String>,
        #[serde(default)]
        usage: Option<UsageIn>,
        #[serde(default)]
        response: Option<Box<Holder>>,
    }
    let h: Holder = serde_json::from_slice(json).ok()?;
    let h = match h.response {
        Some(inner) => *inner,
        None => h,
    };
    if h.object.as_deref() != Some("response") {
        return None;
    }
    h.usage.map(|u| u.tokens())
}

/// Whether a streamed event's data may carry the answer's usage (a cheap
/// test before [`responses_usage`] parses it).
pub fn may_carry_usage(data: &[u8]) -> bool {
    crate::bytes::contains(data, b"\"response.completed\"")
        || crate::bytes::contains(data, b"\"response.incomplete\"")
        || crate::bytes::contains(data, b"\"response.failed\"")
}

/// Chat Completions' `finish_reason` for a finished response.
fn finish_reason(status: Option<&str>, reason: Option<&str>, tool_calls: bool) -> &'static str {
    match (status, reason) {
        (Some("incomplete"), Some("content_filter")) => "content_filter",
        (Some("incomplete"), _) => "length",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasoning_details: Vec<ReasoningDetailOut<'a>>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// A whole Responses API answer as a `chat.completion` for `model` (the
/// name the client sees). Output text of every message item is joined;
/// `function_call` items become `tool_calls`; reasoning items with their
/// `encrypted_content` become `reasoning_details` entries
/// ([`ReasoningDetailOut`]), which [`chat_to_request`] turns back into
/// reasoning items on the next turn.
pub fn response_to_chat(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    let r: ResponseIn = serde_json::from_slice(body)
        .map_err(|e| TranslateError(format!("unreadable Responses API answer: {e}")))?;
    if r.status.as_deref() == Some("failed") {
        let message = r.error.and_then(|e| e.message).unwrap_or_default();
        return Err(TranslateError(format!(
            "the Responses API answer failed: {message}"
        )));
    }
    let (mut text, mut refusal) = (None::<String>, None::<String>);
    let mut tool_calls = Vec::new();
    let mut reasoning_details = Vec::new();
    for item in &r.output {
        if let Some((id, data)) = item.encrypted_reasoning() {
            reasoning_details.push(ReasoningDetailOut::encrypted(
                reasoning_details.len(),
                id,
                data,
            ));
        }
        match item.kind.as_str() {
            "message" => {
                for c in &item.content {
                    match (c.kind.as_str(), &c.text, &c.refusal) {
                        ("output_text", Some(t), _) => text.get_or_insert_default().push_str(t),
                        ("refusal", _, Some(t)) => refusal.get_or_insert_default().push_str(t),
                        _ => {}
                    }
                }
            }
            "function_call" => tool_calls.push(ToolCallOut {
                id: item.call_id.as_deref().unwrap_or_default(),
                kind: "function",
                function: FunctionOut {
                    name: item.name.as_deref().unwrap_or_default(),
                    arguments: item.arguments.as_deref().unwrap_or("{}"),
                },
            }),
            _ => {}
        }
    }
    let finish = finish_reason(
        r.status.as_deref(),
        r.incomplete_details
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        !tool_calls.is_empty(),
    );
    let out = CompletionOut {
        id: r.id.as_deref().unwrap_or("resp_unknown"),
        object: "chat.completion",
        created,
        model,
        choices: [ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: text,
                refusal,
                tool_calls,
                reasoning_details,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: r.usage.map(|u| u.chat()),
    };
    serde_json::to_vec(&out)
        .map_err(|e| TranslateError(format!("could not encode the chat completion: {e}")))
}

// ================================================================= streams

#[derive(Deserialize)]
struct EventIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    output_index: Option<usize>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    item: Option<OutputIn>,
    #[serde(default)]
    response: Option<ResponseIn>,
    /// An `error` event's own fields.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A streamed Responses API answer → OpenAI `chat.completion.chunk` SSE,
/// event by event, whatever the network chunk boundaries:
///
/// - `response.created` → a first chunk with `delta.role = "assistant"`;
/// - `response.output_text.delta` → `delta.content`; a refusal's deltas →
///   `delta.refusal`;
/// - a `function_call` item (`response.output_item.added`) →
///   `delta.tool_calls[{index, id, type, function: {name, arguments: ""}}]`,
///   then each `response.function_call_arguments.delta` → an `arguments`
///   fragment with the same `index`;
/// - `response.completed` / `response.incomplete` → a chunk with
///   `finish_reason`, with `include_usage` a `choices: []` chunk carrying
///   the usage, then `data: [DONE]`;
/// - a reasoning item with its `encrypted_content`
///   (`response.output_item.done`) → `delta.reasoning_details[{type:
///   "reasoning.encrypted", id, data, format, index}]`;
/// - `response.failed` and `error` → `data: {"error":{…}}`, and the stream
///   ends there; other reasoning events and anything else → nothing.
///
/// A stream that ends before its response completed ends with an error
/// chunk.
#[derive(Debug)]
pub struct ResponsesToChatStream {
    parser: SseParser,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    started: bool,
    /// Output index → the tool call's index among the answer's calls.
    calls: Vec<(usize, usize)>,
    /// Tool calls whose arguments streamed (the others get theirs whole).
    with_arguments: Vec<usize>,
    /// Reasoning items passed on so far (the next one's `index`).
    reasoning: usize,
    done: bool,
}

impl ResponsesToChatStream {
    /// `model` is the name the client sees; `created` the unix time of the
    /// request; `include_usage` whether the client asked for the usage
    /// chunk.
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        ResponsesToChatStream {
            parser: SseParser::default(),
            state: StreamState {
                model: model.to_owned(),
                created,
                include_usage,
                id: "resp_unknown".to_owned(),
                started: false,
                calls: Vec::new(),
                with_arguments: Vec::new(),
                reasoning: 0,
                done: false,
            },
        }
    }

    /// Feeds a chunk of the upstream body; appends translated SSE to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    /// The upstream body ended: completes the client's stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        if !state.done {
            state.error(
                "The OpenAI stream ended before the answer was complete. Retry the request.",
                "upstream_stream_truncated",
                out,
            );
        }
    }
}

impl StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let event = match serde_json::from_slice::<EventIn>(data) {
            Ok(e) => e,
            Err(e) => {
                log::debug!("skipping unreadable Responses API stream event: {e}");
                return;
            }
        };
        match event.kind.as_str() {
            "response.created" | "response.in_progress" => {
                if let Some(id) = event.response.and_then(|r| r.id) {
                    self.id = id;
                }
                self.start(out);
            }
            "response.output_text.delta" => {
                if let Some(d) = event.delta.as_deref().filter(|d| !d.is_empty()) {
                    self.delta(
                        DeltaOut {
                            content: Some(d),
                            ..DeltaOut::default()
                        },
                        out,
                    );
                }
            }
            "response.refusal.delta" => {
                if let Some(d) = event.delta.as_deref().filter(|d| !d.is_empty()) {
                    self.delta(
                        DeltaOut {
                            refusal: Some(d),
                            ..DeltaOut::default()
                        },
                        out,
                    );
                }
            }
            "response.output_item.added" => {
                let (Some(item), Some(at)) = (event.item, event.output_index) else {
                    return;
                };
                if item.kind != "function_call" {
                    return;
                }
                let index = self.calls.len();
                self.calls.push((at, index));
                self.tool_delta(
                    ToolDeltaOut::start(
                        index,
                        item.call_id.as_deref().unwrap_or_default(),
                        item.name.as_deref().unwrap_or_default(),
                    ),
                    out,
                );
            }
            "response.function_call_arguments.delta" => {
                let (Some(index), Some(d)) = (
                    self.call_at(event.output_index),
                    event.delta.as_deref().filter(|d| !d.is_empty()),
                ) else {
                    return;
                };
                if !self.with_arguments.contains(&index) {
                    self.with_arguments.push(index);
                }
                self.arguments(index, d, out);
            }
            "response.output_item.done" => {
                let Some(item) = event.item else {
                    return;
                };
                if let Some((id, data)) = item.encrypted_reasoning() {
                    let detail = ReasoningDetailOut::encrypted(self.reasoning, id, data);
                    self.reasoning += 1;
                    self.delta(
                        DeltaOut {
                            reasoning_details: Some([detail]),
                            ..DeltaOut::default()
                        },
                        out,
                    );
                    return;
                }
                // Arguments that never streamed arrive whole here.
                let Some(index) = self.call_at(event.output_index) else {
                    return;
                };
                if !self.with_arguments.contains(&index) {
                    self.with_arguments.push(index);
                    self.arguments(index, item.arguments.as_deref().unwrap_or("{}"), out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let Some(r) = event.response else {
                    return;
                };
                let finish = finish_reason(
                    r.status.as_deref(),
                    r.incomplete_details
                        .as_ref()
                        .and_then(|d| d.reason.as_deref()),
                    !self.calls.is_empty(),
                );
                self.start(out);
                self.emit(
                    vec![self.choice(DeltaOut::default(), Some(finish))],
                    None,
                    out,
                );
                if self.include_usage {
                    self.emit(
                        Vec::new(),
                        Some(Some(r.usage.unwrap_or_default().chat())),
                        out,
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "response.failed" => {
                let message = event
                    .response
                    .and_then(|r| r.error)
                    .and_then(|e| e.message)
                    .unwrap_or_else(|| "OpenAI reported that the response failed".to_owned());
                self.error(&message, "upstream_error", out);
            }
            "error" => {
                let message = event
                    .message
                    .unwrap_or_else(|| "OpenAI reported an error without a message".to_owned());
                let code = event.code.unwrap_or_else(|| "upstream_error".to_owned());
                self.error(&message, &code, out);
            }
            _ => {}
        }
    }

    fn call_at(&self, output_index: Option<usize>) -> Option<usize> {
        let at = output_index?;
        self.calls.iter().find(|(o, _)| *o == at).map(|(_, i)| *i)
    }

    /// Sends the role chunk once, before anything else.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.emit(
            vec![self.choice(
                DeltaOut {
                    role: Some("assistant"),
                    content: Some(""),
                    ..DeltaOut::default()
                },
                None,
            )],
            None,
            out,
        );
    }

    fn delta(&mut self, delta: DeltaOut<'_>, out: &mut Vec<u8>) {
        self.start(out);
        self.emit(vec![self.choice(delta, None)], None, out);
    }

    fn tool_delta(&mut self, tool: ToolDeltaOut<'_>, out: &mut Vec<u8>) {
        self.delta(
            DeltaOut {
                tool_calls: Some([tool]),
                ..DeltaOut::default()
            },
            out,
        );
    }

    fn arguments(&mut self, index: usize, fragment: &str, out: &mut Vec<u8>) {
        self.tool_delta(ToolDeltaOut::arguments(index, fragment), out);
    }

    fn choice<'a>(&self, delta: DeltaOut<'a>, finish: Option<&'static str>) -> ChunkChoiceOut<'a> {
        ChunkChoiceOut {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }
    }

    fn emit(
        &self,
        choices: Vec<ChunkChoiceOut<'_>>,
        usage: Option<Option<UsageOut>>,
        out: &mut Vec<u8>,
    ) {
        // With `include_usage`, OpenAI sends `"usage": null` on every chunk
        // but the last.
        let usage = match usage {
            Some(u) => Some(u),
            None if self.include_usage => Some(None),
            None => None,
        };
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        write_chunk(&chunk, out);
    }

    fn error(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        let body = serde_json::json!({"error": {
            "message": message, "type": "api_error", "param": null, "code": code,
        }});
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(body.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(chat: &str) -> Value {
        let out = chat_to_request(chat.as_bytes(), "gpt-6-luna").unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_chat_request_with_tools_and_an_effort_becomes_a_responses_request() {
        let chat = r#"{"model":"auto","reasoning_effort":"low","max_tokens":300,"stream":true,
            "stream_options":{"include_usage":true},"stop":["x"],"seed":3,
            "messages":[
              {"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"4 degrees"},
              {"role":"user","content":"and tomorrow?"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
                     {"type":"function","function":{"name":"now"}}],
            "tool_choice":{"type":"function","function":{"name":"get_weather"}},
            "parallel_tool_calls":false,
            "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}}}"#;
        let out = translate(chat);
        assert_eq!(
            out,
            serde_json::json!({
                "model": "gpt-6-luna",
                "input": [
                    {"type": "message", "role": "system", "content": "be brief"},
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]},
                    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "4 degrees"},
                    {"type": "message", "role": "user", "content": "and tomorrow?"}],
                "tools": [
                    {"type": "function", "name": "get_weather", "description": "Weather",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": false},
                    {"type": "function", "name": "now", "parameters": {"type": "object", "properties": {}}, "strict": false}],
                "tool_choice": {"type": "function", "name": "get_weather"},
                "parallel_tool_calls": false,
                "max_output_tokens": 300,
                "reasoning": {"effort": "low"},
                "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
                "stream": true,
                "store": false,
                "include": ["reasoning.encrypted_content"],
            })
        );
    }

    /// The reasoning of a tool-calling turn reaches a Chat client as the
    /// message's `reasoning_details` (whole and streamed), and the message
    /// sent back with the tool's output carries it to the model as the
    /// reasoning item it was, before the call; reasoning of another kind
    /// (MiniMax's text) or without its encrypted content is left out.
    #[test]
    fn reasoning_goes_to_a_chat_client_and_back_to_the_model() {
        let answer = WHOLE.replace(
            r#"{"type":"reasoning","id":"rs_1","summary":[]}"#,
            r#"{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAA-one"},
               {"type":"reasoning","id":"rs_2","summary":[]}"#,
        );
        let chat: Value =
            serde_json::from_slice(&response_to_chat(answer.as_bytes(), "gpt-6-luna", 7).unwrap())
                .unwrap();
        let message = &chat["choices"][0]["message"];
        assert_eq!(
            message["reasoning_details"],
            serde_json::json!([{"type": "reasoning.encrypted", "id": "rs_1", "data": "gAAAA-one",
                "format": "openai-responses-v1", "index": 0}])
        );
        let mut back = message.clone();
        back["reasoning_details"].as_array_mut().unwrap().extend([
            serde_json::json!({"type": "reasoning.text", "id": "reasoning-text-1",
                    "format": "MiniMax-response-v1", "index": 0, "text": "hmm"}),
            serde_json::json!({"type": "reasoning.encrypted", "id": "x", "data": "y",
                    "format": "anthropic-claude-v1", "index": 1}),
        ]);
        let next = serde_json::json!({"model": "auto", "reasoning_effort": "low",
            "messages": [{"role": "user", "content": "weather in Oslo?"}, back,
                {"role": "tool", "tool_call_id": "call_9", "content": "4 degrees"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
        let out = translate(&next.to_string());
        assert_eq!(
            out["input"],
            serde_json::json!([
                {"type": "message", "role": "user", "content": "weather in Oslo?"},
                {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA-one", "summary": []},
                {"type": "message", "role": "assistant", "content": "Hello there"},
                {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call_output", "call_id": "call_9", "output": "4 degrees"}])
        );
        // Without reasoning: no member at all.
        let plain: Value =
            serde_json::from_slice(&response_to_chat(WHOLE.as_bytes(), "m", 7).unwrap()).unwrap();
        assert!(
            plain["choices"][0]["message"]
                .get("reasoning_details")
                .is_none()
        );

        // Streamed: the item's end carries it, once.
        let done = serde_json::json!({"type":"response.output_item.done","output_index":0,
            "item":{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAA-one"}});
        let stream = sse(&[
            serde_json::json!({"type":"response.created","response":{"id":"resp_1"}}),
            serde_json::json!({"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}),
            done,
            serde_json::json!({"type":"response.completed","response":serde_json::from_str::<Value>(WHOLE).unwrap()}),
        ]);
        let mut out = Vec::new();
        let mut t = ResponsesToChatStream::new("gpt-6-luna", 7, false);
        t.feed(stream.as_bytes(), &mut out);
        t.finish(&mut out);
        let details: Vec<Value> = chunks(&out)
            .iter()
            .filter_map(|c| c["choices"][0]["delta"].get("reasoning_details").cloned())
            .collect();
        assert_eq!(details, [message["reasoning_details"].clone()]);
    }

    #[test]
    fn what_the_responses_api_cannot_take_is_refused_or_floored() {
        let small = translate(
            r#"{"model":"m","max_completion_tokens":4,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(small["max_output_tokens"], 16);
        assert_eq!(small["store"], false);
        assert!(small.get("tools").is_none() && small.get("reasoning").is_none());
        for (body, says) in [
            (r#"{"messages":[]}"#, "at least one message"),
            (
                r#"{"n":2,"messages":[{"role":"user","content":"hi"}]}"#,
                "`n`",
            ),
            (
                r#"{"messages":[{"role":"function","name":"f","content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
                "messages[0].content[0]",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"c"}}]}"#,
                "tools[0]",
            ),
            (
                r#"{"messages":[{"role":"tool","content":"x"}]}"#,
                "tool_call_id",
            ),
        ] {
            let e = chat_to_request(body.as_bytes(), "m").unwrap_err();
            assert!(format!("{e:?}").contains(says), "{body}: {e:?}");
        }
    }

    const WHOLE: &str = r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-6-luna",
        "output":[{"type":"reasoning","id":"rs_1","summary":[]},
                  {"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello ","annotations":[]},{"type":"output_text","text":"there","annotations":[]}]},
                  {"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Oslo\"}","status":"completed"}],
        "usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":16},"total_tokens":50}}"#;

    #[test]
    fn a_whole_answer_becomes_a_chat_completion() {
        let out = response_to_chat(WHOLE.as_bytes(), "gpt-6-luna", 7).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "resp_1", "object": "chat.completion", "created": 7, "model": "gpt-6-luna",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": null,
                    "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                    "logprobs": null, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50,
                    "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 16}}
            })
        );
        assert_eq!(
            responses_usage(WHOLE.as_bytes()),
            Some(Tokens {
                prompt: 20,
                completion: 30,
                cached: 8,
                cache_write: 0
            })
        );
        let cut = r#"{"id":"r","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[]}"#;
        let v: Value =
            serde_json::from_slice(&response_to_chat(cut.as_bytes(), "m", 1).unwrap()).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert!(response_to_chat(b"nope", "m", 1).is_err());
        let spoiled = WHOLE.replace(
            r#""usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":16},"total_tokens":50}"#,
            r#""usage":"unreadable""#,
        );
        let v: Value =
            serde_json::from_slice(&response_to_chat(spoiled.as_bytes(), "m", 1).unwrap()).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"], "Hello there",
            "the answer, without usage"
        );
        assert!(v.get("usage").is_none());
        assert_eq!(responses_usage(spoiled.as_bytes()), None);
        // Anthropic's usage has the same names; it is not a response.
        let anthropic = br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert_eq!(responses_usage(anthropic), None);
    }

    fn sse(events: &[Value]) -> String {
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect()
    }

    fn chunks(out: &[u8]) -> Vec<Value> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| {
                if d == "[DONE]" {
                    Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(d).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn a_stream_becomes_chat_chunks_whatever_its_boundaries() {
        let completed: Value = serde_json::from_str(WHOLE).unwrap();
        let stream = sse(&[
            serde_json::json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}),
            serde_json::json!({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}),
            serde_json::json!({"type":"response.output_item.added","sequence_number":2,"output_index":1,"item":{"type":"message","id":"msg_1","role":"assistant","content":[]}}),
            serde_json::json!({"type":"response.output_text.delta","sequence_number":3,"output_index":1,"content_index":0,"item_id":"msg_1","delta":"Hello "}),
            serde_json::json!({"type":"response.output_text.delta","sequence_number":4,"output_index":1,"content_index":0,"item_id":"msg_1","delta":"there"}),
            serde_json::json!({"type":"response.output_item.added","sequence_number":5,"output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":""}}),
            serde_json::json!({"type":"response.function_call_arguments.delta","sequence_number":6,"output_index":2,"item_id":"fc_1","delta":"{\"city\":"}),
            serde_json::json!({"type":"response.function_call_arguments.delta","sequence_number":7,"output_index":2,"item_id":"fc_1","delta":"\"Oslo\"}"}),
            serde_json::json!({"type":"response.output_item.done","sequence_number":8,"output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}),
            serde_json::json!({"type":"response.completed","sequence_number":9,"response":completed}),
        ]);
        let mut whole = Vec::new();
        let mut t = ResponsesToChatStream::new("gpt-6-luna", 7, true);
        t.feed(stream.as_bytes(), &mut whole);
        t.finish(&mut whole);
        let mut split = Vec::new();
        let mut t = ResponsesToChatStream::new("gpt-6-luna", 7, true);
        for b in stream.as_bytes().chunks(7) {
            t.feed(b, &mut split);
        }
        t.finish(&mut split);
        assert_eq!(whole, split);
        let c = chunks(&whole);
        assert_eq!(
            c[0]["choices"][0]["delta"],
            serde_json::json!({"role":"assistant","content":""})
        );
        assert_eq!(c[0]["id"], "resp_1");
        assert_eq!(c[0]["usage"], Value::Null);
        let text: String = c
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello there");
        let args: String = c
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(
            args, "{\"city\":\"Oslo\"}",
            "arguments once, not again at the item's end"
        );
        let call = c
            .iter()
            .find(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_9")
            .unwrap();
        assert_eq!(
            call["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let n = c.len();
        assert_eq!(c[n - 3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[n - 2]["choices"], serde_json::json!([]));
        assert_eq!(
            c[n - 2]["usage"]["completion_tokens_details"]["reasoning_tokens"],
            16
        );
        assert_eq!(c[n - 1], "[DONE]");

        // Without include_usage: no usage members at all.
        let mut out = Vec::new();
        let mut t = ResponsesToChatStream::new("m", 7, false);
        t.feed(stream.as_bytes(), &mut out);
        t.finish(&mut out);
        assert!(chunks(&out).iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn a_cut_or_failed_stream_ends_with_an_error_chunk() {
        let cut = sse(&[serde_json::json!({"type":"response.created","response":{"id":"r"}})]);
        let mut out = Vec::new();
        let mut t = ResponsesToChatStream::new("m", 1, false);
        t.feed(cut.as_bytes(), &mut out);
        t.finish(&mut out);
        let c = chunks(&out);
        assert_eq!(
            c.last().unwrap()["error"]["code"],
            "upstream_stream_truncated"
        );

        let failed = sse(&[
            serde_json::json!({"type":"error","code":"server_error","message":"boom","sequence_number":1}),
        ]);
        let mut out = Vec::new();
        let mut t = ResponsesToChatStream::new("m", 1, false);
        t.feed(failed.as_bytes(), &mut out);
        t.finish(&mut out);
        let c = chunks(&out);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["error"]["message"], "boom");
        assert!(may_carry_usage(br#"{"type":"response.completed"}"#));
        assert!(!may_carry_usage(
            br#"{"type":"response.output_text.delta"}"#
        ));
    }

    /// A reasoning item this gateway wrote to carry Claude's thinking is not
    /// OpenAI's: a Responses client's body for OpenAI goes without it.
    #[test]
    fn carried_reasoning_items_do_not_reach_openai() {
        let carried = chat::carry(
            &serde_json::json!({"type": "reasoning.text", "text": "t", "signature": "s",
            "format": "anthropic-claude-v1"}),
        );
        let body = serde_json::json!({"model": "auto", "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_c", "summary": [], "encrypted_content": carried},
            {"type": "reasoning", "id": "rs_o", "summary": [], "encrypted_content": "gAAAA-openai"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]});
        let out: Value = serde_json::from_slice(
            &responses_to_request(&serde_json::to_vec(&body).unwrap(), "gpt-6-luna").unwrap(),
        )
        .unwrap();
        let ids: Vec<&str> = out["input"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(ids, ["rs_o"], "{out}");
    }
}
