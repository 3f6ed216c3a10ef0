//! OpenAI Chat Completions request → Anthropic Messages request.
//!
//! Works on a `serde_json::Value`: this path only runs for requests routed to
//! Anthropic, and a tree makes every error name the exact field
//! (`messages[3].tool_calls[0].function.arguments`).

use serde_json::{Map, Value, json};

use super::{JSON_TOOL, TranslateError};

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
/// - Passed through as Anthropic extensions: `top_k`, `thinking`.
///
/// Rejected with an error naming them: legacy `functions` / `function_call`
/// and role `function`, `n` > 1, audio input, non-PDF files and file ids,
/// non-function tools, and any malformed field.
///
/// Dropped (no Anthropic equivalent): `frequency_penalty`,
/// `presence_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `seed`,
/// `stream_options` (Anthropic streams always carry usage), `metadata`,
/// `store`, `service_tier`, `modalities`, `audio`, `prediction`,
/// `reasoning_effort`, `verbosity`, `web_search_options`, `prompt_cache_key`,
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
/// is translated once.
#[derive(Debug, Clone)]
pub struct MessagesDraft {
    body: Map<String, Value>,
    /// The client's own `max_tokens` / `max_completion_tokens`.
    max_tokens: Option<u64>,
}

impl MessagesDraft {
    /// The upstream body for `upstream_model`; `default_max_tokens` when the
    /// client set none (Anthropic requires it).
    pub fn for_model(&self, upstream_model: &str, default_max_tokens: u64) -> Result<Vec<u8>> {
        let mut out = self.body.clone();
        out.insert("model".into(), upstream_model.into());
        out.insert(
            "max_tokens".into(),
            self.max_tokens.unwrap_or(default_max_tokens).max(1).into(),
        );
        serde_json::to_vec(&Value::Object(out))
            .map_err(|e| TranslateError(format!("could not encode the Anthropic request: {e}")))
    }
}

/// [`chat_to_messages`] up to the model (see [`MessagesDraft`]).
pub fn chat_to_messages_draft(body: &[u8]) -> Result<MessagesDraft> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(req) = req else {
        return fail("request body must be a JSON object: an OpenAI Chat Completions request");
    };
    reject_unsupported(&req)?;

    let messages = match req.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return fail("`messages` must contain at least one message"),
        Some(_) => return fail("`messages` must be an array of messages"),
        None => return fail("missing field `messages`"),
    };
    let mut conv = Conversation::default();
    for (i, m) in messages.iter().enumerate() {
        conv.add(i, m)?;
    }
    conv.finish()?;

    let mut out = Map::new();
    let max_tokens = match uint(&req, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => uint(&req, "max_tokens")?,
    };
    if max_tokens == Some(0) {
        return fail("`max_tokens` must be at least 1");
    }

    let mut tools = client_tools(&req)?;
    let mut tool_choice = if tools.is_empty() {
        None
    } else {
        tool_choice(&req)?
    };
    match json_mode(&req)? {
        JsonMode::Off => {}
        JsonMode::Object => conv.system.push(text(
            "Respond only with a single valid JSON object, with no other text.",
        )),
        JsonMode::Schema { name, schema } => {
            if tools.is_empty() && is_object_schema(&schema) {
                tools.push(json!({
                    "name": JSON_TOOL,
                    "description": format!(
                        "Give your final answer as this tool's input: a JSON value matching the schema `{name}`."
                    ),
                    "input_schema": schema,
                }));
                tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
            } else {
                conv.system.push(text(&format!(
                    "Respond only with JSON that matches this JSON schema (`{name}`), with no other text:\n{schema}"
                )));
            }
        }
    }
    if tools.is_empty() && !conv.tools_used.is_empty() {
        for name in &conv.tools_used {
            tools.push(json!({
                "name": name,
                "description": "A tool this conversation used earlier.",
                "input_schema": {"type": "object"},
            }));
        }
        tool_choice = Some(json!({"type": "none"}));
    }
    if let Some(Value::Object(choice)) = tool_choice.as_mut()
        && req.get("parallel_tool_calls") == Some(&Value::Bool(false))
        && choice.get("type").and_then(Value::as_str) != Some("none")
    {
        choice.insert("disable_parallel_tool_use".into(), true.into());
    }

    match conv.system.as_slice() {
        [] => {}
        [only] if only.get("cache_control").is_none() => {
            out.insert(
                "system".into(),
                only.get("text").cloned().unwrap_or_default(),
            );
        }
        blocks => {
            out.insert("system".into(), Value::Array(blocks.to_vec()));
        }
    }
    let turns = conv
        .turns
        .into_iter()
        .map(|t| json!({"role": t.role, "content": t.blocks}))
        .collect();
    out.insert("messages".into(), Value::Array(turns));
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(stop) = stop_sequences(&req)? {
        out.insert("stop_sequences".into(), stop);
    }
    let temperature = number(&req, "temperature")?;
    if let Some(t) = temperature {
        out.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    } else if let Some(p) = number(&req, "top_p")? {
        out.insert("top_p".into(), p.clamp(0.0, 1.0).into());
    }
    if let Some(k) = uint(&req, "top_k")? {
        out.insert("top_k".into(), k.into());
    }
    if let Some(thinking) = req.get("thinking").filter(|t| t.is_object()) {
        out.insert("thinking".into(), thinking.clone());
    }
    match req.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            out.insert("stream".into(), (*b).into());
        }
        Some(_) => return fail("`stream` must be a boolean"),
    }
    for key in ["safety_identifier", "user"] {
        match req.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(id)) if !id.is_empty() => {
                out.insert("metadata".into(), json!({ "user_id": id }));
                break;
            }
            Some(Value::String(_)) => continue,
            Some(_) => return fail(format!("`{key}` must be a string")),
        }
    }
    Ok(MessagesDraft {
        body: out,
        max_tokens,
    })
}

fn reject_unsupported(req: &Map<String, Value>) -> Result<()> {
    for key in ["functions", "function_call"] {
        if req.get(key).is_some_and(|v| !v.is_null()) {
            return fail(format!(
                "`{key}` (legacy function calling) is not supported for Anthropic models; use `tools` and `tool_choice`"
            ));
        }
    }
    if uint(req, "n")?.is_some_and(|n| n > 1) {
        return fail(
            "`n` greater than 1 is not supported for Anthropic models; send one request per choice",
        );
    }
    Ok(())
}

#[derive(Default)]
struct Conversation {
    system: Vec<Value>,
    turns: Vec<Turn>,
    /// Tool names called in the history, in first-use order.
    tools_used: Vec<String>,
}

struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Where a content part may appear: Anthropic allows images and documents
/// only in user turns and tool results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allow {
    TextOnly,
    Media,
}

impl Conversation {
    fn add(&mut self, i: usize, message: &Value) -> Result<()> {
        let path = format!("messages[{i}]");
        let Value::Object(m) = message else {
            return fail(format!("{path} must be an object"));
        };
        let Some(role) = m.get("role").and_then(Value::as_str) else {
            return fail(format!("{path}.role must be a string"));
        };
        let content = m.get("content").unwrap_or(&Value::Null);
        let content_path = format!("{path}.content");
        match role {
            "system" | "developer" => {
                let blocks = blocks(content, &content_path, Allow::TextOnly)?;
                self.system.extend(blocks);
            }
            "user" => {
                let blocks = blocks(content, &content_path, Allow::Media)?;
                self.push("user", blocks);
            }
            "assistant" => {
                let mut blocks = blocks(content, &content_path, Allow::TextOnly)?;
                match m.get("tool_calls") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(calls)) => {
                        for (j, call) in calls.iter().enumerate() {
                            let block = self.tool_use(call, &format!("{path}.tool_calls[{j}]"))?;
                            blocks.push(block);
                        }
                    }
                    Some(_) => return fail(format!("{path}.tool_calls must be an array")),
                }
                self.push("assistant", blocks);
            }
            "tool" => {
                let Some(id) = m.get("tool_call_id").and_then(Value::as_str) else {
                    return fail(format!("{path}.tool_call_id must be a string"));
                };
                let inner = blocks(content, &content_path, Allow::Media)?;
                let mut result = Map::new();
                result.insert("type".into(), "tool_result".into());
                result.insert("tool_use_id".into(), id.into());
                if !inner.is_empty() {
                    result.insert("content".into(), Value::Array(inner));
                }
                self.push("user", vec![Value::Object(result)]);
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

    fn tool_use(&mut self, call: &Value, path: &str) -> Result<Value> {
        let Value::Object(c) = call else {
            return fail(format!("{path} must be an object"));
        };
        let Some(id) = c.get("id").and_then(Value::as_str) else {
            return fail(format!("{path}.id must be a string"));
        };
        if let Some(kind) = c.get("type").and_then(Value::as_str)
            && kind != "function"
        {
            return fail(format!(
                "{path}.type `{kind}` is not supported for Anthropic models; only `function` tool calls are"
            ));
        }
        let Some(f) = c.get("function").and_then(Value::as_object) else {
            return fail(format!("{path}.function must be an object"));
        };
        let Some(name) = f.get("name").and_then(Value::as_str) else {
            return fail(format!("{path}.function.name must be a string"));
        };
        let input = match f.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                TranslateError(format!(
                    "{path}.function.arguments is not valid JSON ({e}); Anthropic needs tool call arguments as a JSON object"
                ))
            })?,
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return fail(format!("{path}.function.arguments must be a JSON string")),
        };
        if !input.is_object() {
            return fail(format!(
                "{path}.function.arguments must encode a JSON object for Anthropic models"
            ));
        }
        if !self.tools_used.iter().any(|n| n == name) {
            self.tools_used.push(name.to_owned());
        }
        Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
    }

    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => self.turns.push(Turn { role, blocks }),
        }
    }

    fn finish(&mut self) -> Result<()> {
        for turn in &mut self.turns {
            if turn.role == "user" {
                // Stable: tool results first, everything else in order after.
                turn.blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
        }
        if let Some(last) = self.turns.last_mut()
            && last.role == "assistant"
            && let Some(Value::Object(block)) = last.blocks.last_mut()
            && let Some(Value::String(t)) = block.get_mut("text")
        {
            let trimmed = t.trim_end().len();
            t.truncate(trimmed);
            if t.is_empty() {
                last.blocks.pop();
            }
            if last.blocks.is_empty() {
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

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

/// The content of one message as Anthropic blocks.
fn blocks(content: &Value, path: &str, allow: Allow) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    match content {
        Value::Null => {}
        Value::String(s) => {
            if !s.trim().is_empty() {
                out.push(text(s));
            }
        }
        Value::Array(parts) => {
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

fn part(p: &Value, path: &str, allow: Allow, out: &mut Vec<Value>) -> Result<()> {
    let Value::Object(p) = p else {
        return fail(format!("{path} must be a content part object"));
    };
    let Some(kind) = p.get("type").and_then(Value::as_str) else {
        return fail(format!("{path}.type must be a string"));
    };
    let media_only = |what: &str| {
        fail(format!(
            "{path}: {what} are only allowed in user and tool messages for Anthropic models"
        ))
    };
    match kind {
        "text" | "input_text" => {
            let Some(t) = p.get("text").and_then(Value::as_str) else {
                return fail(format!("{path}.text must be a string"));
            };
            if !t.trim().is_empty() {
                let mut block = Map::new();
                block.insert("type".into(), "text".into());
                block.insert("text".into(), t.into());
                if let Some(cc) = p.get("cache_control").filter(|c| c.is_object()) {
                    block.insert("cache_control".into(), cc.clone());
                }
                out.push(Value::Object(block));
            }
        }
        // A refusal the model gave earlier carries nothing to resend.
        "refusal" => {}
        "image_url" | "input_image" => {
            if allow == Allow::TextOnly {
                return media_only("images");
            }
            let url = match p.get("image_url") {
                Some(Value::String(u)) => Some(u.as_str()),
                Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
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
            let data = p
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str);
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
            out.push(json!({
                "type": "document",
                "source": {"type": "base64", "media_type": media, "data": data},
            }));
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

fn image(url: &str, path: &str) -> Result<Value> {
    if url.starts_with("data:") {
        let Some((media, data)) = data_url(url) else {
            return fail(format!(
                "{path}: an image data URL must be base64, like data:image/png;base64,…"
            ));
        };
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media, "data": data},
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
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

fn client_tools(req: &Map<String, Value>) -> Result<Vec<Value>> {
    let list = match req.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return fail("`tools` must be an array"),
    };
    let mut tools = Vec::with_capacity(list.len());
    for (k, t) in list.iter().enumerate() {
        let path = format!("tools[{k}]");
        if let Some(kind) = t.get("type").and_then(Value::as_str)
            && kind != "function"
        {
            return fail(format!(
                "{path}: tool type `{kind}` is not supported for Anthropic models; only `function` tools are"
            ));
        }
        let Some(f) = t.get("function").and_then(Value::as_object) else {
            return fail(format!("{path}.function must be an object"));
        };
        let Some(name) = f.get("name").and_then(Value::as_str) else {
            return fail(format!("{path}.function.name must be a string"));
        };
        let mut schema = match f.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(s)) => s.clone(),
            Some(_) => {
                return fail(format!(
                    "{path}.function.parameters must be a JSON schema object"
                ));
            }
        };
        // OpenAI accepts `{}` for a tool without arguments; Anthropic needs
        // an object schema.
        schema
            .entry("type")
            .or_insert_with(|| Value::String("object".into()));
        let mut tool = Map::new();
        tool.insert("name".into(), name.into());
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            tool.insert("description".into(), d.into());
        }
        tool.insert("input_schema".into(), Value::Object(schema));
        tools.push(Value::Object(tool));
    }
    Ok(tools)
}

fn tool_choice(req: &Map<String, Value>) -> Result<Option<Value>> {
    let kind = match req.get("tool_choice") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => "auto",
            "none" => "none",
            "required" => "any",
            other => {
                return fail(format!(
                    "`tool_choice` `{other}` is not one of auto, none, required"
                ));
            }
        },
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let Some(name) = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                else {
                    return fail("`tool_choice.function.name` must be a string");
                };
                return Ok(Some(json!({"type": "tool", "name": name})));
            }
            Some("allowed_tools") => {
                let mode = o
                    .get("allowed_tools")
                    .and_then(|a| a.get("mode"))
                    .and_then(Value::as_str);
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
        Some(_) => return fail("`tool_choice` must be a string or an object"),
    };
    Ok(Some(json!({ "type": kind })))
}

enum JsonMode {
    Off,
    Object,
    Schema { name: String, schema: Value },
}

fn json_mode(req: &Map<String, Value>) -> Result<JsonMode> {
    let format = match req.get("response_format") {
        None | Some(Value::Null) => return Ok(JsonMode::Off),
        Some(Value::Object(f)) => f,
        Some(_) => return fail("`response_format` must be an object"),
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(JsonMode::Off),
        Some("json_object") => Ok(JsonMode::Object),
        Some("json_schema") => {
            let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
                return fail("`response_format.json_schema` must be an object");
            };
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("response")
                .to_owned();
            Ok(match spec.get("schema") {
                Some(schema @ Value::Object(_)) => JsonMode::Schema {
                    name,
                    schema: schema.clone(),
                },
                _ => JsonMode::Object,
            })
        }
        _ => fail("`response_format.type` must be one of text, json_object, json_schema"),
    }
}

fn is_object_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        None => schema.get("properties").is_some(),
        _ => false,
    }
}

fn stop_sequences(req: &Map<String, Value>) -> Result<Option<Value>> {
    let list: Vec<&str> = match req.get("stop") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                let Some(s) = item.as_str() else {
                    return fail("`stop` must be a string or an array of strings");
                };
                list.push(s);
            }
            list
        }
        Some(_) => return fail("`stop` must be a string or an array of strings"),
    };
    // Anthropic rejects stop sequences that are only whitespace.
    let list: Vec<Value> = list
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(Value::from)
        .collect();
    Ok((!list.is_empty()).then_some(Value::Array(list)))
}

fn uint(req: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n)),
            None => fail(format!("`{key}` must be a non-negative integer")),
        },
    }
}

fn number(req: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) => Ok(Some(n)),
            None => fail(format!("`{key}` must be a number")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
