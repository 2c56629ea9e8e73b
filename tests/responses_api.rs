//! OpenAI's Responses API (`/v1/responses`, also without `/v1`) through the whole pipeline against
//! the mock provider: passed through to an OpenAI deployment (the mock's `POST /v1/responses`),
//! translated to chat for another provider (the mock's Anthropic Messages API), streamed and not;
//! function calls and their outputs, `text.format`, stored responses (`previous_response_id`
//! rebuilding the conversation for every provider, GET / DELETE / input items, ownership), spend
//! rows with `call_type: aresponses` and their cost, rate limits, and bad input.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {base}, api_key: sk-x}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: {base}, api_key: sk-x}}
  - model_name: vllm
    litellm_params: {{model: hosted_vllm/mock-gpt, api_base: {base}, api_key: sk-x}}
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-x}}
  - model_name: azure-gpt
    litellm_params: {{model: azure/my-deployment, api_base: {root}, api_key: sk-x}}
  - model_name: claude-broken
    litellm_params: {{model: anthropic/mock-fail-500, api_base: {base}, api_key: sk-x}}
router_settings:
  fallbacks: [{{"claude-broken": ["gpt"]}}]
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
  store_prompts_in_spend_logs: true
"#,
        base = mock.api_base(),
        root = mock.proc.url
    )
}

fn header(headers: &Headers, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// The `(event, data)` pairs of a Responses SSE text.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut kind = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| panic!("json: {d}"));
                }
            }
            (kind, data)
        })
        .collect()
}

/// The events of a stream are typed and numbered, and it ends with `response.completed`; that
/// response is returned.
fn completed(text: &str) -> Value {
    let evs = events(text);
    for (i, (kind, data)) in evs.iter().enumerate() {
        assert_eq!(data["type"], kind.as_str(), "{text}");
        assert_eq!(data["sequence_number"], i, "{text}");
    }
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &kinds[..2],
        ["response.created", "response.in_progress"],
        "{text}"
    );
    assert_eq!(kinds.last(), Some(&"response.completed"), "{text}");
    evs.last().unwrap().1["response"].clone()
}

fn kinds(text: &str) -> Vec<String> {
    events(text).into_iter().map(|(k, _)| k).collect()
}

async fn spend_row(gw: &Gateway, call_id: &str) -> Value {
    spend_logs_when(gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0)
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

async fn key(gw: &Gateway, body: Value) -> String {
    let (status, _, key) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{key}");
    key["key"].as_str().unwrap().to_string()
}

#[actix_rt::test]
async fn an_openai_deployment_gets_the_responses_api_itself_streamed_and_not() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    for path in ["/responses", "/v1/responses"] {
        let body = json!({"model": "gpt", "input": "Say hello", "metadata": {"app": "t"},
                          "temperature": 0.5});
        let (status, headers, out) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{path}: {out}");
        assert_eq!(out["object"], "response", "{out}");
        assert_eq!(out["status"], "completed", "{out}");
        assert!(out["id"].as_str().unwrap().starts_with("resp_"), "{out}");
        assert!(out["created_at"].is_u64(), "{out}");
        assert!(output_text(&out).contains("Tollgate mock"), "{out}");
        let usage = &out["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{out}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
        let sent = mock.last_request().await;
        assert_eq!(sent["path"], "/v1/responses", "{sent}");
        assert_eq!(sent["body"]["model"], "gpt-4o-mini");
        assert_eq!(sent["body"]["input"], "Say hello", "the body as sent");
        assert_eq!(sent["body"]["metadata"], json!({"app": "t"}));
        assert_eq!(sent["body"]["temperature"], 0.5);
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "aresponses", "{row}");
        assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["prompt_tokens"], usage["input_tokens"], "{row}");
    }

    let body = json!({"model": "gpt", "input": "Say hello", "stream": true});
    let (status, headers, text) =
        stream_text(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "content-type"), "text/event-stream");
    let kinds = kinds(&text);
    for k in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k}: {text}");
    }
    let response = completed(&text);
    assert!(
        output_text(&response).contains("Tollgate mock"),
        "{response}"
    );
    assert_eq!(mock.last_request().await["body"]["stream"], true);
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "aresponses", "{row}");
    assert_eq!(row["completion_tokens"], response["usage"]["output_tokens"]);
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
    assert_eq!(
        row["response"]["id"], response["id"],
        "the stream's response: {row}"
    );
    // The streamed response was stored too, and a continuation sent the moment the stream ends
    // finds it (a lookup waits for a write still under way).
    let id = response["id"].as_str().unwrap().to_string();
    let (status, _, next) = post(
        &gw.url("/v1/responses"),
        Some(MASTER_KEY),
        &json!({"model": "gpt", "input": "And again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    let (status, _, stored) = get(&gw.url(&format!("/v1/responses/{id}")), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{stored}");
}

#[actix_rt::test]
async fn another_provider_is_spoken_to_in_chat_and_answers_as_responses() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let body = json!({"model": "claude", "instructions": "Be brief.",
                      "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
                      "max_output_tokens": 100, "metadata": {"app": "t"}});
    let (status, headers, out) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["object"], "response", "{out}");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["output"][0]["type"], "message", "{out}");
    assert_eq!(out["output"][0]["role"], "assistant", "{out}");
    assert_eq!(out["output"][0]["content"][0]["type"], "output_text");
    assert!(!output_text(&out).is_empty(), "{out}");
    assert_eq!(out["instructions"], "Be brief.");
    assert_eq!(out["max_output_tokens"], 100);
    assert_eq!(out["metadata"], json!({"app": "t"}));
    assert!(out["usage"]["input_tokens"].as_u64().unwrap() > 0, "{out}");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/messages", "the Anthropic wire: {sent}");
    assert_eq!(sent["body"]["system"], "Be brief.", "{sent}");
    assert_eq!(sent["body"]["max_tokens"], 100, "{sent}");
    assert_eq!(sent["body"]["messages"][0]["role"], "user", "{sent}");
    assert!(
        sent["body"]["messages"][0]["content"]
            .to_string()
            .contains("Say hello"),
        "{sent}"
    );
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "aresponses", "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");

    let body = json!({"model": "claude", "input": "Say hello", "stream": true});
    let (status, headers, text) = stream_text(&gw.url("/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        kinds(&text),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            kinds(&text)
                .into_iter()
                .filter(|k| k == "response.output_text.delta")
        )
        .chain(
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
            .iter()
            .map(|s| s.to_string())
        )
        .collect::<Vec<_>>(),
        "{text}"
    );
    let response = completed(&text);
    let deltas: String = events(&text)
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, output_text(&response));
    assert!(
        response["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{response}"
    );
    assert_eq!(mock.last_request().await["path"], "/v1/messages");
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "aresponses", "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
    assert_eq!(
        row["response"]["choices"][0]["message"]["content"].as_str(),
        Some(output_text(&response).as_str()),
        "the chat answer, assembled: {row}"
    );
}

#[actix_rt::test]
async fn a_function_call_round_trip_continues_from_the_store() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for model in ["gpt", "claude"] {
        let body = json!({"model": model, "input": "Weather in Paris?", "tools": tools,
                          "tool_choice": "required"});
        let (status, _, first) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{model}: {first}");
        let call = first["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap_or_else(|| panic!("{model}: a function call: {first}"))
            .clone();
        assert_eq!(call["name"], "get_weather", "{first}");
        let call_id = call["call_id"].as_str().unwrap().to_string();
        assert!(!call_id.is_empty());
        if model == "claude" {
            // Responses' flat tool became chat's nested one, then Anthropic's.
            let sent = mock.last_request().await;
            assert_eq!(sent["body"]["tools"][0]["name"], "get_weather", "{sent}");
        }

        let body = json!({"model": model, "previous_response_id": first["id"], "tools": tools,
                          "input": [{"type": "function_call_output", "call_id": call_id, "output": "{\"temp\": 21}"}]});
        let (status, _, second) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{model}: {second}");
        assert_eq!(second["previous_response_id"], first["id"]);
        let sent = mock.last_request().await;
        assert!(sent["body"].get("previous_response_id").is_none(), "{sent}");
        let text = sent["body"].to_string();
        assert!(text.contains("Weather in Paris?"), "the first turn: {sent}");
        assert!(text.contains(&call_id), "the call and its output: {sent}");
        assert!(text.contains("temp"), "{sent}");
        if model == "gpt" {
            let input = sent["body"]["input"].as_array().expect("rebuilt input");
            let types: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
            assert_eq!(
                types,
                ["message", "function_call", "function_call_output"],
                "{sent}"
            );
            assert_eq!(
                second["output"][0]["type"], "message",
                "text after the tool: {second}"
            );
        } else {
            let messages = sent["body"]["messages"].as_array().expect("messages");
            assert_eq!(messages.len(), 3, "{sent}");
            assert_eq!(messages[1]["content"][0]["type"], "tool_use", "{sent}");
            assert_eq!(messages[2]["content"][0]["type"], "tool_result", "{sent}");
        }
    }

    // Streamed function calls.
    for model in ["gpt", "claude"] {
        let body = json!({"model": model, "input": "Weather?", "tools": tools,
                          "tool_choice": "required", "stream": true});
        let (status, _, text) =
            stream_text(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{text}");
        let k = kinds(&text);
        assert!(
            k.iter()
                .any(|x| x == "response.function_call_arguments.delta"),
            "{text}"
        );
        assert!(
            k.iter()
                .any(|x| x == "response.function_call_arguments.done"),
            "{text}"
        );
        let response = completed(&text);
        assert_eq!(response["output"][0]["type"], "function_call", "{response}");
        assert_eq!(response["output"][0]["name"], "get_weather", "{response}");
    }
}

#[actix_rt::test]
async fn text_format_json_schema_reaches_a_chat_provider_as_response_format() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let body = json!({"model": "vllm", "input": "json please", "reasoning": {"effort": "low"},
                      "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": true}}});
    let (status, _, out) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["text"]["format"]["name"], "answer", "echoed: {out}");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/chat/completions", "{sent}");
    assert_eq!(
        sent["body"]["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
    assert_eq!(sent["body"]["reasoning_effort"], "low");
    assert!(sent["body"].get("text").is_none(), "{sent}");

    let body =
        json!({"model": "vllm", "input": "json", "text": {"format": {"type": "json_object"}}});
    let (status, _, out) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        mock.last_request().await["body"]["response_format"],
        json!({"type": "json_object"})
    );
}

#[actix_rt::test]
async fn previous_response_id_rebuilds_the_conversation_for_any_provider() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    // Turn one on a chat provider, turn two on the OpenAI deployment, turn three back.
    let body = json!({"model": "claude", "input": "My name is Ada."});
    let (status, _, first) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{first}");
    let body =
        json!({"model": "gpt", "input": "What is my name?", "previous_response_id": first["id"]});
    let (status, _, second) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{second}");
    let sent = mock.last_request().await;
    let input = sent["body"]["input"].as_array().expect("rebuilt input");
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[0]["content"][0]["text"], "My name is Ada.");
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[1]["content"][0]["text"], output_text(&first).as_str());
    assert_eq!(input[2]["content"][0]["text"], "What is my name?");
    assert!(input.iter().all(|i| i.get("id").is_none()), "{sent}");

    let body =
        json!({"model": "claude", "input": "And again?", "previous_response_id": second["id"]});
    let (status, _, _) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let sent = mock.last_request().await;
    let messages = sent["body"]["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant", "user"],
        "{sent}"
    );
    assert!(
        sent["body"].to_string().contains("My name is Ada."),
        "{sent}"
    );

    // Its input items: the whole conversation, newest first by default.
    let id = second["id"].as_str().unwrap();
    let (status, _, list) = get(
        &gw.url(&format!("/v1/responses/{id}/input_items")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{list}");
    assert_eq!(data[0]["content"][0]["text"], "What is my name?");
    assert_eq!(list["first_id"], data[0]["id"]);
    let (_, _, asc) = get(
        &gw.url(&format!("/v1/responses/{id}/input_items?order=asc&limit=1")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(
        asc["data"][0]["content"][0]["text"], "My name is Ada.",
        "{asc}"
    );
    assert_eq!(asc["has_more"], true, "{asc}");

    // An id that was never stored.
    let body = json!({"model": "gpt", "input": "x", "previous_response_id": "resp_nope"});
    let (status, _, out) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert_eq!(out["error"]["code"], "previous_response_not_found");
    assert_eq!(out["error"]["param"], "previous_response_id");
}

#[actix_rt::test]
async fn stored_responses_are_their_owners_to_read_and_delete() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let alice = key(&gw, json!({})).await;
    let bob = key(&gw, json!({})).await;
    let (status, _, created) = post(
        &gw.url("/v1/responses"),
        Some(&alice),
        &json!({"model": "claude", "input": "Hi"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let url = gw.url(&format!("/v1/responses/{id}"));
    let (status, _, got) = get(&url, Some(&alice)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, created);
    let (status, _, got) = get(&gw.url(&format!("/responses/{id}")), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "the master key reads any: {got}");

    // Another key: not found, in the OpenAI envelope, for every route.
    let (status, _, out) = get(&url, Some(&bob)).await;
    assert_eq!(status, 404, "{out}");
    assert_envelope(&out);
    let (status, _, out) = get(&format!("{url}/input_items"), Some(&bob)).await;
    assert_eq!(status, 404, "{out}");
    let (status, out) = send("DELETE", &url, Some(&bob), &json!({})).await;
    assert_eq!(status, 404, "{out}");
    let body = json!({"model": "claude", "input": "x", "previous_response_id": id});
    let (status, _, out) = post(&gw.url("/v1/responses"), Some(&bob), &body).await;
    assert_eq!(status, 400, "{out}");

    let (status, _, items) = get(&format!("{url}/input_items"), Some(&alice)).await;
    assert_eq!(status, 200, "{items}");
    assert_eq!(items["data"][0]["type"], "message");
    assert_eq!(items["data"][0]["role"], "user");
    assert_eq!(
        items["data"][0]["content"][0],
        json!({"type": "input_text", "text": "Hi"})
    );

    let (status, out) = send("DELETE", &url, Some(&alice), &json!({})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out,
        json!({"id": id, "object": "response", "deleted": true})
    );
    let (status, _, out) = get(&url, Some(&alice)).await;
    assert_eq!(status, 404, "{out}");

    // `store: false` keeps nothing.
    let (status, _, created) = post(
        &gw.url("/v1/responses"),
        Some(&alice),
        &json!({"model": "gpt", "input": "Hi", "store": false}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["store"], false);
    let id = created["id"].as_str().unwrap();
    let (status, _, _) = get(&gw.url(&format!("/v1/responses/{id}")), Some(&alice)).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn a_rate_limited_key_is_limited_on_responses_too() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    clear_of_a_minute_turn(std::time::Duration::from_secs(10)).await;
    let limited = key(&gw, json!({"rpm_limit": 1})).await;
    let body = json!({"model": "gpt", "input": "Hi"});
    let (status, _, out) = post(&gw.url("/v1/responses"), Some(&limited), &body).await;
    assert_eq!(status, 200, "{out}");
    let (status, headers, out) = post(&gw.url("/v1/responses"), Some(&limited), &body).await;
    assert_eq!(status, 429, "{out}");
    assert_envelope(&out);
    assert!(headers.contains_key("retry-after"));
    // Model access applies as well.
    let narrow = key(&gw, json!({"models": ["gpt"]})).await;
    let (status, _, out) = post(
        &gw.url("/v1/responses"),
        Some(&narrow),
        &json!({"model": "claude", "input": "Hi"}),
    )
    .await;
    assert_eq!(status, 401, "{out}");
    assert_envelope(&out);
}

#[actix_rt::test]
async fn bad_input_is_refused_with_the_openai_envelope() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let cases = [
        (json!({"input": "hi"}), "model"),
        (json!({"model": "gpt"}), "input"),
        (json!({"model": "gpt", "input": 5}), "input"),
        (
            json!({"model": "gpt", "input": [{"role": "user"}]}),
            "input[0].content",
        ),
        (json!({"model": "gpt", "input": ["text"]}), "input[0]"),
        (
            json!({"model": "claude", "input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "gpt", "input": "x", "previous_response_id": 3}),
            "previous_response_id",
        ),
    ];
    for (body, param) in cases {
        let (status, _, out) = post(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert_envelope(&out);
        assert_eq!(out["error"]["param"], param, "{body}: {out}");
    }
    let (status, _, out) =
        post_raw(&gw.url("/v1/responses"), Some(MASTER_KEY), "{not json", &[]).await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert_eq!(mock.stats().await["by_route"]["/responses"], 0);
}

#[actix_rt::test]
async fn azure_gets_its_responses_path_and_a_fallback_may_cross_wires() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, _, out) = post(
        &gw.url("/v1/responses"),
        Some(MASTER_KEY),
        &json!({"model": "azure-gpt", "input": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["object"], "response", "{out}");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/openai/responses", "{sent}");
    assert!(
        sent["query"]
            .as_str()
            .unwrap()
            .contains("api-version=2025-04-01-preview"),
        "{sent}"
    );
    assert_eq!(sent["body"]["model"], "my-deployment", "{sent}");

    // The Anthropic deployment fails; its fallback is the OpenAI one, spoken to natively.
    for stream in [false, true] {
        let body = json!({"model": "claude-broken", "input": "hi", "stream": stream});
        let (status, headers, text) =
            stream_text(&gw.url("/v1/responses"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(header(&headers, "x-litellm-model-group"), "gpt");
        assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
        let response = if stream {
            completed(&text)
        } else {
            serde_json::from_str(&text).expect("json")
        };
        assert!(
            output_text(&response).contains("Tollgate mock"),
            "{response}"
        );
        assert_eq!(mock.last_request().await["path"], "/v1/responses");
    }
    let stats = mock.stats().await;
    assert!(
        stats["by_model"]["mock-fail-500"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}
