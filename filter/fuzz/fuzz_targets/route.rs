//! Arbitrary bytes through the whole request path: `route` and `explain` on
//! the default table for every kind of tenant. Errors are fine; panics are
//! not. Also checks that the two agree: an `auto` route picks explain's
//! choice, and the edit it returns names the routed model.
#![no_main]

use aipipe_core::request::ChatRequest;
use aipipe_core::route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let table = filter_fuzz::default_table();

    // The headers' text comes from clients too.
    let text = String::from_utf8_lossy(body);
    let key = route::virtual_key(Some(&text), Some(&text));
    let _ = route::authenticate(table, key);
    let _ = route::tenant_by_id(table, &text);

    for tenant in filter_fuzz::TENANTS {
        let routed = route::route(table, tenant, body);
        let explained = route::explain(table, tenant, body);
        let Ok(r) = routed else {
            continue;
        };
        let model = &table.models[r.model];
        assert_eq!(table.model_provider[r.model], r.provider);
        // Anthropic models get a translated body; the rest one prefix edit.
        let route::Upstream::Edit(edit) = &r.upstream else {
            continue;
        };
        let out = edit.apply(body);
        assert_eq!(out.len(), edit.new_len(body.len()));
        match ChatRequest::parse(&out) {
            Ok(again) => assert_eq!(
                again.model,
                aipipe_core::request::ModelChoice::Named(model.upstream_name().into())
            ),
            Err(e) => panic!("routed body does not parse: {e:?}"),
        }
        if r.score.is_some() {
            let e = match explained {
                Ok(e) => e,
                Err(e) => panic!("route chose by score but explain failed: {e:?}"),
            };
            assert_eq!(e.choice.as_deref(), Some(model.id.as_str()));
        }
    }
});
