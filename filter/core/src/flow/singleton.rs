//! The singleton role: one instance per Envoy (in the proxy-wasm host, a
//! root context on the main thread: a bootstrap Wasm service with
//! `singleton: true` and the filter's `vm_id`). It polls the
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

use super::host::{Host, MetricKind};
use crate::config::ControlPlane;
use crate::contract::{
    SHARED_TABLE_KEY, SHARED_VERSION_KEY, TABLE_PATH, TOKEN_HEADER, USAGE_PATH, VERSION_HEADER,
};
use crate::table::{RoutingTable, Table};

pub struct Singleton {
    cp: ControlPlane,
    /// Version of the table last published.
    version: Option<u64>,
    /// The table call in flight, if any.
    pending: Option<u32>,
    /// Whether the last call answered, and why not; logged on change only.
    reachable: Option<bool>,
    last_failure: String,
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
    fn define(host: &impl Host) -> Option<Self> {
        Some(Self {
            dropped: host.define_metric(MetricKind::Counter, "aipipe.usage.dropped")?,
            buffered: host.define_metric(MetricKind::Gauge, "aipipe.usage.buffered")?,
            sent: host.define_metric(MetricKind::Counter, "aipipe.usage.sent")?,
        })
    }
}

impl Singleton {
    /// The singleton role, its metrics defined. The host ticks it every
    /// [`Singleton::poll_interval`] and hands it the workers' usage records;
    /// the first poll waits for the first tick (during configuration the
    /// cluster manager is not ready and a call would fail).
    pub fn new(cp: ControlPlane, host: &impl Host) -> Self {
        Self {
            cp,
            version: None,
            pending: None,
            reachable: None,
            last_failure: String::new(),
            buffered: VecDeque::new(),
            posting: None,
            metrics: Metrics::define(host),
        }
    }

    /// How often the host should call [`Singleton::poll`].
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.cp.poll_ms)
    }

    /// Takes the usage records the workers queued into the buffer (bounded:
    /// past it, records are dropped and counted).
    pub fn take_records(&mut self, host: &impl Host, records: impl IntoIterator<Item = Vec<u8>>) {
        let mut dropped = 0u64;
        for record in records {
            if self.buffered.len() < self.cp.max_buffered_records {
                self.buffered.push_back(record);
            } else {
                dropped += 1;
            }
        }
        if let Some(m) = &self.metrics {
            if dropped > 0 {
                host.increment_metric(m.dropped, dropped);
            }
            host.record_metric(m.buffered, self.buffered.len() as u64);
        }
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage(host);
        }
    }

    /// Posts the oldest buffered records unless a post is in flight.
    fn post_usage(&mut self, host: &impl Host) {
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
        let headers = [
            (":method", "POST"),
            (":path", USAGE_PATH),
            (":authority", self.cp.authority.as_str()),
            ("content-type", "application/json"),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        match host.dispatch(
            &self.cp.cluster,
            &headers,
            &body,
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.posting = Some((token, n)),
            Err(s) => self.mark(false, &format!("cannot post usage: {s:?}")),
        }
    }

    /// Asks for the table unless a call is still in flight, and ships usage.
    pub fn poll(&mut self, host: &impl Host) {
        self.post_usage(host);
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
        match host.dispatch(
            &self.cp.cluster,
            &headers,
            &[],
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.pending = Some(token),
            Err(s) => self.mark(
                false,
                &format!("cannot call cluster {}: {s:?}", self.cp.cluster),
            ),
        }
    }

    /// The answer to one of its calls.
    pub fn on_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        if let Some((posting, n)) = self.posting
            && posting == token
        {
            self.posting = None;
            return self.on_usage_response(host, n);
        }
        if self.pending != Some(token) {
            return;
        }
        self.pending = None;
        let status = host.call_response_header(":status").unwrap_or_default();
        match status.as_slice() {
            b"304" => self.mark(true, ""),
            b"200" => {
                let body = host.call_response_body(body_size);
                self.publish(host, &body);
            }
            other => self.mark(
                false,
                &format!("table request answered {}", String::from_utf8_lossy(other)),
            ),
        }
    }

    /// Only an acknowledged batch leaves the buffer; anything else is retried
    /// (the control plane ignores records it already has).
    fn on_usage_response(&mut self, host: &impl Host, n: usize) {
        let status = host.call_response_header(":status").unwrap_or_default();
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
            host.increment_metric(m.sent, n as u64);
            host.record_metric(m.buffered, self.buffered.len() as u64);
        }
        self.mark(true, "");
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage(host);
        }
    }

    /// Validates the table exactly as the workers will, then publishes it:
    /// the table first, its version last, so a worker that sees the new
    /// version finds the table behind it.
    fn publish(&mut self, host: &impl Host, body: &[u8]) {
        let raw: RoutingTable = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return self.mark(false, &format!("table is not valid JSON: {e}")),
        };
        let version = raw.version;
        if let Err(e) = Table::compile(raw) {
            return self.mark(false, &format!("table version {version} refused: {e}"));
        }
        let published = host
            .shared_set(SHARED_TABLE_KEY, body, None)
            .and_then(|()| {
                host.shared_set(SHARED_VERSION_KEY, version.to_string().as_bytes(), None)
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
