//! Anthropic's Messages API errors on the wire.

/// Anthropic's error table on the wire: HTTP status ↔ `error.type`, as Anthropic documents it
/// (docs.claude.com/en/api/errors). The one table the gateway's adapter (reading Anthropic's
/// errors), its inbound Messages API (writing them) and the mock provider (emulating Anthropic)
/// share.
pub const ERROR_TYPES: [(u16, &str); 10] = [
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (403, "permission_error"),
    (404, "not_found_error"),
    (413, "request_too_large"),
    (429, "rate_limit_error"),
    (500, "api_error"),
    (504, "timeout_error"),
    (529, "overloaded_error"),
];

/// Anthropic's `error.type` for an HTTP status. The documented statuses take their documented
/// type; two statuses the gateway itself answers with are decided here:
/// - 408 (the gateway's or the provider's timeout) → `timeout_error`, Anthropic's type for a
///   request that timed out (it sends it as 504);
/// - 503 → `overloaded_error`: the gateway answers an Anthropic 529 with 503 (what OpenAI clients
///   know as service unavailable), so a 503 goes back to Anthropic clients as overloaded.
///
/// Any other 4xx is `invalid_request_error`, any other status `api_error`.
pub fn error_type_for_status(status: u16) -> &'static str {
    if let Some((_, kind)) = ERROR_TYPES.iter().find(|(s, _)| *s == status) {
        return kind;
    }
    match status {
        408 => "timeout_error",
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The HTTP status Anthropic documents for an `error.type` (a stream `error` event carries the
/// type but no status).
pub fn status_for_error_type(kind: &str) -> Option<u16> {
    ERROR_TYPES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(status, _)| *status)
}
