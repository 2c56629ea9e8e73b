//! OpenAI's Responses API (`POST /v1/responses`): a `response` object, or its typed
//! server-sent events (`response.created` … `response.completed`, each with its
//! `sequence_number`), with usage. With function tools, the answer is a `function_call` unless
//! `tool_choice` is `"none"` or the input ends with a `function_call_output` (the model has the
//! tool's result and answers in text). A named tool (`tool_choice: {"type": "function", "name"}`)
//! is the one called, else the first function tool.

use std::time::Duration;

use actix_web::{
    http::header,
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream;
use serde_json::{json, Map, Value};

use crate::openai::{handle_llm, json_response, ApiError};
use crate::shared::{
    content_chars, count_words, random_id, serial_id, split_chunks, success_builder,
    tokens_for_chars, truncate_words, unix_now,
};
use crate::{
    body_field, flush_point, next_serial, pause, Endpoint, MockState, CUT_AFTER_PARTS,
    DEFAULT_REPLY, REPLY_FIELD, TOOL_ARGUMENTS,
};

pub(crate) async fn create(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle_llm(Endpoint::Responses, &req, &body, &state).await
}

/// What the answer is.
enum Answer {
    Text { text: String, incomplete: bool },
    Call { name: String },
}

/// Characters of text in the input (strings, text parts, function arguments and outputs).
fn input_chars(input: &Value) -> usize {
    match input {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.get("content").map_or(0, content_chars)
                    + ["arguments", "output"]
                        .iter()
                        .filter_map(|k| item.get(*k))
                        .map(|v| match v {
                            Value::String(s) => s.chars().count(),
                            other => content_chars(other),
                        })
                        .sum::<usize>()
            })
            .sum(),
        _ => 0,
    }
}

fn answer(body: &Map<String, Value>) -> Result<Answer, ApiError> {
    let tools: Vec<&Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                .collect()
        })
        .unwrap_or_default();
    let choice = body.get("tool_choice");
    let answered = body
        .get("input")
        .and_then(Value::as_array)
        .and_then(|items| items.last())
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    let none = choice.and_then(Value::as_str) == Some("none");
    if !tools.is_empty() && !none && !answered {
        let named = choice
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let first = tools
            .first()
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("function")
            .to_owned();
        return Ok(Answer::Call {
            name: named.unwrap_or(first),
        });
    }
    let text = match body_field(Some(body), REPLY_FIELD) {
        None => DEFAULT_REPLY,
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return Err(ApiError::invalid_type(REPLY_FIELD, "a string")),
    };
    let limit = match body.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ApiError::invalid_type("max_output_tokens", "an integer"))?,
        ),
    };
    Ok(match limit.and_then(|limit| truncate_words(text, limit)) {
        Some(truncated) => Answer::Text {
            text: truncated.to_owned(),
            incomplete: true,
        },
        None => Answer::Text {
            text: text.to_owned(),
            incomplete: false,
        },
    })
}

/// The request fields a response repeats.
fn echoed(body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, default) in [
        ("instructions", Value::Null),
        ("max_output_tokens", Value::Null),
        ("metadata", json!({})),
        ("parallel_tool_calls", json!(true)),
        ("previous_response_id", Value::Null),
        ("store", json!(true)),
        ("temperature", json!(1.0)),
        ("text", json!({"format": {"type": "text"}})),
        ("tool_choice", json!("auto")),
        ("tools", json!([])),
        ("top_p", json!(1.0)),
        ("user", Value::Null),
    ] {
        out.insert(
            key.to_owned(),
            body.get(key)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default),
        );
    }
    out
}

/// `POST /v1/responses` once the request is admitted (authorized, not failing on purpose).
pub(crate) fn respond(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
    cut: bool,
) -> Result<(u64, HttpResponse), ApiError> {
    let input = match body.get("input") {
        Some(input @ (Value::String(_) | Value::Array(_))) => input,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_request(
                "Missing required parameter: 'input'.",
                Some("input"),
                Some("missing_required_parameter"),
            ))
        }
        Some(_) => return Err(ApiError::invalid_type("input", "a string or an array")),
    };
    let instructions = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count());
    let input_tokens = tokens_for_chars(input_chars(input) + instructions);
    let answer = answer(body)?;
    let serial = next_serial();
    let output_tokens = match &answer {
        Answer::Text { text, .. } => count_words(text),
        Answer::Call { name } => tokens_for_chars(name.chars().count() + TOOL_ARGUMENTS.len()),
    };
    let plan = Plan {
        id: serial_id("resp_", serial, 32),
        item_id: match &answer {
            Answer::Text { .. } => serial_id("msg_", serial, 32),
            Answer::Call { .. } => serial_id("fc_", serial, 32),
        },
        call_id: random_id("call_", 24),
        created_at: unix_now(),
        model: model.to_owned(),
        echoed: echoed(body),
        usage: json!({
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }),
        answer,
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let events = plan.events(state.stream_chunks, cut);
        let delay = state.chunk_delay;
        let response = success_builder()
            .content_type("text/event-stream; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(event_stream(events, delay));
        return Ok((serial, response));
    }
    Ok((serial, json_response(&plan.response(true), cut)?))
}

struct Plan {
    id: String,
    item_id: String,
    call_id: String,
    created_at: u64,
    model: String,
    echoed: Map<String, Value>,
    usage: Value,
    answer: Answer,
}

impl Plan {
    fn status(&self) -> &'static str {
        match self.answer {
            Answer::Text {
                incomplete: true, ..
            } => "incomplete",
            _ => "completed",
        }
    }

    fn item(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match &self.answer {
            Answer::Text { text, .. } => json!({
                "id": self.item_id, "type": "message", "status": status, "role": "assistant",
                "content": if done {
                    json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
                } else {
                    json!([])
                },
            }),
            Answer::Call { name } => json!({
                "id": self.item_id, "type": "function_call", "status": status,
                "call_id": self.call_id, "name": name,
                "arguments": if done { TOOL_ARGUMENTS } else { "" },
            }),
        }
    }

    /// The response object: finished (with its output and usage) or just started.
    fn response(&self, done: bool) -> Value {
        let mut obj = Map::new();
        obj.insert("id".into(), json!(self.id));
        obj.insert("object".into(), json!("response"));
        obj.insert("created_at".into(), json!(self.created_at));
        obj.insert(
            "status".into(),
            json!(if done { self.status() } else { "in_progress" }),
        );
        obj.insert("background".into(), json!(false));
        obj.insert("error".into(), Value::Null);
        obj.insert(
            "incomplete_details".into(),
            if done && self.status() == "incomplete" {
                json!({"reason": "max_output_tokens"})
            } else {
                Value::Null
            },
        );
        obj.insert("model".into(), json!(self.model));
        obj.insert(
            "output".into(),
            if done {
                json!([self.item(true)])
            } else {
                json!([])
            },
        );
        obj.insert("reasoning".into(), json!({"effort": null, "summary": null}));
        obj.insert("truncation".into(), json!("disabled"));
        for (k, v) in &self.echoed {
            obj.insert(k.clone(), v.clone());
        }
        obj.insert(
            "usage".into(),
            if done {
                self.usage.clone()
            } else {
                Value::Null
            },
        );
        Value::Object(obj)
    }

    /// Every event of the stream, in order, numbered; with `cut`, only the first few and then
    /// the connection drops.
    fn events(&self, chunks: usize, cut: bool) -> Vec<Option<Bytes>> {
        let mut events: Vec<(&str, Value)> = vec![
            (
                "response.created",
                json!({"response": self.response(false)}),
            ),
            (
                "response.in_progress",
                json!({"response": self.response(false)}),
            ),
            (
                "response.output_item.added",
                json!({"output_index": 0, "item": self.item(false)}),
            ),
        ];
        let at = json!({"item_id": self.item_id, "output_index": 0});
        let with = |extra: Value| {
            let mut v = at.clone();
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        };
        match &self.answer {
            Answer::Text { text, .. } => {
                let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": [], "logprobs": []});
                events.push((
                    "response.content_part.added",
                    with(json!({"content_index": 0, "part": part("")})),
                ));
                for piece in split_chunks(text, chunks) {
                    events.push((
                        "response.output_text.delta",
                        with(json!({"content_index": 0, "delta": piece, "logprobs": []})),
                    ));
                }
                events.push((
                    "response.output_text.done",
                    with(json!({"content_index": 0, "text": text, "logprobs": []})),
                ));
                events.push((
                    "response.content_part.done",
                    with(json!({"content_index": 0, "part": part(text)})),
                ));
            }
            Answer::Call { name } => {
                events.push((
                    "response.function_call_arguments.delta",
                    with(json!({"delta": TOOL_ARGUMENTS})),
                ));
                events.push((
                    "response.function_call_arguments.done",
                    with(json!({"name": name, "arguments": TOOL_ARGUMENTS})),
                ));
            }
        }
        events.push((
            "response.output_item.done",
            json!({"output_index": 0, "item": self.item(true)}),
        ));
        let last = if self.status() == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        events.push((last, json!({"response": self.response(true)})));
        let mut out: Vec<Option<Bytes>> = events
            .into_iter()
            .enumerate()
            .map(|(n, (kind, mut data))| {
                data["type"] = json!(kind);
                data["sequence_number"] = json!(n);
                Some(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")))
            })
            .collect();
        if cut {
            out.truncate(CUT_AFTER_PARTS + 2);
            out.push(None);
        }
        out
    }
}

/// The events, `delay` apart; a `None` drops the connection.
fn event_stream(
    events: Vec<Option<Bytes>>,
    delay: Duration,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    stream::unfold(
        (events.into_iter(), true),
        move |(mut events, first)| async move {
            let event = events.next()?;
            if !first {
                pause(delay).await;
            }
            match event {
                Some(bytes) => Some((Ok(bytes), (events, false))),
                None => {
                    flush_point().await;
                    Some((Err(crate::cut_error()), (events, false)))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use actix_web::test;
    use serde_json::{json, Value};

    use crate::tests::{drain, json_of, mock_app, post};

    /// The `(event, data)` pairs of a Responses SSE body.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|event| {
                let (head, data) = event.split_once('\n').expect("two lines");
                let kind = head.strip_prefix("event: ").expect("event line");
                let data = data.strip_prefix("data: ").expect("data line");
                (kind.to_owned(), serde_json::from_str(data).expect("JSON"))
            })
            .collect()
    }

    #[actix_web::test]
    async fn a_response_object_with_text_and_usage() {
        let (app, state) = mock_app!();
        let body = json!({"model": "mock-gpt", "input": "Hello there", "metadata": {"k": "v"}});
        let response = test::call_service(&app, post("/v1/responses", body).to_request()).await;
        assert_eq!(response.status(), 200);
        let out = json_of(response).await;
        assert_eq!(out["object"], "response");
        assert_eq!(out["status"], "completed");
        assert!(out["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
        assert_eq!(out["output"][0]["type"], "message");
        assert_eq!(out["output"][0]["content"][0]["text"], crate::DEFAULT_REPLY);
        assert_eq!(out["metadata"], json!({"k": "v"}));
        let usage = &out["usage"];
        assert_eq!(usage["input_tokens"], 3);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
            )
        );
        assert_eq!(state.stats_json()["by_route"]["/responses"], 1);

        let truncated = json!({"model": "m", "input": "x", "max_output_tokens": 2});
        let out =
            json_of(test::call_service(&app, post("/responses", truncated).to_request()).await)
                .await;
        assert_eq!(out["status"], "incomplete");
        assert_eq!(out["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(out["usage"]["output_tokens"], 2);
    }

    #[actix_web::test]
    async fn tools_make_a_function_call_until_its_output_comes_back() {
        let (app, _) = mock_app!();
        let tools =
            json!([{"type": "function", "name": "lookup"}, {"type": "function", "name": "other"}]);
        let body = json!({"model": "m", "input": "find it", "tools": tools,
                          "tool_choice": {"type": "function", "name": "other"}});
        let out =
            json_of(test::call_service(&app, post("/v1/responses", body).to_request()).await).await;
        let call = &out["output"][0];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["name"], "other");
        assert_eq!(call["arguments"], "{}");
        assert!(call["call_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("call_")));

        let answered = json!({"model": "m", "tools": tools, "input": [
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"}]});
        let out =
            json_of(test::call_service(&app, post("/v1/responses", answered).to_request()).await)
                .await;
        assert_eq!(out["output"][0]["type"], "message");
        let none = json!({"model": "m", "input": "x", "tools": tools, "tool_choice": "none"});
        let out =
            json_of(test::call_service(&app, post("/v1/responses", none).to_request()).await).await;
        assert_eq!(out["output"][0]["type"], "message");
    }

    #[actix_web::test]
    async fn a_stream_of_typed_numbered_events() {
        let (app, _) = mock_app!();
        let body = json!({"model": "m", "input": "hi", "stream": true});
        let response = test::call_service(&app, post("/v1/responses", body).to_request()).await;
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(!errored);
        let evs = events(&bytes);
        for (i, (kind, data)) in evs.iter().enumerate() {
            assert_eq!(data["type"], kind.as_str());
            assert_eq!(data["sequence_number"], i);
        }
        let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ]
        );
        assert_eq!(
            kinds[kinds.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let text: String = evs
            .iter()
            .filter(|(k, _)| k == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, crate::DEFAULT_REPLY);
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(
            done["output"][0]["content"][0]["text"],
            crate::DEFAULT_REPLY
        );
        assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);

        let tools = json!([{"type": "function", "name": "lookup"}]);
        let body = json!({"model": "m", "input": "hi", "stream": true, "tools": tools});
        let response = test::call_service(&app, post("/v1/responses", body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let kinds: Vec<String> = events(&bytes).into_iter().map(|(k, _)| k).collect();
        assert!(kinds
            .iter()
            .any(|k| k == "response.function_call_arguments.delta"));
        assert!(kinds
            .iter()
            .any(|k| k == "response.function_call_arguments.done"));

        // A cut stream drops the connection before it completes.
        let body = json!({"model": "mock-fail-cut", "input": "hi", "stream": true});
        let response = test::call_service(&app, post("/v1/responses", body).to_request()).await;
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(errored);
        assert!(!String::from_utf8_lossy(&bytes).contains("response.completed"));
    }

    #[actix_web::test]
    async fn azure_paths_and_missing_input() {
        let (app, _) = mock_app!();
        let body = json!({"model": "my-deployment", "input": "hi"});
        for path in [
            "/openai/responses?api-version=2025-04-01-preview",
            "/openai/v1/responses",
        ] {
            let response = test::call_service(&app, post(path, body.clone()).to_request()).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(json_of(response).await["model"], "my-deployment");
        }
        let response = test::call_service(
            &app,
            post("/v1/responses", json!({"model": "m"})).to_request(),
        )
        .await;
        assert_eq!(response.status(), 400);
        assert_eq!(json_of(response).await["error"]["param"], "input");
    }
}
