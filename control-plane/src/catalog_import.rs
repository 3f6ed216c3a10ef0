//! `aipipe-control-plane catalog import FILE`: keeps the catalog's prices and
//! context windows current from a well-kept public price list — LiteLLM's
//! `model_prices_and_context_window.json` (MIT) — without touching quality
//! figures and without adding models (a model needs a quality and its
//! source before it may be routed to).
//!
//! A catalog model takes the list's entry named `provider/name` or `name`
//! (its upstream name, then its id) whose `litellm_provider` is the model's
//! provider and whose `mode` is chat (or unset); dated snapshots and other
//! providers' copies are not guessed at. Only positive prices and sizes are
//! read; a long-context tier (`…_above_{N}k_tokens`) becomes the model's
//! `long_context`. The whole updated catalog is validated as the admin API validates
//! one model (the filter's own table compile) before anything is written,
//! and each changed model is one change of the change log, so every Envoy
//! gets the new prices as with `PUT /admin/models/{id}`.

use std::fmt::Write as _;
use std::path::Path;

use aipipe_core::catalog::LongContext;
use aipipe_core::table::Model;
use serde_json::Value;

use crate::admin::catalog::check_catalog;
use crate::config::Database;
use crate::db::Db;

/// One field a price list changed.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: Option<f64>,
    pub to: f64,
}

/// What a price list does to a catalog.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Models whose fields change, updated, with what changed.
    pub updated: Vec<(Model, Vec<FieldChange>)>,
    /// Models the list has, already current.
    pub unchanged: Vec<String>,
    /// Models the list does not have (left as they are).
    pub missing: Vec<String>,
}

/// `$ per token` → `$ per million tokens`, without float dust
/// (0.15000000000000002).
fn per_mtok(per_token: f64) -> f64 {
    (per_token * 1e6 * 1e6).round() / 1e6
}

/// A positive, finite number at `key` of `entry`.
fn positive(entry: &Value, key: &str) -> Option<f64> {
    entry[key].as_f64().filter(|v| v.is_finite() && *v > 0.0)
}

/// The list's long-context tier of `e`, as the catalog's `long_context`: the
/// lowest threshold of its `input_cost_per_token_above_{N}k_tokens` keys (N
/// thousand tokens; the `_priority` tiers are not read), each rate as a
/// multiple of the list's own base rate (the output's 1 when the list has no
/// output rate for that threshold). None when the list has none, or when a
/// multiple falls outside what the catalog takes (1 to 100).
fn long_context_of(e: &Value) -> Option<LongContext> {
    let base_in = positive(e, "input_cost_per_token")?;
    let base_out = positive(e, "output_cost_per_token")?;
    let thousands = e
        .as_object()?
        .keys()
        .filter_map(|k| {
            k.strip_prefix("input_cost_per_token_above_")?
                .strip_suffix("k_tokens")?
                .parse::<u64>()
                .ok()
        })
        .min()?;
    let above = |key: &str| positive(e, &format!("{key}_above_{thousands}k_tokens"));
    let ratio = |x: f64, base: f64| (x / base * 1e6).round() / 1e6;
    let l = LongContext {
        above_tokens: thousands.checked_mul(1000)?,
        input_multiplier: ratio(above("input_cost_per_token")?, base_in),
        output_multiplier: above("output_cost_per_token").map_or(1.0, |o| ratio(o, base_out)),
    };
    let takes = |m: f64| (1.0..=aipipe_core::validate::MAX_LONG_CONTEXT_MULTIPLIER).contains(&m);
    (takes(l.input_multiplier) && takes(l.output_multiplier)).then_some(l)
}

/// The list's entry for `m`, if it names one for the model's provider.
fn entry_for<'v>(list: &'v Value, m: &Model) -> Option<&'v Value> {
    let names = [
        format!("{}/{}", m.provider, m.upstream_name()),
        format!("{}/{}", m.provider, m.id),
        m.upstream_name().to_owned(),
        m.id.clone(),
    ];
    names.iter().find_map(|name| {
        list.get(name).filter(|e| {
            e["litellm_provider"].as_str() == Some(m.provider.as_str())
                && e["mode"].as_str().is_none_or(|mode| mode == "chat")
        })
    })
}

/// What `list` (LiteLLM's format) changes in `models` (the catalog as
/// stored), each model compared at the prices in force at `at_ms` (its
/// passed scheduled changes folded in, `Model::folded_at`) and written so.
/// A model's changes still to come stay scheduled: the list says what a
/// model costs today, not what its provider announced for later. Pure:
/// nothing is read or written.
pub fn plan(models: &[Model], list: &Value, at_ms: u64) -> Result<Plan, String> {
    if !list.is_object() {
        return Err("the price list must be a JSON object of model entries".into());
    }
    let mut out = Plan::default();
    for stored in models {
        let m = &stored.clone().folded_at(at_ms);
        let Some(e) = entry_for(list, m) else {
            out.missing.push(m.id.clone());
            continue;
        };
        let mut next = m.clone();
        let mut changes = Vec::new();
        let mut set = |field: &'static str, slot: &mut f64, to: Option<f64>| {
            if let Some(to) = to.filter(|to| to != slot) {
                changes.push(FieldChange {
                    field,
                    from: Some(*slot),
                    to,
                });
                *slot = to;
            }
        };
        set(
            "input_per_mtok",
            &mut next.input_per_mtok,
            positive(e, "input_cost_per_token").map(per_mtok),
        );
        set(
            "output_per_mtok",
            &mut next.output_per_mtok,
            positive(e, "output_cost_per_token").map(per_mtok),
        );
        let mut window = next.context_window as f64;
        set(
            "context_window",
            &mut window,
            positive(e, "max_input_tokens").map(f64::trunc),
        );
        next.context_window = window as u64;
        let mut output = next.max_output_tokens as f64;
        set(
            "max_output_tokens",
            &mut output,
            positive(e, "max_output_tokens").map(f64::trunc),
        );
        next.max_output_tokens = output as u64;
        for (field, slot, key) in [
            (
                "cached_input_per_mtok",
                &mut next.cached_input_per_mtok,
                "cache_read_input_token_cost",
            ),
            (
                "cache_write_per_mtok",
                &mut next.cache_write_per_mtok,
                "cache_creation_input_token_cost",
            ),
        ] {
            if let Some(to) = positive(e, key)
                .map(per_mtok)
                .filter(|to| Some(*to) != *slot)
            {
                changes.push(FieldChange {
                    field,
                    from: *slot,
                    to,
                });
                *slot = Some(to);
            }
        }
        if let Some(l) = long_context_of(e).filter(|l| Some(*l) != next.long_context) {
            let was = next.long_context;
            for (field, from, to) in [
                (
                    "long_context.above_tokens",
                    was.map(|w| w.above_tokens as f64),
                    l.above_tokens as f64,
                ),
                (
                    "long_context.input_multiplier",
                    was.map(|w| w.input_multiplier),
                    l.input_multiplier,
                ),
                (
                    "long_context.output_multiplier",
                    was.map(|w| w.output_multiplier),
                    l.output_multiplier,
                ),
            ] {
                if from != Some(to) {
                    changes.push(FieldChange { field, from, to });
                }
            }
            next.long_context = Some(l);
        }
        if changes.is_empty() {
            out.unchanged.push(m.id.clone());
        } else {
            out.updated.push((next, changes));
        }
    }
    Ok(out)
}

/// The plan as the operator reads it.
pub fn report(plan: &Plan, written: bool) -> String {
    let mut out = String::new();
    for (m, changes) in &plan.updated {
        let _ = write!(out, "{} ({}):", m.id, m.provider);
        for c in changes {
            let from = c.from.map_or("unset".to_owned(), |v| v.to_string());
            let _ = write!(out, " {} {from} -> {}", c.field, c.to);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} updated{}, {} already current, {} not in the list (left as they are){}{}",
        plan.updated.len(),
        if written {
            ""
        } else {
            " (dry run: nothing written)"
        },
        plan.unchanged.len(),
        plan.missing.len(),
        if plan.missing.is_empty() { "" } else { ": " },
        plan.missing.join(", ")
    );
    out
}

/// Reads `file`, plans against the catalog in `database` (SQLite or
/// PostgreSQL), checks the result compiles, and (unless `dry_run`) writes
/// each changed model. Returns the report.
pub async fn run(database: &Database, file: &Path, dry_run: bool) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let list: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let db = match database {
        Database::Sqlite(db_path) => {
            if !db_path.exists() {
                return Err(format!(
                    "{}: no database there (start the control plane once, or pass --db)",
                    db_path.display()
                ));
            }
            Db::open(db_path)
        }
        Database::Postgres(url) => Db::open_postgres(url, crate::penalty::DEFAULT_DECAY_MS).await,
    }
    .map_err(|e| format!("{database}: {e}"))?;
    let models = db.models().await.map_err(|e| e.to_string())?;
    let plan = plan(&models, &list, crate::db::now_ms())?;
    // The whole catalog as it will be, checked before the first write.
    let mut after = models.clone();
    for (m, _) in &plan.updated {
        if let Some(slot) = after.iter_mut().find(|x| x.id == m.id) {
            *slot = m.clone();
        }
    }
    check_catalog(after).map_err(|e| format!("the updated catalog is refused: {e}"))?;
    if !dry_run {
        for (m, _) in &plan.updated {
            db.put_model(m.clone(), check_catalog)
                .await
                .map_err(|e| format!("{}: {e}", m.id))?;
        }
    }
    Ok(report(&plan, !dry_run))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture() -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model_prices_and_context_window.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn catalog() -> Vec<Model> {
        aipipe_core::catalog::default_models()
    }

    #[test]
    fn known_models_take_the_lists_prices_and_windows_and_keep_their_quality() {
        let before = catalog();
        let p = plan(&before, &fixture(), crate::db::now_ms()).unwrap();
        let updated = |id: &str| {
            p.updated
                .iter()
                .find(|(m, _)| m.id == id)
                .map(|(m, _)| m.clone())
                .unwrap()
        };
        let mini = updated("gpt-4o-mini");
        assert_eq!((mini.input_per_mtok, mini.output_per_mtok), (0.2, 0.8));
        assert_eq!(mini.context_window, 200_000);
        assert_eq!(mini.cached_input_per_mtok, Some(0.1));
        let old = before.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
        assert_eq!(mini.quality, old.quality, "quality is never imported");
        // Named with the provider's prefix.
        let flash = updated("gemini-3.5-flash-lite");
        assert_eq!(flash.input_per_mtok, 0.35);
        assert_eq!(flash.max_output_tokens, 70_000);
    }

    /// A long-context tier in the list becomes the model's `long_context`,
    /// as multiples of the list's base rates at its lowest threshold (the
    /// `_priority` tiers are not read); a tier the catalog already has is
    /// current; one whose multiple the catalog would refuse is skipped.
    #[test]
    fn a_long_context_tier_is_imported_as_multipliers() {
        let list = serde_json::json!({
            "claude-opus-4-5": {"litellm_provider": "anthropic", "mode": "chat",
                "input_cost_per_token": 0.000005, "output_cost_per_token": 0.000025,
                "cache_read_input_token_cost": 0.0000005, "cache_creation_input_token_cost": 0.00000625,
                "max_input_tokens": 200000, "max_output_tokens": 64000,
                "input_cost_per_token_above_200k_tokens": 0.00001,
                "output_cost_per_token_above_200k_tokens": 0.0000375,
                "input_cost_per_token_above_128k_tokens_priority": 0.00002},
            "gpt-6-luna": {"litellm_provider": "openai", "mode": "chat",
                "input_cost_per_token": 0.0000001, "output_cost_per_token": 0.0000005,
                "input_cost_per_token_above_272k_tokens": 0.0000002,
                "output_cost_per_token_above_272k_tokens": 0.00000075},
            "gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat",
                "input_cost_per_token": 0.00000015, "output_cost_per_token": 0.0000006,
                "input_cost_per_token_above_128k_tokens": 0.0000001}
        });
        let p = plan(&catalog(), &list, 0).unwrap();
        let (opus, changes) = p
            .updated
            .iter()
            .find(|(m, _)| m.id == "claude-opus-4-5")
            .unwrap();
        assert_eq!(
            opus.long_context,
            Some(LongContext {
                above_tokens: 200_000,
                input_multiplier: 2.0,
                output_multiplier: 1.5
            })
        );
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(
            report(&p, false).contains(
                "claude-opus-4-5 (anthropic): long_context.above_tokens unset -> 200000 long_context.input_multiplier unset -> 2 long_context.output_multiplier unset -> 1.5"
            ),
            "{}",
            report(&p, false)
        );
        assert!(p.unchanged.iter().any(|m| m == "gpt-6-luna"), "{p:?}");
        assert!(
            p.unchanged.iter().any(|m| m == "gpt-4o-mini"),
            "a discount tier: {p:?}"
        );
    }

    /// Scheduled price changes survive an import: the list sets the
    /// prices in force now, a change still to come stays scheduled; a
    /// change whose instant passed is compared (and written) folded into
    /// the prices, so a list that shows it is already current.
    #[test]
    fn an_import_keeps_the_changes_still_to_come() {
        use aipipe_core::catalog::{PriceChange, Timestamp};
        let list = serde_json::json!({"gemini/gemini-3.8-flash": {
            "litellm_provider": "gemini", "mode": "chat",
            "input_cost_per_token": 0.0000008, "output_cost_per_token": 0.000004}});
        // A day before the default catalog's 2027-01-01 change: it is still
        // to come (the test reads no clock, so it does not expire).
        let before = 1_798_761_600_000 - 86_400_000;
        let p = plan(&catalog(), &list, before).unwrap();
        let (flash, changes) = &p.updated[0];
        assert_eq!((flash.input_per_mtok, flash.output_per_mtok), (0.8, 4.0));
        assert_eq!(changes.len(), 2, "{changes:?}");
        let default = catalog()
            .into_iter()
            .find(|m| m.id == "gemini-3.8-flash")
            .unwrap();
        assert_eq!(
            flash.price_changes, default.price_changes,
            "still scheduled"
        );
        assert_eq!(flash.price_changes[0].input_per_mtok, 1.5);

        // A change that came into force an hour ago, at the list's prices.
        let mut passed = catalog();
        for m in passed.iter_mut().filter(|m| m.id == "gemini-3.8-flash") {
            m.price_changes = vec![PriceChange {
                from: Timestamp(crate::db::now_ms() - 3_600_000),
                input_per_mtok: 0.8,
                output_per_mtok: 4.0,
                cached_input_per_mtok: None,
                cache_write_per_mtok: None,
            }];
            m.cached_input_per_mtok = None;
        }
        let p = plan(&passed, &list, crate::db::now_ms()).unwrap();
        assert!(p.updated.is_empty(), "{:?}", p.updated);
        assert_eq!(p.unchanged, ["gemini-3.8-flash"]);
    }

    #[test]
    fn only_the_models_own_provider_chat_entry_counts() {
        let p = plan(&catalog(), &fixture(), crate::db::now_ms()).unwrap();
        let ids: Vec<&str> = p.updated.iter().map(|(m, _)| m.id.as_str()).collect();
        // gpt-4o's only entry is an embedding; claude-haiku-4-5's is
        // Bedrock's copy; neither is taken.
        assert!(!ids.contains(&"gpt-4o"), "{ids:?}");
        assert!(!ids.contains(&"claude-haiku-4-5"), "{ids:?}");
        assert!(p.missing.iter().any(|m| m == "gpt-4o"), "{p:?}");
        // Present and equal: unchanged. Models the list has and the catalog
        // lacks are not added: a new one, or one the catalog retired
        // (claude-sonnet-4-5, which LiteLLM's list still carries).
        assert!(p.unchanged.iter().any(|m| m == "claude-opus-4-5"), "{p:?}");
        assert!(!ids.contains(&"claude-sonnet-4-5"));
        assert_eq!(
            p.updated.len() + p.unchanged.len() + p.missing.len(),
            catalog().len()
        );
        assert!(!ids.contains(&"some-new-model"));
    }

    #[test]
    fn bad_numbers_are_skipped_and_a_non_object_refused() {
        let list = serde_json::json!({
            "sample_spec": {"input_cost_per_token": "0.0", "litellm_provider": "openai"},
            "gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat",
                "input_cost_per_token": -1.0, "output_cost_per_token": 0.0,
                "max_input_tokens": null}
        });
        let p = plan(&catalog(), &list, crate::db::now_ms()).unwrap();
        assert!(p.updated.is_empty(), "{p:?}");
        assert!(p.unchanged.iter().any(|m| m == "gpt-4o-mini"));
        assert!(plan(&catalog(), &serde_json::json!([1, 2]), 0).is_err());
    }

    #[tokio::test]
    async fn an_import_writes_once_and_a_second_changes_nothing() {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-import-{}-{}",
            std::process::id(),
            crate::db::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db_path = dir.join("aipipe.db");
        let revision = {
            let db = Db::open(&db_path).unwrap();
            db.revision().await.unwrap()
        };
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model_prices_and_context_window.json");
        let database = Database::Sqlite(db_path.clone());
        let dry = run(&database, &file, true).await.unwrap();
        assert!(dry.contains("dry run"), "{dry}");
        let first = run(&database, &file, false).await.unwrap();
        assert!(
            first.contains("gpt-4o-mini (openai): input_per_mtok 0.15 -> 0.2"),
            "{first}"
        );
        let db = Db::open(&db_path).unwrap();
        let mini = db
            .models()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.id == "gpt-4o-mini")
            .unwrap();
        assert_eq!(mini.input_per_mtok, 0.2);
        assert!(db.revision().await.unwrap() > revision, "filters are told");
        let second = run(&database, &file, false).await.unwrap();
        assert!(second.starts_with("0 updated"), "{second}");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
