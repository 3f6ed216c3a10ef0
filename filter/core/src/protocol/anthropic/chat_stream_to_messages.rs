//! A streamed OpenAI answer (`chat.completion.chunk` SSE) → Anthropic's event
//! stream, one event at a time, whatever the network chunk boundaries.

use serde::Deserialize;
use serde_json::{Value, json};

use super::chat_response_to_messages::{ChatFunction, stop_reason};
use super::wire::MessagesUsage;
use crate::protocol::Tokens;
use crate::protocol::chat::{self, openai_usage};
use crate::sse::SseParser;

/// Translates a streamed OpenAI answer (`chat.completion.chunk` SSE) into
/// Anthropic's event stream, event by event, whatever the chunk boundaries:
/// `message_start`, then per text run or tool call a `content_block_start` /
/// `content_block_delta` (`text_delta`, `input_json_delta`) /
/// `content_block_stop` — and per `reasoning_details` entry a `thinking`
/// block carrying it in its signature (`chat::carry`) — then `message_delta` (stop reason and usage, known
/// only from the final usage chunk) and `message_stop` at `[DONE]` or at the
/// end of the body. An OpenAI error chunk becomes an `error` event.
#[derive(Debug)]
pub struct ChatToMessagesStream {
    parser: SseParser,
    state: State,
}

#[derive(Debug)]
struct State {
    model: String,
    started: bool,
    /// The open block: its index and, for a tool call, OpenAI's tool index.
    open: Option<(usize, Open)>,
    next_block: usize,
    stop: Option<&'static str>,
    tokens: Option<Tokens>,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool(u64),
    Thinking,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChunkToolCall>,
    #[serde(default, deserialize_with = "chat::nullable")]
    reasoning_details: Vec<Value>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChatFunction>,
}

impl ChatToMessagesStream {
    /// `model` is the name the client sees.
    pub fn new(model: &str) -> Self {
        ChatToMessagesStream {
            parser: SseParser::default(),
            state: State {
                model: model.to_owned(),
                started: false,
                open: None,
                next_block: 0,
                stop: None,
                tokens: None,
                done: false,
            },
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        if !state.done {
            if state.started || state.stop.is_some() {
                state.end(out);
            } else {
                state.event(
                    "error",
                    &json!({"type": "error", "error": {"type": "api_error",
                        "message": "The upstream stream ended before the answer was complete. Retry the request."}}),
                    out,
                );
                state.done = true;
            }
        }
    }

    /// Usage from the provider's final usage chunk.
    pub fn tokens(&self) -> Option<Tokens> {
        self.state.tokens
    }
}

impl State {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
            log::debug!("skipping an unreadable chat.completion.chunk");
            return;
        };
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream provider reported an error.");
            self.event(
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                out,
            );
            self.done = true;
            return;
        }
        if let Some(t) = openai_usage(data) {
            self.tokens = Some(t);
        }
        self.start(chunk.id.as_deref(), out);
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(delta) = choice.delta {
                for detail in &delta.reasoning_details {
                    self.thinking(detail, out);
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    if self.open.map(|(_, o)| o) != Some(Open::Text) {
                        self.open_block(Open::Text, json!({"type": "text", "text": ""}), out);
                    }
                    self.delta(json!({"type": "text_delta", "text": text}), out);
                }
                for call in delta.tool_calls {
                    let name = call.function.as_ref().and_then(|f| f.name.clone());
                    if self.open.map(|(_, o)| o) != Some(Open::Tool(call.index))
                        && (call.id.is_some() || name.is_some())
                    {
                        self.open_block(
                            Open::Tool(call.index),
                            json!({"type": "tool_use", "id": call.id.unwrap_or_default(),
                                "name": name.unwrap_or_default(), "input": {}}),
                            out,
                        );
                    }
                    let args = call.function.and_then(|f| f.arguments).unwrap_or_default();
                    if !args.is_empty() && self.open.map(|(_, o)| o) == Some(Open::Tool(call.index))
                    {
                        self.delta(
                            json!({"type": "input_json_delta", "partial_json": args}),
                            out,
                        );
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.stop = Some(stop_reason(Some(&reason)));
                self.close_block(out);
            }
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({"type": "message_start", "message": {
            "id": id.unwrap_or("msg_unknown"), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }});
        self.event("message_start", &message, out);
    }

    /// Reasoning another provider returned, whole: a thinking block with
    /// its text (if any), then the signature that carries it.
    fn thinking(&mut self, detail: &Value, out: &mut Vec<u8>) {
        self.open_block(
            Open::Thinking,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            out,
        );
        let text = chat::reasoning_text(detail);
        if !text.is_empty() {
            self.delta(json!({"type": "thinking_delta", "thinking": text}), out);
        }
        self.delta(
            json!({"type": "signature_delta", "signature": chat::carry(detail)}),
            out,
        );
        self.close_block(out);
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        self.event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
    }

    fn delta(&mut self, delta: Value, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open {
            self.event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                out,
            );
        }
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            self.event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_block(out);
        let usage = MessagesUsage::from(self.tokens.unwrap_or_default());
        self.event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": usage}),
            out,
        );
        self.event("message_stop", &json!({"type": "message_stop"}), out);
        self.done = true;
    }

    fn event(&self, name: &str, data: &Value, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":5}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(pieces: &[&[u8]]) -> (String, Option<Tokens>) {
        let mut s = ChatToMessagesStream::new("claude-sonnet-4-5");
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, &mut out);
        }
        s.finish(&mut out);
        (String::from_utf8(out).unwrap(), s.tokens())
    }

    #[test]
    fn a_chat_stream_becomes_anthropic_events_at_any_split() {
        let (out, tokens) = run(&[CHUNKS.as_bytes()]);
        let expected = concat!(
            "event: message_start\ndata: {\"message\":{\"content\":[],\"id\":\"c1\",\"model\":\"claude-sonnet-4-5\",\"role\":\"assistant\",\"stop_reason\":null,\"stop_sequence\":null,\"type\":\"message\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0}},\"type\":\"message_start\"}\n\n",
            "event: content_block_start\ndata: {\"content_block\":{\"text\":\"\",\"type\":\"text\"},\"index\":0,\"type\":\"content_block_start\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"text\":\"Hi \",\"type\":\"text_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"text\":\"there\",\"type\":\"text_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_stop\ndata: {\"index\":0,\"type\":\"content_block_stop\"}\n\n",
            "event: content_block_start\ndata: {\"content_block\":{\"id\":\"call_1\",\"input\":{},\"name\":\"f\",\"type\":\"tool_use\"},\"index\":1,\"type\":\"content_block_start\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"partial_json\":\"{\\\"a\\\":\",\"type\":\"input_json_delta\"},\"index\":1,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"partial_json\":\"1}\",\"type\":\"input_json_delta\"},\"index\":1,\"type\":\"content_block_delta\"}\n\n",
            "event: content_block_stop\ndata: {\"index\":1,\"type\":\"content_block_stop\"}\n\n",
            "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"type\":\"message_delta\",\"usage\":{\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"input_tokens\":15,\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(out, expected);
        assert_eq!(
            tokens,
            Some(Tokens {
                prompt: 20,
                completion: 9,
                cached: 5,
                cache_write: 0
            })
        );
        let bytes = CHUNKS.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(run(&[a, b]), (out.clone(), tokens), "split at {i}");
        }
    }

    #[test]
    fn chat_stream_errors_and_truncation_end_the_anthropic_stream() {
        let (out, _) =
            run(&[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"]);
        assert_eq!(
            out,
            "event: error\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"
        );
        let (out, _) = run(&[]);
        assert!(out.starts_with("event: error\n"), "{out}");
        // No [DONE]: the stream is still closed properly.
        let cut = &CHUNKS[..CHUNKS.find("data: [DONE]").unwrap()];
        let (out, _) = run(&[cut.as_bytes()]);
        assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        let (out, _) = run(&[b"data: {\"choices\":\"x\"}\n\ndata: \xff\n\n", b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n"]);
        assert!(out.contains("message_stop"));
    }

    /// Streamed, the reasoning is a whole thinking block: its start, the
    /// signature that carries it, its stop; the text comes after it.
    #[test]
    fn reasoning_details_become_a_streamed_thinking_block() {
        let stream = concat!(
            "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_details\":[{\"type\":\"reasoning.encrypted\",\"id\":\"rs_1\",\"data\":\"gAAAA-one\",\"format\":\"openai-responses-v1\",\"index\":0}]}}]}\n\n",
            "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, _) = run(&[stream.as_bytes()]);
        let data: Vec<Value> = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(
            data[1]["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(data[1]["index"], 0);
        assert_eq!(data[2]["delta"]["type"], "signature_delta");
        let detail = chat::carried(data[2]["delta"]["signature"].as_str().unwrap()).unwrap();
        assert_eq!(detail["id"], "rs_1");
        assert_eq!(data[3]["type"], "content_block_stop");
        assert_eq!(data[4]["content_block"]["type"], "text");
        assert_eq!(data[4]["index"], 1);
    }
}
