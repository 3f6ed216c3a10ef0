//! The thin shell between Envoy and the plain-Rust core: the entry point, the
//! root context (configuration), the HTTP context (the request phases) and the
//! singleton that fetches the routing table from the control plane.
//! Only this module imports `proxy_wasm`.

mod host;
mod http;
mod root;
mod singleton;
mod upstream;
mod usage;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
