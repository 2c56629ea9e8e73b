//! How the gateway reaches providers: which certificates it trusts (`ssl_verify`,
//! `ssl_certificate`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, the built-in and system roots) and
//! which forward proxy it tunnels through (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
//!
//! Settings are read once at start-up ([`init`]); [`crate::upstream`] builds its per-thread clients
//! from them.

use std::future::{poll_fn, Future};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How one deployment (or the whole gateway) checks provider certificates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Certificates are not checked (`ssl_verify: false`).
    NoVerify,
    /// Only the certificates in this PEM bundle are trusted (`ssl_verify: "/path/ca.pem"`).
    Bundle(String),
}

impl Trust {
    /// `ssl_verify` as LiteLLM takes it: `false` (or `"false"`) turns checks off, a path names a
    /// CA bundle, `true` (or `"true"`) keeps the default. Anything else is an error.
    pub fn from_ssl_verify(value: &Value) -> Result<Option<Trust>, String> {
        match value {
            Value::Null | Value::Bool(true) => Ok(None),
            Value::Bool(false) => Ok(Some(Trust::NoVerify)),
            Value::String(s) => Ok(Self::from_ssl_verify_text(s)),
            other => Err(format!(
                "ssl_verify must be true, false or the path of a CA bundle, not {other}"
            )),
        }
    }

    fn from_ssl_verify_text(s: &str) -> Option<Trust> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => None,
            "false" | "0" | "no" => Some(Trust::NoVerify),
            _ => Some(Trust::Bundle(s.to_string())),
        }
    }
}

/// The gateway-wide outbound settings.
pub struct Outbound {
    /// The TLS config of every client without a deployment setting of its own.
    pub default_tls: Arc<ClientConfig>,
    /// Where the default trust comes from, for the start-up line.
    pub default_trust: String,
    proxy_settings: Option<ProxySettings>,
}

static OUTBOUND: OnceLock<Outbound> = OnceLock::new();
/// What [`get`] answers before [`init`] ran; kept apart so that an early call (fetching the
/// config from a bucket) does not fix the gateway's settings before the config names them.
static DEFAULTS: OnceLock<Outbound> = OnceLock::new();

/// The settings [`init`] set, or the defaults (built-in and system roots, proxies from the
/// environment) when it was not called yet (unit tests, the config bucket, health probes before
/// start-up).
pub fn get() -> &'static Outbound {
    if let Some(o) = OUTBOUND.get() {
        return o;
    }
    DEFAULTS.get_or_init(|| {
        build(None, None, &std::env::vars().collect::<Vec<_>>()).unwrap_or_else(|e| {
            tracing::error!("{e}; provider certificates are checked against the built-in roots");
            Outbound {
                default_tls: config_with(Some(webpki_roots())),
                default_trust: "built-in roots".into(),
                proxy_settings: None,
            }
        })
    })
}

impl Outbound {
    /// The proxies in use, for the start-up line (never with credentials).
    pub fn proxy_summary(&self) -> Option<String> {
        let p = self.proxy_settings.as_ref()?;
        let mut parts = Vec::new();
        if let Some(h) = &p.https {
            parts.push(format!("https:// targets via {}", h.display));
        }
        if let Some(h) = &p.http {
            parts.push(format!("http:// targets via {}", h.display));
        }
        if !p.no_proxy.is_empty() {
            parts.push(format!("{} NO_PROXY entries", p.no_proxy.len()));
        }
        Some(parts.join(", "))
    }
}

/// A clone of the proxy settings for this thread (connectors are `!Send`).
pub fn thread_proxy() -> Option<Rc<ProxySettings>> {
    get().proxy_settings.clone().map(Rc::new)
}

/// Read `litellm_settings.ssl_verify` / `ssl_certificate` and the environment once, before the
/// workers start. Fails on a bundle that cannot be read or holds no certificate, and on a proxy
/// URL that cannot be used.
pub fn init(ssl_verify: Option<&Value>, ssl_certificate: Option<&str>) -> Result<(), String> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let outbound = build(ssl_verify, ssl_certificate, &env)?;
    let _ = OUTBOUND.set(outbound);
    Ok(())
}

fn env_get<'a>(env: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        env.iter()
            .find(|(k, v)| k == n && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    })
}

fn build(
    ssl_verify: Option<&Value>,
    ssl_certificate: Option<&str>,
    env: &[(String, String)],
) -> Result<Outbound, String> {
    // LiteLLM's order: the SSL_VERIFY variable over the setting; `ssl_verify: false`, then a
    // bundle path in ssl_verify, then SSL_CERT_FILE; else the default roots.
    let verify = match env_get(env, &["SSL_VERIFY"]) {
        Some(v) => Trust::from_ssl_verify_text(v),
        None => match ssl_verify {
            Some(v) => Trust::from_ssl_verify(v).map_err(|e| format!("litellm_settings.{e}"))?,
            None => None,
        },
    };
    let (trust, source) = match verify {
        Some(Trust::NoVerify) => (
            Some(Trust::NoVerify),
            "not checked (ssl_verify: false)".to_string(),
        ),
        Some(Trust::Bundle(p)) => (
            Some(Trust::Bundle(p.clone())),
            format!("the CA bundle {p} (ssl_verify)"),
        ),
        None => {
            let named = [
                (
                    "ssl_certificate",
                    ssl_certificate.filter(|s| !s.trim().is_empty()),
                ),
                ("SSL_CERT_FILE", env_get(env, &["SSL_CERT_FILE"])),
                ("REQUESTS_CA_BUNDLE", env_get(env, &["REQUESTS_CA_BUNDLE"])),
            ];
            match named.iter().find_map(|(n, p)| p.map(|p| (n, p))) {
                Some((name, path)) => (
                    Some(Trust::Bundle(path.to_string())),
                    format!("the CA bundle {path} ({name})"),
                ),
                None => (None, "the built-in (webpki) and system roots".to_string()),
            }
        }
    };
    let default_tls = match &trust {
        None => config_with(Some(default_roots().clone())),
        Some(t) => tls_config(t)?,
    };
    let proxy_settings = ProxySettings::from_env(env)?;
    Ok(Outbound {
        default_tls,
        default_trust: source,
        proxy_settings,
    })
}

/// The TLS client config for a trust setting; a bundle is read now.
pub fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    match trust {
        Trust::NoVerify => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth();
            config.alpn_protocols = alpn();
            Ok(Arc::new(config))
        }
        Trust::Bundle(path) => Ok(config_with(Some(read_bundle(path)?))),
    }
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn config_with(roots: Option<RootCertStore>) -> Arc<ClientConfig> {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots.unwrap_or_else(RootCertStore::empty))
            .with_no_client_auth();
    config.alpn_protocols = alpn();
    Arc::new(config)
}

fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The built-in (webpki) roots plus the system's trust store, read once.
fn default_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = webpki_roots();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("system trust store: {e}");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, "system roots added to the built-in ones");
        roots
    })
}

/// Every certificate of a PEM bundle; an unreadable file or one without a certificate is an error.
pub fn read_bundle(path: &str) -> Result<RootCertStore, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the CA bundle {path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| format!("the CA bundle {path} is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA bundle {path} holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("the CA bundle {path} holds no certificate"));
    }
    Ok(roots)
}

/// `ssl_verify: false` (and Postgres' `sslmode=prefer` / `require`): any certificate is
/// accepted; handshake signatures are still checked, so the session is encrypted, but not
/// authenticated.
#[derive(Debug)]
pub struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl NoVerify {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Forward proxies
// ---------------------------------------------------------------------------------------------

/// One forward proxy: where it listens, the `Proxy-Authorization` value, and the URL as shown in
/// messages (without credentials).
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    authorization: Option<String>,
    pub display: String,
}

/// `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (upper or lower case; the lower-case name wins when
/// both are set, as in curl and requests).
#[derive(Clone, Default)]
pub struct ProxySettings {
    pub https: Option<Proxy>,
    pub http: Option<Proxy>,
    no_proxy: Vec<NoProxy>,
}

#[derive(Clone, Debug, PartialEq)]
enum NoProxy {
    All,
    /// A host name: itself and its subdomains; `port` limits it to one port.
    Domain {
        name: String,
        port: Option<u16>,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Net {
        ip: IpAddr,
        prefix: u8,
    },
}

impl ProxySettings {
    fn from_env(env: &[(String, String)]) -> Result<Option<ProxySettings>, String> {
        let https = env_get(env, &["https_proxy", "HTTPS_PROXY"])
            .map(|u| Proxy::parse(u).map_err(|e| format!("HTTPS_PROXY: {e}")))
            .transpose()?;
        let http = env_get(env, &["http_proxy", "HTTP_PROXY"])
            .map(|u| Proxy::parse(u).map_err(|e| format!("HTTP_PROXY: {e}")))
            .transpose()?;
        if https.is_none() && http.is_none() {
            return Ok(None);
        }
        let no_proxy = env_get(env, &["no_proxy", "NO_PROXY"])
            .map(parse_no_proxy)
            .unwrap_or_default();
        Ok(Some(ProxySettings {
            https,
            http,
            no_proxy,
        }))
    }

    /// The proxy for a target, or `None` for a direct connection.
    pub fn for_target(&self, https: bool, host: &str, port: u16) -> Option<&Proxy> {
        let proxy = if https { &self.https } else { &self.http }.as_ref()?;
        if self.bypass(host, port) {
            None
        } else {
            Some(proxy)
        }
    }

    fn bypass(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.no_proxy.iter().any(|rule| match rule {
            NoProxy::All => true,
            NoProxy::Domain { name, port: p } => {
                p.is_none_or(|p| p == port)
                    && (host == *name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            NoProxy::Ip {
                ip: rule_ip,
                port: p,
            } => p.is_none_or(|p| p == port) && ip == Some(*rule_ip),
            NoProxy::Net { ip: net, prefix } => ip.is_some_and(|ip| in_net(ip, *net, *prefix)),
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn parse_no_proxy(list: &str) -> Vec<NoProxy> {
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e == "*" {
                return NoProxy::All;
            }
            if let Some((ip, prefix)) = e.split_once('/') {
                if let (Ok(ip), Ok(prefix)) = (ip.parse::<IpAddr>(), prefix.parse::<u8>()) {
                    return NoProxy::Net { ip, prefix };
                }
            }
            let bare = e.trim_start_matches('[');
            if let Some((ip, rest)) = bare.split_once(']') {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
                    return NoProxy::Ip { ip, port };
                }
            }
            if let Ok(ip) = e.parse::<IpAddr>() {
                return NoProxy::Ip { ip, port: None };
            }
            let (name, port) = match e.rsplit_once(':') {
                Some((n, p)) if p.parse::<u16>().is_ok() => (n, p.parse().ok()),
                _ => (e.as_str(), None),
            };
            if let Ok(ip) = name.parse::<IpAddr>() {
                return NoProxy::Ip { ip, port };
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            NoProxy::Domain {
                name: name.trim_end_matches('.').to_string(),
                port,
            }
        })
        .collect()
}

impl Proxy {
    /// `http://[user:password@]host[:port]` (a bare `host:port` means `http://`).
    fn parse(url: &str) -> Result<Proxy, String> {
        let url = url.trim();
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let shown = crate::secret::display_url(&with_scheme);
        let uri: Uri = with_scheme
            .parse()
            .map_err(|_| format!("{shown} is not a proxy URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{shown}: only http:// proxies are supported (the tunnel to the provider is still TLS)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{shown} has no host"))?
            .as_str();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let hostport: awc::http::uri::Authority = hostport
            .parse()
            .map_err(|_| format!("{shown} has no valid host"))?;
        let authorization = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let plain = format!("{}:{}", percent_decode(user), percent_decode(pass));
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(plain)
            )
        });
        Ok(Proxy {
            host: hostport.host().trim_matches(['[', ']']).to_string(),
            port: hostport.port_u16().unwrap_or(80),
            authorization,
            display: format!("http://{hostport}"),
        })
    }
}

/// `%XX` escapes decoded (a URL's userinfo, a query value, a header value); anything else kept as
/// it is.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An awc connector that reaches proxied targets through an HTTP `CONNECT` tunnel and the others
/// directly; awc then speaks TLS (for `https://`) or plain HTTP over what it returns.
#[derive(Clone)]
pub struct ProxyConnector {
    direct: ConnectorService,
    settings: Rc<ProxySettings>,
}

impl ProxyConnector {
    pub fn new(settings: Rc<ProxySettings>) -> Self {
        Self {
            direct: actix_tls::connect::Connector::default().service(),
            settings,
        }
    }
}

type TcpStream = actix_web::rt::net::TcpStream;

impl actix_service::Service<ConnectInfo<Uri>> for ProxyConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        actix_service::Service::<ConnectInfo<Uri>>::poll_ready(&self.direct, cx)
    }

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let https = req.request().scheme_str() == Some("https");
        let host = req.hostname().to_string();
        let port = req.port();
        match self.settings.for_target(https, &host, port).cloned() {
            None => Box::pin(self.direct.call(req)),
            Some(proxy) => {
                let uri = req.request().clone();
                Box::pin(async move {
                    let io = tunnel(&proxy, &host, port)
                        .await
                        .map_err(ConnectError::Io)?;
                    Ok(Connection::new(uri, io))
                })
            }
        }
    }
}

/// Open a `CONNECT host:port` tunnel through `proxy`. Errors name the proxy without credentials.
async fn tunnel(proxy: &Proxy, host: &str, port: u16) -> io::Result<TcpStream> {
    let shown = &proxy.display;
    let mut io = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot reach the proxy {shown}: {e}")))?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(auth);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    write_all(&mut io, head.as_bytes()).await?;
    // Read the proxy's answer up to the blank line, one byte at a time: nothing after it may be
    // consumed, it belongs to the tunnel.
    let mut answer = Vec::with_capacity(128);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 16 * 1024 {
            return Err(io::Error::other(format!(
                "the proxy {shown} sent an over-long answer to CONNECT"
            )));
        }
        let mut byte = [0u8; 1];
        if read(&mut io, &mut byte).await? == 0 {
            return Err(io::Error::other(format!(
                "the proxy {shown} closed the connection during CONNECT to {target}"
            )));
        }
        answer.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or("");
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let status_line: String = status_line.chars().take(120).collect();
        return Err(io::Error::other(format!(
            "the proxy {shown} refused CONNECT to {target}: {status_line}"
        )));
    }
    Ok(io)
}

async fn write_all(io: &mut TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

async fn read(io: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(no_proxy: &str) -> ProxySettings {
        let env = vec![
            (
                "HTTPS_PROXY".to_string(),
                "http://u:p%40ss@127.0.0.1:3128".to_string(),
            ),
            ("NO_PROXY".to_string(), no_proxy.to_string()),
        ];
        ProxySettings::from_env(&env).unwrap().unwrap()
    }

    #[test]
    fn no_proxy_matches_suffixes_ips_ports_and_star() {
        let s = settings("example.com, .internal, 10.0.0.0/8, 192.168.1.5, localhost:8443");
        assert!(s.for_target(true, "example.com", 443).is_none());
        assert!(s.for_target(true, "api.example.com", 443).is_none());
        assert!(s.for_target(true, "notexample.com", 443).is_some());
        assert!(s.for_target(true, "a.b.internal", 443).is_none());
        assert!(s.for_target(true, "10.2.3.4", 443).is_none());
        assert!(s.for_target(true, "11.2.3.4", 443).is_some());
        assert!(s.for_target(true, "192.168.1.5", 443).is_none());
        assert!(s.for_target(true, "localhost", 8443).is_none());
        assert!(s.for_target(true, "localhost", 443).is_some());
        // No HTTP_PROXY: plain-http targets go direct.
        assert!(s.for_target(false, "api.openai.com", 80).is_none());
        assert!(settings("*")
            .for_target(true, "api.openai.com", 443)
            .is_none());
    }

    #[test]
    fn proxy_credentials_go_in_the_header_and_never_in_the_shown_url() {
        let s = settings("");
        let p = s.https.as_ref().unwrap();
        assert_eq!(p.display, "http://127.0.0.1:3128");
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode("u:p@ss");
        assert_eq!(
            p.authorization.as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        let err = Proxy::parse("https://u:secret@proxy:1").err().unwrap();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn ssl_verify_values() {
        assert_eq!(
            Trust::from_ssl_verify(&Value::Bool(false)),
            Ok(Some(Trust::NoVerify))
        );
        assert_eq!(Trust::from_ssl_verify(&Value::Bool(true)), Ok(None));
        assert_eq!(
            Trust::from_ssl_verify(&Value::String("/ca.pem".into())),
            Ok(Some(Trust::Bundle("/ca.pem".into())))
        );
        assert_eq!(
            Trust::from_ssl_verify(&Value::String("False".into())),
            Ok(Some(Trust::NoVerify))
        );
        assert!(Trust::from_ssl_verify(&serde_json::json!(3)).is_err());
        assert!(read_bundle("/nonexistent/ca.pem")
            .unwrap_err()
            .contains("/nonexistent/ca.pem"));
    }
}
