//! Delivers budget alerts (control-plane/README.md, "Budget alerts"): a task
//! of its own claims due alerts from the outbox ingest fills and POSTs each
//! to the webhook; a failure is retried with backoff (1 s doubling to
//! 5 min), an alert given up after [`MAX_ATTEMPTS`]. Ingest never waits for
//! it. Claims are leases ([`LEASE`]): of several control planes on one
//! database, one delivers each alert, and an alert claimed by one that died
//! is delivered by another once its lease has passed ("Replicas").

use std::time::Duration;

use crate::AppState;
use crate::db::Alert;

/// Attempts before an alert is given up (and counted as dropped).
pub const MAX_ATTEMPTS: u32 = 10;
/// How often the outbox is looked at.
const TICK: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long claimed alerts are this control plane's to deliver.
pub const LEASE: Duration = Duration::from_secs(30);
/// Alerts claimed at a time: delivered one after the other, each within
/// [`TIMEOUT`], all of them well inside the lease.
const CLAIM: usize = 4;
const _: () = assert!(CLAIM as u64 * TIMEOUT.as_secs() * 3 / 2 <= LEASE.as_secs());

/// The webhook URL, checked at startup: plain `http://` (the control plane
/// makes no TLS connections; put a relay on loopback for an `https://`
/// endpoint).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("--budget-webhook-url: not a URL: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
        return Err(
            "--budget-webhook-url: must be an http:// URL (relay https through a local proxy)"
                .into(),
        );
    }
    Ok(())
}

/// Runs until the process stops.
pub fn spawn(state: AppState, url: String) {
    state.db.enable_alerts();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    tokio::spawn(async move {
        let mut stopping = state.stopping.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            // A full claim may leave more due: claim again at once.
            loop {
                let claimed = match state.db.claim_alerts(CLAIM, LEASE.as_millis() as u64).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("claiming alerts from the outbox: {e}");
                        break;
                    }
                };
                let full = claimed.len() == CLAIM;
                for alert in claimed {
                    deliver(&state, &agent, &url, alert).await;
                }
                if !full || *stopping.borrow() {
                    break;
                }
            }
        }
    });
}

async fn deliver(state: &AppState, agent: &ureq::Agent, url: &str, alert: Alert) {
    let (agent, url, body) = (agent.clone(), url.to_owned(), alert.body.clone());
    let sent = tokio::task::spawn_blocking(move || {
        agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map(|r| r.status().as_u16())
    })
    .await;
    let outcome = match sent {
        Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
        Ok(Ok(status)) => Err(format!("answered {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let stored = match outcome {
        Ok(()) => {
            state.counters.alert("sent");
            state.db.alert_done(alert.id).await
        }
        Err(why) if alert.attempts + 1 >= MAX_ATTEMPTS => {
            tracing::warn!("budget alert given up after {MAX_ATTEMPTS} attempts: {why}");
            state.counters.alert("dropped");
            state.db.alert_done(alert.id).await
        }
        Err(why) => {
            tracing::warn!("budget alert not delivered ({why}); retrying");
            state.counters.alert("retried");
            let backoff = (1000u64 << alert.attempts.min(9)).min(300_000);
            state
                .db
                .alert_retry(alert.id, alert.attempts + 1, crate::db::now_ms() + backoff)
                .await
        }
    };
    if let Err(e) = stored {
        tracing::warn!("updating the alert outbox: {e}");
    }
}
