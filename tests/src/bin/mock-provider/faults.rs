//! Injected faults (`POST /_mock/faults`): per provider — or per provider and
//! key, for requests that carry that key (a tenant's rate-limited key) — an
//! error status for the next N chat requests (or until cleared), a delay
//! before answering, a pause between SSE events, and answers whose `usage`
//! cannot be read (a string where the object belongs, until cleared).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::provider::Provider;

/// Longest delay a fault may ask for: tests should never hang for longer.
const MAX_DELAY_MS: u64 = 600_000;

/// One fault as posted, and as listed back (`times` then counts what is left).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub provider: String,
    /// Only requests sent with this key (bearer or `x-api-key`); a fault with
    /// a key is looked up before the provider's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_chunk_delay_ms: Option<u64>,
    /// true: successful answers carry `"usage": "<unreadable …>"` (plain and
    /// streamed, every usage object of the answer); false removes the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable_usage: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default)]
struct ProviderFaults {
    /// The status and how many more requests get it (`None`: until cleared).
    status: Option<(StatusCode, Option<u32>)>,
    delay_ms: u64,
    stream_chunk_delay_ms: u64,
    unreadable_usage: bool,
}

impl ProviderFaults {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.delay_ms == 0
            && self.stream_chunk_delay_ms == 0
            && !self.unreadable_usage
    }
}

/// What the faults say about one chat request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub delay: Duration,
    pub status: Option<StatusCode>,
    pub chunk_delay: Duration,
    /// The answer's usage is to be unreadable.
    pub unreadable_usage: bool,
}

#[derive(Debug, Default)]
pub struct Faults {
    table: Mutex<BTreeMap<(Provider, Option<String>), ProviderFaults>>,
}

impl Faults {
    /// Validates and installs a fault; each kind it names replaces the
    /// provider's fault of that kind. A delay of 0 removes that delay.
    pub fn apply(&self, spec: &FaultSpec) -> Result<(), String> {
        let provider = Provider::from_name(&spec.provider)
            .ok_or_else(|| format!("unknown provider '{}'", spec.provider))?;
        if spec.status.is_none()
            && spec.delay_ms.is_none()
            && spec.stream_chunk_delay_ms.is_none()
            && spec.unreadable_usage.is_none()
        {
            return Err(
                "a fault needs one of: status, delay_ms, stream_chunk_delay_ms, unreadable_usage"
                    .into(),
            );
        }
        let status = match spec.status {
            // 307 and 308: a redirect elsewhere (`location` set by the caller).
            Some(code @ (307 | 308 | 400..=599)) => Some(
                StatusCode::from_u16(code).map_err(|e| format!("invalid status {code}: {e}"))?,
            ),
            Some(code) => {
                return Err(format!("status must be 307, 308 or 400..=599, got {code}"));
            }
            None if spec.times.is_some() => return Err("times only goes with status".into()),
            None => None,
        };
        if spec.times == Some(0) {
            return Err("times must be at least 1 (omit it for until cleared)".into());
        }
        for delay in [spec.delay_ms, spec.stream_chunk_delay_ms]
            .into_iter()
            .flatten()
        {
            if delay > MAX_DELAY_MS {
                return Err(format!(
                    "delays are capped at {MAX_DELAY_MS} ms, got {delay}"
                ));
            }
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let at = (provider, spec.key.clone());
        let entry = table.entry(at.clone()).or_default();
        if let Some(status) = status {
            entry.status = Some((status, spec.times));
        }
        if let Some(ms) = spec.delay_ms {
            entry.delay_ms = ms;
        }
        if let Some(ms) = spec.stream_chunk_delay_ms {
            entry.stream_chunk_delay_ms = ms;
        }
        if let Some(on) = spec.unreadable_usage {
            entry.unreadable_usage = on;
        }
        if entry.is_empty() {
            table.remove(&at);
        }
        Ok(())
    }

    pub fn clear(&self) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The active faults, one entry per provider and kind.
    pub fn list(&self) -> Vec<FaultSpec> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for ((provider, key), f) in table.iter() {
            let spec = || FaultSpec {
                provider: provider.name().to_owned(),
                key: key.clone(),
                ..FaultSpec::default()
            };
            if let Some((status, times)) = f.status {
                out.push(FaultSpec {
                    status: Some(status.as_u16()),
                    times,
                    ..spec()
                });
            }
            if f.delay_ms > 0 {
                out.push(FaultSpec {
                    delay_ms: Some(f.delay_ms),
                    ..spec()
                });
            }
            if f.stream_chunk_delay_ms > 0 {
                out.push(FaultSpec {
                    stream_chunk_delay_ms: Some(f.stream_chunk_delay_ms),
                    ..spec()
                });
            }
            if f.unreadable_usage {
                out.push(FaultSpec {
                    unreadable_usage: Some(true),
                    ..spec()
                });
            }
        }
        out
    }

    /// The faults for the next chat request to `provider` sent with `key`
    /// (the key's own faults first, else the provider's); uses up one of a
    /// counted status fault.
    pub fn next_request(&self, provider: Provider, key: Option<&str>) -> Plan {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let keyed = (provider, key.map(str::to_owned));
        let at = if key.is_some() && table.contains_key(&keyed) {
            keyed
        } else {
            (provider, None)
        };
        let Some(f) = table.get_mut(&at) else {
            return Plan::default();
        };
        let status = f.status.map(|(status, _)| status);
        if let Some((_, Some(left))) = &mut f.status {
            *left = left.saturating_sub(1);
            if *left == 0 {
                f.status = None;
            }
        }
        let plan = Plan {
            delay: Duration::from_millis(f.delay_ms),
            status,
            chunk_delay: Duration::from_millis(f.stream_chunk_delay_ms),
            unreadable_usage: f.unreadable_usage,
        };
        if f.is_empty() {
            table.remove(&at);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counted_status_fault_runs_out() {
        let faults = Faults::default();
        faults
            .apply(&spec(r#"{"provider":"openai","status":503,"times":2}"#))
            .unwrap();
        let unavailable = Some(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(faults.next_request(Provider::Gemini, None).status, None);
        assert_eq!(
            faults.next_request(Provider::OpenAi, None).status,
            unavailable
        );
        assert_eq!(faults.list()[0].times, Some(1));
        assert_eq!(
            faults.next_request(Provider::OpenAi, None).status,
            unavailable
        );
        assert_eq!(faults.next_request(Provider::OpenAi, None), Plan::default());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn a_keyed_fault_hits_only_requests_with_that_key() {
        let faults = Faults::default();
        faults
            .apply(&spec(r#"{"provider":"openai","key":"sk-a","status":429}"#))
            .unwrap();
        let limited = Some(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            faults.next_request(Provider::OpenAi, Some("sk-a")).status,
            limited
        );
        assert_eq!(
            faults.next_request(Provider::OpenAi, Some("sk-b")).status,
            None
        );
        assert_eq!(faults.next_request(Provider::OpenAi, None).status, None);
        assert_eq!(faults.list()[0].key.as_deref(), Some("sk-a"));
    }

    #[test]
    fn uncounted_faults_last_until_cleared_and_replace_by_kind() {
        let faults = Faults::default();
        faults
            .apply(&spec(r#"{"provider":"xai","status":429}"#))
            .unwrap();
        faults
            .apply(&spec(r#"{"provider":"xai","delay_ms":2000}"#))
            .unwrap();
        faults
            .apply(&spec(
                r#"{"provider":"xai","delay_ms":50,"stream_chunk_delay_ms":7}"#,
            ))
            .unwrap();
        for _ in 0..5 {
            let plan = faults.next_request(Provider::Xai, None);
            assert_eq!(plan.status, Some(StatusCode::TOO_MANY_REQUESTS));
            assert_eq!(plan.delay, Duration::from_millis(50));
            assert_eq!(plan.chunk_delay, Duration::from_millis(7));
        }
        assert_eq!(faults.list().len(), 3);
        faults.clear();
        assert_eq!(faults.next_request(Provider::Xai, None), Plan::default());
    }

    #[test]
    fn unreadable_usage_lasts_until_removed() {
        let faults = Faults::default();
        faults
            .apply(&spec(r#"{"provider":"moonshot","unreadable_usage":true}"#))
            .unwrap();
        assert!(!faults.next_request(Provider::OpenAi, None).unreadable_usage);
        for _ in 0..3 {
            assert!(
                faults
                    .next_request(Provider::Moonshot, None)
                    .unreadable_usage
            );
        }
        assert_eq!(faults.list()[0].unreadable_usage, Some(true));
        faults
            .apply(&spec(r#"{"provider":"moonshot","unreadable_usage":false}"#))
            .unwrap();
        assert!(faults.list().is_empty());
        assert_eq!(
            faults.next_request(Provider::Moonshot, None),
            Plan::default()
        );
        assert!(
            faults
                .apply(&spec(
                    r#"{"provider":"openai","unreadable_usage":true,"times":1}"#
                ))
                .is_err()
        );
    }

    #[test]
    fn rejects_bad_specs() {
        let faults = Faults::default();
        for bad in [
            r#"{"provider":"nobody","status":500}"#,
            r#"{"provider":"openai"}"#,
            r#"{"provider":"openai","status":200}"#,
            r#"{"provider":"openai","status":503,"times":0}"#,
            r#"{"provider":"openai","times":3}"#,
            r#"{"provider":"openai","delay_ms":999999999}"#,
        ] {
            assert!(faults.apply(&spec(bad)).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<FaultSpec>(r#"{"provider":"openai","delay":1}"#).is_err());
        assert!(faults.list().is_empty());
    }
}
