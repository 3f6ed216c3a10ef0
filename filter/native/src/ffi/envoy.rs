//! The callbacks this module calls, the handles over Envoy's pointers and
//! the exported hooks (see the parent module's comment).

use std::os::raw::c_char;

use super::{
    ABI_VERSION, CALLOUT_INIT_SUCCESS, CEnum, Direction, EnvoyBuffer, EnvoyHeader, EnvoyPtr,
    HeaderKind, LogLevel, METRICS_SUCCESS, MetricType, ModuleBuffer, ModuleHeader, ModulePtr,
    concat_buffers, copy_bytes, copy_headers, guard, module_headers,
};
use crate::roles::{self, ModuleConfig, Status, Stream};

// ------------------------------------------------------------ callbacks

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: CEnum, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: CEnum) -> bool;
    fn envoy_dynamic_module_callback_is_validation_mode() -> bool;

    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: EnvoyPtr,
        header_type: CEnum,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: EnvoyPtr,
        header_type: CEnum,
        result: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: EnvoyPtr,
        header_type: CEnum,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: EnvoyPtr,
        attribute_id: CEnum,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: EnvoyPtr,
        header_type: CEnum,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: EnvoyPtr,
        body_type: CEnum,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: EnvoyPtr,
        body_type: CEnum,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_size(
        filter: EnvoyPtr,
        body_type: CEnum,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_append_body(
        filter: EnvoyPtr,
        body_type: CEnum,
        data: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(
        filter: EnvoyPtr,
        body_type: CEnum,
        number_of_bytes: usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(filter: EnvoyPtr) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_response_body(filter: EnvoyPtr)
    -> bool;

    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: EnvoyPtr);
    fn envoy_dynamic_module_callback_http_send_response(
        filter: EnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CEnum;

    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: EnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        gauge_id: *mut usize,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        histogram_id: *mut usize,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: EnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> CEnum;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(config: EnvoyPtr)
    -> EnvoyPtr;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: EnvoyPtr,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: EnvoyPtr);
}

// ---------------------------------------------------------------- logging

pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: no pointers; callable from any thread (abi.h).
    unsafe { envoy_dynamic_module_callback_log_enabled(level as CEnum) }
}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer points into `message`, alive for the call.
    unsafe {
        envoy_dynamic_module_callback_log(level as CEnum, ModuleBuffer::of(message.as_bytes()))
    }
}

/// Whether Envoy only validates its configuration (`--mode validate`):
/// nothing should start then. Main thread only.
pub fn validation_mode() -> bool {
    // SAFETY: no pointers; called from on_http_filter_config_new, on the
    // main thread as the ABI requires.
    unsafe { envoy_dynamic_module_callback_is_validation_mode() }
}

// ----------------------------------------------------------------- stream

/// One HTTP stream's Envoy side. Valid from `on_http_filter_new` until
/// `on_http_filter_destroy`, which drops the `Stream` that owns it; used
/// only on that stream's worker thread (it is neither `Send` nor `Sync`).
pub struct StreamHandle(EnvoyPtr);

impl StreamHandle {
    pub fn headers(&self, kind: HeaderKind) -> Vec<(String, Vec<u8>)> {
        // SAFETY: a live filter pointer (see the type's comment).
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, kind as CEnum) };
        if n == 0 {
            return Vec::new();
        }
        let mut raw = vec![
            EnvoyHeader {
                key_ptr: std::ptr::null(),
                key_length: 0,
                value_ptr: std::ptr::null(),
                value_length: 0,
            };
            n
        ];
        // SAFETY: `raw` has room for the `n` headers Envoy just counted;
        // nothing changes the map between the two calls (same thread, same
        // hook).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.0, kind as CEnum, raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        // SAFETY: Envoy filled `raw` with headers whose buffers live until
        // the end of this hook.
        unsafe { copy_headers(raw.as_ptr(), raw.len()) }
    }

    pub fn header(&self, kind: HeaderKind, name: &str) -> Option<Vec<u8>> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: a live filter pointer; `name` lives for the call; `out`
        // is a valid place for the result, and the size pointer may be
        // null (abi.h).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                kind as CEnum,
                ModuleBuffer::of(name.as_bytes()),
                &raw mut out,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: on success Envoy points `out` at the value, valid until
        // the end of this hook.
        (ok && !out.ptr.is_null()).then(|| unsafe { copy_bytes(out.ptr, out.length) })
    }

    /// Envoy's `response.code_details` (attribute id 16 of abi.h's
    /// `envoy_dynamic_module_type_attribute_id`), if set.
    pub fn response_code_details(&self) -> Option<Vec<u8>> {
        const RESPONSE_CODE_DETAILS: CEnum = 16;
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: a live filter pointer; `out` is a valid place for the
        // result (abi.h).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0,
                RESPONSE_CODE_DETAILS,
                &raw mut out,
            )
        };
        // SAFETY: on success Envoy points `out` at the details, valid until
        // the end of this hook.
        (ok && !out.ptr.is_null()).then(|| unsafe { copy_bytes(out.ptr, out.length) })
    }

    /// Sets a header (replacing every value), or removes it with None.
    pub fn set_header(&self, kind: HeaderKind, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::of);
        // SAFETY: a live filter pointer; both buffers live for the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                kind as CEnum,
                ModuleBuffer::of(name.as_bytes()),
                value,
            )
        }
    }

    fn chunks(&self, body_type: CEnum) -> Vec<u8> {
        // SAFETY: a live filter pointer.
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, body_type) };
        if n == 0 {
            return Vec::new();
        }
        let mut raw = vec![
            EnvoyBuffer {
                ptr: std::ptr::null(),
                length: 0,
            };
            n
        ];
        // SAFETY: room for the `n` chunks just counted, on the same thread
        // in the same hook.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.0, body_type, raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        // SAFETY: Envoy filled `raw` with chunks that live until the end of
        // this hook.
        unsafe { concat_buffers(raw.as_ptr(), raw.len()) }
    }

    fn size(&self, body_type: CEnum) -> usize {
        // SAFETY: a live filter pointer.
        unsafe { envoy_dynamic_module_callback_http_get_body_size(self.0, body_type) }
    }

    /// Whether this hook's data is the buffered body itself (an earlier
    /// filter buffered and resumed): then it must not be counted twice.
    fn received_is_buffered(&self, dir: Direction) -> bool {
        // SAFETY: a live filter pointer.
        unsafe {
            match dir {
                Direction::Request => {
                    envoy_dynamic_module_callback_http_received_buffered_request_body(self.0)
                }
                Direction::Response => {
                    envoy_dynamic_module_callback_http_received_buffered_response_body(self.0)
                }
            }
        }
    }

    /// The body held so far plus this hook's data: what proxy-wasm calls
    /// the body buffer.
    pub fn body(&self, dir: Direction) -> Vec<u8> {
        let mut body = self.chunks(dir.buffered());
        if !self.received_is_buffered(dir) {
            body.extend_from_slice(&self.chunks(dir.received()));
        }
        body
    }

    pub fn body_len(&self, dir: Direction) -> usize {
        let buffered = self.size(dir.buffered());
        if self.received_is_buffered(dir) {
            buffered
        } else {
            buffered.saturating_add(self.size(dir.received()))
        }
    }

    /// Replaces the whole body (held and this hook's) with `with`.
    pub fn replace_body(&self, dir: Direction, with: &[u8]) -> bool {
        // SAFETY: a live filter pointer; draining more than is there
        // drains everything (abi.h); `with` lives for the call.
        unsafe {
            envoy_dynamic_module_callback_http_drain_body(self.0, dir.buffered(), usize::MAX);
            envoy_dynamic_module_callback_http_drain_body(self.0, dir.received(), usize::MAX);
            if with.is_empty() {
                return true;
            }
            // This hook's data goes on after it; outside a body hook there
            // is only the buffered body.
            envoy_dynamic_module_callback_http_append_body(
                self.0,
                dir.received(),
                ModuleBuffer::of(with),
            ) || envoy_dynamic_module_callback_http_append_body(
                self.0,
                dir.buffered(),
                ModuleBuffer::of(with),
            )
        }
    }

    pub fn clear_route_cache(&self) {
        // SAFETY: a live filter pointer (a no-op in the wrong phase).
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    pub fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let mut raw = module_headers(headers);
        // SAFETY: a live filter pointer; `raw` points into `headers`, and
        // both live for the call; no response details (null buffer).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::NULL,
            );
        }
    }

    /// Calls `cluster`; the answer arrives in `on_http_filter_http_callout_done`
    /// with the returned id.
    pub fn callout(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        let mut raw = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: a live filter pointer; every buffer lives for the call;
        // `id` is a valid place for the result.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self.0,
                &raw mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if r == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(r)
        }
    }
}

// ----------------------------------------------------------------- config

/// A filter configuration's Envoy side: metrics and configuration-level
/// calls. Valid until `on_http_filter_config_destroy`, which drops the
/// `ModuleConfig` that owns it (streams of a config end before it does).
#[derive(Clone, Copy)]
pub struct ConfigHandle(EnvoyPtr);

// SAFETY: the handle is only a pointer Envoy keeps alive for the config's
// life. The callbacks used through it from worker threads are the metric
// updates, which abi.h documents as callable outside the request lifecycle
// (Envoy's stats are thread-safe); the callout and scheduler creation run
// only on the main thread (roles.rs).
unsafe impl Send for ConfigHandle {}
// SAFETY: as for Send: no callback through it mutates module state.
unsafe impl Sync for ConfigHandle {}

impl ConfigHandle {
    /// The most labels a metric may have (aipipe's have at most five).
    pub const MAX_LABELS: usize = 8;

    /// Defines a counter, gauge or histogram with these label names (none:
    /// a plain metric); main thread, during configuration.
    pub fn define(&self, kind: MetricType, name: &str, labels: &[&str]) -> Option<usize> {
        let mut id = 0usize;
        let mut names: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let f = match kind {
            MetricType::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricType::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricType::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        // SAFETY: a live config pointer; `name` and every label name live
        // for the call; no labels is a null array of length 0 (abi.h);
        // `id` is a valid place for the result.
        let r = unsafe {
            f(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                if names.is_empty() {
                    std::ptr::null_mut()
                } else {
                    names.as_mut_ptr()
                },
                names.len(),
                &raw mut id,
            )
        };
        (r == METRICS_SUCCESS).then_some(id)
    }

    /// Adds to a counter, sets a gauge or records into a histogram, with
    /// the label values of the metric's definition (none for a plain one).
    pub fn update(&self, kind: MetricType, id: usize, labels: &[String], value: u64) {
        // On the stack: this runs for every metric update of every request.
        let mut buffers = [ModuleBuffer::of(&[]); Self::MAX_LABELS];
        if labels.len() > Self::MAX_LABELS {
            return;
        }
        for (slot, l) in buffers.iter_mut().zip(labels) {
            *slot = ModuleBuffer::of(l.as_bytes());
        }
        let values = buffers.get_mut(..labels.len()).unwrap_or_default();
        let f = match kind {
            MetricType::Counter => {
                envoy_dynamic_module_callback_http_filter_config_increment_counter
            }
            MetricType::Gauge => envoy_dynamic_module_callback_http_filter_config_set_gauge,
            MetricType::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_record_histogram_value
            }
        };
        // SAFETY: a live config pointer; every label value lives for the
        // call; no labels is a null array of length 0.
        unsafe {
            f(
                self.0,
                id,
                if values.is_empty() {
                    std::ptr::null_mut()
                } else {
                    values.as_mut_ptr()
                },
                values.len(),
                value,
            );
        }
    }

    /// A call of the configuration's own (main thread); the answer arrives
    /// in `on_http_filter_config_http_callout_done`.
    pub fn callout(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        let mut raw = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: a live config pointer; every buffer lives for the call;
        // `id` is a valid place for the result.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &raw mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if r == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(r)
        }
    }

    /// A scheduler that runs `on_http_filter_config_scheduled` on the main
    /// thread; main thread only.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: a live config pointer.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!p.is_null()).then_some(Scheduler(p))
    }
}

/// Posts events to a configuration's main thread, from any thread. Deleted
/// when dropped.
pub struct Scheduler(EnvoyPtr);

// SAFETY: abi.h: "This is safe to call from any thread" for the commit;
// delete happens once, in Drop, by whoever holds the last reference.
unsafe impl Send for Scheduler {}
// SAFETY: as for Send: commit takes the pointer by value and is
// thread-safe.
unsafe impl Sync for Scheduler {}

impl Scheduler {
    pub fn commit(&self, event: u64) {
        // SAFETY: a scheduler created by scheduler_new and not yet deleted
        // (only Drop deletes it).
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event) }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: created by scheduler_new; deleted exactly once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

// ------------------------------------------------------------------ hooks

/// The module's config behind a pointer this module handed to Envoy.
fn config<'a>(p: ModulePtr) -> Option<&'a ModuleConfig> {
    // SAFETY: Envoy hands back exactly the pointer on_http_filter_config_new
    // returned (a leaked Box<ModuleConfig>), until config_destroy.
    unsafe { p.cast::<ModuleConfig>().as_ref() }
}

/// Runs one of a stream's hooks on the module's stream behind `p` (the
/// pointer on_http_filter_new handed to Envoy); `default` without one.
///
/// Envoy can run a stream's hooks inside one another, and even destroy
/// the stream inside a hook (a local reply sent from a hook can end the
/// stream at once). So the stream is only ever borrowed shared (its state
/// is in a RefCell), and a destroy that arrives inside a hook is carried
/// out here, when the outermost hook is done with the stream.
fn run<T>(
    p: ModulePtr,
    default: T,
    body: impl FnOnce(&Stream) -> T,
    on_panic: impl FnOnce(&Stream) -> T,
) -> T {
    // SAFETY: Envoy hands back exactly the pointer on_http_filter_new
    // returned (a leaked Box<Stream>); it stays allocated until freed below
    // or in on_http_filter_destroy, never while a hook runs on it (the
    // depth count).
    let Some(s) = (unsafe { p.cast::<Stream>().as_ref() }) else {
        return default;
    };
    s.enter();
    let out = guard(|| body(s), || on_panic(s));
    // A panic here leaks the stream rather than risk freeing it twice.
    let free = guard(|| s.leave(), || false);
    if free {
        // SAFETY: Envoy destroyed the stream during this hook (leave said
        // so) and will not use the pointer again; `s` is not used after
        // this point.
        drop(unsafe { Box::from_raw(p.cast::<Stream>().cast_mut()) });
    }
    out
}

fn status(s: Status) -> CEnum {
    match s {
        Status::Continue => 0,
        Status::Stop => 1,
    }
}

/// Envoy calls this once, when it loads the module: the ABI version this
/// module speaks.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard(roles::program_init, || ());
    ABI_VERSION.as_ptr().cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: EnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    // SAFETY: Envoy's name and config buffers are valid during this hook.
    let (name, bytes) = unsafe {
        (
            copy_bytes(name.ptr, name.length),
            copy_bytes(config.ptr, config.length),
        )
    };
    let made = guard(
        || ModuleConfig::new(ConfigHandle(config_envoy), &name, &bytes),
        || None,
    );
    match made {
        Some(c) => Box::into_raw(Box::new(c)).cast_const().cast(),
        // Envoy refuses the configuration.
        None => std::ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config_module: ModulePtr) {
    if config_module.is_null() {
        return;
    }
    // SAFETY: the pointer config_new leaked; Envoy destroys it once and
    // uses it no more.
    let c = unsafe { Box::from_raw(config_module.cast::<ModuleConfig>().cast_mut()) };
    guard(move || drop(c), || ());
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> ModulePtr {
    // No per-route configuration: Envoy refuses one.
    std::ptr::null()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_p: ModulePtr) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_module: ModulePtr,
    filter_envoy: EnvoyPtr,
) -> ModulePtr {
    let Some(c) = config(config_module) else {
        return std::ptr::null();
    };
    let made = guard(|| Some(c.stream(StreamHandle(filter_envoy))), || None);
    match made {
        Some(s) => Box::into_raw(Box::new(s)).cast_const().cast(),
        // Envoy closes the stream.
        None => std::ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_module: ModulePtr) {
    // SAFETY: the pointer on_http_filter_new leaked, not yet freed (Envoy
    // destroys a stream once; `run` frees it only after this call).
    let Some(s) = (unsafe { filter_module.cast::<Stream>().as_ref() }) else {
        return;
    };
    // Inside one of the stream's hooks, the hook frees it when done.
    if guard(|| s.destroy(), || false) {
        // SAFETY: no hook runs on the stream, and Envoy uses the pointer no
        // more.
        let s = unsafe { Box::from_raw(filter_module.cast::<Stream>().cast_mut()) };
        guard(move || drop(s), || ());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
    end_of_stream: bool,
) -> CEnum {
    status(run(
        filter_module,
        Status::Continue,
        |s| s.request_headers(end_of_stream),
        Stream::on_panic,
    ))
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
    end_of_stream: bool,
) -> CEnum {
    status(run(
        filter_module,
        Status::Continue,
        |s| s.request_body(end_of_stream),
        Stream::on_panic,
    ))
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
) -> CEnum {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
    end_of_stream: bool,
) -> CEnum {
    status(run(
        filter_module,
        Status::Continue,
        |s| s.response_headers(end_of_stream),
        Stream::on_panic,
    ))
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
    end_of_stream: bool,
) -> CEnum {
    status(run(
        filter_module,
        Status::Continue,
        |s| s.response_body(end_of_stream),
        Stream::on_panic,
    ))
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
) -> CEnum {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
) {
    run(filter_module, (), Stream::complete, Stream::count_panic);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: EnvoyPtr,
    filter_module: ModulePtr,
    callout_id: u64,
    _result: CEnum,
    headers: *mut EnvoyHeader,
    headers_size: usize,
    body_chunks: *mut EnvoyBuffer,
    body_chunks_size: usize,
) {
    // Copied before anything else runs: the buffers live until this hook
    // returns. A failed call has neither (no `:status`: the flow's failure).
    // SAFETY: abi.h: headers and body chunks (null when the call failed)
    // are valid until the end of this hook.
    let (headers, body) = unsafe {
        (
            copy_headers(headers, headers_size),
            concat_buffers(body_chunks, body_chunks_size),
        )
    };
    run(
        filter_module,
        (),
        |s| s.callout_done(callout_id, headers, body),
        |s| {
            s.on_panic();
        },
    );
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _stream_id: u64,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _stream_id: u64,
    _trailers: *mut EnvoyHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _stream_id: u64,
    _reason: CEnum,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _event_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _filter_envoy: EnvoyPtr,
    _filter_module: ModulePtr,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> CEnum {
    // Send the local reply as it is.
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: EnvoyPtr,
    config_module: ModulePtr,
    event_id: u64,
) {
    if let Some(c) = config(config_module) {
        guard(|| c.scheduled(event_id), || ());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: EnvoyPtr,
    config_module: ModulePtr,
    callout_id: u64,
    _result: CEnum,
    headers: *mut EnvoyHeader,
    headers_size: usize,
    body_chunks: *mut EnvoyBuffer,
    body_chunks_size: usize,
) {
    let Some(c) = config(config_module) else {
        return;
    };
    // SAFETY: abi.h: headers and body chunks (null when the call failed)
    // are valid until the end of this hook.
    let (headers, body) = unsafe {
        (
            copy_headers(headers, headers_size),
            concat_buffers(body_chunks, body_chunks_size),
        )
    };
    guard(|| c.callout_done(callout_id, headers, body), || ());
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: EnvoyPtr,
    _config_module: ModulePtr,
    _stream_id: u64,
    _headers: *mut EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: EnvoyPtr,
    _config_module: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: EnvoyPtr,
    _config_module: ModulePtr,
    _stream_id: u64,
    _trailers: *mut EnvoyHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: EnvoyPtr,
    _config_module: ModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: EnvoyPtr,
    _config_module: ModulePtr,
    _stream_id: u64,
    _reason: CEnum,
) {
}
