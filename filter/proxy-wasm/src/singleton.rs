//! The singleton: one root context on Envoy's main thread (a bootstrap Wasm
//! service with `singleton: true` and the filter's `vm_id`). It polls the
//! control plane for the routing table and publishes a changed table to
//! shared data, where every worker VM's filter picks it up (envoy/README.md,
//! Envoy facts 11–12: polling from the filter's own roots would poll once
//! per worker).
//!
//! It also ships usage: worker VMs put one record per request on a shared
//! queue; the singleton drains it into a bounded buffer and posts batches,
//! keeping every record until the control plane acknowledged it. While the
//! control plane is down records wait; past the bound new ones are dropped
//! and counted.

use std::collections::VecDeque;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use aipipe_core::config::ControlPlane;
use aipipe_core::contract::{
    SHARED_TABLE_KEY, SHARED_VERSION_KEY, TABLE_PATH, TOKEN_HEADER, USAGE_PATH, USAGE_QUEUE,
    VERSION_HEADER,
};
use aipipe_core::table::{RoutingTable, Table};

pub struct Singleton {
    cp: ControlPlane,
    /// Version of the table last published.
    version: Option<u64>,
    /// The table call in flight, if any.
    pending: Option<u32>,
    /// Whether the last call answered, and why not; logged on change only.
    reachable: Option<bool>,
    last_failure: String,
    queue: Option<u32>,
    /// Usage records (JSON) not yet acknowledged, oldest first.
    buffered: VecDeque<Vec<u8>>,
    /// The usage POST in flight and how many records it carries.
    posting: Option<(u32, usize)>,
    metrics: Option<Metrics>,
}

struct Metrics {
    dropped: u32,
    buffered: u32,
    sent: u32,
}

impl Metrics {
    fn define() -> Option<Self> {
        Some(Self {
            dropped: hostcalls::define_metric(MetricType::Counter, "aipipe.usage.dropped").ok()?,
            buffered: hostcalls::define_metric(MetricType::Gauge, "aipipe.usage.buffered").ok()?,
            sent: hostcalls::define_metric(MetricType::Counter, "aipipe.usage.sent").ok()?,
        })
    }
}

impl Singleton {
    pub fn new(cp: ControlPlane) -> Self {
        Self {
            cp,
            version: None,
            pending: None,
            reachable: None,
            last_failure: String::new(),
            queue: None,
            buffered: VecDeque::new(),
            posting: None,
            metrics: None,
        }
    }

    pub fn start(&mut self) -> bool {
        if let Err(s) = hostcalls::set_tick_period(Duration::from_millis(self.cp.poll_ms)) {
            log::error!("singleton: cannot set tick period: {s:?}");
            return false;
        }
        match hostcalls::register_shared_queue(USAGE_QUEUE) {
            Ok(q) => self.queue = Some(q),
            Err(s) => log::error!("singleton: cannot register the usage queue: {s:?}"),
        }
        self.metrics = Metrics::define();
        // The first poll waits for the first tick: during configuration the
        // cluster manager is not ready and the call would fail.
        true
    }

    /// Moves queued usage records into the buffer (bounded).
    pub fn drain(&mut self, queue_id: u32) {
        if self.queue != Some(queue_id) {
            return;
        }
        let mut dropped = 0i64;
        while let Ok(Some(record)) = hostcalls::dequeue_shared_queue(queue_id) {
            if self.buffered.len() < self.cp.max_buffered_records {
                self.buffered.push_back(record);
            } else {
                dropped += 1;
            }
        }
        if let Some(m) = &self.metrics {
            if dropped > 0 {
                let _ = hostcalls::increment_metric(m.dropped, dropped);
            }
            let _ = hostcalls::record_metric(m.buffered, self.buffered.len() as u64);
        }
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage();
        }
    }

    /// Posts the oldest buffered records unless a post is in flight.
    fn post_usage(&mut self) {
        if self.posting.is_some() || self.buffered.is_empty() {
            return;
        }
        let n = self.buffered.len().min(self.cp.batch_records);
        let mut body = Vec::with_capacity(n * 320 + 16);
        body.extend_from_slice(b"{\"records\":[");
        for (i, r) in self.buffered.iter().take(n).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(r);
        }
        body.extend_from_slice(b"]}");
        let headers = vec![
            (":method", "POST"),
            (":path", USAGE_PATH),
            (":authority", self.cp.authority.as_str()),
            ("content-type", "application/json"),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        match hostcalls::dispatch_http_call(
            &self.cp.cluster,
            headers,
            Some(&body),
            vec![],
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.posting = Some((token, n)),
            Err(s) => self.mark(false, &format!("cannot post usage: {s:?}")),
        }
    }

    /// Asks for the table unless a call is still in flight, and ships usage.
    pub fn poll(&mut self) {
        self.post_usage();
        if self.pending.is_some() {
            return;
        }
        let version = self.version.map(|v| v.to_string());
        let mut headers = vec![
            (":method", "GET"),
            (":path", TABLE_PATH),
            (":authority", self.cp.authority.as_str()),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        if let Some(v) = &version {
            headers.push((VERSION_HEADER, v.as_str()));
        }
        match hostcalls::dispatch_http_call(
            &self.cp.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.pending = Some(token),
            Err(s) => self.mark(
                false,
                &format!("cannot call cluster {}: {s:?}", self.cp.cluster),
            ),
        }
    }

    pub fn on_response(&mut self, token: u32, body_size: usize) {
        if let Some((posting, n)) = self.posting
            && posting == token
        {
            self.posting = None;
            return self.on_usage_response(n);
        }
        if self.pending != Some(token) {
            return;
        }
        self.pending = None;
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        match status.as_slice() {
            b"304" => self.mark(true, ""),
            b"200" => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.publish(&body);
            }
            other => self.mark(
                false,
                &format!("table request answered {}", String::from_utf8_lossy(other)),
            ),
        }
    }

    /// Only an acknowledged batch leaves the buffer; anything else is retried
    /// (the control plane ignores records it already has).
    fn on_usage_response(&mut self, n: usize) {
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        if status.as_slice() != b"200" {
            return self.mark(
                false,
                &format!(
                    "usage batch answered {:?}",
                    String::from_utf8_lossy(&status)
                ),
            );
        }
        self.buffered.drain(..n.min(self.buffered.len()));
        if let Some(m) = &self.metrics {
            let _ = hostcalls::increment_metric(m.sent, n as i64);
            let _ = hostcalls::record_metric(m.buffered, self.buffered.len() as u64);
        }
        self.mark(true, "");
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage();
        }
    }

    /// Validates the table exactly as the workers will, then publishes it:
    /// the table first, its version last, so a worker that sees the new
    /// version finds the table behind it.
    fn publish(&mut self, body: &[u8]) {
        let raw: RoutingTable = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return self.mark(false, &format!("table is not valid JSON: {e}")),
        };
        let version = raw.version;
        if let Err(e) = Table::compile(raw) {
            return self.mark(false, &format!("table version {version} refused: {e}"));
        }
        let published =
            hostcalls::set_shared_data(SHARED_TABLE_KEY, Some(body), None).and_then(|()| {
                hostcalls::set_shared_data(
                    SHARED_VERSION_KEY,
                    Some(version.to_string().as_bytes()),
                    None,
                )
            });
        match published {
            Ok(()) => {
                self.version = Some(version);
                self.mark(true, "");
                log::info!("singleton: published routing table version {version}");
            }
            Err(s) => self.mark(false, &format!("cannot publish the table: {s:?}")),
        }
    }

    fn mark(&mut self, ok: bool, why: &str) {
        if ok && self.reachable != Some(true) {
            log::info!("singleton: control plane reachable");
            self.last_failure.clear();
        } else if !ok && self.last_failure != why {
            log::warn!("singleton: {why}; filters keep routing with the last table");
            why.clone_into(&mut self.last_failure);
        }
        self.reachable = Some(ok);
    }
}
