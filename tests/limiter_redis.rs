//! The rate limits' Redis breaker: when Redis stops answering, requests stop awaiting it after a
//! few failed calls (one warning in the log, `tollgate_rate_limit_breaker_open 1`) and count
//! locally; when Redis is back, the limiter actor's probe closes the breaker and the limits are
//! shared again. Uses a private `redis-server` (scripts/test.sh installs it).

mod common;

use std::time::{Duration, Instant};

use common::*;

async fn metrics(gw: &Gateway) -> String {
    let (status, _, text) = get_text(&gw.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    text
}

async fn wait_for_metric(gw: &Gateway, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = metrics(gw).await;
        if text.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {line}: {text}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn the_limits_breaker_opens_when_redis_dies_and_closes_when_it_is_back() {
    let mut redis = PrivateRedis::start();
    let mock = Mock::start(&[]);
    let cfg = format!(
        "{}router_settings:\n  redis_url: redis://127.0.0.1:{}\n",
        basic_config(&mock),
        redis.port
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &serde_json::json!({"rpm_limit": 1000}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let call = || {
        let (url, key) = (url.clone(), key.clone());
        async move { post(&url, Some(&key), &chat("mock-gpt")).await.0 }
    };

    assert_eq!(call().await, 200);
    assert!(redis.limit_keys().contains("tollgate:limit:key:"));
    let before = metrics(&gw).await;
    assert!(
        before.contains("tollgate_rate_limit_breaker_open 0"),
        "{before}"
    );
    assert!(
        before.contains("tollgate_rate_limit_breaker_opened_total 0"),
        "{before}"
    );

    // Redis dies: requests still pass on the local counters, and a few failed calls open the
    // breaker.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(call().await, 200);
        if metrics(&gw)
            .await
            .contains("tollgate_rate_limit_breaker_open 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never opened");
    }
    // While it is open, requests do not wait on Redis at all.
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(call().await, 200);
    }
    let open = metrics(&gw).await;
    assert!(open.contains("tollgate_rate_limits_shared 0"), "{open}");
    assert!(
        open.contains("tollgate_rate_limit_breaker_opened_total 1"),
        "{open}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // Redis is back: the limiter actor's probe closes the breaker, and requests reserve in Redis
    // again.
    redis.resume();
    wait_for_metric(
        &gw,
        "tollgate_rate_limit_breaker_open 0",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(redis.limit_keys(), "", "nothing was reserved while open");
    assert_eq!(call().await, 200);
    assert!(
        redis.limit_keys().contains("tollgate:limit:key:"),
        "shared again"
    );
    let after = metrics(&gw).await;
    assert!(
        after.contains("tollgate_rate_limit_breaker_opened_total 1"),
        "{after}"
    );
    let logs = gw.proc.logs();
    assert_eq!(
        logs.matches("redis unreachable for rate limits").count(),
        1,
        "said once: {logs}"
    );
    assert!(
        logs.contains("rate limits are shared across instances again"),
        "{logs}"
    );
}
