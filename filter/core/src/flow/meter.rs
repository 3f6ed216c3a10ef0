//! Per-request accounting: watches the answer pass by (unbuffered), reads
//! its usage in either provider protocol, and makes the request's one usage
//! record when it ends. Time comes in as arguments.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::protocol::anthropic;
use crate::protocol::chat::{StreamUsage, openai_usage};
use crate::protocol::responses_upstream::{may_carry_usage, responses_usage};
use crate::protocol::{Protocol, Tokens};
use crate::sse::SseParser;
use crate::table::Model;
use crate::usage::{UsageRecord, cost_nusd};

/// A non-streamed answer is kept (to read its `usage`) up to this size.
const MAX_PLAIN_BODY: usize = 8 * 1024 * 1024;

fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// What one request's answer looked like. It reads the answer as the
/// provider sent it (before any translation), in any wire format.
pub struct Meter {
    pub start: SystemTime,
    pub stream: bool,
    pub complexity: Option<f64>,
    status: u16,
    first_byte: Option<SystemTime>,
    plain: Vec<u8>,
    plain_overflow: bool,
    sse: SseParser,
    openai: StreamUsage,
    anthropic: anthropic::StreamUsage,
    /// The answer comes from OpenAI's Responses API (`plan::Attempt::wire`):
    /// its stream's usage is read from `response.completed`, into
    /// `responses`. Other streams never look for it.
    reads_responses: bool,
    responses: Option<Tokens>,
    /// Pass-through: the model is only known from the answer.
    answer_model: Option<Option<String>>,
    /// Answered from the cache: nothing was spent.
    from_cache: bool,
    /// The request's prompt in estimated tokens, and the events a stream
    /// carried so far, and whether it ended: what a stream the client reset
    /// before the provider's usage arrived is estimated from.
    input_estimate: u64,
    events: u64,
    /// The most completion tokens the request allowed (`max_tokens`), if it
    /// said: an estimate never passes it.
    max_tokens: Option<u64>,
    ended: bool,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    message: Option<Box<Named>>,
}

/// The `model` an answer (or a request body) names (OpenAI: top level;
/// Anthropic's `message_start`: inside `message`).
pub(super) fn model_named(json: &[u8]) -> Option<String> {
    let n: Named = serde_json::from_slice(json).ok()?;
    n.model.or_else(|| n.message.and_then(|m| m.model))
}

impl Meter {
    pub fn new(start: SystemTime, stream: bool, complexity: Option<f64>) -> Self {
        Self {
            start,
            stream,
            complexity,
            status: 0,
            first_byte: None,
            plain: Vec::new(),
            plain_overflow: false,
            sse: SseParser::default(),
            openai: StreamUsage::default(),
            anthropic: anthropic::StreamUsage::default(),
            reads_responses: false,
            responses: None,
            answer_model: None,
            from_cache: false,
            input_estimate: 0,
            events: 0,
            max_tokens: None,
            ended: false,
        }
    }

    /// The meter of a routed request: its stream, complexity and prompt
    /// estimate from the plan.
    pub fn for_plan(start: SystemTime, plan: &crate::plan::Plan) -> Self {
        Self {
            input_estimate: plan.input_tokens(),
            max_tokens: plan.max_tokens,
            ..Self::new(start, plan.stream, plan.complexity())
        }
    }

    /// The meter of one attempt of a routed request: [`Meter::for_plan`],
    /// reading the answer in the attempt's wire format.
    pub fn for_attempt(start: SystemTime, plan: &crate::plan::Plan, wire: Protocol) -> Self {
        Self {
            reads_responses: wire == Protocol::Responses,
            ..Self::for_plan(start, plan)
        }
    }

    /// The answer came from the cache: status 200, no tokens, no cost.
    pub fn served_from_cache(&mut self, now: SystemTime) {
        self.status = 200;
        self.from_cache = true;
        self.first_byte_at(now);
    }

    /// A whole (non-streamed) answer as the provider sent it, when it was
    /// kept whole.
    pub fn plain_body(&self) -> Option<&[u8]> {
        (!self.stream && !self.plain_overflow).then_some(self.plain.as_slice())
    }

    /// For pass-through requests: also read which model answered.
    pub fn read_answer_model(&mut self) {
        self.answer_model = Some(None);
    }

    /// The answer's status (its headers arrived, or it came from a call).
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The answer's first byte is on its way to the client at `now`.
    pub fn first_byte_at(&mut self, now: SystemTime) {
        if self.first_byte.is_none() {
            self.first_byte = Some(now);
        }
    }

    /// Each response body chunk, as it passes at `now`.
    pub fn on_body(&mut self, chunk: &[u8], end_of_stream: bool, now: SystemTime) {
        if !chunk.is_empty() {
            self.first_byte_at(now);
        }
        if self.stream {
            let reads_responses = self.reads_responses;
            let (openai, anthropic, responses, model, events) = (
                &mut self.openai,
                &mut self.anthropic,
                &mut self.responses,
                &mut self.answer_model,
                &mut self.events,
            );
            let mut on_data = |data: &[u8]| {
                *events += 1;
                openai.on_event(data);
                anthropic.on_event(data);
                if reads_responses
                    && may_carry_usage(data)
                    && let Some(t) = responses_usage(data)
                {
                    *responses = Some(t);
                }
                if let Some(m @ None) = model {
                    *m = model_named(data);
                }
            };
            self.sse.feed(chunk, &mut on_data);
            if end_of_stream {
                self.sse.finish(&mut on_data);
                self.ended = true;
            }
        } else if self.plain.len() + chunk.len() <= MAX_PLAIN_BODY {
            self.plain.extend_from_slice(chunk);
        } else {
            self.plain_overflow = true;
        }
    }

    fn tokens(&self) -> Option<Tokens> {
        if self.from_cache {
            Some(Tokens::default())
        } else if self.stream {
            self.openai
                .tokens
                .or(self.responses)
                .or_else(|| self.anthropic.tokens())
        } else if self.plain_overflow {
            None
        } else {
            // A Responses API answer names itself (`"object":"response"`);
            // Anthropic's usage has the same field names.
            openai_usage(&self.plain)
                .or_else(|| responses_usage(&self.plain))
                .or_else(|| anthropic::anthropic_usage(&self.plain))
        }
    }

    /// The model a pass-through answer names, if it was asked to read it.
    pub fn answer_model(&self) -> Option<String> {
        match &self.answer_model {
            Some(Some(m)) => Some(m.clone()),
            Some(None) if !self.stream => model_named(&self.plain),
            _ => None,
        }
    }

    /// The record of this request, when it ends. `model` prices it; without
    /// one (a pass-through answer naming no catalog model) the cost is
    /// unknown and the record says its usage was not read.
    pub fn record(
        &self,
        id: &str,
        tenant: &str,
        who: Answered<'_>,
        end: SystemTime,
    ) -> UsageRecord {
        let tokens = self.tokens();
        // A stream cut before the provider's usage arrived (the client went
        // away) is charged an estimate, marked so: the prompt as the scorer
        // counted it, about one token per event that streamed.
        let estimated = tokens.is_none()
            && self.stream
            && !self.ended
            && !self.from_cache
            && who.model.is_some()
            && (200..400).contains(&self.status);
        let t = match tokens {
            Some(t) => t,
            None if estimated => Tokens {
                prompt: self.input_estimate,
                completion: self.max_tokens.map_or(self.events, |m| self.events.min(m)),
                ..Tokens::default()
            },
            None => Tokens::default(),
        };
        UsageRecord {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            provider: who.provider.to_owned(),
            model: who.model_id.to_owned(),
            status: self.status,
            prompt_tokens: t.prompt,
            completion_tokens: t.completion,
            cached_tokens: t.cached,
            cache_write_tokens: t.cache_write,
            cost_nusd: who.model.map_or(0, |m| cost_nusd(m, &t)),
            latency_ms: ms_between(self.start, end),
            ttft_ms: self.first_byte.map(|f| ms_between(self.start, f)),
            complexity: self.complexity,
            stream: self.stream,
            usage_parsed: tokens.is_some() && who.model.is_some(),
            ts_ms: self
                .start
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            failed_attempts: Vec::new(),
            cache_hit: self.from_cache,
            estimated,
            key_tag: who.key_tag.map(str::to_owned),
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: None,
        }
    }
}

/// Who answered a request, for its usage record.
pub struct Answered<'a> {
    pub provider: &'a str,
    pub model_id: &'a str,
    /// The catalog entry that prices it.
    pub model: Option<&'a Model>,
    /// The tag of the tenant's key it was sent with.
    pub key_tag: Option<&'a str>,
}
