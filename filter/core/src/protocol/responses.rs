//! Clients that speak the OpenAI Responses API (`POST /v1/responses`: the
//! `openai` SDK's `client.responses.create`, agents built on it), routed like
//! every other request: the request becomes a Chat Completions request
//! ([`request_to_chat`]), and the chat answer comes back as a Responses
//! `response` object ([`chat_to_response`]) or, streamed, as its event stream
//! ([`ChatToResponsesStream`]).
//!
//! The gateway is stateless and routes to many providers, so what needs
//! OpenAI's storage or hosted tools is refused with a message that says what
//! to send instead: `previous_response_id`, `conversation`, `prompt`
//! templates, `background`, `item_reference` items, files by id and built-in
//! tools (web search, file search, computer use, code interpreter, …).
//!
//! Errors need no translation: the Responses API uses OpenAI's error shape
//! (`{"error":{"message","type","param","code"}}`), which is what
//! [`ApiError::body`] writes and OpenAI-format providers answer.
//!
//! The `chat` submodule holds the Chat Completions wire types this module
//! and [`crate::protocol::ollama`] translate to and from.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::chat::{self, TextOr};
use crate::error::ApiError;
use crate::protocol::Tokens;
use crate::protocol::TranslateError;
use crate::sse::SseParser;

fn bad<T>(message: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::BadRequest(message.into()))
}

// ================================================================ requests

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<TextOr<'a, Vec<&'a RawValue>>>,
    #[serde(borrow, default)]
    instructions: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tools: Vec<WireTool<'a>>,
    #[serde(borrow, default)]
    tool_choice: Option<TextOr<'a, WireToolChoice<'a>>>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(borrow, default)]
    text: Option<WireText<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    safety_identifier: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    previous_response_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(borrow, default)]
    reasoning: Option<WireReasoning<'a>>,
}

#[derive(Deserialize)]
struct WireReasoning<'a> {
    #[serde(borrow, default)]
    effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireTool<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct WireToolChoice<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "chat::nullable")]
    tools: Vec<WireToolChoice<'a>>,
}

#[derive(Deserialize)]
struct WireText<'a> {
    #[serde(borrow, default)]
    format: Option<WireFormat<'a>>,
}

#[derive(Deserialize)]
struct WireFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

/// What every input item has: how to read the rest of it.
#[derive(Deserialize)]
struct ItemHead<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageItem<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: TextOr<'a, Vec<InputPart<'a>>>,
}

#[derive(Deserialize)]
struct CallItem<'a> {
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallOutputItem<'a> {
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[serde(borrow)]
    output: TextOr<'a, Vec<InputPart<'a>>>,
}

#[derive(Deserialize)]
struct ReasoningItem<'a> {
    #[serde(borrow, default)]
    encrypted_content: Option<Cow<'a, str>>,
}

/// A content part of any kind the API defines; which fields matter depends
/// on `type`.
#[derive(Deserialize)]
struct InputPart<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    filename: Option<Cow<'a, str>>,
}

const STATELESS: &str = "aipipe is stateless and stores no responses or conversations: send the whole conversation as `input` items (the earlier outputs included) instead";

/// Translates a Responses API request body into a Chat Completions request
/// body.
///
/// `model` is kept (`"auto"` when absent); `instructions` → a leading system
/// message; `input` as a string → one user message; as items: messages
/// (`user`, `assistant`, `system`, and `developer` → `system`; string
/// content, or `input_text` / `output_text` / `refusal` text, `input_image`
/// (URL or data URL, with its `detail`) and `input_file` (`file_data`)
/// parts), `function_call` → the assistant turn's `tool_calls` (calls in a
/// row, and the text turn just before them, make one assistant message),
/// `function_call_output` → a `tool` message; a `reasoning` item this
/// gateway wrote (another provider's reasoning, carried in its
/// `encrypted_content`: [`chat::carry`]) → the assistant turn's
/// `reasoning_details`, and any other `reasoning` item is dropped.
/// `tools` (function tools: name, description, parameters, strict),
/// `tool_choice` (`allowed_tools` keeps only the allowed tools),
/// `parallel_tool_calls`, `max_output_tokens` → `max_tokens`,
/// `temperature`, `top_p`, `text.format` (json_object, json_schema) →
/// `response_format`, `reasoning.effort` → `reasoning_effort` (which the
/// answering model gets its own way, or not at all: filter/README.md, "What
/// a model accepts"), `user` (or `safety_identifier`) and `stream` (with
/// `stream_options.include_usage`, which [`ChatToResponsesStream`] needs) are
/// mapped. `store`, `metadata`, `include`, `reasoning.summary`, `truncation`,
/// `service_tier` and the like are accepted and dropped: nothing is stored.
pub fn request_to_chat(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let wire: Wire<'_> = chat::parse_request(body, "an OpenAI Responses request")?;
    if wire.previous_response_id.is_some() {
        return bad(format!(
            "`previous_response_id` is not supported: {STATELESS}."
        ));
    }
    if wire.conversation.is_some() {
        return bad(format!("`conversation` is not supported: {STATELESS}."));
    }
    if wire.prompt.is_some() {
        return bad(
            "`prompt` templates are stored by OpenAI and not available through aipipe: send the instructions and input themselves.",
        );
    }
    if wire.background == Some(true) {
        return bad(
            "`background: true` is not supported: aipipe stores no responses to poll later. Send the request without `background` (with `stream: true` for long answers).",
        );
    }

    let mut messages = Vec::new();
    if let Some(text) = wire.instructions.filter(|t| !t.is_empty()) {
        messages.push(chat::Message::text("system", text));
    }
    match wire.input {
        None => {
            return bad(
                "missing field `input`: send the user's message as a string, or the conversation as a list of input items",
            );
        }
        Some(TextOr::Text(text)) => {
            if text.is_empty() {
                return bad("`input` is empty: send the user's message");
            }
            messages.push(chat::Message::text("user", text));
        }
        Some(TextOr::Other(items)) => {
            for (i, raw) in items.iter().enumerate() {
                add_item(i, raw, &mut messages)?;
            }
            // Reasoning that led to no text or call has nothing to go with.
            messages.retain(|m| {
                !(m.role == "assistant"
                    && matches!(m.content, chat::Content::Null)
                    && m.tool_calls.is_empty())
            });
        }
    }
    if !messages.iter().any(|m| m.role != "system") {
        return bad("`input` must contain at least one message");
    }

    let mut tools = Vec::with_capacity(wire.tools.len());
    for (k, t) in wire.tools.into_iter().enumerate() {
        if t.kind != "function" {
            return bad(format!(
                "tools[{k}]: built-in tool `{}` is not available through aipipe, which routes to many providers: only `function` tools are. Declare it as a function tool and run it in your code.",
                t.kind
            ));
        }
        let Some(name) = t.name else {
            return bad(format!("tools[{k}].name must be a string"));
        };
        tools.push(chat::Tool::function(
            name,
            t.description,
            t.parameters,
            t.strict,
        ));
    }
    let choice = match wire.tool_choice {
        None => None,
        Some(TextOr::Text(mode)) => Some(chat::ToolChoice::Mode(tool_mode(&mode)?)),
        Some(TextOr::Other(c)) => Some(object_tool_choice(c, &mut tools)?),
    };
    let response_format = match wire.text.and_then(|t| t.format) {
        None => None,
        Some(f) => match &*f.kind {
            "text" => None,
            "json_object" => Some(chat::ResponseFormat::JsonObject),
            "json_schema" => {
                let Some(schema) = f.schema else {
                    return bad("`text.format.schema` must be a JSON schema object");
                };
                Some(chat::ResponseFormat::JsonSchema {
                    json_schema: chat::JsonSchema {
                        name: f.name.unwrap_or(Cow::Borrowed("response")),
                        description: f.description,
                        schema,
                        strict: f.strict,
                    },
                })
            }
            other => {
                return bad(format!(
                    "`text.format.type` must be text, json_object or json_schema, not `{other}`"
                ));
            }
        },
    };

    let model = wire
        .model
        .filter(|m| !m.is_empty())
        .unwrap_or(Cow::Borrowed("auto"));
    let mut req = chat::Request::new(model, messages);
    req.set_tools(tools, choice, wire.parallel_tool_calls);
    req.response_format = response_format;
    req.max_tokens = wire.max_output_tokens;
    req.temperature = wire.temperature;
    req.top_p = wire.top_p;
    req.user = wire.user.or(wire.safety_identifier);
    req.reasoning_effort = wire.reasoning.and_then(|r| r.effort);
    req.set_stream(wire.stream == Some(true));
    req.encode()
}

fn tool_mode(mode: &str) -> Result<&'static str, ApiError> {
    match mode {
        "none" => Ok("none"),
        "auto" => Ok("auto"),
        "required" => Ok("required"),
        other => bad(format!(
            "`tool_choice` must be none, auto, required or an object naming a function, not `{other}`"
        )),
    }
}

fn object_tool_choice<'a>(
    c: WireToolChoice<'a>,
    tools: &mut Vec<chat::Tool<'a>>,
) -> Result<chat::ToolChoice<'a>, ApiError> {
    match &*c.kind {
        "function" => match c.name {
            Some(name) => Ok(chat::ToolChoice::function(name)),
            None => bad("`tool_choice.name` must be a string"),
        },
        "allowed_tools" => {
            let mut allowed = Vec::with_capacity(c.tools.len());
            for (k, t) in c.tools.iter().enumerate() {
                match (&*t.kind, &t.name) {
                    ("function", Some(name)) => allowed.push(name),
                    _ => {
                        return bad(format!(
                            "tool_choice.tools[{k}] must be a function tool with a `name`"
                        ));
                    }
                }
            }
            tools.retain(|t| allowed.contains(&&t.function.name));
            if tools.is_empty() {
                return bad("`tool_choice.tools` names none of the function tools in `tools`");
            }
            tool_mode(c.mode.as_deref().unwrap_or("auto")).map(chat::ToolChoice::Mode)
        }
        other => bad(format!(
            "`tool_choice`: `{other}` is a built-in tool, which aipipe does not offer: use none, auto, required, or a function"
        )),
    }
}

fn add_item<'a>(
    i: usize,
    raw: &'a RawValue,
    messages: &mut Vec<chat::Message<'a>>,
) -> Result<(), ApiError> {
    let at = |e: serde_json::Error| ApiError::BadRequest(format!("input[{i}]: {e}"));
    let head: ItemHead<'a> = serde_json::from_str(raw.get()).map_err(at)?;
    match head.kind.as_deref() {
        None | Some("message") => {
            let item: MessageItem<'a> = serde_json::from_str(raw.get()).map_err(at)?;
            add_message(i, item, messages)
        }
        Some("function_call") => {
            let item: CallItem<'a> = serde_json::from_str(raw.get()).map_err(at)?;
            let arguments = item
                .arguments
                .filter(|a| !a.trim().is_empty())
                .unwrap_or(Cow::Borrowed("{}"));
            chat::push_call(
                messages,
                chat::ToolCall::new(item.call_id, item.name, arguments),
            );
            Ok(())
        }
        Some("function_call_output") => {
            let item: CallOutputItem<'a> = serde_json::from_str(raw.get()).map_err(at)?;
            let text = match item.output {
                TextOr::Text(t) => t,
                TextOr::Other(parts) => {
                    let mut texts = Vec::with_capacity(parts.len());
                    for (j, p) in parts.into_iter().enumerate() {
                        match (&*p.kind, p.text) {
                            ("input_text" | "output_text" | "text", Some(t)) => texts.push(t),
                            (kind, _) => {
                                return bad(format!(
                                    "input[{i}].output[{j}]: only text tool outputs can be sent through aipipe, not `{kind}`"
                                ));
                            }
                        }
                    }
                    Cow::Owned(texts.join("\n"))
                }
            };
            messages.push(chat::Message::tool_result(item.call_id, text));
            Ok(())
        }
        // Reasoning from an earlier turn. Another provider's, which this
        // gateway carried in it, goes back to that turn; OpenAI's own cannot
        // be read by other models. (Sent to OpenAI's Responses API, the
        // client's body goes as it is, OpenAI's items included:
        // `responses_upstream::responses_to_request`.)
        Some("reasoning") => {
            let item: ReasoningItem<'a> = serde_json::from_str(raw.get()).map_err(at)?;
            if let Some(detail) = item.encrypted_content.as_deref().and_then(chat::carried) {
                chat::push_reasoning(messages, detail);
            }
            Ok(())
        }
        Some("item_reference") => bad(format!(
            "input[{i}]: `item_reference` points at a stored item, and aipipe stores nothing: send the item itself"
        )),
        Some(other) => bad(format!(
            "input[{i}]: item type `{other}` is not supported: aipipe accepts message, function_call and function_call_output items (built-in tool calls need OpenAI's hosted tools)"
        )),
    }
}

fn add_message<'a>(
    i: usize,
    item: MessageItem<'a>,
    messages: &mut Vec<chat::Message<'a>>,
) -> Result<(), ApiError> {
    let role = match &*item.role {
        "user" => "user",
        "assistant" => "assistant",
        // Chat's `developer` role is OpenAI's own; every provider reads
        // `system`, and OpenAI treats the two alike.
        "system" | "developer" => "system",
        other => {
            return bad(format!(
                "input[{i}]: unknown role `{other}`, expected user, assistant, system or developer"
            ));
        }
    };
    let parts = match item.content {
        TextOr::Text(text) => {
            chat::join_assistant(messages, chat::Message::text(role, text));
            return Ok(());
        }
        TextOr::Other(parts) => parts,
    };
    if role == "user" {
        let mut out = Vec::with_capacity(parts.len());
        for (j, p) in parts.into_iter().enumerate() {
            out.push(user_part(i, j, p)?);
        }
        messages.push(chat::Message::parts(role, out));
        return Ok(());
    }
    let mut texts = Vec::with_capacity(parts.len());
    for (j, p) in parts.into_iter().enumerate() {
        match (&*p.kind, p.text, p.refusal) {
            ("input_text" | "output_text" | "text", Some(t), _) | ("refusal", _, Some(t)) => {
                texts.push(t)
            }
            (kind, _, _) => {
                return bad(format!(
                    "input[{i}].content[{j}]: {} messages can only hold text, not `{kind}`",
                    item.role
                ));
            }
        }
    }
    let separator = if role == "system" { "\n\n" } else { "" };
    chat::join_assistant(messages, chat::Message::text(role, texts.join(separator)));
    Ok(())
}

fn user_part<'a>(i: usize, j: usize, p: InputPart<'a>) -> Result<chat::Part<'a>, ApiError> {
    let at = format!("input[{i}].content[{j}]");
    match &*p.kind {
        "input_text" | "output_text" | "text" => match p.text {
            Some(text) => Ok(chat::Part::Text { text }),
            None => bad(format!("{at}.text must be a string")),
        },
        "input_image" => match (p.image_url, p.file_id) {
            (Some(url), _) => Ok(chat::Part::ImageUrl {
                image_url: chat::ImageUrl {
                    url,
                    detail: p.detail,
                },
            }),
            (None, Some(_)) => bad(format!(
                "{at}: images by `file_id` live in OpenAI's file storage, which aipipe does not reach: send `image_url` with a URL or a base64 data URL"
            )),
            (None, None) => bad(format!(
                "{at}: an input_image needs `image_url` (a URL or a base64 data URL)"
            )),
        },
        "input_file" => match p.file_data {
            Some(file_data) => Ok(chat::Part::File {
                file: chat::File {
                    file_data,
                    filename: p.filename,
                },
            }),
            None => bad(format!(
                "{at}: send the file as `file_data` (a base64 data URL); files by `file_id` or `file_url` are not supported"
            )),
        },
        other => bad(format!(
            "{at}: content part type `{other}` is not supported: use input_text, input_image or input_file"
        )),
    }
}

// ================================================================= answers

/// How the answer ended, in the Responses API's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    /// Cut short, with `incomplete_details.reason`.
    Incomplete(&'static str),
    Failed,
}

impl Outcome {
    fn from_finish(finish: Option<&str>) -> Outcome {
        match finish {
            Some("length") => Outcome::Incomplete("max_output_tokens"),
            Some("content_filter") => Outcome::Incomplete("content_filter"),
            _ => Outcome::Completed,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Incomplete(_) => "incomplete",
            Outcome::Failed => "failed",
        }
    }

    /// The status of the output items the answer ends with.
    fn item_status(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            _ => "incomplete",
        }
    }
}

/// Ids of the response and its items, derived from the completion's id so
/// that the same answer always gets the same ids.
#[derive(Debug)]
struct Ids {
    base: String,
    response: String,
}

impl Ids {
    fn new(completion_id: Option<&str>, created: u64) -> Ids {
        let base = match completion_id.filter(|id| !id.is_empty()) {
            Some(id) => id.strip_prefix("chatcmpl-").unwrap_or(id).to_owned(),
            None => created.to_string(),
        };
        Ids {
            response: format!("resp_{base}"),
            base,
        }
    }

    fn message(&self, output_index: usize) -> String {
        format!("msg_{}_{output_index}", self.base)
    }

    fn function_call(&self, output_index: usize) -> String {
        format!("fc_{}_{output_index}", self.base)
    }

    fn reasoning(&self, output_index: usize) -> String {
        format!("rs_{}_{output_index}", self.base)
    }

    /// For a provider that sent a tool call without an id.
    fn call_id(&self, output_index: usize) -> String {
        format!("call_{}_{output_index}", self.base)
    }
}

#[derive(Serialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: String,
        status: &'static str,
        call_id: String,
        name: String,
        arguments: String,
    },
    /// Another provider's reasoning (a Claude thinking block), carried in
    /// `encrypted_content` ([`chat::carry`]) for the client to send back;
    /// its text, when it has one, as the summary.
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
        encrypted_content: String,
    },
}

impl OutputItem {
    fn set_status(&mut self, to: &'static str) {
        match self {
            OutputItem::Message { status, .. } | OutputItem::FunctionCall { status, .. } => {
                *status = to
            }
            OutputItem::Reasoning { .. } => {}
        }
    }

    /// The reasoning item that carries `detail` (a `reasoning_details`
    /// entry of the chat answer).
    fn reasoning(id: String, detail: &Value) -> Self {
        let text = chat::reasoning_text(detail);
        OutputItem::Reasoning {
            id,
            summary: (!text.is_empty())
                .then(|| SummaryText {
                    kind: "summary_text",
                    text: text.to_owned(),
                })
                .into_iter()
                .collect(),
            encrypted_content: chat::carry(detail),
        }
    }
}

#[derive(Serialize, Debug, Clone)]
struct SummaryText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputContent {
    OutputText {
        text: String,
        annotations: [(); 0],
        logprobs: [(); 0],
    },
    Refusal {
        refusal: String,
    },
}

impl OutputContent {
    fn text(text: String) -> Self {
        OutputContent::OutputText {
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// Function-call arguments as the client parses them: JSON text, `{}` when
/// the provider sent none.
fn arguments_or_empty(arguments: String) -> String {
    if arguments.trim().is_empty() {
        "{}".into()
    } else {
        arguments
    }
}

#[derive(Serialize, Debug, Clone, Copy)]
struct ResponsesUsage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Serialize, Debug, Clone, Copy)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Serialize, Debug, Clone, Copy)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl ResponsesUsage {
    /// Responses counts like Chat Completions: input tokens include the
    /// cached ones, output tokens the reasoning ones.
    fn new(t: Tokens, reasoning: u64) -> Self {
        ResponsesUsage {
            input_tokens: t.prompt,
            input_tokens_details: InputDetails {
                cached_tokens: t.cached,
                cache_write_tokens: t.cache_write,
            },
            output_tokens: t.completion,
            output_tokens_details: OutputDetails {
                reasoning_tokens: reasoning,
            },
            total_tokens: t.prompt.saturating_add(t.completion),
        }
    }
}

/// The `response` object. The request's own settings are not known here,
/// so the fields that echo them carry the API's defaults.
#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: Option<ResponseError<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<&'a str>,
    max_output_tokens: Option<u64>,
    model: &'a str,
    output: Vec<&'a OutputItem>,
    parallel_tool_calls: bool,
    previous_response_id: Option<&'a str>,
    store: bool,
    tool_choice: &'static str,
    tools: [(); 0],
    truncation: &'static str,
    usage: Option<ResponsesUsage>,
    metadata: Metadata,
}

#[derive(Serialize)]
struct ResponseError<'a> {
    code: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Serialize)]
struct Metadata {}

impl<'a> ResponseObject<'a> {
    fn new(
        id: &'a str,
        model: &'a str,
        created_at: u64,
        status: &'static str,
        output: Vec<&'a OutputItem>,
    ) -> Self {
        ResponseObject {
            id,
            object: "response",
            created_at,
            status,
            error: None,
            incomplete_details: None,
            instructions: None,
            max_output_tokens: None,
            model,
            output,
            parallel_tool_calls: true,
            previous_response_id: None,
            store: false,
            tool_choice: "auto",
            tools: [],
            truncation: "disabled",
            usage: None,
            metadata: Metadata {},
        }
    }

    fn ended(mut self, outcome: Outcome, usage: Option<ResponsesUsage>) -> Self {
        self.status = outcome.status();
        if let Outcome::Incomplete(reason) = outcome {
            self.incomplete_details = Some(IncompleteDetails { reason });
        }
        self.usage = usage;
        self
    }
}

/// Translates a whole `chat.completion` into a Responses `response` object
/// reporting `model`, created at `created` (unix seconds).
///
/// The text (and a refusal) → one `message` item; each tool call → a
/// `function_call` item; `finish_reason` `length` / `content_filter` →
/// status `incomplete` with `incomplete_details.reason`
/// `max_output_tokens` / `content_filter`; usage → `usage` (null when the
/// provider sent none).
pub fn chat_to_response(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    let answer = chat::Completion::parse(body)?;
    let usage = chat::usage(body, answer.usage.as_ref()).map(|(t, r)| ResponsesUsage::new(t, r));
    let (id, choice) = answer.into_choice()?;
    let ids = Ids::new(id.as_deref(), created);
    let outcome = Outcome::from_finish(choice.finish_reason.as_deref());
    let message = choice.message.unwrap_or_default();
    let text = message.text();
    let mut output = Vec::with_capacity(1 + message.tool_calls.len());
    for detail in &message.reasoning_details {
        output.push(OutputItem::reasoning(ids.reasoning(output.len()), detail));
    }
    if !text.is_empty() || message.refusal.is_some() || message.tool_calls.is_empty() {
        let mut content = Vec::with_capacity(1);
        if !text.is_empty() || message.refusal.is_none() {
            content.push(OutputContent::text(text));
        }
        if let Some(refusal) = message.refusal {
            content.push(OutputContent::Refusal { refusal });
        }
        output.push(OutputItem::Message {
            id: ids.message(output.len()),
            status: outcome.item_status(),
            role: "assistant",
            content,
        });
    }
    for call in message.tool_calls {
        let index = output.len();
        let function = call.function.unwrap_or_default();
        output.push(OutputItem::FunctionCall {
            id: ids.function_call(index),
            status: outcome.item_status(),
            call_id: call.id.unwrap_or_else(|| ids.call_id(index)),
            name: function.name.unwrap_or_default(),
            arguments: arguments_or_empty(function.arguments.unwrap_or_default()),
        });
    }
    let response = ResponseObject::new(&ids.response, model, created, "", output.iter().collect())
        .ended(outcome, usage);
    serde_json::to_vec(&response)
        .map_err(|e| TranslateError(format!("could not encode the response: {e}")))
}

// ================================================================= streams

/// Translates a streamed chat answer (`chat.completion.chunk` SSE) into the
/// Responses API's event stream, event by event, whatever the chunk
/// boundaries. Each event is `event: <type>\ndata: <json>\n\n`, its JSON
/// carrying `type` and `sequence_number` (from 0):
///
/// - the first chunk → `response.created`, `response.in_progress`;
/// - text → a `message` item: `response.output_item.added`,
///   `response.content_part.added`, `response.output_text.delta`…, and when
///   it ends `response.output_text.done`, `response.content_part.done`,
///   `response.output_item.done`;
/// - each tool call → a `function_call` item: `response.output_item.added`,
///   `response.function_call_arguments.delta`…, then
///   `response.function_call_arguments.done`, `response.output_item.done`;
/// - `[DONE]` (after the usage chunk) → `response.completed`, or
///   `response.incomplete` when the answer hit its token limit or a content
///   filter, carrying the whole response with its usage.
///
/// An error chunk, or a stream that ends before any `finish_reason`, closes
/// the open items as incomplete and ends with `response.failed` (status
/// `failed`, `error.code` `server_error`). Nothing is written after that.
#[derive(Debug)]
pub struct ChatToResponsesStream {
    parser: SseParser,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    model: String,
    created: u64,
    /// Known from the first chunk.
    ids: Option<Ids>,
    sequence: u64,
    items: Vec<OutputItem>,
    /// Per item: still open, and for a tool call the chat tool index.
    slots: Vec<Slot>,
    outcome: Option<Outcome>,
    usage: Option<(Tokens, u64)>,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    open: bool,
    tool_index: Option<u64>,
}

const CUT_SHORT: &str =
    "The upstream stream ended before the answer was complete. Retry the request.";

impl ChatToResponsesStream {
    /// `model` is the name the client sees; `created` the unix time of the
    /// request.
    pub fn new(model: &str, created: u64) -> Self {
        ChatToResponsesStream {
            parser: SseParser::default(),
            state: StreamState {
                model: model.to_owned(),
                created,
                ids: None,
                sequence: 0,
                items: Vec::new(),
                slots: Vec::new(),
                outcome: None,
                usage: None,
                done: false,
            },
        }
    }

    /// Feeds a chunk of the upstream body; appends the events it completes.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    /// The upstream body ended: completes the stream if it is not yet.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        if !state.done {
            match state.outcome {
                Some(outcome) => state.end(outcome, out),
                None => state.fail(CUT_SHORT, out),
            }
        }
    }

    /// Usage from the provider's final usage chunk.
    pub fn tokens(&self) -> Option<Tokens> {
        self.state.usage.map(|(t, _)| t)
    }
}

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
    item: &'a OutputItem,
}

#[derive(Serialize)]
struct WithPart<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: &'a OutputContent,
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

/// Writes one event; `sequence` numbers them.
fn emit<T: Serialize>(sequence: &mut u64, kind: &str, body: T, out: &mut Vec<u8>) {
    let event = Event {
        kind,
        sequence_number: *sequence,
        body,
    };
    match serde_json::to_vec(&event) {
        Ok(data) => {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\ndata: ");
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\n\n");
            *sequence += 1;
        }
        Err(e) => log::warn!("could not encode a `{kind}` event: {e}"),
    }
}

impl StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            let outcome = self.outcome.unwrap_or(Outcome::Completed);
            self.end(outcome, out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<chat::Chunk>(data) else {
            log::debug!("skipping an unreadable chat.completion.chunk");
            return;
        };
        if let Some(message) = chunk.error_message() {
            self.fail(&message, out);
            return;
        }
        if chunk.usage.is_some()
            && let Some(usage) = chat::usage(data, chunk.usage.as_ref())
        {
            self.usage = Some(usage);
        }
        self.start(chunk.id.as_deref(), out);
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(delta) = choice.delta {
            for detail in &delta.reasoning_details {
                self.reasoning(detail, out);
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.text(&text, out);
            }
            for call in delta.tool_calls {
                self.tool_call(call, out);
            }
        }
        if let Some(reason) = choice.finish_reason {
            let outcome = Outcome::from_finish(Some(&reason));
            self.outcome = Some(outcome);
            self.close_all(outcome.item_status(), out);
        }
    }

    fn ids(&mut self) -> &Ids {
        let created = self.created;
        self.ids.get_or_insert_with(|| Ids::new(None, created))
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<u8>) {
        if self.ids.is_some() {
            return;
        }
        let ids = Ids::new(id, self.created);
        for kind in ["response.created", "response.in_progress"] {
            let response = ResponseObject::new(
                &ids.response,
                &self.model,
                self.created,
                "in_progress",
                vec![],
            );
            emit(&mut self.sequence, kind, WithResponse { response }, out);
        }
        self.ids = Some(ids);
    }

    fn text(&mut self, delta: &str, out: &mut Vec<u8>) {
        let last_is_open_message = matches!(
            (self.items.last(), self.slots.last()),
            (
                Some(OutputItem::Message { .. }),
                Some(Slot { open: true, .. })
            )
        );
        if !last_is_open_message {
            self.close_messages(out);
            let index = self.items.len();
            let item = OutputItem::Message {
                id: self.ids().message(index),
                status: "in_progress",
                role: "assistant",
                content: Vec::new(),
            };
            self.open(item, None, out);
            let part = OutputContent::text(String::new());
            let Some(OutputItem::Message { id, content, .. }) = self.items.last_mut() else {
                return;
            };
            emit(
                &mut self.sequence,
                "response.content_part.added",
                WithPart {
                    item_id: id,
                    output_index: index,
                    content_index: 0,
                    part: &part,
                },
                out,
            );
            content.push(part);
        }
        let index = self.items.len().saturating_sub(1);
        let Some(OutputItem::Message { id, content, .. }) = self.items.last_mut() else {
            return;
        };
        if let Some(OutputContent::OutputText { text, .. }) = content.last_mut() {
            text.push_str(delta);
        }
        emit(
            &mut self.sequence,
            "response.output_text.delta",
            TextDelta {
                item_id: id,
                output_index: index,
                content_index: 0,
                delta,
                logprobs: [],
            },
            out,
        );
    }

    /// A reasoning entry arrives whole: its item is added and done at once.
    fn reasoning(&mut self, detail: &Value, out: &mut Vec<u8>) {
        self.close_messages(out);
        let index = self.items.len();
        let item = OutputItem::reasoning(self.ids().reasoning(index), detail);
        self.open(item, None, out);
        self.close(index, "completed", out);
    }

    fn tool_call(&mut self, call: chat::ChunkToolCall, out: &mut Vec<u8>) {
        let function = call.function.unwrap_or_default();
        let found = self
            .slots
            .iter()
            .position(|s| s.open && s.tool_index == Some(call.index));
        let index = match found {
            Some(index) => index,
            // A provider that sends arguments for a call it never opened:
            // there is no item to add them to.
            None if call.id.is_none() && function.name.is_none() => return,
            None => {
                self.close_messages(out);
                let index = self.items.len();
                let ids = self.ids();
                let item = OutputItem::FunctionCall {
                    id: ids.function_call(index),
                    status: "in_progress",
                    call_id: call.id.unwrap_or_else(|| ids.call_id(index)),
                    name: function.name.unwrap_or_default(),
                    arguments: String::new(),
                };
                self.open(item, Some(call.index), out);
                index
            }
        };
        let Some(delta) = function.arguments.filter(|a| !a.is_empty()) else {
            return;
        };
        if let Some(OutputItem::FunctionCall { id, arguments, .. }) = self.items.get_mut(index) {
            arguments.push_str(&delta);
            emit(
                &mut self.sequence,
                "response.function_call_arguments.delta",
                ArgumentsDelta {
                    item_id: id,
                    output_index: index,
                    delta: &delta,
                },
                out,
            );
        }
    }

    fn open(&mut self, item: OutputItem, tool_index: Option<u64>, out: &mut Vec<u8>) {
        emit(
            &mut self.sequence,
            "response.output_item.added",
            WithItem {
                output_index: self.items.len(),
                item: &item,
            },
            out,
        );
        self.items.push(item);
        self.slots.push(Slot {
            open: true,
            tool_index,
        });
    }

    fn close_messages(&mut self, out: &mut Vec<u8>) {
        for index in 0..self.items.len() {
            if matches!(self.items.get(index), Some(OutputItem::Message { .. })) {
                self.close(index, "completed", out);
            }
        }
    }

    fn close_all(&mut self, status: &'static str, out: &mut Vec<u8>) {
        for index in 0..self.items.len() {
            self.close(index, status, out);
        }
    }

    fn close(&mut self, index: usize, status: &'static str, out: &mut Vec<u8>) {
        let (Some(item), Some(slot)) = (self.items.get_mut(index), self.slots.get_mut(index))
        else {
            return;
        };
        if !slot.open {
            return;
        }
        slot.open = false;
        item.set_status(status);
        let sequence = &mut self.sequence;
        match item {
            OutputItem::Message { id, content, .. } => {
                for (content_index, part) in content.iter().enumerate() {
                    if let OutputContent::OutputText { text, .. } = part {
                        emit(
                            sequence,
                            "response.output_text.done",
                            TextDone {
                                item_id: id,
                                output_index: index,
                                content_index,
                                text,
                                logprobs: [],
                            },
                            out,
                        );
                    }
                    emit(
                        sequence,
                        "response.content_part.done",
                        WithPart {
                            item_id: id,
                            output_index: index,
                            content_index,
                            part,
                        },
                        out,
                    );
                }
            }
            OutputItem::FunctionCall {
                id,
                name,
                arguments,
                ..
            } => {
                *arguments = arguments_or_empty(std::mem::take(arguments));
                emit(
                    sequence,
                    "response.function_call_arguments.done",
                    ArgumentsDone {
                        item_id: id,
                        output_index: index,
                        name,
                        arguments,
                    },
                    out,
                );
            }
            OutputItem::Reasoning { .. } => {}
        }
        emit(
            sequence,
            "response.output_item.done",
            WithItem {
                output_index: index,
                item,
            },
            out,
        );
    }

    fn end(&mut self, outcome: Outcome, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_all(outcome.item_status(), out);
        let kind = match outcome {
            Outcome::Completed => "response.completed",
            Outcome::Incomplete(_) => "response.incomplete",
            Outcome::Failed => "response.failed",
        };
        let usage = self.usage.map(|(t, r)| ResponsesUsage::new(t, r));
        let id = self.ids.as_ref().map_or("", |ids| ids.response.as_str());
        let response = ResponseObject::new(
            id,
            &self.model,
            self.created,
            "",
            self.items.iter().collect(),
        )
        .ended(outcome, usage);
        emit(&mut self.sequence, kind, WithResponse { response }, out);
        self.done = true;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_all("incomplete", out);
        let usage = self.usage.map(|(t, r)| ResponsesUsage::new(t, r));
        let id = self.ids.as_ref().map_or("", |ids| ids.response.as_str());
        let mut response = ResponseObject::new(
            id,
            &self.model,
            self.created,
            "",
            self.items.iter().collect(),
        )
        .ended(Outcome::Failed, usage);
        response.error = Some(ResponseError {
            code: "server_error",
            message,
        });
        emit(
            &mut self.sequence,
            "response.failed",
            WithResponse { response },
            out,
        );
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn to_chat(req: Value) -> Value {
        let out = request_to_chat(&serde_json::to_vec(&req).unwrap()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn refused(body: &str) -> String {
        match request_to_chat(body.as_bytes()) {
            Err(ApiError::BadRequest(why)) => why,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_string_input_becomes_one_user_message() {
        assert_eq!(
            to_chat(json!({"model": "gpt-4o-mini", "input": "Hi there"})),
            json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Hi there"}],
                "stream": false
            })
        );
        // No model: routed by complexity.
        assert_eq!(to_chat(json!({"input": "Hi"}))["model"], "auto");
    }

    #[test]
    fn every_field_of_a_responses_request_is_mapped() {
        let schema = json!({"type": "object", "properties": {"location": {"type": "string"}}});
        let req = json!({
            "model": "auto",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Use metric units."},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "Weather here?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"},
                    {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}
                ]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": schema, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": false,
            "max_output_tokens": 300,
            "temperature": 0.25,
            "top_p": 0.5,
            "text": {"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": true}, "verbosity": "low"},
            "stream": true,
            "store": true,
            "metadata": {"k": "v"},
            "user": "u1",
            "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"],
            "truncation": "auto"
        });
        assert_eq!(
            to_chat(req),
            json!({
                "model": "auto",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "system", "content": "Use metric units."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                    ]},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
                    {"role": "tool", "content": "a\nb", "tool_call_id": "call_2"},
                    {"role": "user", "content": "And tomorrow?"}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema, "strict": true}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": false,
                "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": true}},
                "max_tokens": 300,
                "temperature": 0.25,
                "top_p": 0.5,
                "user": "u1",
                "reasoning_effort": "low",
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn a_call_without_text_makes_an_assistant_turn_with_null_content() {
        let out = to_chat(json!({"input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "sunny"}
        ]}));
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]})
        );
        assert_eq!(out["messages"][2]["role"], "tool");
    }

    #[test]
    fn tool_choice_modes_formats_and_user_fallback() {
        let tool = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
        let g = json!({"type": "function", "name": "g"});
        for (choice, want) in [
            (json!("auto"), json!("auto")),
            (json!("none"), json!("none")),
            (json!("required"), json!("required")),
        ] {
            let out = to_chat(json!({"input": "x", "tools": [tool], "tool_choice": choice}));
            assert_eq!(out["tool_choice"], want);
        }
        // allowed_tools keeps only the allowed tools.
        let out = to_chat(json!({"input": "x", "tools": [tool, g], "tool_choice":
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "g"}]}}));
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "g"}}])
        );
        // Without tools, tool_choice and parallel_tool_calls mean nothing.
        let out = to_chat(
            json!({"input": "x", "tools": [], "tool_choice": "required", "parallel_tool_calls": true}),
        );
        assert!(out.get("tool_choice").is_none() && out.get("parallel_tool_calls").is_none());
        assert!(out.get("tools").is_none());
        let out = to_chat(json!({"input": "x", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        let out = to_chat(json!({"input": "x", "text": {"format": {"type": "text"}}}));
        assert!(out.get("response_format").is_none());
        let out = to_chat(
            json!({"input": "x", "text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}),
        );
        assert_eq!(out["response_format"]["json_schema"]["name"], "response");
        let out = to_chat(
            json!({"input": "x", "safety_identifier": "s", "previous_response_id": null, "background": false}),
        );
        assert_eq!(out["user"], "s");
        let out = to_chat(json!({"input": "x", "stream": false, "instructions": ""}));
        assert_eq!(out["messages"].as_array().unwrap().len(), 1);
        assert_eq!(out["stream"], false);
        assert!(out.get("stream_options").is_none());
    }

    #[test]
    fn stateful_and_hosted_features_are_refused_with_what_to_do() {
        for (body, want) in [
            ("", "request body is empty"),
            ("[]", "must be a JSON object: an OpenAI Responses request"),
            ("{", "not valid JSON"),
            (r#"{"model":"auto"}"#, "missing field `input`"),
            (r#"{"input":""}"#, "`input` is empty"),
            (r#"{"input":[]}"#, "at least one message"),
            (
                r#"{"input":[{"type":"reasoning","summary":[]}],"instructions":"x"}"#,
                "at least one message",
            ),
            (r#"{"input":5}"#, "invalid request body"),
            (
                r#"{"input":"x","previous_response_id":"resp_1"}"#,
                "`previous_response_id` is not supported: aipipe is stateless",
            ),
            (
                r#"{"input":"x","conversation":"conv_1"}"#,
                "send the whole conversation as `input` items",
            ),
            (
                r#"{"input":"x","prompt":{"id":"pmpt_1"}}"#,
                "`prompt` templates",
            ),
            (r#"{"input":"x","background":true}"#, "`background: true`"),
            (
                r#"{"input":"x","tools":[{"type":"web_search"}]}"#,
                "tools[0]: built-in tool `web_search` is not available",
            ),
            (
                r#"{"input":"x","tools":[{"type":"function"}]}"#,
                "tools[0].name must be a string",
            ),
            (
                r#"{"input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"file_search"}}"#,
                "`file_search` is a built-in tool",
            ),
            (
                r#"{"input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":"sometimes"}"#,
                "`tool_choice` must be none, auto, required",
            ),
            (
                r#"{"input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"allowed_tools","tools":[{"type":"function","name":"g"}]}}"#,
                "names none of the function tools",
            ),
            (
                r#"{"input":"x","text":{"format":{"type":"json_schema"}}}"#,
                "`text.format.schema` must be",
            ),
            (
                r#"{"input":"x","text":{"format":{"type":"yaml"}}}"#,
                "`text.format.type` must be",
            ),
            (
                r#"{"input":[{"type":"item_reference","id":"msg_1"}]}"#,
                "input[0]: `item_reference`",
            ),
            (
                r#"{"input":[{"type":"web_search_call","id":"ws_1"}]}"#,
                "input[0]: item type `web_search_call` is not supported",
            ),
            (
                r#"{"input":[{"role":"tool","content":"x"}]}"#,
                "input[0]: unknown role `tool`",
            ),
            (
                r#"{"input":[{"content":"x"}]}"#,
                "input[0]: missing field `role`",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}"#,
                "input[0].content[0]: images by `file_id`",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_image"}]}]}"#,
                "an input_image needs `image_url`",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
                "send the file as `file_data`",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
                "content part type `input_audio` is not supported",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
                "input[0].content[0].text must be a string",
            ),
            (
                r#"{"input":[{"role":"assistant","content":[{"type":"input_image","image_url":"u"}]}]}"#,
                "input[0].content[0]: assistant messages can only hold text, not `input_image`",
            ),
            (
                r#"{"input":[{"type":"function_call","name":"f"}]}"#,
                "input[0]: missing field `call_id`",
            ),
            (
                r#"{"input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"u"}]}]}"#,
                "input[0].output[0]: only text tool outputs",
            ),
        ] {
            let why = refused(body);
            assert!(why.contains(want), "{body}: {why}");
        }
    }

    const ANSWER: &[u8] = br#"{"id":"chatcmpl-abc","object":"chat.completion","created":1,"model":"gpt-4o-mini",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
            {"type":"function","function":{"name":"g","arguments":""}}]},
            "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,
            "prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":3}}}"#;

    #[test]
    fn a_chat_answer_becomes_a_response_object() {
        let out: Value =
            serde_json::from_slice(&chat_to_response(ANSWER, "auto", 1_700_000_000).unwrap())
                .unwrap();
        assert_eq!(
            out,
            json!({
                "id": "resp_abc", "object": "response", "created_at": 1_700_000_000u64,
                "status": "completed", "error": null, "incomplete_details": null,
                "instructions": null, "max_output_tokens": null, "model": "auto",
                "output": [
                    {"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Sure.", "annotations": [], "logprobs": []}]},
                    {"type": "function_call", "id": "fc_abc_1", "status": "completed",
                     "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"},
                    {"type": "function_call", "id": "fc_abc_2", "status": "completed",
                     "call_id": "call_abc_2", "name": "g", "arguments": "{}"}
                ],
                "parallel_tool_calls": true, "previous_response_id": null, "store": false,
                "tool_choice": "auto", "tools": [], "truncation": "disabled",
                "usage": {
                    "input_tokens": 100, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
                    "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
                    "total_tokens": 107
                },
                "metadata": {}
            })
        );
    }

    #[test]
    fn finish_reasons_refusals_and_missing_usage() {
        let answer = |finish: &str, message: &str| {
            let body = format!(
                r#"{{"id":"x","choices":[{{"message":{message},"finish_reason":"{finish}"}}]}}"#
            );
            serde_json::from_slice::<Value>(&chat_to_response(body.as_bytes(), "m", 5).unwrap())
                .unwrap()
        };
        let out = answer("length", r#"{"content":"Once upon"}"#);
        assert_eq!(out["status"], "incomplete");
        assert_eq!(
            out["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(out["output"][0]["status"], "incomplete");
        assert_eq!(out["usage"], Value::Null);
        assert_eq!(out["id"], "resp_x");
        let out = answer("content_filter", r#"{"content":""}"#);
        assert_eq!(out["incomplete_details"]["reason"], "content_filter");
        let out = answer("stop", r#"{"content":null,"refusal":"I can't."}"#);
        assert_eq!(
            out["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't."}])
        );
        // An empty answer still has its (empty) message.
        let out = answer("stop", r#"{"content":null,"tool_calls":null}"#);
        assert_eq!(out["output"][0]["content"][0]["text"], "");
        // Text sent as parts.
        let out = answer(
            "stop",
            r#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#,
        );
        assert_eq!(out["output"][0]["content"][0]["text"], "ab");
        // No id: the ids come from the creation time.
        let out: Value = serde_json::from_slice(
            &chat_to_response(br#"{"choices":[{"message":{"content":"x"}}]}"#, "m", 42).unwrap(),
        )
        .unwrap();
        assert_eq!(out["id"], "resp_42");
        assert_eq!(out["output"][0]["id"], "msg_42_0");
        for bad in [
            &b""[..],
            b"[]",
            b"{\"choices\":[]}",
            b"{\"choices\":7}",
            b"{nope",
        ] {
            assert!(chat_to_response(bad, "m", 0).is_err());
        }
    }

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":5}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(pieces: &[&[u8]]) -> (String, Option<Tokens>) {
        let mut s = ChatToResponsesStream::new("auto", 7);
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, &mut out);
        }
        s.finish(&mut out);
        let mut more = Vec::new();
        s.finish(&mut more);
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n",
            &mut more,
        );
        assert!(more.is_empty(), "nothing after the end");
        (String::from_utf8(out).unwrap(), s.tokens())
    }

    /// The events as (event name, data JSON), checking the framing and the
    /// sequence numbers on the way.
    fn events(stream: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (n, block) in stream.split_terminator("\n\n").enumerate() {
            let (event, data) = block.split_once('\n').unwrap();
            let name = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{block}");
            assert_eq!(data["sequence_number"], n, "{block}");
            out.push((name, data));
        }
        out
    }

    #[test]
    fn a_chat_stream_becomes_responses_events_at_any_split() {
        let (out, tokens) = run(&[CHUNKS.as_bytes()]);
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let created = &ev[0].1["response"];
        assert_eq!(created["id"], "resp_c1");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["model"], "auto");
        assert_eq!(created["created_at"], 7);
        assert_eq!(created["output"], json!([]));
        assert_eq!(created["usage"], Value::Null);
        assert_eq!(
            ev[2].1,
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
                "item": {"type": "message", "id": "msg_c1_0", "status": "in_progress", "role": "assistant", "content": []}})
        );
        assert_eq!(
            ev[3].1,
            json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_c1_0",
                "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        );
        assert_eq!(
            ev[4].1,
            json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_c1_0",
                "output_index": 0, "content_index": 0, "delta": "Hi ", "logprobs": []})
        );
        assert_eq!(ev[6].1["text"], "Hi there");
        assert_eq!(ev[7].1["part"]["text"], "Hi there");
        assert_eq!(ev[8].1["item"]["status"], "completed");
        assert_eq!(
            ev[9].1["item"],
            json!({"type": "function_call", "id": "fc_c1_1", "status": "in_progress",
                "call_id": "call_1", "name": "f", "arguments": ""})
        );
        assert_eq!(ev[10].1["delta"], "{\"a\":");
        assert_eq!(ev[10].1["item_id"], "fc_c1_1");
        assert_eq!(ev[10].1["output_index"], 1);
        assert_eq!(
            ev[12].1,
            json!({"type": "response.function_call_arguments.done", "sequence_number": 12,
                "item_id": "fc_c1_1", "output_index": 1, "name": "f", "arguments": "{\"a\":1}"})
        );
        let done = &ev[14].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["id"], "resp_c1");
        assert_eq!(
            done["output"],
            json!([
                {"type": "message", "id": "msg_c1_0", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hi there", "annotations": [], "logprobs": []}]},
                {"type": "function_call", "id": "fc_c1_1", "status": "completed",
                 "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"}
            ])
        );
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 0},
                "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 29})
        );
        assert_eq!(
            tokens,
            Some(Tokens {
                prompt: 20,
                completion: 9,
                cached: 5,
                cache_write: 0
            })
        );
        let bytes = CHUNKS.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(run(&[a, b]), (out.clone(), tokens), "split at {i}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&one_by_one), (out, tokens));
    }

    #[test]
    fn parallel_and_interleaved_tool_calls_each_get_an_item() {
        let stream = concat!(
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{\"}}]}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"}\"}},{\"index\":7,\"function\":{\"arguments\":\"lost\"}}]}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, tokens) = run(&[stream.as_bytes()]);
        assert_eq!(tokens, None);
        let ev = events(&out);
        let last = &ev.last().unwrap().1["response"];
        assert_eq!(last["status"], "completed");
        assert_eq!(last["usage"], Value::Null);
        let calls: Vec<(&str, &str, &str)> = last["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["call_id"].as_str().unwrap(),
                    i["name"].as_str().unwrap(),
                    i["arguments"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(calls, [("a", "f", "{}"), ("b", "g", "{}")]);
        let added = ev
            .iter()
            .filter(|(n, _)| n == "response.output_item.added")
            .count();
        let done = ev
            .iter()
            .filter(|(n, _)| n == "response.output_item.done")
            .count();
        assert_eq!((added, done), (2, 2));
    }

    #[test]
    fn a_length_stop_ends_with_response_incomplete() {
        let stream = concat!(
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"Once\"}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":null,\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, _) = run(&[stream.as_bytes()]);
        let ev = events(&out);
        let (name, last) = ev.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(
            last["response"]["usage"]["output_tokens_details"]["reasoning_tokens"],
            1
        );
    }

    #[test]
    fn errors_and_cut_streams_end_with_response_failed() {
        // Cut before any finish_reason: the open item is closed, then failed.
        let cut = &CHUNKS[..CHUNKS.find("{\\\"a\\\":").unwrap() - 70];
        let cut = &cut[..cut.rfind("\n\n").unwrap() + 2];
        let (out, _) = run(&[cut.as_bytes()]);
        let ev = events(&out);
        let (name, last) = ev.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "server_error");
        assert!(
            last["response"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Retry")
        );
        assert!(
            ev.iter()
                .any(|(n, d)| n == "response.output_item.done"
                    && d["item"]["status"] == "incomplete")
        );
        // Cut after the finish_reason but before usage and [DONE]: complete.
        let cut = &CHUNKS[..CHUNKS
            .find("data: {\"id\":\"chatcmpl-c1\",\"choices\":[]")
            .unwrap()];
        let (out, tokens) = run(&[cut.as_bytes()]);
        assert_eq!(tokens, None);
        assert_eq!(events(&out).last().unwrap().0, "response.completed");
        // An error chunk from the provider.
        let (out, _) =
            run(&[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"]);
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.failed"
            ]
        );
        assert_eq!(ev[2].1["response"]["error"]["message"], "boom");
        assert_eq!(ev[2].1["response"]["id"], "resp_7");
        // Nothing at all.
        let (out, _) = run(&[]);
        assert_eq!(events(&out).last().unwrap().0, "response.failed");
        // Garbage is skipped.
        let (out, _) = run(&[
            b"data: {\"choices\":\"x\"}\n\ndata: \xff\n\n",
            b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n",
        ]);
        let ev = events(&out);
        assert_eq!(ev.last().unwrap().0, "response.completed");
        assert_eq!(
            ev.last().unwrap().1["response"]["output"][0]["content"][0]["text"],
            "ok"
        );
    }

    #[test]
    fn text_after_a_tool_call_opens_a_new_message() {
        let stream = concat!(
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\"}}]}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, _) = run(&[stream.as_bytes()]);
        let ev = events(&out);
        let output = &ev.last().unwrap().1["response"]["output"];
        let kinds: Vec<&str> = output
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["message", "function_call", "message"]);
        assert_eq!(output[2]["id"], "msg_x_2");
        assert_eq!(output[2]["content"][0]["text"], "b");
        assert_eq!(output[1]["arguments"], "{}");
    }

    /// Claude's thinking reaches a Responses client as a `reasoning` item
    /// (its text the summary, the block carried in `encrypted_content`),
    /// whole and streamed, before the message and calls; sent back in the
    /// next request's input, it is the assistant turn's `reasoning_details`
    /// again, which the Anthropic translation makes the thinking block.
    /// OpenAI's own reasoning items still go nowhere but OpenAI.
    #[test]
    fn another_providers_reasoning_goes_out_and_back_as_a_reasoning_item() {
        let detail = json!({"type": "reasoning.text", "text": "The user wants weather.",
            "signature": "EqQBCgIYAhIM", "format": "anthropic-claude-v1", "index": 0});
        let answer = json!({"id": "chatcmpl-r1", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "reasoning_details": [detail],
                "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}});
        let out = chat_to_response(&serde_json::to_vec(&answer).unwrap(), "auto", 7).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        let item = &out["output"][0];
        assert_eq!(item["type"], "reasoning", "{out}");
        assert_eq!(item["id"], "rs_r1_0");
        assert_eq!(
            item["summary"],
            json!([{"type": "summary_text", "text": "The user wants weather."}])
        );
        let carried = item["encrypted_content"].as_str().unwrap();
        assert_eq!(out["output"][1]["type"], "function_call", "{out}");

        let detail_chunk = json!({"id": "chatcmpl-r1", "choices": [{"index": 0, "delta": {"reasoning_details": [detail]}}]});
        let stream = format!(
            "data: {detail_chunk}\n\n{}",
            concat!(
                "data: {\"id\":\"chatcmpl-r1\",\"choices\":[{\"delta\":{\"content\":\"Sunny.\"}}]}\n\n",
                "data: {\"id\":\"chatcmpl-r1\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            )
        );
        let (streamed, _) = run(&[stream.as_bytes()]);
        let ev = events(&streamed);
        let items: Vec<(&str, &Value)> = ev
            .iter()
            .filter(|(n, _)| n.starts_with("response.output_item."))
            .map(|(n, d)| (n.as_str(), &d["item"]))
            .collect();
        assert_eq!(items[0].0, "response.output_item.added");
        assert_eq!(items[1].0, "response.output_item.done");
        assert_eq!(items[1].1, item, "the same item as whole");
        assert_eq!(items[2].1["type"], "message");
        let done = &ev.last().unwrap().1["response"]["output"];
        assert_eq!(done[0]["encrypted_content"], carried);
        assert_eq!(done[1]["content"][0]["text"], "Sunny.");

        // The next turn: the item goes back with the call and its output.
        let chat = to_chat(json!({"model": "auto", "input": [
            {"role": "user", "content": "Weather in Oslo?"},
            item,
            {"type": "reasoning", "id": "rs_openai", "summary": [], "encrypted_content": "gAAAA-openai"},
            {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "4 degrees"}]}));
        let back = &chat["messages"][1];
        let mut expected = detail.clone();
        expected.as_object_mut().unwrap().remove("index");
        assert_eq!(back["reasoning_details"], json!([expected]), "{chat}");
        assert_eq!(back["tool_calls"][0]["id"], "toolu_1", "{chat}");
        assert_eq!(chat["messages"].as_array().unwrap().len(), 3, "{chat}");
        // Reasoning before an assistant message's text joins that message.
        let chat = to_chat(json!({"model": "auto", "input": [
            {"role": "user", "content": "hi"}, item,
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and?"}]}));
        assert_eq!(chat["messages"][1]["content"], "hello", "{chat}");
        assert_eq!(
            chat["messages"][1]["reasoning_details"][0]["signature"],
            "EqQBCgIYAhIM"
        );
        // Reasoning with nothing after it is left out.
        let chat =
            to_chat(json!({"model": "auto", "input": [{"role": "user", "content": "hi"}, item]}));
        assert_eq!(chat["messages"].as_array().unwrap().len(), 1, "{chat}");
    }
}
