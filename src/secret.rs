//! Secrets: values that must never reach a log line, an error body or an admin response.

use std::fmt;

/// A secret string. `Debug` and `Display` print a mask; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

/// `sk-...abcd` for long values, `****` for short ones: enough to tell keys apart, never enough to use.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "****".into();
    }
    let prefix: String = chars.iter().take(3).collect();
    let suffix: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}...{suffix}")
}

/// Whether a JSON/YAML key names a secret (api keys, tokens, passwords, credentials).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const MARKERS: [&str; 10] = [
        "api_key",
        "apikey",
        "secret",
        "token",
        "password",
        "authorization",
        "credential",
        "master_key",
        "private_key",
        "access_key",
    ];
    MARKERS.iter().any(|m| k.contains(m))
        || k == "key"
        || k == "database_url"
        || k.ends_with("_url") && k.contains("redis")
}

/// A copy of `value` as it may be shown (API bodies, logs): every secret-named field masked, every
/// header map (`extra_headers`, `headers`…) with all its values masked, and every URL shown by
/// [`display_url`] (no userinfo, query values masked), at any depth.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(match v.as_str() {
                            Some(s) => mask(s),
                            None => "****".into(),
                        })
                    } else if is_header_map_key(k) {
                        mask_header_json(v)
                    } else {
                        redact_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::String(s) if s.contains("://") => Value::String(display_url(s)),
        other => other.clone(),
    }
}

/// Whether a field holds HTTP headers (`extra_headers`, `headers`): any header may carry a
/// credential, whatever its name, so all values are masked.
fn is_header_map_key(key: &str) -> bool {
    key.to_ascii_lowercase().ends_with("headers")
}

fn mask_header_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = match v {
                        Value::Null => Value::Null,
                        Value::String(s) => Value::String(mask(s)),
                        _ => Value::String("****".into()),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Null => Value::Null,
        Value::String(s) => Value::String(mask(s)),
        _ => Value::String("****".into()),
    }
}

/// Header pairs as they may be shown: names kept, every value masked.
pub fn mask_headers<'a, K: AsRef<str> + 'a, V: AsRef<str> + 'a>(
    headers: impl IntoIterator<Item = &'a (K, V)>,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), mask(v.as_ref())))
        .collect()
}

/// A URL as it may be shown (response headers, metrics labels, API bodies, logs): without the
/// userinfo (`user:password@`), without the fragment, and with every query value masked (names
/// kept: `?key=****&api-version=****`). The path is shown as is. Text that is not an absolute URL
/// is returned unchanged.
pub fn display_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // Everything up to the last `@` before the query is userinfo, even when a password holds a
    // raw `/` (such a URL is malformed, but its password must not show).
    let after_userinfo = before_query.rsplit('@').next().unwrap_or(before_query);
    let authority_end = after_userinfo.find('/').unwrap_or(after_userinfo.len());
    let (host, path) = after_userinfo.split_at(authority_end);
    // A port that is not a number is a password cut by a raw `?` or `#`: show no authority.
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let port_ok = match host.strip_prefix('[') {
        // An IPv6 literal: `[…]` or `[…]:port`.
        Some(v6) => v6
            .split_once(']')
            .is_some_and(|(_, rest)| rest.is_empty() || rest.strip_prefix(':').is_some_and(digits)),
        None => host.split_once(':').is_none_or(|(_, port)| digits(port)),
    };
    let host = if port_ok { host } else { "****" };
    let mut out = format!("{scheme}{host}{path}");
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        let masked: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=****"),
                None if pair.is_empty() => String::new(),
                None => "****".to_string(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    }
    out
}

/// The secret parts of a URL: its userinfo and its query values (what [`display_url`] hides), so
/// text that may echo the URL can be scrubbed of them.
pub fn url_secrets(url: &str) -> Vec<String> {
    url_secrets_with_query(url, None)
}

/// [`url_secrets`] of a base URL and a query string kept beside it (a deployment's `base_query`).
pub fn url_secrets_with_query(url: &str, extra_query: Option<&str>) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q),
        None => (rest, ""),
    };
    let mut out = Vec::new();
    if let Some((userinfo, _)) = before_query.rsplit_once('@') {
        out.push(userinfo.to_string());
        out.extend(userinfo.split(':').map(str::to_string));
    }
    for pair in query
        .split('&')
        .chain(extra_query.into_iter().flat_map(|q| q.split('&')))
    {
        let value = pair.split_once('=').map_or(pair, |(_, v)| v);
        out.push(value.to_string());
    }
    // Longest first, so a whole userinfo goes before its parts; short values are not secrets.
    out.retain(|s| s.len() >= 6);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Remove every occurrence of each of `secrets` from `text` (for upstream messages that echo a
/// URL holding credentials).
pub fn scrub_all(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "****");
        }
    }
    out
}

/// Remove every occurrence of `secret` from `text` (upstream error messages sometimes echo keys).
pub fn scrub(text: &str, secret: Option<&Secret>) -> String {
    match secret {
        Some(s) if s.expose().len() >= 6 && text.contains(s.expose()) => {
            text.replace(s.expose(), &mask(s.expose()))
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_secrets_are_scrubbed_from_echoed_text() {
        let secrets =
            url_secrets("https://bob:hunter2-pass@llm.example/v1?api-key=abcdef123456&v=1");
        let text = "upstream said: GET https://bob:hunter2-pass@llm.example/v1?api-key=abcdef123456&v=1 failed (user bob, password hunter2-pass)";
        let scrubbed = scrub_all(text, &secrets);
        assert!(!scrubbed.contains("hunter2-pass"), "{scrubbed}");
        assert!(!scrubbed.contains("abcdef123456"), "{scrubbed}");
        assert!(scrubbed.contains("llm.example/v1"), "{scrubbed}");
        assert!(url_secrets("https://llm.example/v1").is_empty());
        assert_eq!(
            url_secrets_with_query(
                "https://llm.example/v1?a=secret-one",
                Some("key=secret-two2")
            ),
            ["secret-two2", "secret-one"]
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-abcdefghijklmnop1234");
        assert_eq!(format!("{s:?}"), "sk-...1234");
        assert_eq!(format!("{}", Secret::new("short")), "****");
    }

    #[test]
    fn redacts_nested_secret_fields() {
        let v = json!({"model_list": [{"litellm_params": {"api_key": "sk-verysecretvalue99", "model": "gpt-4o"}}],
                       "general_settings": {"master_key": "sk-1234"}});
        let r = redact_json(&v);
        assert_eq!(
            r["model_list"][0]["litellm_params"]["api_key"],
            "sk-...ue99"
        );
        assert_eq!(r["model_list"][0]["litellm_params"]["model"], "gpt-4o");
        assert_eq!(r["general_settings"]["master_key"], "****");
    }

    #[test]
    fn scrub_removes_echoed_key() {
        let key = Secret::new("sk-live-0123456789");
        let out = scrub(
            "Incorrect API key provided: sk-live-0123456789.",
            Some(&key),
        );
        assert!(!out.contains("0123456789"));
    }

    #[test]
    fn urls_are_shown_without_userinfo_query_values_or_fragment() {
        assert_eq!(
            display_url(
                "https://alice:pa55word@example.com:8443/v1/x?key=s3cret&api-version=2024#frag"
            ),
            "https://example.com:8443/v1/x?key=****&api-version=****"
        );
        assert_eq!(display_url("http://token@h?sig=abc"), "http://h?sig=****");
        // Malformed userinfo (raw `/`, `?` or `#` in the password) never shows the password.
        assert_eq!(display_url("http://u:pa/ss@h/v1"), "http://h/v1");
        assert_eq!(display_url("http://u:p?ss@h/v1"), "http://****?****");
        assert_eq!(display_url("http://u:p#ss@h/v1"), "http://****");
        assert_eq!(display_url("http://[::1]:8080/v1"), "http://[::1]:8080/v1");
        assert_eq!(display_url("http://u:p@[::1]/v1"), "http://[::1]/v1");
        assert_eq!(display_url("http://h:1/v1"), "http://h:1/v1");
        assert_eq!(display_url("https://h/v1?"), "https://h/v1");
        assert_eq!(display_url("https://h/v1?flag"), "https://h/v1?****");
        assert_eq!(display_url("not a url"), "not a url");
    }

    #[test]
    fn header_maps_show_names_and_masked_values() {
        let v = json!({"litellm_params": {
            "extra_headers": {"Authorization": "Bearer upstream-bearer-secret", "X-My-Thing": "short"},
            "headers": {"X-Custom": "custom-header-secret-value"},
            "api_base": "https://user:hunter2hunter2@h/v1?api-key=qs-secret-1",
            "aws_secret_access_key": "aws-secret-value-123",
            "vertex_credentials": {"private_key": "-----BEGIN"},
            "model": "azure/gpt"}});
        let shown = redact_json(&v).to_string();
        for secret in [
            "upstream-bearer-secret",
            "short",
            "custom-header-secret-value",
            "hunter2",
            "qs-secret-1",
            "aws-secret-value-123",
            "BEGIN",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let r = redact_json(&v);
        let p = &r["litellm_params"];
        assert_eq!(p["extra_headers"]["X-My-Thing"], "****");
        assert_eq!(p["api_base"], "https://h/v1?api-key=****");
        assert_eq!(p["model"], "azure/gpt");
        let pairs = vec![("x-my-token", "tok-abcdefghijkl"), ("content-type", "json")];
        assert_eq!(
            mask_headers(&pairs),
            vec![
                ("x-my-token".to_string(), "tok...ijkl".to_string()),
                ("content-type".to_string(), "****".to_string())
            ]
        );
    }
}
