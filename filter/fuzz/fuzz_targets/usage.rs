//! Arbitrary bytes as an answer body or one streamed event: reading usage
//! never panics, the stream reader agrees with the whole-body reader, and
//! pricing what was read never overflows.
#![no_main]

use aipipe_core::protocol::chat::{StreamUsage, openai_usage};
use aipipe_core::usage::cost_nusd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = openai_usage(data);
    let mut stream = StreamUsage::default();
    stream.on_event(data);
    // The stream reader only skips events; what it reads, it reads the same.
    if let Some(t) = stream.tokens {
        assert_eq!(Some(t), whole);
    }
    // The filter prices whatever usage the provider reported.
    if let Some(t) = whole {
        for model in &filter_fuzz::default_table().models {
            let _ = cost_nusd(model, &t);
        }
    }
});
