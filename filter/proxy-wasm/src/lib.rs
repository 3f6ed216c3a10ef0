//! The proxy-wasm host of aipipe-core: the entry point, the root context
//! (configuration), the HTTP context (the request phases), the singleton that
//! fetches the routing table from the control plane and the upstream filter.
//! Only this crate imports `proxy_wasm`; natively it is empty.
#![cfg(target_arch = "wasm32")]

mod host;
mod root;
mod singleton;
mod upstream;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
