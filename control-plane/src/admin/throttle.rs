//! Wrong admin secrets, counted per client address: after the configured
//! number in a window of [`WINDOW`], the address is answered 429
//! with `retry-after` until the window ends — the secret is not even
//! checked, so guessing gains nothing (control-plane/README.md, "Admin
//! API"). Every failure and every throttled request is counted in
//! `/metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong secrets an address may send per window, unless configured.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it, finished windows are forgotten.
const MAX_ADDRESSES: usize = 10_000;

pub struct Throttle {
    /// Failures per window before an address is throttled; 0 = never.
    max: u32,
    seen: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FAILURES)
    }
}

impl Throttle {
    pub fn new(max_failures: u32) -> Self {
        Self {
            max: max_failures,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `addr` may try again, when it is throttled now.
    pub fn wait(&self, addr: Option<IpAddr>) -> Option<u64> {
        if self.max == 0 {
            return None;
        }
        let map = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, failures) = map.get(&addr)?;
        let left = WINDOW.checked_sub(start.elapsed())?;
        (*failures >= self.max).then(|| left.as_secs().max(1))
    }

    /// Notes one wrong secret from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>) {
        if self.max == 0 {
            return;
        }
        let mut map = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let entry = map.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_the_failures_of_a_window_and_others_are_not() {
        let t = Throttle::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..DEFAULT_MAX_FAILURES - 1 {
            t.failed(a);
            assert_eq!(t.wait(a), None);
        }
        t.failed(a);
        let left = t.wait(a).unwrap();
        assert!((1..=60).contains(&left), "{left}");
        assert_eq!(t.wait(b), None);
    }
}
