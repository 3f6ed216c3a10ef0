//! The names Envoy's configs, the filter (in each of its roles) and the
//! control plane must agree on, in one place. Changing one here changes it
//! for every Rust side; the YAMLs in `envoy/` spell the same names, and
//! `tests/tests/configs.rs` checks they still do.

// ---- Envoy config ⇄ filter ------------------------------------------------

/// The request header Envoy's route reads the upstream cluster from
/// (`route.cluster_header`), unless the plugin config names another.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-aipipe-cluster";
/// The root id of the module running as the singleton (a bootstrap Wasm
/// service on the main thread, same `vm_id` as the filter).
pub const SINGLETON_ROOT_ID: &str = "aipipe_singleton";
/// The root id of the upstream HTTP filter on each provider cluster
/// (`upstream.wasm`; the native module serves it too): it turns a failed
/// answer into Envoy's internal redirect to the next candidate.
pub const UPSTREAM_ROOT_ID: &str = "aipipe_upstream";
/// The request header carrying an attempt's redirect location from the
/// filter to the upstream filter (which removes it: providers never see it).
pub const FAILOVER_LOCATION_HEADER: &str = "x-aipipe-failover-location";
/// On a failed answer the upstream filter turned into a redirect: the
/// provider's own status.
pub const FAILED_STATUS_HEADER: &str = "x-aipipe-failed-status";
/// The authority of every failover redirect: Envoy's config routes it to
/// the route named in the redirect policy's allow list (`aipipe_failover`),
/// so that only these redirects are followed, never a provider's own.
pub const FAILOVER_AUTHORITY: &str = "aipipe.failover";
/// The query parameter of a failover redirect naming its carried state.
pub const FAILOVER_PARAM: &str = "aipipe-failover";
/// The rate-limit descriptor headers: on every authenticated request the
/// filter sets the tenant's id and, when the caller used a virtual key of
/// the directory, the key's id, for Envoy's `envoy.filters.http.ratelimit`
/// (after the filter) to build its descriptors from (envoy/ratelimit/). Any
/// client copy is stripped first (every `x-aipipe-` header is); the route
/// removes them before the provider.
pub const RL_TENANT_HEADER: &str = "x-aipipe-rl-tenant";
pub const RL_KEY_HEADER: &str = "x-aipipe-rl-key";
/// Envoy's `response.code_details` of a local reply from its rate-limit
/// filter: over the fleet-wide limit, or (with `failure_mode_deny`) the
/// rate-limit service did not answer. The filter answers these itself,
/// never as a provider's failure.
pub const RATELIMIT_OVER_LIMIT_DETAILS: &str = "request_rate_limited";
pub const RATELIMIT_ERROR_DETAILS: &str = "rate_limiter_error";

// ---- between the filter's roles (Envoy shared data and queues) -----------

/// Shared-data keys: the global table's JSON, and its version (decimal)
/// which worker VMs read on every request to notice a new table cheaply.
pub const SHARED_TABLE_KEY: &str = "aipipe.table";
pub const SHARED_VERSION_KEY: &str = "aipipe.table.version";
/// Shared-data key prefixes of the tenant directory's entries (`directory`):
/// `aipipe.t.<tenant id>` and `aipipe.k.<hex SHA-256 of a virtual key>`.
pub const DIRECTORY_TENANT_PREFIX: &str = "aipipe.t.";
pub const DIRECTORY_KEY_PREFIX: &str = "aipipe.k.";
/// …and `aipipe.b.<tenant id>`: the tenant's budget (`directory::BudgetEntry`).
pub const DIRECTORY_BUDGET_PREFIX: &str = "aipipe.b.";
/// …and `aipipe.kb.<key id>`: a virtual key's budget.
pub const DIRECTORY_KEY_BUDGET_PREFIX: &str = "aipipe.kb.";
/// Prefix of the shared-data keys of this Envoy's budget reservations per
/// tenant (`budget::Held`): `aipipe.rv.<tenant id>`.
pub const RESERVATIONS_PREFIX: &str = "aipipe.rv.";
/// …and per virtual key: `aipipe.rk.<key id>`.
pub const KEY_RESERVATIONS_PREFIX: &str = "aipipe.rk.";
/// The directory revision this Envoy holds (decimal): a restarted singleton
/// resumes from it instead of asking for everything again.
pub const DIRECTORY_REVISION_KEY: &str = "aipipe.directory.revision";
/// The first byte of a message on the usage queue that is no record (records
/// are JSON objects): a worker's notice that a budget scope's held spend
/// (the rest: its shared-data key) went from nothing to something, so the
/// singleton reports its reservations (`UsageSource::reserved_nusd`).
pub const RESERVATION_NOTICE: u8 = 0;
/// The first byte of a message a replaced singleton leaves on the usage
/// queue for the next one (`Singleton::hand_over`): a budget scope (the
/// rest: its shared-data key) whose acknowledged spend waits for a
/// directory revision, so the next singleton settles it when that arrives.
pub const AWAITING_NOTICE: u8 = 1;
/// The shared queue worker VMs put usage records on; the singleton drains it.
pub const USAGE_QUEUE: &str = "aipipe.usage";
/// The shared-data key of this Envoy's encoded penalties.
pub const PENALTIES_KEY: &str = "aipipe.penalties";
/// Prefix of the shared-data keys of the answer cache's slots.
pub const CACHE_SLOT_PREFIX: &str = "aipipe.cache.";

// ---- filter ⇄ control plane (the internal API) ---------------------------

/// The internal API between filters and the control plane (every call
/// carries `{TOKEN_HEADER}: <token>`):
///
/// - `GET {CHANGES_PATH}?since=R&wait_ms=W` → `200` with a directory delta
///   (`directory`: the global table if it changed, and every tenant and key
///   entry changed after revision R, or a page of them) — held up to W ms
///   while nothing is newer than R, so a change reaches every Envoy as soon
///   as it commits and an idle fleet costs nothing.
/// - `GET {TABLE_PATH}` (optionally with `{VERSION_HEADER}: <version>`) →
///   `200` with the global table's JSON, or `304` when the version is
///   current: for operators and tools; filters take it from the deltas.
/// - `POST {USAGE_PATH}` with a `UsageUpload` JSON body (a `UsageBatch`,
///   and from the singleton its queue's `source`) → `200` `UsageAck` once
///   every record is durably stored. Idempotent by record id: a retried
///   batch never counts twice.
pub const CHANGES_PATH: &str = "/internal/v1/changes";
pub const TABLE_PATH: &str = "/internal/v1/table";
pub const USAGE_PATH: &str = "/internal/v1/usage";
pub const TOKEN_HEADER: &str = "x-aipipe-internal-token";
/// A client's `GET /usage?days=N` (its own spend by day) is sent on by the
/// filter to `GET {TENANT_USAGE_PATH}?days=N` on the control plane's
/// cluster, with the client's virtual key: the one internal route that
/// authenticates by virtual key instead of the token, and answers only
/// that key's tenant.
pub const TENANT_USAGE_PATH: &str = "/internal/v1/tenant-usage";
/// The client path of it.
pub const CLIENT_USAGE_PATH: &str = "/usage";
/// A client's `POST /v1/feedback` (a rating of a routed answer, by its
/// request id) is sent on the same way, body and virtual key as they came,
/// to `POST {TENANT_FEEDBACK_PATH}`.
pub const TENANT_FEEDBACK_PATH: &str = "/internal/v1/feedback";
/// The client path of it.
pub const CLIENT_FEEDBACK_PATH: &str = "/v1/feedback";
/// The control plane's cluster in Envoy, unless the plugin config names
/// another (`control_plane_cluster`).
pub const DEFAULT_CONTROL_PLANE_CLUSTER: &str = "aipipe_control_plane";
pub const VERSION_HEADER: &str = "x-aipipe-table-version";
