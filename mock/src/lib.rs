//! Built-in mock LLM provider (`tollgate mock-provider`).
//!
//! A small, fast HTTP server that speaks the OpenAI wire format (chat completions, legacy
//! completions, embeddings, models), with deterministic replies, configurable latency, request
//! counters, capture of the last request and per-request failure injection. The test suite, the
//! benchmarks and users' chaos tests point Tollgate deployments at it instead of a real provider.
//! `docs/MOCK_PROVIDER.md` is the user-facing reference.
//!
//! This file holds the server, the shared state, stats and capture, and failure injection; each
//! wire format has its own module (`openai`, `anthropic`, `bedrock`, `sagemaker`, `replicate`,
//! `cohere`, `gemini`, `huggingface`, `ollama`), and `shared` the pure helpers they all use (token counts, chunking,
//! deterministic embeddings, ids). Bedrock's event-stream framing and SigV4 come from
//! `tollgate-wire`, the same code the gateway's Bedrock adapter uses.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    fmt,
    io::{self, Write as _},
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    num::NonZeroUsize,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use actix_web::{
    body::SizedStream,
    dev::Server,
    http::{
        header::{self, HeaderMap},
        StatusCode,
    },
    rt::time::sleep,
    web::{self, Bytes},
    App, HttpRequest, HttpResponse, HttpServer, ResponseError,
};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde_json::{json, Map, Value};

mod anthropic;
mod audio;
mod bedrock;
mod cohere;
mod files;
mod gemini;
mod huggingface;
mod images;
mod ollama;
mod openai;
mod receivers;
mod replicate;
mod responses;
mod sagemaker;
mod secrets;
mod shared;

pub use receivers::otlp_spans;

use openai::ApiError;

/// Reply used when the request carries no `mock_reply`.
const DEFAULT_REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";

/// A model named `mock-fail-<mode>` injects `<mode>`.
const FAIL_MODEL_PREFIX: &str = "mock-fail-";
const FAIL_HEADER: &str = "x-mock-fail";
const LATENCY_HEADER: &str = "x-mock-latency-ms";
const RETRY_AFTER_HEADER: &str = "x-mock-retry-after";
const FAIL_FIELD: &str = "mock_fail";
const LATENCY_FIELD: &str = "mock_latency_ms";
const RETRY_AFTER_FIELD: &str = "mock_retry_after";
const REPLY_FIELD: &str = "mock_reply";

const RATE_LIMIT_REQUESTS: &str = "10000";
const RATE_LIMIT_REMAINING: &str = "9999";
const DEFAULT_RETRY_AFTER: &str = "1";

const HANG_DURATION: Duration = Duration::from_secs(3600);
const SLOW_DURATION: Duration = Duration::from_secs(2);
/// Content chunks sent by a `cut` stream before the connection is dropped.
const CUT_AFTER_PARTS: usize = 2;
const TOOL_ARGUMENTS: &str = "{}";

const DEFAULT_EMBEDDING_DIM: usize = 8;

const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const LISTEN_BACKLOG: u32 = 4096;
/// Grace given to in-flight requests on SIGTERM (SIGINT stops at once).
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

// ---------------------------------------------------------------------------------------------
// Command line and shared state
// ---------------------------------------------------------------------------------------------

/// Run the built-in mock OpenAI-compatible provider (for tests, benchmarks and chaos tests).
#[derive(clap::Args, Debug, Clone)]
pub struct MockProviderArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free port (the chosen one is printed).
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Worker threads; 0 means one per CPU.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Latency added before every LLM response head, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Pause between streamed (SSE) chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Number of content chunks a streamed reply is split into.
    #[arg(long, default_value_t = 8)]
    pub stream_chunks: usize,
    /// If set, require `Authorization: Bearer <key>` (or an `api-key: <key>` header).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Embedding dimension when the request has no `dimensions` (0 means 8).
    #[arg(long, default_value_t = 0)]
    pub embedding_dim: usize,
    /// Append ` (reply <serial>)` to every OpenAI chat and text completion, so that tests can
    /// tell a fresh answer from one replayed by a cache (the serial is in every response id
    /// anyway).
    #[arg(long, env = "TOLLGATE_MOCK_SERIAL_REPLIES", value_parser = clap::builder::BoolishValueParser::new())]
    pub serial_replies: bool,
    /// Milliseconds a batch takes from creation to `completed` (validating for the first
    /// half, in progress for the second); a batch's `metadata.mock_batch_delay_ms` or the
    /// `x-mock-batch-delay-ms` header of its creation overrides it.
    #[arg(long, default_value_t = 1000)]
    pub batch_delay_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for MockProviderArgs {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8090,
            workers: 0,
            latency_ms: 0,
            chunk_delay_ms: 0,
            stream_chunks: 8,
            api_key: None,
            embedding_dim: 0,
            serial_replies: false,
            batch_delay_ms: 1000,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The LLM routes the mock serves; the key used in `by_route` statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    ImageGenerations,
    ImageEdits,
    Moderations,
    Transcriptions,
    Translations,
    Speech,
    /// `/rerank` in Jina's shape (also any Cohere-compatible server's path).
    Rerank,
    /// Cohere's `/v2/rerank`.
    CohereRerank,
    /// OpenAI's Responses API.
    Responses,
}

impl Endpoint {
    const ALL: [Self; 12] = [
        Self::Chat,
        Self::Completions,
        Self::Embeddings,
        Self::ImageGenerations,
        Self::ImageEdits,
        Self::Moderations,
        Self::Transcriptions,
        Self::Translations,
        Self::Speech,
        Self::Rerank,
        Self::CohereRerank,
        Self::Responses,
    ];

    fn route(self) -> &'static str {
        match self {
            Self::Chat => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
            Self::ImageGenerations => "/images/generations",
            Self::ImageEdits => "/images/edits",
            Self::Moderations => "/moderations",
            Self::Transcriptions => "/audio/transcriptions",
            Self::Translations => "/audio/translations",
            Self::Speech => "/audio/speech",
            Self::Rerank => "/rerank",
            Self::CohereRerank => "/v2/rerank",
            Self::Responses => "/responses",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Completions => 1,
            Self::Embeddings => 2,
            Self::ImageGenerations => 3,
            Self::ImageEdits => 4,
            Self::Moderations => 5,
            Self::Transcriptions => 6,
            Self::Translations => 7,
            Self::Speech => 8,
            Self::Rerank => 9,
            Self::CohereRerank => 10,
            Self::Responses => 11,
        }
    }
}

/// The last LLM request, kept raw so that capturing it stays cheap; parsed only when asked for.
#[derive(Debug, Clone)]
struct CapturedRequest {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl CapturedRequest {
    fn to_json(&self) -> Value {
        let mut headers: BTreeMap<&str, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let body = if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
        };
        json!({
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": body,
        })
    }
}

/// Options and counters shared by every worker of one mock provider.
pub struct MockState {
    latency: Duration,
    chunk_delay: Duration,
    stream_chunks: usize,
    api_key: Option<String>,
    embedding_dim: usize,
    /// `--serial-replies`: the reply text of OpenAI completions ends with its serial.
    serial_replies: bool,
    total: AtomicU64,
    by_route: [AtomicU64; Endpoint::ALL.len()],
    by_model: Mutex<HashMap<String, u64>>,
    last_request: Mutex<Option<CapturedRequest>>,
    /// Gemini API / Vertex AI: issued access tokens and token requests.
    google: gemini::GoogleState,
    /// What the logging-callback receivers accepted (`GET /mock/receivers`).
    receivers: receivers::Receivers,
    /// Secret managers' store and the Azure tokens issued.
    secrets: secrets::SecretsState,
    /// Uploaded files and batches.
    files: files::FilesState,
    /// How long a batch takes to complete (`--batch-delay-ms`).
    batch_delay: Duration,
    /// Replicate's predictions.
    replicate: replicate::ReplicateState,
}

impl fmt::Debug for MockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockState")
            .field("latency", &self.latency)
            .field("chunk_delay", &self.chunk_delay)
            .field("stream_chunks", &self.stream_chunks)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("embedding_dim", &self.embedding_dim)
            .field("serial_replies", &self.serial_replies)
            .field("total", &self.total_requests())
            .finish_non_exhaustive()
    }
}

impl MockState {
    /// State for a mock configured by `args` (`host`, `port` and `workers` are not used here).
    pub fn new(args: &MockProviderArgs) -> Self {
        Self {
            latency: Duration::from_millis(args.latency_ms),
            chunk_delay: Duration::from_millis(args.chunk_delay_ms),
            stream_chunks: args.stream_chunks.max(1),
            api_key: args.api_key.clone().filter(|key| !key.is_empty()),
            embedding_dim: if args.embedding_dim == 0 {
                DEFAULT_EMBEDDING_DIM
            } else {
                args.embedding_dim
            },
            serial_replies: args.serial_replies,
            total: AtomicU64::new(0),
            by_route: std::array::from_fn(|_| AtomicU64::new(0)),
            by_model: Mutex::new(HashMap::new()),
            last_request: Mutex::new(None),
            google: gemini::GoogleState::default(),
            receivers: receivers::Receivers::default(),
            secrets: secrets::SecretsState::default(),
            files: files::FilesState::default(),
            batch_delay: Duration::from_millis(args.batch_delay_ms),
            replicate: replicate::ReplicateState::default(),
        }
    }

    /// Number of LLM requests received since start or the last reset (failures included).
    pub fn total_requests(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Zeroes the counters and forgets the last request (what `POST /mock/reset` does).
    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        for counter in &self.by_route {
            counter.store(0, Ordering::Relaxed);
        }
        lock(&self.by_model).clear();
        self.google.reset();
        self.replicate.reset();
        let previous = lock(&self.last_request).take();
        drop(previous);
    }

    fn record(&self, endpoint: Endpoint, model: Option<&str>, req: &HttpRequest, body: &Bytes) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.by_route[endpoint.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(model) = model {
            let mut by_model = lock(&self.by_model);
            match by_model.get_mut(model) {
                Some(count) => *count += 1,
                None => {
                    by_model.insert(model.to_owned(), 1);
                }
            }
        }
        self.capture(req, body);
    }

    /// Keep a request as the last one (`GET /mock/last_request`).
    fn capture(&self, req: &HttpRequest, body: &Bytes) {
        let captured = CapturedRequest {
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            headers: req.headers().clone(),
            body: body.clone(),
        };
        // The previous capture is dropped after the lock is released.
        let previous = lock(&self.last_request).replace(captured);
        drop(previous);
    }

    fn stats_json(&self) -> Value {
        let by_model: BTreeMap<String, u64> = lock(&self.by_model)
            .iter()
            .map(|(model, count)| (model.clone(), *count))
            .collect();
        let by_route: Map<String, Value> = Endpoint::ALL
            .iter()
            .map(|endpoint| {
                let count = self.by_route[endpoint.index()].load(Ordering::Relaxed);
                (endpoint.route().to_owned(), Value::from(count))
            })
            .collect();
        json!({
            "total": self.total_requests(),
            "by_model": by_model,
            "by_route": by_route,
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = self.api_key.as_deref() else {
            return Ok(());
        };
        let bearer = header_text(headers, header::AUTHORIZATION.as_str()).and_then(bearer_token);
        let api_key = header_text(headers, "api-key");
        if bearer.is_none() && api_key.is_none() {
            return Err(ApiError::missing_api_key());
        }
        if [bearer, api_key]
            .into_iter()
            .flatten()
            .any(|key| key == expected)
        {
            Ok(())
        } else {
            Err(ApiError::invalid_api_key())
        }
    }
}

/// The serial of the next answered OpenAI chat, completion or embedding request. Process-wide
/// and never reset (not even by `/mock/reset`), so no two answers of one mock process carry the
/// same serial: a test that sees one serial twice saw a replay.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// Takes the next serial (the first is 1).
fn next_serial() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Runs the mock provider until SIGINT/SIGTERM, on an actix `System` of its own.
///
/// Once the socket is bound, prints exactly one line to stdout and flushes it:
/// `mock-provider listening on http://{host}:{port}` (the real port when 0 was asked for; an IPv6
/// host in brackets).
///
/// # Errors
///
/// Fails if the host does not resolve, the address cannot be bound, or stdout cannot be written.
pub fn run(args: MockProviderArgs) -> io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let (server, port) = start_server(&args)?;
        let mut stdout = io::stdout().lock();
        let line = listening_line(&args.host, port);
        let line = if args.tls_cert.is_some() {
            line.replacen("http://", "https://", 1)
        } else {
            line
        };
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        drop(stdout);
        server.await
    })
}

/// Registers the mock provider's routes (with and without the `/v1` prefix, plus the Azure-style
/// deployment routes) on an app, for running the mock in-process.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<MockState>) {
    let resource = |path: &str| {
        web::resource(vec![path.to_owned(), format!("/v1{path}")]).app_data(state.clone())
    };

    bedrock::configure(cfg, &state);
    sagemaker::configure(cfg, &state);
    replicate::configure(cfg, &state);
    openai::configure(cfg, &state);
    files::configure(cfg, &state);
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/mock/stats").route(web::get().to(mock_stats)))
        .service(resource("/mock/reset").route(web::post().to(mock_reset)))
        .service(resource("/mock/last_request").route(web::get().to(mock_last_request)));
    anthropic::configure(cfg, &state);
    cohere::configure(cfg, state.clone());
    ollama::configure(cfg, state.clone());
    huggingface::configure(cfg, state.clone());
    gemini::configure(cfg, &state);
    receivers::configure(cfg, &state);
    secrets::configure(cfg, &state);
}

/// Builds and binds the server; returns it (not yet running) and the bound port.
fn start_server(args: &MockProviderArgs) -> io::Result<(Server, u16)> {
    let state = web::Data::new(MockState::new(args));
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    } else {
        args.workers
    };
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .configure(|cfg| configure(cfg, state))
            .default_service(web::to(unknown_route))
    })
    .workers(workers)
    .backlog(LISTEN_BACKLOG)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server_tls(cert, key)?),
        _ => None,
    };
    let server = if args.port != 0 {
        match &tls {
            None => server.bind((args.host.as_str(), args.port))?,
            Some(tls) => server.bind_rustls_0_23((args.host.as_str(), args.port), tls.clone())?,
        }
    } else {
        // Bind the first resolved address on a free port, then the other addresses of the host
        // (e.g. both loopbacks of `localhost`) on that same port where possible.
        let mut addrs = (args.host.as_str(), 0).to_socket_addrs()?;
        let first = addrs.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot resolve host {}", args.host),
            )
        })?;
        let mut server = match &tls {
            None => server.bind(first)?,
            Some(tls) => server.bind_rustls_0_23(first, tls.clone())?,
        };
        let port = bound_port(&server.addrs())?;
        for extra in addrs {
            if let Ok(listener) = TcpListener::bind(SocketAddr::new(extra.ip(), port)) {
                server = match &tls {
                    None => server.listen(listener)?,
                    Some(tls) => server.listen_rustls_0_23(listener, tls.clone())?,
                };
            }
        }
        server
    };
    let port = bound_port(&server.addrs())?;
    Ok((server.run(), port))
}

/// The TLS config for `--tls-cert` / `--tls-key`.
fn server_tls(cert: &std::path::Path, key: &std::path::Path) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| invalid(format!("--tls-cert {}: {e}", cert.display())))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(format!("--tls-key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn bound_port(addrs: &[SocketAddr]) -> io::Result<u16> {
    addrs
        .first()
        .map(SocketAddr::port)
        .ok_or_else(|| io::Error::other("the mock provider has no listening socket"))
}

fn listening_line(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("mock-provider listening on http://[{host}]:{port}")
    } else {
        format!("mock-provider listening on http://{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn mock_stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats_json())
}

async fn mock_reset(state: web::Data<MockState>) -> HttpResponse {
    state.reset();
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn mock_last_request(state: web::Data<MockState>) -> Result<HttpResponse, ApiError> {
    let captured = lock(&state.last_request).clone();
    match captured {
        Some(captured) => Ok(HttpResponse::Ok().json(captured.to_json())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No LLM request has been received yet.",
            "invalid_request_error",
        )),
    }
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Invalid URL ({} {})", req.method(), req.path()),
        "invalid_request_error",
    )
    .error_response()
}

async fn pause(duration: Duration) {
    if !duration.is_zero() {
        sleep(duration).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Per-request controls and failure injection
// ---------------------------------------------------------------------------------------------

/// A failure the caller asked the mock to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureMode {
    /// Any 4xx/5xx status (except 429) with an OpenAI error body.
    Status(StatusCode),
    /// 429 with OpenAI's rate-limit body and `retry-after`.
    RateLimit,
    /// 400 `context_length_exceeded`.
    ContextLength,
    /// 400 `content_policy_violation`.
    ContentPolicy,
    /// Drop the connection part-way through the body.
    Cut,
    /// Never answer (an hour), until the client gives up.
    Hang,
    /// Answer normally after two extra seconds.
    Slow,
}

/// A failure mode name that the mock does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnknownFailureMode;

impl FromStr for FailureMode {
    type Err = UnknownFailureMode;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let name = raw.trim().to_ascii_lowercase().replace('-', "_");
        match name.as_str() {
            "429" | "rate_limit" => Ok(Self::RateLimit),
            "context_length" => Ok(Self::ContextLength),
            "content_policy" => Ok(Self::ContentPolicy),
            "cut" => Ok(Self::Cut),
            "hang" => Ok(Self::Hang),
            "slow" => Ok(Self::Slow),
            numeric => match numeric.parse::<u16>() {
                Ok(code @ 400..=599) => StatusCode::from_u16(code)
                    .map(Self::Status)
                    .map_err(|_| UnknownFailureMode),
                _ => Err(UnknownFailureMode),
            },
        }
    }
}

/// Mock controls of one request: failure mode, latency override, `retry-after` override.
#[derive(Debug)]
struct Controls {
    failure: Option<FailureMode>,
    latency: Option<Duration>,
    retry_after: Option<String>,
}

impl Controls {
    fn extract(
        headers: &HeaderMap,
        body: Option<&Map<String, Value>>,
        model: Option<&str>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            failure: requested_failure(headers, body, model)?,
            latency: requested_latency(headers, body)?,
            retry_after: requested_retry_after(headers, body)?,
        })
    }
}

/// The failure mode from the `x-mock-fail` header, else the `mock_fail` body field, else a
/// `mock-fail-<mode>` model name.
fn requested_failure(
    headers: &HeaderMap,
    body: Option<&Map<String, Value>>,
    model: Option<&str>,
) -> Result<Option<FailureMode>, ApiError> {
    if let Some(raw) = header_text(headers, FAIL_HEADER) {
        return parse_failure(raw, FAIL_HEADER, None).map(Some);
    }
    if let Some(value) = body_field(body, FAIL_FIELD) {
        let raw =
            scalar_text(value).ok_or_else(|| ApiError::invalid_type(FAIL_FIELD, "a string"))?;
        if !raw.trim().is_empty() {
            return parse_failure(&raw, FAIL_FIELD, Some(FAIL_FIELD)).map(Some);
        }
    }
    match model.and_then(|model| model.strip_prefix(FAIL_MODEL_PREFIX)) {
        Some(raw) => parse_failure(raw, "model", Some("model")).map(Some),
        None => Ok(None),
    }
}

fn parse_failure(
    raw: &str,
    source: &str,
    param: Option<&'static str>,
) -> Result<FailureMode, ApiError> {
    raw.parse().map_err(|UnknownFailureMode| {
        ApiError::invalid_request(
            format!(
                "Unknown mock failure mode '{raw}' (from {source}). Expected a 4xx/5xx status code, \
                 429, context_length, content_policy, cut, hang or slow."
            ),
            param,
            None,
        )
    })
}

fn requested_latency(
    headers: &HeaderMap,
    body: Option<&Map<String, Value>>,
) -> Result<Option<Duration>, ApiError> {
    let invalid = |source: &str, param| {
        ApiError::invalid_request(
            format!("Invalid {source}: expected a non-negative number of milliseconds."),
            param,
            None,
        )
    };
    if let Some(raw) = header_text(headers, LATENCY_HEADER) {
        return parse_non_negative(raw)
            .and_then(duration_from_millis)
            .map(Some)
            .ok_or_else(|| invalid(LATENCY_HEADER, None));
    }
    match body_field(body, LATENCY_FIELD) {
        Some(value) => value_non_negative(value)
            .and_then(duration_from_millis)
            .map(Some)
            .ok_or_else(|| invalid(LATENCY_FIELD, Some(LATENCY_FIELD))),
        None => Ok(None),
    }
}

fn requested_retry_after(
    headers: &HeaderMap,
    body: Option<&Map<String, Value>>,
) -> Result<Option<String>, ApiError> {
    let invalid = |source: &str, param| {
        ApiError::invalid_request(
            format!("Invalid {source}: expected a non-negative number of seconds."),
            param,
            None,
        )
    };
    if let Some(raw) = header_text(headers, RETRY_AFTER_HEADER) {
        return parse_non_negative(raw)
            .map(|seconds| Some(format_seconds(seconds)))
            .ok_or_else(|| invalid(RETRY_AFTER_HEADER, None));
    }
    match body_field(body, RETRY_AFTER_FIELD) {
        Some(value) => value_non_negative(value)
            .map(|seconds| Some(format_seconds(seconds)))
            .ok_or_else(|| invalid(RETRY_AFTER_FIELD, Some(RETRY_AFTER_FIELD))),
        None => Ok(None),
    }
}

/// A header's value as trimmed text, if present, valid and non-empty.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A body field that is present and not `null`.
fn body_field<'a>(body: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a Value> {
    body.and_then(|body| body.get(key))
        .filter(|value| !value.is_null())
}

fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        _ => None,
    }
}

fn parse_non_negative(raw: &str) -> Option<f64> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
}

fn value_non_negative(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64().filter(|x| x.is_finite() && *x >= 0.0),
        Value::String(text) => parse_non_negative(text),
        _ => None,
    }
}

fn duration_from_millis(millis: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(millis / 1000.0).ok()
}

/// Seconds as a header value: `1` rather than `1.0`, but `0.5` kept as is.
fn format_seconds(seconds: f64) -> String {
    if seconds.fract() == 0.0 && seconds < 1e15 {
        format!("{seconds:.0}")
    } else {
        seconds.to_string()
    }
}

/// Declares the full length but sends only the first half, then fails so the connection drops.
fn truncated_body(full: Vec<u8>) -> SizedStream<impl Stream<Item = io::Result<Bytes>>> {
    let declared = u64::try_from(full.len()).unwrap_or(u64::MAX);
    let mut sent = Bytes::from(full);
    sent.truncate(sent.len() / 2);
    let abort = stream::once(async {
        flush_point().await;
        Err(cut_error())
    });
    SizedStream::new(declared, stream::iter([Ok(sent)]).chain(abort))
}

/// Returns `Pending` once. actix writes the bytes buffered so far to the socket whenever the body
/// is pending, but discards them if the body fails in the same poll; a `cut` therefore passes
/// here before failing, so that the client really receives the partial response.
async fn flush_point() {
    actix_web::rt::task::yield_now().await;
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "mock provider cut the response (failure mode `cut`)",
    )
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
        pin::pin,
        time::Instant,
    };

    use actix_web::{
        body::{BodySize, MessageBody},
        dev::ServiceResponse,
        test::{self, TestRequest},
    };
    use futures_util::future::poll_fn;

    use super::*;

    pub(crate) const CHAT: &str = "/v1/chat/completions";

    /// An in-process mock service and its state.
    macro_rules! mock_app {
        ($args:expr) => {{
            let state = ::actix_web::web::Data::new($crate::MockState::new(&$args));
            let cfg_state = state.clone();
            let app = ::actix_web::test::init_service(
                ::actix_web::App::new().configure(move |cfg| $crate::configure(cfg, cfg_state)),
            )
            .await;
            (app, state)
        }};
        () => {
            mock_app!($crate::MockProviderArgs::default())
        };
    }
    pub(crate) use mock_app;

    pub(crate) fn chat_body() -> Value {
        json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello there"}]})
    }

    pub(crate) fn post(path: &str, body: Value) -> TestRequest {
        TestRequest::post().uri(path).set_json(body)
    }

    /// Reads a body to its end or its first error: (bytes received, whether it errored).
    pub(crate) async fn drain<B: MessageBody>(body: B) -> (Vec<u8>, bool) {
        let mut body = pin!(body);
        let mut received = Vec::new();
        loop {
            match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
                Some(Ok(chunk)) => received.extend_from_slice(&chunk),
                Some(Err(_)) => return (received, true),
                None => return (received, false),
            }
        }
    }

    pub(crate) async fn json_of<B: MessageBody>(response: ServiceResponse<B>) -> Value {
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(!errored, "body errored");
        serde_json::from_slice(&bytes).expect("JSON body")
    }

    /// The `data:` payloads of an SSE body, checking the framing.
    pub(crate) fn sse_payloads(bytes: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(bytes).expect("UTF-8 SSE body");
        assert!(
            text.ends_with("\n\n"),
            "every event ends with a blank line: {text:?}"
        );
        text.split_terminator("\n\n")
            .map(|event| {
                event
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("event without `data: `: {event:?}"))
                    .to_owned()
            })
            .collect()
    }

    pub(crate) fn sse_json(payloads: &[String]) -> Vec<Value> {
        payloads
            .iter()
            .filter(|payload| *payload != "[DONE]")
            .map(|payload| serde_json::from_str(payload).expect("JSON event"))
            .collect()
    }

    pub(crate) fn header<'a, B>(response: &'a ServiceResponse<B>, name: &str) -> Option<&'a str> {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    }

    pub(crate) fn error_json(message: &str, kind: &str, param: Value, code: Value) -> Value {
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
    }

    // ----- pure helpers ------------------------------------------------------------------

    #[test]
    fn failure_mode_parsing() {
        let parse = |raw: &str| raw.parse::<FailureMode>();
        assert_eq!(
            parse("500"),
            Ok(FailureMode::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(
            parse(" 503 "),
            Ok(FailureMode::Status(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert_eq!(parse("404"), Ok(FailureMode::Status(StatusCode::NOT_FOUND)));
        assert_eq!(
            parse("400"),
            Ok(FailureMode::Status(StatusCode::BAD_REQUEST))
        );
        assert_eq!(
            parse("599"),
            Ok(FailureMode::Status(
                StatusCode::from_u16(599).expect("valid")
            ))
        );
        assert_eq!(parse("429"), Ok(FailureMode::RateLimit));
        assert_eq!(parse("rate-limit"), Ok(FailureMode::RateLimit));
        assert_eq!(parse("context_length"), Ok(FailureMode::ContextLength));
        assert_eq!(parse("Context-Length"), Ok(FailureMode::ContextLength));
        assert_eq!(parse("content_policy"), Ok(FailureMode::ContentPolicy));
        assert_eq!(parse("CUT"), Ok(FailureMode::Cut));
        assert_eq!(parse("hang"), Ok(FailureMode::Hang));
        assert_eq!(parse("slow"), Ok(FailureMode::Slow));
        for bad in [
            "", "200", "302", "399", "600", "70000", "-500", "boom", "5O0",
        ] {
            assert_eq!(parse(bad), Err(UnknownFailureMode), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_formatting() {
        assert_eq!(format_seconds(1.0), "1");
        assert_eq!(format_seconds(0.0), "0");
        assert_eq!(format_seconds(0.5), "0.5");
        assert_eq!(format_seconds(30.0), "30");
        assert_eq!(parse_non_negative(" 2.5 "), Some(2.5));
        assert_eq!(parse_non_negative("-1"), None);
        assert_eq!(parse_non_negative("inf"), None);
        assert_eq!(parse_non_negative("soon"), None);
    }

    #[test]
    fn listening_line_format() {
        assert_eq!(
            listening_line("127.0.0.1", 8090),
            "mock-provider listening on http://127.0.0.1:8090"
        );
        assert_eq!(
            listening_line("localhost", 1),
            "mock-provider listening on http://localhost:1"
        );
        assert_eq!(
            listening_line("::1", 9),
            "mock-provider listening on http://[::1]:9"
        );
    }

    // ----- chat completions --------------------------------------------------------------

    // ----- streaming ---------------------------------------------------------------------

    // ----- legacy completions, embeddings, models ------------------------------------------

    // ----- bad input ---------------------------------------------------------------------

    // ----- failure injection -------------------------------------------------------------

    #[actix_web::test]
    async fn injected_status_errors() {
        let (app, _) = mock_app!();
        let cases = [
            (500, "server_error", Value::Null),
            (502, "server_error", Value::Null),
            (503, "server_error", Value::Null),
            (504, "server_error", Value::Null),
            (400, "invalid_request_error", Value::Null),
            (401, "invalid_request_error", json!("invalid_api_key")),
            (403, "invalid_request_error", Value::Null),
            (404, "invalid_request_error", json!("model_not_found")),
            (422, "invalid_request_error", Value::Null),
        ];
        for (status, kind, code) in cases {
            let request = post(CHAT, chat_body())
                .insert_header((FAIL_HEADER, status.to_string()))
                .to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(response.status().as_u16(), status);
            assert!(header(&response, "x-request-id").is_some());
            assert_eq!(header(&response, "content-type"), Some("application/json"));
            let message = format!("Mock provider injected {status} error");
            assert_eq!(
                json_of(response).await,
                error_json(&message, kind, Value::Null, code)
            );
        }
    }

    #[actix_web::test]
    async fn injected_rate_limit() {
        let (app, _) = mock_app!();
        let expected = error_json(
            "Rate limit reached for requests",
            "requests",
            Value::Null,
            json!("rate_limit_exceeded"),
        );

        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "429"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), Some("1"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            Some("0")
        );
        assert_eq!(json_of(response).await, expected);

        let mut body = chat_body();
        body["mock_fail"] = json!("429");
        body["mock_retry_after"] = json!(7);
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), Some("7"));

        let request = post(
            CHAT,
            json!({"model": "mock-fail-429", "messages": [{"content": "x"}]}),
        )
        .insert_header((RETRY_AFTER_HEADER, "0.5"))
        .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), Some("0.5"));
        assert_eq!(json_of(response).await, expected);
    }

    #[actix_web::test]
    async fn injected_context_length_and_content_policy() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["mock_fail"] = json!("context_length");
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            json_of(response).await,
            error_json(
                "This model's maximum context length is 8192 tokens. However, your messages resulted in \
                 9000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                json!("messages"),
                json!("context_length_exceeded"),
            )
        );

        let body = json!({"model": "mock-fail-content_policy", "messages": [{"content": "x"}]});
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            json_of(response).await,
            error_json(
                "Your request was rejected as a result of our safety system.",
                "invalid_request_error",
                Value::Null,
                json!("content_policy_violation"),
            )
        );
    }

    #[actix_web::test]
    async fn failure_source_precedence_and_unknown_modes() {
        let (app, _) = mock_app!();
        // Header beats body beats model.
        let body =
            json!({"model": "mock-fail-500", "mock_fail": "502", "messages": [{"content": "x"}]});
        let request = post(CHAT, body.clone())
            .insert_header((FAIL_HEADER, "503"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status().as_u16(),
            503
        );
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status().as_u16(), 502);
        let body = json!({"model": "mock-fail-500", "messages": [{"content": "x"}]});
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status().as_u16(), 500);
        // Works on every LLM route, even before body validation.
        let request = post("/v1/embeddings", json!({}))
            .insert_header((FAIL_HEADER, "502"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status().as_u16(),
            502
        );
        let request = TestRequest::post()
            .uri("/v1/completions")
            .set_payload("garbage")
            .insert_header((FAIL_HEADER, "503"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status().as_u16(),
            503
        );

        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "teapot"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = json_of(response).await;
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("teapot")));
        let body = json!({"model": "mock-fail-nope", "messages": [{"content": "x"}]});
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(response).await["error"]["param"], "model");
    }

    #[actix_web::test]
    async fn cut_stream_ends_without_finish_or_done() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["stream"] = json!(true);
        let request = post(CHAT, body)
            .insert_header((FAIL_HEADER, "cut"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(
            errored,
            "the body stream must error so the connection is aborted"
        );
        let payloads = sse_payloads(&bytes);
        assert!(!payloads.iter().any(|p| p == "[DONE]"));
        let chunks = sse_json(&payloads);
        assert_eq!(chunks.len(), 3, "role chunk + two content chunks");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks
            .iter()
            .all(|chunk| chunk["choices"][0]["finish_reason"].is_null()));
    }

    #[actix_web::test]
    async fn cut_non_stream_declares_more_than_it_sends() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["mock_fail"] = json!("cut");
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body();
        let BodySize::Sized(declared) = body.size() else {
            panic!("a cut non-streaming body declares its length");
        };
        let (bytes, errored) = drain(body).await;
        assert!(errored);
        assert!((bytes.len() as u64) < declared);
        assert!(bytes.starts_with(b"{\"id\":\"chatcmpl-"));
    }

    #[actix_web::test]
    async fn hang_never_answers_until_dropped() {
        let (app, state) = mock_app!();
        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "hang"))
            .to_request();
        let outcome = actix_web::rt::time::timeout(
            Duration::from_millis(300),
            test::call_service(&app, request),
        )
        .await;
        assert!(outcome.is_err(), "a hanging request does not answer");
        assert_eq!(state.total_requests(), 1, "the hung request was counted");
        // The service is still usable after the hanging call was dropped.
        let response = test::call_service(&app, post(CHAT, chat_body()).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn slow_and_latency_delay_the_head() {
        let (app, _) = mock_app!();
        let started = Instant::now();
        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "slow"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert!(started.elapsed() >= SLOW_DURATION);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "openai-processing-ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .is_some_and(|ms| ms >= 2000));
        assert_eq!(
            json_of(response).await["choices"][0]["message"]["content"],
            DEFAULT_REPLY
        );

        let started = Instant::now();
        let request = post(CHAT, chat_body())
            .insert_header((LATENCY_HEADER, "150"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::OK
        );
        assert!(started.elapsed() >= Duration::from_millis(150));

        let (app, _) = mock_app!(MockProviderArgs {
            latency_ms: 120,
            ..MockProviderArgs::default()
        });
        let started = Instant::now();
        assert_eq!(
            test::call_service(&app, post(CHAT, chat_body()).to_request())
                .await
                .status(),
            StatusCode::OK
        );
        assert!(started.elapsed() >= Duration::from_millis(120));
        // A per-request override replaces the configured latency.
        let started = Instant::now();
        let mut body = chat_body();
        body["mock_latency_ms"] = json!(0);
        assert_eq!(
            test::call_service(&app, post(CHAT, body).to_request())
                .await
                .status(),
            StatusCode::OK
        );
        assert!(started.elapsed() < Duration::from_millis(120));

        let request = post(CHAT, chat_body())
            .insert_header((LATENCY_HEADER, "soon"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::BAD_REQUEST
        );
    }

    // ----- stats, capture, auth ----------------------------------------------------------

    #[actix_web::test]
    async fn stats_count_every_llm_request() {
        let (app, _) = mock_app!();
        test::call_service(&app, post(CHAT, chat_body()).to_request()).await;
        test::call_service(&app, post("/chat/completions", chat_body()).to_request()).await;
        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "503"))
            .to_request();
        test::call_service(&app, request).await;
        test::call_service(
            &app,
            post(CHAT, json!({"model": "mock-fail-429", "messages": []})).to_request(),
        )
        .await;
        test::call_service(
            &app,
            post("/v1/embeddings", json!({"model": "emb", "input": "x"})).to_request(),
        )
        .await;
        let request = TestRequest::post()
            .uri("/v1/completions")
            .set_payload("nope")
            .to_request();
        test::call_service(&app, request).await;
        // Not LLM requests: not counted.
        test::call_service(&app, TestRequest::get().uri("/v1/models").to_request()).await;
        test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;

        let response =
            test::call_service(&app, TestRequest::get().uri("/mock/stats").to_request()).await;
        assert_eq!(
            json_of(response).await,
            json!({
                "total": 6,
                "by_model": {"emb": 1, "mock-fail-429": 1, "mock-gpt": 3},
                "by_route": {"/chat/completions": 4, "/completions": 1, "/embeddings": 1, "/images/generations": 0, "/images/edits": 0, "/moderations": 0, "/audio/transcriptions": 0, "/audio/translations": 0, "/audio/speech": 0, "/rerank": 0, "/v2/rerank": 0, "/responses": 0}
            })
        );

        let response =
            test::call_service(&app, TestRequest::post().uri("/v1/mock/reset").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response =
            test::call_service(&app, TestRequest::get().uri("/v1/mock/stats").to_request()).await;
        assert_eq!(
            json_of(response).await,
            json!({
                "total": 0,
                "by_model": {},
                "by_route": {"/chat/completions": 0, "/completions": 0, "/embeddings": 0, "/images/generations": 0, "/images/edits": 0, "/moderations": 0, "/audio/transcriptions": 0, "/audio/translations": 0, "/audio/speech": 0, "/rerank": 0, "/v2/rerank": 0, "/responses": 0}
            })
        );
        let response = test::call_service(
            &app,
            TestRequest::get().uri("/mock/last_request").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[actix_web::test]
    async fn last_request_is_captured() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["temperature"] = json!(0.5);
        let request = post("/v1/chat/completions?trace=1", body.clone())
            .insert_header(("Authorization", "Bearer sk-upstream"))
            .insert_header(("X-Custom", "a"))
            .to_request();
        test::call_service(&app, request).await;
        let response = test::call_service(
            &app,
            TestRequest::get().uri("/mock/last_request").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let last = json_of(response).await;
        assert_eq!(last["path"], "/v1/chat/completions");
        assert_eq!(last["query"], "trace=1");
        assert_eq!(last["headers"]["authorization"], "Bearer sk-upstream");
        assert_eq!(last["headers"]["x-custom"], "a");
        assert_eq!(last["headers"]["content-type"], "application/json");
        assert_eq!(last["body"], body);

        let request = TestRequest::post()
            .uri("/v1/completions")
            .set_payload("raw text")
            .to_request();
        test::call_service(&app, request).await;
        let response = test::call_service(
            &app,
            TestRequest::get().uri("/mock/last_request").to_request(),
        )
        .await;
        assert_eq!(json_of(response).await["body"], "raw text");
    }

    #[actix_web::test]
    async fn api_key_is_enforced_when_set() {
        let (app, state) = mock_app!(MockProviderArgs {
            api_key: Some("sk-mock".to_owned()),
            ..MockProviderArgs::default()
        });
        let response = test::call_service(&app, post(CHAT, chat_body()).to_request()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json_of(response).await;
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["code"].is_null());

        let request = post(CHAT, chat_body())
            .insert_header(("Authorization", "Bearer sk-wrong"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json_of(response).await;
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");

        // Auth is checked before failure injection.
        let request = post(CHAT, chat_body())
            .insert_header((FAIL_HEADER, "500"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::UNAUTHORIZED
        );

        for (name, value) in [
            ("Authorization", "Bearer sk-mock"),
            ("authorization", "bearer  sk-mock"),
            ("api-key", "sk-mock"),
        ] {
            let request = post(CHAT, chat_body())
                .insert_header((name, value))
                .to_request();
            assert_eq!(
                test::call_service(&app, request).await.status(),
                StatusCode::OK,
                "{name}: {value}"
            );
        }
        let request = post("/v1/embeddings", json!({"model": "e", "input": "x"}))
            .insert_header(("api-key", "sk-mock"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::OK
        );

        let response =
            test::call_service(&app, TestRequest::get().uri("/v1/models").to_request()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let request = TestRequest::get()
            .uri("/v1/models")
            .insert_header(("Authorization", "Bearer sk-mock"))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::OK
        );
        // Health and the /mock routes stay open.
        let response =
            test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response =
            test::call_service(&app, TestRequest::get().uri("/mock/stats").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        // Rejected calls are still counted.
        assert_eq!(state.total_requests(), 7);
    }

    // ----- over a real socket ------------------------------------------------------------

    /// Sends one raw HTTP/1.1 request and reads until the server closes the connection.
    fn raw_exchange(port: u16, request: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return received,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    }

    fn raw_post(path: &str, body: &Value) -> String {
        let body = body.to_string();
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn server_over_tcp_streams_and_cuts_connections() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let server_thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let args = MockProviderArgs {
                    port: 0,
                    workers: 1,
                    ..MockProviderArgs::default()
                };
                let (server, port) = start_server(&args)?;
                sender
                    .send((server.handle(), port))
                    .map_err(|_| io::Error::other("test thread gone"))?;
                server.await
            })
        });
        let (handle, port) = receiver.recv().expect("server started");
        assert_ne!(port, 0);

        let mut body = chat_body();
        body["stream"] = json!(true);
        let complete =
            String::from_utf8(raw_exchange(port, &raw_post(CHAT, &body))).expect("UTF-8");
        assert!(complete.starts_with("HTTP/1.1 200 OK"), "{complete}");
        assert!(complete
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"));
        assert!(complete.contains("data: [DONE]\n\n"));
        assert!(
            complete.ends_with("0\r\n\r\n"),
            "a complete stream ends the chunked encoding"
        );

        body["mock_fail"] = json!("cut");
        let cut = String::from_utf8(raw_exchange(port, &raw_post(CHAT, &body))).expect("UTF-8");
        assert!(cut.starts_with("HTTP/1.1 200 OK"), "{cut}");
        assert!(cut.contains("\"role\":\"assistant\""));
        assert!(!cut.contains("[DONE]"));
        assert!(!cut.contains("finish_reason\":\"stop"));
        assert!(
            !cut.ends_with("0\r\n\r\n"),
            "the chunked encoding is never terminated: {cut:?}"
        );

        let cut = raw_exchange(
            port,
            &raw_post(
                CHAT,
                &json!({"model": "mock-fail-cut", "messages": [{"content": "x"}]}),
            ),
        );
        let cut = String::from_utf8_lossy(&cut);
        let (head, sent) = cut.split_once("\r\n\r\n").expect("head");
        let declared: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .and_then(|length| length.trim().parse().ok())
            .expect("content-length");
        assert!(sent.len() < declared, "sent {} of {declared}", sent.len());

        let request = "GET /v1/nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let missing = String::from_utf8(raw_exchange(port, request)).expect("UTF-8");
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        assert!(missing.contains("Invalid URL (GET /v1/nowhere)"));

        actix_web::rt::System::new().block_on(handle.stop(false));
        server_thread
            .join()
            .expect("server thread")
            .expect("server result");
    }
}
