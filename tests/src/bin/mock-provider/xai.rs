//! xAI (`api.x.ai`): OpenAI Chat Completions, with xAI's usage object —
//! `prompt_tokens_details` also splits the prompt into `text_tokens`,
//! `audio_tokens` and `image_tokens` next to `cached_tokens`, and a
//! top-level `num_sources_used` counts Live Search sources (0 here).

use serde::Serialize;

use crate::openai::{CompletionTokensDetails, Usage as OpenAiUsage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionTokensDetails,
    pub num_sources_used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub text_tokens: u64,
    pub audio_tokens: u64,
    pub image_tokens: u64,
    pub cached_tokens: u64,
}

pub fn usage(u: &OpenAiUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
        prompt_tokens_details: PromptDetails {
            text_tokens: u.prompt_tokens,
            audio_tokens: 0,
            image_tokens: 0,
            cached_tokens: u.prompt_tokens_details.cached_tokens,
        },
        completion_tokens_details: u.completion_tokens_details,
        num_sources_used: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{Answer, ChatRequest};
    use serde_json::json;

    #[test]
    fn usage_splits_the_prompt_by_modality() {
        let body = json!({"model": "grok-4", "messages": [
            {"role": "system", "content": "s".repeat(4096)}, {"role": "user", "content": "hi"}]});
        let request = ChatRequest::from_json(Some(&body)).unwrap();
        let u = serde_json::to_value(usage(&Answer::new("xai", &request).usage)).unwrap();
        assert_eq!(
            u["prompt_tokens_details"]["text_tokens"],
            u["prompt_tokens"]
        );
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 1028);
        assert_eq!(u["prompt_tokens_details"]["image_tokens"], 0);
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
        assert_eq!(u["num_sources_used"], 0);
    }
}
