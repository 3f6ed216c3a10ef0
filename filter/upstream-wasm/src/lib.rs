//! `upstream.wasm`: the upstream filter role on its own (root id
//! `aipipe_upstream`, [`upstream`]). It runs in a VM of its own next to every
//! worker's filter VM; built apart from `filter.wasm` it carries none of the
//! request flow, the scorer or the router model, so those VMs hold a module
//! of 128 KB instead of 5.3 MB (filter/README.md, "The three roles").
//! Only this crate and aipipe-proxy-wasm import `proxy_wasm`; natively it is
//! empty.
#![cfg(target_arch = "wasm32")]

mod upstream;

use aipipe_core::contract::UPSTREAM_ROOT_ID;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    /// This module serves one root id; configured under another (as the
    /// filter or the singleton, which are `filter.wasm`'s) it refuses, so
    /// Envoy rejects the configuration instead of running a filter that
    /// does nothing.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let root_id = hostcalls::get_property(vec!["plugin_root_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        if root_id != UPSTREAM_ROOT_ID.as_bytes() {
            log::error!(
                "upstream.wasm serves only root id {UPSTREAM_ROOT_ID}, not {:?}: the filter and the singleton are filter.wasm",
                String::from_utf8_lossy(&root_id)
            );
            return false;
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(upstream::Upstream::default()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
