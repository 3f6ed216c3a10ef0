//! Per-model penalties the filter keeps itself (filter/README.md,
//! "Penalties"), so a failing model loses traffic at once, before the control
//! plane's next table says so.
//!
//! Every worker VM reads and updates one shared-data value
//! ([`crate::contract::PENALTIES_KEY`]) with compare-and-swap; this module
//! decodes it, applies the rules and encodes it back, without host calls or
//! clocks (time comes in as ms). The control plane applies the same rules to what all Envoys report:
//!
//! - a model's cost factor is `1 + penalty`;
//! - each failure multiplies the factor by 4, the penalty capped at
//!   [`MAX_PENALTY`] (3 failures from healthy: factor 64);
//! - a failure is scoped by who earned it ([`classify`]): an answer about
//!   the provider key (401, 402, 403, 429) penalizes that (model, key)
//!   pair — tenants sharing a key share it, no other tenant's routing
//!   moves — while signs that the provider is unwell (5xx, timeouts,
//!   connection failures) penalize the model for everybody;
//! - each success halves the penalty;
//! - time halves it once per full decay interval (default 30 s), computed
//!   lazily from the time of the last decay step stored with it;
//! - a penalty below [`MIN_PENALTY`] is 0.
//!
//! Models are named by their catalog id (table indices change between table
//! versions). The value belongs to one `penalty_epoch` of the routing table:
//! when the table's epoch is newer, an operator reset the penalties and the
//! local state is dropped ([`Penalties::sync_epoch`]).

/// Penalties halve once per this interval (every 30 s), unless configured
/// otherwise.
pub const DEFAULT_DECAY_MS: u64 = 30_000;
pub const MAX_PENALTY: f64 = 1e6;
/// Below this a penalty is 0 (the factor would differ from 1 by < 1%).
pub const MIN_PENALTY: f64 = 0.01;
/// Factor multiplier per failure.
pub const FAILURE_FACTOR: f64 = 4.0;
/// 2^-1100 is 0 for any penalty up to the cap.
const MAX_HALVINGS: u64 = 1100;
/// More models than any catalog holds: bounds the value even if `retain` is
/// never called.
pub const MAX_MODELS: usize = 1024;

/// What an attempt on a model came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// What a status says about the model for everybody (the control
    /// plane's aggregated penalty): a success, a failure of the model, or —
    /// for a client error and for an answer about one key — nothing.
    pub fn of_status(status: u16) -> Option<Outcome> {
        match classify(status)? {
            (outcome, Scope::Model) => Some(outcome),
            (_, Scope::Key) => None,
        }
    }
}

/// 429, 5xx (and anything above), and 0 (no response: connection failure or
/// timeout): a failed attempt, whoever earned it (see [`classify`]).
pub fn is_failure(status: u16) -> bool {
    matches!(status, 0 | 429 | 500..)
}

/// Who an attempt's outcome speaks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The model as the provider serves it: everybody's.
    Model,
    /// The provider key the attempt was sent with: the tenants that use it.
    Key,
}

/// How an attempt ended and about whom: 2xx/3xx a success (of both the
/// model and the key); 401, 402, 403 and 429 a failure of the key (refused,
/// unpaid, forbidden, rate-limited: this key's business); 0 and 5xx a
/// failure of the model. Any other status (a 4xx: the request itself was
/// refused) says nothing.
pub fn classify(status: u16) -> Option<(Outcome, Scope)> {
    match status {
        200..=399 => Some((Outcome::Success, Scope::Model)),
        401 | 402 | 403 | 429 => Some((Outcome::Failure, Scope::Key)),
        0 | 500.. => Some((Outcome::Failure, Scope::Model)),
        _ => None,
    }
}

/// The local penalty entry of a (model, key) pair: the model id and the
/// key's tag, which no model id can contain (`@` is outside the id rules).
pub fn key_scoped(model_id: &str, key_tag: &str) -> String {
    format!("{model_id}@{key_tag}")
}

/// The model an entry belongs to.
pub fn model_of(entry: &str) -> &str {
    entry.split_once('@').map_or(entry, |(m, _)| m)
}

/// The penalty selection uses: the worse of this Envoy's own view and the
/// control plane's (the table's), so either can slow a model down at once.
pub fn effective(local: f64, table_penalty: f64) -> f64 {
    local.max(table_penalty)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelPenalty {
    /// The catalog model id.
    pub id: String,
    pub penalty: f64,
    pub successes: u64,
    pub failures: u64,
    /// When time decay was last applied (host ms): the next halving is due one
    /// interval later.
    pub decayed_ms: u64,
}

impl ModelPenalty {
    /// The penalty at `now_ms` and the time the last due halving happened.
    fn decayed(&self, now_ms: u64, decay_ms: u64) -> (f64, u64) {
        decay(self.penalty, self.decayed_ms, now_ms, decay_ms)
    }
}

// The rules as plain functions, shared with the control plane, which
// applies them to what every Envoy reports.

/// A penalty kept in range: below [`MIN_PENALTY`] (or not a number) it is 0,
/// above [`MAX_PENALTY`] it is the cap.
pub fn floor(p: f64) -> f64 {
    if p.is_nan() || p < MIN_PENALTY {
        0.0
    } else {
        p.min(MAX_PENALTY)
    }
}

/// `p` halved `times` times.
pub fn halve(p: f64, times: u64) -> f64 {
    let n = i32::try_from(times.min(MAX_HALVINGS)).unwrap_or(i32::MAX);
    p * 0.5f64.powi(n)
}

/// The penalty after one failure: its factor `1 + p` times [`FAILURE_FACTOR`].
pub fn after_failure(p: f64) -> f64 {
    floor((1.0 + p) * FAILURE_FACTOR - 1.0)
}

/// The penalty after one success: halved.
pub fn after_success(p: f64) -> f64 {
    floor(p / 2.0)
}

/// Penalty `p`, last decayed at `decayed_ms`, at `now_ms`: one halving per
/// full `decay_ms` interval since, and when the last of them happened (a
/// partial interval is kept). `decay_ms == 0` turns decay off; a penalty of
/// 0 restarts its clock at `now_ms`.
pub fn decay(p: f64, decayed_ms: u64, now_ms: u64, decay_ms: u64) -> (f64, u64) {
    if p == 0.0 || decay_ms == 0 {
        return (p, now_ms);
    }
    let steps = now_ms.saturating_sub(decayed_ms) / decay_ms;
    if steps == 0 {
        return (p, decayed_ms);
    }
    (
        floor(halve(p, steps)),
        decayed_ms.saturating_add(steps.saturating_mul(decay_ms)),
    )
}

/// The decoded shared value: the penalty epoch and one entry per model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Penalties {
    pub epoch: u64,
    pub models: Vec<ModelPenalty>,
}

// Version 1 layout, little-endian:
//   magic "aipn" | version u8 = 1 | epoch u64 | count u16
//   | count × (id_len u16 | id | penalty f64 | successes u64 | failures u64
//              | decayed_ms u64)
const MAGIC: &[u8; 4] = b"aipn";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 8 + 2;
const MODEL_LEN: usize = 2 + 8 * 4;

impl Penalties {
    /// The value read from shared data; anything that is not exactly one
    /// version-1 value (garbage, an older build's format) is empty.
    pub fn decode(bytes: &[u8]) -> Penalties {
        Self::try_decode(bytes).unwrap_or_default()
    }

    fn try_decode(bytes: &[u8]) -> Option<Penalties> {
        let (magic, rest) = bytes.split_first_chunk::<4>()?;
        let (&version, rest) = rest.split_first()?;
        if magic != MAGIC || version != VERSION {
            return None;
        }
        let (epoch, rest) = rest.split_first_chunk::<8>()?;
        let (count, mut rest) = rest.split_first_chunk::<2>()?;
        let count = usize::from(u16::from_le_bytes(*count));
        if count > MAX_MODELS {
            return None;
        }
        let mut models = Vec::with_capacity(count.min(rest.len() / MODEL_LEN));
        for _ in 0..count {
            let (id_len, r) = rest.split_first_chunk::<2>()?;
            let (id, r) = r.split_at_checked(usize::from(u16::from_le_bytes(*id_len)))?;
            let (penalty, r) = r.split_first_chunk::<8>()?;
            let (successes, r) = r.split_first_chunk::<8>()?;
            let (failures, r) = r.split_first_chunk::<8>()?;
            let (decayed_ms, r) = r.split_first_chunk::<8>()?;
            rest = r;
            let penalty = f64::from_le_bytes(*penalty);
            // Also refuses NaN.
            if !(0.0..=MAX_PENALTY).contains(&penalty) {
                return None;
            }
            models.push(ModelPenalty {
                id: std::str::from_utf8(id).ok()?.to_owned(),
                penalty,
                successes: u64::from_le_bytes(*successes),
                failures: u64::from_le_bytes(*failures),
                decayed_ms: u64::from_le_bytes(*decayed_ms),
            });
        }
        rest.is_empty().then_some(Penalties {
            epoch: u64::from_le_bytes(*epoch),
            models,
        })
    }

    /// The value to write back. Models with ids over 65535 bytes (none in any
    /// catalog) and past [`MAX_MODELS`] are left out.
    pub fn encode(&self) -> Vec<u8> {
        let kept = || {
            self.models
                .iter()
                .filter(|m| u16::try_from(m.id.len()).is_ok())
                .take(MAX_MODELS)
        };
        let size = kept().fold(HEADER_LEN, |n, m| n + MODEL_LEN + m.id.len());
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        let count = u16::try_from(kept().count()).unwrap_or(0);
        out.extend_from_slice(&count.to_le_bytes());
        for m in kept().take(usize::from(count)) {
            let id_len = u16::try_from(m.id.len()).unwrap_or(0);
            out.extend_from_slice(&id_len.to_le_bytes());
            out.extend_from_slice(m.id.as_bytes());
            out.extend_from_slice(&m.penalty.to_le_bytes());
            out.extend_from_slice(&m.successes.to_le_bytes());
            out.extend_from_slice(&m.failures.to_le_bytes());
            out.extend_from_slice(&m.decayed_ms.to_le_bytes());
        }
        out
    }

    pub fn get(&self, model_id: &str) -> Option<&ModelPenalty> {
        self.models.iter().find(|m| m.id == model_id)
    }

    /// The model's penalty at `now_ms` (decay applied, nothing changed);
    /// 0 for a model never seen.
    pub fn penalty(&self, model_id: &str, now_ms: u64, decay_ms: u64) -> f64 {
        self.get(model_id)
            .map_or(0.0, |m| m.decayed(now_ms, decay_ms).0)
    }

    /// Applies one outcome (after the decay due by `now_ms`). Returns whether
    /// the penalty itself changed: when it did not (a success on a healthy
    /// model), only a counter moved and the flow may skip the write.
    pub fn record(&mut self, model_id: &str, outcome: Outcome, now_ms: u64, decay_ms: u64) -> bool {
        let at = match self.models.iter().position(|m| m.id == model_id) {
            Some(i) => i,
            None if self.models.len() < MAX_MODELS => {
                self.models.push(ModelPenalty {
                    id: model_id.to_owned(),
                    penalty: 0.0,
                    successes: 0,
                    failures: 0,
                    decayed_ms: now_ms,
                });
                self.models.len() - 1
            }
            None => return false,
        };
        let Some(m) = self.models.get_mut(at) else {
            return false;
        };
        let before = m.penalty;
        (m.penalty, m.decayed_ms) = m.decayed(now_ms, decay_ms);
        match outcome {
            Outcome::Success => {
                m.successes = m.successes.saturating_add(1);
                m.penalty = after_success(m.penalty);
            }
            Outcome::Failure => {
                m.failures = m.failures.saturating_add(1);
                if m.penalty == 0.0 {
                    // Decay counts from the first failure.
                    m.decayed_ms = now_ms;
                }
                m.penalty = after_failure(m.penalty);
            }
        }
        m.penalty != before
    }

    /// Adopts the routing table's penalty epoch: a newer one means an
    /// operator reset, and every local penalty and counter is dropped.
    /// Returns whether that happened. (An older epoch is a worker holding a
    /// stale table; it changes nothing.)
    pub fn sync_epoch(&mut self, table_epoch: u64) -> bool {
        if table_epoch <= self.epoch {
            return false;
        }
        self.epoch = table_epoch;
        self.models.clear();
        true
    }

    /// Keeps only the entries of models `known` accepts (those of the
    /// current table), so the value stays as small as the catalog.
    pub fn retain(&mut self, known: impl Fn(&str) -> bool) {
        self.models.retain(|m| known(model_of(&m.id)));
    }

    /// Whether any entry is a (model, key) pair's.
    pub fn has_key_scoped(&self) -> bool {
        self.models.iter().any(|m| m.id.contains('@'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = DEFAULT_DECAY_MS;

    fn fail(p: &mut Penalties, id: &str, now: u64) -> bool {
        p.record(id, Outcome::Failure, now, D)
    }

    #[test]
    fn three_failures_make_the_factor_64() {
        let mut p = Penalties::default();
        for _ in 0..3 {
            assert!(fail(&mut p, "gpt-4o", 1_000));
        }
        assert_eq!(1.0 + p.penalty("gpt-4o", 1_000, D), 64.0);
        assert_eq!(p.get("gpt-4o").unwrap().failures, 3);
        assert_eq!(p.penalty("gpt-4o-mini", 1_000, D), 0.0);
        // Capped.
        for _ in 0..20 {
            fail(&mut p, "gpt-4o", 1_000);
        }
        assert_eq!(p.penalty("gpt-4o", 1_000, D), MAX_PENALTY);
    }

    #[test]
    fn successes_halve_the_penalty_down_to_zero() {
        let mut p = Penalties::default();
        fail(&mut p, "m", 0); // 3
        assert!(p.record("m", Outcome::Success, 0, D));
        assert_eq!(p.penalty("m", 0, D), 1.5);
        for _ in 0..7 {
            p.record("m", Outcome::Success, 0, D);
        }
        // 1.5 / 2^7 = 0.0117..., one more halving is below 0.01: 0.
        assert!(p.penalty("m", 0, D) > MIN_PENALTY);
        assert!(p.record("m", Outcome::Success, 0, D));
        assert_eq!(p.penalty("m", 0, D), 0.0);
        // A success on a healthy model only counts.
        assert!(!p.record("m", Outcome::Success, 0, D));
        assert!(!p.record("new", Outcome::Success, 0, D));
        assert_eq!(p.get("m").unwrap().successes, 10);
        assert_eq!(p.get("new").unwrap().successes, 1);
    }

    #[test]
    fn time_halves_the_penalty_once_per_full_interval() {
        let mut p = Penalties::default();
        fail(&mut p, "m", 1_000);
        fail(&mut p, "m", 1_000); // 15
        assert_eq!(p.penalty("m", 1_000 + D - 1, D), 15.0);
        assert_eq!(p.penalty("m", 1_000 + D, D), 7.5);
        assert_eq!(p.penalty("m", 1_000 + 3 * D + 5, D), 1.875);
        assert_eq!(p.penalty("m", u64::MAX, D), 0.0);
        // The clock going back decays nothing.
        assert_eq!(p.penalty("m", 0, D), 15.0);
        // Decay is applied before an outcome, and the partial interval is kept.
        fail(&mut p, "m", 1_000 + D + D / 2); // (1 + 7.5) * 4 - 1
        assert_eq!(p.penalty("m", 1_000 + D + D / 2, D), 33.0);
        assert_eq!(p.penalty("m", 1_000 + 2 * D, D), 16.5);
        // Decay can be switched off (a 0 interval) in tests.
        assert_eq!(p.penalty("m", u64::MAX, 0), 33.0);
        // A test-sized interval.
        let mut q = Penalties::default();
        fail(&mut q, "m", 0);
        assert_eq!(q.penalty("m", 250, 100), 0.75);
    }

    #[test]
    fn a_newer_epoch_resets_everything() {
        let mut p = Penalties {
            epoch: 3,
            ..Penalties::default()
        };
        fail(&mut p, "m", 0);
        assert!(!p.sync_epoch(3));
        assert!(!p.sync_epoch(2));
        assert_eq!(p.penalty("m", 0, D), 3.0);
        assert!(p.sync_epoch(4));
        assert_eq!(p.epoch, 4);
        assert!(p.models.is_empty());
        assert_eq!(p.penalty("m", 0, D), 0.0);
    }

    #[test]
    fn encoding_round_trips_and_garbage_is_empty() {
        let mut p = Penalties {
            epoch: 7,
            ..Penalties::default()
        };
        fail(&mut p, "gpt-4o", 5);
        p.record("claude-sonnet-5-5", Outcome::Success, 6, D);
        fail(&mut p, "模型", 7);
        let bytes = p.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 3 * MODEL_LEN + 6 + 17 + 6);
        assert_eq!(Penalties::decode(&bytes), p);

        assert_eq!(Penalties::decode(b""), Penalties::default());
        assert_eq!(Penalties::decode(b"{\"epoch\":1}"), Penalties::default());
        for cut in 0..bytes.len() {
            assert_eq!(
                Penalties::decode(&bytes[..cut]),
                Penalties::default(),
                "{cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Penalties::decode(&longer), Penalties::default());
        let at_penalty = HEADER_LEN + 2 + "gpt-4o".len();
        for bad in [f64::NAN, -1.0, f64::INFINITY, MAX_PENALTY * 2.0] {
            let mut b = bytes.clone();
            b[at_penalty..at_penalty + 8].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(Penalties::decode(&b), Penalties::default(), "{bad}");
        }
        let mut b = bytes.clone();
        b[HEADER_LEN + 2] = 0xff; // id not UTF-8
        assert_eq!(Penalties::decode(&b), Penalties::default());
        let mut b = bytes;
        b[13..15].copy_from_slice(&u16::MAX.to_le_bytes()); // count past MAX_MODELS
        assert_eq!(Penalties::decode(&b), Penalties::default());
    }

    #[test]
    fn only_known_models_are_kept_and_the_count_is_bounded() {
        let mut p = Penalties::default();
        for id in ["a", "b", "c"] {
            fail(&mut p, id, 0);
        }
        p.retain(|id| id != "b");
        assert_eq!(
            p.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );

        let mut p = Penalties::default();
        for i in 0..MAX_MODELS + 10 {
            fail(&mut p, &format!("m{i}"), 0);
        }
        assert_eq!(p.models.len(), MAX_MODELS);
        assert_eq!(Penalties::decode(&p.encode()), p);
    }

    #[test]
    fn statuses_and_who_they_speak_about() {
        for s in [0, 500, 502, 503, 504, 529, 599, 600] {
            assert!(is_failure(s), "{s}");
            assert_eq!(classify(s), Some((Outcome::Failure, Scope::Model)));
            assert_eq!(Outcome::of_status(s), Some(Outcome::Failure));
        }
        for s in [401, 402, 403, 429] {
            assert_eq!(classify(s), Some((Outcome::Failure, Scope::Key)), "{s}");
            // Never the model's penalty for everybody.
            assert_eq!(Outcome::of_status(s), None, "{s}");
        }
        assert!(is_failure(429), "a rate-limited attempt still fails over");
        for s in [200, 201, 304] {
            assert!(!is_failure(s));
            assert_eq!(Outcome::of_status(s), Some(Outcome::Success));
        }
        for s in [100, 400, 404, 413, 499] {
            assert!(!is_failure(s));
            assert_eq!(classify(s), None, "{s}");
        }
        assert_eq!(model_of(&key_scoped("gpt-4o", "ab12")), "gpt-4o");
        assert_eq!(model_of("gpt-4o"), "gpt-4o");
        assert_eq!(effective(3.0, 0.5), 3.0);
        assert_eq!(effective(0.0, 7.0), 7.0);
    }
}
