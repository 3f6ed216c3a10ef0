//! The one set of rules for every input that reaches the catalog, the table
//! or the store (filter/README.md, "Validation"): the control plane's admin
//! and internal APIs and the table compiler call the same functions, so what
//! one accepts the others accept. Each refusal names the field and never
//! quotes a secret.

use crate::catalog::{LongContext, MAX_PRICE_CHANGES, Model, PriceChange};
use crate::usage::UsageRecord;

/// The most a model may cost, USD per million tokens (input, output, cache
/// reads or writes). Today's dearest list price is ~$600; above this it is a
/// typo, and bounded prices keep every sum of costs far from overflow.
pub const MAX_PRICE_PER_MTOK: f64 = 10_000.0;
/// The largest context window and output cap a model may claim (tokens).
pub const MAX_CONTEXT_TOKENS: u64 = 100_000_000;
/// The most tokens of one kind one usage record may carry.
pub const MAX_RECORD_TOKENS: u64 = 1_000_000_000;
/// The most one record may cost, in nano-USD: its tokens at the highest price.
pub const MAX_RECORD_COST_NUSD: u64 = 4 * MAX_RECORD_TOKENS * 10_000 * 1_000;
/// The longest a request may plausibly take (ms): a day.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// The longest model id.
pub const MAX_MODEL_ID: usize = 128;

/// A refusal, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid<T>(field: &str, why: impl std::fmt::Display) -> Result<T, Invalid> {
    Err(Invalid(format!("{field}: {why}")))
}

/// A model id: 1-128 bytes of `[A-Za-z0-9._:/-]`, no `..`, not `auto` (the
/// router's own name). It travels in paths and response headers
/// (`x-aipipe-model`), so nothing else may be in it.
pub fn model_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() || id.len() > MAX_MODEL_ID {
        return invalid(field, format_args!("must be 1-{MAX_MODEL_ID} bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
    {
        return invalid(
            field,
            "may hold only letters, digits and . _ : / - (it is sent in headers and paths)",
        );
    }
    if id.contains("..") {
        return invalid(field, "must not contain `..`");
    }
    if id.eq_ignore_ascii_case("auto") {
        return invalid(field, "`auto` is the router's own name");
    }
    Ok(())
}

/// A price in USD per million tokens: finite, 0 to [`MAX_PRICE_PER_MTOK`].
pub fn price(field: &str, v: f64) -> Result<(), Invalid> {
    if v.is_finite() && (0.0..=MAX_PRICE_PER_MTOK).contains(&v) {
        Ok(())
    } else {
        invalid(
            field,
            format_args!(
                "must be a number from 0 to {MAX_PRICE_PER_MTOK} (USD per million tokens), got {v}"
            ),
        )
    }
}

/// A token cap (context window, output cap): 1 to [`MAX_CONTEXT_TOKENS`].
pub fn token_cap(field: &str, v: u64) -> Result<(), Invalid> {
    if (1..=MAX_CONTEXT_TOKENS).contains(&v) {
        Ok(())
    } else {
        invalid(
            field,
            format_args!("must be from 1 to {MAX_CONTEXT_TOKENS}, got {v}"),
        )
    }
}

/// One catalog entry, every field. `at` names it (`models[3] (gpt-4o)`).
pub fn model(at: &str, m: &Model) -> Result<(), Invalid> {
    let f = |name: &str| format!("{at}.{name}");
    model_id(&f("id"), &m.id)?;
    if let Some(up) = &m.upstream_id {
        // The provider's own name goes into the request body only, but it
        // is named in errors and headers too.
        model_id(&f("upstream_id"), up)?;
    }
    for (name, v) in [
        ("input_per_mtok", Some(m.input_per_mtok)),
        ("output_per_mtok", Some(m.output_per_mtok)),
        ("cached_input_per_mtok", m.cached_input_per_mtok),
        ("cache_write_per_mtok", m.cache_write_per_mtok),
    ] {
        if let Some(v) = v {
            price(&f(name), v)?;
        }
    }
    price_changes(&f("price_changes"), &m.price_changes)?;
    if let Some(l) = &m.long_context {
        long_context(&f("long_context"), l)?;
    }
    if let (Some(from), Some(retires)) = (m.enabled_from, m.retires_at)
        && from >= retires
    {
        return invalid(
            &f("enabled_from"),
            format_args!("must be before retires_at ({retires}), got {from}"),
        );
    }
    if !(m.quality > 0.0 && m.quality <= 1.0) {
        return invalid(
            &f("quality"),
            format_args!("must be in (0, 1], got {}", m.quality),
        );
    }
    for (c, q) in &m.category_quality {
        if crate::classify::Category::from_name(c).is_none() {
            let names: Vec<&str> = crate::classify::CATEGORIES
                .iter()
                .map(|c| c.name())
                .collect();
            return invalid(
                &f(&format!("category_quality.{c}")),
                format_args!("unknown category (known: {})", names.join(", ")),
            );
        }
        if !(*q > 0.0 && *q <= 1.0) {
            return invalid(
                &f(&format!("category_quality.{c}")),
                format_args!("must be in (0, 1], got {q}"),
            );
        }
    }
    token_cap(&f("context_window"), m.context_window)?;
    token_cap(&f("max_output_tokens"), m.max_output_tokens)?;
    if let Some(l) = m.latency_ms
        && !(l.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&l))
    {
        return invalid(
            &f("latency_ms"),
            format_args!("must be from 0 to {MAX_LATENCY_MS}, got {l}"),
        );
    }
    if !(m.penalty.is_finite() && (0.0..=1e6).contains(&m.penalty)) {
        return invalid(
            &f("penalty"),
            format_args!("must be from 0 to 1000000, got {}", m.penalty),
        );
    }
    Ok(())
}

/// The most a long-context rate may multiply a price by.
pub const MAX_LONG_CONTEXT_MULTIPLIER: f64 = 100.0;

/// A model's long-context rates: a threshold a prompt can pass (1 to
/// [`MAX_CONTEXT_TOKENS`]) and multipliers from 1 (no change) to
/// [`MAX_LONG_CONTEXT_MULTIPLIER`].
pub fn long_context(field: &str, l: &LongContext) -> Result<(), Invalid> {
    if !(1..=MAX_CONTEXT_TOKENS).contains(&l.above_tokens) {
        return invalid(
            &format!("{field}.above_tokens"),
            format_args!(
                "must be from 1 to {MAX_CONTEXT_TOKENS}, got {}",
                l.above_tokens
            ),
        );
    }
    for (name, v) in [
        ("input_multiplier", l.input_multiplier),
        ("output_multiplier", l.output_multiplier),
    ] {
        if !(v.is_finite() && (1.0..=MAX_LONG_CONTEXT_MULTIPLIER).contains(&v)) {
            return invalid(
                &format!("{field}.{name}"),
                format_args!("must be a number from 1 to {MAX_LONG_CONTEXT_MULTIPLIER}, got {v}"),
            );
        }
    }
    Ok(())
}

/// A model's scheduled price changes (`field` names the list): at most
/// [`MAX_PRICE_CHANGES`], each price as [`price`] wants it, in strictly
/// increasing order of `from` (two changes at one instant would leave the
/// price at that instant undefined). The instants themselves were checked
/// when they were read (`Timestamp`).
pub fn price_changes(field: &str, changes: &[PriceChange]) -> Result<(), Invalid> {
    if changes.len() > MAX_PRICE_CHANGES {
        return invalid(
            field,
            format_args!("at most {MAX_PRICE_CHANGES} changes, got {}", changes.len()),
        );
    }
    for (i, c) in changes.iter().enumerate() {
        let at = |name: &str| format!("{field}[{i}].{name}");
        for (name, v) in [
            ("input_per_mtok", Some(c.input_per_mtok)),
            ("output_per_mtok", Some(c.output_per_mtok)),
            ("cached_input_per_mtok", c.cached_input_per_mtok),
            ("cache_write_per_mtok", c.cache_write_per_mtok),
        ] {
            if let Some(v) = v {
                price(&at(name), v)?;
            }
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| changes.get(p)) {
            if prev.from == c.from {
                return invalid(
                    &at("from"),
                    format_args!(
                        "{} is also {field}[{}].from: one change per instant",
                        c.from,
                        i - 1
                    ),
                );
            }
            if prev.from > c.from {
                return invalid(
                    &at("from"),
                    format_args!(
                        "{} is before {field}[{}].from ({}): list the changes in order",
                        c.from,
                        i - 1,
                        prev.from
                    ),
                );
            }
        }
    }
    Ok(())
}

/// A usage record as the internal API receives it: counts and costs a
/// request can have, times that are numbers. `at` names it (`records[4]`).
pub fn usage_record(at: &str, r: &UsageRecord) -> Result<(), Invalid> {
    let f = |name: &str| format!("{at}.{name}");
    if r.id.is_empty() || r.id.len() > 128 {
        return invalid(&f("id"), "must be 1-128 bytes (it is the idempotency key)");
    }
    if r.tenant.is_empty() || r.tenant.len() > 64 {
        return invalid(&f("tenant"), "must be 1-64 bytes");
    }
    if r.provider.is_empty() || r.provider.len() > 64 {
        return invalid(&f("provider"), "must be 1-64 bytes");
    }
    if r.model.is_empty() || r.model.len() > 256 {
        return invalid(&f("model"), "must be 1-256 bytes");
    }
    for (name, v) in [
        ("prompt_tokens", r.prompt_tokens),
        ("completion_tokens", r.completion_tokens),
        ("cached_tokens", r.cached_tokens),
        ("cache_write_tokens", r.cache_write_tokens),
    ] {
        if v > MAX_RECORD_TOKENS {
            return invalid(
                &f(name),
                format_args!("must be at most {MAX_RECORD_TOKENS}"),
            );
        }
    }
    if r.cost_nusd > MAX_RECORD_COST_NUSD {
        return invalid(
            &f("cost_nusd"),
            format_args!("must be at most {MAX_RECORD_COST_NUSD}"),
        );
    }
    for (name, v) in [("latency_ms", Some(r.latency_ms)), ("ttft_ms", r.ttft_ms)] {
        if let Some(v) = v
            && !(v.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&v))
        {
            return invalid(&f(name), format_args!("must be from 0 to {MAX_LATENCY_MS}"));
        }
    }
    if let Some(c) = r.complexity
        && !(c.is_finite() && (0.0..=1.0).contains(&c))
    {
        return invalid(&f("complexity"), "must be in [0, 1]");
    }
    if r.failed_attempts.len() > 64 {
        return invalid(&f("failed_attempts"), "at most 64");
    }
    key_tag(&f("key_tag"), r.key_tag.as_deref())?;
    if let Some(id) = &r.virtual_key {
        virtual_key_id(&f("virtual_key"), id)?;
    }
    // The most a request's features take in base64 (its sparse features
    // are bounded by the router's windows; see tenant_router).
    if r.router_features
        .as_ref()
        .is_some_and(|t| t.len() > 512 * 1024)
    {
        return invalid(&f("router_features"), "at most 512 KiB");
    }
    for (i, a) in r.failed_attempts.iter().enumerate() {
        key_tag(
            &f(&format!("failed_attempts[{i}].key_tag")),
            a.key_tag.as_deref(),
        )?;
    }
    Ok(())
}

/// A node name (`usage::UsageSource::node`): 1-128 bytes of
/// `[A-Za-z0-9._:/@~+=-]`.
pub fn node_name(field: &str, node: &str) -> Result<(), Invalid> {
    if node.is_empty() || node.len() > crate::usage::MAX_NODE_NAME {
        return invalid(
            field,
            format_args!("must be 1-{} bytes", crate::usage::MAX_NODE_NAME),
        );
    }
    if !node.bytes().all(crate::usage::node_name_byte) {
        return invalid(field, "may hold only letters, digits and . _ : / @ ~ + = -");
    }
    Ok(())
}

/// The most budget scopes one Envoy reports reservations for.
pub const MAX_REPORTED_RESERVATIONS: usize = 4096;

/// An Envoy's reported reservations (`UsageSource::reserved_nusd`): tenant
/// ids and key ids as records carry them, amounts a record could cost.
pub fn reservations(source: &crate::usage::UsageSource) -> Result<(), Invalid> {
    let n = source.reserved_nusd.len() + source.key_reserved_nusd.len();
    if n > MAX_REPORTED_RESERVATIONS {
        return invalid(
            "source.reserved_nusd",
            format_args!("at most {MAX_REPORTED_RESERVATIONS} tenants and keys"),
        );
    }
    for (t, v) in &source.reserved_nusd {
        if t.is_empty() || t.len() > 64 || *v > MAX_RECORD_COST_NUSD {
            return invalid(
                "source.reserved_nusd",
                "tenant ids of 1-64 bytes, amounts a record can cost",
            );
        }
    }
    for (k, v) in &source.key_reserved_nusd {
        virtual_key_id("source.key_reserved_nusd", k)?;
        if *v > MAX_RECORD_COST_NUSD {
            return invalid("source.key_reserved_nusd", "amounts a record can cost");
        }
    }
    Ok(())
}

/// A virtual key's id as records carry it (`vk_…`): 1-64 bytes of
/// `[A-Za-z0-9_-]`.
pub fn virtual_key_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return invalid(field, "must be 1-64 bytes of letters, digits, _ and -");
    }
    Ok(())
}

/// A provider key's tag (`Account::key_tag`): 16 lower-case hex digits, so it
/// can never collide with a model id's characters or carry anything else.
pub fn key_tag(field: &str, tag: Option<&str>) -> Result<(), Invalid> {
    match tag {
        Some(t) if t.len() != 16 || !t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            invalid(field, "must be 16 lower-case hex digits")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::default_models;

    /// A schedule is refused, naming the change and field, when it has
    /// too many changes, a price out of range (negative, not finite, above
    /// the bound), two changes at one instant or changes out of order; an
    /// instant that is not RFC 3339 is refused when it is read.
    #[test]
    fn a_model_must_enter_service_before_it_retires() {
        use crate::catalog::Timestamp;
        let check = |from: Option<u64>, retires: Option<u64>| {
            let mut m = crate::catalog::default_models().remove(0);
            (m.enabled_from, m.retires_at) = (from.map(Timestamp), retires.map(Timestamp));
            model("body", &m).map_err(|e| e.0)
        };
        assert_eq!(check(Some(1), Some(2)), Ok(()));
        assert_eq!(check(Some(5), None), Ok(()));
        assert_eq!(check(None, Some(5)), Ok(()));
        assert_eq!(
            check(Some(1_799_884_800_000), Some(1_799_884_800_000)).unwrap_err(),
            "body.enabled_from: must be before retires_at (2027-01-14T00:00:00Z), got 2027-01-14T00:00:00Z"
        );
    }

    #[test]
    fn long_context_rates_are_bounded_and_named() {
        use crate::catalog::LongContext;
        let check = |above_tokens: u64, input_multiplier: f64, output_multiplier: f64| {
            let mut m = crate::catalog::default_models().remove(0);
            m.long_context = Some(LongContext {
                above_tokens,
                input_multiplier,
                output_multiplier,
            });
            model("body", &m).map_err(|e| e.0)
        };
        assert_eq!(check(100_000, 5.0, 5.0), Ok(()));
        assert_eq!(check(1, 1.0, 100.0), Ok(()));
        for (bad, says) in [
            (
                check(0, 2.0, 2.0),
                "body.long_context.above_tokens: must be from 1 to 100000000, got 0",
            ),
            (
                check(200_000, 0.5, 2.0),
                "body.long_context.input_multiplier: must be a number from 1 to 100, got 0.5",
            ),
            (
                check(200_000, 2.0, f64::INFINITY),
                "body.long_context.output_multiplier: must be a number from 1 to 100, got inf",
            ),
            (
                check(200_000, f64::NAN, 2.0),
                "body.long_context.input_multiplier: must be a number from 1 to 100, got NaN",
            ),
        ] {
            assert_eq!(bad.unwrap_err(), says);
        }
    }

    #[test]
    fn bad_price_schedules_are_refused_naming_the_change() {
        use crate::catalog::{PriceChange, Timestamp};
        let change = |from: u64, input: f64| PriceChange {
            from: Timestamp(from),
            input_per_mtok: input,
            output_per_mtok: 1.0,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        };
        let check = |changes: Vec<PriceChange>| {
            let mut m = crate::catalog::default_models().remove(0);
            m.price_changes = changes;
            model("body", &m).map_err(|e| e.0)
        };
        assert_eq!(check(vec![]), Ok(()));
        assert_eq!(check(vec![change(1, 0.0), change(2, 1.0)]), Ok(()));
        let max: Vec<_> = (0..MAX_PRICE_CHANGES as u64)
            .map(|i| change(i, 1.0))
            .collect();
        assert_eq!(check(max.clone()), Ok(()));
        let mut over = max;
        over.push(change(99, 1.0));
        let e = check(over).unwrap_err();
        assert_eq!(e, "body.price_changes: at most 16 changes, got 17");
        for (bad, says) in [
            (
                -1.0,
                "body.price_changes[1].input_per_mtok: must be a number from 0",
            ),
            (
                f64::NAN,
                "body.price_changes[1].input_per_mtok: must be a number from 0",
            ),
            (f64::INFINITY, "body.price_changes[1].input_per_mtok"),
            (
                MAX_PRICE_PER_MTOK * 2.0,
                "body.price_changes[1].input_per_mtok",
            ),
        ] {
            let e = check(vec![change(1, 1.0), change(2, bad)]).unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
        let mut cached = change(5, 1.0);
        cached.cached_input_per_mtok = Some(-0.5);
        let e = check(vec![cached]).unwrap_err();
        assert!(
            e.starts_with("body.price_changes[0].cached_input_per_mtok"),
            "{e}"
        );
        let mut write = change(5, 1.0);
        write.cache_write_per_mtok = Some(f64::NAN);
        let e = check(vec![write]).unwrap_err();
        assert!(
            e.starts_with("body.price_changes[0].cache_write_per_mtok"),
            "{e}"
        );
        let e = check(vec![change(0, 1.0), change(7, 1.0), change(7, 2.0)]).unwrap_err();
        assert_eq!(
            e,
            "body.price_changes[2].from: 1970-01-01T00:00:00.007Z is also \
             body.price_changes[1].from: one change per instant"
        );
        let e = check(vec![change(8, 1.0), change(7, 2.0)]).unwrap_err();
        assert!(
            e.starts_with("body.price_changes[1].from: 1970-01-01T00:00:00.007Z is before"),
            "{e}"
        );
        let bad_instant = r#"{"from": "2027-01-01", "input_per_mtok": 1, "output_per_mtok": 1}"#;
        assert!(serde_json::from_str::<PriceChange>(bad_instant).is_err());
        let unknown = r#"{"from": "2027-01-01T00:00:00Z", "input_per_mtok": 1,
            "output_per_mtok": 1, "input": 2}"#;
        assert!(serde_json::from_str::<PriceChange>(unknown).is_err());
    }

    #[test]
    fn model_ids_that_could_break_a_header_or_a_path_are_refused() {
        for bad in [
            "",
            "evil\r\nx-injected: 1",
            "auto",
            "AUTO",
            "../x",
            "a..b",
            "has space",
            "é",
            &"x".repeat(129),
        ] {
            assert!(model_id("id", bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "gpt-4o-mini",
            "meta-llama/llama-3.3-70b-instruct",
            "o1:2024",
            "x.y_z",
            &"x".repeat(128),
        ] {
            assert_eq!(model_id("id", good), Ok(()), "{good:?}");
        }
        let e = model_id("models[0].id", "a\nb").unwrap_err().0;
        assert!(e.starts_with("models[0].id: "), "{e}");
    }

    #[test]
    fn prices_and_caps_are_bounded_and_the_catalog_passes() {
        assert!(price("p", 1e308).is_err());
        assert!(price("p", 1e12).is_err());
        assert!(price("p", -0.1).is_err());
        assert!(price("p", f64::NAN).is_err());
        assert_eq!(price("p", 0.0), Ok(()));
        assert_eq!(price("p", MAX_PRICE_PER_MTOK), Ok(()));
        assert!(token_cap("c", 0).is_err());
        assert!(token_cap("c", MAX_CONTEXT_TOKENS + 1).is_err());
        for (i, m) in default_models().iter().enumerate() {
            assert_eq!(model(&format!("models[{i}]"), m), Ok(()), "{}", m.id);
        }
        let mut m = default_models().remove(0);
        m.max_output_tokens = 0;
        let e = model("models[0] (x)", &m).unwrap_err().0;
        assert!(e.starts_with("models[0] (x).max_output_tokens: "), "{e}");
    }

    #[test]
    fn the_largest_valid_record_fits_the_store_with_room() {
        // A record's cost and tokens are stored as i64; running totals
        // saturate (control-plane/README.md, "Usage ingest and durability").
        assert!(MAX_RECORD_COST_NUSD < i64::MAX as u64 / 200);
        assert!(MAX_RECORD_TOKENS * 4 < i64::MAX as u64);
    }
}
