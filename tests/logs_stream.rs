//! Live log tailing (`GET /logs/stream`, `tollgate logs`) and JSON logs, against the real binary:
//! who may tail, what a finished request shows (and never shows), debug log lines, a stalled
//! reader that must not slow requests, the CLI, and `json_logs` / `set_verbose`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// An open `/logs/stream`.
struct Tail {
    resp: awc::ClientResponse,
    buffer: String,
    /// Everything read so far, to check what never appears.
    raw: String,
}

/// Open the tail (`query` like `?level=debug`); the status, and the stream when it is 200.
async fn open_tail(gw: &Gateway, key: Option<&str>, query: &str) -> (u16, Option<Tail>) {
    let client = awc::Client::builder().disable_timeout().finish();
    let mut req = client.get(gw.url(&format!("/logs/stream{query}")));
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let tail = Tail {
        resp,
        buffer: String::new(),
        raw: String::new(),
    };
    (status, Some(tail))
}

impl Tail {
    /// Read events (name, JSON data) until `done` holds for one of them; fail after `within`.
    async fn until(
        &mut self,
        within: Duration,
        done: impl Fn(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + within;
        let mut events = Vec::new();
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = None;
                for line in frame.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(d).expect("data is JSON"));
                    }
                }
                if let Some(data) = data {
                    let finished = done(&name, &data);
                    events.push((name, data));
                    if finished {
                        return events;
                    }
                }
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("events never came; so far: {events:?}"));
            match actix_rt::time::timeout(left, self.resp.next()).await {
                Ok(Some(Ok(bytes))) => {
                    let text = String::from_utf8_lossy(&bytes).to_string();
                    self.raw.push_str(&text);
                    self.buffer.push_str(&text);
                }
                Ok(other) => panic!("the stream ended: {other:?}; so far: {events:?}"),
                Err(_) => panic!("events never came; {} so far: {events:?}", events.len()),
            }
        }
    }
}

fn call_id(headers: &Headers) -> String {
    headers
        .get("x-litellm-call-id")
        .expect("call id header")
        .to_str()
        .unwrap()
        .to_string()
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, body) = send("POST", &gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

async fn user_key(gw: &Gateway, user_id: &str, role: &str) -> String {
    let (status, body) = send(
        "POST",
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_id": user_id, "user_role": role}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

#[actix_rt::test]
async fn admins_see_each_finished_request_without_key_or_prompt() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);

    // Who may tail: proxy admins only.
    assert_eq!(open_tail(&gw, None, "").await.0, 401);
    let internal = user_key(&gw, "tail-internal", "internal_user").await;
    assert_eq!(open_tail(&gw, Some(&internal), "").await.0, 403);
    let viewer = user_key(&gw, "tail-viewer", "proxy_admin_viewer").await;
    assert_eq!(open_tail(&gw, Some(&viewer), "").await.0, 403);
    let admin = user_key(&gw, "tail-admin", "proxy_admin").await;
    assert_eq!(open_tail(&gw, Some(&admin), "").await.0, 200);
    assert_eq!(
        open_tail(&gw, Some(MASTER_KEY), "?level=verbose").await.0,
        400
    );

    // A request made before connecting is not replayed.
    let key = new_key(&gw, json!({"key_alias": "tail-ci"})).await;
    let (status, _, _) = post(&gw.url("/chat/completions"), Some(&key), &chat("mock-gpt")).await;
    assert_eq!(status, 200);

    let (_, tail) = open_tail(&gw, Some(MASTER_KEY), "").await;
    let mut tail = tail.expect("the master key tails");
    let mut prompt = chat("mock-gpt");
    prompt["messages"][0]["content"] = json!("the secret plan is tangerine");
    let (status, headers, _) = post(&gw.url("/chat/completions"), Some(&key), &prompt).await;
    assert_eq!(status, 200);
    let ok_id = call_id(&headers);
    let mut failing = chat("mock-gpt");
    failing["mock_fail"] = json!("500");
    failing["num_retries"] = json!(0);
    let (status, headers, _) = post(&gw.url("/chat/completions"), Some(&key), &failing).await;
    assert_eq!(status, 500);
    let failed_id = call_id(&headers);

    let events = tail
        .until(Duration::from_secs(15), |_, v| {
            v["call_id"] == failed_id.as_str()
        })
        .await;
    assert!(
        events.iter().all(|(name, _)| name == "message"),
        "{events:?}"
    );
    assert_eq!(
        events.len(),
        2,
        "only the requests made after connecting: {events:?}"
    );
    let ok = &events[0].1;
    assert_eq!(ok["call_id"], ok_id.as_str());
    assert_eq!(ok["status"], "success");
    assert_eq!(ok["status_code"], 200);
    assert_eq!(ok["model"], "mock-gpt");
    assert_eq!(ok["model_group"], "mock-gpt");
    assert!(
        ok["deployment"].as_str().is_some_and(|d| !d.is_empty()),
        "{ok}"
    );
    assert_eq!(ok["key_alias"], "tail-ci");
    assert!(ok["latency_ms"].is_u64(), "{ok}");
    assert!(ok["prompt_tokens"].as_u64().is_some_and(|t| t > 0), "{ok}");
    assert!(
        ok["completion_tokens"].as_u64().is_some_and(|t| t > 0),
        "{ok}"
    );
    assert!(ok["cost"].is_number(), "{ok}");
    assert_eq!(ok["cache_hit"], false);
    assert_eq!(ok["error"], Value::Null);
    let time = ok["time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "ISO 8601: {time}"
    );
    let failed = &events[1].1;
    assert_eq!(failed["status"], "failure");
    assert_eq!(failed["status_code"], 500);
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );

    for secret in [
        key.as_str(),
        MASTER_KEY,
        "tangerine",
        "Say hello",
        "sk-mock-upstream-secret-42",
    ] {
        assert!(
            !tail.raw.contains(secret),
            "{secret} in the tail: {}",
            tail.raw
        );
    }
}

#[actix_rt::test]
async fn debug_level_adds_the_gateways_log_lines() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let (_, tail) = open_tail(&gw, Some(MASTER_KEY), "?level=debug").await;
    let mut tail = tail.expect("tail");
    let (status, headers, _) = post(
        &gw.url("/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    let id = call_id(&headers);
    // The gateway logs each finished request at debug level, with its call id.
    let events = tail
        .until(Duration::from_secs(15), |name, v| {
            name == "log" && v["fields"]["call_id"] == id.as_str()
        })
        .await;
    let (_, line) = events.last().unwrap();
    assert_eq!(line["level"], "debug");
    assert!(
        line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tollgate")),
        "{line}"
    );
    assert!(line["message"].is_string(), "{line}");
    assert!(line["fields"]["prompt_tokens"].is_u64(), "{line}");
    // The request's own event follows its log line.
    if !events
        .iter()
        .any(|(name, v)| name == "message" && v["call_id"] == id.as_str())
    {
        tail.until(Duration::from_secs(10), |name, v| {
            name == "message" && v["call_id"] == id.as_str()
        })
        .await;
    }
    for secret in [MASTER_KEY, "sk-mock-upstream-secret-42"] {
        assert!(
            !tail.raw.contains(secret),
            "{secret} in the tail: {}",
            tail.raw
        );
    }
}

#[actix_rt::test]
async fn a_reader_that_never_reads_does_not_slow_requests() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    // Opened and never read, at the busiest level (a log line and an event per request).
    let (_, stalled) = open_tail(&gw, Some(MASTER_KEY), "?level=debug").await;
    let mut stalled = stalled.expect("tail");
    let url = gw.url("/chat/completions");
    let body = chat("mock-gpt");
    let started = Instant::now();
    for round in 0..30 {
        let batch = (0..10).map(|_| post(&url, Some(MASTER_KEY), &body));
        for (status, _, body) in futures_util::future::join_all(batch).await {
            assert_eq!(status, 200, "round {round}: {body}");
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "300 requests took {took:?}");
    // The gateway still serves a new reader while the stalled one is open.
    let (_, fresh) = open_tail(&gw, Some(MASTER_KEY), "").await;
    let mut fresh = fresh.expect("tail");
    let (status, headers, _) = post(&url, Some(MASTER_KEY), &chat("mock-gpt")).await;
    assert_eq!(status, 200);
    let id = call_id(&headers);
    fresh
        .until(Duration::from_secs(15), |_, v| v["call_id"] == id.as_str())
        .await;
    // The stalled reader, reading at last, gets the events from where it stopped (the socket
    // buffers held them; a reader more than 1024 events behind skips and is told, see the unit
    // tests of `observability::tail`).
    let events = stalled
        .until(Duration::from_secs(15), |name, _| name == "message")
        .await;
    assert_eq!(events.last().unwrap().1["status_code"], 200);
}

#[actix_rt::test]
async fn tollgate_logs_prints_one_line_per_request() {
    use std::io::BufRead;
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);

    // A refused key: exit code 1 at once.
    let (code, _, err) = run_to_end(
        &[
            "logs",
            "--url",
            &gw.proc.url,
            "--key",
            "sk-not-a-key-0000",
            "--seconds",
            "5",
        ],
        &[],
        gw.dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401"), "{err}");

    let mut child = std::process::Command::new(bin())
        .args(["logs", "--url", &gw.proc.url, "--seconds", "8"])
        .env("LITELLM_MASTER_KEY", MASTER_KEY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tollgate logs");
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    // Requests until one shows (the command may still be connecting for the first ones).
    let started = Instant::now();
    let printed = loop {
        let (status, headers, _) = post(
            &gw.url("/chat/completions"),
            Some(MASTER_KEY),
            &chat("mock-gpt"),
        )
        .await;
        assert_eq!(status, 200);
        let id = call_id(&headers);
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(&id))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "no line printed: {:?}",
            lines.lock().unwrap()
        );
    };
    // time status_code model_group latency_ms cost key_alias call_id
    let fields: Vec<&str> = printed.split(' ').collect();
    assert_eq!(fields.len(), 7, "{printed}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(fields[0]).is_ok(),
        "{printed}"
    );
    assert_eq!(fields[1..3], ["200", "mock-gpt"], "{printed}");
    assert!(fields[3].ends_with("ms"), "{printed}");
    assert!(fields[4].parse::<f64>().is_ok(), "{printed}");
    // Without --follow it exits by itself once its time is over.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tollgate logs did not exit");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(!lines.lock().unwrap().iter().any(|l| l.contains(MASTER_KEY)));
}

/// Every line the gateway logged is one JSON object; the levels present.
fn json_log_levels(logs: &str) -> Vec<String> {
    let mut levels = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        levels.push(v["level"].as_str().unwrap_or_default().to_string());
    }
    levels
}

#[actix_rt::test]
async fn json_logs_are_one_object_per_line_and_set_verbose_is_debug() {
    let mock = Mock::start(&[]);
    let verbose = format!(
        "{}litellm_settings:\n  json_logs: true\n  set_verbose: true\n",
        basic_config(&mock)
    );
    let gw = Gateway::start(&verbose, &[], &[]);
    let (status, _, _) = post(
        &gw.url("/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(10), || {
        let logs = gw.proc.logs();
        async move { logs.contains("\"DEBUG\"") }
    })
    .await;
    let levels = json_log_levels(&gw.proc.logs());
    assert!(levels.iter().any(|l| l == "DEBUG"), "{levels:?}");
    assert!(levels.iter().any(|l| l == "INFO"), "{levels:?}");
    assert!(!gw.proc.logs().contains(MASTER_KEY));

    // JSON_LOGS=True without set_verbose: JSON lines, no debug ones.
    let gw = Gateway::start(&basic_config(&mock), &[], &[("JSON_LOGS", "True")]);
    let (status, _, _) = post(
        &gw.url("/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(10), || {
        let logs = gw.proc.logs();
        async move { logs.contains("\"INFO\"") }
    })
    .await;
    let levels = json_log_levels(&gw.proc.logs());
    assert!(!levels.iter().any(|l| l == "DEBUG"), "{levels:?}");
}
