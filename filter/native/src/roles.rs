//! The module's three roles, chosen by the dynamic-module filter's
//! `filter_name` exactly as the Wasm build chooses by root id:
//!
//! | `filter_name` | configuration | does |
//! |---|---|---|
//! | `aipipe` | the plugin configuration JSON | the request flow (`flow::Request`), one per stream |
//! | `aipipe_singleton` | the singleton configuration JSON | `flow::Singleton`: table poll and usage shipping, on the main thread |
//! | `aipipe_upstream` | none | on a provider cluster: a failed answer becomes the failover redirect |
//!
//! The singleton role is an HTTP filter whose streams do nothing; its
//! configuration object (one per listener it is placed on, made on the main
//! thread) holds the singleton. A thread of its own wakes it every
//! `poll_ms` through the configuration's scheduler (the ABI's
//! configuration-level scheduler posts to the main thread but has no
//! timer), and its calls are configuration-level callouts, answered on the
//! main thread. filter/native/README.md says why not a bootstrap extension.
//!
//! `flow::Filter` is single-threaded (it is one Wasm VM's state): each
//! worker thread builds its own from the configuration, on its first
//! stream, as each Wasm worker VM does.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use aipipe_core::catalog;
use aipipe_core::config::{Config, SingletonConfig};
use aipipe_core::contract::{FAILOVER_LOCATION_HEADER, SINGLETON_ROOT_ID, UPSTREAM_ROOT_ID};
use aipipe_core::error::ApiError;
use aipipe_core::flow::{Action, Filter, Host, MetricKind, Request, Singleton};
use aipipe_core::redirect::failover_redirect;

use crate::ffi::{self, ConfigHandle, HeaderKind, Scheduler, StreamHandle};
use crate::host::{CallAnswer, Metrics, NativeHost};
use crate::shared;

/// What a hook tells Envoy: go on, or hold (headers held / body buffered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Continue,
    Stop,
}

fn status(a: Action) -> Status {
    match a {
        Action::Continue => Status::Continue,
        Action::Pause => Status::Stop,
    }
}

/// Counted whenever a hook caught a panic (the request got a 500).
const PANICS_METRIC: &str = "aipipe.native.panics";

/// Event ids posted to the singleton's main thread.
const TICK: u64 = 1;
const WAKE: u64 = 2;

static NEXT_CONFIG_ID: AtomicU64 = AtomicU64::new(1);
/// The filter configurations alive now; a worker drops its `Filter` of one
/// that is gone when it next builds one.
static LIVE_FILTERS: RwLock<Option<HashSet<u64>>> = RwLock::new(None);

thread_local! {
    /// This worker's `Filter` per filter configuration.
    static FILTERS: RefCell<HashMap<u64, Rc<Filter>>> = RefCell::new(HashMap::new());
    /// The singletons, on the main thread (where every one of their events
    /// runs).
    static SINGLETONS: RefCell<HashMap<u64, SingletonState>> = RefCell::new(HashMap::new());
}

struct SingletonState {
    singleton: Box<Singleton>,
    host: NativeHost,
}

/// Called once when Envoy loads the module.
pub fn program_init() {
    crate::logger::install();
}

enum Role {
    /// The plugin configuration, validated; each worker parses its own copy.
    Filter {
        json: Vec<u8>,
    },
    Singleton {
        _ticker: Option<Ticker>,
    },
    Upstream,
}

/// One dynamic-module filter configuration (what Envoy's pointer stands
/// for), shared by every worker's streams.
pub struct ModuleConfig {
    id: u64,
    envoy: ConfigHandle,
    metrics: Arc<Metrics>,
    role: Role,
}

impl ModuleConfig {
    /// The configuration for `filter_name` `name`, or None (logged) when
    /// Envoy must refuse it.
    pub fn new(envoy: ConfigHandle, name: &[u8], bytes: &[u8]) -> Option<Self> {
        let id = NEXT_CONFIG_ID.fetch_add(1, Ordering::Relaxed);
        let metrics = Arc::new(Metrics::new());
        let host = NativeHost::for_config(envoy, metrics.clone());
        host.define_metric(MetricKind::Counter, PANICS_METRIC);
        let role = match name {
            b"aipipe" => filter_role(&host, id, bytes)?,
            n if n == SINGLETON_ROOT_ID.as_bytes() => singleton_role(envoy, host, id, bytes)?,
            n if n == UPSTREAM_ROOT_ID.as_bytes() => Role::Upstream,
            other => {
                log::error!(
                    "unknown filter_name {:?}: expected aipipe, {SINGLETON_ROOT_ID} or {UPSTREAM_ROOT_ID}",
                    String::from_utf8_lossy(other)
                );
                return None;
            }
        };
        metrics.freeze();
        Some(Self {
            id,
            envoy,
            metrics,
            role,
        })
    }

    /// A new stream through this configuration (on a worker thread).
    pub fn stream(&self, envoy: StreamHandle) -> Stream {
        let host = NativeHost::for_stream(envoy, self.envoy, self.metrics.clone());
        let state = match &self.role {
            Role::Filter { json } => match worker_filter(self.id, json, &host) {
                #[cfg(feature = "floor")]
                Some(_) => State::Floor,
                #[cfg(not(feature = "floor"))]
                Some(filter) => State::Filter(filter.request()),
                None => State::Inert,
            },
            Role::Upstream => State::Upstream(None),
            Role::Singleton { .. } => State::Inert,
        };
        Stream {
            host,
            state: RefCell::new(state),
            poisoned: Cell::new(false),
            depth: Cell::new(0),
            complete_pending: Cell::new(false),
            destroy_pending: Cell::new(false),
        }
    }

    /// An event posted to the main thread (the singleton's tick or wake-up).
    pub fn scheduled(&self, event: u64) {
        with_singleton(self.id, |s| {
            let (records, dropped) = shared::drain();
            if dropped > 0 {
                log::warn!("singleton: {dropped} usage records dropped (the usage queue was full)");
                s.singleton.count_dropped(&s.host, dropped);
            }
            if !records.is_empty() {
                s.singleton.take_records(&s.host, records);
            }
            if event == TICK {
                s.singleton.poll(&s.host);
            }
        });
    }

    /// The answer to one of the singleton's calls.
    pub fn callout_done(&self, id: u64, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) {
        let Ok(token) = u32::try_from(id) else {
            return;
        };
        with_singleton(self.id, |s| {
            let size = body.len();
            s.host.deliver(Some(CallAnswer { headers, body }));
            s.singleton.on_call_response(&s.host, token, size);
            s.host.deliver(None);
        });
    }
}

impl Drop for ModuleConfig {
    fn drop(&mut self) {
        match &self.role {
            Role::Filter { .. } => {
                if let Some(live) = LIVE_FILTERS
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    live.remove(&self.id);
                }
                let _ = FILTERS.try_with(|f| f.borrow_mut().remove(&self.id));
            }
            Role::Singleton { .. } => {
                shared::set_waker(self.id, None);
                // Its configuration was replaced (or Envoy exits): what it
                // had not shipped goes back on the queue, for the singleton
                // that takes its place (filter/README.md, "Usage and
                // accounting").
                let state = SINGLETONS
                    .try_with(|s| s.borrow_mut().remove(&self.id))
                    .ok()
                    .flatten();
                if let Some(mut state) = state {
                    let records = state.singleton.hand_over();
                    if !records.is_empty() {
                        log::info!(
                            "singleton: configuration gone: {} usage records and notices handed to the next singleton",
                            records.len()
                        );
                    }
                    shared::requeue(records);
                }
            }
            Role::Upstream => {}
        }
        // The ticker (if any) stops and is joined when the role drops.
    }
}

fn filter_role(host: &NativeHost, id: u64, bytes: &[u8]) -> Option<Role> {
    let config = match Config::parse(bytes) {
        Ok(c) => c,
        Err(e) => {
            log::error!("refusing plugin configuration: {e}");
            return None;
        }
    };
    // Every metric a worker's filter uses is defined now, on the main
    // thread: the filter's own (by building one and dropping it), and each
    // known model's. The per-model names are `flow::filter`'s
    // `ModelMetrics`; a model added to the catalog at run time gets none
    // in this build (Envoy defines metrics only while configuring).
    let models: Vec<String> = config
        .table
        .as_ref()
        .map(|t| t.models_ix().map(|(_, m)| m.id.clone()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(catalog::default_models().into_iter().map(|m| m.id))
        .collect();
    let filter = Filter::new(config, host);
    log::info!(
        "configured natively (bootstrap table version {})",
        filter
            .table_version()
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    drop(filter);
    for m in models {
        let m = m.replace('.', "_");
        for (kind, what) in [
            (MetricKind::Counter, "attempts_ok"),
            (MetricKind::Counter, "attempts_failed"),
            (MetricKind::Gauge, "penalty_milli"),
        ] {
            host.define_metric(kind, &format!("aipipe.model.{m}.{what}"));
        }
    }
    LIVE_FILTERS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(id);
    Some(Role::Filter {
        json: bytes.to_vec(),
    })
}

/// This worker's filter for configuration `id`, built on first use.
fn worker_filter(id: u64, json: &[u8], host: &NativeHost) -> Option<Rc<Filter>> {
    FILTERS.with(|filters| {
        if let Some(f) = filters.borrow().get(&id) {
            return Some(f.clone());
        }
        // Validated when the configuration was made.
        let config = Config::parse(json).ok()?;
        let filter = Filter::new(config, host);
        let mut filters = filters.borrow_mut();
        if let Some(live) = LIVE_FILTERS
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            filters.retain(|k, _| live.contains(k));
        }
        filters.insert(id, filter.clone());
        Some(filter)
    })
}

fn singleton_role(envoy: ConfigHandle, host: NativeHost, id: u64, bytes: &[u8]) -> Option<Role> {
    let validating = ffi::validation_mode();
    // Validating, the configuration is checked without the secret (it is in
    // the running Envoy's environment only).
    let parsed = if validating {
        SingletonConfig::parse_with(bytes, |_| Some("validation".to_owned()))
    } else {
        SingletonConfig::parse(bytes)
    };
    let config = match parsed {
        Ok(c) => c,
        // As the Wasm singleton: without its token it cannot call, and the
        // filter keeps routing with its bootstrap table.
        Err(e) if e.starts_with("control_plane.token_env") => {
            log::error!("singleton not started: {e}");
            return Some(Role::Singleton { _ticker: None });
        }
        Err(e) => {
            log::error!("refusing singleton configuration: {e}");
            return None;
        }
    };
    let singleton = Box::new(Singleton::new(config.control_plane, &host));
    let interval = singleton.poll_interval();
    if validating {
        return Some(Role::Singleton { _ticker: None });
    }
    let Some(scheduler) = envoy.scheduler() else {
        log::error!("singleton: Envoy gave no scheduler");
        return None;
    };
    let scheduler = Arc::new(scheduler);
    let waker = scheduler.clone();
    shared::set_waker(id, Some(Arc::new(move || waker.commit(WAKE))));
    SINGLETONS.with(|s| {
        s.borrow_mut()
            .insert(id, SingletonState { singleton, host })
    });
    let ticker = Ticker::start(scheduler, interval);
    Some(Role::Singleton { _ticker: ticker })
}

fn with_singleton(id: u64, f: impl FnOnce(&mut SingletonState)) {
    SINGLETONS.with(|s| {
        if let Some(state) = s.borrow_mut().get_mut(&id) {
            f(state);
        }
    });
}

/// Posts a tick to the singleton's main thread every interval, until
/// dropped (then it is stopped and joined at once).
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(scheduler: Arc<Scheduler>, every: Duration) -> Option<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("aipipe-tick".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    let (s, timeout) = cv
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(PoisonError::into_inner);
                    stopped = s;
                    if timeout.timed_out() && !*stopped {
                        scheduler.commit(TICK);
                    }
                }
            });
        match thread {
            Ok(t) => Some(Self {
                stop,
                thread: Some(t),
            }),
            Err(e) => {
                log::error!("singleton: cannot start its ticker thread: {e}");
                None
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ----------------------------------------------------------------- streams

// A stream holds one State for its whole life, inside its own heap
// allocation (the Box Envoy keeps): the small variants waste nothing worth
// a second allocation per request.
#[allow(clippy::large_enum_variant)]
// The floor (bench builds only) never routes.
#[cfg_attr(feature = "floor", allow(dead_code))]
enum State {
    Filter(Request),
    /// The upstream role: the failover location the attempt carried.
    Upstream(Option<String>),
    /// Nothing to do (the singleton's streams, or a filter without config).
    Inert,
    /// Bench builds only: the native floor (`floor.rs`).
    #[cfg(feature = "floor")]
    Floor,
}

/// One HTTP stream through the module (lives from `on_http_filter_new` to
/// `on_http_filter_destroy`, on one worker thread).
///
/// The state sits in a `RefCell`: Envoy can run one of this stream's hooks
/// inside another (a local reply sent from a hook passes the reply's own
/// response headers through the filter at once). Such a nested hook finds
/// the state borrowed and lets the reply pass, which is what the flow does
/// with its own local reply anyway.
pub struct Stream {
    host: NativeHost,
    state: RefCell<State>,
    /// A hook panicked: the stream got its 500; the rest passes untouched.
    poisoned: Cell<bool>,
    /// Hooks of this stream running now (more than one: Envoy ran one
    /// inside another).
    depth: Cell<u32>,
    /// Envoy completed the stream inside another hook: the usage record is
    /// written when that hook is done.
    complete_pending: Cell<bool>,
    /// Envoy destroyed the stream inside a hook: it is freed when the
    /// outermost hook returns (the hooks in `ffi` do that).
    destroy_pending: Cell<bool>,
}

impl Stream {
    /// A hook starts.
    pub fn enter(&self) {
        self.depth.set(self.depth.get().saturating_add(1));
    }

    /// A hook ends. The outermost one runs what Envoy asked for inside it
    /// (the stream's completion) and says whether the stream must now be
    /// freed.
    pub fn leave(&self) -> bool {
        let depth = self.depth.get().saturating_sub(1);
        self.depth.set(depth);
        if depth > 0 {
            return false;
        }
        if self.complete_pending.replace(false) {
            self.enter();
            self.complete();
            self.depth.set(self.depth.get().saturating_sub(1));
        }
        self.destroy_pending.get()
    }

    /// Envoy destroys the stream. True when it can be freed now; false
    /// inside a hook (freed when that hook returns).
    pub fn destroy(&self) -> bool {
        if self.depth.get() == 0 {
            return true;
        }
        self.host.forget_stream();
        self.destroy_pending.set(true);
        false
    }

    fn with(&self, f: impl FnOnce(&mut State, &NativeHost) -> Status) -> Status {
        if self.poisoned.get() {
            return Status::Continue;
        }
        match self.state.try_borrow_mut() {
            Ok(mut state) => {
                self.host.new_hook();
                f(&mut state, &self.host)
            }
            Err(_) => Status::Continue,
        }
    }

    pub fn request_headers(&self, end_of_stream: bool) -> Status {
        #[cfg(feature = "panic-probe")]
        if self
            .host
            .stream()
            .and_then(|s| s.header(HeaderKind::Request, "x-aipipe-panic-probe"))
            .is_some()
        {
            #[allow(clippy::panic)]
            {
                panic!("panic probe");
            }
        }
        self.with(|state, host| match state {
            State::Filter(r) => status(r.on_request_headers(host, end_of_stream)),
            #[cfg(feature = "floor")]
            State::Floor => crate::floor::request_headers(host.stream(), end_of_stream),
            State::Upstream(location) => {
                if let Some(s) = host.stream()
                    && let Some(l) = s.header(HeaderKind::Request, FAILOVER_LOCATION_HEADER)
                {
                    // The provider never sees it.
                    s.set_header(HeaderKind::Request, FAILOVER_LOCATION_HEADER, None);
                    *location = String::from_utf8(l).ok();
                }
                Status::Continue
            }
            State::Inert => Status::Continue,
        })
    }

    pub fn request_body(&self, end_of_stream: bool) -> Status {
        self.with(|state, host| match state {
            State::Filter(r) => {
                let size = host
                    .stream()
                    .map_or(0, |s| s.body_len(ffi::Direction::Request));
                status(r.on_request_body(host, size, end_of_stream))
            }
            #[cfg(feature = "floor")]
            State::Floor => crate::floor::request_body(host.stream(), end_of_stream),
            _ => Status::Continue,
        })
    }

    pub fn response_headers(&self, end_of_stream: bool) -> Status {
        self.with(|state, host| match state {
            State::Filter(r) => status(r.on_response_headers(host, end_of_stream)),
            #[cfg(feature = "floor")]
            State::Floor => crate::floor::response_headers(host.stream(), end_of_stream),
            State::Upstream(location) => {
                let Some(s) = host.stream() else {
                    return Status::Continue;
                };
                let status = s
                    .header(HeaderKind::Response, ":status")
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u16>().ok())
                    .unwrap_or(0);
                let redirect = location
                    .take()
                    .and_then(|location| failover_redirect(&location, status));
                for (name, value) in redirect.iter().flatten() {
                    if !s.set_header(HeaderKind::Response, name, Some(value.as_bytes())) {
                        log::warn!("cannot turn a failed answer into a failover redirect");
                        break;
                    }
                }
                Status::Continue
            }
            State::Inert => Status::Continue,
        })
    }

    pub fn response_body(&self, end_of_stream: bool) -> Status {
        self.with(|state, host| match state {
            State::Filter(r) => {
                let size = host
                    .stream()
                    .map_or(0, |s| s.body_len(ffi::Direction::Response));
                status(r.on_response_body(host, size, end_of_stream))
            }
            #[cfg(feature = "floor")]
            State::Floor => crate::floor::response_body(host.stream(), end_of_stream),
            _ => Status::Continue,
        })
    }

    /// The stream is over (before access logs): the usage record goes out.
    /// Inside another of this stream's hooks (a local reply that ended the
    /// stream at once), it waits until that hook is done.
    pub fn complete(&self) {
        if self.depth.get() > 1 {
            self.complete_pending.set(true);
            return;
        }
        self.with(|state, host| {
            if let State::Filter(r) = state {
                r.on_log(host);
            }
            Status::Continue
        });
    }

    pub fn callout_done(&self, id: u64, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) {
        let Ok(token) = u32::try_from(id) else {
            return;
        };
        self.with(|state, host| {
            if let State::Filter(r) = state {
                let size = body.len();
                host.deliver(Some(CallAnswer { headers, body }));
                r.on_call_response(host, token, size);
                host.deliver(None);
            }
            Status::Continue
        });
    }

    /// A hook panicked: count it, answer 500 if the answer has not started,
    /// and let everything else about this stream pass untouched.
    pub fn on_panic(&self) -> Status {
        self.count_panic();
        if let Some(s) = self.host.stream() {
            let e = ApiError::Internal("panic".into());
            s.send_response(
                e.status(),
                &[("content-type", "application/json")],
                e.body().as_bytes(),
            );
        }
        Status::Stop
    }

    pub fn count_panic(&self) {
        self.poisoned.set(true);
        self.host.count(PANICS_METRIC, 1);
        log::error!("a hook panicked; the request was answered 500");
    }
}
