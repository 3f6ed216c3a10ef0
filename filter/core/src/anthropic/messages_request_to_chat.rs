//! An Anthropic client's request → an OpenAI Chat Completions request: for
//! clients that speak Anthropic Messages (`POST /v1/messages`: the Anthropic
//! SDK, Claude Code) routed to a provider that speaks Chat Completions. The
//! answer comes back through `chat_response_to_messages.rs` and
//! `chat_stream_to_messages.rs`.

use serde_json::{Map, Value, json};

use super::TranslateError;

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
}
