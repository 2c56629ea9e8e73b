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
            Self::BadRequest { .. } | Self::UnknownModel { .. } | Self::PayloadTooLarge { .. } => {
                "invalid_request_error"
            }
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

    /// Whether another attempt (on another deployment, or later) could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream { kind, .. } => matches!(
                kind,
                UpstreamErrorKind::RateLimit
                    | UpstreamErrorKind::Timeout
                    | UpstreamErrorKind::Connection
                    | UpstreamErrorKind::Server
            ),
            Self::Timeout { .. } | Self::NoDeploymentsAvailable { .. } => true,
            _ => false,
        }
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
            Self::BadRequest { .. } | Self::UnknownModel { .. } => 400,
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
            StoreError::Unavailable(m) => GatewayError::Unavailable {
                message: format!("database unavailable: {m}"),
            },
            StoreError::Conflict(m) => GatewayError::bad_request(format!("already exists: {m}")),
            StoreError::Invalid { field, message } => GatewayError::bad_param(&field, message),
            StoreError::NotFound(message) => GatewayError::NotFound { message },
            StoreError::Stale => GatewayError::Unavailable {
                message: "the records kept changing; retry the request".into(),
            },
            StoreError::Config(m) => GatewayError::internal(format!("database configuration: {m}")),
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
}
