//! Bench builds only (feature `floor`, `make native-floor`): the least a
//! body-routing dynamic module does — hold the request until its body is
//! whole and copy it into the module — and nothing else. `make bench`
//! runs it beside the real module (`native_floor_ratio_*`), the native
//! counterpart of `tests/wasm-floor`: what the dynamic-module machinery
//! costs apart from what the filter computes and asks of Envoy
//! (tests/README.md, "Where the native build's time goes").
//!
//! `AIPIPE_FLOOR_STEPS` (letters, read when the floor is built) adds the
//! Envoy-side work the real module asks for, one part at a time, without
//! its computation: `h` the request headers read, `s` six request headers
//! set, `b` the body replaced (and its length), `r` the route cleared, `p`
//! six answer headers set, `q` the answer held until whole and read. `n`
//! makes it a pass-through module that holds nothing.

use crate::ffi::{Direction, HeaderKind, StreamHandle};
use crate::roles::Status;

const STEPS: &str = match option_env!("AIPIPE_FLOOR_STEPS") {
    Some(s) => s,
    None => "",
};

const HEADERS: [&str; 6] = [
    "x-aipipe-floor-a",
    "x-aipipe-floor-b",
    "x-aipipe-floor-c",
    "x-aipipe-floor-d",
    "x-aipipe-floor-e",
    "x-aipipe-floor-f",
];

fn step(c: char) -> bool {
    STEPS.contains(c)
}

/// Holds the headers until the body is whole (as the filter does).
pub fn request_headers(s: Option<&StreamHandle>, end_of_stream: bool) -> Status {
    if step('h')
        && let Some(s) = s
    {
        std::hint::black_box(s.headers(HeaderKind::Request));
    }
    if end_of_stream || step('n') {
        Status::Continue
    } else {
        Status::Stop
    }
}

/// Buffers until the body is whole, then copies it into the module.
pub fn request_body(s: Option<&StreamHandle>, end_of_stream: bool) -> Status {
    if step('n') {
        return Status::Continue;
    }
    if !end_of_stream {
        return Status::Stop;
    }
    let Some(s) = s else {
        return Status::Continue;
    };
    let body = std::hint::black_box(s.body(Direction::Request));
    if step('s') {
        for name in HEADERS {
            s.set_header(HeaderKind::Request, name, Some(b"floor"));
        }
    }
    if step('b') {
        s.replace_body(Direction::Request, &body);
        s.set_header(
            HeaderKind::Request,
            "content-length",
            Some(body.len().to_string().as_bytes()),
        );
    }
    if step('r') {
        s.clear_route_cache();
    }
    Status::Continue
}

pub fn response_headers(s: Option<&StreamHandle>, end_of_stream: bool) -> Status {
    if step('p')
        && let Some(s) = s
    {
        for name in HEADERS {
            s.set_header(HeaderKind::Response, name, Some(b"floor"));
        }
    }
    if step('q') && !end_of_stream {
        Status::Stop
    } else {
        Status::Continue
    }
}

pub fn response_body(s: Option<&StreamHandle>, end_of_stream: bool) -> Status {
    if !step('q') {
        return Status::Continue;
    }
    if !end_of_stream {
        return Status::Stop;
    }
    if let Some(s) = s {
        std::hint::black_box(s.body(Direction::Response));
    }
    Status::Continue
}
