//! Envoy's dynamic-module C ABI: the only `unsafe` code in the workspace.
//!
//! Three parts, in this order:
//! 1. the ABI's types and the callbacks this module uses, declared by hand
//!    from Envoy 1.40's `source/extensions/dynamic_modules/abi/abi.h` (only
//!    what is used; no bindgen);
//! 2. safe handles over Envoy's pointers (`Stream`, `ConfigHandle`,
//!    `Scheduler`) and the pointer/length helpers, which turn what Envoy
//!    hands over into owned Rust values at once;
//! 3. the exported hooks (`envoy_dynamic_module_on_*`). Each turns its raw
//!    pointers into references and calls the safe code in `roles` inside
//!    `catch_unwind`: a panic must never unwind into Envoy (that is
//!    undefined behaviour, and an abort takes Envoy down).
//!
//! Pointer lifetimes, from abi.h: a filter's Envoy pointer is valid until
//! `on_http_filter_destroy`; a filter config's until
//! `on_http_filter_config_destroy`; buffers Envoy returns are valid until
//! the end of the current hook (or the next setter call), so they are
//! copied before any other callback runs.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::os::raw::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

// The callbacks and hooks: only inside Envoy (an executable that links
// this crate, a test or the fuzz target, has no Envoy to call).
#[cfg(all(feature = "envoy", not(test)))]
mod envoy;
#[cfg(all(feature = "envoy", not(test)))]
pub use envoy::{ConfigHandle, Scheduler, StreamHandle, log, log_enabled, validation_mode};

// ---------------------------------------------------------------- types

pub(crate) type EnvoyPtr = *mut c_void;
pub(crate) type ModulePtr = *const c_void;
/// C enums are passed as `int`; every enum value here is small and
/// non-negative.
pub(crate) type CEnum = u32;

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by this module,
/// valid for the duration of the callback they are passed to.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// The ABI's "null" buffer (removes a header; no response details).
    pub(crate) const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_envoy_http_header`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_module_http_header`.
#[repr(C)]
pub(crate) struct ModuleHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

pub(crate) fn module_headers(headers: &[(&str, &str)]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect()
}

/// `envoy_dynamic_module_type_http_header_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    Request = 0,
    Response = 2,
}

/// Which kind of metric a definition or an update is for (each kind has
/// its own callbacks and its own ids in Envoy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// `envoy_dynamic_module_type_http_body_type`: received (this hook's data)
/// and buffered (what earlier hooks held back), per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub(crate) fn received(self) -> CEnum {
        match self {
            Self::Request => 0,
            Self::Response => 2,
        }
    }
    pub(crate) fn buffered(self) -> CEnum {
        match self {
            Self::Request => 1,
            Self::Response => 3,
        }
    }
}

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy, Debug)]
pub enum LogLevel {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

pub(crate) const CALLOUT_INIT_SUCCESS: CEnum = 0;
pub(crate) const METRICS_SUCCESS: CEnum = 0;

/// The version string of the ABI this module was written against: Envoy
/// 1.40 checks it (and only warns on a mismatch).
pub(crate) const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ------------------------------------------- pointer and length helpers

/// The bytes of an Envoy buffer, copied. A null pointer (Envoy's "no
/// value") is empty whatever its length says.
///
/// # Safety
/// A non-null `ptr` must point to `len` readable bytes for the duration of
/// the call, which the ABI guarantees for every buffer Envoy hands over
/// during a hook.
pub(crate) unsafe fn copy_bytes(ptr: *const c_char, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
}

/// An array of Envoy buffers (body chunks), concatenated. A null array is
/// empty, a null buffer in it adds nothing.
///
/// # Safety
/// A non-null `chunks` must point to `count` initialised buffers, each
/// valid as [`copy_bytes`] requires, for the duration of the call.
pub(crate) unsafe fn concat_buffers(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, and the caller guarantees `count` elements.
    let chunks = unsafe { std::slice::from_raw_parts(chunks, count) };
    let total = chunks
        .iter()
        .filter(|c| !c.ptr.is_null())
        .fold(0usize, |n, c| n.saturating_add(c.length));
    let mut out = Vec::with_capacity(total);
    for c in chunks {
        // SAFETY: each buffer is valid (the caller's guarantee).
        out.extend_from_slice(&unsafe { copy_bytes(c.ptr, c.length) });
    }
    out
}

/// An array of Envoy headers as (lower-case name, value bytes). A null
/// array is empty; a name that is not UTF-8 is replaced lossily (Envoy
/// only keeps valid header names).
///
/// # Safety
/// A non-null `headers` must point to `count` initialised headers whose
/// key and value buffers are valid as [`copy_bytes`] requires.
pub(crate) unsafe fn copy_headers(
    headers: *const EnvoyHeader,
    count: usize,
) -> Vec<(String, Vec<u8>)> {
    if headers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: non-null, and the caller guarantees `count` elements.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers
        .iter()
        .map(|h| {
            // SAFETY: key and value buffers are valid (the caller's
            // guarantee).
            let (key, value) = unsafe {
                (
                    copy_bytes(h.key_ptr, h.key_length),
                    copy_bytes(h.value_ptr, h.value_length),
                )
            };
            (String::from_utf8_lossy(&key).to_ascii_lowercase(), value)
        })
        .collect()
}

/// Runs a hook's body; a panic becomes `on_panic`'s value and never
/// crosses into Envoy (the crate's `native` profile unwinds, so it can be
/// caught). If the fallback panics too, nothing is left to try: abort.
pub(crate) fn guard<T>(body: impl FnOnce() -> T, on_panic: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            catch_unwind(AssertUnwindSafe(on_panic)).unwrap_or_else(|_| std::process::abort())
        }
    }
}

// ------------------------------------ the same helpers over safe input

/// One buffer as Envoy may hand it over: real bytes, or a null pointer
/// with any length.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Null(usize),
}

fn buffer(p: Piece<'_>) -> EnvoyBuffer {
    match p {
        Piece::Bytes(b) => EnvoyBuffer {
            ptr: b.as_ptr().cast(),
            length: b.len(),
        },
        Piece::Null(length) => EnvoyBuffer {
            ptr: std::ptr::null(),
            length,
        },
    }
}

/// [`concat_buffers`] over an array built from `pieces` (None: a null
/// array): what the unit tests and the fuzz target drive it with.
pub fn concat_pieces(pieces: Option<&[Piece<'_>]>) -> Vec<u8> {
    let Some(pieces) = pieces else {
        // SAFETY: a null array is allowed with any count.
        return unsafe { concat_buffers(std::ptr::null(), 7) };
    };
    let raw: Vec<EnvoyBuffer> = pieces.iter().copied().map(buffer).collect();
    // SAFETY: `raw` holds `raw.len()` buffers, each pointing into a slice
    // borrowed for this call (or null).
    unsafe { concat_buffers(raw.as_ptr(), raw.len()) }
}

/// [`copy_headers`] over an array built from (name, value) pieces.
pub fn headers_of(pairs: &[(Piece<'_>, Piece<'_>)]) -> Vec<(String, Vec<u8>)> {
    let raw: Vec<EnvoyHeader> = pairs
        .iter()
        .map(|&(k, v)| {
            let (k, v) = (buffer(k), buffer(v));
            EnvoyHeader {
                key_ptr: k.ptr,
                key_length: k.length,
                value_ptr: v.ptr,
                value_length: v.length,
            }
        })
        .collect();
    // SAFETY: `raw` holds `raw.len()` headers whose buffers point into
    // slices borrowed for this call (or are null).
    unsafe { copy_headers(raw.as_ptr(), raw.len()) }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_in_order_and_null_buffers_add_nothing() {
        let pieces = [
            Piece::Bytes(b"{\"model\""),
            Piece::Null(1 << 40),
            Piece::Bytes(b""),
            Piece::Bytes(b":\"auto\"}"),
        ];
        assert_eq!(concat_pieces(Some(&pieces)), br#"{"model":"auto"}"#);
        assert_eq!(concat_pieces(Some(&[])), b"");
        assert_eq!(concat_pieces(None), b"");
    }

    #[test]
    fn header_names_are_lower_cased_and_values_kept_as_bytes() {
        let h = headers_of(&[
            (
                Piece::Bytes(b"Content-Type"),
                Piece::Bytes(b"application/json"),
            ),
            (Piece::Bytes(b"x-bin"), Piece::Bytes(&[0xff, 0x00, 0xfe])),
            (Piece::Bytes(&[0xc3, 0x28]), Piece::Null(5)),
            (Piece::Null(3), Piece::Bytes(b"v")),
        ]);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0], ("content-type".into(), b"application/json".to_vec()));
        assert_eq!(h[1].1, vec![0xff, 0x00, 0xfe]);
        assert_eq!(h[2], ("\u{fffd}(".into(), Vec::new()));
        assert_eq!(h[3], (String::new(), b"v".to_vec()));
    }

    #[test]
    fn a_panic_in_a_hook_body_becomes_the_fallback_value() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let v: Vec<u8> = vec![];
        let got = guard(|| u32::from(v[3]), || 500);
        std::panic::set_hook(prev);
        assert_eq!(got, 500);
        assert_eq!(guard(|| 200, || 500), 200);
    }

    #[test]
    fn module_buffers_and_headers_point_at_what_they_were_made_of() {
        let name = "x-aipipe-model";
        let b = ModuleBuffer::of(name.as_bytes());
        assert_eq!((b.ptr.cast::<u8>(), b.length), (name.as_ptr(), name.len()));
        assert!(ModuleBuffer::NULL.ptr.is_null());
        let h = module_headers(&[(":status", "200"), ("", "")]);
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].key_length, h[0].value_length), (7, 3));
        assert_eq!(h[0].key_ptr.cast::<u8>(), ":status".as_ptr());
        assert_eq!((h[1].key_length, h[1].value_length), (0, 0));
    }
}
