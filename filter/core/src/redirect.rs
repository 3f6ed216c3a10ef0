//! The upstream filter role's one decision, shared by both hosts: a
//! provider's failed answer to an attempt that may fail over becomes a
//! `307` to the failover location the filter gave the attempt (see the
//! proxy-wasm host's `upstream.rs` and the native host's `roles.rs` for
//! where it runs, and why it must run upstream).

use crate::contract::FAILED_STATUS_HEADER;
use crate::penalty::is_failure;

/// The response headers that turn a failed answer (429/5xx) into the
/// failover redirect, or None when the answer goes to the client as it is.
pub fn failover_redirect(location: &str, status: u16) -> Option<[(&'static str, String); 3]> {
    if !is_failure(status) {
        return None;
    }
    Some([
        (":status", "307".to_owned()),
        ("location", format!("{location}&status={status}")),
        (FAILED_STATUS_HEADER, status.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_redirect_with_the_providers_status_and_successes_pass() {
        let h = failover_redirect("http://aipipe.failover/x?aipipe-failover=1", 429).unwrap();
        assert_eq!(h[0], (":status", "307".to_owned()));
        assert_eq!(
            h[1].1,
            "http://aipipe.failover/x?aipipe-failover=1&status=429"
        );
        assert_eq!(h[2], (FAILED_STATUS_HEADER, "429".to_owned()));
        assert!(failover_redirect("l", 200).is_none());
        assert!(failover_redirect("l", 404).is_none());
    }
}
