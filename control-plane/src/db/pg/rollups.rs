//! Usage rollups on PostgreSQL (`db/rollups.rs`): the cells ingest merges
//! into, the stats reads' snapshot, and pruning by day partition.

use postgres::{Row, Transaction};

use super::super::rollups::{ALL, CELL_COLUMNS, DAY_MS, MINUTE_MS, Piece, Rollups, Snapshot};
use super::super::{to_i64, to_u64};
use super::pool::Writer;
use super::tenants::tenant_exists;
use crate::error::{Error, Result};
use crate::stats::{Bands, Row as StatsRow, Sums};

/// The sums and bands of a stored cell, from `CELL_COLUMNS`' order.
fn counts_of(r: &Row) -> (Sums, Bands) {
    counts_at(r, 0)
}

/// As [`counts_of`], the cell columns starting at column `at`.
fn counts_at(r: &Row, at: usize) -> (Sums, Bands) {
    let n = |i: usize| to_u64(r.get::<_, i64>(at + i));
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

/// PostgreSQL's read transaction as the stats reads' snapshot. No index
/// hints: the planner takes `usage_tenant_ts` and prunes the day partitions
/// outside the range.
impl Snapshot for Transaction<'_> {
    fn reborn_at(&mut self, tenant: &str) -> Result<u64> {
        if !tenant_exists(self, tenant)? {
            return Ok(0);
        }
        let at: Option<i64> = self
            .query_one(
                "SELECT MAX(deleted_at) FROM tenant_deletions WHERE tenant = $1",
                &[&tenant],
            )?
            .get(0);
        Ok(at.map_or(0, to_u64))
    }

    fn unknown(&mut self, tenant: &str) -> Result<bool> {
        if tenant_exists(self, tenant)? {
            return Ok(false);
        }
        let any: bool = self
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM usage_rollups WHERE tenant = $1)",
                &[&tenant],
            )?
            .get(0);
        Ok(!any)
    }

    fn scan(
        &mut self,
        scope: &str,
        pieces: &[Piece],
        sketches: bool,
        mut cells: impl FnMut(u64, &str, &str, &Sums, &Bands, [&[u8]; 2]),
        mut raw: impl FnMut(u64, &StatsRow<'_>),
        mut failed: impl FnMut(u64, &str, &str),
    ) -> Result<()> {
        let columns = if sketches {
            CELL_COLUMNS.to_owned()
        } else {
            CELL_COLUMNS.replace(", latency, ttft", "")
        };
        let by_cells = self.prepare(&format!(
            "SELECT start_ms, provider, model, {columns} FROM usage_rollups
             WHERE tenant = $1 AND width_ms = $2 AND start_ms >= $3 AND start_ms < $4"
        ))?;
        let records = self.prepare(
            "SELECT ts_ms, provider, model, status, prompt_tokens, completion_tokens,
                cached_tokens, cache_write_tokens, cost_nusd, usage_parsed, latency_ms, ttft_ms,
                cache_hit, complexity
             FROM usage WHERE tenant = $1 AND ts_ms >= $2 AND ts_ms < $3",
        )?;
        let attempts = self.prepare(
            "SELECT ts_ms, provider, model FROM attempt_failures
             WHERE tenant = $1 AND ts_ms >= $2 AND ts_ms < $3",
        )?;
        for p in pieces {
            match *p {
                Piece::Cells { width, start, end } => {
                    let rows = self.query(
                        &by_cells,
                        &[&scope, &to_i64(width), &to_i64(start), &to_i64(end)],
                    )?;
                    for r in &rows {
                        // The cell columns start at 3.
                        let (sums, bands) = counts_at(r, 3);
                        let stored = if sketches {
                            [
                                r.get::<_, Option<&[u8]>>(17).unwrap_or_default(),
                                r.get::<_, Option<&[u8]>>(18).unwrap_or_default(),
                            ]
                        } else {
                            [&[][..], &[][..]]
                        };
                        cells(to_u64(r.get(0)), r.get(1), r.get(2), &sums, &bands, stored);
                    }
                }
                Piece::Raw { start, end } => {
                    let range: [&(dyn postgres::types::ToSql + Sync); 3] =
                        [&scope, &to_i64(start), &to_i64(end)];
                    for r in &self.query(&records, &range)? {
                        raw(
                            to_u64(r.get(0)),
                            &StatsRow {
                                provider: r.get(1),
                                model: r.get(2),
                                status: u16::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                                prompt_tokens: to_u64(r.get(4)),
                                completion_tokens: to_u64(r.get(5)),
                                cached_tokens: to_u64(r.get(6)),
                                cache_write_tokens: to_u64(r.get(7)),
                                cost_nusd: to_u64(r.get(8)),
                                usage_parsed: r.get(9),
                                latency_ms: r.get(10),
                                ttft_ms: r.get(11),
                                cache_hit: r.get(12),
                                complexity: r.get(13),
                            },
                        );
                    }
                    for r in &self.query(&attempts, &range)? {
                        failed(to_u64(r.get(0)), r.get(1), r.get(2));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The minute cells past their keeping, and, with a retention age, the
/// day partitions of raw records wholly older than it (a record is kept
/// up to a day longer than on SQLite, where rows go one by one). Returns
/// the records dropped, counted before their partitions go.
pub(in crate::db) fn prune(
    client: &mut postgres::Client,
    minutes_before: u64,
    raw_before: Option<u64>,
) -> Result<(u64, i64)> {
    client.execute(
        "DELETE FROM usage_rollups WHERE tenant = $1 AND width_ms = $2 AND start_ms < $3",
        &[&ALL, &to_i64(MINUTE_MS), &to_i64(minutes_before)],
    )?;
    let Some(before) = raw_before else {
        return Ok((0, 0));
    };
    let cutoff = to_i64(before);
    // The rows of the days about to go (whole days before the cutoff).
    let whole_days_before = super::partitions::day_of(cutoff) * DAY_MS as i64;
    let n: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM usage WHERE ts_ms < $1",
            &[&whole_days_before],
        )?
        .get(0);
    super::partitions::drop_days_before(client, cutoff).map_err(Error::Internal)?;
    Ok((to_u64(n), super::partitions::day_of(cutoff)))
}
