//! The proxy-wasm host of aipipe-core: the entry point, the root contexts of
//! the filter and the singleton (the upstream filter is `upstream.wasm`,
//! filter/upstream-wasm), and `WasmHost`, aipipe-core's `Host` over
//! proxy-wasm's host calls. The roles' logic is the core's; this crate maps
//! Envoy's callbacks onto it. Natively it is empty.
#![cfg(target_arch = "wasm32")]

mod host;
mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
