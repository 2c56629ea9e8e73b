//! The official OpenAI Python SDK as the client. Runs when the test script provided a Python with
//! the SDK (`TOLLGATE_TEST_PYTHON`); under CI it must be there.

mod common;

use common::*;

#[actix_rt::test]
async fn openai_python_sdk_receives_openai_shapes() {
    let Ok(python) = std::env::var("TOLLGATE_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide TOLLGATE_TEST_PYTHON (scripts/test.sh installs the SDK)"
        );
        eprintln!("TOLLGATE_TEST_PYTHON not set: OpenAI SDK smoke test not run (scripts/test.sh sets it up)");
        return;
    };
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_smoke.py");
    let url = gw.proc.url.clone();
    let output = std::process::Command::new(python)
        .args([script, &url, MASTER_KEY])
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

/// The official Anthropic Python SDK against `/v1/messages`, with a virtual key in `x-api-key`.
#[actix_rt::test]
async fn anthropic_python_sdk_uses_the_messages_endpoint() {
    let Ok(python) = std::env::var("TOLLGATE_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide TOLLGATE_TEST_PYTHON (scripts/test.sh installs the SDK)"
        );
        eprintln!("TOLLGATE_TEST_PYTHON not set: Anthropic SDK smoke test not run (scripts/test.sh sets it up)");
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
    let output = std::process::Command::new(python)
        .args([script, &url, &key])
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
