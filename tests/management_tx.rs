//! Management changes that touch several records run in one database transaction, on SQLite and
//! on Postgres: concurrent member additions all land, parallel team creations naming one new
//! member share one user row, team delete and member removal take the team's keys with them,
//! team and organization aliases are unique, and `/team/member_update` changes a member's role.

mod common;

use common::*;
use serde_json::{json, Value};

fn sqlite_config() -> String {
    format!("general_settings:\n  master_key: {MASTER_KEY}\n")
}

fn postgres_config(pg: &FreshPostgres) -> String {
    format!(
        "general_settings:\n  master_key: {MASTER_KEY}\n  database_url: {}\n",
        pg.url
    )
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Value) -> (u16, Value) {
    send(method, &gw.url(path), Some(MASTER_KEY), &body).await
}

async fn ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, resp) = admin(gw, "POST", path, body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

async fn ok_get(gw: &Gateway, path: &str) -> Value {
    let (status, _, resp) = get(&gw.url(path), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

/// The teams a user lists.
async fn user_teams(gw: &Gateway, user_id: &str) -> Vec<String> {
    let info = ok_get(gw, &format!("/user/info?user_id={user_id}")).await;
    info["user_info"]["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

fn member_ids(team: &Value) -> Vec<String> {
    team["members_with_roles"]
        .as_array()
        .expect("members_with_roles")
        .iter()
        .filter_map(|m| m["user_id"].as_str().map(str::to_string))
        .collect()
}

async fn team_info(gw: &Gateway, team_id: &str) -> Value {
    ok_get(gw, &format!("/team/info?team_id={team_id}")).await["team_info"].clone()
}

/// A key for `user_id` in `team_id` (or a personal one).
async fn key_for(gw: &Gateway, user_id: &str, team_id: Option<&str>) -> String {
    let resp = ok(
        gw,
        "/key/generate",
        json!({"user_id": user_id, "team_id": team_id}),
    )
    .await;
    resp["key"].as_str().expect("key").to_string()
}

async fn key_exists(gw: &Gateway, key: &str) -> bool {
    let (status, _, resp) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    assert!(status == 200 || status == 404, "{status}: {resp}");
    status == 200
}

/// No answer carries a database's own words.
fn assert_no_db_text(resp: &Value) {
    let text = resp.to_string().to_lowercase();
    for raw in [
        "duplicate key",
        "constraint",
        "unique",
        "sqlite",
        "postgres",
        "pkey",
    ] {
        assert!(
            !text.contains(raw),
            "a database message reached the client: {resp}"
        );
    }
}

async fn concurrent_member_adds_all_land(gw: &Gateway) {
    ok(
        gw,
        "/team/new",
        json!({"team_id": "crowd", "team_alias": "crowd"}),
    )
    .await;
    let adds = (0..20).map(|i| {
        admin(
            gw,
            "POST",
            "/team/member_add",
            json!({"team_id": "crowd", "member": {"user_id": format!("crowd-u{i}"), "role": "user"}}),
        )
    });
    for (status, resp) in futures_util::future::join_all(adds).await {
        assert_eq!(status, 200, "{resp}");
    }
    let mut members = member_ids(&team_info(gw, "crowd").await);
    members.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("crowd-u{i}")).collect();
    expected.sort();
    assert_eq!(members, expected, "every concurrent addition is kept");
    for i in 0..20 {
        assert_eq!(
            user_teams(gw, &format!("crowd-u{i}")).await,
            vec!["crowd".to_string()]
        );
    }
}

async fn parallel_team_creations_share_one_new_member(gw: &Gateway) {
    let creates = (0..10).map(|i| {
        admin(
            gw,
            "POST",
            "/team/new",
            json!({"team_id": format!("par-{i}"), "members_with_roles": [{"user_id": "par-newbie", "role": "user"}]}),
        )
    });
    let mut created = Vec::new();
    for (i, (status, resp)) in futures_util::future::join_all(creates)
        .await
        .into_iter()
        .enumerate()
    {
        assert_no_db_text(&resp);
        assert_eq!(status, 200, "{resp}");
        created.push(format!("par-{i}"));
    }
    // One user row, listing every team it joined.
    let users = ok_get(gw, "/user/list?user_ids=par-newbie").await;
    let rows = users["users"].as_array().expect("users");
    assert_eq!(rows.len(), 1, "{users}");
    let mut teams = user_teams(gw, "par-newbie").await;
    teams.sort();
    created.sort();
    assert_eq!(teams, created);
}

async fn team_delete_leaves_no_key_and_no_membership(gw: &Gateway) {
    ok(gw, "/team/new", json!({"team_id": "doomed", "members_with_roles": [{"user_id": "doomed-a", "role": "admin"}, {"user_id": "doomed-b", "role": "user"}]})).await;
    ok(gw, "/team/new", json!({"team_id": "keeper", "members_with_roles": [{"user_id": "doomed-a", "role": "user"}]})).await;
    let team_keys = [
        key_for(gw, "doomed-a", Some("doomed")).await,
        key_for(gw, "doomed-b", Some("doomed")).await,
    ];
    let other = key_for(gw, "doomed-a", Some("keeper")).await;
    ok(gw, "/team/delete", json!({"team_ids": ["doomed"]})).await;
    for k in &team_keys {
        assert!(
            !key_exists(gw, k).await,
            "a key of the deleted team survived"
        );
    }
    assert!(
        key_exists(gw, &other).await,
        "a key of another team was deleted"
    );
    assert_eq!(user_teams(gw, "doomed-a").await, vec!["keeper".to_string()]);
    assert!(user_teams(gw, "doomed-b").await.is_empty());
    let (status, _) = admin(gw, "GET", "/team/info?team_id=doomed", Value::Null).await;
    assert_eq!(status, 404);
}

async fn removing_a_member_deletes_its_team_keys(gw: &Gateway) {
    ok(gw, "/team/new", json!({"team_id": "shrink", "members_with_roles": [{"user_id": "leaver", "role": "user"}, {"user_id": "stayer", "role": "user"}]})).await;
    let leaver_team_key = key_for(gw, "leaver", Some("shrink")).await;
    let leaver_own_key = key_for(gw, "leaver", None).await;
    let stayer_key = key_for(gw, "stayer", Some("shrink")).await;
    let resp = ok(
        gw,
        "/team/member_delete",
        json!({"team_id": "shrink", "user_id": "leaver"}),
    )
    .await;
    assert_eq!(member_ids(&resp), vec!["stayer".to_string()]);
    assert!(
        !key_exists(gw, &leaver_team_key).await,
        "the removed member's team key survived"
    );
    assert!(
        key_exists(gw, &leaver_own_key).await,
        "a personal key was deleted"
    );
    assert!(
        key_exists(gw, &stayer_key).await,
        "another member's key was deleted"
    );
    assert!(user_teams(gw, "leaver").await.is_empty());
}

async fn duplicate_aliases_are_refused(gw: &Gateway) {
    ok(
        gw,
        "/team/new",
        json!({"team_id": "alias-1", "team_alias": "Same"}),
    )
    .await;
    let (status, resp) = admin(
        gw,
        "POST",
        "/team/new",
        json!({"team_id": "alias-2", "team_alias": "Same"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "team_alias");
    // Case-sensitive: another spelling is a different alias.
    ok(
        gw,
        "/team/new",
        json!({"team_id": "alias-3", "team_alias": "same"}),
    )
    .await;
    let (status, resp) = admin(
        gw,
        "POST",
        "/team/update",
        json!({"team_id": "alias-3", "team_alias": "Same"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "team_alias");
    assert_eq!(team_info(gw, "alias-3").await["team_alias"], "same");
    // Renaming a team to its own alias is no conflict.
    ok(
        gw,
        "/team/update",
        json!({"team_id": "alias-1", "team_alias": "Same"}),
    )
    .await;

    ok(
        gw,
        "/organization/new",
        json!({"organization_id": "org-1", "organization_alias": "Acme"}),
    )
    .await;
    let (status, resp) = admin(
        gw,
        "POST",
        "/organization/new",
        json!({"organization_id": "org-2", "organization_alias": "Acme"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "organization_alias");
    ok(
        gw,
        "/organization/new",
        json!({"organization_id": "org-3", "organization_alias": "Other"}),
    )
    .await;
    let (status, resp) = admin(
        gw,
        "PATCH",
        "/organization/update",
        json!({"organization_id": "org-3", "organization_alias": "Acme"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "organization_alias");
}

async fn member_update_changes_a_role(gw: &Gateway) {
    let member_key = ok(
        gw,
        "/user/new",
        json!({"user_id": "mu-member", "user_role": "internal_user"}),
    )
    .await["key"]
        .as_str()
        .expect("key")
        .to_string();
    ok(gw, "/team/new", json!({"team_id": "mu-team", "members_with_roles": [{"user_id": "mu-member", "role": "user"}, {"user_id": "mu-other", "role": "user"}]})).await;

    // A plain member (not a team admin) may not change roles.
    let (status, resp) = send(
        "POST",
        &gw.url("/team/member_update"),
        Some(&member_key),
        &json!({"team_id": "mu-team", "user_id": "mu-member", "role": "admin"}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    assert!(team_info(gw, "mu-team").await["admins"]
        .as_array()
        .expect("admins")
        .is_empty());

    let resp = ok(gw, "/team/member_update", json!({"team_id": "mu-team", "user_id": "mu-member", "role": "admin", "max_budget_in_team": 5.5})).await;
    assert_eq!(resp["team_id"], "mu-team");
    assert_eq!(resp["user_id"], "mu-member");
    assert_eq!(resp["role"], "admin");
    assert_eq!(resp["max_budget_in_team"], 5.5);
    let team = team_info(gw, "mu-team").await;
    assert_eq!(team["admins"], json!(["mu-member"]));
    assert_eq!(team["members"], json!(["mu-other"]));

    // Now a team admin, the same key may demote the other member back and forth.
    let (status, resp) = send(
        "POST",
        &gw.url("/team/member_update"),
        Some(&member_key),
        &json!({"team_id": "mu-team", "user_id": "mu-other", "role": "admin"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = admin(
        gw,
        "POST",
        "/team/member_update",
        json!({"team_id": "mu-team", "user_id": "nobody", "role": "admin"}),
    )
    .await;
    assert_eq!(status, 404, "{resp}");
    let (status, resp) = admin(
        gw,
        "POST",
        "/team/member_update",
        json!({"team_id": "mu-team", "user_id": "mu-other", "role": "owner"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "role");
}

/// The organizations a user lists.
async fn user_orgs(gw: &Gateway, user_id: &str) -> Vec<String> {
    let info = ok_get(gw, &format!("/user/info?user_id={user_id}")).await;
    info["user_info"]["organizations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn settings_updates_keep_concurrent_member_changes(gw: &Gateway) {
    ok(gw, "/team/new", json!({"team_id": "busy"})).await;
    ok(
        gw,
        "/organization/new",
        json!({"organization_id": "busy-org", "organization_alias": "busy-org"}),
    )
    .await;
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push(admin(
            gw,
            "POST",
            "/team/member_add",
            json!({"team_id": "busy", "member": {"user_id": format!("busy-u{i}")}}),
        ));
        calls.push(admin(
            gw,
            "POST",
            "/team/update",
            json!({"team_id": "busy", "metadata": {"round": i}}),
        ));
        calls.push(admin(gw, "POST", "/organization/member_add", json!({"organization_id": "busy-org", "member": {"user_id": format!("busy-u{i}"), "role": "internal_user"}})));
        calls.push(admin(
            gw,
            "PATCH",
            "/organization/update",
            json!({"organization_id": "busy-org", "metadata": {"round": i}}),
        ));
    }
    for (status, resp) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{resp}");
    }
    assert_eq!(member_ids(&team_info(gw, "busy").await).len(), 10);
    let org = ok_get(gw, "/organization/info?organization_id=busy-org").await;
    assert_eq!(
        org["members"].as_array().expect("members").len(),
        10,
        "{org}"
    );
    for i in 0..10 {
        assert_eq!(
            user_orgs(gw, &format!("busy-u{i}")).await,
            vec!["busy-org".to_string()]
        );
    }
    // Deleting the organization takes it off every member user.
    let (status, resp) = admin(
        gw,
        "DELETE",
        "/organization/delete",
        json!({"organization_ids": ["busy-org"]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    for i in 0..10 {
        assert!(user_orgs(gw, &format!("busy-u{i}")).await.is_empty());
    }
}

/// Users created at once naming one team (and one of them it twice) all join it: each joins in
/// one transaction on the locked team.
async fn concurrent_user_creations_join_their_teams(gw: &Gateway) {
    for t in ["joined-a", "joined-b"] {
        ok(gw, "/team/new", json!({"team_id": t, "team_alias": t})).await;
    }
    let creates = (0..10).map(|i| {
        let teams = if i == 0 {
            json!(["joined-a", "joined-b", "joined-a"])
        } else {
            json!(["joined-a"])
        };
        admin(
            gw,
            "POST",
            "/user/new",
            json!({"user_id": format!("joiner-{i}"), "teams": teams}),
        )
    });
    for (status, resp) in futures_util::future::join_all(creates).await {
        assert_eq!(status, 200, "{resp}");
    }
    let mut members = member_ids(&team_info(gw, "joined-a").await);
    members.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("joiner-{i}")).collect();
    expected.sort();
    assert_eq!(members, expected, "every concurrent join is kept");
    assert_eq!(member_ids(&team_info(gw, "joined-b").await), ["joiner-0"]);
    assert_eq!(user_teams(gw, "joiner-0").await, ["joined-a", "joined-b"]);
    assert_eq!(user_teams(gw, "joiner-5").await, ["joined-a"]);
}

/// A user and its first key are written together: of users created at once whose keys want one
/// alias, one is created with its key and the others leave nothing behind.
async fn a_user_is_created_with_its_key_or_not_at_all(gw: &Gateway) {
    let creates = (0..6).map(|i| {
        admin(
            gw,
            "POST",
            "/user/new",
            json!({"user_id": format!("racer-{i}"), "key_alias": "one-alias-for-all"}),
        )
    });
    let results = futures_util::future::join_all(creates).await;
    let created: Vec<usize> = (0..6).filter(|i| results[*i].0 == 200).collect();
    assert_eq!(created.len(), 1, "{results:?}");
    for (i, (status, resp)) in results.iter().enumerate() {
        let (info, _) = admin(
            gw,
            "GET",
            &format!("/user/info?user_id=racer-{i}"),
            json!({}),
        )
        .await;
        if created.contains(&i) {
            assert!(
                resp["key"].as_str().is_some_and(|k| k.starts_with("sk-")),
                "{resp}"
            );
            assert_eq!(info, 200);
        } else {
            assert_eq!(*status, 400, "{resp}");
            assert_eq!(info, 404, "racer-{i} was left behind without its key");
        }
    }
}

async fn all_scenarios(gw: &Gateway) {
    settings_updates_keep_concurrent_member_changes(gw).await;
    concurrent_member_adds_all_land(gw).await;
    parallel_team_creations_share_one_new_member(gw).await;
    team_delete_leaves_no_key_and_no_membership(gw).await;
    removing_a_member_deletes_its_team_keys(gw).await;
    duplicate_aliases_are_refused(gw).await;
    member_update_changes_a_role(gw).await;
    concurrent_user_creations_join_their_teams(gw).await;
    a_user_is_created_with_its_key_or_not_at_all(gw).await;
}

#[actix_rt::test]
async fn management_transactions_on_sqlite() {
    let gw = Gateway::start(&sqlite_config(), &[], &[]);
    all_scenarios(&gw).await;
}

#[actix_rt::test]
async fn management_transactions_on_postgres() {
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&postgres_config(&pg), &[], &[]);
    all_scenarios(&gw).await;
}

// --- The store operations underneath, on both backends. ---

use std::sync::Arc;
use tollgate::store::{
    self, migrate, DatabaseUrl, EntityKind, EntityRecord, KeyScope, Store, StoreError, TxEffects,
};

fn entity(id: &str, alias: Option<&str>) -> EntityRecord {
    let mut data = serde_json::Map::new();
    data.insert("teams".into(), json!([]));
    EntityRecord {
        id: id.into(),
        alias: alias.map(str::to_string),
        spend: 0.0,
        blocked: false,
        created_at: 1,
        updated_at: 1,
        created_by: None,
        updated_by: None,
        data,
    }
}

async fn store_operations(store: Arc<dyn Store>) {
    // Insert-if-absent returns the row already there, unchanged.
    let first = store
        .insert_entity_if_absent(EntityKind::User, &entity("u1", Some("first@example.com")))
        .await
        .expect("insert");
    let again = store
        .insert_entity_if_absent(EntityKind::User, &entity("u1", Some("second@example.com")))
        .await
        .expect("insert again");
    assert_eq!(first, again);
    assert_eq!(again.alias.as_deref(), Some("first@example.com"));

    // A unique violation names what collided, in words, without the database's own message.
    store
        .insert_entity(EntityKind::Team, &entity("t1", Some("alias")))
        .await
        .expect("team");
    match store
        .insert_entity(EntityKind::Team, &entity("t2", Some("alias")))
        .await
    {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "a record with this alias"),
        other => panic!("duplicate team alias: {other:?}"),
    }
    match store
        .insert_entity(EntityKind::Team, &entity("t1", None))
        .await
    {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "a record with this id"),
        other => panic!("duplicate team id: {other:?}"),
    }

    // A refused change rolls back everything, including the key deletions it asked for.
    let mut k = tollgate::store::KeyRecord {
        token: "tok-1".into(),
        key_name: "sk-...abcd".into(),
        key_alias: None,
        user_id: Some("u1".into()),
        team_id: Some("t1".into()),
        organization_id: None,
        budget_id: None,
        blocked: false,
        expires: None,
        spend: 0.0,
        created_at: 1,
        updated_at: 1,
        created_by: None,
        updated_by: None,
        data: serde_json::Map::new(),
    };
    store.insert_key(&k).await.expect("key");
    k.token = "tok-2".into();
    k.team_id = None;
    store.insert_key(&k).await.expect("personal key");
    let refused = store
        .modify(
            vec![
                (EntityKind::Team, "t1".into()),
                (EntityKind::User, "u1".into()),
            ],
            Box::new(|rows| {
                rows[0]
                    .record
                    .as_mut()
                    .expect("team")
                    .data
                    .insert("x".into(), json!(1));
                rows[0].changed = true;
                Err(StoreError::Invalid {
                    field: "member".into(),
                    message: "no".into(),
                })
            }),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Invalid { .. })));
    let team = store
        .get_entity(EntityKind::Team, "t1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !team.data.contains_key("x"),
        "a refused change wrote nothing"
    );

    // A change writes the records it marks, deletes the scoped keys and the named entities, in
    // the order the targets were asked for (here user before team, though teams lock first).
    let done = store
        .modify(
            vec![
                (EntityKind::User, "u1".into()),
                (EntityKind::Team, "t1".into()),
                (EntityKind::User, "missing".into()),
            ],
            Box::new(|rows| {
                assert_eq!(rows[0].id, "u1");
                assert_eq!(rows[1].id, "t1");
                assert!(rows[2].record.is_none());
                rows[0]
                    .record
                    .as_mut()
                    .expect("user")
                    .data
                    .insert("teams".into(), json!(["t1"]));
                rows[0].changed = true;
                Ok(TxEffects {
                    delete_keys: vec![KeyScope {
                        team_id: Some("t1".into()),
                        user_id: Some("u1".into()),
                    }],
                    delete_entities: vec![(EntityKind::Team, "t1".into())],
                    ..TxEffects::default()
                })
            }),
        )
        .await
        .expect("modify");
    assert_eq!(done.deleted_keys, vec!["tok-1".to_string()]);
    let user = store
        .get_entity(EntityKind::User, "u1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.data["teams"], json!(["t1"]));
    assert!(store
        .get_entity(EntityKind::Team, "t1")
        .await
        .unwrap()
        .is_none());
    assert!(store.get_key("tok-1").await.unwrap().is_none());
    assert!(
        store.get_key("tok-2").await.unwrap().is_some(),
        "the personal key stays"
    );
}

#[actix_rt::test]
async fn store_transactions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.db").to_string_lossy().to_string();
    let url = DatabaseUrl::parse(&format!("sqlite:///{path}")).unwrap();
    migrate::run(&url).expect("migrations");
    store_operations(store::open(&url).unwrap()).await;
}

#[actix_rt::test]
async fn store_transactions_on_postgres() {
    let pg = FreshPostgres::create();
    let url = DatabaseUrl::parse(&pg.url).unwrap();
    let again = url.clone();
    std::thread::spawn(move || migrate::run(&again))
        .join()
        .unwrap()
        .expect("migrations");
    store_operations(store::open(&url).unwrap()).await;
}
