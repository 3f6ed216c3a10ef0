//! aipipe's gateway core: scores each chat request and sends it to the
//! cheapest model that can answer it well, with the tenant's own provider key.
//!
//! Everything here is plain Rust with native tests, and nothing imports
//! proxy-wasm: the domain (routing table, catalog, score, selection, plan,
//! protocols and their translations, usage, penalties, cache) and the whole
//! request flow (`flow`), which reaches Envoy only through its `Host` trait.
//! The hosts (the proxy-wasm module today) adapt Envoy's callbacks to it.

pub mod budget;
pub mod bytes;
pub mod cache;
pub mod carry;
pub mod catalog;
pub mod classify;
pub mod config;
pub mod contract;
pub mod directory;
pub mod error;
pub mod flow;
pub mod lexicon;
pub mod penalty;
pub mod plan;
pub mod policy;
pub mod protocol;
pub mod ratelimit;
pub mod redirect;
pub mod request;
pub mod reshape;
pub mod route;
pub mod score;
pub mod select;
pub mod sha;
pub mod sse;
pub mod starts;
pub mod table;
pub mod tenant_router;
pub mod timestamp;
pub mod usage;
pub mod validate;
pub mod words;

#[cfg(test)]
mod counters;
