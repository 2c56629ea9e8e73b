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

/// A copy of `value` with every secret-named field masked, at any depth (for logs).
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
                    } else {
                        redact_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
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
}
