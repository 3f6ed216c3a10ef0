//! Model penalties on PostgreSQL (`db/penalties.rs`'s functions).

use postgres::{Row, Transaction};

use super::super::penalties::{PenaltyReset, PenaltyRow, forgotten};
use super::super::{Change, now_ms, to_i64, to_u64};
use super::changes::record_change;
use super::pool::Writer;
use super::{catalog, committed_revision, penalty_epoch};
use crate::error::Result;
use crate::penalty::{self, ModelKey, Tally};

fn tally_of(r: &Row, first: usize) -> Tally {
    Tally {
        state: penalty::State {
            penalty: r.get(first),
            decayed_ms: to_u64(r.get(first + 1)),
        },
        successes: to_u64(r.get(first + 2)),
        failures: to_u64(r.get(first + 3)),
        updated_ms: to_u64(r.get(first + 4)),
    }
}

pub(in crate::db) fn penalty_rows(tx: &mut Transaction<'_>) -> Result<Vec<PenaltyRow>> {
    Ok(tx
        .query(
            "SELECT provider, model, key_tag, penalty, decayed_ms, successes, failures,
                updated_ms, published
             FROM penalties ORDER BY provider, model, key_tag",
            &[],
        )?
        .iter()
        .map(|r| PenaltyRow {
            provider: r.get(0),
            model: r.get(1),
            key_tag: r.get(2),
            tally: tally_of(r, 3),
            published: r.get(8),
        })
        .collect())
}

/// `db/penalties.rs`'s `republish`: republishes every penalty (one global
/// change) when any, decayed to `now`, differs meaningfully from what the
/// table carries, and forgets the (model, key) pairs at 0. Returns when
/// decay alone will next make them differ.
pub(in crate::db) fn republish(w: &mut Writer<'_>, now: u64, decay_ms: u64) -> Result<u64> {
    let rows = penalty_rows(w)?;
    let held: Vec<(penalty::State, f64)> =
        rows.iter().map(|r| (r.tally.state, r.published)).collect();
    let plan = penalty::republish(&held, now, decay_ms);
    if let Some(values) = &plan.publish {
        let update = w.prepare(
            "UPDATE penalties SET published = $4
             WHERE provider = $1 AND model = $2 AND key_tag = $3",
        )?;
        for (r, p) in rows.iter().zip(values) {
            w.execute(&update, &[&r.provider, &r.model, &r.key_tag, p])?;
        }
        record_change(w, Change::Global)?;
    }
    let forget =
        w.prepare("DELETE FROM penalties WHERE provider = $1 AND model = $2 AND key_tag = $3")?;
    for r in forgotten(&rows, &plan, now, decay_ms) {
        w.execute(&forget, &[&r.provider, &r.model, &r.key_tag])?;
    }
    Ok(plan.due_ms)
}

/// `Db::reset_penalties` on PostgreSQL: zeroes `model`'s penalties (or
/// every model's), bumps the penalty epoch, records a global change and
/// republishes. None (nothing written, deadline 0) when `model` is neither
/// in the catalog nor has a penalty.
pub(in crate::db) fn reset(
    w: &mut Writer<'_>,
    model: Option<&str>,
    decay_ms: u64,
) -> Result<(Option<PenaltyReset>, u64)> {
    let now = to_i64(now_ms());
    let reset: Vec<String> = match model {
        Some(m) => {
            let known = catalog::models(w)?.iter().any(|c| c.id == m)
                || w.query_one(
                    "SELECT EXISTS(SELECT 1 FROM penalties WHERE model = $1)",
                    &[&m],
                )?
                .get::<_, bool>(0);
            if !known {
                return Ok((None, 0));
            }
            w.execute(
                "UPDATE penalties SET penalty = 0, decayed_ms = $2, successes = 0,
                    failures = 0, published = 0, updated_ms = $2 WHERE model = $1",
                &[&m, &now],
            )?;
            w.execute(
                "DELETE FROM penalties WHERE model = $1 AND key_tag != ''",
                &[&m],
            )?;
            vec![m.to_owned()]
        }
        None => {
            let names: Vec<String> = w
                .query("SELECT DISTINCT model FROM penalties ORDER BY model", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            w.execute(
                "UPDATE penalties SET penalty = 0, decayed_ms = $1, successes = 0,
                    failures = 0, published = 0, updated_ms = $1",
                &[&now],
            )?;
            w.execute("DELETE FROM penalties WHERE key_tag != ''", &[])?;
            names
        }
    };
    w.execute(
        "UPDATE meta SET int_value = int_value + 1 WHERE key = 'penalty_epoch'",
        &[],
    )?;
    record_change(w, Change::Global)?;
    let due = republish(w, to_u64(now), decay_ms)?;
    Ok((
        Some(PenaltyReset {
            reset,
            penalty_epoch: penalty_epoch(&mut **w)?,
            table_version: committed_revision(&mut **w)?,
        }),
        due,
    ))
}

/// A model's (or a (model, key) pair's) stored tally; None when it has none.
pub(in crate::db) fn tally(
    w: &mut Writer<'_>,
    (provider, model, key_tag): ModelKey<'_>,
) -> Result<Option<Tally>> {
    Ok(w.query_opt(
        "SELECT penalty, decayed_ms, successes, failures, updated_ms FROM penalties
         WHERE provider = $1 AND model = $2 AND key_tag = $3",
        &[&provider, &model, &key_tag],
    )?
    .map(|r| tally_of(&r, 0)))
}

/// Stores a model's (or pair's) tally; what the table carries (`published`)
/// is left to [`republish`].
pub(in crate::db) fn save_tally(
    w: &mut Writer<'_>,
    (provider, model, key_tag): ModelKey<'_>,
    t: &Tally,
) -> Result<()> {
    w.execute(
        "INSERT INTO penalties (provider, model, key_tag, penalty, decayed_ms, successes,
            failures, updated_ms, published)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)
         ON CONFLICT (provider, model, key_tag) DO UPDATE SET penalty = excluded.penalty,
            decayed_ms = excluded.decayed_ms, successes = excluded.successes,
            failures = excluded.failures, updated_ms = excluded.updated_ms",
        &[
            &provider,
            &model,
            &key_tag,
            &t.state.penalty,
            &to_i64(t.state.decayed_ms),
            &to_i64(t.successes),
            &to_i64(t.failures),
            &to_i64(t.updated_ms),
        ],
    )?;
    Ok(())
}
