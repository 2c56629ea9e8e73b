//! The config-key registry (`src/config_keys.rs`) against the docs, the repository's configs and the
//! running gateway: every key either acts, or is a no-op warned about with its reason, or is unknown
//! and warned about as such; and the keys the registry says act do act.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tollgate::config_keys::{self, Section, Status};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read config dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn the_generated_section_of_docs_config_md_is_current() {
    let path = repo().join("docs/CONFIG.md");
    let doc = std::fs::read_to_string(&path).expect("docs/CONFIG.md");
    let fresh = config_keys::regenerate_doc(&doc).unwrap_or_else(|| {
        panic!(
            "docs/CONFIG.md lost its generated section markers:\n{}\n{}",
            config_keys::DOC_BEGIN,
            config_keys::DOC_END
        )
    });
    assert!(
        fresh == doc,
        "docs/CONFIG.md's key tables differ from the registry (src/config_keys.rs). Regenerate them with:\n\n    cargo run --bin tollgate -- config-keys --write-docs docs/CONFIG.md\n"
    );
}

#[test]
fn the_config_keys_subcommand_prints_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_to_end(&["config-keys"], &[], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no-op  litellm_settings.telemetry: Tollgate sends no telemetry"),
        "{out}"
    );
    assert!(
        out.contains("acts   model_list[].litellm_params.max_parallel_requests: "),
        "{out}"
    );
    assert_eq!(out.lines().count(), config_keys::KEYS.len());

    let (code, out, _) = run_to_end(&["config-keys", "--markdown"], &[], dir.path());
    assert_eq!(code, 0);
    assert_eq!(out, config_keys::markdown());

    // --write-docs rewrites only the marked section.
    let doc = dir.path().join("CONFIG.md");
    std::fs::write(
        &doc,
        format!(
            "# Title\n{}\nstale\n{}\ntail\n",
            config_keys::DOC_BEGIN,
            config_keys::DOC_END
        ),
    )
    .expect("write");
    let (code, _, err) = run_to_end(
        &["config-keys", "--write-docs", &doc.to_string_lossy()],
        &[],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(&doc).expect("read");
    assert!(written.starts_with("# Title\n") && written.ends_with("tail\n"));
    assert!(written.contains("| `allowed_fails` | acts, live |") && !written.contains("stale"));
}

/// Keys of the repository's configs that no LiteLLM version reads (the LiteLLM tutorial that
/// `tutorial-ch7-*` comes from invents them): reported as unknown, deliberately.
const UNKNOWN_ON_PURPOSE: &[&str] = &[
    "fallback_mapping",
    "logging",
    "rate_limit_config",
    "user_config",
    "litellm_settings.cost_tracking",
    "general_settings.global_max_rpm",
    "general_settings.global_max_tpm",
    "general_settings.log_level",
];

/// Every key of a config document with its section and the path warnings name it by.
fn keys_of(doc: &Value) -> Vec<(Section, String, String)> {
    let mut out = Vec::new();
    let Some(root) = doc.as_object() else {
        return out;
    };
    for (key, value) in root {
        out.push((Section::Top, key.clone(), key.clone()));
        let section = match key.as_str() {
            "litellm_settings" => Section::LitellmSettings,
            "router_settings" => Section::RouterSettings,
            "general_settings" => Section::GeneralSettings,
            _ => continue,
        };
        for k in value.as_object().into_iter().flat_map(|m| m.keys()) {
            out.push((section, k.clone(), format!("{key}.{k}")));
        }
    }
    for (i, entry) in root
        .get("model_list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        for (key, value) in entry {
            out.push((
                Section::ModelEntry,
                key.clone(),
                format!("model_list[{i}].{key}"),
            ));
            let section = match key.as_str() {
                "litellm_params" => Section::LitellmParams,
                "model_info" => Section::ModelInfo,
                _ => continue,
            };
            for k in value.as_object().into_iter().flat_map(|m| m.keys()) {
                out.push((section, k.clone(), format!("model_list[{i}].{key}.{k}")));
            }
        }
    }
    out
}

#[test]
fn every_key_of_every_repository_config_is_registered_or_deliberately_reported() {
    let mut files = Vec::new();
    yaml_files(&repo().join("config"), &mut files);
    assert!(files.len() >= 40, "{files:?}");
    let mut unknown_seen = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let doc: Value = yaml_serde::from_str(&text).expect("the repository's configs parse");
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, out, err) = run_to_end(
            &["--config", &file.to_string_lossy(), "--validate_config"],
            &[],
            dir.path(),
        );
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(code, 0, "{name}: {out}{err}");
        // The warnings about keys (not about unset variables and the like).
        let warnings: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("warning: "))
            .filter(|w| {
                w.contains("unknown config key ") || w.contains(" has no effect in Tollgate: ")
            })
            .collect();
        for (section, key, path) in keys_of(&doc) {
            let names =
                |w: &&str| w.contains(&format!("{path} ")) || w.contains(&format!("{path};"));
            match config_keys::lookup(section, &key).map(|k| k.status) {
                Some(Status::Acts(_)) => assert!(
                    !warnings.iter().any(names),
                    "{name}: {path} acts but is warned about: {warnings:?}"
                ),
                Some(Status::NoOp(why)) => assert!(
                    warnings.iter().any(|w| names(w) && w.contains(why)),
                    "{name}: the no-op {path} is not reported with its reason: {warnings:?}"
                ),
                None => {
                    let bare = path.split('[').next().unwrap_or(&path).to_string();
                    let listed = UNKNOWN_ON_PURPOSE.contains(&path.as_str())
                        || UNKNOWN_ON_PURPOSE.contains(&bare.as_str());
                    assert!(
                        listed,
                        "{name}: {path} is neither in the registry nor deliberately unknown"
                    );
                    assert!(
                        warnings
                            .iter()
                            .any(|w| names(w) && w.starts_with("unknown config key ")),
                        "{name}: unknown {path} not warned about: {warnings:?}"
                    );
                    unknown_seen.push(path);
                }
            }
        }
    }
    for key in UNKNOWN_ON_PURPOSE {
        assert!(
            unknown_seen.iter().any(|k| k == key),
            "{key} is listed as deliberately unknown but no config has it"
        );
    }
}

async fn calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

fn entry(mock: &Mock, group: &str, upstream: &str, extra: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params: {{model: openai/{upstream}, api_base: {}, api_key: sk-mock-upstream-secret-42{extra}}}\n",
        mock.api_base()
    )
}

#[actix_rt::test]
async fn litellm_settings_allowed_fails_cools_a_failing_deployment_down() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  cooldown_time: 60\nlitellm_settings:\n  allowed_fails: 0\n",
        entry(&mock, "g", "mock-fail-500", ""),
        entry(&mock, "g", "good-b", ""),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    // Until the failing deployment has been picked once (its failure is retried on the other).
    let started = Instant::now();
    while calls(&mock, "mock-fail-500").await == 0 {
        assert!(started.elapsed() < Duration::from_secs(20));
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("g"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // allowed_fails: 0 means the first failure cools it down (the default, 3, would allow three
    // more); its actor decides a moment after the report.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..30 {
        let (status, _, _) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("g"),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(calls(&mock, "mock-fail-500").await, 1);
    let logs = gw.proc.logs();
    assert!(!logs.contains("allowed_fails"), "{logs}");
}

#[actix_rt::test]
async fn set_verbose_logs_each_request_and_upstream_call() {
    let mock = Mock::start(&[]);
    let verbose = format!(
        "{}litellm_settings:\n  set_verbose: true\n",
        basic_config(&mock)
    );
    let quiet = basic_config(&mock);
    for (cfg, expect) in [(verbose, true), (quiet, false)] {
        let gw = Gateway::start(&cfg, &[], &[]);
        let (status, _, _) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("mock-gpt"),
        )
        .await;
        assert_eq!(status, 200);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let logs = gw.proc.logs();
        assert_eq!(logs.contains("upstream request"), expect, "{logs}");
        assert!(!logs.contains("sk-mock-upstream-secret-42"), "{logs}");
        assert!(!logs.contains("set_verbose"), "{logs}");
    }
}

#[actix_rt::test]
async fn budget_exceeded_status_code_sets_the_status_of_budget_errors() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        "model_list:\n  - model_name: priced\n    litellm_params: {{model: openai/priced-model, api_base: {}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\nlitellm_settings:\n  budget_exceeded_status_code: 402\n",
        mock.api_base()
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"max_budget": 0.01}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, Some(&key), &chat("priced")).await.0, 200);
    let (status, _, body) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    assert!(!gw.proc.logs().contains("budget_exceeded_status_code"));
}

#[actix_rt::test]
async fn an_organization_list_becomes_one_deployment_per_organization() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n",
        entry(
            &mock,
            "g",
            "mock-gpt",
            ", organization: [org-alpha, org-beta]"
        ),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, _, info) = get(&gw.url("/v1/model/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{info}");
    let mut orgs: Vec<String> = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["model_name"] == "g")
        .map(|d| {
            d["litellm_params"]["organization"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    orgs.sort();
    assert_eq!(orgs, vec!["org-alpha", "org-beta"]);
    // Calls spread over both: each sends its own OpenAI-Organization header.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, _, _) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("g"),
        )
        .await;
        assert_eq!(status, 200);
        let last = mock.last_request().await;
        seen.insert(
            last["headers"]["openai-organization"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["org-alpha".to_string(), "org-beta".to_string()]
    );
}

#[actix_rt::test]
async fn max_parallel_requests_holds_a_deployment_to_that_many_calls_at_once() {
    let mock = Mock::start(&["--latency-ms", "400"]);
    let cfg = format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  default_max_parallel_requests: 2\n",
        entry(&mock, "one", "mock-gpt", ", max_parallel_requests: 1"),
        entry(&mock, "two", "mock-gpt-mini", ""),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let run = |group: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let started = Instant::now();
            let calls = (0..4).map(|_| {
                let url = url.clone();
                async move { post(&url, Some(MASTER_KEY), &chat(group)).await.0 }
            });
            let statuses = futures_util::future::join_all(calls).await;
            assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
            started.elapsed()
        }
    };
    // One at a time: four calls of 400 ms take 1.6 s at least.
    let one = run("one").await;
    assert!(one >= Duration::from_millis(1550), "{one:?}");
    // Two at a time (the router's default): 0.8 s at least, well under 1.6 s.
    let two = run("two").await;
    assert!(two >= Duration::from_millis(750), "{two:?}");
    assert!(two < Duration::from_millis(1500), "{two:?}");
}

#[actix_rt::test]
async fn mock_timeout_times_the_call_out_without_reaching_the_provider() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n",
        entry(
            &mock,
            "slow",
            "mock-gpt",
            ", mock_timeout: true, timeout: 1, num_retries: 0"
        ),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let started = Instant::now();
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("slow"),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{body}");
    assert_envelope(&body);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(calls(&mock, "mock-gpt").await, 0);
}
