//! Pure helpers every wire format uses: token and word counts, chunking, deterministic
//! embeddings, ids and timestamps, the success headers.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, HttpResponseBuilder};
use rand::{distr::Alphanumeric, Rng as _};
use serde_json::Value;

use crate::openai::InputItem;
use crate::{RATE_LIMIT_REMAINING, RATE_LIMIT_REQUESTS};

pub(crate) fn success_builder() -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header(("x-ratelimit-limit-requests", RATE_LIMIT_REQUESTS))
        .insert_header(("x-ratelimit-remaining-requests", RATE_LIMIT_REMAINING));
    builder
}

pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from),
    );
    id
}

/// A response id that names its serial: `<prefix><serial>-<random>` (random part as long as
/// [`random_id`]'s), so ids stay unique and a test can read which answer it got.
pub(crate) fn serial_id(prefix: &str, serial: u64, len: usize) -> String {
    random_id(&format!("{prefix}{serial}-"), len)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Pure helpers: tokens, words, chunks, embeddings, base64
// ---------------------------------------------------------------------------------------------

/// `ceil(chars / 4)`, at least 1.
pub(crate) fn tokens_for_chars(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX).max(1)
}

/// `ceil(total content chars / 4) + 3 per message`, at least 1.
pub(crate) fn chat_prompt_tokens(messages: &[Value]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|message| message.get("content").map_or(0, content_chars))
        .sum();
    let per_message = u64::try_from(messages.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(3);
    u64::try_from(chars.div_ceil(4))
        .unwrap_or(u64::MAX)
        .saturating_add(per_message)
        .max(1)
}

/// Characters of a message `content`: a string, or the `text` of its parts.
pub(crate) fn content_chars(content: &Value) -> usize {
    match content {
        Value::String(text) => text.chars().count(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| text.chars().count())
            .sum(),
        _ => 0,
    }
}

pub(crate) fn count_words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// Byte ranges `(start, end)` of the whitespace-separated words of `text`.
pub(crate) fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (index, ch) in text.char_indices() {
        if ch.is_whitespace() {
            if let Some(word_start) = start.take() {
                spans.push((word_start, index));
            }
        } else if start.is_none() {
            start = Some(index);
        }
    }
    if let Some(word_start) = start {
        spans.push((word_start, text.len()));
    }
    spans
}

/// The first `limit` words of `text` (original spacing kept), or `None` if it has no more.
pub(crate) fn truncate_words(text: &str, limit: u64) -> Option<&str> {
    let spans = word_spans(text);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if spans.len() <= limit {
        return None;
    }
    Some(
        match limit.checked_sub(1).and_then(|last| spans.get(last)) {
            Some(&(_, end)) => &text[..end],
            None => "",
        },
    )
}

/// Splits `text` into at most `chunks` parts of roughly equal word counts. Parts start with the
/// whitespace before their first word (like tokens do), so they concatenate back to `text`.
pub(crate) fn split_chunks(text: &str, chunks: usize) -> Vec<&str> {
    let spans = word_spans(text);
    let words = spans.len();
    if words == 0 {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
    }
    let groups = chunks.clamp(1, words);
    let mut parts = Vec::with_capacity(groups);
    let mut start = 0;
    for group in 1..=groups {
        let end = if group == groups {
            text.len()
        } else {
            // End of the last word of this group.
            spans[group * words / groups - 1].1
        };
        parts.push(&text[start..end]);
        start = end;
    }
    parts
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(crate) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic unit vector for an input. Text is embedded as a bag of words: each word
/// (lowercased letters and digits) has its own pseudo-random direction and the text's vector is
/// their normalized sum, so texts with the same words point the same way (case and punctuation
/// aside) and texts without common words are nearly orthogonal, enough for semantic-cache tests.
/// Token arrays and text without words get a direction seeded by their fingerprint.
pub(crate) fn embedding_vector(item: &InputItem<'_>, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f64; dimensions];
    let mut add = |mut state: u64| {
        let scale = 1.0 / f64::from(1u32 << 24);
        for x in vector.iter_mut() {
            let bits = splitmix64(&mut state) >> 40; // 24 random bits
            *x += (bits as f64 * scale).mul_add(2.0, -1.0);
        }
    };
    let mut words = 0;
    if let InputItem::Text(text) = item {
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            add(fnv1a(
                fnv1a(FNV_OFFSET, b"word:"),
                word.to_lowercase().as_bytes(),
            ));
            words += 1;
        }
    }
    if words == 0 {
        add(item.fingerprint());
    }
    let norm = vector.iter().map(|x| x.powi(2)).sum::<f64>().sqrt();
    let mut out: Vec<f32> = vector
        .iter()
        .map(|x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 })
        .collect();
    if norm == 0.0 {
        if let Some(first) = out.first_mut() {
            *first = 1.0;
        }
    }
    out
}

/// The signed headers of a SigV4 request, canonicalised as AWS does (each name with its values
/// joined by `,`), for recomputing the signature. `Err` names the first signed header the request
/// does not carry.
pub(crate) fn sigv4_signed_headers(
    req: &actix_web::HttpRequest,
    signed: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::with_capacity(signed.len());
    for name in signed {
        let values: Vec<&str> = req
            .headers()
            .get_all(name.as_str())
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(name.clone());
        }
        headers.push((name.clone(), values.join(",")));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cosine(a: &str, b: &str) -> f32 {
        let (a, b) = (
            embedding_vector(&InputItem::Text(a), 256),
            embedding_vector(&InputItem::Text(b), 256),
        );
        a.iter().zip(&b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn texts_with_the_same_words_embed_alike_and_unrelated_ones_do_not() {
        let same = cosine(
            "What is the capital city of France?",
            "what is the capital city of france",
        );
        assert!(same > 0.999, "{same}");
        let close = cosine(
            "What is the capital city of France?",
            "What is the capital of France?",
        );
        assert!(close > 0.85, "{close}");
        let unrelated = cosine(
            "What is the capital city of France?",
            "Write a haiku about rust and steel",
        );
        assert!(unrelated < 0.5, "{unrelated}");
        let norm: f32 = embedding_vector(&InputItem::Text("?!"), 16)
            .iter()
            .map(|x| x * x)
            .sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    use crate::DEFAULT_REPLY;

    #[test]
    fn token_counting() {
        assert_eq!(tokens_for_chars(0), 1);
        assert_eq!(tokens_for_chars(1), 1);
        assert_eq!(tokens_for_chars(4), 1);
        assert_eq!(tokens_for_chars(5), 2);
        assert_eq!(tokens_for_chars(400), 100);

        let messages = [json!({"role": "user", "content": "Hello there"})];
        assert_eq!(chat_prompt_tokens(&messages), 3 + 3); // ceil(11 / 4) + 3
        let messages = [
            json!({"role": "system", "content": "abcd"}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "ab"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                {"type": "text", "text": "c"}
            ]}),
            json!({"role": "assistant", "content": null, "tool_calls": []}),
        ];
        assert_eq!(chat_prompt_tokens(&messages), 2 + 9); // ceil(7 / 4) + 3 * 3
        assert_eq!(chat_prompt_tokens(&[]), 1);
        // Characters, not bytes.
        assert_eq!(chat_prompt_tokens(&[json!({"content": "éééé"})]), 1 + 3);

        assert_eq!(count_words(DEFAULT_REPLY), 11);
        assert_eq!(count_words("  spaced\tout \n words "), 3);
        assert_eq!(count_words(""), 0);
        assert_eq!(InputItem::Tokens(vec![1, 2, 3]).tokens(), 3);
        assert_eq!(InputItem::Text("abcdefghi").tokens(), 3);
    }

    #[test]
    fn word_truncation() {
        assert_eq!(truncate_words(DEFAULT_REPLY, 11), None);
        assert_eq!(truncate_words(DEFAULT_REPLY, 100), None);
        assert_eq!(
            truncate_words(DEFAULT_REPLY, 4),
            Some("Hello from the Tollgate")
        );
        assert_eq!(truncate_words("a  b\tc", 2), Some("a  b"));
        assert_eq!(truncate_words("one two", 0), Some(""));
        assert_eq!(truncate_words("", 0), None);
    }

    #[test]
    fn chunk_splitting() {
        let parts = split_chunks(DEFAULT_REPLY, 8);
        assert_eq!(parts.len(), 8);
        assert_eq!(parts.concat(), DEFAULT_REPLY);
        assert_eq!(parts[0], "Hello");
        assert!(parts[1..].iter().all(|part| part.starts_with(' ')));
        let sizes: Vec<u64> = parts.iter().map(|part| count_words(part)).collect();
        assert_eq!(sizes.iter().sum::<u64>(), 11);
        assert!(sizes.iter().all(|size| (1..=2).contains(size)), "{sizes:?}");

        assert_eq!(split_chunks("one two three", 3), ["one", " two", " three"]);
        assert_eq!(split_chunks("one two three", 1), ["one two three"]);
        assert_eq!(split_chunks("one two three", 0), ["one two three"]);
        // Fewer words than chunks: one word per chunk.
        assert_eq!(split_chunks("one two", 8), ["one", " two"]);
        assert_eq!(
            split_chunks(" lead and trail ", 2),
            [" lead", " and trail "]
        );
        assert!(split_chunks("", 8).is_empty());
        assert_eq!(split_chunks("   ", 8), ["   "]);
        let words: String = (0..100).map(|i| format!("w{i} ")).collect();
        let parts = split_chunks(&words, 7);
        assert_eq!(parts.len(), 7);
        assert_eq!(parts.concat(), words);
        assert!(parts
            .iter()
            .all(|part| (14..=15).contains(&count_words(part))));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let hello = InputItem::Text("hello");
        let first = embedding_vector(&hello, 8);
        assert_eq!(first.len(), 8);
        assert_eq!(first, embedding_vector(&hello, 8));
        assert_ne!(first, embedding_vector(&InputItem::Text("goodbye"), 8));
        // The same words, whatever the case and punctuation, embed the same.
        assert_eq!(first, embedding_vector(&InputItem::Text("Hello!"), 8));
        assert_ne!(first, embedding_vector(&InputItem::Tokens(vec![1, 2]), 8));
        assert_eq!(
            embedding_vector(&InputItem::Tokens(vec![1, 2]), 8),
            embedding_vector(&InputItem::Tokens(vec![1, 2]), 8)
        );
        for dimensions in [1, 2, 8, 256, 3072] {
            let vector = embedding_vector(&hello, dimensions);
            assert_eq!(vector.len(), dimensions);
            let norm = vector
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm} at {dimensions}");
            assert!(vector
                .iter()
                .all(|x| x.is_finite() && (-1.0..=1.0).contains(x)));
        }
        assert!(embedding_vector(&hello, 0).is_empty());
        // Fixed across builds and platforms (FNV-1a + splitmix64, no std hasher).
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
