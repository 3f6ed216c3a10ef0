//! An incremental Server-Sent Events parser: feed it the bytes of a streamed
//! answer as they pass through, chunk by chunk, and it hands back the `data`
//! of each complete event. Chunk boundaries follow network reads, not events,
//! so a line can be split anywhere (envoy/README.md, Envoy fact 7); nothing
//! here calls the host.

use crate::bytes::{contains, find};

/// Lines longer than this are dropped (their event is skipped) rather than
/// buffered without bound.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    overflow: bool,
}

impl SseParser {
    /// Feeds a chunk; calls `on_data` with the data of every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_data: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            self.push(head);
            self.end_line(&mut on_data);
            rest = tail.get(1..).unwrap_or_default();
        }
        self.push(rest);
    }

    /// The stream ended: completes a last event that had no blank line.
    pub fn finish(&mut self, mut on_data: impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            self.end_line(&mut on_data);
        }
        self.dispatch(&mut on_data);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > MAX_LINE {
            self.overflow = true;
            self.line.clear();
        } else if !self.overflow {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, on_data: &mut impl FnMut(&[u8])) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if std::mem::take(&mut self.overflow) {
            self.data.clear();
            return;
        }
        if line.is_empty() {
            self.dispatch(on_data);
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        // Other fields (event:, id:, retry:) and comments are not needed.
        line.clear();
        self.line = line;
    }

    fn dispatch(&mut self, on_data: &mut impl FnMut(&[u8])) {
        if !self.data.is_empty() {
            on_data(&self.data);
            self.data.clear();
        }
    }
}

/// Gives a client that did not ask for `stream_options.include_usage` the
/// stream it would have had without it, although the filter asked for it
/// (to count tokens): the usage-only event goes, and the `"usage":null`
/// member OpenAI adds to every other chunk is removed. Works on whole
/// events, so a partial event is held until its end arrives — the stream
/// still moves event by event.
#[derive(Debug, Default)]
pub struct UsageStripper {
    pending: Vec<u8>,
}

impl UsageStripper {
    /// Feeds a chunk of the upstream stream; appends what the client gets.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = event_end(self.pending.get(start..).unwrap_or_default()) {
            let event = self.pending.get(start..start + end).unwrap_or_default();
            strip_event(event, out);
            start += end;
        }
        self.pending.drain(..start);
    }

    /// The stream ended: whatever is left goes out as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

/// Length of the first complete event (through its blank line), if any.
fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn strip_event(event: &[u8], out: &mut Vec<u8>) {
    // The usage chunk the filter asked for: whatever its usage holds (even
    // an unreadable value), the client did not ask for it.
    let usage_only = contains(event, b"\"choices\":[]")
        && (contains(event, b"\"usage\":") || contains(event, b"\"usage\" :"))
        && !contains(event, b"\"usage\":null");
    if usage_only {
        return;
    }
    for needle in [&b",\"usage\":null"[..], &b"\"usage\":null,"[..]] {
        if let Some(at) = find(event, needle) {
            out.extend_from_slice(event.get(..at).unwrap_or_default());
            out.extend_from_slice(event.get(at + needle.len()..).unwrap_or_default());
            return;
        }
    }
    out.extend_from_slice(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |d| out.push(String::from_utf8_lossy(d).into_owned()));
        }
        p.finish(|d| out.push(String::from_utf8_lossy(d).into_owned()));
        out
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\r\ndata: two\r\ndata: lines\r\n\r\ndata: [DONE]\n\n";
        let whole = events(&[stream]);
        assert_eq!(whole, ["{\"a\":1}", "two\nlines", "[DONE]"]);
        for i in 0..stream.len() {
            for j in i..stream.len() {
                let (a, rest) = stream.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(events(&[a, b, c]), whole, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn the_stripped_stream_is_the_one_without_include_usage_at_every_split() {
        let with = b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
data: [DONE]\n\n";
        let without =
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
        for i in 0..=with.len() {
            let (a, b) = with.split_at(i);
            let mut s = UsageStripper::default();
            let mut out = Vec::new();
            s.feed(a, &mut out);
            s.feed(b, &mut out);
            s.finish(&mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(without),
                "split at {i}"
            );
        }
        // Complete events are passed on at once, not held for the end.
        let mut s = UsageStripper::default();
        let mut out = Vec::new();
        s.feed(&with[..60], &mut out);
        assert!(out.is_empty());
        let first_event = with.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        s.feed(&with[60..first_event + 5], &mut out);
        assert_eq!(out.len(), first_event - ",\"usage\":null".len());
    }

    #[test]
    fn a_last_event_without_blank_line_is_flushed_and_huge_lines_are_dropped() {
        assert_eq!(events(&[b"data: end"]), ["end"]);
        let huge = vec![b'x'; MAX_LINE + 10];
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(b"data: ", |d| out.push(d.to_vec()));
        p.feed(&huge, |d| out.push(d.to_vec()));
        p.feed(b"\n\ndata: ok\n\n", |d| out.push(d.to_vec()));
        assert_eq!(out, [b"ok".to_vec()]);
    }
}
