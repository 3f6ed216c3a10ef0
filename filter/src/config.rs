//! The plugin configuration (the JSON in Envoy's `plugin_config`), validated
//! once in `on_configure` into [`Config`]. Every error names the field.

use serde::Deserialize;

use crate::table::{RoutingTable, Table};

/// Bodies above this are refused with 413 unless configured otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_CLUSTER_HEADER: &str = "x-aipipe-cluster";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster_header: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    /// The bootstrap routing table, used until a control plane answers.
    #[serde(default)]
    table: Option<RoutingTable>,
}

#[derive(Debug)]
pub struct Config {
    /// The request header Envoy's route reads the upstream cluster from
    /// (`route.cluster_header`). Always set by the filter, never by clients.
    pub cluster_header: String,
    pub max_body_bytes: usize,
    pub table: Option<Table>,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            RawConfig {
                cluster_header: None,
                max_body_bytes: None,
                table: None,
            }
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("plugin configuration: {e}"))?
        };
        let cluster_header = raw
            .cluster_header
            .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_owned());
        if cluster_header.is_empty()
            || !cluster_header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "cluster_header: must be a lower-case header name, got {cluster_header:?}"
            ));
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > 64 * 1024 * 1024 {
            return Err(format!(
                "max_body_bytes: must be in 1..=67108864, got {max_body_bytes}"
            ));
        }
        let table = raw
            .table
            .map(Table::compile)
            .transpose()
            .map_err(|e| format!("table.{e}"))?;
        Ok(Self {
            cluster_header,
            max_body_bytes,
            table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let c = Config::parse(b"").unwrap();
        assert_eq!(c.cluster_header, DEFAULT_CLUSTER_HEADER);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(c.table.is_none());

        let c = Config::parse(br#"{"table":{"version":3,"tenants":[]}}"#).unwrap();
        assert_eq!(c.table.unwrap().version, 3);

        let e = |s: &str| Config::parse(s.as_bytes()).unwrap_err();
        assert!(e(r#"{"max_body_bytes":0}"#).starts_with("max_body_bytes:"));
        assert!(e(r#"{"cluster_header":"X Bad"}"#).starts_with("cluster_header:"));
        assert!(e(r#"{"clustr_header":"x"}"#).contains("unknown field `clustr_header`"));
        assert!(e(r#"{"table":{"models":[{"id":"m","provider":"nope","input_per_mtok":1,"output_per_mtok":1,"quality":0.5,"context_window":10,"max_output_tokens":5}]}}"#)
            .starts_with("table.models[0] (m).provider: unknown provider"));
    }
}
