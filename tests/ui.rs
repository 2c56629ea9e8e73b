//! The admin UI at `/ui`: its files and security headers, sign-in and sessions over plain HTTP
//! (cookie flags, CSRF, the rate limit, internal users' passwords and what their sessions may
//! see), and the pages themselves in headless Chromium driven over WebDriver (`chromedriver`).
//! Screenshots of each page land in `target/ui-screenshots/`.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs
//! them). Without them it is skipped with a message, except under CI (`CI` set), where it fails.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A priced model on the mock, spend written every 0.2 s, and a database.
fn config(mock: &Mock, pg: Option<&FreshPostgres>) -> String {
    let db = pg
        .map(|pg| format!("  database_url: {}\n", pg.url))
        .unwrap_or_default();
    format!(
        r#"model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-mock-upstream-secret-42, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
{db}"#,
        base = mock.api_base()
    )
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish()
}

fn header<'a>(headers: &'a Headers, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} header missing"))
        .to_str()
        .unwrap()
}

/// A session: the cookie pair to send and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

/// `POST /ui/login` with JSON: (status, Set-Cookie, body).
async fn login(gw: &Gateway, username: &str, password: &str) -> (u16, Option<String>, Value) {
    let (status, headers, body) = post(
        &gw.url("/ui/login"),
        None,
        &json!({"username": username, "password": password}),
    )
    .await;
    let cookie = headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cookie, body)
}

async fn session(gw: &Gateway, username: &str, password: &str) -> Session {
    let (status, cookie, body) = login(gw, username, password).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("a session cookie");
    Session {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_string(),
    }
}

/// A request authenticated by the session cookie, with or without its CSRF header.
async fn with_cookie(
    method: &str,
    url: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client()
        .request(method, url)
        .insert_header(("cookie", cookie.to_string()));
    if let Some(t) = csrf {
        req = req.insert_header(("x-csrf-token", t.to_string()));
    }
    let mut resp = match body {
        Some(b) => req
            .insert_header(("content-type", "application/json"))
            .send_body(b.to_string())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}")),
        None => req.send().await.unwrap_or_else(|e| panic!("{url}: {e}")),
    };
    let status = resp.status().as_u16();
    if resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, Value::Null);
    }
    let bytes = resp.body().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

async fn get_cookie(url: &str, s: &Session) -> (u16, Value) {
    with_cookie("GET", url, &s.cookie, None, None).await
}

async fn post_cookie(url: &str, s: &Session, body: &Value) -> (u16, Value) {
    with_cookie("POST", url, &s.cookie, Some(&s.csrf), Some(body)).await
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

#[actix_rt::test]
async fn the_ui_is_served_from_the_binary_with_its_security_headers() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None), &[], &[]);
    let resp = no_redirects().get(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(header(resp.headers(), "location"), "/ui/");

    for path in ["/ui", "/ui/"] {
        let (status, headers, html) = get_text(&gw.url(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&headers, "content-security-policy"), CSP);
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
        // No inline script, nothing from another origin.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("pages/login.js", "text/javascript; charset=utf-8"),
        ("pages/keys.js", "text/javascript; charset=utf-8"),
        ("pages/users.js", "text/javascript; charset=utf-8"),
        ("pages/teams.js", "text/javascript; charset=utf-8"),
        ("pages/organizations.js", "text/javascript; charset=utf-8"),
        ("pages/models.js", "text/javascript; charset=utf-8"),
        ("pages/usage.js", "text/javascript; charset=utf-8"),
        ("pages/logs.js", "text/javascript; charset=utf-8"),
        ("pages/account.js", "text/javascript; charset=utf-8"),
        ("members.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let url = gw.url(&format!("/ui/{file}"));
        let (status, headers, text) = get_text(&url).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(header(&headers, "content-type"), content_type, "{file}");
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        assert_eq!(header(&headers, "content-security-policy"), CSP);
        // Values reach the page as text only, and nothing is loaded from elsewhere.
        assert!(!text.contains("innerHTML"), "{file} uses innerHTML");
        assert!(!text.contains("outerHTML") && !text.contains("insertAdjacentHTML"));
        assert!(!text.contains("eval("), "{file}");
        let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !elsewhere.contains("http://") && !elsewhere.contains("https://"),
            "{file}"
        );
        // Revalidation by ETag answers 304 without a body.
        let etag = header(&headers, "etag").to_string();
        let mut resp = client()
            .get(&url)
            .insert_header(("if-none-match", etag.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 304, "{file}");
        assert!(resp.body().await.unwrap().is_empty());
    }
    let (status, headers, _) = get_text(&gw.url("/ui/no-such-file.js")).await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-security-policy"), CSP);
    // The UI routes stay out of the API's route table.
    let (_, _, table) = get(&gw.url("/routes"), Some(MASTER_KEY)).await;
    assert!(!table.to_string().contains("/ui"), "{table}");
}

/// Sign-in, the cookie's flags, the session acting as the admin, CSRF, sign-out.
async fn admin_sessions(gw: &Gateway) {
    let (status, cookie, body) = login(gw, "admin", "not-the-master-key").await;
    assert_eq!(status, 401, "{body}");
    assert!(cookie.is_none());
    assert_eq!(body["error"]["message"], "Invalid username or password");

    let (status, cookie, body) = login(gw, "admin", MASTER_KEY).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("set-cookie");
    assert!(cookie.starts_with("tollgate_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // The master key never goes to the browser.
    assert!(!cookie.contains(MASTER_KEY) && !body.to_string().contains(MASTER_KEY));
    assert_eq!(body["username"], "admin");
    assert_eq!(body["role"], "proxy_admin");
    let s = Session {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    let (status, me) = get_cookie(&gw.url("/ui/session"), &s).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["csrf_token"], s.csrf.as_str());
    assert_eq!(me["role"], "proxy_admin");

    // The session is the admin on the management API and the live tail.
    let (status, body) = get_cookie(&gw.url("/user/list"), &s).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_cookie(&gw.url("/logs/stream"), &s).await;
    assert_eq!(status, 200);
    // CSRF: a cookie-authenticated change without the header, or with another, is refused.
    let (status, body) = with_cookie(
        "POST",
        &gw.url("/key/generate"),
        &s.cookie,
        None,
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-csrf-token"));
    let (status, _) = with_cookie(
        "POST",
        &gw.url("/key/generate"),
        &s.cookie,
        Some("0123456789abcdef"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, created) = post_cookie(&gw.url("/key/generate"), &s, &json!({})).await;
    assert_eq!(status, 200, "{created}");
    // A key is unaffected by CSRF rules; the LLM routes take keys, not sessions.
    let key = created["key"].as_str().unwrap();
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = with_cookie(
        "POST",
        &gw.url("/v1/chat/completions"),
        &s.cookie,
        Some(&s.csrf),
        Some(&chat("mock-gpt")),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // LiteLLM's form sign-in at /login redirects to the UI with the cookie.
    let mut resp = no_redirects()
        .post(gw.url("/login"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(format!("username=admin&password={MASTER_KEY}"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(header(resp.headers(), "location"), "/ui/");
    assert!(header(resp.headers(), "set-cookie").contains("HttpOnly"));
    let _ = resp.body().await;

    // Sign-out needs the CSRF token, then the session is gone.
    let (status, _) = with_cookie("POST", &gw.url("/ui/logout"), &s.cookie, None, None).await;
    assert_eq!(status, 403);
    let (status, body) = post_cookie(&gw.url("/ui/logout"), &s, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_cookie(&gw.url("/ui/session"), &s).await;
    assert_eq!(status, 401);
    let (status, body) = get_cookie(&gw.url("/key/list"), &s).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sign in again"));
}

#[actix_rt::test]
async fn admin_sessions_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None), &[], &[]);
    admin_sessions(&gw).await;
}

#[actix_rt::test]
async fn admin_sessions_on_postgres_and_ui_credentials_from_the_environment() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, Some(&pg)), &[], &[]);
    admin_sessions(&gw).await;
    // A second instance on the same database accepts the first one's session.
    let s = session(&gw, "admin", MASTER_KEY).await;
    let other = Gateway::start(
        &config(&mock, Some(&pg)),
        &[],
        &[
            ("UI_USERNAME", "root"),
            ("UI_PASSWORD", "a-ui-password-123"),
        ],
    );
    let (status, _) = get_cookie(&other.url("/key/list"), &s).await;
    assert_eq!(status, 200);
    // UI_USERNAME / UI_PASSWORD replace admin / the master key there.
    let (status, _, _) = login(&other, "admin", MASTER_KEY).await;
    assert_eq!(status, 401);
    let (status, _, body) = login(&other, "root", "a-ui-password-123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "root");
}

/// Internal users: passwords set by an admin (hashed, never shown), sessions that are that user.
async fn internal_users(gw: &Gateway) {
    let (status, _, body) = post(
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_id": "alice", "password": "short"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "password");
    let created = admin(
        gw,
        "/user/new",
        json!({"user_id": "alice", "password": "alice-password-1", "key_alias": "alice-key"}),
    )
    .await;
    admin(
        gw,
        "/user/new",
        json!({"user_id": "bob", "password": "bob-password-1", "key_alias": "bob-key"}),
    )
    .await;
    let bob_key = {
        let (_, _, info) = get(&gw.url("/user/info?user_id=bob"), Some(MASTER_KEY)).await;
        info["keys"][0]["token"].as_str().unwrap().to_string()
    };
    // The password is nowhere in the API's answers.
    let (_, _, info) = get(&gw.url("/user/info?user_id=alice"), Some(MASTER_KEY)).await;
    let (_, _, users) = get(&gw.url("/user/list"), Some(MASTER_KEY)).await;
    for shown in [created.to_string(), info.to_string(), users.to_string()] {
        assert!(
            !shown.contains("alice-password-1") && !shown.contains("argon2"),
            "{shown}"
        );
        assert!(!shown.contains("\"password"), "{shown}");
    }

    let (status, _, _) = login(gw, "alice", "bob-password-1").await;
    assert_eq!(status, 401);
    // Roles that call only the LLM routes have no UI (with the right password, and only then).
    admin(
        gw,
        "/user/new",
        json!({"user_id": "svc", "user_role": "team", "password": "svc-password-1"}),
    )
    .await;
    let (status, _, _) = login(gw, "svc", "svc-password-2").await;
    assert_eq!(status, 401);
    let (status, cookie, body) = login(gw, "svc", "svc-password-1").await;
    assert_eq!(status, 403, "{body}");
    assert!(cookie.is_none());
    let (status, _, _) = login(gw, "nobody", "alice-password-1").await;
    assert_eq!(status, 401);
    let alice = session(gw, "alice", "alice-password-1").await;
    let (status, me) = get_cookie(&gw.url("/ui/session"), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], "alice");
    assert_eq!(me["role"], "internal_user");

    // Alice's session sees Alice's keys only, and the API's rules for her role apply.
    let (status, list) = get_cookie(
        &gw.url("/key/list?return_full_object=true&size=100"),
        &alice,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let aliases: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_alias"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(aliases, ["alice-key"]);
    let (status, _) = get_cookie(&gw.url("/key/list?user_id=bob"), &alice).await;
    assert_eq!(status, 403);
    let (status, _) = get_cookie(&gw.url(&format!("/key/info?key={bob_key}")), &alice).await;
    assert_eq!(status, 403);
    let (status, _) = get_cookie(&gw.url("/user/list"), &alice).await;
    assert_eq!(status, 403);
    let (status, _) = get_cookie(&gw.url("/spend/logs"), &alice).await;
    assert_eq!(status, 403);
    let (status, _) = get_cookie(&gw.url("/logs/stream"), &alice).await;
    assert_eq!(status, 403);
    let (status, _) =
        post_cookie(&gw.url("/key/delete"), &alice, &json!({"keys": [bob_key]})).await;
    assert_eq!(status, 403);
    let (status, created) = post_cookie(
        &gw.url("/key/generate"),
        &alice,
        &json!({"key_alias": "alice-second"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["user_id"], "alice");
    // Only a proxy admin sets passwords.
    let (status, _) = post_cookie(
        &gw.url("/user/update"),
        &alice,
        &json!({"user_id": "alice", "password": "alice-password-2"}),
    )
    .await;
    assert_eq!(status, 403);

    // A new password ends the user's sessions; a blocked or deleted user cannot sign in.
    admin(
        gw,
        "/user/update",
        json!({"user_id": "alice", "password": "alice-password-2"}),
    )
    .await;
    let (status, _) = get_cookie(&gw.url("/key/list"), &alice).await;
    assert_eq!(status, 401);
    let (status, _, _) = login(gw, "alice", "alice-password-1").await;
    assert_eq!(status, 401);
    let alice = session(gw, "alice", "alice-password-2").await;
    admin(
        gw,
        "/user/update",
        json!({"user_id": "alice", "blocked": true}),
    )
    .await;
    let (status, _) = get_cookie(&gw.url("/key/list"), &alice).await;
    assert_eq!(status, 401);
    let (status, _, _) = login(gw, "alice", "alice-password-2").await;
    assert_eq!(status, 401);
    let bob = session(gw, "bob", "bob-password-1").await;
    admin(gw, "/user/delete", json!({"user_ids": ["bob"]})).await;
    let (status, _) = get_cookie(&gw.url("/key/list"), &bob).await;
    assert_eq!(status, 401);
    let (status, _, _) = login(gw, "bob", "bob-password-1").await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn internal_users_sign_in_with_their_password_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None), &[], &[]);
    internal_users(&gw).await;
}

#[actix_rt::test]
async fn internal_users_sign_in_with_their_password_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, Some(&pg)), &[], &[]);
    internal_users(&gw).await;
}

#[actix_rt::test]
async fn failed_sign_ins_are_rate_limited_per_username_and_address() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None), &[], &[]);
    for _ in 0..10 {
        let (status, _, _) = login(&gw, "admin", "wrong-password").await;
        assert_eq!(status, 401);
    }
    let (status, headers, body) = post(
        &gw.url("/ui/login"),
        None,
        &json!({"username": "admin", "password": MASTER_KEY}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The address is limited too: another username from it waits as well.
    let (status, _, _) = login(&gw, "someone-else", "whatever-password").await;
    assert_eq!(status, 429);
}

/// `GET /key/list?search=`: any part of the alias, the key name or the owner, ignoring case, with
/// `%` and `_` taken literally, paged; an internal user still finds only their own keys.
async fn key_search(gw: &Gateway) {
    for user in ["alice", "bob"] {
        admin(
            gw,
            "/user/new",
            json!({"user_id": user, "auto_create_key": false}),
        )
        .await;
    }
    let bob_key = admin(
        gw,
        "/key/generate",
        json!({"user_id": "bob", "key_alias": "bob-own"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for (alias, user) in [
        ("Alpha-Search-One", Some("alice")),
        ("beta_search_two", Some("bob")),
        ("100%_done", None),
        ("plain", None),
    ] {
        let mut body = json!({"key_alias": alias});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        admin(gw, "/key/generate", body).await;
    }
    for i in 0..12 {
        admin(
            gw,
            "/key/generate",
            json!({"key_alias": format!("bulk-{i:02}")}),
        )
        .await;
    }
    let search = |q: &str, extra: &str| {
        gw.url(&format!(
            "/key/list?return_full_object=true&search={}{extra}",
            urlencoding(q)
        ))
    };
    let aliases = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key_alias"].as_str().unwrap_or("").to_string())
            .collect();
        out.sort();
        out
    };
    let (status, _, r) = get(&search("SEARCH", ""), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(aliases(&r), ["Alpha-Search-One", "beta_search_two"]);
    // The owner's user id, any case.
    let (_, _, r) = get(&search("ALIC", ""), Some(MASTER_KEY)).await;
    assert_eq!(aliases(&r), ["Alpha-Search-One"]);
    // LIKE wildcards are literal characters.
    let (_, _, r) = get(&search("%", ""), Some(MASTER_KEY)).await;
    assert_eq!(aliases(&r), ["100%_done"]);
    let (_, _, r) = get(&search("a_s", ""), Some(MASTER_KEY)).await;
    assert_eq!(aliases(&r), ["beta_search_two"]);
    // The key name (sk-...abcd): its last characters find the key.
    let (_, _, all) = get(
        &gw.url("/key/list?return_full_object=true&size=100"),
        Some(MASTER_KEY),
    )
    .await;
    let plain = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_alias"] == "plain")
        .unwrap();
    let name = plain["key_name"].as_str().unwrap();
    let tail = &name[name.len() - 4..];
    let (_, _, r) = get(&search(&tail.to_uppercase(), ""), Some(MASTER_KEY)).await;
    assert!(aliases(&r).contains(&"plain".to_string()), "{name}: {r}");
    // Paged: 12 matches, 5 a page; the pages hold each match once (keys created in the same
    // instant have no order among themselves, so which page holds which is not asserted).
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (_, _, r) = get(
            &search("Bulk-", &format!("&size=5&page={page}")),
            Some(MASTER_KEY),
        )
        .await;
        assert_eq!(r["total_count"], 12);
        assert_eq!(r["total_pages"], 3);
        assert_eq!(aliases(&r).len(), if page < 3 { 5 } else { 2 }, "{r}");
        seen.extend(aliases(&r));
    }
    seen.sort();
    let all: Vec<String> = (0..12).map(|i| format!("bulk-{i:02}")).collect();
    assert_eq!(seen, all);
    // Nothing matches: an empty page.
    let (_, _, r) = get(&search("no-such-key", ""), Some(MASTER_KEY)).await;
    assert_eq!(r["total_count"], 0);
    // An internal user searches their own keys only.
    let (_, _, r) = get(&search("search", ""), Some(&bob_key)).await;
    assert_eq!(aliases(&r), ["beta_search_two"]);
    let (_, _, r) = get(&search("alice", ""), Some(&bob_key)).await;
    assert_eq!(r["total_count"], 0, "{r}");
    let (status, _, _) = get(&search(&"x".repeat(300), ""), Some(MASTER_KEY)).await;
    assert_eq!(status, 400);
}

/// Percent-encode a query value.
fn urlencoding(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[actix_rt::test]
async fn key_search_matches_parts_of_aliases_names_and_owners_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None), &[], &[]);
    key_search(&gw).await;
}

#[actix_rt::test]
async fn key_search_matches_parts_of_aliases_names_and_owners_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, Some(&pg)), &[], &[]);
    key_search(&gw).await;
}

/// `POST /ui/password`: the current password is checked (and wrong ones are rate-limited like
/// sign-ins), the confirmation must match, the new password signs in and the old one no more,
/// every other session of the user ends; the admin has no password to change.
#[actix_rt::test]
async fn users_change_their_own_password() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, Some(&pg)), &[], &[]);
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "dana", "password": "dana-password-1", "auto_create_key": false}),
    )
    .await;
    let s = session(&gw, "dana", "dana-password-1").await;
    let other = session(&gw, "dana", "dana-password-1").await;
    let url = gw.url("/ui/password");
    let change = |current: &str, new: &str, confirm: &str| json!({"current_password": current, "new_password": new, "confirm_password": confirm});
    // Without the CSRF token: refused before anything is checked.
    let (status, body) = with_cookie(
        "POST",
        &url,
        &s.cookie,
        None,
        Some(&change(
            "dana-password-1",
            "dana-password-2",
            "dana-password-2",
        )),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post_cookie(
        &url,
        &s,
        &change("dana-password-1", "dana-password-2", "dana-password-3"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "confirm_password");
    let (status, body) = post_cookie(&url, &s, &change("dana-password-1", "short", "short")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "new_password");
    let (status, body) = post_cookie(
        &url,
        &s,
        &change("wrong-password", "dana-password-2", "dana-password-2"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "The current password is wrong");
    assert!(!body.to_string().contains("dana-password"), "{body}");
    // The stored hash is unchanged by the refusals.
    assert_eq!(login(&gw, "dana", "dana-password-1").await.0, 200);

    // The change: a new session comes back; the old ones end.
    let (status, headers, body) = {
        let mut resp = client()
            .post(&url)
            .insert_header(("cookie", s.cookie.clone()))
            .insert_header(("x-csrf-token", s.csrf.clone()))
            .insert_header(("content-type", "application/json"))
            .send_body(change("dana-password-1", "dana-password-2", "dana-password-2").to_string())
            .await
            .unwrap();
        let bytes = resp.body().await.unwrap();
        (
            resp.status().as_u16(),
            resp.headers().clone(),
            serde_json::from_slice::<Value>(&bytes).unwrap(),
        )
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "dana");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let set_cookie = header(&headers, "set-cookie").to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let renewed = Session {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    assert_ne!(renewed.cookie, s.cookie);
    assert_eq!(get_cookie(&gw.url("/ui/session"), &renewed).await.0, 200);
    assert_eq!(get_cookie(&gw.url("/ui/session"), &s).await.0, 401);
    assert_eq!(
        get_cookie(&gw.url("/ui/session"), &other).await.0,
        401,
        "other sessions end"
    );
    assert_eq!(login(&gw, "dana", "dana-password-1").await.0, 401);
    assert_eq!(login(&gw, "dana", "dana-password-2").await.0, 200);
    // The same password again is refused.
    let (status, body) = post_cookie(
        &url,
        &renewed,
        &change("dana-password-2", "dana-password-2", "dana-password-2"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // The admin has no password to change.
    let a = session(&gw, "admin", MASTER_KEY).await;
    let (status, body) = post_cookie(
        &url,
        &a,
        &change(MASTER_KEY, "something-else-1", "something-else-1"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("master key"),
        "{body}"
    );
    assert!(!body.to_string().contains(MASTER_KEY));

    // Wrong current passwords count toward the sign-in limit of the user and the address: two
    // failures above, eight here make ten.
    for _ in 0..8 {
        let (status, body) = post_cookie(
            &url,
            &renewed,
            &change("nope-nope-nope", "dana-password-3", "dana-password-3"),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, body) = post_cookie(
        &url,
        &renewed,
        &change("dana-password-2", "dana-password-3", "dana-password-3"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        login(&gw, "dana", "dana-password-2").await.0,
        429,
        "sign-in waits too"
    );
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

use fantoccini::{Client, ClientBuilder, Locator};

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start chromedriver, or say why not (then the test is skipped, except under CI).
fn start_driver() -> Option<Driver> {
    let found = |p: &str| std::path::Path::new(p).exists();
    let missing: Vec<&str> = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .into_iter()
        .filter(|p| !found(p))
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "{missing:?} not found: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--force-device-scale-factor=1"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// The element `locator` finds, once it is on the page (lists redraw after a change); the test
/// fails, naming `what`, when it does not come within 10 s.
async fn wait_for_element(
    c: &Client,
    locator: Locator<'_>,
    what: &str,
) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The element labelled `label` (its `<label for>`).
async fn labelled(c: &Client, label: &str) -> fantoccini::elements::Element {
    let xpath = format!("//label[normalize-space()='{label}']");
    let l = wait_for_element(c, Locator::XPath(&xpath), &format!("label {label}")).await;
    let id = l.attr("for").await.unwrap().expect("label for");
    c.find(Locator::Id(&id)).await.expect("labelled input")
}

async fn fill(c: &Client, label: &str, value: &str) {
    let input = labelled(c, label).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn button(c: &Client, name: &str) -> fantoccini::elements::Element {
    let xpath = format!("//button[normalize-space()='{name}']");
    wait_for_element(c, Locator::XPath(&xpath), &format!("button {name}")).await
}

/// The button whose `aria-label` is `label`, once it is on the page (lists redraw after a change).
async fn aria_button(c: &Client, label: &str) -> fantoccini::elements::Element {
    let css = format!("button[aria-label='{label}']");
    wait_for_element(c, Locator::Css(&css), &format!("button {label}")).await
}

async fn click(c: &Client, name: &str) {
    button(c, name).await.click().await.unwrap();
}

/// Wait until the page's text contains `text`.
async fn see(c: &Client, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body = c.find(Locator::Css("body")).await.unwrap();
        if body.text().await.unwrap_or_default().contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never showed {text:?}; it shows: {}",
            body.text().await.unwrap_or_default()
        );
        actix_rt::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn page_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, username: &str, password: &str) {
    fill(c, "Username", username).await;
    fill(c, "Password", password).await;
    click(c, "Sign in").await;
}

const XSS_ALIAS: &str = "<img src=x onerror=alert(1)>";

#[actix_rt::test]
async fn the_pages_work_in_a_real_browser() {
    let Some(driver) = start_driver() else {
        return;
    };
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, Some(&pg)), &[], &[]);
    // Two internal users with a key each, to check who sees what.
    for user in ["alice", "bob"] {
        admin(
            &gw,
            "/user/new",
            json!({"user_id": user, "password": format!("{user}-password-1"), "key_alias": format!("{user}-key")}),
        )
        .await;
    }
    let c = browser(&driver).await;
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(browse(
        &c,
        &gw,
        &mock.api_base(),
    )))
    .await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn browse(c: &Client, gw: &Gateway, mock_base: &str) {
    // `/` leads to the sign-in form.
    c.goto(&gw.url("/")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/");
    button(c, "Sign in").await;
    screenshot(c, "sign-in").await;

    // A wrong password shows an error and sets no cookie.
    sign_in(c, "admin", "not-the-master-key").await;
    see(c, "Wrong username or password").await;
    let alert = c.find(Locator::Css("[role=alert]")).await.unwrap();
    assert!(alert.text().await.unwrap().contains("Wrong username"));
    assert!(c.get_named_cookie("tollgate_session").await.is_err());
    screenshot(c, "sign-in-error").await;

    // The admin signs in: the cookie is HttpOnly and SameSite=Strict.
    sign_in(c, "admin", MASTER_KEY).await;
    see(c, "Every virtual key of the gateway").await;
    let cookie = c.get_named_cookie("tollgate_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.path(), Some("/"));
    // The navigation names only pages that exist.
    let nav: Vec<String> = {
        let mut out = Vec::new();
        for a in c.find_all(Locator::Css("nav a")).await.unwrap() {
            out.push(a.text().await.unwrap());
        }
        out
    };
    assert_eq!(
        nav,
        [
            "Keys",
            "Users",
            "Teams",
            "Organizations",
            "Models",
            "Usage",
            "Logs"
        ]
    );
    // The master key is nowhere in the page, its storage or its URL.
    let source = c.source().await.unwrap();
    let storage = c
        .execute(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie",
            vec![],
        )
        .await
        .unwrap();
    for seen in [
        source,
        storage.to_string(),
        c.current_url().await.unwrap().to_string(),
    ] {
        assert!(!seen.contains(MASTER_KEY), "{seen}");
    }
    // document.cookie cannot read the HttpOnly session.
    assert!(!storage.to_string().contains("tollgate_session"));

    // Create a key whose alias is markup: it shows as text, and no script runs.
    click(c, "Create key").await;
    fill(c, "Key alias", XSS_ALIAS).await;
    fill(c, "Models", "mock-gpt").await;
    fill(c, "Max budget", "5").await;
    fill(c, "RPM limit", "60").await;
    fill(c, "TPM limit", "100000").await;
    fill(c, "Duration", "30d").await;
    screenshot(c, "keys-create").await;
    click(c, "Create").await;
    let secret = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("code.secret"))
        .await
        .expect("the new key is shown");
    let key = secret.text().await.unwrap();
    assert!(key.starts_with("sk-"), "{key}");
    button(c, "Copy").await;
    see(c, "shown only once").await;
    see(c, XSS_ALIAS).await;
    let cell = c
        .find(Locator::XPath(&format!(
            "//td[normalize-space()='{XSS_ALIAS}']"
        )))
        .await
        .expect("the alias as text in the list");
    assert_eq!(cell.text().await.unwrap(), XSS_ALIAS);
    assert!(c
        .find_all(Locator::Css("main img"))
        .await
        .unwrap()
        .is_empty());
    assert!(c.get_alert_text().await.is_err(), "an alert opened");
    let row = page_text(c).await;
    assert!(
        row.contains("mock-gpt") && row.contains("$0 / $5.00"),
        "{row}"
    );
    assert!(row.contains("60 rpm, 100,000 tpm"), "{row}");
    screenshot(c, "keys").await;

    // The key works on the API, and its request shows in Logs and Usage.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(10), || async {
        let (_, _, logs) = get(&gw.url("/spend/logs"), Some(MASTER_KEY)).await;
        logs.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    c.goto(&gw.url("/ui/#/logs")).await.unwrap();
    see(c, "1 request").await;
    let logs = page_text(c).await;
    assert!(
        logs.contains(XSS_ALIAS) && logs.contains("mock-gpt") && logs.contains("success"),
        "{logs}"
    );
    screenshot(c, "logs").await;
    click(c, "Details").await;
    see(c, "Request detail").await;
    see(c, "Key alias").await;
    screenshot(c, "logs-detail").await;

    // The live tail: a request made now appears as it finishes.
    click(c, "Start live tail").await;
    see(c, "Connected").await;
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".feed li"))
        .await
        .expect("the live tail shows the request");
    screenshot(c, "logs-live").await;
    click(c, "Stop live tail").await;

    c.goto(&gw.url("/ui/#/usage")).await.unwrap();
    see(c, "Spend by model").await;
    let bars = c
        .find_all(Locator::Css("figure.chart svg rect.bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 30, "a bar per day of the default range");
    let tall = {
        let mut n = 0;
        for b in &bars {
            let h: f64 = b.attr("height").await.unwrap().unwrap().parse().unwrap();
            if h > 0.0 {
                n += 1;
            }
        }
        n
    };
    assert_eq!(tall, 1, "today's spend is drawn");
    let usage = page_text(c).await;
    assert!(
        usage.contains("Spend by key") && usage.contains(XSS_ALIAS),
        "{usage}"
    );
    screenshot(c, "usage").await;
    c.execute("document.querySelector('.tables').scrollIntoView()", vec![])
        .await
        .unwrap();
    screenshot(c, "usage-tables").await;

    // Block, then delete with confirmation.
    c.goto(&gw.url("/ui/#/keys")).await.unwrap();
    let block = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            "button[aria-label='Block key {XSS_ALIAS}']"
        )))
        .await
        .unwrap();
    block.click().await.unwrap();
    see(c, "Block: done").await;
    see(c, "Blocked").await;
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 401, "a blocked key is refused");
    c.find(Locator::Css(&format!(
        "button[aria-label='Delete key {XSS_ALIAS}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    see(c, "Delete key?").await;
    screenshot(c, "keys-delete-confirm").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "Delete: done").await;
    wait_for(Duration::from_secs(10), || async {
        !page_text(c).await.contains(XSS_ALIAS)
    })
    .await;

    // Users: create one with a UI password, edit its budget, block it, delete it.
    c.goto(&gw.url("/ui/#/users")).await.unwrap();
    see(c, "alice").await;
    click(c, "Create user").await;
    fill(c, "User ID", "carol").await;
    fill(c, "Email", "carol@example.com").await;
    fill(c, "Password", "carol-password-1").await;
    click(c, "Create").await;
    see(c, "User carol created").await;
    see(c, "carol@example.com").await;
    let (status, _, body) = login(gw, "carol", "carol-password-1").await;
    assert_eq!(
        status, 200,
        "the password set in the UI signs carol in: {body}"
    );
    assert_eq!(body["role"], "internal_user");
    aria_button(c, "Edit user carol")
        .await
        .click()
        .await
        .unwrap();
    fill(c, "Max budget", "10").await;
    screenshot(c, "users-edit").await;
    click(c, "Save").await;
    see(c, "User carol saved").await;
    see(c, "$0 / $10.00").await;
    let (_, _, info) = get(&gw.url("/user/info?user_id=carol"), Some(MASTER_KEY)).await;
    assert_eq!(info["user_info"]["max_budget"], 10.0);
    aria_button(c, "Block user carol")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Block: done").await;
    let (status, _, _) = login(gw, "carol", "carol-password-1").await;
    assert_eq!(status, 401, "a blocked user cannot sign in");
    screenshot(c, "users").await;
    aria_button(c, "Delete user carol")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Delete user?").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "Delete: done").await;
    wait_for(Duration::from_secs(10), || async {
        !page_text(c).await.contains("carol@example.com")
    })
    .await;
    let (status, _, _) = get(&gw.url("/user/info?user_id=carol"), Some(MASTER_KEY)).await;
    assert_eq!(status, 404);

    // Teams: create one, add a member, see its keys and spend, remove the member, delete it.
    c.goto(&gw.url("/ui/#/teams")).await.unwrap();
    see(c, "No teams yet").await;
    click(c, "Create team").await;
    fill(c, "Team name", "research").await;
    fill(c, "Team models", "mock-gpt").await;
    fill(c, "Team budget", "50").await;
    click(c, "Create").await;
    see(c, "Team research created").await;
    let (_, _, teams) = get(&gw.url("/team/list"), Some(MASTER_KEY)).await;
    let team_id = teams[0]["team_id"].as_str().unwrap().to_string();
    assert_eq!(teams[0]["max_budget"], 50.0);
    // A key of the team, made through the API, with a request on it.
    let team_key = admin(
        gw,
        "/key/generate",
        json!({"team_id": team_id, "key_alias": "research-key"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(&team_key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(10), || async {
        let (_, _, t) = get(
            &gw.url(&format!("/team/info?team_id={team_id}")),
            Some(MASTER_KEY),
        )
        .await;
        t["team_info"]["spend"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    aria_button(c, "Open team research")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Team research").await;
    see(c, "research-key").await;
    fill(c, "Member user ID", "alice").await;
    click(c, "Add member").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "button[aria-label='Remove alice from the team']",
        ))
        .await
        .expect("alice is a member");
    let (_, _, t) = get(
        &gw.url(&format!("/team/info?team_id={team_id}")),
        Some(MASTER_KEY),
    )
    .await;
    assert!(
        t["team_info"]["members_with_roles"]
            .to_string()
            .contains("alice"),
        "{t}"
    );
    let spend = c
        .find(Locator::Css(".detail .stat .value"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        spend.starts_with('$') && spend != "$0",
        "the team's spend: {spend}"
    );
    screenshot(c, "teams").await;
    c.find(Locator::Css(
        "button[aria-label='Remove alice from the team']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    see(c, "Remove member?").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "No members yet").await;
    aria_button(c, "Delete team research")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Delete team?").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "No teams yet").await;
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(&team_key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 401, "the team's keys went with it");

    // Organizations: create one, add a member, delete it.
    c.goto(&gw.url("/ui/#/organizations")).await.unwrap();
    see(c, "No organizations yet").await;
    click(c, "Create organization").await;
    fill(c, "Organization name", "acme").await;
    fill(c, "Organization budget", "100").await;
    click(c, "Create").await;
    see(c, "Organization acme created").await;
    aria_button(c, "Open organization acme")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Organization id").await;
    fill(c, "Member user ID", "bob").await;
    click(c, "Add member").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "button[aria-label='Remove bob from the organization']",
        ))
        .await
        .expect("bob is a member");
    let (_, _, orgs) = get(&gw.url("/organization/list"), Some(MASTER_KEY)).await;
    assert_eq!(orgs[0]["organization_alias"], "acme");
    assert_eq!(orgs[0]["max_budget"], 100.0);
    assert!(orgs[0]["members"].to_string().contains("bob"), "{orgs}");
    screenshot(c, "organizations").await;
    c.find(Locator::Css(
        "button[aria-label='Delete organization acme']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    see(c, "Delete organization?").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "No organizations yet").await;

    // Models: the config's deployment; add one (its key sealed, never shown), check health,
    // call it, delete it.
    c.goto(&gw.url("/ui/#/models")).await.unwrap();
    see(c, "openai/mock-gpt").await;
    see(c, "in the config file").await;
    click(c, "Add model").await;
    fill(c, "Model name", "ui-added").await;
    fill(c, "Provider model", "openai/mock-gpt").await;
    fill(c, "API base", mock_base).await;
    fill(c, "API key", "sk-ui-added-upstream-secret").await;
    fill(c, "RPM", "100").await;
    click(c, "Add").await;
    see(c, "Model ui-added added").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//td[normalize-space()='database']"))
        .await
        .expect("the added model, from the database");
    wait_for(Duration::from_secs(10), || async {
        let (status, _, _) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("ui-added"),
        )
        .await;
        status == 200
    })
    .await;
    click(c, "Check health").await;
    see(c, "2 healthy, 0 unhealthy").await;
    let text = page_text(c).await;
    assert!(!c
        .source()
        .await
        .unwrap()
        .contains("sk-ui-added-upstream-secret"));
    assert!(!text.contains("sk-mock-upstream-secret-42"), "{text}");
    screenshot(c, "models").await;
    aria_button(c, "Delete model ui-added")
        .await
        .click()
        .await
        .unwrap();
    see(c, "Delete model?").await;
    c.find(Locator::Css("dialog button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "Delete: done").await;
    wait_for(Duration::from_secs(10), || async {
        !page_text(c).await.contains("ui-added")
    })
    .await;

    // On a phone-sized window the Keys page stacks.
    c.goto(&gw.url("/ui/#/keys")).await.unwrap();
    c.set_window_size(390, 844).await.unwrap();
    see(c, "alice-key").await;
    screenshot(c, "keys-phone").await;
    c.set_window_size(1280, 800).await.unwrap();

    // Sign out; an internal user sees only their own keys, and no admin pages.
    click(c, "Sign out").await;
    see(c, "You are signed out").await;
    sign_in(c, "alice", "alice-password-1").await;
    see(c, "Your virtual keys").await;
    see(c, "alice-key").await;
    let text = page_text(c).await;
    assert!(!text.contains("bob-key"), "{text}");
    let mut nav = Vec::new();
    for a in c.find_all(Locator::Css("nav a")).await.unwrap() {
        nav.push(a.text().await.unwrap());
    }
    assert_eq!(nav, ["Keys", "Teams", "Models"]);
    assert!(c
        .find_all(Locator::XPath(
            "//button[starts-with(normalize-space(), 'Block')]"
        ))
        .await
        .unwrap()
        .is_empty());
    screenshot(c, "keys-internal-user").await;
    // The admin pages refuse her even by URL: the page falls back to Keys.
    c.goto(&gw.url("/ui/#/logs")).await.unwrap();
    see(c, "Your virtual keys").await;
}

/// [`config`] with a deployment that always answers 401 (so it cools down at its first failure)
/// and a long cooldown.
fn config_with_broken(mock: &Mock, pg: &FreshPostgres) -> String {
    format!(
        r#"model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-mock-upstream-secret-42, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: broken
    litellm_params: {{model: openai/mock-fail-401, api_base: {base}, api_key: sk-broken-upstream-secret-7}}
router_settings:
  cooldown_time: 300
general_settings:
  master_key: {MASTER_KEY}
  database_url: {db}
"#,
        base = mock.api_base(),
        db = pg.url
    )
}

#[actix_rt::test]
async fn key_edits_search_cooldowns_member_roles_and_passwords_in_a_real_browser() {
    let Some(driver) = start_driver() else {
        return;
    };
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config_with_broken(&mock, &pg), &[], &[]);
    for user in ["alice", "bob"] {
        admin(
            &gw,
            "/user/new",
            json!({"user_id": user, "password": format!("{user}-password-1"), "key_alias": format!("{user}-key")}),
        )
        .await;
    }
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "research", "team_alias": "research", "members_with_roles": [{"user_id": "alice", "role": "user"}]}),
    )
    .await;
    let org = admin(
        &gw,
        "/organization/new",
        json!({"organization_alias": "acme"}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    admin(
        &gw,
        "/organization/member_add",
        json!({"organization_id": org_id, "member": {"user_id": "bob", "role": "internal_user"}}),
    )
    .await;
    admin(
        &gw,
        "/key/generate",
        json!({"key_alias": "Alpha-Search-One", "user_id": "alice"}),
    )
    .await;
    for i in 0..27 {
        admin(
            &gw,
            "/key/generate",
            json!({"key_alias": format!("bulk-{i:02}")}),
        )
        .await;
    }
    // The broken deployment fails once and cools down.
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("broken"),
    )
    .await;
    assert_eq!(status, 401);
    let c = browser(&driver).await;
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        browse_the_new_parts(&c, &gw, &org_id),
    ))
    .await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The rows of the first table on the page.
async fn table_rows(c: &Client) -> usize {
    c.find_all(Locator::Css("main .list tbody tr"))
        .await
        .unwrap()
        .len()
}

async fn click_css(c: &Client, css: &str) {
    wait_for_element(c, Locator::Css(css), css)
        .await
        .click()
        .await
        .unwrap();
}

async fn search_keys(c: &Client, text: &str) {
    fill(c, "Search keys", text).await;
    click(c, "Search").await;
}

async fn key_by_alias(gw: &Gateway, alias: &str) -> Value {
    let (_, _, r) = get(
        &gw.url(&format!(
            "/key/list?return_full_object=true&search={}",
            urlencoding(alias)
        )),
        Some(MASTER_KEY),
    )
    .await;
    r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_alias"] == alias)
        .unwrap_or_else(|| panic!("no key {alias}: {r}"))
        .clone()
}

async fn browse_the_new_parts(c: &Client, gw: &Gateway, org_id: &str) {
    c.goto(&gw.url("/ui/")).await.unwrap();
    sign_in(c, "admin", MASTER_KEY).await;
    see(c, "Every virtual key of the gateway").await;

    // Search: any part, any case, paged by the server.
    search_keys(c, "BULK").await;
    see(c, "27 keys").await;
    see(c, "Page 1 of 2").await;
    assert_eq!(table_rows(c).await, 25);
    click(c, "Next").await;
    see(c, "Page 2 of 2").await;
    assert_eq!(table_rows(c).await, 2);
    screenshot(c, "keys-search").await;
    search_keys(c, "alpha").await;
    see(c, "1 key").await;
    let text = page_text(c).await;
    assert!(
        text.contains("Alpha-Search-One") && !text.contains("bulk-"),
        "{text}"
    );
    // By owner: alice's two keys.
    search_keys(c, "ALICE").await;
    see(c, "2 keys").await;
    see(c, "alice-key").await;
    search_keys(c, "no-such-thing").await;
    see(c, "Clear the search to see every key").await;
    search_keys(c, "alpha").await;
    see(c, "1 key").await;

    // Edit a key: every field through /key/update.
    click_css(c, "button[aria-label='Edit key Alpha-Search-One']").await;
    see(c, "Edit key Alpha-Search-One").await;
    fill(c, "Key alias", "alpha-renamed").await;
    fill(c, "Models", "mock-gpt").await;
    fill(c, "Max budget", "7").await;
    fill(c, "RPM limit", "30").await;
    fill(c, "TPM limit", "5000").await;
    fill(c, "Team", "research").await;
    fill(c, "Duration", "7d").await;
    fill(c, "Metadata", r#"{"project": "search"}"#).await;
    screenshot(c, "keys-edit").await;
    click(c, "Save").await;
    see(c, "Key alpha-renamed saved").await;
    let k = key_by_alias(gw, "alpha-renamed").await;
    assert_eq!(k["models"], json!(["mock-gpt"]), "{k}");
    assert_eq!(k["max_budget"], 7.0);
    assert_eq!(k["rpm_limit"], 30);
    assert_eq!(k["tpm_limit"], 5000);
    assert_eq!(k["team_id"], "research");
    assert_eq!(k["user_id"], "alice", "untouched fields stay");
    assert_eq!(k["metadata"]["project"], "search");
    let expires = k["expires"].as_str().expect("an expiry");
    let in_7d = chrono_days_from_now(7);
    assert_eq!(&expires[..10], in_7d, "{expires}");
    // The list shows the new values (the search still on, now by the new alias it misses).
    search_keys(c, "alpha-RENAMED").await;
    see(c, "$0 / $7.00").await;
    see(c, "30 rpm, 5,000 tpm").await;
    // Clearing a limit sends null.
    click_css(c, "button[aria-label='Edit key alpha-renamed']").await;
    fill(c, "RPM limit", "").await;
    click(c, "Save").await;
    see(c, "Key alpha-renamed saved").await;
    assert_eq!(
        key_by_alias(gw, "alpha-renamed").await["rpm_limit"],
        Value::Null
    );

    // Models: the broken deployment is cooling down, the other receives traffic.
    c.goto(&gw.url("/ui/#/models")).await.unwrap();
    see(c, "Cooling down until").await;
    see(c, "Receiving traffic").await;
    let (status, _, state) = get(&gw.url("/model/state"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{state}");
    let by_name = |name: &str| {
        state["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["model_name"] == name)
            .unwrap()
            .clone()
    };
    let broken = by_name("broken");
    assert_eq!(broken["cooling_down"], true, "{state}");
    assert_eq!(broken["state"], "cooling_down");
    let remaining = broken["cooldown_remaining_seconds"].as_u64().unwrap();
    assert!((200..=300).contains(&remaining), "{broken}");
    let until = &broken["cooldown_until"].as_str().unwrap()[11..19];
    see(c, &format!("Cooling down until {until} UTC")).await;
    assert_eq!(by_name("mock-gpt")["cooling_down"], false);
    assert_eq!(by_name("mock-gpt")["state"], "healthy");
    assert!(!state.to_string().contains("secret"), "{state}");
    let row = c
        .find(Locator::XPath(
            "//tr[td[normalize-space()='broken']]//td[@data-label='Cooldown']",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.starts_with("Cooling down until"), "{row}");
    screenshot(c, "models-cooldown").await;

    // Teams: a member's role changes in place.
    c.goto(&gw.url("/ui/#/teams")).await.unwrap();
    click_css(c, "button[aria-label='Open team research']").await;
    let select = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "select[aria-label='Role of alice in the team']",
        ))
        .await
        .unwrap();
    assert_eq!(select.prop("value").await.unwrap().as_deref(), Some("user"));
    select.select_by_value("admin").await.unwrap();
    see(c, "alice is now admin in the team").await;
    let (_, _, t) = get(&gw.url("/team/info?team_id=research"), Some(MASTER_KEY)).await;
    let member = t["team_info"]["members_with_roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(member["role"], "admin", "{t}");
    let select = c
        .find(Locator::Css(
            "select[aria-label='Role of alice in the team']",
        ))
        .await
        .unwrap();
    assert_eq!(
        select.prop("value").await.unwrap().as_deref(),
        Some("admin")
    );
    screenshot(c, "teams-member-role").await;

    // Organizations: the same shared member list, with the organization's roles.
    c.goto(&gw.url("/ui/#/organizations")).await.unwrap();
    click_css(c, "button[aria-label='Open organization acme']").await;
    let select = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "select[aria-label='Role of bob in the organization']",
        ))
        .await
        .unwrap();
    select.select_by_value("org_admin").await.unwrap();
    see(c, "bob is now org admin in the organization").await;
    let (_, _, o) = get(
        &gw.url(&format!("/organization/info?organization_id={org_id}")),
        Some(MASTER_KEY),
    )
    .await;
    assert!(
        o["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == "bob" && m["user_role"] == "org_admin"),
        "{o}"
    );
    screenshot(c, "organizations-member-role").await;

    // The admin's account: no password to change.
    c.find(Locator::LinkText("Account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "There is no password to change here").await;
    assert!(c
        .find_all(Locator::Css("input[type=password]"))
        .await
        .unwrap()
        .is_empty());
    screenshot(c, "account-admin").await;

    // An internal user: edits the alias of her own key (the limits are a proxy admin's), then
    // changes her password.
    click(c, "Sign out").await;
    see(c, "You are signed out").await;
    sign_in(c, "alice", "alice-password-1").await;
    see(c, "Account").await;
    c.goto(&gw.url("/ui/#/keys")).await.unwrap();
    see(c, "Your virtual keys").await;
    click_css(c, "button[aria-label='Edit key alice-key']").await;
    assert!(!labelled(c, "Max budget").await.is_enabled().await.unwrap());
    assert!(!labelled(c, "Models").await.is_enabled().await.unwrap());
    see(c, "Only a proxy admin changes this").await;
    fill(c, "Key alias", "alice-renamed").await;
    screenshot(c, "keys-edit-internal-user").await;
    click(c, "Save").await;
    see(c, "Key alice-renamed saved").await;
    key_by_alias(gw, "alice-renamed").await;

    c.find(Locator::LinkText("Account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "Change password").await;
    fill(c, "Current password", "not-her-password").await;
    fill(c, "New password", "alice-password-2").await;
    fill(c, "Confirm new password", "alice-password-2").await;
    click(c, "Change password").await;
    see(c, "The current password is wrong").await;
    fill(c, "Current password", "alice-password-1").await;
    fill(c, "Confirm new password", "alice-password-3").await;
    click(c, "Change password").await;
    see(c, "differ").await;
    fill(c, "Confirm new password", "alice-password-2").await;
    click(c, "Change password").await;
    see(c, "Your password was changed").await;
    screenshot(c, "account").await;
    assert_eq!(login(gw, "alice", "alice-password-1").await.0, 401);
    assert_eq!(login(gw, "alice", "alice-password-2").await.0, 200);
    // The page goes on with its new session: a change (CSRF token renewed) works.
    c.goto(&gw.url("/ui/#/keys")).await.unwrap();
    see(c, "alice-renamed").await;
    click_css(c, "button[aria-label='Edit key alice-renamed']").await;
    fill(c, "Key alias", "alice-again").await;
    click(c, "Save").await;
    see(c, "Key alice-again saved").await;

    // Phone width.
    c.set_window_size(390, 844).await.unwrap();
    c.find(Locator::LinkText("Account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    see(c, "Change password").await;
    screenshot(c, "account-phone").await;
    c.set_window_size(1280, 800).await.unwrap();
}

/// Today plus `days` (UTC) as YYYY-MM-DD.
fn chrono_days_from_now(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}
