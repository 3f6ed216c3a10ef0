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
}

pub trait Host {
    /// The proxy's clock.
    fn now(&self) -> SystemTime;

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
    fn increment_metric(&self, id: u32, by: u64);
    fn record_metric(&self, id: u32, value: u64);
}

/// Milliseconds since the Unix epoch on the host's clock.
pub fn now_ms(host: &impl Host) -> u64 {
    host.now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
