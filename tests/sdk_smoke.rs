//! The official OpenAI Python SDK as the client. Runs when the test script provided a Python with
//! the SDK (`TOLLGATE_TEST_PYTHON`); under CI it must be there.

mod common;

use common::*;

/// The Python with the SDKs (`TOLLGATE_TEST_PYTHON`, set up by scripts/test.sh); `None` (the test
/// is skipped) outside CI when it is not there.
fn python(what: &str) -> Option<String> {
    match std::env::var("TOLLGATE_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide TOLLGATE_TEST_PYTHON (scripts/test.sh installs the SDK)"
            );
            eprintln!("TOLLGATE_TEST_PYTHON not set: {what} not run (scripts/test.sh sets it up)");
            None
        }
    }
}

/// Run an SDK script; it prints one line per check and "all SDK checks passed" at the end.
fn run_script(python: &str, args: &[&str]) {
    let output = std::process::Command::new(python)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK smoke failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all SDK checks passed"), "{stdout}");
}

#[actix_rt::test]
async fn openai_python_sdk_receives_openai_shapes() {
    let Some(python) = python("OpenAI SDK smoke test") else {
        return;
    };
    let mock = Mock::start(&[]);
    // Images, moderations and audio too: an image model, the moderation model
    // `moderations.create` falls back to when it names none, a Whisper and a TTS model; and an
    // Anthropic deployment, which the Responses API speaks to in chat.
    let config = basic_config(&mock).replacen(
        "model_list:\n",
        &format!(
            "model_list:\n  - model_name: mock-claude\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: {base}, api_key: sk-x}}\n  - model_name: mock-image\n    litellm_params: {{model: openai/gpt-image-1, api_base: {base}, api_key: sk-x}}\n  - model_name: mock-moderation\n    litellm_params: {{model: openai/omni-moderation-latest, api_base: {base}, api_key: sk-x}}\n    model_info: {{mode: moderation}}\n  - model_name: mock-whisper\n    litellm_params: {{model: openai/whisper-1, api_base: {base}, api_key: sk-x}}\n  - model_name: mock-tts\n    litellm_params: {{model: openai/tts-1, api_base: {base}, api_key: sk-x}}\n",
            base = mock.api_base()
        ),
        1,
    );
    let gw = Gateway::start(&config, &[], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_smoke.py");
    let url = gw.proc.url.clone();
    run_script(&python, &[script, &url, MASTER_KEY]);
}

/// The official Anthropic Python SDK against `/v1/messages`, with a virtual key in `x-api-key`.
#[actix_rt::test]
async fn anthropic_python_sdk_uses_the_messages_endpoint() {
    let Some(python) = python("Anthropic SDK smoke test") else {
        return;
    };
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let (status, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"models": ["mock-gpt"], "key_alias": "anthropic-sdk"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().expect("key").to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_smoke.py");
    let url = gw.proc.url.clone();
    run_script(&python, &[script, &url, &key]);
}

/// The OpenAI Python SDK gets the same shapes (chat, stream with usage, tool calls plain and
/// streamed, errors) whichever provider adapter answers (Vertex AI shares Gemini's translation): each model group is the mock speaking one
/// provider's wire format.
#[actix_rt::test]
async fn openai_python_sdk_gets_the_same_shapes_from_every_provider() {
    let Some(python) = python("provider SDK smoke test") else {
        return;
    };
    let mock = Mock::start(&[]);
    let root = mock.proc.url.clone();
    let config = format!(
        r#"
model_list:
  - model_name: via-openai
    litellm_params: {{model: openai/mock-gpt, api_base: "{root}/v1", api_key: sk-up}}
  - model_name: via-anthropic
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{root}", api_key: sk-up}}
  - model_name: via-bedrock
    litellm_params: {{model: "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", api_base: "{root}", aws_region_name: us-east-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}}
  - model_name: via-cohere
    litellm_params: {{model: cohere_chat/command-a-03-2025, api_base: "{root}", api_key: sk-up}}
  - model_name: via-ollama
    litellm_params: {{model: ollama_chat/llama3.1, api_base: "{root}", drop_params: true}}
  - model_name: via-huggingface
    litellm_params: {{model: huggingface/tgi, api_base: "{root}", api_key: hf-up}}
  - model_name: via-gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{root}", api_key: AIza-up}}
  - model_name: via-gemini-429
    litellm_params: {{model: gemini/mock-fail-429, api_base: "{root}", api_key: AIza-up}}
general_settings:
  master_key: {MASTER_KEY}
"#
    );
    let gw = Gateway::start(&config, &[], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/providers_smoke.py");
    let url = gw.proc.url.clone();
    run_script(
        &python,
        &[
            script,
            &url,
            MASTER_KEY,
            "via-openai",
            "via-anthropic",
            "via-bedrock",
            "via-cohere",
            "via-ollama",
            "via-huggingface",
            "via-gemini@via-gemini-429",
        ],
    );
}
