//! How an answer is changed on its way to the client: nothing (same wire
//! both sides), the usage chunk the filter asked for hidden again, or a
//! translation between Anthropic Messages and OpenAI Chat Completions —
//! streamed chunk by chunk, or in one piece for whole answers and errors.
//!
//! Plain Rust, no host calls: the request flow feeds it the provider's bytes.

use crate::anthropic::{self, ChatToMessagesStream, StreamTranslator};
use crate::protocol::Protocol;
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
rewrite!(UsageStripper, StreamTranslator, ChatToMessagesStream);

#[derive(Debug)]
pub enum Reshape {
    /// The answer goes to the client as it is.
    None,
    /// An OpenAI stream whose usage chunk the client did not ask for.
    HideUsage(UsageStripper),
    /// Anthropic answer → OpenAI client.
    ToChat {
        model: String,
        created: u64,
        stream: Option<StreamTranslator>,
    },
    /// OpenAI-format answer → Anthropic client.
    ToMessages {
        model: String,
        stream: Option<ChatToMessagesStream>,
    },
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
    /// Unix seconds, for `created` in translated OpenAI answers.
    pub created: u64,
}

impl Reshape {
    pub fn new(s: Shape<'_>) -> Self {
        match (s.client, s.provider) {
            (Protocol::Chat, Protocol::Chat) if s.stream && s.hide_usage => {
                Reshape::HideUsage(UsageStripper::default())
            }
            (Protocol::Chat, Protocol::Chat) | (Protocol::Messages, Protocol::Messages) => {
                Reshape::None
            }
            (Protocol::Chat, Protocol::Messages) => Reshape::ToChat {
                model: s.model.to_owned(),
                created: s.created,
                stream: s
                    .stream
                    .then(|| StreamTranslator::new(s.model, s.created, s.include_usage)),
            },
            (Protocol::Messages, Protocol::Chat) => Reshape::ToMessages {
                model: s.model.to_owned(),
                stream: s.stream.then(|| ChatToMessagesStream::new(s.model)),
            },
        }
    }

    /// The body changes length (so `content-length` must go).
    pub fn changes_body(&self) -> bool {
        !matches!(self, Reshape::None)
    }

    /// A whole answer is translated in one piece: buffer it.
    pub fn buffers(&self) -> bool {
        matches!(
            self,
            Reshape::ToChat { stream: None, .. } | Reshape::ToMessages { stream: None, .. }
        )
    }

    /// One chunk of a streamed success answer; None when it passes as is.
    pub fn chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let stream: &mut dyn Rewrite = match self {
            Reshape::HideUsage(s) => s,
            Reshape::ToChat {
                stream: Some(t), ..
            } => t,
            Reshape::ToMessages {
                stream: Some(t), ..
            } => t,
            // Whole answers go through `whole`.
            Reshape::None | Reshape::ToChat { .. } | Reshape::ToMessages { .. } => return None,
        };
        let mut out = Vec::with_capacity(chunk.len() + 64);
        stream.feed(chunk, &mut out);
        if end_of_stream {
            stream.finish(&mut out);
        }
        (out != chunk).then_some(out)
    }

    /// A whole answer (status and body) as the client gets it: errors in the
    /// client's error shape, success answers translated. An answer that
    /// cannot be translated is passed as it is (filter/README.md,
    /// "Bad input and errors").
    pub fn whole(&mut self, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
        if status >= 400 {
            return match self {
                Reshape::ToChat { .. } => anthropic::error_to_openai(status, body),
                Reshape::ToMessages { .. } => anthropic::chat_error_to_messages(status, body),
                Reshape::None | Reshape::HideUsage(_) => (status, body.to_vec()),
            };
        }
        let translated = match self {
            Reshape::None => return (status, body.to_vec()),
            Reshape::HideUsage(_)
            | Reshape::ToChat {
                stream: Some(_), ..
            }
            | Reshape::ToMessages {
                stream: Some(_), ..
            } => {
                // A whole stream (a failover answer arrives in one piece).
                match self.chunk(body, true) {
                    Some(out) => Ok(out),
                    None => return (status, body.to_vec()),
                }
            }
            Reshape::ToChat {
                model,
                created,
                stream: None,
            } => anthropic::messages_to_chat(body, model, *created),
            Reshape::ToMessages {
                model,
                stream: None,
            } => anthropic::chat_response_to_messages(body, model),
        };
        match translated {
            Ok(out) => (status, out),
            Err(e) => {
                log::warn!("answer passed untranslated: {e}");
                (status, body.to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(!r.changes_body());
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

    #[test]
    fn a_whole_anthropic_stream_becomes_a_whole_openai_stream() {
        let mut r = Reshape::new(shape(Protocol::Chat, Protocol::Messages, true));
        assert!(!r.buffers());
        let events = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
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
