//! The reverse direction: clients that speak Anthropic Messages
//! (`POST /v1/messages`: the Anthropic SDK, Claude Code) routed to a provider
//! that speaks OpenAI Chat Completions. The request goes out as a chat
//! request; the answer, its stream and its errors come back as Anthropic's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::TranslateError;
use crate::sse::SseParser;
use crate::usage::{Tokens, openai_usage};

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
/// for the final usage) and `metadata.user_id` → `user` are mapped; `top_k`,
/// `thinking`, `service_tier`, `container`, `mcp_servers` and
/// `cache_control` markers are dropped. Server tools (web search, code
/// execution, …) are rejected.
pub fn messages_request_to_chat(body: &[u8], upstream_model: &str) -> Result<Vec<u8>> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(req) = req else {
        return fail("request body must be a JSON object: an Anthropic Messages request");
    };
    let mut messages = Vec::new();
    match req.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                messages.push(json!({"role": "system", "content": s}));
            }
        }
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                match b.get("text").and_then(Value::as_str) {
                    Some(t) => texts.push(t),
                    None => return fail(format!("system[{k}] must be a text block")),
                }
            }
            messages.push(json!({"role": "system", "content": texts.join("\n\n")}));
        }
        Some(_) => return fail("`system` must be a string or an array of text blocks"),
    }
    let Some(Value::Array(list)) = req.get("messages") else {
        return fail("`messages` must be an array of messages");
    };
    if list.is_empty() {
        return fail("`messages` must contain at least one message");
    }
    for (i, m) in list.iter().enumerate() {
        add_message(i, m, &mut messages)?;
    }

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    out.insert("messages".into(), Value::Array(messages));
    match req.get("max_tokens").map(Value::as_u64) {
        Some(Some(n)) => {
            out.insert("max_tokens".into(), n.into());
        }
        Some(None) => return fail("`max_tokens` must be a positive integer"),
        None => return fail("missing field `max_tokens`"),
    }
    if let Some(tools) = req.get("tools").filter(|t| !t.is_null()) {
        let Value::Array(tools) = tools else {
            return fail("`tools` must be an array");
        };
        let mut mapped = Vec::with_capacity(tools.len());
        for (k, t) in tools.iter().enumerate() {
            if let Some(kind) = t.get("type").and_then(Value::as_str)
                && kind != "custom"
            {
                return fail(format!(
                    "tools[{k}]: server tool `{kind}` is only available on Anthropic models"
                ));
            }
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                return fail(format!("tools[{k}].name must be a string"));
            };
            let mut function = Map::new();
            function.insert("name".into(), name.into());
            if let Some(d) = t.get("description").and_then(Value::as_str) {
                function.insert("description".into(), d.into());
            }
            let schema = t
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            function.insert("parameters".into(), schema);
            mapped.push(json!({"type": "function", "function": function}));
        }
        if !mapped.is_empty() {
            out.insert("tools".into(), Value::Array(mapped));
        }
    }
    if let Some(choice) = req.get("tool_choice").and_then(Value::as_object) {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => match choice.get("name").and_then(Value::as_str) {
                Some(name) => json!({"type": "function", "function": {"name": name}}),
                None => return fail("`tool_choice.name` must be a string"),
            },
            _ => return fail("`tool_choice.type` must be one of auto, any, tool, none"),
        };
        if out.contains_key("tools") {
            out.insert("tool_choice".into(), mapped);
            if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {
            if !s.is_empty() {
                out.insert("stop".into(), Value::Array(s.clone()));
            }
        }
        Some(_) => return fail("`stop_sequences` must be an array of strings"),
    }
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => return fail(format!("`{key}` must be a number")),
        }
    }
    if let Some(user) = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if req.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError(format!("could not encode the chat request: {e}")))
}

fn add_message(i: usize, m: &Value, messages: &mut Vec<Value>) -> Result<()> {
    let path = format!("messages[{i}]");
    let role = match m.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant")) => r,
        Some(other) => {
            return fail(format!(
                "{path}: unknown role `{other}`, expected user or assistant"
            ));
        }
        None => return fail(format!("{path}.role must be a string")),
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            messages.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return fail(format!(
                "{path}.content must be a string or an array of content blocks"
            ));
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content[{j}]");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let Some(t) = b.get("text").and_then(Value::as_str) else {
                    return fail(format!("{bpath}.text must be a string"));
                };
                parts.push(json!({"type": "text", "text": t}));
            }
            Some("image") if role == "user" => {
                let url = media_url(b.get("source"), &bpath)?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("document") if role == "user" => {
                let url = media_url(b.get("source"), &bpath)?;
                parts.push(json!({"type": "file", "file": {"file_data": url}}));
            }
            Some("tool_use") if role == "assistant" => {
                let (Some(id), Some(name)) = (
                    b.get("id").and_then(Value::as_str),
                    b.get("name").and_then(Value::as_str),
                ) else {
                    return fail(format!(
                        "{bpath}: a tool_use block needs a string `id` and `name`"
                    ));
                };
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id, "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            Some("tool_result") if role == "user" => {
                let Some(id) = b.get("tool_use_id").and_then(Value::as_str) else {
                    return fail(format!("{bpath}.tool_use_id must be a string"));
                };
                let content = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => {
                        let mut texts = Vec::new();
                        for c in inner {
                            match (
                                c.get("type").and_then(Value::as_str),
                                c.get("text").and_then(Value::as_str),
                            ) {
                                (Some("text"), Some(t)) => texts.push(t),
                                _ => {
                                    return fail(format!(
                                        "{bpath}: only text tool results can be sent to this model"
                                    ));
                                }
                            }
                        }
                        texts.join("\n")
                    }
                    Some(_) => return fail(format!("{bpath}.content must be a string or blocks")),
                };
                let content = if b.get("is_error") == Some(&Value::Bool(true)) {
                    format!("Error: {content}")
                } else {
                    content
                };
                // Tool results answer the previous assistant turn, so they
                // come before the rest of this user turn.
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return fail(format!(
                    "{bpath}: block type `{other}` is not supported in a {role} message for this model"
                ));
            }
            None => return fail(format!("{bpath}.type must be a string")),
        }
    }
    if role == "assistant" {
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let mut msg = Map::new();
        msg.insert("role".into(), "assistant".into());
        msg.insert(
            "content".into(),
            if text.is_empty() && !tool_calls.is_empty() {
                Value::Null
            } else {
                text.into()
            },
        );
        if !tool_calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        messages.push(Value::Object(msg));
    } else if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn media_url(source: Option<&Value>, path: &str) -> Result<String> {
    let Some(source) = source else {
        return fail(format!("{path}.source must be an object"));
    };
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => match (
            source.get("media_type").and_then(Value::as_str),
            source.get("data").and_then(Value::as_str),
        ) {
            (Some(media), Some(data)) => Ok(format!("data:{media};base64,{data}")),
            _ => fail(format!(
                "{path}.source needs string `media_type` and `data`"
            )),
        },
        Some("url") => match source.get("url").and_then(Value::as_str) {
            Some(url) => Ok(url.to_owned()),
            None => fail(format!("{path}.source.url must be a string")),
        },
        _ => fail(format!(
            "{path}.source: only base64 and url sources can be sent to this model"
        )),
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

#[derive(Serialize, Default, Clone, Copy)]
struct MessagesUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
}

impl From<Tokens> for MessagesUsage {
    fn from(t: Tokens) -> Self {
        // OpenAI's prompt count includes cached tokens; Anthropic's excludes them.
        MessagesUsage {
            input_tokens: t.prompt.saturating_sub(t.cached),
            output_tokens: t.completion,
            cache_read_input_tokens: t.cached,
            cache_creation_input_tokens: 0,
        }
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

#[derive(Deserialize)]
struct ChatFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
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

/// Translates a streamed OpenAI answer (`chat.completion.chunk` SSE) into
/// Anthropic's event stream, event by event, whatever the chunk boundaries:
/// `message_start`, then per text run or tool call a `content_block_start` /
/// `content_block_delta` (`text_delta`, `input_json_delta`) /
/// `content_block_stop`, then `message_delta` (stop reason and usage, known
/// only from the final usage chunk) and `message_stop` at `[DONE]` or at the
/// end of the body. An OpenAI error chunk becomes an `error` event.
#[derive(Debug)]
pub struct ChatToMessagesStream {
    parser: SseParser,
    state: ReverseState,
}

#[derive(Debug)]
struct ReverseState {
    model: String,
    started: bool,
    /// The open block: its index and, for a tool call, OpenAI's tool index.
    open: Option<(usize, Open)>,
    next_block: usize,
    stop: Option<&'static str>,
    tokens: Option<Tokens>,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool(u64),
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChunkToolCall>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChatFunction>,
}

impl ChatToMessagesStream {
    /// `model` is the name the client sees.
    pub fn new(model: &str) -> Self {
        ChatToMessagesStream {
            parser: SseParser::default(),
            state: ReverseState {
                model: model.to_owned(),
                started: false,
                open: None,
                next_block: 0,
                stop: None,
                tokens: None,
                done: false,
            },
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        if !state.done {
            if state.started || state.stop.is_some() {
                state.end(out);
            } else {
                state.event(
                    "error",
                    &json!({"type": "error", "error": {"type": "api_error",
                        "message": "The upstream stream ended before the answer was complete. Retry the request."}}),
                    out,
                );
                state.done = true;
            }
        }
    }

    /// Usage from the provider's final usage chunk.
    pub fn tokens(&self) -> Option<Tokens> {
        self.state.tokens
    }
}

impl ReverseState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
            log::debug!("skipping an unreadable chat.completion.chunk");
            return;
        };
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream provider reported an error.");
            self.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                out,
            );
            self.done = true;
            return;
        }
        if let Some(t) = openai_usage(data) {
            self.tokens = Some(t);
        }
        self.start(chunk.id.as_deref(), out);
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    if self.open.map(|(_, o)| o) != Some(Open::Text) {
                        self.open_block(Open::Text, json!({"type": "text", "text": ""}), out);
                    }
                    self.delta(json!({"type": "text_delta", "text": text}), out);
                }
                for call in delta.tool_calls {
                    let name = call.function.as_ref().and_then(|f| f.name.clone());
                    if self.open.map(|(_, o)| o) != Some(Open::Tool(call.index))
                        && (call.id.is_some() || name.is_some())
                    {
                        self.open_block(
                            Open::Tool(call.index),
                            json!({"type": "tool_use", "id": call.id.unwrap_or_default(),
                                "name": name.unwrap_or_default(), "input": {}}),
                            out,
                        );
                    }
                    let args = call.function.and_then(|f| f.arguments).unwrap_or_default();
                    if !args.is_empty() && self.open.map(|(_, o)| o) == Some(Open::Tool(call.index))
                    {
                        self.delta(
                            json!({"type": "input_json_delta", "partial_json": args}),
                            out,
                        );
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.stop = Some(stop_reason(Some(&reason)));
                self.close_block(out);
            }
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({"type": "message_start", "message": {
            "id": id.unwrap_or("msg_unknown"), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }});
        self.event("message_start", &message, out);
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        self.event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
    }

    fn delta(&mut self, delta: Value, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open {
            self.event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                out,
            );
        }
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            self.event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_block(out);
        let usage = MessagesUsage::from(self.tokens.unwrap_or_default());
        self.event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": usage}),
            out,
        );
        self.event("message_stop", &json!({"type": "message_stop"}), out);
        self.done = true;
    }

    fn event(&self, name: &str, data: &Value, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let e = messages_request_to_chat(body.as_bytes(), "m")
                .unwrap_err()
                .0;
            assert!(e.contains(want), "{body}: {e}");
        }
    }

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

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":5}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(pieces: &[&[u8]]) -> (String, Option<Tokens>) {
        let mut s = ChatToMessagesStream::new("claude-sonnet-4-5");
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, &mut out);
        }
        s.finish(&mut out);
        (String::from_utf8(out).unwrap(), s.tokens())
    }

    #[test]
    fn a_chat_stream_becomes_anthropic_events_at_any_split() {
        let (out, tokens) = run(&[CHUNKS.as_bytes()]);
        let expected = concat!(
            "event: message_start\ndata: {\"message\":{\"content\":[],\"id\":\"c1\",\"model\":\"claude-sonnet-4-5\",\"role\":\"assistant\",\"stop_reason\":null,\"stop_sequence\":null,\"type\":\"message\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0}},\"type\":\"message_start\"}\n\n",
            "event: content_block_start\ndata: {\"content_block\":{\"text\":\"\",\"type\":\"text\"},\"index\":0,\"type\":\"content_block_start\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"text\":\"Hi \",\"type\":\"text_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"text\":\"there\",\"type\":\"text_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_stop\ndata: {\"index\":0,\"type\":\"content_block_stop\"}\n\n",
            "event: content_block_start\ndata: {\"content_block\":{\"id\":\"call_1\",\"input\":{},\"name\":\"f\",\"type\":\"tool_use\"},\"index\":1,\"type\":\"content_block_start\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"partial_json\":\"{\\\"a\\\":\",\"type\":\"input_json_delta\"},\"index\":1,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"partial_json\":\"1}\",\"type\":\"input_json_delta\"},\"index\":1,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_stop\ndata: {\"index\":1,\"type\":\"content_block_stop\"}\n\n",
            "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"type\":\"message_delta\",\"usage\":{\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"input_tokens\":15,\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(out, expected);
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
    }

    #[test]
    fn chat_stream_errors_and_truncation_end_the_anthropic_stream() {
        let (out, _) =
            run(&[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"]);
        assert_eq!(
            out,
            "event: error\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"
        );
        let (out, _) = run(&[]);
        assert!(out.starts_with("event: error\n"), "{out}");
        // No [DONE]: the stream is still closed properly.
        let cut = &CHUNKS[..CHUNKS.find("data: [DONE]").unwrap()];
        let (out, _) = run(&[cut.as_bytes()]);
        assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        let (out, _) = run(&[b"data: {\"choices\":\"x\"}\n\ndata: \xff\n\n", b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n"]);
        assert!(out.contains("message_stop"));
    }
}
