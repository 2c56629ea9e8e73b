//! Key and user authorization: no request can produce a key or user with more power than its
//! caller has (role, models, limits). A generated matrix (callers × targets × teams × fields on
//! `/key/generate` and `/key/update`, on SQLite and Postgres) checks every status against a small
//! oracle written from the rules, and the power of every key it lets through; focused tests pin
//! each probe finding.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

/// Three chat groups on the mock, so keys can hold a subset, a superset or `*`.
fn config(mock: &Mock) -> String {
    let mut models = String::new();
    for name in ["m-a", "m-b", "m-c"] {
        models.push_str(&format!(
            "  - model_name: {name}\n    litellm_params:\n      model: openai/mock-gpt\n      api_base: {base}\n      api_key: sk-mock-upstream-secret-42\n",
            base = mock.api_base()
        ));
    }
    models.push_str(&format!(
        "  - model_name: m-embed\n    litellm_params:\n      model: openai/mock-embedding\n      api_base: {base}\n      api_key: sk-mock-upstream-secret-42\n    model_info:\n      mode: embedding\n",
        base = mock.api_base()
    ));
    format!("model_list:\n{models}general_settings:\n  master_key: {MASTER_KEY}\n")
}

const ALL_MODELS: [&str; 3] = ["m-a", "m-b", "m-c"];

async fn call(gw: &Gateway, key: &str, path: &str, body: Value) -> (u16, Value) {
    send("POST", &gw.url(path), Some(key), &body).await
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, resp) = call(gw, MASTER_KEY, path, body.clone()).await;
    assert_eq!(status, 200, "{path} {body} → {resp}");
    resp
}

async fn key_info(gw: &Gateway, key: &str) -> Value {
    let (status, resp) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY))
        .await
        .pipe(|(s, _, b)| (s, b));
    assert_eq!(status, 200, "{resp}");
    resp["info"].clone()
}

async fn user_info(gw: &Gateway, user: &str) -> Value {
    let (status, _, resp) = get(
        &gw.url(&format!("/user/info?user_id={user}")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    resp["user_info"].clone()
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn key_of(v: &Value) -> String {
    v["key"].as_str().expect("a key").to_string()
}

// ---------------------------------------------------------------------------------------------
// The matrix.

/// What every non-admin caller's key holds: the bounds a new key must stay within.
fn caller_limits() -> Value {
    json!({"models": ["m-a", "m-b"], "max_budget": 10, "rpm_limit": 100, "tpm_limit": 1000,
           "budget_duration": "30d", "duration": "30d"})
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Master,
    ProxyAdmin,
    ProxyAdminViewer,
    InternalUser,
    InternalUserViewer,
    TeamAdmin,
    TeamMember,
    TeamKey,
    AppKey,
}

const CALLERS: [Who; 9] = [
    Who::Master,
    Who::ProxyAdmin,
    Who::ProxyAdminViewer,
    Who::InternalUser,
    Who::InternalUserViewer,
    Who::TeamAdmin,
    Who::TeamMember,
    Who::TeamKey,
    Who::AppKey,
];

impl Who {
    /// The caller's user and its role (none: the master key, or a key without a user).
    fn user(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Who::ProxyAdmin => ("c-pa", "proxy_admin"),
            Who::ProxyAdminViewer => ("c-pav", "proxy_admin_viewer"),
            Who::InternalUser => ("c-iu", "internal_user"),
            Who::InternalUserViewer => ("c-iuv", "internal_user_viewer"),
            Who::TeamAdmin => ("c-ta", "internal_user"),
            Who::TeamMember => ("c-tm", "internal_user"),
            Who::Master | Who::TeamKey | Who::AppKey => return None,
        })
    }
    fn role(self) -> &'static str {
        match self {
            Who::Master => "proxy_admin",
            Who::TeamKey | Who::AppKey => "internal_user",
            w => w.user().unwrap().1,
        }
    }
    fn is_admin(self) -> bool {
        self.role() == "proxy_admin"
    }
    fn writes(self) -> bool {
        matches!(self.role(), "proxy_admin" | "internal_user")
    }
    fn member_of_t(self) -> bool {
        matches!(self, Who::TeamAdmin | Who::TeamMember | Who::TeamKey)
    }
    /// The team the caller's key is bound to.
    fn key_team(self) -> Option<&'static str> {
        (self == Who::TeamKey).then_some("T")
    }
}

/// Target users: (name in the matrix, user_id, role, member of T).
const TARGETS: [(&str, Option<&str>, &str, bool); 7] = [
    ("none", None, "", false),
    ("self", None, "", false),
    ("other", Some("t-other"), "internal_user", false),
    ("member", Some("t-member"), "internal_user", true),
    ("nonmember", Some("t-nonmember"), "internal_user", false),
    ("proxy-admin", Some("t-pa"), "proxy_admin", true),
    (
        "proxy-admin-viewer",
        Some("t-pav"),
        "proxy_admin_viewer",
        true,
    ),
];

const TEAMS: [Option<&str>; 3] = [None, Some("T"), Some("U")];

/// Team models (None: all).
fn team_models(team: Option<&str>) -> Option<Vec<&'static str>> {
    match team {
        Some("T") => Some(vec!["m-a", "m-b"]),
        _ => None,
    }
}

/// A new key's fields: everything within the caller's bounds, then one field pushed past them.
const GRANT_FIELDS: [(&str, &str); 8] = [
    ("within", ""),
    ("models-superset", "models"),
    ("models-star", "models"),
    ("max_budget-above", "max_budget"),
    ("rpm-above", "rpm_limit"),
    ("tpm-above", "tpm_limit"),
    ("budget_duration-1s", "budget_duration"),
    ("duration-36000d", "duration"),
];

fn grant_body(field: &str) -> Value {
    let mut body = json!({"models": ["m-a"], "max_budget": 5, "rpm_limit": 50, "tpm_limit": 500,
                          "budget_duration": "30d", "duration": "1d"});
    let o = body.as_object_mut().unwrap();
    match field {
        "within" => {}
        "models-superset" => {
            o.insert("models".into(), json!(["m-a", "m-c"]));
        }
        "models-star" => {
            o.insert("models".into(), json!(["*"]));
        }
        "max_budget-above" => {
            o.insert("max_budget".into(), json!(20));
        }
        "rpm-above" => {
            o.insert("rpm_limit".into(), json!(200));
        }
        "tpm-above" => {
            o.insert("tpm_limit".into(), json!(2000));
        }
        "budget_duration-1s" => {
            o.insert("budget_duration".into(), json!("1s"));
        }
        "duration-36000d" => {
            o.insert("duration".into(), json!("36000d"));
        }
        other => panic!("{other}"),
    }
    body
}

/// Whether a key for a user of role `target` has no more power than a holder of role `holder`.
fn role_within(target: &str, holder: &str) -> bool {
    let llm_only = ["team", "customer"];
    match holder {
        "proxy_admin" => true,
        "proxy_admin_viewer" => {
            ["proxy_admin_viewer", "internal_user_viewer"].contains(&target)
                || llm_only.contains(&target)
        }
        "internal_user" => {
            ["internal_user", "internal_user_viewer"].contains(&target)
                || llm_only.contains(&target)
        }
        "internal_user_viewer" => target == "internal_user_viewer" || llm_only.contains(&target),
        _ => llm_only.contains(&target),
    }
}

/// The oracle for `/key/generate`: allowed or not, from the written rules.
fn generate_allowed(
    who: Who,
    target: &str,
    target_id: Option<&str>,
    target_role: &str,
    member: bool,
    team: Option<&str>,
    field: &str,
) -> bool {
    if who.is_admin() {
        return true;
    }
    if !who.writes() {
        return false;
    }
    // Every field case except "within" exceeds the caller's own key.
    if field != "within" {
        return false;
    }
    // The team: the caller must belong to it.
    let team_ok = match team {
        None => true,
        Some("T") => who.member_of_t(),
        Some(_) => false,
    };
    // The user: itself (the default), or as the team's admin a member of the team, of a role
    // within the caller's.
    let user_ok = match (target, target_id) {
        ("none", _) | ("self", _) => true,
        (_, Some(_)) => {
            who == Who::TeamAdmin
                && team == Some("T")
                && member
                && role_within(target_role, who.role())
        }
        _ => unreachable!(),
    };
    // A key of no user and no team is a proxy admin's to create (nothing bounds it together with
    // the caller's own keys).
    let bound = team.is_some() || who.user().is_some();
    team_ok && user_ok && bound
}

/// The models a key may use, over the three groups: key ∩ user ∩ team.
async fn effective_models(gw: &Gateway, info: &Value) -> BTreeSet<&'static str> {
    let list = |v: &Value| -> Option<Vec<String>> {
        let l: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let l: Vec<String> = l.into_iter().filter(|m| m != "all-team-models").collect();
        (!l.is_empty()).then_some(l)
    };
    let mut layers = vec![list(&info["models"])];
    if let Some(u) = info["user_id"].as_str() {
        layers.push(list(&user_info(gw, u).await["models"]));
    }
    if let Some(t) = info["team_id"].as_str() {
        layers.push(team_models(Some(t)).map(|v| v.into_iter().map(String::from).collect()));
    }
    ALL_MODELS
        .into_iter()
        .filter(|m| {
            layers
                .iter()
                .flatten()
                .all(|l| l.iter().any(|a| a == m || a == "*"))
        })
        .collect()
}

struct World {
    keys: Vec<(Who, String)>,
    /// Keys to update: (target name, key).
    update_targets: Vec<(&'static str, String)>,
}

async fn build_world(gw: &Gateway) -> World {
    for (id, role) in [
        ("c-pa", "proxy_admin"),
        ("c-pav", "proxy_admin_viewer"),
        ("c-iu", "internal_user"),
        ("c-iuv", "internal_user_viewer"),
        ("c-ta", "internal_user"),
        ("c-tm", "internal_user"),
        ("t-other", "internal_user"),
        ("t-member", "internal_user"),
        ("t-nonmember", "internal_user"),
        ("t-pa", "proxy_admin"),
        ("t-pav", "proxy_admin_viewer"),
    ] {
        admin(
            gw,
            "/user/new",
            json!({"user_id": id, "user_role": role, "auto_create_key": false}),
        )
        .await;
    }
    admin(
        gw,
        "/team/new",
        json!({"team_id": "T", "models": ["m-a", "m-b"], "members_with_roles": [
            {"user_id": "c-ta", "role": "admin"},
            {"user_id": "c-tm", "role": "user"},
            {"user_id": "t-member", "role": "user"},
            {"user_id": "t-pa", "role": "user"},
            {"user_id": "t-pav", "role": "user"},
        ]}),
    )
    .await;
    admin(
        gw,
        "/team/new",
        json!({"team_id": "U", "members_with_roles": [{"user_id": "t-other", "role": "user"}]}),
    )
    .await;
    let mut keys = Vec::new();
    for who in CALLERS {
        let key = match who {
            Who::Master => MASTER_KEY.to_string(),
            _ => {
                let mut body = caller_limits();
                let o = body.as_object_mut().unwrap();
                if let Some((u, _)) = who.user() {
                    o.insert("user_id".into(), json!(u));
                }
                if let Some(t) = who.key_team() {
                    o.insert("team_id".into(), json!(t));
                }
                key_of(&admin(gw, "/key/generate", body).await)
            }
        };
        keys.push((who, key));
    }
    let mut update_targets = Vec::new();
    for (name, body) in [
        ("other", json!({"user_id": "t-other"})),
        (
            "member-team-key",
            json!({"user_id": "t-member", "team_id": "T"}),
        ),
        ("nonmember", json!({"user_id": "t-nonmember"})),
        ("proxy-admin", json!({"user_id": "t-pa"})),
        ("proxy-admin-viewer", json!({"user_id": "t-pav"})),
        ("no-user", json!({})),
    ] {
        update_targets.push((name, key_of(&admin(gw, "/key/generate", body).await)));
    }
    World {
        keys,
        update_targets,
    }
}

async fn generate_matrix(gw: &Gateway, world: &World) -> usize {
    let mut checked = 0;
    for (who, key) in &world.keys {
        let who = *who;
        for (target, target_id, target_role, member) in TARGETS {
            if target == "self" && who.user().is_none() {
                continue;
            }
            let user_id = match target {
                "self" => who.user().map(|(u, _)| u),
                _ => target_id,
            };
            for team in TEAMS {
                for (field, _) in GRANT_FIELDS {
                    let mut body = grant_body(field);
                    let o = body.as_object_mut().unwrap();
                    if let Some(u) = user_id {
                        o.insert("user_id".into(), json!(u));
                    }
                    if let Some(t) = team {
                        o.insert("team_id".into(), json!(t));
                    }
                    let expected =
                        generate_allowed(who, target, target_id, target_role, member, team, field);
                    let (status, resp) = call(gw, key, "/key/generate", body.clone()).await;
                    let case = format!("{who:?} → user {target}, team {team:?}, {field}: {body}");
                    if expected {
                        assert_eq!(status, 200, "{case} must be allowed: {resp}");
                        check_power(gw, who, &key_of(&resp), &case).await;
                    } else {
                        assert_eq!(status, 403, "{case} must be refused: {resp}");
                    }
                    checked += 1;
                }
            }
        }
    }
    checked
}

/// An allowed key never has more power than its creator: its user's role is within the
/// creator's, and its effective models within the creator's.
async fn check_power(gw: &Gateway, who: Who, key: &str, case: &str) {
    if who.is_admin() {
        return;
    }
    let info = key_info(gw, key).await;
    let role = match info["user_id"].as_str() {
        Some(u) => user_info(gw, u).await["user_role"]
            .as_str()
            .unwrap_or("internal_user")
            .to_string(),
        None => "internal_user".to_string(),
    };
    assert!(role_within(&role, who.role()), "{case}: key of role {role}");
    let caller_models: BTreeSet<&str> = ["m-a", "m-b"].into_iter().collect();
    let models = effective_models(gw, &info).await;
    assert!(
        models.is_subset(&caller_models),
        "{case}: models {models:?}"
    );
    for (limit, own) in [
        ("max_budget", 10.0),
        ("rpm_limit", 100.0),
        ("tpm_limit", 1000.0),
    ] {
        assert!(
            info[limit].as_f64().is_some_and(|v| v <= own),
            "{case}: {limit} {}",
            info[limit]
        );
    }
}

/// `/key/update` fields: the limiting ones, then one a holder may change.
fn update_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("models-subset", json!({"models": ["m-a"]})),
        ("models-superset", json!({"models": ["m-a", "m-b", "m-c"]})),
        ("models-star", json!({"models": ["*"]})),
        ("max_budget-above", json!({"max_budget": 20})),
        ("rpm-above", json!({"rpm_limit": 200})),
        ("tpm-above", json!({"tpm_limit": 2000})),
        ("budget_duration-1s", json!({"budget_duration": "1s"})),
        ("duration-null", json!({"duration": null})),
        ("duration-36000d", json!({"duration": "36000d"})),
        ("team-T", json!({"team_id": "T"})),
        ("team-U", json!({"team_id": "U"})),
        ("metadata", json!({"metadata": {"note": "hello"}})),
    ]
}

fn update_allowed(who: Who, target: &str, field: &str) -> bool {
    if who.is_admin() {
        return true;
    }
    if !who.writes() || field != "metadata" {
        return false;
    }
    // A holder changes its own user's keys; a team admin its team's keys.
    match target {
        "own" => who.user().is_some(),
        "member-team-key" => who == Who::TeamAdmin,
        _ => false,
    }
}

async fn update_matrix(gw: &Gateway, world: &World) -> usize {
    let mut checked = 0;
    // Admins change keys first only on their own copies, so the non-admin rows see fixed keys.
    let mut order: Vec<&(Who, String)> = world.keys.iter().filter(|(w, _)| !w.is_admin()).collect();
    order.extend(world.keys.iter().filter(|(w, _)| w.is_admin()));
    for (who, key) in order {
        let who = *who;
        let mut targets: Vec<(&str, String)> = world
            .update_targets
            .iter()
            .map(|(n, k)| (*n, k.clone()))
            .collect();
        if who != Who::Master {
            targets.push(("own", key.clone()));
        }
        for (target, target_key) in &targets {
            for (field, change) in update_fields() {
                let before = key_info(gw, target_key).await;
                let mut body = change.clone();
                body.as_object_mut()
                    .unwrap()
                    .insert("key".into(), json!(target_key));
                let (status, resp) = call(gw, key, "/key/update", body).await;
                let case = format!("{who:?} updates {target} key with {field}: {change}");
                if update_allowed(who, target, field) {
                    assert_eq!(status, 200, "{case} must be allowed: {resp}");
                    if !who.is_admin() {
                        let after = key_info(gw, target_key).await;
                        for f in [
                            "models",
                            "max_budget",
                            "rpm_limit",
                            "tpm_limit",
                            "budget_duration",
                            "expires",
                            "team_id",
                            "user_id",
                        ] {
                            assert_eq!(before[f], after[f], "{case}: {f} changed");
                        }
                    }
                } else {
                    assert_eq!(status, 403, "{case} must be refused: {resp}");
                    let after = key_info(gw, target_key).await;
                    assert_eq!(before, after, "{case}: a refused update changed the key");
                }
                checked += 1;
            }
        }
    }
    checked
}

async fn matrix(gw: &Gateway) {
    let world = build_world(gw).await;
    let generated = generate_matrix(gw, &world).await;
    // 9 callers × 7 targets (no "self" for the 3 callers without a user) × 3 teams × 8 fields.
    assert_eq!(generated, (9 * 7 - 3) * 3 * 8);
    let updated = update_matrix(gw, &world).await;
    assert_eq!(updated, (9 * 7 - 1) * 12);
}

#[actix_rt::test]
async fn key_grant_matrix_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    matrix(&gw).await;
}

#[actix_rt::test]
async fn key_grant_matrix_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(
        &format!("{}  database_url: {}\n", config(&mock), pg.url),
        &[],
        &[],
    );
    let (_, _, ready) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(ready["db_backend"], "postgres");
    matrix(&gw).await;
}

// ---------------------------------------------------------------------------------------------
// Focused regression tests, one per finding.

fn start() -> (Mock, Gateway) {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    (mock, gw)
}

async fn user_with_key(gw: &Gateway, id: &str, role: &str, extra: Value) -> String {
    let mut body = json!({"user_id": id, "user_role": role});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    key_of(&admin(gw, "/user/new", body).await)
}

/// F1: a key without a user cannot mint a key for a user (least of all the proxy admin).
#[actix_rt::test]
async fn f1_key_without_user_cannot_mint_keys_for_users() {
    let (_mock, gw) = start();
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "boss", "user_role": "proxy_admin", "auto_create_key": false}),
    )
    .await;
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "someone", "auto_create_key": false}),
    )
    .await;
    admin(&gw, "/team/new", json!({"team_id": "t1"})).await;
    let app_key = key_of(&admin(&gw, "/key/generate", json!({})).await);
    let team_key = key_of(&admin(&gw, "/key/generate", json!({"team_id": "t1"})).await);
    for key in [&app_key, &team_key] {
        for user in ["boss", "someone"] {
            let (status, resp) = call(&gw, key, "/key/generate", json!({"user_id": user})).await;
            assert_eq!(status, 403, "{user}: {resp}");
        }
    }
    // What the probe did next: with a key of the proxy admin, create an admin. It never got one.
    let (status, resp) = call(
        &gw,
        &app_key,
        "/user/new",
        json!({"user_role": "proxy_admin"}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    // A team key still creates keys of its team, without a user (the team's budget bounds them
    // all); a key of no user and no team creates none: each would be a fresh allowance.
    let (status, resp) = call(&gw, &team_key, "/key/generate", json!({"team_id": "t1"})).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["user_id"].is_null(), "{resp}");
    assert_eq!(resp["team_id"], "t1", "{resp}");
    for key in [&app_key, &team_key] {
        let (status, resp) = call(&gw, key, "/key/generate", json!({})).await;
        assert_eq!(status, 403, "{resp}");
    }
}

/// F2/F3: a team admin mints keys only for members of its team, never above its own role.
#[actix_rt::test]
async fn f2_f3_team_admin_mints_only_for_members_of_its_role() {
    let (_mock, gw) = start();
    let ta = user_with_key(&gw, "ta", "internal_user", json!({})).await;
    for (id, role) in [
        ("boss", "proxy_admin"),
        ("viewer", "proxy_admin_viewer"),
        ("outsider", "internal_user"),
        ("mate", "internal_user"),
    ] {
        admin(
            &gw,
            "/user/new",
            json!({"user_id": id, "user_role": role, "auto_create_key": false}),
        )
        .await;
    }
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "t1", "members_with_roles": [
        {"user_id": "ta", "role": "admin"}, {"user_id": "mate", "role": "user"}]}),
    )
    .await;
    // Outside the team, and the proxy admin (even once it is a member): refused.
    for user in ["outsider", "boss", "viewer"] {
        let (status, resp) = call(
            &gw,
            &ta,
            "/key/generate",
            json!({"user_id": user, "team_id": "t1"}),
        )
        .await;
        assert_eq!(status, 403, "{user}: {resp}");
    }
    // The team admin may add members to its team, but that gives it no key for a stronger user.
    admin(
        &gw,
        "/team/member_add",
        json!({"team_id": "t1", "member": [
        {"user_id": "boss", "role": "user"}, {"user_id": "viewer", "role": "user"}]}),
    )
    .await;
    for user in ["boss", "viewer"] {
        let (status, resp) = call(
            &gw,
            &ta,
            "/key/generate",
            json!({"user_id": user, "team_id": "t1"}),
        )
        .await;
        assert_eq!(status, 403, "{user}: {resp}");
    }
    let (status, resp) = call(
        &gw,
        &ta,
        "/key/generate",
        json!({"user_id": "mate", "team_id": "t1"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["user_id"], "mate");
    // Nor by regenerating a stronger member's team key (the caller gets the new plaintext).
    let boss_key = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"user_id": "boss", "team_id": "t1"}),
        )
        .await,
    );
    let (status, resp) = call(&gw, &ta, "/key/regenerate", json!({"key": boss_key})).await;
    assert_eq!(status, 403, "{resp}");
    key_info(&gw, &boss_key).await;
    let mate_key = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"user_id": "mate", "team_id": "t1"}),
        )
        .await,
    );
    let (status, resp) = call(&gw, &ta, "/key/regenerate", json!({"key": mate_key})).await;
    assert_eq!(status, 200, "{resp}");
}

/// F4: a team member cannot give a team key models the team is not allowed, and a key's models
/// never widen its team's on the LLM routes.
#[actix_rt::test]
async fn f4_key_models_stay_within_the_team() {
    let (_mock, gw) = start();
    let member = user_with_key(&gw, "mem", "internal_user", json!({})).await;
    admin(&gw, "/team/new", json!({"team_id": "t1", "models": ["m-a"], "members_with_roles": [{"user_id": "mem", "role": "user"}]})).await;
    for models in [json!(["m-c"]), json!(["*"]), json!(["m-a", "m-b"])] {
        let (status, resp) = call(
            &gw,
            &member,
            "/key/generate",
            json!({"team_id": "t1", "models": models}),
        )
        .await;
        assert_eq!(status, 403, "{models}: {resp}");
    }
    let (status, resp) = call(
        &gw,
        &member,
        "/key/generate",
        json!({"team_id": "t1", "models": ["m-a"]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    // A key an admin gave a model outside the team still cannot use it.
    let wide = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"team_id": "t1", "models": ["m-a", "m-c"]}),
        )
        .await,
    );
    let (status, resp) = call(&gw, &wide, "/chat/completions", chat("m-c")).await;
    assert_eq!(status, 401, "{resp}");
    assert_eq!(resp["error"]["type"], "key_model_access_denied", "{resp}");
    let (status, resp) = call(&gw, &wide, "/chat/completions", chat("m-a")).await;
    assert_eq!(status, 200, "{resp}");
    let (_, _, listed) = get(&gw.url("/v1/models"), Some(&wide)).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["m-a"], "{listed}");
}

/// F16: a user's `models` bind every key of the user, `models: []` included.
#[actix_rt::test]
async fn f16_user_models_bind_its_keys() {
    let (_mock, gw) = start();
    let key = user_with_key(&gw, "narrow", "internal_user", json!({"models": ["m-a"]})).await;
    let empty = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"user_id": "narrow", "models": []}),
        )
        .await,
    );
    let wide = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"user_id": "narrow", "models": ["m-a", "m-b"]}),
        )
        .await,
    );
    for k in [&key, &empty, &wide] {
        let (status, resp) = call(&gw, k, "/chat/completions", chat("m-b")).await;
        assert_eq!(status, 401, "{resp}");
        assert_eq!(resp["error"]["type"], "key_model_access_denied", "{resp}");
        let (status, resp) = call(&gw, k, "/chat/completions", chat("m-a")).await;
        assert_eq!(status, 200, "{resp}");
    }
    // The user's own key cannot mint a key past the user's models either.
    let (status, resp) = call(&gw, &key, "/key/generate", json!({"models": ["m-b"]})).await;
    assert_eq!(status, 403, "{resp}");
}

/// F5, F17, F18: a key's holder cannot change what limits it, on update or regenerate.
#[actix_rt::test]
async fn f5_f17_f18_holder_cannot_loosen_its_own_key() {
    let (_mock, gw) = start();
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "holder", "auto_create_key": false}),
    )
    .await;
    let key = key_of(&admin(&gw, "/key/generate", json!({"user_id": "holder", "max_budget": 1, "duration": "1d",
        "model_max_budget": {"m-a": {"budget_limit": 1}}, "model_rpm_limit": {"m-a": 1}, "model_tpm_limit": {"m-a": 10}})).await);
    let before = key_info(&gw, &key).await;
    for change in [
        json!({"budget_duration": "1s"}),
        json!({"duration": null}),
        json!({"duration": "36000d"}),
        json!({"model_max_budget": null}),
        json!({"model_rpm_limit": {}}),
        json!({"model_tpm_limit": null}),
        json!({"max_budget": 0.5}),
        json!({"enforced_params": []}),
        json!({"allowed_cache_controls": ["no-cache"]}),
        json!({"guardrails": []}),
        json!({"key_type": "management"}),
    ] {
        let mut body = change.clone();
        body["key"] = json!(key);
        let (status, resp) = call(&gw, &key, "/key/update", body.clone()).await;
        assert_eq!(status, 403, "update {change}: {resp}");
        let (status, resp) = call(&gw, &key, "/key/regenerate", body).await;
        assert_eq!(status, 403, "regenerate {change}: {resp}");
    }
    assert_eq!(key_info(&gw, &key).await, before);
    // What a holder may change.
    let (status, resp) = call(
        &gw,
        &key,
        "/key/update",
        json!({"key": key, "key_alias": "mine", "metadata": {"a": 1}, "tags": ["x"]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}

/// F20: a user cannot change its own email, and a member-add by email never binds to a user
/// that set the email itself.
#[actix_rt::test]
async fn f20_email_is_an_admins_to_set() {
    let (_mock, gw) = start();
    let mallory = user_with_key(
        &gw,
        "mallory",
        "internal_user",
        json!({"user_email": "mallory@example.com"}),
    )
    .await;
    let (status, resp) = call(
        &gw,
        &mallory,
        "/user/update",
        json!({"user_id": "mallory", "user_email": "boss@example.com"}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(
        user_info(&gw, "mallory").await["user_email"],
        "mallory@example.com"
    );
    // Keeping the same email is no change.
    let (status, resp) = call(
        &gw,
        &mallory,
        "/user/update",
        json!({"user_id": "mallory", "user_email": "mallory@example.com", "user_alias": "M"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    // The admin's member-add by the email binds to a new user, not to mallory.
    admin(&gw, "/team/new", json!({"team_id": "finance"})).await;
    let added = admin(
        &gw,
        "/team/member_add",
        json!({"team_id": "finance", "member": {"user_email": "boss@example.com", "role": "user"}}),
    )
    .await;
    let ids: Vec<&str> = added["members_with_roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "{added}");
    assert_ne!(ids[0], "mallory", "{added}");
    // A user a team admin created with an email is never bound by that email: the email is the
    // team admin's claim, not an admin's.
    let ta = user_with_key(&gw, "ta", "internal_user", json!({})).await;
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "t1", "members_with_roles": [{"user_id": "ta", "role": "admin"}]}),
    )
    .await;
    let (status, resp) = call(&gw, &ta, "/team/member_add", json!({"team_id": "t1", "member": {"user_id": "fake", "user_email": "cfo@example.com", "role": "user"}})).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        user_info(&gw, "fake").await["user_email"],
        "cfo@example.com"
    );
    let (status, resp) = call(
        &gw,
        MASTER_KEY,
        "/team/member_add",
        json!({"team_id": "finance", "member": {"user_email": "cfo@example.com", "role": "user"}}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "user_email", "{resp}");
    // Once a proxy admin sets that email, it binds.
    admin(
        &gw,
        "/user/update",
        json!({"user_id": "fake", "user_email": "cfo@example.com"}),
    )
    .await;
    let added = admin(
        &gw,
        "/team/member_add",
        json!({"team_id": "finance", "member": {"user_email": "cfo@example.com", "role": "user"}}),
    )
    .await;
    assert!(
        added["members_with_roles"].to_string().contains("\"fake\""),
        "{added}"
    );
}

/// F23: a key's `enforced_params` must be in every LLM request made with it.
#[actix_rt::test]
async fn f23_enforced_params_are_enforced_on_llm_routes() {
    let (mock, gw) = start();
    let _ = &mock;
    let key = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"enforced_params": ["user", "metadata.generation_name"]}),
        )
        .await,
    );
    let full = |mut body: Value| {
        body["user"] = json!("end-user-1");
        body["metadata"] = json!({"generation_name": "g1"});
        body
    };
    let embed = json!({"model": "m-embed", "input": "hello"});
    let completion = json!({"model": "m-a", "prompt": "hello"});
    for (path, body) in [
        ("/chat/completions", chat("m-a")),
        ("/v1/embeddings", embed.clone()),
        ("/v1/completions", completion.clone()),
    ] {
        let (status, resp) = call(&gw, &key, path, body.clone()).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains("user"),
            "{resp}"
        );
        let mut only_user = body.clone();
        only_user["user"] = json!("end-user-1");
        only_user["metadata"] = json!({"other": 1});
        let (status, resp) = call(&gw, &key, path, only_user).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains("metadata.generation_name"),
            "{resp}"
        );
        let (status, resp) = call(&gw, &key, path, full(body)).await;
        assert_eq!(status, 200, "{path}: {resp}");
    }
    let messages =
        json!({"model": "m-a", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let (status, resp) = call(&gw, &key, "/v1/messages", messages.clone()).await;
    assert_eq!(status, 400, "{resp}");
    let mut ok = messages;
    ok["user"] = json!("end-user-1");
    ok["metadata"] = json!({"generation_name": "g1"});
    let (status, resp) = call(&gw, &key, "/v1/messages", ok).await;
    assert_eq!(status, 200, "{resp}");
    // A key minted by it must keep enforcing them.
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "u", "auto_create_key": false}),
    )
    .await;
    let (status, resp) = call(
        &gw,
        &key,
        "/key/generate",
        json!({"enforced_params": ["user"]}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
}

/// F24: a key a caller may not see answers like a key that does not exist.
#[actix_rt::test]
async fn f24_hidden_keys_answer_like_missing_ones() {
    let (_mock, gw) = start();
    let probe = user_with_key(&gw, "probe", "internal_user", json!({})).await;
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "victim", "auto_create_key": false}),
    )
    .await;
    let victim = key_of(
        &admin(
            &gw,
            "/key/generate",
            json!({"user_id": "victim", "key_alias": "victim-alias"}),
        )
        .await,
    );
    let missing = "sk-this-key-does-not-exist-000";
    let pairs = [
        (
            ("GET", format!("/key/info?key={victim}"), json!({})),
            ("GET", format!("/key/info?key={missing}"), json!({})),
        ),
        (
            (
                "POST",
                "/key/update".to_string(),
                json!({"key_alias": "victim-alias", "metadata": {}}),
            ),
            (
                "POST",
                "/key/update".to_string(),
                json!({"key_alias": "no-such-alias", "metadata": {}}),
            ),
        ),
        (
            (
                "POST",
                "/key/delete".to_string(),
                json!({"key_aliases": ["victim-alias"]}),
            ),
            (
                "POST",
                "/key/delete".to_string(),
                json!({"key_aliases": ["no-such-alias"]}),
            ),
        ),
        (
            ("POST", "/key/delete".to_string(), json!({"keys": [victim]})),
            (
                "POST",
                "/key/delete".to_string(),
                json!({"keys": [missing]}),
            ),
        ),
        (
            (
                "POST",
                "/key/regenerate".to_string(),
                json!({"key": victim}),
            ),
            (
                "POST",
                "/key/regenerate".to_string(),
                json!({"key": missing}),
            ),
        ),
    ];
    for ((m1, p1, b1), (m2, p2, b2)) in pairs {
        let (s1, r1) = send(m1, &gw.url(&p1), Some(&probe), &b1).await;
        let (s2, r2) = send(m2, &gw.url(&p2), Some(&probe), &b2).await;
        assert_eq!((s1, &r1), (s2, &r2), "{p1} {b1} vs {b2}");
        assert_eq!(s1, 403, "{r1}");
    }
    // Naming a team one does not belong to answers like naming one that does not exist.
    admin(&gw, "/team/new", json!({"team_id": "secret-team"})).await;
    let (s1, r1) = call(
        &gw,
        &probe,
        "/key/generate",
        json!({"team_id": "secret-team"}),
    )
    .await;
    let (s2, r2) = call(
        &gw,
        &probe,
        "/key/generate",
        json!({"team_id": "no-such-team"}),
    )
    .await;
    assert_eq!(s1, 403, "{r1}");
    assert_eq!(
        (
            s1,
            r1["error"]["message"]
                .as_str()
                .map(|m| m.replace("secret-team", "X"))
        ),
        (
            s2,
            r2["error"]["message"]
                .as_str()
                .map(|m| m.replace("no-such-team", "X"))
        )
    );
    // The victim's key is untouched, and an admin still gets 404 for a missing one.
    key_info(&gw, &victim).await;
    let (status, resp) = call(
        &gw,
        MASTER_KEY,
        "/key/update",
        json!({"key_alias": "no-such-alias", "metadata": {}}),
    )
    .await;
    assert_eq!(status, 404, "{resp}");
}
