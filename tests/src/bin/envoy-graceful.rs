//! `envoy-graceful ENVOY_ARGS…`: runs Envoy and stops it without losing a
//! usage record. Envoy exits at once on SIGTERM, with whatever usage its
//! filter still holds; a container stop (`docker compose down`) sends
//! exactly that. So this runs Envoy as its child and, on SIGTERM or SIGINT,
//! takes the stop order that loses nothing (control-plane/README.md,
//! "Stopping without losing usage"): close the listeners, let the requests
//! in flight finish, wait until the filter holds no usage record, then ask
//! Envoy to quit (`POST /quitquitquit`). If that takes longer than
//! `AIPIPE_DRAIN_SECONDS` (default 25, under compose's 30 s grace period),
//! it says what was left and stops Envoy anyway.
//!
//! Envoy is `$ENVOY_BIN` (default `envoy` on the PATH); its admin API is
//! expected on 127.0.0.1:`$AIPIPE_ENVOY_ADMIN_PORT` (default 9901). The exit
//! status is Envoy's.

use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let bin = std::env::var("ENVOY_BIN").unwrap_or_else(|_| "envoy".into());
    let admin_port: u16 = std::env::var("AIPIPE_ENVOY_ADMIN_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9901);
    let patience = Duration::from_secs(
        std::env::var("AIPIPE_DRAIN_SECONDS")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(25),
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("envoy-graceful: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut child = match tokio::process::Command::new(&bin)
            .args(std::env::args_os().skip(1))
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("envoy-graceful: starting {bin}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("envoy-graceful: cannot listen for signals");
            let _ = child.start_kill();
            return ExitCode::FAILURE;
        };
        let status = tokio::select! {
            s = child.wait() => s,
            _ = term.recv() => stop(&mut child, admin_port, patience).await,
            _ = int.recv() => stop(&mut child, admin_port, patience).await,
        };
        match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
            Err(e) => {
                eprintln!("envoy-graceful: waiting for Envoy: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Drains, then asks Envoy to quit; kills it only if it does not.
async fn stop(
    child: &mut tokio::process::Child,
    admin_port: u16,
    patience: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    eprintln!("envoy-graceful: draining (no new requests; waiting for usage to be shipped)");
    let drained = tokio::task::spawn_blocking(move || {
        aipipe_tests::drain_usage_at(admin_port, Duration::from_secs(2), patience)
    })
    .await;
    match drained {
        Ok(Ok(())) => eprintln!("envoy-graceful: drained; stopping Envoy"),
        Ok(Err(e)) => eprintln!("envoy-graceful: stopping Envoy undrained: {e}"),
        Err(e) => eprintln!("envoy-graceful: stopping Envoy undrained: {e}"),
    }
    let quit = format!("http://127.0.0.1:{admin_port}/quitquitquit");
    let _ =
        tokio::task::spawn_blocking(move || aipipe_tests::try_request("POST", &quit, &[], None))
            .await;
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            child.start_kill()?;
            child.wait().await
        }
    }
}
