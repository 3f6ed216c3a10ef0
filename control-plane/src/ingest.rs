//! Usage ingestion, the one path by which a filter's records reach the
//! store: each record is validated (the core's `validate` rules; a record
//! for a tenant that never existed is refused too), then in ONE write
//! transaction the valid ones are inserted (the record id is the idempotency
//! key: the insert decides which are new), and only the new ones add to the
//! running totals and move their models' penalties (the filter's rules,
//! `crate::penalty`). The ack is sent only after that transaction's commit,
//! so it means durable. Refused records are counted, never stored, and never
//! refuse the batch: a filter would otherwise retry a poisoned batch forever
//! and every record behind it would wait. What the sending Envoy reports
//! about its queue (`source`) is stored in the same transaction.

use std::collections::HashMap;

use aipipe_core::usage::{UsageAck, UsageBatch, UsageRecord, UsageSource};
use aipipe_core::validate;

use crate::db::{Db, now_ms};
use crate::error::Result;
use crate::penalty::{self, Event, Outcome};
use crate::stats::Sums;

/// A batch split into the records that can be stored and how many could
/// not.
#[derive(Debug, Clone)]
pub struct Batch {
    records: Vec<UsageRecord>,
    refused: u64,
    /// What the sending Envoy said about its queue, stored with the batch
    /// (`db/envoys.rs`), and how many records the batch had.
    source: Option<(UsageSource, u64)>,
}

impl Batch {
    /// The records of a batch that can be stored, and the sender's report
    /// (already validated; `None` from filters that send none). Its `sent`
    /// is stored counting every record of this batch: it is acknowledged
    /// once stored.
    pub fn from_envoy(records: Vec<UsageRecord>, source: Option<UsageSource>) -> Self {
        let total = records.len() as u64;
        Self {
            source: source.map(|s| (s, total)),
            ..Self::new(records)
        }
    }

    pub fn new(records: Vec<UsageRecord>) -> Self {
        let total = records.len();
        let records: Vec<UsageRecord> = records
            .into_iter()
            .enumerate()
            .filter(
                |(i, r)| match validate::usage_record(&format!("records[{i}]"), r) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("usage record refused: {e}");
                        false
                    }
                },
            )
            .map(|(_, r)| r)
            .collect();
        let refused = (total - records.len()) as u64;
        Self {
            records,
            refused,
            source: None,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl From<UsageBatch> for Batch {
    fn from(batch: UsageBatch) -> Self {
        Self::new(batch.records)
    }
}

/// What new records add: sums per (tenant, provider, model), and their
/// models' outcomes in the order they happened.
#[derive(Debug, Default)]
pub struct Effects<'a> {
    pub totals: HashMap<(&'a str, &'a str, &'a str), Sums>,
    pub events: Vec<Event<'a>>,
}

impl<'a> Effects<'a> {
    /// A record counts for the model that answered it; each of its failed
    /// attempts counts once for its own model, as an outcome that came
    /// first (a failure, unless it was about one tenant's key).
    pub fn of(records: &[&'a UsageRecord]) -> Self {
        let mut e = Effects::default();
        for r in records {
            e.totals
                .entry((&r.tenant, &r.provider, &r.model))
                .or_default()
                .add_record(r);
            for a in &r.failed_attempts {
                e.totals
                    .entry((&r.tenant, &a.provider, &a.model))
                    .or_default()
                    .failed_attempts += 1;
                // A failed attempt moves the model's penalty only when it
                // speaks about the provider (a 429 speaks about one key).
                e.events.push(Event {
                    ts_ms: r.ts_ms,
                    provider: &a.provider,
                    model: &a.model,
                    key_tag: "",
                    outcome: Outcome::of_status(a.status),
                });
                // …and the (model, key) pair's when it speaks about the key.
                if let Some(tag) = &a.key_tag {
                    e.events.push(Event {
                        ts_ms: r.ts_ms,
                        provider: &a.provider,
                        model: &a.model,
                        key_tag: tag,
                        outcome: Outcome::of_key_status(a.status),
                    });
                }
            }
            e.events.push(Event {
                ts_ms: r.ts_ms,
                provider: &r.provider,
                model: &r.model,
                key_tag: "",
                outcome: Outcome::of_record(r),
            });
            if let Some(tag) = r.key_tag.as_deref().filter(|_| !r.cache_hit) {
                e.events.push(Event {
                    ts_ms: r.ts_ms,
                    provider: &r.provider,
                    model: &r.model,
                    key_tag: tag,
                    outcome: Outcome::of_key_status(r.status),
                });
            }
        }
        e
    }
}

/// What `/metrics` learns from one newly stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub provider: String,
    pub model: String,
    pub outcome: &'static str,
    /// None for a cache hit: no provider answered.
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
}

impl Observed {
    /// `ok`, `client_error` (4xx), `server_error` (5xx, or no answer) or
    /// `cache_hit`.
    pub fn of(r: &UsageRecord) -> Self {
        let outcome = match r.status {
            _ if r.cache_hit => "cache_hit",
            400..=499 => "client_error",
            100..=399 => "ok",
            _ => "server_error",
        };
        Self {
            provider: r.provider.clone(),
            model: r.model.clone(),
            outcome,
            latency_ms: (!r.cache_hit).then_some(r.latency_ms),
            ttft_ms: r
                .ttft_ms
                .filter(|_| !r.cache_hit && (100..400).contains(&r.status)),
        }
    }
}

/// Stores a batch in one transaction and returns the ack (how many records
/// were new, how many duplicates) once it is committed, with what the new
/// records tell `/metrics` and the tenants a rating was waiting on one of
/// them for (db/learning.rs). The table version is bumped when a penalty
/// changed meaningfully.
pub async fn ingest(db: &Db, batch: Batch) -> Result<(UsageAck, Vec<Observed>, Vec<String>)> {
    let Batch {
        mut records,
        mut refused,
        source,
    } = batch;
    // A time the store cannot file (PostgreSQL's day partitions span the
    // years 1970-9999) refuses its record, not the batch.
    let before = records.len();
    records.retain(|r| {
        let ok = db.takes_time(r.ts_ms);
        if !ok {
            tracing::warn!(record = %r.id, ts_ms = r.ts_ms, "usage record refused: its time is impossible");
        }
        ok
    });
    refused += (before - records.len()) as u64;
    // The days the batch writes must exist first (PostgreSQL's partitions).
    db.make_usage_days(&records).await?;
    db.write_penalties(move |tx| {
        let now = now_ms();
        let mut known: HashMap<String, bool> = HashMap::new();
        let before = records.len();
        let mut keep = Vec::with_capacity(before);
        for r in records.drain(..) {
            let ok = match known.get(&r.tenant) {
                Some(&ok) => ok,
                None => {
                    let ok = tx.tenant_known(&r.tenant)?;
                    known.insert(r.tenant.clone(), ok);
                    ok
                }
            };
            if ok {
                keep.push(r);
            } else {
                tracing::warn!(record = %r.id, "usage record refused: its tenant never existed");
            }
        }
        refused += (before - keep.len()) as u64;
        let records = keep;
        let fresh = tx.insert_usage(&records)?;
        let mut effects = Effects::of(&fresh);
        for ((tenant, provider, model), sums) in &effects.totals {
            tx.add_usage_totals(tenant, provider, model, sums)?;
        }
        // A success lowers a (model, key) pair's penalty only where the pair
        // has one: most keys never earn one, and keep no row.
        let mut events = Vec::with_capacity(effects.events.len());
        let mut held: HashMap<penalty::ModelKey<'_>, bool> = HashMap::new();
        for e in effects.events.drain(..) {
            if e.key_tag.is_empty() || e.outcome != Outcome::Success {
                events.push(e);
                continue;
            }
            let k = (e.provider, e.model, e.key_tag);
            let has = match held.get(&k) {
                Some(&has) => has,
                None => {
                    let has = tx.penalty_tally(k)?.is_some();
                    held.insert(k, has);
                    has
                }
            };
            if has {
                events.push(e);
            }
        }
        let touched = penalty::apply_events(events, now, tx.decay_ms(), |k| tx.penalty_tally(k))?;
        for (k, tally) in &touched {
            tx.save_penalty_tally(*k, tally)?;
        }
        tx.add_usage_days(&fresh)?;
        tx.add_rollups(&fresh, now)?;
        let learnable = tx.add_request_features(&fresh)?;
        if let Some((source, total)) = &source {
            tx.report_envoy(source, *total, now)?;
        }
        let due = tx.republish_penalties(now)?;
        let accepted = fresh.len() as u64;
        let observed = fresh.iter().map(|r| Observed::of(r)).collect();
        Ok((
            (
                UsageAck {
                    accepted,
                    duplicates: records.len() as u64 - accepted,
                    refused,
                    // Everything this transaction changed, budget entries
                    // included, is at or below it.
                    revision: tx.revision()?,
                },
                observed,
                learnable,
            ),
            due,
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aipipe_core::usage::FailedAttempt;

    fn record(id: &str, model: &str, status: u16) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            tenant: "acme".into(),
            provider: "openai".into(),
            model: model.into(),
            status,
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 100,
            latency_ms: 1.0,
            ttft_ms: None,
            complexity: None,
            stream: false,
            usage_parsed: true,
            ts_ms: 7,
            failed_attempts: Vec::new(),
            cache_hit: false,
            estimated: false,
            key_tag: None,
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: None,
        }
    }

    #[test]
    fn impossible_records_are_refused_one_by_one() {
        let mut huge = record("b", "m", 200);
        huge.prompt_tokens = i64::MAX as u64;
        let b = Batch::new(vec![record("a", "m", 200), record("", "m", 200), huge]);
        assert_eq!((b.len(), b.refused), (1, 2));
    }

    #[test]
    fn failed_attempts_count_for_their_model_before_the_answer() {
        let mut r = record("a", "gpt-4o-mini", 200);
        r.failed_attempts = vec![FailedAttempt {
            provider: "anthropic".into(),
            model: "claude-opus-4-5".into(),
            status: 529,
            key_tag: None,
        }];
        let hit = UsageRecord {
            cache_hit: true,
            estimated: false,
            ..record("b", "gpt-4o-mini", 200)
        };
        let e = Effects::of(&[&r, &hit]);
        let mini = e.totals[&("acme", "openai", "gpt-4o-mini")];
        assert_eq!(
            (mini.requests, mini.cache_hits, mini.failed_attempts),
            (2, 1, 0)
        );
        let claude = e.totals[&("acme", "anthropic", "claude-opus-4-5")];
        assert_eq!((claude.requests, claude.failed_attempts), (0, 1));
        let order: Vec<(&str, Outcome)> = e.events.iter().map(|e| (e.model, e.outcome)).collect();
        assert_eq!(
            order,
            [
                ("claude-opus-4-5", Outcome::Failure),
                ("gpt-4o-mini", Outcome::Success),
                ("gpt-4o-mini", Outcome::Neutral),
            ]
        );
    }
}
