//! Model penalties (control-plane/README.md, "Penalties"), aggregated from
//! what every Envoy reports. The rules are the filter's
//! (`aipipe_core::penalty`), so the numbers agree:
//!
//! - a failure (status 429, 5xx, 0 = no status, or a failed attempt) turns
//!   the factor `f = 1 + penalty` into `4 f` (penalty `4p + 3`), capped at
//!   [`MAX_PENALTY`];
//! - a success (status 200–399) halves the penalty; other statuses (client
//!   errors) leave it alone;
//! - time halves it once per full decay interval, counted from the last
//!   decay step (`decayed_ms`; from the first failure when it was 0);
//! - a penalty below [`FLOOR`] is 0;
//! - an answer from the filter's cache (filter/README.md, "Cache") called no
//!   provider and says nothing about its health: it leaves the penalty
//!   alone.
//!
//! Events apply at their request's time. One stamped before the last decay
//! step (a filter's buffered backlog, delivered late) is discounted by the
//! halvings it missed, `w = 2^−⌈age / interval⌉`: a failure adds
//! `w · 3 (1 + p)`, a success multiplies by `1 − w / 2`. So a late event
//! from the current interval counts in full, and an hour-old backlog barely
//! moves a penalty.
//!
//! Everything here is plain arithmetic on models' states: [`apply_events`]
//! folds a batch's outcomes into them and [`republish`] decides when the
//! routing table must carry new values; `db` only loads and stores them.

pub use aipipe_core::penalty::{
    DEFAULT_DECAY_MS, FAILURE_FACTOR, MAX_PENALTY, MIN_PENALTY as FLOOR,
};
use aipipe_core::penalty::{after_failure, after_success, decay, floor, halve};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// A factor change above this share reaches the routing table.
pub const REPUBLISH_RATIO: f64 = 1.05;
/// After this many halvings any penalty up to the cap is 0.
const MAX_HALVINGS: u64 = 1100;

/// How a usage record's status counts for its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// A client error (400, 413, …) or an answer about one provider key
    /// (401, 402, 403, 429): says nothing about the model for everybody.
    Neutral,
}

impl Outcome {
    /// The filter's classification (`aipipe_core::penalty::Outcome::of_status`).
    pub fn of_status(status: u16) -> Self {
        match aipipe_core::penalty::Outcome::of_status(status) {
            Some(aipipe_core::penalty::Outcome::Failure) => Self::Failure,
            Some(aipipe_core::penalty::Outcome::Success) => Self::Success,
            None => Self::Neutral,
        }
    }

    /// How a usage record counts for the model that answered it: by its
    /// status, except that a cache hit counts for nothing.
    pub fn of_record(r: &aipipe_core::usage::UsageRecord) -> Self {
        if r.cache_hit {
            Self::Neutral
        } else {
            Self::of_status(r.status)
        }
    }

    /// What a status says about the (model, key) pair it was sent with: a
    /// success lowers the pair's penalty, a 401/402/403/429 raises it;
    /// the provider's own trouble (5xx, no answer) is the model's, not the
    /// key's.
    pub fn of_key_status(status: u16) -> Self {
        use aipipe_core::penalty::{Outcome as O, Scope, classify};
        match classify(status) {
            Some((O::Success, _)) => Self::Success,
            Some((O::Failure, Scope::Key)) => Self::Failure,
            _ => Self::Neutral,
        }
    }
}

/// One model's penalty and the time of its last decay step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub penalty: f64,
    pub decayed_ms: u64,
}

impl State {
    /// The state at `now_ms`: every halving due by then applied, `decayed_ms`
    /// moved by whole intervals (a partial one is kept). A clock that went
    /// back decays nothing.
    pub fn decayed(&self, now_ms: u64, decay_ms: u64) -> State {
        let (penalty, decayed_ms) = decay(self.penalty, self.decayed_ms, now_ms, decay_ms.max(1));
        State {
            penalty,
            decayed_ms,
        }
    }

    /// The penalty at `now_ms`.
    pub fn at(&self, now_ms: u64, decay_ms: u64) -> f64 {
        self.decayed(now_ms, decay_ms).penalty
    }

    /// Applies one event that happened at `at_ms`.
    pub fn apply(&mut self, outcome: Outcome, at_ms: u64, decay_ms: u64) {
        let failure = match outcome {
            Outcome::Neutral => return,
            Outcome::Failure => true,
            Outcome::Success => false,
        };
        if self.penalty == 0.0 || at_ms >= self.decayed_ms {
            *self = self.decayed(at_ms, decay_ms);
            if failure {
                if self.penalty == 0.0 {
                    // Decay counts from the first failure.
                    self.decayed_ms = at_ms;
                }
                self.penalty = after_failure(self.penalty);
            } else {
                self.penalty = after_success(self.penalty);
            }
        } else {
            let missed = (self.decayed_ms - at_ms).div_ceil(decay_ms.max(1));
            let w = halve(1.0, missed);
            let p = self.penalty;
            self.penalty = floor(if failure {
                p + w * (FAILURE_FACTOR - 1.0) * (1.0 + p)
            } else {
                p * (1.0 - w / 2.0)
            });
        }
    }

    /// The earliest time after `now_ms` at which, with no further events, the
    /// decayed penalty differs meaningfully from `published`; `u64::MAX` when
    /// it never will. Call only when it does not differ at `now_ms`.
    pub fn republish_due(&self, published: f64, now_ms: u64, decay_ms: u64) -> u64 {
        if published <= 0.0 {
            // Decay only lowers a penalty: from 0 nothing changes.
            return u64::MAX;
        }
        let d = decay_ms.max(1);
        let cur = self.decayed(now_ms, d);
        let mut p = cur.penalty;
        for k in 1..=MAX_HALVINGS {
            p = floor(halve(p, 1));
            if meaningful(p, published) {
                return cur
                    .decayed_ms
                    .saturating_add(k.saturating_mul(d))
                    .max(now_ms.saturating_add(1));
            }
        }
        u64::MAX
    }
}

/// One model's stored penalty and its counts since the last reset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    pub state: State,
    pub successes: u64,
    pub failures: u64,
    /// Time of the last event applied (or of the last reset), unix ms.
    pub updated_ms: u64,
}

impl Tally {
    /// A model that never had an event, first seen at `at_ms`.
    fn fresh(at_ms: u64) -> Self {
        Self {
            state: State {
                penalty: 0.0,
                decayed_ms: at_ms,
            },
            successes: 0,
            failures: 0,
            updated_ms: at_ms,
        }
    }
}

/// (provider, model, key tag): a model's own penalty has the tag "", a
/// (model, provider key) pair's the key's tag.
pub type ModelKey<'a> = (&'a str, &'a str, &'a str);

/// One outcome of one model (or one model with one key) at its request's
/// time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    pub ts_ms: u64,
    pub provider: &'a str,
    pub model: &'a str,
    /// "" for the model's own penalty.
    pub key_tag: &'a str,
    pub outcome: Outcome,
}

/// Applies outcome events to the models' tallies, in time order (stable, so
/// a record's failed attempts stay before its own outcome). An event stamped
/// in the future (a skewed clock) counts as now. `load` gives a model's
/// stored tally (None: it never had one), asked once per model touched.
/// Returns the new tally of every model an event touched.
pub fn apply_events<'a, E>(
    mut events: Vec<Event<'a>>,
    now_ms: u64,
    decay_ms: u64,
    mut load: impl FnMut(ModelKey<'_>) -> Result<Option<Tally>, E>,
) -> Result<Vec<(ModelKey<'a>, Tally)>, E> {
    events.retain(|e| e.outcome != Outcome::Neutral);
    events.sort_by_key(|e| e.ts_ms);
    let mut touched: HashMap<ModelKey<'a>, Tally> = HashMap::new();
    for e in events {
        let at = e.ts_ms.min(now_ms);
        let t = match touched.entry((e.provider, e.model, e.key_tag)) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let stored = load((e.provider, e.model, e.key_tag))?;
                v.insert(stored.unwrap_or_else(|| Tally::fresh(at)))
            }
        };
        t.state.apply(e.outcome, at, decay_ms);
        t.updated_ms = t.updated_ms.max(at);
        match e.outcome {
            Outcome::Success => t.successes = t.successes.saturating_add(1),
            Outcome::Failure => t.failures = t.failures.saturating_add(1),
            Outcome::Neutral => {}
        }
    }
    Ok(touched.into_iter().collect())
}

/// What the routing table should carry, given every model's state and the
/// value the table now carries for it (`(state, published)`, in one order).
#[derive(Debug, Clone, PartialEq)]
pub struct Republish {
    /// The values to publish, in the input's order: every model's decayed
    /// penalty when any one differs meaningfully from what the table
    /// carries; None when the table stays as it is.
    pub publish: Option<Vec<f64>>,
    /// When decay alone will next make one differ (`u64::MAX`: never).
    pub due_ms: u64,
}

/// Decides whether the table's penalties must be republished at `now_ms`;
/// all of them are, together, so one table version carries one instant.
pub fn republish(models: &[(State, f64)], now_ms: u64, decay_ms: u64) -> Republish {
    let stale = models
        .iter()
        .any(|(s, published)| meaningful(s.at(now_ms, decay_ms), *published));
    let publish: Option<Vec<f64>> =
        stale.then(|| models.iter().map(|(s, _)| s.at(now_ms, decay_ms)).collect());
    let due_ms = models
        .iter()
        .enumerate()
        .map(|(i, (s, published))| {
            let held = publish
                .as_ref()
                .and_then(|p| p.get(i).copied())
                .unwrap_or(*published);
            s.republish_due(held, now_ms, decay_ms)
        })
        .min()
        .unwrap_or(u64::MAX);
    Republish { publish, due_ms }
}

/// True when a filter holding penalty `held` should get `current`: one is 0
/// and the other not, or the factors `1 + p` differ by more than 5 %.
pub fn meaningful(current: f64, held: f64) -> bool {
    if (current > 0.0) != (held > 0.0) {
        return true;
    }
    let (a, b) = (1.0 + current, 1.0 + held);
    a.max(b) / a.min(b) > REPUBLISH_RATIO
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp)]
    use super::*;

    const D: u64 = 30_000;

    fn fresh() -> State {
        State {
            penalty: 0.0,
            decayed_ms: 0,
        }
    }

    #[test]
    fn failures_quadruple_the_factor_and_successes_halve() {
        let mut s = fresh();
        s.apply(Outcome::Failure, 1_000, D);
        assert_eq!((s.penalty, s.decayed_ms), (3.0, 1_000));
        s.apply(Outcome::Failure, 1_000, D);
        assert_eq!(s.penalty, 15.0);
        s.apply(Outcome::Success, 1_000, D);
        assert_eq!(s.penalty, 7.5);
        s.apply(Outcome::Neutral, 1_000, D);
        assert_eq!(s.penalty, 7.5);
        for _ in 0..100 {
            s.apply(Outcome::Failure, 1_000, D);
        }
        assert_eq!(s.penalty, MAX_PENALTY);
        for _ in 0..40 {
            s.apply(Outcome::Success, 1_000, D);
        }
        assert_eq!(s.penalty, 0.0, "below the floor is 0");
    }

    /// The same sequence as the filter's own test, with the same numbers.
    #[test]
    fn time_halves_it_once_per_full_interval_like_the_filter() {
        let mut s = fresh();
        s.apply(Outcome::Failure, 1_000, D);
        s.apply(Outcome::Failure, 1_000, D); // 15
        assert_eq!(s.at(1_000 + D - 1, D), 15.0);
        assert_eq!(s.at(1_000 + D, D), 7.5);
        assert_eq!(s.at(1_000 + 3 * D + 5, D), 1.875);
        assert_eq!(s.at(u64::MAX, D), 0.0);
        assert_eq!(s.at(0, D), 15.0, "a clock that went back decays nothing");
        s.apply(Outcome::Failure, 1_000 + D + D / 2, D); // (1 + 7.5) * 4 - 1
        assert_eq!(s.at(1_000 + D + D / 2, D), 33.0);
        assert_eq!(s.at(1_000 + 2 * D, D), 16.5);
        let mut q = fresh();
        q.apply(Outcome::Failure, 0, 100);
        assert_eq!(q.at(250, 100), 0.75);
    }

    #[test]
    fn late_events_are_discounted_by_the_halvings_they_missed() {
        let mut s = fresh();
        s.apply(Outcome::Failure, 10 * D, D);
        s.apply(Outcome::Success, 11 * D, D); // decayed to 1.5 at 11 D, then 0.75
        assert_eq!((s.penalty, s.decayed_ms), (0.75, 11 * D));
        let mut late = s;
        late.apply(Outcome::Failure, 10 * D + 1, D);
        assert_eq!(late.penalty, 0.75 + 0.5 * 3.0 * 1.75);
        assert_eq!(late.decayed_ms, 11 * D, "a late event does not move time");
        let mut late = s;
        late.apply(Outcome::Success, 9 * D, D);
        assert_eq!(late.penalty, 0.75 * (1.0 - 0.25 / 2.0));
        let mut ancient = s;
        ancient.apply(Outcome::Failure, 0, D);
        assert!(ancient.penalty - 0.75 < 0.01, "{}", ancient.penalty);
    }

    #[test]
    fn meaningful_changes_and_when_decay_makes_one() {
        assert!(meaningful(0.02, 0.0));
        assert!(meaningful(0.0, 0.02));
        assert!(!meaningful(0.0, 0.0));
        assert!(!meaningful(3.0, 3.1));
        assert!(meaningful(3.0, 3.3));
        let mut s = fresh();
        s.apply(Outcome::Failure, 0, D);
        assert_eq!(s.republish_due(3.0, 5, D), D, "the first halving");
        // 0.04 → 0.02 → 0.01 are each under 5 % of the factor; → 0 (below
        // the floor) is a change.
        let s = State {
            penalty: 0.04,
            decayed_ms: 0,
        };
        assert!(!meaningful(0.01, 0.04));
        assert_eq!(s.republish_due(0.04, 0, D), 3 * D);
        assert_eq!(s.at(3 * D - 1, D), 0.01);
        assert_eq!(s.at(3 * D, D), 0.0);
        // Published long ago, decayed since but not enough to matter yet.
        let s = State {
            penalty: 0.08,
            decayed_ms: 0,
        };
        assert_eq!(s.republish_due(0.04, D + 7, D), 4 * D);
        assert_eq!(fresh().republish_due(0.0, 5, D), u64::MAX);
    }

    fn event(ts_ms: u64, model: &str, outcome: Outcome) -> Event<'_> {
        Event {
            ts_ms,
            provider: "openai",
            model,
            key_tag: "",
            outcome,
        }
    }

    #[test]
    fn events_apply_in_time_order_from_the_stored_tally() {
        let mut loads = Vec::new();
        let stored = Tally {
            state: State {
                penalty: 3.0,
                decayed_ms: 1_000,
            },
            successes: 4,
            failures: 1,
            updated_ms: 1_000,
        };
        let events = vec![
            // Listed late, happened first: a success halves 3 before the failure.
            event(2_000, "a", Outcome::Failure),
            event(1_500, "a", Outcome::Success),
            event(1_500, "b", Outcome::Neutral),
            // Stamped in the future: counts as now.
            event(99_000, "c", Outcome::Failure),
        ];
        let touched = apply_events(events, 5_000, D, |(p, m, _)| {
            loads.push(format!("{p}/{m}"));
            Ok::<_, ()>((m == "a").then_some(stored))
        })
        .unwrap();
        let get = |m: &str| {
            touched
                .iter()
                .find(|((_, k, _), _)| *k == m)
                .map(|(_, t)| *t)
        };
        let a = get("a").unwrap();
        assert_eq!(a.state.penalty, (1.0 + 1.5) * 4.0 - 1.0);
        assert_eq!((a.successes, a.failures, a.updated_ms), (5, 2, 2_000));
        assert!(get("b").is_none(), "a neutral outcome touches nothing");
        let c = get("c").unwrap();
        assert_eq!((c.state.penalty, c.state.decayed_ms), (3.0, 5_000));
        assert_eq!((c.failures, c.updated_ms), (1, 5_000));
        loads.sort();
        assert_eq!(loads, ["openai/a", "openai/c"], "each model loaded once");
    }

    #[test]
    fn republishing_moves_every_value_or_none() {
        let at = |penalty: f64| State {
            penalty,
            decayed_ms: 0,
        };
        let calm = republish(&[(at(3.0), 3.0), (at(0.0), 0.0)], 5, D);
        assert_eq!(calm.publish, None);
        assert_eq!(calm.due_ms, D, "the first halving of 3");
        let moved = republish(&[(at(3.0), 3.0), (at(15.0), 3.0)], 5, D);
        assert_eq!(moved.publish, Some(vec![3.0, 15.0]));
        assert_eq!(moved.due_ms, D);
        assert_eq!(republish(&[], 5, D).due_ms, u64::MAX);
    }

    #[test]
    fn statuses_count_as_the_filter_counts_them() {
        for (status, outcome) in [
            (200, Outcome::Success),
            (304, Outcome::Success),
            (0, Outcome::Failure),
            // About one provider key: penalized per key by the filter,
            // never in the model's penalty for everybody.
            (429, Outcome::Neutral),
            (403, Outcome::Neutral),
            (500, Outcome::Failure),
            (503, Outcome::Failure),
            (504, Outcome::Failure),
            (529, Outcome::Failure),
            (400, Outcome::Neutral),
            (401, Outcome::Neutral),
            (413, Outcome::Neutral),
            (100, Outcome::Neutral),
        ] {
            assert_eq!(Outcome::of_status(status), outcome, "{status}");
        }
    }

    #[test]
    fn a_cache_hit_says_nothing_about_its_model() {
        let mut r = aipipe_core::usage::UsageRecord {
            id: "r".into(),
            tenant: "t".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            status: 200,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 0,
            latency_ms: 0.1,
            ttft_ms: Some(0.1),
            complexity: None,
            stream: false,
            usage_parsed: true,
            ts_ms: 0,
            failed_attempts: Vec::new(),
            cache_hit: false,
            estimated: false,
            key_tag: None,
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: None,
        };
        assert_eq!(Outcome::of_record(&r), Outcome::Success);
        r.cache_hit = true;
        assert_eq!(Outcome::of_record(&r), Outcome::Neutral);
    }
}
