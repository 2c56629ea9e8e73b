//! Budgets, limits and spend that a client cannot walk around: a stream closed before its usage
//! chunk is still charged, parallel requests cannot overshoot a budget, one unstorable spend row
//! never blocks the others, client errors never cool a shared deployment, and per-model limits
//! hold under every alias of the model group.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `priced` and `slow-priced` (400 ms to the head) at 0.001 / 0.002 USD a token, an `openai/*`
/// wildcard, and `model_group_alias` `priced-alias` → `priced`.
fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: slow-priced
    litellm_params: {{model: openai/slow-priced, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002, extra_headers: {{x-mock-latency-ms: "400"}}}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: {base}, api_key: sk-x}}
router_settings:
  model_group_alias: {{priced-alias: priced}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base()
    )
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, _, key) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{key}");
    key["key"].as_str().unwrap().to_string()
}

async fn spend_logs(gw: &Gateway, key: &str) -> Vec<Value> {
    let (_, _, logs) = get(
        &gw.url(&format!("/spend/logs?api_key={key}")),
        Some(MASTER_KEY),
    )
    .await;
    logs.as_array().cloned().unwrap_or_default()
}

async fn key_spend(gw: &Gateway, key: &str) -> f64 {
    let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    info["info"]["spend"].as_f64().unwrap_or(0.0)
}

/// POST a streaming chat request over a raw socket and hang up as soon as the last content chunk
/// (the one before the chunk with the `finish_reason`) begins to arrive: before the finish, the
/// usage chunk and `[DONE]`. Reading in small pieces leaves the rest of that chunk unread, so the
/// close resets the connection, as an aborting client's does. `chunks` is the mock's
/// `--stream-chunks`.
fn stream_and_hang_up(url: &str, key: &str, body: &Value, chunks: usize) -> String {
    let addr = url.trim_start_matches("http://");
    let addr = addr.split('/').next().unwrap().to_string();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 16];
    for _ in 0..100_000 {
        let n = sock.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        // The role chunk carries `"content":""`, then one chunk per content piece.
        let contents = text.matches("\"content\":\"").count();
        assert!(contents <= chunks + 1, "more content than expected: {text}");
        if contents == chunks + 1 {
            assert!(
                !text.contains("\"finish_reason\":\"stop\""),
                "hung up too late: {text}"
            );
            drop(sock);
            return text.into_owned();
        }
    }
    panic!(
        "not all content arrived: {}",
        String::from_utf8_lossy(&seen)
    );
}

/// F6: a client that hangs up after the last content chunk, before the usage chunk, is charged
/// for the prompt and the relayed completion, and that spend counts against its budget.
#[actix_rt::test]
async fn a_stream_closed_before_its_usage_chunk_is_charged_and_counts_against_the_budget() {
    let mock = Mock::start(&["--chunk-delay-ms", "300", "--stream-chunks", "2"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"max_budget": 0.000001})).await;
    let mut body = chat("priced");
    body["stream"] = json!(true);
    let url = gw.url("/v1/chat/completions");
    let relayed = stream_and_hang_up(&url, &key, &body, 2);
    assert!(relayed.contains("\"content\""), "{relayed}");

    wait_for(Duration::from_secs(10), || async {
        spend_logs(&gw, &key).await.len() == 1
    })
    .await;
    let row = spend_logs(&gw, &key).await.remove(0);
    assert!(row["prompt_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
    wait_for(Duration::from_secs(10), || async {
        key_spend(&gw, &key).await > 0.0
    })
    .await;

    // The budget that stream spent now refuses the key, streams and plain calls alike.
    let (status, _, err) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["type"], "budget_exceeded", "{err}");
}

/// F6, the provider's side: a stream the provider cuts before its usage chunk is charged too.
#[actix_rt::test]
async fn a_stream_cut_by_the_provider_is_charged_for_its_prompt_and_relayed_text() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({})).await;
    let mut body = chat("priced");
    body["stream"] = json!(true);
    body["mock_fail"] = json!("cut");
    let (status, _, text) = stream_text(&gw.url("/v1/chat/completions"), Some(&key), &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("stream_interrupted"), "{text}");
    wait_for(Duration::from_secs(10), || async {
        spend_logs(&gw, &key).await.len() == 1
    })
    .await;
    let row = spend_logs(&gw, &key).await.remove(0);
    assert_eq!(row["status"], "failure", "{row}");
    assert!(row["prompt_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
}

/// F21: 30 parallel calls against a budget of a few calls: the in-flight estimates are reserved,
/// so at most N + 1 calls are served and the spend ends within one call of the budget.
#[actix_rt::test]
async fn parallel_requests_cannot_overshoot_a_budget() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let mut body = chat("slow-priced");
    body["max_tokens"] = json!(64);
    let url = gw.url("/v1/chat/completions");
    let (status, headers, _) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let one: f64 = headers
        .get("x-litellm-response-cost")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(one > 0.0);
    let budget = 3.0 * one;
    let key = new_key(&gw, json!({"max_budget": budget})).await;

    let calls = (0..30).map(|_| {
        let (url, key, body) = (url.clone(), key.clone(), body.clone());
        async move { post(&url, Some(&key), &body).await.0 }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 400).count();
    assert_eq!(served + refused, 30, "{statuses:?}");
    assert!((1..=4).contains(&served), "{served} served: {statuses:?}");

    wait_for(Duration::from_secs(10), || async {
        spend_logs(&gw, &key).await.len() == served
    })
    .await;
    let spent: f64 = spend_logs(&gw, &key)
        .await
        .iter()
        .map(|l| l["spend"].as_f64().unwrap())
        .sum();
    assert!(
        spent <= budget + one + 1e-12,
        "spent {spent} of a {budget} budget (one call: {one})"
    );
}

/// F14: 404s for models the client names on a wildcard, and other client errors, never cool the
/// shared deployment down.
#[actix_rt::test]
async fn client_errors_on_a_wildcard_never_cool_the_deployment() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    for model in [
        "openai/mock-fail-404",
        "openai/mock-fail-400",
        "openai/mock-fail-413",
        "openai/mock-fail-422",
        "openai/mock-fail-content-policy",
    ] {
        for _ in 0..5 {
            let mut body = chat(model);
            body["num_retries"] = json!(0);
            let (status, _, err) = post(&url, Some(MASTER_KEY), &body).await;
            assert!((400..500).contains(&status), "{model}: {status} {err}");
            assert_ne!(status, 429, "{model}: {err}");
        }
    }
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("openai/mock-gpt")).await;
    assert_eq!(
        status, 200,
        "the wildcard was cooled by client errors: {body}"
    );
}

/// F15: `model_rpm_limit` and `model_max_budget` key on the model group, whatever alias names it.
#[actix_rt::test]
async fn per_model_limits_hold_under_router_and_key_aliases() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // The router's model_group_alias.
    let key = new_key(&gw, json!({"model_rpm_limit": {"priced": 1}})).await;
    assert_eq!(post(&url, Some(&key), &chat("priced")).await.0, 200);
    let (status, _, err) = post(&url, Some(&key), &chat("priced-alias")).await;
    assert_eq!(status, 429, "{err}");

    // A key alias.
    let key = new_key(
        &gw,
        json!({"model_rpm_limit": {"priced": 1}, "aliases": {"my-priced": "priced"}}),
    )
    .await;
    assert_eq!(post(&url, Some(&key), &chat("my-priced")).await.0, 200);
    let (status, _, err) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 429, "{err}");

    // A key alias to the router's alias, and a per-model budget.
    let key = new_key(
        &gw,
        json!({"model_max_budget": {"priced": {"budget_limit": 0.000001, "time_period": "1d"}},
               "aliases": {"mine": "priced-alias"}}),
    )
    .await;
    assert_eq!(post(&url, Some(&key), &chat("priced")).await.0, 200);
    let (status, _, err) = post(&url, Some(&key), &chat("mine")).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Max Budget for Model"),
        "{err}"
    );
}

fn row(request_id: &str, api_key: &str, end_user: Option<&str>) -> tollgate::store::SpendLog {
    tollgate::store::SpendLog {
        request_id: request_id.into(),
        call_type: "acompletion".into(),
        api_key: api_key.into(),
        spend: 0.5,
        total_tokens: 10,
        prompt_tokens: 7,
        completion_tokens: 3,
        start_time: 1_700_000_000_000,
        end_time: 1_700_000_000_100,
        model: "openai/priced-model".into(),
        model_id: None,
        model_group: Some("priced".into()),
        api_base: None,
        user_id: None,
        team_id: None,
        organization_id: None,
        end_user: end_user.map(str::to_string),
        status: "success".into(),
        metadata: "{}".into(),
        response_id: None,
        cache_hit: false,
        cache_key: None,
        ..Default::default()
    }
}

/// F7: on Postgres, a spend row the database cannot store (a NUL in a text column) is set aside
/// in the dead-letter file; the rows of other tenants, in the same batch and later, are stored.
#[actix_rt::test]
async fn an_unstorable_spend_row_is_set_aside_and_never_blocks_the_others() {
    let pg = FreshPostgres::create();
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    std::env::set_var(tollgate::spend::DEAD_LETTER_ENV, &dead_letter);
    let url = tollgate::database::url_for(Some(pg.url.clone())).unwrap();
    let db = Arc::new(tollgate::database::Database::start(url, Default::default()).unwrap());
    db.open_pool().unwrap();
    let ledger = Arc::new(tollgate::spend::Ledger::default());
    let tracker = tollgate::spend::start(
        db.clone(),
        Duration::from_millis(50),
        ledger.clone(),
        None,
        true,
    );
    tracker.record(row("before", "tenant-a", None));
    tracker.record(row("poison", "tenant-b", Some("a\u{0}b")));
    tracker.record(row("same-batch", "tenant-c", None));
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    tracker.record(row("later", "tenant-d", None));

    let store = db.store().unwrap().clone();
    wait_for(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let rows = store
                .list_spend_logs(&tollgate::store::SpendFilter {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            rows.len() == 3
        }
    })
    .await;
    let mut ids: Vec<String> = store
        .list_spend_logs(&tollgate::store::SpendFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["before", "later", "same-batch"]);
    assert_eq!(ledger.dead_lettered(), 1);
    let set_aside = std::fs::read_to_string(&dead_letter).expect("dead-letter file");
    let lines: Vec<Value> = set_aside
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{set_aside}");
    assert_eq!(lines[0]["row"]["request_id"], "poison");
    assert_eq!(lines[0]["row"]["end_user"], "a\u{0}b");
    assert!(!lines[0]["reason"].as_str().unwrap().is_empty());
}

/// The plain-call side of F6: a client that hangs up while the provider is still working on a
/// non-streaming request does not escape the charge. The gateway finishes the call the provider
/// is billing for and records it in full, against the budget.
#[actix_rt::test]
async fn a_plain_call_abandoned_by_its_client_is_still_charged() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"max_budget": 0.000001})).await;
    let url = gw.url("/v1/chat/completions");
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let body = chat("slow-priced").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes()).unwrap();
    // The mock answers after 400 ms; hang up well before.
    std::thread::sleep(Duration::from_millis(100));
    sock.shutdown(std::net::Shutdown::Both).unwrap();
    drop(sock);

    wait_for(Duration::from_secs(10), || async {
        spend_logs(&gw, &key).await.len() == 1
    })
    .await;
    let row = spend_logs(&gw, &key).await.remove(0);
    assert_eq!(row["status"], "success", "{row}");
    assert!(row["prompt_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["completion_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
    wait_for(Duration::from_secs(10), || async {
        key_spend(&gw, &key).await > 0.0
    })
    .await;
    let (status, _, err) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["type"], "budget_exceeded", "{err}");
}

/// F7 through the running gateway: a spend row the database refuses (here a constraint an
/// operator added) is set aside in the dead-letter file and counted on `/metrics`; the other
/// rows are stored.
#[actix_rt::test]
async fn a_row_the_database_refuses_is_dead_lettered_and_counted_on_metrics() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let dead_letter = tempfile::tempdir().unwrap();
    let file = dead_letter.path().join("dead.jsonl");
    let gw = Gateway::start(
        &format!("{}  database_url: {}\n", config(&mock), pg.url),
        &[],
        &[("TOLLGATE_SPEND_DEAD_LETTER", file.to_str().unwrap())],
    );
    let out = std::process::Command::new("psql")
        .args([
            pg.url.as_str(),
            "-qAtX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "ALTER TABLE spend_logs ADD CONSTRAINT refuse_one CHECK (end_user IS DISTINCT FROM 'refused-by-db')",
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = new_key(&gw, json!({})).await;
    let url = gw.url("/v1/chat/completions");
    let mut refused = chat("priced");
    refused["user"] = json!("refused-by-db");
    for body in [chat("priced"), refused, chat("priced")] {
        let (status, _, resp) = post(&url, Some(&key), &body).await;
        assert_eq!(status, 200, "{resp}");
    }
    wait_for(Duration::from_secs(10), || async {
        spend_logs(&gw, &key).await.len() == 2
    })
    .await;
    wait_for(Duration::from_secs(10), || async {
        let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
        metrics.contains("tollgate_spend_rows_dead_lettered_total 1")
    })
    .await;
    let set_aside = std::fs::read_to_string(&file).expect("dead-letter file");
    assert_eq!(set_aside.lines().count(), 1, "{set_aside}");
    assert!(set_aside.contains("refused-by-db"), "{set_aside}");
    assert!(spend_logs(&gw, &key)
        .await
        .iter()
        .all(|r| r["end_user"] != "refused-by-db"));
}
