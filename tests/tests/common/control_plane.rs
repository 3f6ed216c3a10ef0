//! The stack with the real control plane: no bootstrap table, everything
//! the filter knows comes from the control plane's internal API, and its
//! usage records go back there.

use std::time::Duration;

use aipipe_tests::{ControlPlane, Envoy, Mock, Reply, eventually, post_json};
use serde_json::Value;

use super::chat;

/// Envoy (two workers) with the filter and `plugin_config`, its singleton
/// polling the internal API on `internal_port` (the control plane's own, or
/// a tap in front of it) with `token`.
pub fn envoy_polling(mock: &Mock, plugin_config: &str, internal_port: u16, token: &str) -> Envoy {
    Envoy::start_rendered_with(
        "demo.yaml",
        mock.port,
        Some(plugin_config.to_owned()),
        true,
        Some((internal_port, token.to_owned())),
        2,
    )
}

/// The control plane, the mock, and Envoy polling the control plane.
pub struct CpStack {
    pub cp: ControlPlane,
    pub mock: Mock,
    pub envoy: Envoy,
}

impl CpStack {
    pub fn start() -> Self {
        Self::start_with("{}")
    }

    /// With `plugin_config` for what the control plane does not set.
    pub fn start_with(plugin_config: &str) -> Self {
        let cp = ControlPlane::start();
        let mock = Mock::start();
        let envoy = envoy_polling(&mock, plugin_config, cp.internal_port, &cp.internal_token);
        Self { cp, mock, envoy }
    }

    pub fn chat(&self, key: &str, body: &Value) -> Reply {
        chat_as(&self.envoy, key, body)
    }

    /// The version of the global table the control plane serves to Envoys.
    pub fn table_version(&self) -> u64 {
        let r = aipipe_tests::request(
            "GET",
            &format!(
                "http://127.0.0.1:{}/internal/v1/table",
                self.cp.internal_port
            ),
            &[("x-aipipe-internal-token", self.cp.internal_token.as_str())],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["version"].as_u64().unwrap_or_default()
    }

    /// Catalog entry `id` as `GET /admin/models` lists it.
    pub fn listed_model(&self, id: &str) -> Value {
        let models = self.cp.admin("GET", "/admin/models", None).json();
        models["models"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {models}"))
    }

    /// The tenant's stats; the admin API must answer them.
    pub fn stats(&self, tenant: &str) -> Value {
        let r = stats_reply(&self.cp, tenant);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

/// A chat request with a virtual key.
pub fn chat_as(envoy: &Envoy, key: &str, body: &Value) -> Reply {
    post_json(
        &envoy.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {key}"))],
        body,
    )
}

/// Puts a catalog model that the catalog dates for later (gpt-6-luna, from
/// 2027-01-14) in service now.
pub fn in_service_now(cp: &ControlPlane, model: &str) {
    let models = cp.admin("GET", "/admin/models", None).json();
    let mut m = models["models"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("{model} is not in the catalog"));
    if let Some(m) = m.as_object_mut() {
        m.remove("enabled_from");
    }
    m["enabled"] = Value::Bool(true);
    let r = cp.admin("PUT", &format!("/admin/models/{model}"), Some(&m));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Creates `tenant` with a key of its own for each of `providers`
/// (`sk-<tenant>-<provider>`); returns its virtual key.
pub fn tenant_with_own_keys(cp: &ControlPlane, tenant: &str, providers: &[&str]) -> String {
    let keys: Vec<(&str, String)> = providers
        .iter()
        .map(|p| (*p, format!("sk-{tenant}-{p}")))
        .collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(p, k)| (*p, k.as_str())).collect();
    cp.tenant(tenant, &pairs)
}

/// Creates a tenant after all the others and waits until Envoy serves it:
/// then the table Envoy routes with has every tenant created before.
/// False: it never did.
pub fn tenants_served(cp: &ControlPlane, envoy: &Envoy) -> bool {
    let probe = cp.tenant("probe", &[("openai", "sk-probe")]);
    eventually(Duration::from_secs(15), || {
        (chat_as(envoy, &probe, &chat("gpt-4o-mini", "probe")).status == 200).then_some(())
    })
    .is_some()
}

/// The tenant's stats, whatever the admin API answered.
pub fn tenant_stats(cp: &ControlPlane, tenant: &str) -> Value {
    stats_reply(cp, tenant).json()
}

fn stats_reply(cp: &ControlPlane, tenant: &str) -> Reply {
    cp.admin("GET", &format!("/admin/tenants/{tenant}/stats"), None)
}
