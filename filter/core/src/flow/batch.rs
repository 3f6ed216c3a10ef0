//! A worker's usage records, held and sent to the singleton as one message.
//!
//! In the Wasm build each message on Envoy's shared queue costs a post to the
//! main thread and an entry into the singleton's VM there; one message per
//! request cost about 42 of the 180 µs of Envoy CPU a 1 KB request took
//! with a control plane (filter/README.md, "Usage and accounting"). So a worker
//! holds its records in a [`UsageBatch`] and sends them together: when no
//! request is in flight on the worker any more (so a drained Envoy has sent
//! everything at once), when [`BATCH_RECORDS`] or [`BATCH_BYTES`] are held,
//! on the worker's tick, and at once for a reservation notice.
//!
//! A message is its records one after another, each a 4-byte little-endian
//! length and the record's bytes; [`records`] reads them back.

use crate::contract::RESERVATION_NOTICE;

/// Records a worker holds before it sends them.
pub const BATCH_RECORDS: usize = 128;
/// Bytes a worker holds before it sends them (a record is ~0.5 KB).
pub const BATCH_BYTES: usize = 64 * 1024;

/// One worker's records not sent yet.
#[derive(Debug, Default)]
pub struct UsageBatch {
    message: Vec<u8>,
    records: usize,
}

impl UsageBatch {
    /// Holds `record`; true when the batch should be sent now (full, or the
    /// record is a reservation notice, which the singleton acts on).
    pub fn push(&mut self, record: &[u8]) -> bool {
        let Ok(len) = u32::try_from(record.len()) else {
            // Over 4 GiB: no record is; drop it rather than frame it wrongly.
            return false;
        };
        self.message.extend_from_slice(&len.to_le_bytes());
        self.message.extend_from_slice(record);
        self.records += 1;
        record.first() == Some(&RESERVATION_NOTICE)
            || self.records >= BATCH_RECORDS
            || self.message.len() >= BATCH_BYTES
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The message to send, or None when nothing is held; the batch is
    /// empty afterwards.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.records == 0 {
            return None;
        }
        self.records = 0;
        Some(std::mem::take(&mut self.message))
    }
}

/// The records of one message, in order. A message cut short ends at its
/// last whole record.
pub fn records(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = message;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        if tail.len() < len {
            rest = &[];
            return None;
        }
        let (record, after) = tail.split_at(len);
        rest = after;
        Some(record)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order() {
        let mut b = UsageBatch::default();
        assert!(b.take().is_none());
        assert!(!b.push(br#"{"id":"a"}"#));
        assert!(!b.push(b""));
        assert!(!b.push(br#"{"id":"c"}"#));
        assert_eq!(b.len(), 3);
        let m = b.take().unwrap_or_default();
        assert!(b.is_empty() && b.take().is_none());
        let got: Vec<&[u8]> = records(&m).collect();
        assert_eq!(got, [&br#"{"id":"a"}"#[..], b"", br#"{"id":"c"}"#]);
    }

    #[test]
    fn full_batches_and_notices_are_sent_at_once() {
        let mut b = UsageBatch::default();
        for _ in 1..BATCH_RECORDS {
            assert!(!b.push(b"{}"));
        }
        assert!(b.push(b"{}"), "the {BATCH_RECORDS}th record fills it");
        b.take();
        assert!(b.push(&[RESERVATION_NOTICE, b'k']));
        b.take();
        assert!(b.push(&vec![b'x'; BATCH_BYTES]), "its bytes fill it");
    }

    #[test]
    fn a_cut_message_yields_its_whole_records() {
        let mut b = UsageBatch::default();
        b.push(b"first");
        b.push(b"second");
        let m = b.take().unwrap_or_default();
        for cut in 0..m.len() {
            let got: Vec<&[u8]> = records(&m[..cut]).collect();
            let whole = if cut >= 4 + 5 { 1 } else { 0 };
            assert_eq!(got.len(), whole, "cut at {cut}");
        }
        // A length past the end, and garbage.
        assert_eq!(records(&[0xff, 0xff, 0xff, 0xff, 1]).count(), 0);
        assert_eq!(records(&[1, 0]).count(), 0);
    }
}
