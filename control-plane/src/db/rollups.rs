//! Usage rollups: every record is also added, in its ingest transaction,
//! to per-interval cells — exact sums, complexity bands and mergeable
//! latency/TTFT sketches ([`Cell`]) — so a stats query over any window
//! reads a few hundred cells instead of millions of records
//! (control-plane/README.md, "Stats").
//!
//! Cells are kept per tenant by hour and by day, and for every tenant
//! together (tenant `''`) by minute, hour and day. A window is cut into the
//! largest whole intervals it contains ([`plan`]): whole days from day
//! cells, the hours at its edges from hour cells, and what is left — under
//! an hour at each edge — from the tenant's raw records (the all-tenant
//! view uses minute cells there, and its edges round out to whole minutes).
//! Raw records older than the retention age are deleted ([`Db::prune`]);
//! a window edge older than that rounds out to the hour. Minute cells are
//! kept for [`MINUTE_CELLS_KEPT_MS`].

use std::collections::HashMap;

use aipipe_core::usage::UsageRecord;
use rusqlite::{Transaction, params};

use super::tenants::tenant_exists;
use super::{Db, Tx, to_i64, to_u64};
use crate::error::Result;
use crate::stats::{Bands, Pending, Row, Sums, Window};

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// How long the all-tenant minute cells are kept (they serve the live view).
pub const MINUTE_CELLS_KEPT_MS: u64 = 2 * DAY_MS;
/// The tenant of the cells that sum every tenant.
pub(super) const ALL: &str = "";

/// What new records add to one rollup cell, before it is merged into the
/// stored one.
#[derive(Default)]
pub(super) struct NewCell {
    pub(super) sums: Sums,
    pub(super) bands: Bands,
    pub(super) latency: Pending,
    pub(super) ttft: Pending,
}

/// A cell's key: (tenant, width, start, provider, model).
pub(super) type CellKey<'a> = (&'a str, u64, u64, &'a str, &'a str);

/// Cells being accumulated before they are merged into the stored ones,
/// keyed by (tenant, width, start, provider, model) borrowed from the
/// records.
pub(super) struct Rollups<'a> {
    cells: HashMap<CellKey<'a>, NewCell>,
    /// Records older than this get no minute cell (it would be pruned).
    minute_from: u64,
}

/// The interval widths a scope keeps, widest first.
fn widths(all: bool) -> &'static [u64] {
    if all {
        &[DAY_MS, HOUR_MS, MINUTE_MS]
    } else {
        &[DAY_MS, HOUR_MS]
    }
}

impl<'a> Rollups<'a> {
    pub(super) fn new(now: u64) -> Self {
        Self {
            cells: HashMap::new(),
            minute_from: now.saturating_sub(MINUTE_CELLS_KEPT_MS),
        }
    }

    fn each_cell(
        &mut self,
        tenant: &'a str,
        ts: u64,
        provider: &'a str,
        model: &'a str,
        mut f: impl FnMut(&mut NewCell),
    ) {
        for scope in [tenant, ALL] {
            for &w in widths(scope == ALL) {
                if w == MINUTE_MS && ts < self.minute_from {
                    continue;
                }
                let key = (scope, w, ts - ts % w, provider, model);
                f(self.cells.entry(key).or_default());
            }
        }
    }

    pub(super) fn add_record(&mut self, r: &'a UsageRecord) {
        let row = Row::of(r);
        self.each_cell(&r.tenant, r.ts_ms, &r.provider, &r.model, |c| {
            c.sums.add_row(&row);
            c.bands.add(row.complexity);
            // A cache hit's latency is the filter's, not a provider's.
            if !row.cache_hit {
                c.latency.record_ms(row.latency_ms);
                if let Some(t) = row.ttft_ms {
                    c.ttft.record_ms(t);
                }
            }
        });
        for a in &r.failed_attempts {
            self.each_cell(&r.tenant, r.ts_ms, &a.provider, &a.model, |c| {
                c.sums.failed_attempts = c.sums.failed_attempts.saturating_add(1);
            });
        }
    }

    /// The accumulated cells, taken out (PostgreSQL's flush).
    pub(super) fn take(self) -> HashMap<CellKey<'a>, NewCell> {
        self.cells
    }

    /// Merges every accumulated cell into its stored row (read, merge,
    /// write: the sketches cannot be added in SQL).
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut read = tx.prepare_cached(&format!(
            "SELECT {CELL_COLUMNS} FROM usage_rollups
             WHERE tenant = ?1 AND width_ms = ?2 AND start_ms = ?3 AND provider = ?4 AND model = ?5"
        ))?;
        let mut write = tx.prepare_cached(
            "INSERT OR REPLACE INTO usage_rollups (tenant, width_ms, start_ms, provider, model,
                requests, errors, prompt_tokens, completion_tokens, cached_tokens,
                cache_write_tokens, cost_nusd, unparsed, failed_attempts, cache_hits,
                cheap, mid, frontier, unscored, latency, ttft)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21)",
        )?;
        for ((tenant, w, start, provider, model), mut cell) in self.cells.drain() {
            let key = params![tenant, to_i64(w), to_i64(start), provider, model];
            let mut rows = read.query(key)?;
            let (latency, ttft) = if let Some(r) = rows.next()? {
                let (sums, bands) = counts_of(r, 0)?;
                cell.sums.merge(&sums);
                cell.bands.merge(&bands);
                (
                    cell.latency.merge_into(blob(r, 14)?),
                    cell.ttft.merge_into(blob(r, 15)?),
                )
            } else {
                (cell.latency.merge_into(&[]), cell.ttft.merge_into(&[]))
            };
            drop(rows);
            let (s, b) = (&cell.sums, &cell.bands);
            write.execute(params![
                tenant,
                to_i64(w),
                to_i64(start),
                provider,
                model,
                to_i64(s.requests),
                to_i64(s.errors),
                to_i64(s.prompt_tokens),
                to_i64(s.completion_tokens),
                to_i64(s.cached_tokens),
                to_i64(s.cache_write_tokens),
                to_i64(s.cost_nusd),
                to_i64(s.unparsed),
                to_i64(s.failed_attempts),
                to_i64(s.cache_hits),
                to_i64(b.cheap),
                to_i64(b.mid),
                to_i64(b.frontier),
                to_i64(b.unscored),
                latency,
                ttft,
            ])?;
        }
        Ok(())
    }
}

/// The columns [`cell_of`] reads, in its order.
pub(super) const CELL_COLUMNS: &str =
    "requests, errors, prompt_tokens, completion_tokens, cached_tokens,
    cache_write_tokens, cost_nusd, unparsed, failed_attempts, cache_hits, cheap, mid, frontier,
    unscored, latency, ttft";

/// The columns of a raw record [`record_of`] reads (after `ts_ms`).
const RECORD_COLUMNS: &str = "ts_ms, provider, model, status, prompt_tokens, completion_tokens,
    cached_tokens, cache_write_tokens, cost_nusd, usage_parsed, latency_ms, ttft_ms, cache_hit,
    complexity";

fn record_of<'r>(r: &'r rusqlite::Row<'_>) -> Result<Row<'r>> {
    Ok(Row {
        provider: r.get_ref(1)?.as_str()?,
        model: r.get_ref(2)?.as_str()?,
        status: u16::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        prompt_tokens: to_u64(r.get(4)?),
        completion_tokens: to_u64(r.get(5)?),
        cached_tokens: to_u64(r.get(6)?),
        cache_write_tokens: to_u64(r.get(7)?),
        cost_nusd: to_u64(r.get(8)?),
        usage_parsed: r.get(9)?,
        latency_ms: r.get(10)?,
        ttft_ms: r.get(11)?,
        cache_hit: r.get(12)?,
        complexity: r.get(13)?,
    })
}

/// A piece of a window: whole intervals of one width, or raw records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Cells of this width starting in [start, end).
    Cells { width: u64, start: u64, end: u64 },
    /// Raw records with start <= ts < end.
    Raw { start: u64, end: u64 },
}

/// Cuts [since, until) into the widest whole intervals of `widths` (widest
/// first) it contains, the rest into raw pieces.
pub fn plan(since: u64, until: u64, widths: &[u64]) -> Vec<Piece> {
    fn go(s: u64, u: u64, widths: &[u64], out: &mut Vec<Piece>) {
        if s >= u {
            return;
        }
        let Some((&w, rest)) = widths.split_first() else {
            out.push(Piece::Raw { start: s, end: u });
            return;
        };
        let (a, b) = (ceil(s, w), floor(u, w));
        if a < b {
            go(s, a, rest, out);
            out.push(Piece::Cells {
                width: w,
                start: a,
                end: b,
            });
            go(b, u, rest, out);
        } else {
            go(s, u, rest, out);
        }
    }
    let mut out = Vec::new();
    go(since, until, widths, &mut out);
    out
}

fn floor(t: u64, w: u64) -> u64 {
    t - t % w
}

fn ceil(t: u64, w: u64) -> u64 {
    t.div_ceil(w).saturating_mul(w)
}

/// Which records a query may read raw, and what it rounds instead.
#[derive(Debug, Clone, Copy)]
pub struct Horizons {
    /// Raw records exist from here on (0: all are kept).
    pub raw_from: u64,
    /// All-tenant minute cells exist from here on.
    pub minutes_from: u64,
}

impl Horizons {
    pub fn at(now: u64, raw_kept_ms: Option<u64>) -> Self {
        Self {
            raw_from: raw_kept_ms.map_or(0, |k| now.saturating_sub(k)),
            minutes_from: now.saturating_sub(MINUTE_CELLS_KEPT_MS) + MINUTE_MS,
        }
    }
}

/// The window a query can answer exactly, given what is kept: a tenant's
/// edges older than its raw records round out to the hour (but never before
/// `floor_at`, the tenant's rebirth); the all-tenant view's edges round out
/// to the minute, or to the hour before its minute cells.
pub fn effective(
    tenant: Option<&str>,
    since: u64,
    until: u64,
    floor_at: u64,
    h: Horizons,
) -> (u64, u64) {
    let (grain, from) = match tenant {
        Some(_) => (1, h.raw_from),
        None => (MINUTE_MS, h.minutes_from),
    };
    let round_down = |t: u64| {
        let w = if t < from { HOUR_MS } else { grain };
        let d = floor(t, w);
        if d < floor_at { ceil(t, w) } else { d }
    };
    let round_up = |t: u64| ceil(t, if t < from { HOUR_MS } else { grain });
    let since = round_down(since.max(floor_at));
    let until = round_up(until).max(since);
    (since, until)
}

/// What the stats reads need of one snapshot, on either engine: the
/// reads differ (SQLite here, PostgreSQL in `db/pg/rollups.rs`), the
/// answers are assembled once ([`stats_in`], [`series_in`]).
pub(super) trait Snapshot {
    /// When the tenant's id was last deleted (0: never, or no such tenant).
    fn reborn_at(&mut self, tenant: &str) -> Result<u64>;
    /// A tenant that does not exist and never had usage.
    fn unknown(&mut self, tenant: &str) -> Result<bool>;
    /// Feeds every piece of the plan to `cells` (rollup rows) or `raw`
    /// (records and failed attempts).
    fn scan(
        &mut self,
        scope: &str,
        pieces: &[Piece],
        sketches: bool,
        cells: impl FnMut(u64, &str, &str, &Sums, &Bands, [&[u8]; 2]),
        raw: impl FnMut(u64, &Row<'_>),
        failed: impl FnMut(u64, &str, &str),
    ) -> Result<()>;
}

/// SQLite's read transaction as a [`Snapshot`].
struct Lite<'a, 'b>(&'a Transaction<'b>);

impl Snapshot for Lite<'_, '_> {
    fn reborn_at(&mut self, tenant: &str) -> Result<u64> {
        reborn_at(self.0, tenant)
    }

    fn unknown(&mut self, tenant: &str) -> Result<bool> {
        unknown(self.0, tenant)
    }

    fn scan(
        &mut self,
        scope: &str,
        pieces: &[Piece],
        sketches: bool,
        cells: impl FnMut(u64, &str, &str, &Sums, &Bands, [&[u8]; 2]),
        raw: impl FnMut(u64, &Row<'_>),
        failed: impl FnMut(u64, &str, &str),
    ) -> Result<()> {
        scan(self.0, scope, pieces, sketches, cells, raw, failed)
    }
}

/// The scope of the cells that sum every tenant.
pub(super) fn scope_of(tenant: Option<&str>) -> &str {
    tenant.unwrap_or(ALL)
}

/// `Db::stats` on any engine's snapshot.
pub(super) fn stats_in(
    src: &mut impl Snapshot,
    tenant: Option<&str>,
    since: u64,
    until: u64,
    horizons: Horizons,
) -> Result<Option<Answer>> {
    let floor_at = match tenant {
        Some(t) => src.reborn_at(t)?,
        None => 0,
    };
    let (since, until) = effective(tenant, since, until, floor_at, horizons);
    let pieces = plan(since, until, widths(tenant.is_none()));
    let w = std::cell::RefCell::new(Window::default());
    src.scan(
        scope_of(tenant),
        &pieces,
        true,
        |_, p, m, sums, bands, sketches| w.borrow_mut().add_stored(p, m, sums, bands, sketches),
        |_, r| w.borrow_mut().add(*r),
        |_, p, m| w.borrow_mut().add_failed_attempts(p, m, 1),
    )?;
    let w = w.into_inner();
    if let Some(t) = tenant
        && w.is_empty()
        && src.unknown(t)?
    {
        return Ok(None);
    }
    Ok(Some(Answer {
        window: w,
        since,
        until,
    }))
}

/// `Db::series` on any engine's snapshot.
pub(super) fn series_in(
    src: &mut impl Snapshot,
    tenant: Option<&str>,
    since: u64,
    until: u64,
    step: u64,
) -> Result<Option<(u64, Vec<Point>)>> {
    let step = step.max(MINUTE_MS);
    let floor_at = match tenant {
        Some(t) => src.reborn_at(t)?,
        None => 0,
    };
    let t0 = floor(since.max(floor_at), step);
    let end = ceil(until.max(t0 + 1), step);
    let n = usize::try_from((end - t0) / step).unwrap_or(usize::MAX);
    let points: Vec<Point> = (0..n as u64)
        .map(|i| Point {
            start: t0 + i * step,
            sums: Sums::default(),
        })
        .collect();
    let usable: Vec<u64> = widths(tenant.is_none())
        .iter()
        .copied()
        .filter(|w| step.is_multiple_of(*w))
        .collect();
    // A reborn tenant's first bucket starts before its rebirth: only what
    // came after counts there.
    let pieces = plan(t0.max(floor_at), end, &usable);
    let at = |t: u64| usize::try_from((t.saturating_sub(t0)) / step).unwrap_or(usize::MAX);
    let points = std::cell::RefCell::new(points);
    src.scan(
        scope_of(tenant),
        &pieces,
        false,
        |t, _, _, sums, _, _| {
            if let Some(p) = points.borrow_mut().get_mut(at(t)) {
                p.sums.merge(sums);
            }
        },
        |t, r| {
            if let Some(p) = points.borrow_mut().get_mut(at(t)) {
                p.sums.add_row(r);
            }
        },
        |t, _, _| {
            if let Some(p) = points.borrow_mut().get_mut(at(t)) {
                p.sums.failed_attempts += 1;
            }
        },
    )?;
    if let Some(t) = tenant
        && src.unknown(t)?
    {
        return Ok(None);
    }
    Ok(Some((step, points.into_inner())))
}

/// A tenant's view starts after the last deletion of its id: usage of an
/// earlier tenant of the same id is not its own.
fn reborn_at(tx: &Transaction<'_>, tenant: &str) -> Result<u64> {
    if !tenant_exists(tx, tenant)? {
        return Ok(0);
    }
    let at: Option<i64> = tx
        .prepare_cached("SELECT MAX(deleted_at) FROM tenant_deletions WHERE tenant = ?1")?
        .query_row([tenant], |r| r.get(0))?;
    Ok(at.map_or(0, to_u64))
}

/// A tenant that does not exist and never had usage: its stats are a 404.
fn unknown(tx: &Transaction<'_>, tenant: &str) -> Result<bool> {
    if tenant_exists(tx, tenant)? {
        return Ok(false);
    }
    let any: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM usage_rollups WHERE tenant = ?1)",
        [tenant],
        |r| r.get(0),
    )?;
    Ok(!any)
}

/// SQLite's [`Snapshot::scan`].
fn scan(
    tx: &Transaction<'_>,
    scope: &str,
    pieces: &[Piece],
    sketches: bool,
    mut cells: impl FnMut(u64, &str, &str, &Sums, &Bands, [&[u8]; 2]),
    mut raw: impl FnMut(u64, &Row<'_>),
    mut failed: impl FnMut(u64, &str, &str),
) -> Result<()> {
    let columns = if sketches {
        CELL_COLUMNS.to_owned()
    } else {
        CELL_COLUMNS.replace(", latency, ttft", "")
    };
    let mut by_cells = tx.prepare_cached(&format!(
        "SELECT start_ms, provider, model, {columns} FROM usage_rollups
         WHERE tenant = ?1 AND width_ms = ?2 AND start_ms >= ?3 AND start_ms < ?4"
    ))?;
    let mut records = tx.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM usage INDEXED BY usage_tenant_ts
         WHERE tenant = ?1 AND ts_ms >= ?2 AND ts_ms < ?3"
    ))?;
    let mut attempts = tx.prepare_cached(
        "SELECT ts_ms, provider, model FROM attempt_failures INDEXED BY attempt_failures_stats
         WHERE tenant = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
    )?;
    for p in pieces {
        match *p {
            Piece::Cells { width, start, end } => {
                let mut rows =
                    by_cells.query(params![scope, to_i64(width), to_i64(start), to_i64(end)])?;
                while let Some(r) = rows.next()? {
                    let start = to_u64(r.get(0)?);
                    // The cell columns start at 3; the sketches are handed
                    // over as stored, to be merged once, where they go.
                    let (sums, bands) = counts_of(r, 3)?;
                    let sketches = if sketches {
                        [blob(r, 17)?, blob(r, 18)?]
                    } else {
                        [&[][..], &[][..]]
                    };
                    cells(
                        start,
                        r.get_ref(1)?.as_str()?,
                        r.get_ref(2)?.as_str()?,
                        &sums,
                        &bands,
                        sketches,
                    );
                }
            }
            Piece::Raw { start, end } => {
                let mut rows = records.query(params![scope, to_i64(start), to_i64(end)])?;
                while let Some(r) = rows.next()? {
                    raw(to_u64(r.get(0)?), &record_of(r)?);
                }
                let mut rows = attempts.query(params![scope, to_i64(start), to_i64(end)])?;
                while let Some(r) = rows.next()? {
                    failed(
                        to_u64(r.get(0)?),
                        r.get_ref(1)?.as_str()?,
                        r.get_ref(2)?.as_str()?,
                    );
                }
            }
        }
    }
    Ok(())
}

/// A rollup cell's sums and bands, from a row whose [`CELL_COLUMNS`] start
/// at column `at`; its sketches are the two columns after them, read (and
/// merged) where they are needed.
fn counts_of(r: &rusqlite::Row<'_>, at: usize) -> Result<(Sums, Bands)> {
    let n = |i: usize| -> rusqlite::Result<u64> { r.get::<_, i64>(at + i).map(to_u64) };
    Ok((
        Sums {
            requests: n(0)?,
            errors: n(1)?,
            prompt_tokens: n(2)?,
            completion_tokens: n(3)?,
            cached_tokens: n(4)?,
            cache_write_tokens: n(5)?,
            cost_nusd: n(6)?,
            unparsed: n(7)?,
            failed_attempts: n(8)?,
            cache_hits: n(9)?,
        },
        Bands {
            cheap: n(10)?,
            mid: n(11)?,
            frontier: n(12)?,
            unscored: n(13)?,
        },
    ))
}

/// The stored sketch in column `i` (empty when NULL).
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8]> {
    Ok(r.get_ref(i)?.as_blob_or_null()?.unwrap_or_default())
}

/// A stats window as answered: the numbers and the window they cover.
pub struct Answer {
    pub window: Window,
    pub since: u64,
    pub until: u64,
}

/// One bucket of a series.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    pub start: u64,
    pub sums: Sums,
}

impl Tx<'_, '_> {
    /// Adds new records to the rollups (ingest, same transaction).
    pub fn add_rollups(&self, records: &[&UsageRecord], now: u64) -> Result<()> {
        let mut r = Rollups::new(now);
        for rec in records {
            r.add_record(rec);
        }
        if let Some(w) = self.pg() {
            return super::pg::rollups::flush(&mut **w?, r);
        }
        r.flush(self.sqlite()?)
    }
}

/// Builds the rollups of every stored record (the migration that added
/// them), one tenant and 10,000 records at a time.
pub(super) fn backfill(tx: &Transaction<'_>, now: u64) -> Result<u64> {
    let tenants: Vec<String> = tx
        .prepare("SELECT DISTINCT tenant FROM usage_totals")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0u64;
    // A tenant's records as the ingest path sees them, 10,000 at a time.
    let mut chunk: Vec<UsageRecord> = Vec::with_capacity(10_000);
    let flush = |chunk: &mut Vec<UsageRecord>| -> Result<()> {
        let mut r = Rollups::new(now);
        for rec in chunk.iter() {
            r.add_record(rec);
        }
        r.flush(tx)?;
        chunk.clear();
        Ok(())
    };
    for t in &tenants {
        let mut st = tx.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM usage WHERE tenant = ?1"
        ))?;
        let mut rows = st.query([t])?;
        while let Some(r) = rows.next()? {
            let row = record_of(r)?;
            chunk.push(UsageRecord {
                id: String::new(),
                tenant: t.clone(),
                provider: row.provider.to_owned(),
                model: row.model.to_owned(),
                status: row.status,
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                cached_tokens: row.cached_tokens,
                cache_write_tokens: row.cache_write_tokens,
                cost_nusd: row.cost_nusd,
                latency_ms: row.latency_ms,
                ttft_ms: row.ttft_ms,
                complexity: row.complexity,
                stream: false,
                usage_parsed: row.usage_parsed,
                ts_ms: to_u64(r.get(0)?),
                failed_attempts: Vec::new(),
                cache_hit: row.cache_hit,
                estimated: false,
                key_tag: None,
                reserved_nusd: None,
                virtual_key: None,
                key_reserved_nusd: None,
                router_features: None,
            });
            n += 1;
            if chunk.len() == 10_000 {
                flush(&mut chunk)?;
            }
        }
        flush(&mut chunk)?;
        // Failed attempts: each a record of its own that counts only as one.
        let mut st =
            tx.prepare("SELECT ts_ms, provider, model FROM attempt_failures WHERE tenant = ?1")?;
        let attempts: Vec<(u64, String, String)> = st
            .query_map([t], |r| Ok((to_u64(r.get(0)?), r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut r = Rollups::new(now);
        for (ts, provider, model) in &attempts {
            r.each_cell(t, *ts, provider, model, |c| {
                c.sums.failed_attempts = c.sums.failed_attempts.saturating_add(1);
            });
        }
        r.flush(tx)?;
    }
    Ok(n)
}

impl Db {
    /// One tenant's (or, with None, every tenant's) usage in [since,
    /// until), from the rollups and the raw records at its edges. None when
    /// the tenant is unknown and has no usage at all.
    pub async fn stats(
        &self,
        tenant: Option<String>,
        since: u64,
        until: u64,
        horizons: Horizons,
    ) -> Result<Option<Answer>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| stats_in(tx, tenant.as_deref(), since, until, horizons))
                .await;
        }
        self.read(move |tx| stats_in(&mut Lite(tx), tenant.as_deref(), since, until, horizons))
            .await
    }

    /// Sums per `step` bucket over [since, until) (rounded out to whole
    /// steps; `step` a whole number of minutes), empty buckets included.
    /// Buckets read cells whose width divides the step, and raw records
    /// below that: a tenant's buckets under an hour reach back as far as its
    /// raw records, the all-tenant view's under an hour as far as the minute
    /// cells.
    pub async fn series(
        &self,
        tenant: Option<String>,
        since: u64,
        until: u64,
        step: u64,
    ) -> Result<Option<(u64, Vec<Point>)>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| series_in(tx, tenant.as_deref(), since, until, step))
                .await;
        }
        self.read(move |tx| series_in(&mut Lite(tx), tenant.as_deref(), since, until, step))
            .await
    }

    /// Deletes the all-tenant minute cells past [`MINUTE_CELLS_KEPT_MS`],
    /// and, with `raw_kept_ms`, raw records (and their failed attempts)
    /// older than that — a tenant and 5,000 records per transaction, so
    /// ingest never waits long. The rollups keep their numbers. Returns the
    /// records deleted.
    pub async fn prune(&self, now: u64, raw_kept_ms: Option<u64>) -> Result<u64> {
        let minutes_before = now.saturating_sub(MINUTE_CELLS_KEPT_MS);
        if self.postgres().is_some() {
            return self.prune_pg(now, minutes_before, raw_kept_ms).await;
        }
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM usage_rollups WHERE tenant = ?1 AND width_ms = ?2 AND start_ms < ?3",
                params![ALL, to_i64(MINUTE_MS), to_i64(minutes_before)],
            )?;
            Ok(())
        })
        .await?;
        let Some(kept) = raw_kept_ms else {
            return Ok(0);
        };
        let before = to_i64(now.saturating_sub(kept));
        let tenants: Vec<String> = self
            .read(|tx| {
                Ok(tx
                    .prepare("SELECT DISTINCT tenant FROM usage_totals")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .await?;
        let mut deleted = 0u64;
        for t in tenants {
            loop {
                let t = t.clone();
                let n = self
                    .write(move |tx| {
                        let n = tx.execute(
                            "DELETE FROM usage WHERE id IN (SELECT id FROM usage INDEXED BY
                                usage_tenant_ts WHERE tenant = ?1 AND ts_ms < ?2 LIMIT 5000)",
                            params![t, before],
                        )?;
                        tx.execute(
                            "DELETE FROM attempt_failures WHERE tenant = ?1 AND ts_ms < ?2",
                            params![t, before],
                        )?;
                        Ok(n as u64)
                    })
                    .await?;
                deleted += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

impl Db {
    /// `Db::prune` on PostgreSQL: one transaction for the minute cells and
    /// the day partitions past retention, on the writer; the days dropped
    /// are forgotten, so ingest makes them again if a late record needs one.
    async fn prune_pg(
        &self,
        now: u64,
        minutes_before: u64,
        raw_kept_ms: Option<u64>,
    ) -> Result<u64> {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let super::Engine::Postgres(pg) = &pool.engine else {
                return Ok(0);
            };
            pg.prune(minutes_before, raw_kept_ms.map(|k| now.saturating_sub(k)))
        })
        .await?
    }
}

/// Prunes every hour (and once a minute after the start) until the process
/// ends; a failure is logged and tried again at the next round.
pub fn spawn_pruning(db: Db, raw_kept_ms: Option<u64>) {
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(60);
        loop {
            tokio::time::sleep(wait).await;
            wait = std::time::Duration::from_secs(3600);
            match db.prune(super::now_ms(), raw_kept_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "raw usage records past retention deleted"),
                Err(e) => tracing::warn!("pruning usage: {e}"),
            }
            if let Err(e) = db.prune_request_features(super::now_ms()).await {
                tracing::warn!("pruning router features: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = HOUR_MS;
    const D: u64 = DAY_MS;
    const M: u64 = MINUTE_MS;

    #[test]
    fn a_window_is_whole_days_then_hours_then_raw_edges() {
        let since = 3 * D + 5 * H + 7 * M + 11;
        let until = 9 * D + 2 * H + 1;
        assert_eq!(
            plan(since, until, widths(false)),
            [
                Piece::Raw {
                    start: since,
                    end: 3 * D + 6 * H
                },
                Piece::Cells {
                    width: H,
                    start: 3 * D + 6 * H,
                    end: 4 * D
                },
                Piece::Cells {
                    width: D,
                    start: 4 * D,
                    end: 9 * D
                },
                Piece::Cells {
                    width: H,
                    start: 9 * D,
                    end: 9 * D + 2 * H
                },
                Piece::Raw {
                    start: 9 * D + 2 * H,
                    end: until
                },
            ]
        );
        // Inside one hour: raw only; the all-tenant view adds minutes.
        assert_eq!(
            plan(10, 20, widths(false)),
            [Piece::Raw { start: 10, end: 20 }]
        );
        assert_eq!(
            plan(H + 2 * M, H + 5 * M + 3, widths(true)),
            [
                Piece::Cells {
                    width: M,
                    start: H + 2 * M,
                    end: H + 5 * M
                },
                Piece::Raw {
                    start: H + 5 * M,
                    end: H + 5 * M + 3
                },
            ]
        );
        assert!(plan(5, 5, widths(false)).is_empty());
        // The pieces tile the window exactly.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = x % (40 * D);
            let u = s + (x >> 20) % (40 * D);
            let mut at = s;
            for p in plan(s, u, widths(x.is_multiple_of(2))) {
                let (a, b) = match p {
                    Piece::Raw { start, end } => (start, end),
                    Piece::Cells { width, start, end } => {
                        assert_eq!((start % width, end % width), (0, 0));
                        (start, end)
                    }
                };
                assert_eq!(a, at);
                assert!(b > a);
                at = b;
            }
            assert_eq!(at, u.max(s));
        }
    }

    #[test]
    fn edges_round_out_where_raw_records_or_minute_cells_are_gone() {
        let now = 100 * D;
        let h = Horizons::at(now, Some(30 * D));
        // A tenant's recent edges stay exact; old ones round out to hours.
        assert_eq!(
            effective(Some("t"), 95 * D + 7, 96 * D + 9, 0, h),
            (95 * D + 7, 96 * D + 9)
        );
        assert_eq!(
            effective(Some("t"), 10 * D + H + 7, 11 * D + 9, 0, h),
            (10 * D + H, 11 * D + H)
        );
        // …but never back before the tenant's rebirth.
        assert_eq!(
            effective(Some("t"), 10 * D + H + 7, 11 * D, 10 * D + H + 5, h),
            (10 * D + 2 * H, 11 * D)
        );
        // Every tenant: minutes for two days, hours before.
        assert_eq!(
            effective(None, 99 * D + 7, 99 * D + M + 1, 0, h),
            (99 * D, 99 * D + 2 * M)
        );
        assert_eq!(
            effective(None, 90 * D + 7, 99 * D + 1, 0, h),
            (90 * D, 99 * D + M)
        );
        // Raw records kept forever: a tenant's edges are always exact.
        let forever = Horizons::at(now, None);
        assert_eq!(effective(Some("t"), 7, 9, 0, forever), (7, 9));
    }
}
