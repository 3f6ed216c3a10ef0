//! Anthropic Messages ⇄ OpenAI Chat Completions translation.
//!
//! aipipe's clients speak OpenAI Chat Completions, but Anthropic only speaks
//! its own Messages API (SPEC §7). When a request is routed to an Anthropic
//! model the filter rewrites the body with [`chat_to_messages`], then turns
//! the answer back into what the client expects: [`messages_to_chat`] for a
//! whole answer, [`StreamTranslator`] for a streamed one, [`error_to_openai`]
//! for an error, and [`anthropic_usage`] / [`StreamTranslator::tokens`] for
//! accounting.
//!
//! Everything here is plain Rust over byte slices: no host calls, no clocks
//! (the `created` time is an argument), and no panics on any input.
//!
//! - `chat_to_messages.rs`: OpenAI request → Anthropic request.
//! - `messages_to_chat.rs`: Anthropic answer / error → OpenAI answer / error.
//! - `messages_stream_to_chat.rs`: Anthropic event stream → OpenAI
//!   `chat.completion.chunk` SSE.
//! - `messages_request_to_chat.rs`: the other way round, for clients that
//!   speak Anthropic (`POST /v1/messages`) routed to an OpenAI-format
//!   provider.

mod chat_to_messages;
mod messages_request_to_chat;
mod messages_stream_to_chat;
mod messages_to_chat;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::usage::Tokens;

pub use chat_to_messages::{MessagesDraft, chat_to_messages, chat_to_messages_draft};
pub use messages_request_to_chat::{
    ChatToMessagesStream, chat_error_to_messages, chat_response_to_messages,
    messages_request_to_chat,
};
pub use messages_stream_to_chat::StreamTranslator;
pub use messages_to_chat::{anthropic_usage, error_to_openai, messages_to_chat};

/// A request that cannot be expressed for Anthropic, or an Anthropic answer
/// that cannot be read. The message names the offending field; for a request
/// it is meant for the client (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError(pub String);

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TranslateError {}

impl From<TranslateError> for crate::error::ApiError {
    fn from(e: TranslateError) -> Self {
        crate::error::ApiError::BadRequest(e.0)
    }
}

/// The forced tool that carries a `response_format: json_schema` answer (see
/// [`chat_to_messages`]). Its `tool_use` comes back to the client as the
/// message text, never as a tool call, so no per-request state is needed to
/// undo it.
pub const JSON_TOOL: &str = "aipipe_json_response";

/// Anthropic's `usage` object, in answers and in `message_start` /
/// `message_delta` events. Cache counts may be absent or null.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Folds in a later usage object of the same answer: `message_delta`
    /// counts are cumulative, so the latest value of each field wins.
    fn merge(&mut self, u: WireUsage) {
        self.input_tokens = u.input_tokens.or(self.input_tokens);
        self.output_tokens = u.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = u
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = u.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    /// Anthropic counts cache reads and writes apart from `input_tokens`;
    /// OpenAI's `prompt_tokens` includes cached tokens, so all three add up.
    fn tokens(&self) -> Tokens {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        Tokens {
            prompt: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0)),
            completion: self.output_tokens.unwrap_or(0),
            cached: read,
            cache_write: self.cache_creation_input_tokens.unwrap_or(0),
        }
    }
}

/// Usage of a streamed Anthropic answer read event by event (without
/// translating it): input and cache counts from `message_start`, output
/// counts from `message_delta`. Feed it each event's data.
#[derive(Debug, Default)]
pub struct StreamUsage {
    usage: Option<WireUsage>,
}

impl StreamUsage {
    pub fn on_event(&mut self, data: &[u8]) {
        #[derive(Deserialize)]
        struct Event {
            #[serde(default)]
            message: Option<Message>,
            #[serde(default)]
            usage: Option<WireUsage>,
        }
        #[derive(Deserialize)]
        struct Message {
            #[serde(default)]
            usage: Option<WireUsage>,
        }
        // Only the two events that carry usage are parsed.
        if !crate::sse::contains(data, b"\"usage\"") {
            return;
        }
        if let Ok(e) = serde_json::from_slice::<Event>(data) {
            for u in [e.message.and_then(|m| m.usage), e.usage]
                .into_iter()
                .flatten()
            {
                self.usage.get_or_insert_default().merge(u);
            }
        }
    }

    pub fn tokens(&self) -> Option<Tokens> {
        self.usage.map(|u| u.tokens())
    }
}

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct CachedDetails {
    cached_tokens: u64,
}

impl From<Tokens> for ChatUsage {
    fn from(t: Tokens) -> Self {
        ChatUsage {
            prompt_tokens: t.prompt,
            completion_tokens: t.completion,
            total_tokens: t.prompt.saturating_add(t.completion),
            prompt_tokens_details: CachedDetails {
                cached_tokens: t.cached,
            },
        }
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`. `pause_turn` (a server
/// tool loop paused) is a normal stop for the client; unknown future values
/// also read as `stop` rather than failing the answer.
fn finish_reason(stop_reason: &str, real_tool_calls: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if real_tool_calls => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's error object, as sent to clients.
#[derive(Debug, Serialize)]
struct ChatError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: &'a str,
}

#[derive(Debug, Serialize)]
struct ChatErrorBody<'a> {
    error: ChatError<'a>,
}

/// How one Anthropic error type reaches the client: status, OpenAI `type`
/// and `code`, and whether the message should say the provider's key (not
/// the client's) is at fault. `status` is what Anthropic sent, used for
/// types it may grow in future.
fn error_kind(anthropic_type: &str, status: u16) -> (u16, &'static str, &'static str) {
    match anthropic_type {
        // Anthropic uses this type for other 4xx statuses too: keep theirs.
        "invalid_request_error" => (
            if (400..500).contains(&status) {
                status
            } else {
                400
            },
            "invalid_request_error",
            "invalid_request",
        ),
        "authentication_error" => (401, "authentication_error", "provider_authentication_error"),
        "permission_error" => (403, "permission_error", "provider_permission_denied"),
        "billing_error" => (402, "billing_error", "provider_billing_error"),
        "not_found_error" => (404, "invalid_request_error", "not_found"),
        "request_too_large" => (413, "invalid_request_error", "request_too_large"),
        "rate_limit_error" => (429, "rate_limit_error", "rate_limit_exceeded"),
        "timeout_error" => (504, "timeout_error", "upstream_timeout"),
        "api_error" => (502, "api_error", "upstream_error"),
        "overloaded_error" => (503, "service_unavailable", "provider_overloaded"),
        _ => match status {
            529 => (503, "service_unavailable", "provider_overloaded"),
            400..=499 => (status, "invalid_request_error", "upstream_error"),
            _ => (502, "api_error", "upstream_error"),
        },
    }
}

/// The client-facing message for an Anthropic error: Anthropic's own text,
/// except where it would mislead — a key problem is aipipe's provider key,
/// not the key the client sent.
fn error_message(anthropic_type: &str, message: &str) -> String {
    match anthropic_type {
        "authentication_error" | "permission_error" | "billing_error" => format!(
            "Anthropic rejected the provider key aipipe used for this model ({message}). \
             Ask your aipipe operator to check the tenant's Anthropic key and account."
        ),
        _ => message.to_owned(),
    }
}

/// An OpenAI-shaped error body.
fn error_body(message: &str, kind: &str, code: &str) -> Vec<u8> {
    let body = ChatErrorBody {
        error: ChatError {
            message,
            kind,
            param: None,
            code,
        },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
}
