//! Arbitrary bytes as what another VM (or an older build) left in shared
//! data: a cache slot or the penalties value. Reading never panics, what
//! decodes re-encodes to the same bytes, and penalties stay in range whatever
//! the stored times. The same bytes as a request body and a Cache-Control
//! value must not panic the key computation either.
#![no_main]

use aipipe_core::cache::{self, CacheConfig, Entry};
use aipipe_core::penalty::{MAX_PENALTY, Outcome, Penalties};
use libfuzzer_sys::fuzz_target;

fn slot(data: &[u8]) {
    let key = cache::Key([7; 32]);
    if let Some(e) = cache::decode_entry(data) {
        assert_eq!(cache::encode_entry(&e, usize::MAX).as_deref(), Some(data));
        let hit = cache::lookup(data, &e.key, e.tenant_id, e.expires_ms.saturating_sub(1));
        assert_eq!(hit.is_some(), e.expires_ms > 0);
        assert!(cache::lookup(data, &e.key, e.tenant_id, e.expires_ms).is_none());
        // The other tenant never hits, even with the same key.
        let other = format!("{}x", e.tenant_id);
        assert!(cache::lookup(data, &e.key, &other, 0).is_none());
        assert_eq!(cache::choose_victim([Some(data), None], &e.key, 0), 0);
    }
    let _ = cache::lookup(data, &key, "t", 0);
    let half = data.len() / 2;
    let (a, b) = data.split_at(half);
    let v = cache::choose_victim([Some(a), Some(b)], &key, u64::from(half as u32));
    assert!(v < 2);
}

fn penalties(data: &[u8]) {
    let mut p = Penalties::decode(data);
    if p != Penalties::default() {
        assert_eq!(p.encode(), data);
    }
    assert_eq!(Penalties::decode(&p.encode()), p);
    // Times taken from the bytes: stored times may be anywhere.
    let now = data
        .iter()
        .take(8)
        .fold(0u64, |t, &b| (t << 8) | u64::from(b));
    let ids: Vec<String> = p.models.iter().map(|m| m.id.clone()).collect();
    for (i, id) in ids.iter().enumerate() {
        for decay in [0, 1, 30_000, u64::MAX] {
            let v = p.penalty(id, now, decay);
            assert!((0.0..=MAX_PENALTY).contains(&v), "{v}");
        }
        let outcome = if i % 2 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        p.record(id, outcome, now, 30_000);
        let v = p.penalty(id, now, 30_000);
        assert!((0.0..=MAX_PENALTY).contains(&v), "{v}");
    }
    if let Some(newer) = p.epoch.checked_add(1) {
        assert!(p.sync_epoch(newer));
        assert!(p.models.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    slot(data);
    penalties(data);
    let _ = cache::cache_control_bypass(data);
    {
        if let Ok(k) = cache::prepare(data, data.first().is_some_and(|b| b.is_multiple_of(2)))
            .map(|p| p.key("t", "openai", "gpt-4o-mini"))
        {
            let cfg = CacheConfig {
                slots: 3,
                tenant_share: Some(3),
                ..CacheConfig::default()
            };
            let [a, b] = cache::slots_for(&k, "t", &cfg);
            assert!(a < 3 && b < 3 && a != b);
            let e = Entry {
                key: k,
                tenant_id: "t",
                stored_ms: 1,
                expires_ms: 2,
                status: 200,
                content_type: "application/json",
                body: data,
            };
            if let Some(bytes) = cache::encode_entry(&e, cfg.max_entry_bytes) {
                assert_eq!(cache::lookup(&bytes, &k, "t", 1), Some(e));
            }
        }
    }
});
