//! Revisions committed by other control planes on the same database
//! (control-plane/README.md, "PostgreSQL"): every commit that moved the
//! change log sends `NOTIFY aipipe_revision, '<revision>'`; each process
//! listens on a connection of its own and wakes its waiting Envoys, as its
//! own commits do. A notification can only name a committed revision with
//! every lower one committed too (writers are serialised: `pool`), so the
//! revision it carries is safe to publish.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::connect;
use crate::config::PostgresUrl;

/// The channel.
pub(in crate::db) const CHANNEL: &str = "aipipe_revision";

/// Listens until `alive` says the store is gone (checked at least every
/// second), handing each revision notified to `publish`; reconnects after a
/// second when the connection breaks. Runs on a thread of its own.
pub(in crate::db) fn run(url: &PostgresUrl, alive: impl Fn() -> bool, publish: impl Fn(u64)) {
    while alive() {
        let mut client = match connect(url) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("listening for other control planes' revisions: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(
                "listening for other control planes' revisions: {}",
                super::describe(&e)
            );
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        while alive() && !client.is_closed() {
            let mut notes = client.notifications();
            let mut iter = notes.timeout_iter(Duration::from_secs(1));
            loop {
                match iter.next() {
                    Ok(Some(n)) => match n.payload().parse::<u64>() {
                        Ok(rev) => publish(rev),
                        Err(_) => {
                            tracing::warn!(payload = n.payload(), "a revision that is not one")
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(
                            "listening for other control planes' revisions: {}",
                            super::describe(&e)
                        );
                        break;
                    }
                }
            }
        }
        // Closed off the async runtime: this is a plain thread.
        drop(client);
    }
}
