//! `general_settings.pass_through_endpoints`, as in LiteLLM: operator-defined routes that relay
//! requests to a fixed target.
//!
//! ```yaml
//! general_settings:
//!   pass_through_endpoints:
//!     - path: /v1/rerank                      # the gateway's route
//!       target: https://api.cohere.com/v1/rerank
//!       headers: {Authorization: "bearer os.environ/COHERE_API_KEY"}
//!       auth: true                            # requires a virtual key (never forwarded)
//!       forward_headers: false                # also send the client's own headers
//!       include_subpath: false                # also serve /v1/rerank/…
//! ```
//!
//! Entries are checked at start-up ([`Endpoints::from_config`]): a path that does not start with
//! `/`, holds a route pattern or shadows a built-in route, a target that is not an http(s) URL, a
//! header without a value: each stops the gateway with a message naming the entry.

use serde_json::Value;

use crate::config::{truthy, ProxyConfig};
use crate::secret::Secret;

/// One configured pass-through route.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The gateway's path (`/v1/rerank`), without a trailing `/`.
    pub path: String,
    /// Where requests go: an http(s) URL, without a trailing `/`.
    pub target: String,
    /// Headers sent to the target (values may come from `os.environ/NAME`).
    pub headers: Vec<(String, Secret)>,
    /// A virtual key is required (LiteLLM's `auth: true`); without it the route is open.
    pub auth: bool,
    /// The client's own headers are sent too (credentials and hop-by-hop headers excepted).
    pub forward_headers: bool,
    /// Sub-paths of `path` are served too, appended to `target`.
    pub include_subpath: bool,
}

impl Endpoint {
    /// The route patterns this entry registers: its path, and with `include_subpath` every path
    /// under it.
    pub fn patterns(&self) -> Vec<String> {
        let mut out = vec![self.path.clone()];
        if self.include_subpath {
            out.push(format!("{}/{{subpath:.*}}", self.path));
        }
        out
    }

    /// The target URL of a request to `path` (the raw request path) with `query`.
    pub fn url(&self, path: &str, query: &str) -> String {
        let sub = if self.include_subpath {
            path.strip_prefix(self.path.as_str()).unwrap_or("")
        } else {
            ""
        };
        let url = format!("{}{sub}", self.target);
        crate::providers::urls::with_query(url, Some(query))
    }
}

/// Every configured pass-through route.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub list: Vec<Endpoint>,
}

impl Endpoints {
    /// Read and check `general_settings.pass_through_endpoints`. `builtin` tells whether a path
    /// is served by one of the gateway's own routes.
    pub fn from_config(
        config: &ProxyConfig,
        builtin: &dyn Fn(&str) -> bool,
    ) -> Result<Endpoints, String> {
        let Some(raw) = config.general_settings.get("pass_through_endpoints") else {
            return Ok(Endpoints::default());
        };
        let items = match raw {
            Value::Null => return Ok(Endpoints::default()),
            Value::Array(items) => items,
            _ => {
                return Err(
                    "general_settings.pass_through_endpoints must be a list of {path, target, headers, auth, forward_headers, include_subpath}".into(),
                )
            }
        };
        let mut list: Vec<Endpoint> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("general_settings.pass_through_endpoints[{i}]");
            let endpoint = parse(item, builtin).map_err(|e| format!("{at}: {e}"))?;
            if let Some(other) = list.iter().find(|e| e.path == endpoint.path) {
                return Err(format!(
                    "{at}: path {} is configured twice (also for {})",
                    endpoint.path,
                    crate::secret::display_url(&other.target)
                ));
            }
            list.push(endpoint);
        }
        Ok(Endpoints { list })
    }

    /// The entry registered with route pattern `pattern`.
    pub fn by_pattern(&self, pattern: &str) -> Option<&Endpoint> {
        self.list
            .iter()
            .find(|e| e.patterns().iter().any(|p| p == pattern))
    }
}

fn parse(item: &Value, builtin: &dyn Fn(&str) -> bool) -> Result<Endpoint, String> {
    let o = item
        .as_object()
        .ok_or("each entry is a mapping with at least `path` and `target`")?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::trim);
    let path = text("path").ok_or("`path` is missing (the gateway route, such as /v1/rerank)")?;
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!(
            "path {path:?} must start with '/' and name a route"
        ));
    }
    if let Some(c) = path.chars().find(|c| {
        c.is_whitespace() || c.is_control() || matches!(*c, '{' | '}' | '?' | '#' | '*' | '\\')
    }) {
        return Err(format!("path {path:?} must not contain {c:?}"));
    }
    if path.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!(
            "path {path:?} must not contain '.' or '..' segments"
        ));
    }
    let path = path.trim_end_matches('/').to_string();
    if builtin(&path) || builtin(&format!("{path}/")) {
        return Err(format!(
            "path {path} is a route of the gateway itself; pick a path that no built-in route serves"
        ));
    }
    let target = text("target").ok_or("`target` is missing (the URL requests are sent to)")?;
    let lower = target.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "target {} must be an http:// or https:// URL",
                crate::secret::display_url(target)
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!(
            "target {} names no host",
            crate::secret::display_url(target)
        ));
    }
    let mut headers = Vec::new();
    match o.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, value) in h {
                let value = match value {
                    Value::String(s) => header_value(s).map_err(|var| {
                        format!("header {name}: environment variable {var} (os.environ/{var}) is not set")
                    })?,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => {
                        return Err(format!(
                            "header {name} has no value (an os.environ/ variable that is not set?)"
                        ))
                    }
                    _ => return Err(format!("header {name} must be a string")),
                };
                if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || actix_web::http::header::HeaderValue::from_str(&value).is_err()
                {
                    return Err(format!("header {name} is not a valid HTTP header"));
                }
                headers.push((name.to_ascii_lowercase(), Secret::new(value)));
            }
        }
        Some(_) => return Err("`headers` must be a mapping of header names to values".into()),
    }
    let flag = |k: &str| o.get(k).is_some_and(truthy);
    Ok(Endpoint {
        path,
        target: target.trim_end_matches('/').to_string(),
        headers,
        auth: flag("auth"),
        forward_headers: flag("forward_headers"),
        include_subpath: flag("include_subpath"),
    })
}

/// A header value with each `os.environ/NAME` word replaced by the variable's value, as LiteLLM
/// does (`Authorization: "bearer os.environ/COHERE_API_KEY"`; a whole value that was a reference
/// is resolved when the config is read). `Err(NAME)` for an unset variable.
fn header_value(value: &str) -> Result<String, String> {
    if !value.contains(ENV_PREFIX) {
        return Ok(value.to_string());
    }
    let words: Result<Vec<String>, String> = value
        .split(' ')
        .map(|word| match word.strip_prefix(ENV_PREFIX) {
            Some(var) => crate::config::env_value(var).ok_or_else(|| var.to_string()),
            None => Ok(word.to_string()),
        })
        .collect();
    Ok(words?.join(" "))
}

const ENV_PREFIX: &str = "os.environ/";

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(yaml: &str) -> Result<Endpoints, String> {
        let config: ProxyConfig = ProxyConfig::parse(
            &format!("general_settings:\n  pass_through_endpoints:\n{yaml}"),
            "test",
        )
        .expect("config");
        Endpoints::from_config(&config, &|p| {
            p == "/v1/chat/completions" || p.starts_with("/key/")
        })
    }

    #[test]
    fn entries_are_read_with_their_flags_and_headers() {
        let e = endpoints(
            "    - path: /v1/rerank/\n      target: https://api.cohere.com/v1/rerank\n      headers: {Authorization: bearer co-1, content-type: application/json}\n      auth: true\n      include_subpath: true\n",
        )
        .expect("valid");
        let e = &e.list[0];
        assert_eq!(e.path, "/v1/rerank");
        assert!(e.auth && e.include_subpath && !e.forward_headers);
        assert_eq!(e.headers[0].0, "authorization");
        assert_eq!(e.headers[0].1.expose(), "bearer co-1");
        assert_eq!(
            e.url("/v1/rerank/extra", "a=1"),
            "https://api.cohere.com/v1/rerank/extra?a=1"
        );
        assert_eq!(e.patterns(), ["/v1/rerank", "/v1/rerank/{subpath:.*}"]);
    }

    #[test]
    fn environment_references_inside_header_values_resolve() {
        std::env::set_var("TOLLGATE_PT_TEST_KEY", "co-secret");
        assert_eq!(
            header_value("bearer os.environ/TOLLGATE_PT_TEST_KEY").unwrap(),
            "bearer co-secret"
        );
        assert_eq!(header_value("plain").unwrap(), "plain");
        assert_eq!(
            header_value("bearer os.environ/TOLLGATE_PT_TEST_UNSET").unwrap_err(),
            "TOLLGATE_PT_TEST_UNSET"
        );
    }

    #[test]
    fn bad_entries_stop_start_up_with_the_entry_named() {
        let cases = [
            ("    - path: v1/x\n      target: https://h\n", "must start with '/'"),
            ("    - path: /v1/chat/completions\n      target: https://h\n", "route of the gateway"),
            ("    - path: /a/{b}\n      target: https://h\n", "must not contain"),
            ("    - path: /a\n      target: ftp://h/x\n", "http:// or https://"),
            ("    - path: /a\n      target: 'https://'\n", "names no host"),
            ("    - path: /a\n", "`target` is missing"),
            ("    - path: /a\n      target: https://h\n      headers: {x-k: null}\n", "has no value"),
            ("    - path: /a\n      target: https://h\n    - path: /a\n      target: https://i\n", "configured twice"),
        ];
        for (yaml, expected) in cases {
            let err = endpoints(yaml).expect_err(yaml);
            assert!(err.contains("pass_through_endpoints["), "{err}");
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }
}
