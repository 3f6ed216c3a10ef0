//! The admin API (operators): tenants, provider keys, virtual keys, the model
//! catalog, penalties, route explanations, evals and stats, plus /healthz and /metrics. Every
//! /admin route is behind `X-Admin-Secret`. Handlers are thin: take the body
//! through [`JsonBody`](crate::body::JsonBody), validate, call `db` (or a
//! domain service), shape the answer; one file per resource. Nothing here
//! logs a request body, so provider keys and virtual keys never reach a log line.

pub(crate) mod budgets;
pub(crate) mod catalog;
pub(crate) mod evals;
pub(crate) mod explain;
pub(crate) mod import;
pub(crate) mod keys;
pub(crate) mod learning;
pub(crate) mod limits;
pub(crate) mod ops;
pub(crate) mod penalties;
pub(crate) mod policy;
pub(crate) mod tenants;
pub mod throttle;
pub(crate) mod usage;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::error::{Error, Result};

pub use keys::{check_provider_key, upsert_provider_keys};

pub const ADMIN_SECRET_HEADER: &str = "x-admin-secret";

/// The admin router. /healthz, /metrics and the dashboard's files are open
/// (no secrets in them); everything under /admin needs the admin secret.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/admin/tenants",
            post(tenants::create_tenant).get(tenants::list_tenants),
        )
        .route(
            "/admin/tenants/import",
            post(import::import).layer(axum::extract::DefaultBodyLimit::max(
                import::MAX_IMPORT_BYTES,
            )),
        )
        .route(
            "/admin/tenants/{id}",
            get(tenants::get_tenant)
                .patch(tenants::update_tenant)
                .delete(tenants::delete_tenant),
        )
        .route("/admin/tenants/{id}/keys", post(keys::upsert_keys))
        .route(
            "/admin/tenants/{id}/keys/{provider}",
            delete(keys::delete_key),
        )
        .route(
            "/admin/tenants/{id}/virtual-keys",
            post(keys::create_virtual_key).get(keys::list_virtual_keys),
        )
        .route(
            "/admin/tenants/{id}/virtual-keys/{key_id}",
            delete(keys::revoke_virtual_key),
        )
        .route("/admin/tenants/{id}/stats", get(usage::stats))
        .route(
            "/admin/tenants/{id}/budget",
            put(budgets::put_budget)
                .get(budgets::get_budget)
                .delete(budgets::delete_budget),
        )
        .route(
            "/admin/tenants/{id}/limits",
            put(limits::put_tenant_limits)
                .get(limits::get_tenant_limits)
                .delete(limits::delete_tenant_limits),
        )
        .route(
            "/admin/tenants/{id}/virtual-keys/{key_id}/budget",
            put(budgets::put_key_budget)
                .get(budgets::get_key_budget)
                .delete(budgets::delete_key_budget),
        )
        .route(
            "/admin/tenants/{id}/virtual-keys/{key_id}/limits",
            put(limits::put_key_limits)
                .get(limits::get_key_limits)
                .delete(limits::delete_key_limits),
        )
        .route(
            "/admin/tenants/{id}/policy",
            put(policy::put_policy)
                .get(policy::get_policy)
                .delete(policy::delete_policy)
                .layer(policy::body_limit()),
        )
        .route("/admin/tenants/{id}/routing", get(learning::get_routing))
        .route(
            "/admin/tenants/{id}/routing/examples",
            post(learning::post_examples)
                .delete(learning::delete_examples)
                .layer(learning::body_limit()),
        )
        .route(
            "/admin/evals",
            post(evals::create_eval).layer(evals::body_limit()),
        )
        .route("/admin/evals/{id}", get(evals::get_eval))
        .route("/admin/evals/{id}/apply", post(evals::apply_eval))
        .route("/admin/tenants/{id}/evals", get(evals::list_evals))
        .route(
            "/admin/tenants/{id}/evals/{eval_id}",
            get(evals::get_tenant_eval),
        )
        .route("/admin/usage", get(usage::all_usage))
        .route("/admin/stats", get(usage::stats_scoped))
        .route("/admin/stats/series", get(usage::series))
        .route("/admin/cost", post(usage::adjust_cost))
        .route(
            "/admin/budget-default",
            put(budgets::put_default)
                .get(budgets::get_default)
                .delete(budgets::delete_default),
        )
        .route("/admin/models", get(catalog::list_models))
        .route(
            "/admin/models/{id}",
            put(catalog::put_model).delete(catalog::delete_model),
        )
        .route(
            "/admin/routing/model",
            get(catalog::get_router_model)
                .put(catalog::put_router_model)
                .layer(catalog::router_model_body_limit()),
        )
        .route("/admin/penalties", get(penalties::list_penalties))
        .route("/admin/penalties/reset", post(penalties::reset_penalties))
        .route("/admin/route/explain", post(explain::explain))
        .route("/admin/envoys", get(ops::envoys))
        .route("/admin/openapi.json", get(ops::openapi))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_secret,
        ));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::dashboard::routes())
        .merge(admin)
        .fallback(|| async { Error::NotFound("no such route; see GET /admin/openapi.json".into()) })
        .with_state(state)
}

async fn require_secret(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(secs) = state.admin_throttle.wait(addr) {
        state.counters.admin_auth_throttled();
        return Error::Throttled(secs).into_response();
    }
    let given = req
        .headers()
        .get(ADMIN_SECRET_HEADER)
        .map(HeaderValue::as_bytes);
    if state.admin_secret_ok(given) {
        next.run(req).await
    } else {
        state.admin_throttle.failed(addr);
        state.counters.admin_auth_failed();
        Error::Unauthorized.into_response()
    }
}

// ---- validation shared by several resources and with startup (env keys) ----------

/// Tenant ids: 1–64 of `[a-z0-9_-]` (they appear in URLs, metrics labels, logs).
pub fn check_tenant_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "id: must be 1-64 characters of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

/// Display names (tenants, virtual keys).
fn check_name(name: &str) -> Result<()> {
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name: at most 200 characters, no control characters".into(),
        ));
    }
    Ok(())
}

fn tenant_not_found(id: &str) -> Error {
    Error::NotFound(format!("tenant `{id}` does not exist"))
}
