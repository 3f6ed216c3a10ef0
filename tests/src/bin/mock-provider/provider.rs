//! Which provider a request is for, where its chat endpoint lives and which
//! wire format each endpoint speaks.

/// The providers the mock impersonates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Xai,
    OpenRouter,
    Minimax,
    Moonshot,
}

/// The wire format of an endpoint: OpenAI Chat Completions (every provider,
/// each with its own quirks, see [`crate::compat`]), Anthropic's native
/// Messages API ([`crate::anthropic`]) or OpenAI's Responses API
/// ([`crate::responses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAiChat,
    AnthropicMessages,
    OpenAiResponses,
}

/// Anthropic's native Messages endpoint.
pub const MESSAGES_PATH: &str = "/v1/messages";
/// OpenAI's Responses endpoint.
pub const RESPONSES_PATH: &str = "/v1/responses";

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Xai,
        Provider::OpenRouter,
        Provider::Minimax,
        Provider::Moonshot,
    ];

    /// The short name used in URLs, fault specs and the received log.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Xai => "xai",
            Provider::OpenRouter => "openrouter",
            Provider::Minimax => "minimax",
            Provider::Moonshot => "moonshot",
        }
    }

    /// The real API host Envoy puts in the Host header.
    pub fn host(self) -> &'static str {
        match self {
            Provider::OpenAi => "api.openai.com",
            Provider::Anthropic => "api.anthropic.com",
            Provider::Gemini => "generativelanguage.googleapis.com",
            Provider::Xai => "api.x.ai",
            Provider::OpenRouter => "openrouter.ai",
            Provider::Minimax => "api.minimax.io",
            Provider::Moonshot => "api.moonshot.ai",
        }
    }

    /// The path of the (POST) chat endpoint.
    pub fn chat_path(self) -> &'static str {
        match self {
            Provider::Gemini => "/v1beta/openai/chat/completions",
            Provider::OpenRouter => "/api/v1/chat/completions",
            Provider::OpenAi
            | Provider::Anthropic
            | Provider::Xai
            | Provider::Minimax
            | Provider::Moonshot => "/v1/chat/completions",
        }
    }

    /// The wire format of a request to `relative` (a POST or not), or
    /// `None` when the provider has no such endpoint.
    pub fn endpoint(self, post: bool, relative: &str) -> Option<Dialect> {
        match (post, relative) {
            (true, path) if path == self.chat_path() => Some(Dialect::OpenAiChat),
            (true, MESSAGES_PATH) if self == Provider::Anthropic => {
                Some(Dialect::AnthropicMessages)
            }
            (true, RESPONSES_PATH) if self == Provider::OpenAi => Some(Dialect::OpenAiResponses),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The provider whose API host this is (any `:port` ignored, case-insensitive).
    pub fn from_host(host: &str) -> Option<Provider> {
        let host = strip_port(host.trim());
        Provider::ALL
            .into_iter()
            .find(|p| p.host().eq_ignore_ascii_case(host))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: "[::1]:18000".
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split_once(':').map_or(host, |(name, _)| name)
}

/// Resolves a request to its provider and the path relative to that
/// provider: by host first, else by a first path segment naming a provider
/// (`/openai/v1/chat/completions` is openai's `/v1/chat/completions`).
pub fn resolve<'a>(host: Option<&str>, path: &'a str) -> Option<(Provider, &'a str)> {
    if let Some(provider) = host.and_then(Provider::from_host) {
        return Some((provider, path));
    }
    let rest = path.strip_prefix('/')?;
    let (segment, tail) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    Provider::from_name(segment).map(|p| (p, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_host_ignoring_port_and_case() {
        let path = "/v1/chat/completions";
        assert_eq!(
            resolve(Some("api.openai.com"), path),
            Some((Provider::OpenAi, path))
        );
        assert_eq!(
            resolve(Some("API.Anthropic.com:443"), path),
            Some((Provider::Anthropic, path))
        );
        assert_eq!(
            resolve(Some("generativelanguage.googleapis.com:8443"), "/x"),
            Some((Provider::Gemini, "/x"))
        );
    }

    #[test]
    fn falls_back_to_the_first_path_segment() {
        assert_eq!(
            resolve(
                Some("127.0.0.1:18000"),
                "/gemini/v1beta/openai/chat/completions"
            ),
            Some((Provider::Gemini, "/v1beta/openai/chat/completions"))
        );
        assert_eq!(resolve(None, "/xai"), Some((Provider::Xai, "/")));
        assert_eq!(resolve(Some("[::1]:80"), "/v1/chat/completions"), None);
        assert_eq!(resolve(Some("localhost"), "/nobody/v1"), None);
        assert_eq!(resolve(None, ""), None);
    }

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
            assert_eq!(Provider::from_host(p.host()), Some(p));
            assert!(p.chat_path().ends_with("/chat/completions"));
            assert_eq!(p.endpoint(true, p.chat_path()), Some(Dialect::OpenAiChat));
            assert_eq!(p.endpoint(false, p.chat_path()), None);
        }
    }

    #[test]
    fn only_anthropic_has_native_messages() {
        assert_eq!(
            Provider::Anthropic.endpoint(true, "/v1/messages"),
            Some(Dialect::AnthropicMessages)
        );
        assert_eq!(Provider::Anthropic.endpoint(false, "/v1/messages"), None);
        assert_eq!(Provider::OpenAi.endpoint(true, "/v1/messages"), None);
    }

    #[test]
    fn only_openai_has_the_responses_api() {
        assert_eq!(
            Provider::OpenAi.endpoint(true, "/v1/responses"),
            Some(Dialect::OpenAiResponses)
        );
        assert_eq!(Provider::OpenAi.endpoint(false, "/v1/responses"), None);
        for p in Provider::ALL.into_iter().filter(|p| *p != Provider::OpenAi) {
            assert_eq!(p.endpoint(true, "/v1/responses"), None, "{p:?}");
        }
        // The first-segment rule reaches it too.
        assert_eq!(
            resolve(Some("127.0.0.1:18000"), "/openai/v1/responses"),
            Some((Provider::OpenAi, "/v1/responses"))
        );
    }
}
