//! An OpenAI Chat Completions request → an Anthropic Messages request.
//!
//! The request is read into borrowed wire structs whose checked fields are
//! [`Lax`], so that every error names the exact field
//! (`messages[3].tool_calls[0].function.arguments`), and the Anthropic
//! request is written from structs that borrow from it. JSON schemas, tool
//! arguments, `cache_control`, `thinking` and `output_config` pass through as the client
//! wrote them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::lax::{Lax, List, is_object, read_request};
use super::wire::{Block, OPEN_SCHEMA, Schema, Source, ToolInput};
use super::{JSON_TOOL, TranslateError};
use crate::protocol::chat;

type Result<T> = std::result::Result<T, TranslateError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(TranslateError(message.into()))
}

/// Translates an OpenAI Chat Completions request body into an Anthropic
/// Messages request body for `upstream_model`.
///
/// Mapped:
/// - `system` / `developer` messages (anywhere) → top-level `system`: a string
///   for one plain block, else text blocks (`cache_control` on text parts is
///   kept, so prompt caching can be asked for).
/// - `user` / `assistant` content, string or parts: `text`, `image_url`
///   (base64 data URL → `base64` source, http(s) → `url` source), `file` with
///   an inline PDF data URL → `document`. Empty or whitespace-only text is
///   left out (Anthropic rejects empty text blocks), and empty messages with
///   it; a final assistant message (a prefill) loses trailing whitespace,
///   which Anthropic also rejects.
/// - assistant `tool_calls` → `tool_use` blocks (`arguments` parsed into
///   `input`; it must be a JSON object); `tool` messages → `tool_result`
///   blocks in a user turn. Consecutive same-role turns are merged, as
///   Anthropic requires alternating roles, and in a user turn the
///   `tool_result` blocks go first, as Anthropic also requires.
/// - When the history holds tool calls but the request sends no `tools`,
///   the tools it used are declared with an open schema and
///   `tool_choice: none`, because Anthropic refuses `tool_use` blocks for
///   undeclared tools.
/// - `tools` (function) → `{name, description, input_schema}`;
///   `tool_choice` `auto`/`none`/`required`/`{function}` →
///   `auto`/`none`/`any`/`tool` (`allowed_tools` → `auto` or `any`, without
///   the restriction); `parallel_tool_calls: false` →
///   `disable_parallel_tool_use`.
/// - `max_completion_tokens`, else `max_tokens`, else `default_max_tokens`
///   → `max_tokens` (required by Anthropic).
/// - `stop` → `stop_sequences`; `temperature` clamped to Anthropic's [0, 1];
///   `top_p` only when there is no `temperature`, because recent Claude models
///   reject requests that set both; `stream`; `user` (or
///   `safety_identifier`) → `metadata.user_id`.
/// - `response_format`: `json_schema` with an object schema and no client
///   tools becomes a forced tool named [`JSON_TOOL`] whose input schema is
///   the client's — Anthropic then must answer with exactly that JSON, and
///   the answer translators turn that tool call back into message text. With
///   client tools (a forced tool would stop them) or a non-object schema, the
///   schema goes into a system instruction instead; `json_object` is a system
///   instruction too. `text` needs nothing.
/// - Passed through as Anthropic extensions: `top_k`, `thinking`,
///   `output_config`.
///
/// Rejected with an error naming them: legacy `functions` / `function_call`
/// and role `function`, `n` > 1, audio input, non-PDF files and file ids,
/// non-function tools, and any malformed field.
///
/// Dropped (no Anthropic equivalent; the answer names the first six:
/// `request::ChatOnly`): `frequency_penalty`,
/// `presence_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `seed`,
/// `stream_options` (Anthropic streams always carry usage), `metadata`,
/// `store`, `service_tier`, `modalities`, `audio`, `prediction`,
/// `reasoning_effort` (a model that takes an effort gets it as
/// `output_config.effort` from the plan: `catalog::Capabilities::output_effort`), `verbosity`, `web_search_options`, `prompt_cache_key`,
/// tools' `strict`, image `detail`, and any other unknown field.
pub fn chat_to_messages(
    body: &[u8],
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>> {
    chat_to_messages_draft(body)?.for_model(upstream_model, default_max_tokens)
}

/// A Chat Completions request translated to Anthropic Messages but for the
/// model: a request that may be tried on several Anthropic models (failover)
/// is translated and encoded once.
#[derive(Debug, Clone)]
pub struct MessagesDraft {
    /// The encoded request without `model` and `max_tokens`: a JSON object.
    body: Vec<u8>,
    /// The client's own `max_tokens` / `max_completion_tokens`.
    max_tokens: Option<u64>,
}

impl MessagesDraft {
    /// The upstream body for `upstream_model`; `default_max_tokens` when the
    /// client set none (Anthropic requires it).
    pub fn for_model(&self, upstream_model: &str, default_max_tokens: u64) -> Result<Vec<u8>> {
        #[derive(Serialize)]
        struct Head<'a> {
            model: &'a str,
            max_tokens: u64,
        }
        let head = serde_json::to_vec(&Head {
            model: upstream_model,
            max_tokens: self.max_tokens.unwrap_or(default_max_tokens).max(1),
        })
        .map_err(|e| TranslateError(format!("could not encode the Anthropic request: {e}")))?;
        // Two encoded objects joined into one: `{head…}` and `{body…}`.
        match (head.strip_suffix(b"}"), self.body.strip_prefix(b"{")) {
            (Some(head), Some(b"}")) => Ok([head, b"}"].concat()),
            (Some(head), Some(body)) => Ok([head, b",", body].concat()),
            _ => fail("could not encode the Anthropic request"),
        }
    }
}

/// [`chat_to_messages`] up to the model (see [`MessagesDraft`]).
pub fn chat_to_messages_draft(body: &[u8]) -> Result<MessagesDraft> {
    let req: ChatRequest = read_request(body, "an OpenAI Chat Completions request")?;
    let (messages, max_tokens) = translate(&req)?;
    let body = serde_json::to_vec(&messages)
        .map_err(|e| TranslateError(format!("could not encode the Anthropic request: {e}")))?;
    Ok(MessagesDraft { body, max_tokens })
}

/// The Anthropic request for `req`, and the client's own `max_tokens`.
fn translate<'a>(req: &'a ChatRequest<'a>) -> Result<(MessagesRequest<'a>, Option<u64>)> {
    reject_unsupported(req)?;

    let messages = match &req.messages {
        Lax::Array(m) if !m.is_empty() => m,
        Lax::Array(_) => return fail("`messages` must contain at least one message"),
        Lax::Absent => return fail("missing field `messages`"),
        _ => return fail("`messages` must be an array of messages"),
    };
    let mut conv = Conversation::default();
    for (i, m) in messages.iter().enumerate() {
        conv.add(i, m)?;
    }
    conv.finish()?;

    let max_tokens = match uint(&req.max_completion_tokens, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => uint(&req.max_tokens, "max_tokens")?,
    };
    if max_tokens == Some(0) {
        return fail("`max_tokens` must be at least 1");
    }

    let mut tools = client_tools(&req.tools)?;
    let mut tool_choice = if tools.is_empty() {
        None
    } else {
        tool_choice(&req.tool_choice)?
    };
    match json_mode(&req.response_format)? {
        JsonMode::Off => {}
        JsonMode::Object => conv.system.push(Block::text(
            "Respond only with a single valid JSON object, with no other text.",
        )),
        JsonMode::Schema { name, schema } => {
            if tools.is_empty() && is_object_schema(schema) {
                tools.push(Tool {
                    name: JSON_TOOL,
                    description: Some(Cow::Owned(format!(
                        "Give your final answer as this tool's input: a JSON value matching the schema `{name}`."
                    ))),
                    input_schema: Schema::Raw(Cow::Borrowed(schema)),
                });
                tool_choice = Some(ToolChoice {
                    name: Some(JSON_TOOL),
                    ..ToolChoice::kind("tool")
                });
            } else {
                conv.system.push(Block::text(format!(
                    "Respond only with JSON that matches this JSON schema (`{name}`), with no other text:\n{}",
                    compact(schema)
                )));
            }
        }
    }
    if tools.is_empty() && !conv.tools_used.is_empty() {
        for name in &conv.tools_used {
            tools.push(Tool {
                name,
                description: Some(Cow::Borrowed("A tool this conversation used earlier.")),
                input_schema: OPEN_SCHEMA,
            });
        }
        tool_choice = Some(ToolChoice::kind("none"));
    }
    if let Some(choice) = tool_choice.as_mut()
        && req.parallel_tool_calls.as_bool() == Some(false)
        && choice.kind != "none"
    {
        choice.disable_parallel_tool_use = true;
    }

    let stop_sequences = stop_sequences(&req.stop)?;
    let temperature = number(&req.temperature, "temperature")?;
    let top_p = match temperature {
        Some(_) => None,
        None => number(&req.top_p, "top_p")?,
    };
    let top_k = uint(&req.top_k, "top_k")?;
    let stream = match &req.stream {
        Lax::Absent | Lax::Null => None,
        Lax::Bool(b) => Some(*b),
        _ => return fail("`stream` must be a boolean"),
    };
    let mut metadata = None;
    for (key, id) in [
        ("safety_identifier", &req.safety_identifier),
        ("user", &req.user),
    ] {
        match id {
            Lax::Absent | Lax::Null => continue,
            Lax::Str(id) if !id.is_empty() => {
                metadata = Some(Metadata { user_id: id });
                break;
            }
            Lax::Str(_) => continue,
            _ => return fail(format!("`{key}` must be a string")),
        }
    }
    let out = MessagesRequest {
        system: system(conv.system),
        messages: conv.turns,
        tools,
        tool_choice,
        stop_sequences,
        temperature: temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: top_p.map(|p| p.clamp(0.0, 1.0)),
        top_k,
        thinking: req.thinking.filter(|t| is_object(t)),
        output_config: req.output_config.filter(|t| is_object(t)),
        stream,
        metadata,
    };
    Ok((out, max_tokens))
}

fn reject_unsupported(req: &ChatRequest) -> Result<()> {
    for (key, value) in [
        ("functions", &req.functions),
        ("function_call", &req.function_call),
    ] {
        if !value.is_none() {
            return fail(format!(
                "`{key}` (legacy function calling) is not supported for Anthropic models; use `tools` and `tool_choice`"
            ));
        }
    }
    if uint(&req.n, "n")?.is_some_and(|n| n > 1) {
        return fail(
            "`n` greater than 1 is not supported for Anthropic models; send one request per choice",
        );
    }
    Ok(())
}

/// The system prompt: a plain string for one text block without a
/// `cache_control` marker, else the blocks.
fn system(mut blocks: Vec<Block<'_>>) -> Option<System<'_>> {
    let plain = matches!(
        blocks.as_slice(),
        [Block::Text {
            cache_control: None,
            ..
        }]
    );
    if plain && let Some(Block::Text { text, .. }) = blocks.pop() {
        return Some(System::Text(text));
    }
    (!blocks.is_empty()).then_some(System::Blocks(blocks))
}

#[derive(Default)]
struct Conversation<'a> {
    system: Vec<Block<'a>>,
    turns: Vec<Turn<'a>>,
    /// Tool names called in the history, in first-use order.
    tools_used: Vec<&'a str>,
}

/// Where a content part may appear: Anthropic allows images and documents
/// only in user turns and tool results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allow {
    TextOnly,
    Media,
}

impl<'a> Conversation<'a> {
    fn add(&mut self, i: usize, message: &'a Lax<'a, ChatMessage<'a>>) -> Result<()> {
        let path = format!("messages[{i}]");
        let Lax::Object(m) = message else {
            return fail(format!("{path} must be an object"));
        };
        let Some(role) = m.role.as_str() else {
            return fail(format!("{path}.role must be a string"));
        };
        let content_path = format!("{path}.content");
        match role {
            "system" | "developer" => {
                let blocks = blocks(&m.content, &content_path, Allow::TextOnly)?;
                self.system.extend(blocks);
            }
            "user" => {
                let blocks = blocks(&m.content, &content_path, Allow::Media)?;
                self.push("user", blocks);
            }
            "assistant" => {
                // Its thinking first, as the model wrote it.
                let mut blocks: Vec<Block<'a>> = match &m.reasoning_details {
                    Lax::Array(details) => details
                        .iter()
                        .filter_map(|d| match d {
                            Lax::Object(d) => d.block(),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                blocks.extend(self::blocks(&m.content, &content_path, Allow::TextOnly)?);
                match &m.tool_calls {
                    Lax::Absent | Lax::Null => {}
                    Lax::Array(calls) => {
                        for (j, call) in calls.iter().enumerate() {
                            let block = self.tool_use(call, &format!("{path}.tool_calls[{j}]"))?;
                            blocks.push(block);
                        }
                    }
                    _ => return fail(format!("{path}.tool_calls must be an array")),
                }
                self.push("assistant", blocks);
            }
            "tool" => {
                let Some(id) = m.tool_call_id.as_str() else {
                    return fail(format!("{path}.tool_call_id must be a string"));
                };
                let content = blocks(&m.content, &content_path, Allow::Media)?;
                self.push(
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id: id,
                        content,
                    }],
                );
            }
            "function" => {
                return fail(format!(
                    "{path}: role `function` (legacy function calling) is not supported for Anthropic models; use `tools` and role `tool`"
                ));
            }
            other => {
                return fail(format!(
                    "{path}: unknown message role `{other}`, expected one of system, developer, user, assistant, tool"
                ));
            }
        }
        Ok(())
    }

    fn tool_use(&mut self, call: &'a Lax<'a, ToolCall<'a>>, path: &str) -> Result<Block<'a>> {
        let Lax::Object(c) = call else {
            return fail(format!("{path} must be an object"));
        };
        let Some(id) = c.id.as_str() else {
            return fail(format!("{path}.id must be a string"));
        };
        if let Some(kind) = c.kind.as_str()
            && kind != "function"
        {
            return fail(format!(
                "{path}.type `{kind}` is not supported for Anthropic models; only `function` tool calls are"
            ));
        }
        let Some(f) = c.function.object() else {
            return fail(format!("{path}.function must be an object"));
        };
        let Some(name) = f.name.as_str() else {
            return fail(format!("{path}.function.name must be a string"));
        };
        let input = tool_input(f.arguments, path)?;
        if !self.tools_used.contains(&name) {
            self.tools_used.push(name);
        }
        Ok(Block::ToolUse { id, name, input })
    }

    fn push(&mut self, role: &'static str, blocks: Vec<Block<'a>>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => self.turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }

    fn finish(&mut self) -> Result<()> {
        for turn in &mut self.turns {
            if turn.role == "user" {
                // Stable: tool results first, everything else in order after.
                turn.content
                    .sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
            }
        }
        if let Some(last) = self.turns.last_mut()
            && last.role == "assistant"
            && let Some(Block::Text { text, .. }) = last.content.last_mut()
        {
            trim_end(text);
            if text.is_empty() {
                last.content.pop();
            }
            if last.content.is_empty() {
                self.turns.pop();
            }
        }
        if self.turns.is_empty() {
            return fail(
                "`messages` has no user or assistant content to send; Anthropic needs at least one non-empty message",
            );
        }
        Ok(())
    }
}

fn trim_end(text: &mut Cow<'_, str>) {
    match text {
        Cow::Borrowed(t) => *t = t.trim_end(),
        Cow::Owned(t) => t.truncate(t.trim_end().len()),
    }
}

/// `function.arguments` as Anthropic's `input`, which must be an object:
/// JSON text (what OpenAI sends) parsed, or an object passed through.
fn tool_input<'a>(arguments: Option<&'a RawValue>, path: &str) -> Result<ToolInput<'a>> {
    let Some(raw) = arguments else {
        return Ok(ToolInput::Empty {});
    };
    let input = match serde_json::from_str::<Lax>(raw.get()) {
        Ok(Lax::Null) => return Ok(ToolInput::Empty {}),
        Ok(Lax::Object(_)) => Cow::Borrowed(raw),
        Ok(Lax::Str(s)) if s.trim().is_empty() => return Ok(ToolInput::Empty {}),
        Ok(Lax::Str(s)) => Cow::Owned(serde_json::from_str::<Box<RawValue>>(&s).map_err(|e| {
            TranslateError(format!(
                "{path}.function.arguments is not valid JSON ({e}); Anthropic needs tool call arguments as a JSON object"
            ))
        })?),
        Ok(_) => return fail(format!("{path}.function.arguments must be a JSON string")),
        Err(e) => {
            return fail(format!(
                "{path}.function.arguments is not valid JSON ({e}); Anthropic needs tool call arguments as a JSON object"
            ));
        }
    };
    if !is_object(&input) {
        return fail(format!(
            "{path}.function.arguments must encode a JSON object for Anthropic models"
        ));
    }
    Ok(ToolInput::Object(input))
}

/// The content of one message as Anthropic blocks.
fn blocks<'a>(content: &'a List<'a, Part<'a>>, path: &str, allow: Allow) -> Result<Vec<Block<'a>>> {
    let mut out = Vec::new();
    match content {
        Lax::Absent | Lax::Null => {}
        Lax::Str(s) => {
            if !s.trim().is_empty() {
                out.push(Block::text(s.as_ref()));
            }
        }
        Lax::Array(parts) => {
            for (j, p) in parts.iter().enumerate() {
                part(p, &format!("{path}[{j}]"), allow, &mut out)?;
            }
        }
        _ => {
            return fail(format!(
                "{path} must be a string or an array of content parts"
            ));
        }
    }
    Ok(out)
}

fn part<'a>(
    p: &'a Lax<'a, Part<'a>>,
    path: &str,
    allow: Allow,
    out: &mut Vec<Block<'a>>,
) -> Result<()> {
    let Lax::Object(p) = p else {
        return fail(format!("{path} must be a content part object"));
    };
    let Some(kind) = p.kind.as_str() else {
        return fail(format!("{path}.type must be a string"));
    };
    let media_only = |what: &str| {
        fail(format!(
            "{path}: {what} are only allowed in user and tool messages for Anthropic models"
        ))
    };
    match kind {
        "text" | "input_text" => {
            let Some(t) = p.text.as_str() else {
                return fail(format!("{path}.text must be a string"));
            };
            if !t.trim().is_empty() {
                out.push(Block::Text {
                    text: Cow::Borrowed(t),
                    cache_control: p.cache_control.filter(|c| is_object(c)),
                });
            }
        }
        // A refusal the model gave earlier carries nothing to resend.
        "refusal" => {}
        "image_url" | "input_image" => {
            if allow == Allow::TextOnly {
                return media_only("images");
            }
            let url = match &p.image_url {
                Lax::Str(u) => Some(u.as_ref()),
                Lax::Object(o) => o.url.as_str(),
                _ => None,
            };
            let Some(url) = url else {
                return fail(format!("{path}.image_url.url must be a string"));
            };
            out.push(image(url, path)?);
        }
        "file" => {
            if allow == Allow::TextOnly {
                return media_only("files");
            }
            let data = p.file.object().and_then(|f| f.file_data.as_str());
            let Some((media, data)) = data.and_then(data_url) else {
                return fail(format!(
                    "{path}: only inline PDF files (`file.file_data` as a base64 data URL) are supported for Anthropic models"
                ));
            };
            if media != "application/pdf" {
                return fail(format!(
                    "{path}: file type `{media}` is not supported for Anthropic models; only PDF is"
                ));
            }
            out.push(Block::Document {
                source: Source::Base64 {
                    media_type: media,
                    data,
                },
            });
        }
        "input_audio" => {
            return fail(format!(
                "{path}: audio input is not supported by Anthropic models"
            ));
        }
        other => {
            return fail(format!(
                "{path}: content part type `{other}` is not supported for Anthropic models"
            ));
        }
    }
    Ok(())
}

fn image<'a>(url: &'a str, path: &str) -> Result<Block<'a>> {
    if url.starts_with("data:") {
        let Some((media_type, data)) = data_url(url) else {
            return fail(format!(
                "{path}: an image data URL must be base64, like data:image/png;base64,…"
            ));
        };
        return Ok(Block::Image {
            source: Source::Base64 { media_type, data },
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(Block::Image {
            source: Source::Url { url },
        });
    }
    fail(format!(
        "{path}: an image URL must be http(s) or a base64 data URL"
    ))
}

/// `data:<media type>[;params];base64,<data>` → (media type, data).
fn data_url(url: &str) -> Option<(&str, &str)> {
    let (meta, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = meta.split(';');
    let media = params.next().filter(|m| !m.is_empty())?;
    let base64 = params.any(|p| p.eq_ignore_ascii_case("base64"));
    (base64 && !data.is_empty()).then_some((media, data))
}

fn client_tools<'a>(tools: &'a List<'a, ChatTool<'a>>) -> Result<Vec<Tool<'a>>> {
    let list = match tools {
        Lax::Absent | Lax::Null => return Ok(Vec::new()),
        Lax::Array(list) => list,
        _ => return fail("`tools` must be an array"),
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, t) in list.iter().enumerate() {
        let path = format!("tools[{k}]");
        let t = t.object();
        if let Some(kind) = t.and_then(|t| t.kind.as_str())
            && kind != "function"
        {
            return fail(format!(
                "{path}: tool type `{kind}` is not supported for Anthropic models; only `function` tools are"
            ));
        }
        let Some(f) = t.and_then(|t| t.function.object()) else {
            return fail(format!("{path}.function must be an object"));
        };
        let Some(name) = f.name.as_str() else {
            return fail(format!("{path}.function.name must be a string"));
        };
        let input_schema = match f.parameters {
            None => OPEN_SCHEMA,
            Some(schema) if is_object(schema) => Schema::Raw(with_object_type(schema, &path)?),
            Some(_) => {
                return fail(format!(
                    "{path}.function.parameters must be a JSON schema object"
                ));
            }
        };
        out.push(Tool {
            name,
            description: f.description.as_str().map(Cow::Borrowed),
            input_schema,
        });
    }
    Ok(out)
}

/// A tool's parameter schema with `"type": "object"` added when it has no
/// `type`: OpenAI accepts `{}` for a tool without arguments, Anthropic needs
/// an object schema.
fn with_object_type<'a>(schema: &'a RawValue, path: &str) -> Result<Cow<'a, RawValue>> {
    let bad = |e: serde_json::Error| {
        TranslateError(format!(
            "{path}.function.parameters must be a JSON schema object ({e})"
        ))
    };
    let head = serde_json::from_str::<SchemaHead>(schema.get()).map_err(bad)?;
    if !matches!(head.kind, Lax::Absent) {
        return Ok(Cow::Borrowed(schema));
    }
    let members = schema
        .get()
        .strip_prefix('{')
        .unwrap_or_default()
        .trim_start();
    let with_type = if members.starts_with('}') {
        r#"{"type":"object"}"#.to_owned()
    } else {
        format!(r#"{{"type":"object",{members}"#)
    };
    RawValue::from_string(with_type)
        .map(Cow::Owned)
        .map_err(bad)
}

fn tool_choice<'a>(choice: &'a Lax<'a, ChatToolChoice<'a>>) -> Result<Option<ToolChoice<'a>>> {
    let kind = match choice {
        Lax::Absent | Lax::Null => return Ok(None),
        Lax::Str(s) => match s.as_ref() {
            "auto" => "auto",
            "none" => "none",
            "required" => "any",
            other => {
                return fail(format!(
                    "`tool_choice` `{other}` is not one of auto, none, required"
                ));
            }
        },
        Lax::Object(o) => match o.kind.as_str() {
            Some("function") => {
                let Some(name) = o.function.object().and_then(|f| f.name.as_str()) else {
                    return fail("`tool_choice.function.name` must be a string");
                };
                return Ok(Some(ToolChoice {
                    name: Some(name),
                    ..ToolChoice::kind("tool")
                }));
            }
            Some("allowed_tools") => {
                let mode = o.allowed_tools.object().and_then(|a| a.mode.as_str());
                if mode == Some("required") {
                    "any"
                } else {
                    "auto"
                }
            }
            _ => {
                return fail(
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",…}",
                );
            }
        },
        _ => return fail("`tool_choice` must be a string or an object"),
    };
    Ok(Some(ToolChoice::kind(kind)))
}

enum JsonMode<'a> {
    Off,
    Object,
    Schema { name: &'a str, schema: &'a RawValue },
}

fn json_mode<'a>(format: &'a Lax<'a, ResponseFormat<'a>>) -> Result<JsonMode<'a>> {
    let format = match format {
        Lax::Absent | Lax::Null => return Ok(JsonMode::Off),
        Lax::Object(f) => f,
        _ => return fail("`response_format` must be an object"),
    };
    match format.kind.as_str() {
        Some("text") => Ok(JsonMode::Off),
        Some("json_object") => Ok(JsonMode::Object),
        Some("json_schema") => {
            let Some(spec) = format.json_schema.object() else {
                return fail("`response_format.json_schema` must be an object");
            };
            let name = spec.name.as_str().unwrap_or("response");
            Ok(match spec.schema.filter(|s| is_object(s)) {
                Some(schema) => JsonMode::Schema { name, schema },
                None => JsonMode::Object,
            })
        }
        _ => fail("`response_format.type` must be one of text, json_object, json_schema"),
    }
}

fn is_object_schema(schema: &RawValue) -> bool {
    match serde_json::from_str::<SchemaHead>(schema.get()) {
        Ok(head) => match head.kind {
            Lax::Str(t) => t == "object",
            Lax::Absent => !matches!(head.properties, Lax::Absent),
            _ => false,
        },
        Err(_) => false,
    }
}

/// A schema as compact JSON for a system instruction. A schema too deeply
/// nested to be read is given as the client wrote it.
fn compact(schema: &RawValue) -> Cow<'_, str> {
    match serde_json::from_str::<Value>(schema.get()) {
        Ok(v) => Cow::Owned(v.to_string()),
        Err(_) => Cow::Borrowed(schema.get()),
    }
}

fn stop_sequences<'a>(stop: &'a List<'a>) -> Result<Vec<&'a str>> {
    let list: Vec<&str> = match stop {
        Lax::Absent | Lax::Null => return Ok(Vec::new()),
        Lax::Str(s) => vec![s.as_ref()],
        other => match other.strings() {
            Some(list) => list,
            None => return fail("`stop` must be a string or an array of strings"),
        },
    };
    // Anthropic rejects stop sequences that are only whitespace.
    Ok(list.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

fn uint(field: &Lax, key: &str) -> Result<Option<u64>> {
    if field.is_none() {
        return Ok(None);
    }
    match field.as_u64() {
        Some(n) => Ok(Some(n)),
        None => fail(format!("`{key}` must be a non-negative integer")),
    }
}

fn number(field: &Lax, key: &str) -> Result<Option<f64>> {
    if field.is_none() {
        return Ok(None);
    }
    match field.as_f64() {
        Some(n) => Ok(Some(n)),
        None => fail(format!("`{key}` must be a number")),
    }
}

// ------------------------------------------------- the request, as read

/// A Chat Completions request: the fields this translation reads.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ChatRequest<'a> {
    messages: List<'a, ChatMessage<'a>>,
    functions: Lax<'a>,
    function_call: Lax<'a>,
    n: Lax<'a>,
    max_completion_tokens: Lax<'a>,
    max_tokens: Lax<'a>,
    tools: List<'a, ChatTool<'a>>,
    tool_choice: Lax<'a, ChatToolChoice<'a>>,
    parallel_tool_calls: Lax<'a>,
    response_format: Lax<'a, ResponseFormat<'a>>,
    stop: List<'a>,
    temperature: Lax<'a>,
    top_p: Lax<'a>,
    top_k: Lax<'a>,
    thinking: Option<&'a RawValue>,
    output_config: Option<&'a RawValue>,
    stream: Lax<'a>,
    safety_identifier: Lax<'a>,
    user: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ChatMessage<'a> {
    role: Lax<'a>,
    /// A string or content parts.
    content: List<'a, Part<'a>>,
    tool_calls: List<'a, ToolCall<'a>>,
    tool_call_id: Lax<'a>,
    /// An assistant message's reasoning as this gateway returned it
    /// (`messages_to_chat`).
    reasoning_details: List<'a, ReasoningDetail<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ReasoningDetail<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    text: Lax<'a>,
    signature: Lax<'a>,
    data: Lax<'a>,
    format: Lax<'a>,
}

impl<'a> ReasoningDetail<'a> {
    /// The Anthropic block it was: a thinking block with its signature or a
    /// redacted one. None for another provider's reasoning, or an entry
    /// without what Anthropic checks.
    fn block(&'a self) -> Option<Block<'a>> {
        if self.format.as_str() != Some(chat::ANTHROPIC_REASONING_FORMAT) {
            return None;
        }
        match (
            self.kind.as_str()?,
            self.text.as_str(),
            self.signature.as_str(),
            self.data.as_str(),
        ) {
            (chat::TEXT_REASONING, Some(thinking), Some(signature), _) => Some(Block::Thinking {
                thinking,
                signature,
            }),
            (chat::ENCRYPTED_REASONING, _, _, Some(data)) => Some(Block::RedactedThinking { data }),
            _ => None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    text: Lax<'a>,
    cache_control: Option<&'a RawValue>,
    /// A string, or an object with the `url`.
    image_url: Lax<'a, Url<'a>>,
    file: Lax<'a, File<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Url<'a> {
    url: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct File<'a> {
    file_data: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ToolCall<'a> {
    id: Lax<'a>,
    #[serde(rename = "type")]
    kind: Lax<'a>,
    function: Lax<'a, FunctionCall<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct FunctionCall<'a> {
    name: Lax<'a>,
    /// JSON text, as OpenAI sends it, or an object: read raw, so an object
    /// passes through as it is.
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    function: Lax<'a, FunctionDef<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct FunctionDef<'a> {
    name: Lax<'a>,
    description: Lax<'a>,
    parameters: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ChatToolChoice<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    function: Lax<'a, Name<'a>>,
    allowed_tools: Lax<'a, AllowedTools<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Name<'a> {
    name: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct AllowedTools<'a> {
    mode: Lax<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    json_schema: Lax<'a, JsonSchemaSpec<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct JsonSchemaSpec<'a> {
    name: Lax<'a>,
    schema: Option<&'a RawValue>,
}

/// What the translation needs to know of a JSON schema, read from its raw
/// text: whether it declares a `type` (even `null`), and `properties`.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct SchemaHead<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    properties: Lax<'a>,
}

// ---------------------------------------------- the request, as written

/// The Anthropic request but for `model` and `max_tokens`, which
/// [`MessagesDraft::for_model`] adds per attempt.
#[derive(Serialize)]
struct MessagesRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<System<'a>>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
}

/// A plain string for one plain text block, else the blocks.
#[derive(Serialize)]
#[serde(untagged)]
enum System<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: Schema<'a>,
}

#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

impl ToolChoice<'_> {
    fn kind(kind: &'static str) -> Self {
        ToolChoice {
            kind,
            name: None,
            disable_parallel_tool_use: false,
        }
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(req: Value) -> Value {
        let body = serde_json::to_vec(&req).unwrap();
        let out = chat_to_messages(&body, "claude-sonnet-4-5", 4096).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn error(req: &str) -> String {
        chat_to_messages(req.as_bytes(), "claude-sonnet-4-5", 4096)
            .unwrap_err()
            .0
    }

    /// The thinking a Claude answer carried to a Chat client
    /// (`reasoning_details`, `messages_to_chat`) goes back as the blocks it
    /// was, first in the assistant's content and unchanged, as Anthropic
    /// wants them in a tool-use turn while thinking is on; another
    /// provider's reasoning and entries without their signature stay out.
    #[test]
    fn an_assistant_messages_thinking_goes_back_as_its_blocks() {
        let out = translate(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null,
                 "reasoning_details": [
                    {"type": "reasoning.text", "text": "The user wants weather.", "signature": "EqQBCgIYAhIM",
                     "format": "anthropic-claude-v1", "index": 0},
                    {"type": "reasoning.encrypted", "data": "EmwKAhgBEgy", "format": "anthropic-claude-v1", "index": 1},
                    {"type": "reasoning.text", "text": "unsigned", "format": "anthropic-claude-v1", "index": 2},
                    {"type": "reasoning.encrypted", "id": "rs_1", "data": "gAAAA", "format": "openai-responses-v1", "index": 3},
                    "not an object"],
                 "tool_calls": [{"id": "toolu_01", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]
        }));
        assert_eq!(
            out["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ])
        );
    }

    #[test]
    fn a_full_conversation_with_images_tools_and_results_translates() {
        let req = json!({
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture, and what's the weather there?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}}
                ]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                {"role": "user", "content": "Thanks!"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}},
                {"type": "function", "function": {"name": "get_time", "parameters": {}}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "stop": ["\n\nHuman:", "  ", "END"],
            "temperature": 1.4,
            "top_p": 0.9,
            "max_completion_tokens": 300,
            "max_tokens": 99,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "user-42",
            "seed": 7,
            "frequency_penalty": 0.5,
            "logprobs": true
        });
        let expected = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "system": [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Use metric units."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture, and what's the weather there?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/paris.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18°C, sunny"}]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                    {"type": "text", "text": "Thanks!"}
                ]}
            ],
            "tools": [
                {"name": "get_weather", "description": "Current weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "get_time", "input_schema": {"type": "object"}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["\n\nHuman:", "END"],
            "temperature": 1.0,
            "stream": true,
            "metadata": {"user_id": "user-42"}
        });
        assert_eq!(translate(req), expected);
    }

    #[test]
    fn a_plain_request_gets_a_string_system_and_the_default_max_tokens() {
        let out = translate(json!({
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": "Anyone there?"},
                {"role": "assistant", "content": "Yes —  "}
            ],
            "stop": "STOP",
            "top_p": 0.5
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "You are terse.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Anyone there?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "Yes —"}]}
                ],
                "stop_sequences": ["STOP"],
                "top_p": 0.5
            })
        );
    }

    #[test]
    fn tool_choice_forms_map_to_anthropic_ones() {
        let with = |choice: Value| {
            translate(json!({
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": choice
            }))["tool_choice"]
                .clone()
        };
        assert_eq!(with(json!("auto")), json!({"type": "auto"}));
        assert_eq!(with(json!("none")), json!({"type": "none"}));
        assert_eq!(with(json!("required")), json!({"type": "any"}));
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(with(Value::Null), Value::Null);
        // No tools: a tool_choice has nothing to choose from.
        let out = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
        );
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn json_schema_becomes_a_forced_tool_and_json_object_a_system_instruction() {
        let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]});
        let out = translate(json!({
            "messages": [{"role": "user", "content": "2+2?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "sum", "schema": schema, "strict": true}}
        }));
        assert_eq!(out["tools"][0]["name"], JSON_TOOL);
        assert_eq!(out["tools"][0]["input_schema"], schema);
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": JSON_TOOL})
        );
        assert!(out.get("system").is_none());

        // With the client's own tools, a forced tool would block them.
        let out = translate(json!({
            "messages": [{"role": "user", "content": "2+2?"}],
            "tools": [{"type": "function", "function": {"name": "calc"}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}}
        }));
        assert_eq!(out["tools"].as_array().unwrap().len(), 1);
        assert!(out["system"].as_str().unwrap().contains("\"answer\""));

        let out = translate(json!({
            "messages": [{"role": "system", "content": "Hi."}, {"role": "user", "content": "list"}],
            "response_format": {"type": "json_object"}
        }));
        assert_eq!(
            out["system"][1]["text"],
            "Respond only with a single valid JSON object, with no other text."
        );
        let out = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
        );
        assert!(out.get("system").is_none());
    }

    #[test]
    fn tool_history_without_tools_declares_them_and_forbids_new_calls() {
        let out = translate(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": ""},
            {"role": "assistant", "content": "It is sunny."},
            {"role": "user", "content": "thanks"}
        ]}));
        assert_eq!(
            out["tools"],
            json!([{"name": "w", "description": "A tool this conversation used earlier.", "input_schema": {"type": "object"}}])
        );
        assert_eq!(out["tool_choice"], json!({"type": "none"}));
        assert_eq!(
            out["messages"][2],
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1"}]})
        );
    }

    #[test]
    fn cache_control_and_pdf_files_are_kept() {
        let out = translate(json!({"messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}]}
        ]}));
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            out["messages"][0]["content"][0],
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
        );
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        assert!(error("not json").starts_with("request body is not valid JSON"));
        assert!(error("").starts_with("request body is not valid JSON"));
        assert!(error("[1,2]").contains("must be a JSON object"));
        assert!(error("{}").contains("missing field `messages`"));
        assert!(error(r#"{"messages":[]}"#).contains("at least one message"));
        assert!(error(r#"{"messages":{"role":"user"}}"#).contains("`messages` must be an array"));
        assert!(error(r#"{"messages":[5]}"#).contains("messages[0] must be an object"));
        assert!(
            error(r#"{"messages":[{"content":"x"}]}"#)
                .contains("messages[0].role must be a string")
        );
        assert!(
            error(r#"{"messages":[{"role":"wizard","content":"x"}]}"#)
                .contains("unknown message role `wizard`")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":7}]}"#)
                .contains("messages[0].content must be a string or an array")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#)
                .contains("messages[0].content[0].text must be a string")
        );
        assert!(error(r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#).contains("audio input is not supported"));
        assert!(error(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}"#).contains("http(s) or a base64 data URL"));
        assert!(error(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]}"#).contains("must be base64"));
        assert!(error(r#"{"messages":[{"role":"system","content":[{"type":"image_url","image_url":"https://x/y.png"}]}]}"#).contains("only allowed in user and tool messages"));
        let e = error(
            r#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}]}"#,
        );
        assert!(
            e.starts_with("messages[0].tool_calls[0].function.arguments is not valid JSON"),
            "{e}"
        );
        assert!(error(r#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}]}"#).contains("must encode a JSON object"));
        assert!(
            error(r#"{"messages":[{"role":"tool","content":"x"}]}"#)
                .contains("messages[0].tool_call_id must be a string")
        );
        assert!(
            error(r#"{"messages":[{"role":"function","name":"f","content":"x"}]}"#)
                .contains("role `function`")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]}"#)
                .contains("`functions`")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#)
                .contains("`n` greater than 1")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#)
                .contains("`max_tokens` must be a non-negative integer")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#)
                .contains("at least 1")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
                .contains("`temperature` must be a number")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"stop":[1]}"#)
                .contains("`stop` must be")
        );
        assert!(error(r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{}}]}"#).contains("tool type `custom`"));
        assert!(error(r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}"#).contains("`tool_choice` `sometimes`"));
        assert!(
            error(
                r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}"#
            )
            .contains("`response_format.type`")
        );
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
                .contains("`stream` must be a boolean")
        );
    }

    #[test]
    fn empty_content_is_dropped_and_nothing_left_is_an_error() {
        for body in [
            r#"{"messages":[{"role":"user","content":""}]}"#,
            r#"{"messages":[{"role":"user","content":[]}]}"#,
            r#"{"messages":[{"role":"system","content":"only a system prompt"}]}"#,
            r#"{"messages":[{"role":"user","content":"   "},{"role":"assistant","content":null}]}"#,
        ] {
            assert!(
                error(body).contains("no user or assistant content"),
                "{body}"
            );
        }
        let out = translate(json!({"messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}
        ]}));
        assert_eq!(out["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_draft_is_encoded_once_and_named_per_model() {
        let draft = chat_to_messages_draft(
            br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#,
        )
        .unwrap();
        let a: Value = serde_json::from_slice(&draft.for_model("claude-a", 100).unwrap()).unwrap();
        let b: Value = serde_json::from_slice(&draft.for_model("claude-b", 7).unwrap()).unwrap();
        assert_eq!(
            (&a["model"], &a["max_tokens"]),
            (&json!("claude-a"), &json!(100))
        );
        assert_eq!(
            (&b["model"], &b["max_tokens"]),
            (&json!("claude-b"), &json!(7))
        );
        assert_eq!(a["messages"], b["messages"]);
        assert_eq!(a["temperature"], 0.2);
        // The client's own max_tokens wins over any model's default.
        let own = chat_to_messages_draft(
            br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&own.for_model("m", 100).unwrap()).unwrap();
        assert_eq!(v["max_tokens"], 5);
    }

    #[test]
    fn schemas_and_arguments_pass_through_as_the_client_wrote_them() {
        let out = translate(json!({
            "messages": [
                {"role": "user", "content": "line one\nline \"two\""},
                {"role": "assistant", "tool_calls": [
                    {"id": "c1", "function": {"name": "f", "arguments": {"already": ["an", "object"]}}},
                    {"id": "c2", "function": {"name": "f", "arguments": "  {\"a\": {\"b\": null}}  "}},
                    {"id": "c3", "function": {"name": "f", "arguments": null}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": null,
                "parameters": {"properties": {"a": {"type": "object"}}, "required": ["a"]}}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}
        }));
        assert_eq!(
            out["messages"][0]["content"][0]["text"],
            "line one\nline \"two\""
        );
        let calls = &out["messages"][1]["content"];
        assert_eq!(calls[0]["input"], json!({"already": ["an", "object"]}));
        assert_eq!(calls[1]["input"], json!({"a": {"b": null}}));
        assert_eq!(calls[2]["input"], json!({}));
        assert_eq!(
            out["tools"],
            json!([{"name": "f", "input_schema": {"type": "object",
                "properties": {"a": {"type": "object"}}, "required": ["a"]}}])
        );
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        // A schema whose `type` is set (even to null) is left as it is.
        let out = translate(json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": null}}}]
        }));
        assert_eq!(out["tools"][0]["input_schema"], json!({"type": null}));
    }

    #[test]
    fn duplicate_fields_are_named() {
        assert!(
            error(r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"auto","tool_choice":"none"}"#)
                .contains("duplicate field `tool_choice`")
        );
    }

    #[test]
    fn hostile_bodies_fail_cleanly() {
        let deep = format!(
            "{{\"messages\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(error(&deep).starts_with("request body is not valid JSON"));
        let deep_args = format!(
            r#"{{"messages":[{{"role":"assistant","tool_calls":[{{"id":"c","function":{{"name":"f","arguments":"{}"}}}}]}}]}}"#,
            "[".repeat(10_000)
        );
        assert!(error(&deep_args).contains("is not valid JSON"));
        for body in [
            "null",
            "42",
            "\"str\"",
            "{\"messages\":null}",
            "{\"messages\":[null]}",
            "{\"messages\":[{\"role\":7}]}",
            "{\"messages\":[{\"role\":\"user\",\"content\":[null]}]}",
            "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":5}]}]}",
            "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":\"x\"}]}",
            "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":1}]}]}",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e400}",
            "\u{feff}{}",
        ] {
            assert!(
                chat_to_messages(body.as_bytes(), "m", 10).is_err(),
                "{body}"
            );
        }
        assert!(chat_to_messages(&[0xff, 0xfe, b'{'], "m", 10).is_err());
    }
}
