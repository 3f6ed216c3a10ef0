//! Arbitrary bytes as a request path, read as a failover redirect (the
//! filter does this for every routed request, before authentication). It
//! must never panic; a token it accepts is one `location` writes back the
//! same, with the status the upstream filter appends.
#![no_main]

use aipipe_core::carry::{location, redirected};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &[u8]| {
    if let Some((Some(token), status)) = redirected(path) {
        let l = location("/v1/chat/completions", token);
        let again = format!(
            "{}&status={status}",
            l.trim_start_matches("http://aipipe.failover")
        );
        assert_eq!(redirected(again.as_bytes()), Some((Some(token), status)));
    }
});
