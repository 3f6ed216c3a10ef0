//! Day partitions of `usage` and `attempt_failures` (control-plane/README.md,
//! "PostgreSQL"). Each UTC day `D` (unix ms / 86,400,000) has one partition
//! per table, `usage_pYYYYMMDD` and `attempt_failures_pYYYYMMDD`, holding
//! `ts_ms` in `[D·86,400,000, (D+1)·86,400,000)`. There is no default
//! partition: a row whose day has no partition is refused, so whoever
//! inserts makes the partitions of the days it writes first
//! ([`ensure_days`]: idempotent, serialised across processes by an advisory
//! lock), and retention drops whole days ([`drop_days_before`]).

use postgres::GenericClient;

use crate::db::DAY_MS;
use crate::db::usage_days::{civil_from_days, parse_date};

/// The tables partitioned by day.
pub const PARTITIONED: [&str; 2] = ["usage", "attempt_failures"];

/// Serialises partition creation across processes (creating one a second
/// process is creating too fails even with `IF NOT EXISTS`).
const PARTITION_LOCK: i64 = 0x6169_7069_7065_0002; // "aipipe" 2

/// The last day a partition can be made for (9999-12-31).
pub const LAST_DAY: i64 = 2_932_896;

/// The UTC day of a timestamp.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS as i64)
}

/// The partition of `table` for `day`.
pub fn name(table: &str, day: i64) -> String {
    format!("{table}_p{}", civil_from_days(day).replace('-', ""))
}

/// The day a partition of `table` holds, from its name; None for a table
/// that is not one of ours (never dropped).
fn day_of_name(table: &str, partition: &str) -> Option<i64> {
    let digits = partition.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, rest) = digits.split_at(4);
    let (m, d) = rest.split_at(2);
    let day = parse_date(&format!("{y}-{m}-{d}"))?;
    (name(table, day) == partition).then_some(day)
}

/// Makes the partitions of `days` that are missing, for every partitioned
/// table; returns how many it made. Runs in a transaction of its own (a
/// savepoint inside the caller's), under [`PARTITION_LOCK`]. Call it before
/// inserting, outside a long transaction: attaching a partition locks the
/// parent table until commit.
pub fn ensure_days(client: &mut impl GenericClient, days: &[i64]) -> Result<usize, String> {
    if let Some(bad) = days.iter().find(|d| **d < 0 || **d > LAST_DAY) {
        return Err(format!(
            "day {bad} is outside the years 1970-9999: a timestamp in ms is wrong"
        ));
    }
    let err = |e: postgres::Error| super::describe(&e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .map_err(err)?;
    let mut made = 0;
    for table in PARTITIONED {
        let existing = existing(&mut tx, table)?;
        for &day in days {
            if existing.contains(&day) {
                continue;
            }
            let from = day * DAY_MS as i64;
            let to = from + DAY_MS as i64;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})",
                name(table, day)
            ))
            .map_err(err)?;
            made += 1;
        }
    }
    tx.commit().map_err(err)?;
    Ok(made)
}

/// The days `table` has a partition for (ours only), ascending.
pub fn existing(client: &mut impl GenericClient, table: &str) -> Result<Vec<i64>, String> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass($1)",
            &[&table],
        )
        .map_err(|e| super::describe(&e))?;
    let mut days: Vec<i64> = rows
        .iter()
        .filter_map(|r| day_of_name(table, r.get::<_, &str>(0)))
        .collect();
    days.sort_unstable();
    days.dedup();
    Ok(days)
}

/// Drops every day partition whose whole day is before `cutoff_ms` (so a
/// record is kept until its day has passed the cutoff: up to a day longer
/// than a row-by-row delete would keep it). Returns the partitions dropped.
pub fn drop_days_before(
    client: &mut impl GenericClient,
    cutoff_ms: i64,
) -> Result<Vec<String>, String> {
    let err = |e: postgres::Error| super::describe(&e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .map_err(err)?;
    let mut dropped = Vec::new();
    for table in PARTITIONED {
        for day in existing(&mut tx, table)? {
            if (day + 1) * DAY_MS as i64 <= cutoff_ms {
                let partition = name(table, day);
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {partition}"))
                    .map_err(err)?;
                dropped.push(partition);
            }
        }
    }
    tx.commit().map_err(err)?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn partition_names_are_utc_dates_and_read_back() {
        let day = day_of(1_764_892_800_000 + 3_600_000); // 2025-12-05 01:00 UTC
        assert_eq!(name("usage", day), "usage_p20251205");
        assert_eq!(day_of_name("usage", "usage_p20251205"), Some(day));
        assert_eq!(day_of_name("usage", "usage_p20251305"), None);
        assert_eq!(day_of_name("usage", "usage_2025"), None);
        assert_eq!(day_of_name("usage", "attempt_failures_p20251205"), None);
        assert_eq!(day_of(-1), -1, "floor, not truncation");
        assert_eq!(day_of(0), 0);
    }
}
