//! OpenAI's files and batches APIs (`/v1/files`, `/v1/batches`, bare and under `/v1`) against
//! the mock provider: uploads, lists, reads, downloads and deletes through a virtual key; every
//! other key gets a 404 on each; batches from the caller's own files only; a completed batch's
//! cost in exactly one spend-log row however many reads race; cancels; model access and budgets;
//! the deployment's credentials upstream, never the virtual key; Azure's URL layout.

mod common;

use common::*;
use serde_json::{json, Value};

const UPSTREAM_KEY: &str = "sk-upstream-files-secret";

fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}
      api_key: {UPSTREAM_KEY}
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
  - model_name: gpt-batch-priced
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}
      api_key: {UPSTREAM_KEY}
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
      input_cost_per_token_batches: 0.0001
      output_cost_per_token_batches: 0.0003
  - model_name: azure-gpt
    litellm_params:
      model: azure/my-batch-deployment
      api_base: {root}
      api_key: azure-resource-key
      api_version: 2024-10-21
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-latest, api_base: {base}, api_key: sk-x}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base(),
        root = mock.proc.url,
    )
}

/// Two chat requests; each line's prompt is `ceil(5 / 4) + 3 = 5` tokens at the mock, and its
/// reply (`one two three`) 3 tokens.
const INPUT: &str = concat!(
    r#"{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"mock_reply":"one two three"}}"#,
    "\n",
    r#"{"custom_id":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"world"}],"mock_reply":"one two three"}}"#,
    "\n"
);

/// A `multipart/form-data` body: text fields, then the file part `file`.
fn form(fields: &[(&str, &str)], data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "files-test-boundary-1f0c";
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

/// Upload `INPUT` with extra form fields; (status, body).
async fn upload(gw: &Gateway, path: &str, key: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("purpose", "batch")];
    all.extend_from_slice(fields);
    let (content_type, body) = form(&all, INPUT.as_bytes());
    let (status, _, out) = post_raw(
        &gw.url(path),
        Some(key),
        body,
        &[("content-type", content_type.as_str())],
    )
    .await;
    (status, out)
}

/// A raw GET: (status, content type, bytes).
async fn get_bytes(url: &str, key: &str) -> (u16, String, Vec<u8>) {
    let mut resp = client()
        .get(url)
        .insert_header(("authorization", format!("Bearer {key}")))
        .send()
        .await
        .expect("request sent");
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.body().await.expect("body").to_vec();
    (resp.status().as_u16(), content_type, body)
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, _, key) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{key}");
    key["key"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    assert_eq!(list["object"], "list", "{list}");
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_not_found(status: u16, out: &Value, what: &str) {
    assert_eq!(status, 404, "{what}: {out}");
    assert_envelope(out);
}

/// The upstream got the deployment's key, and nothing of the virtual key.
async fn assert_upstream_credentials(mock: &Mock, virtual_key: &str) {
    let sent = mock.last_request().await;
    assert_eq!(
        sent["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}"),
        "{sent}"
    );
    assert!(
        !sent["headers"].to_string().contains(virtual_key),
        "the virtual key went upstream: {sent}"
    );
}

#[actix_rt::test]
async fn files_round_trip_through_a_virtual_key_and_are_hidden_from_other_keys() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let owner = new_key(&gw, json!({"models": ["gpt"]})).await;
    let other = new_key(&gw, json!({"models": ["gpt"]})).await;

    let (status, file) = upload(&gw, "/v1/files", &owner, &[("model", "gpt")]).await;
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("file-"), "{file}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["bytes"], INPUT.len());
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/files");
    let text = sent["body"].as_str().expect("a form");
    assert!(text.contains(INPUT), "the file went upstream intact");
    assert!(
        !text.contains("name=\"model\""),
        "routing fields stay at the gateway"
    );
    assert_upstream_credentials(&mock, &owner).await;
    // Without a model, the first OpenAI or Azure deployment the key may use takes the file.
    let (status, second) = upload(&gw, "/files", &owner, &[]).await;
    assert_eq!(status, 200, "{second}");
    let second_id = second["id"].as_str().unwrap().to_string();

    // The owner lists, reads and downloads its files, bare and under /v1.
    for path in ["/v1/files", "/files"] {
        let (status, _, list) = get(&gw.url(path), Some(&owner)).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            ids(&list),
            vec![second_id.clone(), id.clone()],
            "newest first"
        );
    }
    let (status, _, list) = get(&gw.url("/v1/files?limit=1"), Some(&owner)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&list), vec![second_id.clone()]);
    assert_eq!(list["has_more"], true);
    let (_, _, list) = get(
        &gw.url(&format!("/v1/files?limit=1&after={second_id}")),
        Some(&owner),
    )
    .await;
    assert_eq!(ids(&list), vec![id.clone()]);
    for path in [format!("/v1/files/{id}"), format!("/files/{id}")] {
        let (status, _, out) = get(&gw.url(&path), Some(&owner)).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["id"], id.as_str());
    }
    let (status, _, bytes) = get_bytes(&gw.url(&format!("/v1/files/{id}/content")), &owner).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, INPUT.as_bytes());
    assert_eq!(
        mock.last_request().await["path"],
        format!("/v1/files/{id}/content")
    );
    assert_upstream_credentials(&mock, &owner).await;

    // Another key: not in its list, and a 404 on every call, as for an id that does not exist.
    let (_, _, list) = get(&gw.url("/v1/files"), Some(&other)).await;
    assert!(ids(&list).is_empty(), "{list}");
    let (status, _, out) = get(&gw.url(&format!("/v1/files/{id}")), Some(&other)).await;
    assert_not_found(status, &out, "retrieve");
    let (status, _, out) = get(&gw.url(&format!("/v1/files/{id}/content")), Some(&other)).await;
    assert_not_found(status, &out, "content");
    let (status, out) = send(
        "DELETE",
        &gw.url(&format!("/v1/files/{id}")),
        Some(&other),
        &json!({}),
    )
    .await;
    assert_not_found(status, &out, "delete");
    let (status, _, out) = get(&gw.url("/v1/files/file-does-not-exist"), Some(&owner)).await;
    assert_not_found(status, &out, "unknown id");

    // The master key reaches every file.
    let (status, _, out) = get(&gw.url(&format!("/v1/files/{id}")), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{out}");
    let (_, _, list) = get(&gw.url("/v1/files"), Some(MASTER_KEY)).await;
    assert_eq!(ids(&list).len(), 2, "{list}");

    // The owner deletes it: gone upstream and here.
    let (status, out) = send(
        "DELETE",
        &gw.url(&format!("/v1/files/{id}")),
        Some(&owner),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["deleted"], true);
    let (status, _, out) = get(&gw.url(&format!("/v1/files/{id}")), Some(&owner)).await;
    assert_not_found(status, &out, "deleted");

    // Each upload left a zero-cost `acreate_file` row for the key.
    let rows = spend_logs_when(&gw, &format!("api_key={owner}"), 2).await;
    for row in &rows {
        assert_eq!(row["call_type"], "acreate_file", "{row}");
        assert_eq!(row["spend"].as_f64(), Some(0.0), "{row}");
        assert_eq!(row["model_group"], "gpt", "{row}");
    }
}

#[actix_rt::test]
async fn uploads_need_model_access_and_a_file() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"models": ["gpt"]})).await;
    let (status, out) = upload(&gw, "/v1/files", &key, &[("model", "azure-gpt")]).await;
    assert_eq!(status, 401, "another group: {out}");
    assert_envelope(&out);
    let (status, out) = upload(
        &gw,
        "/v1/files",
        &key,
        &[("target_model_names", "azure-gpt,gpt")],
    )
    .await;
    assert_eq!(status, 401, "LiteLLM's managed-file field: {out}");
    let (status, out) = upload(&gw, "/v1/files", MASTER_KEY, &[("model", "claude")]).await;
    assert_eq!(status, 400, "no OpenAI or Azure deployment: {out}");
    assert_envelope(&out);
    let (status, out) = upload(
        &gw,
        "/v1/files",
        &key,
        &[("custom_llm_provider", "bedrock")],
    )
    .await;
    assert_eq!(status, 400, "{out}");
    let (status, _, out) = post(
        &gw.url("/v1/files"),
        Some(&key),
        &json!({"purpose": "batch"}),
    )
    .await;
    assert_eq!(status, 400, "not a form: {out}");
    assert_envelope(&out);
    let (status, _, out) = post(&gw.url("/v1/files"), None, &json!({})).await;
    assert_eq!(status, 401, "{out}");
}

/// Poll a batch (as `key`) until its status is `status`.
async fn wait_for_status(gw: &Gateway, key: &str, id: &str, status: &str) -> Value {
    let url = gw.url(&format!("/v1/batches/{id}"));
    let mut last = Value::Null;
    for _ in 0..100 {
        let (code, _, out) = get(&url, Some(key)).await;
        assert_eq!(code, 200, "{out}");
        if out["status"] == status {
            return out;
        }
        last = out;
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("batch never reached {status}: {last}");
}

#[actix_rt::test]
async fn a_completed_batch_records_its_cost_once_for_its_owner_on_sqlite() {
    let mock = Mock::start(&["--batch-delay-ms", "400"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    completed_batch_cost(&gw, &mock).await;
}

#[actix_rt::test]
async fn a_completed_batch_records_its_cost_once_for_its_owner_on_postgres() {
    let mock = Mock::start(&["--batch-delay-ms", "400"]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(
        &format!("{}  database_url: {}\n", config(&mock), pg.url),
        &[],
        &[],
    );
    completed_batch_cost(&gw, &mock).await;
}

async fn completed_batch_cost(gw: &Gateway, mock: &Mock) {
    let owner = new_key(gw, json!({"models": ["gpt", "gpt-batch-priced"]})).await;
    let other = new_key(gw, json!({"models": ["gpt"]})).await;
    let (status, file) = upload(gw, "/v1/files", &owner, &[("model", "gpt")]).await;
    assert_eq!(status, 200, "{file}");
    let file_id = file["id"].as_str().unwrap();

    // Another key cannot use the owner's file.
    let create = json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": {"job": "nightly"}});
    let (status, _, out) = post(&gw.url("/v1/batches"), Some(&other), &create).await;
    assert_not_found(status, &out, "another key's input file");

    let (status, _, batch) = post(&gw.url("/v1/batches"), Some(&owner), &create).await;
    assert_eq!(status, 200, "{batch}");
    let id = batch["id"].as_str().unwrap().to_string();
    assert_eq!(batch["object"], "batch");
    assert_eq!(batch["status"], "validating");
    assert_eq!(batch["input_file_id"], file_id);
    assert_eq!(batch["metadata"]["job"], "nightly");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/batches");
    assert_eq!(sent["body"]["input_file_id"], file_id);
    assert_upstream_credentials(mock, &owner).await;

    // Another key: a 404 on the batch, and not in its list.
    let (status, _, out) = get(&gw.url(&format!("/v1/batches/{id}")), Some(&other)).await;
    assert_not_found(status, &out, "retrieve");
    let (status, _, out) = post(
        &gw.url(&format!("/v1/batches/{id}/cancel")),
        Some(&other),
        &json!({}),
    )
    .await;
    assert_not_found(status, &out, "cancel");
    let (_, _, list) = get(&gw.url("/v1/batches"), Some(&other)).await;
    assert!(ids(&list).is_empty(), "{list}");

    // The batch completes unseen; then many reads race to see it first (the owner, the master
    // key, the list): its output is downloaded and its cost recorded once.
    actix_rt::time::sleep(std::time::Duration::from_millis(700)).await;
    let reads = (0..8).map(|i| {
        let url = if i % 3 == 2 {
            gw.url("/batches")
        } else {
            gw.url(&format!("/batches/{id}"))
        };
        let key = if i % 2 == 0 {
            owner.clone()
        } else {
            MASTER_KEY.to_string()
        };
        async move { get(&url, Some(&key)).await.0 }
    });
    for status in futures_util::future::join_all(reads).await {
        assert_eq!(status, 200);
    }
    let done = wait_for_status(gw, &owner, &id, "completed").await;
    let logs = gw.proc.logs();
    assert_eq!(
        logs.matches("batch cost recorded").count(),
        1,
        "one claim wins: {logs}"
    );
    let rows = spend_logs_when(gw, &format!("request_id={id}_batch_cost"), 1).await;
    let row = &rows[0];
    assert_eq!(row["call_type"], "aretrieve_batch", "{row}");
    assert_eq!(row["prompt_tokens"], 10, "{row}");
    assert_eq!(row["completion_tokens"], 6, "{row}");
    // Half the regular prices: 10 × 0.0005 + 6 × 0.001.
    assert!(
        (row["spend"].as_f64().unwrap() - 0.011).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(row["model_group"], "gpt", "{row}");
    // Charged to the owner, though the master key read it too.
    let owner_rows = spend_logs_when(gw, &format!("api_key={owner}"), 3).await;
    let mut types: Vec<&str> = owner_rows
        .iter()
        .map(|r| r["call_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["acreate_batch", "acreate_file", "aretrieve_batch"]);
    actix_rt::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, _, again) = get(&gw.url(&format!("/v1/batches/{id}")), Some(&owner)).await;
    assert_eq!(again["status"], "completed");
    actix_rt::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, _, rows) = get(
        &gw.url(&format!("/spend/logs?request_id={id}_batch_cost")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "still one row: {rows}");

    // The output file is the owner's: it downloads it, another key gets a 404.
    let output = done["output_file_id"].as_str().expect("output file");
    let (status, _, bytes) =
        get_bytes(&gw.url(&format!("/v1/files/{output}/content")), &owner).await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["response"]["body"]["usage"]["completion_tokens"],
        3
    );
    let (status, _, out) = get(
        &gw.url(&format!("/v1/files/{output}/content")),
        Some(&other),
    )
    .await;
    assert_not_found(status, &out, "another key's output file");
    let (_, _, list) = get(&gw.url("/v1/batches"), Some(&owner)).await;
    assert_eq!(ids(&list), vec![id.clone()]);

    // A deployment with batch prices of its own is billed at them.
    let (_, file) = upload(gw, "/v1/files", &owner, &[("model", "gpt-batch-priced")]).await;
    let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (status, _, batch) = post(&gw.url("/batches"), Some(&owner), &create).await;
    assert_eq!(status, 200, "{batch}");
    let priced = batch["id"].as_str().unwrap();
    wait_for_status(gw, &owner, priced, "completed").await;
    let rows = spend_logs_when(gw, &format!("request_id={priced}_batch_cost"), 1).await;
    // 10 × 0.0001 + 6 × 0.0003.
    assert!(
        (rows[0]["spend"].as_f64().unwrap() - 0.0028).abs() < 1e-9,
        "{}",
        rows[0]
    );
}

#[actix_rt::test]
async fn batches_cancel_and_a_key_over_budget_cannot_create_one() {
    let mock = Mock::start(&["--batch-delay-ms", "60000"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"models": ["gpt"], "max_budget": 0.005})).await;
    let (_, file) = upload(&gw, "/v1/files", &key, &[]).await;
    let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (status, _, batch) = post(&gw.url("/v1/batches"), Some(&key), &create).await;
    assert_eq!(status, 200, "{batch}");
    let id = batch["id"].as_str().unwrap();
    let (status, _, out) = post(
        &gw.url(&format!("/v1/batches/{id}/cancel")),
        Some(&key),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], "cancelling");
    assert_eq!(
        mock.last_request().await["path"],
        format!("/v1/batches/{id}/cancel")
    );
    let (_, _, out) = get(&gw.url(&format!("/v1/batches/{id}")), Some(&key)).await;
    assert_eq!(out["status"], "cancelled", "{out}");
    // Cancelling a cancelled batch: the provider's 400, in the envelope.
    let (status, _, out) = post(
        &gw.url(&format!("/batches/{id}/cancel")),
        Some(&key),
        &json!({}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);

    // A batch that completes (its delay in its metadata) costs 0.011: the budget is spent and
    // the next batch is refused.
    let quick = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": {"mock_batch_delay_ms": "0"}});
    let (status, _, batch) = post(&gw.url("/v1/batches"), Some(&key), &quick).await;
    assert_eq!(status, 200, "{batch}");
    let quick_id = batch["id"].as_str().unwrap();
    wait_for_status(&gw, &key, quick_id, "completed").await;
    let (status, _, out) = post(&gw.url("/v1/batches"), Some(&key), &quick).await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Budget has been exceeded"),
        "{out}"
    );
    let (status, out) = upload(&gw, "/v1/files", &key, &[]).await;
    assert_eq!(status, 400, "uploads check the budget too: {out}");
    // Reading what it has is still allowed.
    let (status, _, _) = get(&gw.url(&format!("/v1/batches/{quick_id}")), Some(&key)).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn azure_deployments_get_azure_urls_and_their_resource_key() {
    let mock = Mock::start(&["--batch-delay-ms", "0"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"models": ["azure-gpt"]})).await;
    // The header names the group (LiteLLM's `x-litellm-model`).
    let (content_type, body) = form(&[("purpose", "batch")], INPUT.as_bytes());
    let (status, _, file) = post_raw(
        &gw.url("/v1/files"),
        Some(&key),
        body,
        &[
            ("content-type", content_type.as_str()),
            ("x-litellm-model", "azure-gpt"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{file}");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/openai/files");
    assert_eq!(sent["query"], "api-version=2024-10-21");
    assert_eq!(sent["headers"]["api-key"], "azure-resource-key");
    assert!(sent["headers"]["authorization"].is_null(), "{sent}");
    let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (status, _, batch) = post(&gw.url("/v1/batches"), Some(&key), &create).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(mock.last_request().await["path"], "/openai/batches");
    let id = batch["id"].as_str().unwrap();
    let done = wait_for_status(&gw, &key, id, "completed").await;
    let sent = mock.last_request().await;
    assert!(
        sent["path"].as_str().unwrap().starts_with("/openai/"),
        "{sent}"
    );
    assert_eq!(sent["query"], "api-version=2024-10-21");
    assert!(done["output_file_id"].is_string());
    let rows = spend_logs_when(&gw, &format!("request_id={id}_batch_cost"), 1).await;
    assert_eq!(rows[0]["model_group"], "azure-gpt", "{}", rows[0]);
}

#[actix_rt::test]
async fn files_and_batches_calls_count_against_the_keys_rate_limits() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let key = new_key(&gw, json!({"models": ["gpt"], "rpm_limit": 3})).await;
    clear_of_a_minute_turn(std::time::Duration::from_secs(10)).await;
    let (status, file) = upload(&gw, "/v1/files", &key, &[]).await;
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().unwrap();
    let (status, _, out) = get(&gw.url(&format!("/v1/files/{id}")), Some(&key)).await;
    assert_eq!(status, 200, "{out}");
    let (status, _, out) = get(&gw.url("/v1/files"), Some(&key)).await;
    assert_eq!(status, 200, "{out}");
    let (status, headers, out) = get(&gw.url("/v1/batches"), Some(&key)).await;
    assert_eq!(status, 429, "the fourth call this minute: {out}");
    assert_envelope(&out);
    assert!(headers.get("retry-after").is_some());
}
