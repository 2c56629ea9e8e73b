//! The config file read from a bucket, as LiteLLM reads it: `LITELLM_CONFIG_BUCKET_TYPE` (`s3`,
//! the default, or `gcs`), `LITELLM_CONFIG_BUCKET_NAME`, `LITELLM_CONFIG_BUCKET_OBJECT_KEY`. When
//! the bucket name is set, the object is the config (`--config` is then ignored, with a warning),
//! and a start-up error says why when it cannot be read.
//!
//! * **S3**: a SigV4-signed `GetObject` with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//!   (`AWS_SESSION_TOKEN`), region `AWS_REGION` / `AWS_DEFAULT_REGION` (else `us-east-1`).
//!   `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, points it elsewhere (MinIO, a test server),
//!   with path-style URLs (`{endpoint}/{bucket}/{key}`); otherwise AWS's virtual-hosted URL.
//! * **GCS**: the JSON API's media download (`/storage/v1/b/{bucket}/o/{object}?alt=media`).
//!   `STORAGE_EMULATOR_HOST` points it at an emulator (no credentials, as Google's client
//!   libraries do); otherwise a bearer token from the service account in
//!   `GCS_PATH_SERVICE_ACCOUNT` (LiteLLM's variable) or `GOOGLE_APPLICATION_CREDENTIALS`.
//!
//! The fetch runs once, before the gateway starts, on a thread of its own (TLS trust from the
//! environment: `SSL_CERT_FILE`, `SSL_VERIFY`; the config's own `ssl_verify` is not known yet).

use std::time::Duration;

use crate::observability::callbacks::S3Settings;
use crate::secret::Secret;

/// How long the fetch may take, and how big the object may be.
const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Bucket {
    S3(S3Settings, String),
    Gcs {
        /// `STORAGE_EMULATOR_HOST` or Google's endpoint, without a trailing `/`.
        endpoint: String,
        bucket: String,
        object: String,
        /// The service-account file, when not an emulator.
        credentials: Option<String>,
    },
}

/// The bucket the environment names, if any. An incomplete or invalid setting is an error.
pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Bucket>, String> {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(bucket) = var("LITELLM_CONFIG_BUCKET_NAME") else {
        return Ok(None);
    };
    let key = var("LITELLM_CONFIG_BUCKET_OBJECT_KEY").ok_or(
        "LITELLM_CONFIG_BUCKET_NAME is set but LITELLM_CONFIG_BUCKET_OBJECT_KEY is not: set it to the config object's key",
    )?;
    let kind = var("LITELLM_CONFIG_BUCKET_TYPE").unwrap_or_else(|| "s3".into());
    match kind.to_ascii_lowercase().as_str() {
        "s3" => {
            let missing =
                |v: &str| format!("reading the config from s3://{bucket}/{key} needs {v}");
            let endpoint = var("AWS_ENDPOINT_URL_S3")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .map(|e| e.trim_end_matches('/').to_string());
            if let Some(e) = &endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(format!(
                        "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL must be an http(s) URL, not '{e}'"
                    ));
                }
            }
            let settings = S3Settings {
                path_style: endpoint.is_some(),
                endpoint,
                region: var("AWS_REGION")
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into()),
                path: String::new(),
                access_key_id: var("AWS_ACCESS_KEY_ID")
                    .ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
                secret_access_key: Secret::new(
                    var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
                ),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                bucket,
            };
            Ok(Some(Bucket::S3(settings, key)))
        }
        "gcs" => {
            let emulator = var("STORAGE_EMULATOR_HOST");
            let credentials = match &emulator {
                Some(_) => None,
                None => Some(
                    var("GCS_PATH_SERVICE_ACCOUNT")
                        .or_else(|| var("GOOGLE_APPLICATION_CREDENTIALS"))
                        .ok_or_else(|| {
                            format!("reading the config from gs://{bucket}/{key} needs a service account: set GCS_PATH_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS) to its JSON key file")
                        })?,
                ),
            };
            let endpoint = match emulator {
                // Google's libraries take the emulator's host with or without a scheme.
                Some(h) if h.starts_with("http://") || h.starts_with("https://") => h,
                Some(h) => format!("http://{h}"),
                None => "https://storage.googleapis.com".into(),
            };
            Ok(Some(Bucket::Gcs {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                bucket,
                object: key,
                credentials,
            }))
        }
        other => Err(format!(
            "LITELLM_CONFIG_BUCKET_TYPE must be s3 or gcs, not '{other}'"
        )),
    }
}

impl Bucket {
    /// `s3://bucket/key` or `gs://bucket/object`, for messages.
    pub fn origin(&self) -> String {
        match self {
            Bucket::S3(s, key) => format!("s3://{}/{key}", s.bucket),
            Bucket::Gcs { bucket, object, .. } => format!("gs://{bucket}/{object}"),
        }
    }

    /// The object's text, fetched on a thread of its own (its own actix system and client).
    pub fn fetch(&self) -> Result<String, String> {
        let bucket = self.clone();
        let origin = self.origin();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(bucket.fetch_async()))
            .join()
            .map_err(|_| "the thread reading the config bucket panicked".to_string())?
            .map_err(|e| format!("cannot read the config from {origin}: {e}"))
    }

    async fn fetch_async(self) -> Result<String, String> {
        let (url, headers) = match &self {
            Bucket::S3(s3, key) => {
                let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                s3.signed("GET", key, b"", None, &amz_date)
            }
            Bucket::Gcs {
                endpoint,
                bucket,
                object,
                credentials,
            } => {
                let enc = |s: &str| tollgate_wire::sigv4::uri_encode(s, false);
                let url = format!(
                    "{endpoint}/storage/v1/b/{}/o/{}?alt=media",
                    enc(bucket),
                    enc(object)
                );
                let mut headers = Vec::new();
                if let Some(path) = credentials {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the service account file {path}: {e}"))?;
                    let account = crate::providers::vertex::Account::from_json(&text)
                        .map_err(|e| format!("{path}: {e}"))?;
                    let token = account.token().await.map_err(|e| e.to_string())?;
                    headers.push((
                        "authorization".to_string(),
                        format!("Bearer {}", token.expose()),
                    ));
                }
                (url, headers)
            }
        };
        let (status, body) = crate::upstream::get_bytes(&url, &headers, TIMEOUT, MAX_BYTES).await?;
        if !(200..300).contains(&status) {
            let detail = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("the bucket answered {status}: {}", detail.trim()));
        }
        String::from_utf8(body.to_vec()).map_err(|_| "the object is not UTF-8 text".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_names_the_bucket_or_says_what_is_missing() {
        assert_eq!(from_env(&env(&[])).unwrap(), None);
        let err = from_env(&env(&[("LITELLM_CONFIG_BUCKET_NAME", "b")])).unwrap_err();
        assert!(err.contains("LITELLM_CONFIG_BUCKET_OBJECT_KEY"), "{err}");
        let base = [
            ("LITELLM_CONFIG_BUCKET_NAME", "configs"),
            ("LITELLM_CONFIG_BUCKET_OBJECT_KEY", "prod/config.yaml"),
        ];
        let err = from_env(&env(&base)).unwrap_err();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        let s3 = [
            base[0],
            base[1],
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
        ];
        let Some(Bucket::S3(settings, key)) = from_env(&env(&s3)).unwrap() else {
            panic!("s3")
        };
        assert_eq!(key, "prod/config.yaml");
        assert_eq!(
            settings.object_url(&key),
            "http://127.0.0.1:9000/configs/prod/config.yaml"
        );
        // Without an endpoint: AWS, virtual-hosted.
        let Some(Bucket::S3(aws, _)) = from_env(&env(&s3[..4])).unwrap() else {
            panic!("s3")
        };
        assert_eq!(
            aws.object_url("c.yaml"),
            "https://configs.s3.us-east-1.amazonaws.com/c.yaml"
        );
        let gcs = [base[0], base[1], ("LITELLM_CONFIG_BUCKET_TYPE", "gcs")];
        let err = from_env(&env(&gcs)).unwrap_err();
        assert!(err.contains("GCS_PATH_SERVICE_ACCOUNT"), "{err}");
        let emulated = [
            gcs[0],
            gcs[1],
            gcs[2],
            ("STORAGE_EMULATOR_HOST", "localhost:4443"),
        ];
        assert_eq!(
            from_env(&env(&emulated)).unwrap().unwrap(),
            Bucket::Gcs {
                endpoint: "http://localhost:4443".into(),
                bucket: "configs".into(),
                object: "prod/config.yaml".into(),
                credentials: None,
            }
        );
        let err = from_env(&env(&[
            base[0],
            base[1],
            ("LITELLM_CONFIG_BUCKET_TYPE", "azure"),
        ]))
        .unwrap_err();
        assert!(err.contains("s3 or gcs"), "{err}");
    }
}
