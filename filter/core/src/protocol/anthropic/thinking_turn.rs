//! Anthropic's rule for thinking in a tool loop, read off a Messages body.
//!
//! With `thinking` `{"type": "enabled"}`, a tool-use loop is one assistant
//! turn that goes on from the model's thinking: a request that continues one
//! (its last message carries a `tool_result`) must bring back the turn's first
//! assistant message starting with the `thinking` or `redacted_thinking`
//! block Claude wrote, or Anthropic answers 400 ("a final `assistant` message
//! must start with a thinking block … To avoid this requirement, disable
//! `thinking`"). Later assistant messages of the turn need none: without
//! interleaved thinking Claude thinks once, at the turn's start. Adaptive
//! thinking is the model's choice on each turn, so a turn without it is
//! valid there and only `enabled` is checked.
//!
//! A routed conversation breaks the rule through no fault of the client: the
//! turn's tool call was answered by another model, which has no thinking to
//! bring back, or by Claude to a client that keeps no reasoning. Such a
//! request reaches Claude without `thinking`, as Anthropic advises, and the
//! answer names it in `x-aipipe-dropped-params` (`Plan::attempt`;
//! filter/README.md, "Client protocols").
//!
//! Thinking blocks this gateway wrote to carry another provider's reasoning
//! ([`without_carried_thinking`]) are not Claude's, and are taken out of a
//! body for Claude before the rule is read.

use serde_json::Value;

use super::lax::{Lax, List, read_request};
use crate::protocol::chat;

/// The Messages body without the thinking blocks that carry another
/// provider's reasoning (`chat::carry`: an earlier turn answered by, say,
/// gpt-6-luna, sent back by an Anthropic client): their signatures are not
/// Claude's, and Claude would refuse them. None when the body is not a JSON
/// object (it goes on as it is, and Anthropic names what is wrong).
pub fn without_carried_thinking(body: &[u8]) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if let Some(Value::Array(messages)) = req.get_mut("messages") {
        for message in messages {
            if let Some(Value::Array(blocks)) = message.get_mut("content") {
                blocks.retain(|b| {
                    b.get("type").and_then(Value::as_str) != Some("thinking")
                        || !b
                            .get("signature")
                            .and_then(Value::as_str)
                            .is_some_and(chat::is_carried)
                });
            }
        }
    }
    serde_json::to_vec(&req).ok()
}

/// What a Messages body's `thinking` asks for, where a model may need it
/// written another way (`catalog::Capabilities::adaptive_thinking`,
/// `between_tools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedThinking {
    /// `{"type": "enabled"}`, with its `budget_tokens` (0 when it names none).
    Enabled(u64),
    /// `{"type": "disabled"}`.
    Disabled,
}

/// What the Messages body's `thinking` asks for; None for anything else
/// (adaptive, absent, unreadable).
pub fn asked_thinking(body: &[u8]) -> Option<AskedThinking> {
    let req = read_request::<Request>(body, "").ok()?;
    let thinking = req.thinking.object()?;
    match thinking.kind.as_str()? {
        "enabled" => Some(AskedThinking::Enabled(
            thinking.budget_tokens.as_u64().unwrap_or(0),
        )),
        "disabled" => Some(AskedThinking::Disabled),
        _ => None,
    }
}

/// The Messages body turns thinking on (`enabled`) and continues a tool use
/// whose turn did not start with thinking: Anthropic would refuse it.
/// False for anything else, a body it cannot read included (the request
/// goes on and Anthropic names what is wrong).
pub fn tool_turn_lacks_thinking(body: &[u8]) -> bool {
    let Ok(req) = read_request::<Request>(body, "") else {
        return false;
    };
    let enabled = req
        .thinking
        .object()
        .is_some_and(|t| t.kind.as_str() == Some("enabled"));
    let Lax::Array(messages) = &req.messages else {
        return false;
    };
    if !enabled
        || !messages
            .last()
            .is_some_and(|m| role_is(m, "user") && has_tool_result(m))
    {
        return false;
    }
    // The turn starts after the last user message that is not a tool result.
    let start = messages
        .iter()
        .rposition(|m| role_is(m, "user") && !has_tool_result(m))
        .map_or(0, |i| i + 1);
    let Some(first) = messages
        .iter()
        .skip(start)
        .find(|m| role_is(m, "assistant"))
    else {
        return false;
    };
    let leading = match first.object().map(|m| &m.content) {
        Some(Lax::Array(blocks)) => blocks
            .first()
            .and_then(Lax::object)
            .and_then(|b| b.kind.as_str()),
        _ => None,
    };
    !matches!(leading, Some("thinking" | "redacted_thinking"))
}

fn role_is(message: &Lax<'_, Message<'_>>, role: &str) -> bool {
    message
        .object()
        .is_some_and(|m| m.role.as_str() == Some(role))
}

fn has_tool_result(message: &Lax<'_, Message<'_>>) -> bool {
    match message.object().map(|m| &m.content) {
        Some(Lax::Array(blocks)) => blocks
            .iter()
            .filter_map(Lax::object)
            .any(|b| b.kind.as_str() == Some("tool_result")),
        _ => false,
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Request<'a> {
    thinking: Lax<'a, Thinking<'a>>,
    messages: List<'a, Message<'a>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Thinking<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
    budget_tokens: Lax<'a>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Message<'a> {
    role: Lax<'a>,
    content: List<'a, Block<'a>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Block<'a> {
    #[serde(rename = "type")]
    kind: Lax<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const QUESTION: &str = r#"{"role":"user","content":"What is the weather in Oslo?"}"#;

    fn body(thinking: &str, messages: &[Value]) -> Vec<u8> {
        let mut all = vec![serde_json::from_str::<Value>(QUESTION).unwrap()];
        all.extend_from_slice(messages);
        format!(
            r#"{{"model":"claude-opus-4-5","max_tokens":4096,"thinking":{thinking},"messages":{}}}"#,
            Value::Array(all)
        )
        .into_bytes()
    }

    fn assistant(blocks: &[&str]) -> Value {
        let content: Vec<Value> = blocks
            .iter()
            .map(|kind| match *kind {
                "thinking" => json!({"type": "thinking", "thinking": "t", "signature": "s"}),
                "redacted_thinking" => json!({"type": "redacted_thinking", "data": "d"}),
                "tool_use" => {
                    json!({"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}})
                }
                _ => json!({"type": "text", "text": "x"}),
            })
            .collect();
        json!({"role": "assistant", "content": content})
    }

    fn result() -> Value {
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 degrees"}]})
    }

    const ENABLED: &str = r#"{"type":"enabled","budget_tokens":1024}"#;

    #[test]
    fn a_tool_turn_that_did_not_start_with_thinking_is_found() {
        // Another model called the tool, or the client dropped the block.
        for first in [&["tool_use"][..], &["text", "tool_use"]] {
            assert!(tool_turn_lacks_thinking(&body(
                ENABLED,
                &[assistant(first), result()]
            )));
        }
        let string = json!({"role": "assistant", "content": "calling"});
        assert!(tool_turn_lacks_thinking(&body(
            ENABLED,
            &[string, result()]
        )));
    }

    #[test]
    fn a_turn_that_starts_with_its_thinking_is_whole() {
        for first in ["thinking", "redacted_thinking"] {
            let b = body(ENABLED, &[assistant(&[first, "tool_use"]), result()]);
            assert!(!tool_turn_lacks_thinking(&b), "{first}");
        }
        // Later steps of the turn carry none (Claude thought at its start).
        let steps = [
            assistant(&["thinking", "tool_use"]),
            result(),
            assistant(&["tool_use"]),
            result(),
        ];
        assert!(!tool_turn_lacks_thinking(&body(ENABLED, &steps)));
        // The turn is the latest one: an earlier turn's thinking does not count.
        let later = [
            assistant(&["thinking", "text"]),
            json!({"role": "user", "content": "And in Bergen?"}),
            assistant(&["tool_use"]),
            result(),
        ];
        assert!(tool_turn_lacks_thinking(&body(ENABLED, &later)));
    }

    #[test]
    fn only_enabled_thinking_in_a_tool_loop_is_checked() {
        let bare = [assistant(&["tool_use"]), result()];
        for thinking in [
            r#"{"type":"adaptive"}"#,
            r#"{"type":"disabled"}"#,
            "null",
            r#""on""#,
        ] {
            assert!(
                !tool_turn_lacks_thinking(&body(thinking, &bare)),
                "{thinking}"
            );
        }
        // Not continuing a tool use: a new question after an answer.
        let asked = [
            assistant(&["text"]),
            json!({"role": "user", "content": [{"type": "text", "text": "thanks"}]}),
        ];
        assert!(!tool_turn_lacks_thinking(&body(ENABLED, &asked)));
        for hostile in [&b"not json"[..], b"[]", b"{\"messages\":7}", b"{\"thinking\":{\"type\":\"enabled\"},\"messages\":[1,[],{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\"}]}]}"] {
            assert!(!tool_turn_lacks_thinking(hostile));
        }
    }

    /// Thinking blocks that carry another provider's reasoning leave a body
    /// for Claude; Claude's own stay, as does everything else.
    #[test]
    fn carried_thinking_is_taken_out_of_a_body_for_claude() {
        let carried = crate::protocol::chat::carry(&json!({"type": "reasoning.encrypted",
            "id": "rs_1", "data": "gAAAA", "format": "openai-responses-v1"}));
        let luna = json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": carried},
            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]});
        let b = body(ENABLED, &[luna, result()]);
        let out: Value = serde_json::from_slice(&without_carried_thinking(&b).unwrap()).unwrap();
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}])
        );
        assert_eq!(out["thinking"]["type"], "enabled");
        // What is left is a turn without thinking, as another model's turn.
        assert!(tool_turn_lacks_thinking(&serde_json::to_vec(&out).unwrap()));
        let own = body(ENABLED, &[assistant(&["thinking", "tool_use"]), result()]);
        let kept: Value = serde_json::from_slice(&without_carried_thinking(&own).unwrap()).unwrap();
        assert_eq!(kept, serde_json::from_slice::<Value>(&own).unwrap());
        assert_eq!(without_carried_thinking(b"[1]"), None);
    }
}
