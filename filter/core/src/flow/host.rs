//! Everything the request flow needs from the proxy it runs in, as one small
//! trait. The proxy-wasm module implements it over Envoy's Wasm ABI; a native
//! Envoy dynamic module can implement it over that ABI; the tests implement
//! it in memory (`fake`).
//!
//! Every method takes `&self`: a host is the proxy's API for the stream the
//! callback runs for (and for the process-wide shared data), not state the
//! flow owns. A host call that the proxy refuses returns an error, never
//! panics.

use std::time::{Duration, SystemTime};

/// A host call the proxy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// A compare-and-swap write lost to another writer: read again.
    CasMismatch,
    /// Anything else, with the proxy's own words for it.
    Refused(String),
}

/// The kinds of metric a host defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Values recorded one by one; the proxy keeps their distribution
    /// (buckets, count, sum). Integers only.
    Histogram,
}

pub trait Host {
    /// The proxy's clock.
    fn now(&self) -> SystemTime;
    /// What this proxy calls itself (Envoy's node id), if it says: the
    /// singleton names its Envoy with it when it ships usage.
    fn node_id(&self) -> Option<String>;

    // ---- the request, while its headers or body are held ----------------

    /// Every request header, names lower-case, values as bytes.
    fn request_headers(&self) -> Vec<(String, Vec<u8>)>;
    /// Sets (or with None removes) a request header.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError>;
    /// The first `size` bytes of the buffered request body.
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// Replaces `len` bytes of the buffered request body from `start` with
    /// `with` (a prefix edit is `start` 0).
    fn splice_request_body(&self, start: usize, len: usize, with: &[u8]) -> Result<(), HostError>;
    /// Makes the proxy pick the route again after routing headers changed.
    fn clear_route_cache(&self) -> Result<(), HostError>;

    // ---- the answer ---------------------------------------------------------

    fn response_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Envoy's `response.code_details` of the answer passing now: who made
    /// it (`via_upstream` for a provider's, another filter's own words for
    /// a local reply).
    fn response_code_details(&self) -> Option<String>;
    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// The first `size` bytes of the response body buffered or passing now.
    fn response_body(&self, size: usize) -> Vec<u8>;
    /// Replaces the first `len` bytes of that response body with `with`.
    fn replace_response_body(&self, len: usize, with: &[u8]) -> Result<(), HostError>;
    /// Answers the request from the filter itself.
    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;

    // ---- calls of its own ---------------------------------------------------

    /// Sends a request to `cluster`; its answer comes back through the
    /// flow's `on_call_response` with the returned token.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// A header of the answer to a dispatched call (inside `on_call_response`).
    fn call_response_header(&self, name: &str) -> Option<Vec<u8>>;
    /// The first `size` bytes of that answer's body.
    fn call_response_body(&self, size: usize) -> Vec<u8>;

    // ---- the proxy's shared state -----------------------------------------

    /// A shared-data value and its compare-and-swap token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes a shared-data value; with `cas`, only if nobody wrote since.
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;
    /// Hands one usage record (JSON) to whoever ships usage (the singleton).
    fn enqueue_usage(&self, record: &[u8]) -> Result<(), HostError>;

    // ---- metrics ------------------------------------------------------------

    /// Defines a metric once; the id names it afterwards.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    /// Defines a family of metrics once: one name and its label names;
    /// its members (one per set of label values) are made on first use by
    /// [`Host::family_member`]. Call it where `define_metric` may be called
    /// (a native host defines metrics only while it configures).
    fn define_family(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32>;
    /// The member of `family` for `values` (one per label, in the family's
    /// order, none holding a `.`): a metric id, made on first use, for
    /// `increment_metric` / `record_metric`. Ask once per set of values and
    /// keep the id: making one costs more than using it.
    fn family_member(&self, family: u32, values: &[&str]) -> Option<u32>;
    fn increment_metric(&self, id: u32, by: u64);
    /// Sets a gauge, or records one value in a histogram.
    fn record_metric(&self, id: u32, value: u64);
}

/// Milliseconds since the Unix epoch on the host's clock.
pub fn now_ms(host: &impl Host) -> u64 {
    host.now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
