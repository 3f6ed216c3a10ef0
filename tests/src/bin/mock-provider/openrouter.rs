//! OpenRouter (`openrouter.ai/api/v1/chat/completions`): OpenAI Chat
//! Completions plus OpenRouter's usage accounting, which it always sends:
//!
//! - `usage` has `cost` (credits, i.e. USD), `is_byok`, `cost_details`, and
//!   `prompt_tokens_details` with `cached_tokens` (read) and `cache_write_tokens`;
//! - usage is in every answer: a stream ends with the usage chunk even when
//!   `stream_options.include_usage` was not asked for (OpenRouter documents
//!   that flag as deprecated and without effect);
//! - streams open with an SSE comment, `: OPENROUTER PROCESSING`, which
//!   clients must ignore;
//! - the completion names the upstream in a top-level `provider` field.
//!
//! Mock price for `cost`: $1 per million uncached prompt tokens, $0.10 per
//! million cached ones, $2 per million completion tokens.

use serde::Serialize;

use crate::openai::Usage as OpenAiUsage;

/// The SSE comment OpenRouter sends while the upstream is working.
pub const PROCESSING_COMMENT: &[u8] = b": OPENROUTER PROCESSING\n\n";

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost: f64,
    pub is_byok: bool,
    pub prompt_tokens_details: PromptDetails,
    pub cost_details: CostDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub audio_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostDetails {
    pub upstream_inference_cost: Option<f64>,
    pub upstream_inference_prompt_cost: f64,
    pub upstream_inference_completions_cost: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
    pub image_tokens: u64,
}

/// Top-level fields of an OpenRouter completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extra {
    pub provider: &'static str,
}

pub const EXTRA: Extra = Extra { provider: "Mock" };

/// Dollars for a whole number of nano-dollars (summed before converting,
/// so `cost` prints as the decimal a test expects).
fn dollars(nano_usd: u64) -> f64 {
    nano_usd as f64 / 1e9
}

pub fn usage(u: &OpenAiUsage) -> Usage {
    let cached = u.prompt_tokens_details.cached_tokens.min(u.prompt_tokens);
    let prompt_nusd = (u.prompt_tokens - cached)
        .saturating_mul(1000)
        .saturating_add(cached.saturating_mul(100));
    let completion_nusd = u.completion_tokens.saturating_mul(2000);
    let (prompt_cost, completion_cost) = (dollars(prompt_nusd), dollars(completion_nusd));
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
        cost: dollars(prompt_nusd.saturating_add(completion_nusd)),
        is_byok: false,
        prompt_tokens_details: PromptDetails {
            cached_tokens: cached,
            cache_write_tokens: 0,
            audio_tokens: 0,
        },
        cost_details: CostDetails {
            upstream_inference_cost: None,
            upstream_inference_prompt_cost: prompt_cost,
            upstream_inference_completions_cost: completion_cost,
        },
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: u.completion_tokens_details.reasoning_tokens,
            image_tokens: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{CompletionTokensDetails, PromptTokensDetails};

    #[test]
    fn cost_follows_the_mock_price() {
        let u = usage(&OpenAiUsage {
            prompt_tokens: 2000,
            completion_tokens: 500,
            total_tokens: 2500,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: 1000,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionTokensDetails::default(),
        });
        // 1000 × $1/M + 1000 × $0.10/M + 500 × $2/M.
        assert_eq!(u.cost, 0.0021);
        let json = serde_json::to_value(u).unwrap();
        assert_eq!(json["prompt_tokens_details"]["cached_tokens"], 1000);
        assert_eq!(json["prompt_tokens_details"]["cache_write_tokens"], 0);
        assert_eq!(json["is_byok"], false);
        assert!(json["cost_details"]["upstream_inference_cost"].is_null());
    }
}
