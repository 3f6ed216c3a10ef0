//! The `aipipe-control-plane` binary: settings from flags and environment,
//! logs to stderr (stdout carries only the listening line and, in dev mode,
//! the generated secrets), then `aipipe_control_plane::run` until SIGTERM.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let settings = aipipe_control_plane::config::Settings::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aipipe-control-plane: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(aipipe_control_plane::run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("aipipe-control-plane: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
