//! The upstream filter: `upstream.wasm`, root id `aipipe_upstream`, running
//! in each provider cluster's upstream HTTP filter chain (after the router
//! picked the cluster, once per attempt).
//!
//! It does one thing. When the filter sent an attempt that may fail over, the
//! request carries [`FAILOVER_LOCATION_HEADER`]; the upstream filter takes
//! it off (the provider never sees it) and, if the provider answers 429 or
//! 5xx, turns the answer into `307` with that location plus the provider's
//! status. The route's `internal_redirect_policy` then makes Envoy's router
//! send the request through the filter chain again, where the filter picks
//! the next candidate. The router drops the failed answer, so the next
//! attempt's answer reaches the client as it streams, exactly like a first
//! attempt's.
//!
//! The redirect has to be made here: the router decides on it from the
//! upstream answer, before any downstream filter sees the response.
//!
//! Envoy's config runs it only for requests carrying the header (an
//! `ExtensionWithMatcher` skips it otherwise), and follows only redirects to
//! [`aipipe_core::contract::FAILOVER_AUTHORITY`]: a 307 a provider sends itself goes
//! to the client.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use aipipe_core::contract::FAILOVER_LOCATION_HEADER;
use aipipe_core::redirect::failover_redirect;

#[derive(Default)]
pub struct Upstream {
    /// Where to send a failed attempt (from the filter).
    location: Option<String>,
}

impl Context for Upstream {}

impl HttpContext for Upstream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let location =
            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, FAILOVER_LOCATION_HEADER)
                .ok()
                .flatten();
        if let Some(location) = location {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                FAILOVER_LOCATION_HEADER,
                None,
            );
            self.location = String::from_utf8(location).ok();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let status = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
            .unwrap_or(0);
        // The provider failed: its answer becomes the redirect to the next
        // candidate.
        let headers = self
            .location
            .take()
            .and_then(|location| failover_redirect(&location, status));
        for (name, value) in headers.iter().flatten() {
            if let Err(s) =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value.as_str()))
            {
                log::warn!("cannot turn a failed answer into a failover redirect: {s:?}");
                break;
            }
        }
        Action::Continue
    }
}
