//! The config read from a bucket (`LITELLM_CONFIG_BUCKET_TYPE`, `_NAME`, `_OBJECT_KEY`): S3 with
//! `AWS_ENDPOINT_URL_S3` (path style, SigV4 checked by the mock) and GCS with
//! `STORAGE_EMULATOR_HOST`; a config that cannot be read stops the start with the reason.

mod common;

use common::*;
use serde_json::json;

/// AWS's documentation example credentials, which the mock's S3 accepts.
const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

async fn put_object(mock: &Mock, bucket: &str, key: &str, text: &str) {
    let status = awc::Client::default()
        .put(format!("{}/mock/objects/{bucket}/{key}", mock.proc.url))
        .send_body(text.to_string())
        .await
        .expect("put object")
        .status();
    assert!(status.is_success(), "{status}");
}

/// The config in the bucket: one group, `from-bucket`, on the mock.
fn bucket_config(mock: &Mock) -> String {
    format!(
        "model_list:\n  - model_name: from-bucket\n    litellm_params: {{model: openai/mock-gpt, api_base: {}, api_key: sk-x}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        mock.api_base()
    )
}

/// The local file the bucket replaces: another group, another master key.
const LOCAL: &str = "model_list:\n  - model_name: from-file\n    litellm_params: {model: openai/x, api_base: http://127.0.0.1:9/v1}\ngeneral_settings:\n  master_key: sk-local-file-key-that-must-not-be-used-0000\n";

async fn served_from_bucket(gw: &Gateway) {
    let (status, _, models) = get(&gw.url("/v1/models"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{models}");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["from-bucket"]);
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &json!({"model": "from-bucket", "messages": [{"role": "user", "content": "Hey!"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn the_config_is_read_from_s3_with_a_custom_endpoint() {
    let mock = Mock::start(&[]);
    put_object(&mock, "configs", "prod/config.yaml", &bucket_config(&mock)).await;
    let endpoint = format!("{}/s3", mock.proc.url);
    let env = [
        ("LITELLM_CONFIG_BUCKET_NAME", "configs"),
        ("LITELLM_CONFIG_BUCKET_OBJECT_KEY", "prod/config.yaml"),
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "eu-west-1"),
    ];
    let gw = Gateway::start(LOCAL, &[], &env);
    served_from_bucket(&gw).await;
    assert!(
        gw.proc.logs().contains("s3://configs/prod/config.yaml"),
        "{}",
        gw.proc.logs()
    );

    // A wrong secret: S3 refuses the signature and the gateway does not start.
    let mut wrong = env;
    wrong[4] = ("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let err = Gateway::try_start(LOCAL, &[], &wrong)
        .err()
        .expect("refused");
    assert!(err.contains("s3://configs/prod/config.yaml"), "{err}");
    assert!(err.contains("403"), "{err}");
    // A missing object: the start-up error names it.
    let mut missing = env;
    missing[1] = ("LITELLM_CONFIG_BUCKET_OBJECT_KEY", "prod/nope.yaml");
    let err = Gateway::try_start(LOCAL, &[], &missing)
        .err()
        .expect("refused");
    assert!(
        err.contains("s3://configs/prod/nope.yaml") && err.contains("404"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
}

#[actix_rt::test]
async fn the_config_is_read_from_gcs_through_an_emulator() {
    let mock = Mock::start(&[]);
    put_object(
        &mock,
        "gcs-configs",
        "team/config.yaml",
        &bucket_config(&mock),
    )
    .await;
    let host = mock.proc.url.trim_start_matches("http://").to_string();
    let env = [
        ("LITELLM_CONFIG_BUCKET_TYPE", "gcs"),
        ("LITELLM_CONFIG_BUCKET_NAME", "gcs-configs"),
        ("LITELLM_CONFIG_BUCKET_OBJECT_KEY", "team/config.yaml"),
        ("STORAGE_EMULATOR_HOST", host.as_str()),
    ];
    let gw = Gateway::start(LOCAL, &[], &env);
    served_from_bucket(&gw).await;

    // An incomplete setting is a clear start-up error.
    let err = Gateway::try_start(LOCAL, &[], &env[..2])
        .err()
        .expect("refused");
    assert!(err.contains("LITELLM_CONFIG_BUCKET_OBJECT_KEY"), "{err}");
}
