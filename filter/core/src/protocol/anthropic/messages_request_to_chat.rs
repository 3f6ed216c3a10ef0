//! An Anthropic client's request → an OpenAI Chat Completions request: for
//! clients that speak Anthropic Messages (`POST /v1/messages`: the Anthropic
//! SDK, Claude Code) routed to a provider that speaks Chat Completions. The
//! answer comes back through `chat_response_to_messages.rs` and
//! `chat_stream_to_messages.rs`.
//!
//! As in `chat_to_messages.rs`, the request is read into borrowed wire
//! structs whose checked fields are [`Lax`], so errors name the field, and
//! the chat request is written from structs that borrow from them. Tool
//! schemas and tool inputs pass through as the client wrote them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Number;
use serde_json::value::RawValue;

use super::TranslateError;
use super::lax::{Lax, List, raw_keeping_null, read_request};
use super::wire::{OPEN_SCHEMA, Schema};
use crate::protocol::chat;

type Result<T> = std::result::Result<T, TranslateError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(TranslateError(message.into()))
}

/// Translates an Anthropic Messages request body into an OpenAI Chat
/// Completions request body for `upstream_model`.
///
/// `system` → a system message; text, image (base64 or url) and PDF document
/// blocks → content parts; `tool_use` → assistant `tool_calls`;
/// `tool_result` → `tool` messages (text only: OpenAI tool messages carry no
/// images); `thinking` blocks are dropped. `tools` (custom tools only),
/// `tool_choice` (`disable_parallel_tool_use` → `parallel_tool_calls:
/// false`), `max_tokens`, `stop_sequences`, `temperature`, `top_p`, `stream`
/// (with `stream_options.include_usage`, which [`ChatToMessagesStream`] needs
/// for the final usage) and `metadata.user_id` → `user` are mapped;
/// `output_config.effort`, else `thinking`'s budget, becomes the
/// `reasoning_effort` it asks for ([`reasoning_effort`]); `top_k`,
/// `thinking` itself, `service_tier`, `container`, `mcp_servers` and
/// `cache_control` markers are dropped. Server tools (web search, code
/// execution, …) are rejected.
pub fn messages_request_to_chat(body: &[u8], upstream_model: &str) -> Result<Vec<u8>> {
    let req: MessagesRequest = read_request(body, "an Anthropic Messages request")?;
    let chat = translate(&req, upstream_model)?;
    serde_json::to_vec(&chat)
        .map_err(|e| TranslateError(format!("could not encode the chat request: {e}")))
}

fn translate<'a>(req: &'a MessagesRequest<'a>, model: &'a str) -> Result<ChatRequest<'a>> {
    let mut messages = Vec::new();
    match &req.system {
        Lax::Absent | Lax::Null => {}
        Lax::Str(s) => {
            if !s.is_empty() {
                messages.push(ChatMessage::text("system", s.as_ref()));
            }
        }
        Lax::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (k, b) in blocks.iter().enumerate() {
                match b.object().and_then(|b| b.text.as_str()) {
                    Some(t) => texts.push(t),
                    None => return fail(format!("system[{k}] must be a text block")),
                }
            }
            messages.push(ChatMessage::text("system", texts.join("\n\n")));
        }
        _ => return fail("`system` must be a string or an array of text blocks"),
    }
    let Lax::Array(list) = &req.messages else {
        return fail("`messages` must be an array of messages");
    };
    if list.is_empty() {
        return fail("`messages` must contain at least one message");
    }
    for (i, m) in list.iter().enumerate() {
        add_message(i, m, &mut messages)?;
    }

    let max_tokens = match &req.max_tokens {
        Lax::Absent => return fail("missing field `max_tokens`"),
        n => match n.as_u64() {
            Some(n) => n,
            None => return fail("`max_tokens` must be a positive integer"),
        },
    };
    let tools = tools(&req.tools)?;
    let (tool_choice, parallel_tool_calls) = match &req.tool_choice {
        Lax::Object(choice) => {
            let mapped = match choice.kind.as_str() {
                Some("auto") => ChatToolChoice::Mode("auto"),
                Some("any") => ChatToolChoice::Mode("required"),
                Some("none") => ChatToolChoice::Mode("none"),
                Some("tool") => match choice.name.as_str() {
                    Some(name) => ChatToolChoice::Function {
                        kind: "function",
                        function: Name { name },
                    },
                    None => return fail("`tool_choice.name` must be a string"),
                },
                _ => return fail("`tool_choice.type` must be one of auto, any, tool, none"),
            };
            let parallel =
                (choice.disable_parallel_tool_use.as_bool() == Some(true)).then_some(false);
            (Some(mapped), parallel)
        }
        _ => (None, None),
    };
    let stop = match &req.stop_sequences {
        Lax::Absent | Lax::Null => Vec::new(),
        other => match other.strings() {
            Some(stop) => stop,
            None => return fail("`stop_sequences` must be an array of strings"),
        },
    };
    let temperature = number(&req.temperature, "temperature")?;
    let top_p = number(&req.top_p, "top_p")?;
    let stream = req.stream.as_bool() == Some(true);
    // `tool_choice` and `parallel_tool_calls` only mean something with tools.
    let with_tools = !tools.is_empty();
    Ok(ChatRequest {
        model,
        messages,
        max_tokens,
        reasoning_effort: reasoning_effort(req),
        tools,
        tool_choice: tool_choice.filter(|_| with_tools),
        parallel_tool_calls: parallel_tool_calls.filter(|_| with_tools),
        stop,
        temperature,
        top_p,
        user: req.metadata.object().and_then(|m| m.user_id.as_str()),
        stream,
        // The translated stream ends with usage only when asked for it.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    })
}

/// The Chat Completions `reasoning_effort` an Anthropic request's thinking
/// asks for: its `output_config.effort` (`low`, `medium`, `high`; `xhigh`
/// and `max` → `xhigh`), else, for `thinking` of type `enabled`, its
/// `budget_tokens` (`OutputEffort::of_budget`). Nothing for thinking that is
/// `disabled` or `adaptive` without an effort (the model's default).
fn reasoning_effort(req: &MessagesRequest<'_>) -> Option<&'static str> {
    let effort = req.output_config.object().and_then(|o| o.effort.as_str());
    if let Some(effort) = effort {
        return match effort {
            "low" => Some("low"),
            "medium" => Some("medium"),
            "high" => Some("high"),
            "xhigh" | "max" => Some("xhigh"),
            _ => None,
        };
    }
    let thinking = req.thinking.object()?;
    if thinking.kind.as_str() != Some("enabled") {
        return None;
    }
    let budget = thinking.budget_tokens.as_u64()?;
    Some(crate::request::OutputEffort::of_budget(budget).name())
}

fn tools<'a>(tools: &'a List<'a, Tool<'a>>) -> Result<Vec<ChatTool<'a>>> {
    let list = match tools {
        Lax::Absent | Lax::Null => return Ok(Vec::new()),
        Lax::Array(list) => list,
        _ => return fail("`tools` must be an array"),
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, t) in list.iter().enumerate() {
        let no_name = || fail(format!("tools[{k}].name must be a string"));
        let Some(t) = t.object() else {
            return no_name();
        };
        if let Some(kind) = t.kind.as_str()
            && kind != "custom"
        {
            return fail(format!(
                "tools[{k}]: server tool `{kind}` is only available on Anthropic models"
            ));
        }
        let Some(name) = t.name.as_str() else {
            return no_name();
        };
        out.push(ChatTool {
            kind: "function",
            function: FunctionDef {
                name,
                description: t.description.as_str(),
                parameters: t
                    .input_schema
                    .map_or(OPEN_SCHEMA, |s| Schema::Raw(Cow::Borrowed(s))),
            },
        });
    }
    Ok(out)
}

fn add_message<'a>(
    i: usize,
    m: &'a Lax<'a, Message<'a>>,
    messages: &mut Vec<ChatMessage<'a>>,
) -> Result<()> {
    let path = format!("messages[{i}]");
    let Some(m) = m.object() else {
        return fail(format!("{path}.role must be a string"));
    };
    let role = match m.role.as_str() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some(other) => {
            return fail(format!(
                "{path}: unknown role `{other}`, expected user or assistant"
            ));
        }
        None => return fail(format!("{path}.role must be a string")),
    };
    let blocks = match &m.content {
        Lax::Str(s) => {
            messages.push(ChatMessage::text(role, s.as_ref()));
            return Ok(());
        }
        Lax::Array(blocks) => blocks,
        _ => {
            return fail(format!(
                "{path}.content must be a string or an array of content blocks"
            ));
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning_details = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content[{j}]");
        let Some(b) = b.object() else {
            return fail(format!("{bpath}.type must be a string"));
        };
        let Some(kind) = b.kind.as_str() else {
            return fail(format!("{bpath}.type must be a string"));
        };
        match kind {
            "text" => {
                let Some(text) = b.text.as_str() else {
                    return fail(format!("{bpath}.text must be a string"));
                };
                parts.push(ChatPart::Text { text });
            }
            "image" if role == "user" => {
                let url = media_url(&b.source, &bpath)?;
                parts.push(ChatPart::ImageUrl {
                    image_url: Url { url },
                });
            }
            "document" if role == "user" => {
                let file_data = media_url(&b.source, &bpath)?;
                parts.push(ChatPart::File {
                    file: File { file_data },
                });
            }
            "tool_use" if role == "assistant" => {
                let (Some(id), Some(name)) = (b.id.as_str(), b.name.as_str()) else {
                    return fail(format!(
                        "{bpath}: a tool_use block needs a string `id` and `name`"
                    ));
                };
                // The input as the client wrote it is the arguments' JSON text.
                let arguments = b.input.map_or("{}", RawValue::get);
                tool_calls.push(ChatToolCall {
                    id,
                    kind: "function",
                    function: FunctionCall { name, arguments },
                });
            }
            "tool_result" if role == "user" => {
                let Some(id) = b.tool_use_id.as_str() else {
                    return fail(format!("{bpath}.tool_use_id must be a string"));
                };
                let content: Cow<str> = match &b.content {
                    Lax::Absent | Lax::Null => Cow::Borrowed(""),
                    Lax::Str(s) => Cow::Borrowed(s),
                    Lax::Array(inner) => {
                        let mut texts = Vec::with_capacity(inner.len());
                        for c in inner {
                            let c = c.object();
                            match (
                                c.and_then(|c| c.kind.as_str()),
                                c.and_then(|c| c.text.as_str()),
                            ) {
                                (Some("text"), Some(t)) => texts.push(t),
                                _ => {
                                    return fail(format!(
                                        "{bpath}: only text tool results can be sent to this model"
                                    ));
                                }
                            }
                        }
                        Cow::Owned(texts.join("\n"))
                    }
                    _ => return fail(format!("{bpath}.content must be a string or blocks")),
                };
                let content = if b.is_error.as_bool() == Some(true) {
                    Cow::Owned(format!("Error: {content}"))
                } else {
                    content
                };
                // Tool results answer the previous assistant turn, so they
                // come before the rest of this user turn.
                messages.push(ChatMessage {
                    tool_call_id: Some(id),
                    ..ChatMessage::text("tool", content)
                });
            }
            // Claude's own thinking is for Claude alone. Another provider's
            // reasoning, which this gateway carried to the client in a
            // thinking block, goes back to it (`chat::carry`).
            "thinking" if role == "assistant" => {
                if let Some(detail) = b.signature.as_str().and_then(chat::carried) {
                    reasoning_details.push(detail);
                }
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return fail(format!(
                    "{bpath}: block type `{other}` is not supported in a {role} message for this model"
                ));
            }
        }
    }
    if role == "assistant" {
        let text: String = parts.iter().filter_map(ChatPart::text).collect();
        messages.push(ChatMessage {
            content: if text.is_empty() && !tool_calls.is_empty() {
                ChatContent::Null
            } else {
                ChatContent::Text(Cow::Owned(text))
            },
            tool_calls,
            reasoning_details,
            ..ChatMessage::text("assistant", "")
        });
    } else if !parts.is_empty() {
        messages.push(ChatMessage {
            content: ChatContent::Parts(parts),
            ..ChatMessage::text("user", "")
        });
    }
    Ok(())
}

/// An image or document source as the URL a chat content part takes: a
/// data URL for base64 data.
fn media_url<'a>(source: &'a Lax<'a, Source<'a>>, path: &str) -> Result<Cow<'a, str>> {
    if let Lax::Absent = source {
        return fail(format!("{path}.source must be an object"));
    }
    let source = source.object();
    match source.and_then(|s| s.kind.as_str()) {
        Some("base64") => match source.map(|s| (s.media_type.as_str(), s.data.as_str())) {
            Some((Some(media), Some(data))) => {
                Ok(Cow::Owned(format!("data:{media};base64,{data}")))
            }
            _ => fail(format!(
                "{path}.source needs string `media_type` and `data`"
            )),
        },
        Some("url") => match source.and_then(|s| s.url.as_str()) {
            Some(url) => Ok(Cow::Borrowed(url)),
            None => fail(format!("{path}.source.url must be a string")),
        },
        _ => fail(format!(
            "{path}.source: only base64 and url sources can be sent to this model"
        )),
    }
}

fn number<'a>(field: &'a Lax<'a>, key: &str) -> Result<Option<&'a Number>> {
    match field {
        Lax::Absent | Lax::Null => Ok(None),
        Lax::Number(n) => Ok(Some(n)),
        _ => fail(format!("`{key}` must be a number")),
    }
}

// ------------------------------------------------- the request, as read

/// An Anthropic Messages request: the fields this translation reads.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct MessagesRequest<'a> {
    /// A string or text blocks.
    system: List<'a, Block<'a>>,
    messages: List<'a, Message<'a>>,
    max_tokens: Lax<'a>,
    tools: List<'a, Tool<'a>>,
    tool_choice: Lax<'a, ToolChoice<'a>>,
    stop_sequences: List<'a>,
    temperature: Lax<'a>,
    top_p: Lax<'a>,
    metadata: Lax<'a, Metadata<'a>>,
    stream: Lax<'a>,
    thinking: Lax<'a, Thinking<'a>>,
    output_config: Lax<'a, OutputConfig<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Thinking<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    budget_tokens: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct OutputConfig<'a> {
    effort: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Message<'a> {
    role: Lax<'a>,
    /// A string or content blocks.
    content: List<'a, Block<'a>>,
}

/// A content block of any type: the fields of all the types it may be.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Block<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    text: Lax<'a>,
    source: Lax<'a, Source<'a>>,
    id: Lax<'a>,
    name: Lax<'a>,
    #[serde(deserialize_with = "raw_keeping_null")]
    input: Option<&'a RawValue>,
    /// A thinking block's.
    signature: Lax<'a>,
    tool_use_id: Lax<'a>,
    /// A `tool_result`'s content: a string or blocks.
    content: List<'a, Block<'a>>,
    is_error: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Source<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    media_type: Lax<'a>,
    data: Lax<'a>,
    url: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    name: Lax<'a>,
    description: Lax<'a>,
    #[serde(deserialize_with = "raw_keeping_null")]
    input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    name: Lax<'a>,
    disable_parallel_tool_use: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Metadata<'a> {
    user_id: Lax<'a>,
}

// ---------------------------------------------- the request, as written

/// A Chat Completions request.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ChatToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<&'a str>,
    /// As the client wrote it: an integer stays one.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: ChatContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ChatToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    /// Another provider's reasoning this gateway carried in a thinking
    /// block's signature (`chat::carried`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasoning_details: Vec<serde_json::Value>,
}

impl<'a> ChatMessage<'a> {
    fn text(role: &'static str, text: impl Into<Cow<'a, str>>) -> Self {
        ChatMessage {
            role,
            content: ChatContent::Text(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning_details: Vec::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatContent<'a> {
    /// An assistant turn that only calls tools.
    Null,
    Text(Cow<'a, str>),
    Parts(Vec<ChatPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: Url<'a> },
    File { file: File<'a> },
}

impl<'a> ChatPart<'a> {
    fn text(&self) -> Option<&'a str> {
        match self {
            ChatPart::Text { text } => Some(text),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Url<'a> {
    url: Cow<'a, str>,
}

#[derive(Serialize)]
struct File<'a> {
    file_data: Cow<'a, str>,
}

#[derive(Serialize)]
struct ChatToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDef<'a>,
}

#[derive(Serialize)]
struct FunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: Schema<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatToolChoice<'a> {
    /// `auto`, `required` or `none`.
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Name<'a>,
    },
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn an_anthropic_request_becomes_a_chat_request() {
        let req = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "temperature": 0.3,
            "top_k": 5,
            "stream": true,
            "metadata": {"user_id": "u1"}
        });
        let out: Value = serde_json::from_slice(
            &messages_request_to_chat(&serde_json::to_vec(&req).unwrap(), "gpt-4o").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "gpt-4o",
                "max_tokens": 512,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}
                    ]},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                    {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "stop": ["END"],
                "temperature": 0.3,
                "user": "u1",
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    /// Thinking becomes the effort it asks for: `output_config.effort` as it
    /// is, else `thinking`'s budget by size; nothing for thinking that names
    /// no level.
    #[test]
    fn thinking_becomes_the_reasoning_effort_it_asks_for() {
        let effort = |extra: &str| {
            let req = format!(
                r#"{{"max_tokens":64,"messages":[{{"role":"user","content":"hi"}}]{extra}}}"#
            );
            let out: Value =
                serde_json::from_slice(&messages_request_to_chat(req.as_bytes(), "m").unwrap())
                    .unwrap();
            out.get("reasoning_effort").cloned()
        };
        for (extra, expected) in [
            ("", None),
            (r#","output_config":{"effort":"low"}"#, Some("low")),
            (r#","output_config":{"effort":"medium"}"#, Some("medium")),
            (r#","output_config":{"effort":"high"}"#, Some("high")),
            (r#","output_config":{"effort":"max"}"#, Some("xhigh")),
            (r#","output_config":{"effort":"xhigh"}"#, Some("xhigh")),
            (r#","output_config":{"effort":"odd"}"#, None),
            (r#","output_config":{}"#, None),
            (
                r#","thinking":{"type":"enabled","budget_tokens":1024}"#,
                Some("low"),
            ),
            (
                r#","thinking":{"type":"enabled","budget_tokens":4000}"#,
                Some("low"),
            ),
            (
                r#","thinking":{"type":"enabled","budget_tokens":10000}"#,
                Some("medium"),
            ),
            (
                r#","thinking":{"type":"enabled","budget_tokens":31999}"#,
                Some("high"),
            ),
            (r#","thinking":{"type":"enabled"}"#, None),
            (r#","thinking":{"type":"disabled"}"#, None),
            (r#","thinking":{"type":"adaptive"}"#, None),
            (r#","thinking":null,"output_config":null"#, None),
            (
                r#","thinking":{"type":"adaptive"},"output_config":{"effort":"high"}"#,
                Some("high"),
            ),
            (
                r#","thinking":{"type":"enabled","budget_tokens":31999},"output_config":{"effort":"low"}"#,
                Some("low"),
            ),
        ] {
            assert_eq!(effort(extra), expected.map(|e| json!(e)), "{extra}");
        }
    }

    #[test]
    fn media_tool_results_and_numbers_keep_their_meaning() {
        // Raw, so the tool input keeps the client's key order and spacing.
        let req = r#"{
            "max_tokens": 64,
            "system": "Line one\nline \"two\"",
            "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"b": [1, {"c": null}], "a": "z"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "no such file", "is_error": true}
                ]}
            ],
            "tools": [{"name": "f"}],
            "tool_choice": {"type": "tool", "name": "f"},
            "temperature": 1,
            "stream": false
        }"#;
        let out: Value =
            serde_json::from_slice(&messages_request_to_chat(req.as_bytes(), "gpt-4o").unwrap())
                .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "gpt-4o",
                "max_tokens": 64,
                "messages": [
                    {"role": "system", "content": "Line one\nline \"two\""},
                    {"role": "user", "content": [
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"b\": [1, {\"c\": null}], \"a\": \"z\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "t1", "content": "Error: no such file"}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "temperature": 1
            })
        );
        // Without tools, a tool_choice has nothing to choose from.
        let out: Value = serde_json::from_slice(
            &messages_request_to_chat(
                br#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"any"}}"#,
                "m",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn bad_anthropic_requests_are_errors() {
        for (body, want) in [
            ("nope", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (r#"{"max_tokens":1}"#, "`messages` must be an array"),
            (r#"{"max_tokens":1,"messages":[]}"#, "at least one message"),
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "missing field `max_tokens`",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#,
                "unknown role `system`",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":5}]}"#,
                "messages[0].content must be",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b"}]}]}"#,
                "block type `tool_use` is not supported in a user message",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
                "only base64 and url sources",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
                "server tool `web_search_20250305`",
            ),
            (
                r#"{"max_tokens":null,"messages":[{"role":"user","content":"x"}]}"#,
                "`max_tokens` must be a positive integer",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":["x"]}]}"#,
                "messages[0].content[0].type must be a string",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AA"}}]}]}"#,
                "messages[0].content[0].source needs string `media_type` and `data`",
            ),
            (
                r#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}],"temperature":"warm"}"#,
                "`temperature` must be a number",
            ),
            (
                r#"{"max_tokens":1,"max_tokens":2,"messages":[{"role":"user","content":"x"}]}"#,
                "duplicate field `max_tokens`",
            ),
        ] {
            let e = messages_request_to_chat(body.as_bytes(), "m")
                .unwrap_err()
                .0;
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    /// A thinking block that carries another provider's reasoning gives the
    /// assistant message its `reasoning_details` entry again; Claude's own
    /// thinking (any other signature) goes nowhere else.
    #[test]
    fn a_carried_thinking_block_is_reasoning_details_again() {
        let detail = json!({"type": "reasoning.encrypted", "id": "rs_1", "data": "gAAAA-one",
            "format": "openai-responses-v1"});
        let req = json!({"model": "gpt-6-luna", "max_tokens": 100, "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "", "signature": chat::carry(&detail)},
                {"type": "thinking", "thinking": "mine", "signature": "EqQBCgIYAhIM"},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "4C"}]}]});
        let out: Value = serde_json::from_slice(
            &messages_request_to_chat(&serde_json::to_vec(&req).unwrap(), "gpt-6-luna").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out["messages"][1]["reasoning_details"],
            json!([detail]),
            "{out}"
        );
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "call_1");
        assert!(out["messages"][0].get("reasoning_details").is_none());
    }
}
