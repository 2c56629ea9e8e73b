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

/// A deterministic unit vector seeded by the input's fingerprint.
pub(crate) fn embedding_vector(item: &InputItem<'_>, dimensions: usize) -> Vec<f32> {
    let mut state = item.fingerprint();
    let scale = 1.0 / (1u32 << 24) as f32;
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| {
            let bits = splitmix64(&mut state) >> 40; // 24 random bits
            (bits as f32 * scale).mul_add(2.0, -1.0)
        })
        .collect();
    let norm = vector
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x = (f64::from(*x) / norm) as f32;
        }
    } else if let Some(first) = vector.first_mut() {
        *first = 1.0;
    }
    vector
}
