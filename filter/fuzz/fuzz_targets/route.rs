//! Arbitrary bytes through the whole request path: a plan and every attempt
//! of it, and `explain`, on the default table for every kind of tenant and
//! both client protocols. Errors are fine; panics are not. Also checks that
//! the two agree: an `auto` plan's first attempt is explain's choice, and an
//! edit names the routed model.
#![no_main]

use aipipe_core::plan::{Plan, Upstream};
use aipipe_core::protocol::Protocol;
use aipipe_core::request::ChatRequest;
use aipipe_core::route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let table = filter_fuzz::default_table();

    // The headers' text comes from clients too.
    let text = String::from_utf8_lossy(body);
    let key = route::virtual_key(Some(&text), Some(&text));
    let _ = route::authenticate(key, |h| table.account_by_key_hash(h));
    let _ = route::tenant_by_id(&text, |id| table.account_by_id(id));

    for i in filter_fuzz::TENANTS {
        let tenant = &table.accounts()[i];
        let explained = route::explain(table, tenant, body);
        for protocol in [Protocol::Chat, Protocol::Messages] {
            let Ok(mut plan) = Plan::new(table, tenant, protocol, body.to_vec(), None, true) else {
                continue;
            };
            let mut first = true;
            while let Some(attempt) = plan.next_attempt(table, tenant, 10) {
                let Ok(a) = attempt else {
                    break;
                };
                let model = &table.models[a.model.0];
                assert_eq!(table.provider_of(a.model), Some(a.provider));
                if first && plan.auto && protocol == Protocol::Chat {
                    let e = match &explained {
                        Ok(e) => e,
                        Err(e) => panic!("routed by score but explain failed: {e:?}"),
                    };
                    assert_eq!(e.choice.as_deref(), Some(model.id.as_str()));
                }
                first = false;
                // A Chat client on a Chat provider gets one prefix edit.
                let Upstream::Edit(edit) = &a.upstream else {
                    continue;
                };
                let out = edit.apply(body);
                assert_eq!(out.len(), edit.new_len(body.len()));
                if protocol == Protocol::Chat {
                    match ChatRequest::parse(&out) {
                        Ok(again) => assert_eq!(
                            again.model,
                            aipipe_core::request::ModelChoice::Named(model.upstream_name().into())
                        ),
                        Err(e) => panic!("routed body does not parse: {e:?}"),
                    }
                }
            }
        }
    }
});
