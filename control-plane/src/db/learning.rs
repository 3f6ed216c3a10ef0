//! Per-tenant routing (control-plane/README.md, "Per-tenant routing"): a
//! tenant's labelled requests — imported examples, and ratings of routed
//! answers joined with the router features their usage records carried —
//! and the correction to the router model fitted from them, which the
//! tenant's directory entry carries to the filters.

use aipipe_core::classify::{Category, Tier};
use aipipe_core::usage::UsageRecord;
use rusqlite::{OptionalExtension, params};

use super::tenants::tenant_exists;
use super::{Change, Db, now_ms, pg, record_change, to_i64, to_u64};
use crate::error::Result;

/// How long the router features of a routed request are kept for a rating
/// to find them.
pub const FEATURES_KEPT_MS: u64 = 7 * 86_400_000;
/// The most routed requests' features kept per tenant (the newest): about
/// 2 KB each, so at most about 200 MB per tenant that opted in, however busy.
pub const FEATURES_KEPT_PER_TENANT: u64 = 100_000;

/// One labelled request to store.
#[derive(Debug, Clone)]
pub struct NewExample {
    pub tier: Tier,
    pub category: Option<Category>,
    /// The request's JSON, kept only when the tenant's policy stores
    /// prompts.
    pub request: Option<String>,
    /// `tenant_router::encode_features`.
    pub features: Vec<u8>,
}

/// One labelled request as the fit reads it.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub tier: Tier,
    pub category: Option<Category>,
    pub request: Option<String>,
    pub features: Vec<u8>,
    /// A rating rather than an imported example.
    pub feedback: bool,
}

/// A tenant's fitted correction, as stored and shipped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FittedRouter {
    /// The router model it corrects (hex, as `GET /admin/routing/model`).
    pub model_version: String,
    /// The labelled requests it learnt from.
    pub examples: u64,
    /// Feature rows it adjusts.
    pub rows: u64,
    pub bytes: u64,
    pub fitted_ms: u64,
}

/// What `GET /admin/tenants/{id}/routing` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoutingState {
    /// Imported examples.
    pub examples: u64,
    /// Ratings received.
    pub ratings: u64,
    /// Ratings whose request's features are known (they teach).
    pub ratings_learnable: u64,
    /// Routed requests whose router features are kept for a rating to find
    /// (7 days, the newest 100,000; only while the policy has
    /// `learning.feedback` on).
    pub features_kept: u64,
    /// The correction the filters route this tenant with; null: the global
    /// router model alone.
    pub router: Option<FittedRouter>,
}

/// The tier a rating teaches: the rater's, else the tier the answer was
/// routed at when it was good, one above when it was bad (None: a bad
/// answer at the top tier teaches nothing about tiers).
pub fn rated_tier(good: bool, told: Option<Tier>, routed: Tier) -> Option<Tier> {
    if told.is_some() {
        return told;
    }
    match (good, routed) {
        (true, t) => Some(t),
        (false, Tier::Cheap) => Some(Tier::Mid),
        (false, Tier::Mid) => Some(Tier::Frontier),
        (false, Tier::Frontier) => None,
    }
}

fn tier_of(name: &str) -> Option<Tier> {
    Tier::from_name(name)
}

fn fitted(
    conn: &rusqlite::Connection,
    tenant: &str,
) -> rusqlite::Result<Option<(FittedRouter, Vec<u8>)>> {
    conn.prepare_cached(
        "SELECT model_version, examples, rows, blob, fitted_ms FROM tenant_routers WHERE tenant = ?1",
    )?
    .query_row([tenant], |r| {
        Ok(FittedRouter::of(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get(4)?,
        ))
    })
    .optional()
}

impl FittedRouter {
    /// A `tenant_routers` row: (model version, examples, rows, blob, fitted
    /// ms) as stored.
    pub(super) fn of(
        version: i64,
        examples: i64,
        rows: i64,
        blob: Vec<u8>,
        fitted_ms: i64,
    ) -> (Self, Vec<u8>) {
        (
            FittedRouter {
                model_version: format!("{version:08x}"),
                examples: to_u64(examples),
                rows: to_u64(rows),
                bytes: blob.len() as u64,
                fitted_ms: to_u64(fitted_ms),
            },
            blob,
        )
    }
}

impl Labelled {
    /// An imported example's row; None for a tier no longer known.
    pub(super) fn example(
        tier: &str,
        category: Option<&str>,
        request: Option<String>,
        features: Vec<u8>,
    ) -> Option<Self> {
        Some(Labelled {
            tier: tier_of(tier)?,
            category: category.and_then(Category::from_name),
            request,
            features,
            feedback: false,
        })
    }

    /// A rating joined with its request's features, as the label it
    /// teaches; None when it teaches nothing.
    pub(super) fn rating(
        good: bool,
        told: Option<&str>,
        complexity: f64,
        features: Vec<u8>,
    ) -> Option<Self> {
        let told = told.and_then(tier_of);
        Some(Labelled {
            tier: rated_tier(good, told, Tier::of_complexity(complexity))?,
            category: None,
            request: None,
            features,
            feedback: true,
        })
    }
}

/// The encoded correction a tenant's directory entry carries (empty: none).
pub(super) fn tenant_router_blob(conn: &rusqlite::Connection, tenant: &str) -> Result<Vec<u8>> {
    Ok(fitted(conn, tenant)?.map(|(_, b)| b).unwrap_or_default())
}

impl Db {
    /// Stores a tenant's imported examples; None when there is no such
    /// tenant, else how many it has now.
    pub async fn add_routing_examples(
        &self,
        tenant: String,
        examples: Vec<NewExample>,
    ) -> Result<Option<u64>> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::learning::add_routing_examples(w, &tenant, examples))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let now = to_i64(now_ms());
            let mut add = tx.prepare_cached(
                "INSERT INTO routing_examples (tenant, tier, category, request, features, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in examples {
                add.execute(params![
                    tenant,
                    e.tier.name(),
                    e.category.map(Category::name),
                    e.request,
                    e.features,
                    now
                ])?;
            }
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM routing_examples WHERE tenant = ?1",
                [&tenant],
                |r| r.get(0),
            )?;
            Ok(Some(to_u64(n)))
        })
        .await
    }

    /// Forgets a tenant's examples and ratings; false when there is no such
    /// tenant. The caller refits (to nothing).
    pub async fn clear_routing_examples(&self, tenant: String) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::learning::clear_routing_examples(w, &tenant))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(false);
            }
            tx.execute("DELETE FROM routing_examples WHERE tenant = ?1", [&tenant])?;
            tx.execute("DELETE FROM routing_feedback WHERE tenant = ?1", [&tenant])?;
            Ok(true)
        })
        .await
    }

    /// Stores a rating of one of the tenant's routed answers (a new rating
    /// of the same request replaces the old). Returns whether the request's
    /// router features are known, i.e. whether it teaches now.
    pub async fn add_feedback(
        &self,
        tenant: String,
        request_id: String,
        good: bool,
        tier: Option<Tier>,
    ) -> Result<bool> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::learning::add_feedback(w, &tenant, &request_id, good, tier))
                .await;
        }
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO routing_feedback (tenant, request_id, good, tier, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, request_id) DO UPDATE SET good = excluded.good,
                    tier = excluded.tier, created_ms = excluded.created_ms",
            )?
            .execute(params![
                tenant,
                request_id,
                good,
                tier.map(Tier::name),
                to_i64(now_ms())
            ])?;
            Ok(tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM request_features WHERE tenant = ?1 AND request_id = ?2)",
                )?
                .query_row(params![tenant, request_id], |r| r.get(0))?)
        })
        .await
    }

    /// Everything a tenant's correction is fitted from: its examples, then
    /// its ratings whose features are known, as the labels they teach.
    pub async fn labelled_requests(&self, tenant: String) -> Result<Vec<Labelled>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::learning::labelled_requests(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            let mut out: Vec<Labelled> = tx
                .prepare_cached(
                    "SELECT tier, category, request, features FROM routing_examples
                     WHERE tenant = ?1 ORDER BY id",
                )?
                .query_map([&tenant], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })?
                .filter_map(|row| {
                    let (tier, category, request, features) = match row {
                        Ok(r) => r,
                        Err(e) => return Some(Err(e)),
                    };
                    Labelled::example(&tier, category.as_deref(), request, features).map(Ok)
                })
                .collect::<rusqlite::Result<_>>()?;
            let rated = tx
                .prepare_cached(
                    "SELECT f.good, f.tier, r.complexity, r.features FROM routing_feedback f
                     JOIN request_features r ON r.tenant = f.tenant AND r.request_id = f.request_id
                     WHERE f.tenant = ?1 ORDER BY f.created_ms, f.request_id",
                )?
                .query_map([&tenant], |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.extend(
                rated
                    .into_iter()
                    .filter_map(|(good, told, complexity, features)| {
                        Labelled::rating(good, told.as_deref(), complexity, features)
                    }),
            );
            Ok(out)
        })
        .await
    }

    /// Stores (or, with None, removes) a tenant's fitted correction and
    /// publishes the tenant, so the filters route with it.
    pub async fn save_tenant_router(
        &self,
        tenant: String,
        fitted: Option<(u32, u64, u64, Vec<u8>)>,
    ) -> Result<()> {
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::learning::save_tenant_router(w, &tenant, fitted))
                .await;
        }
        self.write(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(());
            }
            let changed = match fitted {
                Some((version, examples, rows, blob)) => tx.execute(
                    "INSERT INTO tenant_routers (tenant, model_version, examples, rows, blob, fitted_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant) DO UPDATE SET model_version = excluded.model_version,
                        examples = excluded.examples, rows = excluded.rows, blob = excluded.blob,
                        fitted_ms = excluded.fitted_ms",
                    params![
                        tenant,
                        i64::from(version),
                        to_i64(examples),
                        to_i64(rows),
                        blob,
                        to_i64(now_ms())
                    ],
                )?,
                None => tx.execute("DELETE FROM tenant_routers WHERE tenant = ?1", [&tenant])?,
            };
            if changed > 0 {
                record_change(tx, Change::Tenant(&tenant))?;
            }
            Ok(())
        })
        .await
    }

    /// A tenant's examples, ratings and fitted correction; None when there
    /// is no such tenant.
    pub async fn routing_state(&self, tenant: String) -> Result<Option<RoutingState>> {
        if self.postgres().is_some() {
            return self
                .pg_read(move |tx| pg::learning::routing_state(tx, &tenant))
                .await;
        }
        self.read(move |tx| {
            if !tenant_exists(tx, &tenant)? {
                return Ok(None);
            }
            let count = |sql: &str| -> Result<u64> {
                Ok(to_u64(tx.query_row(sql, [&tenant], |r| r.get(0))?))
            };
            Ok(Some(RoutingState {
                examples: count("SELECT COUNT(*) FROM routing_examples WHERE tenant = ?1")?,
                ratings: count("SELECT COUNT(*) FROM routing_feedback WHERE tenant = ?1")?,
                ratings_learnable: count(
                    "SELECT COUNT(*) FROM routing_feedback f JOIN request_features r
                     ON r.tenant = f.tenant AND r.request_id = f.request_id WHERE f.tenant = ?1",
                )?,
                features_kept: count("SELECT COUNT(*) FROM request_features WHERE tenant = ?1")?,
                router: fitted(tx, &tenant)?.map(|(f, _)| f),
            }))
        })
        .await
    }

    /// Tenants that have anything to learn from (refitted when the router
    /// model changes).
    pub async fn learning_tenants(&self) -> Result<Vec<String>> {
        if self.postgres().is_some() {
            return self.pg_read(super::pg::learning::learning_tenants).await;
        }
        self.read(|tx| {
            Ok(tx
                .prepare(
                    "SELECT tenant FROM routing_examples UNION SELECT tenant FROM routing_feedback
                     UNION SELECT tenant FROM tenant_routers",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// Deletes router features past [`FEATURES_KEPT_MS`], and each tenant's
    /// beyond its newest [`FEATURES_KEPT_PER_TENANT`]; returns how many.
    pub async fn prune_request_features(&self, now: u64) -> Result<u64> {
        self.prune_request_features_to(now, FEATURES_KEPT_MS, FEATURES_KEPT_PER_TENANT)
            .await
    }

    /// [`Db::prune_request_features`] with its bounds given: features older
    /// than `kept_ms`, and each tenant's beyond its newest `per_tenant`.
    pub async fn prune_request_features_to(
        &self,
        now: u64,
        kept_ms: u64,
        per_tenant: u64,
    ) -> Result<u64> {
        let per_tenant = per_tenant.max(1);
        if self.postgres().is_some() {
            return self
                .pg_write(move |w| pg::learning::prune_features(w, now, kept_ms, per_tenant))
                .await;
        }
        self.write(move |tx| {
            let mut n = tx.execute(
                "DELETE FROM request_features WHERE ts_ms < ?1",
                [to_i64(now.saturating_sub(kept_ms))],
            )?;
            let over: Vec<String> = tx
                .prepare(
                    "SELECT tenant FROM request_features GROUP BY tenant HAVING COUNT(*) > ?1",
                )?
                .query_map([to_i64(per_tenant)], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for tenant in over {
                n += tx.execute(
                    "DELETE FROM request_features WHERE tenant = ?1 AND ts_ms < (
                        SELECT ts_ms FROM request_features WHERE tenant = ?1
                        ORDER BY ts_ms DESC LIMIT 1 OFFSET ?2)",
                    params![tenant, to_i64(per_tenant - 1)],
                )?;
            }
            Ok(n as u64)
        })
        .await
    }
}

/// The router features a record carries, decoded from base64, when they
/// decode as features; None (logged) otherwise: the record is kept, its
/// features are not.
pub(super) fn features_of(r: &UsageRecord) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = r.router_features.as_ref()?;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) else {
        tracing::warn!(record = %r.id, "router features that are not base64: not kept");
        return None;
    };
    if aipipe_core::tenant_router::decode_features(&bytes).is_err() {
        tracing::warn!(record = %r.id, "router features that do not decode: not kept");
        return None;
    }
    Some(bytes)
}

impl super::Tx<'_, '_> {
    /// Keeps the router features new records carry (their tenants' policy
    /// learns from feedback). Features that are not valid base64 are
    /// skipped (the record itself is kept). Returns the tenants for which a
    /// rating was waiting on one of these requests.
    pub fn add_request_features(&self, records: &[&UsageRecord]) -> Result<Vec<String>> {
        if let Some(w) = self.pg() {
            return super::pg::learning::add_request_features(&mut **w?, records);
        }
        let tx = self.sqlite()?;
        let mut add = tx.prepare_cached(
            "INSERT OR IGNORE INTO request_features (tenant, request_id, ts_ms, complexity, features)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut rated = tx.prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM routing_feedback WHERE tenant = ?1 AND request_id = ?2)",
        )?;
        let mut waiting = Vec::new();
        for r in records {
            let Some(bytes) = features_of(r) else {
                continue;
            };
            let added = add.execute(params![
                r.tenant,
                r.id,
                to_i64(r.ts_ms),
                r.complexity.unwrap_or(0.0),
                bytes
            ])?;
            if added > 0
                && rated.query_row(params![r.tenant, r.id], |row| row.get::<_, bool>(0))?
                && !waiting.contains(&r.tenant)
            {
                waiting.push(r.tenant.clone());
            }
        }
        Ok(waiting)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(tenant: &str, id: &str, ts_ms: u64) -> UsageRecord {
        use base64::Engine as _;
        let f = aipipe_core::classify::Features::default();
        UsageRecord {
            id: id.into(),
            tenant: tenant.into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            status: 200,
            prompt_tokens: 1,
            completion_tokens: 1,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 1,
            latency_ms: 1.0,
            ttft_ms: None,
            complexity: Some(0.3),
            stream: false,
            usage_parsed: true,
            ts_ms,
            failed_attempts: Vec::new(),
            cache_hit: false,
            estimated: false,
            key_tag: None,
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: Some(
                base64::engine::general_purpose::STANDARD
                    .encode(aipipe_core::tenant_router::encode_features(7, &f)),
            ),
        }
    }

    /// Router features are bounded: by age, and per tenant by count (the
    /// newest kept), one busy tenant never taking another's.
    #[tokio::test]
    async fn router_features_are_kept_for_a_while_and_a_bounded_number() {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-features-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(&dir.join("aipipe.db")).unwrap();
        for t in ["busy", "quiet"] {
            db.create_tenant(t.into(), t.into()).await.unwrap();
        }
        let now = 1_000_000;
        let mut records: Vec<UsageRecord> = (0..10)
            .map(|i| record("busy", &format!("b{i}"), now - 100 + i))
            .collect();
        records.push(record("quiet", "q-old", now - 5_000));
        records.push(record("quiet", "q-new", now - 10));
        db.write_penalties(move |t| {
            let refs: Vec<&UsageRecord> = records.iter().collect();
            Ok((t.add_request_features(&refs)?, 0))
        })
        .await
        .unwrap();
        let pruned = db.prune_request_features_to(now, 1_000, 4).await.unwrap();
        assert_eq!(pruned, 6 + 1);
        let kept: Vec<(String, String)> = db
            .read(|tx| {
                Ok(tx
                    .prepare("SELECT tenant, request_id FROM request_features ORDER BY tenant, request_id")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .await
            .unwrap();
        let want: Vec<(String, String)> = ["b6", "b7", "b8", "b9"]
            .iter()
            .map(|i| ("busy".to_owned(), (*i).to_owned()))
            .chain([("quiet".to_owned(), "q-new".to_owned())])
            .collect();
        assert_eq!(kept, want);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rating_teaches_the_tier_the_answer_needed() {
        use Tier::*;
        assert_eq!(rated_tier(true, None, Cheap), Some(Cheap));
        assert_eq!(rated_tier(false, None, Cheap), Some(Mid));
        assert_eq!(rated_tier(false, None, Mid), Some(Frontier));
        assert_eq!(rated_tier(false, None, Frontier), None);
        assert_eq!(rated_tier(false, Some(Frontier), Cheap), Some(Frontier));
        assert_eq!(rated_tier(true, Some(Cheap), Frontier), Some(Cheap));
    }
}
