//! Model penalties on PostgreSQL (`db/penalties.rs`'s functions; so far
//! what the change log and the time-decay republish need).

use postgres::{Row, Transaction};

use super::super::penalties::{PenaltyRow, forgotten};
use super::super::{Change, to_u64};
use super::changes::record_change;
use super::pool::Writer;
use crate::error::Result;
use crate::penalty::{self, Tally};

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
