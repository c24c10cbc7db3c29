//! Logs of the desktop app's two processes: a daily-rolling file per process in the platform's
//! local data dir (`…/clawtray/logs/<program>.<date>.log`), via tracing, the last seven kept. Never
//! message text, tokens or keys: the core logs none of them.

use std::path::Path;

/// Keeps the non-blocking log writer alive for the app's lifetime (held, never read).
pub struct Guard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Start logging to the rolling file `program`; keep the returned guard alive.
#[must_use]
pub fn init(dir: &Path, program: &str) -> Guard {
    Guard {
        _worker: start(dir, program),
    }
}

fn start(dir: &Path, program: &str) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let logs = dir.join("logs");
    // private before the first line is written (the files inherit the umask, the dir guards them)
    crate::outbox::create_private_dir(dir).ok()?;
    crate::outbox::create_private_dir(&logs).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(program)
        .filename_suffix("log")
        .max_log_files(7)
        .build(&logs)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWTRAY_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .try_init()
        .ok()?;
    Some(guard)
}
