//! The log of requests received on provider endpoints (`/_mock/received`),
//! so tests can check what Envoy actually forwarded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;

/// Only the newest records are kept, so a long run cannot eat the memory.
const MAX_RECORDS: usize = 10_000;

/// One received request. Header values are raw (lossy UTF-8), or null when absent.
#[derive(Debug, Serialize)]
pub struct Record {
    pub provider: &'static str,
    pub method: String,
    /// The request path as received (a provider prefix included), without the query.
    pub path: String,
    pub authority: Option<String>,
    pub authorization: Option<String>,
    pub x_api_key: Option<String>,
    pub anthropic_version: Option<String>,
    /// Names of received headers no provider should get from the gateway:
    /// `x-aipipe-*`, `x-envoy-original-url` (an internal redirect's), and
    /// Gemini's `x-goog-api-key` on any other provider.
    pub internal_headers: Vec<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub body_bytes: usize,
    pub content_length: Option<String>,
    pub body_json_valid: bool,
    pub body: Option<Value>,
    /// The `usage` object the answer carried, exactly as sent (for a stream:
    /// its usage chunk, or Anthropic's final cumulative usage); a string when
    /// an `unreadable_usage` fault spoiled it; null when the answer carried
    /// none (an error, or a stream whose usage was not asked for).
    pub sent_usage: Option<Value>,
    /// Which request this is, to attach `sent_usage` once answered.
    #[serde(skip)]
    pub seq: u64,
}

#[derive(Debug, Default)]
pub struct Received {
    records: Mutex<VecDeque<Record>>,
    next_seq: AtomicU64,
}

impl Received {
    /// Logs a request as it arrives; returns its `seq` for [`Self::set_sent_usage`].
    pub fn push(&self, mut record: Record) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        record.seq = seq;
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
        seq
    }

    /// Notes the usage the answer to request `seq` carried (before the answer
    /// leaves, so a client that has it finds it logged). A record already
    /// evicted or cleared is left alone.
    pub fn set_sent_usage(&self, seq: u64, usage: Value) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = records.iter_mut().rev().find(|r| r.seq == seq) {
            record.sent_usage = Some(usage);
        }
    }

    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// All records as a JSON array, oldest first.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        serde_json::to_vec(&*records)
    }
}
