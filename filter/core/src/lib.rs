//! aipipe's filter: scores each chat request and sends it to the cheapest
//! model that can answer it well, with the tenant's own provider key.
//!
//! Everything but `wasm` is plain Rust with native unit tests: request
//! parsing, the complexity score, model selection, the routing table and the
//! plugin configuration. The `wasm` module is the thin shell that talks to
//! Envoy through proxy-wasm and exists only on `wasm32`.

pub mod anthropic;
pub mod cache;
pub mod carry;
pub mod catalog;
pub mod config;
pub mod error;
pub mod penalty;
pub mod request;
pub mod reshape;
pub mod route;
pub mod score;
pub mod select;
pub mod sse;
pub mod table;
pub mod usage;
pub mod words;
