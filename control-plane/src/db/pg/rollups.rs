//! Usage rollups on PostgreSQL (`db/rollups.rs`; so far what ingest
//! writes — the stats reads and pruning come next).

use postgres::Row;

use super::super::rollups::{CELL_COLUMNS, Rollups};
use super::super::{to_i64, to_u64};
use super::pool::Writer;
use crate::error::Result;
use crate::stats::{Bands, Sums};

/// The sums and bands of a stored cell, from `CELL_COLUMNS`' order.
fn counts_of(r: &Row) -> (Sums, Bands) {
    let n = |i: usize| to_u64(r.get::<_, i64>(i));
    (
        Sums {
            requests: n(0),
            errors: n(1),
            prompt_tokens: n(2),
            completion_tokens: n(3),
            cached_tokens: n(4),
            cache_write_tokens: n(5),
            cost_nusd: n(6),
            unparsed: n(7),
            failed_attempts: n(8),
            cache_hits: n(9),
        },
        Bands {
            cheap: n(10),
            mid: n(11),
            frontier: n(12),
            unscored: n(13),
        },
    )
}

/// `Rollups::flush` on PostgreSQL: every accumulated cell merged into its
/// stored row (read, merge, write: the sketches cannot be added in SQL).
/// The row is read `FOR UPDATE`, though writers are serialised anyway.
pub(in crate::db) fn flush(w: &mut Writer<'_>, rollups: Rollups<'_>) -> Result<()> {
    let read = w.prepare(&format!(
        "SELECT {CELL_COLUMNS} FROM usage_rollups
         WHERE tenant = $1 AND width_ms = $2 AND start_ms = $3 AND provider = $4 AND model = $5
         FOR UPDATE"
    ))?;
    let write = w.prepare(
        "INSERT INTO usage_rollups (tenant, width_ms, start_ms, provider, model,
            requests, errors, prompt_tokens, completion_tokens, cached_tokens,
            cache_write_tokens, cost_nusd, unparsed, failed_attempts, cache_hits,
            cheap, mid, frontier, unscored, latency, ttft)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19, $20, $21)
         ON CONFLICT (tenant, width_ms, start_ms, provider, model) DO UPDATE SET
            requests = excluded.requests, errors = excluded.errors,
            prompt_tokens = excluded.prompt_tokens,
            completion_tokens = excluded.completion_tokens,
            cached_tokens = excluded.cached_tokens,
            cache_write_tokens = excluded.cache_write_tokens, cost_nusd = excluded.cost_nusd,
            unparsed = excluded.unparsed, failed_attempts = excluded.failed_attempts,
            cache_hits = excluded.cache_hits, cheap = excluded.cheap, mid = excluded.mid,
            frontier = excluded.frontier, unscored = excluded.unscored,
            latency = excluded.latency, ttft = excluded.ttft",
    )?;
    for ((tenant, width, start, provider, model), mut cell) in rollups.take() {
        let (width, start) = (to_i64(width), to_i64(start));
        let stored = w.query_opt(&read, &[&tenant, &width, &start, &provider, &model])?;
        let (latency, ttft) = match stored {
            Some(r) => {
                let (sums, bands) = counts_of(&r);
                cell.sums.merge(&sums);
                cell.bands.merge(&bands);
                let latency: Option<&[u8]> = r.get(14);
                let ttft: Option<&[u8]> = r.get(15);
                (
                    cell.latency.merge_into(latency.unwrap_or_default()),
                    cell.ttft.merge_into(ttft.unwrap_or_default()),
                )
            }
            None => (cell.latency.merge_into(&[]), cell.ttft.merge_into(&[])),
        };
        let (s, b) = (&cell.sums, &cell.bands);
        w.execute(
            &write,
            &[
                &tenant,
                &width,
                &start,
                &provider,
                &model,
                &to_i64(s.requests),
                &to_i64(s.errors),
                &to_i64(s.prompt_tokens),
                &to_i64(s.completion_tokens),
                &to_i64(s.cached_tokens),
                &to_i64(s.cache_write_tokens),
                &to_i64(s.cost_nusd),
                &to_i64(s.unparsed),
                &to_i64(s.failed_attempts),
                &to_i64(s.cache_hits),
                &to_i64(b.cheap),
                &to_i64(b.mid),
                &to_i64(b.frontier),
                &to_i64(b.unscored),
                &latency,
                &ttft,
            ],
        )?;
    }
    Ok(())
}
