//! Rerank (`/rerank`, `/v1/rerank`, `/v2/rerank`) in Cohere's shape: the request as each provider
//! takes it, and every provider's answer as the one response clients get:
//! `{id, results: [{index, relevance_score, document?}], meta: {billed_units: {search_units}}}`.
//!
//! Cohere (`/v2/rerank`) takes documents as strings: `{text}` objects are sent as their text, other
//! objects as `field: value` lines of their `rank_fields` (all fields when none are named), and it
//! does not return documents: they are filled in from the request when `return_documents` is set.
//! OpenAI-compatible bases (Jina's `/v1/rerank` among them) take the Cohere body as it is; Jina
//! answers `usage.total_tokens` instead of search units, kept as `meta.tokens.input_tokens`.
//! Bedrock's agent runtime (`POST /rerank`) takes the query and inline text sources with the
//! model's ARN, and answers `relevanceScore`s.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::llm::{LlmRequest, Usage};
use crate::providers::TranslatedResponse;

/// Documents one search unit covers (Cohere's billing).
const DOCUMENTS_PER_SEARCH_UNIT: usize = 100;

/// The request's documents as plain text: strings as they are, objects as `field: value` lines of
/// their `rank_fields`, else as their `text`, else as lines of every field.
pub fn document_texts(body: &Map<String, Value>) -> Vec<String> {
    let fields: Option<Vec<&str>> = body
        .get("rank_fields")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect());
    let docs = body.get("documents").and_then(Value::as_array);
    docs.into_iter()
        .flatten()
        .map(|doc| match doc {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                let text = o.get("text").and_then(Value::as_str);
                let lines: Vec<String> = o
                    .iter()
                    .filter(|(k, _)| fields.as_ref().is_some_and(|f| f.contains(&k.as_str())))
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}: {s}"),
                        other => format!("{k}: {other}"),
                    })
                    .collect();
                match (text, lines.is_empty()) {
                    (Some(t), true) => t.to_string(),
                    (None, true) => o
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => format!("{k}: {s}"),
                            other => format!("{k}: {other}"),
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    (_, false) => lines.join("\n"),
                }
            }
            other => other.to_string(),
        })
        .collect()
}

/// Cohere's v2 rerank body: `model`, `query`, `documents` as strings, `top_n`,
/// `max_tokens_per_doc` (v2 has no `max_chunks_per_doc`, `rank_fields` or `return_documents`).
pub fn cohere_v2_body(model: &str, body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "query".into(),
        body.get("query").cloned().unwrap_or(Value::Null),
    );
    out.insert("documents".into(), json!(document_texts(body)));
    for key in ["top_n", "max_tokens_per_doc"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    out
}

/// The Discovery Engine ranking API's body (Vertex AI rerank): the documents as records whose
/// `id` is their index, `topN`, and `ignoreRecordDetailsInResponse` (the documents are filled
/// back in from the request when `return_documents` asks for them).
pub fn vertex_body(model: &str, body: &Map<String, Value>) -> Map<String, Value> {
    let records: Vec<Value> = document_texts(body)
        .into_iter()
        .enumerate()
        .map(|(i, text)| json!({"id": i.to_string(), "content": text}))
        .collect();
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "query".into(),
        body.get("query").cloned().unwrap_or(Value::Null),
    );
    if let Some(n) = body.get("top_n").and_then(Value::as_u64) {
        out.insert("topN".into(), json!(n));
    }
    out.insert("ignoreRecordDetailsInResponse".into(), json!(true));
    out.insert("records".into(), Value::Array(records));
    out
}

/// A Discovery Engine ranking answer (`records` of `id`, `score`) in Cohere's shape, one search
/// unit per call (Vertex AI bills ranking per query).
pub fn from_vertex(req: &LlmRequest, body: &[u8]) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(crate::providers::invalid_body)?;
    let results = v
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| crate::providers::invalid_body("a ranking answer without 'records'"))?
        .iter()
        .map(|r| {
            let index = r
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse::<u64>().ok())
                .ok_or_else(|| crate::providers::invalid_body("a ranked record without its id"))?;
            Ok(json!({"index": index, "relevance_score": r.get("score").and_then(Value::as_f64).unwrap_or(0.0)}))
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    let cohere = json!({"results": results, "meta": {"billed_units": {"search_units": 1}}});
    normalize(req, cohere.to_string().as_bytes())
}

/// Bedrock's agent-runtime Rerank body: the query, the documents as inline text sources, and
/// `numberOfResults` (`top_n`, else every document) for the model `model_arn`.
pub fn bedrock_body(model_arn: &str, body: &Map<String, Value>) -> Map<String, Value> {
    let texts = document_texts(body);
    let results = body
        .get("top_n")
        .and_then(Value::as_u64)
        .unwrap_or(texts.len() as u64)
        .min(texts.len() as u64);
    let sources: Vec<Value> = texts
        .iter()
        .map(|text| {
            json!({"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}})
        })
        .collect();
    let out = json!({
        "queries": [{"type": "TEXT", "textQuery": {"text": body.get("query").cloned().unwrap_or(Value::Null)}}],
        "sources": sources,
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": results,
                "modelConfiguration": {"modelArn": model_arn},
            },
        },
    });
    match out {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A provider's rerank answer (Cohere v1/v2, Jina, Bedrock, any Cohere-compatible server) in Cohere's
/// shape: results sorted by score and cut to `top_n`, documents as `{text}` (or the request's own
/// object) when `return_documents` is set, search units (the provider's, else one per 100
/// documents) and the provider's token count, which is also the usage.
pub fn normalize(req: &LlmRequest, body: &[u8]) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(crate::providers::invalid_body)?;
    let Some(results) = v.get("results").and_then(Value::as_array) else {
        return Err(crate::providers::invalid_body(
            "a rerank answer without 'results'",
        ));
    };
    let asked = req.body.get("documents").and_then(Value::as_array);
    let return_documents = req.body.get("return_documents").and_then(Value::as_bool) == Some(true);
    let mut out: Vec<(f64, Value)> = Vec::with_capacity(results.len());
    for r in results {
        let Some(index) = r.get("index").and_then(Value::as_u64) else {
            return Err(crate::providers::invalid_body(
                "a rerank result without 'index'",
            ));
        };
        let score = r
            .get("relevance_score")
            .or_else(|| r.get("relevanceScore"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let mut item = Map::new();
        item.insert("index".into(), json!(index));
        item.insert("relevance_score".into(), json!(score));
        if return_documents {
            let document = match r.get("document") {
                Some(Value::Object(d)) if d.contains_key("text") => Some(Value::Object(d.clone())),
                Some(Value::String(s)) => Some(json!({"text": s})),
                _ => asked
                    .and_then(|docs| docs.get(index as usize))
                    .map(|d| match d {
                        Value::String(s) => json!({"text": s}),
                        other => other.clone(),
                    }),
            };
            if let Some(document) = document {
                item.insert("document".into(), document);
            }
        }
        out.push((score, Value::Object(item)));
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    if let Some(top_n) = req.body.get("top_n").and_then(Value::as_u64) {
        out.truncate(top_n as usize);
    }
    let search_units = v
        .pointer("/meta/billed_units/search_units")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            asked
                .map_or(1, |d| d.len().div_ceil(DOCUMENTS_PER_SEARCH_UNIT))
                .max(1) as u64
        });
    let tokens = v
        .pointer("/usage/total_tokens")
        .or_else(|| v.pointer("/meta/tokens/input_tokens"))
        .and_then(Value::as_u64);
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("rerank-{}", uuid::Uuid::new_v4().simple()));
    let mut meta = json!({"billed_units": {"search_units": search_units}});
    if let Some(tokens) = tokens {
        meta["tokens"] = json!({"input_tokens": tokens, "output_tokens": 0});
    }
    let answer = json!({
        "id": id,
        "results": out.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
        "meta": meta,
    });
    let tokens = tokens.unwrap_or(0);
    Ok(TranslatedResponse {
        body: Bytes::from(answer.to_string()),
        usage: Some(Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
            ..Usage::default()
        }),
        response_id: Some(id),
    })
}

/// The search units and provider tokens of an answer [`normalize`] wrote (for its cost).
pub fn billed(answer: &[u8]) -> (u64, u64) {
    let v: Value = serde_json::from_slice(answer).unwrap_or_default();
    let units = v
        .pointer("/meta/billed_units/search_units")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let tokens = v
        .pointer("/meta/tokens/input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    (units, tokens)
}

/// The search units and tokens a request is expected to be billed before it is answered: one
/// search unit per 100 documents, about four bytes of query and documents per token.
pub fn expected_billing(req: &LlmRequest) -> (u64, u64) {
    let texts = document_texts(&req.body);
    let units = texts.len().div_ceil(DOCUMENTS_PER_SEARCH_UNIT).max(1) as u64;
    let query = req
        .body
        .get("query")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    let bytes = query * texts.len().max(1) + texts.iter().map(String::len).sum::<usize>();
    (units, bytes.div_ceil(4) as u64)
}

/// A canned rerank answer (`mock_response`): the documents in their order, scores falling from 1.
pub fn canned(req: &LlmRequest) -> Value {
    let docs = req
        .body
        .get("documents")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let results: Vec<Value> = (0..docs)
        .map(|i| json!({"index": i, "relevance_score": 1.0 - i as f64 / docs.max(1) as f64}))
        .collect();
    let fake = json!({"results": results});
    normalize(req, fake.to_string().as_bytes())
        .ok()
        .and_then(|t| serde_json::from_slice(&t.body).ok())
        .unwrap_or(fake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::CallKind;

    fn request(body: Value) -> LlmRequest {
        LlmRequest::parse(CallKind::Rerank, body.to_string().as_bytes(), None).expect("valid")
    }

    #[test]
    fn documents_as_text_for_cohere_v2() {
        let req = request(json!({
            "model": "r", "query": "q", "top_n": 2,
            "documents": ["plain", {"text": "obj"}, {"title": "T", "body": "B", "x": 1}],
            "rank_fields": ["title", "body"], "max_chunks_per_doc": 3,
        }));
        let body = cohere_v2_body("rerank-v3.5", &req.body);
        assert_eq!(
            Value::Object(body),
            json!({"model": "rerank-v3.5", "query": "q", "top_n": 2,
                   "documents": ["plain", "obj", "title: T\nbody: B"]})
        );
    }

    #[test]
    fn jina_and_cohere_answers_in_cohere_shape() {
        let req = request(json!({
            "model": "r", "query": "q", "documents": ["a", "b", "c"], "top_n": 2,
            "return_documents": true,
        }));
        // Jina: usage tokens, documents as objects, unsorted.
        let jina = br#"{"model":"m","usage":{"total_tokens":42},"results":[{"index":2,"relevance_score":0.1,"document":{"text":"c"}},{"index":0,"relevance_score":0.9,"document":{"text":"a"}},{"index":1,"relevance_score":0.5}]}"#;
        let out = normalize(&req, jina).expect("normalizes");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(
            v["results"],
            json!([{"index": 0, "relevance_score": 0.9, "document": {"text": "a"}},
                   {"index": 1, "relevance_score": 0.5, "document": {"text": "b"}}])
        );
        assert_eq!(v["meta"]["billed_units"]["search_units"], 1);
        assert_eq!(v["meta"]["tokens"]["input_tokens"], 42);
        assert_eq!(out.usage.expect("usage").prompt_tokens, 42);
        assert_eq!(billed(&out.body), (1, 42));
        // Cohere v2: its id and search units kept.
        let cohere = br#"{"id":"abc","results":[{"index":1,"relevance_score":0.7}],"meta":{"billed_units":{"search_units":3}}}"#;
        let v: Value =
            serde_json::from_slice(&normalize(&req, cohere).expect("ok").body).expect("json");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["meta"]["billed_units"]["search_units"], 3);
        assert!(normalize(&req, b"{}").is_err());
        // Bedrock: camel-case scores, documents as typed sources (the request's text is used).
        let bedrock = br#"{"results":[{"index":2,"relevanceScore":0.8,"document":{"type":"TEXT","textDocument":{"text":"c"}}}]}"#;
        let v: Value =
            serde_json::from_slice(&normalize(&req, bedrock).expect("ok").body).expect("json");
        assert_eq!(
            v["results"],
            json!([{"index": 2, "relevance_score": 0.8, "document": {"text": "c"}}])
        );
        let body = bedrock_body("arn:m", &req.body);
        assert_eq!(
            body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"],
            2
        );
        assert_eq!(
            body["sources"][0]["inlineDocumentSource"]["textDocument"]["text"],
            "a"
        );
    }
}
