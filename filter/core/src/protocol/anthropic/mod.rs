//! Anthropic Messages ⇄ OpenAI Chat Completions translation.
//!
//! aipipe's clients speak OpenAI Chat Completions, but Anthropic only speaks
//! its own Messages API (filter/README.md, "Client protocols"). When a
//! request is routed to an Anthropic model the filter rewrites the body with
//! [`chat_to_messages()`], then turns the answer back into what the client
//! expects: [`messages_to_chat()`] for a whole answer, [`StreamTranslator`]
//! for a streamed one, [`error_to_openai`] for an error, and
//! [`anthropic_usage`] / [`StreamTranslator::tokens`] for accounting. Clients
//! that speak Anthropic (`POST /v1/messages`: the Anthropic SDK, Claude Code)
//! routed to an OpenAI-format provider go the other way round.
//!
//! Everything here is plain Rust over byte slices: no host calls, no clocks
//! (the `created` time is an argument), and no panics on any input.
//!
//! One file per direction:
//!
//! - `chat_to_messages.rs`: a Chat Completions request → an Anthropic
//!   Messages request ([`MessagesDraft`]).
//! - `messages_to_chat.rs`: an Anthropic answer or error → a Chat
//!   Completions answer or error.
//! - `messages_stream_to_chat.rs`: the Anthropic event stream →
//!   `chat.completion.chunk` SSE.
//! - `messages_request_to_chat.rs`: an Anthropic client's request → a Chat
//!   Completions request.
//! - `chat_response_to_messages.rs`: a Chat Completions answer or error → an
//!   Anthropic answer or error.
//! - `chat_stream_to_messages.rs`: `chat.completion.chunk` SSE → the
//!   Anthropic event stream.
//! - `wire.rs`: the Anthropic wire types those share, and usage read from
//!   Anthropic answers and streams.
//! - `lax.rs`: request fields read without failing on their JSON type, so
//!   the request translators can name the field at fault.
//! - `thinking_turn.rs`: whether a Messages body breaks Anthropic's rule for
//!   thinking in a tool loop (a routed conversation can).

mod chat_response_to_messages;
mod chat_stream_to_messages;
mod chat_to_messages;
mod lax;
mod messages_request_to_chat;
mod messages_stream_to_chat;
mod messages_to_chat;
mod thinking_turn;
mod wire;

pub use chat_response_to_messages::{chat_error_to_messages, chat_response_to_messages};
pub use chat_stream_to_messages::ChatToMessagesStream;
pub use chat_to_messages::{MessagesDraft, chat_to_messages, chat_to_messages_draft};
pub use messages_request_to_chat::messages_request_to_chat;
pub use messages_stream_to_chat::StreamTranslator;
pub use messages_to_chat::{error_to_openai, messages_to_chat};
pub use thinking_turn::{
    AskedThinking, asked_thinking, tool_turn_lacks_thinking, without_carried_thinking,
};
pub use wire::{StreamUsage, anthropic_usage};

pub use super::TranslateError;

/// The forced tool that carries a `response_format: json_schema` answer (see
/// [`chat_to_messages()`]). Its `tool_use` comes back to the client as the
/// message text, never as a tool call, so no per-request state is needed to
/// undo it.
pub const JSON_TOOL: &str = "aipipe_json_response";
