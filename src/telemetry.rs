//! Logging: JSON lines to stdout, plus daily files in the data directory of which the newest
//! 90 are kept (our policy: server logs are kept 90 days). What goes into a log line is
//! decided where it is written: an allow-list of fields, never message text, phone numbers,
//! names, tokens, cookies or query strings.

use std::path::Path;

use tracing_appender::{
    non_blocking::WorkerGuard,
    rolling::{RollingFileAppender, Rotation},
};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// How many daily log files are kept.
pub const LOG_FILES_KEPT: usize = 90;

/// Installs the global subscriber. Keep the guard alive for the life of the process.
pub fn init(log_dir: Option<&Path>) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let stdout = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false);
    let (file_layer, guard) = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix("sigmaai")
                .filename_suffix("log")
                .max_log_files(LOG_FILES_KEPT)
                .build(dir)?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                Some(
                    fmt::layer()
                        .json()
                        .with_current_span(true)
                        .with_span_list(false)
                        .with_writer(writer),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(file_layer)
        .try_init()?;
    Ok(guard)
}
