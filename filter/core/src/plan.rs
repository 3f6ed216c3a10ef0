//! Route once: a request body is parsed, scored and ranked one time into a
//! [`Plan`]; every attempt (the first and each failover) takes the next
//! candidate from it and builds that provider's body from what the plan
//! kept. A failover attempt never parses, scores or ranks again, with one
//! exception: a named model's fallbacks are ranked when first needed
//! ([`Plan::rank_fallbacks`]), so the many named requests their model
//! answers are never scored at all.

use crate::cache::{self, Prompt};
use crate::classify::Tier;
use crate::error::ApiError;
use crate::policy::Target;
use crate::protocol::Protocol;
use crate::protocol::anthropic::{self, MessagesDraft};
use crate::protocol::ollama::{self, Endpoint};
use crate::protocol::{responses, responses_upstream};
use crate::request::{
    BodyEdit, BodyShape, ChatOnly, ChatRequest, Dropped, Effort, Extensions, ModelChoice,
    OutputEffort, Rewrite, Sampling, rewrite_members,
};
use crate::route::{needs, no_candidate};
use crate::select;
use crate::table::{Account, ModelIx, ProviderIx, Table};

/// `max_tokens` for Anthropic, where it is required, when the client set none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Claude Sonnet 5.5's `thinking` without up-front thinking
/// (`catalog::Capabilities::between_tools`).
const BETWEEN_TOOLS: &str = r#"{"type":"between_tools"}"#;

/// The upstream request body of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The client's body with one prefix edit (same protocol both sides).
    Edit(BodyEdit),
    /// A new body (translated between protocols).
    Whole(Vec<u8>),
}

impl Upstream {
    /// The upstream body in full, from the client's `body`.
    pub fn bytes(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Upstream::Edit(e) => e.apply(body),
            Upstream::Whole(b) => b.clone(),
        }
    }
}

/// One attempt: who answers and the body they get.
#[derive(Debug)]
pub struct Attempt {
    pub model: ModelIx,
    pub provider: ProviderIx,
    pub upstream: Upstream,
    /// What the body is written in: the provider's wire, or OpenAI's
    /// Responses API for a request only it takes ([`Plan::wire_for`]).
    pub wire: Protocol,
    /// What the client set that the body goes without because the model
    /// refuses it (`x-aipipe-dropped-params`).
    pub dropped: Dropped,
}

/// Whether a named model's fallbacks are ranked.
#[derive(Debug)]
enum Fallbacks {
    /// Ranked, or there are none to rank (auto requests, a policy that
    /// never substitutes a named model).
    Ranked,
    /// Not yet: this Envoy's penalties per model when the request came.
    Pending(Option<Vec<f64>>),
}

/// A request ranked: the complexity it was ranked at, the router's
/// features, and the candidates.
struct Ranking {
    complexity: f64,
    features: Option<Vec<u8>>,
    ranking: Result<Vec<select::Candidate>, select::NoCandidate>,
}

/// Scores `req`, reads the routing signal and ranks the candidates at its
/// complexity under the policy's tier cap (and an alias's, `alias_cap`).
fn rank(
    table: &Table,
    tenant: &Account,
    req: &ChatRequest<'_>,
    needs: select::Needs,
    alias_cap: Option<Tier>,
    penalties: Option<&[f64]>,
) -> Ranking {
    let score = table.scorer.score(req);
    let signal = table.routing_signal(req, &score, Some(tenant));
    let needs = select::Needs {
        category: signal.category,
        ..needs
    };
    let max_tier = tenant.policy.as_deref().and_then(|p| p.max_tier);
    let complexity = crate::policy::cap(
        signal.complexity,
        crate::policy::tighter(max_tier, alias_cap),
    );
    Ranking {
        complexity,
        features: signal.features,
        ranking: select::rank_with(table, tenant, &needs, complexity, penalties),
    }
}

/// Everything routing learned from a request body, kept for every attempt.
#[derive(Debug)]
pub struct Plan {
    pub protocol: Protocol,
    /// The client's body as it came.
    body: Vec<u8>,
    /// Its Chat Completions translation, when the client speaks another
    /// protocol (what scoring read and OpenAI-format providers get).
    chat: Option<Vec<u8>>,
    /// Where the Chat Completions body's own fields sit.
    chat_shape: BodyShape,
    /// A message of the Chat Completions body carries `reasoning_details`.
    reasoning_details: bool,
    /// Where the client body's `model` sits, for a same-protocol edit of a
    /// non-Chat client (an Anthropic client on an Anthropic model).
    client_shape: BodyShape,
    /// The request as Anthropic Messages, once an Anthropic model is tried
    /// (translated at most once per request).
    messages: Option<Result<MessagesDraft, ApiError>>,
    pub stream: bool,
    /// The client asked for its (OpenAI) stream's usage chunk.
    pub include_usage: bool,
    /// `temperature` 0 or a `seed` (see `ChatRequest::deterministic`).
    pub deterministic: bool,
    /// The sampling parameters the client set (in its own protocol: an
    /// Anthropic client's `top_k` too), dropped for a model that refuses
    /// them.
    sampling: Sampling,
    /// The Chat Completions parameters it sets that the Responses API (and,
    /// but `stop`, Anthropic's Messages API) has no equivalent for
    /// (`Plan::dropped_for`).
    chat_only: ChatOnly,
    /// The `reasoning_effort` the Chat Completions body sets.
    effort: Effort,
    /// It has tools and a reasoning effort other than none
    /// (`select::Needs::reasoning_with_tools`).
    reasoning_with_tools: bool,
    /// The Anthropic extensions the Chat Completions body carries.
    extensions: Extensions,
    /// Which of Anthropic's `thinking` and `output_config` the client sets,
    /// in its own protocol (a Chat client's are `extensions`; an Anthropic
    /// client's become the Chat body's `reasoning_effort`).
    client_extensions: Extensions,
    /// The Chat body's `reasoning_effort` as Anthropic's effort.
    output_effort: Option<OutputEffort>,
    /// The Chat Completions body sets `max_tokens` / `max_completion_tokens`.
    sets_max_tokens: bool,
    sets_max_completion_tokens: bool,
    /// The prompt in estimated tokens (`score::input_tokens`).
    input_tokens: u64,
    /// The complexity that ranked the candidates: the router model's when the
    /// table has one, else the score's (`Table::complexity`). Auto only.
    complexity: f64,
    /// A named model's fallbacks, ranked when they are first needed.
    fallbacks: Fallbacks,
    /// The client named `auto` (or nothing): the model was chosen by score.
    pub auto: bool,
    /// The router's features of the request, when its tenant learns from
    /// feedback (`Table::routing_signal`); taken for the usage record.
    pub router_features: Option<Vec<u8>>,
    /// The client's `max_tokens` (or `max_completion_tokens`).
    pub max_tokens: Option<u64>,
    /// Candidates, best first (a named model first, the ranking after it).
    ranked: Vec<ModelIx>,
    /// Candidates taken so far.
    taken: usize,
    /// The cache key material, when the answer may come from the cache.
    pub prompt: Option<Prompt>,
    /// The tenant's policy caches answers to non-deterministic requests.
    pub cache_nondeterministic: bool,
}

impl Plan {
    /// Parses, scores and ranks `body` (in `protocol`) for `tenant`.
    /// `penalties` are this Envoy's own per model (see `select::rank_with`);
    /// `cache` asks for the cache key material of a cacheable request.
    pub fn new(
        table: &Table,
        tenant: &Account,
        protocol: Protocol,
        body: Vec<u8>,
        penalties: Option<&[f64]>,
        cache: bool,
    ) -> Result<Plan, ApiError> {
        let (mut client_sampling, mut client_extensions) = (None, None);
        let (chat, client_shape) = match protocol {
            Protocol::Chat => (None, BodyShape::default()),
            Protocol::Messages => {
                let named = client_model(&body)?;
                let chat = anthropic::messages_request_to_chat(&body, &named.name)?;
                client_sampling = Some(named.sampling);
                client_extensions = Some(named.extensions);
                (Some(chat), named.shape)
            }
            Protocol::Responses => (
                Some(responses::request_to_chat(&body)?),
                BodyShape::default(),
            ),
            Protocol::Ollama(Endpoint::Chat) => (
                Some(ollama::chat_request_to_chat(&body)?),
                BodyShape::default(),
            ),
            Protocol::Ollama(Endpoint::Generate) => (
                Some(ollama::generate_request_to_chat(&body)?),
                BodyShape::default(),
            ),
        };
        let chat_bytes = chat.as_deref().unwrap_or(&body);
        let req = ChatRequest::parse(chat_bytes).map_err(|e| ApiError::BadRequest(e.0))?;
        let input_tokens = crate::score::input_tokens(&req);
        let req_needs = needs(&req, input_tokens);
        let reasoning_with_tools = req_needs.reasoning_with_tools;
        let policy = tenant.policy.as_deref();
        // A policy's alias names a model, or auto routing under its own cap.
        let (named, alias_cap): (Option<(ModelIx, &str)>, Option<Tier>) = match &req.model {
            ModelChoice::Named(name) => match policy.and_then(|p| p.alias(name)) {
                Some(Target::Model(m)) => (Some((m, name.as_ref())), None),
                Some(Target::Auto { max_tier }) => (None, max_tier),
                None => {
                    let m = table
                        .resolve_model(name)
                        .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))?;
                    (Some((m, name.as_ref())), None)
                }
            },
            ModelChoice::Auto => (None, None),
        };
        let mut complexity = 0.0;
        let mut router_features = None;
        let mut fallbacks = Fallbacks::Ranked;
        let ranked = match named {
            Some((named, name)) => {
                if let Some(why) = table.out_of_service(named) {
                    return Err(ApiError::ModelOutOfService {
                        model: name.to_owned(),
                        why,
                        pass_through: false,
                    });
                }
                if !table.model(named).is_some_and(|m| m.enabled) {
                    return Err(ApiError::ModelNotFound(name.to_owned()));
                }
                if !tenant.allows(named) {
                    return Err(ApiError::ModelNotAllowed(name.to_owned()));
                }
                if let Some(refused) = table
                    .model(named)
                    .and_then(|m| req_needs.refused_by(m.capabilities))
                {
                    return Err(ApiError::Unsupported(refusal(name, refused)));
                }
                if policy.is_some_and(|p| !p.substitute_named_models) {
                    // Retries of the named model only, never another one.
                    vec![named; crate::config::MAX_ATTEMPTS_LIMIT]
                } else {
                    // Failover from a named model goes down the ranking,
                    // which most named requests never need: it is scored
                    // and ranked when first asked for (`rank_fallbacks`).
                    fallbacks = Fallbacks::Pending(penalties.map(<[f64]>::to_vec));
                    vec![named]
                }
            }
            None => {
                let r = rank(table, tenant, &req, req_needs, alias_cap, penalties);
                complexity = r.complexity;
                router_features = r.features;
                let mut ranking = r.ranking.map_err(|e| no_candidate(table, tenant, e))?;
                crate::policy::pin_first(policy, &mut ranking);
                ranking.into_iter().map(|c| c.model).collect()
            }
        };
        let auto = named.is_none();
        let any_temperature = policy.is_some_and(|p| p.cache_nondeterministic);
        let prompt = (cache && !req.stream && (req.deterministic || any_temperature))
            .then(|| cache::prepare(chat_bytes, any_temperature).ok())
            .flatten();
        Ok(Plan {
            protocol,
            chat_shape: req.shape(),
            reasoning_details: req
                .messages
                .iter()
                .any(crate::request::Message::has_reasoning_details),
            client_shape,
            messages: None,
            stream: req.stream,
            include_usage: req.include_usage,
            deterministic: req.deterministic,
            sampling: client_sampling.unwrap_or(req.sampling),
            chat_only: req.chat_only,
            effort: req.effort,
            reasoning_with_tools,
            extensions: req.extensions,
            client_extensions: client_extensions.unwrap_or(req.extensions),
            output_effort: req.output_effort,
            sets_max_tokens: req.sets_max_tokens,
            sets_max_completion_tokens: req.sets_max_completion_tokens,
            input_tokens,
            complexity,
            fallbacks,
            auto,
            router_features,
            max_tokens: req.max_tokens,
            ranked,
            taken: 0,
            prompt,
            cache_nondeterministic: any_temperature,
            chat,
            body,
        })
    }

    /// The client's body as it came.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The request's prompt, in estimated tokens (the scorer's count).
    pub fn input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// The complexity, when it chose the model.
    pub fn complexity(&self) -> Option<f64> {
        self.auto.then_some(self.complexity)
    }

    /// Ranks a named model's fallbacks after it, if they are not yet: the
    /// request is parsed, scored and ranked then, as an auto request is up
    /// front. Only a named model that failed, or a budget's reservation
    /// (which covers every attempt), asks for them.
    pub fn rank_fallbacks(&mut self, table: &Table, tenant: &Account) {
        let Fallbacks::Pending(penalties) =
            std::mem::replace(&mut self.fallbacks, Fallbacks::Ranked)
        else {
            return;
        };
        let Some(&named) = self.ranked.first() else {
            return;
        };
        let bytes = self.chat.as_deref().unwrap_or(&self.body);
        // It parsed when the plan was made.
        let Ok(req) = ChatRequest::parse(bytes) else {
            return;
        };
        let needs = needs(&req, self.input_tokens);
        if let Ok(ranking) = rank(table, tenant, &req, needs, None, penalties.as_deref()).ranking {
            self.ranked
                .extend(ranking.into_iter().map(|c| c.model).filter(|&m| m != named));
        }
    }

    /// The models this request may try, in order, within `max_attempts`.
    /// The model the client named (None: `auto`).
    pub fn asked(&self) -> Option<ModelIx> {
        if self.auto {
            None
        } else {
            self.ranked.first().copied()
        }
    }

    pub fn candidates(&self, max_attempts: usize) -> &[ModelIx] {
        self.ranked
            .get(..max_attempts.min(self.ranked.len()))
            .unwrap_or_default()
    }

    /// The models tried so far (taken from the plan), first to last.
    pub fn tried(&self) -> &[ModelIx] {
        self.ranked.get(..self.taken).unwrap_or_default()
    }

    /// The next attempt, within `max_attempts` in all; None when no candidate
    /// is left. A routed candidate that cannot take the request (its
    /// provider's protocol cannot carry the body: `n` above 1 to an
    /// Anthropic model or over the Responses API, audio, legacy functions,
    /// …) is taken out of the ranking — routing chose it, not the client —
    /// and never counts as an attempt. The error of a model the client named
    /// (no provider key, a body that does not translate) is the client's, and
    /// so is the first candidate's when no candidate can take the request.
    pub fn next_attempt(
        &mut self,
        table: &Table,
        tenant: &Account,
        max_attempts: usize,
    ) -> Option<Result<Attempt, ApiError>> {
        let first = self.taken == 0;
        let mut refused = None;
        while self.taken < max_attempts {
            if self.taken >= self.ranked.len() {
                self.rank_fallbacks(table, tenant);
            }
            let Some(&model) = self.ranked.get(self.taken) else {
                break;
            };
            match self.attempt(table, tenant, model) {
                Ok(a) => {
                    self.taken += 1;
                    return Some(Ok(a));
                }
                Err(e) if first && !self.auto => {
                    self.taken += 1;
                    return Some(Err(e));
                }
                Err(e) => {
                    log::debug!("candidate {} passed over: {e:?}", model.0);
                    self.ranked.remove(self.taken);
                    if first && refused.is_none() {
                        refused = Some(e);
                    }
                }
            }
        }
        refused.map(Err)
    }

    /// The body `model` gets.
    pub(crate) fn attempt(
        &mut self,
        table: &Table,
        tenant: &Account,
        model: ModelIx,
    ) -> Result<Attempt, ApiError> {
        let (Some(m), Some(provider)) = (table.model(model), table.provider_of(model)) else {
            return Err(ApiError::Internal(
                "a ranked model is not in the table".into(),
            ));
        };
        let Some(p) = table.provider(provider) else {
            return Err(ApiError::Internal(
                "a model's provider is not in the table".into(),
            ));
        };
        if tenant.provider_key(provider).is_none() {
            return Err(ApiError::NoProviderKey(format!(
                "The model `{}` needs a `{}` provider key and this tenant has none. Add one with POST /admin/tenants/{}/keys, or use model \"auto\".",
                m.id, m.provider, tenant.id
            )));
        }
        let name = m.upstream_name();
        let wire = self.wire_for(m, p);
        let dropped = self.dropped_for(m, wire);
        let mut upstream = match (self.protocol, wire) {
            // Same protocol: the client's body, renamed (and, for a Chat
            // stream, asking for its usage, for exact accounting).
            (Protocol::Chat, Protocol::Chat) => {
                Upstream::Edit(self.chat_shape.edit(&self.body, name))
            }
            (Protocol::Messages, Protocol::Messages) => {
                let edit = self.client_shape.edit(&self.body, name);
                // An Anthropic client's `reasoning_details` came from thinking
                // blocks that carry another provider's reasoning: not Claude's.
                match self.reasoning_details {
                    true => match anthropic::without_carried_thinking(&edit.apply(&self.body)) {
                        Some(body) => Upstream::Whole(body),
                        None => Upstream::Edit(edit),
                    },
                    false => Upstream::Edit(edit),
                }
            }
            (_, Protocol::Chat) => {
                let chat = self.chat.as_deref().unwrap_or(&self.body);
                Upstream::Whole(self.chat_shape.edit(chat, name).apply(chat))
            }
            (_, Protocol::Messages) => {
                let chat = self.chat.as_deref().unwrap_or(&self.body);
                let draft = self.messages.get_or_insert_with(|| {
                    anthropic::chat_to_messages_draft(chat).map_err(ApiError::from)
                });
                let draft = draft.as_ref().map_err(Clone::clone)?;
                let max = DEFAULT_MAX_TOKENS.min(m.max_output_tokens.max(1));
                Upstream::Whole(draft.for_model(name, max)?)
            }
            // A Responses client's own body: its reasoning items go on.
            (Protocol::Responses, Protocol::Responses) => {
                Upstream::Whole(responses_upstream::responses_to_request(&self.body, name)?)
            }
            (_, Protocol::Responses) => {
                let chat = self.chat.as_deref().unwrap_or(&self.body);
                Upstream::Whole(responses_upstream::chat_to_request(chat, name)?)
            }
            (_, Protocol::Ollama(_)) => {
                // The table's provider wire reads only "openai" or "anthropic".
                return Err(ApiError::Internal(format!(
                    "provider {} speaks a client-only protocol",
                    p.id
                )));
            }
        };
        let sent = match &upstream {
            // Renamed only: the client's body reads the same.
            Upstream::Edit(_) => self.body.as_slice(),
            Upstream::Whole(b) => b.as_slice(),
        };
        let thinks = wire == Protocol::Messages && self.client_extensions.thinking();
        let asked = thinks.then(|| anthropic::asked_thinking(sent)).flatten();
        let c = m.capabilities;
        // Enabled thinking with a budget, to a model that takes adaptive
        // thinking only: adaptive, at the effort the budget asks for.
        let budget = match asked {
            Some(anthropic::AskedThinking::Enabled(budget)) if c.adaptive_thinking => Some(budget),
            _ => None,
        };
        // Thinking disabled, to a model that turns it off its own way.
        let between_tools = asked == Some(anthropic::AskedThinking::Disabled) && c.between_tools;
        // A tool turn that did not start from Claude's thinking (another
        // model called the tool, or the client kept no reasoning) goes on
        // without it, as Anthropic advises (`anthropic::tool_turn_lacks_thinking`;
        // adaptive thinking has no such rule).
        let enabled = matches!(asked, Some(anthropic::AskedThinking::Enabled(_)));
        let dropped = if enabled && budget.is_none() && anthropic::tool_turn_lacks_thinking(sent) {
            dropped.with_extensions(Extensions::of(true, false))
        } else {
            dropped
        };
        let mut rewrite = self.rewrite_for(m, p, wire, dropped);
        if between_tools {
            rewrite.add.push(("thinking", BETWEEN_TOOLS));
        }
        if let Some(budget) = budget {
            rewrite.add.push(("thinking", r#"{"type":"adaptive"}"#));
            if !self.client_extensions.output_config() {
                let effort = OutputEffort::of_budget(budget);
                rewrite.add.push(("output_config", effort.output_config()));
            }
        }
        if !rewrite.is_empty() {
            // A model that refuses sampling parameters gets the body without
            // them, and one that takes its budget or tools otherwise gets
            // them written its way (filter/README.md, "Model selection"):
            // only then is a same-protocol body rewritten whole.
            let whole = upstream.bytes(&self.body);
            upstream = Upstream::Whole(
                rewrite_members(&whole, &rewrite).map_err(|e| ApiError::BadRequest(e.0))?,
            );
        }
        Ok(Attempt {
            model,
            provider,
            upstream,
            wire,
            dropped,
        })
    }

    /// What `model`'s body is written in: OpenAI's Responses API for a
    /// request with tools and a reasoning effort to a model that takes
    /// those only there (`Capabilities::responses_api`), else its
    /// provider's wire.
    pub fn wire_for(
        &self,
        model: &crate::table::Model,
        provider: &crate::catalog::Provider,
    ) -> Protocol {
        let c = model.capabilities;
        if self.reasoning_with_tools
            && c.reasoning_effort_none
            && c.responses_api
            && provider.wire == Protocol::Chat
        {
            Protocol::Responses
        } else {
            provider.wire
        }
    }

    /// What of the client's `model` gets without: all its sampling
    /// parameters when it refuses them, its `reasoning_effort` (any,
    /// `"none"` too) when the model does not take one, and Anthropic's
    /// `thinking` / `output_config` in its Chat body when the model does not
    /// take those; and over the Responses API or Anthropic's Messages API,
    /// the Chat Completions parameters they have no equivalent for.
    pub fn dropped_for(&self, model: &crate::table::Model, wire: Protocol) -> Dropped {
        let c = model.capabilities;
        let sampling =
            if c.sampling_params && !(c.reasoning_effort_none && self.effort == Effort::Reasons) {
                Sampling::default()
            } else {
                self.sampling
            };
        let effort_dropped = self.drops_effort(c);
        let (reasoning_effort, extensions) = if self.protocol == Protocol::Messages {
            // An Anthropic client's `thinking` / `output_config`: in its own
            // body on the Messages wire; elsewhere as the `reasoning_effort`
            // they ask for, to a model that takes one; else dropped.
            let kept =
                wire == Protocol::Messages || (self.effort != Effort::Unset && !effort_dropped);
            let dropped = if kept {
                Extensions::default()
            } else {
                self.client_extensions
            };
            (false, dropped)
        } else if c.thinking_extensions {
            (effort_dropped, Extensions::default())
        } else {
            (effort_dropped, self.extensions)
        };
        let chat_only = match wire {
            Protocol::Responses => self.chat_only,
            // An Anthropic client's own body has none of them.
            Protocol::Messages if self.protocol != Protocol::Messages => self.chat_only.but_stop(),
            _ => ChatOnly::default(),
        };
        Dropped::new(sampling, reasoning_effort, extensions).with_chat_only(chat_only)
    }

    /// The request sets a `reasoning_effort` (any, `"none"` too) that a model
    /// with `c` does not take.
    fn drops_effort(&self, c: crate::catalog::Capabilities) -> bool {
        !c.reasoning_effort && self.effort != Effort::Unset
    }

    /// How the body `model` (reached over `wire`) gets differs from the
    /// client's: what is `dropped` left out (`reasoning_effort` from a Chat
    /// Completions body only: other wires never carry it); for a Chat
    /// Completions model that takes its budget only as
    /// `max_completion_tokens`, `max_tokens` renamed to it (or left out
    /// beside it); for one that reasons unless told not to, `reasoning_effort`
    /// `"none"` when the client set none; for an Anthropic model that thinks
    /// unless told not to, `thinking` disabled (or, for Sonnet 5.5,
    /// `between_tools`) when the client asked for no reasoning and said
    /// nothing of thinking; for one that takes an effort,
    /// the client's `reasoning_effort` as `output_config.effort`
    /// (`catalog::Capabilities`).
    fn rewrite_for(
        &self,
        model: &crate::table::Model,
        provider: &crate::catalog::Provider,
        wire: Protocol,
        dropped: Dropped,
    ) -> Rewrite<'static> {
        let mut rewrite = Rewrite::default();
        // Reasoning another model returned goes only where it is read (the
        // Responses translation reads its own kind and leaves the rest).
        if wire == Protocol::Chat && self.reasoning_details && !provider.reads_reasoning_details() {
            rewrite.drop_from_messages.push("reasoning_details");
        }
        if dropped.sampling() {
            rewrite.drop.extend(Sampling::PARAMS);
        }
        let c = model.capabilities;
        // An effort the model does not take (an Anthropic client's comes from
        // its thinking, and is named as that: `dropped_for`).
        if self.drops_effort(c) {
            match wire {
                Protocol::Chat => rewrite.drop.push("reasoning_effort"),
                Protocol::Responses => rewrite.drop.push("reasoning"),
                _ => {}
            }
        }
        if wire != Protocol::Responses {
            // The Responses translation never carries them; on Anthropic's
            // wire only a tool turn's lost thinking is dropped (`attempt`).
            rewrite.drop.extend(dropped.extensions());
        }
        if wire == Protocol::Messages && !self.client_extensions.any() {
            if self.effort != Effort::Reasons {
                if c.disable_thinking {
                    rewrite.add.push(("thinking", r#"{"type":"disabled"}"#));
                } else if c.between_tools {
                    rewrite.add.push(("thinking", BETWEEN_TOOLS));
                }
            }
            // The client's effort, or the least for "none" to a model that
            // cannot stop thinking.
            let stops = c.disable_thinking || c.between_tools;
            let effort = match self.effort {
                Effort::None if !stops => Some(OutputEffort::Low),
                _ => self.output_effort,
            };
            if let Some(effort) = effort.filter(|_| c.output_effort) {
                rewrite.add.push(("output_config", effort.output_config()));
            }
        }
        if wire != Protocol::Chat {
            return rewrite;
        }
        if c.max_completion_tokens && self.sets_max_tokens {
            if self.sets_max_completion_tokens {
                rewrite.drop.push("max_tokens");
            } else {
                rewrite.rename.push(("max_tokens", "max_completion_tokens"));
            }
        }
        if c.reasoning_effort_none && self.effort == Effort::Unset {
            rewrite.add.push(("reasoning_effort", "\"none\""));
        }
        rewrite
    }

    /// Whether the client's answer hides the usage chunk the upstream
    /// request asked for: a Chat client's stream to a Chat provider whose
    /// client did not ask (a provider that always sends one, OpenRouter,
    /// gets it hidden too). Other clients' answers are translated, and the
    /// translation reads the usage itself.
    pub fn hides_usage(&self, provider_protocol: Protocol) -> bool {
        self.protocol == Protocol::Chat
            && provider_protocol == Protocol::Chat
            && self.stream
            && !self.include_usage
    }
}

/// Why a named model cannot take the request, and what to do instead.
fn refusal(name: &str, refused: select::Refused) -> String {
    match refused {
        select::Refused::ForcedTool => format!(
            "The model `{name}` does not accept a forced tool choice (`tool_choice` \"required\" or a named function; Anthropic's `any` or `tool`). Send `tool_choice` \"auto\", name another model, or use model \"auto\" to be routed to one that does."
        ),
        select::Refused::Prefill => format!(
            "The model `{name}` does not continue a conversation that ends with an assistant message (a prefill; its provider answers 400 to one). Send the conversation without the final assistant message, name another model, or use model \"auto\" to be routed to one that does."
        ),
        select::Refused::ReasoningWithTools => format!(
            "The model `{name}` takes tools only with `reasoning_effort` \"none\" (its provider answers 400 to tools with any other effort). Send \"none\" or leave `reasoning_effort` out, name another model, or use model \"auto\" to be routed to one that takes both."
        ),
    }
}

/// A client body's `model` (as a name to route, `auto` when absent) and where
/// it sits.
struct ClientModel {
    name: String,
    shape: BodyShape,
    /// The sampling parameters it sets (`top_k` included, which the Chat
    /// translation leaves out).
    sampling: Sampling,
    /// Which of `thinking` and `output_config` it sets (the Chat
    /// translation carries them as a `reasoning_effort`).
    extensions: Extensions,
}

fn client_model(body: &[u8]) -> Result<ClientModel, ApiError> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(default, borrow)]
        model: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        temperature: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        top_p: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        top_k: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        thinking: Option<&'a serde_json::value::RawValue>,
        #[serde(default, borrow)]
        output_config: Option<&'a serde_json::value::RawValue>,
    }
    let object_start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body.get(i) == Some(&b'{'))
        .ok_or_else(|| ApiError::BadRequest("request body must be a JSON object".into()))?;
    let named: Named<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    let (name, model_span) = match named.model {
        None => ("auto".to_owned(), None),
        Some(raw) => {
            let name = serde_json::from_str::<Option<String>>(raw.get())
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "invalid request body: `model` must be a string, got {}",
                        raw.get()
                    ))
                })?
                .unwrap_or_else(|| "auto".to_owned());
            (name, crate::request::span_of(body, raw))
        }
    };
    // `Option<&RawValue>` reads `null` as None: only values that are set.
    let sampling = Sampling::of([named.temperature, named.top_p, named.top_k].map(|v| v.is_some()));
    Ok(ClientModel {
        name,
        sampling,
        extensions: Extensions::of(named.thinking.is_some(), named.output_config.is_some()),
        shape: BodyShape {
            object_start,
            model_span,
            stream_options_span: None,
            force_usage: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters;
    use crate::table::{RoutingTable, Tenant};

    fn table() -> Table {
        Table::compile(raw_table()).unwrap()
    }

    fn raw_table() -> RoutingTable {
        RoutingTable {
            tenants: vec![Tenant::with_keys(
                "acme",
                "vk-acme",
                &[("openai", "sk-a"), ("anthropic", "ak-a")],
            )],
            ..RoutingTable::default()
        }
    }

    /// The default table with gpt-6-luna enabled (it ships disabled,
    /// `catalog`): for the tests of how its requests are written.
    fn table_with_luna() -> Table {
        let mut raw = raw_table();
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-6-luna") {
            m.enabled_from = None;
        }
        Table::compile(raw).unwrap()
    }

    fn plan(t: &Table, protocol: Protocol, body: &str) -> Result<Plan, ApiError> {
        Plan::new(
            t,
            &t.accounts()[0],
            protocol,
            body.as_bytes().to_vec(),
            None,
            true,
        )
    }

    #[test]
    fn every_attempt_comes_from_one_parse_score_and_rank() {
        let t = table();
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"Prove by induction that 2^n > n."}]}"#;
        let before = counters::snapshot();
        let mut p = plan(&t, Protocol::Chat, body).unwrap();
        assert_eq!(counters::since(before), (1, 1, 1), "one parse, score, rank");
        let mut names = Vec::new();
        while let Some(a) = p.next_attempt(&t, &t.accounts()[0], 10) {
            let a = a.unwrap();
            let out: serde_json::Value =
                serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
            names.push(out["model"].as_str().unwrap().to_owned());
        }
        assert!(names.len() >= 3, "{names:?}");
        assert_eq!(
            counters::since(before),
            (1, 1, 1),
            "attempts after the first parse, score and rank nothing"
        );
        assert_eq!(p.tried().len(), names.len());
    }

    #[test]
    fn a_named_model_comes_first_then_the_ranking_without_it() {
        let t = table();
        let body = r#"{"model":"claude-opus-4-5","messages":[{"role":"user","content":"hi"}]}"#;
        let before = counters::snapshot();
        let mut p = plan(&t, Protocol::Chat, body).unwrap();
        assert!(!p.auto && p.complexity().is_none());
        let first = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(t.model(first.model).unwrap().id, "claude-opus-4-5");
        assert_eq!(
            counters::since(before),
            (1, 0, 0),
            "a named model is neither scored nor ranked until it fails"
        );
        let second = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(
            counters::since(before),
            (2, 1, 1),
            "its fallbacks: the request parsed, scored and ranked once more"
        );
        assert_ne!(second.model, first.model);
        let _third = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert!(
            p.next_attempt(&t, &t.accounts()[0], 3).is_none(),
            "max_attempts"
        );
    }

    #[test]
    fn an_anthropic_client_keeps_its_body_for_anthropic_and_is_translated_for_others() {
        let t = table();
        let body = r#"{"model":"claude-opus-4-5","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut p = plan(&t, Protocol::Messages, body).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        let Upstream::Edit(edit) = &a.upstream else {
            panic!("same protocol: an edit, got {:?}", a.upstream)
        };
        let out: serde_json::Value = serde_json::from_slice(&edit.apply(body.as_bytes())).unwrap();
        assert_eq!(out["model"], "claude-opus-4-5");
        assert_eq!(out["max_tokens"], 50);
        // Down the ranking, an OpenAI model gets Chat Completions.
        while let Some(a) = p.next_attempt(&t, &t.accounts()[0], 10) {
            let a = a.unwrap();
            if t.provider(a.provider).unwrap().wire == Protocol::Chat {
                let out: serde_json::Value =
                    serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
                assert_eq!(out["messages"][0]["content"], "hi");
                return;
            }
        }
        panic!("no OpenAI-format candidate");
    }

    #[test]
    fn bad_bodies_unknown_models_and_missing_keys_are_the_clients_errors() {
        let t = table();
        assert!(matches!(
            plan(&t, Protocol::Chat, "nope"),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(
            plan(
                &t,
                Protocol::Chat,
                r#"{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}"#
            )
            .unwrap_err(),
            ApiError::ModelNotFound("gpt-99".into())
        );
        let mut p = plan(
            &t,
            Protocol::Chat,
            r#"{"model":"grok-3-mini","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let e = p
            .next_attempt(&t, &t.accounts()[0], 3)
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&e, ApiError::NoProviderKey(m) if m.contains("`xai` provider key")),
            "{e:?}"
        );
    }

    /// The kind of each item of a Responses API body's `input`.
    fn input_kinds(out: &serde_json::Value) -> Vec<&str> {
        out["input"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["type"].as_str().unwrap_or("message"))
            .collect()
    }

    /// A tool loop's second turn: the question, the reasoning, the call and
    /// its output.
    const REASONING_TURN: [&str; 4] = [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    ];

    fn first(t: &Table, protocol: Protocol, body: &str) -> (String, serde_json::Value, Dropped) {
        let mut p = plan(t, protocol, body).unwrap();
        let a = p.next_attempt(t, &t.accounts()[0], 3).unwrap().unwrap();
        let out = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        (t.model(a.model).unwrap().id.clone(), out, a.dropped)
    }

    /// A Chat client's `reasoning_details` (what a luna turn's answer
    /// carried, or MiniMax's own) reach only a provider that reads them:
    /// MiniMax keeps its member, OpenAI's Chat Completions gets each message
    /// without it (nothing else of the body changes), and OpenAI's
    /// Responses API gets the reasoning item back.
    #[test]
    fn reasoning_details_reach_only_a_provider_that_reads_them() {
        let mut raw = raw_table();
        raw.tenants = vec![Tenant::with_keys(
            "acme",
            "vk-acme",
            &[
                ("openai", "sk-a"),
                ("minimax", "mm-a"),
                ("anthropic", "ak-a"),
            ],
        )];
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-6-luna") {
            m.enabled_from = None;
        }
        let t = Table::compile(raw).unwrap();
        let body = |model: &str, extra: &str| {
            format!(
                r#"{{"model":"{model}"{extra},"messages":[{{"role":"user","content":"weather in Oslo?"}},
                {{"role":"assistant","content":null,"reasoning_details":[{{"type":"reasoning.encrypted","id":"rs_1","data":"gAAAA-one","format":"openai-responses-v1","index":0}}],
                  "tool_calls":[{{"id":"call_1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},
                {{"role":"tool","tool_call_id":"call_1","content":"4 degrees"}}],
                "tools":[{{"type":"function","function":{{"name":"f"}}}}]}}"#
            )
        };
        let (_, out, _) = first(&t, Protocol::Chat, &body("gpt-4o-mini", ""));
        assert!(
            out["messages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m.get("reasoning_details").is_none()),
            "{out}"
        );
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "call_1");
        let (_, out, _) = first(&t, Protocol::Chat, &body("claude-opus-4-5", ""));
        assert!(!out.to_string().contains("reasoning"), "{out}");
        let (_, out, _) = first(&t, Protocol::Chat, &body("MiniMax-M2", ""));
        assert_eq!(out["messages"][1]["reasoning_details"][0]["id"], "rs_1");
        let (model, out, _) = first(
            &t,
            Protocol::Chat,
            &body("gpt-6-luna", r#","reasoning_effort":"low""#),
        );
        assert_eq!(model, "gpt-6-luna");
        assert_eq!(out["input"][1]["type"], "reasoning", "{out}");
        assert_eq!(out["input"][1]["encrypted_content"], "gAAAA-one");
        // Without the member, a Chat body to OpenAI is only renamed.
        let plain = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
        let mut p = plan(&t, Protocol::Chat, plain).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert!(matches!(a.upstream, Upstream::Edit(_)));
    }

    /// OpenAI's GPT-4o generation answers 400 to `reasoning_effort`, even
    /// `"none"` (catalog `reasoning_effort: false`): a Chat request that
    /// sets one reaches it without, named or routed, and the attempt says
    /// so; sampling parameters it takes stay. A model that takes an effort
    /// gets it as the client wrote it.
    #[test]
    fn a_reasoning_effort_is_dropped_for_a_model_that_does_not_take_one() {
        let t = table();
        for effort in [r#""low""#, r#""none""#, r#""high""#] {
            let body = format!(
                r#"{{"model":"gpt-4o-mini","reasoning_effort":{effort},"temperature":0.3,"messages":[{{"role":"user","content":"hi"}}]}}"#
            );
            let (model, out, dropped) = first(&t, Protocol::Chat, &body);
            assert_eq!(model, "gpt-4o-mini");
            assert_eq!(dropped.names(), "reasoning_effort", "{effort}");
            assert!(out.get("reasoning_effort").is_none(), "{out}");
            assert_eq!(out["temperature"], 0.3);
        }
        // Not set (or null): nothing to drop, the body passes as written.
        let unset = r#"{"model":"gpt-4o-mini","reasoning_effort":null,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut p = plan(&t, Protocol::Chat, unset).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert!(matches!(a.upstream, Upstream::Edit(_)) && a.dropped.is_empty());

        // Routed (to gpt-4o-mini today; its successor once it retires): the
        // effort goes exactly when the model does not take one.
        let routed = r#"{"model":"auto","reasoning_effort":"low","messages":[{"role":"user","content":"hi"}]}"#;
        let (model, out, dropped) = first(&t, Protocol::Chat, routed);
        let takes = t
            .model(t.resolve_model(&model).unwrap())
            .unwrap()
            .capabilities
            .reasoning_effort;
        assert_eq!(dropped.reasoning_effort(), !takes, "{model}");
        assert_eq!(
            out.get("reasoning_effort").is_some(),
            takes,
            "{model}: {out}"
        );

        // A model that takes one keeps it.
        let grok = r#"{"model":"grok-3-mini","reasoning_effort":"low","messages":[{"role":"user","content":"hi"}]}"#;
        let p = plan(&t, Protocol::Chat, grok).unwrap();
        assert!(
            p.dropped_for(t.model(p.ranked[0]).unwrap(), Protocol::Chat)
                .is_empty()
        );
    }

    /// OpenAI's models answer 400 to a parameter they do not know: a Chat
    /// client's Anthropic extensions (`thinking`, `output_config`) reach
    /// them without, named, and reach a Claude model translated.
    #[test]
    fn anthropic_extensions_are_dropped_for_a_model_that_does_not_take_them() {
        let t = table();
        let body = |model: &str| {
            format!(
                r#"{{"model":"{model}","thinking":{{"type":"enabled","budget_tokens":2048}},"output_config":{{"effort":"low"}},"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        let (model, out, dropped) = first(&t, Protocol::Chat, &body("gpt-4o-mini"));
        assert_eq!(model, "gpt-4o-mini");
        assert_eq!(dropped.names(), "thinking,output_config");
        assert!(
            out.get("thinking").is_none() && out.get("output_config").is_none(),
            "{out}"
        );
        assert_eq!(out["messages"][0]["content"], "hi");
        let (model, out, dropped) = first(&t, Protocol::Chat, &body("claude-opus-4-5"));
        assert_eq!(model, "claude-opus-4-5");
        assert!(dropped.is_empty(), "{}", dropped.names());
        assert_eq!(out["thinking"]["type"], "enabled", "{out}");
        assert_eq!(out["output_config"]["effort"], "low", "{out}");
        // A Claude 5.x takes adaptive thinking only: the client's effort stays.
        let (_, out, dropped) = first(&t, Protocol::Chat, &body("claude-sonnet-5-5"));
        assert!(dropped.is_empty(), "{}", dropped.names());
        assert_eq!(
            out["thinking"],
            serde_json::json!({"type": "adaptive"}),
            "{out}"
        );
        assert_eq!(out["output_config"]["effort"], "low", "{out}");
        // Without them nothing is rewritten.
        let plain = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
        let (_, _, dropped) = first(&t, Protocol::Chat, plain);
        assert!(dropped.is_empty());
    }

    /// An Anthropic client's thinking reaches a model that takes a
    /// `reasoning_effort` as the effort it asks for (luna with tools: over
    /// the Responses API), a Claude model in the client's own body, and a
    /// model that takes no effort not at all, named as the client wrote it.
    #[test]
    fn an_anthropic_clients_thinking_becomes_an_effort_for_openai_models() {
        let t = table_with_luna();
        let body = |model: &str, tools: bool, thinking: &str| {
            let tools = if tools {
                r#""tools":[{"name":"f","input_schema":{"type":"object"}}],"#
            } else {
                ""
            };
            format!(
                r#"{{"model":"{model}","max_tokens":900,{tools}{thinking},"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        let budget = r#""thinking":{"type":"enabled","budget_tokens":10000}"#;
        let (model, out, dropped) =
            first(&t, Protocol::Messages, &body("gpt-6-luna", true, budget));
        assert_eq!(model, "gpt-6-luna");
        assert_eq!(out["reasoning"]["effort"], "medium", "{out}");
        assert_eq!(out["tools"][0]["name"], "f", "{out}");
        assert!(dropped.is_empty(), "{}", dropped.names());
        let adaptive = r#""thinking":{"type":"adaptive"},"output_config":{"effort":"high"}"#;
        let (_, out, dropped) = first(&t, Protocol::Messages, &body("gpt-6-luna", false, adaptive));
        assert_eq!(out["reasoning_effort"], "high", "{out}");
        assert!(out.get("thinking").is_none() && out.get("output_config").is_none());
        assert!(dropped.is_empty(), "{}", dropped.names());

        let (_, out, dropped) = first(&t, Protocol::Messages, &body("gpt-4o-mini", true, budget));
        assert!(out.get("reasoning_effort").is_none(), "{out}");
        assert_eq!(dropped.names(), "thinking");
        let (_, _, dropped) = first(
            &t,
            Protocol::Messages,
            &body("gpt-4o-mini", false, adaptive),
        );
        assert_eq!(dropped.names(), "thinking,output_config");

        for claude in ["claude-sonnet-5-5", "claude-opus-4-5"] {
            let (model, out, dropped) = first(&t, Protocol::Messages, &body(claude, true, budget));
            assert_eq!(model, claude);
            assert!(out.get("reasoning_effort").is_none(), "{out}");
            assert!(dropped.is_empty(), "{claude}: {}", dropped.names());
            if claude == "claude-opus-4-5" {
                assert_eq!(out["thinking"]["budget_tokens"], 10000, "{out}");
                continue;
            }
            // Adaptive thinking only: the budget becomes the effort it asks for.
            assert_eq!(
                out["thinking"],
                serde_json::json!({"type": "adaptive"}),
                "{out}"
            );
            assert_eq!(out["output_config"]["effort"], "medium", "{out}");
        }
        // In a tool loop too, where enabled thinking would need the turn's
        // thinking block: adaptive thinking does not.
        let turn = r#"{"model":"claude-opus-5-5","max_tokens":900,"thinking":{"type":"enabled","budget_tokens":40000},
            "tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"w?"},
            {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"4C"}]}]}"#;
        let (_, out, dropped) = first(&t, Protocol::Messages, turn);
        assert!(dropped.is_empty(), "{}", dropped.names());
        assert_eq!(
            out["thinking"],
            serde_json::json!({"type": "adaptive"}),
            "{out}"
        );
        assert_eq!(out["output_config"]["effort"], "high", "{out}");
    }

    /// Reasoning carried to an Anthropic client in a thinking block (an
    /// earlier turn gpt-6-luna answered) goes back to luna as its reasoning
    /// item, and never to Claude, whose body goes without the block.
    #[test]
    fn carried_reasoning_goes_back_to_its_own_model_only() {
        let t = table_with_luna();
        let detail = serde_json::json!({"type": "reasoning.encrypted", "id": "rs_1",
            "data": "gAAAA-one", "format": "openai-responses-v1"});
        let body = |model: &str| {
            serde_json::json!({"model": model, "max_tokens": 900,
                "thinking": {"type": "enabled", "budget_tokens": 10000},
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": "weather in Oslo?"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "", "signature": crate::protocol::chat::carry(&detail)},
                        {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "4C"}]}]})
            .to_string()
        };
        let (model, out, _) = first(&t, Protocol::Messages, &body("gpt-6-luna"));
        assert_eq!(model, "gpt-6-luna");
        assert_eq!(input_kinds(&out), REASONING_TURN, "{out}");
        assert_eq!(out["input"][1]["encrypted_content"], "gAAAA-one");

        let (_, out, dropped) = first(&t, Protocol::Messages, &body("claude-opus-4-5"));
        assert_eq!(
            out["messages"][1]["content"][0]["type"], "tool_use",
            "{out}"
        );
        // What is left is a tool turn Claude did not think in.
        assert_eq!(dropped.names(), "thinking");
        let (_, out, _) = first(&t, Protocol::Messages, &body("gpt-4o-mini"));
        assert!(
            out["messages"][1].get("reasoning_details").is_none(),
            "{out}"
        );
    }

    /// A tool turn whose call Claude did not make with its thinking (another
    /// model answered it, or the client kept no reasoning) reaches Claude
    /// without `thinking`, named as dropped: with it Anthropic refuses the
    /// turn. A turn that starts with its thinking keeps it, the body as the
    /// client sent it.
    #[test]
    fn a_tool_turn_without_claudes_thinking_goes_on_without_thinking() {
        let t = table();
        let enabled = r#""thinking":{"type":"enabled","budget_tokens":1024}"#;
        let messages = |first: &str| {
            format!(
                r#"{{"model":"claude-opus-4-5","max_tokens":4096,{enabled},"tools":[{{"name":"f","input_schema":{{"type":"object"}}}}],"messages":[
                {{"role":"user","content":"weather in Oslo?"}},
                {{"role":"assistant","content":[{first}{{"type":"tool_use","id":"toolu_1","name":"f","input":{{}}}}]}},
                {{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_1","content":"4 degrees"}}]}}]}}"#
            )
        };
        let (model, out, dropped) = first(&t, Protocol::Messages, &messages(""));
        assert_eq!(model, "claude-opus-4-5");
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(dropped.names(), "thinking");
        assert_eq!(
            out["messages"][1]["content"][0]["type"], "tool_use",
            "{out}"
        );
        let kept = messages(r#"{"type":"thinking","thinking":"t","signature":"s"},"#);
        let mut p = plan(&t, Protocol::Messages, &kept).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert!(matches!(a.upstream, Upstream::Edit(_)) && a.dropped.is_empty());

        // A Chat client's loop: the same, in its translation.
        let chat = |details: &str| {
            format!(
                r#"{{"model":"claude-opus-4-5",{enabled},"tools":[{{"type":"function","function":{{"name":"f"}}}}],"messages":[
                {{"role":"user","content":"weather in Oslo?"}},
                {{"role":"assistant","content":null{details},"tool_calls":[{{"id":"toolu_1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},
                {{"role":"tool","tool_call_id":"toolu_1","content":"4 degrees"}}]}}"#
            )
        };
        let (_, out, dropped) = first(&t, Protocol::Chat, &chat(""));
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(dropped.names(), "thinking");
        let details = r#","reasoning_details":[{"type":"reasoning.text","text":"t","signature":"s","format":"anthropic-claude-v1","index":0}]"#;
        let (_, out, dropped) = first(&t, Protocol::Chat, &chat(details));
        assert_eq!(out["thinking"]["type"], "enabled", "{out}");
        assert_eq!(
            out["messages"][1]["content"][0]["type"], "thinking",
            "{out}"
        );
        assert!(dropped.is_empty(), "{}", dropped.names());
    }

    /// Claude 5.x refuses sampling parameters: a request that sets them
    /// reaches it without them, named or routed, from either client
    /// protocol, and the attempt says what was dropped. Other models get them.
    #[test]
    fn a_model_that_refuses_sampling_parameters_gets_the_request_without_them() {
        let t = table();
        let chat = r#"{"model":"claude-opus-5-5","temperature":0.7,"top_p":0.9,"messages":[{"role":"user","content":"hi"}]}"#;
        let (model, out, dropped) = first(&t, Protocol::Chat, chat);
        assert_eq!(model, "claude-opus-5-5");
        assert_eq!(dropped.names(), "temperature,top_p");
        assert!(
            out.get("temperature").is_none() && out.get("top_p").is_none(),
            "{out}"
        );
        assert_eq!(out["messages"][0]["content"][0]["text"], "hi");

        let older = chat.replace("claude-opus-5-5", "claude-opus-4-5");
        let (_, out, dropped) = first(&t, Protocol::Chat, &older);
        assert!(dropped.is_empty());
        assert_eq!(out["temperature"], 0.7);

        // An Anthropic client's body, same protocol: rewritten only then.
        let messages = r#"{"model":"claude-sonnet-5-5","max_tokens":50,"temperature":0.2,"top_k":4,"top_p":null,"messages":[{"role":"user","content":"hi"}]}"#;
        let (model, out, dropped) = first(&t, Protocol::Messages, messages);
        assert_eq!(model, "claude-sonnet-5-5");
        assert_eq!(dropped.names(), "temperature,top_k", "a null is not set");
        assert_eq!(out["max_tokens"], 50);
        assert!(
            ["temperature", "top_k", "top_p"]
                .iter()
                .all(|p| out.get(p).is_none()),
            "{out}"
        );
        let mut p = plan(
            &t,
            Protocol::Messages,
            &messages.replace("claude-sonnet-5-5", "claude-opus-4-5"),
        )
        .unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert!(matches!(a.upstream, Upstream::Edit(_)) && a.dropped.is_empty());

        // Routed: a hard request at a temperature goes to Claude 5.x without it.
        let routed = r#"{"model":"auto","temperature":0.5,"messages":[{"role":"user","content":"Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation."}]}"#;
        let (model, out, dropped) = first(&t, Protocol::Chat, routed);
        assert!(model.ends_with("-5-5"), "{model}");
        assert_eq!(dropped.names(), "temperature");
        assert!(out.get("temperature").is_none(), "{out}");
    }

    /// A Chat client's parameters that Anthropic's Messages API has no
    /// place for reach a Claude model without them, named; `stop` goes as
    /// `stop_sequences`.
    #[test]
    fn chat_parameters_anthropic_has_no_place_for_are_named() {
        let t = table();
        let body = r#"{"model":"claude-opus-4-5","seed":3,"stop":["END"],"frequency_penalty":0.5,"logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let (model, out, dropped) = first(&t, Protocol::Chat, body);
        assert_eq!(model, "claude-opus-4-5");
        assert_eq!(dropped.names(), "seed,frequency_penalty,logprobs");
        assert_eq!(out["stop_sequences"][0], "END", "{out}");
        assert!(
            out.get("seed").is_none() && out.get("logprobs").is_none(),
            "{out}"
        );
        // OpenAI's models take them all.
        let (_, out, dropped) = first(
            &t,
            Protocol::Chat,
            &body.replace("claude-opus-4-5", "gpt-4o"),
        );
        assert!(dropped.is_empty(), "{}", dropped.names());
        assert_eq!(out["seed"], 3);
    }

    /// A routed request whose body a candidate's protocol cannot carry (`n`
    /// above 1 has no place in Anthropic's Messages API) passes that
    /// candidate by for the next; naming the model is the client's 400, and
    /// a body no candidate takes gets the first candidate's error.
    #[test]
    fn a_candidate_that_cannot_take_the_body_is_passed_over() {
        let t = table();
        let hard = r#"{"model":"auto","n":2,"messages":[{"role":"user","content":"Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation."}]}"#;
        let mut p = plan(&t, Protocol::Chat, hard).unwrap();
        let claude = p.ranked[0];
        assert_eq!(t.model(claude).unwrap().provider, "anthropic");
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(t.model(a.model).unwrap().provider, "openai");
        // Every Anthropic candidate ranked before it is out of the ranking,
        // none counted as an attempt.
        assert_eq!(p.tried(), [a.model]);
        assert!(!p.ranked.contains(&claude));
        let out: serde_json::Value = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        assert_eq!(out["n"], 2);

        let named = hard.replace("auto", "claude-sonnet-5-5");
        let mut p = plan(&t, Protocol::Chat, &named).unwrap();
        let e = p
            .next_attempt(&t, &t.accounts()[0], 3)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("`n` greater than 1"), "{e:?}");

        // No candidate takes it: the first one's error.
        let mut p = plan(&t, Protocol::Chat, hard).unwrap();
        p.ranked
            .retain(|&m| t.model(m).unwrap().provider == "anthropic");
        let e = p
            .next_attempt(&t, &t.accounts()[0], 3)
            .unwrap()
            .unwrap_err();
        assert!(e.message().contains("`n` greater than 1"), "{e:?}");
        assert!(p.next_attempt(&t, &t.accounts()[0], 3).is_none());
    }

    /// A request that forces a tool is never routed to a model that cannot
    /// force one, nor failed over to one; naming one is the client's 400.
    /// A conversation that ends with an assistant message (a prefill) is
    /// never routed to the models that refuse one (Claude 5.x), from either
    /// client protocol; naming one is a 400 before any provider is called.
    #[test]
    fn a_prefill_excludes_the_models_that_refuse_it() {
        let t = table();
        let refuses = |m: ModelIx| !t.model(m).unwrap().capabilities.assistant_prefill;
        let hard = "Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation.";
        let chat = |model: &str, last: &str| {
            format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"{hard}"}}{last}]}}"#
            )
        };
        let free = plan(&t, Protocol::Chat, &chat("auto", "")).unwrap();
        assert!(
            refuses(free.ranked[0]),
            "no prefill, Claude 5.x wins: {:?}",
            free.ranked
        );
        let prefill = r#",{"role":"assistant","content":"Proof. Let"}"#;
        let p = plan(&t, Protocol::Chat, &chat("auto", prefill)).unwrap();
        assert!(
            !p.ranked.is_empty() && !p.ranked.iter().any(|&m| refuses(m)),
            "{:?}",
            p.ranked
        );
        let messages = format!(
            r#"{{"model":"auto","max_tokens":10,"messages":[{{"role":"user","content":"{hard}"}},{{"role":"assistant","content":"Proof. Let"}}]}}"#
        );
        let p = plan(&t, Protocol::Messages, &messages).unwrap();
        assert!(
            !p.ranked.is_empty() && !p.ranked.iter().any(|&m| refuses(m)),
            "{:?}",
            p.ranked
        );
        let e = plan(&t, Protocol::Chat, &chat("claude-sonnet-5-5", prefill)).unwrap_err();
        let ApiError::Unsupported(message) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(e.status(), 400);
        assert!(
            message.contains("`claude-sonnet-5-5`") && message.contains("prefill"),
            "{message}"
        );
        // A model that continues one takes it, named.
        assert!(plan(&t, Protocol::Chat, &chat("claude-opus-4-5", prefill)).is_ok());
    }

    /// Claude Haiku 5.5 thinks unless told not to (`disable_thinking`): a
    /// request that asks for no reasoning and says nothing of thinking
    /// reaches it with `thinking` disabled, from either client protocol; one
    /// that asks for reasoning, or sets `thinking` or `output_config`, gets
    /// the model's own default or its own setting. The other Claude 5.x,
    /// which refuse `disabled`, never get it.
    #[test]
    fn claude_5_is_told_not_to_think_unless_the_client_asks() {
        let mut raw = raw_table();
        for m in raw.models.iter_mut().filter(|m| m.id == "claude-haiku-5-5") {
            m.enabled = true;
        }
        let t = Table::compile(raw).unwrap();
        let disabled = serde_json::json!({"type": "disabled"});
        let chat = |extra: &str| {
            format!(
                r#"{{"model":"claude-haiku-5-5"{extra},"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        for extra in [
            "",
            r#","reasoning_effort":"none""#,
            r#","reasoning_effort":null"#,
        ] {
            let (model, out, _) = first(&t, Protocol::Chat, &chat(extra));
            assert_eq!(model, "claude-haiku-5-5");
            assert_eq!(out["thinking"], disabled, "{extra}: {out}");
        }
        let (_, out, _) = first(&t, Protocol::Chat, &chat(r#","reasoning_effort":"low""#));
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(out["output_config"], serde_json::json!({"effort": "low"}));
        let (_, out, _) = first(
            &t,
            Protocol::Chat,
            &chat(r#","thinking":{"type":"adaptive"}"#),
        );
        assert_eq!(out["thinking"], serde_json::json!({"type": "adaptive"}));

        let messages = |extra: &str| {
            format!(
                r#"{{"model":"claude-haiku-5-5","max_tokens":10{extra},"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        let (_, out, _) = first(&t, Protocol::Messages, &messages(""));
        assert_eq!(out["thinking"], disabled, "{out}");
        let (_, out, _) = first(&t, Protocol::Messages, &messages(r#","thinking":null"#));
        assert_eq!(out["thinking"], disabled, "a null is replaced: {out}");
        let (_, out, _) = first(
            &t,
            Protocol::Messages,
            &messages(r#","output_config":{"effort":"max"}"#),
        );
        assert!(out.get("thinking").is_none(), "{out}");
        let own = r#","thinking":{"type":"adaptive"}"#;
        let (_, out, _) = first(&t, Protocol::Messages, &messages(own));
        assert_eq!(out["thinking"], serde_json::json!({"type": "adaptive"}));

        for model in ["claude-opus-5-5", "claude-opus-4-5"] {
            let body = chat("").replace("claude-haiku-5-5", model);
            let (got, out, _) = first(&t, Protocol::Chat, &body);
            assert_eq!(got, model);
            assert!(out.get("thinking").is_none(), "{model}: {out}");
        }

        // Sonnet 5.5 is told its own way, `between_tools` (`disabled` is a
        // 400 there), a client's own `disabled` too.
        let between = serde_json::json!({"type": "between_tools"});
        let sonnet = |extra: &str| chat(extra).replace("claude-haiku-5-5", "claude-sonnet-5-5");
        for extra in ["", r#","reasoning_effort":"none""#] {
            let (_, out, _) = first(&t, Protocol::Chat, &sonnet(extra));
            assert_eq!(out["thinking"], between, "{extra}: {out}");
            assert!(out.get("output_config").is_none(), "{extra}: {out}");
        }
        let (_, out, _) = first(&t, Protocol::Chat, &sonnet(r#","reasoning_effort":"high""#));
        assert!(out.get("thinking").is_none(), "{out}");
        let own = r#","thinking":{"type":"disabled"}"#;
        let (_, out, dropped) = first(&t, Protocol::Chat, &sonnet(own));
        assert_eq!(out["thinking"], between, "{out}");
        assert!(dropped.is_empty(), "{}", dropped.names());
        let body = messages(own).replace("claude-haiku-5-5", "claude-sonnet-5-5");
        let (_, out, _) = first(&t, Protocol::Messages, &body);
        assert_eq!(out["thinking"], between, "{out}");
        // Haiku keeps a client's `disabled` as it is.
        let (_, out, _) = first(&t, Protocol::Messages, &messages(own));
        assert_eq!(out["thinking"], disabled, "{out}");
    }

    /// The Claude 5.x take a reasoning effort as `output_config.effort`
    /// (`output_effort`): a Chat client's `reasoning_effort` is sent so —
    /// `"none"`, which Opus 5.5 cannot honour, as the least —
    /// unless the client set `thinking` or `output_config` of its own;
    /// other Claude models never get it.
    #[test]
    fn a_reasoning_effort_reaches_claude_5_as_its_output_effort() {
        let t = table();
        let body = |model: &str, extra: &str| {
            format!(r#"{{"model":"{model}"{extra},"messages":[{{"role":"user","content":"hi"}}]}}"#)
        };
        for model in ["claude-sonnet-5-5", "claude-opus-5-5"] {
            for (effort, sent) in [
                ("minimal", Some("low")),
                ("low", Some("low")),
                ("medium", Some("medium")),
                ("high", Some("high")),
                ("xhigh", Some("xhigh")),
                // Sonnet 5.5 stops thinking instead (`between_tools`).
                ("none", (model == "claude-opus-5-5").then_some("low")),
                ("turbo", None),
            ] {
                let extra = format!(r#","reasoning_effort":"{effort}""#);
                let (got, out, _) = first(&t, Protocol::Chat, &body(model, &extra));
                assert_eq!(got, model);
                assert_eq!(
                    out.get("output_config"),
                    sent.map(|e| serde_json::json!({"effort": e})).as_ref(),
                    "{model} {effort}: {out}"
                );
                assert!(out.get("reasoning_effort").is_none(), "{out}");
            }
            let (_, out, _) = first(&t, Protocol::Chat, &body(model, ""));
            assert!(out.get("output_config").is_none(), "{out}");
            let own = r#","reasoning_effort":"high","output_config":{"effort":"max"}"#;
            let (_, out, _) = first(&t, Protocol::Chat, &body(model, own));
            assert_eq!(out["output_config"], serde_json::json!({"effort": "max"}));
        }
        let (_, out, _) = first(
            &t,
            Protocol::Chat,
            &body("claude-opus-4-5", r#","reasoning_effort":"low""#),
        );
        assert!(out.get("output_config").is_none(), "{out}");
    }

    #[test]
    fn a_forced_tool_choice_excludes_the_models_that_refuse_it() {
        let t = table();
        let tools = r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#;
        let hard = "Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation.";
        let body = |model: &str, choice: &str| {
            format!(
                r#"{{"model":"{model}",{tools},"tool_choice":{choice},"messages":[{{"role":"user","content":"{hard}"}}]}}"#
            )
        };
        let refuses = |m: ModelIx| !t.model(m).unwrap().capabilities.forced_tool_choice;
        let free = plan(&t, Protocol::Chat, &body("auto", r#""auto""#)).unwrap();
        assert!(
            refuses(free.ranked[0]),
            "unforced, Claude 5.x wins: {:?}",
            free.ranked
        );
        for choice in [
            r#""required""#,
            r#"{"type":"function","function":{"name":"f"}}"#,
        ] {
            let p = plan(&t, Protocol::Chat, &body("auto", choice)).unwrap();
            assert!(!p.ranked.is_empty());
            assert!(
                !p.ranked.iter().any(|&m| refuses(m)),
                "{choice}: {:?}",
                p.ranked
            );
            // Named elsewhere, its failover candidates exclude them too.
            let mut p = plan(&t, Protocol::Chat, &body("gpt-4o", choice)).unwrap();
            p.rank_fallbacks(&t, &t.accounts()[0]);
            assert!(p.ranked.len() > 1 && !p.ranked.iter().any(|&m| refuses(m)));
            let e = plan(&t, Protocol::Chat, &body("claude-opus-5-5", choice)).unwrap_err();
            assert_eq!(e.status(), 400);
            let ApiError::Unsupported(message) = &e else {
                panic!("{e:?}")
            };
            assert!(
                message.contains("`claude-opus-5-5`") && message.contains("tool_choice"),
                "{message}"
            );
        }
        // The Anthropic client's forms: `any` and `tool`.
        for choice in [r#"{"type":"any"}"#, r#"{"type":"tool","name":"f"}"#] {
            let messages = format!(
                r#"{{"model":"claude-sonnet-5-5","max_tokens":10,"tools":[{{"name":"f","input_schema":{{"type":"object"}}}}],"tool_choice":{choice},"messages":[{{"role":"user","content":"hi"}}]}}"#
            );
            let e = plan(&t, Protocol::Messages, &messages).unwrap_err();
            assert!(
                matches!(&e, ApiError::Unsupported(m) if m.contains("claude-sonnet-5-5")),
                "{e:?}"
            );
            let routed = messages.replace("claude-sonnet-5-5", "auto");
            let p = plan(&t, Protocol::Messages, &routed).unwrap();
            assert!(!p.ranked.iter().any(|&m| refuses(m)), "{choice}");
        }
        // Every candidate refusing: no candidate, named as such.
        let only = Table::compile(RoutingTable {
            models: crate::catalog::default_models()
                .into_iter()
                .filter(|m| m.id.ends_with("-5-5"))
                .collect(),
            ..raw_table()
        })
        .unwrap();
        let e = plan(&only, Protocol::Chat, &body("auto", r#""required""#)).unwrap_err();
        assert!(
            matches!(&e, ApiError::Unsupported(m) if m.contains("a forced tool choice")),
            "{e:?}"
        );
    }

    #[test]
    fn only_a_chat_clients_unasked_usage_chunk_is_hidden() {
        let t = table();
        let s =
            r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(
            plan(&t, Protocol::Chat, s)
                .unwrap()
                .hides_usage(Protocol::Chat)
        );
        let asked = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(
            !plan(&t, Protocol::Chat, asked)
                .unwrap()
                .hides_usage(Protocol::Chat)
        );
        assert!(
            !plan(&t, Protocol::Chat, s)
                .unwrap()
                .hides_usage(Protocol::Messages)
        );
    }

    #[test]
    fn only_deterministic_whole_answers_get_cache_key_material() {
        let t = table();
        let greedy = r#"{"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(plan(&t, Protocol::Chat, greedy).unwrap().prompt.is_some());
        let warm = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(plan(&t, Protocol::Chat, warm).unwrap().prompt.is_none());
        let streamed =
            r#"{"temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(plan(&t, Protocol::Chat, streamed).unwrap().prompt.is_none());
    }

    /// gpt-6-luna enters service at 2027-01-14 (`catalog`): before, naming
    /// it is a 404 `model_not_found` with that date and "auto" never picks
    /// it, whatever the request; from the instant (or with the date
    /// cleared) the same requests reach it.
    #[test]
    fn gpt_6_luna_waits_for_its_instant() {
        let hard = "Prove by induction that the sum of the first n odd numbers is n^2, then give a formal complexity analysis of the proof checking and discuss the architecture trade-offs of a verified implementation.";
        let named = r#"{"model":"gpt-6-luna","messages":[{"role":"user","content":"hi"}]}"#;
        let routed = |text: &str| {
            format!(r#"{{"model":"auto","messages":[{{"role":"user","content":"{text}"}}]}}"#)
        };
        let t = table();
        let luna = t.resolve_model("gpt-6-luna").unwrap();
        let from = crate::timestamp::Timestamp(1_799_884_800_000);
        assert_eq!(
            plan(&t, Protocol::Chat, named).unwrap_err(),
            ApiError::ModelOutOfService {
                model: "gpt-6-luna".into(),
                why: crate::error::OutOfService::Until(from),
                pass_through: false,
            }
        );
        for text in ["hi", hard] {
            let p = plan(&t, Protocol::Chat, &routed(text)).unwrap();
            assert!(!p.ranked.is_empty() && !p.ranked.contains(&luna), "{text}");
        }
        for t in [t.priced_at(from.ms()).into_owned(), table_with_luna()] {
            assert_eq!(plan(&t, Protocol::Chat, named).unwrap().ranked[0], luna);
            for text in ["hi", hard] {
                assert_eq!(
                    plan(&t, Protocol::Chat, &routed(text)).unwrap().ranked[0],
                    luna
                );
            }
        }
    }

    /// A tenant policy naming a model that retires (filter/README.md,
    /// "Scheduled retirements") is treated as for a disabled model: before
    /// the instant its alias and pin reach the model; from the instant the
    /// alias is refused as naming it would be (404, with the date, where a
    /// disabled model's is a plain 404) and the pin no longer applies.
    #[test]
    fn a_policy_naming_a_retired_model_is_treated_as_for_a_disabled_one() {
        const R: u64 = 1_799_884_800_000; // gpt-4o-mini's 2027-01-14
        let mut raw = raw_table();
        raw.tenants[0].policy = Some(
            serde_json::from_str(r#"{"aliases": {"cheap": "gpt-4o-mini"}, "pin": "gpt-4o-mini"}"#)
                .unwrap(),
        );
        let t = Table::compile(raw.clone()).unwrap();
        let mini = t.resolve_model("gpt-4o-mini").unwrap();
        let alias = r#"{"model":"cheap","messages":[{"role":"user","content":"hi"}]}"#;
        let auto = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let hard = r#"{"model":"auto","messages":[{"role":"user","content":"Prove that the square root of 2 is irrational, formally."}]}"#;
        let before = t.priced_at(R - 1);
        assert_eq!(
            plan(&before, Protocol::Chat, alias).unwrap().ranked[0],
            mini
        );
        assert_eq!(
            plan(&before, Protocol::Chat, hard).unwrap().ranked[0],
            mini,
            "pinned"
        );
        let after = t.priced_at(R);
        assert_eq!(
            plan(&after, Protocol::Chat, alias).unwrap_err(),
            ApiError::ModelOutOfService {
                model: "cheap".into(),
                why: crate::error::OutOfService::Retired(crate::timestamp::Timestamp(R)),
                pass_through: false,
            }
        );
        for body in [auto, hard] {
            let p = plan(&after, Protocol::Chat, body).unwrap();
            assert!(!p.ranked.is_empty() && !p.ranked.contains(&mini), "{body}");
        }
        // The same policy with the model disabled instead: the plain 404.
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-4o-mini") {
            m.enabled = false;
        }
        let disabled = Table::compile(raw).unwrap();
        assert_eq!(
            plan(&disabled.priced_at(R - 1), Protocol::Chat, alias).unwrap_err(),
            ApiError::ModelNotFound("cheap".into())
        );
    }

    /// gpt-6-luna (`catalog::GPT_6`) gets its Chat Completions body written
    /// the way OpenAI takes it: `max_tokens` as `max_completion_tokens`,
    /// and `reasoning_effort` `"none"` when the client set none, so that its
    /// tools and sampling parameters are accepted. Other models get the
    /// client's body.
    #[test]
    fn gpt_6_luna_gets_max_completion_tokens_and_no_reasoning() {
        let t = table_with_luna();
        let tools = r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#;
        let body = format!(
            r#"{{"model":"gpt-6-luna","max_tokens":50,"temperature":0.2,{tools},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let (model, out, dropped) = first(&t, Protocol::Chat, &body);
        assert_eq!(model, "gpt-6-luna");
        assert!(dropped.is_empty());
        assert_eq!(out["max_completion_tokens"], 50, "{out}");
        assert!(out.get("max_tokens").is_none(), "{out}");
        assert_eq!(out["reasoning_effort"], "none");
        assert_eq!(out["temperature"], 0.2);
        assert_eq!(out["tools"][0]["function"]["name"], "f");

        // Both budgets set: the one it takes is kept.
        let both = r#"{"model":"gpt-6-luna","max_tokens":50,"max_completion_tokens":70,"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, out, _) = first(&t, Protocol::Chat, both);
        assert_eq!(out["max_completion_tokens"], 70);
        assert!(out.get("max_tokens").is_none(), "{out}");

        // The client's own "none", or a null, is sent once.
        for effort in [r#""none""#, "null"] {
            let b = format!(
                r#"{{"model":"gpt-6-luna","reasoning_effort":{effort},"temperature":1,"messages":[{{"role":"user","content":"hi"}}]}}"#
            );
            let (_, out, dropped) = first(&t, Protocol::Chat, &b);
            assert_eq!(out["reasoning_effort"], "none", "{out}");
            assert!(dropped.is_empty());
            let sent = String::from_utf8(
                plan(&t, Protocol::Chat, &b)
                    .unwrap()
                    .next_attempt(&t, &t.accounts()[0], 1)
                    .unwrap()
                    .unwrap()
                    .upstream
                    .bytes(b.as_bytes()),
            )
            .unwrap();
            assert_eq!(sent.matches("reasoning_effort").count(), 1, "{sent}");
        }

        // The client asks it to reason: its effort stands, and the sampling
        // parameters it would refuse with it are dropped and named.
        let reasons = r#"{"model":"gpt-6-luna","reasoning_effort":"low","temperature":0.2,"top_p":0.5,"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, out, dropped) = first(&t, Protocol::Chat, reasons);
        assert_eq!(out["reasoning_effort"], "low");
        assert_eq!(dropped.names(), "temperature,top_p");
        assert!(out.get("temperature").is_none() && out.get("top_p").is_none());

        // An Anthropic client's request, translated: the same adaptation.
        let messages =
            r#"{"model":"gpt-6-luna","max_tokens":40,"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, out, _) = first(&t, Protocol::Messages, messages);
        assert_eq!(out["max_completion_tokens"], 40, "{out}");
        assert!(out.get("max_tokens").is_none(), "{out}");
        assert_eq!(out["reasoning_effort"], "none");

        // Another OpenAI model gets the client's body as it came.
        let other = body.replace("gpt-6-luna", "gpt-4o");
        let mut p = plan(&t, Protocol::Chat, &other).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 1).unwrap().unwrap();
        assert!(matches!(a.upstream, Upstream::Edit(_)));
        let out: serde_json::Value = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        assert_eq!(out["max_tokens"], 50);
        assert!(
            out.get("reasoning_effort").is_none() && out.get("max_completion_tokens").is_none()
        );
    }

    /// A Responses API client's request that goes to the Responses API is
    /// its own body: the reasoning items of its earlier turns (with
    /// `encrypted_content`) and its `include` reach the model, a reasoning
    /// item OpenAI would have had to store does not, and nothing is stored.
    /// The answer comes back as the provider sent it.
    #[test]
    fn a_responses_client_keeps_its_reasoning_items_on_the_responses_api() {
        let body = serde_json::json!({
            "model": "auto",
            "input": [
                {"role": "user", "content": "weather in paris?"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"},
                {"type": "reasoning", "id": "rs_0", "summary": []},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "12C"}
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "store": true,
            "max_output_tokens": 8,
            "temperature": 0.2
        })
        .to_string();
        let t = table_with_luna();
        let luna = t.resolve_model("gpt-6-luna").unwrap();
        let mut p = plan(&t, Protocol::Responses, &body).unwrap();
        assert_eq!(p.ranked[0], luna);
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(a.wire, Protocol::Responses);
        let out: serde_json::Value = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        assert_eq!(out["model"], "gpt-6-luna");
        assert_eq!(out["store"], false);
        assert_eq!(out["include"][0], "reasoning.encrypted_content");
        assert_eq!(
            out["reasoning"],
            serde_json::json!({"effort": "low", "summary": "auto"})
        );
        assert_eq!(out["max_output_tokens"], 16);
        assert_eq!(input_kinds(&out), REASONING_TURN, "{out}");
        assert_eq!(out["input"][1]["encrypted_content"], "gAAAA-opaque");
        // A reasoning model with an effort takes no sampling parameters.
        assert!(out.get("temperature").is_none(), "{out}");
        assert_eq!(a.dropped.names(), "temperature");
        let reshape = crate::reshape::Reshape::new(crate::reshape::Shape {
            client: Protocol::Responses,
            provider: a.wire,
            stream: false,
            include_usage: false,
            hide_usage: false,
            model: "gpt-6-luna",
            created: 0,
        });
        assert!(!reshape.changes_body());
        // On any other wire it is translated through Chat Completions.
        let chat = body.replace(r#""effort":"low""#, r#""effort":"none""#);
        let mut p = plan(&t, Protocol::Responses, &chat).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(a.wire, Protocol::Chat);
        let out: serde_json::Value = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        assert!(
            out.get("messages").is_some() && out.get("input").is_none(),
            "{out}"
        );
    }

    /// Tools with a reasoning effort other than none are what gpt-6-luna
    /// refuses on Chat Completions and takes on OpenAI's Responses API: such
    /// a request goes there, and every other keeps Chat Completions. A model
    /// without the Responses API is never sent one (a 400 when named,
    /// ranked out when routed).
    #[test]
    fn gpt_6_luna_takes_tools_with_reasoning_over_the_responses_api() {
        let body = |model: &str, effort: &str, tools: bool| {
            let tools = if tools {
                r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"#
            } else {
                ""
            };
            format!(
                r#"{{"model":"{model}",{tools}"reasoning_effort":{effort},"temperature":0.5,"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        let t = table_with_luna();
        let luna = t.resolve_model("gpt-6-luna").unwrap();
        // Tools with an effort: named or routed, luna gets a Responses API
        // body (the cheapest model, so first when routed); its sampling
        // parameters go, as on Chat Completions.
        for model in ["gpt-6-luna", "auto"] {
            let mut p = plan(&t, Protocol::Chat, &body(model, r#""high""#, true)).unwrap();
            assert_eq!(p.ranked[0], luna, "{model}");
            let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
            assert_eq!(a.wire, Protocol::Responses, "{model}");
            let out: serde_json::Value =
                serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
            assert_eq!(out["reasoning"]["effort"], "high");
            assert_eq!(out["tools"][0]["name"], "f");
            assert_eq!(out["store"], false);
            assert!(
                out.get("temperature").is_none() && out.get("messages").is_none(),
                "{out}"
            );
            assert_eq!(a.dropped.names(), "temperature");
        }
        // Anything else keeps Chat Completions.
        for (effort, tools) in [(r#""none""#, true), (r#""high""#, false), ("null", true)] {
            let mut p = plan(&t, Protocol::Chat, &body("auto", effort, tools)).unwrap();
            assert_eq!(p.ranked[0], luna, "{effort} tools={tools}");
            let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
            assert_eq!(a.wire, Protocol::Chat, "{effort} tools={tools}");
        }

        // Without the Responses API, such a model is never sent tools with
        // reasoning: naming it is a 400, routing goes around it.
        let mut raw = raw_table();
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-6-luna") {
            m.enabled_from = None;
            m.capabilities.responses_api = false;
        }
        let t = Table::compile(raw).unwrap();
        let e = plan(&t, Protocol::Chat, &body("gpt-6-luna", r#""high""#, true)).unwrap_err();
        assert_eq!(e.status(), 400);
        let ApiError::Unsupported(message) = &e else {
            panic!("{e:?}")
        };
        assert!(
            message.contains("`gpt-6-luna`") && message.contains("reasoning_effort"),
            "{message}"
        );
        let routed = plan(&t, Protocol::Chat, &body("auto", r#""high""#, true)).unwrap();
        assert!(!routed.ranked.is_empty() && !routed.ranked.contains(&luna));
        let mut named = plan(&t, Protocol::Chat, &body("gpt-4o", r#""high""#, true)).unwrap();
        named.rank_fallbacks(&t, &t.accounts()[0]);
        assert!(named.ranked.len() > 1 && !named.ranked.contains(&luna));

        // A body the Responses API cannot carry (`n` above 1 here): routing
        // passes luna by to the next candidate, which takes it; naming luna
        // is a 400 that says why, before any provider is called.
        let n2 = body("auto", r#""high""#, true).replacen('{', r#"{"n":2,"#, 1);
        let t = table_with_luna();
        let mut routed = plan(&t, Protocol::Chat, &n2).unwrap();
        assert_eq!(routed.ranked[0], luna);
        let a = routed
            .next_attempt(&t, &t.accounts()[0], 3)
            .unwrap()
            .unwrap();
        assert_ne!(a.model, luna);
        assert_eq!(routed.tried(), [a.model]);
        let mut named = plan(&t, Protocol::Chat, &n2.replace("auto", "gpt-6-luna")).unwrap();
        let e = named
            .next_attempt(&t, &t.accounts()[0], 3)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("`n` above 1"), "{e:?}");
        // Without tools it keeps Chat Completions, which takes `n`.
        let plain = plan(&t, Protocol::Chat, &n2.replace("\"tools\"", "\"x\"")).unwrap();
        assert_eq!(plain.ranked[0], luna);

        // What the Responses API has no equivalent for is named as dropped;
        // Chat Completions keeps it.
        let extra = |b: String| b.replacen('{', r#"{"stop":["END"],"seed":7,"#, 1);
        let mut p = plan(&t, Protocol::Chat, &extra(body("auto", r#""high""#, true))).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(a.wire, Protocol::Responses);
        assert_eq!(a.dropped.names(), "temperature,stop,seed");
        let out: serde_json::Value = serde_json::from_slice(&a.upstream.bytes(p.body())).unwrap();
        assert!(
            out.get("stop").is_none() && out.get("seed").is_none(),
            "{out}"
        );
        let mut p = plan(&t, Protocol::Chat, &extra(body("auto", r#""none""#, true))).unwrap();
        let a = p.next_attempt(&t, &t.accounts()[0], 3).unwrap().unwrap();
        assert_eq!(a.wire, Protocol::Chat);
        assert!(a.dropped.is_empty(), "{}", a.dropped.names());

        // Only an OpenAI-format provider with a chat path to swap has one.
        let mut raw = raw_table();
        for p in raw.providers.iter_mut().filter(|p| p.id == "openai") {
            p.chat_path = "/openai/deployments/x/chat".into();
        }
        let e = Table::compile(raw).unwrap_err();
        assert!(
            e.0.contains("gpt-6-luna") && e.0.contains("responses_api"),
            "{}",
            e.0
        );
    }
}
