//! Start-up: config → deployments → safety checks → actors → HTTP server.
//!
//! Order matters: the config is loaded and `environment_variables` exported before any thread
//! starts; the actix `System` starts after every check has passed; the router actor and its
//! deployment actors start before the HTTP workers, which share their addresses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use arc_swap::ArcSwapOption;
use serde_json::{json, Map, Value};
use tollgate_actors::RouterHandle;

use crate::auth::{master_key_weakness, Authenticator};
use crate::cli::Cli;
use crate::config::{ModelEntry, ProxyConfig};
use crate::deployment::{CliDefaults, Deployment};
use crate::secret::redact_json;
use crate::state::AppState;

/// Why the gateway refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("refusing to start: {reason} and the gateway would listen on {host}, which is not a loopback address. Set a strong master key (at least {min} random characters, for example `LITELLM_MASTER_KEY=sk-$(openssl rand -hex 24)`), listen on 127.0.0.1, or set LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true to accept the risk.", min = crate::auth::MIN_MASTER_KEY_LEN)]
    WeakMasterKey { reason: String, host: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("outbound TLS or proxy: {0}")]
    Outbound(String),
    #[error("config bucket: {0}")]
    ConfigBucket(String),
    #[error("TLS on the gateway's port: {0}")]
    Tls(String),
    #[error("logging callbacks: {0}")]
    Callback(String),
    #[error("alerting: {0}")]
    Alerting(String),
    #[error("OpenTelemetry traces: {0}")]
    Traces(String),
    #[error("pass-through endpoints: {0}")]
    PassThrough(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The quick-start deployments for `--model`: the model under its name (or `--alias`), and a
/// catch-all so that every requested model goes to it.
fn quick_start_entries(cli: &Cli) -> Vec<ModelEntry> {
    let Some(model) = &cli.model else {
        return Vec::new();
    };
    let mut params = Map::new();
    params.insert("model".into(), json!(model));
    if let Some(b) = &cli.api_base {
        params.insert("api_base".into(), json!(b));
    }
    if let Some(v) = &cli.api_version {
        params.insert("api_version".into(), json!(v));
    }
    let name = cli.alias.clone().unwrap_or_else(|| model.clone());
    [name, "*".to_string()]
        .into_iter()
        .map(|model_name| ModelEntry {
            model_name,
            litellm_params: params.clone(),
            model_info: Map::new(),
            unresolved: Vec::new(),
        })
        .collect()
}

/// Load the config named on the command line (or none), with the quick-start model added.
pub fn load_config(cli: &Cli) -> Result<ProxyConfig, StartError> {
    let bucket = crate::config_bucket::from_env(&|k| std::env::var(k).ok())
        .map_err(StartError::ConfigBucket)?;
    let mut config = match (&bucket, &cli.config) {
        (Some(bucket), path) => {
            if let Some(path) = path {
                eprintln!(
                    "warning: LITELLM_CONFIG_BUCKET_NAME is set: the config is read from {}, not from {}",
                    bucket.origin(),
                    path.display()
                );
            }
            let text = bucket.fetch().map_err(StartError::ConfigBucket)?;
            ProxyConfig::parse(&text, &bucket.origin())?
        }
        (None, Some(path)) => ProxyConfig::load(path)?,
        (None, None) => ProxyConfig::default(),
    };
    config.model_list.extend(quick_start_entries(cli));
    Ok(config)
}

/// `tollgate migrate`: apply pending migrations and report them. Returns the exit code.
pub fn migrate_command(cli: &Cli) -> i32 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let url = match crate::database::url_for(config.database_url()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match crate::store::migrate::run(&url) {
        Ok(applied) if applied.is_empty() => {
            println!("{}: schema up to date", url.redacted());
            0
        }
        Ok(applied) => {
            println!("{}: applied {}", url.redacted(), applied.join(", "));
            0
        }
        Err(e) => {
            eprintln!("error: {}: {e}", url.redacted());
            1
        }
    }
}

/// Run the gateway until it is stopped (SIGTERM drains in-flight requests).
pub fn serve(cli: Cli, config: ProxyConfig) -> Result<(), StartError> {
    let started_at = Instant::now();
    for warning in config.warnings.iter().chain(&cli.litellm_only.warnings()) {
        tracing::warn!("{warning}");
    }
    if cli.detailed_debug {
        if let Some(path) = &config.source {
            let raw = std::fs::read_to_string(path).unwrap_or_default();
            let value: Value = yaml_serde::from_str(&raw).unwrap_or(Value::Null);
            tracing::debug!(config = %redact_json(&value), "loaded config (secrets masked)");
        }
    }

    // Before any listener or pool opens a descriptor: one per client and upstream connection.
    crate::fd_limit::raise_and_log();

    let master_key = config.master_key();
    if let Some(reason) = master_key_weakness(master_key.as_ref()) {
        if !is_loopback(&cli.host) && !config.permit_weak_master_key() {
            return Err(StartError::WeakMasterKey {
                reason,
                host: cli.host.clone(),
            });
        }
        tracing::warn!("{reason}; acceptable only because the gateway listens on {} or the risk was accepted explicitly", cli.host);
    }

    let cli_defaults = CliDefaults {
        api_base: None,
        api_version: None,
        temperature: cli.temperature,
        max_tokens: cli.max_tokens,
        drop_params: cli.drop_params || config.drop_params(),
        request_timeout: None,
        max_parallel_requests: config.default_max_parallel_requests(),
    };
    let deployments: Vec<Arc<Deployment>> = config
        .model_list
        .iter()
        .map(|e| Arc::new(Deployment::from_entry(e, &cli_defaults)))
        .collect();
    for d in &deployments {
        match &d.problem {
            Some(p) => tracing::warn!(
                model_name = d.model_name,
                deployment = d.id,
                "deployment cannot be called: {p}"
            ),
            None => match d.retired() {
                Some(reason) => tracing::warn!(
                    model_name = d.model_name,
                    deployment = d.id,
                    "deployment cannot be called: {reason}"
                ),
                None => tracing::info!(
                    model_name = d.model_name,
                    model = d.litellm_model,
                    provider = d.provider_name(),
                    "deployment ready"
                ),
            },
        }
    }
    if deployments.is_empty() {
        tracing::warn!("no models configured: pass --config or --model");
    }

    let workers = cli.num_workers.filter(|n| *n > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let shared_redis = crate::caching::shared_state_redis(&config, &|var| std::env::var(var).ok());
    let shared = match shared_redis {
        None => {
            tracing::info!(
                "rate limits and routing state are per instance: no Redis configured (router_settings.redis_host, cache_params, REDIS_URL or REDIS_HOST)"
            );
            None
        }
        Some((url, source)) => match tollgate_actors::SharedRouterState::new(&url) {
            Ok(shared) => {
                tracing::info!(
                    source,
                    "rate limits and routing state (cooldowns, usage, latencies) shared across instances through Redis"
                );
                Some(shared)
            }
            Err(e) => {
                // Never fatal: the router works on local state, and readiness says so.
                tracing::error!(error = %e, source, "the Redis for shared limits cannot be used (bad URL); rate limits and routing state are per instance");
                None
            }
        },
    };
    let aliases = config.model_group_aliases();
    let background_health = config.background_health_checks();
    let global_max_parallel = config.global_max_parallel_requests();
    let spend_flush_every = config
        .general_settings
        .get("proxy_batch_write_at")
        .and_then(crate::config::as_f64)
        .filter(|s| *s > 0.0)
        .map(crate::config::config_seconds)
        .unwrap_or(crate::spend::DEFAULT_FLUSH_EVERY);
    let key_header = config.key_header_name();
    let cache_settings = {
        let resolved =
            crate::caching::CacheSettings::resolve(&config, &|var| std::env::var(var).ok());
        for note in &resolved.notes {
            tracing::info!("{note}");
        }
        for warning in &resolved.warnings {
            tracing::warn!("{warning}");
        }
        resolved.settings
    };
    let callbacks = crate::observability::callbacks::CallbackSettings::resolve(&config, &|var| {
        std::env::var(var).ok()
    })
    .map_err(StartError::Callback)?;
    let alert_settings = crate::observability::alerting::AlertSettings::resolve(&config, &|var| {
        std::env::var(var).ok()
    })
    .map_err(StartError::Alerting)?;
    let trace_settings = crate::observability::traces::TraceSettings::resolve(&config, &|var| {
        std::env::var(var).ok()
    })
    .map_err(StartError::Traces)?;
    let tracer = trace_settings
        .as_ref()
        .map(crate::observability::traces::Tracer::new)
        .transpose()
        .map_err(StartError::Traces)?;
    for name in &callbacks.not_implemented {
        tracing::warn!(
            "logging callback {name} is not implemented by this Tollgate version; ignored"
        );
    }
    crate::outbound::init(
        config.litellm_settings.get("ssl_verify"),
        config
            .litellm_settings
            .get("ssl_certificate")
            .and_then(Value::as_str),
    )
    .map_err(StartError::Outbound)?;
    let tls = match (&cli.ssl_keyfile_path, &cli.ssl_certfile_path) {
        (None, None) => None,
        (Some(key), Some(cert)) => Some(server_tls(cert, key).map_err(StartError::Tls)?),
        _ => {
            return Err(StartError::Tls(
                "--ssl_keyfile_path and --ssl_certfile_path go together; set both or neither"
                    .into(),
            ))
        }
    };
    let pass_through = Arc::new(
        crate::passthrough::endpoints::Endpoints::from_config(
            &config,
            &crate::http::is_builtin_path,
        )
        .map_err(StartError::PassThrough)?,
    );
    for e in &pass_through.list {
        tracing::info!(
            path = e.path,
            target = %crate::secret::display_url(&e.target),
            auth = e.auth,
            "pass-through endpoint"
        );
    }
    let prometheus = config.prometheus_callback();
    let cli_request_timeout = cli.request_timeout();
    let config = Arc::new(config);
    // `litellm_settings.set_verbose` is LiteLLM's `--debug`: each request and upstream call is logged.
    let debug = cli.debug || cli.detailed_debug || crate::logging::set_verbose(&config);
    let detailed_debug = cli.detailed_debug;
    let host = cli.host.clone();
    let port = cli.port;

    let database_url = crate::database::url_for(config.database_url())
        .map_err(|e| StartError::Database(e.to_string()))?;
    let db = Arc::new(
        crate::database::Database::start(database_url, config.database_pool())
            .map_err(|e| StartError::Database(e.to_string()))?,
    );

    let system = actix_web::rt::System::new();
    system.block_on(async move {
        db.open_pool()
            .map_err(|e| StartError::Database(e.to_string()))?;
        // Settings stored by `/config/update` override config.yaml's (see
        // crate::runtime_settings); their environment variables resolve the deployments' references.
        let settings = Arc::new(crate::runtime_settings::RuntimeSettings::new(
            config.clone(),
            cli_request_timeout,
            master_key.as_ref(),
        ));
        settings.initial(&db).await;
        // Models stored in the database (`/model/new`) join the config's deployments at start
        // and are reloaded periodically (see crate::models_sync).
        let db_models = Arc::new(
            crate::models_sync::DbModels::new(deployments, cli_defaults, master_key.as_ref())
                .with_config(config.clone()),
        );
        let deployments = db_models.initial(&db).await;
        let router =
            RouterHandle::start_shared(deployments, settings.live().cooldown.clone(), shared);
        let keys = key_cache(db.clone());
        let ledger = Arc::new(crate::spend::Ledger::default());
        let spend_tracker = crate::spend::start(
            db.clone(),
            spend_flush_every,
            ledger.clone(),
            Some(keys.clone()),
            !config.spend_logs_disabled(),
        );
        let end_users = end_user_cache(db.clone());
        let limiter = rate_limiter(router.shared.clone());
        // The router is the supervision root: it restarts these actors if they die.
        router.adopt(spend_tracker.child());
        router.adopt(limiter.child());
        router.adopt(keys.child());
        router.adopt(end_users.child());
        let mut observers = crate::observability::Observers::default();
        let alerting = alert_settings.map(|settings| {
            let alerting = Arc::new(crate::observability::alerting::Alerting::new(settings));
            router.adopt(crate::observability::alerting::start(alerting.clone()));
            observers.add(alerting.clone());
            ledger.set_alerting(alerting.clone());
            tracing::info!("alerting on");
            alerting
        });
        let message_logging = callbacks.message_logging;
        let callbacks: Vec<crate::observability::callbacks::Callback> = callbacks
            .callbacks
            .into_iter()
            .map(|settings| {
                tracing::info!(callback = settings.name, "logging callback on");
                let callback = crate::observability::callbacks::start(settings);
                router.adopt(callback.actor.clone());
                observers.add(callback.queue.clone());
                callback
            })
            .collect();
        // LiteLLM's per-request Prometheus series on /metrics, when `callbacks` lists
        // `prometheus` (as in LiteLLM): label sets and atomic adds per family and request.
        let metrics = prometheus.then(|| {
            let metrics = Arc::new(crate::observability::metrics::Metrics::default());
            observers.add(metrics.clone());
            metrics
        });
        let log_tail = crate::observability::tail::global().clone();
        observers.add(Arc::new(log_tail.clone()));
        // OpenTelemetry traces: spans built by the pipeline, exported by a supervised actor.
        let traces = tracer.map(|tracer| {
            let traces = crate::observability::traces::start(tracer);
            router.adopt(traces.actor.clone());
            if let Some(settings) = &trace_settings {
                match &settings.exporter {
                    crate::observability::traces::Exporter::OtlpHttp { endpoint, .. } => {
                        tracing::info!(endpoint = %crate::secret::display_url(endpoint), service_name = settings.service_name, "OpenTelemetry traces on (OTLP/HTTP)")
                    }
                    crate::observability::traces::Exporter::OtlpGrpc { endpoint, .. } => {
                        tracing::info!(endpoint = %crate::secret::display_url(endpoint), service_name = settings.service_name, "OpenTelemetry traces on (OTLP/gRPC)")
                    }
                    crate::observability::traces::Exporter::Console => {
                        tracing::info!(service_name = settings.service_name, "OpenTelemetry traces on (console)")
                    }
                }
            }
            traces.tracer
        });
        let cache = cache_settings.map(|settings| {
            let store = response_cache(&settings);
            router.adopt(store.child());
            Arc::new(crate::caching::Cache::new(settings, store))
        });
        let sessions = Arc::new(ui_sessions(db.clone(), master_key.as_ref()));
        let state = web::Data::new(AppState {
            config,
            router,
            auth: Authenticator::new(master_key.as_ref(), key_header)
                .with_keys(keys)
                .with_sessions(sessions.clone()),
            sessions,
            end_users,
            spend: spend_tracker.clone(),
            ledger,
            db,
            aliases,
            settings,
            limiter,
            global_max_parallel,
            started_at,
            debug,
            detailed_debug,
            background_health,
            last_health_round: ArcSwapOption::empty(),
            db_models,
            cache,
            observers: Arc::new(observers),
            callbacks,
            message_logging,
            metrics,
            traces: traces.clone(),
            alerting: alerting.clone(),
            log_tail,
            pass_through: pass_through.clone(),
        });
        if let Some(alerting) = alerting {
            crate::observability::alerting::spawn_watch(state.clone(), alerting);
        }
        // Pick up models other instances add to the shared database (see crate::models_sync).
        if let Some(every) = state.db_models.reload_every {
            crate::models_sync::spawn_periodic(state.clone(), every);
        }
        // Secrets from general_settings.key_management_system are read again periodically.
        crate::secret_manager::spawn_refresh(state.clone());
        if let Some(every) = crate::spend::budget_reset_every() {
            crate::spend::spawn_budget_resets(state.clone(), every);
        }
        match state.config.spend_logs_retention() {
            Ok(Some(period)) => {
                let every = crate::spend::retention_sweep_every(period);
                crate::spend::spawn_spend_log_retention(state.clone(), period, every);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; spend-log rows are kept"),
        }
        if let Some(every) = background_health {
            let state = state.clone();
            actix_web::rt::spawn(async move {
                loop {
                    if let Ok(reports) = crate::http::run_health_round(&state, None).await {
                        crate::http::store_health_round(&state, reports);
                    }
                    actix_web::rt::time::sleep(every).await;
                }
            });
        }
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let pass_through = pass_through.clone();
            App::new()
                .app_data(app_state.clone())
                // Per-request access spans only when debugging: formatting them costs more than
                // the rest of the gateway's own work on a request.
                .wrap(actix_web::middleware::Condition::new(
                    debug,
                    tracing_actix_web::TracingLogger::default(),
                ))
                .configure(move |cfg| crate::http::configure(cfg, &pass_through))
        })
        .workers(workers)
        .backlog(4096)
        // Signals are handled below, so that the spend recorded by the last requests is written
        // before the actix system (and the spend tracker's arbiter) stops.
        .disable_signals();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            None => server.bind((host.as_str(), port)),
            Some(tls) => server.bind_rustls_0_23((host.as_str(), port), tls),
        }
        .map_err(|source| StartError::Bind {
            addr: format!("{host}:{port}"),
            source,
        })?;
        log_outbound(&state);
        for addr in server.addrs() {
            // One plain line on stdout that scripts and tests wait for.
            println!("tollgate listening on {scheme}://{addr}");
        }
        tracing::info!(
            workers,
            deployments = state.router.snapshot().deployments().len(),
            startup_ms = started_at.elapsed().as_millis() as u64,
            "Tollgate {} ready",
            crate::state::VERSION
        );
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received; finishing requests in flight");
            handle.stop(true).await;
        });
        server.await?;
        // Requests have drained; write the spend they recorded.
        crate::spend::drain(&spend_tracker, Duration::from_secs(10)).await;
        // And export the spans they left.
        if let Some(tracer) = &traces {
            tracer.flush(Duration::from_secs(5)).await;
        }
        tracing::info!("shut down");
        Ok(())
    })
}

/// The TLS config of the gateway's own port, from PEM files; errors name the file.
fn server_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    // The key file's contents never appear in messages.
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| format!("{} holds no PEM private key", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| {
        format!(
            "the certificate {} and the key {} cannot be used together: {e}",
            cert.display(),
            key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Start-up lines about provider TLS and proxies; a loud warning per deployment whose
/// certificates are not checked.
fn log_outbound(state: &AppState) {
    let outbound = crate::outbound::get();
    if outbound.default_trust.starts_with("not checked") {
        tracing::warn!(
            "SECURITY: provider TLS certificates are NOT checked for any deployment (litellm_settings.ssl_verify: false or SSL_VERIFY=false); a network attacker can read and alter provider traffic, credentials included"
        );
    } else {
        tracing::info!(
            "provider TLS certificates are checked against {}",
            outbound.default_trust
        );
    }
    for d in state.router.snapshot().deployments() {
        let d = &d.upstream;
        match &d.trust {
            Some(crate::outbound::Trust::NoVerify) => tracing::warn!(
                deployment = d.id,
                model_name = d.model_name,
                "SECURITY: provider TLS certificates are NOT checked for deployment {} (model_name {}, litellm_params.ssl_verify: false)",
                d.id,
                d.model_name
            ),
            Some(crate::outbound::Trust::Bundle(path)) => tracing::info!(
                deployment = d.id,
                "deployment {} trusts only the CA bundle {path}",
                d.model_name
            ),
            None => {}
        }
    }
    if let Some(proxies) = outbound.proxy_summary() {
        tracing::info!("outbound proxy: {proxies}");
    }
}

/// The response cache's store: in memory, or in Redis (a connection of its own, with its own
/// breaker, so cache traffic never opens the router's).
/// Admin UI sign-in: the admin is `UI_USERNAME` (default `admin`) with `UI_PASSWORD`, else the
/// master key.
fn ui_sessions(
    db: Arc<crate::database::Database>,
    master_key: Option<&crate::secret::Secret>,
) -> crate::ui_session::Sessions {
    let username = std::env::var("UI_USERNAME")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| crate::ui_session::DEFAULT_ADMIN.to_string());
    let password = std::env::var("UI_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(crate::secret::Secret::new);
    crate::ui_session::Sessions::new(db, username, password.as_ref().or(master_key))
}

fn response_cache(settings: &crate::caching::CacheSettings) -> tollgate_actors::ResponseCache {
    use tollgate_actors::{CacheBackend, ResponseCacheSettings};
    let backend = match &settings.backend {
        crate::caching::Backend::Local => CacheBackend::Local,
        crate::caching::Backend::Redis(url) => match tollgate_actors::SharedRouterState::new(url) {
            Ok(redis) => CacheBackend::Redis(redis),
            Err(e) => {
                tracing::error!(error = %e, "the response cache's Redis cannot be used (bad URL); caching in memory");
                CacheBackend::Local
            }
        },
    };
    tollgate_actors::ResponseCache::new(ResponseCacheSettings {
        backend,
        semantic: settings.semantic.is_some(),
        max_entries: settings.max_entries,
        max_bytes: settings.max_bytes,
        similarity_threshold: settings.semantic.as_ref().map_or(
            crate::caching::settings::DEFAULT_SIMILARITY_THRESHOLD,
            |s| s.threshold,
        ),
        ..ResponseCacheSettings::default()
    })
}

/// Test hook: the rate limiter actor panics once, when it first counts this many scopes.
pub const PANIC_LIMITER_AT_SCOPES_ENV: &str = "TOLLGATE_TEST_PANIC_RATE_LIMITER_AT_SCOPES";

/// The rate limiter and its actor, probing `redis` while the limits breaker is open. The Redis side
/// of the limits (`crate::limits`) is handed its breaker on every request.
fn rate_limiter(
    redis: Option<tollgate_actors::SharedRouterState>,
) -> tollgate_actors::LimiterHandle {
    let settings = tollgate_actors::LimiterSettings {
        panic_at_scopes: std::env::var(PANIC_LIMITER_AT_SCOPES_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    tollgate_actors::LimiterHandle::start(redis, settings)
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The credential cache for virtual keys, loading a key with its user and team from the store.
fn key_cache(
    db: Arc<crate::database::Database>,
) -> tollgate_actors::CacheHandle<Arc<crate::auth::Principal>> {
    use crate::store::EntityKind;
    use futures_util::FutureExt;
    let loader: tollgate_actors::Loader<Arc<crate::auth::Principal>> =
        Arc::new(move |token: String| {
            let db = db.clone();
            async move {
                let store = db.store().map_err(|e| e.to_string())?;
                let Some(key) = store.get_key(&token).await.map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                let user = match &key.user_id {
                    Some(id) => store
                        .get_entity(EntityKind::User, id)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                let team = match &key.team_id {
                    Some(id) => store
                        .get_entity(EntityKind::Team, id)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                let org_id = key.organization_id.clone().or_else(|| {
                    team.as_ref().and_then(|t| {
                        t.data
                            .get("organization_id")
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_string)
                    })
                });
                let organization = match &org_id {
                    Some(id) => store
                        .get_entity(EntityKind::Organization, id)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                let model_budgets = crate::spend::model_budgets(&**store, &key)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(Arc::new(crate::auth::Principal {
                    key,
                    user,
                    team,
                    organization,
                    model_budgets,
                })))
            }
            .boxed_local()
        });
    tollgate_actors::CacheHandle::start_named(
        "credential cache",
        loader,
        KEY_CACHE_REFRESH,
        KEY_CACHE_NEGATIVE_TTL,
    )
}

/// End users with their budget's limits, loaded from the store.
fn end_user_cache(
    db: Arc<crate::database::Database>,
) -> tollgate_actors::CacheHandle<Arc<crate::limits::EndUserLimits>> {
    use crate::store::EntityKind;
    use futures_util::FutureExt;
    let loader: tollgate_actors::Loader<Arc<crate::limits::EndUserLimits>> =
        Arc::new(move |id: String| {
            let db = db.clone();
            async move {
                let store = db.store().map_err(|e| e.to_string())?;
                let Some(end_user) = store
                    .get_entity(EntityKind::EndUser, &id)
                    .await
                    .map_err(|e| e.to_string())?
                else {
                    return Ok(None);
                };
                let budget = match end_user
                    .data
                    .get("budget_id")
                    .and_then(serde_json::Value::as_str)
                {
                    Some(b) => store
                        .get_entity(EntityKind::Budget, b)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                Ok(Some(Arc::new(crate::limits::EndUserLimits::from_records(
                    &end_user,
                    budget.as_ref(),
                ))))
            }
            .boxed_local()
        });
    tollgate_actors::CacheHandle::start_named(
        "end-user cache",
        loader,
        KEY_CACHE_REFRESH,
        KEY_CACHE_NEGATIVE_TTL,
    )
}

/// Cached keys are refreshed in the background after this long (LiteLLM's `user_api_key_cache_ttl`).
const KEY_CACHE_REFRESH: Duration = Duration::from_secs(60);
/// An unknown key is remembered as unknown for this long.
const KEY_CACHE_NEGATIVE_TTL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.0.0.1", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
