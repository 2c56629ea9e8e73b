//! Budgets, limits and spend that a client cannot walk around: a stream closed before its usage
//! chunk is still charged, parallel requests cannot overshoot a budget, one unstorable spend row
//! never blocks the others, client errors never cool a shared deployment, and per-model limits
//! hold under every alias of the model group.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn row(request_id: &str, api_key: &str, end_user: Option<&str>) -> tollgate::store::SpendLog {
    tollgate::store::SpendLog {
        request_id: request_id.into(),
        call_type: "acompletion".into(),
        api_key: api_key.into(),
        spend: 0.5,
        total_tokens: 10,
        prompt_tokens: 7,
        completion_tokens: 3,
        start_time: 1_700_000_000_000,
        end_time: 1_700_000_000_100,
        model: "openai/priced-model".into(),
        model_id: None,
        model_group: Some("priced".into()),
        api_base: None,
        user_id: None,
        team_id: None,
        organization_id: None,
        end_user: end_user.map(str::to_string),
        status: "success".into(),
        metadata: "{}".into(),
        response_id: None,
    }
}

/// F7: on Postgres, a spend row the database cannot store (a NUL in a text column) is set aside
/// in the dead-letter file; the rows of other tenants, in the same batch and later, are stored.
#[actix_rt::test]
async fn an_unstorable_spend_row_is_set_aside_and_never_blocks_the_others() {
    let pg = FreshPostgres::create();
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    std::env::set_var(tollgate::spend::DEAD_LETTER_ENV, &dead_letter);
    let url = tollgate::database::url_for(Some(pg.url.clone())).unwrap();
    let db = Arc::new(tollgate::database::Database::start(url).unwrap());
    db.open_pool().unwrap();
    let ledger = Arc::new(tollgate::spend::Ledger::default());
    let tracker =
        tollgate::spend::start(db.clone(), Duration::from_millis(50), ledger.clone(), None);
    tracker.do_send(tollgate_actors::Record(row("before", "tenant-a", None)));
    tracker.do_send(tollgate_actors::Record(row(
        "poison",
        "tenant-b",
        Some("a\u{0}b"),
    )));
    tracker.do_send(tollgate_actors::Record(row("same-batch", "tenant-c", None)));
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    tracker.do_send(tollgate_actors::Record(row("later", "tenant-d", None)));

    let store = db.store().unwrap().clone();
    wait_for(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let rows = store
                .list_spend_logs(&tollgate::store::SpendFilter {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            rows.len() == 3
        }
    })
    .await;
    let mut ids: Vec<String> = store
        .list_spend_logs(&tollgate::store::SpendFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["before", "later", "same-batch"]);
    assert_eq!(ledger.dead_lettered(), 1);
    let set_aside = std::fs::read_to_string(&dead_letter).expect("dead-letter file");
    let lines: Vec<Value> = set_aside
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{set_aside}");
    assert_eq!(lines[0]["row"]["request_id"], "poison");
    assert_eq!(lines[0]["row"]["end_user"], "a\u{0}b");
    assert!(!lines[0]["reason"].as_str().unwrap().is_empty());
}
