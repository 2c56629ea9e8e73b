//! OpenAI-compatible providers reached by their own variables (Together AI, Xinference, AI21's
//! chat API) and retired providers and models (`palm/`, `petals/`, AI21's Jurassic-2 names): their
//! configs load, and a call says what replaces them.

mod common;

use common::*;
use serde_json::{json, Value};

fn config() -> String {
    format!(
        r#"model_list:
  - model_name: together
    litellm_params: {{model: together_ai/mock-together}}
  - model_name: xinference
    litellm_params: {{model: xinference/mock-xinference}}
  - model_name: jamba
    litellm_params: {{model: ai21/jamba-mini-1.7}}
  - model_name: j2
    litellm_params: {{model: j2-light}}
  - model_name: palm
    litellm_params: {{model: palm/chat-bison, api_key: palm-key}}
  - model_name: petals
    litellm_params: {{model: petals/petals-team/StableBeluga2}}
general_settings:
  master_key: {MASTER_KEY}
"#
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hey!"}]})
}

#[actix_rt::test]
async fn openai_compatible_providers_use_their_own_variables_and_retired_ones_say_what_replaces_them(
) {
    let mock = Mock::start(&[]);
    let base = mock.api_base();
    let gw = Gateway::start(
        &config(),
        &[],
        &[
            ("TOGETHERAI_API_BASE", &base),
            ("TOGETHERAI_API_KEY", "sk-together-upstream"),
            ("XINFERENCE_API_BASE", &base),
            ("AI21_API_BASE", &base),
            ("AI21_API_KEY", "sk-ai21-upstream"),
        ],
    );
    for (group, upstream_model, auth) in [
        (
            "together",
            "mock-together",
            Some("Bearer sk-together-upstream"),
        ),
        ("xinference", "mock-xinference", None),
        ("jamba", "jamba-mini-1.7", Some("Bearer sk-ai21-upstream")),
    ] {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(group),
        )
        .await;
        assert_eq!(status, 200, "{group}: {body}");
        assert!(
            body["choices"][0]["message"]["content"].is_string(),
            "{body}"
        );
        let last = mock.last_request().await;
        assert_eq!(last["path"], "/v1/chat/completions", "{group}: {last}");
        assert_eq!(last["body"]["model"], upstream_model, "{group}: {last}");
        match auth {
            Some(a) => assert_eq!(last["headers"]["authorization"], a, "{group}: {last}"),
            None => assert!(
                last["headers"]["authorization"].is_null()
                    || !last["headers"]["authorization"]
                        .as_str()
                        .unwrap()
                        .contains(MASTER_KEY),
                "{last}"
            ),
        }
    }

    let served_before = mock.stats().await;
    for (group, says) in [
        ("palm", "gemini/"),
        ("petals", "OpenAI-compatible"),
        ("j2", "jamba"),
    ] {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(group),
        )
        .await;
        assert_eq!(status, 400, "{group}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{group}: {message}");
    }
    // Nothing went upstream for them.
    assert_eq!(mock.stats().await["total"], served_before["total"]);

    // /health shows the same reason for each retired deployment.
    let (status, _, health) = get(&gw.url("/health"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{health}");
    let unhealthy = health["unhealthy_endpoints"]
        .as_array()
        .expect("unhealthy_endpoints");
    for (model, says) in [
        ("palm/chat-bison", "gemini/"),
        ("petals/petals-team/StableBeluga2", "OpenAI-compatible"),
        ("j2-light", "jamba"),
    ] {
        let entry = unhealthy
            .iter()
            .find(|e| e["model"] == model)
            .unwrap_or_else(|| panic!("{model} in {health}"));
        assert!(
            entry["error"].as_str().unwrap_or("").contains(says),
            "{entry}"
        );
    }
    assert!(!health.to_string().contains("palm-key"), "{health}");
}
