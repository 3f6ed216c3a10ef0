//! Rate limits per tenant and per virtual key (control-plane/README.md,
//! "Rate limits"): requests and tokens per minute, counted by each Envoy
//! across all its workers.
//!
//! A window opens at a scope's first request and lasts a minute; every
//! request in it counts one request and its tokens — the prompt estimate
//! plus `max_tokens`, reserved when it is admitted and settled with the
//! real count when its answer ends. A request that would pass either limit
//! is refused with 429 `rate_limited` and `retry-after` (when the window
//! ends). The counts live in shared data, one value per scope, updated
//! with compare-and-swap; nothing here calls a host.

use serde::{Deserialize, Serialize};

pub const WINDOW_MS: u64 = 60_000;
const FORMAT: u8 = 1;

/// A scope's limits; 0 = no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub requests_per_minute: u32,
    #[serde(default)]
    pub tokens_per_minute: u64,
}

impl Limits {
    pub fn is_none(&self) -> bool {
        self.requests_per_minute == 0 && self.tokens_per_minute == 0
    }
}

/// One scope's current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start_ms: u64,
    pub requests: u32,
    pub tokens: u64,
}

impl Window {
    /// The window in force at `now_ms`: this one, or a new empty one.
    pub fn at(self, now_ms: u64) -> Self {
        if self.start_ms == 0
            || now_ms >= self.start_ms.saturating_add(WINDOW_MS)
            || now_ms < self.start_ms
        {
            Self {
                start_ms: now_ms.max(1),
                requests: 0,
                tokens: 0,
            }
        } else {
            self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21);
        out.push(FORMAT);
        out.extend_from_slice(&self.start_ms.to_le_bytes());
        out.extend_from_slice(&self.requests.to_le_bytes());
        out.extend_from_slice(&self.tokens.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = crate::bytes::Reader::new(bytes);
        if r.u8()? != FORMAT {
            return None;
        }
        let w = Self {
            start_ms: r.u64()?,
            requests: r.u32()?,
            tokens: r.u64()?,
        };
        r.at_end().then_some(w)
    }
}

/// Where a scope stands after an admitted request: OpenAI's
/// `x-ratelimit-*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limits: Limits,
    pub remaining_requests: u32,
    pub remaining_tokens: u64,
    /// Milliseconds until the window that limits requests ends.
    pub reset_requests_ms: u64,
    /// …and the one that limits tokens.
    pub reset_tokens_ms: u64,
}

impl Standing {
    /// Kind by kind, the scope a client should heed: the one with less
    /// left (a scope without a limit of that kind never).
    pub fn tighter(self, other: Standing) -> Standing {
        let mut out = self;
        let (a, b) = (self.limits, other.limits);
        if a.requests_per_minute == 0
            || (b.requests_per_minute > 0 && other.remaining_requests < self.remaining_requests)
        {
            out.limits.requests_per_minute = b.requests_per_minute;
            out.remaining_requests = other.remaining_requests;
            out.reset_requests_ms = other.reset_requests_ms;
        }
        if a.tokens_per_minute == 0
            || (b.tokens_per_minute > 0 && other.remaining_tokens < self.remaining_tokens)
        {
            out.limits.tokens_per_minute = b.tokens_per_minute;
            out.remaining_tokens = other.remaining_tokens;
            out.reset_tokens_ms = other.reset_tokens_ms;
        }
        out
    }
}

/// A refusal: seconds until the window ends (a minute when the request
/// alone is over the token limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after_s: u64,
    /// Which limit: "requests" or "tokens".
    pub what: &'static str,
    pub limit: u64,
}

/// Counts a request of `tokens` in `window` if both limits allow it.
pub fn admit(
    limits: Limits,
    window: &mut Window,
    tokens: u64,
    now_ms: u64,
) -> Result<Standing, Refusal> {
    let w = window.at(now_ms);
    let reset_ms = w.start_ms.saturating_add(WINDOW_MS).saturating_sub(now_ms);
    let retry_after_s = reset_ms.div_ceil(1000).max(1);
    let rpm = limits.requests_per_minute;
    if rpm > 0 && w.requests >= rpm {
        return Err(Refusal {
            retry_after_s,
            what: "requests",
            limit: u64::from(rpm),
        });
    }
    let tpm = limits.tokens_per_minute;
    if tpm > 0 && w.tokens.saturating_add(tokens) > tpm {
        return Err(Refusal {
            retry_after_s: if tokens > tpm { 60 } else { retry_after_s },
            what: "tokens",
            limit: tpm,
        });
    }
    *window = Window {
        requests: w.requests.saturating_add(1),
        tokens: w.tokens.saturating_add(tokens),
        ..w
    };
    Ok(Standing {
        limits,
        remaining_requests: rpm.saturating_sub(window.requests),
        remaining_tokens: tpm.saturating_sub(window.tokens),
        reset_requests_ms: reset_ms,
        reset_tokens_ms: reset_ms,
    })
}

/// A request admitted in the window that began at `start_ms` reserved
/// `reserved` tokens and used `used`: the window counts what it used (a
/// window that has since ended is left alone).
pub fn settle(window: &mut Window, start_ms: u64, reserved: u64, used: u64) {
    if window.start_ms == start_ms {
        window.tokens = window.tokens.saturating_sub(reserved).saturating_add(used);
    }
}

/// Takes back a request admitted in the window that began at `start_ms`
/// (another scope refused it).
pub fn undo(window: &mut Window, start_ms: u64, tokens: u64) {
    if window.start_ms == start_ms {
        window.requests = window.requests.saturating_sub(1);
        window.tokens = window.tokens.saturating_sub(tokens);
    }
}

/// OpenAI's duration form for `x-ratelimit-reset-*`: `850ms`, `12s`, `1m0s`.
pub fn reset_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}s", ms.div_ceil(1000))
    } else {
        let s = ms.div_ceil(1000);
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_gets_exactly_the_limit_and_the_window_resets_after_a_minute() {
        let limits = Limits {
            requests_per_minute: 10,
            tokens_per_minute: 0,
        };
        let mut w = Window::default();
        let mut left = Vec::new();
        for i in 0..30u64 {
            match admit(limits, &mut w, 5, 1_000 + i) {
                Ok(s) => left.push(s.remaining_requests),
                Err(r) => {
                    assert_eq!((r.what, r.limit), ("requests", 10));
                    assert_eq!(r.retry_after_s, 60);
                }
            }
        }
        assert_eq!(left, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assert!(admit(limits, &mut w, 5, 60_999).is_err());
        let s = admit(limits, &mut w, 5, 61_000).unwrap();
        assert_eq!((s.remaining_requests, s.reset_requests_ms), (9, 60_000));
        assert_eq!(Window::decode(&w.encode()), Some(w));
    }

    #[test]
    fn tokens_are_reserved_then_settled_to_the_real_count() {
        let limits = Limits {
            requests_per_minute: 0,
            tokens_per_minute: 1000,
        };
        let mut w = Window::default();
        let s = admit(limits, &mut w, 600, 10).unwrap();
        assert_eq!(s.remaining_tokens, 400);
        let r = admit(limits, &mut w, 600, 20).unwrap_err();
        assert_eq!((r.what, r.retry_after_s), ("tokens", 60));
        settle(&mut w, 10, 600, 100);
        assert_eq!(
            admit(limits, &mut w, 600, 30).unwrap().remaining_tokens,
            300
        );
        // Alone over the limit: never in this window.
        assert_eq!(
            admit(limits, &mut w, 5000, 40).unwrap_err().retry_after_s,
            60
        );
        undo(&mut w, 10, 600);
        assert_eq!((w.requests, w.tokens), (1, 100));
    }

    #[test]
    fn the_tighter_scope_speaks_for_each_kind() {
        let st = |rpm, tpm, rr, rt, reset| Standing {
            limits: Limits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            },
            remaining_requests: rr,
            remaining_tokens: rt,
            reset_requests_ms: reset,
            reset_tokens_ms: reset,
        };
        // A tenant limiting tokens only, a key limiting requests only.
        let t = st(0, 300, 0, 200, 1_000).tighter(st(3, 0, 2, 0, 2_000));
        assert_eq!(t.limits.requests_per_minute, 3);
        assert_eq!((t.remaining_requests, t.reset_requests_ms), (2, 2_000));
        assert_eq!((t.limits.tokens_per_minute, t.remaining_tokens), (300, 200));
        assert_eq!(t.reset_tokens_ms, 1_000);
        // Both limit requests: the one with less left.
        let t = st(10, 0, 7, 0, 1).tighter(st(3, 0, 1, 0, 2));
        assert_eq!((t.limits.requests_per_minute, t.remaining_requests), (3, 1));
    }

    #[test]
    fn reset_reads_like_openais() {
        assert_eq!(reset_text(850), "850ms");
        assert_eq!(reset_text(11_200), "12s");
        assert_eq!(reset_text(60_000), "1m0s");
    }
}
