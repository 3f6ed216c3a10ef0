//! aipipe's native Envoy host: the same core as `filter.wasm`
//! (aipipe-core's request flow, singleton and upstream roles), loaded by
//! Envoy as a dynamic module (`envoy.filters.http.dynamic_modules`)
//! instead of run in V8. Same plugin configuration, table, headers and
//! metric names; shared data and the usage queue are this process's
//! memory, shared by the worker threads. filter/native/README.md explains
//! the design.
//!
//! `ffi` is the one module with `unsafe` code: the C ABI, declared by hand
//! from Envoy 1.40's abi.h, and the exported hooks, each of which catches
//! panics. Everything else is safe Rust over it.

// Built as a test or without the `envoy` feature (the fuzz target), the
// Envoy side is left out and some of what it uses goes unused.
#![cfg_attr(any(test, not(feature = "envoy")), allow(dead_code))]

mod edit;
pub mod ffi;
mod shared;

#[cfg(all(feature = "envoy", feature = "floor", not(test)))]
mod floor;
#[cfg(all(feature = "envoy", not(test)))]
mod host;
#[cfg(all(feature = "envoy", not(test)))]
mod logger;
#[cfg(all(feature = "envoy", not(test)))]
mod roles;

pub use edit::splice;
