//! The native host's pointer/length helpers (filter/native, `ffi`) over
//! hostile bytes: Envoy's body chunks and headers as (pointer, length)
//! arrays, null buffers with any length among them, and the body edits made
//! on a copy. Every conversion must give exactly the bytes it was pointed
//! at, and no input may panic.
//!
//! Input: the bytes are cut into pieces: each piece starts with a byte
//! `n`; 0xff makes a null buffer whose length is the next two bytes, any
//! other `n` takes the next `n` bytes (fewer at the end). The last four
//! bytes, when there are, place a splice (start, length) in the joined body.
#![no_main]

use aipipe_native::ffi::{Piece, concat_pieces, headers_of};
use aipipe_native::splice;
use libfuzzer_sys::fuzz_target;

fn pieces(mut data: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = data.split_first() {
        if n == 0xff {
            let len = rest
                .get(..2)
                .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            out.push(Piece::Null(len << 8));
            data = rest.get(2..).unwrap_or_default();
        } else {
            let (piece, rest) = rest.split_at(usize::from(n).min(rest.len()));
            out.push(Piece::Bytes(piece));
            data = rest;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let pieces = pieces(data);
    let expected: Vec<u8> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Bytes(b) => Some(*b),
            Piece::Null(_) => None,
        })
        .flatten()
        .copied()
        .collect();
    let body = concat_pieces(Some(&pieces));
    assert_eq!(body, expected, "chunks joined wrongly");

    let pairs: Vec<(Piece<'_>, Piece<'_>)> = pieces
        .chunks_exact(2)
        .map(|kv| (kv[0], kv[1]))
        .collect();
    let headers = headers_of(&pairs);
    assert_eq!(headers.len(), pairs.len());
    for ((_, v), (_, got)) in pairs.iter().zip(&headers) {
        match v {
            Piece::Bytes(b) => assert_eq!(got, b),
            Piece::Null(_) => assert!(got.is_empty()),
        }
    }

    if let Some(tail) = data.len().checked_sub(4).and_then(|i| data.get(i..)) {
        let start = usize::from(u16::from_le_bytes([tail[0], tail[1]]));
        let len = usize::from(u16::from_le_bytes([tail[2], tail[3]]));
        let with = &data[..data.len().min(16)];
        let out = splice(&body, start, len, with);
        let s = start.min(body.len());
        let e = s.saturating_add(len).min(body.len());
        assert_eq!(out.len(), body.len() - (e - s) + with.len());
        assert_eq!(&out[..s], &body[..s]);
        assert_eq!(&out[s..s + with.len()], with);
        assert_eq!(&out[s + with.len()..], &body[e..]);
    }
});
