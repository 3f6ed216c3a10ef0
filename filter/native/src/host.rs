//! aipipe-core's `Host` over Envoy's dynamic-module ABI: one per stream
//! (the filter role, over that stream's Envoy pointer) or one per
//! configuration (the singleton, over the configuration's pointer, which
//! has no request of its own). Shared data and the usage queue are this
//! process's memory (`shared`); metrics are Envoy's, defined while Envoy
//! configures the module (`Metrics`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aipipe_core::flow::{Host, HostError, MetricKind};

use crate::edit::splice;
use crate::ffi::{ConfigHandle, Direction, HeaderKind, MetricType, StreamHandle};
use crate::shared;

/// One configuration's metrics, by name. Envoy lets a module define
/// metrics only while it creates the configuration (main thread); after
/// that the table is frozen and a worker's `define_metric` only looks a
/// name up. A family (a metric with label names) is defined the same way;
/// its members — one per set of label values — are made by Envoy on first
/// use, at any time, so `family_member` only notes the values.
///
/// A host's metric id carries the kind in its low bits and either Envoy's
/// id (a plain metric) or the index of a member (`MEMBER`), so updating a
/// plain metric costs no lookup and a member one read lock.
pub struct Metrics {
    names: Mutex<HashMap<String, u32>>,
    frozen: AtomicBool,
    /// Families: (kind, Envoy's id, label count), by id.
    families: Mutex<Vec<(MetricType, usize, usize)>>,
    /// Members made so far: their family's Envoy id and label values, and
    /// the index of each set of values (bounded by the callers: aipipe-core
    /// caps its label combinations).
    members: RwLock<Vec<(usize, Vec<String>)>>,
    member_ids: Mutex<HashMap<(u32, Vec<String>), u32>>,
}

const KIND_MASK: u32 = 0b11;
const MEMBER: u32 = 0b100;
const SHIFT: u32 = 3;

fn kind_bits(kind: MetricType) -> u32 {
    match kind {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Histogram => 2,
    }
}

fn kind_of(id: u32) -> MetricType {
    match id & KIND_MASK {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        _ => MetricType::Histogram,
    }
}

fn envoy_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            names: Mutex::new(HashMap::new()),
            frozen: AtomicBool::new(false),
            families: Mutex::new(Vec::new()),
            members: RwLock::new(Vec::new()),
            member_ids: Mutex::new(HashMap::new()),
        }
    }

    /// No more definitions (the configuration is made).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Release);
    }

    /// A metric (no labels) or a family (labels), by name: defined while
    /// not frozen, looked up after. Envoy's id in the high bits.
    fn define(
        &self,
        envoy: ConfigHandle,
        kind: MetricKind,
        name: &str,
        labels: &[&str],
    ) -> Option<u32> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = names.get(name) {
            return Some(id);
        }
        if self.frozen.load(Ordering::Acquire) {
            return None;
        }
        let kind = envoy_type(kind);
        let envoy_id = u32::try_from(envoy.define(kind, name, labels)?).ok()?;
        let id = envoy_id.checked_mul(1 << SHIFT)? | kind_bits(kind);
        names.insert(name.to_owned(), id);
        Some(id)
    }

    fn define_family(
        &self,
        envoy: ConfigHandle,
        kind: MetricKind,
        name: &str,
        labels: &[&str],
    ) -> Option<u32> {
        let plain = self.define(envoy, kind, name, labels)?;
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = (envoy_type(kind), (plain >> SHIFT) as usize, labels.len());
        let ix = match families.iter().position(|f| *f == entry) {
            Some(ix) => ix,
            None => {
                families.push(entry);
                families.len() - 1
            }
        };
        u32::try_from(ix).ok()
    }

    fn member(&self, family: u32, values: &[&str]) -> Option<u32> {
        let (kind, envoy_id, n) = *self
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(family as usize)?;
        if n != values.len() {
            return None;
        }
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut ids = self
            .member_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = ids.get(&(family, values.clone())) {
            return Some(id);
        }
        let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
        let ix = u32::try_from(members.len()).ok()?;
        let id = ix.checked_mul(1 << SHIFT)? | MEMBER | kind_bits(kind);
        members.push((envoy_id, values.clone()));
        ids.insert((family, values), id);
        Some(id)
    }

    fn update(&self, envoy: ConfigHandle, id: u32, value: u64) {
        let kind = kind_of(id);
        let ix = (id >> SHIFT) as usize;
        if id & MEMBER == 0 {
            envoy.update(kind, ix, &[], value);
        } else if let Some((envoy_id, labels)) = self
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ix)
        {
            envoy.update(kind, *envoy_id, labels, value);
        }
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

    /// The ABI gives a module no node id outside a request's attributes
    /// (and the singleton has no request): the host's name stands in for
    /// it, unless the singleton configuration names the node.
    fn node_id(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
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

    fn response_code_details(&self) -> Option<String> {
        String::from_utf8(self.stream()?.response_code_details()?).ok()
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
        self.metrics.define(self.config, kind, name, &[])
    }

    fn define_family(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        self.metrics.define_family(self.config, kind, name, labels)
    }

    fn family_member(&self, family: u32, values: &[&str]) -> Option<u32> {
        self.metrics.member(family, values)
    }

    fn increment_metric(&self, id: u32, by: u64) {
        if kind_of(id) == MetricType::Counter {
            self.metrics.update(self.config, id, by);
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        if kind_of(id) != MetricType::Counter {
            self.metrics.update(self.config, id, value);
        }
    }
}
