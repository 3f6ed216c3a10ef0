//! A tenant's routing policy (control-plane/README.md, "Policy"): which
//! models and providers it may use, a pinned model, its own quality
//! figures (general and per task category), a cap on how far `auto` goes
//! up the tiers, aliases, and whether a named model may fail over to
//! another one.
//!
//! [`Policy`] is the wire form (the control plane validates it strictly and
//! ships it in the tenant's directory entry); [`Compiled`] is it resolved
//! against one table's model indices, once per table and entry, so a
//! request only looks things up. Compiling is lenient: a name the table
//! does not know (the catalog changed since) is left out, never an error
//! on the request path.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::classify::{CATEGORIES, Category, FRONTIER_FROM, MID_FROM, Tier};
use crate::table::{ModelIx, Table};

/// The most bytes of policy JSON a tenant may have.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierName {
    Cheap,
    Mid,
    Frontier,
}

impl TierName {
    fn tier(self) -> Tier {
        match self {
            TierName::Cheap => Tier::Cheap,
            TierName::Mid => Tier::Mid,
            TierName::Frontier => Tier::Frontier,
        }
    }
}

/// What an alias names: a model, or auto routing with its own cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Alias {
    Model(String),
    Auto { auto: AutoAlias },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAlias {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<TierName>,
}

/// The wire form. Its `Default` is the empty policy, `{}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Only these models (catalog ids); empty = every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_models: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_models: Vec<String>,
    /// Only these providers; empty = every provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_providers: Vec<String>,
    /// `auto` always tries this model first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// This tenant's quality figure of a model, in (0, 1].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quality: BTreeMap<String, f64>,
    /// This tenant's quality figure of a model for a task category
    /// (`classify::Category` names), in (0, 1] — what its own evals measured
    /// (control-plane/README.md, "Evals"). Wins over `quality` for requests
    /// the router puts in that category.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_quality: BTreeMap<String, BTreeMap<String, f64>>,
    /// `auto` never goes above this tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<TierName>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, Alias>,
    /// False: a named model fails over only to itself (retries), never to
    /// another model.
    #[serde(default = "crate::catalog::yes", skip_serializing_if = "is_true")]
    pub substitute_named_models: bool,
    /// How the answer cache treats this tenant's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// What the control plane may keep to learn this tenant's routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<LearningPolicy>,
}

/// What per-tenant routing may learn from (control-plane/README.md,
/// "Per-tenant routing").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningPolicy {
    /// Every routed request's usage record carries the router's features of
    /// it (hashed n-grams, never text), so `POST /v1/feedback` on it can
    /// teach this tenant's router.
    #[serde(default)]
    pub feedback: bool,
    /// Imported examples keep their request text (else only their
    /// features), so they can be read again by a new router model.
    #[serde(default)]
    pub store_prompts: bool,
}

impl Default for Policy {
    /// What `{}` parses to: no restriction, and named models may fail over
    /// to others (`substitute_named_models` is true unless said otherwise).
    fn default() -> Self {
        Self {
            allow_models: Vec::new(),
            deny_models: Vec::new(),
            allow_providers: Vec::new(),
            pin: None,
            quality: BTreeMap::new(),
            category_quality: BTreeMap::new(),
            max_tier: None,
            aliases: BTreeMap::new(),
            substitute_named_models: true,
            cache: None,
            learning: None,
        }
    }
}

/// A tenant's answer-cache settings (filter/README.md, "Cache").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// Also cache answers to requests that are not deterministic (a
    /// temperature above 0 and no seed): the same request then gets the same
    /// answer until it expires.
    #[serde(default)]
    pub nondeterministic: bool,
    /// How long this tenant's answers are kept (default: the filter's
    /// `cache.ttl_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What an alias resolves to in one table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Model(ModelIx),
    Auto { max_tier: Option<Tier> },
}

/// A policy resolved against one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// Per model index: whether the tenant may use it.
    allowed: Vec<bool>,
    pub pin: Option<ModelIx>,
    /// Per model index: the tenant's own quality figure.
    quality: Vec<Option<f64>>,
    /// Per model index and category (`Category::index`): the tenant's own
    /// figure for that task. Empty when the policy has none, so a policy
    /// without them costs nothing per model.
    category_quality: Vec<[Option<f64>; CATEGORIES.len()]>,
    pub max_tier: Option<Tier>,
    aliases: HashMap<String, Target>,
    pub substitute_named_models: bool,
    /// Usage records carry the router's features of the request.
    pub learn_from_feedback: bool,
    /// Cache answers to non-deterministic requests too.
    pub cache_nondeterministic: bool,
    /// This tenant's cache entry lifetime, when it has its own.
    pub cache_ttl_ms: Option<u64>,
}

impl Compiled {
    pub fn compile(p: &Policy, table: &Table) -> Self {
        let n = table.models.len();
        let ix = |id: &str| table.resolve_model(id);
        let allow: Vec<ModelIx> = p.allow_models.iter().filter_map(|m| ix(m)).collect();
        let deny: Vec<ModelIx> = p.deny_models.iter().filter_map(|m| ix(m)).collect();
        let allowed = table
            .models_ix()
            .map(|(i, m)| {
                (p.allow_models.is_empty() || allow.contains(&i))
                    && !deny.contains(&i)
                    && (p.allow_providers.is_empty() || p.allow_providers.contains(&m.provider))
            })
            .collect::<Vec<bool>>();
        let mut quality = vec![None; n];
        for (m, q) in &p.quality {
            if let Some(slot) = ix(m).and_then(|i| quality.get_mut(i.0)) {
                *slot = Some(*q);
            }
        }
        let mut category_quality = Vec::new();
        if !p.category_quality.is_empty() {
            category_quality = vec![[None; CATEGORIES.len()]; n];
            for (m, by_category) in &p.category_quality {
                let Some(row) = ix(m).and_then(|i| category_quality.get_mut(i.0)) else {
                    continue;
                };
                for (c, q) in by_category {
                    if let Some(slot) = Category::from_name(c).and_then(|c| row.get_mut(c.index()))
                    {
                        *slot = Some(*q);
                    }
                }
            }
        }
        let aliases = p
            .aliases
            .iter()
            .filter_map(|(name, a)| {
                let t = match a {
                    Alias::Model(m) => Target::Model(ix(m)?),
                    Alias::Auto { auto } => Target::Auto {
                        max_tier: auto.max_tier.map(TierName::tier),
                    },
                };
                Some((name.clone(), t))
            })
            .collect();
        Self {
            pin: p
                .pin
                .as_deref()
                .and_then(ix)
                .filter(|i| allowed.get(i.0) == Some(&true)),
            allowed,
            quality,
            category_quality,
            max_tier: p.max_tier.map(TierName::tier),
            aliases,
            substitute_named_models: p.substitute_named_models,
            learn_from_feedback: p.learning.as_ref().is_some_and(|l| l.feedback),
            cache_nondeterministic: p.cache.as_ref().is_some_and(|c| c.nondeterministic),
            cache_ttl_ms: p.cache.as_ref().and_then(|c| c.ttl_ms),
        }
    }

    pub fn allows(&self, m: ModelIx) -> bool {
        self.allowed.get(m.0).copied().unwrap_or(false)
    }

    pub fn quality(&self, m: ModelIx) -> Option<f64> {
        self.quality.get(m.0).copied().flatten()
    }

    /// The tenant's figure for a model on a request of `category`: its
    /// figure for that category, else its general one; None when it has
    /// neither (the table's figures apply).
    pub fn quality_for(&self, m: ModelIx, category: Option<Category>) -> Option<f64> {
        category
            .and_then(|c| {
                self.category_quality
                    .get(m.0)?
                    .get(c.index())
                    .copied()
                    .flatten()
            })
            .or_else(|| self.quality(m))
    }

    pub fn alias(&self, name: &str) -> Option<Target> {
        self.aliases.get(name).copied()
    }

    /// Alias names, sorted (for `GET /v1/models`).
    pub fn alias_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.aliases.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// Moves the policy's pinned model to the front of a ranking, when it is
/// in it (it can take the request).
pub fn pin_first(policy: Option<&Compiled>, ranked: &mut Vec<crate::select::Candidate>) {
    if let Some(pin) = policy.and_then(|p| p.pin)
        && let Some(at) = ranked.iter().position(|c| c.model == pin)
    {
        let c = ranked.remove(at);
        ranked.insert(0, c);
    }
}

/// The highest complexity `auto` may route with under a tier cap.
pub fn cap(complexity: f64, max_tier: Option<Tier>) -> f64 {
    match max_tier {
        Some(Tier::Cheap) => complexity.min(MID_FROM - 0.001),
        Some(Tier::Mid) => complexity.min(FRONTIER_FROM - 0.001),
        _ => complexity,
    }
}

/// The tighter of two caps.
pub fn tighter(a: Option<Tier>, b: Option<Tier>) -> Option<Tier> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Checks a policy against a catalog and providers strictly (the control
/// plane, before anything is written): every name must exist, every figure
/// be in range. The error names the field.
pub fn validate(p: &Policy, table: &Table) -> Result<(), String> {
    let known = |m: &str| table.resolve_model(m).is_some();
    for (field, list) in [
        ("allow_models", &p.allow_models),
        ("deny_models", &p.deny_models),
    ] {
        if let Some(m) = list.iter().find(|m| !known(m)) {
            return Err(format!("{field}: unknown model {m:?}"));
        }
    }
    if let Some(pr) = p
        .allow_providers
        .iter()
        .find(|pr| table.provider_by_id(pr).is_none())
    {
        return Err(format!("allow_providers: unknown provider {pr:?}"));
    }
    let c = Compiled::compile(p, table);
    if let Some(pin) = &p.pin {
        let Some(i) = table.resolve_model(pin) else {
            return Err(format!("pin: unknown model {pin:?}"));
        };
        if !c.allows(i) {
            return Err(format!("pin: {pin:?} is not allowed by this policy"));
        }
    }
    for (m, q) in &p.quality {
        if !known(m) {
            return Err(format!("quality: unknown model {m:?}"));
        }
        if !(q.is_finite() && *q > 0.0 && *q <= 1.0) {
            return Err(format!("quality.{m}: must be in (0, 1], got {q}"));
        }
    }
    for (m, by_category) in &p.category_quality {
        if !known(m) {
            return Err(format!("category_quality: unknown model {m:?}"));
        }
        for (c, q) in by_category {
            if Category::from_name(c).is_none() {
                return Err(format!(
                    "category_quality.{m}: unknown category {c:?} (one of {})",
                    CATEGORIES.map(Category::name).join(", ")
                ));
            }
            if !(q.is_finite() && *q > 0.0 && *q <= 1.0) {
                return Err(format!(
                    "category_quality.{m}.{c}: must be in (0, 1], got {q}"
                ));
            }
        }
    }
    if p.aliases.len() > 64 {
        return Err("aliases: at most 64".into());
    }
    if let Some(ttl) = p.cache.as_ref().and_then(|c| c.ttl_ms)
        && !(1..=crate::cache::MAX_TTL_MS).contains(&ttl)
    {
        return Err(format!(
            "cache.ttl_ms: must be in 1..={}, got {ttl}",
            crate::cache::MAX_TTL_MS
        ));
    }
    for (name, a) in &p.aliases {
        crate::validate::model_id(&format!("aliases.{name}"), name).map_err(|e| e.0)?;
        if name == "auto" || known(name) {
            return Err(format!(
                "aliases.{name}: must not be \"auto\" or a catalog model's name"
            ));
        }
        if let Alias::Model(m) = a {
            let Some(i) = table.resolve_model(m) else {
                return Err(format!("aliases.{name}: unknown model {m:?}"));
            };
            if !c.allows(i) {
                return Err(format!(
                    "aliases.{name}: {m:?} is not allowed by this policy"
                ));
            }
        }
    }
    Ok(())
}

/// Every model a policy names (a model it names cannot be deleted).
pub fn names(p: &Policy) -> Vec<&str> {
    let mut v: Vec<&str> = p
        .allow_models
        .iter()
        .chain(&p.deny_models)
        .chain(p.pin.iter())
        .chain(p.quality.keys())
        .chain(p.category_quality.keys())
        .map(String::as_str)
        .collect();
    v.extend(p.aliases.values().filter_map(|a| match a {
        Alias::Model(m) => Some(m.as_str()),
        Alias::Auto { .. } => None,
    }));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RoutingTable;

    fn table() -> Table {
        Table::compile(RoutingTable::default()).unwrap()
    }

    fn policy(json: &str) -> Policy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn allow_deny_providers_pin_and_aliases_resolve_against_the_table() {
        let t = table();
        let p = policy(
            r#"{"allow_providers": ["openai", "anthropic"], "deny_models": ["gpt-4o"],
                "pin": "claude-sonnet-5-5", "quality": {"gpt-4o-mini": 0.5}, "max_tier": "mid",
                "aliases": {"fast": "gpt-4o-mini", "cheap-auto": {"auto": {"max_tier": "cheap"}}},
                "substitute_named_models": false}"#,
        );
        validate(&p, &t).unwrap();
        let c = Compiled::compile(&p, &t);
        let ix = |m: &str| t.resolve_model(m).unwrap();
        assert!(c.allows(ix("gpt-4o-mini")));
        assert!(!c.allows(ix("gpt-4o")), "denied");
        assert!(!c.allows(ix("grok-4.3")), "provider not allowed");
        assert_eq!(c.pin, Some(ix("claude-sonnet-5-5")));
        assert_eq!(c.quality(ix("gpt-4o-mini")), Some(0.5));
        assert_eq!(c.alias("fast"), Some(Target::Model(ix("gpt-4o-mini"))));
        assert_eq!(
            c.alias("cheap-auto"),
            Some(Target::Auto {
                max_tier: Some(Tier::Cheap)
            })
        );
        assert!(!c.substitute_named_models);
        assert!(cap(0.9, Some(Tier::Cheap)) < MID_FROM);
        assert!(cap(0.9, Some(Tier::Mid)) < FRONTIER_FROM);
        assert_eq!(cap(0.9, None), 0.9);
        assert_eq!(
            tighter(Some(Tier::Mid), Some(Tier::Cheap)),
            Some(Tier::Cheap)
        );
    }

    /// The tenant's figure for the request's category wins over its general
    /// figure, which wins over nothing; a model or category the table no
    /// longer knows is left out when compiling, never an error.
    #[test]
    fn category_quality_compiles_per_model_and_category() {
        let t = table();
        let p = policy(
            r#"{"quality": {"gpt-4o": 0.4},
                "category_quality": {"gpt-4o": {"coding": 0.9, "chat": 0.2},
                                     "gpt-4o-mini": {"math_reasoning": 0.3}}}"#,
        );
        validate(&p, &t).unwrap();
        let c = Compiled::compile(&p, &t);
        let ix = |m: &str| t.resolve_model(m).unwrap();
        let (gpt4o, mini) = (ix("gpt-4o"), ix("gpt-4o-mini"));
        assert_eq!(c.quality_for(gpt4o, Some(Category::Coding)), Some(0.9));
        assert_eq!(c.quality_for(gpt4o, Some(Category::Chat)), Some(0.2));
        assert_eq!(c.quality_for(gpt4o, Some(Category::Translation)), Some(0.4));
        assert_eq!(c.quality_for(gpt4o, None), Some(0.4));
        assert_eq!(
            c.quality_for(mini, Some(Category::MathReasoning)),
            Some(0.3)
        );
        assert_eq!(c.quality_for(mini, Some(Category::Coding)), None);
        assert_eq!(c.quality_for(mini, None), None);
        assert!(
            names(&p).contains(&"gpt-4o-mini"),
            "named: cannot be deleted"
        );

        // Compiling is lenient (the catalog may have changed since).
        let stale =
            policy(r#"{"category_quality": {"gone": {"coding": 0.5}, "gpt-4o": {"poetry": 0.5}}}"#);
        let c = Compiled::compile(&stale, &t);
        assert_eq!(c.quality_for(gpt4o, Some(Category::Coding)), None);
        // Without per-category figures nothing is kept per model.
        assert!(
            Compiled::compile(&policy("{}"), &t)
                .category_quality
                .is_empty()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let t = table();
        for (json, says) in [
            (
                r#"{"allow_models": ["gpt-99"]}"#,
                "allow_models: unknown model",
            ),
            (r#"{"deny_models": ["x"]}"#, "deny_models"),
            (r#"{"allow_providers": ["nope"]}"#, "allow_providers"),
            (r#"{"pin": "gpt-99"}"#, "pin: unknown"),
            (
                r#"{"deny_models": ["gpt-4o"], "pin": "gpt-4o"}"#,
                "pin: \"gpt-4o\" is not allowed",
            ),
            (r#"{"quality": {"gpt-4o": 1.5}}"#, "quality.gpt-4o"),
            (r#"{"aliases": {"auto": "gpt-4o"}}"#, "aliases.auto"),
            (
                r#"{"aliases": {"gpt-4o": "gpt-4o-mini"}}"#,
                "aliases.gpt-4o",
            ),
            (
                r#"{"aliases": {"fast": "gpt-99"}}"#,
                "aliases.fast: unknown",
            ),
            (
                r#"{"category_quality": {"gpt-99": {"coding": 0.5}}}"#,
                "category_quality: unknown model \"gpt-99\"",
            ),
            (
                r#"{"category_quality": {"gpt-4o": {"poetry": 0.5}}}"#,
                "category_quality.gpt-4o: unknown category \"poetry\"",
            ),
            (
                r#"{"category_quality": {"gpt-4o": {"coding": 0}}}"#,
                "category_quality.gpt-4o.coding: must be in (0, 1]",
            ),
            (
                r#"{"category_quality": {"gpt-4o": {"coding": 1.01}}}"#,
                "category_quality.gpt-4o.coding: must be in (0, 1]",
            ),
            (r#"{"cache": {"ttl_ms": 0}}"#, "cache.ttl_ms"),
            (r#"{"cache": {"ttl_ms": 604800001}}"#, "cache.ttl_ms"),
        ] {
            let e = validate(&policy(json), &t).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
        assert!(serde_json::from_str::<Policy>(r#"{"nope": 1}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"max_tier": "huge"}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"cache": {"ttl": 5}}"#).is_err());
        let c = Compiled::compile(
            &policy(r#"{"cache": {"nondeterministic": true, "ttl_ms": 1000}}"#),
            &t,
        );
        assert!(c.cache_nondeterministic);
        assert_eq!(c.cache_ttl_ms, Some(1000));
        assert_eq!(
            Policy::default(),
            policy("{}"),
            "the default is the empty policy"
        );
        let none = Compiled::compile(&policy("{}"), &t);
        assert!(!none.cache_nondeterministic);
        assert_eq!(none.cache_ttl_ms, None);
    }
}
