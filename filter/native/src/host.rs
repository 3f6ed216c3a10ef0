//! aipipe-core's `Host` over Envoy's dynamic-module ABI: one per stream
//! (the filter role, over that stream's Envoy pointer) or one per
//! configuration (the singleton, over the configuration's pointer, which
//! has no request of its own). Shared data and the usage queue are this
//! process's memory (`shared`); metrics are Envoy's, defined while Envoy
//! configures the module (`Metrics`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aipipe_core::flow::{Host, HostError, MetricKind};

use crate::edit::splice;
use crate::ffi::{ConfigHandle, Direction, HeaderKind, StreamHandle};
use crate::shared;

/// One configuration's metrics, by name. Envoy lets a module define
/// metrics only while it creates the configuration (main thread); after
/// that the table is frozen and a worker's `define_metric` only looks a
/// name up. A host's metric id carries Envoy's id and the kind, so
/// updating a metric costs no lookup.
pub struct Metrics {
    names: Mutex<HashMap<String, u32>>,
    frozen: AtomicBool,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            names: Mutex::new(HashMap::new()),
            frozen: AtomicBool::new(false),
        }
    }

    /// No more definitions (the configuration is made).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Release);
    }

    fn define(&self, envoy: ConfigHandle, kind: MetricKind, name: &str) -> Option<u32> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = names.get(name) {
            return Some(id);
        }
        if self.frozen.load(Ordering::Acquire) {
            return None;
        }
        let gauge = kind == MetricKind::Gauge;
        let envoy_id = u32::try_from(envoy.define(gauge, name)?).ok()?;
        let id = envoy_id.checked_mul(2)? | u32::from(gauge);
        names.insert(name.to_owned(), id);
        Some(id)
    }
}

/// The answer to a call, held while it is delivered.
pub struct CallAnswer {
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

pub struct NativeHost {
    /// None for the singleton: it has no request.
    stream: Option<StreamHandle>,
    /// Envoy destroyed the stream inside a hook that is still running: its
    /// pointer must not be used any more.
    gone: Cell<bool>,
    config: ConfigHandle,
    metrics: Arc<Metrics>,
    call: RefCell<Option<CallAnswer>>,
    /// The body as last read in this hook (the flow reads it, then edits
    /// it): read from Envoy's chunks once per hook, not once per call.
    body: RefCell<Option<(Direction, Vec<u8>)>>,
}

fn refused(what: &str) -> HostError {
    HostError::Refused(what.to_owned())
}

fn first(bytes: &[u8], size: usize) -> Vec<u8> {
    bytes
        .get(..size.min(bytes.len()))
        .unwrap_or_default()
        .to_vec()
}

impl NativeHost {
    pub fn for_stream(stream: StreamHandle, config: ConfigHandle, metrics: Arc<Metrics>) -> Self {
        Self {
            stream: Some(stream),
            gone: Cell::new(false),
            config,
            metrics,
            call: RefCell::new(None),
            body: RefCell::new(None),
        }
    }

    pub fn for_config(config: ConfigHandle, metrics: Arc<Metrics>) -> Self {
        Self {
            stream: None,
            gone: Cell::new(false),
            config,
            metrics,
            call: RefCell::new(None),
            body: RefCell::new(None),
        }
    }

    /// The stream's Envoy side, while Envoy has not destroyed it.
    pub fn stream(&self) -> Option<&StreamHandle> {
        if self.gone.get() {
            return None;
        }
        self.stream.as_ref()
    }

    /// A hook starts: what was read in the last one may have changed.
    pub fn new_hook(&self) {
        *self.body.borrow_mut() = None;
    }

    /// The body (held and this hook's), read once per hook; `f` sees it.
    fn with_body<T>(&self, dir: Direction, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let s = self.stream()?;
        let mut cached = self.body.borrow_mut();
        match &*cached {
            Some((d, b)) if *d == dir => Some(f(b)),
            _ => {
                let b = s.body(dir);
                let out = f(&b);
                *cached = Some((dir, b));
                Some(out)
            }
        }
    }

    /// Replaces the body with `new` (and remembers it as this hook's).
    fn set_body(&self, dir: Direction, new: Vec<u8>) -> Result<(), HostError> {
        let s = self.stream().ok_or_else(|| refused("no request"))?;
        if !s.replace_body(dir, &new) {
            *self.body.borrow_mut() = None;
            return Err(refused("body not available"));
        }
        *self.body.borrow_mut() = Some((dir, new));
        Ok(())
    }

    /// Envoy destroyed the stream: no more calls through its pointer.
    pub fn forget_stream(&self) {
        self.gone.set(true);
    }

    /// Holds a call's answer for the flow to read while it handles it.
    pub fn deliver(&self, answer: Option<CallAnswer>) {
        *self.call.borrow_mut() = answer;
    }

    /// Adds to a counter by name (defined at configuration).
    pub fn count(&self, name: &str, by: u64) {
        if let Some(id) = self.define_metric(MetricKind::Counter, name) {
            self.increment_metric(id, by);
        }
    }
}

impl Host for NativeHost {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.stream()
            .map(|s| s.headers(HeaderKind::Request))
            .unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        let s = self.stream().ok_or_else(|| refused("no request"))?;
        s.set_header(HeaderKind::Request, name, value)
            .then_some(())
            .ok_or_else(|| refused("request header not set"))
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.with_body(Direction::Request, |b| first(b, size))
            .unwrap_or_default()
    }

    fn splice_request_body(&self, start: usize, len: usize, with: &[u8]) -> Result<(), HostError> {
        let body = self
            .with_body(Direction::Request, |b| splice(b, start, len, with))
            .ok_or_else(|| refused("no request"))?;
        self.set_body(Direction::Request, body)
    }

    fn clear_route_cache(&self) -> Result<(), HostError> {
        let s = self.stream().ok_or_else(|| refused("no request"))?;
        s.clear_route_cache();
        Ok(())
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.stream()?.header(HeaderKind::Response, name)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        let s = self.stream().ok_or_else(|| refused("no request"))?;
        s.set_header(HeaderKind::Response, name, value.map(str::as_bytes))
            .then_some(())
            .ok_or_else(|| refused("response header not set"))
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        self.with_body(Direction::Response, |b| first(b, size))
            .unwrap_or_default()
    }

    fn replace_response_body(&self, len: usize, with: &[u8]) -> Result<(), HostError> {
        let body = self
            .with_body(Direction::Response, |b| splice(b, 0, len, with))
            .ok_or_else(|| refused("no request"))?;
        self.set_body(Direction::Response, body)
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let s = self.stream().ok_or_else(|| refused("no request"))?;
        s.send_response(status, headers, body);
        Ok(())
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let id = match &self.stream {
            Some(_) => {
                let s = self.stream().ok_or_else(|| refused("the stream is gone"))?;
                s.callout(cluster, headers, body, ms)
            }
            None => self.config.callout(cluster, headers, body, ms),
        }
        .map_err(|code| HostError::Refused(format!("callout refused ({code})")))?;
        u32::try_from(id).map_err(|_| refused("callout id out of range"))
    }

    fn call_response_header(&self, name: &str) -> Option<Vec<u8>> {
        let call = self.call.borrow();
        call.as_ref()?
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        self.call
            .borrow()
            .as_ref()
            .map(|c| {
                c.body
                    .get(..size.min(c.body.len()))
                    .unwrap_or_default()
                    .to_vec()
            })
            .unwrap_or_default()
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        shared::get(key)
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        shared::set(key, value, cas)
    }

    fn enqueue_usage(&self, record: &[u8]) -> Result<(), HostError> {
        shared::enqueue(record)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.metrics.define(self.config, kind, name)
    }

    fn increment_metric(&self, id: u32, by: u64) {
        let envoy_id = (id >> 1) as usize;
        if id & 1 == 0 {
            self.config.increment(envoy_id, by);
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        let envoy_id = (id >> 1) as usize;
        if id & 1 == 1 {
            self.config.set_gauge(envoy_id, value);
        }
    }
}
