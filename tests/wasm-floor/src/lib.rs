//! The floor of a body-routing Wasm filter, for `make bench` only
//! (tests/README.md, "make bench"): every request (its headers too) is held
//! until its body is whole and read into the VM, as aipipe's filter must
//! before it can route, and nothing else happens. Its throughput against plain Envoy is the most
//! any proxy-wasm filter that routes on the body can reach in Envoy's V8.
#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Floor) });
}}

struct Floor;

impl Context for Floor {}

impl RootContext for Floor {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl HttpContext for Floor {
    /// Holds the request until its body is whole, as a router must: Envoy
    /// would otherwise pick the route and start the upstream request before
    /// the body is read. A request without a body goes on.
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        // Read into the VM, as a router must; what it holds is not needed.
        let _body = self.get_http_request_body(0, body_size);
        Action::Continue
    }
}
