//! Chat Completions on the wire, as the client protocols translated here
//! write requests and read answers (whole and streamed).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::Tokens;
use crate::bytes::contains;
use crate::error::ApiError;
use crate::protocol::TranslateError;

// ------------------------------------------------------------ requests

/// A Chat Completions request. `stream` is always written, so the
/// request flow never has to guess a protocol's default.
#[derive(Serialize, Default)]
pub struct Request<'a> {
    pub model: Cow<'a, str>,
    pub messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<Cow<'a, str>>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

impl<'a> Request<'a> {
    pub fn new(model: Cow<'a, str>, messages: Vec<Message<'a>>) -> Self {
        Request {
            model,
            messages,
            ..Request::default()
        }
    }

    /// A streamed request also asks for the final usage chunk: the
    /// translated stream reports usage at its end, and accounting needs it.
    pub fn set_stream(&mut self, stream: bool) {
        self.stream = stream;
        self.stream_options = stream.then_some(StreamOptions {
            include_usage: true,
        });
    }

    /// `tool_choice` and `parallel_tool_calls` only mean something with
    /// tools, and OpenAI refuses them without.
    pub fn set_tools(
        &mut self,
        tools: Vec<Tool<'a>>,
        choice: Option<ToolChoice<'a>>,
        parallel: Option<bool>,
    ) {
        if !tools.is_empty() {
            self.tool_choice = choice;
            self.parallel_tool_calls = parallel;
        }
        self.tools = tools;
    }

    pub fn encode(&self) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(self)
            .map_err(|e| ApiError::BadRequest(format!("could not encode the chat request: {e}")))
    }
}

#[derive(Serialize)]
pub struct Message<'a> {
    pub role: &'static str,
    pub content: Content<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// An assistant message's reasoning that came back through a protocol
    /// with no place for it ([`carried`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasoning_details: Vec<Value>,
}

impl<'a> Message<'a> {
    pub fn text(role: &'static str, text: impl Into<Cow<'a, str>>) -> Self {
        Message {
            role,
            content: Content::Text(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning_details: Vec::new(),
        }
    }

    pub fn parts(role: &'static str, parts: Vec<Part<'a>>) -> Self {
        Message {
            content: Content::Parts(parts),
            ..Message::text(role, "")
        }
    }

    pub fn tool_result(id: Cow<'a, str>, text: impl Into<Cow<'a, str>>) -> Self {
        Message {
            tool_call_id: Some(id),
            ..Message::text("tool", text)
        }
    }

    /// An assistant turn that only calls tools: its content is `null`.
    pub fn calls(tool_calls: Vec<ToolCall<'a>>) -> Self {
        Message {
            role: "assistant",
            content: Content::Null,
            tool_calls,
            tool_call_id: None,
            reasoning_details: Vec::new(),
        }
    }
}

/// Adds reasoning that came back ([`carried`]) to the assistant turn it
/// led to: the previous message when that is an assistant turn, else a new
/// one, which the turn's text and calls then join ([`push_call`],
/// [`join_assistant`]).
pub fn push_reasoning(messages: &mut Vec<Message<'_>>, detail: Value) {
    match messages.last_mut() {
        Some(m) if m.role == "assistant" => m.reasoning_details.push(detail),
        _ => {
            let mut m = Message::calls(Vec::new());
            m.reasoning_details.push(detail);
            messages.push(m);
        }
    }
}

/// Adds an assistant message: into the previous message when that is an
/// assistant turn holding only reasoning ([`push_reasoning`]), else as a
/// new message.
pub fn join_assistant<'a>(messages: &mut Vec<Message<'a>>, message: Message<'a>) {
    match messages.last_mut() {
        Some(m)
            if m.role == "assistant"
                && matches!(m.content, Content::Null)
                && m.tool_calls.is_empty()
                && message.role == "assistant" =>
        {
            m.content = message.content;
            m.tool_calls = message.tool_calls;
        }
        _ => messages.push(message),
    }
}

/// Adds a tool call to the assistant turn it belongs to: the previous
/// message when that is an assistant turn (its text, or calls made in
/// parallel), else a new assistant turn.
pub fn push_call<'a>(messages: &mut Vec<Message<'a>>, call: ToolCall<'a>) {
    match messages.last_mut() {
        Some(m) if m.role == "assistant" => m.tool_calls.push(call),
        _ => messages.push(Message::calls(vec![call])),
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Content<'a> {
    Null,
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
    File { file: File<'a> },
}

#[derive(Serialize)]
pub struct ImageUrl<'a> {
    pub url: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub struct File<'a> {
    pub file_data: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub struct ToolCall<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

impl<'a> ToolCall<'a> {
    pub fn new(id: Cow<'a, str>, name: Cow<'a, str>, arguments: Cow<'a, str>) -> Self {
        ToolCall {
            id,
            kind: "function",
            function: FunctionCall { name, arguments },
        }
    }
}

#[derive(Serialize)]
pub struct FunctionCall<'a> {
    pub name: Cow<'a, str>,
    pub arguments: Cow<'a, str>,
}

#[derive(Serialize)]
pub struct Tool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDef<'a>,
}

impl<'a> Tool<'a> {
    pub fn function(
        name: Cow<'a, str>,
        description: Option<Cow<'a, str>>,
        parameters: Option<&'a RawValue>,
        strict: Option<bool>,
    ) -> Self {
        Tool {
            kind: "function",
            function: FunctionDef {
                name,
                description,
                parameters,
                strict,
            },
        }
    }
}

#[derive(Serialize)]
pub struct FunctionDef<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `none`, `auto` or `required`.
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Name<'a>,
    },
}

impl<'a> ToolChoice<'a> {
    pub fn function(name: Cow<'a, str>) -> Self {
        ToolChoice::Function {
            kind: "function",
            function: Name { name },
        }
    }
}

#[derive(Serialize)]
pub struct Name<'a> {
    pub name: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: JsonSchema<'a> },
}

#[derive(Serialize)]
pub struct JsonSchema<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    pub schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ------------------------------------------------- streamed chunks written

/// OpenAI's Chat Completions `usage`, as the translations to it write it;
/// reasoning tokens (part of `completion_tokens`, as OpenAI bills them) when
/// the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<ReasoningOut>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct ReasoningOut {
    reasoning_tokens: u64,
}

impl From<Tokens> for UsageOut {
    fn from(t: Tokens) -> Self {
        UsageOut {
            prompt_tokens: t.prompt,
            completion_tokens: t.completion,
            total_tokens: t.prompt.saturating_add(t.completion),
            prompt_tokens_details: CachedOut {
                cached_tokens: t.cached,
            },
            completion_tokens_details: None,
        }
    }
}

impl UsageOut {
    /// The same usage, saying how many of its completion tokens were
    /// reasoning.
    pub fn with_reasoning(self, reasoning_tokens: u64) -> Self {
        UsageOut {
            completion_tokens_details: Some(ReasoningOut { reasoning_tokens }),
            ..self
        }
    }
}

/// A `chat.completion.chunk` as the stream translations write it (an
/// Anthropic or a Responses API stream becoming Chat Completions).
#[derive(Serialize)]
pub struct ChunkOut<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoiceOut<'a>>,
    /// With `include_usage`, OpenAI sends `"usage": null` on every chunk but
    /// the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
pub struct ChunkChoiceOut<'a> {
    pub index: u32,
    pub delta: DeltaOut<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolDeltaOut<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_details: Option<[ReasoningDetailOut<'a>; 1]>,
}

/// One entry of an assistant message's `reasoning_details` (OpenRouter's
/// convention, which its clients and SDKs send back on the next turn): the
/// reasoning a provider returned in a form it takes back — a reasoning item
/// of OpenAI's Responses API, kept encrypted
/// (`protocol::responses_upstream`), or an Anthropic thinking block with
/// its signature, or a redacted one (`protocol::anthropic`).
#[derive(Serialize, Debug, Clone, Copy)]
pub struct ReasoningDetailOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a str>,
    pub format: &'static str,
    pub index: usize,
}

/// [`ReasoningDetailOut::kind`] of reasoning kept encrypted.
pub const ENCRYPTED_REASONING: &str = "reasoning.encrypted";
/// [`ReasoningDetailOut::kind`] of reasoning in plain text.
pub const TEXT_REASONING: &str = "reasoning.text";
/// [`ReasoningDetailOut::format`] of a reasoning item of OpenAI's Responses API.
pub const RESPONSES_REASONING_FORMAT: &str = "openai-responses-v1";
/// [`ReasoningDetailOut::format`] of an Anthropic thinking block.
pub const ANTHROPIC_REASONING_FORMAT: &str = "anthropic-claude-v1";

/// What starts a `reasoning_details` entry carried as an opaque string
/// ([`carry`]).
const CARRIED: &str = "aipipe-reasoning-v1.";

/// One `reasoning_details` entry of an answer as an opaque string, for a
/// client protocol that has a place only for its own kind of reasoning: the
/// `encrypted_content` of a Responses API `reasoning` item, the `signature`
/// of an Anthropic `thinking` block. The client sends it back as it got it,
/// and [`carried`] gives the entry again, so the model that reasoned gets
/// its reasoning back whatever the client speaks (filter/README.md,
/// "Client protocols"). The entry's JSON in URL-safe base64 behind a
/// prefix; its `index` is left out (it is the entry's place on the way back).
pub fn carry(detail: &Value) -> String {
    use base64::Engine as _;
    let mut detail = detail.clone();
    if let Some(d) = detail.as_object_mut() {
        d.remove("index");
    }
    let json = serde_json::to_vec(&detail).unwrap_or_default();
    let mut out = String::with_capacity(CARRIED.len() + json.len() * 4 / 3 + 4);
    out.push_str(CARRIED);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(json, &mut out);
    out
}

/// The `reasoning_details` entry [`carry`] wrote into `opaque`; None for a
/// string it did not write (a provider's own signature or encrypted
/// reasoning), or one that does not decode to a JSON object.
pub fn carried(opaque: &str) -> Option<Value> {
    use base64::Engine as _;
    let encoded = opaque.strip_prefix(CARRIED)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice::<Value>(&json)
        .ok()
        .filter(Value::is_object)
}

/// `opaque` is a string [`carry`] wrote.
pub fn is_carried(opaque: &str) -> bool {
    opaque.starts_with(CARRIED)
}

/// The readable text of a `reasoning_details` entry, if it has one.
pub fn reasoning_text(detail: &Value) -> &str {
    detail.get("text").and_then(Value::as_str).unwrap_or("")
}

impl<'a> ReasoningDetailOut<'a> {
    /// The `index`-th reasoning item of a Responses API answer, `id` with
    /// its `encrypted_content` as `data`.
    pub fn encrypted(index: usize, id: &'a str, data: &'a str) -> Self {
        ReasoningDetailOut {
            kind: ENCRYPTED_REASONING,
            id: Some(id),
            text: None,
            signature: None,
            data: Some(data),
            format: RESPONSES_REASONING_FORMAT,
            index,
        }
    }

    /// The `index`-th block of an Anthropic answer's reasoning: a thinking
    /// block, its text and signature.
    pub fn thinking(index: usize, text: &'a str, signature: &'a str) -> Self {
        ReasoningDetailOut {
            kind: TEXT_REASONING,
            id: None,
            text: Some(text),
            signature: Some(signature),
            data: None,
            format: ANTHROPIC_REASONING_FORMAT,
            index,
        }
    }

    /// The `index`-th block of an Anthropic answer's reasoning: a redacted
    /// thinking block, its `data`.
    pub fn redacted(index: usize, data: &'a str) -> Self {
        ReasoningDetailOut {
            kind: ENCRYPTED_REASONING,
            id: None,
            text: None,
            signature: None,
            data: Some(data),
            format: ANTHROPIC_REASONING_FORMAT,
            index,
        }
    }
}

#[derive(Serialize)]
pub struct ToolDeltaOut<'a> {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
pub struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

impl<'a> ToolDeltaOut<'a> {
    /// The first chunk of a tool call: its id and name, no arguments yet.
    pub fn start(index: usize, id: &'a str, name: &'a str) -> Self {
        ToolDeltaOut {
            index,
            id: Some(id),
            kind: Some("function"),
            function: FunctionDeltaOut {
                name: Some(name),
                arguments: "",
            },
        }
    }

    /// A fragment of a tool call's arguments.
    pub fn arguments(index: usize, fragment: &'a str) -> Self {
        ToolDeltaOut {
            index,
            id: None,
            kind: None,
            function: FunctionDeltaOut {
                name: None,
                arguments: fragment,
            },
        }
    }
}

/// Appends `chunk` as one SSE event (`data: …`); nothing when it cannot be
/// encoded.
pub fn write_chunk(chunk: &ChunkOut<'_>, out: &mut Vec<u8>) {
    let mark = out.len();
    out.extend_from_slice(b"data: ");
    match serde_json::to_writer(&mut *out, chunk) {
        Ok(()) => out.extend_from_slice(b"\n\n"),
        Err(e) => {
            out.truncate(mark);
            log::warn!("could not encode a chat.completion.chunk: {e}");
        }
    }
}

// ------------------------------------------------------------- answers

/// A whole `chat.completion`: what the translations read of it.
#[derive(Deserialize)]
pub struct Completion<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(borrow, default, deserialize_with = "nullable")]
    pub choices: Vec<Choice<'a>>,
    #[serde(default)]
    pub usage: Option<UsageDetails>,
}

impl<'a> Completion<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Completion<'a>, TranslateError> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(TranslateError(
                "the provider's answer is not a JSON object".into(),
            ));
        }
        serde_json::from_slice(body).map_err(|e| {
            TranslateError(format!(
                "the provider's answer is not a readable chat completion: {e}"
            ))
        })
    }

    /// The first choice: the only one these protocols can express.
    pub fn into_choice(self) -> Result<(Option<String>, Choice<'a>), TranslateError> {
        let id = self.id;
        match self.choices.into_iter().next() {
            Some(c) => Ok((id, c)),
            None => Err(TranslateError(
                "the provider's answer has no choices".into(),
            )),
        }
    }
}

#[derive(Deserialize)]
pub struct Choice<'a> {
    #[serde(borrow, default)]
    pub message: Option<AnswerMessage<'a>>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct AnswerMessage<'a> {
    #[serde(borrow, default)]
    pub content: Option<TextOr<'a, Vec<TextPart>>>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tool_calls: Vec<AnswerToolCall>,
    /// Reasoning the provider returned to be sent back (OpenRouter's
    /// convention; this gateway's Claude and Responses API translations).
    #[serde(default, deserialize_with = "nullable")]
    pub reasoning_details: Vec<Value>,
}

impl AnswerMessage<'_> {
    /// The text of the answer, whether sent as a string or as parts.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(TextOr::Text(t)) => t.to_string(),
            Some(TextOr::Other(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        }
    }
}

#[derive(Deserialize)]
pub struct TextPart {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize)]
pub struct AnswerToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<Function>,
}

#[derive(Deserialize, Default)]
pub struct Function {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// One `chat.completion.chunk` (or the error object a provider may send
/// in its place).
#[derive(Deserialize)]
pub struct Chunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<UsageDetails>,
    #[serde(default)]
    pub error: Option<Value>,
}

impl Chunk {
    /// The message of an error chunk, if this is one.
    pub fn error_message(&self) -> Option<String> {
        let error = self.error.as_ref().filter(|e| !e.is_null())?;
        Some(
            error
                .get("message")
                .or(Some(error))
                .and_then(Value::as_str)
                .unwrap_or("The upstream provider reported an error.")
                .to_owned(),
        )
    }
}

#[derive(Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tool_calls: Vec<ChunkToolCall>,
    #[serde(default, deserialize_with = "nullable")]
    pub reasoning_details: Vec<Value>,
}

#[derive(Deserialize)]
pub struct ChunkToolCall {
    #[serde(default)]
    pub index: u64,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<Function>,
}

/// The part of `usage` that [`openai_usage`] does not read.
#[derive(Deserialize, Default)]
pub struct UsageDetails {
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Token counts of an answer or chunk, with the reasoning tokens among
/// the completion tokens. None when it carries no readable usage.
pub fn usage(json: &[u8], details: Option<&UsageDetails>) -> Option<(Tokens, u64)> {
    let tokens = openai_usage(json)?;
    let reasoning = details
        .and_then(|d| d.completion_tokens_details.as_ref())
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    Some((tokens, reasoning))
}

// ------------------------------------------------------------- helpers

/// Parses a client's request body, with the messages every protocol
/// gives for an empty body, a non-object or bad JSON.
pub fn parse_request<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::BadRequest("request body is empty".into())),
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "request body must be a JSON object: {what}"
            )));
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        let why = if e.is_syntax() || e.is_eof() {
            "request body is not valid JSON"
        } else {
            "invalid request body"
        };
        ApiError::BadRequest(format!("{why}: {e}"))
    })
}

/// `null` read as the type's default (providers and clients send
/// `"tool_calls": null` and the like).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A field that is either a string or something else (a list of parts,
/// a list of items, an object): `input`, `content`, `tool_choice`, ….
#[derive(Debug)]
pub enum TextOr<'a, T> {
    Text(Cow<'a, str>),
    Other(T),
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for TextOr<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = TextOr<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a list or an object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TextOr::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                T::deserialize(SeqAccessDeserializer::new(seq)).map(TextOr::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(TextOr::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// ---------------------------------------------------------------- usage

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// Moonshot reports cached tokens at the top level of `usage`.
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    /// OpenRouter reports prompt-cache writes here.
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

/// The `usage` of an OpenAI-format answer (a whole `chat.completion` body,
/// or one streamed chunk). None when absent, null or unreadable.
pub fn openai_usage(json: &[u8]) -> Option<Tokens> {
    let u = serde_json::from_slice::<WithUsage>(json).ok()?.usage?;
    let details = u.prompt_tokens_details;
    let cached = details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .or(u.cached_tokens)
        .unwrap_or(0);
    Some(Tokens {
        prompt: u.prompt_tokens,
        completion: u.completion_tokens,
        cached,
        cache_write: details.and_then(|d| d.cache_write_tokens).unwrap_or(0),
    })
}

/// Usage of a streamed OpenAI-format answer: feed it each event's data; the
/// chunk that carries `usage` (sent last when `include_usage` is set) wins.
#[derive(Debug, Default)]
pub struct StreamUsage {
    pub tokens: Option<Tokens>,
}

impl StreamUsage {
    pub fn on_event(&mut self, data: &[u8]) {
        // Only the few events that mention a usage object are parsed.
        if (contains(data, b"\"usage\":{") || contains(data, b"\"usage\": {"))
            && let Some(t) = openai_usage(data)
        {
            self.tokens = Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_plain_and_streamed_answers() {
        let plain = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            openai_usage(plain),
            Some(Tokens {
                prompt: 12,
                completion: 30,
                cached: 4,
                cache_write: 0
            })
        );
        let moonshot = br#"{"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,"cached_tokens":2}}"#;
        assert_eq!(openai_usage(moonshot).map(|t| t.cached), Some(2));
        let openrouter = br#"{"usage":{"prompt_tokens":50,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":10,"cache_write_tokens":30}}}"#;
        assert_eq!(
            openai_usage(openrouter).map(|t| (t.cached, t.cache_write)),
            Some((10, 30))
        );
        assert_eq!(openai_usage(br#"{"usage":null}"#), None);
        assert_eq!(openai_usage(b"not json"), None);

        let mut s = StreamUsage::default();
        s.on_event(br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#);
        assert_eq!(s.tokens, None);
        s.on_event(br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"#);
        s.on_event(b"[DONE]");
        assert_eq!(
            s.tokens,
            Some(Tokens {
                prompt: 7,
                completion: 9,
                cached: 0,
                cache_write: 0
            })
        );
    }

    #[test]
    fn a_carried_reasoning_entry_comes_back_whole_and_nothing_else_does() {
        let detail = serde_json::json!({"type": "reasoning.text", "text": "Ünïcode \"quoted\"",
            "signature": "EqQB/+=", "format": "anthropic-claude-v1", "index": 3});
        let opaque = carry(&detail);
        assert!(is_carried(&opaque));
        assert!(
            opaque
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        let mut back = carried(&opaque).unwrap();
        assert_eq!(back.get("index"), None, "its place is set on the way back");
        back["index"] = 3.into();
        assert_eq!(back, detail);
        for foreign in [
            "EqQBCgIYAhIM",
            "gAAAA-openai",
            "aipipe-reasoning-v1.!!",
            "aipipe-reasoning-v1.WzFd",
            "",
        ] {
            assert_eq!(carried(foreign), None, "{foreign}");
        }
    }
}
