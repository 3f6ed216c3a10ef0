//! Who is asking and what they may reach: the virtual key's tenant, the
//! models list, and the explain API's view of one routing decision. Routing
//! a request body is `plan`.

use std::sync::Arc;

use serde::Serialize;

use crate::classify;
use crate::error::ApiError;
use crate::request::ChatRequest;
use crate::score::Score;
use crate::select::{self, Needs, NoCandidate};
use crate::table::{Account, Capabilities, KeyHash, Table, hash_virtual_key};

/// The virtual key from `Authorization: Bearer <key>` or `x-api-key`.
pub fn virtual_key<'h>(
    authorization: Option<&'h str>,
    x_api_key: Option<&'h str>,
) -> Option<&'h str> {
    let bearer = authorization.and_then(|a| {
        let (scheme, key) = a.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    bearer
        .or(x_api_key.map(str::trim))
        .filter(|k| !k.is_empty())
}

/// The tenant a virtual key belongs to, found by its hash with `lookup`
/// (the table's own tenants, then the tenant directory): unknown → 401,
/// disabled → 403.
pub fn authenticate(
    key: Option<&str>,
    lookup: impl FnOnce(&KeyHash) -> Option<Arc<Account>>,
) -> Result<Arc<Account>, ApiError> {
    let key = key.ok_or(ApiError::MissingKey)?;
    admit(lookup(&hash_virtual_key(key)).ok_or(ApiError::UnknownKey)?)
}

/// The tenant a trusted front named (mesh mode): unknown → 401.
pub fn tenant_by_id(
    id: &str,
    lookup: impl FnOnce(&str) -> Option<Arc<Account>>,
) -> Result<Arc<Account>, ApiError> {
    admit(lookup(id.trim()).ok_or(ApiError::UnknownTenant)?)
}

fn admit(account: Arc<Account>) -> Result<Arc<Account>, ApiError> {
    if account.disabled {
        return Err(ApiError::TenantDisabled);
    }
    Ok(account)
}

/// What a request needs from a model, read from its parse.
pub fn needs(req: &ChatRequest<'_>, input_tokens: u64) -> Needs {
    Needs {
        input_tokens,
        max_tokens: req.max_tokens,
        capabilities: Capabilities {
            tools: req.uses_tools(),
            vision: req.has_images(),
            json_schema: req.json_schema,
            ..Capabilities::default()
        },
        forced_tool: req.forces_tool,
        prefill: req.prefill,
        reasoning_with_tools: req.tool_count > 0 && req.effort == crate::request::Effort::Reasons,
        category: None,
    }
}

/// The client's error when no model can take a request.
pub(crate) fn no_candidate(table: &Table, tenant: &Account, e: NoCandidate) -> ApiError {
    match e {
        NoCandidate::NoKeys => {
            let mut providers: Vec<&str> = table
                .models
                .iter()
                .filter(|m| m.enabled)
                .map(|m| m.provider.as_str())
                .collect();
            providers.dedup();
            ApiError::NoProviderKey(format!(
                "This tenant has no provider key for any enabled model: add a key for one of {} with POST /admin/tenants/{}/keys.",
                providers.join(", "),
                tenant.id
            ))
        }
        NoCandidate::ContextTooLong { needed, largest } => {
            ApiError::ContextTooLong { needed, largest }
        }
        NoCandidate::NotAllowed => ApiError::ModelNotAllowed(String::new()),
        NoCandidate::Unsupported(what) => ApiError::Unsupported(format!(
            "No model this tenant has a key for supports {} as used by this request. Add a key for a provider whose models do, or remove them from the request.",
            what.join(" and ")
        )),
    }
}

/// Everything behind one routing decision, for `POST /admin/route/explain`
/// and the routing report: the score, each signal, the matched words, the
/// router model's prediction (when the table has a model) and every
/// candidate with its adjusted cost.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The complexity that ranked the candidates: `router.complexity` when
    /// a model scored, else `score.complexity`.
    pub complexity: f64,
    pub score: Score,
    pub matched: Vec<(String, f64)>,
    /// The router model's prediction; null when the heuristic routes alone.
    pub router: Option<classify::Explained>,
    pub candidates: Vec<ExplainedCandidate>,
    pub choice: Option<String>,
    /// What the tenant's policy did, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<ExplainedPolicy>,
}

/// A policy's effect on one decision.
#[derive(Debug, Serialize)]
pub struct ExplainedPolicy {
    /// Models the tenant has keys for that the policy leaves out.
    pub excluded: Vec<String>,
    /// The tier `auto` may not go above, and the complexity ranked with.
    pub max_tier: Option<&'static str>,
    pub ranked_at_complexity: f64,
    /// The model tried first whatever the ranking (when it could take the
    /// request).
    pub pin: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ExplainedCandidate {
    pub model: String,
    pub provider: String,
    pub raw_cost_usd: f64,
    pub adjusted_cost: f64,
    /// The quality it was ranked with (`select::quality`): the tenant
    /// policy's figure for it and the predicted task category, else the
    /// policy's general figure, else the model's figure for the category,
    /// else its general one.
    pub quality: f64,
    /// The model's penalty for everybody (provider trouble: 5xx, timeouts).
    pub penalty: f64,
    /// The penalty of this model with the tenant's own key for its
    /// provider (the key's 401/402/403/429); the worse of the two applies.
    pub key_penalty: f64,
    /// Why the request cannot be sent to this model (its provider's
    /// protocol has no form for it: `n` above 1 to Anthropic, …): routing
    /// passes it over (`Plan::next_attempt`). Null when it can.
    pub passed_over: Option<String>,
}

/// Features the explain API lists, strongest pull first.
const EXPLAINED_FEATURES: usize = 12;

pub fn explain(table: &Table, tenant: &Account, body: &[u8]) -> Result<Explanation, ApiError> {
    let req = ChatRequest::parse(body).map_err(|e| ApiError::BadRequest(e.0))?;
    let score = table.scorer.score(&req);
    let keyed: Option<Vec<f64>> = table.has_key_penalties().then(|| {
        table
            .models_ix()
            .map(|(i, _)| table.key_penalty(i, tenant))
            .collect()
    });
    let router = table.router.as_ref().map(|r| {
        let explained = r.explain(&req, &score, EXPLAINED_FEATURES);
        let corrected = tenant
            .router
            .as_deref()
            .filter(|a| a.model_version == r.model.version)
            .and_then(|a| {
                a.predict(
                    &r.model,
                    &crate::classify::features(&r.model.config, &req, &score),
                )
            });
        match corrected {
            Some(p) => explained.corrected(&p),
            None => explained,
        }
    });
    let policy = tenant.policy.as_deref();
    let max_tier = policy.and_then(|p| p.max_tier);
    let complexity = crate::policy::cap(
        router.as_ref().map_or(score.complexity, |r| r.complexity),
        max_tier,
    );
    let needs = select::Needs {
        category: router
            .as_ref()
            .and_then(|r| crate::classify::Category::from_name(r.category)),
        ..needs(&req, score.input_tokens)
    };
    let mut ranked =
        select::rank_with(table, tenant, &needs, complexity, keyed.as_deref()).unwrap_or_default();
    crate::policy::pin_first(policy, &mut ranked);
    let explained_policy = policy.map(|p| ExplainedPolicy {
        excluded: table
            .models_ix()
            .filter(|&(i, m)| {
                m.enabled
                    && !p.allows(i)
                    && table.provider_of(i).is_some_and(|pi| tenant.has_key(pi))
            })
            .map(|(_, m)| m.id.clone())
            .collect(),
        max_tier: p.max_tier.map(crate::classify::Tier::name),
        ranked_at_complexity: complexity,
        pin: p.pin.and_then(|m| table.model(m)).map(|m| m.id.clone()),
    });
    // Each candidate's body, as routing would write it (none when the
    // request would not be routed at all: a named model it cannot have, no
    // candidate).
    let mut plan = crate::plan::Plan::new(
        table,
        tenant,
        crate::protocol::Protocol::Chat,
        body.to_vec(),
        None,
        false,
    )
    .ok();
    let candidates: Vec<ExplainedCandidate> = ranked
        .iter()
        .filter_map(|c| {
            let m = table.model(c.model)?;
            Some(ExplainedCandidate {
                passed_over: plan
                    .as_mut()
                    .and_then(|p| p.attempt(table, tenant, c.model).err())
                    .map(|e| e.message()),
                model: m.id.clone(),
                provider: m.provider.clone(),
                raw_cost_usd: c.raw_cost,
                adjusted_cost: c.adjusted_cost,
                quality: select::quality(table, policy, c.model, needs.category),
                penalty: m.penalty,
                key_penalty: table.key_penalty(c.model, tenant),
            })
        })
        .collect();
    Ok(Explanation {
        complexity,
        score,
        router,
        matched: table.scorer.matches(&req),
        choice: candidates
            .iter()
            .find(|c| c.passed_over.is_none())
            .map(|c| c.model.clone()),
        candidates,
        policy: explained_policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{RoutingTable, Tenant};

    fn table() -> Table {
        Table::compile(RoutingTable {
            tenants: vec![
                Tenant::with_keys(
                    "acme",
                    "vk-acme",
                    &[("openai", "sk-a"), ("anthropic", "ak-a")],
                ),
                Tenant {
                    disabled: true,
                    ..Tenant::with_keys("off", "vk-off", &[])
                },
            ],
            ..RoutingTable::default()
        })
        .unwrap()
    }

    #[test]
    fn keys_are_read_from_either_header() {
        assert_eq!(virtual_key(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(virtual_key(Some("bearer  abc "), Some("x")), Some("abc"));
        assert_eq!(virtual_key(None, Some("xyz")), Some("xyz"));
        assert_eq!(virtual_key(Some("Basic abc"), None), None);
        assert_eq!(virtual_key(Some("Bearer "), None), None);
        let t = table();
        assert_eq!(
            authenticate(Some("vk-acme"), |h| t.account_by_key_hash(h)),
            Ok(t.accounts()[0].clone())
        );
        assert_eq!(
            authenticate(Some("vk-nope"), |h| t.account_by_key_hash(h)),
            Err(ApiError::UnknownKey)
        );
        assert_eq!(
            authenticate(None, |h| t.account_by_key_hash(h)),
            Err(ApiError::MissingKey)
        );
        assert_eq!(
            authenticate(Some("vk-off"), |h| t.account_by_key_hash(h)),
            Err(ApiError::TenantDisabled)
        );
    }

    /// A candidate the body cannot be sent to is listed with the reason,
    /// and the choice is the first that can take it.
    #[test]
    fn explain_says_which_candidates_routing_passes_over() {
        let t = table();
        let hard = br#"{"n":2,"messages":[{"role":"user","content":"Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation."}]}"#;
        let e = explain(&t, &t.accounts()[0], hard).unwrap();
        let first = &e.candidates[0];
        assert_eq!(first.provider, "anthropic");
        assert!(
            first
                .passed_over
                .as_deref()
                .is_some_and(|why| why.contains("`n` greater than 1")),
            "{:?}",
            first.passed_over
        );
        let taker = e
            .candidates
            .iter()
            .find(|c| c.passed_over.is_none())
            .unwrap();
        assert_eq!(taker.provider, "openai");
        assert_eq!(e.choice.as_deref(), Some(taker.model.as_str()));
        let one = br#"{"messages":[{"role":"user","content":"Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation."}]}"#;
        let e = explain(&t, &t.accounts()[0], one).unwrap();
        assert!(e.candidates.iter().all(|c| c.passed_over.is_none()));
        assert_eq!(e.choice.as_deref(), Some(e.candidates[0].model.as_str()));
    }

    #[test]
    fn explain_lists_candidates_best_first() {
        let t = table();
        let body = br#"{"messages":[{"role":"user","content":"Prove by induction that 2^n > n for all n."}]}"#;
        let e = explain(&t, &t.accounts()[0], body).unwrap();
        assert_eq!(e.choice.as_deref(), Some(e.candidates[0].model.as_str()));
        assert!(
            e.candidates
                .windows(2)
                .all(|w| w[0].adjusted_cost <= w[1].adjusted_cost)
        );
        assert!(e.matched.iter().any(|(p, _)| p == "prove"));
        assert!(e.router.is_none());
        assert_eq!(
            e.complexity, e.score.complexity,
            "no model: the heuristic routes"
        );
    }

    #[test]
    fn explain_shows_the_router_models_prediction_and_routes_by_it() {
        let raw = RoutingTable {
            router_model: Some(crate::classify::RouterModel::Builtin),
            ..RoutingTable::default()
        };
        let mut t = table();
        t.router = Table::compile(raw).unwrap().router;
        let body = br#"{"messages":[{"role":"user","content":"Is every even number above 2 a sum of two primes, and why has nobody shown it?"}]}"#;
        let e = explain(&t, &t.accounts()[0], body).unwrap();
        let r = e.router.as_ref().unwrap();
        assert_eq!(r.model, crate::classify::Source::Builtin);
        assert_eq!((r.tier, r.category), ("frontier", "math_reasoning"));
        assert_eq!(e.complexity, r.complexity);
        assert!(e.complexity >= 0.7 && e.score.complexity < 0.55, "{e:?}");
        assert!(e.choice.as_deref().is_some_and(|m| m.starts_with("claude")));
        assert!(r.top_features.len() <= EXPLAINED_FEATURES && !r.top_features.is_empty());
        let sum: f64 = r.tier_probabilities.values().sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
}

/// `GET /v1/models` in OpenAI's list format: `auto`, then every enabled model
/// the tenant has a provider key for, by catalog id.
pub fn models_list(table: &Table, tenant: &Account) -> String {
    let mut data = vec![serde_json::json!({
        "id": "auto", "object": "model", "created": 0, "owned_by": "aipipe",
    })];
    for (id, provider) in reachable_models(table, tenant) {
        data.push(serde_json::json!({
            "id": id, "object": "model", "created": 0, "owned_by": provider,
        }));
    }
    // The tenant's aliases, usable as `model` like any id.
    for alias in tenant.policy.iter().flat_map(|p| p.alias_names()) {
        data.push(serde_json::json!({
            "id": alias, "object": "model", "created": 0, "owned_by": "aipipe",
        }));
    }
    serde_json::json!({"object": "list", "data": data}).to_string()
}

/// Every enabled model the tenant has a provider key for, as (catalog id,
/// provider id), in catalog order.
pub fn reachable_models<'t>(table: &'t Table, tenant: &Account) -> Vec<(&'t str, &'t str)> {
    table
        .models_ix()
        .filter(|&(i, m)| {
            m.enabled
                && tenant.allows(i)
                && table
                    .provider_of(i)
                    .is_some_and(|p| tenant.provider_key(p).is_some())
        })
        .map(|(_, m)| (m.id.as_str(), m.provider.as_str()))
        .collect()
}

#[cfg(test)]
mod models_tests {
    use super::*;
    use crate::table::{RoutingTable, Tenant};

    #[test]
    fn the_list_holds_auto_and_only_reachable_enabled_models() {
        let t = Table::compile(RoutingTable {
            tenants: vec![Tenant::with_keys("a", "k", &[("anthropic", "x")])],
            ..RoutingTable::default()
        })
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&models_list(&t, &t.accounts()[0])).unwrap();
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "auto",
                "claude-opus-4-5",
                "claude-sonnet-5-5",
                "claude-opus-5-5"
            ]
        );
        assert_eq!(v["object"], "list");
    }
}
