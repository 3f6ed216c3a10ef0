//! State carried across Envoy's internal redirect, for failover that
//! streams (filter/README.md, "Failover"; the flow's side is
//! `flow::failover`).
//!
//! An attempt that may fail over leaves what the next attempt needs in its
//! VM's [`Carries`] under a fresh token, and names a redirect [`location`]
//! holding it. The redirected request reads the token back with
//! [`redirected`] and takes the state, once.
//!
//! Tokens are 128 bits from a keyed hash (SipHash under keys the host's
//! random source seeded, the counter as input), used once, and only
//! meaningful inside one VM: a forged or replayed location finds nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::contract::{FAILOVER_AUTHORITY, FAILOVER_PARAM};
use crate::usage::UsageRecord;

/// An attempt's context that ended without an answer (the client went away,
/// or it was redirected and the new context has not taken its state yet —
/// Envoy ends the old stream first) leaves its usage record here. After this
/// long nobody will take it: the record is the request's.
pub const ORPHAN_MS: u64 = 1_000;

struct Entry<T> {
    carry: T,
    /// The attempt's context ended without an answer: since when, and its
    /// usage record.
    orphan: Option<(u64, UsageRecord)>,
}

/// The carried state of one VM's attempts in flight.
pub struct Carries<T> {
    entries: RefCell<HashMap<u128, Entry<T>>>,
    keys: RandomState,
    counter: Cell<u64>,
    last_sweep_ms: Cell<u64>,
}

impl<T> Default for Carries<T> {
    fn default() -> Self {
        Self {
            entries: RefCell::new(HashMap::new()),
            keys: RandomState::new(),
            counter: Cell::new(0),
            last_sweep_ms: Cell::new(0),
        }
    }
}

impl<T> Carries<T> {
    fn token(&self) -> u128 {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let half = |lane: u8| {
            let mut h = self.keys.build_hasher();
            h.write_u64(n);
            h.write_u8(lane);
            h.finish()
        };
        (u128::from(half(0)) << 64) | u128::from(half(1))
    }

    /// Keeps `carry` for the next attempt; returns its token. `now_ms` also
    /// sweeps out orphans nobody took (their records are returned, to be
    /// sent on).
    pub fn put(&self, carry: T, now_ms: u64) -> (u128, Vec<UsageRecord>) {
        let swept = self.sweep(now_ms);
        let mut entries = self.entries.borrow_mut();
        let mut token = self.token();
        while entries.contains_key(&token) {
            token = self.token();
        }
        entries.insert(
            token,
            Entry {
                carry,
                orphan: None,
            },
        );
        (token, swept)
    }

    pub fn take(&self, token: u128) -> Option<T> {
        self.entries.borrow_mut().remove(&token).map(|e| e.carry)
    }

    /// The attempt's context ended without an answer: the record `make`
    /// builds (from the carried state) is the request's unless a redirected
    /// attempt takes the state and writes its own. False when the state was
    /// already taken.
    pub fn orphan(&self, token: u128, now_ms: u64, make: impl FnOnce(&T) -> UsageRecord) -> bool {
        match self.entries.borrow_mut().get_mut(&token) {
            Some(e) => {
                e.orphan = Some((now_ms, make(&e.carry)));
                true
            }
            None => false,
        }
    }

    /// At most once a second: drops the orphans older than [`ORPHAN_MS`],
    /// returning their records.
    fn sweep(&self, now_ms: u64) -> Vec<UsageRecord> {
        if now_ms.saturating_sub(self.last_sweep_ms.get()) < ORPHAN_MS {
            return Vec::new();
        }
        self.last_sweep_ms.set(now_ms);
        let mut records = Vec::new();
        self.entries
            .borrow_mut()
            .retain(|_, e| match e.orphan.take() {
                Some((since, record)) if now_ms.saturating_sub(since) >= ORPHAN_MS => {
                    records.push(record);
                    false
                }
                other => {
                    e.orphan = other;
                    true
                }
            });
        records
    }

    /// Attempts in flight that may still fail over.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

/// The redirect location for an attempt: [`FAILOVER_AUTHORITY`] (routed
/// to the route that accepts failover redirects) and the client's own path,
/// with the token. The upstream filter appends `&status=<status>`.
pub fn location(path: &str, token: u128) -> String {
    format!("http://{FAILOVER_AUTHORITY}{path}?{FAILOVER_PARAM}={token:032x}")
}

/// A redirected attempt's token and the failed provider's status, read
/// from the request path's query. None for any other request.
pub fn redirected(full_path: &[u8]) -> Option<(Option<u128>, u16)> {
    let query = full_path.splitn(2, |&b| b == b'?').nth(1)?;
    let (mut token, mut status, mut ours) = (None, None, false);
    for pair in query.split(|&b| b == b'&') {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        let v = std::str::from_utf8(v).ok();
        if k == FAILOVER_PARAM.as_bytes() {
            ours = true;
            token = v
                .filter(|v| v.len() == 32)
                .and_then(|v| u128::from_str_radix(v, 16).ok());
        } else if k == b"status" {
            status = v.and_then(|v| v.parse::<u16>().ok());
        }
    }
    // A token with no status (or a bad one) is still ours: refused below.
    ours.then_some((token.filter(|_| status.is_some()), status.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carry() -> Vec<u8> {
        b"{}".to_vec()
    }

    fn record(id: &str) -> UsageRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "tenant": "t", "provider": "p", "model": "m", "status": 0,
            "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
            "cost_nusd": 0, "latency_ms": 0.0, "stream": false, "usage_parsed": false,
            "ts_ms": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_token_is_taken_once_and_tokens_differ() {
        let c = Carries::default();
        let (a, _) = c.put(carry(), 0);
        let (b, _) = c.put(carry(), 0);
        assert_ne!(a, b);
        assert!(c.take(a).is_some());
        assert!(c.take(a).is_none(), "a token works once");
        assert!(c.take(a ^ 1).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_orphan_nobody_takes_gives_its_record_back_after_a_second() {
        let c = Carries::default();
        let (a, _) = c.put(carry(), 10_000);
        assert!(c.orphan(a, 10_000, |_| record("a")));
        // Too soon: still there for the redirected attempt.
        let (_, swept) = c.put(carry(), 10_500);
        assert!(swept.is_empty());
        let (_, swept) = c.put(carry(), 11_600);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].id, "a");
        assert!(c.take(a).is_none());
        // Taken before the sweep: no record comes back.
        let (b, _) = c.put(carry(), 20_000);
        assert!(c.orphan(b, 20_000, |_| record("b")));
        assert!(c.take(b).is_some());
        let (_, swept) = c.put(carry(), 30_000);
        assert!(swept.is_empty());
        assert!(!c.orphan(b, 30_000, |_| record("b")), "already taken");
    }

    #[test]
    fn the_location_reads_back() {
        let token = 0x0123_4567_89ab_cdef_0011_2233_4455_6677_u128;
        let l = location("/v1/chat/completions", token);
        assert!(
            l.starts_with("http://aipipe.failover/v1/chat/completions?"),
            "{l}"
        );
        let path = format!(
            "{}&status=503",
            l.trim_start_matches("http://aipipe.failover")
        );
        assert_eq!(redirected(path.as_bytes()), Some((Some(token), 503)));
        assert_eq!(redirected(b"/v1/chat/completions"), None);
        assert_eq!(redirected(b"/v1/chat/completions?x=1"), None);
        assert_eq!(
            redirected(b"/v1/chat/completions?aipipe-failover=zz&status=503"),
            Some((None, 503))
        );
        assert_eq!(
            redirected(b"/v1/chat/completions?aipipe-failover=0123456789abcdef0011223344556677"),
            Some((None, 0)),
            "no status: refused"
        );
    }
}
