//! Gemini's OpenAI-compatible endpoint (`/v1beta/openai/chat/completions`).
//! The chat shape is OpenAI's; the usage object is Gemini's own:
//!
//! - `completion_tokens`, `prompt_tokens`, `total_tokens` (in that order);
//! - thinking ("thoughts") tokens are *not* in `completion_tokens` but are in
//!   `total_tokens`, and are reported as `completion_tokens_details.reasoning_tokens`
//!   — so `total_tokens` > `prompt_tokens + completion_tokens` when the model thought;
//! - cached (implicit cache) tokens appear as `prompt_tokens_details.cached_tokens`,
//!   and only on a cache hit; neither details object is sent otherwise.
//!
//! Mock rule for thoughts: none unless the request sets `reasoning_effort`
//! (Gemini's OpenAI endpoint maps it to a thinking budget): `low`/`minimal`
//! think 1×, `medium` 2×, `high` 4× the completion tokens; `none` not at all.

use serde::Serialize;

use crate::openai::{ChatRequest, Usage as OpenAiUsage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub completion_tokens: u64,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

/// Thinking tokens for a request whose visible answer is `completion` tokens.
pub fn thought_tokens(request: &ChatRequest, completion: u64) -> u64 {
    let factor = match request.reasoning_effort.as_deref() {
        None | Some("none") => 0,
        Some("low" | "minimal") => 1,
        Some("high") => 4,
        Some(_) => 2,
    };
    completion.saturating_mul(factor)
}

pub fn usage(request: &ChatRequest, u: &OpenAiUsage) -> Usage {
    let thoughts = thought_tokens(request, u.completion_tokens);
    let cached = u.prompt_tokens_details.cached_tokens;
    Usage {
        completion_tokens: u.completion_tokens,
        prompt_tokens: u.prompt_tokens,
        total_tokens: u.total_tokens.saturating_add(thoughts),
        prompt_tokens_details: (cached > 0).then_some(PromptDetails {
            cached_tokens: cached,
        }),
        completion_tokens_details: (thoughts > 0).then_some(CompletionDetails {
            reasoning_tokens: thoughts,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Answer;
    use serde_json::{Value, json};

    fn usage_json(body: Value) -> Value {
        let request = ChatRequest::from_json(Some(&body)).unwrap();
        let answer = Answer::new("gemini", &request);
        serde_json::to_value(usage(&request, &answer.usage)).unwrap()
    }

    #[test]
    fn plain_usage_has_no_details() {
        let u = usage_json(json!({"model": "gemini-2.5-flash",
            "messages": [{"role": "user", "content": "hi"}]}));
        let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["completion_tokens", "prompt_tokens", "total_tokens"]);
        assert_eq!(
            u["total_tokens"],
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
    }

    #[test]
    fn thoughts_count_in_the_total_only_and_cache_hits_show() {
        let u = usage_json(
            json!({"model": "gemini-2.5-pro", "reasoning_effort": "high",
            "messages": [{"role": "system", "content": "s".repeat(8000)},
                         {"role": "user", "content": "hi"}]}),
        );
        let (p, c) = (
            u["prompt_tokens"].as_u64().unwrap(),
            u["completion_tokens"].as_u64().unwrap(),
        );
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 4 * c);
        assert_eq!(u["total_tokens"], p + c + 4 * c);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 2000 + 4);
    }
}
