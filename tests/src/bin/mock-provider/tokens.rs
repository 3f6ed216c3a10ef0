//! The mock's token rules, shared by every provider so that tests can predict
//! each number: how many tokens a text and a prompt are, and which prompt
//! tokens count as served from a prompt cache.
//!
//! - A text is `ceil(chars / 4)` tokens (chars = Unicode scalar values).
//! - A content is a string, or the `text` of its parts (and, for Anthropic
//!   `tool_result` blocks, the text of their own `content`).
//! - A prompt is the rule over all its text plus 4 tokens per message.
//!
//! Cache rule (stateless: the cache is always warm, so the first request
//! already reports its cached tokens):
//! - a **long system prompt** — the leading `system`/`developer` messages
//!   (Anthropic: the top-level `system`) whose text is at least
//!   [`MIN_CACHEABLE_TOKENS`] tokens (4096 chars) — is cached: its tokens
//!   plus 4 per message;
//! - an explicit **`cache_control`** marker on a content part (Anthropic, or
//!   OpenRouter passing it on) caches everything up to and including that
//!   part: whole messages before it, plus 4 per message touched. No minimum.

use serde_json::Value;

/// The smallest prompt OpenAI and Anthropic (Sonnet/Opus) cache: 1024 tokens.
pub const MIN_CACHEABLE_TOKENS: u64 = 1024;

/// `ceil(chars / 4)`: the one token rule of the mock.
pub fn tokens_for_chars(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// 4 tokens per message.
pub fn message_overhead(messages: usize) -> u64 {
    u64::try_from(messages).unwrap_or(u64::MAX / 4) * 4
}

/// The counted chars of one content part.
pub fn part_chars(part: &Value) -> usize {
    let mut chars = part
        .get("text")
        .and_then(Value::as_str)
        .map_or(0, |t| t.chars().count());
    if part.get("type").and_then(Value::as_str) == Some("tool_result") {
        chars += content_chars(part.get("content"));
    }
    chars
}

/// The counted chars of a `content`: a string, or its parts.
pub fn content_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(parts)) => parts.iter().map(part_chars).sum(),
        _ => 0,
    }
}

/// Prompt tokens of chat messages: their text by the token rule, plus 4 per message.
pub fn prompt_tokens(messages: &[Value]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| content_chars(m.get("content")))
        .sum();
    tokens_for_chars(chars).saturating_add(message_overhead(messages.len()))
}

/// Whether a part (or tool, or system block) carries a `cache_control` marker.
pub fn has_cache_control(part: &Value) -> bool {
    part.get("cache_control").is_some_and(|c| !c.is_null())
}

/// Tokens of the messages up to and including the last content part that
/// carries `cache_control`; 0 when no part does.
pub fn marked_prefix_tokens(messages: &[Value]) -> u64 {
    let mut last = None;
    for (m, message) in messages.iter().enumerate() {
        if let Some(Value::Array(parts)) = message.get("content") {
            for (p, part) in parts.iter().enumerate() {
                if has_cache_control(part) {
                    last = Some((m, p));
                }
            }
        }
    }
    let Some((last_message, last_part)) = last else {
        return 0;
    };
    let mut chars: usize = messages[..last_message]
        .iter()
        .map(|m| content_chars(m.get("content")))
        .sum();
    if let Some(Value::Array(parts)) = messages[last_message].get("content") {
        chars += parts[..=last_part].iter().map(part_chars).sum::<usize>();
    }
    tokens_for_chars(chars).saturating_add(message_overhead(last_message + 1))
}

/// The tokens of a long system prompt (text tokens plus 4 per message), or
/// 0 when it is shorter than [`MIN_CACHEABLE_TOKENS`].
pub fn long_system_tokens(chars: usize, messages: usize) -> u64 {
    let tokens = tokens_for_chars(chars);
    match tokens >= MIN_CACHEABLE_TOKENS {
        true => tokens.saturating_add(message_overhead(messages)),
        false => 0,
    }
}

/// Cached prompt tokens of an OpenAI-format chat request: its long leading
/// system/developer messages, or its `cache_control` prefix, whichever is longer.
pub fn openai_cached_tokens(messages: &[Value]) -> u64 {
    let system: Vec<&Value> = messages
        .iter()
        .take_while(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        })
        .collect();
    let chars = system.iter().map(|m| content_chars(m.get("content"))).sum();
    long_system_tokens(chars, system.len()).max(marked_prefix_tokens(messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_long_system_prompt_is_cached() {
        let long = "x".repeat(4096);
        let messages = [
            json!({"role": "system", "content": long}),
            json!({"role": "user", "content": "hi"}),
        ];
        // 1024 text tokens + 4 for the message.
        assert_eq!(openai_cached_tokens(&messages), 1028);
        assert_eq!(prompt_tokens(&messages), 1024 + 1 + 8);
        let short = [
            json!({"role": "system", "content": "x".repeat(4092)}),
            json!({"role": "user", "content": "hi"}),
        ];
        assert_eq!(openai_cached_tokens(&short), 0);
        // Only leading system messages count.
        let late = [
            json!({"role": "user", "content": "hi"}),
            json!({"role": "system", "content": "x".repeat(8000)}),
        ];
        assert_eq!(openai_cached_tokens(&late), 0);
    }

    #[test]
    fn cache_control_caches_up_to_the_last_marked_part() {
        let messages = [
            json!({"role": "user", "content": "12345678"}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "abcd", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "not cached"}
            ]}),
        ];
        // 8 + 4 chars -> 3 tokens, plus 4 for each of the two messages.
        assert_eq!(marked_prefix_tokens(&messages), 3 + 8);
        assert_eq!(openai_cached_tokens(&messages), 11);
        assert_eq!(marked_prefix_tokens(&messages[..1]), 0);
    }

    #[test]
    fn tool_results_count_their_content() {
        let part = json!({"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "12345"}
        ]});
        assert_eq!(part_chars(&part), 5);
        let part = json!({"type": "tool_result", "tool_use_id": "t", "content": "123"});
        assert_eq!(part_chars(&part), 3);
    }
}
