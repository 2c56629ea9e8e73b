//! Who is calling. Every route's authorization is decided here, in one place.
//!
//! The key is read from, in order: the operator's `litellm_key_header_name` (if set),
//! `x-litellm-api-key`, `Authorization: Bearer`, `api-key` (Azure SDKs) and `x-api-key` (Anthropic
//! SDKs). A `Bearer ` prefix is accepted in any of them. The master key is compared in constant time
//! (on SHA-256 digests, so lengths leak nothing either).

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;
use crate::secret::{mask, Secret};

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Holds the master key: proxy admin.
    Admin,
    /// No master key is configured (loopback only): everything is open, as in LiteLLM.
    Open,
}

impl Caller {
    pub fn is_admin(self) -> bool {
        matches!(self, Caller::Admin | Caller::Open)
    }
}

/// Published example keys that must never guard a reachable gateway.
const PUBLISHED_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-litellm",
    "sk-master",
    "sk-master-key",
    "sk-admin",
    "sk-test",
    "sk-password",
    "sk-changeme",
    "changeme",
    "password",
];

/// Minimum master-key length not considered weak.
pub const MIN_MASTER_KEY_LEN: usize = 16;

/// Why a master key is unsafe on a reachable address, if it is.
pub fn master_key_weakness(key: Option<&Secret>) -> Option<String> {
    match key {
        None => {
            Some("no master key is set (general_settings.master_key or LITELLM_MASTER_KEY)".into())
        }
        Some(k) if PUBLISHED_KEYS.contains(&k.expose().trim().to_ascii_lowercase().as_str()) => {
            Some("the master key is a published example value".into())
        }
        Some(k) if k.expose().len() < MIN_MASTER_KEY_LEN => Some(format!(
            "the master key is shorter than {MIN_MASTER_KEY_LEN} characters"
        )),
        Some(_) => None,
    }
}

pub struct Authenticator {
    master_key_digest: Option<[u8; 32]>,
    key_header: Option<String>,
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Authenticator {
    pub fn new(master_key: Option<&Secret>, key_header: Option<String>) -> Self {
        Self {
            master_key_digest: master_key.map(|k| digest(k.expose())),
            key_header,
        }
    }

    /// The key the request carries, if any (`Some("")` for a header with an empty value).
    fn presented_key<'a>(&self, req: &'a HttpRequest) -> Option<&'a str> {
        let headers = req.headers();
        let custom = self.key_header.as_deref();
        let names = custom.into_iter().chain([
            "x-litellm-api-key",
            "authorization",
            "api-key",
            "x-api-key",
        ]);
        for name in names {
            if let Some(value) = headers.get(name) {
                let value = value.to_str().unwrap_or("").trim();
                if value.eq_ignore_ascii_case("bearer") {
                    return Some("");
                }
                let value = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or(value);
                return Some(value.trim());
            }
        }
        None
    }

    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, GatewayError> {
        let Some(expected) = &self.master_key_digest else {
            return Ok(Caller::Open);
        };
        let presented = match self.presented_key(req) {
            None => {
                return Err(GatewayError::Authentication {
                    message: "Authentication Error, No api key passed in.".into(),
                })
            }
            Some("") => {
                return Err(GatewayError::Authentication {
                    message: "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.".into(),
                })
            }
            Some(k) => k,
        };
        if bool::from(digest(presented).ct_eq(expected)) {
            Ok(Caller::Admin)
        } else {
            Err(GatewayError::Authentication {
                message: format!(
                    "Authentication Error, Invalid proxy server token passed. Received API Key = {}",
                    mask(presented)
                ),
            })
        }
    }

    /// Admin-only routes (`/health`, and later the management API).
    pub fn require_admin(&self, req: &HttpRequest) -> Result<Caller, GatewayError> {
        let caller = self.authenticate(req)?;
        if caller.is_admin() {
            Ok(caller)
        } else {
            Err(GatewayError::Authentication {
                message: format!(
                    "Authentication Error, only proxy admins can call {}",
                    req.path()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn auth() -> Authenticator {
        Authenticator::new(Some(&Secret::new("sk-strong-master-key-0001")), None)
    }

    #[test]
    fn accepts_every_header_form() {
        let a = auth();
        for (name, value) in [
            ("authorization", "Bearer sk-strong-master-key-0001"),
            ("x-litellm-api-key", "sk-strong-master-key-0001"),
            ("x-litellm-api-key", "Bearer sk-strong-master-key-0001"),
            ("api-key", "sk-strong-master-key-0001"),
            ("x-api-key", "sk-strong-master-key-0001"),
        ] {
            let req = TestRequest::default()
                .insert_header((name, value))
                .to_http_request();
            assert_eq!(a.authenticate(&req).expect(name), Caller::Admin);
        }
    }

    #[test]
    fn rejects_missing_wrong_and_empty_keys_without_echoing_them() {
        let a = auth();
        let none = TestRequest::default().to_http_request();
        assert!(a
            .authenticate(&none)
            .expect_err("none")
            .to_string()
            .contains("No api key"));
        let wrong = TestRequest::default()
            .insert_header(("authorization", "Bearer sk-wrong-key-abcdefgh"))
            .to_http_request();
        let msg = a.authenticate(&wrong).expect_err("wrong").to_string();
        assert!(
            !msg.contains("sk-wrong-key-abcdefgh") && msg.contains("efgh"),
            "{msg}"
        );
        let empty = TestRequest::default()
            .insert_header(("authorization", "Bearer "))
            .to_http_request();
        assert!(a
            .authenticate(&empty)
            .expect_err("empty")
            .to_string()
            .contains("Malformed"));
    }

    #[test]
    fn weak_master_keys() {
        assert!(master_key_weakness(None).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-1234"))).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-short"))).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-a-long-enough-random-key"))).is_none());
    }

    #[test]
    fn no_master_key_means_open() {
        let a = Authenticator::new(None, None);
        assert_eq!(
            a.authenticate(&TestRequest::default().to_http_request())
                .expect("open"),
            Caller::Open
        );
    }
}
