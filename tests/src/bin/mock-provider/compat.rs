//! What sets each OpenAI-compatible provider apart from OpenAI on the wire:
//! one [`Flavor`] per provider, dispatching to that provider's module
//! ([`crate::gemini`], [`crate::xai`], [`crate::openrouter`],
//! [`crate::minimax`], [`crate::moonshot`]). OpenAI itself, and Anthropic's
//! OpenAI-compatible endpoint, speak plain OpenAI.

use serde::Serialize;

use crate::openai::{Answer, ChatRequest, Usage};
use crate::provider::Provider;
use crate::{gemini, minimax, moonshot, openrouter, xai};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Gemini,
    Xai,
    OpenRouter,
    Minimax,
    Moonshot,
}

/// A `usage` object as one provider sends it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WireUsage {
    OpenAi(Usage),
    Gemini(gemini::Usage),
    Xai(xai::Usage),
    OpenRouter(openrouter::Usage),
    Minimax(minimax::Usage),
    Moonshot(moonshot::Usage),
    /// What an `unreadable_usage` fault sends instead (a string).
    Unreadable(&'static str),
}

/// The `usage` an `unreadable_usage` fault puts where the object belongs.
pub const UNREADABLE_USAGE: &str = "unreadable (mock-provider fault: unreadable_usage)";

/// Top-level fields a provider adds to its completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TopExtra {
    OpenRouter(openrouter::Extra),
    Minimax(minimax::Extra),
}

impl Flavor {
    pub fn of(provider: Provider) -> Flavor {
        match provider {
            Provider::OpenAi | Provider::Anthropic => Flavor::OpenAi,
            Provider::Gemini => Flavor::Gemini,
            Provider::Xai => Flavor::Xai,
            Provider::OpenRouter => Flavor::OpenRouter,
            Provider::Minimax => Flavor::Minimax,
            Provider::Moonshot => Flavor::Moonshot,
        }
    }

    /// Turns the plain answer into this provider's: adds reasoning where the
    /// provider reasons, returns reasoning that travels apart from the
    /// content (MiniMax `reasoning_split`) and the usage object.
    pub fn shape(self, request: &ChatRequest, answer: &mut Answer) -> (WireUsage, Option<String>) {
        let reasoning = match self {
            Flavor::Minimax => minimax::think(request, answer),
            _ => None,
        };
        let u = &answer.usage;
        let usage = match self {
            Flavor::OpenAi => WireUsage::OpenAi(*u),
            Flavor::Gemini => WireUsage::Gemini(gemini::usage(request, u)),
            Flavor::Xai => WireUsage::Xai(xai::usage(u)),
            Flavor::OpenRouter => WireUsage::OpenRouter(openrouter::usage(u)),
            Flavor::Minimax => WireUsage::Minimax(minimax::usage(u)),
            Flavor::Moonshot => WireUsage::Moonshot(moonshot::usage(u)),
        };
        (usage, reasoning)
    }

    pub fn top_extra(self) -> Option<TopExtra> {
        match self {
            Flavor::OpenRouter => Some(TopExtra::OpenRouter(openrouter::EXTRA)),
            Flavor::Minimax => Some(TopExtra::Minimax(minimax::EXTRA)),
            _ => None,
        }
    }

    /// The fields added to the assistant message.
    pub fn message_extra(self, reasoning: Option<&str>) -> Option<minimax::MessageExtra<'_>> {
        (self == Flavor::Minimax).then(|| minimax::MessageExtra {
            name: "MiniMax AI",
            audio_content: "",
            reasoning_details: reasoning.map(|text| [minimax::reasoning_detail(text)]),
        })
    }

    /// Whether streams end with the usage chunk even unasked.
    pub fn always_streams_usage(self) -> bool {
        self == Flavor::OpenRouter
    }

    /// Bytes sent before the first event of a stream.
    pub fn stream_preamble(self) -> Option<&'static [u8]> {
        (self == Flavor::OpenRouter).then_some(openrouter::PROCESSING_COMMENT)
    }
}
