//! Several gateway instances sharing router state through a real Redis (`router_settings.redis_*`):
//! cooldowns and deployment rpm hold across instances, and a Redis that is down never stalls a
//! request. Redis comes from `TOLLGATE_TEST_REDIS_URL` (scripts/test.sh), else 127.0.0.1:6379.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn deployment(mock: &Mock, group: &str, upstream: &str, extra: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/{upstream}\n      api_base: {}\n      api_key: sk-mock-upstream-secret-42\n{extra}",
        mock.api_base()
    )
}

fn shared_config(entries: &[String], router: &str) -> String {
    format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  redis_url: {}\n{router}",
        entries.concat(),
        redis_url()
    )
}

/// One deployment of group `g`, keys in `pg`, limits and routing state shared through Redis.
fn keyed_config(mock: &Mock, pg: &FreshPostgres, upstream: &str) -> String {
    format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: {}\nrouter_settings:\n  redis_url: {}\n",
        deployment(mock, "g", upstream, ""),
        pg.url,
        redis_url()
    )
}

async fn calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

async fn wait_until_connected(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = get(&gw.url("/health/readiness"), None).await;
        if body["router_redis"] == "connected" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway never reached Redis: {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_cooldown_decided_by_one_instance_is_honoured_by_all() {
    let mock = Mock::start(&[]);
    let cfg = shared_config(
        &[
            deployment(&mock, "g", "mock-fail-429", ""),
            deployment(&mock, "g", "good", ""),
        ],
        "  cooldown_time: 60\n  num_retries: 0\n",
    );
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    // Instance 0 sends until the rate-limited deployment has answered once: a 429 cools it down.
    for _ in 0..50 {
        post(
            &gateways[0].url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("g"),
        )
        .await;
        if calls(&mock, "mock-fail-429").await > 0 {
            break;
        }
    }
    assert_eq!(calls(&mock, "mock-fail-429").await, 1);
    let good_before = calls(&mock, "good").await;
    // The other instances learn of it at their next sync (every 200 ms).
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    for gw in &gateways[1..] {
        for _ in 0..15 {
            let (status, _, body) = post(
                &gw.url("/v1/chat/completions"),
                Some(MASTER_KEY),
                &chat("g"),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    assert_eq!(
        calls(&mock, "mock-fail-429").await,
        1,
        "no instance called the cooling deployment"
    );
    assert_eq!(calls(&mock, "good").await, good_before + 30);
}

#[actix_rt::test]
async fn deployment_rpm_is_exact_across_three_instances() {
    let mock = Mock::start(&[]);
    let cfg = shared_config(
        &[deployment(&mock, "g", "limited", "      rpm: 7\n")],
        "  num_retries: 0\n",
    );
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    let urls: Vec<String> = gateways
        .iter()
        .map(|g| g.url("/v1/chat/completions"))
        .collect();
    let results = futures_util::future::join_all((0..45).map(|i| {
        let url = urls[i % 3].clone();
        async move { post(&url, Some(MASTER_KEY), &chat("g")).await.0 }
    }))
    .await;
    let ok = results.iter().filter(|s| **s == 200).count();
    let limited = results.iter().filter(|s| **s == 429).count();
    // A minute boundary inside the burst opens a second window of 7.
    assert!(ok == 7 || ok == 14, "admitted {ok} across instances");
    assert_eq!(ok + limited, 45);
    assert_eq!(calls(&mock, "limited").await, ok as u64);
}

#[actix_rt::test]
async fn usage_based_routing_balances_across_instances() {
    let mock = Mock::start(&[]);
    let cfg = shared_config(
        &[
            deployment(&mock, "u", "u1", "      tpm: 1000000\n"),
            deployment(&mock, "u", "u2", "      tpm: 1000000\n"),
        ],
        "  routing_strategy: usage-based-routing-v2\n",
    );
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    for round in 0..6 {
        for gw in &gateways {
            let (status, _, _) = post(
                &gw.url("/v1/chat/completions"),
                Some(MASTER_KEY),
                &chat("u"),
            )
            .await;
            assert_eq!(status, 200);
        }
        if round % 2 == 1 {
            actix_rt::time::sleep(Duration::from_millis(450)).await;
        }
    }
    let (a, b) = (calls(&mock, "u1").await, calls(&mock, "u2").await);
    assert_eq!(a + b, 18);
    // Without sharing, each instance would balance only its own six requests; the shared token
    // counts keep the totals close.
    assert!(a.abs_diff(b) <= 4, "u1 {a} vs u2 {b}");
}

#[actix_rt::test]
async fn redis_down_never_stalls_a_request_and_readiness_says_so() {
    let mock = Mock::start(&[]);
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let cfg = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  redis_host: 127.0.0.1\n  redis_port: {port}\n  routing_strategy: usage-based-routing-v2\n",
        deployment(&mock, "g", "limited", "      rpm: 5\n")
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    clear_of_a_minute_turn(Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            post(
                &gw.url("/v1/chat/completions"),
                Some(MASTER_KEY),
                &chat("g"),
            )
            .await
            .0,
        );
    }
    // Local limits still apply; each request waited at most one Redis timeout.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    // Readiness says so, with a 503 so a load balancer stops sending traffic here.
    let (status, _, body) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("router Redis"),
        "{body}"
    );
    assert!(
        body["router_redis"]
            .as_str()
            .unwrap_or("")
            .starts_with("unavailable"),
        "{body}"
    );
}

#[actix_rt::test]
async fn a_key_rpm_limit_holds_across_three_instances_sharing_postgres_and_redis() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let cfg = keyed_config(&mock, &pg, "limited-by-key");
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    let (status, _, created) = post(
        &gateways[0].url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"rpm_limit": 6}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let urls: Vec<String> = gateways
        .iter()
        .map(|g| g.url("/v1/chat/completions"))
        .collect();
    let results = futures_util::future::join_all((0..30).map(|i| {
        let (url, key) = (urls[i % 3].clone(), key.clone());
        async move { post(&url, Some(&key), &chat("g")).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert!(ok == 6 || ok == 12, "admitted {ok} across instances");
    let refused = results.iter().find(|r| r.0 == 429).expect("some refused");
    assert!(
        refused.2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit type = key"),
        "{}",
        refused.2
    );
    assert_eq!(calls(&mock, "limited-by-key").await, ok as u64);
}

#[actix_rt::test]
async fn max_parallel_requests_holds_across_instances_and_slots_come_back() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let cfg = keyed_config(&mock, &pg, "parallel-by-key");
    let gateways: Vec<Gateway> = (0..2).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    let (status, _, created) = post(
        &gateways[0].url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"max_parallel_requests": 3}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let urls: Vec<String> = gateways
        .iter()
        .map(|g| g.url("/v1/chat/completions"))
        .collect();
    // Slow replies keep every admitted request in flight while the others arrive.
    let mut slow = chat("g");
    slow["mock_latency_ms"] = serde_json::json!(800);
    for round in 0..2 {
        let results = futures_util::future::join_all((0..12).map(|i| {
            let (url, key, body) = (urls[i % 2].clone(), key.clone(), slow.clone());
            async move { post(&url, Some(&key), &body).await }
        }))
        .await;
        let ok = results.iter().filter(|r| r.0 == 200).count();
        // Per instance alone, each would admit 3 (6 in all).
        assert_eq!(ok, 3, "round {round}: admitted {ok} across two instances");
        let refused = results.iter().find(|r| r.0 == 429).expect("some refused");
        assert!(
            refused.2["error"]["message"]
                .as_str()
                .unwrap()
                .contains("current max_parallel_requests: 3"),
            "{}",
            refused.2
        );
        // Finished requests give their slots back, so the next round admits 3 again.
        actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[actix_rt::test]
async fn redis_killed_mid_run_falls_back_to_local_limits_without_hanging() {
    let mut redis = PrivateRedis::start();
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let cfg = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: {}\nrouter_settings:\n  redis_url: redis://127.0.0.1:{}\n",
        deployment(&mock, "g", "through-an-outage", ""),
        pg.url,
        redis.port
    );
    let gateways: Vec<Gateway> = (0..2).map(|_| Gateway::start(&cfg, &[], &[])).collect();
    for gw in &gateways {
        wait_until_connected(gw).await;
    }
    // Metrics show the limits shared through Redis…
    let (_, _, before) = get_text(&gateways[0].url("/metrics")).await;
    assert!(before.contains("tollgate_rate_limits_shared 1"), "{before}");
    assert!(
        before.contains("tollgate_redis_state{state=\"connected\"} 1"),
        "{before}"
    );
    let (_, _, created) = post(
        &gateways[0].url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"rpm_limit": 4}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    // Shared: 4 across both instances.
    let mut ok = 0;
    for i in 0..8 {
        if post(
            &gateways[i % 2].url("/v1/chat/completions"),
            Some(&key),
            &chat("g"),
        )
        .await
        .0 == 200
        {
            ok += 1;
        }
    }
    assert!(ok == 4 || ok == 8, "shared limit admitted {ok}");

    redis.kill();
    // Redis gone: no request hangs; each instance keeps enforcing its own window (at most the
    // limit per instance), and readiness says Redis is unavailable.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(
            post(
                &gateways[i % 2].url("/v1/chat/completions"),
                Some(&key),
                &chat("g"),
            )
            .await
            .0,
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let admitted_after = statuses.iter().filter(|s| **s == 200).count();
    // Each instance keeps its own window of 4 per minute: at most 4 each, 8 in all.
    assert!(
        admitted_after <= 8,
        "local windows bound the total: {admitted_after}"
    );
    // The router's sync (every 200 ms) trips the circuit breaker after three failed calls.
    for gw in &gateways {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _, body) = get(&gw.url("/health/readiness"), None).await;
            if body["router_redis"]
                .as_str()
                .unwrap_or("")
                .starts_with("unavailable")
            {
                assert_eq!(status, 503, "{body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "readiness never reported the outage: {body}"
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // …and, with Redis gone, that each instance now counts alone.
    for gw in &gateways {
        let (_, _, after) = get_text(&gw.url("/metrics")).await;
        assert!(after.contains("tollgate_rate_limits_shared 0"), "{after}");
        assert!(
            after.contains("tollgate_redis_state{state=\"unavailable\"} 1"),
            "{after}"
        );
    }
}

fn redis_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(redis_url())
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `tollgate_redis_round_trips_total{purpose="…"}` from a scrape.
async fn round_trips(gw: &Gateway, purpose: &str) -> u64 {
    let (status, _, text) = get_text(&gw.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    let line = format!("tollgate_redis_round_trips_total{{purpose=\"{purpose}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in {text}"))
        .parse()
        .unwrap()
}

/// The sum of the Redis counters whose keys match `pattern` (a limit's minute windows).
fn redis_sum(pattern: &str) -> u64 {
    redis_cli(&["--scan", "--pattern", pattern])
        .lines()
        .map(|k| redis_cli(&["GET", k]).parse::<u64>().unwrap())
        .sum()
}

/// Ten chat completions to group `g` with `key`: the tokens they really used.
async fn ten_chats(gw: &Gateway, key: &str) -> u64 {
    let mut tokens = 0;
    for _ in 0..10 {
        let (status, _, body) = post(&gw.url("/v1/chat/completions"), Some(key), &chat("g")).await;
        assert_eq!(status, 200, "{body}");
        tokens += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    tokens
}

/// Ten requests' ends (slots back, token corrections) went to Redis in pipelines shared by the
/// requests that ended together: 1 to 10 settlement round trips since `before`.
async fn assert_ten_settled_in_shared_pipelines(gw: &Gateway, before: u64) {
    let settled = round_trips(gw, "settle").await - before;
    assert!(
        (1..=10).contains(&settled),
        "{settled} settlement round trips for 10 requests"
    );
}

#[actix_rt::test]
async fn a_key_with_rpm_tpm_and_parallel_limits_costs_one_redis_round_trip_before_its_answer() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let cfg = keyed_config(&mock, &pg, "one-round-trip");
    let gw = Gateway::start(&cfg, &[], &[]);
    wait_until_connected(&gw).await;
    let (status, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"rpm_limit": 1000, "tpm_limit": 1_000_000, "max_parallel_requests": 5}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    let (admit, settle, deployment) = (
        round_trips(&gw, "admit").await,
        round_trips(&gw, "settle").await,
        round_trips(&gw, "deployment").await,
    );
    let tokens = ten_chats(&gw, &key).await;
    // The slots' release and the token correction go out after the answers, in pipelines shared
    // by the requests that end together.
    let scope = format!("tollgate:limit:key:{token}");
    let window_sum = |kind: &str| redis_sum(&format!("{scope}:{kind}:*"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis_cli(&["ZCARD", &format!("{scope}:parallel")]) != "0" || window_sum("tpm") != tokens
    {
        assert!(Instant::now() < deadline, "the requests never settled");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        round_trips(&gw, "admit").await - admit,
        10,
        "one admission each"
    );
    assert_ten_settled_in_shared_pipelines(&gw, settle).await;
    assert_eq!(
        round_trips(&gw, "deployment").await - deployment,
        0,
        "an unlimited deployment is not reserved in Redis"
    );
    // What Redis holds: no slot left taken, ten requests and the real tokens in this minute.
    assert_eq!(window_sum("rpm"), 10);
    let used = window_sum("tpm");
    assert_eq!(
        used, tokens,
        "the estimates were replaced by the real usage"
    );
}

#[actix_rt::test]
async fn a_deployment_tpm_window_gets_the_real_tokens_through_the_shared_settlements() {
    let mock = Mock::start(&[]);
    let id = format!("dep-{}", uuid_like());
    let cfg = shared_config(
        &[deployment(
            &mock,
            "g",
            "tpm-limited",
            &format!("      tpm: 1000000\n    model_info:\n      id: {id}\n"),
        )],
        "  num_retries: 0\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    wait_until_connected(&gw).await;
    let (settle, deployment) = (
        round_trips(&gw, "settle").await,
        round_trips(&gw, "deployment").await,
    );
    let tokens = ten_chats(&gw, MASTER_KEY).await;
    let window_sum = |kind: &str| redis_sum(&format!("tollgate:{kind}:{id}:*"));
    // The estimates are corrected after the answers, in the pipelines the ending requests share.
    let deadline = Instant::now() + Duration::from_secs(5);
    while window_sum("tpm") != tokens {
        assert!(
            Instant::now() < deadline,
            "the deployment's tokens window holds {} after {tokens} real tokens",
            window_sum("tpm")
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(window_sum("rpm"), 10);
    assert_eq!(
        round_trips(&gw, "deployment").await - deployment,
        10,
        "one reservation each"
    );
    assert_ten_settled_in_shared_pipelines(&gw, settle).await;
}
