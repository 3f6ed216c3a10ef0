//! Arbitrary bytes as a streamed answer, cut into chunks at arbitrary points:
//! the events (and the usage read from them) must be the same whatever the
//! cuts, equal to feeding the whole stream at once.
//!
//! Input: see `filter_fuzz::read_cuts`. Flags 0xe0 all set splice a `data:`
//! line of about `MAX_LINE` bytes into the stream's middle (0x10: ending in
//! CR), to cover the overflow path at its boundary; rare, as it is slow.
//! 0x20 alone adds a leading empty chunk.
#![no_main]

use aipipe_core::protocol::chat::StreamUsage;
use aipipe_core::sse::SseParser;
use libfuzzer_sys::fuzz_target;

/// `aipipe_core::sse::MAX_LINE` (private there).
const MAX_LINE: usize = 1 << 20;

fn events(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, StreamUsage) {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    for c in chunks {
        parser.feed(c, |d| out.push(d.to_vec()));
    }
    parser.finish(|d| out.push(d.to_vec()));
    let mut usage = StreamUsage::default();
    for e in &out {
        usage.on_event(e);
    }
    (out, usage)
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = filter_fuzz::read_cuts(data) else {
        return;
    };
    let owned: Vec<u8>;
    let stream: &[u8] = if input.flags & 0xe0 == 0xe0 {
        // MAX_LINE - 8 .. MAX_LINE + 8 bytes, prefix included.
        let len = MAX_LINE - 8 + input.fractions.len();
        let (head, tail) = input.stream.split_at(input.stream.len() / 2);
        let mut v = Vec::with_capacity(input.stream.len() + len + 1);
        v.extend_from_slice(head);
        v.extend_from_slice(b"data: ");
        v.resize(head.len() + len, b'x');
        if input.flags & 0x10 != 0 {
            v.push(b'\r');
        }
        v.extend_from_slice(tail);
        owned = v;
        &owned
    } else {
        input.stream
    };

    let mut chunks = filter_fuzz::chunks(stream, &input.fractions);
    if input.flags & 0x20 != 0 {
        chunks.insert(0, &stream[..0]);
    }

    let (whole, whole_usage) = events(&[stream]);
    assert_eq!(whole, filter_fuzz::sse_events(stream));
    let (split, split_usage) = events(&chunks);
    assert_eq!(whole, split, "events depend on the chunking");
    assert_eq!(whole_usage.tokens, split_usage.tokens);

    // Byte at a time: the worst chunking there is (small streams only).
    if stream.len() <= 512 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes).0, whole, "byte-at-a-time chunking differs");
    }
});
