//! A targeted, borrowed parse of OpenAI Chat Completions bodies.
//!
//! Only what routing needs is typed: the messages' roles and text, the
//! presence of tools, images and a JSON schema, `max_tokens` and `stream`.
//! Strings borrow from the body unless they contain escapes; every other field
//! is skipped by serde without building a value. The body itself is never
//! re-serialised: `model` is kept as a raw slice so the rewrite replaces just
//! that span (see [`ChatRequest::model_span`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
struct Wire<'a> {
    /// Raw even when `null`, so its span is known for the rewrite.
    #[serde(borrow, default, deserialize_with = "raw_always")]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    tools: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    functions: Option<Vec<IgnoredAny>>,
    #[serde(borrow, default)]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    top_p: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    top_k: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    seed: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    stop: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    frequency_penalty: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    presence_penalty: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    logit_bias: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    logprobs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    top_logprobs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    function_call: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    thinking: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_always")]
    output_config: Option<&'a RawValue>,
}

/// The `reasoning_effort` a request sets, as far as a model that takes
/// tools and sampling parameters only without reasoning cares
/// (`catalog::Capabilities::reasoning_effort_none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Effort {
    /// Absent or `null`: the model's default (the filter sends `"none"` to
    /// such a model).
    #[default]
    Unset,
    /// `"none"`.
    None,
    /// Any other value (`"low"`, `"medium"`, …): the model reasons.
    Reasons,
}

/// Anthropic's `output_config.effort` levels a `reasoning_effort` maps to
/// (`catalog::Capabilities::output_effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputEffort {
    Low,
    Medium,
    High,
    XHigh,
}

impl OutputEffort {
    /// The level for a `reasoning_effort` (raw JSON) that asks for
    /// reasoning: `minimal` and `low` → low, `medium`, `high`, `xhigh` as
    /// they are; None for `"none"`, absent and unknown values.
    fn of(raw: Option<&RawValue>) -> Option<OutputEffort> {
        match raw.map(RawValue::get)? {
            r#""minimal""# | r#""low""# => Some(OutputEffort::Low),
            r#""medium""# => Some(OutputEffort::Medium),
            r#""high""# => Some(OutputEffort::High),
            r#""xhigh""# => Some(OutputEffort::XHigh),
            _ => None,
        }
    }

    /// The effort an Anthropic `thinking` budget asks for: under 4,096
    /// tokens low, under 16,384 medium, more high (the budgets clients send
    /// for "think", "think hard" and "ultrathink" are about 4K, 10K and 32K).
    pub fn of_budget(budget_tokens: u64) -> OutputEffort {
        match budget_tokens {
            0..4096 => OutputEffort::Low,
            4096..16384 => OutputEffort::Medium,
            _ => OutputEffort::High,
        }
    }

    /// Its name, as `reasoning_effort` and `output_config.effort` write it.
    pub fn name(self) -> &'static str {
        match self {
            OutputEffort::Low => "low",
            OutputEffort::Medium => "medium",
            OutputEffort::High => "high",
            OutputEffort::XHigh => "xhigh",
        }
    }

    /// Anthropic's `output_config` member asking for it.
    pub fn output_config(self) -> &'static str {
        match self {
            OutputEffort::Low => r#"{"effort":"low"}"#,
            OutputEffort::Medium => r#"{"effort":"medium"}"#,
            OutputEffort::High => r#"{"effort":"high"}"#,
            OutputEffort::XHigh => r#"{"effort":"xhigh"}"#,
        }
    }
}

impl Effort {
    fn of(raw: Option<&RawValue>) -> Effort {
        match raw.map(RawValue::get) {
            None | Some("null") => Effort::Unset,
            Some(r#""none""#) => Effort::None,
            Some(_) => Effort::Reasons,
        }
    }
}

/// A raw member that is present and not `null`.
fn set(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|r| r.get() != "null")
}

/// Whether a Chat Completions `tool_choice` forces a tool call: `"required"`,
/// a named function, or `allowed_tools` in mode `required` (what the
/// Anthropic translation turns into `any` / `tool`). Anything else —
/// `auto`, `none`, a malformed value (the translation names it) — does not.
fn forces_a_tool(choice: &RawValue) -> bool {
    match serde_json::from_str::<serde_json::Value>(choice.get()) {
        Ok(serde_json::Value::String(s)) => s == "required",
        Ok(serde_json::Value::Object(o)) => match o.get("type").and_then(|t| t.as_str()) {
            Some("function") => true,
            Some("allowed_tools") => {
                o.get("allowed_tools")
                    .and_then(|a| a.get("mode"))
                    .and_then(|m| m.as_str())
                    == Some("required")
            }
            _ => false,
        },
        _ => false,
    }
}

/// Which of the sampling parameters `temperature`, `top_p` and `top_k` a
/// request sets: what is dropped for a model that refuses them
/// (`catalog::Capabilities::sampling_params`), named in the answer's
/// `x-aipipe-dropped-params`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sampling(u8);

impl Sampling {
    /// The parameters, in the order `names` lists them.
    pub const PARAMS: [&'static str; 3] = ["temperature", "top_p", "top_k"];

    /// From whether each of [`Self::PARAMS`] is set.
    pub fn of(set: [bool; 3]) -> Sampling {
        Sampling(bits(&set))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Anthropic's `thinking` and `output_config` as members of a Chat
/// Completions body (extensions a Chat client may send an Anthropic model):
/// bit 0 and bit 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions(u8);

impl Extensions {
    pub const NAMES: [&'static str; 2] = ["thinking", "output_config"];

    pub fn of(thinking: bool, output_config: bool) -> Extensions {
        Extensions(u8::from(thinking) | (u8::from(output_config) << 1))
    }

    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn thinking(self) -> bool {
        self.0 & 1 != 0
    }

    pub fn output_config(self) -> bool {
        self.0 & 2 != 0
    }
}

/// Which of the Chat Completions parameters that OpenAI's Responses API has
/// no equivalent for a request sets: what a body translated for it goes
/// without (`protocol::responses_upstream::chat_to_request`), and all but
/// `stop` what a body translated for Anthropic's Messages API goes without
/// (`protocol::anthropic::chat_to_messages`, where `stop` is
/// `stop_sequences`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatOnly(u8);

impl ChatOnly {
    pub const PARAMS: [&'static str; 7] = [
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
    ];

    /// From whether each of [`Self::PARAMS`] is set.
    pub fn of(set: [bool; 7]) -> ChatOnly {
        ChatOnly(bits(&set))
    }

    /// The set without `stop`.
    pub fn but_stop(self) -> ChatOnly {
        ChatOnly(self.0 & !1)
    }
}

/// Bit i set for each `set[i]` that is true (at most 8).
fn bits(set: &[bool]) -> u8 {
    set.iter()
        .enumerate()
        .fold(0, |bits, (i, &on)| bits | (u8::from(on) << i))
}

/// What an attempt's body goes without of what the client set, named in
/// the answer's `x-aipipe-dropped-params`: the sampling parameters of a
/// model that refuses them, a `reasoning_effort` the model does not take,
/// Anthropic's extensions to a model that refuses them
/// (`catalog::Capabilities`), and the Chat Completions parameters a body
/// sent over the Responses API goes without (`ChatOnly`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped(u16);

impl Dropped {
    /// Bit i of the set is `NAMES[i]`: `Sampling::PARAMS`,
    /// `reasoning_effort`, `Extensions::NAMES`, `ChatOnly::PARAMS`.
    pub const NAMES: [&'static str; 13] = {
        let mut names = [""; 13];
        let mut i = 0;
        while i < 3 {
            names[i] = Sampling::PARAMS[i];
            i += 1;
        }
        names[3] = "reasoning_effort";
        names[4] = Extensions::NAMES[0];
        names[5] = Extensions::NAMES[1];
        let mut i = 0;
        while i < 7 {
            names[Self::TABULATED + i] = ChatOnly::PARAMS[i];
            i += 1;
        }
        names
    };

    /// The sets without a `ChatOnly` parameter (every attempt but one over
    /// the Responses API) have their names written once per process.
    const TABULATED: usize = 6;

    pub fn new(sampling: Sampling, reasoning_effort: bool, extensions: Extensions) -> Dropped {
        Dropped(
            u16::from(sampling.0 & 7)
                | (u16::from(reasoning_effort) << 3)
                | (u16::from(extensions.0 & 3) << 4),
        )
    }

    /// The set with `chat_only` added.
    pub fn with_chat_only(self, chat_only: ChatOnly) -> Dropped {
        Dropped(self.0 | (u16::from(chat_only.0 & 0x7f) << Self::TABULATED))
    }

    /// The set with `extensions` added.
    pub fn with_extensions(self, extensions: Extensions) -> Dropped {
        Dropped(self.0 | (u16::from(extensions.0 & 3) << 4))
    }

    /// The extensions in the set.
    pub fn extensions(self) -> impl Iterator<Item = &'static str> {
        Extensions::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (16 << i) != 0)
            .map(|(_, name)| name)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// A sampling parameter, the reasoning effort or thinking went: the
    /// model's answer is not what the request asked for (the cache does not
    /// keep it). A `ChatOnly` parameter alone (a `seed` to a model without
    /// one, as before it was named) does not count.
    pub fn changes_the_answer(self) -> bool {
        self.0 & ((1 << Self::TABULATED) - 1) != 0
    }

    /// Any of the sampling parameters.
    pub fn sampling(self) -> bool {
        self.0 & 7 != 0
    }

    pub fn reasoning_effort(self) -> bool {
        self.0 & 8 != 0
    }

    /// The parameters, comma-separated in `NAMES` order
    /// (`temperature,reasoning_effort`): every combination of the first
    /// `TABULATED` is written once per process, so the answer's headers
    /// borrow it; a set with a `ChatOnly` parameter is written when asked.
    pub fn names(self) -> std::borrow::Cow<'static, str> {
        fn join(set: usize) -> String {
            let names: Vec<&str> = Dropped::NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| set & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            names.join(",")
        }
        static ALL: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| (0..1usize << Dropped::TABULATED).map(join).collect());
        match ALL.get(usize::from(self.0)) {
            Some(names) => std::borrow::Cow::Borrowed(names.as_str()),
            None => std::borrow::Cow::Owned(join(usize::from(self.0))),
        }
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Where a borrowed raw value sits in the body it was parsed from.
pub(crate) fn span_of(body: &[u8], raw: &RawValue) -> Option<(usize, usize)> {
    let text = raw.get();
    // `raw` borrows from `body`: its address gives its position.
    let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let span = (start, start.checked_add(text.len())?);
    (body.get(span.0..span.1)? == text.as_bytes()).then_some(span)
}

fn raw_always<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not `Cow::deserialize` (which always copies into a
        // String): every message's role is read, one allocation each.
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Role;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message role")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Role, E> {
                Ok(match s {
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "tool" => Role::Tool,
                    "function" => Role::Function,
                    other => {
                        return Err(E::custom(format_args!(
                            "unknown message role `{other}`, expected one of system, developer, user, assistant, tool"
                        )));
                    }
                })
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    pub role: Role,
    #[serde(borrow, default)]
    pub content: Content<'a>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    /// An assistant message's reasoning as a gateway returned it (OpenRouter's
    /// convention; this one's over OpenAI's Responses API): only a provider
    /// that reads it gets it (`plan::Plan::attempt`).
    #[serde(default)]
    reasoning_details: Option<IgnoredAny>,
}

impl Message<'_> {
    pub fn tool_call_count(&self) -> usize {
        self.tool_calls.as_ref().map_or(0, Vec::len)
    }

    pub fn has_reasoning_details(&self) -> bool {
        self.reasoning_details.is_some()
    }
}

/// Message content: a string, an array of parts, or absent/null (assistant
/// turns that only carry tool calls).
#[derive(Debug, Default)]
pub enum Content<'a> {
    #[default]
    None,
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Debug)]
pub enum Part<'a> {
    Text(Cow<'a, str>),
    Image,
    /// Audio, files and future part types: counted, not read.
    Other,
}

impl<'a> Content<'a> {
    /// Calls `f` on each text fragment of this content.
    pub fn for_each_text(&self, mut f: impl FnMut(&str)) {
        match self {
            Content::None => {}
            Content::Text(t) => f(t),
            Content::Parts(parts) => {
                for p in parts {
                    if let Part::Text(t) = p {
                        f(t);
                    }
                }
            }
        }
    }

    pub fn image_count(&self) -> usize {
        match self {
            Content::Parts(parts) => parts.iter().filter(|p| matches!(p, Part::Image)).count(),
            _ => 0,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(p) = seq.next_element::<WirePart<'a>>()? {
                    parts.push(match &*p.kind {
                        "text" | "input_text" => Part::Text(p.text.ok_or_else(|| {
                            de::Error::custom("content part of type `text` needs a string `text`")
                        })?),
                        "image_url" | "input_image" | "image" => Part::Image,
                        _ => Part::Other,
                    });
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct WirePart<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// What the client asked for in `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice<'a> {
    /// `"auto"`, absent or null: route by complexity.
    Auto,
    Named(Cow<'a, str>),
}

/// A parsed chat request, borrowing from the body it came from.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    pub model: ModelChoice<'a>,
    /// Byte range of the `model` value in the body, when present.
    pub model_span: Option<(usize, usize)>,
    /// Byte offset of the body's opening `{`.
    pub object_start: usize,
    pub messages: Vec<Message<'a>>,
    pub tool_count: usize,
    pub json_schema: bool,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// Byte range of the `stream_options` value, when present.
    pub stream_options_span: Option<(usize, usize)>,
    /// The client asked for the usage chunk of a stream.
    pub include_usage: bool,
    /// `temperature` 0 or a `seed`: the answer may be served from the cache
    /// (which checks the rest, see `cache::prepare`). Lets the filter skip
    /// the cache without reading the body again.
    pub deterministic: bool,
    /// The sampling parameters the request sets.
    pub sampling: Sampling,
    /// The Chat Completions parameters it sets that the Responses API has
    /// no equivalent for.
    pub chat_only: ChatOnly,
    /// The request forces a tool call (`tool_choice` `"required"` or a named
    /// function, with tools; or a legacy `function_call` naming one of its
    /// `functions`).
    pub forces_tool: bool,
    /// The conversation ends with an assistant message that has text and
    /// no tool calls: a prefill, which Anthropic continues (and the Claude
    /// 5.x models refuse: `Capabilities::assistant_prefill`).
    pub prefill: bool,
    /// The `reasoning_effort` it sets.
    pub effort: Effort,
    /// Which of Anthropic's `thinking` and `output_config` it sets
    /// (extensions a Chat body may carry to an Anthropic model); either is
    /// its own say on thinking (`catalog::Capabilities::disable_thinking`).
    pub extensions: Extensions,
    /// Its `reasoning_effort` as Anthropic's `output_config.effort`.
    pub output_effort: Option<OutputEffort>,
    /// It sets `max_tokens` / `max_completion_tokens` (not `null`): what a
    /// model that takes only the second gets renamed.
    pub sets_max_tokens: bool,
    pub sets_max_completion_tokens: bool,
}

/// A client error in the body: the message says exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl ChatRequest<'_> {
    pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ParseError> {
        #[cfg(test)]
        crate::counters::PARSES.with(|n| n.set(n.get() + 1));
        let object_start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .ok_or_else(|| ParseError("request body is empty".into()))?;
        if body.get(object_start) != Some(&b'{') {
            return Err(ParseError(
                "request body must be a JSON object: an OpenAI Chat Completions request".into(),
            ));
        }
        let wire: Wire<'_> = serde_json::from_slice(body).map_err(|e| {
            let what = if e.is_syntax() || e.is_eof() {
                "request body is not valid JSON"
            } else {
                "invalid request body"
            };
            ParseError(format!("{what}: {e}"))
        })?;

        let (model, model_span) = match wire.model {
            None => (ModelChoice::Auto, None),
            Some(raw) => {
                let text = raw.get();
                let span = span_of(body, raw)
                    .ok_or_else(|| ParseError("invalid request body: `model`".into()))?;
                let choice = if text == "null" {
                    ModelChoice::Auto
                } else {
                    let name: Cow<'_, str> = serde_json::from_str(text).map_err(|_| {
                        ParseError(format!(
                            "invalid request body: `model` must be a string, got {text}"
                        ))
                    })?;
                    if name == "auto" || name.is_empty() {
                        ModelChoice::Auto
                    } else {
                        ModelChoice::Named(name)
                    }
                };
                (choice, Some(span))
            }
        };
        let stream_options_span = match wire.stream_options {
            Some(raw) => Some(
                span_of(body, raw)
                    .ok_or_else(|| ParseError("invalid request body: `stream_options`".into()))?,
            ),
            None => None,
        };
        let include_usage = wire
            .stream_options
            .and_then(|raw| serde_json::from_str::<StreamOptions>(raw.get()).ok())
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        if wire.messages.is_empty() {
            return Err(ParseError(
                "invalid request body: `messages` must contain at least one message".into(),
            ));
        }
        let json_schema = wire
            .response_format
            .as_ref()
            .is_some_and(|f| f.kind == "json_schema");
        let tools = wire.tools.as_ref().map_or(0, Vec::len);
        let functions = wire.functions.as_ref().map_or(0, Vec::len);
        let tool_count = tools + functions;
        let forces_tool = (tools > 0 && wire.tool_choice.is_some_and(forces_a_tool))
            || (functions > 0
                && wire
                    .function_call
                    .is_some_and(|c| c.get().trim_start().starts_with('{')));
        let sampling = Sampling::of([wire.temperature, wire.top_p, wire.top_k].map(set));
        let prefill = wire.messages.last().is_some_and(|m| {
            let mut text = false;
            m.content.for_each_text(|t| text |= !t.trim().is_empty());
            m.role == Role::Assistant && m.tool_call_count() == 0 && text
        });
        Ok(ChatRequest {
            model,
            model_span,
            object_start,
            messages: wire.messages,
            tool_count,
            json_schema,
            max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            stream: wire.stream.unwrap_or(false),
            stream_options_span,
            include_usage,
            deterministic: wire.seed.is_some_and(|s| s.get() != "null")
                || wire
                    .temperature
                    .and_then(|t| t.get().parse::<f64>().ok())
                    .is_some_and(|t| t == 0.0),
            sampling,
            chat_only: ChatOnly::of(
                [
                    wire.stop,
                    wire.seed,
                    wire.frequency_penalty,
                    wire.presence_penalty,
                    wire.logit_bias,
                    wire.logprobs,
                    wire.top_logprobs,
                ]
                .map(set),
            ),
            forces_tool,
            prefill,
            effort: Effort::of(wire.reasoning_effort),
            output_effort: OutputEffort::of(wire.reasoning_effort),
            extensions: Extensions::of(set(wire.thinking), set(wire.output_config)),
            sets_max_tokens: wire.max_tokens.is_some(),
            sets_max_completion_tokens: wire.max_completion_tokens.is_some(),
        })
    }

    /// Whether any message carries an image part.
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(|m| m.content.image_count() > 0)
    }

    /// Whether the conversation uses tools: definitions, calls or results.
    /// The turns a scorer reads as what is asked: the latest user turn (the
    /// focus), and the index from which earlier user turns count as history
    /// (the `turns` before the focus; 0 when fewer).
    pub fn focus_and_history(&self, turns: usize) -> (Option<usize>, usize) {
        let focus = self.messages.iter().rposition(|m| m.role == Role::User);
        let history_from = self
            .messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.role == Role::User && Some(*i) != focus)
            .map(|(i, _)| i)
            .rev()
            .nth(turns.saturating_sub(1))
            .unwrap_or(0);
        (focus, history_from)
    }

    pub fn uses_tools(&self) -> bool {
        self.tool_count > 0
            || self
                .messages
                .iter()
                .any(|m| m.role == Role::Tool || m.tool_call_count() > 0)
    }

    /// Where the request's own fields sit in its body: enough to build the
    /// upstream edit for any model without parsing again.
    pub fn shape(&self) -> BodyShape {
        BodyShape {
            object_start: self.object_start,
            model_span: self.model_span,
            stream_options_span: self.stream_options_span,
            force_usage: self.stream && !self.include_usage,
        }
    }
}

/// The spans of a request body that an upstream edit touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyShape {
    /// Byte offset of the body's opening `{`.
    pub object_start: usize,
    /// Byte range of the `model` value, when present.
    pub model_span: Option<(usize, usize)>,
    /// Byte range of the `stream_options` value, when present.
    pub stream_options_span: Option<(usize, usize)>,
    /// A stream whose usage chunk the client did not ask for: the upstream
    /// request asks for it (the filter hides it from the client again).
    pub force_usage: bool,
}

impl BodyShape {
    /// The smallest edit that makes `body` name `upstream_model` (and, with
    /// `force_usage`, ask for the stream's usage): drain the first `drain`
    /// bytes and put `prefix` in their place.
    ///
    /// Envoy's body API replaces a prefix cheaply, so the edit covers
    /// everything up to the end of the last changed span — a few bytes in the
    /// usual `{"model":"auto",…` layout — instead of the whole body.
    pub fn edit(&self, body: &[u8], upstream_model: &str) -> BodyEdit {
        let insert_at = self.object_start + 1;
        let quoted = json_string(upstream_model);
        // (start, end, replacement) — an insertion has start == end.
        let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::with_capacity(2);
        match self.model_span {
            Some((start, end)) => edits.push((start, end, quoted.into_bytes())),
            None => edits.push((
                insert_at,
                insert_at,
                format!("\"model\":{quoted},").into_bytes(),
            )),
        }
        if self.force_usage {
            match self.stream_options_span {
                Some((start, end)) => {
                    let mut options = body
                        .get(start..end)
                        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
                        .filter(serde_json::Value::is_object)
                        .unwrap_or_else(|| serde_json::json!({}));
                    options["include_usage"] = serde_json::Value::Bool(true);
                    edits.push((start, end, options.to_string().into_bytes()));
                }
                None => edits.push((
                    insert_at,
                    insert_at,
                    b"\"stream_options\":{\"include_usage\":true},".to_vec(),
                )),
            }
        }
        edits.sort_by_key(|e| e.0);
        let mut prefix = Vec::with_capacity(edits.last().map_or(0, |e| e.1) + 64);
        let mut cursor = 0;
        for (start, end, replacement) in edits {
            prefix.extend_from_slice(body.get(cursor..start).unwrap_or_default());
            prefix.extend_from_slice(&replacement);
            cursor = end.max(cursor);
        }
        BodyEdit {
            drain: cursor,
            prefix,
        }
    }
}

/// Replace the first `drain` bytes of a body with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyEdit {
    pub drain: usize,
    pub prefix: Vec<u8>,
}

impl BodyEdit {
    pub fn new_len(&self, old_len: usize) -> usize {
        old_len - self.drain.min(old_len) + self.prefix.len()
    }

    /// The edited body (tests and the explain API; the filter edits in place).
    pub fn apply(&self, body: &[u8]) -> Vec<u8> {
        let mut out = self.prefix.clone();
        out.extend_from_slice(body.get(self.drain..).unwrap_or_default());
        out
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// `body`, a JSON object, without its top-level members named in `names`:
/// the others are kept as written and in their order. Used to drop the
/// sampling parameters a model refuses ([`Sampling`]).
pub fn without_members(body: &[u8], names: &[&str]) -> Result<Vec<u8>, ParseError> {
    rewrite_members(
        body,
        &Rewrite {
            drop: names.to_vec(),
            ..Rewrite::default()
        },
    )
}

/// How [`rewrite_members`] changes a body's top-level members: what a
/// model gets written differently from what the client sent
/// (`catalog::Capabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite<'a> {
    /// Left out.
    pub drop: Vec<&'a str>,
    /// Renamed (from, to), the value kept where it was.
    pub rename: Vec<(&'a str, &'a str)>,
    /// Appended (name, raw JSON value), replacing a member of that name.
    pub add: Vec<(&'a str, &'a str)>,
    /// Left out of every message of `messages`.
    pub drop_from_messages: Vec<&'a str>,
}

impl Rewrite<'_> {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.rename.is_empty()
            && self.add.is_empty()
            && self.drop_from_messages.is_empty()
    }
}

/// The members of a JSON object, raw and in their order.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    out.push(member);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Appends `"key":` to an object being written (`out` ends inside it).
fn write_key(out: &mut Vec<u8>, key: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.extend_from_slice(json_string(key).as_bytes());
    out.push(b':');
}

/// Appends `"key":value` to an object being written.
fn write_member(out: &mut Vec<u8>, key: &str, value: &str) {
    write_key(out, key);
    out.extend_from_slice(value.as_bytes());
}

/// Appends `messages` without the members `drop` names in any message; a
/// message that is not an object is kept as written.
fn drop_from_messages(
    out: &mut Vec<u8>,
    messages: &RawValue,
    drop: &[&str],
) -> Result<(), ParseError> {
    let list: Vec<&RawValue> = serde_json::from_str(messages.get())
        .map_err(|e| ParseError(format!("invalid `messages`: {e}")))?;
    out.push(b'[');
    for (i, message) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match serde_json::from_str::<Members<'_>>(message.get()) {
            Ok(members) => {
                out.push(b'{');
                for (key, value) in members
                    .0
                    .iter()
                    .filter(|(k, _)| !drop.contains(&k.as_str()))
                {
                    write_member(out, key, value.get());
                }
                out.push(b'}');
            }
            Err(_) => out.extend_from_slice(message.get().as_bytes()),
        }
    }
    out.push(b']');
    Ok(())
}

/// `body`, a JSON object, rewritten by `rewrite`: the members it does not
/// touch are kept as written and in their order.
pub fn rewrite_members(body: &[u8], rewrite: &Rewrite<'_>) -> Result<Vec<u8>, ParseError> {
    let members: Members<'_> = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("invalid request body: {e}")))?;
    let mut out = Vec::with_capacity(body.len());
    out.push(b'{');
    for (key, value) in members.0.iter().filter(|(k, _)| {
        !rewrite.drop.contains(&k.as_str()) && !rewrite.add.iter().any(|(a, _)| a == k)
    }) {
        let key = rewrite
            .rename
            .iter()
            .find(|(from, _)| from == key)
            .map_or(key.as_str(), |(_, to)| to);
        if key == "messages" && !rewrite.drop_from_messages.is_empty() {
            write_key(&mut out, key);
            drop_from_messages(&mut out, value, &rewrite.drop_from_messages)?;
        } else {
            write_member(&mut out, key, value.get());
        }
    }
    for (key, value) in &rewrite.add {
        write_member(&mut out, key, value);
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChatRequest<'_>, ParseError> {
        ChatRequest::parse(s.as_bytes())
    }

    /// A prefill is a final assistant message with text and no tool
    /// calls: a whitespace-only or tool-calling last turn is not one.
    #[test]
    fn a_prefill_is_a_final_assistant_message_with_text() {
        let prefill = |last: &str| {
            parse(&format!(
                r#"{{"messages":[{{"role":"user","content":"x"}},{last}]}}"#
            ))
            .unwrap()
            .prefill
        };
        assert!(prefill(r#"{"role":"assistant","content":"The answer is"}"#));
        assert!(prefill(
            r#"{"role":"assistant","content":[{"type":"text","text":"{"}]}"#
        ));
        for not in [
            r#"{"role":"user","content":"y"}"#,
            r#"{"role":"assistant","content":"  "}"#,
            r#"{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}"#,
            r#"{"role":"assistant","content":"x"},{"role":"tool","tool_call_id":"c","content":"r"}"#,
        ] {
            assert!(!prefill(not), "{not}");
        }
    }

    /// What a model that cannot force a tool must not get, and only that:
    /// `"required"`, a named function or `allowed_tools` in mode required,
    /// with tools; a legacy `function_call` naming a function.
    #[test]
    fn a_forced_tool_choice_is_read_in_each_of_its_forms() {
        let tools = r#""tools":[{"type":"function","function":{"name":"f"}}]"#;
        let forces = |rest: &str| {
            parse(&format!(
                r#"{{"messages":[{{"role":"user","content":"x"}}],{rest}}}"#
            ))
            .unwrap()
            .forces_tool
        };
        for forced in [
            format!(r#"{tools},"tool_choice":"required""#),
            format!(r#"{tools},"tool_choice":{{"type":"function","function":{{"name":"f"}}}}"#),
            format!(
                r#"{tools},"tool_choice":{{"type":"allowed_tools","allowed_tools":{{"mode":"required","tools":[]}}}}"#
            ),
            r#""functions":[{"name":"f"}],"function_call":{"name":"f"}"#.to_owned(),
        ] {
            assert!(forces(&forced), "{forced}");
        }
        for free in [
            format!(r#"{tools},"tool_choice":"auto""#),
            format!(r#"{tools},"tool_choice":"none""#),
            format!(r#"{tools},"tool_choice":null"#),
            format!(
                r#"{tools},"tool_choice":{{"type":"allowed_tools","allowed_tools":{{"mode":"auto"}}}}"#
            ),
            format!(r#"{tools},"tool_choice":7"#),
            r#""tool_choice":"required""#.to_owned(), // no tools: nothing to force
            r#""functions":[{"name":"f"}],"function_call":"auto""#.to_owned(),
        ] {
            assert!(!forces(&free), "{free}");
        }
    }

    #[test]
    fn the_sampling_parameters_set_are_named_in_order() {
        let sampling = |rest: &str| {
            parse(&format!(
                r#"{{"messages":[{{"role":"user","content":"x"}}]{rest}}}"#
            ))
            .unwrap()
            .sampling
        };
        assert!(sampling("").is_empty());
        assert!(sampling(r#","temperature":null,"top_p":null"#).is_empty());
        let names = |rest: &str| Dropped::new(sampling(rest), false, Extensions::default()).names();
        assert_eq!(
            names(r#","top_p":0.9,"temperature":1"#),
            "temperature,top_p"
        );
        assert_eq!(names(r#","top_k":3"#), "top_k");
        assert_eq!(
            names(r#","top_k":3,"temperature":0,"top_p":1"#),
            "temperature,top_p,top_k"
        );
        for bits in 0..64u16 {
            let s = Sampling::of([bits & 1 != 0, bits & 2 != 0, bits & 4 != 0]);
            let e = Extensions::of(bits & 16 != 0, bits & 32 != 0);
            let d = Dropped::new(s, bits & 8 != 0, e);
            let expected: Vec<&str> = Dropped::NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(d.names(), expected.join(","), "{bits}");
            assert_eq!(d.is_empty(), bits == 0);
            assert_eq!(d.sampling(), !s.is_empty());
        }
        assert_eq!(&Dropped::NAMES[..3], &Sampling::PARAMS[..]);
        assert_eq!(&Dropped::NAMES[4..6], &Extensions::NAMES[..]);
        assert_eq!(&Dropped::NAMES[6..], &ChatOnly::PARAMS[..]);

        // The parameters the Responses API has no equivalent for are named
        // after the others, whatever the order in the body (null is unset).
        let chat_only = |rest: &str| {
            parse(&format!(
                r#"{{"messages":[{{"role":"user","content":"x"}}]{rest}}}"#
            ))
            .unwrap()
            .chat_only
        };
        assert_eq!(
            chat_only(r#","seed":null,"logprobs":null"#),
            ChatOnly::default()
        );
        let d = Dropped::new(sampling(r#","temperature":1"#), false, Extensions::default())
            .with_chat_only(chat_only(
                r#","top_logprobs":2,"stop":["x"],"seed":1,"frequency_penalty":0.1,"presence_penalty":0,"logit_bias":{},"logprobs":true"#,
            ));
        assert_eq!(
            d.names(),
            "temperature,stop,seed,frequency_penalty,presence_penalty,logit_bias,logprobs,top_logprobs"
        );
        assert_eq!(
            Dropped::default()
                .with_chat_only(chat_only(r#","stop":"\n""#))
                .names(),
            "stop"
        );

        // Anthropic's extensions, as a Chat body sets them (null is unset).
        let both = parse(
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":1,"thinking":{"type":"enabled","budget_tokens":1024},"output_config":{"effort":"low"}}"#,
        )
        .unwrap();
        let d = Dropped::new(both.sampling, false, both.extensions);
        assert_eq!(d.names(), "temperature,thinking,output_config");
        assert_eq!(
            d.extensions().collect::<Vec<_>>(),
            ["thinking", "output_config"]
        );
        let one = parse(
            r#"{"messages":[{"role":"user","content":"x"}],"thinking":{"type":"disabled"},"output_config":null}"#,
        )
        .unwrap();
        assert!(one.extensions.any());
        let d = Dropped::new(one.sampling, true, one.extensions);
        assert_eq!(d.names(), "reasoning_effort,thinking");
        assert_eq!(d.extensions().collect::<Vec<_>>(), ["thinking"]);
    }

    #[test]
    fn members_are_dropped_and_the_rest_kept_as_written() {
        let body = br#" {"model":"m","temperature":0.70,"messages":[{"role":"user","content":"a\"b"}],"top_k":5,"x":{"top_p":1},"top_p":1e0}"#;
        let out = without_members(body, &Sampling::PARAMS).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":"a\"b"}],"x":{"top_p":1}}"#
        );
        assert_eq!(without_members(b"{}", &["a"]).unwrap(), b"{}");
        assert!(without_members(b"[1]", &["a"]).is_err());
        assert!(without_members(b"{\"a\":", &["a"]).is_err());
    }

    #[test]
    fn deterministic_means_temperature_zero_or_a_seed() {
        let det = |extra: &str| {
            let body = format!(r#"{{"messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
            ChatRequest::parse(body.as_bytes()).unwrap().deterministic
        };
        assert!(det(r#","temperature":0"#));
        assert!(det(r#","temperature":0.0"#));
        assert!(det(r#","seed":7"#));
        assert!(det(r#","temperature":0.7,"seed":1"#));
        assert!(!det(""));
        assert!(!det(r#","temperature":0.2"#));
        assert!(!det(r#","seed":null"#));
        assert!(!det(r#","temperature":"0""#));
    }

    #[test]
    fn parses_string_and_part_content_borrowing_when_unescaped() {
        let body = r#"{"model":"auto","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"look\nhere"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],
            "max_tokens":50,"stream":true,"temperature":0.2,"extra":{"deep":[1,2,{"x":null}]}}"#;
        let r = parse(body).unwrap();
        assert_eq!(r.model, ModelChoice::Auto);
        assert_eq!(r.messages.len(), 2);
        assert!(matches!(
            &r.messages[0].content,
            Content::Text(Cow::Borrowed("be brief"))
        ));
        let mut texts = vec![];
        r.messages[1]
            .content
            .for_each_text(|t| texts.push(t.to_owned()));
        assert_eq!(texts, ["look\nhere"]);
        assert!(r.has_images());
        assert_eq!(r.max_tokens, Some(50));
        assert!(r.stream);
        assert!(!r.uses_tools());
    }

    #[test]
    fn tools_tool_calls_and_schema_are_seen() {
        let body = r#"{"messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"}],
            "tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],
            "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}},
            "max_completion_tokens":99}"#;
        let r = parse(body).unwrap();
        assert_eq!(r.tool_count, 1);
        assert!(r.uses_tools());
        assert!(r.json_schema);
        assert_eq!(r.max_tokens, Some(99));
        assert_eq!(r.messages[1].tool_call_count(), 1);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| parse(s).unwrap_err().0;
        assert_eq!(e(""), "request body is empty");
        assert!(e("[1]").contains("must be a JSON object"));
        assert!(e("{\"messages\": [").starts_with("request body is not valid JSON"));
        assert!(e("{\"model\":\"auto\"}").contains("missing field `messages`"));
        assert!(e("{\"messages\":[]}").contains("at least one message"));
        assert!(
            e("{\"messages\":\"hi\"}").contains("invalid type: string \"hi\", expected a sequence")
        );
        assert!(
            e("{\"messages\":[{\"role\":\"user\",\"content\":5}]}")
                .contains("expected a string or an array of content parts")
        );
        assert!(
            e("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}")
                .contains("unknown message role `wizard`")
        );
        assert!(
            e("{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}")
                .contains("`model` must be a string, got 7")
        );
        assert!(
            e("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"ten\"}")
                .contains("invalid type: string \"ten\"")
        );
        assert!(
            e("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing")
                .contains("trailing characters")
        );
    }

    #[test]
    fn model_rewrite_touches_only_the_prefix_and_keeps_valid_json() {
        let cases = [
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#,
            r#"  {"messages":[{"role":"user","content":"hi"}],"model" : null }"#,
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            "{\"model\":\"\\u0061uto\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        ];
        for body in cases {
            let r = parse(body).unwrap();
            let shape = BodyShape {
                force_usage: false,
                ..r.shape()
            };
            let edit = shape.edit(body.as_bytes(), "claude-sonnet-4-5");
            let out = edit.apply(body.as_bytes());
            assert_eq!(out.len(), edit.new_len(body.len()));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["model"], "claude-sonnet-4-5", "{body}");
            assert_eq!(v["messages"][0]["content"], "hi");
        }
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let edit = parse(body).unwrap().shape().edit(body.as_bytes(), "m");
        assert_eq!(edit.drain, 15);
        assert_eq!(edit.prefix, b"{\"model\":\"m\"");
    }

    #[test]
    fn usage_is_forced_on_streams_that_lack_it_and_only_there() {
        let cases = [
            (
                r#"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                true,
            ),
            (
                r#"{"stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"x":1}}"#,
                true,
            ),
            (
                r#"{"model":"auto","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}"#,
                true,
            ),
            (
                r#"{"model":"auto","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
                false,
            ),
            (
                r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#,
                false,
            ),
        ];
        for (body, forced) in cases {
            let r = parse(body).unwrap();
            assert_eq!(r.shape().force_usage, forced, "{body}");
            let edit = r.shape().edit(body.as_bytes(), "m");
            let out = edit.apply(body.as_bytes());
            assert_eq!(out.len(), edit.new_len(body.len()));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["model"], "m", "{body}");
            let before: serde_json::Value = serde_json::from_str(body).unwrap();
            if forced {
                assert_eq!(v["stream_options"]["include_usage"], true, "{body}");
                if let Some(x) = before["stream_options"].get("x") {
                    assert_eq!(&v["stream_options"]["x"], x, "other options are kept");
                }
            } else {
                assert_eq!(v["stream_options"], before["stream_options"], "{body}");
            }
            assert_eq!(v["messages"], before["messages"]);
        }
    }

    #[test]
    fn escaped_model_names_resolve() {
        let r = parse("{\"model\":\"gpt-4o\\u002dmini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}")
            .unwrap();
        assert_eq!(
            r.model,
            ModelChoice::Named(Cow::Owned("gpt-4o-mini".into()))
        );
    }

    #[test]
    fn members_are_renamed_and_added_in_place() {
        let body = br#"{"model":"m","max_tokens":5,"reasoning_effort":null,"messages":[]}"#;
        let out = rewrite_members(
            body,
            &Rewrite {
                drop: vec![],
                rename: vec![("max_tokens", "max_completion_tokens")],
                add: vec![("reasoning_effort", r#""none""#)],
                drop_from_messages: vec![],
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"m","max_completion_tokens":5,"messages":[],"reasoning_effort":"none"}"#
        );
        assert!(Rewrite::default().is_empty());
    }

    /// A member left out of every message: the rest of each message, and
    /// messages that are not objects, stay as written; the reader notices
    /// the member.
    #[test]
    fn a_member_is_left_out_of_every_message() {
        let body = br#"{"messages":[{"role":"user","content":"a"},
            {"role":"assistant","reasoning_details":[{"type":"reasoning.encrypted","data":"x"}],"content":"b" , "tool_calls":[]},
            7],"model":"m"}"#;
        let out = rewrite_members(
            body,
            &Rewrite {
                drop_from_messages: vec!["reasoning_details"],
                ..Rewrite::default()
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","tool_calls":[]},7],"model":"m"}"#
        );
        let parsed = |b: &[u8]| {
            ChatRequest::parse(b)
                .unwrap()
                .messages
                .iter()
                .map(Message::has_reasoning_details)
                .collect::<Vec<_>>()
        };
        let two = br#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","reasoning_details":[]}]}"#;
        assert_eq!(parsed(two), [false, true]);
    }

    #[test]
    fn the_reasoning_effort_is_read() {
        let effort = |v: &str| {
            let body = format!(r#"{{"messages":[{{"role":"user","content":"x"}}]{v}}}"#);
            ChatRequest::parse(body.as_bytes()).unwrap().effort
        };
        assert_eq!(effort(""), Effort::Unset);
        assert_eq!(effort(r#","reasoning_effort":null"#), Effort::Unset);
        assert_eq!(effort(r#","reasoning_effort":"none""#), Effort::None);
        assert_eq!(effort(r#","reasoning_effort":"minimal""#), Effort::Reasons);
    }
}
