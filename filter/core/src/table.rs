//! The routing table: everything a filter needs to route — providers, the model
//! catalog, tenants with their key hashes and provider keys, and the scoring
//! weights. The control plane pushes this same type (serde JSON, versioned); the
//! plugin configuration carries one as the bootstrap table.
//!
//! [`RoutingTable`] is the wire form. [`Table::compile`] validates it once and
//! builds every lookup the per-request path needs, so a request never scans a
//! list or re-parses anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog;
pub use crate::catalog::{AuthStyle, Capabilities, Model, PriceChange, Prices, Provider};
use crate::classify::{Router, RouterModel};
use crate::ratelimit::Limits;
use crate::request::ChatRequest;
use crate::score::{Score, Scorer, ScoringConfig};

/// Wire form of the routing table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTable {
    /// Monotonic version; filters re-compile only when it changes.
    #[serde(default)]
    pub version: u64,
    /// Provider endpoints. Omitted → the built-in seven (see `catalog`).
    #[serde(default = "catalog::default_providers")]
    pub providers: Vec<Provider>,
    /// Model catalog. Omitted → the built-in default catalog.
    #[serde(default = "catalog::default_models")]
    pub models: Vec<Model>,
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub scoring: ScoringConfig,
    #[serde(default)]
    pub selection: SelectionConfig,
    /// Bumped by the control plane when an operator resets penalties: a
    /// filter that sees a new epoch forgets the penalties it keeps locally.
    #[serde(default)]
    pub penalty_epoch: u64,
    /// Penalties of (model, provider key) pairs, aggregated by the control
    /// plane over every Envoy (filter/README.md, "Penalties"): a key's
    /// 401/402/403/429 slows that model for the tenants holding the key, in
    /// every Envoy. At most [`MAX_KEY_PENALTIES`], only non-zero ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_penalties: Vec<KeyPenalty>,
    /// The budget of every tenant without one of its own (control-plane/
    /// README.md, "Budgets"); a tenant's budget entry, once it spent, says
    /// the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_default: Option<BudgetDefault>,
    /// The trained router (filter/README.md, "Complexity score"): `"builtin"`
    /// or `{"blob": "<base64>"}`. Absent → the heuristic score routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_model: Option<RouterModel>,
}

/// A budget: a limit over a window of whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetDefault {
    pub limit_nusd: u64,
    pub days: u16,
}

/// The most key-scoped penalties one table carries.
pub const MAX_KEY_PENALTIES: usize = 1000;

/// One (model, key) pair's penalty as the table carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPenalty {
    /// Catalog model id.
    pub model: String,
    /// The key's tag (`Account::key_tag`).
    pub key_tag: String,
    pub penalty: f64,
}

impl Default for RoutingTable {
    fn default() -> Self {
        Self {
            version: 0,
            providers: catalog::default_providers(),
            models: catalog::default_models(),
            tenants: Vec::new(),
            scoring: ScoringConfig::default(),
            selection: SelectionConfig::default(),
            penalty_epoch: 0,
            key_penalties: Vec::new(),
            budget_default: None,
            router_model: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    #[serde(default)]
    pub disabled: bool,
    /// Whether the provider pass-through paths are open to it.
    #[serde(default = "catalog::yes", skip_serializing_if = "is_true")]
    pub pass_through: bool,
    /// Lower-case hex SHA-256 of each live virtual key.
    #[serde(default)]
    pub virtual_key_hashes: Vec<String>,
    /// Provider id → the tenant's own key for it.
    #[serde(default)]
    pub provider_keys: BTreeMap<String, String>,
    /// Its rate limits (`crate::ratelimit`).
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub limits: Limits,
    /// Its routing policy (`crate::policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::Policy>,
}

impl Tenant {
    /// An enabled tenant with pass-through open, one virtual key and these
    /// provider keys (provider, key), no limits and no policy: what tests,
    /// benches and the savings estimate build a table around.
    pub fn with_keys(id: &str, virtual_key: &str, provider_keys: &[(&str, &str)]) -> Self {
        Self {
            id: id.to_owned(),
            disabled: false,
            pass_through: true,
            virtual_key_hashes: vec![hex_hash(virtual_key)],
            provider_keys: provider_keys
                .iter()
                .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
                .collect(),
            limits: Limits::default(),
            policy: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionConfig {
    /// Output tokens expected when the request sets no `max_tokens`, and the cap
    /// on the expectation when it does (few answers use their whole budget).
    #[serde(default = "default_expected_output")]
    pub expected_output_tokens: u64,
    /// Exponent factor (filter/README.md, "Model selection"):
    /// `quality ^ (k * max(0, c - knee))`.
    #[serde(default = "default_quality_exponent")]
    pub quality_exponent: f64,
    #[serde(default = "default_knee")]
    pub complexity_knee: f64,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_expected_output() -> u64 {
    400
}
fn default_quality_exponent() -> f64 {
    6.0
}
fn default_knee() -> f64 {
    0.25
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self {
            expected_output_tokens: default_expected_output(),
            quality_exponent: default_quality_exponent(),
            complexity_knee: default_knee(),
        }
    }
}

/// A validation failure that names the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TableError {}

/// SHA-256 of a virtual key, the form tenants' keys are stored and shipped in.
pub type KeyHash = [u8; 32];

pub fn hash_virtual_key(key: &str) -> KeyHash {
    crate::sha::sha256(key.as_bytes())
}

/// Lower-case hex of a key hash (what `Tenant::virtual_key_hashes` holds).
pub fn hex_hash(key: &str) -> String {
    crate::sha::sha256_hex(key.as_bytes())
}

fn parse_hex_hash(s: &str) -> Option<KeyHash> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *out.get_mut(i)? = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Index of a model in one compiled [`Table`]'s `models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ModelIx(pub usize);

/// Index of a provider in one compiled [`Table`]'s `providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderIx(pub usize);

/// The compiled, validated table: the wire form plus every index the request
/// path uses. Built once per table version; cloned (to be repriced) only
/// when a scheduled price change comes into force ([`Table::priced_at`]).
#[derive(Debug, Clone)]
pub struct Table {
    pub version: u64,
    /// See [`RoutingTable::penalty_epoch`].
    pub penalty_epoch: u64,
    pub providers: Vec<Provider>,
    /// The catalog, each model's prices those in force at `priced_at_ms`
    /// (its scheduled changes still listed, passed ones included), and a
    /// model retired at `priced_at_ms` not `enabled` (filter/README.md,
    /// "Scheduled retirements").
    pub models: Vec<Model>,
    pub selection: SelectionConfig,
    pub scorer: Arc<Scorer>,
    /// See [`RoutingTable::budget_default`].
    pub budget_default: Option<BudgetDefault>,
    /// The router model, decoded once per table version.
    pub router: Option<Router>,
    /// Each model's own prices, as the wire form lists them (parallel to
    /// `models`): what is in force before its first scheduled change.
    listed_prices: Vec<Prices>,
    /// Each model's own `enabled`, as the wire form lists it (parallel to
    /// `models`): a retired model is disabled on top of it.
    listed_enabled: Vec<bool>,
    /// Each model's retirement instant as an HTTP-date, the `Sunset`
    /// header its answers carry before it (parallel to `models`; None for
    /// a model without one). Written once per table version.
    sunset: Vec<Option<String>>,
    /// The instant (ms) the models' prices are resolved at; 0 as compiled.
    priced_at_ms: u64,
    /// The first scheduled change after `priced_at_ms` (ms) of any model —
    /// a price change or a retirement; `u64::MAX` when none is left. A
    /// request at or after it needs the table repriced — one comparison per
    /// request ([`Table::price_change_due`]).
    next_price_change_ms: u64,
    /// Provider of each model (parallel to `models`).
    model_provider: Vec<ProviderIx>,
    model_by_id: HashMap<String, usize>,
    /// (provider id, upstream or catalog name) → model, for `provider/model`.
    /// `provider/name` (catalog or upstream name) → model.
    model_by_qualified_name: HashMap<String, usize>,
    provider_by_id: HashMap<String, usize>,
    /// Per model (parallel to `models`): the key-scoped penalties of its
    /// pairs, (key tag, penalty); empty for almost every model.
    key_penalties: Vec<Vec<(String, f64)>>,
    /// Whether any model has one.
    any_key_penalty: bool,
    /// Per model (parallel to `models`): its quality for each task
    /// category (`Category::index`), its general quality where it has no
    /// figure of that category.
    category_quality: Vec<[f64; crate::classify::CATEGORIES.len()]>,
    /// The bootstrap table's own tenants (a plugin configuration may carry
    /// some); published tables carry none — their tenants live in the
    /// directory (`directory`).
    tenant_by_key: HashMap<KeyHash, usize>,
    tenant_by_id: HashMap<String, usize>,
    accounts: Vec<Arc<Account>>,
}

/// One tenant as a request sees it, resolved against one table's providers:
/// its id, whether it is disabled, and per provider its key and the auth
/// header value the provider wants (`Bearer <key>` or the bare key), built
/// once. Only meaningful with the table it was resolved against.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: String,
    pub disabled: bool,
    /// Whether the provider pass-through paths are open to it.
    pub pass_through: bool,
    /// Its rate limits (`crate::ratelimit`).
    pub limits: Limits,
    /// Its routing policy, resolved against the table.
    pub policy: Option<Arc<crate::policy::Compiled>>,
    /// Its correction to the router model, learnt from its own examples.
    pub router: Option<Arc<crate::tenant_router::Adjustment>>,
    /// Per provider index: the key, if the tenant has one.
    keys: Vec<Option<String>>,
    /// Per provider index: the auth header's value.
    auth: Vec<Option<String>>,
    /// Per provider index: a tag of the key (the first 16 hex digits of its
    /// SHA-256) naming it in penalties: the same key, the same tag, whoever
    /// holds it; nothing about the key can be read back from it.
    tags: Vec<Option<String>>,
}

impl Account {
    /// The tenant's key for a provider, if it has one.
    pub fn provider_key(&self, provider: ProviderIx) -> Option<&str> {
        self.keys.get(provider.0)?.as_deref()
    }

    /// The value of the provider's auth header for this tenant.
    pub fn auth_value(&self, provider: ProviderIx) -> Option<&str> {
        self.auth.get(provider.0)?.as_deref()
    }

    /// Whether the tenant has a key for this provider.
    pub fn has_key(&self, provider: ProviderIx) -> bool {
        self.provider_key(provider).is_some()
    }

    /// The same account with these rate limits.
    pub fn with_limits(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    /// The same account under this policy.
    pub fn with_policy(self, policy: Option<Arc<crate::policy::Compiled>>) -> Self {
        Self { policy, ..self }
    }

    /// The same account with its own correction to the router model.
    pub fn with_router(self, router: Option<Arc<crate::tenant_router::Adjustment>>) -> Self {
        Self { router, ..self }
    }

    /// Whether its policy lets it use a model (no policy: every model).
    pub fn allows(&self, m: ModelIx) -> bool {
        self.policy.as_ref().is_none_or(|p| p.allows(m))
    }

    /// The tag of the tenant's key for a provider (see `tags`).
    pub fn key_tag(&self, provider: ProviderIx) -> Option<&str> {
        self.tags.get(provider.0)?.as_deref()
    }
}

/// A tenant's keys laid out by provider index, with their auth values.
fn resolve<'k>(
    providers: &[Provider],
    provider_by_id: &HashMap<String, usize>,
    id: String,
    disabled: bool,
    pass_through: bool,
    provider_keys: impl IntoIterator<Item = (&'k str, &'k str)>,
) -> Account {
    let mut keys = vec![None; providers.len()];
    for (provider, key) in provider_keys {
        if let Some(slot) = provider_by_id.get(provider).and_then(|&p| keys.get_mut(p))
            && !key.is_empty()
        {
            *slot = Some(key.to_owned());
        }
    }
    let auth = keys
        .iter()
        .zip(providers)
        .map(|(k, p)| k.as_ref().map(|k| p.auth.value(k)))
        .collect();
    let tags = keys
        .iter()
        .map(|k| {
            k.as_ref().map(|k| {
                crate::sha::sha256_hex(k.as_bytes())
                    .chars()
                    .take(16)
                    .collect()
            })
        })
        .collect();
    Account {
        id,
        disabled,
        pass_through,
        limits: Limits::default(),
        policy: None,
        router: None,
        keys,
        auth,
        tags,
    }
}

/// What routes one request ([`Table::routing_signal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub complexity: f64,
    pub category: Option<crate::classify::Category>,
    /// The router's features of the request
    /// ([`crate::tenant_router::encode_features`]), when its tenant's policy
    /// learns from feedback.
    pub features: Option<Vec<u8>>,
}

impl Table {
    pub fn compile(raw: RoutingTable) -> Result<Self, TableError> {
        let err = |s: String| Err(TableError(s));
        let mut provider_by_id = HashMap::new();
        for (i, p) in raw.providers.iter().enumerate() {
            for (field, value) in [
                ("id", &p.id),
                ("cluster", &p.cluster),
                ("authority", &p.authority),
            ] {
                if value.trim().is_empty() {
                    return err(format!("providers[{i}].{field}: must not be empty"));
                }
            }
            if !p.chat_path.starts_with('/') {
                return err(format!(
                    "providers[{i}].chat_path: must start with '/', got {:?}",
                    p.chat_path
                ));
            }
            if provider_by_id.insert(p.id.clone(), i).is_some() {
                return err(format!("providers[{i}].id: duplicate provider {:?}", p.id));
            }
        }

        let mut model_by_id = HashMap::new();
        let mut model_by_qualified_name = HashMap::new();
        let mut model_provider = Vec::with_capacity(raw.models.len());
        for (i, m) in raw.models.iter().enumerate() {
            let at = |field: &str| format!("models[{i}] ({}).{field}", m.id);
            // The id first: only a valid one is quoted in later messages.
            crate::validate::model_id(&format!("models[{i}].id"), &m.id)
                .and_then(|()| crate::validate::model(&format!("models[{i}] ({})", m.id), m))
                .map_err(|e| TableError(e.0))?;
            let Some(&p) = provider_by_id.get(&m.provider) else {
                return err(format!(
                    "{}: unknown provider {:?}",
                    at("provider"),
                    m.provider
                ));
            };
            if m.capabilities.responses_api
                && raw
                    .providers
                    .get(p)
                    .is_none_or(|p| p.responses_path().is_none())
            {
                return err(format!(
                    "{}: provider {:?} has no OpenAI Responses API (its wire must be \"openai\" and its chat_path end in /chat/completions)",
                    at("capabilities.responses_api"),
                    m.provider
                ));
            }
            if model_by_id.insert(m.id.clone(), i).is_some() {
                return err(format!("models[{i}].id: duplicate model {:?}", m.id));
            }
            model_by_qualified_name.insert(format!("{}/{}", m.provider, m.id), i);
            model_by_qualified_name.insert(format!("{}/{}", m.provider, m.upstream_name()), i);
            model_provider.push(ProviderIx(p));
        }

        let mut tenant_by_key = HashMap::new();
        let mut tenant_by_id = HashMap::new();
        let mut accounts = Vec::with_capacity(raw.tenants.len());
        for (i, t) in raw.tenants.iter().enumerate() {
            if t.id.trim().is_empty() {
                return err(format!("tenants[{i}].id: must not be empty"));
            }
            if tenant_by_id.insert(t.id.clone(), i).is_some() {
                return err(format!("tenants[{i}].id: duplicate tenant {:?}", t.id));
            }
            for (k, h) in t.virtual_key_hashes.iter().enumerate() {
                let Some(hash) = parse_hex_hash(h) else {
                    return err(format!(
                        "tenants[{i}] ({}).virtual_key_hashes[{k}]: must be 64 hex digits (SHA-256)",
                        t.id
                    ));
                };
                if tenant_by_key.insert(hash, i).is_some() {
                    return err(format!(
                        "tenants[{i}] ({}).virtual_key_hashes[{k}]: hash already used by another key",
                        t.id
                    ));
                }
            }
            if let Some(provider) = t
                .provider_keys
                .keys()
                .find(|p| !provider_by_id.contains_key(*p))
            {
                return err(format!(
                    "tenants[{i}] ({}).provider_keys: unknown provider {provider:?}",
                    t.id
                ));
            }
            accounts.push(Arc::new(Account {
                limits: t.limits,
                ..resolve(
                    &raw.providers,
                    &provider_by_id,
                    t.id.clone(),
                    t.disabled,
                    t.pass_through,
                    t.provider_keys
                        .iter()
                        .map(|(p, k)| (p.as_str(), k.as_str())),
                )
            }));
        }

        let s = &raw.selection;
        if !(s.quality_exponent.is_finite() && s.quality_exponent >= 0.0) {
            return err(format!(
                "selection.quality_exponent: must be >= 0, got {}",
                s.quality_exponent
            ));
        }
        if !(0.0..=1.0).contains(&s.complexity_knee) {
            return err(format!(
                "selection.complexity_knee: must be in [0, 1], got {}",
                s.complexity_knee
            ));
        }
        let scorer =
            Scorer::compile(&raw.scoring).map_err(|e| TableError(format!("scoring.{e}")))?;
        let router = raw
            .router_model
            .as_ref()
            .map(Router::compile)
            .transpose()
            .map_err(|e| TableError(format!("router_model: {e}")))?;

        if raw.key_penalties.len() > MAX_KEY_PENALTIES {
            return err(format!(
                "key_penalties: at most {MAX_KEY_PENALTIES}, got {}",
                raw.key_penalties.len()
            ));
        }
        let mut key_penalties: Vec<Vec<(String, f64)>> = vec![Vec::new(); raw.models.len()];
        for (i, kp) in raw.key_penalties.iter().enumerate() {
            let at = format!("key_penalties[{i}]");
            crate::validate::key_tag(&format!("{at}.key_tag"), Some(&kp.key_tag))
                .map_err(|e| TableError(e.0))?;
            if !(kp.penalty.is_finite()
                && (0.0..=crate::penalty::MAX_PENALTY).contains(&kp.penalty))
            {
                return err(format!(
                    "{at}.penalty: must be from 0 to {}, got {}",
                    crate::penalty::MAX_PENALTY,
                    kp.penalty
                ));
            }
            let Some(pairs) = model_by_id
                .get(&kp.model)
                .and_then(|&m| key_penalties.get_mut(m))
            else {
                return err(format!("{at}.model: unknown model {:?}", kp.model));
            };
            if pairs.iter().any(|(t, _)| *t == kp.key_tag) {
                return err(format!(
                    "{at}: duplicate pair ({}, {})",
                    kp.model, kp.key_tag
                ));
            }
            pairs.push((kp.key_tag.clone(), kp.penalty));
        }
        let any_key_penalty = key_penalties.iter().any(|p| !p.is_empty());
        if let Some(b) = raw.budget_default
            && !(1..=crate::directory::MAX_BUDGET_DAYS).contains(&b.days)
        {
            return err(format!(
                "budget_default.days: must be in 1..={}, got {}",
                crate::directory::MAX_BUDGET_DAYS,
                b.days
            ));
        }

        let category_quality = raw
            .models
            .iter()
            .map(|m| {
                crate::classify::CATEGORIES.map(|c| {
                    m.category_quality
                        .get(c.name())
                        .copied()
                        .unwrap_or(m.quality)
                })
            })
            .collect();
        let policies: Vec<Option<crate::policy::Policy>> =
            raw.tenants.iter().map(|t| t.policy.clone()).collect();
        let listed_prices = raw.models.iter().map(Model::listed_prices).collect();
        let listed_enabled = raw.models.iter().map(|m| m.enabled).collect();
        let sunset = raw
            .models
            .iter()
            .map(|m| m.retires_at.map(crate::timestamp::Timestamp::http_date))
            .collect();
        let mut table = Self {
            version: raw.version,
            penalty_epoch: raw.penalty_epoch,
            providers: raw.providers,
            models: raw.models,
            selection: raw.selection,
            scorer: Arc::new(scorer),
            listed_prices,
            listed_enabled,
            sunset,
            priced_at_ms: 0,
            next_price_change_ms: 0,
            budget_default: raw.budget_default,
            router,
            model_provider,
            model_by_id,
            model_by_qualified_name,
            provider_by_id,
            key_penalties,
            any_key_penalty,
            category_quality,
            tenant_by_key,
            tenant_by_id,
            accounts,
        };
        // Bootstrap tenants' policies resolve against the finished table.
        let compiled: Vec<Option<Arc<crate::policy::Compiled>>> = policies
            .iter()
            .map(|p| {
                p.as_ref()
                    .map(|p| Arc::new(crate::policy::Compiled::compile(p, &table)))
            })
            .collect();
        for (account, policy) in table.accounts.iter_mut().zip(compiled) {
            if policy.is_some() {
                *account = Arc::new(Account::clone(account).with_policy(policy));
            }
        }
        // The core reads no clock: compiled, a table is priced at the
        // epoch, so its first change is due at once and the first request
        // reprices it at the host's time ([`Table::price_change_due`]).
        table.reprice(0);
        Ok(table)
    }

    /// Whether a request that starts at `now_ms` must have the table
    /// repriced first: a scheduled price change came into force, or a
    /// model retired, since it was priced. One comparison, so the flow asks
    /// on every request.
    pub fn price_change_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_price_change_ms
    }

    /// Resolves every model's prices at `at_ms`: the scheduled change in
    /// force then (the latest not after it), else the model's own prices;
    /// whether it is retired or not in service yet then (either way it is
    /// not `enabled`, so no path routes to or lists it); and the next
    /// instant a change comes into force, a model retires or one enters
    /// service.
    pub fn reprice(&mut self, at_ms: u64) {
        let mut next = u64::MAX;
        for ((m, listed), &enabled) in self
            .models
            .iter_mut()
            .zip(&self.listed_prices)
            .zip(&self.listed_enabled)
        {
            let prices = m
                .change_in_force(at_ms)
                .map_or(*listed, crate::catalog::PriceChange::prices);
            m.set_prices(prices);
            if let Some(n) = m.next_change_after(at_ms) {
                next = next.min(n.ms());
            }
            // Its listed flag, then what its schedule says at `at_ms`.
            m.enabled = enabled;
            m.enabled = m.in_service_at(at_ms);
            for due in [m.retires_at, m.enabled_from].into_iter().flatten() {
                if due.ms() > at_ms {
                    next = next.min(due.ms());
                }
            }
        }
        self.priced_at_ms = at_ms;
        self.next_price_change_ms = next;
    }

    /// Why `model` is out of service at [`Table::priced_at_ms`], with the
    /// instant: retired, or not in service yet. None for a model in
    /// service (or one merely disabled, which carries no date).
    pub fn out_of_service(&self, model: ModelIx) -> Option<crate::error::OutOfService> {
        use crate::error::OutOfService;
        let m = self.models.get(model.0)?;
        let at = self.priced_at_ms;
        match (m.retires_at, m.enabled_from) {
            (Some(r), _) if m.retired_at(at) => Some(OutOfService::Retired(r)),
            (_, Some(f)) if m.pending_at(at) => Some(OutOfService::Until(f)),
            _ => None,
        }
    }

    /// The instant `model` retired, when it is retired at
    /// [`Table::priced_at_ms`]; None for a model in service.
    pub fn retired(&self, model: ModelIx) -> Option<crate::timestamp::Timestamp> {
        match self.out_of_service(model)? {
            crate::error::OutOfService::Retired(on) => Some(on),
            crate::error::OutOfService::Until(_) => None,
        }
    }

    /// The `Sunset` header value (an HTTP-date) for an answer from
    /// `model`: Some only for a model with a retirement instant that has
    /// not passed at [`Table::priced_at_ms`].
    pub fn sunset(&self, model: ModelIx) -> Option<&str> {
        if self.retired(model).is_some() {
            return None;
        }
        self.sunset.get(model.0)?.as_deref()
    }

    /// The instant (ms since the epoch) the models' prices are those of.
    pub fn priced_at_ms(&self) -> u64 {
        self.priced_at_ms
    }

    /// The first instant (ms) after [`Table::priced_at_ms`] at which a
    /// scheduled change comes into force; None when none is left.
    pub fn next_price_change_ms(&self) -> Option<u64> {
        (self.next_price_change_ms != u64::MAX).then_some(self.next_price_change_ms)
    }

    /// This table as priced at `at_ms`: itself when no change came into
    /// force since it was priced, else a repriced copy (the compiled
    /// scorer shared, the rest copied once per change).
    pub fn priced_at(&self, at_ms: u64) -> std::borrow::Cow<'_, Self> {
        if !self.price_change_due(at_ms) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut t = self.clone();
        t.reprice(at_ms);
        std::borrow::Cow::Owned(t)
    }

    /// The complexity that routes `req` (scored `score`): the router model's
    /// when this table has one, the heuristic score's otherwise.
    pub fn complexity(&self, req: &ChatRequest<'_>, score: &Score) -> f64 {
        self.routing_signal(req, score, None).complexity
    }

    /// The complexity that routes `req` and, when the router model
    /// predicted one, its task category. A tenant's own correction to the
    /// router model (`tenant`, when it has one fitted against this model)
    /// is applied; a tenant whose policy learns from feedback gets the
    /// features the router read, for the request's usage record.
    pub fn routing_signal(
        &self,
        req: &ChatRequest<'_>,
        score: &Score,
        tenant: Option<&Account>,
    ) -> Signal {
        let Some(r) = &self.router else {
            return Signal {
                complexity: score.complexity,
                category: None,
                features: None,
            };
        };
        let adjustment = tenant
            .and_then(|t| t.router.as_deref())
            .filter(|a| a.model_version == r.model.version);
        let keep = tenant
            .and_then(|t| t.policy.as_deref())
            .is_some_and(|p| p.learn_from_feedback);
        if adjustment.is_none() && !keep {
            let p = r.model.predict(req, score);
            return Signal {
                complexity: p.complexity,
                category: Some(p.category),
                features: None,
            };
        }
        let f = crate::classify::features(&r.model.config, req, score);
        let p = adjustment
            .and_then(|a| a.predict(&r.model, &f))
            .unwrap_or_else(|| r.model.predict_raw(&r.model.raw_logits(&f)));
        Signal {
            complexity: p.complexity,
            category: Some(p.category),
            features: keep.then(|| crate::tenant_router::encode_features(r.model.version, &f)),
        }
    }

    /// A model's quality for a task category (its general quality without
    /// one, or without a figure for it).
    pub fn quality(&self, model: ModelIx, category: Option<crate::classify::Category>) -> f64 {
        match category {
            Some(c) => self
                .category_quality
                .get(model.0)
                .and_then(|q| q.get(c.index()))
                .copied(),
            None => self.model(model).map(|m| m.quality),
        }
        .unwrap_or(1.0)
    }

    /// A tenant of the directory resolved against this table. Keys for a
    /// provider this table does not know are left out (the catalog may have
    /// changed since the entry was written).
    pub fn account<'k>(
        &self,
        id: String,
        disabled: bool,
        pass_through: bool,
        provider_keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Account {
        resolve(
            &self.providers,
            &self.provider_by_id,
            id,
            disabled,
            pass_through,
            provider_keys,
        )
    }

    /// A tenant of this table's own (bootstrap) tenants, by virtual-key hash.
    pub fn account_by_key_hash(&self, hash: &KeyHash) -> Option<Arc<Account>> {
        let i = self.tenant_by_key.get(hash)?;
        self.accounts.get(*i).cloned()
    }

    /// This table's own (bootstrap) tenants, in order.
    pub fn accounts(&self) -> &[Arc<Account>] {
        &self.accounts
    }

    /// A tenant of this table's own (bootstrap) tenants, by id.
    pub fn account_by_id(&self, id: &str) -> Option<Arc<Account>> {
        let i = self.tenant_by_id.get(id)?;
        self.accounts.get(*i).cloned()
    }

    pub fn provider_by_id(&self, id: &str) -> Option<ProviderIx> {
        self.provider_by_id.get(id).copied().map(ProviderIx)
    }

    pub fn model(&self, m: ModelIx) -> Option<&Model> {
        self.models.get(m.0)
    }

    pub fn provider(&self, p: ProviderIx) -> Option<&Provider> {
        self.providers.get(p.0)
    }

    /// The control plane's penalty of a model with the tenant's key for its
    /// provider (0 when the pair has none).
    pub fn key_penalty(&self, m: ModelIx, tenant: &Account) -> f64 {
        let Some(pairs) = self.key_penalties.get(m.0).filter(|p| !p.is_empty()) else {
            return 0.0;
        };
        let Some(tag) = self.provider_of(m).and_then(|p| tenant.key_tag(p)) else {
            return 0.0;
        };
        pairs
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(0.0, |&(_, p)| p)
    }

    /// Whether the table carries any key-scoped penalty.
    pub fn has_key_penalties(&self) -> bool {
        self.any_key_penalty
    }

    /// The provider that serves a model.
    pub fn provider_of(&self, m: ModelIx) -> Option<ProviderIx> {
        self.model_provider.get(m.0).copied()
    }

    /// Every model with its index, in catalog order.
    pub fn models_ix(&self) -> impl Iterator<Item = (ModelIx, &Model)> {
        self.models.iter().enumerate().map(|(i, m)| (ModelIx(i), m))
    }

    /// The catalog model a provider's answer names (pass-through requests):
    /// its id or upstream name, or a dated snapshot of one
    /// (`gpt-4o-mini-2024-07-18`: the name, a dash and a digit).
    pub fn model_for_answer(&self, provider: &str, name: &str) -> Option<&Model> {
        let ours = || self.models.iter().filter(|m| m.provider == provider);
        ours()
            .find(|m| m.upstream_name() == name || m.id == name)
            .or_else(|| {
                ours()
                    .filter(|m| {
                        name.strip_prefix(m.upstream_name())
                            .and_then(|rest| rest.strip_prefix('-'))
                            .is_some_and(|date| date.starts_with(|c: char| c.is_ascii_digit()))
                    })
                    .max_by_key(|m| m.upstream_name().len())
            })
    }

    /// Resolves a client-named model: a catalog id, or `provider/model` where
    /// `model` is the catalog id or the provider's own name for it.
    pub fn resolve_model(&self, name: &str) -> Option<ModelIx> {
        if let Some(&i) = self.model_by_id.get(name) {
            return Some(ModelIx(i));
        }
        self.model_by_qualified_name.get(name).copied().map(ModelIx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tenant() -> RoutingTable {
        RoutingTable {
            tenants: vec![Tenant::with_keys(
                "acme",
                "vk-acme",
                &[("openai", "sk-acme")],
            )],
            ..RoutingTable::default()
        }
    }

    #[test]
    fn answers_name_their_catalog_model_even_as_a_dated_snapshot() {
        let t = Table::compile(RoutingTable::default()).unwrap();
        let id = |p: &str, n: &str| t.model_for_answer(p, n).map(|m| m.id.as_str());
        assert_eq!(id("openai", "gpt-4o-mini"), Some("gpt-4o-mini"));
        assert_eq!(id("openai", "gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
        assert_eq!(id("openai", "gpt-4o-2024-11-20"), Some("gpt-4o"));
        assert_eq!(
            id("anthropic", "claude-opus-4-5-20251101"),
            Some("claude-opus-4-5")
        );
        // A retired model's snapshot names no catalog model.
        assert_eq!(id("anthropic", "claude-sonnet-4-5-20250929"), None);
        assert_eq!(
            id("openrouter", "meta-llama/llama-3.3-70b-instruct"),
            Some("llama-3.3-70b-instruct")
        );
        assert_eq!(id("openai", "gpt-4o-minimal"), None);
        assert_eq!(id("anthropic", "gpt-4o-mini"), None);
    }

    #[test]
    fn default_table_compiles_and_resolves_both_name_forms() {
        let t = Table::compile(with_tenant()).unwrap();
        let mini = t.resolve_model("gpt-4o-mini").unwrap();
        assert_eq!(t.resolve_model("openai/gpt-4o-mini"), Some(mini));
        assert_eq!(t.resolve_model("anthropic/gpt-4o-mini"), None);
        assert_eq!(t.resolve_model("gpt-99"), None);
        let tenant = t.account_by_key_hash(&hash_virtual_key("vk-acme")).unwrap();
        let openai = t.provider_by_id("openai").unwrap();
        assert_eq!(tenant.provider_key(openai), Some("sk-acme"));
        assert_eq!(tenant.auth_value(openai), Some("Bearer sk-acme"));
        assert_eq!(tenant.provider_key(t.provider_by_id("xai").unwrap()), None);
        assert_eq!(t.account_by_id("acme"), Some(tenant));
    }

    #[test]
    fn validation_names_the_field() {
        let mut raw = with_tenant();
        raw.models[1].quality = 1.5;
        let e = Table::compile(raw).unwrap_err().0;
        assert!(e.starts_with("models[1] ("), "{e}");
        assert!(e.contains(".quality: must be in (0, 1], got 1.5"), "{e}");

        let mut raw = with_tenant();
        raw.tenants[0].virtual_key_hashes = vec!["nothex".into()];
        let e = Table::compile(raw).unwrap_err().0;
        assert!(e.contains("tenants[0] (acme).virtual_key_hashes[0]"), "{e}");

        let mut raw = with_tenant();
        raw.models[0].provider = "nope".into();
        assert!(
            Table::compile(raw)
                .unwrap_err()
                .0
                .contains("unknown provider \"nope\"")
        );
    }

    #[test]
    fn key_penalties_name_the_tenants_holding_the_key_and_bad_ones_are_refused() {
        let tag = crate::sha::sha256_hex(b"sk-acme")[..16].to_owned();
        let pair = |model: &str, key_tag: &str, penalty: f64| KeyPenalty {
            model: model.into(),
            key_tag: key_tag.into(),
            penalty,
        };
        let mut raw = with_tenant();
        raw.key_penalties = vec![pair("gpt-4o-mini", &tag, 15.0)];
        let t = Table::compile(raw).unwrap();
        assert!(t.has_key_penalties());
        let acme = t.account_by_id("acme").unwrap();
        let mini = t.resolve_model("gpt-4o-mini").unwrap();
        assert_eq!(t.key_penalty(mini, &acme), 15.0);
        assert_eq!(
            t.key_penalty(t.resolve_model("gpt-4o").unwrap(), &acme),
            0.0
        );
        let other = t.account("b".into(), false, true, [("openai", "sk-b")]);
        assert_eq!(t.key_penalty(mini, &other), 0.0, "another key");

        for (bad, says) in [
            (
                pair("gpt-99", &tag, 1.0),
                "key_penalties[0].model: unknown model",
            ),
            (pair("gpt-4o-mini", "ABC", 1.0), "key_penalties[0].key_tag"),
            (
                pair("gpt-4o-mini", &tag, f64::NAN),
                "key_penalties[0].penalty",
            ),
            (pair("gpt-4o-mini", &tag, -1.0), "key_penalties[0].penalty"),
        ] {
            let mut raw = with_tenant();
            raw.key_penalties = vec![bad];
            let e = Table::compile(raw).unwrap_err().0;
            assert!(e.contains(says), "{e}");
        }
        let mut raw = with_tenant();
        raw.key_penalties = vec![pair("gpt-4o-mini", &tag, 1.0); 2];
        assert!(
            Table::compile(raw)
                .unwrap_err()
                .0
                .contains("duplicate pair")
        );
        let mut raw = with_tenant();
        raw.key_penalties = vec![pair("gpt-4o-mini", &tag, 1.0); MAX_KEY_PENALTIES + 1];
        assert!(Table::compile(raw).unwrap_err().0.contains("at most"));
    }

    #[test]
    fn a_router_model_is_decoded_at_compile_and_a_bad_one_refused() {
        use crate::classify::{BUNDLED, RouterModel, Source};
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let compile = |m: RouterModel| {
            Table::compile(RoutingTable {
                router_model: Some(m),
                ..RoutingTable::default()
            })
        };
        let builtin = compile(RouterModel::Builtin).unwrap();
        assert_eq!(
            builtin.router.as_ref().map(|r| r.source),
            Some(Source::Builtin)
        );
        let global = compile(RouterModel::Blob(b64(BUNDLED))).unwrap();
        let router = global.router.as_ref().unwrap();
        assert_eq!(router.source, Source::Global);
        assert_eq!(
            Some(&router.model),
            builtin.router.as_ref().map(|r| &r.model)
        );
        assert!(
            Table::compile(RoutingTable::default())
                .unwrap()
                .router
                .is_none()
        );

        let mut corrupt = BUNDLED.to_vec();
        corrupt[100] ^= 1;
        for (blob, why) in [
            (
                "not base64!".to_owned(),
                "router_model: blob is not standard base64",
            ),
            (
                b64(&corrupt),
                "router_model: the model blob's checksum does not match",
            ),
            (
                b64(&BUNDLED[..1000]),
                "router_model: the model blob's checksum does not match",
            ),
            (
                b64(b"{}"),
                "router_model: the model blob has the wrong length",
            ),
            (
                b64(&[b'x'; 64]),
                "router_model: not a router model (bad magic)",
            ),
        ] {
            assert_eq!(compile(RouterModel::Blob(blob)).unwrap_err().0, why);
        }
    }

    #[test]
    fn the_router_model_wire_form_is_builtin_or_a_blob() {
        use crate::classify::RouterModel;
        let parse = |s: &str| serde_json::from_str::<RoutingTable>(s).map(|t| t.router_model);
        assert_eq!(parse("{}").unwrap(), None);
        assert_eq!(
            parse(r#"{"router_model": "builtin"}"#).unwrap(),
            Some(RouterModel::Builtin)
        );
        assert_eq!(
            parse(r#"{"router_model": {"blob": "QUJD"}}"#).unwrap(),
            Some(RouterModel::Blob("QUJD".into()))
        );
        assert!(parse(r#"{"router_model": "mine"}"#).is_err());
        let json = serde_json::to_string(&RoutingTable::default()).unwrap();
        assert!(!json.contains("router_model"), "absent stays absent");
    }

    /// A table carries each model's schedule and is priced at an instant:
    /// compiled, at the epoch; repriced when a change is due, the change
    /// in force (the latest not after the instant) sets every price, and the
    /// next instant is the first change still to come. Costs are exact
    /// nano-dollars at the prices in force.
    #[test]
    fn a_table_is_priced_at_an_instant_by_its_schedules() {
        use crate::catalog::{PriceChange, Timestamp};
        use crate::protocol::Tokens;
        const T: u64 = 1_798_761_600_000;
        let change = |from: u64, input: f64, output: f64| PriceChange {
            from: Timestamp(from),
            input_per_mtok: input,
            output_per_mtok: output,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        };
        let mut raw = with_tenant();
        for m in raw.models.iter_mut() {
            m.price_changes.clear();
            (m.retires_at, m.enabled_from) = (None, None);
        }
        raw.models[0].price_changes = vec![change(T, 0.30, 1.20), change(T + 1000, 0.5, 2.0)];
        let mini_id = raw.models[0].id.clone();
        let mut t = Table::compile(raw).unwrap();
        let mini = t.resolve_model(&mini_id).unwrap();
        let tokens = Tokens {
            prompt: 1000,
            completion: 500,
            cached: 400,
            cache_write: 0,
        };
        let cost = |t: &Table| crate::usage::cost_nusd(t.model(mini).unwrap(), &tokens);
        assert_eq!(t.priced_at_ms(), 0);
        assert_eq!(t.next_price_change_ms(), Some(T));
        // Before: $0.15 / cached $0.075 / $0.60.
        assert_eq!(cost(&t), 600 * 150 + 400 * 75 + 500 * 600);
        assert!(!t.price_change_due(T - 1));
        assert!(t.price_change_due(T));
        assert!(matches!(t.priced_at(T - 1), std::borrow::Cow::Borrowed(_)));
        let at = t.priced_at(T).into_owned();
        // At the instant: $0.30 / $1.20, cached reads at the input price (the
        // change names none).
        assert_eq!(cost(&at), 1000 * 300 + 500 * 1200);
        assert_eq!(
            (at.priced_at_ms(), at.next_price_change_ms()),
            (T, Some(T + 1000))
        );
        assert_eq!(
            cost(&t),
            600 * 150 + 400 * 75 + 500 * 600,
            "the original stays"
        );
        t.reprice(T + 999);
        assert_eq!(cost(&t), 1000 * 300 + 500 * 1200);
        t.reprice(T + 1000);
        assert_eq!(cost(&t), 1000 * 500 + 500 * 2000);
        assert_eq!(t.next_price_change_ms(), None);
        assert!(!t.price_change_due(u64::MAX - 1));
        // Back before every change: the model's own prices again.
        t.reprice(T - 1);
        assert_eq!(cost(&t), 600 * 150 + 400 * 75 + 500 * 600);
        // The wire form keeps the schedule (the filter resolves it).
        let mut raw = with_tenant();
        raw.models[0].price_changes = vec![change(T, 0.30, 1.20)];
        let compiled = Table::compile(raw.clone())
            .unwrap()
            .priced_at(T)
            .into_owned();
        assert_eq!(
            compiled.models[0].price_changes,
            raw.models[0].price_changes
        );
        // An unordered schedule does not compile.
        raw.models[0].price_changes = vec![change(T, 0.30, 1.20), change(T - 1, 1.0, 1.0)];
        let e = Table::compile(raw).unwrap_err().0;
        assert!(e.contains(".price_changes[1].from:"), "{e}");
    }

    /// A retirement is part of the table's schedule: the next instant due
    /// is the earlier of a price change and a retirement; repriced at or
    /// after its instant the model is retired (not `enabled`, `retired`
    /// gives the instant, no `Sunset`), before it in service with its
    /// `Sunset` HTTP-date; a model without a date has none; a model the
    /// operator disabled stays disabled either side, and is not "retired"
    /// before its instant.
    #[test]
    fn a_retirement_is_due_like_a_price_change_and_disables_the_model() {
        use crate::catalog::Timestamp;
        const R: u64 = 1_799_884_800_000; // 2027-01-14T00:00:00Z
        let mut raw = with_tenant();
        for m in raw.models.iter_mut() {
            m.price_changes.clear();
            m.retires_at = None;
        }
        raw.models[0].retires_at = Some(Timestamp(R));
        raw.models[1].retires_at = Some(Timestamp(R + 5000));
        raw.models[1].enabled = false;
        let (a_id, b_id, c_id) = (
            raw.models[0].id.clone(),
            raw.models[1].id.clone(),
            "claude-sonnet-5-5".to_owned(),
        );
        let mut t = Table::compile(raw.clone()).unwrap();
        let (a, b, c) = (
            t.resolve_model(&a_id).unwrap(),
            t.resolve_model(&b_id).unwrap(),
            t.resolve_model(&c_id).unwrap(),
        );
        assert_eq!(t.next_price_change_ms(), Some(R), "compiled at the epoch");
        t.reprice(R - 1);
        assert!(!t.price_change_due(R - 1) && t.price_change_due(R));
        assert!(t.model(a).unwrap().enabled);
        assert_eq!(t.retired(a), None);
        assert_eq!(t.sunset(a), Some("Thu, 14 Jan 2027 00:00:00 GMT"));
        assert_eq!(t.sunset(c), None, "no date, no header");
        assert!(!t.model(b).unwrap().enabled && t.retired(b).is_none());

        let at = t.priced_at(R).into_owned();
        assert!(!at.model(a).unwrap().enabled, "retired at the instant");
        assert_eq!(at.retired(a), Some(Timestamp(R)));
        assert_eq!(at.sunset(a), None);
        assert!(at.model(c).unwrap().enabled);
        assert_eq!(at.next_price_change_ms(), Some(R + 5000));
        assert!(t.model(a).unwrap().enabled, "the original stays");

        t.reprice(R + 5000);
        assert_eq!(t.retired(b), Some(Timestamp(R + 5000)));
        assert!(!t.model(b).unwrap().enabled);
        assert_eq!(t.next_price_change_ms(), None);
        // Back before it: in service again, as the wire form lists it.
        t.reprice(0);
        assert!(t.model(a).unwrap().enabled && !t.model(b).unwrap().enabled);

        // The wire form carries the instant as RFC 3339, only when set.
        let json = serde_json::to_value(&raw).unwrap();
        assert_eq!(json["models"][0]["retires_at"], "2027-01-14T00:00:00Z");
        let sonnet = json["models"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["id"] == "claude-sonnet-5-5"))
            .unwrap();
        assert_eq!(sonnet.get("retires_at"), None);
        let back: RoutingTable = serde_json::from_value(json).unwrap();
        assert_eq!(back.models, raw.models);
    }

    /// `enabled_from` is the mirror of a retirement: the instant is due
    /// like a price change, before it the model is out of service with the
    /// instant (`out_of_service`), from it in service as `enabled` says; a
    /// replacement dated at its predecessor's retirement takes over at
    /// that one instant. A disabled model stays disabled either side.
    #[test]
    fn a_model_enters_service_at_its_instant() {
        use crate::catalog::Timestamp;
        use crate::error::OutOfService;
        const R: u64 = 1_799_884_800_000; // 2027-01-14T00:00:00Z
        let mut raw = with_tenant();
        for m in raw.models.iter_mut() {
            m.price_changes.clear();
            (m.retires_at, m.enabled_from) = (None, None);
        }
        raw.models[0].retires_at = Some(Timestamp(R));
        raw.models[1].enabled_from = Some(Timestamp(R));
        raw.models[2].enabled_from = Some(Timestamp(R));
        raw.models[2].enabled = false;
        let ids: Vec<String> = raw.models[..3].iter().map(|m| m.id.clone()).collect();
        let mut t = Table::compile(raw.clone()).unwrap();
        let [old, new, off] = [0, 1, 2].map(|i| t.resolve_model(&ids[i]).unwrap());
        t.reprice(R - 1);
        assert_eq!(t.next_price_change_ms(), Some(R));
        assert!(t.model(old).unwrap().enabled && !t.model(new).unwrap().enabled);
        assert_eq!(
            t.out_of_service(new),
            Some(OutOfService::Until(Timestamp(R)))
        );
        assert_eq!(t.retired(new), None);
        assert_eq!(
            t.out_of_service(off),
            Some(OutOfService::Until(Timestamp(R)))
        );

        t.reprice(R);
        assert!(!t.model(old).unwrap().enabled && t.model(new).unwrap().enabled);
        assert_eq!(
            t.out_of_service(old),
            Some(OutOfService::Retired(Timestamp(R)))
        );
        assert_eq!(t.out_of_service(new), None);
        assert!(!t.model(off).unwrap().enabled, "disabled stays disabled");
        assert_eq!(t.out_of_service(off), None);
        assert_eq!(t.next_price_change_ms(), None);

        let json = serde_json::to_value(&raw).unwrap();
        assert_eq!(json["models"][1]["enabled_from"], "2027-01-14T00:00:00Z");
        assert_eq!(json["models"][3].get("enabled_from"), None);
        let back: RoutingTable = serde_json::from_value(json).unwrap();
        assert_eq!(back.models, raw.models);
    }

    #[test]
    fn wire_form_round_trips() {
        let mut raw = with_tenant();
        raw.router_model = Some(crate::classify::RouterModel::Builtin);
        let json = serde_json::to_string(&raw).unwrap();
        let back: RoutingTable = serde_json::from_str(&json).unwrap();
        assert_eq!(raw, back);
    }
}
