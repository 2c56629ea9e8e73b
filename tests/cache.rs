//! Response caching against the real gateway, the project's mock provider (started with
//! `--serial-replies`, so every fresh answer differs from the last) and real Redis: hits and
//! misses for chat, streams and embeddings, every per-request control, scopes, spend on hits,
//! instances sharing Redis, Redis dying mid-run, semantic hits, the seed config forms, eviction and
//! the admin routes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace no other test (or run) shares, so tests on the shared Redis never see each other.
fn namespace() -> String {
    format!("t{}", uuid_like())
}

fn models(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: mock-text
    litellm_params: {{model: openai/mock-text, api_base: {base}, api_key: sk-x}}
  - model_name: mock-embed
    litellm_params: {{model: openai/mock-embedding, api_base: {base}, api_key: sk-x}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base()
    )
}

fn local(mock: &Mock, params: &str) -> String {
    format!(
        "{}litellm_settings:\n  cache: true\n  cache_params:\n    type: local\n{params}",
        models(mock)
    )
}

fn redis(mock: &Mock, ns: &str, params: &str) -> String {
    let url = redis_url();
    format!(
        "{}litellm_settings:\n  cache: true\n  cache_params:\n    type: redis\n    url: {url}\n    namespace: {ns}\n{params}",
        models(mock)
    )
}

fn mock() -> Mock {
    // Wide embeddings, so that prompts without common words are far apart.
    Mock::start(&["--serial-replies", "--embedding-dim", "256"])
}

async fn calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

fn hdr(headers: &Headers, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_string())
}

fn content(body: &Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The same request, looking without storing: a poll that misses must not replace the entry it
/// waits for with its own answer.
fn peek(q: &Value) -> Value {
    let mut q = q.clone();
    q["cache"] = json!({"no-store": true});
    q
}

fn ask(prompt: &str) -> Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": prompt}], "temperature": 0.2})
}

async fn chat_call(gw: &Gateway, key: &str, body: &Value) -> (u16, Headers, Value) {
    post(&gw.url("/v1/chat/completions"), Some(key), body).await
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, _, created) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{created}");
    created["key"].as_str().unwrap().to_string()
}

/// The streamed text of an SSE answer, and whether it ended with `[DONE]`.
fn streamed(text: &str) -> (String, bool, Vec<Value>) {
    let data = sse_data(text);
    let done = data.last().is_some_and(|d| d == "[DONE]");
    let chunks: Vec<Value> = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, done, chunks)
}

#[actix_rt::test]
async fn a_repeated_chat_request_is_answered_from_the_cache() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let (s1, h1, first) = chat_call(&gw, MASTER_KEY, &ask("What is a gateway?")).await;
    assert_eq!(s1, 200, "{first}");
    let key = hdr(&h1, "x-litellm-cache-key").expect("the cache was consulted");
    assert_eq!(key.len(), 64, "{key}");
    // Fields that do not change the answer (key order, user, metadata) do not change the key.
    let same = json!({"temperature": 0.2, "user": "someone", "metadata": {"tags": ["a"]},
        "messages": [{"content": "What is a gateway?", "role": "user"}], "model": "mock-gpt"});
    let (s2, h2, second) = chat_call(&gw, MASTER_KEY, &same).await;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(second["id"], first["id"], "a replay, not a fresh call");
    assert_eq!(content(&second), content(&first));
    assert!(content(&first).contains("(reply "), "{first}");
    assert_eq!(
        hdr(&h2, "x-litellm-cache-key").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(hdr(&h2, "x-litellm-response-cost").as_deref(), Some("0"));
    assert_eq!(calls(&mock, "mock-gpt").await, 1);

    // Another sampling parameter is another request.
    let mut warmer = ask("What is a gateway?");
    warmer["temperature"] = json!(0.9);
    let (_, h3, third) = chat_call(&gw, MASTER_KEY, &warmer).await;
    assert_ne!(third["id"], first["id"]);
    assert_ne!(hdr(&h3, "x-litellm-cache-key"), Some(key));
    assert_eq!(calls(&mock, "mock-gpt").await, 2);

    // Text completions are cached too.
    let prompt = json!({"model": "mock-text", "prompt": "Once upon a time"});
    let (_, _, a) = post(&gw.url("/v1/completions"), Some(MASTER_KEY), &prompt).await;
    let (_, _, b) = post(&gw.url("/v1/completions"), Some(MASTER_KEY), &prompt).await;
    assert_eq!(a["id"], b["id"], "{a} {b}");
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(calls(&mock, "mock-text").await, 1);

    let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
    assert!(
        metrics.contains("litellm_cache_hits_metric_total{model=\"mock-gpt\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("litellm_cache_misses_metric_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("litellm_cached_tokens_metric_total"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn streams_are_answered_from_stored_responses_and_stored_once_complete() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // A complete answer replayed as a stream, with usage when asked.
    let (_, _, stored) = chat_call(&gw, MASTER_KEY, &ask("Stream me")).await;
    let mut stream = ask("Stream me");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &stream).await;
    assert_eq!(status, 200);
    assert!(hdr(&headers, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(hdr(&headers, "x-litellm-cache-key").is_some());
    let (streamed_text, done, chunks) = streamed(&text);
    assert!(done, "{text}");
    assert_eq!(streamed_text, content(&stored));
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == stored["id"]),
        "{text}"
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "{text}");
    assert_eq!(usage["usage"], stored["usage"]);
    assert_eq!(calls(&mock, "mock-gpt").await, 1);

    // A stream that completed is stored; the next request, streamed or not, is answered from it.
    let mut fresh = ask("A stream first");
    fresh["stream"] = json!(true);
    let (_, _, first) = stream_text(&url, Some(MASTER_KEY), &fresh).await;
    let (first_text, done, _) = streamed(&first);
    assert!(done);
    assert_eq!(calls(&mock, "mock-gpt").await, 2);
    wait_for(Duration::from_secs(15), || {
        let gw = &gw;
        async move {
            let (_, h, _) = chat_call(gw, MASTER_KEY, &ask("A stream first")).await;
            hdr(&h, "x-litellm-response-cost").as_deref() == Some("0")
        }
    })
    .await;
    let (_, _, again) = chat_call(&gw, MASTER_KEY, &ask("A stream first")).await;
    assert_eq!(content(&again), first_text);
    let (_, _, replayed) = stream_text(&url, Some(MASTER_KEY), &fresh).await;
    assert_eq!(streamed(&replayed).0, first_text);
    assert_eq!(calls(&mock, "mock-gpt").await, 2);
}

#[actix_rt::test]
async fn a_cut_stream_is_never_stored() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let mut cut = ask("Cut me off");
    cut["stream"] = json!(true);
    cut["mock_fail"] = json!("cut");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &cut).await;
    assert!(!streamed(&text).1 || text.contains("error"), "{text}");
    let before = calls(&mock, "mock-gpt").await;
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &cut).await;
    assert!(!text.is_empty());
    assert_eq!(
        calls(&mock, "mock-gpt").await,
        before + 1,
        "the cut stream was not replayed"
    );
}

#[actix_rt::test]
async fn embeddings_are_cached() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let body = json!({"model": "mock-embed", "input": ["alpha", "beta"]});
    let url = gw.url("/v1/embeddings");
    let (_, h1, a) = post(&url, Some(MASTER_KEY), &body).await;
    let (_, h2, b) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(a["data"], b["data"]);
    assert!(hdr(&h1, "x-litellm-cache-key").is_some());
    assert_eq!(hdr(&h2, "x-litellm-response-cost").as_deref(), Some("0"));
    assert_eq!(calls(&mock, "mock-embedding").await, 1);
}

#[actix_rt::test]
async fn per_request_controls() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let with = |prompt: &str, cache: Value| {
        let mut b = ask(prompt);
        b["cache"] = cache;
        b
    };
    let count = || calls(&mock, "mock-gpt");

    // no-cache: skip the read, still store.
    let (_, _, first) = chat_call(&gw, MASTER_KEY, &ask("controls")).await;
    let (_, _, fresh) = chat_call(
        &gw,
        MASTER_KEY,
        &with("controls", json!({"no-cache": true})),
    )
    .await;
    assert_ne!(fresh["id"], first["id"]);
    let (_, _, after) = chat_call(&gw, MASTER_KEY, &ask("controls")).await;
    assert_eq!(after["id"], fresh["id"], "no-cache still stored its answer");
    assert_eq!(count().await, 2);

    // no-store: answered fresh and not stored.
    let (_, _, a) = chat_call(
        &gw,
        MASTER_KEY,
        &with("not stored", json!({"no-store": true})),
    )
    .await;
    let (_, _, b) = chat_call(&gw, MASTER_KEY, &ask("not stored")).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(count().await, 4);

    // ttl: the entry lives one second.
    let (_, _, a) = chat_call(&gw, MASTER_KEY, &with("short", json!({"ttl": 1}))).await;
    let (_, _, b) = chat_call(&gw, MASTER_KEY, &ask("short")).await;
    assert_eq!(a["id"], b["id"]);
    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    let (_, _, c) = chat_call(&gw, MASTER_KEY, &ask("short")).await;
    assert_ne!(a["id"], c["id"], "expired");

    // s-maxage: only entries younger than N seconds.
    let (_, _, a) = chat_call(&gw, MASTER_KEY, &ask("aged")).await;
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    let (_, _, young) = chat_call(&gw, MASTER_KEY, &with("aged", json!({"s-maxage": 10}))).await;
    assert_eq!(young["id"], a["id"]);
    let (_, _, old) = chat_call(&gw, MASTER_KEY, &with("aged", json!({"s-maxage": 1}))).await;
    assert_ne!(old["id"], a["id"], "older than s-maxage");

    // namespace: its own entries, and the key says so.
    let (_, h, ns) = chat_call(
        &gw,
        MASTER_KEY,
        &with("controls", json!({"namespace": "tenant-x"})),
    )
    .await;
    assert!(hdr(&h, "x-litellm-cache-key")
        .unwrap()
        .starts_with("tenant-x:"));
    assert_ne!(ns["id"], fresh["id"]);

    // caching: false skips the cache entirely.
    let mut off = ask("controls");
    off["caching"] = json!(false);
    let (_, h, skipped) = chat_call(&gw, MASTER_KEY, &off).await;
    assert!(hdr(&h, "x-litellm-cache-key").is_none());
    assert_ne!(skipped["id"], fresh["id"]);

    // Wrong types are a 400 in the OpenAI envelope.
    let (status, _, body) = chat_call(&gw, MASTER_KEY, &with("x", json!({"ttl": "soon"}))).await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
}

#[actix_rt::test]
async fn allowed_cache_controls_limit_what_a_key_may_send() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let key = new_key(&gw, json!({"allowed_cache_controls": ["no-cache"]})).await;
    let mut ok = ask("limited controls");
    ok["cache"] = json!({"no-cache": true});
    assert_eq!(chat_call(&gw, &key, &ok).await.0, 200);
    let mut refused = ask("limited controls");
    refused["cache"] = json!({"no-store": true});
    let (status, _, body) = chat_call(&gw, &key, &refused).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-store"),
        "{body}"
    );
    // A key without the restriction sends any control.
    let free = new_key(&gw, json!({})).await;
    assert_eq!(chat_call(&gw, &free, &refused).await.0, 200);
}

#[actix_rt::test]
async fn entries_are_shared_within_a_team_only_unless_global() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    for team in ["red", "blue"] {
        let (s, _, b) = post(
            &gw.url("/team/new"),
            Some(MASTER_KEY),
            &json!({"team_id": team}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let red1 = new_key(&gw, json!({"team_id": "red"})).await;
    let red2 = new_key(&gw, json!({"team_id": "red"})).await;
    let blue = new_key(&gw, json!({"team_id": "blue"})).await;
    let alone1 = new_key(&gw, json!({})).await;
    let alone2 = new_key(&gw, json!({})).await;
    let q = ask("team secret");
    let (_, _, a) = chat_call(&gw, &red1, &q).await;
    assert_eq!(
        chat_call(&gw, &red2, &q).await.2["id"],
        a["id"],
        "same team"
    );
    assert_ne!(
        chat_call(&gw, &blue, &q).await.2["id"],
        a["id"],
        "other team"
    );
    let (_, _, mine) = chat_call(&gw, &alone1, &q).await;
    assert_ne!(mine["id"], a["id"]);
    assert_eq!(
        chat_call(&gw, &alone1, &q).await.2["id"],
        mine["id"],
        "itself"
    );
    assert_ne!(
        chat_call(&gw, &alone2, &q).await.2["id"],
        mine["id"],
        "another key without a team"
    );
    assert_ne!(chat_call(&gw, MASTER_KEY, &q).await.2["id"], a["id"]);

    // scope: global shares with everyone, as LiteLLM does.
    let mock = self::mock();
    let gw = Gateway::start(&local(&mock, "    scope: global\n"), &[], &[]);
    let one = new_key(&gw, json!({})).await;
    let two = new_key(&gw, json!({})).await;
    let (_, _, a) = chat_call(&gw, &one, &q).await;
    assert_eq!(chat_call(&gw, &two, &q).await.2["id"], a["id"]);
    assert_eq!(chat_call(&gw, MASTER_KEY, &q).await.2["id"], a["id"]);
}

#[actix_rt::test]
async fn a_hit_costs_nothing_and_leaves_budgets_alone() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, ""), &[], &[]);
    let key = new_key(&gw, json!({"max_budget": 100.0})).await;
    let q = ask("billable");
    let (_, h1, _) = chat_call(&gw, &key, &q).await;
    let cost: f64 = hdr(&h1, "x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    for _ in 0..3 {
        let (status, h, _) = chat_call(&gw, &key, &q).await;
        assert_eq!(status, 200);
        assert_eq!(hdr(&h, "x-litellm-response-cost").as_deref(), Some("0"));
    }
    let logs_url = gw.url(&format!("/spend/logs?api_key={key}"));
    wait_for(Duration::from_secs(15), || {
        let u = logs_url.clone();
        async move {
            get(&u, Some(MASTER_KEY))
                .await
                .2
                .as_array()
                .is_some_and(|a| a.len() == 4)
        }
    })
    .await;
    let (_, _, logs) = get(&logs_url, Some(MASTER_KEY)).await;
    let logs = logs.as_array().unwrap();
    let hits: Vec<&Value> = logs.iter().filter(|l| l["cache_hit"] == "True").collect();
    assert_eq!(hits.len(), 3, "{logs:?}");
    assert!(hits
        .iter()
        .all(|l| l["spend"] == 0.0 && l["cache_key"].is_string()));
    let miss = logs.iter().find(|l| l["cache_hit"] == "False").unwrap();
    assert!((miss["spend"].as_f64().unwrap() - cost).abs() < 1e-12);
    let spent: f64 = logs.iter().map(|l| l["spend"].as_f64().unwrap()).sum();
    assert!((spent - cost).abs() < 1e-12, "only the miss was charged");
    wait_for(Duration::from_secs(15), || {
        let url = gw.url(&format!("/key/info?key={key}"));
        async move {
            let spend = get(&url, Some(MASTER_KEY)).await.2["info"]["spend"].as_f64();
            spend.is_some_and(|s| (s - cost).abs() < 1e-12)
        }
    })
    .await;

    // Hits still count against rpm limits.
    let limited = new_key(&gw, json!({"rpm_limit": 2})).await;
    clear_of_a_minute_turn(Duration::from_secs(5)).await;
    assert_eq!(chat_call(&gw, &limited, &q).await.0, 200);
    assert_eq!(chat_call(&gw, &limited, &q).await.0, 200);
    assert_eq!(chat_call(&gw, &limited, &q).await.0, 429);
}

#[actix_rt::test]
async fn least_recently_used_entries_are_evicted_at_max_size() {
    let mock = mock();
    let gw = Gateway::start(&local(&mock, "    max_size: 2\n"), &[], &[]);
    let (_, _, one) = chat_call(&gw, MASTER_KEY, &ask("one")).await;
    chat_call(&gw, MASTER_KEY, &ask("two")).await;
    // "one" is used again, so "two" is the least recently used when "three" arrives.
    assert_eq!(
        chat_call(&gw, MASTER_KEY, &ask("one")).await.2["id"],
        one["id"]
    );
    chat_call(&gw, MASTER_KEY, &ask("three")).await;
    assert_eq!(calls(&mock, "mock-gpt").await, 3);
    assert_eq!(
        chat_call(&gw, MASTER_KEY, &ask("one")).await.2["id"],
        one["id"]
    );
    chat_call(&gw, MASTER_KEY, &ask("two")).await;
    assert_eq!(calls(&mock, "mock-gpt").await, 4, "two was evicted");
    let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
    assert!(metrics.contains("tollgate_cache_entries 2"), "{metrics}");
    assert!(
        !metrics.contains("tollgate_cache_evictions_total 0"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn instances_share_entries_through_redis() {
    let mock = mock();
    let ns = namespace();
    let cfg = redis(&mock, &ns, "");
    let a = Gateway::start(&cfg, &[], &[]);
    let b = Gateway::start(&cfg, &[], &[]);
    let (_, h, first) = chat_call(&a, MASTER_KEY, &ask("shared")).await;
    assert!(hdr(&h, "x-litellm-cache-key")
        .unwrap()
        .starts_with(&format!("{ns}:")));
    // The write is off the request path: the other instance sees it a moment later.
    wait_for(Duration::from_secs(15), || {
        let b = &b;
        let id = first["id"].clone();
        async move { chat_call(b, MASTER_KEY, &peek(&ask("shared"))).await.2["id"] == id }
    })
    .await;
    let before = calls(&mock, "mock-gpt").await;
    assert_eq!(
        chat_call(&b, MASTER_KEY, &ask("shared")).await.2["id"],
        first["id"]
    );
    assert_eq!(calls(&mock, "mock-gpt").await, before, "served from Redis");
    let (_, _, body) = get(&a.url("/health/readiness"), None).await;
    assert_eq!(body["cache"], "redis");
    assert_eq!(body["cache_status"], "connected");
}

#[actix_rt::test]
async fn redis_dying_mid_run_serves_without_the_cache() {
    let mock = mock();
    let mut redis = PrivateRedis::start();
    let cfg = format!(
        "{}litellm_settings:\n  cache: true\n  cache_params: {{type: redis, host: 127.0.0.1, port: {}}}\n",
        models(&mock),
        redis.port
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (_, _, first) = chat_call(&gw, MASTER_KEY, &ask("before")).await;
    wait_for(Duration::from_secs(15), || {
        let gw = &gw;
        let id = first["id"].clone();
        async move { chat_call(gw, MASTER_KEY, &peek(&ask("before"))).await.2["id"] == id }
    })
    .await;
    redis.kill();
    let started = std::time::Instant::now();
    for i in 0..6 {
        let (status, _, body) = chat_call(&gw, MASTER_KEY, &ask(&format!("during {i}"))).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let (_, _, body) = get(&gw.url("/health/readiness"), None).await;
    assert!(
        body["cache_status"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{body}"
    );
    let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
    assert!(
        !metrics.contains("tollgate_cache_unavailable_total 0"),
        "{metrics}"
    );
    let (status, _, _) = get(&gw.url("/cache/ping"), Some(MASTER_KEY)).await;
    assert_eq!(status, 503);

    // Back again: the cache works again without a restart.
    redis.resume();
    wait_for(Duration::from_secs(15), || {
        let gw = &gw;
        async move {
            chat_call(gw, MASTER_KEY, &ask("after")).await;
            let (_, h, _) = chat_call(gw, MASTER_KEY, &ask("after")).await;
            hdr(&h, "x-litellm-response-cost").as_deref() == Some("0")
        }
    })
    .await;
}

fn semantic(mock: &Mock, backend: &str) -> String {
    format!(
        "{}litellm_settings:\n  cache: true\n  cache_params:\n{backend}    similarity_threshold: 0.8\n    redis_semantic_cache_embedding_model: mock-embed\n",
        models(mock)
    )
}

async fn semantic_hits_and_misses(gw: &Gateway, mock: &Mock) {
    let (_, _, first) =
        chat_call(gw, MASTER_KEY, &ask("What is the capital city of France?")).await;
    // A near-identical prompt (case, punctuation) is answered with the stored response.
    wait_for(Duration::from_secs(15), || {
        let id = first["id"].clone();
        async move {
            chat_call(
                gw,
                MASTER_KEY,
                &peek(&ask("what is the capital city of france")),
            )
            .await
            .2["id"]
                == id
        }
    })
    .await;
    // An unrelated prompt is not.
    let (_, _, other) = chat_call(gw, MASTER_KEY, &ask("Write a haiku about rust and steel")).await;
    assert_ne!(other["id"], first["id"]);
    // The embeddings came from the embedding model's deployment.
    assert!(calls(mock, "mock-embedding").await >= 2);
}

#[actix_rt::test]
async fn semantic_cache_in_redis_hits_close_prompts_only() {
    let mock = mock();
    let ns = namespace();
    let gw = Gateway::start(
        &semantic(
            &mock,
            &format!(
                "    type: redis-semantic\n    url: {}\n    namespace: {ns}\n",
                redis_url()
            ),
        ),
        &[],
        &[],
    );
    semantic_hits_and_misses(&gw, &mock).await;
    // Another instance finds the vectors persisted in Redis.
    let other = Gateway::start(
        &semantic(
            &mock,
            &format!(
                "    type: redis-semantic\n    url: {}\n    namespace: {ns}\n",
                redis_url()
            ),
        ),
        &[],
        &[],
    );
    let before = calls(&mock, "mock-gpt").await;
    wait_for(Duration::from_secs(15), || {
        let other = &other;
        async move {
            let (_, h, _) = chat_call(
                other,
                MASTER_KEY,
                &ask("What is the capital city of France"),
            )
            .await;
            hdr(&h, "x-litellm-response-cost").as_deref() == Some("0")
        }
    })
    .await;
    assert!(calls(&mock, "mock-gpt").await <= before + 1);
}

#[actix_rt::test]
async fn semantic_cache_in_memory_hits_close_prompts_only() {
    let mock = mock();
    let gw = Gateway::start(&semantic(&mock, "    type: local\n"), &[], &[]);
    semantic_hits_and_misses(&gw, &mock).await;
}

#[actix_rt::test]
async fn the_three_seed_config_forms_enable_the_cache() {
    let mock = mock();
    let url = redis_url();
    let rest = url.trim_start_matches("redis://");
    let (host, port) = rest.split_once(':').unwrap_or((rest, "6379"));
    let port = port.trim_end_matches('/');
    let forms = [
        // litellm_settings.cache: true + cache_params
        format!(
            "{}litellm_settings:\n  cache: true\n  cache_params:\n    type: redis\n    host: {host}\n    port: {port}\n    namespace: {}\n",
            models(&mock),
            namespace()
        ),
        // cache: {type: redis}, Redis from REDIS_HOST / REDIS_PORT
        format!("{}litellm_settings:\n  cache:\n    type: redis\n", models(&mock)),
        // the tutorial's top-level cache_settings + cache_ttl
        format!(
            "{}cache_settings:\n  type: redis\n  host: {host}\n  port: {port}\n  namespace: {}\nlitellm_settings:\n  cache: true\n  cache_ttl: 3600\n",
            models(&mock),
            namespace()
        ),
    ];
    for (i, cfg) in forms.iter().enumerate() {
        let gw = Gateway::start(cfg, &[], &[("REDIS_HOST", host), ("REDIS_PORT", port)]);
        let q = ask(&format!("seed form {i} {}", uuid_like()));
        let (_, h, first) = chat_call(&gw, MASTER_KEY, &q).await;
        assert!(hdr(&h, "x-litellm-cache-key").is_some(), "form {i}");
        wait_for(Duration::from_secs(15), || {
            let gw = &gw;
            let (q, id) = (q.clone(), first["id"].clone());
            async move { chat_call(gw, MASTER_KEY, &peek(&q)).await.2["id"] == id }
        })
        .await;
        let (_, _, body) = get(&gw.url("/health/readiness"), None).await;
        assert_eq!(body["cache"], "redis", "form {i}");
        let logs = gw.proc.logs();
        assert!(
            !logs.lines().any(|l| l.contains("cache")
                && (l.contains("has no effect") || l.contains("unknown config key"))),
            "form {i}: {logs}"
        );
    }
}

#[actix_rt::test]
async fn the_admin_routes_ping_delete_and_flush() {
    let mock = mock();
    // A Redis of its own: flushing must not wipe the entries of tests running beside it.
    let redis = PrivateRedis::start();
    let cfg = format!(
        "{}litellm_settings:\n  cache: true\n  cache_params: {{type: redis, host: 127.0.0.1, port: {}}}\n",
        models(&mock),
        redis.port
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, _, ping) = get(&gw.url("/cache/ping"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{ping}");
    assert_eq!(ping["status"], "healthy");
    assert_eq!(ping["cache_type"], "redis");
    let (status, _, info) = get(&gw.url("/cache/redis/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{info}");
    assert!(info["info"]["redis_version"].is_string(), "{info}");

    let stored = |q: Value| {
        let gw = &gw;
        async move {
            let (_, h, first) = chat_call(gw, MASTER_KEY, &q).await;
            wait_for(Duration::from_secs(15), || {
                let (q, id) = (q.clone(), first["id"].clone());
                async move { chat_call(gw, MASTER_KEY, &peek(&q)).await.2["id"] == id }
            })
            .await;
            (hdr(&h, "x-litellm-cache-key").unwrap(), first)
        }
    };
    let (key, first) = stored(ask("delete me")).await;
    let (status, _, body) = post(
        &gw.url("/cache/delete"),
        Some(MASTER_KEY),
        &json!({"keys": [key]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        chat_call(&gw, MASTER_KEY, &ask("delete me")).await.2["id"],
        first["id"]
    );

    let (_, kept) = stored(ask("flush me")).await;
    let (status, _, _) = post(&gw.url("/cache/flushall"), Some(MASTER_KEY), &json!({})).await;
    assert_eq!(status, 200);
    assert_ne!(
        chat_call(&gw, MASTER_KEY, &ask("flush me")).await.2["id"],
        kept["id"]
    );

    let (status, _, body) = post(
        &gw.url("/cache/delete"),
        Some(MASTER_KEY),
        &json!({"keys": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Not an admin: refused.
    let key = new_key(&gw, json!({})).await;
    assert_eq!(get(&gw.url("/cache/ping"), Some(&key)).await.0, 403);
}

#[actix_rt::test]
async fn without_a_cache_nothing_is_consulted_and_the_routes_say_so() {
    let mock = mock();
    let gw = Gateway::start(&models(&mock), &[], &[]);
    let (_, h, a) = chat_call(&gw, MASTER_KEY, &ask("uncached")).await;
    let (_, _, b) = chat_call(&gw, MASTER_KEY, &ask("uncached")).await;
    assert!(hdr(&h, "x-litellm-cache-key").is_none());
    assert_ne!(a["id"], b["id"]);
    let (status, _, body) = get(&gw.url("/cache/ping"), Some(MASTER_KEY)).await;
    assert_eq!(status, 503, "{body}");
    let (_, _, ready) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(ready["cache"], Value::Null);
}
