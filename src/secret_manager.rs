//! Secret managers, as LiteLLM's "load API keys from a secret manager":
//! `general_settings.key_management_system` names one (`hashicorp_vault`, `aws_secret_manager`
//! or `aws_secret_manager_v2`, `azure_key_vault`, `google_secret_manager`), and every
//! `os.environ/NAME` in the config then resolves through it (the secret named `NAME`), falling
//! back to the process environment when the manager has no such secret.
//! `key_management_settings.hosted_keys` limits the names read from the manager.
//!
//! The secrets are fetched once, while the config loads (before the gateway's threads start), on
//! a thread of its own with its own actix system, and read again every
//! `key_management_settings.refresh_interval` seconds (default 3600; 0 turns it off): when a value
//! changed, the config's deployments are rebuilt with it ([`spawn_refresh`]). Their values are
//! never logged nor put in an error: messages name the secret and the manager's answer status only.
//!
//! * **hashicorp_vault**: KV v2 `GET {HCP_VAULT_ADDR}/v1/{mount}/data/{prefix/}{name}` with
//!   `X-Vault-Token: HCP_VAULT_TOKEN` (and `X-Vault-Namespace: HCP_VAULT_NAMESPACE`); mount
//!   `HCP_VAULT_MOUNT_NAME` (default `secret`), prefix `HCP_VAULT_PATH_PREFIX`. The value is the
//!   secret's `key` field (`data.data.key`), as LiteLLM reads it.
//! * **aws_secret_manager**: `GetSecretValue` (`SecretString`), SigV4 service `secretsmanager`
//!   with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN`), region
//!   `AWS_REGION_NAME` / `AWS_REGION` / `AWS_DEFAULT_REGION` (else `us-east-1`); the endpoint is
//!   `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`, else AWS's.
//! * **azure_key_vault**: `GET {AZURE_KEY_VAULT_URI}/secrets/{name}?api-version=7.4` → `value`,
//!   with a client-credentials token (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_CLIENT_SECRET`) from `AZURE_AUTHORITY_HOST` (else `https://login.microsoftonline.com`).
//!   Key Vault names cannot hold `_`: it is read as `-` (`OPENAI_API_KEY` → `OPENAI-API-KEY`).
//! * **google_secret_manager**: `GET {endpoint}/v1/projects/{GOOGLE_SECRET_MANAGER_PROJECT_ID}/secrets/{name}/versions/latest:access`
//!   → `payload.data` (base64), with a token of the service account in
//!   `GOOGLE_APPLICATION_CREDENTIALS`; the endpoint is `CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER`
//!   (gcloud's override), else Google's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use tollgate_wire::sigv4;

use crate::secret::Secret;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BYTES: usize = 1024 * 1024;

/// The configured manager and what it needs.
#[derive(Debug, Clone)]
pub enum Manager {
    Vault {
        addr: String,
        token: Secret,
        namespace: Option<String>,
        mount: String,
        prefix: Option<String>,
    },
    Aws {
        endpoint: String,
        region: String,
        credentials: sigv4::Credentials,
    },
    Azure {
        vault: String,
        authority: String,
        tenant: String,
        client_id: String,
        client_secret: Secret,
    },
    Google {
        endpoint: String,
        project: String,
        credentials: String,
    },
}

/// `key_management_system` with its settings.
#[derive(Debug, Clone)]
pub struct SecretManager {
    pub manager: Manager,
    /// `key_management_settings.hosted_keys`: when set, only these names are read from it.
    pub hosted_keys: Option<BTreeSet<String>>,
    /// `key_management_settings.refresh_interval`; `None`: never read again.
    pub refresh_every: Option<Duration>,
}

/// How often the secrets are read again when `refresh_interval` is not set.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// The manager the config uses and the names it reads, for [`spawn_refresh`].
static ACTIVE: std::sync::Mutex<Option<(SecretManager, BTreeSet<String>)>> =
    std::sync::Mutex::new(None);

/// Remember the manager the config loaded its secrets from, to refresh them.
pub fn activate(manager: SecretManager, names: BTreeSet<String>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some((manager, names));
}

/// Read the secrets again every `refresh_interval`; when one changed, rebuild the deployments
/// (through the models reload, which resolves the config's `os.environ/` references again). A
/// failed read keeps the current values.
pub fn spawn_refresh(state: actix_web::web::Data<crate::state::AppState>) {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some((manager, names)) = active else {
        return;
    };
    let Some(every) = manager.refresh_every else {
        return;
    };
    let kind = manager.manager.kind();
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(every).await;
            let (m, n) = (manager.clone(), names.clone());
            match actix_web::web::block(move || m.fetch(&n)).await {
                Ok(Ok(found)) => {
                    if crate::config::refresh_managed_secrets(found) {
                        tracing::info!(
                            manager = kind,
                            "secrets changed in the secret manager; rebuilding the deployments"
                        );
                        if let Err(e) = state.db_models.reload(&state).await {
                            tracing::warn!(error = %e, "cannot rebuild the deployments yet; the next periodic reload will");
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot refresh the secrets; keeping the current values")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot refresh the secrets; keeping the current values")
                }
            }
        }
    });
}

impl Manager {
    /// The `key_management_system` value.
    pub fn kind(&self) -> &'static str {
        match self {
            Manager::Vault { .. } => "hashicorp_vault",
            Manager::Aws { .. } => "aws_secret_manager",
            Manager::Azure { .. } => "azure_key_vault",
            Manager::Google { .. } => "google_secret_manager",
        }
    }
}

/// The manager `general_settings` (as written, before `os.environ/` resolution) configures, if
/// any. A missing variable the manager needs, or an unknown manager, is an error naming it.
pub fn from_settings(
    general: &Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretManager>, String> {
    let Some(kind) = general
        .get("key_management_system")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let need = |k: &str| {
        var(k).ok_or_else(|| {
            format!("general_settings.key_management_system is {kind} but {k} is not set")
        })
    };
    let url = |k: &str, v: String| {
        if v.starts_with("http://") || v.starts_with("https://") {
            Ok(v.trim_end_matches('/').to_string())
        } else {
            Err(format!("{k} must be an http(s) URL, not '{v}'"))
        }
    };
    let manager = match kind.as_str() {
        "hashicorp_vault" => Manager::Vault {
            addr: url("HCP_VAULT_ADDR", need("HCP_VAULT_ADDR")?)?,
            token: Secret::new(need("HCP_VAULT_TOKEN")?),
            namespace: var("HCP_VAULT_NAMESPACE"),
            mount: var("HCP_VAULT_MOUNT_NAME")
                .map(|m| m.trim_matches('/').to_string())
                .unwrap_or_else(|| "secret".into()),
            prefix: var("HCP_VAULT_PATH_PREFIX")
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
        },
        "aws_secret_manager" | "aws_secret_manager_v2" => {
            let region = var("AWS_REGION_NAME")
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into());
            let endpoint = match var("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
                Some(e) => url("AWS_ENDPOINT_URL_SECRETS_MANAGER", e)?,
                None => match var("AWS_ENDPOINT_URL") {
                    Some(e) => url("AWS_ENDPOINT_URL", e)?,
                    None => format!("https://secretsmanager.{region}.amazonaws.com"),
                },
            };
            Manager::Aws {
                endpoint,
                credentials: sigv4::Credentials {
                    access_key_id: need("AWS_ACCESS_KEY_ID")?,
                    secret_access_key: need("AWS_SECRET_ACCESS_KEY")?,
                    session_token: var("AWS_SESSION_TOKEN"),
                },
                region,
            }
        }
        "azure_key_vault" => Manager::Azure {
            vault: url("AZURE_KEY_VAULT_URI", need("AZURE_KEY_VAULT_URI")?)?,
            authority: match var("AZURE_AUTHORITY_HOST") {
                Some(a) => url("AZURE_AUTHORITY_HOST", a)?,
                None => "https://login.microsoftonline.com".into(),
            },
            tenant: need("AZURE_TENANT_ID")?,
            client_id: need("AZURE_CLIENT_ID")?,
            client_secret: Secret::new(need("AZURE_CLIENT_SECRET")?),
        },
        "google_secret_manager" => Manager::Google {
            endpoint: match var("CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER") {
                Some(e) => url("CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER", e)?
                    .trim_end_matches("/v1")
                    .to_string(),
                None => "https://secretmanager.googleapis.com".into(),
            },
            project: need("GOOGLE_SECRET_MANAGER_PROJECT_ID")?,
            credentials: need("GOOGLE_APPLICATION_CREDENTIALS")?,
        },
        other => {
            return Err(format!(
                "general_settings.key_management_system must be hashicorp_vault, aws_secret_manager, azure_key_vault or google_secret_manager, not '{other}'"
            ))
        }
    };
    let hosted_keys = general
        .get("key_management_settings")
        .and_then(|s| s.get("hosted_keys"))
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(|k| k.trim().to_string())
                .collect()
        });
    let refresh_every = match general
        .get("key_management_settings")
        .and_then(|s| s.get("refresh_interval"))
    {
        None | Some(Value::Null) => Some(DEFAULT_REFRESH_EVERY),
        Some(v) => match v.as_f64() {
            Some(0.0) => None,
            Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
            _ => {
                return Err(format!(
                    "general_settings.key_management_settings.refresh_interval must be a number of seconds (0: never), not {v}"
                ))
            }
        },
    };
    Ok(Some(SecretManager {
        manager,
        hosted_keys,
        refresh_every,
    }))
}

impl SecretManager {
    /// The secrets among `names` the manager holds (names it does not hold are left out), read
    /// on a thread of its own. An answer other than "not found" is an error.
    pub fn fetch(&self, names: &BTreeSet<String>) -> Result<BTreeMap<String, Secret>, String> {
        let names: Vec<String> = names
            .iter()
            .filter(|n| self.hosted_keys.as_ref().is_none_or(|h| h.contains(*n)))
            .cloned()
            .collect();
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let manager = self.manager.clone();
        let kind = manager.kind();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let token = manager.access_token().await?;
                let mut out = BTreeMap::new();
                for name in names {
                    if let Some(value) = manager
                        .read(&name, token.as_ref())
                        .await
                        .map_err(|e| format!("cannot read secret {name}: {e}"))?
                    {
                        out.insert(name, value);
                    }
                }
                Ok(out)
            })
        })
        .join()
        .map_err(|_| format!("the thread reading the {kind} secrets panicked"))?
        .map_err(|e: String| format!("{kind}: {e}"))
    }
}

impl Manager {
    /// The bearer token the manager's reads need (Azure, Google), fetched once.
    async fn access_token(&self) -> Result<Option<Secret>, String> {
        match self {
            Manager::Azure {
                authority,
                tenant,
                client_id,
                client_secret,
                ..
            } => {
                let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
                let (status, body) = crate::upstream::post_form(
                    &url,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id),
                        ("client_secret", client_secret.expose()),
                        ("scope", "https://vault.azure.net/.default"),
                    ],
                    TIMEOUT,
                )
                .await
                .map_err(|e| format!("token request to {url} failed: {e}"))?;
                if status != 200 {
                    return Err(format!(
                        "the token endpoint {url} answered {status}: {}",
                        error_text(&body)
                    ));
                }
                let token = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["access_token"].as_str().map(Secret::new))
                    .ok_or_else(|| format!("the token endpoint {url} gave no access_token"))?;
                Ok(Some(token))
            }
            Manager::Google { credentials, .. } => {
                let text = std::fs::read_to_string(credentials).map_err(|e| {
                    format!("cannot read the service account file {credentials}: {e}")
                })?;
                let account = crate::providers::vertex::Account::from_json(&text)
                    .map_err(|e| format!("{credentials}: {e}"))?;
                Ok(Some(account.token().await.map_err(|e| e.to_string())?))
            }
            Manager::Vault { .. } | Manager::Aws { .. } => Ok(None),
        }
    }

    /// One secret's value; `None` when the manager has no such secret.
    async fn read(&self, name: &str, token: Option<&Secret>) -> Result<Option<Secret>, String> {
        let enc = |s: &str| sigv4::uri_encode(s, false);
        let bearer = || {
            vec![(
                "authorization".to_string(),
                format!("Bearer {}", token.map(Secret::expose).unwrap_or("")),
            )]
        };
        let (status, body) = match self {
            Manager::Vault {
                addr,
                token,
                namespace,
                mount,
                prefix,
            } => {
                let path = match prefix {
                    Some(p) => format!("{p}/{name}"),
                    None => name.to_string(),
                };
                let url = format!(
                    "{addr}/v1/{}/data/{}",
                    sigv4::uri_encode(mount, true),
                    sigv4::uri_encode(&path, true)
                );
                let mut headers = vec![("x-vault-token".to_string(), token.expose().to_string())];
                if let Some(ns) = namespace {
                    headers.push(("x-vault-namespace".to_string(), ns.clone()));
                }
                crate::upstream::get_bytes(&url, &headers, TIMEOUT, MAX_BYTES).await?
            }
            Manager::Aws {
                endpoint,
                region,
                credentials,
            } => {
                let url = format!("{endpoint}/");
                let body = serde_json::json!({ "SecretId": name }).to_string();
                let headers = aws_signed(&url, body.as_bytes(), region, credentials)?;
                let headers: Vec<(String, Vec<u8>)> = headers
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                crate::upstream::post_bytes(&url, &headers, body.into(), TIMEOUT).await?
            }
            Manager::Azure { vault, .. } => {
                let url = format!("{vault}/secrets/{}?api-version=7.4", enc(&azure_name(name)));
                crate::upstream::get_bytes(&url, &bearer(), TIMEOUT, MAX_BYTES).await?
            }
            Manager::Google {
                endpoint, project, ..
            } => {
                let url = format!(
                    "{endpoint}/v1/projects/{}/secrets/{}/versions/latest:access",
                    enc(project),
                    enc(name)
                );
                crate::upstream::get_bytes(&url, &bearer(), TIMEOUT, MAX_BYTES).await?
            }
        };
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let not_found = match self {
            Manager::Aws { .. } => {
                status == 400
                    && json["__type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("ResourceNotFoundException"))
            }
            _ => status == 404,
        };
        if not_found {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(format!(
                "the manager answered {status}: {}",
                error_text(&body)
            ));
        }
        let value = match self {
            Manager::Vault { .. } => json["data"]["data"]["key"].as_str().map(str::to_string),
            Manager::Aws { .. } => json["SecretString"].as_str().map(str::to_string),
            Manager::Azure { .. } => json["value"].as_str().map(str::to_string),
            Manager::Google { .. } => json["payload"]["data"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok()),
        };
        Ok(value.map(Secret::new))
    }
}

/// Key Vault secret names hold letters, digits and `-`: a `_` is read as `-`.
pub fn azure_name(name: &str) -> String {
    name.replace('_', "-")
}

/// An error answer's message, short, for start-up errors (error bodies carry no secret value).
fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.trim().to_string()
}

/// The headers of a SigV4-signed (`secretsmanager`) `GetSecretValue` call to `url`.
fn aws_signed(
    url: &str,
    body: &[u8],
    region: &str,
    creds: &sigv4::Credentials,
) -> Result<Vec<(String, String)>, String> {
    let (_, host, path, query) =
        sigv4::split_url(url).ok_or_else(|| format!("cannot sign a request to {url}"))?;
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
        (
            "x-amz-target".to_string(),
            "secretsmanager.GetSecretValue".to_string(),
        ),
    ];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let payload_hash = sigv4::sha256_hex(body);
    let signature = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path,
            query,
            headers: &headers,
            payload_hash: &payload_hash,
        },
        &creds.secret_access_key,
        &amz_date,
        region,
        "secretsmanager",
    );
    // awc writes the host header itself, from the URL.
    headers.retain(|(k, _)| k != "host");
    headers.push((
        "authorization".to_string(),
        signature.authorization(&creds.access_key_id),
    ));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Map<String, Value> {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn each_manager_names_the_variable_it_misses() {
        let none = |_: &str| None;
        assert!(from_settings(&settings("{}"), &none).unwrap().is_none());
        for (kind, var) in [
            ("hashicorp_vault", "HCP_VAULT_ADDR"),
            ("aws_secret_manager", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_manager_v2", "AWS_ACCESS_KEY_ID"),
            ("azure_key_vault", "AZURE_KEY_VAULT_URI"),
            ("google_secret_manager", "GOOGLE_SECRET_MANAGER_PROJECT_ID"),
        ] {
            let err = from_settings(&settings(&format!("key_management_system: {kind}")), &none)
                .unwrap_err();
            assert!(err.contains(var) && err.contains(kind), "{err}");
        }
        let err = from_settings(&settings("key_management_system: aws_kms"), &none).unwrap_err();
        assert!(err.contains("aws_kms"), "{err}");
        let env = |k: &str| match k {
            "HCP_VAULT_ADDR" => Some("http://vault:8200/".to_string()),
            "HCP_VAULT_TOKEN" => Some("hvs.x".to_string()),
            _ => None,
        };
        let m = from_settings(
            &settings("key_management_system: hashicorp_vault\nkey_management_settings: {hosted_keys: [A]}"),
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.hosted_keys, Some(BTreeSet::from(["A".to_string()])));
        assert_eq!(m.refresh_every, Some(DEFAULT_REFRESH_EVERY));
        let never = from_settings(
            &settings("key_management_system: hashicorp_vault\nkey_management_settings: {refresh_interval: 0}"),
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(never.refresh_every, None);
        let err = from_settings(
            &settings("key_management_system: hashicorp_vault\nkey_management_settings: {refresh_interval: soon}"),
            &env,
        )
        .unwrap_err();
        assert!(err.contains("refresh_interval"), "{err}");
        let Manager::Vault { addr, mount, .. } = m.manager else {
            panic!("vault")
        };
        assert_eq!(
            (addr.as_str(), mount.as_str()),
            ("http://vault:8200", "secret")
        );
        assert_eq!(azure_name("OPENAI_API_KEY"), "OPENAI-API-KEY");
    }
}
