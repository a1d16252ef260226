//! Logging: `tracing` to stderr, text or JSON, filtered by `--log-level` or `$RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. `default` applies when neither `--log-level` nor `RUST_LOG`
/// is set.
pub fn init(format: LogFormat, level: Option<&str>, default: &str) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => {
            EnvFilter::try_new(l).map_err(|e| anyhow::anyhow!("invalid --log-level {l:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
