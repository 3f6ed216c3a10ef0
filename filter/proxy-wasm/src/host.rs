//! The few host calls the filter makes, each returning a `Result` instead of
//! unwrapping like the SDK's trait methods do, and reading header values as
//! bytes (a non-UTF-8 header value must not crash the VM).
//!
//! The SDK's `hostcalls` still panic on statuses they do not expect (a call in
//! the wrong phase): the HTTP context calls each only where Envoy allows it.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, Bytes, MapType, Status};

pub fn request_headers() -> Vec<(String, Bytes)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
}

pub fn set_request_header(name: &str, value: Option<&str>) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
}

pub fn set_response_header(name: &str, value: &str) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value))
}

pub fn request_body(size: usize) -> Option<Bytes> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
        .ok()
        .flatten()
}

/// Replaces the first `drain` bytes of the buffered request body.
pub fn replace_request_body_prefix(drain: usize, prefix: &[u8]) -> Result<(), Status> {
    hostcalls::set_buffer(BufferType::HttpRequestBody, 0, drain, prefix)
}

pub fn response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces the whole current response body chunk.
pub fn replace_response_body(size: usize, bytes: &[u8]) -> Result<(), Status> {
    hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, bytes)
}

pub fn send_response(status: u32, headers: Vec<(&str, &str)>, body: &[u8]) -> Result<(), Status> {
    hostcalls::send_http_response(status, headers, Some(body))
}

/// Makes Envoy re-match the route after the routing headers changed
/// (ENVOY-NOTES 2: do not rely on implicit clearing).
pub fn clear_route_cache() -> Result<(), Status> {
    hostcalls::call_foreign_function("clear_route_cache", None).map(|_| ())
}
