//! What the Wasm build keeps in Envoy's shared data and shared queue, here
//! in this process's memory, shared by every worker thread: the
//! singleton's table and directory, penalties, cache slots and carried
//! failover state under string keys with compare-and-swap tokens (the
//! semantics of proxy-wasm's `get_shared_data`/`set_shared_data`), and the
//! queue of usage records the singleton ships.
//!
//! Values are held as `Arc<[u8]>`, so a reader copies out only what it
//! asked for, under a read lock held for the lookup alone.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use aipipe_core::flow::HostError;

struct Entry {
    value: Arc<[u8]>,
    cas: u32,
}

static DATA: RwLock<Option<HashMap<String, Entry>>> = RwLock::new(None);
/// CAS tokens: never 0 (0 is "no token" in proxy-wasm), unique per write.
static NEXT_CAS: AtomicU32 = AtomicU32::new(1);

/// A value and its compare-and-swap token.
pub fn get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let data = DATA.read().unwrap_or_else(PoisonError::into_inner);
    match data.as_ref().and_then(|d| d.get(key)) {
        Some(e) => (Some(e.value.to_vec()), Some(e.cas)),
        None => (None, None),
    }
}

/// Writes a value; with `cas`, only if nobody wrote it since that token
/// was read (a key nobody wrote yet takes any token, as in Envoy).
pub fn set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
    let mut data = DATA.write().unwrap_or_else(PoisonError::into_inner);
    let data = data.get_or_insert_with(HashMap::new);
    if let (Some(cas), Some(e)) = (cas, data.get(key))
        && cas != 0
        && e.cas != cas
    {
        return Err(HostError::CasMismatch);
    }
    let mut token = NEXT_CAS.fetch_add(1, Ordering::Relaxed);
    if token == 0 {
        token = NEXT_CAS.fetch_add(1, Ordering::Relaxed);
    }
    data.insert(
        key.to_owned(),
        Entry {
            value: value.into(),
            cas: token,
        },
    );
    Ok(())
}

// ------------------------------------------------------------ usage queue

/// Records waiting for the singleton. Bounded: the singleton drains it on
/// every wake-up and tick and keeps its own bounded buffer (the Wasm
/// build's shared queue is unbounded; a stalled main thread must not grow
/// this one without limit).
const MAX_QUEUED: usize = 100_000;

static QUEUE: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());
/// Records refused because the queue was full (the singleton adds them to
/// `aipipe.usage.dropped`).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What wakes the singleton for a full batch: set by the singleton's
/// configuration, cleared when it goes.
type Waker = Arc<dyn Fn() + Send + Sync>;
static WAKER: Mutex<Option<(u64, Waker)>> = Mutex::new(None);

/// Sets the singleton (configuration `owner`) to wake, or with None clears
/// it if it is still `owner`'s (a newer configuration may have replaced it).
pub fn set_waker(owner: u64, waker: Option<Waker>) {
    let mut w = WAKER.lock().unwrap_or_else(PoisonError::into_inner);
    match waker {
        Some(waker) => *w = Some((owner, waker)),
        None if w.as_ref().is_some_and(|(o, _)| *o == owner) => *w = None,
        None => {}
    }
}

/// Records queued before the singleton is woken for them; fewer wait for
/// its next tick (every `poll_ms`). Waking it costs a post to the main
/// thread (a syscall and a context switch): once per request, as the Wasm
/// build's `on_queue_ready` does, it was a visible part of a request's
/// cost. The singleton posts a batch when it holds `batch_records` anyway.
const WAKE_AT: usize = 256;

/// Queues one record; wakes the singleton once the queue holds a batch's
/// worth. Without a singleton there is nobody to ship it to (as in the
/// Wasm build).
pub fn enqueue(record: &[u8]) -> Result<(), HostError> {
    let waker = WAKER.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let Some((_, wake)) = waker else {
        return Err(HostError::Refused("no usage queue (no singleton)".into()));
    };
    let full = {
        let mut q = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= MAX_QUEUED {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::Refused("usage queue full".into()));
        }
        q.push_back(record.to_vec());
        q.len() == WAKE_AT
    };
    if full {
        wake();
    }
    Ok(())
}

/// Puts records a replaced singleton had not shipped back at the head of
/// the queue, in their order, for the singleton that takes its place
/// (`Singleton::hand_over`), and wakes that one if there is one already
/// (otherwise they wait for the next). They were accepted once, so the
/// bound does not refuse them: it refuses new records until they are
/// drained.
pub fn requeue(records: Vec<Vec<u8>>) {
    if records.is_empty() {
        return;
    }
    {
        let mut q = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
        for r in records.into_iter().rev() {
            q.push_front(r);
        }
    }
    let waker = WAKER.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some((_, wake)) = waker {
        wake();
    }
}

/// Everything queued, oldest first, and how many records were refused
/// since the last call.
pub fn drain() -> (Vec<Vec<u8>>, u64) {
    let records = QUEUE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
        .collect();
    (records, DROPPED.swap(0, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_write_loses_to_a_write_in_between() {
        set("t.a", b"1", None).unwrap();
        let (v, cas) = get("t.a");
        assert_eq!(v.as_deref(), Some(&b"1"[..]));
        set("t.a", b"2", None).unwrap();
        assert_eq!(set("t.a", b"3", cas), Err(HostError::CasMismatch));
        let (_, cas) = get("t.a");
        set("t.a", b"3", cas).unwrap();
        assert_eq!(get("t.a").0.as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn handed_over_records_go_first_and_in_their_order() {
        // The queue is process-wide: this is the only test that uses it.
        let woken = Arc::new(AtomicU64::new(0));
        let count = woken.clone();
        set_waker(
            7,
            Some(Arc::new(move || {
                count.fetch_add(1, Ordering::Relaxed);
            })),
        );
        enqueue(b"new").unwrap();
        requeue(vec![b"old 1".to_vec(), b"old 2".to_vec()]);
        assert_eq!(
            woken.load(Ordering::Relaxed),
            1,
            "the next singleton is woken"
        );
        let (records, dropped) = drain();
        assert_eq!(records, [&b"old 1"[..], b"old 2", b"new"]);
        assert_eq!(dropped, 0);
        set_waker(7, None);
        requeue(vec![b"waits".to_vec()]);
        assert_eq!(drain().0, [b"waits"], "kept for a singleton to come");
    }

    #[test]
    fn a_new_key_takes_any_token_and_missing_keys_read_as_none() {
        assert_eq!(get("t.missing"), (None, None));
        set("t.new", b"x", Some(42)).unwrap();
        assert!(get("t.new").1.is_some_and(|c| c != 0));
    }
}
