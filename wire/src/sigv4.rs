//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for request headers, as Bedrock and S3 need it.
//!
//! Only what a JSON `POST` to Bedrock needs: the signed headers are given explicitly, the payload
//! is hashed whole, and the canonical URI is the request's (already percent-encoded) path encoded
//! once more, the rule for every service but S3. A model id such as
//! `anthropic.claude-3-5-sonnet-20240620-v1:0` is sent as `…-v1%3A0` and signed as `…-v1%253A0`;
//! signing the singly encoded path is the classic `InvalidSignatureException`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Credentials to sign with. The secret never leaves this struct except through HMAC.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Percent-encode `s` as SigV4 does (RFC 3986: everything but `A-Z a-z 0-9 - _ . ~` becomes
/// `%XX`, upper-case hex); `/` is kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical URI of a request whose path is already percent-encoded on the wire: each byte
/// outside the unreserved set (including the `%` of existing escapes) is encoded again.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    uri_encode(path, true)
}

/// The canonical query string: `name=value` pairs sorted by name, then value. The pairs are taken
/// as they appear on the wire (already encoded).
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The derived key: HMAC chain `"AWS4"+secret` → date → region → service → `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// What to sign: one request's parts, as they go on the wire.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    /// The headers to sign (any case, any order; values are trimmed and inner spaces folded).
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body.
    pub payload_hash: &'a str,
}

/// A computed signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `content-type;host;x-amz-date`…
    pub signed_headers: String,
    /// Hex signature.
    pub signature: String,
    /// `<date>/<region>/<service>/aws4_request`.
    pub scope: String,
}

impl Signature {
    /// The `Authorization` header value.
    pub fn authorization(&self, access_key_id: &str) -> String {
        format!(
            "{ALGORITHM} Credential={access_key_id}/{}, SignedHeaders={}, Signature={}",
            self.scope, self.signed_headers, self.signature
        )
    }
}

/// The canonical request (step 1 of SigV4), and the signed-headers list it names.
pub fn canonical_request(req: &Request<'_>) -> (String, String) {
    canonical_request_for(req, &canonical_uri(req.path))
}

/// The canonical request with `uri` as its canonical URI.
fn canonical_request_for(req: &Request<'_>, uri: &str) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    // Repeated headers are joined with commas, in order.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == k => {
                joined.push(',');
                joined.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.payload_hash
    );
    (canonical, signed_headers)
}

/// Sign `req` at `amz_date` (`YYYYMMDD'T'HHMMSS'Z'`) for `region` and `service`.
pub fn sign(
    req: &Request<'_>,
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
) -> Signature {
    let (canonical, signed_headers) = canonical_request(req);
    finish(canonical, signed_headers, secret, amz_date, region, service)
}

/// Sign `req` for S3 (service `s3`): S3's canonical URI is the path as sent, encoded once (the
/// one service whose path is not encoded again). Object keys should be sent with
/// [`uri_encode`]`(key, true)`. The payload hash must also be sent as `x-amz-content-sha256`
/// (and signed).
pub fn sign_s3(req: &Request<'_>, secret: &str, amz_date: &str, region: &str) -> Signature {
    let uri = if req.path.is_empty() { "/" } else { req.path };
    let (canonical, signed_headers) = canonical_request_for(req, uri);
    finish(canonical, signed_headers, secret, amz_date, region, "s3")
}

fn finish(
    canonical: String,
    signed_headers: String,
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
) -> Signature {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = signing_key(secret, date, region, service);
    Signature {
        signed_headers,
        signature: hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())),
        scope,
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse an `Authorization` header written by [`Signature::authorization`] (or any SigV4 client).
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let parsed = ParsedAuthorization {
        access_key_id: scope.next()?.to_string(),
        date: scope.next()?.to_string(),
        region: scope.next()?.to_string(),
        service: scope.next()?.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    };
    (scope.next() == Some("aws4_request") && scope.next().is_none()).then_some(parsed)
}

/// Split a URL into (scheme, host header value, path, query). The host omits the scheme's default
/// port, as HTTP clients send it.
pub fn split_url(url: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((h, "443"))) | ("http", Some((h, "80"))) => h,
        _ => authority,
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    Some((scheme, host, path, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite(method: &str, path: &str, query: &str) -> String {
        let headers = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let sig = sign(
            &Request {
                method,
                path,
                query,
                headers: &headers,
                payload_hash: EMPTY_SHA256,
            },
            SECRET,
            "20150830T123600Z",
            "us-east-1",
            "service",
        );
        sig.authorization("AKIDEXAMPLE")
    }

    /// AWS's published SigV4 test suite (`get-vanilla`, `get-vanilla-query-order-key-case`,
    /// `post-vanilla`), credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, `service`.
    #[test]
    fn aws_test_suite_vectors() {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        assert_eq!(
            suite("GET", "/", ""),
            format!("{prefix}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        assert_eq!(
            suite("GET", "/", "Param2=value2&Param1=value1"),
            format!("{prefix}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
        assert_eq!(
            suite("POST", "/", ""),
            format!("{prefix}5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
    }

    #[test]
    fn canonical_uri_is_double_encoded() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
        );
        let arn = uri_encode(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            false,
        );
        assert_eq!(
            arn,
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0"
        );
        assert!(canonical_uri(&format!("/model/{arn}/converse")).contains("%253A"));
        assert!(canonical_uri(&format!("/model/{arn}/converse")).contains("%252F"));
    }

    /// The examples of AWS's "Signature Calculations for the Authorization Header" (S3): the path
    /// is signed as sent, encoded once (`$` as `%24`).
    #[test]
    fn s3_examples() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let header = |k: &str, v: &str| (k.to_string(), v.to_string());
        let get = sign_s3(
            &Request {
                method: "GET",
                path: "/test.txt",
                query: "",
                headers: &[
                    header("Host", "examplebucket.s3.amazonaws.com"),
                    header("Range", "bytes=0-9"),
                    header("x-amz-content-sha256", EMPTY_SHA256),
                    header("x-amz-date", "20130524T000000Z"),
                ],
                payload_hash: EMPTY_SHA256,
            },
            secret,
            "20130524T000000Z",
            "us-east-1",
        );
        assert_eq!(
            get.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let body_hash = sha256_hex(b"Welcome to Amazon S3.");
        let put = sign_s3(
            &Request {
                method: "PUT",
                path: &format!("/{}", uri_encode("test$file.text", true)),
                query: "",
                headers: &[
                    header("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    header("Host", "examplebucket.s3.amazonaws.com"),
                    header("x-amz-date", "20130524T000000Z"),
                    header("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                    header("x-amz-content-sha256", &body_hash),
                ],
                payload_hash: &body_hash,
            },
            secret,
            "20130524T000000Z",
            "us-east-1",
        );
        assert_eq!(
            put.signature,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert_eq!(put.scope, "20130524/us-east-1/s3/aws4_request");
    }

    #[test]
    fn authorization_round_trips_and_urls_split() {
        let auth = suite("POST", "/", "");
        let p = parse_authorization(&auth).expect("parses");
        assert_eq!(p.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            (p.date.as_str(), p.region.as_str(), p.service.as_str()),
            ("20150830", "us-east-1", "service")
        );
        assert_eq!(p.signed_headers, vec!["host", "x-amz-date"]);
        assert!(parse_authorization("Bearer x").is_none());
        assert_eq!(
            split_url("https://bedrock-runtime.us-east-1.amazonaws.com:443/model/a%3A0/converse"),
            Some((
                "https",
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/a%3A0/converse",
                ""
            ))
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080/x?b=1"),
            Some(("http", "127.0.0.1:8080", "/x", "b=1"))
        );
    }
}
