//! Logs: human-readable by default, JSON with `JSON_LOGS=True` or `litellm_settings.json_logs`
//! (one JSON object per line). `--debug` (or `litellm_settings.set_verbose: true`, or
//! `LITELLM_LOG=DEBUG`) logs each request and upstream call, `--detailed_debug` adds bodies and
//! the loaded config; secrets are masked everywhere (`crate::secret`). `RUST_LOG` overrides the
//! console's filter.
//!
//! Besides the console, log events are teed into the live tail (`GET /logs/stream?level=debug`,
//! see [`crate::observability::tail`]) at debug level for the gateway's own crates, whatever the
//! console shows; while no debug reader is connected that costs one atomic load per event.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::observability::tail::{self, TailLayer};

/// `litellm_settings.set_verbose`: LiteLLM's switch for debug logs.
pub fn set_verbose(config: &crate::config::ProxyConfig) -> bool {
    config
        .litellm_settings
        .get("set_verbose")
        .is_some_and(crate::config::truthy)
}

/// The console's filter when `RUST_LOG` does not set one.
fn default_filter(debug: bool, detailed: bool) -> &'static str {
    let litellm_log = std::env::var("LITELLM_LOG")
        .unwrap_or_default()
        .to_ascii_uppercase();
    if detailed {
        "info,tollgate=trace,tollgate_actors=trace"
    } else if debug || litellm_log == "DEBUG" {
        "info,tollgate=debug,tollgate_actors=debug"
    } else {
        "info,actix_server=warn"
    }
}

pub fn init(debug: bool, detailed: bool, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(debug, detailed)));
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let console = if json {
        console.json().with_filter(filter).boxed()
    } else {
        console.with_filter(filter).boxed()
    };
    // Asked per event (not cached per call site), so it follows readers connecting and leaving.
    let tail_filter = filter_fn(|meta| {
        tail::global().wants_logs()
            && (*meta.level() <= LevelFilter::INFO
                || meta.target().starts_with("tollgate") && *meta.level() <= LevelFilter::DEBUG)
    })
    .with_max_level_hint(LevelFilter::DEBUG);
    let tail = TailLayer::new(tail::global().clone()).with_filter(tail_filter);
    // A second init (tests) keeps the first subscriber.
    drop(
        tracing_subscriber::registry()
            .with(console)
            .with(tail)
            .try_init(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_verbose_turns_debug_logs_on() {
        let parse = |text: &str| crate::config::ProxyConfig::parse(text, "test").unwrap();
        let config = parse("litellm_settings:\n  set_verbose: true\n");
        assert!(set_verbose(&config));
        let quiet = parse("litellm_settings:\n  set_verbose: false\n");
        assert!(!set_verbose(&quiet));
        assert!(!set_verbose(&crate::config::ProxyConfig::default()));
        assert!(default_filter(true, false).contains("tollgate=debug"));
    }
}
