//! Anthropic Messages on the wire, where more than one direction needs the
//! same shape: the content blocks aipipe writes (into a request for
//! Anthropic, or an answer for an Anthropic client); the answer, its
//! streamed events and its errors as aipipe reads them; and the `usage`
//! object, read for accounting and written for Anthropic clients.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::protocol::Tokens;

// ------------------------------------------------------- written blocks

/// A content block aipipe writes: in a request it sends Anthropic, or in an
/// answer it gives an Anthropic client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: Cow<'a, str>,
        /// The client's prompt-caching marker, as it sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: ToolInput<'a>,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block<'a>>,
    },
    /// The model's own thinking of an earlier turn, as it answered it.
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

impl<'a> Block<'a> {
    pub(super) fn text(text: impl Into<Cow<'a, str>>) -> Self {
        Block::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

/// Where an image or document comes from.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// A `tool_use` block's `input`, which Anthropic requires to be an object.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ToolInput<'a> {
    /// A JSON object as the client or the model wrote it.
    Object(Cow<'a, RawValue>),
    /// Arguments that are not a JSON object, kept as text rather than lost.
    Unparsed {
        #[serde(rename = "_raw")]
        raw: &'a str,
    },
    /// No arguments: `{}`.
    Empty {},
}

// ---------------------------------------------------------------- usage

/// Anthropic's `usage` object, in answers and in `message_start` /
/// `message_delta` events. Cache counts may be absent or null.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
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
    pub(super) fn merge(&mut self, u: WireUsage) {
        self.input_tokens = u.input_tokens.or(self.input_tokens);
        self.output_tokens = u.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = u
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = u.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    /// Anthropic counts cache reads and writes apart from `input_tokens`;
    /// OpenAI's `prompt_tokens` includes cached tokens, so all three add up.
    pub(super) fn tokens(&self) -> Tokens {
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

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Token counts of a non-streamed Anthropic answer: `prompt` counts input,
/// cache-read and cache-write tokens, `cached` the cache reads. None when the
/// body has no readable `usage`.
pub fn anthropic_usage(json: &[u8]) -> Option<Tokens> {
    let usage = serde_json::from_slice::<WithUsage>(json).ok()?.usage?;
    if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
        return None;
    }
    Some(usage.tokens())
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
            message: Option<WithUsage>,
            #[serde(default)]
            usage: Option<WireUsage>,
        }
        // Only the two events that carry usage are parsed.
        if !crate::bytes::contains(data, b"\"usage\"") {
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

/// The `usage` object written for Anthropic clients.
#[derive(Serialize, Default, Clone, Copy)]
pub(super) struct MessagesUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
}

impl From<Tokens> for MessagesUsage {
    fn from(t: Tokens) -> Self {
        // OpenAI's prompt count includes cached tokens; Anthropic's excludes them.
        MessagesUsage {
            input_tokens: t.prompt.saturating_sub(t.cached),
            output_tokens: t.completion,
            cache_read_input_tokens: t.cached,
            cache_creation_input_tokens: 0,
        }
    }
}

/// A tool's JSON schema: Anthropic's `input_schema`, Chat Completions'
/// `parameters`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Schema<'a> {
    /// The client's schema, as it wrote it.
    Raw(Cow<'a, RawValue>),
    /// `{"type":"object"}`: any arguments.
    Open {
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

pub(super) const OPEN_SCHEMA: Schema<'static> = Schema::Open { kind: "object" };

// -------------------------------------------------------------- answers

/// A whole (non-streamed) Anthropic answer.
#[derive(Deserialize)]
pub(super) struct WireMessage {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) content: Vec<WireBlock>,
    #[serde(default)]
    pub(super) stop_reason: Option<String>,
    /// Unreadable usage loses the accounting (recorded as unparsed), never
    /// the answer.
    #[serde(default, deserialize_with = "lenient_usage")]
    pub(super) usage: Option<WireUsage>,
}

fn lenient_usage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WireUsage>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// A content block of an answer, whole or as a streamed `content_block_start`.
#[derive(Deserialize, Debug)]
pub(super) struct WireBlock {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    /// A tool's input, whatever JSON the model wrote. `Value`, not a raw
    /// fragment: streamed blocks arrive inside the internally tagged
    /// [`Event`], which serde buffers, and raw fragments cannot be buffered.
    #[serde(default)]
    pub(super) input: Option<Value>,
    /// A `thinking` block's text and signature; a `redacted_thinking`
    /// block's `data`.
    #[serde(default)]
    pub(super) thinking: Option<String>,
    #[serde(default)]
    pub(super) signature: Option<String>,
    #[serde(default)]
    pub(super) data: Option<String>,
}

// --------------------------------------------------------------- errors

/// An Anthropic error answer: `{"type":"error","error":{…}}`.
#[derive(Deserialize)]
pub(super) struct WireErrorBody {
    pub(super) error: WireError,
}

#[derive(Deserialize)]
pub(super) struct WireError {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) message: Option<String>,
}

// ------------------------------------------------------- streamed events

/// One event of a streamed answer.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: WireBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: WireError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
pub(super) struct StartMessage {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
pub(super) struct MessageDelta {
    #[serde(default)]
    pub(super) stop_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_cache_reads_and_writes_as_prompt_tokens() {
        let body = br#"{"type":"message","usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":null,"cache_read_input_tokens":90}}"#;
        assert_eq!(
            anthropic_usage(body),
            Some(Tokens {
                prompt: 100,
                completion: 5,
                cached: 90,
                cache_write: 0
            })
        );
        assert_eq!(
            anthropic_usage(br#"{"usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":7}}"#),
            Some(Tokens { prompt: 10, completion: 1, cached: 0, cache_write: 7 })
        );
        assert_eq!(anthropic_usage(br#"{"usage":{}}"#), None);
        assert_eq!(anthropic_usage(br#"{"usage":null}"#), None);
        assert_eq!(anthropic_usage(b"garbage"), None);
        let huge = format!(
            r#"{{"usage":{{"input_tokens":{},"output_tokens":1,"cache_read_input_tokens":{}}}}}"#,
            u64::MAX,
            u64::MAX
        );
        assert_eq!(
            anthropic_usage(huge.as_bytes()).map(|t| t.prompt),
            Some(u64::MAX)
        );
    }

    #[test]
    fn stream_usage_takes_input_from_the_start_and_output_from_the_last_delta() {
        let mut u = StreamUsage::default();
        assert_eq!(u.tokens(), None);
        for event in [
            &br#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"cache_read_input_tokens":100,"cache_creation_input_tokens":10,"output_tokens":1}}}"#[..],
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\"usage\""}}"#,
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30}}"#,
            br#"{"type":"message_delta","delta":{},"usage":{"output_tokens":42}}"#,
            b"not json but \"usage\"",
        ] {
            u.on_event(event);
        }
        assert_eq!(
            u.tokens(),
            Some(Tokens {
                prompt: 135,
                completion: 42,
                cached: 100,
                cache_write: 10
            })
        );
    }
}
