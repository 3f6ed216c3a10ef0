//! The request path as plain functions: authenticate the virtual key, parse
//! the body, pick the model, and describe the upstream request. The wasm glue
//! only moves bytes between Envoy and these.

use serde::Serialize;

use crate::error::ApiError;
use crate::request::{BodyEdit, ChatRequest, ModelChoice};
use crate::score::Score;
use crate::select::{self, Candidate, Needs, NoCandidate};
use crate::table::{Capabilities, Table, Wire, hash_virtual_key};

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

/// The tenant a virtual key belongs to.
pub fn authenticate(table: &Table, key: Option<&str>) -> Result<usize, ApiError> {
    let key = key.ok_or(ApiError::MissingKey)?;
    let tenant = table
        .tenant_by_key_hash(&hash_virtual_key(key))
        .ok_or(ApiError::UnknownKey)?;
    if table.tenants.get(tenant).is_some_and(|t| t.disabled) {
        return Err(ApiError::TenantDisabled);
    }
    Ok(tenant)
}

/// The tenant a trusted front named (mesh mode): unknown → 401.
pub fn tenant_by_id(table: &Table, id: &str) -> Result<usize, ApiError> {
    let tenant = table
        .tenant_by_id(id.trim())
        .ok_or(ApiError::UnknownTenant)?;
    if table.tenants.get(tenant).is_some_and(|t| t.disabled) {
        return Err(ApiError::TenantDisabled);
    }
    Ok(tenant)
}

/// What the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
}

/// The upstream request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The client's body with one prefix edit (same wire both sides).
    Edit(BodyEdit),
    /// A new body (translated between wire formats).
    Whole(Vec<u8>),
}

impl Upstream {
    /// The upstream body in full.
    pub fn bytes(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Upstream::Edit(e) => e.apply(body),
            Upstream::Whole(b) => b.clone(),
        }
    }
}

/// Where and how one request goes.
#[derive(Debug)]
pub struct Routed<'t> {
    pub model: usize,
    pub provider: usize,
    /// The tenant's key for that provider.
    pub key: &'t str,
    /// Present when the model was chosen by complexity.
    pub score: Option<Score>,
    pub upstream: Upstream,
    pub stream: bool,
    /// The client asked for the usage chunk of its (OpenAI) stream.
    pub include_usage: bool,
    /// See `ChatRequest::deterministic`.
    pub deterministic: bool,
    /// The filter asked for the stream's usage chunk, which the client did
    /// not: it must be hidden from the client again.
    pub hide_usage: bool,
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
        },
    }
}

/// `max_tokens` for Anthropic, where it is required, when the client set none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Routes one OpenAI chat request body for an authenticated tenant.
pub fn route<'t>(table: &'t Table, tenant: usize, body: &[u8]) -> Result<Routed<'t>, ApiError> {
    route_request(table, tenant, Dialect::Chat, body, None)
}

/// A request as Chat Completions: the client's body, or for an Anthropic
/// client its translation (what scoring and OpenAI-format upstreams read).
pub fn as_chat(dialect: Dialect, body: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ApiError> {
    match dialect {
        Dialect::Chat => Ok(std::borrow::Cow::Borrowed(body)),
        Dialect::Messages => {
            #[derive(serde::Deserialize)]
            struct Named<'a> {
                #[serde(default, borrow)]
                model: Option<std::borrow::Cow<'a, str>>,
            }
            let name = serde_json::from_slice::<Named<'_>>(body)
                .ok()
                .and_then(|n| n.model)
                .unwrap_or(std::borrow::Cow::Borrowed("auto"));
            Ok(std::borrow::Cow::Owned(
                crate::anthropic::messages_request_to_chat(body, &name)?,
            ))
        }
    }
}

/// Routes one request in either dialect for an authenticated tenant;
/// `penalties` are this Envoy's own per model index (see `select::rank_with`).
pub fn route_request<'t>(
    table: &'t Table,
    tenant: usize,
    dialect: Dialect,
    body: &[u8],
    penalties: Option<&[f64]>,
) -> Result<Routed<'t>, ApiError> {
    let chat = as_chat(dialect, body)?;
    let req = ChatRequest::parse(&chat).map_err(|e| ApiError::BadRequest(e.0))?;
    let (model, score) = match &req.model {
        ModelChoice::Named(name) => {
            let model = table
                .resolve_model(name)
                .filter(|&m| table.models.get(m).is_some_and(|m| m.enabled))
                .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))?;
            (model, None)
        }
        ModelChoice::Auto => {
            let score = table.scorer.score(&req);
            let ranked = select::rank_with(
                table,
                tenant,
                &needs(&req, score.input_tokens),
                score.complexity,
                penalties,
            )
            .map_err(|e| no_candidate(table, tenant, e))?;
            let best = ranked
                .first()
                .map(|c: &Candidate| c.model)
                .ok_or(ApiError::NoTable)?;
            (best, Some(score))
        }
    };
    to_model(table, tenant, dialect, body, &req, &chat, model, score)
}

/// The upstream request for `model`: the chosen one, or a failover
/// candidate. `req` is the parse of `chat`, the request as Chat Completions.
#[allow(clippy::too_many_arguments)]
pub fn to_model<'t>(
    table: &'t Table,
    tenant: usize,
    dialect: Dialect,
    body: &[u8],
    req: &ChatRequest<'_>,
    chat: &[u8],
    model: usize,
    score: Option<Score>,
) -> Result<Routed<'t>, ApiError> {
    let m = table.models.get(model).ok_or(ApiError::NoTable)?;
    let provider = table
        .model_provider
        .get(model)
        .copied()
        .ok_or(ApiError::NoTable)?;
    let p = table.providers.get(provider).ok_or(ApiError::NoTable)?;
    let key = table
        .provider_key(tenant, provider)
        .ok_or_else(|| ApiError::NoProviderKey(format!(
            "The model `{}` needs a `{}` provider key and this tenant has none. Add one with POST /admin/tenants/{}/keys, or use model \"auto\".",
            m.id,
            m.provider,
            table.tenants.get(tenant).map_or("", |t| t.id.as_str())
        )))?;
    let name = m.upstream_name();
    let upstream = match (dialect, p.wire) {
        // Streams always carry their usage upstream, for exact accounting.
        (Dialect::Chat, Wire::Openai) => Upstream::Edit(req.upstream_edit(body, name, true)),
        (Dialect::Chat, Wire::Anthropic) => Upstream::Whole(crate::anthropic::chat_to_messages(
            body,
            name,
            DEFAULT_MAX_TOKENS.min(m.max_output_tokens.max(1)),
        )?),
        (Dialect::Messages, Wire::Openai) => {
            Upstream::Whole(req.upstream_edit(chat, name, true).apply(chat))
        }
        (Dialect::Messages, Wire::Anthropic) => Upstream::Whole(rename_model(body, name)?),
    };
    Ok(Routed {
        model,
        provider,
        key,
        score,
        upstream,
        stream: req.stream,
        include_usage: req.include_usage,
        deterministic: req.deterministic,
        hide_usage: dialect == Dialect::Chat
            && p.wire == Wire::Openai
            && req.needs_usage_forced()
            && !p.always_streams_usage,
    })
}

/// The next candidates after a failure, best first: the models ranked for
/// this request by complexity, without those already tried. Only computed
/// when a failover happens.
pub fn fallbacks(
    table: &Table,
    tenant: usize,
    req: &ChatRequest<'_>,
    tried: &[usize],
    penalties: Option<&[f64]>,
) -> Vec<usize> {
    let score = table.scorer.score(req);
    select::rank_with(
        table,
        tenant,
        &needs(req, score.input_tokens),
        score.complexity,
        penalties,
    )
    .unwrap_or_default()
    .into_iter()
    .map(|c| c.model)
    .filter(|m| !tried.contains(m))
    .collect()
}

/// An Anthropic request body naming `model` (Anthropic to Anthropic).
fn rename_model(body: &[u8], model: &str) -> Result<Vec<u8>, ApiError> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not a JSON object: {e}")))?;
    v.insert("model".into(), model.into());
    serde_json::to_vec(&v).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn no_candidate(table: &Table, tenant: usize, e: NoCandidate) -> ApiError {
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
                table.tenants.get(tenant).map_or("", |t| t.id.as_str())
            ))
        }
        NoCandidate::ContextTooLong { needed, largest } => {
            ApiError::ContextTooLong { needed, largest }
        }
        NoCandidate::Unsupported(what) => ApiError::Unsupported(format!(
            "No model this tenant has a key for supports {} as used by this request. Add a key for a provider whose models do, or remove them from the request.",
            what.join(" and ")
        )),
    }
}

/// Everything behind one routing decision, for `POST /admin/route/explain`
/// and the routing report: the score, each signal, the matched words and every
/// candidate with its adjusted cost.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub score: Score,
    pub matched: Vec<(String, f64)>,
    pub candidates: Vec<ExplainedCandidate>,
    pub choice: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ExplainedCandidate {
    pub model: String,
    pub provider: String,
    pub raw_cost_usd: f64,
    pub adjusted_cost: f64,
}

pub fn explain(table: &Table, tenant: usize, body: &[u8]) -> Result<Explanation, ApiError> {
    let req = ChatRequest::parse(body).map_err(|e| ApiError::BadRequest(e.0))?;
    let score = table.scorer.score(&req);
    let ranked = select::rank(
        table,
        tenant,
        &needs(&req, score.input_tokens),
        score.complexity,
    )
    .unwrap_or_default();
    let candidates: Vec<ExplainedCandidate> = ranked
        .iter()
        .filter_map(|c| {
            let m = table.models.get(c.model)?;
            Some(ExplainedCandidate {
                model: m.id.clone(),
                provider: m.provider.clone(),
                raw_cost_usd: c.raw_cost,
                adjusted_cost: c.adjusted_cost,
            })
        })
        .collect();
    Ok(Explanation {
        score,
        matched: table.scorer.matches(&req),
        choice: candidates.first().map(|c| c.model.clone()),
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{RoutingTable, Tenant, hex_hash};

    fn table() -> Table {
        Table::compile(RoutingTable {
            tenants: vec![
                Tenant {
                    id: "acme".into(),
                    disabled: false,
                    virtual_key_hashes: vec![hex_hash("vk-acme")],
                    provider_keys: [("openai", "sk-a"), ("anthropic", "ak-a")]
                        .map(|(p, k)| (p.to_owned(), k.to_owned()))
                        .into(),
                },
                Tenant {
                    id: "off".into(),
                    disabled: true,
                    virtual_key_hashes: vec![hex_hash("vk-off")],
                    provider_keys: Default::default(),
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
        assert_eq!(authenticate(&t, Some("vk-acme")), Ok(0));
        assert_eq!(authenticate(&t, Some("vk-nope")), Err(ApiError::UnknownKey));
        assert_eq!(authenticate(&t, None), Err(ApiError::MissingKey));
        assert_eq!(
            authenticate(&t, Some("vk-off")),
            Err(ApiError::TenantDisabled)
        );
    }

    #[test]
    fn auto_explicit_and_unknown_models() {
        let t = table();
        let hi = br#"{"model":"auto","messages":[{"role":"user","content":"hi there, thanks!"}]}"#;
        let r = route(&t, 0, hi).unwrap();
        assert_eq!(t.models[r.model].id, "gpt-4o-mini");
        assert_eq!(r.key, "sk-a");
        assert!(r.score.is_some());

        let named = br#"{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let r = route(&t, 0, named).unwrap();
        assert_eq!(t.models[r.model].id, "claude-sonnet-4-5");
        assert_eq!(r.key, "ak-a");
        assert!(r.stream && r.score.is_none());

        let unknown = br#"{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            route(&t, 0, unknown).unwrap_err(),
            ApiError::ModelNotFound("gpt-99".into())
        );

        let no_key = br#"{"model":"grok-3-mini","messages":[{"role":"user","content":"hi"}]}"#;
        let e = route(&t, 0, no_key).unwrap_err();
        assert!(
            matches!(&e, ApiError::NoProviderKey(m) if m.contains("`xai` provider key")),
            "{e:?}"
        );
    }

    #[test]
    fn a_forced_usage_chunk_is_hidden_except_where_the_provider_always_sends_one() {
        let t = table();
        let stream =
            br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(route(&t, 0, stream).unwrap().hide_usage);
        let asked = br#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(!route(&t, 0, asked).unwrap().hide_usage);
        let openrouter = t.provider_by_id("openrouter").unwrap();
        assert!(t.providers[openrouter].always_streams_usage);
    }

    #[test]
    fn explain_lists_candidates_best_first() {
        let t = table();
        let body = br#"{"messages":[{"role":"user","content":"Prove by induction that 2^n > n for all n."}]}"#;
        let e = explain(&t, 0, body).unwrap();
        assert_eq!(e.choice.as_deref(), Some(e.candidates[0].model.as_str()));
        assert!(
            e.candidates
                .windows(2)
                .all(|w| w[0].adjusted_cost <= w[1].adjusted_cost)
        );
        assert!(e.matched.iter().any(|(p, _)| p == "prove"));
    }
}

/// `GET /v1/models` in OpenAI's list format: `auto`, then every enabled model
/// the tenant has a provider key for, by catalog id.
pub fn models_list(table: &Table, tenant: usize) -> String {
    let mut data = vec![serde_json::json!({
        "id": "auto", "object": "model", "created": 0, "owned_by": "aipipe",
    })];
    for (i, m) in table.models.iter().enumerate() {
        let keyed = table
            .model_provider
            .get(i)
            .is_some_and(|&p| table.provider_key(tenant, p).is_some());
        if m.enabled && keyed {
            data.push(serde_json::json!({
                "id": m.id, "object": "model", "created": 0, "owned_by": m.provider,
            }));
        }
    }
    serde_json::json!({"object": "list", "data": data}).to_string()
}

#[cfg(test)]
mod models_tests {
    use super::*;
    use crate::table::{RoutingTable, Tenant, hex_hash};

    #[test]
    fn the_list_holds_auto_and_only_reachable_enabled_models() {
        let t = Table::compile(RoutingTable {
            tenants: vec![Tenant {
                id: "a".into(),
                disabled: false,
                virtual_key_hashes: vec![hex_hash("k")],
                provider_keys: [("anthropic".to_owned(), "x".to_owned())].into(),
            }],
            ..RoutingTable::default()
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&models_list(&t, 0)).unwrap();
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["auto", "claude-sonnet-4-5", "claude-opus-4-5"]);
        assert_eq!(v["object"], "list");
    }
}
