//! OpenAI's image and moderation endpoints: `/images/generations` (JSON), `/images/edits`
//! (`multipart/form-data`) and `/moderations`, answered deterministically in OpenAI's shapes.
//! Failure injection, latency, stats and capture are the chat route's (`handle_llm`).

use actix_web::{
    http::header::{HeaderName, HeaderValue},
    web::{self, Bytes},
    HttpRequest, HttpResponse, ResponseError,
};
use futures_util::StreamExt as _;
use serde_json::{Map, Value};
use tollgate_wire::openai::{
    Image, ImageInputTokens, ImageUsage, ImagesResponse, ModerationResponse, ModerationResult,
    MODERATION_CATEGORIES,
};

use crate::openai::{base64_encode, handle_parsed, json_response, ApiError};
use crate::shared::{fnv1a, tokens_for_chars, unix_now, FNV_OFFSET};
use crate::{next_serial, Endpoint, MockState};

/// Most images one request may ask for (OpenAI's limit).
const MAX_IMAGES: u64 = 10;
/// The response header describing the files an `/images/edits` form carried:
/// `field:filename:content-type:length:fnv1a-hex`, one per file, comma-separated.
pub(crate) const UPLOADS_HEADER: &str = "x-mock-uploads";
/// Words that make a moderation input flagged, with the category they flag.
const FLAGGED_WORDS: [(&str, &str); 3] =
    [("kill", "violence"), ("hate", "hate"), ("steal", "illicit")];

pub(crate) async fn generations(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let parsed = serde_json::from_slice(&body).ok();
    handle_parsed(Endpoint::ImageGenerations, &req, &body, parsed, &state).await
}

pub(crate) async fn moderations(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let parsed = serde_json::from_slice(&body).ok();
    handle_parsed(Endpoint::Moderations, &req, &body, parsed, &state).await
}

/// `/images/edits`: the form's text fields become the JSON body the failure controls read; its
/// files are listed under `_files` (the answer describes them in [`UPLOADS_HEADER`]).
pub(crate) async fn edits(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let parsed = read_form(&req, body.clone()).await;
    let parsed = match parsed {
        Ok(fields) => Some(Value::Object(fields)),
        Err(error) => return error.error_response(),
    };
    handle_parsed(Endpoint::ImageEdits, &req, &body, parsed, &state).await
}

/// A form's text fields, its files described under `_files` (`field:filename:type:length:hash`),
/// and the length in seconds of a WAV `file` part under `_seconds`.
pub(crate) async fn read_form(
    req: &HttpRequest,
    body: Bytes,
) -> Result<Map<String, Value>, ApiError> {
    let invalid = |message: String| ApiError::invalid_request(message, None, None);
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut form = actix_multipart::Multipart::new(req.headers(), stream);
    let mut fields = Map::new();
    let mut files = Vec::new();
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|e| invalid(format!("Invalid multipart body: {e}")))?;
        let name = part.name().unwrap_or_default().to_owned();
        let filename = part
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        let content_type = part.content_type().map(ToString::to_string);
        let mut data = Vec::new();
        while let Some(chunk) = part.next().await {
            data.extend_from_slice(
                &chunk.map_err(|e| invalid(format!("Invalid multipart body: {e}")))?,
            );
        }
        if name == "file" {
            if let Some(seconds) = crate::audio::wav_seconds(&data) {
                fields.insert("_seconds".to_owned(), Value::from(seconds));
            }
        }
        match filename {
            Some(filename) => files.push(Value::String(format!(
                "{name}:{filename}:{}:{}:{:016x}",
                content_type.unwrap_or_default(),
                data.len(),
                fnv1a(FNV_OFFSET, &data)
            ))),
            None => {
                let text = String::from_utf8_lossy(&data).into_owned();
                fields.insert(name, Value::String(text));
            }
        }
    }
    fields.insert("_files".to_owned(), Value::Array(files));
    Ok(fields)
}

/// `n` (1 to 10; a form sends it as text).
fn image_count(body: &Map<String, Value>) -> Result<u64, ApiError> {
    let n = match body.get("n") {
        None | Some(Value::Null) => return Ok(1),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    n.filter(|n| (1..=MAX_IMAGES).contains(n)).ok_or_else(|| {
        ApiError::invalid_request(
            format!("'n' must be an integer between 1 and {MAX_IMAGES}."),
            Some("n"),
            None,
        )
    })
}

fn text_field<'a>(body: &'a Map<String, Value>, key: &'static str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// Image tokens a GPT Image model spends on one 1024×1024 image of this quality.
fn output_tokens(quality: Option<&str>) -> u64 {
    match quality {
        Some("low") => 272,
        Some("high") => 4160,
        _ => 1056,
    }
}

/// The answer of `/images/generations` and `/images/edits`: `n` images, as links (DALL·E's
/// default) or base64 data (`response_format: b64_json`, and always for GPT Image models, which
/// also report token usage).
pub(crate) fn images(
    endpoint: Endpoint,
    body: &Map<String, Value>,
    model: &str,
    cut: bool,
) -> Result<(u64, HttpResponse), ApiError> {
    let prompt = match body.get("prompt") {
        Some(Value::String(p)) if !p.is_empty() => p,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "'prompt' must be a non-empty string.".to_owned(),
                Some("prompt"),
                None,
            ))
        }
        None => {
            return Err(ApiError::invalid_request(
                "Missing required parameter: 'prompt'.".to_owned(),
                Some("prompt"),
                None,
            ))
        }
    };
    let n = image_count(body)?;
    if let Some(size) = text_field(body, "size") {
        let valid = size == "auto"
            || size
                .split_once('x')
                .is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok());
        if !valid {
            return Err(ApiError::invalid_request(
                format!("Invalid value: '{size}'. 'size' must be WIDTHxHEIGHT or 'auto'."),
                Some("size"),
                None,
            ));
        }
    }
    let files = body.get("_files").and_then(Value::as_array);
    if endpoint == Endpoint::ImageEdits
        && !files.is_some_and(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .any(|f| f.starts_with("image:") || f.starts_with("image[]:"))
        })
    {
        return Err(ApiError::invalid_request(
            "Missing required parameter: 'image'.".to_owned(),
            Some("image"),
            None,
        ));
    }
    let gpt_image = model.contains("gpt-image");
    let b64 = gpt_image || text_field(body, "response_format") == Some("b64_json");
    let serial = next_serial();
    let data = (0..n)
        .map(|i| {
            let seed = fnv1a(fnv1a(FNV_OFFSET, prompt.as_bytes()), &i.to_le_bytes());
            if b64 {
                let pixels: Vec<u8> = seed.to_le_bytes().repeat(4);
                Image {
                    b64_json: Some(base64_encode(&pixels).into()),
                    ..Image::default()
                }
            } else {
                Image {
                    url: Some(format!("https://mock.invalid/images/{serial}-{i}.png").into()),
                    revised_prompt: model.contains("dall-e-3").then(|| prompt.clone().into()),
                    ..Image::default()
                }
            }
        })
        .collect();
    let usage = gpt_image.then(|| {
        let text_tokens = tokens_for_chars(prompt.chars().count());
        let image_tokens = files.map_or(0, |f| 323 * f.len() as u64);
        let output = output_tokens(text_field(body, "quality")) * n;
        ImageUsage {
            input_tokens: text_tokens + image_tokens,
            output_tokens: output,
            total_tokens: text_tokens + image_tokens + output,
            input_tokens_details: ImageInputTokens {
                text_tokens,
                image_tokens,
            },
        }
    });
    let mut response = json_response(
        &ImagesResponse {
            created: unix_now(),
            data,
            usage,
        },
        cut,
    )?;
    if let Some(files) = files {
        let listed: Vec<&str> = files.iter().filter_map(Value::as_str).collect();
        if let Ok(value) = HeaderValue::from_str(&listed.join(",")) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(UPLOADS_HEADER), value);
        }
    }
    Ok((serial, response))
}

/// The answer of `/moderations`: one result per input, flagged when the text holds one of
/// [`FLAGGED_WORDS`] (that category true with score 0.9), every other score small and
/// deterministic.
pub(crate) fn moderation(
    body: &Map<String, Value>,
    model: &str,
    cut: bool,
) -> Result<(u64, HttpResponse), ApiError> {
    let invalid = || {
        ApiError::invalid_request(
            "'input' must be a string, an array of strings, or an array of text and image inputs."
                .to_owned(),
            Some("input"),
            None,
        )
    };
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => Some(
                    o.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    let omni = model.starts_with("omni-");
    let results = texts
        .iter()
        .map(|text| {
            let lower = text.to_lowercase();
            let hit: Vec<&str> = FLAGGED_WORDS
                .iter()
                .filter(|(word, _)| lower.contains(word))
                .map(|(_, category)| *category)
                .collect();
            let mut categories = Map::new();
            let mut scores = Map::new();
            let mut applied = Map::new();
            for category in MODERATION_CATEGORIES {
                let flagged = hit.contains(&category);
                let noise = fnv1a(fnv1a(FNV_OFFSET, text.as_bytes()), category.as_bytes()) % 1000;
                let score = if flagged {
                    0.9
                } else {
                    noise as f64 / 1_000_000.0
                };
                categories.insert(category.to_owned(), Value::Bool(flagged));
                scores.insert(category.to_owned(), Value::from(score));
                applied.insert(category.to_owned(), Value::from(vec!["text"]));
            }
            ModerationResult {
                flagged: !hit.is_empty(),
                categories,
                category_scores: scores,
                category_applied_input_types: omni.then_some(applied),
            }
        })
        .collect();
    let serial = next_serial();
    let response = json_response(
        &ModerationResponse {
            id: format!("modr-{serial}").into(),
            model: model.into(),
            results,
        },
        cut,
    )?;
    Ok((serial, response))
}
