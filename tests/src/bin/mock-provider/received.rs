//! The log of requests received on provider endpoints (`/_mock/received`),
//! so tests can check what Envoy actually forwarded.

use std::collections::VecDeque;
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
    pub model: Option<String>,
    pub stream: bool,
    pub body_bytes: usize,
    pub content_length: Option<String>,
    pub body_json_valid: bool,
    pub body: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Received {
    records: Mutex<VecDeque<Record>>,
}

impl Received {
    pub fn push(&self, record: Record) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
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
