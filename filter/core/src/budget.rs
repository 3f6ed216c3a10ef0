//! Budgets by reservation (control-plane/README.md, "Budgets"): the rules an
//! Envoy applies before a request of a tenant with a budget goes upstream.
//!
//! The control plane publishes each budget as a directory entry
//! ([`BudgetEntry`]): the limit, the window in whole UTC days, the spend the
//! window held when it was written, and when each day's spend leaves the
//! window. What that entry cannot show is this Envoy's own spend since —
//! requests in flight and answers whose records have not reached the
//! published entry yet. Each Envoy keeps exactly that per tenant ([`Held`]),
//! in shared data every worker updates with compare-and-swap:
//!
//! - a request **reserves** its worst-case cost ([`worst_case_nusd`]) before
//!   it is forwarded, only if this Envoy's outstanding spend plus the
//!   reservation fits its lease: an equal share of the remaining budget
//!   among the Envoys sharing it (`fleet_size`), its own spend the entry
//!   already shows charged in full ([`admit`]);
//! - when its usage record is written the reservation is **settled**: the
//!   reservation leaves `inflight`, the exact cost joins `unacked`;
//! - when the control plane acknowledges the batch, the amount moves to
//!   `acked` under the revision the ack names, and once this Envoy holds
//!   that revision of the directory (the entry then counts it) to
//!   `reflected`.
//!
//! So at every instant the spend no published entry shows is counted here,
//! once, and no Envoy's outstanding spend passes its share of what remains.

use crate::catalog::Model;
use crate::directory::BudgetEntry;
use crate::protocol::Tokens;
use crate::usage::cost_at;

pub const DAY_MS: u64 = 86_400_000;
const FORMAT: u8 = 2;
/// Days of reflected spend kept (the longest window and a day).
const MAX_REFLECTED_DAYS: usize = crate::directory::MAX_BUDGET_DAYS as usize + 1;
/// More acknowledged batches than can wait for one revision: the oldest
/// are merged (still counted, under the newest revision of the two).
const MAX_ACKED: usize = 64;

/// This Envoy's spend of one tenant that the budget entry it holds does not
/// show yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Reservations of requests in flight.
    pub inflight_nusd: u64,
    /// Costs of finished requests whose records the control plane has not
    /// acknowledged yet.
    pub unacked_nusd: u64,
    /// Acknowledged, stored at a directory revision this Envoy does not
    /// hold yet: (revision, nano-dollars).
    pub acked: Vec<(u64, u64)>,
    /// This Envoy's own spend the entry it holds shows, by the UTC day it
    /// was reflected (never earlier than the day it was spent, so it leaves
    /// the window no sooner than the entry's does): charged to this Envoy's
    /// lease in full ([`admit`]).
    pub reflected: Vec<(u32, u64)>,
}

impl Held {
    /// Everything counted here.
    pub fn outstanding(&self) -> u64 {
        self.acked.iter().fold(
            self.inflight_nusd.saturating_add(self.unacked_nusd),
            |a, (_, n)| a.saturating_add(*n),
        )
    }

    /// A request's reservation `reserved` ends with the exact `cost`.
    pub fn settle(&mut self, reserved: u64, cost: u64) {
        self.inflight_nusd = self.inflight_nusd.saturating_sub(reserved);
        self.unacked_nusd = self.unacked_nusd.saturating_add(cost);
    }

    /// The control plane stored `nusd` of it; entries written at `revision`
    /// or later count it. `held` is the directory revision this Envoy holds.
    pub fn acknowledged(&mut self, nusd: u64, revision: u64, held: u64, now_ms: u64) {
        self.unacked_nusd = self.unacked_nusd.saturating_sub(nusd);
        if nusd == 0 {
            return;
        }
        if revision <= held {
            // Shown already by the entry this Envoy holds.
            self.add_reflected(nusd, now_ms);
            return;
        }
        match self.acked.iter_mut().find(|(r, _)| *r == revision) {
            Some((_, n)) => *n = n.saturating_add(nusd),
            None => self.acked.push((revision, nusd)),
        }
        if self.acked.len() > MAX_ACKED {
            self.acked.sort_unstable();
            let (r0, n0) = self.acked.remove(0);
            if let Some((r, n)) = self.acked.first_mut() {
                *r = (*r).max(r0);
                *n = n.saturating_add(n0);
            }
        }
    }

    /// This Envoy now holds directory revision `held` (at `now_ms`): what
    /// it shows leaves the count and joins this Envoy's reflected spend.
    /// True when anything changed.
    pub fn reflected(&mut self, held: u64, now_ms: u64) -> bool {
        let before = self.acked.len();
        let mut moved = 0u64;
        self.acked.retain(|&(r, n)| {
            if r > held {
                return true;
            }
            moved = moved.saturating_add(n);
            false
        });
        if moved > 0 {
            self.add_reflected(moved, now_ms);
        }
        self.acked.len() != before
    }

    fn add_reflected(&mut self, nusd: u64, now_ms: u64) {
        let day = u32::try_from(now_ms / DAY_MS).unwrap_or(u32::MAX);
        match self.reflected.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n = n.saturating_add(nusd),
            None => self.reflected.push((day, nusd)),
        }
        // Days before any window's start are forgotten.
        let oldest = day.saturating_sub(u32::from(crate::directory::MAX_BUDGET_DAYS));
        self.reflected.retain(|(d, _)| *d >= oldest);
    }

    /// This Envoy's reflected spend still inside a window of `days` at
    /// `now_ms`.
    pub fn reflected_in(&self, days: u16, now_ms: u64) -> u64 {
        let today = now_ms / DAY_MS;
        let first = today.saturating_sub(u64::from(days).saturating_sub(1));
        self.reflected
            .iter()
            .filter(|(d, _)| u64::from(*d) >= first)
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }

    pub fn encode(&self) -> Vec<u8> {
        let n = self.acked.len().min(MAX_ACKED);
        let d = self.reflected.len().min(MAX_REFLECTED_DAYS);
        let mut out = Vec::with_capacity(21 + 16 * n + 12 * d);
        out.push(FORMAT);
        out.extend_from_slice(&self.inflight_nusd.to_le_bytes());
        out.extend_from_slice(&self.unacked_nusd.to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (r, v) in self.acked.iter().take(n) {
            out.extend_from_slice(&r.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(d as u16).to_le_bytes());
        for (day, v) in self.reflected.iter().take(d) {
            out.extend_from_slice(&day.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// None for anything malformed (a worker then starts from nothing only
    /// if there was nothing: see the callers).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = crate::bytes::Reader::new(bytes);
        if r.u8()? != FORMAT {
            return None;
        }
        let inflight_nusd = r.u64()?;
        let unacked_nusd = r.u64()?;
        let n = usize::from(r.u16()?);
        if n > MAX_ACKED {
            return None;
        }
        let mut acked = Vec::with_capacity(n);
        for _ in 0..n {
            acked.push((r.u64()?, r.u64()?));
        }
        let d = usize::from(r.u16()?);
        if d > MAX_REFLECTED_DAYS {
            return None;
        }
        let mut reflected = Vec::with_capacity(d);
        for _ in 0..d {
            reflected.push((r.u32()?, r.u64()?));
        }
        r.at_end().then_some(Self {
            inflight_nusd,
            unacked_nusd,
            acked,
            reflected,
        })
    }
}

/// The most a request on `model` can cost: its prompt (the scorer's
/// estimate) at the dearer of the input and cache-write prices, and the
/// answer's whole allowance — `max_tokens` when the client set it, else the
/// model's output cap — at the output price. A model's long-context rates
/// count from half their threshold: the estimate (bytes ÷ 4) can fall short
/// of the provider's own count, which decides the bill.
pub fn worst_case_nusd(model: &Model, prompt_tokens: u64, max_tokens: Option<u64>) -> u64 {
    let answer = max_tokens.map_or(model.max_output_tokens, |m| m.min(model.max_output_tokens));
    let prices = model.rates(prompt_tokens.saturating_mul(2));
    let writes_dearer = prices
        .cache_write_per_mtok
        .is_some_and(|w| w > prices.input_per_mtok);
    cost_at(
        &prices,
        &Tokens {
            prompt: prompt_tokens,
            completion: answer,
            cached: 0,
            cache_write: if writes_dearer { prompt_tokens } else { 0 },
        },
    )
}

/// The spend the window holds at `now_ms`: the entry's, less the days that
/// left the window since it was written.
pub fn spent_at(entry: &BudgetEntry, now_ms: u64) -> u64 {
    let freed = entry
        .frees
        .iter()
        .filter(|(at, _)| *at <= now_ms)
        .fold(0u64, |a, (_, n)| a.saturating_add(*n));
    entry.spent_nusd.saturating_sub(freed)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limit_nusd: u64,
    pub days: u16,
    /// Seconds until enough of the window frees up for this request (the
    /// whole window when it never fits).
    pub retry_after_s: u64,
    /// The request cannot fit even in an empty window.
    pub never: bool,
}

/// Whether a reservation of `cost` fits this Envoy's lease now. With `N`
/// Envoys (`fleet_size`), the window's spend `S` (the entry's), this
/// Envoy's outstanding spend `o` and its own spend the entry shows `r`:
///
/// ```text
/// N · (o + cost) + (N − 1) · r ≤ limit − S
/// ```
///
/// Summed over the Envoys, outstanding spend plus `S` never passes the
/// limit: each Envoy's reflected spend is charged to its own lease in full
/// (`S` charges only a 1/N share of it), so spend one Envoy moves into `S`
/// never frees room that another's earlier admissions already took.
pub fn admit(
    entry: &BudgetEntry,
    held: &Held,
    fleet_size: u32,
    cost: u64,
    now_ms: u64,
) -> Result<(), Refusal> {
    let window_s = u64::from(entry.days) * DAY_MS / 1000;
    if entry.limit_nusd == 0 {
        // A limit of 0 blocks the tenant.
        return Err(Refusal {
            limit_nusd: 0,
            days: entry.days,
            retry_after_s: window_s,
            never: true,
        });
    }
    let n = u128::from(fleet_size.max(1));
    let need = u128::from(held.outstanding().saturating_add(cost));
    let fits = |at: u64| {
        let room = u128::from(entry.limit_nusd.saturating_sub(spent_at(entry, at)));
        n * need + (n - 1) * u128::from(held.reflected_in(entry.days, at)) <= room
    };
    if fits(now_ms) {
        return Ok(());
    }
    let when = entry
        .frees
        .iter()
        .map(|(at, _)| *at)
        .filter(|&at| at > now_ms)
        .find(|&at| fits(at));
    let never = u128::from(entry.limit_nusd) < n * u128::from(cost);
    Err(Refusal {
        limit_nusd: entry.limit_nusd,
        days: entry.days,
        retry_after_s: when.map_or(window_s, |at| (at - now_ms).div_ceil(1000)),
        never,
    })
}

/// Dollars for a message: nano-dollars with two to six decimals.
pub fn usd(nusd: u64) -> String {
    let d = nusd as f64 / 1e9;
    if nusd.is_multiple_of(10_000_000) {
        format!("{d:.2}")
    } else {
        format!("{d:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::default_models;

    fn entry(limit: u64, spent: u64, frees: Vec<(u64, u64)>) -> BudgetEntry {
        BudgetEntry {
            rev: 1,
            removed: false,
            limit_nusd: limit,
            days: 30,
            spent_nusd: spent,
            frees,
        }
    }

    #[test]
    fn worst_case_takes_the_whole_answer_allowance_and_the_dearer_prompt_price() {
        let models = default_models();
        let mini = models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
        // 100 prompt tokens at $0.15/M + 50 at $0.60/M.
        assert_eq!(worst_case_nusd(mini, 100, Some(50)), 100 * 150 + 50 * 600);
        // No max_tokens: the model's cap; a larger one is capped too.
        let cap = mini.max_output_tokens;
        assert_eq!(worst_case_nusd(mini, 0, None), cap * 600);
        assert_eq!(worst_case_nusd(mini, 0, Some(u64::MAX)), cap * 600);
        // Anthropic writes cost 1.25x input: the prompt is reserved at that.
        let sonnet = models.iter().find(|m| m.id == "claude-sonnet-5-5").unwrap();
        assert_eq!(worst_case_nusd(sonnet, 1000, Some(0)), 1000 * 2500);
        // Long-context rates count from half their threshold (the estimate
        // may fall short of the provider's count).
        let mut long = sonnet.clone();
        long.long_context = Some(crate::catalog::LongContext {
            above_tokens: 1000,
            input_multiplier: 5.0,
            output_multiplier: 4.0,
        });
        assert_eq!(
            worst_case_nusd(&long, 500, Some(10)),
            500 * 2500 + 10 * 10000
        );
        assert_eq!(
            worst_case_nusd(&long, 501, Some(10)),
            501 * 12500 + 10 * 40000
        );
    }

    #[test]
    fn a_lease_is_the_remaining_budget_shared_by_the_fleet() {
        let e = entry(1000, 400, vec![]);
        let mut held = Held::default();
        assert!(admit(&e, &held, 1, 600, 0).is_ok());
        assert!(admit(&e, &held, 1, 601, 0).is_err());
        // Two Envoys: 300 each.
        assert!(admit(&e, &held, 2, 300, 0).is_ok());
        assert!(admit(&e, &held, 2, 301, 0).is_err());
        held.inflight_nusd = 200;
        held.unacked_nusd = 50;
        held.acked = vec![(9, 50)];
        assert_eq!(held.outstanding(), 300);
        assert!(admit(&e, &held, 1, 300, 0).is_ok());
        assert!(admit(&e, &held, 1, 301, 0).is_err());
    }

    #[test]
    fn spend_one_envoy_reflects_never_frees_room_another_already_took() {
        // Two Envoys, limit 1000, nothing spent: each admits 500.
        let e0 = entry(1000, 0, vec![]);
        let mut a = Held::default();
        let mut b = Held::default();
        for h in [&mut a, &mut b] {
            admit(&e0, h, 2, 500, 0).unwrap();
            h.inflight_nusd = 500;
        }
        // A's 500 is spent, acknowledged and shown: S = 500.
        a.settle(500, 500);
        a.acknowledged(500, 9, 0, 0);
        a.reflected(9, 0);
        let e1 = entry(1000, 500, vec![]);
        // Without charging A's own reflected spend, A's lease would be
        // (1000 - 500) / 2 = 250 while B still holds 500: 1250 in all.
        assert!(admit(&e1, &a, 2, 1, 0).is_err(), "A may not spend more");
        assert!(admit(&e1, &b, 2, 1, 0).is_err(), "B holds its share");
        // B's request ends cheaper than reserved: room for A again.
        b.settle(500, 100);
        b.acknowledged(100, 10, 10, 0);
        b.reflected(10, 0);
        let e2 = entry(1000, 600, vec![]);
        // A: 2 * o + r <= 400  →  o <= -50: still nothing; B: 2 * o + 100 <= 400.
        assert!(admit(&e2, &a, 2, 1, 0).is_err());
        assert!(admit(&e2, &b, 2, 150, 0).is_ok());
        assert!(admit(&e2, &b, 2, 151, 0).is_err());
    }

    #[test]
    fn retry_after_is_when_enough_of_the_window_frees_up() {
        // 900 spent: 500 leaves at t=10 s, 400 at t=20 s.
        let e = entry(1000, 900, vec![(10_000, 500), (20_000, 400)]);
        let held = Held::default();
        let r = admit(&e, &held, 1, 300, 1_000).unwrap_err();
        assert_eq!((r.retry_after_s, r.never), (9, false));
        let r = admit(&e, &held, 1, 700, 1_000).unwrap_err();
        assert_eq!(r.retry_after_s, 19);
        // Larger than the whole limit: never, retry after the window.
        let r = admit(&e, &held, 1, 1001, 1_000).unwrap_err();
        assert!(r.never);
        assert_eq!(r.retry_after_s, 30 * 86_400);
        // Past the first free, it counts as gone.
        assert!(admit(&e, &held, 1, 600, 10_000).is_ok());
        // A limit of 0 blocks everything, free requests too.
        assert!(
            admit(&entry(0, 0, vec![]), &held, 1, 0, 0)
                .unwrap_err()
                .never
        );
    }

    #[test]
    fn spend_moves_from_inflight_to_unacked_to_acked_to_the_entry() {
        let mut h = Held {
            inflight_nusd: 500,
            ..Held::default()
        };
        h.settle(300, 120);
        assert_eq!((h.inflight_nusd, h.unacked_nusd), (200, 120));
        // Acknowledged at revision 7 while this Envoy holds 5: waits.
        h.acknowledged(120, 7, 5, 0);
        assert_eq!((h.unacked_nusd, h.acked.clone()), (0, vec![(7, 120)]));
        assert!(!h.reflected(6, 0));
        assert!(h.reflected(7, 0));
        assert_eq!(h.outstanding(), 200);
        assert_eq!(
            h.reflected_in(30, 0),
            120,
            "now the entry's, and charged to this Envoy"
        );
        // Acknowledged at a revision already held: gone at once.
        h.settle(200, 10);
        h.acknowledged(10, 3, 7, 0);
        assert_eq!(h.outstanding(), 0);
        assert_eq!(Held::decode(&h.encode()), Some(h.clone()));
        let mut many = Held::default();
        for r in 1..=100 {
            many.unacked_nusd += 1;
            many.acknowledged(1, r, 0, 0);
        }
        assert!(many.acked.len() <= MAX_ACKED);
        assert_eq!(many.outstanding(), 100, "merged, never lost");
        assert_eq!(Held::decode(&many.encode()), Some(many));
        assert_eq!(Held::decode(b"\x01short"), None);
    }
}
