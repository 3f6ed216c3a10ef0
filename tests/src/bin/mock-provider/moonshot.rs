//! Moonshot / Kimi (`api.moonshot.ai`): OpenAI Chat Completions whose usage
//! is just `prompt_tokens`, `completion_tokens`, `total_tokens` and — Moonshot's
//! own place for it — a top-level `cached_tokens` (context-cache hits), with
//! no `*_details` objects.

use serde::Serialize;

use crate::openai::Usage as OpenAiUsage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
}

pub fn usage(u: &OpenAiUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
        cached_tokens: u.prompt_tokens_details.cached_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{Answer, ChatRequest};
    use serde_json::json;

    #[test]
    fn cached_tokens_are_top_level() {
        let body = json!({"model": "kimi-k2.6", "messages": [
            {"role": "system", "content": "s".repeat(6000)}, {"role": "user", "content": "hi"}]});
        let request = ChatRequest::from_json(Some(&body)).unwrap();
        let u = serde_json::to_value(usage(&Answer::new("moonshot", &request).usage)).unwrap();
        let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(u["cached_tokens"], 1500 + 4);
        assert!(u.get("prompt_tokens_details").is_none());
    }
}
