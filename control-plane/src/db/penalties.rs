//! Model penalties as stored: each model's state, and what the routing
//! table carries.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::models;
use super::{Change, Db, Tx, now_ms, penalty_epoch, pg, record_change, to_i64, to_u64, version};
use crate::error::Result;
use crate::penalty::{self, ModelKey, Tally};

/// One model's penalty as `GET /admin/penalties` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct PenaltyView {
    pub model: String,
    pub provider: String,
    /// Current value, decayed to now.
    pub penalty: f64,
    /// The value the current routing table carries (republished when the
    /// current one differs by more than 5 % in `1 + penalty`, or crosses 0).
    pub table_penalty: f64,
    /// successes / (successes + failures); null without either.
    pub success_rate: Option<f64>,
    pub successes: u64,
    pub failures: u64,
    /// Time of the last event applied (or of the last reset), unix ms; null
    /// when the model never had one.
    pub updated_ms: Option<u64>,
}

/// One (model, provider key) pair's penalty: what a key's own 401, 402,
/// 403 or 429 answers earned it. Only the tenants holding that key route
/// around it.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct KeyPenaltyView {
    pub model: String,
    pub provider: String,
    /// The key's tag: the first 16 hex digits of its SHA-256 (nothing of
    /// the key can be read back from it). `printf %s "$KEY" | sha256sum`.
    pub key_tag: String,
    /// Current value, decayed to now.
    pub penalty: f64,
    /// The value the current routing table carries.
    pub table_penalty: f64,
    pub successes: u64,
    pub failures: u64,
    /// Time of the last event applied, unix ms.
    pub updated_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Penalties {
    pub penalty_epoch: u64,
    pub decay_ms: u64,
    pub table_version: u64,
    /// Each model's own penalty (the provider's trouble: 5xx, timeouts,
    /// failed connections), for everybody.
    pub penalties: Vec<PenaltyView>,
    /// Penalties of (model, key) pairs that have one, worst first (with
    /// `?tenant=`, only that tenant's keys').
    pub key_penalties: Vec<KeyPenaltyView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct PenaltyReset {
    /// Models whose penalty was zeroed.
    pub reset: Vec<String>,
    pub penalty_epoch: u64,
    pub table_version: u64,
}

/// A stored penalty row: a model's (`key_tag` empty) or a (model, key)
/// pair's.
#[derive(Debug, Clone)]
pub(super) struct PenaltyRow {
    pub(super) provider: String,
    pub(super) model: String,
    pub(super) key_tag: String,
    pub(super) tally: Tally,
    pub(super) published: f64,
}

fn tally_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Tally> {
    Ok(Tally {
        state: penalty::State {
            penalty: r.get(first)?,
            decayed_ms: to_u64(r.get(first + 1)?),
        },
        successes: to_u64(r.get(first + 2)?),
        failures: to_u64(r.get(first + 3)?),
        updated_ms: to_u64(r.get(first + 4)?),
    })
}

pub(super) fn penalty_rows(conn: &Connection) -> Result<Vec<PenaltyRow>> {
    let mut st = conn.prepare_cached(
        "SELECT provider, model, key_tag, penalty, decayed_ms, successes, failures, updated_ms,
            published
         FROM penalties ORDER BY provider, model, key_tag",
    )?;
    let rows = st.query_map([], |r| {
        Ok(PenaltyRow {
            provider: r.get(0)?,
            model: r.get(1)?,
            key_tag: r.get(2)?,
            tally: tally_of(r, 3)?,
            published: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Republishes every penalty (and bumps the table version) when any one,
/// decayed to `now`, differs meaningfully from what the table carries.
/// Returns when decay alone will next make them differ. A (model, key)
/// pair whose penalty is 0 and published as 0 is forgotten: the rows of
/// pairs stay as few as the keys currently in trouble.
fn republish(tx: &Transaction<'_>, now: u64, decay_ms: u64) -> Result<u64> {
    let rows = penalty_rows(tx)?;
    let held: Vec<(penalty::State, f64)> =
        rows.iter().map(|r| (r.tally.state, r.published)).collect();
    let plan = penalty::republish(&held, now, decay_ms);
    if let Some(values) = &plan.publish {
        let mut update = tx.prepare_cached(
            "UPDATE penalties SET published = ?4
             WHERE provider = ?1 AND model = ?2 AND key_tag = ?3",
        )?;
        for (r, p) in rows.iter().zip(values) {
            update.execute(params![r.provider, r.model, r.key_tag, p])?;
        }
        record_change(tx, Change::Global)?;
    }
    let mut forget = tx.prepare_cached(
        "DELETE FROM penalties WHERE provider = ?1 AND model = ?2 AND key_tag = ?3",
    )?;
    for r in forgotten(&rows, &plan, now, decay_ms) {
        forget.execute(params![r.provider, r.model, r.key_tag])?;
    }
    Ok(plan.due_ms)
}

/// When a republish at `now` would write nothing (no value stale, no pair
/// to forget): the deadline it would plan. None when it would write.
pub(super) fn nothing_to_write(rows: &[PenaltyRow], now: u64, decay_ms: u64) -> Option<u64> {
    let held: Vec<(penalty::State, f64)> =
        rows.iter().map(|r| (r.tally.state, r.published)).collect();
    let plan = penalty::republish(&held, now, decay_ms);
    let idle = plan.publish.is_none() && forgotten(rows, &plan, now, decay_ms).next().is_none();
    idle.then_some(plan.due_ms)
}

/// The (model, key) pairs a republish forgets: at 0 and published as 0
/// (`republish`'s rule, shared with PostgreSQL's).
pub(super) fn forgotten<'r>(
    rows: &'r [PenaltyRow],
    plan: &penalty::Republish,
    now: u64,
    decay_ms: u64,
) -> impl Iterator<Item = &'r PenaltyRow> {
    rows.iter().enumerate().filter_map(move |(i, r)| {
        let published = plan
            .publish
            .as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(r.published);
        (!r.key_tag.is_empty() && published == 0.0 && r.tally.state.at(now, decay_ms) == 0.0)
            .then_some(r)
    })
}

impl Tx<'_, '_> {
    /// A model's (or a (model, key) pair's) stored tally; None when it has
    /// none.
    pub fn penalty_tally(&self, (provider, model, key_tag): ModelKey<'_>) -> Result<Option<Tally>> {
        if let Some(w) = self.pg() {
            return pg::penalties::tally(&mut **w?, (provider, model, key_tag));
        }
        let mut load = self.sqlite()?.prepare_cached(
            "SELECT penalty, decayed_ms, successes, failures, updated_ms FROM penalties
             WHERE provider = ?1 AND model = ?2 AND key_tag = ?3",
        )?;
        Ok(load
            .query_row(params![provider, model, key_tag], |r| tally_of(r, 0))
            .optional()?)
    }

    /// Stores a model's (or pair's) tally; what the table carries
    /// (`published`) is left to [`Tx::republish_penalties`].
    pub fn save_penalty_tally(
        &self,
        (provider, model, key_tag): ModelKey<'_>,
        t: &Tally,
    ) -> Result<()> {
        if let Some(w) = self.pg() {
            return pg::penalties::save_tally(&mut **w?, (provider, model, key_tag), t);
        }
        let mut save = self.sqlite()?.prepare_cached(
            "INSERT INTO penalties (provider, model, key_tag, penalty, decayed_ms, successes,
                failures, updated_ms, published)
             VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?6, ?7, 0)
             ON CONFLICT (provider, model, key_tag) DO UPDATE SET penalty = excluded.penalty,
                decayed_ms = excluded.decayed_ms, successes = excluded.successes,
                failures = excluded.failures, updated_ms = excluded.updated_ms",
        )?;
        save.execute(params![
            provider,
            model,
            t.state.penalty,
            to_i64(t.state.decayed_ms),
            to_i64(t.successes),
            to_i64(t.failures),
            to_i64(t.updated_ms),
            key_tag,
        ])?;
        Ok(())
    }

    /// Republishes the penalties if any changed meaningfully (bumping the
    /// table version); returns when decay alone will next make one differ.
    pub fn republish_penalties(&self, now: u64) -> Result<u64> {
        if let Some(w) = self.pg() {
            return pg::penalties::republish(&mut **w?, now, self.decay_ms);
        }
        republish(self.sqlite()?, now, self.decay_ms)
    }
}

/// What `GET /admin/penalties` is made of, as read in one snapshot.
struct Held {
    rows: Vec<PenaltyRow>,
    models: Vec<aipipe_core::table::Model>,
    penalty_epoch: u64,
    table_version: u64,
}

impl Held {
    /// Every catalog model (in catalog order) and every other model with
    /// recorded outcomes, decayed to `now`, and the (model, key) pairs —
    /// those of `keys` only, when given.
    fn view(self, keys: Option<Vec<String>>, now: u64, decay_ms: u64) -> Penalties {
        let (pairs, models_rows): (Vec<PenaltyRow>, Vec<PenaltyRow>) =
            self.rows.into_iter().partition(|r| !r.key_tag.is_empty());
        let mut key_penalties: Vec<KeyPenaltyView> = pairs
            .into_iter()
            .filter(|r| keys.as_ref().is_none_or(|k| k.contains(&r.key_tag)))
            .map(|r| KeyPenaltyView {
                penalty: r.tally.state.at(now, decay_ms),
                table_penalty: r.published,
                successes: r.tally.successes,
                failures: r.tally.failures,
                updated_ms: r.tally.updated_ms,
                model: r.model,
                provider: r.provider,
                key_tag: r.key_tag,
            })
            .collect();
        key_penalties.sort_by(|a, b| b.penalty.total_cmp(&a.penalty));
        let mut rows: HashMap<(String, String), PenaltyRow> = models_rows
            .into_iter()
            .map(|r| ((r.provider.clone(), r.model.clone()), r))
            .collect();
        let view = |provider: String, model: String, row: Option<PenaltyRow>| match row {
            Some(PenaltyRow {
                tally: t,
                published,
                ..
            }) => PenaltyView {
                penalty: t.state.at(now, decay_ms),
                table_penalty: published,
                success_rate: (t.successes + t.failures > 0)
                    .then(|| t.successes as f64 / (t.successes + t.failures) as f64),
                successes: t.successes,
                failures: t.failures,
                updated_ms: Some(t.updated_ms),
                provider,
                model,
            },
            None => PenaltyView {
                model,
                provider,
                penalty: 0.0,
                table_penalty: 0.0,
                success_rate: None,
                successes: 0,
                failures: 0,
                updated_ms: None,
            },
        };
        let mut out = Vec::new();
        for m in self.models {
            let row = rows.remove(&(m.provider.clone(), m.id.clone()));
            out.push(view(m.provider, m.id, row));
        }
        let mut rest: Vec<PenaltyRow> = rows.into_values().collect();
        rest.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        for r in rest {
            out.push(view(r.provider.clone(), r.model.clone(), Some(r)));
        }
        Penalties {
            penalty_epoch: self.penalty_epoch,
            decay_ms,
            table_version: self.table_version,
            penalties: out,
            key_penalties,
        }
    }
}

impl Db {
    /// Republishes the penalties if time decay alone has made the table's
    /// values stale since the last write; free (one atomic load) otherwise.
    /// Called before every table poll is answered, so a filter is never told
    /// "not modified" while the decayed values differ meaningfully.
    pub async fn republish_penalties_if_due(&self) -> Result<()> {
        if now_ms() < self.0.penalty_due.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.0.republishing.lock().await;
        if now_ms() < self.0.penalty_due.load(Ordering::Acquire) {
            return Ok(()); // another poll just did it
        }
        if self.postgres().is_some() {
            let decay_ms = self.0.decay_ms;
            // Re-planning (another control plane's revision made the
            // deadline "now") mostly finds nothing stale: then a read plans
            // it, without taking the write lock every replica shares.
            let before = self.0.deadline_moves();
            let idle = self
                .pg_read(move |tx| {
                    let rows = pg::penalties::penalty_rows(tx)?;
                    Ok(nothing_to_write(&rows, now_ms(), decay_ms))
                })
                .await?;
            if let Some(due) = idle {
                self.0.keep_read_plan(due, before);
                return Ok(());
            }
            return self
                .pg_write_penalties(move |w| {
                    Ok(((), pg::penalties::republish(w, now_ms(), decay_ms)?))
                })
                .await;
        }
        self.write_penalties(|tx| Ok(((), tx.republish_penalties(now_ms())?)))
            .await
    }

    /// Every catalog model (in catalog order) and every other model with
    /// recorded outcomes, with penalties decayed to now, and the (model,
    /// key) pairs that have one — those of `keys` only, when given (a
    /// tenant's key tags).
    pub async fn penalties(&self, keys: Option<Vec<String>>) -> Result<Penalties> {
        let decay_ms = self.0.decay_ms;
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| {
                    let held = Held {
                        rows: pg::penalties::penalty_rows(tx)?,
                        models: pg::catalog::models(tx)?,
                        penalty_epoch: pg::penalty_epoch(tx)?,
                        table_version: pg::committed_revision(tx)?,
                    };
                    Ok(held.view(keys, now_ms(), decay_ms))
                })
                .await;
        }
        self.read(move |tx| {
            let held = Held {
                rows: penalty_rows(tx)?,
                models: models(tx)?,
                penalty_epoch: penalty_epoch(tx)?,
                table_version: version(tx)?,
            };
            Ok(held.view(keys, now_ms(), decay_ms))
        })
        .await
    }

    /// Zeroes the penalty and counts of `model` (every provider's model of
    /// that id), or of every model, bumps the penalty epoch (filters forget
    /// their local penalties) and the table version. None when `model` is
    /// neither in the catalog nor has a penalty.
    pub async fn reset_penalties(&self, model: Option<String>) -> Result<Option<PenaltyReset>> {
        if self.postgres().is_some() {
            let decay_ms = self.0.decay_ms;
            return self
                .pg_write_penalties(move |w| pg::penalties::reset(w, model.as_deref(), decay_ms))
                .await;
        }
        self.write_penalties(move |tx| {
            let (tx, decay_ms, now) = (tx.sqlite()?, tx.decay_ms, now_ms());
            let reset: Vec<String> = match &model {
                Some(m) => {
                    let known = models(tx)?.iter().any(|c| &c.id == m)
                        || tx.query_row(
                            "SELECT EXISTS(SELECT 1 FROM penalties WHERE model = ?1)",
                            [m],
                            |r| r.get(0),
                        )?;
                    if !known {
                        // Nothing written; 0 = recheck the deadline at the next poll.
                        return Ok((None, 0));
                    }
                    tx.execute(
                        "UPDATE penalties SET penalty = 0, decayed_ms = ?2, successes = 0,
                            failures = 0, published = 0, updated_ms = ?2 WHERE model = ?1",
                        params![m, to_i64(now)],
                    )?;
                    tx.execute(
                        "DELETE FROM penalties WHERE model = ?1 AND key_tag != ''",
                        [m],
                    )?;
                    vec![m.clone()]
                }
                None => {
                    let names: Vec<String> = tx
                        .prepare("SELECT DISTINCT model FROM penalties ORDER BY model")?
                        .query_map([], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    tx.execute(
                        "UPDATE penalties SET penalty = 0, decayed_ms = ?1, successes = 0,
                            failures = 0, published = 0, updated_ms = ?1",
                        [to_i64(now)],
                    )?;
                    tx.execute("DELETE FROM penalties WHERE key_tag != ''", [])?;
                    names
                }
            };
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'penalty_epoch'",
                [],
            )?;
            record_change(tx, Change::Global)?;
            let due = republish(tx, now, decay_ms)?;
            Ok((
                Some(PenaltyReset {
                    reset,
                    penalty_epoch: penalty_epoch(tx)?,
                    table_version: version(tx)?,
                }),
                due,
            ))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key_tag: &str, penalty: f64, published: f64) -> PenaltyRow {
        PenaltyRow {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            key_tag: key_tag.into(),
            tally: Tally {
                state: penalty::State {
                    penalty,
                    decayed_ms: 10_000,
                },
                successes: 0,
                failures: 1,
                updated_ms: 10_000,
            },
            published,
        }
    }

    /// A re-plan is a read when a republish would write nothing: values as
    /// published (its deadline is the write's), never when one is stale or
    /// a pair is to be forgotten.
    #[test]
    fn a_republish_that_would_write_nothing_is_planned_by_a_read() {
        let fresh = [row("", 3.0, 3.0)];
        let due = nothing_to_write(&fresh, 10_000, 1000).unwrap();
        let held = [(fresh[0].tally.state, 3.0)];
        assert_eq!(due, penalty::republish(&held, 10_000, 1000).due_ms);
        assert!(due > 10_000 && due <= 12_000, "{due}");
        // Decayed past it: stale, a write republishes.
        assert_eq!(nothing_to_write(&fresh, due, 1000), None);
        // A pair at 0, published as 0: a write forgets it.
        assert_eq!(nothing_to_write(&[row("k1", 0.0, 0.0)], 10_000, 1000), None);
        // No penalties: never due.
        assert_eq!(nothing_to_write(&[], 10_000, 1000), Some(u64::MAX));
    }
}
