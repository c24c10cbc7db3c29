//! Logs to a daily-rolling file in the platform's local data dir (`…/clawtray/logs`), via tracing.
//! Never message text, tokens or keys: the core logs none of them.

use std::path::Path;

/// Keeps the non-blocking log writer alive for the app's lifetime (held, never read).
pub struct Guard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Start logging to the rolling file; keep the returned guard alive.
pub fn init(dir: &Path) -> Guard {
    Guard {
        _worker: start(dir),
    }
}

fn start(dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let logs = dir.join("logs");
    // private before the first line is written (the files inherit the umask, the dir guards them)
    clawtray_client::outbox::create_private_dir(dir).ok()?;
    clawtray_client::outbox::create_private_dir(&logs).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("clawtray")
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
