//! The gateway's error type: every failure a client can see, with its HTTP status, its OpenAI error
//! `type` and `code`, and whether trying another deployment could help.
//!
//! Every error leaves the gateway as the OpenAI envelope
//! `{"error":{"message","type","param","code"}}` with `code` a string, so the OpenAI SDKs raise the
//! matching exception (400 → BadRequestError, 401 → AuthenticationError, 429 → RateLimitError,
//! 5xx → InternalServerError). Messages never carry secrets: upstream bodies are scrubbed of the
//! deployment's key before they get here.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
pub use tollgate_actors::{ErrorClass, FailureClass};

/// What kind of upstream failure happened, for fallbacks and cooldowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    RateLimit,
    ContextWindowExceeded,
    ContentPolicy,
    Authentication,
    PermissionDenied,
    NotFound,
    BadRequest,
    Timeout,
    Connection,
    Server,
    /// The stream broke after it had started.
    StreamInterrupted,
}

impl UpstreamErrorKind {
    /// LiteLLM's exception class for this failure, the prefix of the error message every provider
    /// adapter writes (`"{class}: {Provider}Exception - …"`).
    pub fn class_name(self, status: u16) -> &'static str {
        match self {
            Self::RateLimit => "RateLimitError",
            Self::ContextWindowExceeded => "ContextWindowExceededError",
            Self::ContentPolicy => "ContentPolicyViolationError",
            Self::Authentication => "AuthenticationError",
            Self::PermissionDenied => "PermissionDeniedError",
            Self::NotFound => "NotFoundError",
            Self::BadRequest => "BadRequestError",
            Self::Timeout => "Timeout",
            Self::Connection | Self::StreamInterrupted => "APIConnectionError",
            Self::Server if status == 503 => "ServiceUnavailableError",
            Self::Server => "InternalServerError",
        }
    }

    /// The OpenAI error code clients key fallbacks on, for the kinds that have one.
    pub fn standard_code(self) -> Option<&'static str> {
        match self {
            Self::ContextWindowExceeded => Some("context_length_exceeded"),
            Self::ContentPolicy => Some("content_policy_violation"),
            _ => None,
        }
    }
}

/// Whether another attempt at a failed call may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry (another deployment, or the same one after a backoff).
    Yes,
    /// Only on another deployment of the group (401 / 403: the key of this one is wrong).
    IfGroupHasOthers,
    /// The request itself is at fault; retrying cannot help.
    No,
}

/// How a failure counts toward the cooldown of the deployment that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    /// At once, after `allowed_fails`, or never (see [`FailureClass`]).
    pub class: FailureClass,
    /// The `allowed_fails_policy` bucket it is counted in.
    pub bucket: ErrorClass,
}

/// The one classification of a failed call. Retries (`routing`), cooldowns (`pipeline::report`
/// and the deployment actors), `retry_policy` / `allowed_fails_policy` buckets and LiteLLM's
/// exception class names all read it; none re-derives it.
///
/// Decisions (where earlier readers disagreed):
/// - Connection failures and broken streams are retryable and fall in the
///   `InternalServerError` bucket (LiteLLM retries `APIConnectionError`; its `allowed_fails_policy`
///   counts them as internal server errors); they cool as [`FailureClass::Connection`], which the
///   actors treat like a 5xx.
/// - A 503 is its own bucket (`ServiceUnavailableError`), separate from other 5xx, for
///   `retry_policy` and `allowed_fails_policy` alike; both cool as [`FailureClass::Server`].
/// - 401 / 403 are retried only when the group has another deployment ([`Retry::IfGroupHasOthers`]).
/// - A 409 is retryable (LiteLLM's rule) though its bucket is `BadRequestError`.
/// - Client errors (400, 413, 422, content policy, context window) cool as
///   [`FailureClass::BadRequest`]: never, unless `BadRequestErrorAllowedFails` /
///   `ContentPolicyViolationErrorAllowedFails` opt in. A 404 from a wildcard deployment (the
///   client named the model) is a client error too: bucket `NotFoundError` for `retry_policy`, but
///   it cools as `BadRequest` in the `BadRequestError` bucket, so `NotFoundErrorAllowedFails`
///   never counts it. A 404 from a deployment with a fixed model cools at once (`NotFound`).
/// - The gateway's own timeout is retryable, bucket `TimeoutError`, class name `Timeout`.
/// - "No deployments available" is retryable (bucket `RateLimitError`) but no deployment failed,
///   so it never counts toward a cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub retry: Retry,
    /// The `retry_policy` bucket.
    pub bucket: ErrorClass,
    /// How it counts toward the deployment's cooldown; `None` when no deployment failed.
    pub cooldown: Option<Cooldown>,
    /// LiteLLM's exception class name.
    pub class_name: &'static str,
}

impl Classification {
    /// The classification of an upstream failure of `kind` with HTTP `status`, from a deployment
    /// that is a wildcard (`provider/*`, the client names the model) or not.
    pub fn upstream(kind: UpstreamErrorKind, status: u16, wildcard: bool) -> Self {
        use UpstreamErrorKind as K;
        let retry = match kind {
            K::RateLimit | K::Timeout | K::Connection | K::StreamInterrupted | K::Server => {
                Retry::Yes
            }
            K::Authentication | K::PermissionDenied => Retry::IfGroupHasOthers,
            K::BadRequest if status == 409 => Retry::Yes,
            K::BadRequest | K::ContextWindowExceeded | K::ContentPolicy | K::NotFound => Retry::No,
        };
        let bucket = match kind {
            K::RateLimit => ErrorClass::RateLimit,
            K::ContextWindowExceeded | K::BadRequest => ErrorClass::BadRequest,
            K::ContentPolicy => ErrorClass::ContentPolicyViolation,
            K::Authentication | K::PermissionDenied => ErrorClass::Authentication,
            K::NotFound => ErrorClass::NotFound,
            K::Timeout => ErrorClass::Timeout,
            K::Server if status == 503 => ErrorClass::ServiceUnavailable,
            K::Server | K::Connection | K::StreamInterrupted => ErrorClass::InternalServer,
        };
        let cooldown = match kind {
            K::NotFound if wildcard => Cooldown {
                class: FailureClass::BadRequest,
                bucket: ErrorClass::BadRequest,
            },
            _ => Cooldown {
                class: match kind {
                    K::RateLimit => FailureClass::RateLimit,
                    K::Authentication | K::PermissionDenied => FailureClass::Auth,
                    K::NotFound => FailureClass::NotFound,
                    K::Timeout => FailureClass::Timeout,
                    K::Connection | K::StreamInterrupted => FailureClass::Connection,
                    K::Server => FailureClass::Server,
                    K::BadRequest | K::ContextWindowExceeded | K::ContentPolicy => {
                        FailureClass::BadRequest
                    }
                },
                bucket,
            },
        };
        Self {
            retry,
            bucket,
            cooldown: Some(cooldown),
            class_name: kind.class_name(status),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    Authentication { message: String },

    /// The caller is known but may not do this (management API authorization).
    #[error("{message}")]
    Forbidden { message: String },

    /// A key, user or team spent its `max_budget` (status 400 unless configured otherwise).
    #[error("{message}")]
    BudgetExceeded { message: String, status: u16 },

    /// A key, user, team, end-user or gateway rate limit was crossed.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },

    /// The key may not use the requested model.
    #[error("{message}")]
    ModelAccessDenied { message: String },

    /// A management object that does not exist.
    #[error("{message}")]
    NotFound { message: String },

    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },

    #[error("Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key.")]
    UnknownModel { model: String },

    #[error("Request body is larger than the allowed {limit_mb} MB (general_settings.max_request_size_mb)")]
    PayloadTooLarge { limit_mb: u64 },

    #[error("Route not found: {path}")]
    RouteNotFound { path: String },

    #[error("No deployments available for selected model, model group '{model_group}': {reason}. Try again in {} s.", retry_after.as_secs_f64().ceil().max(1.0))]
    NoDeploymentsAvailable {
        model_group: String,
        reason: &'static str,
        retry_after: Duration,
    },

    /// The request is restricted to a region (its end user's `allowed_model_region`) and no
    /// deployment of the group is in it.
    #[error("No deployment of model group '{model_group}' is in region '{region}', the end user's allowed_model_region; the request was not sent to any other region. Give a deployment of the group `region_name: {region}`.")]
    NoDeploymentInRegion { model_group: String, region: String },

    #[error("{message}")]
    DeploymentMisconfigured { message: String },

    #[error("{message}")]
    Upstream {
        kind: UpstreamErrorKind,
        status: u16,
        message: String,
        /// The provider's own error code, when it gave a string one.
        code: Option<String>,
        param: Option<String>,
        retry_after: Option<Duration>,
    },

    #[error("Request timed out after {} s (model={model})", timeout.as_secs_f64())]
    Timeout { model: String, timeout: Duration },

    #[error("Service unavailable: {message}")]
    Unavailable { message: String },

    #[error("Internal error: {message}")]
    Internal { message: String },
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: Some(param.to_string()),
            code: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    /// The OpenAI error `type` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Authentication { .. } | Self::Forbidden { .. } => "auth_error",
            Self::ModelAccessDenied { .. } => "key_model_access_denied",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::NotFound { .. } => "not_found_error",
            Self::BadRequest { .. }
            | Self::UnknownModel { .. }
            | Self::PayloadTooLarge { .. }
            | Self::NoDeploymentInRegion { .. } => "invalid_request_error",
            Self::RouteNotFound { .. } => "not_found_error",
            Self::NoDeploymentsAvailable { .. } => "rate_limit_error",
            Self::DeploymentMisconfigured { .. } | Self::Internal { .. } => "internal_server_error",
            Self::Timeout { .. } => "timeout_error",
            Self::Unavailable { .. } => "service_unavailable_error",
            Self::Upstream { kind, status, .. } => match kind {
                UpstreamErrorKind::RateLimit => "rate_limit_error",
                UpstreamErrorKind::ContextWindowExceeded
                | UpstreamErrorKind::ContentPolicy
                | UpstreamErrorKind::BadRequest => "invalid_request_error",
                UpstreamErrorKind::Authentication => "authentication_error",
                UpstreamErrorKind::PermissionDenied => "permission_error",
                UpstreamErrorKind::NotFound => "not_found_error",
                UpstreamErrorKind::Timeout => "timeout_error",
                UpstreamErrorKind::Connection | UpstreamErrorKind::StreamInterrupted => {
                    "api_connection_error"
                }
                UpstreamErrorKind::Server if *status == 503 => "service_unavailable_error",
                UpstreamErrorKind::Server => "internal_server_error",
            },
        }
    }

    /// The envelope's `code`: always a string.
    pub fn code(&self) -> String {
        match self {
            Self::BadRequest {
                code: Some(code), ..
            } => (*code).to_string(),
            Self::Upstream {
                code: Some(code), ..
            } => code.clone(),
            Self::Upstream {
                kind: UpstreamErrorKind::ContextWindowExceeded,
                ..
            } => "context_length_exceeded".into(),
            Self::Upstream {
                kind: UpstreamErrorKind::ContentPolicy,
                ..
            } => "content_policy_violation".into(),
            _ => self.status_code().as_u16().to_string(),
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { param, .. } | Self::Upstream { param, .. } => param.as_deref(),
            Self::UnknownModel { .. } | Self::ModelAccessDenied { .. } => Some("model"),
            _ => None,
        }
    }

    /// The classification of a failed call (see [`Classification`]), `None` for errors that are
    /// no call's failure (auth, budgets, validation, …) and never reach a retry decision.
    /// `wildcard`: the deployment that failed is a wildcard (`provider/*`).
    pub fn classify(&self, wildcard: bool) -> Option<Classification> {
        match self {
            Self::Upstream { kind, status, .. } => {
                Some(Classification::upstream(*kind, *status, wildcard))
            }
            Self::Timeout { .. } => Some(Classification {
                retry: Retry::Yes,
                bucket: ErrorClass::Timeout,
                cooldown: Some(Cooldown {
                    class: FailureClass::Timeout,
                    bucket: ErrorClass::Timeout,
                }),
                class_name: "Timeout",
            }),
            Self::NoDeploymentsAvailable { .. } => Some(Classification {
                retry: Retry::Yes,
                bucket: ErrorClass::RateLimit,
                cooldown: None,
                class_name: "RateLimitError",
            }),
            _ => None,
        }
    }

    /// Whether another attempt (on another deployment, or later) could succeed, whatever the
    /// group: [`Retry::Yes`] of [`Self::classify`].
    pub fn is_retryable(&self) -> bool {
        self.classify(false).is_some_and(|c| c.retry == Retry::Yes)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::NoDeploymentsAvailable { retry_after, .. }
            | Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.error_type(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        let status = match self {
            Self::Authentication { .. } | Self::ModelAccessDenied { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::RateLimited { .. } => 429,
            Self::BudgetExceeded { status, .. } => *status,
            Self::NotFound { .. } => 404,
            Self::BadRequest { .. }
            | Self::UnknownModel { .. }
            | Self::NoDeploymentInRegion { .. } => 400,
            Self::PayloadTooLarge { .. } => 413,
            Self::RouteNotFound { .. } => 404,
            Self::NoDeploymentsAvailable { .. } => 429,
            Self::DeploymentMisconfigured { .. } | Self::Internal { .. } => 500,
            Self::Timeout { .. } => 408,
            Self::Unavailable { .. } => 503,
            Self::Upstream { status, .. } => *status,
        };
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(after) = self.retry_after() {
            response.insert_header((
                header::RETRY_AFTER,
                after.as_secs_f64().ceil().max(1.0).to_string(),
            ));
        }
        response.json(self.body())
    }
}

impl From<crate::store::StoreError> for GatewayError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            // The driver's words (and the database's address) go to the log, never to a client.
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                GatewayError::Unavailable {
                    message: "database unavailable (details in the gateway log); retry the request"
                        .into(),
                }
            }
            StoreError::Conflict(m) => GatewayError::bad_request(format!("already exists: {m}")),
            StoreError::Invalid { field, message } => GatewayError::bad_param(&field, message),
            StoreError::NotFound(message) => GatewayError::NotFound { message },
            StoreError::Stale => GatewayError::Unavailable {
                message: "the records kept changing; retry the request".into(),
            },
            StoreError::Config(m) => {
                tracing::error!(error = %m, "database configuration");
                GatewayError::internal("database configuration error (details in the gateway log)")
            }
            StoreError::Query(m) | StoreError::Corrupt(m) => {
                tracing::error!(error = %m, "database error");
                GatewayError::internal("database error (details in the gateway log)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_never_carry_the_databases_words() {
        use crate::store::StoreError;
        for e in [
            StoreError::Unavailable("connection refused: postgres://db.internal:5432".into()),
            StoreError::Config("bad sslrootcert /etc/secret.pem".into()),
            StoreError::Query("syntax error at or near \"users\"".into()),
            StoreError::Corrupt("invalid JSON in users.data".into()),
        ] {
            let g: GatewayError = e.into();
            let text = g.to_string();
            for raw in ["db.internal", "secret.pem", "syntax", "users"] {
                assert!(!text.contains(raw), "{text}");
            }
        }
        let g: GatewayError = StoreError::Conflict("a record with this id".into()).into();
        assert!(matches!(g, GatewayError::BadRequest { .. }), "{g:?}");
    }

    #[test]
    fn envelope_has_string_code_and_real_type() {
        let err = GatewayError::UnknownModel {
            model: "nope".into(),
        };
        let body = err.body();
        assert_eq!(body["error"]["code"], "400");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "model");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nope"));
    }

    #[test]
    fn upstream_context_window_keeps_its_code() {
        let err = GatewayError::Upstream {
            kind: UpstreamErrorKind::ContextWindowExceeded,
            status: 400,
            message: "too long".into(),
            code: None,
            param: Some("messages".into()),
            retry_after: None,
        };
        assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(err.code(), "context_length_exceeded");
        assert!(!err.is_retryable());
    }

    fn upstream(kind: UpstreamErrorKind, status: u16) -> GatewayError {
        GatewayError::Upstream {
            kind,
            status,
            message: "x".into(),
            code: None,
            param: None,
            retry_after: None,
        }
    }

    /// Every upstream failure kind, on a wildcard deployment or not, and the gateway's own
    /// timeout: retryable, cooldown (class, allowed_fails bucket), retry_policy bucket, class name.
    #[test]
    fn one_classification_table() {
        use ErrorClass as B;
        use FailureClass as F;
        use Retry::*;
        use UpstreamErrorKind as K;
        #[rustfmt::skip]
        let table: [(K, u16, Retry, B, F, B, &str); 15] = [
            (K::RateLimit, 429, Yes, B::RateLimit, F::RateLimit, B::RateLimit, "RateLimitError"),
            (K::ContextWindowExceeded, 400, No, B::BadRequest, F::BadRequest, B::BadRequest, "ContextWindowExceededError"),
            (K::ContentPolicy, 400, No, B::ContentPolicyViolation, F::BadRequest, B::ContentPolicyViolation, "ContentPolicyViolationError"),
            (K::Authentication, 401, IfGroupHasOthers, B::Authentication, F::Auth, B::Authentication, "AuthenticationError"),
            (K::PermissionDenied, 403, IfGroupHasOthers, B::Authentication, F::Auth, B::Authentication, "PermissionDeniedError"),
            (K::NotFound, 404, No, B::NotFound, F::NotFound, B::NotFound, "NotFoundError"),
            (K::BadRequest, 400, No, B::BadRequest, F::BadRequest, B::BadRequest, "BadRequestError"),
            (K::BadRequest, 409, Yes, B::BadRequest, F::BadRequest, B::BadRequest, "BadRequestError"),
            (K::BadRequest, 413, No, B::BadRequest, F::BadRequest, B::BadRequest, "BadRequestError"),
            (K::BadRequest, 422, No, B::BadRequest, F::BadRequest, B::BadRequest, "BadRequestError"),
            (K::Timeout, 408, Yes, B::Timeout, F::Timeout, B::Timeout, "Timeout"),
            (K::Connection, 502, Yes, B::InternalServer, F::Connection, B::InternalServer, "APIConnectionError"),
            (K::Server, 500, Yes, B::InternalServer, F::Server, B::InternalServer, "InternalServerError"),
            (K::Server, 503, Yes, B::ServiceUnavailable, F::Server, B::ServiceUnavailable, "ServiceUnavailableError"),
            (K::StreamInterrupted, 500, Yes, B::InternalServer, F::Connection, B::InternalServer, "APIConnectionError"),
        ];
        for (kind, status, retry, bucket, class, cooldown_bucket, name) in table {
            for wildcard in [false, true] {
                let c = upstream(kind, status).classify(wildcard).unwrap();
                let case = format!("{kind:?} {status} wildcard={wildcard}");
                assert_eq!(c.retry, retry, "{case}");
                assert_eq!(c.bucket, bucket, "{case}");
                assert_eq!(c.class_name, name, "{case}");
                assert!(!c.bucket.name().is_empty(), "{case}");
                assert_eq!(
                    upstream(kind, status).is_retryable(),
                    retry == Yes,
                    "{case}"
                );
                let cooldown = c.cooldown.unwrap();
                if kind == K::NotFound && wildcard {
                    // The client named the model: its fault, never the deployment's.
                    assert_eq!(cooldown.class, F::BadRequest, "{case}");
                    assert_eq!(cooldown.bucket, B::BadRequest, "{case}");
                } else {
                    assert_eq!(cooldown.class, class, "{case}");
                    assert_eq!(cooldown.bucket, cooldown_bucket, "{case}");
                }
            }
        }
        // Every kind is in the table.
        for kind in [
            K::RateLimit,
            K::ContextWindowExceeded,
            K::ContentPolicy,
            K::Authentication,
            K::PermissionDenied,
            K::NotFound,
            K::BadRequest,
            K::Timeout,
            K::Connection,
            K::Server,
            K::StreamInterrupted,
        ] {
            assert!(table.iter().any(|row| row.0 == kind), "{kind:?}");
        }

        // The gateway's own timeout, on either kind of deployment.
        let timeout = GatewayError::Timeout {
            model: "m".into(),
            timeout: Duration::from_secs(1),
        };
        for wildcard in [false, true] {
            let c = timeout.classify(wildcard).unwrap();
            assert_eq!(c.retry, Yes);
            assert_eq!(c.bucket, B::Timeout);
            assert_eq!(
                c.cooldown,
                Some(Cooldown {
                    class: F::Timeout,
                    bucket: B::Timeout
                })
            );
            assert_eq!(c.class_name, "Timeout");
        }
        assert!(timeout.is_retryable());

        // No deployment failed: retryable, never a cooldown.
        let none = GatewayError::NoDeploymentsAvailable {
            model_group: "g".into(),
            reason: "r",
            retry_after: Duration::from_secs(1),
        };
        let c = none.classify(false).unwrap();
        assert_eq!((c.retry, c.bucket, c.cooldown), (Yes, B::RateLimit, None));
        // Not a call's failure at all.
        assert_eq!(GatewayError::bad_request("x").classify(false), None);
        assert!(!GatewayError::bad_request("x").is_retryable());
    }

    #[test]
    fn policy_keys_name_every_bucket_once() {
        for (bucket, name) in ErrorClass::ALL {
            assert_eq!(bucket.name(), name);
            for suffix in ["Retries", "AllowedFails"] {
                assert_eq!(
                    ErrorClass::from_policy_key(&format!("{name}{suffix}"), suffix),
                    Some(bucket)
                );
            }
        }
        assert_eq!(
            ErrorClass::from_policy_key("BadGatewayErrorAllowedFails", "AllowedFails"),
            None
        );
        assert_eq!(
            ErrorClass::from_policy_key("RateLimitError", "Retries"),
            None
        );
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let err = GatewayError::NoDeploymentsAvailable {
            model_group: "g".into(),
            reason: "every deployment is cooling down",
            retry_after: Duration::from_millis(1500),
        };
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );
    }

    /// How a failed call counts against its deployment, as [`GatewayError::classify`] decides:
    /// errors the client caused (a bad request, content policy, context window, and a 404 for a model
    /// the client named on a wildcard deployment) are [`FailureClass::BadRequest`], which never cools a
    /// deployment shared by every tenant; a 404 from a deployment with a fixed model is the operator's
    /// misconfiguration and counts as [`FailureClass::NotFound`].
    fn failure_class(err: &GatewayError, wildcard: bool) -> Option<FailureClass> {
        Some(err.classify(wildcard)?.cooldown?.class)
    }

    #[test]
    fn client_errors_never_count_against_a_deployment() {
        use UpstreamErrorKind as K;
        for (kind, status) in [
            (K::BadRequest, 400),
            (K::BadRequest, 413),
            (K::BadRequest, 422),
            (K::ContentPolicy, 400),
            (K::ContextWindowExceeded, 400),
        ] {
            for wildcard in [false, true] {
                let class = failure_class(&upstream(kind, status), wildcard);
                assert_eq!(class, Some(FailureClass::BadRequest), "{kind:?} {status}");
                assert!(!class.unwrap().counts_against_deployment());
            }
        }
        // A 404 for a model the client named on a wildcard is the client's; on a deployment with
        // a fixed model it is the operator's (LiteLLM cools it down).
        let not_found = upstream(K::NotFound, 404);
        assert_eq!(
            failure_class(&not_found, true),
            Some(FailureClass::BadRequest)
        );
        assert_eq!(
            failure_class(&not_found, false),
            Some(FailureClass::NotFound)
        );
        // The deployment's own failures still count.
        for (kind, status, class) in [
            (K::RateLimit, 429, FailureClass::RateLimit),
            (K::Server, 500, FailureClass::Server),
            (K::Authentication, 401, FailureClass::Auth),
            (K::Connection, 502, FailureClass::Connection),
        ] {
            assert_eq!(failure_class(&upstream(kind, status), true), Some(class));
        }
    }
}
