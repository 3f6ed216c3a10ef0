//! Client-facing errors: each variant's status, OpenAI error `type` and
//! `code`, and a message that says what to do — in one place.

use crate::request::json_string;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No `Authorization: Bearer` or `x-api-key` header.
    MissingKey,
    /// The key is not a live virtual key of any tenant.
    UnknownKey,
    /// Mesh mode: the trusted `x-tenant-id` names no tenant.
    UnknownTenant,
    TenantDisabled,
    /// The operator switched provider pass-through off for this tenant.
    PassThroughDisabled,
    /// A pass-through request names a catalog model the operator disabled.
    ModelDisabled(String),
    /// The tenant's policy does not allow the model (or any model).
    ModelNotAllowed(String),
    /// The body is not a valid chat request; the text says exactly why.
    BadRequest(String),
    BodyTooLarge {
        limit: usize,
    },
    ModelNotFound(String),
    /// A model out of service by its schedule (filter/README.md,
    /// "Scheduled retirements"): retired, or not in service yet. Named on a
    /// routed API, 404 `model_not_found`; in a pass-through body, as a
    /// disabled model (403 `model_disabled`). Either way the message gives
    /// the date.
    ModelOutOfService {
        model: String,
        why: OutOfService,
        pass_through: bool,
    },
    /// The tenant has no key for the provider(s) that could serve it.
    NoProviderKey(String),
    ContextTooLong {
        needed: u64,
        largest: u64,
    },
    /// No reachable model supports what the request uses.
    Unsupported(String),
    /// The filter has no routing table (no bootstrap table, no control plane).
    NoTable,
    UnknownPath(String),
    /// Every candidate failed upstream (filter/README.md, "Failover"): 502,
    /// 503 or 504 with a message naming each failed attempt.
    Upstream {
        status: u16,
        message: String,
    },
    /// The tenant's budget cannot take this request now
    /// (`crate::budget`): 429 with `retry-after`.
    BudgetExceeded {
        message: String,
        retry_after_s: u64,
    },
    /// A rate limit of its tenant or key (`crate::ratelimit`): 429 with
    /// `retry-after`.
    RateLimited {
        message: String,
        retry_after_s: u64,
    },
    /// The fleet-wide rate-limit service did not answer and Envoy is set
    /// to refuse requests then (envoy/ratelimit/README.md).
    RateLimitUnavailable,
    /// Something that should not happen did (a host call refused, a table
    /// index out of range). The detail is for the log, never for the client.
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> u32 {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::UnknownTenant => 401,
            Self::TenantDisabled
            | Self::PassThroughDisabled
            | Self::ModelDisabled(_)
            | Self::ModelNotAllowed(_)
            | Self::ModelOutOfService {
                pass_through: true, ..
            } => 403,
            Self::BadRequest(_) | Self::ContextTooLong { .. } | Self::Unsupported(_) => 400,
            Self::ModelNotFound(_) | Self::UnknownPath(_) | Self::ModelOutOfService { .. } => 404,
            Self::BodyTooLarge { .. } => 413,
            Self::BudgetExceeded { .. } | Self::RateLimited { .. } => 429,
            Self::NoProviderKey(_) | Self::NoTable | Self::RateLimitUnavailable => 503,
            Self::Upstream { status, .. } => u32::from(*status),
            Self::Internal(_) => 500,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::UnknownTenant => "authentication_error",
            Self::TenantDisabled
            | Self::PassThroughDisabled
            | Self::ModelDisabled(_)
            | Self::ModelNotAllowed(_)
            | Self::ModelOutOfService {
                pass_through: true, ..
            } => "permission_error",
            Self::NoProviderKey(_) | Self::NoTable | Self::RateLimitUnavailable => {
                "service_unavailable"
            }
            Self::Upstream { .. } => "upstream_error",
            Self::BudgetExceeded { .. } => "insufficient_quota",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::Internal(_) => "internal_error",
            _ => "invalid_request_error",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MissingKey => "missing_api_key",
            Self::UnknownKey => "invalid_api_key",
            Self::UnknownTenant => "unknown_tenant",
            Self::TenantDisabled => "tenant_disabled",
            Self::PassThroughDisabled => "pass_through_disabled",
            Self::ModelDisabled(_) => "model_disabled",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::BadRequest(_) => "invalid_request",
            Self::BodyTooLarge { .. } => "request_too_large",
            Self::ModelNotFound(_) => "model_not_found",
            Self::ModelOutOfService {
                pass_through: true, ..
            } => "model_disabled",
            Self::ModelOutOfService { .. } => "model_not_found",
            Self::NoProviderKey(_) => "no_provider_key",
            Self::ContextTooLong { .. } => "context_length_exceeded",
            Self::Unsupported(_) => "unsupported_request",
            Self::NoTable => "no_routing_table",
            Self::UnknownPath(_) => "unknown_url",
            Self::Upstream { status: 504, .. } => "upstream_timeout",
            Self::Upstream { .. } => "upstream_failed",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::RateLimited { .. } => "rate_limited",
            Self::RateLimitUnavailable => "rate_limit_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::MissingKey => "No API key provided. Send your aipipe virtual key as `Authorization: Bearer <key>` or `x-api-key: <key>`.".into(),
            Self::UnknownKey => "Invalid API key: it is not a live aipipe virtual key (it may have been revoked). Ask your aipipe operator for a key.".into(),
            Self::UnknownTenant => "The x-tenant-id header names no tenant of this gateway.".into(),
            Self::TenantDisabled => "This tenant is disabled. Ask your aipipe operator to enable it.".into(),
            Self::ModelDisabled(m) => format!("The model `{}` is switched off in this gateway's catalog. Pick another model, or use the routed API with \"auto\".", clip(m)),
            Self::ModelNotAllowed(m) if m.is_empty() => "This tenant's policy allows none of the models it has provider keys for. Ask your aipipe operator.".into(),
            Self::ModelNotAllowed(m) => format!("This tenant's policy does not allow the model `{}`. Use \"auto\" or an allowed model.", clip(m)),
            Self::PassThroughDisabled => "Provider pass-through paths (/<provider>/…) are switched off for this tenant. Use the routed APIs (/v1/chat/completions, /v1/messages, /v1/responses), or ask your aipipe operator.".into(),
            Self::BadRequest(why) => why.clone(),
            Self::BodyTooLarge { limit } => format!("Request body is larger than the {limit}-byte limit. Send a smaller request."),
            Self::ModelNotFound(m) => format!("The model `{}` does not exist in this gateway's catalog. Use \"auto\", a catalog id such as \"gpt-4o-mini\", or \"provider/model\".", clip(m)),
            Self::ModelOutOfService { model, why, pass_through } => format!(
                "The model `{}` {}. {}",
                clip(model),
                match (why, pass_through) {
                    (OutOfService::Retired(on), true) => format!("was retired by its provider {} and this gateway no longer passes requests to it", when(*on)),
                    (OutOfService::Retired(on), false) => format!("was retired by its provider {} and this gateway no longer routes to it", when(*on)),
                    (OutOfService::Until(from), _) => format!("enters service in this gateway {}", when(*from)),
                },
                if *pass_through {
                    "Pick another model, or use the routed API with \"auto\"."
                } else {
                    "Use \"auto\" or another model (GET /v1/models lists them)."
                }
            ),
            Self::NoProviderKey(why) => why.clone(),
            Self::ContextTooLong { needed, largest } => format!("This request needs about {needed} tokens of context, more than the largest model available to you ({largest}). Shorten the conversation or lower max_tokens."),
            Self::Unsupported(why) => why.clone(),
            Self::NoTable => "aipipe has no routing table yet (the control plane has not answered and no bootstrap table is configured). Retry shortly.".into(),
            Self::UnknownPath(p) => format!("Unknown request path `{}`. aipipe serves POST /v1/chat/completions, POST /v1/messages, POST /v1/responses, GET /v1/models, GET /usage, POST /v1/feedback, the Ollama API (POST /api/chat, POST /api/generate, GET /api/tags, GET /api/version) and the provider pass-through paths /<provider>/… (openai, anthropic, gemini, xai, openrouter, minimax, moonshot).", clip(p)),
            Self::RateLimitUnavailable => "aipipe's fleet-wide rate-limit service did not answer, and this gateway refuses requests until it does. Retry shortly.".into(),
            Self::Upstream { message, .. }
            | Self::BudgetExceeded { message, .. }
            | Self::RateLimited { message, .. } => {
                message.clone()
            }
            Self::Internal(_) => "aipipe failed to handle this request. Retry; if it keeps failing, give your operator the x-aipipe-request-id of the answer.".into(),
        }
    }

    /// Seconds the client should wait before retrying, when that is known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::BudgetExceeded { retry_after_s, .. }
            | Self::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// The OpenAI-shaped JSON body.
    pub fn body(&self) -> String {
        format!(
            "{{\"error\":{{\"message\":{},\"type\":\"{}\",\"param\":null,\"code\":\"{}\"}}}}",
            json_string(&self.message()),
            self.kind(),
            self.code()
        )
    }
}

impl ApiError {
    /// The same error in Anthropic's shape, for `POST /v1/messages` clients.
    pub fn anthropic_body(&self) -> String {
        let kind = match self.status() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        };
        format!(
            "{{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":{}}}}}",
            json_string(&self.message())
        )
    }
}

/// "on 2027-01-14" for an instant at midnight UTC (a provider's date),
/// "at 2027-01-14T12:00:00Z" otherwise.
/// Why a catalog model is out of service by its schedule, and the instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfService {
    /// Retired by its provider at this instant (`retires_at`).
    Retired(crate::timestamp::Timestamp),
    /// Not in service until this instant (`enabled_from`).
    Until(crate::timestamp::Timestamp),
}

/// "on 2027-01-14" for an instant at midnight UTC, else "at <RFC 3339>".
fn when(on: crate::timestamp::Timestamp) -> String {
    if on.ms().is_multiple_of(86_400_000) {
        format!("on {}", on.date())
    } else {
        format!("at {on}")
    }
}

/// Client-sent text echoed in a message, cut to a readable length.
fn clip(s: &str) -> &str {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_openai_shaped_json() {
        let e = ApiError::ModelNotFound("gpt-\"99\"".into());
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gpt-\"99\"")
        );
        assert_eq!(e.status(), 404);
        let long = ApiError::ModelNotFound("é".repeat(1000)).message();
        assert!(long.len() < 400, "{long}");
    }

    /// A retired model: named on a routed API, a 404 `model_not_found`
    /// that gives the provider's date; in a pass-through body, the disabled
    /// model's 403 `model_disabled`, with the date too.
    #[test]
    fn a_retired_model_is_not_found_or_disabled_with_its_date() {
        let on = crate::timestamp::Timestamp(1_799_884_800_000);
        let routed = ApiError::ModelOutOfService {
            model: "gpt-4o".into(),
            why: OutOfService::Retired(on),
            pass_through: false,
        };
        let v: serde_json::Value = serde_json::from_str(&routed.body()).unwrap();
        assert_eq!(routed.status(), 404);
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(
            v["error"]["message"],
            "The model `gpt-4o` was retired by its provider on 2027-01-14 and this gateway \
             no longer routes to it. Use \"auto\" or another model (GET /v1/models lists them)."
        );
        let pass = ApiError::ModelOutOfService {
            model: "gpt-4o".into(),
            why: OutOfService::Retired(crate::timestamp::Timestamp(1_799_884_800_500)),
            pass_through: true,
        };
        let v: serde_json::Value = serde_json::from_str(&pass.body()).unwrap();
        assert_eq!(pass.status(), 403);
        assert_eq!(v["error"]["code"], "model_disabled");
        assert_eq!(v["error"]["type"], "permission_error");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("retired by its provider at 2027-01-14T00:00:00.500Z"),
            "{m}"
        );
    }

    /// A model scheduled to enter service: the same statuses as a retired
    /// one, with the instant it starts.
    #[test]
    fn a_model_not_in_service_yet_gives_the_instant_it_starts() {
        let from = crate::timestamp::Timestamp(1_799_884_800_000);
        let routed = ApiError::ModelOutOfService {
            model: "gpt-6-luna".into(),
            why: OutOfService::Until(from),
            pass_through: false,
        };
        let v: serde_json::Value = serde_json::from_str(&routed.body()).unwrap();
        assert_eq!(
            (routed.status(), v["error"]["code"].as_str()),
            (404, Some("model_not_found"))
        );
        assert_eq!(
            v["error"]["message"],
            "The model `gpt-6-luna` enters service in this gateway on 2027-01-14. \
             Use \"auto\" or another model (GET /v1/models lists them)."
        );
        let pass = ApiError::ModelOutOfService {
            model: "gpt-6-luna".into(),
            why: OutOfService::Until(from),
            pass_through: true,
        };
        assert_eq!((pass.status(), pass.code()), (403, "model_disabled"));
    }
}
