//! Arbitrary bytes as a streamed upstream answer through both stream
//! translators (`StreamTranslator`: Anthropic events → OpenAI chunks;
//! `ChatToMessagesStream`: OpenAI chunks → Anthropic events), cut at
//! arbitrary points: the output, usage and completion are the same whatever
//! the cuts, the stream is complete after `finish`, and every event the
//! client reads is JSON (or OpenAI's `[DONE]`).
//!
//! Input: see `filter_fuzz::read_cuts`; flag 0x10 sets `include_usage`.
#![no_main]

use aipipe_core::protocol::anthropic::{ChatToMessagesStream, StreamTranslator};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn assert_events_are_json(out: &[u8], done_allowed: bool) {
    for e in filter_fuzz::sse_events(out) {
        if done_allowed && e == b"[DONE]" {
            continue;
        }
        assert!(
            serde_json::from_slice::<Value>(&e).is_ok_and(|v| v.is_object()),
            "event is not a JSON object: {:?}",
            String::from_utf8_lossy(&e)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = filter_fuzz::read_cuts(data) else {
        return;
    };
    let chunks = filter_fuzz::chunks(input.stream, &input.fractions);
    let include_usage = input.flags & 0x10 != 0;

    let forward = |chunks: &[&[u8]]| {
        let mut t = StreamTranslator::new("claude-sonnet-4-5", 1_763_860_000, include_usage);
        let mut out = Vec::new();
        for c in chunks {
            t.feed(c, &mut out);
        }
        t.finish(&mut out);
        assert!(t.is_done(), "StreamTranslator not done after finish");
        (out, t.tokens())
    };
    let whole = forward(&[input.stream]);
    assert_eq!(
        forward(&chunks),
        whole,
        "StreamTranslator depends on the chunking"
    );
    assert_events_are_json(&whole.0, true);

    let reverse = |chunks: &[&[u8]]| {
        let mut t = ChatToMessagesStream::new("gpt-4o-mini");
        let mut out = Vec::new();
        for c in chunks {
            t.feed(c, &mut out);
        }
        t.finish(&mut out);
        (out, t.tokens())
    };
    let whole = reverse(&[input.stream]);
    assert_eq!(
        reverse(&chunks),
        whole,
        "ChatToMessagesStream depends on the chunking"
    );
    assert_events_are_json(&whole.0, false);
});
