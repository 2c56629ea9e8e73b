//! Logs: human-readable by default, JSON with `JSON_LOGS=True` or `litellm_settings.json_logs`.
//! `--debug` logs each request and upstream call, `--detailed_debug` adds bodies and the loaded
//! config; secrets are masked everywhere (`crate::secret`). `RUST_LOG` overrides the filter.

use tracing_subscriber::EnvFilter;

pub fn init(debug: bool, detailed: bool, json: bool) {
    let litellm_log = std::env::var("LITELLM_LOG")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let default = if detailed {
        "info,tollgate=trace,tollgate_actors=trace"
    } else if debug || litellm_log == "DEBUG" {
        "info,tollgate=debug,tollgate_actors=debug"
    } else {
        "info,actix_server=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}
