//! The `log` facade (which the core logs through) onto Envoy's own log,
//! under Envoy's `dynamic_modules` logger id. As the Wasm build, at most
//! info level: the core's per-request decision lines are debug.

use log::{Level, LevelFilter, Metadata, Record};

use crate::ffi::{self, LogLevel};

struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

fn level(l: Level) -> LogLevel {
    match l {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warn,
        Level::Info => LogLevel::Info,
        Level::Debug | Level::Trace => LogLevel::Debug,
    }
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ffi::log_enabled(level(metadata.level()))
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            ffi::log(level(record.level()), &format!("aipipe: {}", record.args()));
        }
    }

    fn flush(&self) {}
}

/// Installs the logger, and a panic hook that logs where a panic happened
/// (never its payload, which could hold request data) before the hook
/// that caught it answers 500.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        ffi::log(LogLevel::Error, &format!("aipipe: panic{at}"));
    }));
}
