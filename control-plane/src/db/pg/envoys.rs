//! Each Envoy's latest report on PostgreSQL (`db/envoys.rs`'s functions).

use postgres::Transaction;

use super::super::envoys::{Report, excess, sum_reserved};
use super::super::{to_i64, to_u64};
use super::pool::Writer;
use crate::envoys::EnvoyView;
use crate::error::Result;

/// Stores `node`'s report (`Tx::report_envoy`); a new node past the bound
/// drops the ones seen least recently.
pub(in crate::db) fn report(
    w: &mut Writer<'_>,
    node: &str,
    report: &Report,
    now_ms: u64,
) -> Result<()> {
    // xmax is 0 on a row this statement inserted (not on one it updated).
    let inserted: bool = w
        .query_one(
            "INSERT INTO envoy_reports (node, queued, dropped, sent, last_seen_ms, reserved,
                key_reserved)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (node) DO UPDATE SET queued = excluded.queued,
                dropped = excluded.dropped, sent = excluded.sent,
                last_seen_ms = excluded.last_seen_ms, reserved = excluded.reserved,
                key_reserved = excluded.key_reserved
             RETURNING xmax = 0",
            &[
                &node,
                &report.queued,
                &report.dropped,
                &report.sent,
                &to_i64(now_ms),
                &report.reserved,
                &report.key_reserved,
            ],
        )?
        .get(0);
    if inserted {
        let count: i64 = w
            .query_one("SELECT COUNT(*) FROM envoy_reports", &[])?
            .get(0);
        let drop = excess(count);
        if drop > 0 {
            w.execute(
                "DELETE FROM envoy_reports WHERE node IN (
                   SELECT node FROM envoy_reports ORDER BY last_seen_ms, node LIMIT $1)",
                &[&drop],
            )?;
        }
    }
    Ok(())
}

pub(in crate::db) fn list(tx: &mut Transaction<'_>) -> Result<Vec<EnvoyView>> {
    Ok(tx
        .query(
            "SELECT node, queued, dropped, sent, last_seen_ms FROM envoy_reports ORDER BY node",
            &[],
        )?
        .iter()
        .map(|r| EnvoyView {
            node: r.get(0),
            queued: to_u64(r.get(1)),
            dropped: to_u64(r.get(2)),
            sent: to_u64(r.get(3)),
            last_seen_ms: to_u64(r.get(4)),
        })
        .collect())
}

/// `Db::reserved`: `name`'s reservations in `column` of the reports seen
/// since `since` (unix ms).
pub(in crate::db) fn reserved(
    tx: &mut Transaction<'_>,
    column: &str,
    name: &str,
    since: u64,
) -> Result<u64> {
    let maps: Vec<String> = tx
        .query(
            &format!(
                "SELECT {column} FROM envoy_reports WHERE last_seen_ms >= $1 AND {column} != '{{}}'"
            ),
            &[&to_i64(since)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(sum_reserved(maps.iter().map(String::as_str), name))
}
