//! Calls to providers over awc. `awc::Client` is `!Send`, so each worker thread (and each actor
//! arbiter that runs health probes) has its own client and connection pool; the call always runs
//! on the thread that handles the request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use awc::error::SendRequestError;
use awc::http::header::{HeaderMap, RETRY_AFTER};
use awc::Client;

use crate::error::{GatewayError, UpstreamErrorKind};
use crate::outbound::Trust;
use crate::providers::PreparedRequest;
use crate::secret::{scrub, Secret};

/// Largest non-streaming provider response accepted (embeddings of big batches are large).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

thread_local! {
    static CLIENT: Client = build_client(crate::outbound::get().default_tls.clone());
    /// Clients for deployments with a TLS setting of their own (`litellm_params.ssl_verify`), one
    /// per distinct setting, built on first use.
    static CLIENTS: RefCell<HashMap<Trust, Result<Client, String>>> = RefCell::new(HashMap::new());
}

fn build_client(tls: Arc<rustls::ClientConfig>) -> Client {
    // The builder's type depends on the connector, so the rest of the chain is a macro.
    macro_rules! finish {
        ($connector:expr) => {
            Client::builder()
                .connector($connector)
                // Timeouts are set per request from the deployment and request settings.
                .disable_timeout()
                .no_default_headers()
                .add_default_header((
                    "user-agent",
                    concat!("tollgate/", env!("CARGO_PKG_VERSION")),
                ))
                .finish()
        };
    }
    match crate::outbound::thread_proxy() {
        None => finish!(connector(awc::Connector::new(), tls)),
        Some(proxy) => finish!(connector(
            awc::Connector::new().connector(crate::outbound::ProxyConnector::new(proxy)),
            tls,
        )),
    }
}

fn connector<S, IO>(c: awc::Connector<S>, tls: Arc<rustls::ClientConfig>) -> awc::Connector<S>
where
    IO: actix_web::rt::net::ActixStream + std::fmt::Debug + 'static,
    S: actix_service::Service<
            actix_tls::connect::ConnectInfo<awc::http::Uri>,
            Response = actix_tls::connect::Connection<awc::http::Uri, IO>,
            Error = actix_tls::connect::ConnectError,
        > + Clone
        + 'static,
{
    c.rustls_0_23(tls)
        // Concurrent connections per worker and host; streams hold one each for their lifetime.
        .limit(4096)
        .timeout(Duration::from_secs(10))
        .handshake_timeout(Duration::from_secs(10))
}

/// Run `f` with the client for `trust` (`None`: the gateway-wide one).
fn with_client<R>(trust: Option<&Trust>, f: impl FnOnce(&Client) -> R) -> Result<R, String> {
    match trust {
        None => Ok(CLIENT.with(f)),
        Some(trust) => CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            let client = clients
                .entry(trust.clone())
                .or_insert_with(|| crate::outbound::tls_config(trust).map(build_client));
            client.as_ref().map(f).map_err(Clone::clone)
        }),
    }
}

pub type UpstreamResponse = awc::ClientResponse;

/// Send a prepared request; `head_timeout` bounds the wait for the response head. `trust` is the
/// deployment's own TLS setting, if it has one.
pub async fn send(
    prepared: PreparedRequest,
    head_timeout: Duration,
    model: &str,
    key: Option<&Secret>,
    trust: Option<&Trust>,
) -> Result<UpstreamResponse, GatewayError> {
    let request = with_client(trust, |c| {
        let mut r = c.post(&prepared.url).timeout(head_timeout);
        for (k, v) in &prepared.headers {
            r = r.insert_header((k.as_ref(), v.as_str()));
        }
        r
    })
    .map_err(|e| GatewayError::Upstream {
        kind: UpstreamErrorKind::Connection,
        status: 502,
        message: format!("APIConnectionError: cannot set up TLS for model={model}: {e}"),
        code: None,
        param: None,
        retry_after: None,
    })?;
    request
        .send_body(prepared.body)
        .await
        .map_err(|e| send_error(e, head_timeout, model, key))
}

fn send_error(
    e: SendRequestError,
    timeout: Duration,
    model: &str,
    key: Option<&Secret>,
) -> GatewayError {
    match e {
        SendRequestError::Timeout => GatewayError::Timeout {
            model: model.to_string(),
            timeout,
        },
        other => GatewayError::Upstream {
            kind: UpstreamErrorKind::Connection,
            status: 502,
            message: scrub(
                &format!(
                    "APIConnectionError: cannot reach the provider for model={model}: {other}{hint}",
                    hint = if other.to_string().contains("invalid peer certificate") {
                        " (to trust a private CA set ssl_verify: /path/ca.pem on the deployment, litellm_settings.ssl_certificate or SSL_CERT_FILE; see docs/CONFIG.md)"
                    } else {
                        ""
                    }
                ),
                key,
            ),
            code: None,
            param: None,
            retry_after: None,
        },
    }
}

/// The provider's `retry-after`, in seconds or as an HTTP date (dates are treated as 1 s: clocks
/// between gateway and provider are not trusted).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    match v.parse::<f64>() {
        Ok(s) if s >= 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s.min(3600.0))),
        _ => Some(Duration::from_secs(1)),
    }
}

/// Read a whole (non-streaming) body within `deadline`.
pub async fn read_body(
    response: &mut UpstreamResponse,
    deadline: Duration,
    model: &str,
) -> Result<bytes::Bytes, GatewayError> {
    match actix_web::rt::time::timeout(deadline, response.body().limit(MAX_RESPONSE_BYTES)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(GatewayError::Upstream {
            kind: UpstreamErrorKind::Connection,
            status: 502,
            message: format!(
                "APIConnectionError: the provider's response for model={model} broke off: {e}"
            ),
            code: None,
            param: None,
            retry_after: None,
        }),
        Err(_) => Err(GatewayError::Timeout {
            model: model.to_string(),
            timeout: deadline,
        }),
    }
}

/// A health probe: send, read, and accept any 2xx.
pub async fn probe(
    prepared: PreparedRequest,
    timeout: Duration,
    key: Option<&Secret>,
    trust: Option<&Trust>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut response = send(prepared, timeout, "health check", key, trust)
        .await
        .map_err(|e| e.to_string())?;
    let left = timeout.saturating_sub(started.elapsed());
    let body = read_body(&mut response, left, "health check")
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(300).collect();
        Err(scrub(
            &format!("provider answered {}: {}", response.status().as_u16(), text),
            key,
        ))
    }
}

/// POST an `application/x-www-form-urlencoded` body (OAuth token exchanges) on this worker's
/// client; returns the status and the body (at most 1 MiB), or why the call failed.
pub async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, bytes::Bytes), String> {
    let request = CLIENT.with(|c| {
        c.post(url)
            .timeout(timeout)
            .insert_header(("accept", "application/json"))
    });
    let mut response = request.send_form(&form).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = actix_web::rt::time::timeout(timeout, response.body().limit(1024 * 1024))
        .await
        .map_err(|_| format!("no response body within {} s", timeout.as_secs_f64()))?
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// GET `url` with `headers`: the status and the response body (at most `limit` bytes), within
/// `timeout`. For the config bucket.
pub async fn get_bytes(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    limit: usize,
) -> Result<(u16, bytes::Bytes), String> {
    let mut request = CLIENT.with(|c| c.get(url).timeout(timeout));
    for (name, value) in headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = actix_web::rt::time::timeout(timeout, response.body().limit(limit))
        .await
        .map_err(|_| format!("no response body within {} s", timeout.as_secs_f64()))?
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// POST `body` with `headers` (raw values) to `url`: the status and the response body (at most
/// 4 MB), within `timeout`. For exporters that build their own requests (OpenTelemetry).
pub async fn post_bytes(
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: bytes::Bytes,
    timeout: Duration,
) -> Result<(u16, bytes::Bytes), String> {
    let mut request = CLIENT.with(|c| c.post(url).timeout(timeout));
    for (name, value) in headers {
        let value = awc::http::header::HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
        request = request.insert_header((name.as_str(), value));
    }
    let mut response = request.send_body(body).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = actix_web::rt::time::timeout(timeout, response.body().limit(4 * 1024 * 1024))
        .await
        .map_err(|_| "timed out reading the response".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// POST a JSON body with extra headers (alerts) on this worker's client; returns the status, or
/// why the call failed (see [`send_bytes`]).
pub async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: String,
    timeout: Duration,
) -> Result<u16, String> {
    let mut with_type = Vec::with_capacity(headers.len() + 1);
    with_type.push(("content-type".to_string(), "application/json".to_string()));
    with_type.extend(headers.iter().cloned());
    send_bytes("POST", url, &with_type, bytes::Bytes::from(body), timeout).await
}

/// Send `body` with `method` (`POST`, `PUT`) and `headers` (the content type among them) on this
/// worker's client (logging callbacks, alerts); returns the status, or why the call failed. The
/// response body is read (at most 64 KiB) and discarded, so the connection can be reused.
pub async fn send_bytes(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: bytes::Bytes,
    timeout: Duration,
) -> Result<u16, String> {
    let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = CLIENT.with(|c| c.request(method, url).timeout(timeout));
    for (name, value) in headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let mut response = request.send_body(body).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = actix_web::rt::time::timeout(timeout, response.body().limit(64 * 1024)).await;
    Ok(status)
}
