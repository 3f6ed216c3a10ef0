//! MiniMax (`api.minimax.io/v1/chat/completions`): OpenAI-compatible with
//! MiniMax's quirks:
//!
//! - the M-series always reasons: the reasoning comes inside the content as
//!   `<think>\n…\n</think>\n\n` before the answer — or, when the request sets
//!   `reasoning_split: true`, apart from it in `message.reasoning_details`
//!   (`[{"type":"reasoning.text","id":"reasoning-text-1","format":"MiniMax-response-v1","index":0,"text":…}]`;
//!   streamed as `delta.reasoning_details` before the content);
//! - usage is `{total_tokens, total_characters, prompt_tokens, completion_tokens,
//!   completion_tokens_details: {reasoning_tokens}}`, with reasoning tokens
//!   inside `completion_tokens`; `prompt_tokens_details.cached_tokens` is
//!   added on a cache hit;
//! - the message carries `name` and `audio_content`; the completion carries
//!   `input_sensitive`, `output_sensitive`, their types and `base_resp`
//!   (`{status_code: 0, status_msg: ""}` on success).
//!
//! Mock reasoning: `Mock reasoning for minimax/<model>: a prompt of <n> tokens
//! deserves a short answer.`; its tokens follow the token rule.

use serde::Serialize;

use crate::openai::{Answer, ChatRequest};
use crate::tokens::tokens_for_chars;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub total_tokens: u64,
    pub total_characters: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub completion_tokens_details: CompletionDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

/// One `reasoning_details` entry (whole, or one streamed piece).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasoningDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'static str,
    pub format: &'static str,
    pub index: u32,
    pub text: &'a str,
}

pub fn reasoning_detail(text: &str) -> ReasoningDetail<'_> {
    ReasoningDetail {
        kind: "reasoning.text",
        id: "reasoning-text-1",
        format: "MiniMax-response-v1",
        index: 0,
        text,
    }
}

/// The fields MiniMax adds to the assistant message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageExtra<'a> {
    pub name: &'static str,
    pub audio_content: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_details: Option<[ReasoningDetail<'a>; 1]>,
}

/// The top-level fields MiniMax adds to a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extra {
    pub input_sensitive: bool,
    pub output_sensitive: bool,
    pub input_sensitive_type: u32,
    pub output_sensitive_type: u32,
    pub output_sensitive_int: u32,
    pub base_resp: BaseResp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BaseResp {
    pub status_code: u32,
    pub status_msg: &'static str,
}

pub const EXTRA: Extra = Extra {
    input_sensitive: false,
    output_sensitive: false,
    input_sensitive_type: 0,
    output_sensitive_type: 0,
    output_sensitive_int: 0,
    base_resp: BaseResp {
        status_code: 0,
        status_msg: "",
    },
};

pub fn reasoning_text(request: &ChatRequest) -> String {
    format!(
        "Mock reasoning for minimax/{}: a prompt of {} tokens deserves a short answer.",
        request.model, request.prompt_tokens
    )
}

/// Adds the reasoning to an answer: into its content between `<think>` tags,
/// or (with `reasoning_split`) returned apart. Either way its tokens join the
/// completion tokens as reasoning tokens.
pub fn think(request: &ChatRequest, answer: &mut Answer) -> Option<String> {
    let reasoning = reasoning_text(request);
    let tokens = tokens_for_chars(reasoning.chars().count());
    let usage = &mut answer.usage;
    usage.completion_tokens = usage.completion_tokens.saturating_add(tokens);
    usage.total_tokens = usage.total_tokens.saturating_add(tokens);
    usage.completion_tokens_details.reasoning_tokens = tokens;
    if request.reasoning_split {
        return Some(reasoning);
    }
    answer.content = format!("<think>\n{reasoning}\n</think>\n\n{}", answer.content);
    None
}

pub fn usage(u: &crate::openai::Usage) -> Usage {
    let cached = u.prompt_tokens_details.cached_tokens;
    Usage {
        total_tokens: u.total_tokens,
        total_characters: 0,
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: u.completion_tokens_details.reasoning_tokens,
        },
        prompt_tokens_details: (cached > 0).then_some(PromptDetails {
            cached_tokens: cached,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(split: bool) -> ChatRequest {
        let body = json!({"model": "MiniMax-M2.7", "reasoning_split": split,
            "messages": [{"role": "user", "content": "Hello"}]});
        ChatRequest::from_json(Some(&body)).unwrap()
    }

    #[test]
    fn reasoning_goes_in_think_tags_by_default() {
        let req = request(false);
        let mut answer = Answer::new("minimax", &req);
        let plain = answer.usage;
        assert_eq!(think(&req, &mut answer), None);
        assert!(
            answer
                .content
                .starts_with("<think>\nMock reasoning for minimax/MiniMax-M2.7")
        );
        assert!(
            answer
                .content
                .contains("</think>\n\nMock answer from minimax/MiniMax-M2.7:")
        );
        let r = answer.usage.completion_tokens_details.reasoning_tokens;
        assert!(r > 0);
        assert_eq!(answer.usage.completion_tokens, plain.completion_tokens + r);
        let u = serde_json::to_value(usage(&answer.usage)).unwrap();
        assert_eq!(u["total_characters"], 0);
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], r);
        assert!(u.get("prompt_tokens_details").is_none());
    }

    #[test]
    fn reasoning_split_keeps_it_out_of_the_content() {
        let req = request(true);
        let mut answer = Answer::new("minimax", &req);
        let reasoning = think(&req, &mut answer).unwrap();
        assert!(!answer.content.contains("<think>"));
        assert_eq!(
            serde_json::to_value(reasoning_detail(&reasoning)).unwrap(),
            json!({"type": "reasoning.text", "id": "reasoning-text-1",
                   "format": "MiniMax-response-v1", "index": 0, "text": reasoning})
        );
    }
}
