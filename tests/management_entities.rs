//! Users, teams, organizations, end users and budgets end to end on the real binary: every
//! management route with the master key (field round trips, 404s, duplicates), who may do what with
//! a user's own key (internal user, team admin, viewer), end-user routes under both prefixes,
//! budget reset times, and one user + team + key flow on Postgres.

mod common;

use common::*;
use serde_json::{json, Value};

fn config() -> String {
    format!("general_settings:\n  master_key: {MASTER_KEY}\n")
}

/// Any method with a JSON body (PATCH and DELETE routes need it); returns (status, body).
async fn admin_post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    (status, resp)
}

async fn admin_get(gw: &Gateway, path: &str) -> (u16, Value) {
    let (status, _, resp) = get(&gw.url(path), Some(MASTER_KEY)).await;
    (status, resp)
}

async fn ok_post(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, resp) = admin_post(gw, path, body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

async fn ok_get(gw: &Gateway, path: &str) -> Value {
    let (status, resp) = admin_get(gw, path).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

/// Create a user with `role` and return its auto-created key.
async fn user_with_key(gw: &Gateway, user_id: &str, role: &str) -> String {
    let resp = ok_post(
        gw,
        "/user/new",
        json!({"user_id": user_id, "user_role": role}),
    )
    .await;
    resp["key"].as_str().expect("auto key").to_string()
}

fn ms(iso: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso.as_str().expect("timestamp"))
        .expect("rfc3339")
        .timestamp_millis()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v[field].as_str().map(str::to_string))
        .collect()
}

#[actix_rt::test]
async fn user_routes_with_the_master_key() {
    let gw = Gateway::start(&config(), &[], &[]);
    let created = ok_post(
        &gw,
        "/user/new",
        json!({
            "user_id": "u-ann", "user_email": "ann@example.com", "user_alias": "Ann",
            "user_role": "internal_user", "max_budget": 10.5, "models": ["mock-gpt"],
            "tpm_limit": 1000, "metadata": {"dept": "search"}, "key_alias": "ann-key", "duration": "1h",
            "spend": 99, "not_a_field": "x"
        }),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-"), "{created}");
    assert_eq!(created["user_id"], "u-ann");
    assert_eq!(created["user_email"], "ann@example.com");
    assert_eq!(created["user_role"], "internal_user");
    assert_eq!(created["key_alias"], "ann-key");
    assert_eq!(created["models"], json!(["mock-gpt"]));
    assert_eq!(created["max_budget"], 10.5);
    assert_eq!(created["token"].as_str().unwrap().len(), 64);
    assert!(created["expires"].is_string(), "{created}");

    // Defaults: uuid id, internal_user, and a key; auto_create_key false gives no key.
    let anon = ok_post(&gw, "/user/new", json!({})).await;
    assert!(
        uuid::Uuid::parse_str(anon["user_id"].as_str().unwrap()).is_ok(),
        "{anon}"
    );
    assert_eq!(anon["user_role"], "internal_user");
    assert!(anon["key"].as_str().unwrap().starts_with("sk-"));
    let keyless = ok_post(
        &gw,
        "/user/new",
        json!({"user_id": "u-nokey", "auto_create_key": false}),
    )
    .await;
    assert!(keyless["key"].is_null(), "{keyless}");
    let info = ok_get(&gw, "/user/info?user_id=u-nokey").await;
    assert_eq!(info["keys"], json!([]));

    // Duplicates and bad input.
    for body in [
        json!({"user_id": "u-ann"}),
        json!({"user_email": "ann@example.com"}),
        json!({"user_role": "emperor"}),
        json!({"max_budget": "lots"}),
        json!({"teams": ["no-such-team"]}),
    ] {
        let (status, resp) = admin_post(&gw, "/user/new", body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_envelope(&resp);
    }

    let info = ok_get(&gw, "/user/info?user_id=u-ann").await;
    assert_eq!(info["user_id"], "u-ann");
    let user = &info["user_info"];
    assert_eq!(user["user_email"], "ann@example.com");
    assert_eq!(user["user_alias"], "Ann");
    assert_eq!(user["max_budget"], 10.5);
    assert_eq!(user["tpm_limit"], 1000);
    assert_eq!(user["metadata"]["dept"], "search");
    assert_eq!(user["spend"], 0.0, "spend is not settable on create");
    assert!(user.get("not_a_field").is_none(), "{user}");
    assert_eq!(info["keys"].as_array().unwrap().len(), 1);
    assert_eq!(info["keys"][0]["key_alias"], "ann-key");
    assert_eq!(info["teams"], json!([]));

    let updated = ok_post(
        &gw,
        "/user/update",
        json!({"user_id": "u-ann", "max_budget": 20, "user_role": "internal_user_viewer", "user_email": "ann@new.example", "tpm_limit": null, "spend": 1.5}),
    )
    .await;
    assert_eq!(updated["max_budget"], 20);
    assert_eq!(updated["user_role"], "internal_user_viewer");
    assert_eq!(updated["user_email"], "ann@new.example");
    assert!(updated["tpm_limit"].is_null());
    assert_eq!(updated["spend"], 1.5);
    // By email.
    let by_email = ok_post(
        &gw,
        "/user/update",
        json!({"user_email": "ann@new.example", "user_alias": "Annie"}),
    )
    .await;
    assert_eq!(by_email["user_id"], "u-ann");
    assert_eq!(by_email["user_alias"], "Annie");

    let list = ok_get(&gw, "/user/list").await;
    assert_eq!(list["total"], 3, "{list}");
    let viewers = ok_get(&gw, "/user/list?role=internal_user_viewer").await;
    assert_eq!(ids(&viewers["users"], "user_id"), vec!["u-ann"]);
    let paged = ok_get(&gw, "/user/list?page=2&page_size=2").await;
    assert_eq!(paged["users"].as_array().unwrap().len(), 1, "{paged}");
    assert_eq!(paged["total_pages"], 2);

    for (status, resp) in [
        admin_get(&gw, "/user/info?user_id=nobody").await,
        admin_post(
            &gw,
            "/user/update",
            json!({"user_email": "nobody@example.com", "max_budget": 1}),
        )
        .await,
        admin_post(&gw, "/user/delete", json!({"user_ids": ["nobody"]})).await,
    ] {
        assert_eq!(status, 404, "{resp}");
        assert_envelope(&resp);
    }

    // Deleting a user deletes its keys, and the key stops working at once.
    let (status, _, _) = get(&gw.url("/key/info"), Some(&key)).await;
    assert_eq!(status, 200);
    let deleted = ok_post(&gw, "/user/delete", json!({"user_ids": ["u-ann"]})).await;
    assert_eq!(deleted["deleted_users"], json!(["u-ann"]));
    assert_eq!(admin_get(&gw, "/user/info?user_id=u-ann").await.0, 404);
    let (status, _, _) = get(&gw.url("/key/info"), Some(&key)).await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn an_internal_user_key_reads_itself_only_and_changes_only_harmless_fields() {
    let gw = Gateway::start(&config(), &[], &[]);
    let key = user_with_key(&gw, "u-self", "internal_user").await;
    ok_post(
        &gw,
        "/user/new",
        json!({"user_id": "u-other", "auto_create_key": false}),
    )
    .await;

    let (status, _, me) = get(&gw.url("/user/info?user_id=u-self"), Some(&key)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_info"]["user_role"], "internal_user");
    let (status, _, me) = get(&gw.url("/user/info"), Some(&key)).await;
    assert_eq!((status, me["user_id"].clone()), (200, json!("u-self")));

    let (status, _, resp) = get(&gw.url("/user/info?user_id=u-other"), Some(&key)).await;
    assert_eq!(status, 403, "{resp}");
    assert_envelope(&resp);
    for (path, body) in [
        ("/user/new", json!({"user_id": "u-new"})),
        ("/user/delete", json!({"user_ids": ["u-other"]})),
        (
            "/user/update",
            json!({"user_id": "u-other", "user_alias": "x"}),
        ),
        (
            "/user/update",
            json!({"user_id": "u-self", "user_role": "proxy_admin"}),
        ),
        (
            "/user/update",
            json!({"user_id": "u-self", "max_budget": 1000}),
        ),
        (
            "/user/update",
            json!({"user_id": "u-self", "models": ["*"]}),
        ),
        ("/user/update", json!({"user_id": "u-self", "spend": 0})),
        ("/user/update", json!({"user_id": "u-self", "teams": ["t"]})),
    ] {
        let (status, _, resp) = post(&gw.url(path), Some(&key), &body).await;
        assert_eq!(status, 403, "{path} {body}: {resp}");
    }
    let (status, _, list) = get(&gw.url("/user/list"), Some(&key)).await;
    assert_eq!(status, 403, "{list}");

    let (status, _, me) = post(
        &gw.url("/user/update"),
        Some(&key),
        &json!({"user_id": "u-self", "user_alias": "Me", "metadata": {"tz": "UTC"}}),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_alias"], "Me");
    assert_eq!(me["user_role"], "internal_user");

    // A role change reaches the cached key at once.
    ok_post(
        &gw,
        "/user/update",
        json!({"user_id": "u-self", "user_role": "proxy_admin_viewer"}),
    )
    .await;
    let (status, _, list) = get(&gw.url("/user/list"), Some(&key)).await;
    assert_eq!(status, 200, "{list}");
    // Blocking the user blocks its key.
    ok_post(
        &gw,
        "/user/update",
        json!({"user_id": "u-self", "blocked": true}),
    )
    .await;
    let (status, _, _) = get(&gw.url("/user/info"), Some(&key)).await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn a_proxy_admin_viewer_reads_everything_and_writes_nothing() {
    let gw = Gateway::start(&config(), &[], &[]);
    let key = user_with_key(&gw, "u-viewer", "proxy_admin_viewer").await;
    ok_post(&gw, "/team/new", json!({"team_id": "t-v"})).await;
    ok_post(&gw, "/budget/new", json!({"budget_id": "b-v"})).await;
    ok_post(&gw, "/customer/new", json!({"user_id": "c-v"})).await;
    let org = ok_post(
        &gw,
        "/organization/new",
        json!({"organization_alias": "o-v"}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();

    for path in [
        "/user/list".to_string(),
        "/user/info?user_id=u-viewer".to_string(),
        "/team/list".to_string(),
        "/team/info?team_id=t-v".to_string(),
        "/organization/list".to_string(),
        format!("/organization/info?organization_id={org_id}"),
        "/customer/list".to_string(),
        "/end_user/info?end_user_id=c-v".to_string(),
        "/budget/list".to_string(),
    ] {
        let (status, _, resp) = get(&gw.url(&path), Some(&key)).await;
        assert_eq!(status, 200, "{path}: {resp}");
    }
    let (status, _, _) = post(
        &gw.url("/budget/info"),
        Some(&key),
        &json!({"budgets": ["b-v"]}),
    )
    .await;
    assert_eq!(status, 200);

    for (path, body) in [
        ("/user/new", json!({})),
        (
            "/user/update",
            json!({"user_id": "u-viewer", "user_alias": "x"}),
        ),
        ("/team/new", json!({})),
        ("/team/update", json!({"team_id": "t-v", "team_alias": "x"})),
        (
            "/team/member_add",
            json!({"team_id": "t-v", "member": {"user_id": "u-viewer"}}),
        ),
        ("/team/block", json!({"team_id": "t-v"})),
        ("/organization/new", json!({"organization_alias": "x"})),
        (
            "/organization/member_add",
            json!({"organization_id": org_id, "member": {"user_id": "u-viewer"}}),
        ),
        ("/customer/new", json!({"user_id": "x"})),
        ("/end_user/block", json!({"user_ids": ["c-v"]})),
        ("/budget/new", json!({})),
        ("/budget/delete", json!({"id": "b-v"})),
    ] {
        let (status, _, resp) = post(&gw.url(path), Some(&key), &body).await;
        assert_eq!(status, 403, "{path}: {resp}");
    }
    let (status, resp) = send(
        "PATCH",
        &gw.url("/organization/update"),
        Some(&key),
        &json!({"organization_id": org_id, "max_budget": 1}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    let (status, resp) = send(
        "DELETE",
        &gw.url("/organization/delete"),
        Some(&key),
        &json!({"organization_ids": [org_id]}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
}

#[actix_rt::test]
async fn team_routes_with_the_master_key() {
    let gw = Gateway::start(&config(), &[], &[]);
    ok_post(
        &gw,
        "/user/new",
        json!({"user_id": "alice", "user_email": "alice@example.com", "auto_create_key": false}),
    )
    .await;
    let team = ok_post(
        &gw,
        "/team/new",
        json!({
            "team_id": "t-1", "team_alias": "search", "models": ["mock-gpt"], "max_budget": 5,
            "tpm_limit": 100, "metadata": {"cost_center": 7}, "model_aliases": {"cheap": "mock-gpt"},
            "members_with_roles": [{"role": "admin", "user_id": "alice"}, {"role": "user", "user_email": "newbie@example.com"}],
            "spend": 50
        }),
    )
    .await;
    assert_eq!(team["team_id"], "t-1");
    assert_eq!(team["team_alias"], "search");
    assert_eq!(team["models"], json!(["mock-gpt"]));
    assert_eq!(team["spend"], 0.0);
    assert_eq!(team["admins"], json!(["alice"]));
    let members = team["members_with_roles"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        members[0],
        json!({"user_id": "alice", "user_email": "alice@example.com", "role": "admin"})
    );
    let newbie = members[1]["user_id"].as_str().unwrap().to_string();

    // The new member got a user row; both users list the team.
    let newbie_info = ok_get(&gw, &format!("/user/info?user_id={newbie}")).await;
    assert_eq!(newbie_info["user_info"]["user_email"], "newbie@example.com");
    assert_eq!(newbie_info["user_info"]["user_role"], "internal_user");
    assert_eq!(ids(&newbie_info["teams"], "team_id"), vec!["t-1"]);
    let alice = ok_get(&gw, "/user/info?user_id=alice").await;
    assert_eq!(alice["user_info"]["teams"], json!(["t-1"]));

    // Duplicates, bad input, unknown teams.
    assert_eq!(
        admin_post(&gw, "/team/new", json!({"team_id": "t-1"}))
            .await
            .0,
        400
    );
    let twice = json!({"team_id": "t-twice", "members_with_roles": [{"user_id": "alice"}], "members": ["alice"]});
    assert_eq!(admin_post(&gw, "/team/new", twice).await.0, 400);
    assert_eq!(
        admin_get(&gw, "/team/info?team_id=t-twice").await.0,
        404,
        "nothing stored"
    );
    assert_eq!(
        admin_post(
            &gw,
            "/team/new",
            json!({"members_with_roles": [{"role": "owner", "user_id": "alice"}]})
        )
        .await
        .0,
        400
    );
    for (status, resp) in [
        admin_get(&gw, "/team/info?team_id=nope").await,
        admin_post(
            &gw,
            "/team/update",
            json!({"team_id": "nope", "team_alias": "x"}),
        )
        .await,
        admin_post(&gw, "/team/delete", json!({"team_ids": ["nope"]})).await,
        admin_post(
            &gw,
            "/team/member_add",
            json!({"team_id": "nope", "member": {"user_id": "alice"}}),
        )
        .await,
        admin_post(&gw, "/team/block", json!({"team_id": "nope"})).await,
    ] {
        assert_eq!(status, 404, "{resp}");
    }
    // Removing a user who is not a member is a 400, as in LiteLLM.
    let (status, resp) = admin_post(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t-1", "user_id": "not-a-member"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_envelope(&resp);

    // A key of the team shows in /team/info.
    let k = ok_post(
        &gw,
        "/key/generate",
        json!({"team_id": "t-1", "user_id": "alice"}),
    )
    .await;
    let team_key = k["key"].as_str().unwrap().to_string();
    let info = ok_get(&gw, "/team/info?team_id=t-1").await;
    assert_eq!(info["team_id"], "t-1");
    assert_eq!(info["team_info"]["max_budget"], 5);
    assert_eq!(info["team_info"]["metadata"]["cost_center"], 7);
    assert_eq!(info["team_info"]["model_aliases"]["cheap"], "mock-gpt");
    assert_eq!(
        ids(&info["keys"], "token"),
        vec![k["token"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&info["team_memberships"], "user_id"),
        vec!["alice".to_string(), newbie.clone()]
    );

    let updated = ok_post(
        &gw,
        "/team/update",
        json!({"team_id": "t-1", "team_alias": "search-2", "max_budget": 9, "tpm_limit": null}),
    )
    .await;
    assert_eq!(updated["data"]["team_alias"], "search-2");
    assert_eq!(updated["data"]["max_budget"], 9);
    assert!(updated["data"]["tpm_limit"].is_null());

    let added = ok_post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t-1", "member": [{"role": "user", "user_id": "bob"}, {"role": "admin", "user_email": "carol@example.com"}]}),
    )
    .await;
    assert_eq!(added["members_with_roles"].as_array().unwrap().len(), 4);
    assert_eq!(added["updated_users"].as_array().unwrap().len(), 2);
    assert_eq!(added["updated_team_memberships"][0]["user_id"], "bob");
    assert_eq!(
        ok_get(&gw, "/user/info?user_id=bob").await["user_info"]["teams"],
        json!(["t-1"])
    );
    let (status, resp) = admin_post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t-1", "member": {"user_id": "bob"}}),
    )
    .await;
    assert_eq!(status, 400, "already a member: {resp}");

    let removed = ok_post(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t-1", "user_email": "carol@example.com"}),
    )
    .await;
    assert_eq!(removed["members_with_roles"].as_array().unwrap().len(), 3);
    let removed = ok_post(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t-1", "user_id": "bob"}),
    )
    .await;
    assert!(!ids(&removed["members_with_roles"], "user_id").contains(&"bob".to_string()));
    assert_eq!(
        ok_get(&gw, "/user/info?user_id=bob").await["user_info"]["teams"],
        json!([])
    );

    // Blocking the team blocks its keys at once; unblocking restores them.
    let blocked = ok_post(&gw, "/team/block", json!({"team_id": "t-1"})).await;
    assert_eq!(blocked["blocked"], true);
    assert_eq!(get(&gw.url("/key/info"), Some(&team_key)).await.0, 401);
    let unblocked = ok_post(&gw, "/team/unblock", json!({"team_id": "t-1"})).await;
    assert_eq!(unblocked["blocked"], false);
    assert_eq!(get(&gw.url("/key/info"), Some(&team_key)).await.0, 200);

    ok_post(
        &gw,
        "/team/new",
        json!({"team_id": "t-2", "organization_id": "org-x"}),
    )
    .await;
    let list = ok_get(&gw, "/team/list").await;
    assert_eq!(ids(&list, "team_id"), vec!["t-1", "t-2"]);
    let by_org = ok_get(&gw, "/team/list?organization_id=org-x").await;
    assert_eq!(ids(&by_org, "team_id"), vec!["t-2"]);

    let deleted = ok_post(&gw, "/team/delete", json!({"team_ids": ["t-1"]})).await;
    assert_eq!(deleted["deleted_teams"], json!(["t-1"]));
    assert_eq!(admin_get(&gw, "/team/info?team_id=t-1").await.0, 404);
    assert_eq!(
        ok_get(&gw, "/user/info?user_id=alice").await["user_info"]["teams"],
        json!([])
    );
    assert_eq!(
        get(&gw.url("/key/info"), Some(&team_key)).await.0,
        401,
        "the team's keys go with it"
    );
}

#[actix_rt::test]
async fn a_team_admin_manages_members_and_settings_but_cannot_delete_the_team() {
    let gw = Gateway::start(&config(), &[], &[]);
    let admin_key = user_with_key(&gw, "lead", "internal_user").await;
    let member_key = user_with_key(&gw, "dev", "internal_user").await;
    let outsider_key = user_with_key(&gw, "stranger", "internal_user").await;
    ok_post(
        &gw,
        "/team/new",
        json!({"team_id": "t-a", "max_budget": 1, "members_with_roles": [{"role": "admin", "user_id": "lead"}, {"role": "user", "user_id": "dev"}]}),
    )
    .await;

    let (status, _, resp) = post(
        &gw.url("/team/member_add"),
        Some(&admin_key),
        &json!({"team_id": "t-a", "member": {"role": "user", "user_id": "newcomer"}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (status, _, resp) = post(
        &gw.url("/team/update"),
        Some(&admin_key),
        &json!({"team_id": "t-a", "team_alias": "renamed", "metadata": {"a": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["data"]["team_alias"], "renamed");
    let (status, _, resp) = post(
        &gw.url("/team/member_delete"),
        Some(&admin_key),
        &json!({"team_id": "t-a", "user_id": "newcomer"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");

    for (path, body) in [
        (
            "/team/update",
            json!({"team_id": "t-a", "max_budget": 1000}),
        ),
        ("/team/update", json!({"team_id": "t-a", "models": ["*"]})),
        ("/team/update", json!({"team_id": "t-a", "blocked": false})),
        ("/team/delete", json!({"team_ids": ["t-a"]})),
        ("/team/block", json!({"team_id": "t-a"})),
        ("/team/new", json!({"team_id": "t-mine"})),
    ] {
        let (status, _, resp) = post(&gw.url(path), Some(&admin_key), &body).await;
        assert_eq!(status, 403, "team admin {path} {body}: {resp}");
    }
    // A plain member reads the team but cannot change it; an outsider cannot read it.
    let (status, _, info) = get(&gw.url("/team/info?team_id=t-a"), Some(&member_key)).await;
    assert_eq!(status, 200, "{info}");
    let (status, _, list) = get(&gw.url("/team/list"), Some(&member_key)).await;
    assert_eq!(
        (status, ids(&list, "team_id")),
        (200, vec!["t-a".to_string()])
    );
    for (path, body) in [
        (
            "/team/member_add",
            json!({"team_id": "t-a", "member": {"user_id": "friend"}}),
        ),
        (
            "/team/update",
            json!({"team_id": "t-a", "team_alias": "mine"}),
        ),
        (
            "/team/member_delete",
            json!({"team_id": "t-a", "user_id": "lead"}),
        ),
    ] {
        let (status, _, resp) = post(&gw.url(path), Some(&member_key), &body).await;
        assert_eq!(status, 403, "member {path}: {resp}");
    }
    let (status, _, resp) = get(&gw.url("/team/info?team_id=t-a"), Some(&outsider_key)).await;
    assert_eq!(status, 403, "{resp}");
    let (status, _, list) = get(&gw.url("/team/list"), Some(&outsider_key)).await;
    assert_eq!((status, list), (200, json!([])));
    assert_eq!(
        ok_get(&gw, "/team/info?team_id=t-a").await["team_info"]["max_budget"],
        1
    );
}

#[actix_rt::test]
async fn organization_routes() {
    let gw = Gateway::start(&config(), &[], &[]);
    ok_post(
        &gw,
        "/budget/new",
        json!({"budget_id": "b-org", "max_budget": 3}),
    )
    .await;
    let org = ok_post(
        &gw,
        "/organization/new",
        json!({"organization_alias": "acme", "models": ["mock-gpt"], "max_budget": 100, "budget_id": "b-org", "metadata": {"tier": "gold"}, "tpm_limit": 10, "rpm_limit": 2}),
    )
    .await;
    let id = org["organization_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{org}");
    assert_eq!(org["organization_alias"], "acme");
    assert_eq!(org["litellm_budget_table"]["max_budget"], 100);
    assert_eq!(org["litellm_budget_table"]["rpm_limit"], 2);
    assert_eq!(org["budget_id"], "b-org");

    assert_eq!(
        admin_post(
            &gw,
            "/organization/new",
            json!({"organization_id": id, "organization_alias": "dup"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin_post(&gw, "/organization/new", json!({"models": []}))
            .await
            .0,
        400,
        "alias required"
    );
    assert_eq!(
        admin_post(
            &gw,
            "/organization/new",
            json!({"organization_alias": "x", "budget_id": "nope"})
        )
        .await
        .0,
        400
    );

    let info = ok_get(&gw, &format!("/organization/info?organization_id={id}")).await;
    assert_eq!(info["metadata"]["tier"], "gold");
    assert_eq!(info["spend"], 0.0);
    assert_eq!(
        admin_get(&gw, "/organization/info?organization_id=nope")
            .await
            .0,
        404
    );

    let url = |p: &str| gw.url(p);
    let (status, updated) = send(
        "PATCH",
        &url("/organization/update"),
        Some(MASTER_KEY),
        &json!({"organization_id": id, "organization_alias": "acme-2", "max_budget": 200}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["organization_alias"], "acme-2");
    assert_eq!(updated["max_budget"], 200);
    let (status, _) = send(
        "PATCH",
        &url("/organization/update"),
        Some(MASTER_KEY),
        &json!({"organization_id": "nope", "max_budget": 1}),
    )
    .await;
    assert_eq!(status, 404);

    ok_post(
        &gw,
        "/user/new",
        json!({"user_id": "emp", "auto_create_key": false}),
    )
    .await;
    let added = ok_post(
        &gw,
        "/organization/member_add",
        json!({"organization_id": id, "member": {"user_id": "emp", "role": "org_admin"}}),
    )
    .await;
    assert_eq!(
        added["updated_organization_memberships"][0]["user_role"],
        "org_admin"
    );
    assert_eq!(added["updated_users"][0]["organizations"], json!([id]));
    assert_eq!(
        admin_post(
            &gw,
            "/organization/member_add",
            json!({"organization_id": id, "member": {"user_id": "emp"}})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin_post(
            &gw,
            "/organization/member_add",
            json!({"organization_id": id, "member": {"user_id": "x", "role": "king"}})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin_post(
            &gw,
            "/organization/member_add",
            json!({"organization_id": "nope", "member": {"user_id": "emp"}})
        )
        .await
        .0,
        404
    );

    let (status, member) = send(
        "PATCH",
        &url("/organization/member_update"),
        Some(MASTER_KEY),
        &json!({"organization_id": id, "user_id": "emp", "role": "internal_user_viewer"}),
    )
    .await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["user_role"], "internal_user_viewer");
    let list = ok_get(&gw, "/organization/list").await;
    assert_eq!(ids(&list, "organization_id"), vec![id.clone()]);
    assert_eq!(list[0]["members"][0]["user_role"], "internal_user_viewer");

    let (status, resp) = send(
        "DELETE",
        &url("/organization/member_delete"),
        Some(MASTER_KEY),
        &json!({"organization_id": id, "user_id": "emp"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (status, _) = send(
        "DELETE",
        &url("/organization/member_delete"),
        Some(MASTER_KEY),
        &json!({"organization_id": id, "user_id": "emp"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        ok_get(&gw, "/user/info?user_id=emp").await["user_info"]["organizations"],
        json!([])
    );

    let (status, deleted) = send(
        "DELETE",
        &url("/organization/delete"),
        Some(MASTER_KEY),
        &json!({"organization_ids": [id]}),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(ids(&deleted, "organization_id"), vec![id.clone()]);
    let (status, _) = send(
        "DELETE",
        &url("/organization/delete"),
        Some(MASTER_KEY),
        &json!({"organization_ids": [id]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(ok_get(&gw, "/organization/list").await, json!([]));
}

#[actix_rt::test]
async fn end_user_routes_under_both_prefixes() {
    let gw = Gateway::start(&config(), &[], &[]);
    ok_post(
        &gw,
        "/budget/new",
        json!({"budget_id": "b-eu", "max_budget": 2}),
    )
    .await;
    let created = ok_post(
        &gw,
        "/customer/new",
        json!({"user_id": "cust-1", "alias": "Big Co", "max_budget": 4.5, "budget_id": "b-eu", "allowed_model_region": "eu",
               "default_model": "mock-gpt", "models": ["mock-gpt"], "tpm_limit": 10, "rpm_limit": 1, "budget_duration": "1d"}),
    )
    .await;
    assert_eq!(created["user_id"], "cust-1");
    assert_eq!(created["alias"], "Big Co");
    assert_eq!(created["blocked"], false);
    assert_eq!(created["litellm_budget_table"]["max_budget"], 4.5);
    ok_post(
        &gw,
        "/end_user/new",
        json!({"user_id": "cust-2", "blocked": true}),
    )
    .await;

    for prefix in ["/customer", "/end_user"] {
        let info = ok_get(&gw, &format!("{prefix}/info?end_user_id=cust-1")).await;
        assert_eq!(info["allowed_model_region"], "eu");
        assert_eq!(info["default_model"], "mock-gpt");
        assert_eq!(info["budget_id"], "b-eu");
        assert_eq!(info["rpm_limit"], 1);
        assert!(info["budget_reset_at"].is_string(), "{info}");
        assert_eq!(
            admin_get(&gw, &format!("{prefix}/info?end_user_id=nope"))
                .await
                .0,
            404
        );
        let list = ok_get(&gw, &format!("{prefix}/list")).await;
        assert_eq!(ids(&list, "user_id"), vec!["cust-1", "cust-2"]);
        assert_eq!(
            admin_post(&gw, &format!("{prefix}/new"), json!({"user_id": "cust-1"}))
                .await
                .0,
            400
        );
        assert_eq!(
            admin_post(&gw, &format!("{prefix}/new"), json!({"alias": "no id"}))
                .await
                .0,
            400
        );
        assert_eq!(
            admin_post(
                &gw,
                &format!("{prefix}/new"),
                json!({"user_id": "c-x", "allowed_model_region": "mars"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            admin_post(
                &gw,
                &format!("{prefix}/update"),
                json!({"user_id": "nope", "alias": "x"})
            )
            .await
            .0,
            404
        );
        assert_eq!(
            admin_post(
                &gw,
                &format!("{prefix}/block"),
                json!({"user_ids": ["nope"]})
            )
            .await
            .0,
            404
        );
    }

    let updated = ok_post(&gw, "/end_user/update", json!({"user_id": "cust-1", "allowed_model_region": "us", "alias": "Bigger Co", "tpm_limit": null})).await;
    assert_eq!(updated["allowed_model_region"], "us");
    assert_eq!(updated["alias"], "Bigger Co");
    assert!(updated["tpm_limit"].is_null());
    let blocked = ok_post(&gw, "/customer/block", json!({"user_ids": ["cust-1"]})).await;
    assert_eq!(blocked["blocked_users"], json!(["cust-1"]));
    assert_eq!(
        ok_get(&gw, "/end_user/info?end_user_id=cust-1").await["blocked"],
        true
    );
    ok_post(
        &gw,
        "/end_user/unblock",
        json!({"user_ids": ["cust-1", "cust-2"]}),
    )
    .await;
    assert_eq!(
        ok_get(&gw, "/customer/info?end_user_id=cust-2").await["blocked"],
        false
    );

    let deleted = ok_post(&gw, "/end_user/delete", json!({"user_ids": ["cust-1"]})).await;
    assert_eq!(deleted["deleted_customers"], 1);
    assert_eq!(
        admin_get(&gw, "/customer/info?end_user_id=cust-1").await.0,
        404
    );
    ok_post(&gw, "/customer/delete", json!({"user_ids": ["cust-2"]})).await;
    assert_eq!(ok_get(&gw, "/end_user/list").await, json!([]));
}

#[actix_rt::test]
async fn budget_routes_and_reset_time() {
    let gw = Gateway::start(&config(), &[], &[]);
    let b = ok_post(
        &gw,
        "/budget/new",
        json!({"budget_id": "b-1", "max_budget": 7.5, "soft_budget": 5, "max_parallel_requests": 3, "tpm_limit": 100,
               "rpm_limit": 10, "budget_duration": "30d", "model_max_budget": {"mock-gpt": {"budget_limit": 1}}}),
    )
    .await;
    assert_eq!(b["budget_id"], "b-1");
    let thirty_days = 30 * 86_400_000;
    let drift = ms(&b["budget_reset_at"]) - ms(&b["created_at"]) - thirty_days;
    assert!(
        drift.abs() <= 3_000,
        "budget_reset_at - created_at is off by {drift} ms: {b}"
    );
    let now = chrono::Utc::now().timestamp_millis();
    assert!((ms(&b["budget_reset_at"]) - now - thirty_days).abs() <= 3_000);

    let generated = ok_post(&gw, "/budget/new", json!({"max_budget": 1})).await;
    assert!(uuid::Uuid::parse_str(generated["budget_id"].as_str().unwrap()).is_ok());
    assert!(generated["budget_reset_at"].is_null());
    assert_eq!(
        admin_post(&gw, "/budget/new", json!({"budget_id": "b-1"}))
            .await
            .0,
        400
    );
    assert_eq!(
        admin_post(&gw, "/budget/new", json!({"budget_duration": "forever"}))
            .await
            .0,
        400
    );

    let info = ok_post(&gw, "/budget/info", json!({"budgets": ["b-1"]})).await;
    assert_eq!(info[0]["max_budget"], 7.5);
    assert_eq!(info[0]["model_max_budget"]["mock-gpt"]["budget_limit"], 1);
    assert_eq!(
        admin_post(&gw, "/budget/info", json!({"budgets": ["b-1", "nope"]}))
            .await
            .0,
        404
    );

    let updated = ok_post(
        &gw,
        "/budget/update",
        json!({"budget_id": "b-1", "max_budget": 9, "budget_duration": "1h", "tpm_limit": null}),
    )
    .await;
    assert_eq!(updated["max_budget"], 9);
    assert!(updated["tpm_limit"].is_null());
    let drift = ms(&updated["budget_reset_at"]) - chrono::Utc::now().timestamp_millis() - 3_600_000;
    assert!(drift.abs() <= 3_000, "{updated}");
    assert_eq!(
        admin_post(
            &gw,
            "/budget/update",
            json!({"budget_id": "nope", "max_budget": 1})
        )
        .await
        .0,
        404
    );

    let list = ok_get(&gw, "/budget/list").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let deleted = ok_post(&gw, "/budget/delete", json!({"id": "b-1"})).await;
    assert_eq!(deleted["budget_id"], "b-1");
    assert_eq!(
        admin_post(&gw, "/budget/delete", json!({"id": "b-1"}))
            .await
            .0,
        404
    );
    assert_eq!(
        ok_get(&gw, "/budget/list").await.as_array().unwrap().len(),
        1
    );
}

#[actix_rt::test]
async fn user_team_and_key_flow_on_postgres() {
    let pg = FreshPostgres::create();
    let cfg = format!(
        "general_settings:\n  master_key: {MASTER_KEY}\n  database_url: {}\n",
        pg.url
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let lead_key = user_with_key(&gw, "pg-lead", "internal_user").await;
    ok_post(&gw, "/team/new", json!({"team_id": "pg-team", "team_alias": "pg", "members_with_roles": [{"role": "admin", "user_id": "pg-lead"}]})).await;
    assert_eq!(
        admin_post(&gw, "/team/new", json!({"team_id": "pg-team"}))
            .await
            .0,
        400
    );

    // The team admin adds a member and creates a team key for it.
    let (status, _, resp) = post(&gw.url("/team/member_add"), Some(&lead_key), &json!({"team_id": "pg-team", "member": {"user_id": "pg-dev", "user_email": "dev@example.com"}})).await;
    assert_eq!(status, 200, "{resp}");
    let (status, _, k) = post(
        &gw.url("/key/generate"),
        Some(&lead_key),
        &json!({"team_id": "pg-team", "user_id": "pg-dev"}),
    )
    .await;
    assert_eq!(status, 200, "{k}");
    let dev_key = k["key"].as_str().unwrap().to_string();

    let info = ok_get(&gw, "/team/info?team_id=pg-team").await;
    assert_eq!(
        ids(&info["team_memberships"], "user_id"),
        vec!["pg-lead", "pg-dev"]
    );
    assert_eq!(info["keys"].as_array().unwrap().len(), 1);
    let (status, _, me) = get(&gw.url("/user/info"), Some(&dev_key)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_info"]["user_email"], "dev@example.com");
    assert_eq!(ids(&me["teams"], "team_id"), vec!["pg-team"]);
    assert_eq!(me["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&gw.url("/user/info?user_id=pg-lead"), Some(&dev_key))
            .await
            .0,
        403
    );

    ok_post(&gw, "/team/block", json!({"team_id": "pg-team"})).await;
    assert_eq!(get(&gw.url("/user/info"), Some(&dev_key)).await.0, 401);
    ok_post(&gw, "/team/unblock", json!({"team_id": "pg-team"})).await;
    assert_eq!(get(&gw.url("/user/info"), Some(&dev_key)).await.0, 200);

    ok_post(&gw, "/user/delete", json!({"user_ids": ["pg-dev"]})).await;
    assert_eq!(get(&gw.url("/user/info"), Some(&dev_key)).await.0, 401);
    let info = ok_get(&gw, "/team/info?team_id=pg-team").await;
    assert_eq!(ids(&info["team_memberships"], "user_id"), vec!["pg-lead"]);
    assert_eq!(info["keys"], json!([]));
}
