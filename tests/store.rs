//! The two stores (embedded SQLite and Postgres) pass the same tests: migrations are idempotent
//! and safe when two instances run them at once, every operation round-trips, concurrent key
//! creation is safe, and duplicate keys or aliases are refused.

mod common;

use std::sync::Arc;

use common::FreshPostgres;
use serde_json::{json, Map, Value};
use tollgate::store::{
    self, migrate, DatabaseUrl, EntityKind, EntityRecord, KeyFilter, KeyRecord, Page, SpendFilter,
    SpendLog, Store, StoreError,
};

fn key(token: &str, alias: Option<&str>, user: Option<&str>, created_at: i64) -> KeyRecord {
    let mut data = Map::new();
    data.insert("models".into(), json!(["gpt-4o", "openai/*"]));
    data.insert("metadata".into(), json!({"team": "search"}));
    KeyRecord {
        token: token.into(),
        key_name: "sk-...abcd".into(),
        key_alias: alias.map(str::to_string),
        user_id: user.map(str::to_string),
        team_id: None,
        organization_id: None,
        budget_id: None,
        blocked: false,
        expires: None,
        spend: 0.0,
        created_at,
        updated_at: created_at,
        created_by: Some("admin".into()),
        updated_by: None,
        data,
    }
}

async fn exercise(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    let a = key("aaaa", Some("alias-a"), Some("u1"), 1);
    store.insert_key(&a).await.expect("insert");
    assert_eq!(store.get_key("aaaa").await.unwrap(), Some(a.clone()));
    assert!(
        matches!(store.insert_key(&a).await, Err(StoreError::Conflict(_))),
        "duplicate token refused"
    );
    let same_alias = key("bbbb", Some("alias-a"), None, 2);
    assert!(
        matches!(
            store.insert_key(&same_alias).await,
            Err(StoreError::Conflict(_))
        ),
        "duplicate alias refused"
    );
    assert_eq!(
        store
            .get_key_by_alias("alias-a")
            .await
            .unwrap()
            .map(|k| k.token),
        Some("aaaa".into())
    );

    let mut updated = a.clone();
    updated.blocked = true;
    updated.data.insert("rpm_limit".into(), json!(5));
    assert!(store.update_key(&updated).await.unwrap());
    assert_eq!(store.get_key("aaaa").await.unwrap(), Some(updated.clone()));

    // Concurrent creation: 40 keys at once, all stored.
    let inserts = (0..40).map(|i| {
        let store = store.clone();
        async move {
            store
                .insert_key(&key(&format!("k{i:03}"), None, Some("u2"), 100 + i))
                .await
        }
    });
    for r in futures_util::future::join_all(inserts).await {
        r.expect("concurrent insert");
    }
    let filter = KeyFilter {
        user_id: Some("u2".into()),
        ..KeyFilter::default()
    };
    let (page1, total) = store
        .list_keys(&filter, Page { page: 1, size: 15 })
        .await
        .unwrap();
    assert_eq!(total, 40);
    assert_eq!(page1.len(), 15);
    assert_eq!(page1[0].token, "k039", "newest first");
    let (page3, _) = store
        .list_keys(&filter, Page { page: 3, size: 15 })
        .await
        .unwrap();
    assert_eq!(page3.len(), 10);

    // Regeneration swaps the token atomically.
    let mut regenerated = updated.clone();
    regenerated.token = "cccc".into();
    assert!(store.replace_key("aaaa", &regenerated).await.unwrap());
    assert!(store.get_key("aaaa").await.unwrap().is_none());
    assert!(store.get_key("cccc").await.unwrap().is_some());
    assert!(!store.replace_key("aaaa", &regenerated).await.unwrap());

    assert_eq!(
        store
            .delete_keys(&["cccc".into(), "k000".into(), "missing".into()])
            .await
            .unwrap(),
        2
    );

    // Spend: a batch written twice counts once, on the key and on the user it names.
    let spender = key("spender", None, Some("u-spend"), 500);
    store.insert_key(&spender).await.unwrap();
    let user = EntityRecord {
        id: "u-spend".into(),
        alias: None,
        spend: 0.0,
        blocked: false,
        created_at: 1,
        updated_at: 1,
        created_by: None,
        updated_by: None,
        data: Map::new(),
    };
    store.insert_entity(EntityKind::User, &user).await.unwrap();
    let log = |id: &str, spend: f64| SpendLog {
        request_id: id.into(),
        call_type: "acompletion".into(),
        api_key: "spender".into(),
        spend,
        total_tokens: 30,
        prompt_tokens: 20,
        completion_tokens: 10,
        start_time: 1_000,
        end_time: 1_100,
        model: "gpt-4o".into(),
        model_id: None,
        model_group: Some("g".into()),
        api_base: None,
        user_id: Some("u-spend".into()),
        team_id: None,
        organization_id: None,
        end_user: None,
        status: "success".into(),
        metadata: "{}".into(),
        response_id: Some(format!("chatcmpl-{id}")),
        cache_hit: false,
        cache_key: None,
        ..Default::default()
    };
    let batch = vec![log("r1", 0.25), log("r2", 0.5)];
    assert_eq!(store.record_spend(&batch).await.unwrap(), 2);
    assert_eq!(
        store.record_spend(&batch).await.unwrap(),
        0,
        "a repeated batch writes nothing"
    );
    assert_eq!(store.get_key("spender").await.unwrap().unwrap().spend, 0.75);
    assert_eq!(
        store
            .get_entity(EntityKind::User, "u-spend")
            .await
            .unwrap()
            .unwrap()
            .spend,
        0.75
    );
    assert_eq!(store.total_spend().await.unwrap(), 0.75);
    let filter = SpendFilter {
        request_id: Some("r2".into()),
        limit: 10,
        ..SpendFilter::default()
    };
    assert_eq!(
        store.list_spend_logs(&filter).await.unwrap(),
        vec![log("r2", 0.5)]
    );
    // The provider's response id finds the row too.
    let by_response = SpendFilter {
        request_id: Some("chatcmpl-r1".into()),
        limit: 10,
        ..SpendFilter::default()
    };
    assert_eq!(
        store.list_spend_logs(&by_response).await.unwrap(),
        vec![log("r1", 0.25)]
    );
    store
        .delete_entities(EntityKind::User, &["u-spend".into()])
        .await
        .unwrap();

    for kind in [
        EntityKind::User,
        EntityKind::Team,
        EntityKind::Organization,
        EntityKind::EndUser,
        EntityKind::Budget,
    ] {
        let e = EntityRecord {
            id: "e1".into(),
            alias: Some("first".into()),
            spend: 1.5,
            blocked: false,
            created_at: 10,
            updated_at: 10,
            created_by: None,
            updated_by: None,
            data: json!({"models": ["a"], "max_budget": 10.0})
                .as_object()
                .cloned()
                .unwrap(),
        };
        store.insert_entity(kind, &e).await.expect("insert entity");
        assert!(matches!(
            store.insert_entity(kind, &e).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.get_entity(kind, "e1").await.unwrap(), Some(e.clone()));
        assert_eq!(
            store
                .find_entity_by_alias(kind, "first")
                .await
                .unwrap()
                .map(|e| e.id),
            Some("e1".into())
        );
        let mut changed = e.clone();
        changed.blocked = true;
        changed.data.insert("tpm_limit".into(), Value::from(100));
        assert!(store.update_entity(kind, &changed).await.unwrap());
        assert_eq!(store.get_entity(kind, "e1").await.unwrap(), Some(changed));
        let (all, total) = store
            .list_entities(kind, Page { page: 1, size: 10 })
            .await
            .unwrap();
        assert_eq!((all.len(), total), (1, 1));
        assert_eq!(
            store.delete_entities(kind, &["e1".into()]).await.unwrap(),
            1
        );
        assert!(store.get_entity(kind, "e1").await.unwrap().is_none());
    }
}

#[actix_rt::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("nested/tollgate.db")
        .to_string_lossy()
        .to_string();
    let url = DatabaseUrl::parse(&format!("sqlite:///{path}")).unwrap();
    let applied = migrate::run(&url).expect("migrations");
    assert!(!applied.is_empty());
    assert!(
        migrate::run(&url).expect("second run").is_empty(),
        "migrations are idempotent"
    );
    exercise(store::open(&url).unwrap()).await;
}

#[actix_rt::test]
async fn postgres_store() {
    let pg = FreshPostgres::create();
    let url = DatabaseUrl::parse(&pg.url).unwrap();
    // Two instances migrating at once: the advisory lock serialises them, one applies, one finds
    // nothing to do.
    let (a, b) = {
        let (u1, u2) = (url.clone(), url.clone());
        let t1 = std::thread::spawn(move || migrate::run(&u1));
        let t2 = std::thread::spawn(move || migrate::run(&u2));
        (
            t1.join().unwrap().expect("migrate 1"),
            t2.join().unwrap().expect("migrate 2"),
        )
    };
    assert!(
        a.is_empty() != b.is_empty(),
        "exactly one instance applied the migrations: {a:?} {b:?}"
    );
    let again = url.clone();
    // Migrations block (they run before the server's runtime starts), so off the test's runtime.
    assert!(std::thread::spawn(move || migrate::run(&again))
        .join()
        .unwrap()
        .unwrap()
        .is_empty());
    exercise(store::open(&url).unwrap()).await;
}
