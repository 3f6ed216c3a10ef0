//! Anthropic's streamed Messages events → OpenAI `chat.completion.chunk` SSE,
//! one event at a time, whatever the network chunk boundaries.

use super::JSON_TOOL;
use super::messages_to_chat::{
    error_body, error_kind, error_message, finish_reason, reasoning_detail,
};
use super::wire::{BlockDelta, Event, WireBlock, WireUsage};
use crate::protocol::Tokens;
use crate::protocol::chat::{
    ChunkChoiceOut as ChunkChoice, ChunkOut, DeltaOut as Delta, ToolDeltaOut, write_chunk,
};
use crate::sse::SseParser;

/// Translates one streamed Anthropic answer into the OpenAI stream the
/// client expects. Feed it the upstream bytes as they arrive; each complete
/// Anthropic event is written out as OpenAI chunks at once:
///
/// - `message_start` → a first chunk with `delta.role = "assistant"`;
/// - `text_delta` → `delta.content`;
/// - a `tool_use` block → `delta.tool_calls[{index, id, type, function:
///   {name, arguments: ""}}]`, then each `input_json_delta` → an `arguments`
///   fragment with the same `index` (the tool call's position among the
///   answer's tool calls, not Anthropic's block index); a call whose input
///   never arrived gets `"{}"` so it still parses;
/// - the [`JSON_TOOL`] block (a `response_format: json_schema` answer) →
///   plain `delta.content`;
/// - a `thinking` block (its text and signature, gathered from its deltas)
///   or a `redacted_thinking` block → at its end, a chunk with
///   `delta.reasoning_details[{type, text, signature | data, format:
///   "anthropic-claude-v1", index}]`, as the whole answer carries it;
/// - citation deltas, server-tool blocks and `ping` → nothing;
/// - `message_delta` → a chunk with `finish_reason`;
/// - `message_stop` → with `include_usage`, a `choices: []` chunk carrying the
///   usage; then `data: [DONE]`;
/// - `error` → `data: {"error":{…}}` and the stream ends there.
///
/// A stream that ends without `message_stop` is closed properly when it had
/// its `message_delta`, and with an error chunk otherwise.
#[derive(Debug)]
pub struct StreamTranslator {
    parser: SseParser,
    state: State,
}

#[derive(Debug)]
struct State {
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    started: bool,
    /// Anthropic block index → what the block becomes.
    blocks: Vec<(usize, Block)>,
    /// Real tool calls announced so far (the next call's OpenAI index).
    tool_calls: usize,
    /// The thinking block being read, whole so far.
    thinking: Option<WireBlock>,
    /// Thinking blocks passed on so far (the next one's `index`).
    reasoning: usize,
    usage: Option<WireUsage>,
    finished: bool,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Tool { index: usize, has_args: bool },
    Json { has_args: bool },
    Thinking,
    Ignored,
}

impl StreamTranslator {
    /// `model` is the name the client sees; `created` the unix time of the
    /// request; `include_usage` whether the client asked for
    /// `stream_options.include_usage`.
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        StreamTranslator {
            parser: SseParser::default(),
            state: State {
                model: model.to_owned(),
                created,
                include_usage,
                id: String::from("msg_unknown"),
                started: false,
                blocks: Vec::new(),
                tool_calls: 0,
                thinking: None,
                reasoning: 0,
                usage: None,
                finished: false,
                done: false,
            },
        }
    }

    /// Feeds a chunk of the upstream body; appends translated SSE to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.feed(chunk, |data| state.on_event(data, out));
    }

    /// The upstream body ended: completes the client's stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.finish(|data| state.on_event(data, out));
        state.close(out);
    }

    /// Token counts seen so far: input and cache tokens from `message_start`,
    /// output tokens from the last `message_delta`. None before any usage.
    pub fn tokens(&self) -> Option<Tokens> {
        self.state.usage.map(|u| u.tokens())
    }

    /// Whether the client's stream is complete (`[DONE]` or an error sent).
    pub fn is_done(&self) -> bool {
        self.state.done
    }
}

impl State {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let event = match serde_json::from_slice::<Event>(data) {
            Ok(e) => e,
            Err(e) => {
                log::debug!("skipping unreadable Anthropic stream event: {e}");
                return;
            }
        };
        match event {
            Event::MessageStart { message } => {
                if let Some(id) = message.id {
                    self.id = id;
                }
                if let Some(u) = message.usage {
                    self.merge_usage(u);
                }
                self.start(out);
            }
            Event::ContentBlockStart {
                index,
                content_block: b,
            } => {
                self.start(out);
                let block = match b.kind.as_str() {
                    "text" => {
                        if let Some(t) = b.text.as_deref().filter(|t| !t.is_empty()) {
                            self.content(t, out);
                        }
                        Block::Text
                    }
                    "tool_use" if b.name.as_deref() == Some(JSON_TOOL) => {
                        Block::Json { has_args: false }
                    }
                    "tool_use" => {
                        let tool = self.tool_calls;
                        self.tool_calls += 1;
                        self.emit_delta(
                            Delta {
                                tool_calls: Some([ToolDeltaOut::start(
                                    tool,
                                    b.id.as_deref().unwrap_or_default(),
                                    b.name.as_deref().unwrap_or_default(),
                                )]),
                                ..Delta::default()
                            },
                            None,
                            out,
                        );
                        // Input normally streams as deltas from `{}`; one
                        // given up front is sent whole.
                        let mut has_args = false;
                        if let Some(input) = b
                            .input
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            let args = input.to_string();
                            self.arguments(tool, &args, out);
                            has_args = true;
                        }
                        Block::Tool {
                            index: tool,
                            has_args,
                        }
                    }
                    "thinking" | "redacted_thinking" => {
                        self.thinking = Some(b);
                        Block::Thinking
                    }
                    _ => Block::Ignored,
                };
                self.blocks.retain(|(i, _)| *i != index);
                self.blocks.push((index, block));
            }
            Event::ContentBlockDelta { index, delta } => {
                let Some(block) = self.block_mut(index) else {
                    return;
                };
                // Empty fragments (Anthropic opens tool input with one) carry nothing.
                match (delta, *block) {
                    (BlockDelta::TextDelta { text }, Block::Text) if !text.is_empty() => {
                        self.content(&text, out);
                    }
                    (
                        BlockDelta::InputJsonDelta { partial_json },
                        Block::Tool { index: tool, .. },
                    ) if !partial_json.is_empty() => {
                        *block = Block::Tool {
                            index: tool,
                            has_args: true,
                        };
                        self.arguments(tool, &partial_json, out);
                    }
                    (BlockDelta::InputJsonDelta { partial_json }, Block::Json { .. })
                        if !partial_json.is_empty() =>
                    {
                        *block = Block::Json { has_args: true };
                        self.content(&partial_json, out);
                    }
                    (BlockDelta::ThinkingDelta { thinking }, Block::Thinking) => {
                        if let Some(b) = self.thinking.as_mut() {
                            b.thinking.get_or_insert_default().push_str(&thinking);
                        }
                    }
                    (BlockDelta::SignatureDelta { signature }, Block::Thinking) => {
                        if let Some(b) = self.thinking.as_mut() {
                            b.signature = Some(signature);
                        }
                    }
                    _ => {}
                }
            }
            Event::ContentBlockStop { index } => match self.block_mut(index).copied() {
                Some(Block::Tool {
                    index: tool,
                    has_args: false,
                }) => self.arguments(tool, "{}", out),
                Some(Block::Json { has_args: false }) => self.content("{}", out),
                Some(Block::Thinking) => self.reasoning(out),
                _ => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.merge_usage(u);
                }
                if let Some(reason) = delta.stop_reason {
                    self.finish_with(finish_reason(&reason, self.tool_calls > 0), out);
                }
            }
            Event::MessageStop {} => {
                self.finish_with("stop", out);
                self.complete(out);
            }
            Event::Ping {} | Event::Other => {}
            Event::Error { error } => {
                let (_, kind, code) = error_kind(&error.kind, 500);
                let message = error_message(
                    &error.kind,
                    error
                        .message
                        .as_deref()
                        .unwrap_or("Anthropic reported an error without a message"),
                );
                self.error(&message, kind, code, out);
            }
        }
    }

    /// The upstream body ended.
    fn close(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finished {
            self.complete(out);
        } else {
            self.error(
                "The Anthropic stream ended before the answer was complete. Retry the request.",
                "api_error",
                "upstream_stream_truncated",
                out,
            );
        }
    }

    fn block_mut(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn merge_usage(&mut self, u: WireUsage) {
        self.usage.get_or_insert_default().merge(u);
    }

    /// Sends the role chunk once, before anything else.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.emit_delta(
            Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            },
            None,
            out,
        );
    }

    fn content(&mut self, text: &str, out: &mut Vec<u8>) {
        self.emit_delta(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
            out,
        );
    }

    /// Passes on the thinking block that just ended.
    fn reasoning(&mut self, out: &mut Vec<u8>) {
        let Some(block) = self.thinking.take() else {
            return;
        };
        if let Some(detail) = reasoning_detail(self.reasoning, &block) {
            self.reasoning += 1;
            self.emit_delta(
                Delta {
                    reasoning_details: Some([detail]),
                    ..Delta::default()
                },
                None,
                out,
            );
        }
    }

    fn arguments(&mut self, tool: usize, fragment: &str, out: &mut Vec<u8>) {
        self.emit_delta(
            Delta {
                tool_calls: Some([ToolDeltaOut::arguments(tool, fragment)]),
                ..Delta::default()
            },
            None,
            out,
        );
    }

    fn finish_with(&mut self, reason: &'static str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.finished = true;
        self.emit_delta(Delta::default(), Some(reason), out);
    }

    /// The usage chunk (when asked for) and `[DONE]`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            let usage = self.usage.unwrap_or_default().tokens();
            self.emit(
                &ChunkOut {
                    id: &self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: &self.model,
                    choices: Vec::new(),
                    usage: Some(Some(usage.into())),
                },
                out,
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn error(&mut self, message: &str, kind: &str, code: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&error_body(message, kind, code));
        out.extend_from_slice(b"\n\n");
        self.done = true;
    }

    fn emit_delta(&self, delta: Delta<'_>, finish: Option<&'static str>, out: &mut Vec<u8>) {
        self.emit(
            &ChunkOut {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs: None,
                    finish_reason: finish,
                }],
                usage: self.include_usage.then_some(None),
            },
            out,
        );
    }

    fn emit(&self, chunk: &ChunkOut<'_>, out: &mut Vec<u8>) {
        write_chunk(chunk, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A recorded stream: thinking, text, then a tool call whose input
    /// arrives in fragments, with cache tokens in `message_start`.
    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"The user wants weather.\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check \"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"the weather \u{2014} \u{2600}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    /// Short enough to split at every pair of positions; CRLF line ends.
    const SHORT: &str = concat!(
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"usage\":{\"input_tokens\":3}}}\r\n\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}\r\n\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"H\u{e9}!\"}}\r\n\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}\r\n\r\n",
        "data: {\"type\":\"message_stop\"}\r\n\r\n",
    );

    fn run(pieces: &[&[u8]], include_usage: bool) -> (String, Option<Tokens>) {
        let mut t = StreamTranslator::new("claude-sonnet-4-5", 1_750_000_000, include_usage);
        let mut out = Vec::new();
        for p in pieces {
            t.feed(p, &mut out);
        }
        t.finish(&mut out);
        (String::from_utf8(out).unwrap(), t.tokens())
    }

    fn chunk(id: &str, delta: &str, finish: &str) -> String {
        format!(
            "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1750000000,\"model\":\"claude-sonnet-4-5\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    }

    #[test]
    fn a_recorded_stream_becomes_openai_chunks() {
        let (out, tokens) = run(&[STREAM.as_bytes()], false);
        let c = |delta: &str, finish: &str| chunk("msg_01", delta, finish);
        let expected = [
            c(r#"{"role":"assistant","content":""}"#, "null"),
            // The thinking block whole, at its end, signature and all.
            c(
                r#"{"reasoning_details":[{"type":"reasoning.text","text":"The user wants weather.","signature":"EqQBCgIYAhIM","format":"anthropic-claude-v1","index":0}]}"#,
                "null",
            ),
            c(r#"{"content":"Let me check "}"#, "null"),
            c("{\"content\":\"the weather \u{2014} \u{2600}\"}", "null"),
            c(
                r#"{"tool_calls":[{"index":0,"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
                "null",
            ),
            c(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]}"#, "null"),
            c(r#"{"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]}"#, "null"),
            c("{}", "\"tool_calls\""),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        assert_eq!(out, expected);
        assert_eq!(
            tokens,
            Some(Tokens {
                prompt: 135,
                completion: 42,
                cached: 100,
                cache_write: 10
            })
        );
    }

    #[test]
    fn include_usage_adds_null_usage_and_a_final_usage_chunk() {
        let (out, _) = run(&[SHORT.as_bytes()], true);
        let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 5, "{out}");
        for e in &events[..3] {
            let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(v["usage"], Value::Null);
            assert!(v.get("usage").is_some());
        }
        let finish: Value =
            serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
        assert_eq!(
            events[3],
            "data: {\"id\":\"msg_2\",\"object\":\"chat.completion.chunk\",\"created\":1750000000,\"model\":\"claude-sonnet-4-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":0}}}"
        );
        assert_eq!(events[4], "data: [DONE]");
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let whole = run(&[STREAM.as_bytes()], true);
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(run(&[a, b], true), whole, "split at {i}");
        }
        // Byte by byte.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&singles, true), whole);
    }

    #[test]
    fn every_pair_of_split_points_gives_the_same_output() {
        let whole = run(&[SHORT.as_bytes()], false);
        assert!(whole.0.contains("H\u{e9}!") && whole.0.ends_with("data: [DONE]\n\n"));
        let bytes = SHORT.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let (a, rest) = bytes.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(run(&[a, b, c], false), whole, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn an_error_event_becomes_an_error_chunk_and_ends_the_stream() {
        let stream = concat!(
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (out, tokens) = run(&[stream.as_bytes()], false);
        assert_eq!(
            out,
            [
                chunk("msg_3", r#"{"role":"assistant","content":""}"#, "null"),
                "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"service_unavailable\",\"param\":null,\"code\":\"provider_overloaded\"}}\n\n".to_owned(),
            ]
            .concat()
        );
        assert_eq!(tokens.map(|t| t.prompt), Some(5));
    }

    #[test]
    fn a_truncated_stream_ends_with_an_error_and_a_missing_stop_is_tolerated() {
        let cut = &SHORT[..SHORT.find("data: {\"type\":\"message_delta\"").unwrap()];
        let (out, _) = run(&[cut.as_bytes()], false);
        assert!(
            out.ends_with("\"code\":\"upstream_stream_truncated\"}}\n\n"),
            "{out}"
        );
        assert!(!out.contains("[DONE]"));

        let no_stop = &SHORT[..SHORT.find("data: {\"type\":\"message_stop\"").unwrap()];
        let (out, tokens) = run(&[no_stop.as_bytes()], true);
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        assert!(out.contains("\"completion_tokens\":2"));
        assert_eq!(
            tokens,
            Some(Tokens {
                prompt: 3,
                completion: 2,
                cached: 0,
                cache_write: 0
            })
        );

        let (out, tokens) = run(&[], false);
        assert!(out.contains("upstream_stream_truncated"));
        assert_eq!(tokens, None);
    }

    #[test]
    fn the_json_tool_streams_as_content_and_empty_tool_input_is_an_object() {
        let stream = format!(
            concat!(
                "data: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\"}}}}\n\n",
                "data: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t0\",\"name\":\"{json}\",\"input\":{{}}}}}}\n\n",
                "data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{{\\\"a\\\":1}}\"}}}}\n\n",
                "data: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n",
                "data: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"now\",\"input\":{{}}}}}}\n\n",
                "data: {{\"type\":\"content_block_stop\",\"index\":1}}\n\n",
                "data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"tool_use\"}}}}\n\n",
                "data: {{\"type\":\"message_stop\"}}\n\n",
            ),
            json = JSON_TOOL
        );
        let (out, _) = run(&[stream.as_bytes()], false);
        let c = |delta: &str, finish: &str| chunk("m", delta, finish);
        assert_eq!(
            out,
            [
                c(r#"{"role":"assistant","content":""}"#, "null"),
                c(r#"{"content":"{\"a\":1}"}"#, "null"),
                c(
                    r#"{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"now","arguments":""}}]}"#,
                    "null"
                ),
                c(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#, "null"),
                c("{}", "\"tool_calls\""),
                "data: [DONE]\n\n".to_owned(),
            ]
            .concat()
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u32 = 0x1234_5678;
        let mut noise = Vec::new();
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            noise.push(
                b"data: {}[]\"type\n:message_start,content_block_delta 0123\\"
                    [(seed % 47) as usize],
            );
        }
        let hostile = [
            &noise[..],
            b"data: {\"type\":\"content_block_delta\",\"index\":99,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
            b"data: {\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{}}\n\n",
            b"data: {\"type\":\"message_delta\",\"delta\":null,\"usage\":{\"output_tokens\":-5}}\n\n",
            b"data: {\"type\":7}\n\ndata: [DONE]\n\ndata: \xff\xfe\n\n",
        ];
        let mut t = StreamTranslator::new("m", 0, true);
        let mut out = Vec::new();
        for h in hostile {
            t.feed(h, &mut out);
        }
        t.feed(STREAM.as_bytes(), &mut out);
        t.finish(&mut out);
        t.finish(&mut out);
        assert!(t.is_done());
        let huge = b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":18446744073709551615,\"cache_read_input_tokens\":18446744073709551615}}}\n\n";
        let (_, tokens) = run(&[huge], true);
        assert_eq!(tokens.map(|t| t.prompt), Some(u64::MAX));
        let deep = format!("data: {}\n\n", "[".repeat(100_000));
        let (out, _) = run(&[deep.as_bytes()], false);
        assert!(out.contains("upstream_stream_truncated"));
    }
}
