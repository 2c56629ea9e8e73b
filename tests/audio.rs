//! `/audio/transcriptions`, `/audio/translations` (multipart) and `/audio/speech` (binary audio,
//! relayed as it arrives), bare, under `/v1` and in Azure's deployment form, through the whole
//! pipeline against the mock provider: key model access, retries and fallbacks, spend-log rows
//! with LiteLLM's `call_type` and the per-second / per-character cost, transcripts in every
//! `response_format` with the provider's content type, and the OpenAI error envelope for bad input
//! and for providers without audio.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn config(mock: &Mock) -> String {
    let base = mock.api_base();
    format!(
        r#"model_list:
  - model_name: whisper
    litellm_params: {{model: openai/whisper-1, api_base: {base}, api_key: sk-x}}
  - model_name: whisper-azure
    litellm_params: {{model: azure/whisper-1, api_base: {root}, api_key: sk-x, api_version: 2024-06-01}}
  - model_name: whisper-broken
    litellm_params: {{model: openai/mock-fail-500, api_base: {base}, api_key: sk-x}}
  - model_name: tts
    litellm_params: {{model: openai/tts-1, api_base: {base}, api_key: sk-x}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-latest, api_base: {base}, api_key: sk-x}}
router_settings:
  num_retries: 1
  fallbacks: [{{"whisper-broken": ["whisper"]}}]
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        root = base.trim_end_matches("/v1"),
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

/// A silent PCM WAV of `seconds` at 16 kHz, 16-bit mono.
fn wav(seconds: f64) -> Vec<u8> {
    let rate = 16_000u32;
    let data_len = (seconds * f64::from(rate)) as u32 * 2;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[1, 0, 1, 0]);
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&[2, 0, 16, 0]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

/// POST a form to `path` with `key`.
async fn post_audio(
    gw: &Gateway,
    path: &str,
    key: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (u16, Headers, Value) {
    let files: Vec<(&str, &str, &str, &[u8])> = file
        .map(|(name, data)| ("file", name, "application/octet-stream", data))
        .into_iter()
        .collect();
    let (content_type, body) = form(fields, &files);
    post_raw(
        &gw.url(path),
        Some(key),
        body,
        &[("content-type", content_type.as_str())],
    )
    .await
}

async fn spend_row(gw: &Gateway, call_id: &str) -> Value {
    spend_logs_when(gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0)
}

fn assert_cost(headers: &Headers, expected: f64) {
    let cost: f64 = header(headers, "x-litellm-response-cost").parse().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
}

#[actix_rt::test]
async fn transcriptions_and_translations_answer_on_every_path_priced_per_second() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let audio = wav(3.0);
    let cases = [
        ("/audio/transcriptions", "whisper", "Mock transcript"),
        ("/v1/audio/transcriptions", "whisper", "Mock transcript"),
        (
            "/v1/audio/translations",
            "whisper",
            "Mock English translation",
        ),
        ("/audio/translations", "whisper", "Mock English translation"),
        (
            "/openai/deployments/whisper-azure/audio/transcriptions",
            "ignored",
            "Mock transcript",
        ),
    ];
    for (path, model, text) in cases {
        let (status, headers, out) = post_audio(
            &gw,
            path,
            MASTER_KEY,
            &[("model", model), ("language", "en")],
            Some(("a.wav", &audio)),
        )
        .await;
        assert_eq!(status, 200, "{path}: {out}");
        assert!(
            out["text"].as_str().unwrap().starts_with(text),
            "{path}: {out}"
        );
        assert!(header(&headers, "content-type").starts_with("application/json"));
        // whisper-1: $0.0001 a second, 3 s read from the WAV header.
        assert_cost(&headers, 0.0003);
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "atranscription", "{path}: {row}");
        assert!(
            (row["spend"].as_f64().unwrap() - 0.0003).abs() < 1e-12,
            "{row}"
        );
        // The provider got the form, the file intact, the provider's model name.
        let sent = mock.last_request().await;
        let sent_type = sent["headers"]["content-type"].as_str().unwrap();
        assert!(
            sent_type.starts_with("multipart/form-data; boundary="),
            "{sent_type}"
        );
        let form = sent["body"].as_str().expect("a form, not JSON");
        assert!(
            form.contains("name=\"model\"\r\n\r\nwhisper-1\r\n"),
            "{form}"
        );
        assert!(form.contains("name=\"language\"\r\n\r\nen\r\n"), "{form}");
        assert!(form.contains("filename=\"a.wav\""), "{form}");
    }
    let sent = mock.last_request().await;
    assert_eq!(
        sent["path"],
        "/openai/deployments/whisper-1/audio/transcriptions"
    );
    assert_eq!(sent["query"], "api-version=2024-06-01");
}

#[actix_rt::test]
async fn every_response_format_passes_through_with_its_content_type() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let audio = wav(2.0);
    let file = Some(("talk.wav", audio.as_slice()));
    let path = "/v1/audio/transcriptions";
    let text = format!("Mock transcript of talk.wav ({} bytes).", audio.len());
    let plain = |fmt: &'static str| [("model", "whisper"), ("response_format", fmt)];

    let (status, headers, out) = post_audio(&gw, path, MASTER_KEY, &plain("text"), file).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(out, Value::String(format!("{text}\n")), "text, not JSON");
    assert_cost(&headers, 0.0002);

    let (status, headers, out) = post_audio(&gw, path, MASTER_KEY, &plain("srt"), file).await;
    assert_eq!(status, 200, "{out}");
    assert!(header(&headers, "content-type").starts_with("text/plain"));
    assert_eq!(
        out,
        Value::String(format!("1\n00:00:00,000 --> 00:00:02,000\n{text}\n\n"))
    );

    let (status, _, out) = post_audio(&gw, path, MASTER_KEY, &plain("vtt"), file).await;
    assert_eq!(status, 200, "{out}");
    assert!(out
        .as_str()
        .unwrap()
        .starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n"));

    // Not a WAV: the length comes from the answer's `duration` (the mock counts 16 kB a second).
    let ogg = vec![7u8; 48_000];
    let (status, headers, out) = post_audio(
        &gw,
        path,
        MASTER_KEY,
        &plain("verbose_json"),
        Some(("talk.ogg", &ogg)),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["duration"], 3.0, "{out}");
    assert_eq!(out["task"], "transcribe");
    assert_cost(&headers, 0.0003);
    // Neither a duration nor a header it can read: 0 seconds (and a log line).
    let (status, headers, out) = post_audio(
        &gw,
        path,
        MASTER_KEY,
        &plain("json"),
        Some(("talk.ogg", &ogg)),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_cost(&headers, 0.0);
    wait_for(Duration::from_secs(5), || async {
        gw.proc.logs().contains("the audio's length is unknown")
    })
    .await;
}

/// Read a response as it arrives: (status, headers, body, when the first bytes came, when it
/// ended), times from the request's start.
async fn timed_stream(
    url: &str,
    key: &str,
    body: &Value,
) -> (u16, Headers, Vec<u8>, Duration, Duration) {
    let started = Instant::now();
    let mut resp = client()
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", format!("Bearer {key}")))
        .send_body(body.to_string())
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let (mut data, mut first) = (Vec::new(), None);
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.expect("the audio arrives whole");
        if !chunk.is_empty() && first.is_none() {
            first = Some(started.elapsed());
        }
        data.extend_from_slice(&chunk);
    }
    (
        status,
        headers,
        data,
        first.unwrap_or_default(),
        started.elapsed(),
    )
}

#[actix_rt::test]
async fn speech_is_relayed_as_it_arrives_and_priced_per_character() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let input = "The quick brown fox jumps over the lazy dog.";
    for path in ["/v1/audio/speech", "/audio/speech"] {
        let body = json!({"model": "tts", "input": input, "voice": "alloy"});
        let (status, headers, audio, first, end) =
            timed_stream(&gw.url(path), MASTER_KEY, &body).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&audio));
        assert_eq!(header(&headers, "content-type"), "audio/mpeg");
        // The mock sends 64 bytes a character in five pieces 200 ms apart: the first piece
        // reaches the client while the provider is still sending the rest.
        assert_eq!(audio.len(), 64 * input.chars().count());
        assert_eq!(
            header(&headers, "llm_provider-x-mock-speech-bytes"),
            audio.len().to_string()
        );
        assert!(
            end >= first + Duration::from_millis(600),
            "first bytes at {first:?}, end at {end:?}: the body was buffered"
        );
        // tts-1: $0.000015 a character.
        let cost = 0.000015 * input.chars().count() as f64;
        assert_cost(&headers, cost);
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "aspeech", "{row}");
        assert!(
            (row["spend"].as_f64().unwrap() - cost).abs() < 1e-12,
            "{row}"
        );
        let sent = mock.last_request().await;
        assert_eq!(sent["path"], "/v1/audio/speech");
        assert_eq!(sent["body"]["model"], "tts-1");
        assert_eq!(sent["body"]["voice"], "alloy");
    }
    // The format's content type passes on.
    let body = json!({"model": "tts", "input": "hi", "voice": "alloy", "response_format": "wav"});
    let (status, headers, audio, _, _) =
        timed_stream(&gw.url("/v1/audio/speech"), MASTER_KEY, &body).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "audio/wav");
    assert_eq!(audio.len(), 128);
}

#[actix_rt::test]
async fn key_model_access_and_fallbacks_apply() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["tts"]}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let audio = wav(1.0);
    let (status, _, out) = post_audio(
        &gw,
        "/v1/audio/transcriptions",
        &key,
        &[("model", "whisper")],
        Some(("a.wav", &audio)),
    )
    .await;
    assert_eq!(status, 401, "{out}");
    assert_envelope(&out);
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not allowed to access model"));
    let body = json!({"model": "tts", "input": "hello", "voice": "alloy"});
    let (status, headers, audio_out, _, _) =
        timed_stream(&gw.url("/v1/audio/speech"), &key, &body).await;
    assert_eq!(status, 200, "the key's own model");
    assert_eq!(audio_out.len(), 5 * 64);
    // The virtual key's spend row.
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "aspeech", "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");
    assert_ne!(row["api_key"], "", "{row}");

    // A failing deployment: retried, then the fallback group answers.
    let (status, headers, out) = post_audio(
        &gw,
        "/audio/transcriptions",
        MASTER_KEY,
        &[("model", "whisper-broken")],
        Some(("a.wav", &audio)),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "whisper");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    let stats = mock.stats().await;
    assert_eq!(stats["by_model"]["mock-fail-500"], 2, "{stats}");
    assert_eq!(stats["by_route"]["/audio/transcriptions"], 3, "{stats}");
}

#[actix_rt::test]
async fn bad_input_and_providers_without_audio_are_refused_with_the_openai_envelope() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let audio = wav(0.5);
    // Forms: no file, a format that does not exist.
    let (status, _, out) = post_audio(
        &gw,
        "/v1/audio/transcriptions",
        MASTER_KEY,
        &[("model", "whisper")],
        None,
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert_eq!(out["error"]["param"], "file");
    let (status, _, out) = post_audio(
        &gw,
        "/v1/audio/translations",
        MASTER_KEY,
        &[("model", "whisper"), ("response_format", "xml")],
        Some(("a.wav", &audio)),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"]["param"], "response_format");
    // JSON where a form is expected.
    let (status, _, out) = post(
        &gw.url("/audio/transcriptions"),
        Some(MASTER_KEY),
        &json!({"model": "whisper"}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    // Speech without input or voice, with a number for speed.
    for (body, param) in [
        (json!({"model": "tts", "voice": "alloy"}), "input"),
        (json!({"model": "tts", "input": ""}), "input"),
        (json!({"model": "tts", "input": "hi"}), "voice"),
        (
            json!({"model": "tts", "input": "hi", "voice": "alloy", "speed": "fast"}),
            "speed",
        ),
    ] {
        let (status, _, out) = post(&gw.url("/v1/audio/speech"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert_envelope(&out);
        assert_eq!(out["error"]["param"], param, "{out}");
    }
    // A provider whose adapter has no audio.
    let (status, _, out) = post_audio(
        &gw,
        "/audio/transcriptions",
        MASTER_KEY,
        &[("model", "claude")],
        Some(("a.wav", &audio)),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audio transcription is not supported for provider anthropic"),
        "{out}"
    );
    let body = json!({"model": "claude", "input": "hi", "voice": "alloy"});
    let (status, _, out) = post(&gw.url("/audio/speech"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{out}");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("text to speech is not supported for provider anthropic"));
    assert_eq!(
        mock.stats().await["total"],
        0,
        "nothing reached the provider"
    );
}

#[actix_rt::test]
async fn health_probes_transcribe_a_short_silence_and_speak_a_short_text() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    // whisper-1 and tts-1 are `audio_transcription` and `audio_speech` in the price table.
    for (model, route) in [
        ("whisper", "/v1/audio/transcriptions"),
        ("tts", "/v1/audio/speech"),
    ] {
        let (status, _, body) =
            get(&gw.url(&format!("/health?model={model}")), Some(MASTER_KEY)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["healthy_count"], 1, "{model}: {body}");
        assert_eq!(body["unhealthy_count"], 0, "{model}: {body}");
        assert_eq!(mock.last_request().await["path"], route);
    }
}
