//! What a client or a provider speaks. One enum for both sides: a provider's
//! chat endpoint speaks [`Protocol::Chat`] (OpenAI Chat Completions and the
//! OpenAI-compatible APIs) or [`Protocol::Messages`] (Anthropic); a client
//! may speak any of them.
//!
//! Every request is routed as Chat Completions: a client speaking another
//! protocol has its body translated to it once (`plan`), and the answer is
//! translated back on its way out (`reshape`). The translations live beside
//! each protocol's wire types (`anthropic`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ApiError;

pub mod anthropic;
pub mod chat;
pub mod ollama;
pub mod responses;
pub mod responses_upstream;

use ollama::Endpoint;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    #[default]
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
    /// The OpenAI Responses API (`POST /v1/responses`); client side only.
    Responses,
    /// The Ollama API (`POST /api/chat`, `POST /api/generate`); client side
    /// only.
    Ollama(Endpoint),
}

/// The client paths the filter routes, and the protocol each speaks.
pub const CHAT_PATH: &str = "/v1/chat/completions";
pub const MESSAGES_PATH: &str = "/v1/messages";
pub const RESPONSES_PATH: &str = "/v1/responses";
pub const OLLAMA_CHAT_PATH: &str = "/api/chat";
pub const OLLAMA_GENERATE_PATH: &str = "/api/generate";
/// `GET`: the tenant's models in Ollama's format, answered by the filter.
pub const OLLAMA_TAGS_PATH: &str = "/api/tags";
/// `GET`: the Ollama API version this gateway speaks (clients check it).
pub const OLLAMA_VERSION_PATH: &str = "/api/version";
/// `GET`: the tenant's models (OpenAI's list format), answered by the filter.
pub const MODELS_PATH: &str = "/v1/models";

/// The Messages API version sent upstream when an Anthropic client named none
/// (or the client speaks another protocol).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

impl Protocol {
    /// The protocol a routed client path speaks (the path without its query).
    pub fn of_path(path: &[u8]) -> Option<Protocol> {
        match path {
            p if p == CHAT_PATH.as_bytes() => Some(Protocol::Chat),
            p if p == MESSAGES_PATH.as_bytes() => Some(Protocol::Messages),
            p if p == RESPONSES_PATH.as_bytes() => Some(Protocol::Responses),
            p if p == OLLAMA_CHAT_PATH.as_bytes() => Some(Protocol::Ollama(Endpoint::Chat)),
            p if p == OLLAMA_GENERATE_PATH.as_bytes() => Some(Protocol::Ollama(Endpoint::Generate)),
            _ => None,
        }
    }

    /// The client path of this protocol (where a failover redirect goes).
    pub fn path(self) -> &'static str {
        match self {
            Protocol::Chat => CHAT_PATH,
            Protocol::Messages => MESSAGES_PATH,
            Protocol::Responses => RESPONSES_PATH,
            Protocol::Ollama(Endpoint::Chat) => OLLAMA_CHAT_PATH,
            Protocol::Ollama(Endpoint::Generate) => OLLAMA_GENERATE_PATH,
        }
    }

    /// A filter error in this protocol's error shape.
    pub fn error_body(self, e: &ApiError) -> Vec<u8> {
        match self {
            // The Responses API's errors are OpenAI's.
            Protocol::Chat | Protocol::Responses => e.body().into_bytes(),
            Protocol::Messages => e.anthropic_body().into_bytes(),
            Protocol::Ollama(_) => ollama::error_body(&e.message()),
        }
    }

    /// Answers to this protocol differ from another's for the same request:
    /// the cache keys them apart.
    pub fn cache_tag(self) -> &'static str {
        match self {
            Protocol::Chat => "",
            Protocol::Messages => "|messages",
            Protocol::Responses => "|responses",
            Protocol::Ollama(Endpoint::Chat) => "|ollama-chat",
            Protocol::Ollama(Endpoint::Generate) => "|ollama-generate",
        }
    }
}

/// A request that cannot be expressed in another protocol, or an answer
/// that cannot be read. The message names the offending field; for a request
/// it is meant for the client (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError(pub String);

impl std::fmt::Display for TranslateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TranslateError {}

impl From<TranslateError> for crate::error::ApiError {
    fn from(e: TranslateError) -> Self {
        crate::error::ApiError::BadRequest(e.0)
    }
}

/// Token counts read from an answer, whatever protocol it came in (each
/// protocol's wire types read their own usage into it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens read from the provider's prompt cache (part of `prompt`).
    pub cached: u64,
    /// Prompt tokens written to the provider's prompt cache (part of
    /// `prompt`; Anthropic bills them above the input price).
    pub cache_write: u64,
}

/// A provider's protocol in the routing table: `"openai"` (the default) or
/// `"anthropic"`, the names the table has always used.
pub mod provider_wire {
    use super::*;

    pub fn is_chat(p: &Protocol) -> bool {
        *p == Protocol::Chat
    }

    pub fn serialize<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Protocol::Messages => "anthropic",
            // Only Chat and Messages are ever read into a provider.
            _ => "openai",
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        match <std::borrow::Cow<'de, str>>::deserialize(d)?.as_ref() {
            "openai" => Ok(Protocol::Chat),
            "anthropic" => Ok(Protocol::Messages),
            other => Err(serde::de::Error::custom(format!(
                "unknown provider wire {other:?}: expected \"openai\" or \"anthropic\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_protocol() {
        assert_eq!(
            Protocol::of_path(b"/v1/chat/completions"),
            Some(Protocol::Chat)
        );
        assert_eq!(Protocol::of_path(b"/v1/messages"), Some(Protocol::Messages));
        assert_eq!(Protocol::of_path(b"/v1/models"), None);
        assert_eq!(
            Protocol::of_path(b"/v1/responses"),
            Some(Protocol::Responses)
        );
        assert_eq!(
            Protocol::of_path(b"/api/generate"),
            Some(Protocol::Ollama(Endpoint::Generate))
        );
        for p in [
            Protocol::Chat,
            Protocol::Messages,
            Protocol::Responses,
            Protocol::Ollama(Endpoint::Chat),
            Protocol::Ollama(Endpoint::Generate),
        ] {
            assert_eq!(Protocol::of_path(p.path().as_bytes()), Some(p));
        }
    }
}
