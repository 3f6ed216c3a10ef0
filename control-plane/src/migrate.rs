//! `aipipe-control-plane migrate --from sqlite://PATH [--to postgres://…]`:
//! the command around `db::pg::copy` (control-plane/README.md,
//! "PostgreSQL"). `--to` defaults to `AIPIPE_DATABASE_URL`, the way to give
//! a URL with a password without showing it in the process list.

use crate::config::{Database, RawUrl, Settings, parse_database_url};
use crate::db::pg::copy::{self, Report};

/// Parses both URLs and copies; `Err` is the message for the operator (no
/// password in it).
pub fn run(settings: &Settings, from: &RawUrl, to: Option<&RawUrl>) -> Result<Report, String> {
    let from = match parse_database_url("--from", &from.0)? {
        Database::Sqlite(path) => path,
        Database::Postgres(url) => {
            return Err(format!(
                "--from: {url} is a PostgreSQL database: migrate copies from sqlite://PATH"
            ));
        }
    };
    let to = match to {
        Some(to) => parse_database_url("--to", &to.0)?,
        None => match &settings.database_url {
            Some(url) => parse_database_url("AIPIPE_DATABASE_URL", &url.0)?,
            None => {
                return Err(
                    "no target: give --to postgres://… or set AIPIPE_DATABASE_URL".to_owned(),
                );
            }
        },
    };
    match to {
        Database::Postgres(url) => copy::run(&from, &url),
        Database::Sqlite(path) => Err(format!(
            "the target sqlite://{} is a SQLite file: migrate copies into postgres://…",
            path.display()
        )),
    }
}
