//! The proxy-wasm host of aipipe-core: the entry point, the root contexts of
//! the three roles (the filter's, the singleton's, the upstream filter's),
//! and `WasmHost`, aipipe-core's `Host` over proxy-wasm's host calls. The
//! roles' logic is the core's; this crate maps Envoy's callbacks onto it.
//! Only this crate imports `proxy_wasm`; natively it is empty.
#![cfg(target_arch = "wasm32")]

mod host;
mod root;
mod upstream;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
