//! Values the stores cannot hold are refused at the edge: a NUL (`\u0000`) in any field the gateway
//! stores or logs (`user`, `metadata` strings and keys, `tags`, session and trace ids, the model
//! name, Anthropic's `metadata.user_id`) is a 400 naming the field, on every LLM route, and the
//! spend writer keeps charging the requests that follow (on PostgreSQL, whose text cannot hold NUL).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, db: &str) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: priced-embed
    litellm_params: {{model: openai/mock-embedding, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
  database_url: {db}
"#,
        base = mock.api_base()
    )
}

/// A valid body for each route.
fn valid(route: &str) -> Value {
    match route {
        "/v1/chat/completions" => {
            json!({"model": "priced", "messages": [{"role": "user", "content": "hi"}]})
        }
        "/v1/completions" => json!({"model": "priced", "prompt": "hi"}),
        "/v1/embeddings" => json!({"model": "priced-embed", "input": "hi"}),
        "/v1/messages" => json!({"model": "priced", "max_tokens": 16,
                                 "messages": [{"role": "user", "content": "hi"}]}),
        other => panic!("no body for {other}"),
    }
}

const ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
];

/// What is poisoned, the field the error names, how to poison a valid body.
type Poison = (&'static str, &'static str, fn(&mut Value));

fn poisons() -> Vec<Poison> {
    vec![
        ("user", "user", |b| b["user"] = json!("a\u{0}b")),
        ("metadata string", "metadata.trace_id", |b| {
            b["metadata"] = json!({"trace_id": "t\u{0}"})
        }),
        ("metadata tag", "metadata.tags[1]", |b| {
            b["metadata"] = json!({"tags": ["ok", "bad\u{0}"]})
        }),
        ("metadata key", "metadata.k\u{0}", |b| {
            b["metadata"] = json!({"k\u{0}": "v"})
        }),
        ("tags", "tags[0]", |b| b["tags"] = json!(["\u{0}"])),
        ("session id", "litellm_session_id", |b| {
            b["litellm_session_id"] = json!("s\u{0}")
        }),
        ("trace id", "litellm_trace_id", |b| {
            b["litellm_trace_id"] = json!("t\u{0}")
        }),
        ("model", "model", |b| {
            let m = b["model"].as_str().unwrap().to_string();
            b["model"] = json!(format!("{m}\u{0}"));
        }),
    ]
}

#[actix_rt::test]
async fn nul_in_a_stored_field_is_refused_on_every_route_and_spend_keeps_flowing() {
    let pg = FreshPostgres::create();
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, &pg.url), &[], &[]);
    let (status, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "edge"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap().to_string();

    for route in ROUTES {
        for (what, field, poison) in poisons() {
            let mut body = valid(route);
            poison(&mut body);
            let (status, _, answer) = post(&gw.url(route), Some(&key), &body).await;
            assert_eq!(status, 400, "{what} on {route}: {answer}");
            let error = &answer["error"];
            if *route == "/v1/messages" {
                assert_eq!(error["type"], "invalid_request_error", "{answer}");
            } else {
                assert_eq!(error["param"], field, "{what} on {route}: {answer}");
            }
            assert!(
                error["message"].as_str().unwrap().contains(field),
                "{what} on {route}: {answer}"
            );
        }
    }
    // Anthropic's end user, and the model named in the path.
    let mut body = valid("/v1/messages");
    body["metadata"] = json!({"user_id": "u\u{0}"});
    let (status, _, answer) = post(&gw.url("/v1/messages"), Some(&key), &body).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _, answer) = post(
        &gw.url("/v1/engines/pri%00ced/chat/completions"),
        Some(&key),
        &valid("/v1/chat/completions"),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["param"], "model", "{answer}");

    // Message content is only forwarded, never stored: it may hold NUL.
    let mut body = valid("/v1/chat/completions");
    body["messages"][0]["content"] = json!("a\u{0}b");
    let (status, _, answer) = post(&gw.url("/v1/chat/completions"), Some(&key), &body).await;
    assert_eq!(status, 200, "{answer}");

    // The requests that follow are charged.
    for route in ROUTES {
        let mut body = valid(route);
        body["user"] = json!("end-user-1");
        let (status, _, answer) = post(&gw.url(route), Some(&key), &body).await;
        assert_eq!(status, 200, "{route}: {answer}");
    }
    let logs_url = gw.url(&format!("/spend/logs?api_key={key}"));
    wait_for(Duration::from_secs(15), || {
        let u = logs_url.clone();
        async move {
            get(&u, Some(MASTER_KEY))
                .await
                .2
                .as_array()
                .is_some_and(|rows| {
                    rows.len() == 1 + ROUTES.len()
                        && rows
                            .iter()
                            .all(|r| r["spend"].as_f64().unwrap_or(0.0) > 0.0)
                })
        }
    })
    .await;
}

/// An end-user id header holding NUL never reaches a store: the HTTP layer refuses the request.
#[actix_rt::test]
async fn nul_in_the_end_user_header_is_refused() {
    use std::io::{Read, Write};
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let addr = gw.proc.url.trim_start_matches("http://").to_string();
    let body = chat("mock-gpt").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {MASTER_KEY}\r\n\
         content-type: application/json\r\nx-litellm-end-user-id: a\0b\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The gateway still serves.
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
}

/// A timeout header too large for a duration is a 400, not a panic in the handler.
#[actix_rt::test]
async fn a_huge_timeout_header_is_refused() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    for header in ["x-litellm-timeout", "x-litellm-stream-timeout"] {
        let (status, _, answer) = post_raw(
            &url,
            Some(MASTER_KEY),
            chat("mock-gpt").to_string(),
            &[(header, "1e300")],
        )
        .await;
        assert_eq!(status, 400, "{header}: {answer}");
        // A year and more is accepted as a year.
        let (status, _, answer) = post_raw(
            &url,
            Some(MASTER_KEY),
            chat("mock-gpt").to_string(),
            &[(header, "1e12")],
        )
        .await;
        assert_eq!(status, 200, "{header}: {answer}");
    }
}
