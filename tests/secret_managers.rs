//! `general_settings.key_management_system`: `os.environ/NAME` resolves through HashiCorp Vault,
//! AWS Secrets Manager, Azure Key Vault or Google Secret Manager (the mock provider serves all
//! four, checking each one's auth), falling back to the environment when the manager has no such
//! secret. A missing manager variable is a start-up error naming it; the secret's value appears
//! in no log and no error.

mod common;

use common::*;
use std::time::Duration;

use serde_json::json;

/// The upstream key the mock demands (`--api-key`), stored in the secret manager.
const SECRET: &str = "sk-from-the-secret-manager-5d1c9e";
/// What the environment says for the same name: the manager's value must win over it.
const ENV_DECOY: &str = "sk-environment-value-not-used-0000";
const AKID: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const VAULT_TOKEN: &str = "hvs.mock-vault-token";
const TEST_KEY: &str = include_str!("fixtures/vertex-test-key.pem");

fn config(mock: &Mock, kind: &str) -> String {
    let base = mock.api_base();
    format!(
        r#"
model_list:
  - model_name: managed
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: os.environ/UPSTREAM_KEY}}
  - model_name: from-env
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: os.environ/ENV_ONLY_KEY}}
general_settings:
  master_key: {MASTER_KEY}
  key_management_system: {kind}
"#
    )
}

async fn seed(mock: &Mock, name: &str, value: &str) {
    let status = awc::Client::default()
        .put(format!("{}/mock/secrets/{name}", mock.proc.url))
        .send_body(value.to_string())
        .await
        .expect("seed secret")
        .status();
    assert!(status.is_success(), "{status}");
}

/// Both deployments reach the mock with the key it demands: `managed` through the manager (the
/// environment's value for the same name is not used), `from-env` from the environment.
async fn served_with_the_managed_key(gw: &Gateway, mock: &Mock) {
    for model in ["managed", "from-env"] {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &json!({"model": model, "messages": [{"role": "user", "content": "Hey!"}]}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        let last = mock.last_request().await;
        assert_eq!(
            last["headers"]["authorization"],
            format!("Bearer {SECRET}"),
            "{model}: {last}"
        );
    }
    let logs = gw.proc.logs();
    assert!(!logs.contains(SECRET), "the secret is in the logs: {logs}");
}

/// Start the gateway with the manager's variables `env` (plus the two keys' environment values),
/// check it serves both deployments, then check that leaving out `required` stops the start with
/// an error naming it.
async fn resolves_through(kind: &str, mock: &Mock, env: &[(&str, &str)], required: &str) {
    let mut all = env.to_vec();
    all.push(("UPSTREAM_KEY", ENV_DECOY));
    all.push(("ENV_ONLY_KEY", SECRET));
    let gw = Gateway::start(&config(mock, kind), &[], &all);
    served_with_the_managed_key(&gw, mock).await;
    drop(gw);

    let without: Vec<(&str, &str)> = all
        .iter()
        .copied()
        .filter(|(k, _)| *k != required)
        .collect();
    let err = Gateway::try_start(&config(mock, kind), &[], &without)
        .err()
        .expect("refused without the variable");
    assert!(err.contains(required) && err.contains(kind), "{err}");
}

#[actix_rt::test]
async fn hashicorp_vault_resolves_os_environ_references() {
    let mock = Mock::start(&["--api-key", SECRET]);
    seed(&mock, "UPSTREAM_KEY", SECRET).await;
    let url = mock.proc.url.clone();
    let env = [
        ("HCP_VAULT_ADDR", url.as_str()),
        ("HCP_VAULT_TOKEN", VAULT_TOKEN),
        ("HCP_VAULT_NAMESPACE", "admin"),
    ];
    resolves_through("hashicorp_vault", &mock, &env, "HCP_VAULT_TOKEN").await;

    // A token Vault refuses stops the start, naming the secret and the answer, not its value.
    let wrong = [
        ("HCP_VAULT_ADDR", url.as_str()),
        ("HCP_VAULT_TOKEN", "hvs.wrong"),
    ];
    let err = Gateway::try_start(&config(&mock, "hashicorp_vault"), &[], &wrong)
        .err()
        .expect("refused");
    assert!(
        err.contains("cannot read secret ENV_ONLY_KEY") && err.contains("403"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
}

#[actix_rt::test]
async fn aws_secrets_manager_resolves_os_environ_references() {
    let mock = Mock::start(&["--api-key", SECRET]);
    seed(&mock, "UPSTREAM_KEY", SECRET).await;
    let url = mock.proc.url.clone();
    let env = [
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", url.as_str()),
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_REGION_NAME", "eu-west-1"),
    ];
    resolves_through("aws_secret_manager", &mock, &env, "AWS_SECRET_ACCESS_KEY").await;

    // A wrong secret key: the mock refuses the signature, and the start stops.
    let mut wrong = env;
    wrong[2] = ("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let err = Gateway::try_start(&config(&mock, "aws_secret_manager_v2"), &[], &wrong)
        .err()
        .expect("refused");
    assert!(
        err.contains("403") && err.contains("InvalidSignature"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");
}

#[actix_rt::test]
async fn azure_key_vault_resolves_os_environ_references_with_dashes() {
    let mock = Mock::start(&["--api-key", SECRET]);
    // Key Vault names hold no `_`: `os.environ/UPSTREAM_KEY` reads `UPSTREAM-KEY`.
    seed(&mock, "UPSTREAM-KEY", SECRET).await;
    let url = mock.proc.url.clone();
    let env = [
        ("AZURE_KEY_VAULT_URI", url.as_str()),
        ("AZURE_AUTHORITY_HOST", url.as_str()),
        ("AZURE_TENANT_ID", "00000000-tenant"),
        ("AZURE_CLIENT_ID", "00000000-client"),
        ("AZURE_CLIENT_SECRET", "azure-client-secret-value"),
    ];
    resolves_through("azure_key_vault", &mock, &env, "AZURE_CLIENT_SECRET").await;
}

#[actix_rt::test]
async fn google_secret_manager_resolves_os_environ_references() {
    let mock = Mock::start(&["--api-key", SECRET]);
    seed(&mock, "UPSTREAM_KEY", SECRET).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    let account = json!({
        "type": "service_account",
        "project_id": "secrets-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": "tollgate-test@secrets-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", mock.proc.url),
    });
    std::fs::write(&creds, account.to_string()).unwrap();
    let creds = creds.to_string_lossy().to_string();
    let url = mock.proc.url.clone();
    let env = [
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER",
            url.as_str(),
        ),
        ("GOOGLE_SECRET_MANAGER_PROJECT_ID", "secrets-project"),
        ("GOOGLE_APPLICATION_CREDENTIALS", creds.as_str()),
    ];
    resolves_through(
        "google_secret_manager",
        &mock,
        &env,
        "GOOGLE_SECRET_MANAGER_PROJECT_ID",
    )
    .await;
}

#[actix_rt::test]
async fn hosted_keys_limit_the_names_read_from_the_manager() {
    let mock = Mock::start(&["--api-key", SECRET]);
    seed(&mock, "UPSTREAM_KEY", SECRET).await;
    let url = mock.proc.url.clone();
    // UPSTREAM_KEY is not hosted: the environment's value is used, and the mock refuses it.
    let config = config(&mock, "hashicorp_vault")
        + "  key_management_settings:\n    hosted_keys: [ENV_ONLY_KEY]\n";
    let gw = Gateway::start(
        &config,
        &[],
        &[
            ("HCP_VAULT_ADDR", url.as_str()),
            ("HCP_VAULT_TOKEN", VAULT_TOKEN),
            ("UPSTREAM_KEY", ENV_DECOY),
            ("ENV_ONLY_KEY", SECRET),
        ],
    );
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &json!({"model": "managed", "messages": [{"role": "user", "content": "Hey!"}]}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let last = mock.last_request().await;
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {ENV_DECOY}")
    );
}

#[actix_rt::test]
async fn a_rotated_secret_is_read_again_after_the_refresh_interval() {
    let mock = Mock::start(&[]);
    seed(&mock, "UPSTREAM_KEY", SECRET).await;
    let url = mock.proc.url.clone();
    let config = config(&mock, "hashicorp_vault")
        + "  key_management_settings:\n    refresh_interval: 0.5\n";
    let gw = Gateway::start(
        &config,
        &[],
        &[
            ("HCP_VAULT_ADDR", url.as_str()),
            ("HCP_VAULT_TOKEN", VAULT_TOKEN),
        ],
    );
    let call = || async {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &json!({"model": "managed", "messages": [{"role": "user", "content": "Hey!"}]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        mock.last_request().await["headers"]["authorization"].clone()
    };
    assert_eq!(call().await, format!("Bearer {SECRET}"));
    const ROTATED: &str = "sk-rotated-in-the-secret-manager-77aa";
    seed(&mock, "UPSTREAM_KEY", ROTATED).await;
    wait_for(Duration::from_secs(10), || async {
        call().await == format!("Bearer {ROTATED}")
    })
    .await;
    let logs = gw.proc.logs();
    assert!(!logs.contains(SECRET) && !logs.contains(ROTATED), "{logs}");
}
