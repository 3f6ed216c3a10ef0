//! Each Envoy's latest report (`crate::envoys`; control-plane/README.md,
//! "Replicas"): what its singleton said about its usage queue and the budget
//! reservations of its requests in flight, with its last usage batch. Kept
//! in the database, one row per node written in the batch's ingest
//! transaction, so every control plane on the database answers the same
//! whichever one the Envoy uploaded to. At most [`MAX_ENVOYS`] rows: a new
//! node past it drops the one seen least recently.

use std::collections::BTreeMap;

use aipipe_core::usage::UsageSource;
use rusqlite::{OptionalExtension, params};

use super::{Db, Tx, pg, to_i64, to_u64};
use crate::envoys::{EnvoyView, MAX_ENVOYS, RESERVATIONS_FRESH_MS};
use crate::error::Result;

/// One report as stored: the JSON of both reservation maps.
pub(super) struct Report {
    pub(super) queued: i64,
    pub(super) dropped: i64,
    pub(super) sent: i64,
    pub(super) reserved: String,
    pub(super) key_reserved: String,
}

impl Report {
    /// What `source` reported with a batch of `records` (all of them, the
    /// refused included: the filter counts them sent once acknowledged).
    pub(super) fn of(source: &UsageSource, records: u64) -> Result<Self> {
        Ok(Self {
            queued: to_i64(source.queued),
            dropped: to_i64(source.dropped),
            sent: to_i64(source.sent.saturating_add(records)),
            reserved: serde_json::to_string(&source.reserved_nusd)?,
            key_reserved: serde_json::to_string(&source.key_reserved_nusd)?,
        })
    }
}

/// The rows to drop when a new node made them `count`: the oldest beyond
/// [`MAX_ENVOYS`].
pub(super) fn excess(count: i64) -> i64 {
    (count - MAX_ENVOYS as i64).max(0)
}

/// The column a reservation is looked up in: a virtual key's or a tenant's.
pub(super) fn reservation_column(key: Option<&str>) -> &'static str {
    if key.is_some() {
        "key_reserved"
    } else {
        "reserved"
    }
}

/// The sum of `name`'s reservations over the reports' maps (JSON). A map
/// that does not parse counts nothing (it was written by this code).
pub(super) fn sum_reserved<'a>(maps: impl Iterator<Item = &'a str>, name: &str) -> u64 {
    maps.filter_map(|m| serde_json::from_str::<BTreeMap<String, u64>>(m).ok())
        .filter_map(|m| m.get(name).copied())
        .fold(0u64, u64::saturating_add)
}

impl Tx<'_, '_> {
    /// Stores what `source` reported with a batch of `records`, acknowledged
    /// at `now_ms` (this transaction's commit acknowledges it).
    pub fn report_envoy(&self, source: &UsageSource, records: u64, now_ms: u64) -> Result<()> {
        let report = Report::of(source, records)?;
        if let Some(w) = self.pg() {
            return pg::envoys::report(&mut **w?, &source.node, &report, now_ms);
        }
        let tx = self.sqlite()?;
        let known: bool = tx
            .prepare_cached("SELECT 1 FROM envoy_reports WHERE node = ?1")?
            .query_row([&source.node], |_| Ok(()))
            .optional()?
            .is_some();
        tx.prepare_cached(
            "INSERT INTO envoy_reports (node, queued, dropped, sent, last_seen_ms, reserved,
                key_reserved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (node) DO UPDATE SET queued = excluded.queued,
                dropped = excluded.dropped, sent = excluded.sent,
                last_seen_ms = excluded.last_seen_ms, reserved = excluded.reserved,
                key_reserved = excluded.key_reserved",
        )?
        .execute(params![
            source.node,
            report.queued,
            report.dropped,
            report.sent,
            to_i64(now_ms),
            report.reserved,
            report.key_reserved
        ])?;
        if !known {
            let count: i64 =
                tx.query_row("SELECT COUNT(*) FROM envoy_reports", [], |r| r.get(0))?;
            let drop = excess(count);
            if drop > 0 {
                tx.execute(
                    "DELETE FROM envoy_reports WHERE node IN (
                       SELECT node FROM envoy_reports ORDER BY last_seen_ms, node LIMIT ?1)",
                    [drop],
                )?;
            }
        }
        Ok(())
    }
}

fn view(r: &rusqlite::Row<'_>) -> rusqlite::Result<EnvoyView> {
    Ok(EnvoyView {
        node: r.get(0)?,
        queued: to_u64(r.get(1)?),
        dropped: to_u64(r.get(2)?),
        sent: to_u64(r.get(3)?),
        last_seen_ms: to_u64(r.get(4)?),
    })
}

impl Db {
    /// Every Envoy's latest report, by node.
    pub async fn envoys(&self) -> Result<Vec<EnvoyView>> {
        if self.postgres().is_some() {
            return self.pg_read(pg::envoys::list).await;
        }
        self.read(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT node, queued, dropped, sent, last_seen_ms FROM envoy_reports
                     ORDER BY node",
                )?
                .query_map([], view)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// What the Envoys that reported in the last
    /// [`RESERVATIONS_FRESH_MS`] before `now_ms` hold reserved in flight of
    /// a tenant's budget (`key` None) or of one virtual key's.
    pub async fn reserved(&self, tenant: String, key: Option<String>, now_ms: u64) -> Result<u64> {
        let since = now_ms.saturating_sub(RESERVATIONS_FRESH_MS);
        let name = key.clone().unwrap_or(tenant);
        let column = reservation_column(key.as_deref());
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::envoys::reserved(tx, column, &name, since))
                .await;
        }
        self.read(move |tx| {
            let maps: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT {column} FROM envoy_reports
                     WHERE last_seen_ms >= ?1 AND {column} != '{{}}'"
                ))?
                .query_map([to_i64(since)], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(sum_reserved(maps.iter().map(String::as_str), &name))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_summed_by_name_over_the_maps() {
        let maps = [
            r#"{"acme":100,"beta":5}"#,
            r#"{"acme":20}"#,
            "{}",
            "not json",
        ];
        assert_eq!(sum_reserved(maps.iter().copied(), "acme"), 120);
        assert_eq!(sum_reserved(maps.iter().copied(), "beta"), 5);
        assert_eq!(sum_reserved(maps.iter().copied(), "other"), 0);
        let huge = [r#"{"a":18446744073709551615}"#, r#"{"a":1}"#];
        assert_eq!(sum_reserved(huge.iter().copied(), "a"), u64::MAX);
    }

    #[test]
    fn a_new_node_past_the_bound_drops_the_excess() {
        assert_eq!(excess(MAX_ENVOYS as i64), 0);
        assert_eq!(excess(MAX_ENVOYS as i64 + 1), 1);
        assert_eq!(excess(3), 0);
    }
}
