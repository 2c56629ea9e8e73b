//! Memory per request is bounded: the worst body shapes at the body limit (many tiny messages, deep
//! and wide nesting, long runs of tiny values, one huge string, the most values a body may have), a
//! long streamed `mock_response`, several at once, keep the gateway's peak RSS within a bound
//! proportional to the bytes in flight, and it answers normally afterwards.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The default `max_request_size_mb` (32 MiB), less room for the JSON around the payload.
const BODY_LIMIT: usize = 32 * 1024 * 1024;
const NEAR_LIMIT: usize = BODY_LIMIT - 64 * 1024;

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, the peak resident set; `VmRSS`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

/// `{"model": …, "messages": [...], <extra>}` where `fill` repeats `unit` (joined by commas) inside
/// `extra_key` until the body is about `size` bytes.
fn filled(
    messages: &str,
    extra_key: &str,
    open: &str,
    unit: &str,
    close: &str,
    size: usize,
) -> String {
    let mut body = format!(
        r#"{{"model":"mock-gpt","mock_response":"ok","messages":{messages},"{extra_key}":{open}"#
    );
    let count = (size - body.len() - close.len() - 1) / (unit.len() + 1);
    body.reserve(count * (unit.len() + 1) + close.len() + 1);
    for i in 0..count {
        if i > 0 {
            body.push(',');
        }
        body.push_str(unit);
    }
    body.push_str(close);
    body.push('}');
    body
}

fn tiny_messages(count: usize) -> String {
    let mut out = String::from("[");
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"role":"user","content":"a"}"#);
    }
    out.push(']');
    out
}

async fn post_body(url: String, body: String) -> (u16, Value) {
    let (status, _, value) = post_raw(&url, Some(MASTER_KEY), body, &[]).await;
    (status, value)
}

async fn assert_answers_normally(gw: &Gateway) {
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn hostile_bodies_at_the_limit_stay_within_a_memory_bound() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let pid = gw.proc.child.id();
    assert_answers_normally(&gw).await;
    let base = status_bytes(pid, "VmRSS");

    let url = gw.url("/v1/chat/completions");
    let one_message = r#"[{"role":"user","content":"hi"}]"#;
    // Many tiny messages: 1.1 million of them.
    let many_messages = {
        let mut body = r#"{"model":"mock-gpt","mock_response":"ok","messages":"#.to_string();
        let count = (NEAR_LIMIT - body.len() - 2) / 30;
        body.push_str(&tiny_messages(count));
        body.push('}');
        body
    };
    // Wide and shallow-nested arrays: millions of little arrays.
    let nested = filled(one_message, "x", "[", "[[[[[0]]]]]", "]", NEAR_LIMIT);
    // A long run of tiny values: 16 million zeros.
    let zeros = filled(one_message, "x", "[", "0", "]", NEAR_LIMIT);
    // One huge string.
    let huge_string = format!(
        r#"{{"model":"mock-gpt","mock_response":"ok","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(NEAR_LIMIT - 100)
    );
    // Deep nesting, past the depth bound.
    let deep = format!(
        r#"{{"model":"mock-gpt","messages":{one_message},"x":{}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    // The most a body may hold: 99,999 messages and values up to the bound.
    // (sent on to the provider: the adapter's copy and the upstream call are measured too).
    let most_accepted = filled(&tiny_messages(99_999), "x", "[", "0", "]", 4_400_000).replacen(
        r#""mock_response":"ok","#,
        "",
        1,
    );

    let bodies = [
        many_messages,
        nested,
        zeros,
        huge_string,
        deep,
        most_accepted,
    ];
    let in_flight: usize = bodies.iter().map(String::len).sum();
    let expected = [400, 400, 400, 200, 400, 200];
    let results =
        futures_util::future::join_all(bodies.into_iter().map(|b| post_body(url.clone(), b))).await;
    let peak = status_bytes(pid, "VmHWM");
    let bound = base + 8 * in_flight as u64;
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB (base {} MiB, {} MiB in flight)",
        peak >> 20,
        bound >> 20,
        base >> 20,
        in_flight >> 20
    );
    eprintln!(
        "peak RSS {} MiB, base {} MiB, in flight {} MiB",
        peak >> 20,
        base >> 20,
        in_flight >> 20
    );
    for ((status, body), want) in results.iter().zip(expected) {
        assert_eq!(
            *status,
            want,
            "{}",
            body.to_string().chars().take(300).collect::<String>()
        );
        if want == 400 {
            assert_envelope(body);
        }
    }
    assert_answers_normally(&gw).await;
}

/// Read a streamed answer to its end without keeping it: (status, bytes, whether `[DONE]` came).
async fn stream_len(url: String, body: Value) -> (u16, usize, bool) {
    let mut resp = client()
        .post(&url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .send_body(body.to_string())
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let mut len = 0;
    let mut tail = Vec::new();
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.expect("chunk");
        len += chunk.len();
        tail = chunk.to_vec();
    }
    let done = String::from_utf8_lossy(&tail).ends_with("data: [DONE]\n\n");
    (status, len, done)
}

#[actix_rt::test]
async fn a_long_streamed_mock_response_is_generated_as_it_is_read() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let pid = gw.proc.child.id();
    assert_answers_normally(&gw).await;
    let base = status_bytes(pid, "VmRSS");

    // 1 MiB of two-byte words: half a million chunks each.
    let text = "a ".repeat(512 * 1024);
    let url = gw.url("/v1/chat/completions");
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let kind = if i == 2 {
                "/v1/completions"
            } else {
                "/v1/chat/completions"
            };
            let mut body = json!({"model": "mock-gpt", "stream": true, "mock_response": text,
                                  "messages": [{"role": "user", "content": "hi"}]});
            if i == 2 {
                body = json!({"model": "mock-gpt", "stream": true, "mock_response": text,
                              "prompt": "hi"});
            }
            stream_len(url.replace("/v1/chat/completions", kind), body)
        })
        .collect();
    let in_flight = 3 * text.len();
    let results = futures_util::future::join_all(requests).await;
    let peak = status_bytes(pid, "VmHWM");
    let bound = base + 8 * in_flight as u64;
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB (base {} MiB, {} MiB in flight)",
        peak >> 20,
        bound >> 20,
        base >> 20,
        in_flight >> 20
    );
    eprintln!("peak RSS {} MiB, base {} MiB", peak >> 20, base >> 20);
    for (status, len, done) in results {
        assert_eq!(status, 200);
        assert!(done, "the stream ends with [DONE]");
        assert!(len > 512 * 1024 * 100, "one chunk per word: {len} bytes");
    }
    assert_answers_normally(&gw).await;
}
