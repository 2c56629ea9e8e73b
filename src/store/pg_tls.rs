//! Postgres connections, with TLS as the URL's libpq parameters ask (rustls; no OpenSSL):
//!
//! | `sslmode` | connection | server certificate |
//! |---|---|---|
//! | `disable` | plain | — |
//! | `prefer` (libpq's default, and so the default here) | TLS when the server offers it, else plain | not checked |
//! | `require` | TLS, or fail | not checked (as libpq without a root certificate) |
//! | `verify-ca` | TLS, or fail | signed by a trusted root |
//! | `verify-full` | TLS, or fail | signed by a trusted root and issued for the host connected to |
//!
//! Trusted roots: the PEM file `sslrootcert` names, else the Mozilla roots built into the binary
//! (`webpki-roots`; a managed service's private CA, such as RDS's, needs `sslrootcert`). Every
//! connection the gateway opens to Postgres (the pool, migrations, `import-litellm`'s source)
//! comes through [`connect`].

use std::sync::Arc;
use std::time::Duration;

use diesel::ConnectionResult;
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore};

/// The TLS part of a Postgres URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A Postgres URL split into what the driver reads and what this module handles itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PgTarget {
    /// The URL without `sslmode` and `sslrootcert`.
    pub driver_url: String,
    pub mode: SslMode,
    pub root_cert: Option<String>,
}

fn bad(message: String) -> diesel::ConnectionError {
    diesel::ConnectionError::BadConnection(message)
}

impl PgTarget {
    /// Read `sslmode` and `sslrootcert` from the URL's query (other parameters go to the driver).
    pub fn parse(url: &str) -> Result<PgTarget, String> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = crate::outbound::percent_decode(value);
            match name {
                "sslmode" => {
                    mode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(value),
                "sslcert" | "sslkey" | "sslpassword" => {
                    return Err(format!(
                        "{name} (a client certificate) is not supported; authenticate with a password"
                    ))
                }
                _ => rest.push(pair),
            }
        }
        let driver_url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(PgTarget {
            driver_url,
            mode,
            root_cert,
        })
    }
}

/// Open one connection to `url`, with TLS as its `sslmode` asks, within `connect_timeout`.
pub async fn connect(url: &str, connect_timeout: Duration) -> ConnectionResult<AsyncPgConnection> {
    let target = PgTarget::parse(url).map_err(bad)?;
    let mut config: tokio_postgres::Config = target
        .driver_url
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(format!("database_url: {e}")))?;
    config.connect_timeout(connect_timeout);
    let connect_error = |e: tokio_postgres::Error| bad(with_causes(&e));
    if target.mode == SslMode::Disable {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(connect_error)?;
        return AsyncPgConnection::try_from_client_and_connection(client, conn).await;
    }
    config.ssl_mode(match target.mode {
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&target).map_err(bad)?);
    let (client, conn) = config.connect(tls).await.map_err(connect_error)?;
    AsyncPgConnection::try_from_client_and_connection(client, conn).await
}

/// An error with its causes (the driver's "error performing TLS handshake" says why only there).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for a target's mode.
pub fn client_config(target: &PgTarget) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match target.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(crate::outbound::NoVerify::new(provider()))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = roots(target.root_cert.as_deref())?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            Arc::new(Verified {
                webpki,
                check_name: target.mode == SslMode::VerifyFull,
            })
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn roots(path: Option<&str>) -> Result<RootCertStore, String> {
    match path {
        Some(path) if path != "system" => {
            crate::outbound::read_bundle(path).map_err(|e| format!("sslrootcert: {e}"))
        }
        _ => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Ok(roots)
        }
    }
}

/// `verify-ca` / `verify-full`: the chain must lead to a trusted root; with `verify-full` the
/// certificate must also name the host.
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_read_and_the_rest_goes_to_the_driver() {
        let t = PgTarget::parse(
            "postgres://u:p@db:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=tg",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            t.driver_url,
            "postgres://u:p@db:5432/app?application_name=tg"
        );
        let plain = PgTarget::parse("postgres://db/app").unwrap();
        assert_eq!(plain.mode, SslMode::Prefer);
        assert_eq!(plain.driver_url, "postgres://db/app");
        assert!(PgTarget::parse("postgres://db/app?sslmode=sometimes").is_err());
        assert!(PgTarget::parse("postgres://db/app?sslcert=/c.pem").is_err());
    }

    #[test]
    fn verifying_modes_need_readable_roots() {
        let t = PgTarget::parse("postgres://db/app?sslmode=verify-ca&sslrootcert=/nonexistent.pem")
            .unwrap();
        let err = client_config(&t).unwrap_err();
        assert!(err.contains("/nonexistent.pem"), "{err}");
        let t = PgTarget::parse("postgres://db/app?sslmode=verify-full").unwrap();
        assert!(client_config(&t).is_ok(), "the built-in roots");
    }
}
