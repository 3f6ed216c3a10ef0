//! Rate limits in the request flow (the rules are `crate::ratelimit`'s):
//! count a request in each scope that limits it — its tenant, its virtual
//! key — in this Envoy's shared data, refuse what would pass a limit, and
//! settle the tokens with the real count when the answer ends.

use super::filter::KeyLimits;
use super::host::{Host, HostError, now_ms};
use crate::error::ApiError;
use crate::ratelimit::{self, Limits, Refusal, Standing, Window};
use crate::table::Account;

const CAS_ROUNDS: usize = 32;

/// A request counted in one scope's window.
#[derive(Debug, Clone)]
pub(super) struct Admitted {
    /// The scope's shared-data key.
    key: String,
    start_ms: u64,
    tokens: u64,
}

/// Applies `f` to a scope's window with compare-and-swap.
fn update<T>(
    host: &impl Host,
    key: &str,
    mut f: impl FnMut(&mut Window) -> Result<T, Refusal>,
) -> Result<Option<T>, Refusal> {
    for _ in 0..CAS_ROUNDS {
        let (bytes, cas) = host.shared_get(key);
        let mut w = bytes.and_then(|b| Window::decode(&b)).unwrap_or_default();
        let out = f(&mut w)?;
        match host.shared_set(key, &w.encode(), cas) {
            Ok(()) => return Ok(Some(out)),
            Err(HostError::CasMismatch) => continue,
            Err(e) => {
                log::warn!("rate-limit window {key} not written: {e:?}");
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// Counts the request (reserving `tokens`) in each scope that limits it,
/// or refuses it: then nothing stays counted. The standing returned is the
/// tighter scope's, kind by kind (what a client should heed).
pub(super) fn admit(
    host: &impl Host,
    tenant: &Account,
    key: Option<&KeyLimits>,
    tokens: u64,
) -> Result<(Vec<Admitted>, Option<Standing>), ApiError> {
    let scopes: Vec<(String, Limits)> = [
        (!tenant.limits.is_none()).then(|| (format!("aipipe.rl.t.{}", tenant.id), tenant.limits)),
        key.map(|k| (format!("aipipe.rl.k.{}", k.key), k.limits)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let now = now_ms(host);
    let mut admitted: Vec<Admitted> = Vec::with_capacity(scopes.len());
    let mut standing: Option<Standing> = None;
    for (key, limits) in scopes {
        let mut start = 0;
        match update(host, &key, |w| {
            let s = ratelimit::admit(limits, w, tokens, now)?;
            start = w.start_ms;
            Ok(s)
        }) {
            Ok(Some(s)) => {
                standing = Some(standing.map_or(s, |t| t.tighter(s)));
                admitted.push(Admitted {
                    key,
                    start_ms: start,
                    tokens,
                });
            }
            // Not written (the store refused): not counted, not refused.
            Ok(None) => {}
            Err(r) => {
                for a in &admitted {
                    let _ = update(host, &a.key, |w| {
                        ratelimit::undo(w, a.start_ms, a.tokens);
                        Ok(())
                    });
                }
                return Err(ApiError::RateLimited {
                    message: format!(
                        "Rate limit reached: {} {} per minute for this {}. Retry after {} seconds.",
                        r.limit,
                        r.what,
                        if key.starts_with("aipipe.rl.k.") {
                            "virtual key"
                        } else {
                            "tenant"
                        },
                        r.retry_after_s
                    ),
                    retry_after_s: r.retry_after_s,
                });
            }
        }
    }
    Ok((admitted, standing))
}

/// The request's answer used `used` tokens: each window it was counted in
/// holds that instead of the reservation.
pub(super) fn settle(host: &impl Host, admitted: &[Admitted], used: u64) {
    for a in admitted {
        let _ = update(host, &a.key, |w| {
            ratelimit::settle(w, a.start_ms, a.tokens, used);
            Ok(())
        });
    }
}

/// OpenAI's `x-ratelimit-*` headers for a standing (a limit of 0 is left
/// out).
pub(super) fn headers(s: &Standing) -> Vec<(&'static str, String)> {
    let kinds = [
        (
            u64::from(s.limits.requests_per_minute),
            u64::from(s.remaining_requests),
            s.reset_requests_ms,
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        ),
        (
            s.limits.tokens_per_minute,
            s.remaining_tokens,
            s.reset_tokens_ms,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ),
    ];
    kinds
        .into_iter()
        .filter(|(limit, ..)| *limit > 0)
        .flat_map(|(limit, remaining, reset, [l, r, t])| {
            [
                (l, limit.to_string()),
                (r, remaining.to_string()),
                (t, ratelimit::reset_text(reset)),
            ]
        })
        .collect()
}
