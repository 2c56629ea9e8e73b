//! Upstream URLs: a path joined onto a base keeps the base's query string, and every value a URL
//! takes from a request or a setting (model names, deployment names, projects) is percent-encoded,
//! so it names one path segment and nothing more.

/// A base URL split into the part a path is joined onto (no trailing `/`, no fragment) and its
/// query string (without `?`; `None` when absent or empty).
pub fn split_query(base: &str) -> (&str, Option<&str>) {
    let base = base.split('#').next().unwrap_or("");
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q).filter(|q| !q.is_empty())),
        None => (base, None),
    };
    (head.trim_end_matches('/'), query)
}

/// `url` with `query` added: after the URL's own query (`&`) or as its query (`?`).
pub fn with_query(url: String, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        None => url,
        Some(q) if url.contains('?') => format!("{url}&{q}"),
        Some(q) => format!("{url}?{q}"),
    }
}

/// `path` (starting with `/`, maybe with its own query) joined onto the path of `base`, keeping
/// the base's query: `https://h/v1?x=1` + `/chat/completions` → `https://h/v1/chat/completions?x=1`.
pub fn join(base: &str, path: &str) -> String {
    let (head, query) = split_query(base);
    with_query(format!("{head}{path}"), query)
}

/// Percent-encode `s` as one path segment (or query value): everything but the RFC 3986
/// unreserved characters `A-Z a-z 0-9 - _ . ~` becomes `%XX`, so `/`, `?`, `#`, `&`, `%` and `:`
/// cannot change which resource is addressed.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encode each `/`-separated part of `s` (for names that are paths by design, such as
/// Hugging Face's `org/model`).
pub fn segments(s: &str) -> String {
    s.split('/').map(segment).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_base_query_after_the_path() {
        assert_eq!(
            join("https://h/v1?x=1", "/chat/completions"),
            "https://h/v1/chat/completions?x=1"
        );
        assert_eq!(
            join("https://h/v1/?x=1&y=2", "/embeddings"),
            "https://h/v1/embeddings?x=1&y=2"
        );
        assert_eq!(join("https://h/v1/", "/chat"), "https://h/v1/chat");
        assert_eq!(join("https://h/v1?", "/chat"), "https://h/v1/chat");
        assert_eq!(join("https://h/v1#frag", "/chat"), "https://h/v1/chat");
        assert_eq!(
            join("https://h?sig=a%2Fb", "/x:generate?alt=sse"),
            "https://h/x:generate?alt=sse&sig=a%2Fb"
        );
    }

    #[test]
    fn split_and_add_queries() {
        assert_eq!(
            split_query("http://h/a/?q=1#f"),
            ("http://h/a", Some("q=1"))
        );
        assert_eq!(split_query("http://h/a"), ("http://h/a", None));
        assert_eq!(with_query("http://h/a".into(), None), "http://h/a");
        assert_eq!(
            with_query("http://h/a".into(), Some("k=v")),
            "http://h/a?k=v"
        );
        assert_eq!(
            with_query("http://h/a?api-version=1".into(), Some("k=v")),
            "http://h/a?api-version=1&k=v"
        );
    }

    #[test]
    fn client_values_become_one_segment() {
        assert_eq!(segment("gpt-4o_mini.v2~x"), "gpt-4o_mini.v2~x");
        assert_eq!(
            segment("x/embeddings?api-version=evil&x=#"),
            "x%2Fembeddings%3Fapi-version%3Devil%26x%3D%23"
        );
        assert_eq!(segment("../admin"), "..%2Fadmin");
        assert_eq!(segment("a%2Fb"), "a%252Fb");
        assert_eq!(segment("v1:0 é"), "v1%3A0%20%C3%A9");
        assert_eq!(segments("BAAI/bge small?x"), "BAAI/bge%20small%3Fx");
    }
}
