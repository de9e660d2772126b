//! Tracing: `RUST_LOG` filters (default `info`), one span per request with a
//! request id (tracing-actix-web). Addresses never go to info-level logs;
//! where one must be mentioned, use [`crate::domain::email::mask`].

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are no-ops (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_cron_scheduler=warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
