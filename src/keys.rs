//! Virtual keys: generating them, hashing them, and reading the LiteLLM fields a key carries
//! (`models`, `aliases`, limits, budgets…) out of its stored record.
//!
//! A key is `sk-` followed by 22 URL-safe random characters (16 bytes from the OS generator).
//! Only its SHA-256 hex digest (`token`) is stored; the plaintext is returned once, by
//! `/key/generate` or `/key/regenerate`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::store::{EntityRecord, KeyRecord};

/// A new random key.
pub fn generate() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("sk-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a key: SHA-256, lowercase hex (LiteLLM's `token`).
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `s` is already a token (64 lowercase hex characters) rather than a key.
pub fn is_token(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The token for a key or token given by a client (`/key/info?key=` accepts both).
pub fn token_of(key_or_token: &str) -> String {
    if is_token(key_or_token) {
        key_or_token.to_string()
    } else {
        hash(key_or_token)
    }
}

/// `sk-...abcd`: what is shown instead of a key.
pub fn display_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// The longest duration taken anywhere (key lifetime, budget window): 100 years of 365 days,
/// in milliseconds. Anything longer is refused, so `now + duration` can never overflow.
pub const MAX_DURATION_MS: i64 = 100 * 365 * 86_400_000;

/// How a valid duration looks, for error messages.
pub const DURATION_HINT: &str =
    "use 30s, 30m (or 30min), 30h, 30d, 2w or 1mo; at most 100 years (36500d)";

/// Parse a LiteLLM duration: `30s`, `30m` or `30min`, `30h`, `30d`, `2w`, `1mo` (30 days). Milliseconds, more than
/// zero and at most [`MAX_DURATION_MS`]; anything else (overflow included) is `None`.
pub fn parse_duration(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "mo" => 30 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0 && *ms <= MAX_DURATION_MS)
}

/// The strings of a list field of a record's `data` (none when absent or not a list).
pub fn string_list(data: &Map<String, Value>, field: &str) -> Vec<String> {
    data.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Typed reads of the LiteLLM fields in a record's `data`.
pub trait Fields {
    fn data(&self) -> &Map<String, Value>;

    fn strings(&self, field: &str) -> Vec<String> {
        string_list(self.data(), field)
    }

    fn number(&self, field: &str) -> Option<f64> {
        self.data().get(field).and_then(Value::as_f64)
    }

    fn integer(&self, field: &str) -> Option<i64> {
        self.data().get(field).and_then(Value::as_i64)
    }

    fn string_map(&self, field: &str) -> Vec<(String, String)> {
        self.data()
            .get(field)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Fields for KeyRecord {
    fn data(&self) -> &Map<String, Value> {
        &self.data
    }
}

impl Fields for EntityRecord {
    fn data(&self) -> &Map<String, Value> {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_and_display() {
        let k = generate();
        assert!(k.starts_with("sk-") && k.len() == 25, "{k}");
        assert_ne!(generate(), k);
        assert_eq!(
            hash("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert!(is_token(&hash(&k)));
        assert_eq!(token_of(&k), hash(&k));
        assert_eq!(token_of(&hash(&k)), hash(&k));
        assert_eq!(display_name("sk-abcdefgh"), "sk-...efgh");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("30min"), Some(1_800_000));
        assert_eq!(parse_duration(" 1mo "), Some(2_592_000_000));
        assert_eq!(parse_duration("30mins"), None);
        assert_eq!(parse_duration("30h"), Some(108_000_000));
        assert_eq!(parse_duration("30d"), Some(2_592_000_000));
        assert_eq!(parse_duration("1mo"), Some(2_592_000_000));
        assert_eq!(parse_duration("2w"), Some(1_209_600_000));
        assert_eq!(parse_duration("30x"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("0s"), None);
    }

    #[test]
    fn durations_are_bounded_to_a_century() {
        assert_eq!(parse_duration("36500d"), Some(MAX_DURATION_MS));
        assert_eq!(parse_duration("1200mo"), Some(1200 * 30 * 86_400_000));
        for too_long in [
            "36501d",
            "5215w",
            "1217mo",
            "876001h",
            "99999999999d",
            "9223372036854775s",
            "153722867280912m",
            "9223372036854775807s",
            "99999999999999999999999d",
        ] {
            assert_eq!(parse_duration(too_long), None, "{too_long}");
        }
        // Whatever parses can be added to any current time without overflow.
        let now = 4_102_444_800_000; // 2100-01-01
        assert!(now + parse_duration("36500d").unwrap() < i64::MAX / 2);
    }
}
