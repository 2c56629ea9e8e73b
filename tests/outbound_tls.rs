//! Provider calls over TLS (certificate checks, `ssl_verify`, custom CAs), through a forward proxy
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), and TLS on the gateway's own port
//! (`--ssl_keyfile_path` / `--ssl_certfile_path`). Certificates are generated per test with the
//! `openssl` command; the mock provider serves HTTPS with `--tls-cert` / `--tls-key`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn config(mock: &Mock, params: &str, litellm_settings: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
{params}
litellm_settings:
  num_retries: 0
{litellm_settings}
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    )
}

async fn completion(gw: &Gateway) -> (u16, Value) {
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    (status, body)
}

fn reply_text(body: &Value) -> &str {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
}

#[actix_rt::test]
async fn an_untrusted_provider_certificate_is_refused_with_a_clear_error() {
    let certs = Certs::new();
    let mock = certs.https_mock();
    let gw = Gateway::start(&config(&mock, "", ""), &[], &[]);
    let (status, body) = completion(&gw).await;
    assert!(status >= 500, "{status} {body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(
        message.contains("invalid peer certificate: unknownissuer")
            && message.contains("ssl_verify"),
        "{body}"
    );
    assert!(!message.contains("sk-mock-upstream-secret-42"), "{body}");
}

#[actix_rt::test]
async fn ssl_verify_false_per_deployment_skips_the_check_with_a_warning() {
    let certs = Certs::new();
    let mock = certs.https_mock();
    let params = "      ssl_verify: false";
    let gw = Gateway::start(&config(&mock, params, ""), &[], &[]);
    let (status, body) = completion(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(!reply_text(&body).is_empty(), "{body}");
    let logs = gw.proc.logs();
    assert!(
        logs.contains("NOT checked for deployment") && logs.contains("mock-gpt"),
        "{logs}"
    );
}

#[actix_rt::test]
async fn ssl_verify_false_in_litellm_settings_applies_to_every_deployment() {
    let certs = Certs::new();
    let mock = certs.https_mock();
    let gw = Gateway::start(&config(&mock, "", "  ssl_verify: false"), &[], &[]);
    let (status, body) = completion(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(gw.proc.logs().contains("NOT checked for any deployment"));
}

#[actix_rt::test]
async fn a_custom_ca_from_settings_env_or_ssl_verify_path_is_trusted() {
    let certs = Certs::new();
    let mock = certs.https_mock();
    let ca = certs.ca();

    let settings = format!("  ssl_certificate: {ca}");
    let gw = Gateway::start(&config(&mock, "", &settings), &[], &[]);
    assert_eq!(completion(&gw).await.0, 200, "ssl_certificate");
    drop(gw);

    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
        let gw = Gateway::start(&config(&mock, "", ""), &[], &[(var, ca.as_str())]);
        let (status, body) = completion(&gw).await;
        assert_eq!(status, 200, "{var}: {body}");
    }

    let params = format!("      ssl_verify: {ca}");
    let gw = Gateway::start(&config(&mock, &params, ""), &[], &[]);
    assert_eq!(completion(&gw).await.0, 200, "ssl_verify path");
}

#[actix_rt::test]
async fn an_unreadable_ca_bundle_stops_the_start_with_its_path() {
    let mock = Mock::start(&[]);
    let settings = "  ssl_certificate: /nonexistent/tollgate-ca.pem";
    let err = Gateway::try_start(&config(&mock, "", settings), &[], &[])
        .err()
        .expect("refuses to start");
    assert!(err.contains("/nonexistent/tollgate-ca.pem"), "{err}");
}

/// A forward proxy that accepts `CONNECT`, counts the tunnels and keeps the `Proxy-Authorization`
/// values it saw. Loopback only; each tunnel is a pair of copying threads.
struct ConnectProxy {
    port: u16,
    tunnels: Arc<AtomicUsize>,
    auth: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let (t, a) = (tunnels.clone(), auth.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (t, a) = (t.clone(), a.clone());
                std::thread::spawn(move || {
                    let _ = serve_tunnel(client, &t, &a);
                });
            }
        });
        ConnectProxy {
            port,
            tunnels,
            auth,
        }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }
}

fn serve_tunnel(
    client: TcpStream,
    tunnels: &AtomicUsize,
    auth: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("proxy-authorization") {
                auth.lock().unwrap().push(value.trim().to_string());
            }
        }
    }
    let mut client = client;
    if method != "CONNECT" || !target.starts_with("127.0.0.1:") {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")?;
        return Ok(());
    }
    let upstream = TcpStream::connect(target)?;
    tunnels.fetch_add(1, Ordering::SeqCst);
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    client.set_read_timeout(None)?;
    let (mut up_read, mut up_write) = (upstream.try_clone()?, upstream);
    let mut down_write = client;
    let leftover = reader.buffer().to_vec();
    up_write.write_all(&leftover)?;
    let mut down_read = reader.into_inner();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut down_read, &mut up_write);
        let _ = up_write.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = up_read.read(&mut buf)?;
        if n == 0 {
            break;
        }
        down_write.write_all(&buf[..n])?;
    }
    let _ = down_write.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[actix_rt::test]
async fn https_proxy_tunnels_provider_calls_with_auth_and_no_proxy_bypasses_it() {
    let certs = Certs::new();
    let mock = certs.https_mock();
    let ca = certs.ca();
    let proxy = ConnectProxy::start();
    let proxy_url = proxy.url("tunnel-user:pr0xy%2Fpass@");

    let gw = Gateway::start(
        &config(&mock, "", ""),
        &[],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("HTTPS_PROXY", proxy_url.as_str()),
        ],
    );
    let (status, body) = completion(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(proxy.tunnels.load(Ordering::SeqCst) >= 1);
    let expected = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("tunnel-user:pr0xy/pass")
    };
    assert!(
        proxy
            .auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| *a == format!("Basic {expected}")),
        "{:?}",
        proxy.auth.lock().unwrap()
    );
    assert!(!proxy.auth.lock().unwrap().is_empty());
    let logs = gw.proc.logs();
    assert!(
        !logs.contains("pr0xy"),
        "proxy password in the logs: {logs}"
    );
    drop(gw);

    // NO_PROXY with the target's address (and lower-case names): a direct connection.
    let before = proxy.tunnels.load(Ordering::SeqCst);
    let gw = Gateway::start(
        &config(&mock, "", ""),
        &[],
        &[
            ("SSL_CERT_FILE", ca.as_str()),
            ("https_proxy", proxy_url.as_str()),
            ("no_proxy", "example.com,127.0.0.1"),
        ],
    );
    assert_eq!(completion(&gw).await.0, 200);
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), before);
}

#[actix_rt::test]
async fn http_proxy_tunnels_plain_http_calls_and_a_refusing_proxy_is_a_clear_error() {
    let mock = Mock::start(&[]);
    let proxy = ConnectProxy::start();
    let gw = Gateway::start(
        &config(&mock, "", ""),
        &[],
        &[("HTTP_PROXY", proxy.url("").as_str())],
    );
    let (status, body) = completion(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(proxy.tunnels.load(Ordering::SeqCst) >= 1);
    drop(gw);

    // A proxy that answers 407 to every CONNECT: the error names it, never its password.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
            );
        }
    });
    let refusing = format!("http://u:s3cret-proxy-pw@127.0.0.1:{port}");
    let gw = Gateway::start(
        &config(&mock, "", ""),
        &[],
        &[("HTTP_PROXY", refusing.as_str())],
    );
    let (status, body) = completion(&gw).await;
    assert!(status >= 500, "{status} {body}");
    let text = body.to_string();
    assert!(text.contains("407"), "{text}");
    assert!(!text.contains("s3cret-proxy-pw"), "{text}");
    assert!(!gw.proc.logs().contains("s3cret-proxy-pw"));
}

/// An awc client that trusts only `ca`.
fn client_trusting(ca: &Path) -> awc::Client {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("cert")).expect("add");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .timeout(Duration::from_secs(30))
        .finish()
}

#[actix_rt::test]
async fn the_gateway_serves_https_with_litellm_s_ssl_flags() {
    let certs = Certs::new();
    let mock = Mock::start(&[]);
    let (cert, key) = (certs.path("leaf.pem"), certs.path("leaf.key"));
    let gw = Gateway::start(
        &basic_config(&mock),
        &["--ssl_keyfile_path", &key, "--ssl_certfile_path", &cert],
        &[],
    );
    assert!(
        gw.proc.url.starts_with("https://127.0.0.1:"),
        "{}",
        gw.proc.url
    );
    let client = client_trusting(&PathBuf::from(certs.ca()));

    let mut resp = client
        .get(gw.url("/health/liveliness"))
        .send()
        .await
        .expect("https liveliness");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.body().await;

    let mut resp = client
        .post(gw.url("/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .send_json(&chat("mock-gpt"))
        .await
        .expect("https completion");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    assert!(!reply_text(&body).is_empty(), "{body}");

    // The environment variables LiteLLM reads work too.
    let gw = Gateway::start(
        &basic_config(&mock),
        &[],
        &[
            ("SSL_KEYFILE_PATH", key.as_str()),
            ("SSL_CERTFILE_PATH", cert.as_str()),
        ],
    );
    assert!(gw.proc.url.starts_with("https://"), "{}", gw.proc.url);
}

#[actix_rt::test]
async fn a_missing_certificate_file_stops_the_start_with_its_path() {
    let certs = Certs::new();
    let mock = Mock::start(&[]);
    let key = certs.path("leaf.key");
    let err = Gateway::try_start(
        &basic_config(&mock),
        &[
            "--ssl_keyfile_path",
            &key,
            "--ssl_certfile_path",
            "/nonexistent/tollgate-cert.pem",
        ],
        &[],
    )
    .err()
    .expect("refuses to start");
    assert!(err.contains("/nonexistent/tollgate-cert.pem"), "{err}");
}
