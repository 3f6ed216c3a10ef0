//! Per-request accounting in the worker VMs: watches the answer pass by
//! (unbuffered), reads its usage, and puts one record on the shared usage
//! queue when the request ends. The singleton ships the records.

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

use crate::sse::SseParser;
use crate::table::Table;
use crate::usage::{StreamUsage, Tokens, UsageRecord, cost_nusd, openai_usage};

/// A non-streamed answer is kept (to read its `usage`) up to this size.
const MAX_PLAIN_BODY: usize = 8 * 1024 * 1024;

pub fn now() -> Option<SystemTime> {
    hostcalls::get_current_time().ok()
}

fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// What one routed request's answer looked like.
pub struct Meter {
    pub start: SystemTime,
    pub stream: bool,
    pub complexity: Option<f64>,
    status: u16,
    first_byte: Option<SystemTime>,
    plain: Vec<u8>,
    plain_overflow: bool,
    sse: SseParser,
    stream_usage: StreamUsage,
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
            stream_usage: StreamUsage::default(),
        }
    }

    /// Response headers phase.
    pub fn on_headers(&mut self) {
        self.status = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse().ok())
            .unwrap_or(0);
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Each response body chunk, as it passes.
    pub fn on_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        if !chunk.is_empty() && self.first_byte.is_none() {
            self.first_byte = now();
        }
        if self.stream {
            let usage = &mut self.stream_usage;
            self.sse.feed(chunk, |data| usage.on_event(data));
            if end_of_stream {
                self.sse.finish(|data| usage.on_event(data));
            }
        } else if self.plain.len() + chunk.len() <= MAX_PLAIN_BODY {
            self.plain.extend_from_slice(chunk);
        } else {
            self.plain_overflow = true;
        }
    }

    fn tokens(&self) -> Option<Tokens> {
        if self.stream {
            self.stream_usage.tokens
        } else if self.plain_overflow {
            None
        } else {
            openai_usage(&self.plain)
        }
    }

    /// The record of this request, when it ends.
    pub fn record(
        &self,
        id: &str,
        table: &Table,
        tenant: usize,
        model: usize,
    ) -> Option<UsageRecord> {
        let m = table.models.get(model)?;
        let end = now().unwrap_or(self.start);
        let tokens = self.tokens();
        let t = tokens.unwrap_or_default();
        Some(UsageRecord {
            id: id.to_owned(),
            tenant: table.tenants.get(tenant)?.id.clone(),
            provider: m.provider.clone(),
            model: m.id.clone(),
            status: self.status,
            prompt_tokens: t.prompt,
            completion_tokens: t.completion,
            cached_tokens: t.cached,
            cache_write_tokens: t.cache_write,
            cost_nusd: cost_nusd(m, &t),
            latency_ms: ms_between(self.start, end),
            ttft_ms: self.first_byte.map(|f| ms_between(self.start, f)),
            complexity: self.complexity,
            stream: self.stream,
            usage_parsed: tokens.is_some(),
            ts_ms: self
                .start
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            failed_attempts: Vec::new(),
        })
    }
}
