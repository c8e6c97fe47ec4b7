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
pub(crate) const LOG_FILES_KEPT: usize = 90;

/// Daily files `sigmaai.YYYY-MM-DD.log`; older ones beyond [`LOG_FILES_KEPT`] are removed
/// when the appender starts and at each daily rotation.
pub(crate) fn daily_appender(dir: &Path) -> anyhow::Result<RollingFileAppender> {
    std::fs::create_dir_all(dir)?;
    Ok(RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("sigmaai")
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(dir)?)
}

/// Lines the log file's writer thread may have queued. The library's default (128,000) is a
/// channel allocated whole at start-up, ~4 MiB of an idle server's memory. As before, lines
/// past the bound are dropped (the appender is lossy) rather than blocking a request; 16k
/// lines is still minutes of a busy server's logging waiting for a slow disk.
pub(crate) const LOG_QUEUE_LINES: usize = 16 * 1024;

/// The MCP library logs a failed connection at ERROR with the server's URL, an address a
/// tenant typed: it is silenced, and `mcp::registry` logs the failure itself at warn.
pub(crate) const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=warn,rmcp=off";

/// Installs the global subscriber. Keep the guard alive for the life of the process.
pub(crate) fn init(log_dir: Option<&Path>) -> anyhow::Result<Option<WorkerGuard>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stdout = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false);
    let (file_layer, guard) = match log_dir {
        Some(dir) => {
            let appender = daily_appender(dir)?;
            prune_logs(dir, time::OffsetDateTime::now_utc().date())?;
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .finish(appender);
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

/// Removes daily log files dated more than [`LOG_FILES_KEPT`] days before `today` (our policy:
/// server logs are kept 90 days). Returns how many were removed. Runs at start-up and with
/// the daily privacy sweep, so it holds however long a process lives.
pub(crate) fn prune_logs(dir: &Path, today: time::Date) -> std::io::Result<usize> {
    let cutoff = today - time::Duration::days(LOG_FILES_KEPT as i64);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(date) = name
            .strip_prefix("sigmaai.")
            .and_then(|r| r.strip_suffix(".log"))
        else {
            continue;
        };
        if time::Date::parse(date, &format).is_ok_and(|d| d < cutoff) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_older_than_90_days_are_removed() {
        let dir = std::env::temp_dir().join(format!("sigmaai-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let today = time::macros::date!(2026 - 06 - 30);
        for i in 0..120 {
            let day = today - time::Duration::days(i);
            std::fs::write(dir.join(format!("sigmaai.{day}.log")), b"{}").unwrap();
        }
        std::fs::write(dir.join("other.txt"), b"x").unwrap();
        assert_eq!(prune_logs(&dir, today).unwrap(), 29);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.contains(&format!("sigmaai.{}.log", today - time::Duration::days(90))));
        assert!(!names.contains(&format!("sigmaai.{}.log", today - time::Duration::days(91))));
        assert!(
            names.contains(&"other.txt".to_owned()),
            "only our log files are touched"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
