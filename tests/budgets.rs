//! Budgets beyond a key's `max_budget`: organizations, end users, `model_max_budget`,
//! `soft_budget`, `budget_duration` resets, and the spend reports (`/global/spend/report`,
//! `/global/spend/keys`, `/global/spend/teams`, `/global/spend/models`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Two priced model groups; each mock reply costs more than 0.01.
fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: other
    litellm_params: {{model: openai/other-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base()
    )
}

fn start(mock: &Mock) -> Gateway {
    Gateway::start(
        &config(mock),
        &[],
        &[("TOLLGATE_BUDGET_RESET_SECONDS", "0.3")],
    )
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, _, key) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{key}");
    key["key"].as_str().unwrap().to_string()
}

async fn call(gw: &Gateway, key: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = post(&gw.url("/v1/chat/completions"), Some(key), body).await;
    (status, body)
}

fn assert_budget_exceeded(status: u16, body: &Value, needle: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[actix_rt::test]
async fn a_budget_resets_after_its_duration() {
    let mock = Mock::start(&[]);
    let gw = start(&mock);
    let key = new_key(
        &gw,
        json!({"max_budget": 0.01, "budget_duration": "2s", "key_alias": "resets"}),
    )
    .await;
    let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    let first_reset = info["info"]["budget_reset_at"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(call(&gw, &key, &chat("priced")).await.0, 200);
    let (status, body) = call(&gw, &key, &chat("priced")).await;
    assert_budget_exceeded(status, &body, "Budget has been exceeded");

    // Within a few seconds the reset job zeroes the spend and moves budget_reset_at on.
    wait_for(Duration::from_secs(15), || async {
        call(&gw, &key, &chat("priced")).await.0 == 200
    })
    .await;
    let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    let next_reset = info["info"]["budget_reset_at"].as_str().unwrap();
    assert!(
        next_reset > first_reset.as_str(),
        "{next_reset} after {first_reset}"
    );
    assert!(
        gw.proc.logs().contains("budget reset"),
        "{}",
        gw.proc.logs()
    );
}

#[actix_rt::test]
async fn organization_and_end_user_budgets_are_enforced() {
    let mock = Mock::start(&[]);
    let gw = start(&mock);

    let (status, _, org) = post(
        &gw.url("/organization/new"),
        Some(MASTER_KEY),
        &json!({"organization_alias": "thrifty", "max_budget": 0.01}),
    )
    .await;
    assert_eq!(status, 200, "{org}");
    let org_id = org["organization_id"].as_str().unwrap();
    let a = new_key(&gw, json!({"organization_id": org_id})).await;
    let b = new_key(&gw, json!({"organization_id": org_id})).await;
    assert_eq!(call(&gw, &a, &chat("priced")).await.0, 200);
    let (status, body) = call(&gw, &b, &chat("priced")).await;
    assert_budget_exceeded(status, &body, &format!("Organization={org_id}"));

    let (status, _, customer) = post(
        &gw.url("/customer/new"),
        Some(MASTER_KEY),
        &json!({"user_id": "end-user-1", "max_budget": 0.01}),
    )
    .await;
    assert_eq!(status, 200, "{customer}");
    let key = new_key(&gw, json!({})).await;
    let mut body = chat("priced");
    body["user"] = json!("end-user-1");
    assert_eq!(call(&gw, &key, &body).await.0, 200);
    let (status, err) = call(&gw, &key, &body).await;
    assert_budget_exceeded(status, &err, "End User=end-user-1");
    // Another end user on the same key is not affected.
    body["user"] = json!("end-user-2");
    assert_eq!(call(&gw, &key, &body).await.0, 200);
}

#[actix_rt::test]
async fn model_max_budget_limits_one_model_and_soft_budget_only_warns() {
    let mock = Mock::start(&[]);
    let gw = start(&mock);
    let key = new_key(
        &gw,
        json!({"model_max_budget": {"priced": {"budget_limit": 0.01, "time_period": "1d"}},
               "soft_budget": 0.001}),
    )
    .await;
    assert_eq!(call(&gw, &key, &chat("priced")).await.0, 200);
    let (status, body) = call(&gw, &key, &chat("priced")).await;
    assert_budget_exceeded(status, &body, "Max Budget for Model");
    // Other models stay available, past the soft budget too.
    for _ in 0..2 {
        assert_eq!(call(&gw, &key, &chat("other")).await.0, 200);
    }
    // After the spend is written and the key reloaded, the stored spend still counts.
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let (status, body) = call(&gw, &key, &chat("priced")).await;
    assert_budget_exceeded(status, &body, "Max Budget for Model");
    let logs = gw.proc.logs();
    assert_eq!(
        logs.matches("key crossed its soft budget").count(),
        1,
        "{logs}"
    );
}

#[actix_rt::test]
async fn spend_reports_group_by_day_team_key_and_model() {
    let mock = Mock::start(&[]);
    let gw = start(&mock);
    let (status, _, team) = post(
        &gw.url("/team/new"),
        Some(MASTER_KEY),
        &json!({"team_alias": "reporting"}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_string();
    let team_key = new_key(&gw, json!({"team_id": team_id, "key_alias": "team-key"})).await;
    let solo_key = new_key(&gw, json!({"key_alias": "solo-key"})).await;
    let mut team_cost = 0.0;
    let mut solo_cost = 0.0;
    for (key, model) in [
        (&team_key, "priced"),
        (&team_key, "other"),
        (&solo_key, "priced"),
    ] {
        let (status, headers, body) =
            post(&gw.url("/v1/chat/completions"), Some(key), &chat(model)).await;
        assert_eq!(status, 200, "{body}");
        let total = if key == &team_key {
            &mut team_cost
        } else {
            &mut solo_cost
        };
        *total += headers
            .get("x-litellm-response-cost")
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
    }
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let today = &chrono_today();

    // Rows are written in batches: wait for the report to show all three.
    let report_url = gw.url("/global/spend/report?group_by=team");
    wait_for(Duration::from_secs(15), || async {
        let (_, _, r) = get(&report_url, Some(MASTER_KEY)).await;
        r.as_array().is_some_and(|days| {
            days.iter()
                .flat_map(|d| d["teams"].as_array().cloned().unwrap_or_default())
                .map(|t| t["total_spend"].as_f64().unwrap_or(0.0))
                .sum::<f64>()
                >= team_cost + solo_cost - 1e-9
        })
    })
    .await;
    let (_, _, report) = get(&report_url, Some(MASTER_KEY)).await;
    let day = &report[0];
    assert_eq!(day["group_by_day"], today.as_str(), "{report}");
    let teams = day["teams"].as_array().unwrap();
    let team = teams.iter().find(|t| t["team_name"] == team_id).unwrap();
    assert!(
        close(team["total_spend"].as_f64().unwrap(), team_cost),
        "{report}"
    );
    let models: Vec<&str> = team["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 2, "{report}");
    assert!(models.contains(&"priced") && models.contains(&"other"));
    let unassigned = teams
        .iter()
        .find(|t| t["team_name"] == "Unassigned")
        .unwrap();
    assert!(close(
        unassigned["total_spend"].as_f64().unwrap(),
        solo_cost
    ));

    // A date range that excludes today is empty; filters narrow the rows.
    let (status, _, empty) = get(
        &gw.url("/global/spend/report?start_date=2000-01-01&end_date=2000-01-02"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty, json!([]));
    let (_, _, by_key) = get(
        &gw.url(&format!(
            "/global/spend/report?group_by=api_key&api_key={solo_key}"
        )),
        Some(MASTER_KEY),
    )
    .await;
    let keys = by_key[0]["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{by_key}");
    assert!(close(keys[0]["total_spend"].as_f64().unwrap(), solo_cost));
    let (status, _, bad) = get(
        &gw.url("/global/spend/report?group_by=planet"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    let (_, _, top) = get(&gw.url("/global/spend/keys?limit=1"), Some(MASTER_KEY)).await;
    let top = top.as_array().unwrap();
    assert_eq!(top.len(), 1);
    let expected_top = if team_cost > solo_cost {
        "team-key"
    } else {
        "solo-key"
    };
    assert_eq!(top[0]["key_alias"], expected_top, "{top:?}");

    let (_, _, models) = get(&gw.url("/global/spend/models"), Some(MASTER_KEY)).await;
    let total: f64 = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["total_spend"].as_f64().unwrap())
        .sum();
    assert!(close(total, team_cost + solo_cost), "{models}");

    let (_, _, teams) = get(&gw.url("/global/spend/teams"), Some(MASTER_KEY)).await;
    assert!(teams["daily_spend"][0]["date"] == today.as_str(), "{teams}");
    let t = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_id"] == team_id)
        .unwrap();
    assert!(close(t["total_spend"].as_f64().unwrap(), team_cost));

    // Reports are for admins.
    let (status, _, _) = get(&gw.url("/global/spend/report"), Some(&solo_key)).await;
    assert_eq!(status, 403);
}

fn chrono_today() -> String {
    tollgate::time::iso8601(tollgate::time::now_ms())[..10].to_string()
}
