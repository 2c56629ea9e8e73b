//! Secret managers' read APIs over one store of secrets, each checking its own auth:
//!
//! * `PUT /mock/secrets/{name}`: store a secret (the body is its value; unauthenticated, for
//!   tests). Every face below serves it.
//! * HashiCorp Vault KV v2: `GET /v1/{mount}/data/{path…}` with `X-Vault-Token: `
//!   [`VAULT_TOKEN`] (403 `{"errors":["permission denied"]}` otherwise). Answers
//!   `{"data":{"data":{"key": value},"metadata":{…}}}` for the secret named by the path's last
//!   segment, 404 `{"errors":[]}` when there is none.
//! * AWS Secrets Manager: `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue`
//!   (`application/x-amz-json-1.1`, `{"SecretId": name}`), SigV4 (service `secretsmanager`)
//!   recomputed with the mock's AWS credentials (those of Bedrock). Answers `{"ARN", "Name",
//!   "SecretString", "VersionId"}`; 400 `ResourceNotFoundException` when there is none, 400
//!   `IncompleteSignature` / 403 `UnrecognizedClientException` / `InvalidSignatureException`.
//! * Azure: `POST /{tenant}/oauth2/v2.0/token` (client credentials, scope
//!   `https://vault.azure.net/.default`) issues a bearer token; Key Vault's
//!   `GET /secrets/{name}?api-version=…` demands it (401 otherwise) and answers `{"value", "id",
//!   "attributes"}`, 404 `SecretNotFound`; a name with characters Key Vault refuses (`_`…) is 400.
//! * Google Secret Manager: `GET /v1/projects/{project}/secrets/{name}/versions/latest:access`
//!   with a bearer token from this mock's `POST /token` (401 otherwise); answers
//!   `{"name", "payload": {"data": base64}}`, 404 `NOT_FOUND`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use actix_web::{guard, web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::{lock, MockState};

/// The Vault token the mock's Vault face accepts.
pub const VAULT_TOKEN: &str = "hvs.mock-vault-token";

/// The secrets and the Azure tokens issued.
#[derive(Debug, Default)]
pub(crate) struct SecretsState {
    values: Mutex<BTreeMap<String, String>>,
    azure_tokens: Mutex<HashSet<String>>,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/mock/secrets/{name}")
            .app_data(state.clone())
            .route(web::put().to(seed)),
    )
    .service(
        web::resource("/v1/{mount}/data/{path:.*}")
            .app_data(state.clone())
            .route(web::get().to(vault)),
    )
    .service(
        web::resource("/")
            .guard(guard::Header(
                "x-amz-target",
                "secretsmanager.GetSecretValue",
            ))
            .app_data(state.clone())
            .route(web::post().to(aws)),
    )
    .service(
        web::resource("/{tenant}/oauth2/v2.0/token")
            .app_data(state.clone())
            .route(web::post().to(azure_token)),
    )
    .service(
        web::resource("/secrets/{name}")
            .app_data(state.clone())
            .route(web::get().to(azure_get)),
    )
    .service(
        web::resource("/v1/projects/{project}/secrets/{name}/versions/{version}")
            .app_data(state.clone())
            .route(web::get().to(google_access)),
    );
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    header(req, "authorization").and_then(crate::bearer_token)
}

fn value(state: &MockState, name: &str) -> Option<String> {
    lock(&state.secrets.values).get(name).cloned()
}

async fn seed(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let text = String::from_utf8_lossy(&body).into_owned();
    lock(&state.secrets.values).insert(path.into_inner(), text);
    HttpResponse::NoContent().finish()
}

async fn vault(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<MockState>,
) -> HttpResponse {
    if header(&req, "x-vault-token") != Some(VAULT_TOKEN) {
        return HttpResponse::Forbidden().json(json!({"errors": ["permission denied"]}));
    }
    let (_, path) = path.into_inner();
    let name = path.rsplit('/').next().unwrap_or_default();
    match value(&state, name) {
        Some(v) => HttpResponse::Ok().json(json!({
            "request_id": crate::shared::random_id("", 36),
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {
                "data": {"key": v},
                "metadata": {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": false, "version": 1}
            },
        })),
        None => HttpResponse::NotFound().json(json!({"errors": []})),
    }
}

/// A Secrets Manager error: status, `__type`, message.
struct AwsError(u16, &'static str, String);

impl AwsError {
    fn response(&self) -> HttpResponse {
        HttpResponse::build(
            actix_web::http::StatusCode::from_u16(self.0)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .content_type("application/x-amz-json-1.1")
        .body(json!({"__type": self.1, "message": self.2}).to_string())
    }
}

fn aws_error(status: u16, kind: &'static str, message: &str) -> AwsError {
    AwsError(status, kind, message.to_string())
}

/// Check a Secrets Manager call's SigV4 signature (service `secretsmanager`).
fn aws_authenticate(req: &HttpRequest, body: &[u8]) -> Result<(), AwsError> {
    use tollgate_wire::sigv4;
    let Some(sig) = header(req, "authorization").and_then(sigv4::parse_authorization) else {
        return Err(aws_error(
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.",
        ));
    };
    if sig.service != "secretsmanager" {
        return Err(aws_error(
            403,
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'secretsmanager'.",
        ));
    }
    if sig.access_key_id != crate::bedrock::ACCESS_KEY_ID {
        return Err(aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let headers = crate::shared::sigv4_signed_headers(req, &sig.signed_headers).map_err(|n| {
        aws_error(
            403,
            "InvalidSignatureException",
            &format!("signed header {n} is missing"),
        )
    })?;
    let amz_date = header(req, "x-amz-date").unwrap_or_default();
    let expected = sigv4::sign(
        &sigv4::Request {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            headers: &headers,
            payload_hash: &sigv4::sha256_hex(body),
        },
        crate::bedrock::SECRET_ACCESS_KEY,
        amz_date,
        &sig.region,
        "secretsmanager",
    );
    if !amz_date.starts_with(&sig.date) || expected.signature != sig.signature {
        return Err(aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."));
    }
    Ok(())
}

async fn aws(req: HttpRequest, body: web::Bytes, state: web::Data<MockState>) -> HttpResponse {
    if let Err(refused) = aws_authenticate(&req, &body) {
        return refused.response();
    }
    let Some(id) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["SecretId"].as_str().map(str::to_string))
    else {
        return aws_error(
            400,
            "InvalidParameterException",
            "You must provide a SecretId.",
        )
        .response();
    };
    match value(&state, &id) {
        Some(v) => HttpResponse::Ok()
            .content_type("application/x-amz-json-1.1")
            .body(
                json!({
                    "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf"),
                    "Name": id,
                    "SecretString": v,
                    "VersionId": "00000000-0000-0000-0000-000000000001",
                    "VersionStages": ["AWSCURRENT"],
                    "CreatedDate": 1.767225600e9,
                })
                .to_string(),
            ),
        None => aws_error(
            400,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        )
        .response(),
    }
}

async fn azure_token(
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<MockState>,
) -> HttpResponse {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let refuse = |error: &str, description: &str| {
        HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
    };
    if field("grant_type") != Some("client_credentials") {
        return refuse(
            "unsupported_grant_type",
            "AADSTS70003: only client_credentials is served",
        );
    }
    if field("client_id").is_none() || field("client_secret").is_none() {
        return refuse(
            "invalid_client",
            "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required",
        );
    }
    if field("scope") != Some("https://vault.azure.net/.default") {
        return refuse(
            "invalid_scope",
            "AADSTS70011: the scope must be https://vault.azure.net/.default",
        );
    }
    let token = crate::shared::random_id("eyJ0eXAiOiJKV1Qi.mock-", 40);
    lock(&state.secrets.azure_tokens).insert(token.clone());
    HttpResponse::Ok().json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": token,
    }))
}

async fn azure_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<MockState>,
) -> HttpResponse {
    let known = bearer(&req).is_some_and(|t| lock(&state.secrets.azure_tokens).contains(t));
    if !known {
        return HttpResponse::Unauthorized()
            .insert_header(("www-authenticate", "Bearer authorization=\"https://login.microsoftonline.com/common\", resource=\"https://vault.azure.net\""))
            .json(json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}));
    }
    let name = path.into_inner();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return HttpResponse::BadRequest().json(json!({"error": {"code": "BadParameter", "message": "The request URI contains an invalid name: secret names hold only 0-9, a-z, A-Z and -."}}));
    }
    match value(&state, &name) {
        Some(v) => HttpResponse::Ok().json(json!({
            "value": v,
            "id": format!("https://mock.vault.azure.net/secrets/{name}/0123456789abcdef"),
            "attributes": {"enabled": true, "created": 1767225600, "updated": 1767225600, "recoveryLevel": "Recoverable+Purgeable"},
        })),
        None => HttpResponse::NotFound().json(json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}})),
    }
}

async fn google_access(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<MockState>,
) -> HttpResponse {
    let (project, name, version) = path.into_inner();
    if version != "latest:access" {
        return HttpResponse::NotFound().json(json!({"error": {"code": 404, "message": "only versions/latest:access is served", "status": "NOT_FOUND"}}));
    }
    if !bearer(&req).is_some_and(|t| state.google.knows(t)) {
        return HttpResponse::Unauthorized().json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.", "status": "UNAUTHENTICATED"}}));
    }
    match value(&state, &name) {
        Some(v) => HttpResponse::Ok().json(json!({
            "name": format!("projects/{project}/secrets/{name}/versions/1"),
            "payload": {"data": base64::engine::general_purpose::STANDARD.encode(v.as_bytes())},
        })),
        None => HttpResponse::NotFound().json(json!({"error": {"code": 404, "message": format!("Secret [projects/{project}/secrets/{name}] not found or has no versions."), "status": "NOT_FOUND"}})),
    }
}
