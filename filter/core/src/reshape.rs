//! How an answer is changed on its way to the client: nothing (same
//! protocol both sides), the usage chunk the filter asked for hidden again,
//! or translated from the provider's protocol to the client's — streamed
//! chunk by chunk, or in one piece for whole answers and errors.
//!
//! A translation is a chain of at most two legs through Chat Completions,
//! the protocol every request is routed as: an Anthropic (or OpenAI
//! Responses API) answer becomes Chat Completions, and that becomes what the
//! client speaks.
//!
//! Plain Rust, no host calls: the request flow feeds it the provider's bytes.

use crate::protocol::Protocol;
use crate::protocol::anthropic::{self, ChatToMessagesStream, StreamTranslator};
use crate::protocol::ollama::{self, ChatToOllamaStream, Endpoint};
use crate::protocol::responses::{self, ChatToResponsesStream};
use crate::protocol::responses_upstream::{self, ResponsesToChatStream};
use crate::sse::UsageStripper;

/// A stream rewritten event by event, whatever the chunk boundaries.
trait Rewrite {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    fn finish(&mut self, out: &mut Vec<u8>);
}

macro_rules! rewrite {
    ($($t:ty),*) => {$(
        impl Rewrite for $t {
            fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
                <$t>::feed(self, chunk, out);
            }
            fn finish(&mut self, out: &mut Vec<u8>) {
                <$t>::finish(self, out);
            }
        }
    )*};
}
rewrite!(
    UsageStripper,
    StreamTranslator,
    ChatToMessagesStream,
    ChatToResponsesStream,
    ChatToOllamaStream,
    ResponsesToChatStream
);

/// One step of a translation. A streamed answer runs through its stream
/// rewriter; a whole one (or an error) through its one-piece translation.
#[derive(Debug)]
enum Leg {
    /// An OpenAI stream whose usage chunk the client did not ask for.
    HideUsage(UsageStripper),
    /// An Anthropic answer → Chat Completions.
    MessagesToChat {
        model: String,
        created: u64,
        stream: Option<StreamTranslator>,
    },
    /// An OpenAI Responses API answer → Chat Completions.
    ResponsesToChat {
        model: String,
        created: u64,
        stream: Option<ResponsesToChatStream>,
    },
    /// Chat Completions → an Anthropic client's answer.
    ChatToMessages {
        model: String,
        stream: Option<ChatToMessagesStream>,
    },
    /// Chat Completions → a Responses API client's answer.
    ChatToResponses {
        model: String,
        created: u64,
        stream: Option<ChatToResponsesStream>,
    },
    /// Chat Completions → an Ollama client's answer.
    ChatToOllama {
        model: String,
        created: u64,
        endpoint: Endpoint,
        stream: Option<ChatToOllamaStream>,
    },
}

impl Leg {
    fn stream(&mut self) -> Option<&mut dyn Rewrite> {
        match self {
            Leg::HideUsage(s) => Some(s),
            Leg::MessagesToChat { stream, .. } => stream.as_mut().map(|s| s as &mut dyn Rewrite),
            Leg::ResponsesToChat { stream, .. } => stream.as_mut().map(|s| s as &mut dyn Rewrite),
            Leg::ChatToMessages { stream, .. } => stream.as_mut().map(|s| s as &mut dyn Rewrite),
            Leg::ChatToResponses { stream, .. } => stream.as_mut().map(|s| s as &mut dyn Rewrite),
            Leg::ChatToOllama { stream, .. } => stream.as_mut().map(|s| s as &mut dyn Rewrite),
        }
    }

    /// An error answer in the next protocol's error shape.
    fn error(&self, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
        match self {
            Leg::MessagesToChat { .. } => anthropic::error_to_openai(status, body),
            Leg::ChatToMessages { .. } => anthropic::chat_error_to_messages(status, body),
            // The Responses API's errors are OpenAI's.
            Leg::HideUsage(_) | Leg::ChatToResponses { .. } | Leg::ResponsesToChat { .. } => {
                (status, body.to_vec())
            }
            Leg::ChatToOllama { .. } => (status, ollama::error_body(&openai_error_message(body))),
        }
    }

    /// A whole success answer translated (`None` for a leg that only
    /// rewrites streams).
    fn whole(&self, body: &[u8]) -> Option<Result<Vec<u8>, anthropic::TranslateError>> {
        Some(match self {
            Leg::HideUsage(_) => return None,
            Leg::MessagesToChat { model, created, .. } => {
                anthropic::messages_to_chat(body, model, *created)
            }
            Leg::ResponsesToChat { model, created, .. } => {
                responses_upstream::response_to_chat(body, model, *created)
            }
            Leg::ChatToMessages { model, .. } => anthropic::chat_response_to_messages(body, model),
            Leg::ChatToResponses { model, created, .. } => {
                responses::chat_to_response(body, model, *created)
            }
            Leg::ChatToOllama {
                model,
                created,
                endpoint,
                ..
            } => ollama::chat_to_ollama(body, model, *created, *endpoint),
        })
    }
}

/// The message of an OpenAI-shaped error body, or the body as text.
fn openai_error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Wire {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: String,
    }
    serde_json::from_slice::<Wire>(body).map_or_else(
        |_| String::from_utf8_lossy(body).into_owned(),
        |w| w.error.message,
    )
}

/// How one answer is changed for its client.
#[derive(Debug, Default)]
pub struct Reshape {
    legs: Vec<Leg>,
}

/// What the reshaping depends on.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// What the client speaks.
    pub client: Protocol,
    /// What the provider that answers speaks.
    pub provider: Protocol,
    pub stream: bool,
    /// The OpenAI client asked for its stream's usage chunk.
    pub include_usage: bool,
    /// The filter forced the usage chunk on an OpenAI stream: hide it.
    pub hide_usage: bool,
    /// The catalog id the client sees as `model`.
    pub model: &'a str,
    /// Unix seconds, for `created` in translated answers.
    pub created: u64,
}

impl Reshape {
    /// Leaves the answer as it is.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(s: Shape<'_>) -> Self {
        // A non-Chat client answered in its own protocol (an Anthropic
        // client by Anthropic, a Responses client by the Responses API) gets
        // the answer as it is: a Responses answer's reasoning items with
        // their `encrypted_content` reach the client for its next turn.
        if s.client == s.provider && s.client != Protocol::Chat {
            return Self::none();
        }
        let model = s.model.to_owned();
        // Most answers need no leg: no allocation for them.
        let mut legs = Vec::new();
        // An Anthropic or a Responses API answer goes through Chat
        // Completions first. A client that does not speak it gets the usage
        // chunk: the next leg reads it.
        let include_usage = s.client != Protocol::Chat || s.include_usage;
        match s.provider {
            Protocol::Messages => {
                legs.push(Leg::MessagesToChat {
                    model: model.clone(),
                    created: s.created,
                    stream: s
                        .stream
                        .then(|| StreamTranslator::new(s.model, s.created, include_usage)),
                });
            }
            Protocol::Responses => legs.push(Leg::ResponsesToChat {
                model: model.clone(),
                created: s.created,
                stream: s
                    .stream
                    .then(|| ResponsesToChatStream::new(s.model, s.created, include_usage)),
            }),
            _ => {}
        }
        match s.client {
            Protocol::Chat if s.provider == Protocol::Chat && s.stream && s.hide_usage => {
                legs.push(Leg::HideUsage(UsageStripper::default()));
            }
            Protocol::Chat => {}
            Protocol::Messages => legs.push(Leg::ChatToMessages {
                stream: s.stream.then(|| ChatToMessagesStream::new(s.model)),
                model,
            }),
            Protocol::Responses => legs.push(Leg::ChatToResponses {
                stream: s
                    .stream
                    .then(|| ChatToResponsesStream::new(s.model, s.created)),
                model,
                created: s.created,
            }),
            Protocol::Ollama(endpoint) => legs.push(Leg::ChatToOllama {
                stream: s
                    .stream
                    .then(|| ChatToOllamaStream::new(s.model, s.created, endpoint)),
                model,
                created: s.created,
                endpoint,
            }),
        }
        Self { legs }
    }

    /// The body changes length (so `content-length` must go).
    pub fn changes_body(&self) -> bool {
        !self.legs.is_empty()
    }

    /// The client's content type when it differs from the provider's (an
    /// Ollama client's stream is NDJSON, not SSE).
    pub fn content_type(&self) -> Option<&'static str> {
        match self.legs.last() {
            Some(Leg::ChatToOllama {
                stream: Some(_), ..
            }) => Some(ollama::NDJSON),
            _ => None,
        }
    }

    /// A whole answer is translated in one piece: buffer it.
    pub fn buffers(&self) -> bool {
        self.legs.iter().any(is_whole)
    }

    /// One chunk of a streamed success answer; None when it passes as is.
    pub fn chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        if self.legs.is_empty() || self.buffers() {
            // Whole answers go through `whole`.
            return None;
        }
        // The first leg reads the provider's chunk itself: no copy of it.
        let mut translated: Option<Vec<u8>> = None;
        for leg in &mut self.legs {
            let Some(stream) = leg.stream() else {
                continue;
            };
            let input = translated.as_deref().unwrap_or(chunk);
            let mut out = Vec::with_capacity(input.len() + 64);
            stream.feed(input, &mut out);
            if end_of_stream {
                stream.finish(&mut out);
            }
            translated = Some(out);
        }
        translated.filter(|out| out.as_slice() != chunk)
    }

    /// A whole answer (status and body) as the client gets it: errors in the
    /// client's error shape, success answers translated. An answer that
    /// cannot be translated is passed as it is (filter/README.md,
    /// "Bad input and errors").
    pub fn whole(&mut self, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
        if status >= 400 {
            let (mut status, mut out) = (status, body.to_vec());
            for leg in &self.legs {
                (status, out) = leg.error(status, &out);
            }
            return (status, out);
        }
        if !self.buffers() {
            // A whole stream (a failover answer arrives in one piece).
            return (
                status,
                self.chunk(body, true).unwrap_or_else(|| body.to_vec()),
            );
        }
        let mut out = body.to_vec();
        for leg in &self.legs {
            match leg.whole(&out) {
                None => {}
                Some(Ok(translated)) => out = translated,
                Some(Err(e)) => {
                    log::warn!("answer passed untranslated: {e}");
                    return (status, body.to_vec());
                }
            }
        }
        (status, out)
    }
}

/// A translating leg set up for a whole (non-streamed) answer.
fn is_whole(l: &Leg) -> bool {
    match l {
        Leg::HideUsage(_) => false,
        Leg::MessagesToChat { stream, .. } => stream.is_none(),
        Leg::ResponsesToChat { stream, .. } => stream.is_none(),
        Leg::ChatToMessages { stream, .. } => stream.is_none(),
        Leg::ChatToResponses { stream, .. } => stream.is_none(),
        Leg::ChatToOllama { stream, .. } => stream.is_none(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    fn shape(client: Protocol, provider: Protocol, stream: bool) -> Shape<'static> {
        Shape {
            client,
            provider,
            stream,
            include_usage: false,
            hide_usage: true,
            model: "m",
            created: 1,
        }
    }

    #[test]
    fn same_wire_passes_untouched_and_hides_only_a_forced_usage_chunk() {
        let mut r = Reshape::new(shape(Protocol::Chat, Protocol::Chat, false));
        assert!(!r.changes_body() && !r.buffers());
        assert_eq!(r.chunk(b"abc", true), None);
        assert_eq!(r.whole(503, b"x"), (503, b"x".to_vec()));

        let mut r = Reshape::new(shape(Protocol::Chat, Protocol::Chat, true));
        let usage = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        assert_eq!(r.chunk(usage, false), Some(Vec::new()));
        assert_eq!(r.chunk(b"data: [DONE]\n\n", true), None);
    }

    #[test]
    fn anthropic_answers_and_errors_reach_openai_clients_translated() {
        let mut r = Reshape::new(shape(Protocol::Chat, Protocol::Messages, false));
        assert!(r.buffers());
        let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
        let (status, out) = r.whole(200, answer);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, 200);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m");
        assert_eq!(v["choices"][0]["message"]["content"], "hi");

        let (status, out) = r.whole(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, 503);
        assert!(v["error"]["message"].is_string());

        // Not an Anthropic answer at all: passed as it is.
        assert_eq!(r.whole(200, b"<html>"), (200, b"<html>".to_vec()));
    }

    /// A whole Anthropic event stream answering "hi" (3 tokens in, 1 out).
    pub(crate) const ANTHROPIC_HI_STREAM: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn a_whole_anthropic_stream_becomes_a_whole_openai_stream() {
        let mut r = Reshape::new(shape(Protocol::Chat, Protocol::Messages, true));
        assert!(!r.buffers());
        let events = ANTHROPIC_HI_STREAM;
        let (status, out) = r.whole(200, events.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert_eq!(status, 200);
        assert!(out.contains("chat.completion.chunk"), "{out}");
        assert!(out.contains("\"content\":\"hi\""), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    }

    #[test]
    fn openai_answers_reach_anthropic_clients_translated() {
        let mut r = Reshape::new(shape(Protocol::Messages, Protocol::Chat, false));
        let answer = br#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let (status, out) = r.whole(200, answer);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, 200);
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "hi");
        let (status, out) = r.whole(429, br#"{"error":{"message":"slow down"}}"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, 429);
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
