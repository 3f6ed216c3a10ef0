//! aipipe-core's `Host` over Envoy's Wasm ABI: each method is one proxy-wasm
//! host call, returning an error instead of unwrapping like the SDK's trait
//! methods do, and reading header values as bytes (a non-UTF-8 header value
//! must not crash the VM).
//!
//! The SDK's `hostcalls` still panic on statuses they do not expect (a call
//! in the wrong phase): the flow calls each only where Envoy allows it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aipipe_core::contract::USAGE_QUEUE;
use aipipe_core::flow::batch::UsageBatch;
use aipipe_core::flow::{Host, HostError, MetricKind};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

/// One worker VM's host. The usage queue is resolved lazily: the singleton
/// that registers it may start after the workers.
pub struct WasmHost {
    vm_id: String,
    usage_queue: Cell<Option<u32>>,
    /// Records since the last failed lookup of the queue.
    usage_queue_misses: Cell<u32>,
    /// Metric families: kind and name. A member is a metric of its own
    /// whose name carries the label values (`name.v1.v2…`); the Envoy
    /// config's `stats_tags` make them labels again (filter/README.md,
    /// "Metrics").
    families: RefCell<Vec<(MetricType, String)>>,
    /// Each family member's id by its full name, defined once per VM: Envoy
    /// runs its stats tag regexes over a name each time it is defined, and
    /// the flow asks for six members a request.
    members: RefCell<HashMap<String, u32>>,
    /// Usage records not yet on the queue: sent as one message when no
    /// stream is in flight on this worker, when the batch is full, or on
    /// the worker's tick (`aipipe_core::flow::batch`).
    usage: RefCell<UsageBatch>,
    /// Streams this worker's filter has begun and not yet logged.
    in_flight: Cell<u32>,
}

/// How often a worker sends records held while its streams go on.
pub const USAGE_FLUSH: Duration = Duration::from_millis(250);

/// Members remembered per VM; past this (a catalog of thousands of models)
/// the cache starts again, and a name defined again keeps its id.
const MEMBER_CACHE: usize = 4096;

impl WasmHost {
    pub fn new() -> Self {
        Self {
            vm_id: hostcalls::get_property(vec!["plugin_vm_id"])
                .ok()
                .flatten()
                .and_then(|v| String::from_utf8(v).ok())
                .unwrap_or_default(),
            usage_queue: Cell::new(None),
            usage_queue_misses: Cell::new(0),
            families: RefCell::new(Vec::new()),
            members: RefCell::new(HashMap::new()),
            usage: RefCell::new(UsageBatch::default()),
            in_flight: Cell::new(0),
        }
    }

    /// A stream through the filter began on this worker.
    pub fn stream_began(&self) {
        self.in_flight.set(self.in_flight.get().saturating_add(1));
    }

    /// A stream through the filter was logged (its record, if any, is
    /// held); the last one in flight sends what is held.
    pub fn stream_logged(&self) {
        let left = self.in_flight.get().saturating_sub(1);
        self.in_flight.set(left);
        if left == 0 {
            self.flush_usage();
        }
    }

    /// A stream left without being logged (no record of its own to send);
    /// the last one in flight sends what is held all the same, as a logged
    /// one does (Envoy may tear the plugin down right after it).
    pub fn stream_ended_unlogged(&self) {
        let left = self.in_flight.get().saturating_sub(1);
        self.in_flight.set(left);
        if left == 0 {
            self.flush_usage();
        }
    }

    /// Records held now (not yet on the queue).
    pub fn held_usage(&self) -> usize {
        self.usage.borrow().len()
    }

    /// Puts the held records on the usage queue as one message.
    pub fn flush_usage(&self) {
        let Some(message) = self.usage.borrow_mut().take() else {
            return;
        };
        let sent = self
            .usage_queue()
            .ok_or(Status::NotFound)
            .and_then(|q| hostcalls::enqueue_shared_queue(q, Some(&message)));
        if let Err(s) = sent {
            log::debug!("usage records not queued: {s:?}");
        }
    }

    fn usage_queue(&self) -> Option<u32> {
        if let Some(q) = self.usage_queue.get() {
            return Some(q);
        }
        // Look again now and then: the singleton may start later.
        let misses = self.usage_queue_misses.get();
        self.usage_queue_misses.set(misses.wrapping_add(1));
        if !misses.is_multiple_of(256) {
            return None;
        }
        let q = hostcalls::resolve_shared_queue(&self.vm_id, USAGE_QUEUE).ok()??;
        self.usage_queue.set(Some(q));
        Some(q)
    }
}

impl Drop for WasmHost {
    /// A host that goes (its root context deleted, or configured again with
    /// streams of the old configuration still running on it) sends what it
    /// still holds.
    fn drop(&mut self) {
        self.flush_usage();
    }
}

fn metric_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
    }
}

fn refused(s: Status) -> HostError {
    match s {
        Status::CasMismatch => HostError::CasMismatch,
        other => HostError::Refused(format!("{other:?}")),
    }
}

impl Host for WasmHost {
    fn now(&self) -> SystemTime {
        hostcalls::get_current_time().unwrap_or(std::time::UNIX_EPOCH)
    }

    /// Envoy 1.40 answers `xds.node.id` (the attribute `node.id` of older
    /// releases comes back empty in a bootstrap service's root context).
    fn node_id(&self) -> Option<String> {
        [vec!["xds", "node", "id"], vec!["node", "id"]]
            .into_iter()
            .find_map(|path| {
                hostcalls::get_property(path)
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8(v).ok())
                    .filter(|v| !v.is_empty())
            })
    }

    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value).map_err(refused)
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn splice_request_body(&self, start: usize, len: usize, with: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpRequestBody, start, len, with).map_err(refused)
    }

    fn clear_route_cache(&self) -> Result<(), HostError> {
        // Envoy re-matches the route after the routing headers changed (do
        // not rely on implicit clearing: envoy/README.md).
        hostcalls::call_foreign_function("clear_route_cache", None)
            .map(|_| ())
            .map_err(refused)
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn response_code_details(&self) -> Option<String> {
        hostcalls::get_property(vec!["response", "code_details"])
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value).map_err(refused)
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn replace_response_body(&self, len: usize, with: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, len, with).map_err(refused)
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body)).map_err(refused)
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let body = (!body.is_empty()).then_some(body);
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, Vec::new(), timeout)
            .map_err(refused)
    }

    fn call_response_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(refused)
    }

    fn enqueue_usage(&self, record: &[u8]) -> Result<(), HostError> {
        // Without a singleton there is nowhere to send it: do not hold it.
        self.usage_queue()
            .ok_or_else(|| HostError::Refused("no usage queue (no singleton)".into()))?;
        let full = self.usage.borrow_mut().push(record);
        if full {
            self.flush_usage();
        }
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        hostcalls::define_metric(metric_type(kind), name).ok()
    }

    fn define_family(&self, kind: MetricKind, name: &str, _labels: &[&str]) -> Option<u32> {
        let mut families = self.families.borrow_mut();
        families.push((metric_type(kind), name.to_owned()));
        u32::try_from(families.len() - 1).ok()
    }

    fn family_member(&self, family: u32, values: &[&str]) -> Option<u32> {
        let families = self.families.borrow();
        let (kind, name) = families.get(family as usize)?;
        let mut full = name.clone();
        for v in values {
            full.push('.');
            full.push_str(v);
        }
        if let Some(&id) = self.members.borrow().get(&full) {
            return Some(id);
        }
        let id = hostcalls::define_metric(*kind, &full).ok()?;
        let mut members = self.members.borrow_mut();
        if members.len() >= MEMBER_CACHE {
            members.clear();
        }
        members.insert(full, id);
        Some(id)
    }

    fn increment_metric(&self, id: u32, by: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}
