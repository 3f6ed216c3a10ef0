//! Body edits in plain Rust. Envoy's dynamic-module ABI can drain and
//! append a body but not overwrite bytes in place, so an edit the core
//! asks for (`splice_request_body`, `replace_response_body`) is made on a
//! copy and the body replaced with it.

/// `body` with `len` bytes from `start` replaced by `with`. Out-of-range
/// positions are clamped to the body (an edit past the end appends), so
/// no input can make it panic.
pub fn splice(body: &[u8], start: usize, len: usize, with: &[u8]) -> Vec<u8> {
    let start = start.min(body.len());
    let end = start.saturating_add(len).min(body.len());
    let (head, rest) = body.split_at(start);
    let tail = rest.get(end - start..).unwrap_or_default();
    let mut out = Vec::with_capacity(head.len() + with.len() + tail.len());
    out.extend_from_slice(head);
    out.extend_from_slice(with);
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::splice;

    #[test]
    fn a_prefix_edit_keeps_the_rest() {
        assert_eq!(
            splice(br#"{"model":"auto","x":1}"#, 0, 15, br#"{"model":"gpt-4o""#),
            br#"{"model":"gpt-4o","x":1}"#
        );
    }

    #[test]
    fn middle_whole_and_empty_edits() {
        assert_eq!(splice(b"abcdef", 2, 2, b"XY"), b"abXYef");
        assert_eq!(splice(b"abcdef", 0, 6, b"new"), b"new");
        assert_eq!(splice(b"", 0, 0, b"new"), b"new");
        assert_eq!(splice(b"abc", 1, 0, b""), b"abc");
    }

    #[test]
    fn out_of_range_positions_are_clamped_not_a_panic() {
        assert_eq!(splice(b"abc", 10, 5, b"Z"), b"abcZ");
        assert_eq!(splice(b"abc", 1, usize::MAX, b"Z"), b"aZ");
        assert_eq!(splice(b"abc", usize::MAX, usize::MAX, b""), b"abc");
    }
}
