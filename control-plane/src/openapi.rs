//! The OpenAPI 3 document of the admin API, written by hand next to the
//! routes (a test checks that every route of `admin::app` is listed).

use serde_json::{Value, json};

/// Every admin route as (method, OpenAPI path): the single list the document
/// and the coverage test are built from.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("post", "/admin/tenants"),
    ("get", "/admin/tenants"),
    ("get", "/admin/tenants/{id}"),
    ("patch", "/admin/tenants/{id}"),
    ("delete", "/admin/tenants/{id}"),
    ("post", "/admin/tenants/{id}/keys"),
    ("delete", "/admin/tenants/{id}/keys/{provider}"),
    ("post", "/admin/tenants/{id}/virtual-keys"),
    ("get", "/admin/tenants/{id}/virtual-keys"),
    ("delete", "/admin/tenants/{id}/virtual-keys/{key_id}"),
    ("get", "/admin/tenants/{id}/stats"),
    ("get", "/admin/models"),
    ("put", "/admin/models/{id}"),
    ("get", "/admin/penalties"),
    ("post", "/admin/penalties/reset"),
    ("post", "/admin/route/explain"),
    ("get", "/admin/openapi.json"),
];

fn op(summary: &str, ok: &str, ok_schema: Value, errors: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(
        ok.to_owned(),
        json!({"description": "success", "content": {"application/json": {"schema": ok_schema}}}),
    );
    for e in errors {
        responses.insert(
            (*e).to_owned(),
            json!({"$ref": format!("#/components/responses/E{e}")}),
        );
    }
    json!({"summary": summary, "responses": responses})
}

fn with_body(mut op: Value, schema: Value) -> Value {
    if let Some(o) = op.as_object_mut() {
        o.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
    }
    op
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn no_content(summary: &str, errors: &[&str]) -> Value {
    let mut op = op(summary, "204", json!({}), errors);
    if let Some(resp) = op.pointer_mut("/responses/204") {
        *resp = json!({"description": "done, no body"});
    }
    op
}

pub fn document() -> Value {
    let auth = ["401"];
    let e = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = auth.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let param = |name: &str, desc: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": desc});
    let id = param("id", "tenant id");
    let mut paths = json!({
        "/healthz": {"get": {"summary": "Liveness (no secret)", "security": [],
            "responses": {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (no secret): per-tenant requests, tokens, cost, failed attempts; per-model penalty and success rate; ingest counters; table version", "security": [],
            "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/admin/tenants": {
            "post": with_body(op("Create a tenant", "201", r("Tenant"), &e(&["400", "409", "422"])), r("NewTenant")),
            "get": op("List tenants", "200", json!({"type": "object", "properties": {"tenants": {"type": "array", "items": r("Tenant")}}}), &e(&[])),
        },
        "/admin/tenants/{id}": {
            "parameters": [id.clone()],
            "get": op("Get a tenant", "200", r("Tenant"), &e(&["404"])),
            "patch": with_body(op("Rename, disable or enable a tenant", "200", r("Tenant"), &e(&["400", "404", "422"])), r("TenantPatch")),
            "delete": no_content("Delete a tenant with its provider and virtual keys (usage stays)", &e(&["404"])),
        },
        "/admin/tenants/{id}/keys": {
            "parameters": [id.clone()],
            "post": with_body(op("Upsert provider keys (stored encrypted, never returned)", "200",
                json!({"type": "object", "properties": {"tenant": {"type": "string"}, "providers": {"type": "array", "items": {"type": "string"}}}}),
                &e(&["400", "404", "422"])),
                json!({"type": "object", "additionalProperties": {"type": "string"}, "example": {"openai": "sk-...", "anthropic": "sk-ant-..."}})),
        },
        "/admin/tenants/{id}/keys/{provider}": {
            "parameters": [id.clone(), param("provider", "provider id")],
            "delete": no_content("Delete one provider key", &e(&["404"])),
        },
        "/admin/tenants/{id}/virtual-keys": {
            "parameters": [id.clone()],
            "post": with_body(op("Issue a virtual key (the key is shown once)", "201", r("IssuedVirtualKey"), &e(&["400", "404", "422"])),
                json!({"type": "object", "properties": {"name": {"type": "string"}}})),
            "get": op("List virtual keys (no secrets)", "200",
                json!({"type": "object", "properties": {"virtual_keys": {"type": "array", "items": r("VirtualKey")}}}), &e(&["404"])),
        },
        "/admin/tenants/{id}/virtual-keys/{key_id}": {
            "parameters": [id.clone(), param("key_id", "virtual key id")],
            "delete": no_content("Revoke a virtual key", &e(&["404"])),
        },
        "/admin/tenants/{id}/stats": {
            "parameters": [id,
                {"name": "since", "in": "query", "schema": {"type": "integer"}, "description": "unix ms, inclusive (default: until - 24 h)"},
                {"name": "until", "in": "query", "schema": {"type": "integer"}, "description": "unix ms, exclusive (default: now, inclusive)"}],
            "get": op("Requests, errors, success rate, tokens, cost and latency/TTFT percentiles by provider and model", "200", r("Stats"), &e(&["400", "404"])),
        },
        "/admin/models": {
            "get": op("The model catalog", "200", json!({"type": "object", "properties": {"models": {"type": "array", "items": r("Model")}}}), &e(&[])),
        },
        "/admin/models/{id}": {
            "parameters": [param("id", "catalog model id")],
            "put": with_body(op("Create or replace a model (validated by compiling the routing table)", "200", r("Model"), &e(&["400", "422"])), r("Model")),
        },
        "/admin/penalties": {
            "get": op("Every model's penalty (decayed to now), the value the routing table carries, and its success rate since the last reset", "200", r("Penalties"), &e(&[])),
        },
        "/admin/penalties/reset": {
            "post": {
                "summary": "Zero the penalty and counts of one model (body {\"model\": id}) or of every model (no body); bumps penalty_epoch so every filter forgets its local penalties",
                "requestBody": {"required": false, "content": {"application/json": {"schema": r("PenaltyResetRequest")}}},
                "responses": {
                    "200": {"description": "success", "content": {"application/json": {"schema": r("PenaltyReset")}}},
                    "400": {"$ref": "#/components/responses/E400"}, "401": {"$ref": "#/components/responses/E401"},
                    "404": {"$ref": "#/components/responses/E404"}, "422": {"$ref": "#/components/responses/E422"},
                },
            },
        },
        "/admin/route/explain": {
            "post": with_body(op("Score a chat request for a tenant and rank every candidate", "200", r("Explanation"), &e(&["400", "404", "422"])),
                json!({"type": "object", "required": ["tenant", "request"], "properties": {"tenant": {"type": "string"}, "request": {"type": "object", "description": "an OpenAI chat completions body"}}})),
        },
        "/admin/openapi.json": {
            "get": op("This document", "200", json!({"type": "object"}), &e(&[])),
        },
    });
    if let Some(p) = paths.pointer_mut("/~1admin~1models~1{id}/put/responses")
        && let Some(o) = p.as_object_mut()
    {
        o.insert("201".into(), json!({"description": "created", "content": {"application/json": {"schema": r("Model")}}}));
    }
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": r("Error")}}});
    let percentiles = json!({"type": "object", "properties": {
        "p50": {"type": ["number", "null"]}, "p95": {"type": ["number", "null"]}, "p99": {"type": ["number", "null"]}}});
    let numbers = json!({
        "requests": {"type": "integer", "description": "requests recorded, cache hits included"}, "errors": {"type": "integer"},
        "cache_hits": {"type": "integer", "description": "requests answered from the filter's answer cache: no tokens, no cost, not in latency_ms / ttft_ms nor in the by-model success_rate"},
        "failed_attempts": {"type": "integer", "description": "upstream attempts that failed before another model answered (failover)"},
        "success_rate": {"type": ["number", "null"], "description": "by model: (requests - cache_hits - errors) / (requests - cache_hits + failed_attempts); totals: (requests - errors) / requests"},
        "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
        "cached_tokens": {"type": "integer", "description": "prompt tokens read from the provider's cache"},
        "cache_write_tokens": {"type": "integer", "description": "prompt tokens written to the provider's cache"},
        "cost_usd": {"type": "number"}});
    let mut totals = numbers.clone();
    let mut by_model = numbers;
    if let (Some(t), Some(m)) = (totals.as_object_mut(), by_model.as_object_mut()) {
        t.insert("unparsed".into(), json!({"type": "integer"}));
        m.insert("provider".into(), json!({"type": "string"}));
        m.insert("model".into(), json!({"type": "string"}));
        m.insert("latency_ms".into(), percentiles.clone());
        m.insert("ttft_ms".into(), percentiles);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "aipipe control plane admin API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Every /admin route needs the X-Admin-Secret header. Errors are {\"error\":{\"message\",\"type\",\"code\"}}."},
        "security": [{"adminSecret": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"adminSecret": {"type": "apiKey", "in": "header", "name": "X-Admin-Secret"}},
            "responses": {
                "E400": error("malformed input"), "E401": error("missing or wrong X-Admin-Secret"),
                "E404": error("no such tenant, key or route"), "E409": error("already exists"),
                "E422": error("invalid input; the message names the field"),
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}}}}},
                "NewTenant": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}, "name": {"type": "string"}}},
                "TenantPatch": {"type": "object", "properties": {"name": {"type": "string"}, "disabled": {"type": "boolean"}}},
                "Tenant": {"type": "object", "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "disabled": {"type": "boolean"},
                    "created_at": {"type": "integer", "description": "unix ms"},
                    "providers": {"type": "array", "items": {"type": "string"}, "description": "providers with a key (never the keys)"},
                    "virtual_keys": {"type": "integer", "description": "live virtual keys"}}},
                "VirtualKey": {"type": "object", "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "created_at": {"type": "integer"}, "revoked": {"type": "boolean"}}},
                "IssuedVirtualKey": {"type": "object", "properties": {
                    "id": {"type": "string"}, "key": {"type": "string", "description": "aip_...; shown only here"},
                    "tenant": {"type": "string"}, "name": {"type": "string"}, "created_at": {"type": "integer"}}},
                "Model": {"type": "object",
                    "required": ["id", "provider", "input_per_mtok", "output_per_mtok", "quality", "context_window", "max_output_tokens"],
                    "properties": {
                        "id": {"type": "string"}, "provider": {"type": "string"}, "upstream_id": {"type": "string"},
                        "input_per_mtok": {"type": "number"}, "output_per_mtok": {"type": "number"},
                        "cached_input_per_mtok": {"type": "number"}, "cache_write_per_mtok": {"type": "number"}, "quality": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "context_window": {"type": "integer"}, "max_output_tokens": {"type": "integer"},
                        "capabilities": {"type": "object", "properties": {"tools": {"type": "boolean"}, "vision": {"type": "boolean"}, "json_schema": {"type": "boolean"}}},
                        "enabled": {"type": "boolean"}, "latency_ms": {"type": "number"}, "penalty": {"type": "number"}}},
                "PenaltyView": {"type": "object", "properties": {
                    "model": {"type": "string"}, "provider": {"type": "string"},
                    "penalty": {"type": "number", "description": "current value, decayed to now; adjusted cost is multiplied by 1 + penalty"},
                    "table_penalty": {"type": "number", "description": "the value the current routing table carries"},
                    "success_rate": {"type": ["number", "null"], "description": "successes / (successes + failures)"},
                    "successes": {"type": "integer"}, "failures": {"type": "integer", "description": "429, 5xx, no status, and failed attempts"},
                    "updated_ms": {"type": ["integer", "null"], "description": "unix ms of the last event or reset"}}},
                "Penalties": {"type": "object", "properties": {
                    "penalty_epoch": {"type": "integer"}, "decay_ms": {"type": "integer"}, "table_version": {"type": "integer"},
                    "penalties": {"type": "array", "items": r("PenaltyView"), "description": "catalog models in catalog order, then other models with recorded outcomes"}}},
                "PenaltyResetRequest": {"type": "object", "properties": {"model": {"type": ["string", "null"], "description": "catalog model id; absent or null = every model"}}},
                "PenaltyReset": {"type": "object", "properties": {
                    "reset": {"type": "array", "items": {"type": "string"}}, "penalty_epoch": {"type": "integer"}, "table_version": {"type": "integer"}}},
                "Explanation": {"type": "object", "properties": {
                    "score": {"type": "object"}, "matched": {"type": "array"},
                    "candidates": {"type": "array", "description": "best first", "items": {"type": "object", "properties": {
                        "model": {"type": "string"}, "provider": {"type": "string"}, "raw_cost_usd": {"type": "number"}, "adjusted_cost": {"type": "number"}}}},
                    "choice": {"type": ["string", "null"]}}},
                "Stats": {"type": "object", "properties": {
                    "tenant": {"type": "string"}, "since": {"type": "integer"}, "until": {"type": "integer"},
                    "totals": {"type": "object", "properties": totals},
                    "by_model": {"type": "array", "items": {"type": "object", "properties": by_model}}}},
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
}
