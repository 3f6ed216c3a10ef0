//! The `aipipe-control-plane` binary: settings from flags and environment,
//! logs to stderr (stdout carries only the listening line and, in dev mode,
//! the generated secrets), then `aipipe_control_plane::run` until SIGTERM;
//! or a one-off command (`catalog import FILE`, `migrate --from --to`) and exit.

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
    if let Some(aipipe_control_plane::config::Command::Migrate { from, to }) = &settings.command {
        // The synchronous PostgreSQL client runs its own runtime: no tokio here.
        return match aipipe_control_plane::migrate::run(&settings, from, to.as_ref()) {
            Ok(report) => {
                print!("{report}");
                std::process::ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("aipipe-control-plane: migrate: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
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
    if let Some(aipipe_control_plane::config::Command::Catalog(
        aipipe_control_plane::config::CatalogCommand::Import { file, dry_run },
    )) = &settings.command
    {
        let database = match settings.database() {
            Ok(database) => database,
            Err(message) => {
                eprintln!("aipipe-control-plane: catalog import: {message}");
                return std::process::ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(aipipe_control_plane::catalog_import::run(
            &database, file, *dry_run,
        )) {
            Ok(report) => {
                print!("{report}");
                std::process::ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("aipipe-control-plane: catalog import: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(aipipe_control_plane::run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("aipipe-control-plane: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
