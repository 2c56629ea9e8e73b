//! Timestamps as the API shows them: stored as unix milliseconds, shown as ISO 8601 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-11-25T12:00:00.000Z` for unix milliseconds.
pub fn iso8601(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Now, as ISO 8601.
pub fn now_iso() -> String {
    iso8601(now_ms())
}

/// Parse an ISO 8601 / RFC 3339 timestamp (or a bare `YYYY-MM-DD`, as midnight UTC) to unix ms.
pub fn parse(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_764_072_000_000), "2025-11-25T12:00:00.000Z");
        assert_eq!(parse("2025-11-25T12:00:00Z"), Some(1_764_072_000_000));
        assert_eq!(parse("2025-11-25"), Some(1_764_028_800_000));
        assert_eq!(parse("yesterday"), None);
    }
}
