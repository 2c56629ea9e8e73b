//! The admin UI at `/ui`: static files embedded in the binary (`ui/` at the repository root:
//! HTML, CSS and ES modules, no build step), sign-in, sign-out and the session the page reads.
//! The page itself calls the JSON management API with the session cookie (see
//! [`crate::ui_session`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | redirects to `/ui/` |
//! | `GET /ui`, `GET /ui/` | the page |
//! | `GET /ui/{file}` | its scripts and styles (ETag, `no-cache`: revalidated, answered 304) |
//! | `POST /ui/login`, `POST /login` | sign in (`Username`, `Password`; JSON or a form) |
//! | `GET /ui/session` | who is signed in and the session's CSRF token |
//! | `POST /ui/logout` | sign out |
//! | `POST /ui/password` | a signed-in internal user changes their password (`current_password`, `new_password`, `confirm_password`) |
//!
//! These routes are not in the API's route table (`GET /routes`): they take no key.
//! Every answer carries the UI's Content-Security-Policy (no inline script, nothing from another
//! origin), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `X-Frame-Options: DENY`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use serde_json::{json, Value};

use crate::error::GatewayError;
use crate::state::AppState;
use crate::ui_session::{self, Who, COOKIE, SESSION_TTL};

/// The Content-Security-Policy of every UI answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file: its path under `/ui/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("pages/login.js", JS),
    asset!("pages/keys.js", JS),
    asset!("pages/users.js", JS),
    asset!("pages/teams.js", JS),
    asset!("pages/organizations.js", JS),
    asset!("pages/models.js", JS),
    asset!("pages/usage.js", JS),
    asset!("pages/logs.js", JS),
    asset!("pages/account.js", JS),
    asset!("members.js", JS),
];

/// Each asset's ETag (a SHA-256 prefix of its bytes), computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use sha2::Digest;
                format!("\"{}\"", &hex::encode(sha2::Sha256::digest(a.body))[..20])
            })
            .collect()
    });
    ASSETS
        .iter()
        .position(|a| a.path == asset.path)
        .map_or("\"\"", |i| tags[i].as_str())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(root)))
        .service(web::resource("/login").route(web::post().to(login)))
        .service(web::resource("/ui/login").route(web::post().to(login)))
        .service(web::resource("/ui/logout").route(web::post().to(logout)))
        .service(web::resource("/ui/session").route(web::get().to(session)))
        .service(web::resource("/ui/password").route(web::post().to(change_password)))
        .service(web::resource("/ui").route(web::get().to(index)))
        .service(web::resource("/ui/{path:.*}").route(web::get().to(file)));
}

/// The security headers of every UI answer.
fn secured(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("x-frame-options", "DENY"));
    builder
}

fn error(e: &GatewayError) -> HttpResponse {
    let mut resp = e.error_response();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        resp.headers_mut().insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    resp
}

async fn root() -> HttpResponse {
    secured(HttpResponse::Found())
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn file(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    serve(&req, if path.is_empty() { "index.html" } else { &path })
}

fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return error(&GatewayError::RouteNotFound {
            path: req.path().to_string(),
        });
    };
    let tag = etag(asset);
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut builder = secured(if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    });
    builder
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if cached {
        return builder.finish();
    }
    builder.content_type(asset.content_type).body(asset.body)
}

/// Whether the request came over TLS (directly, or through a proxy that says so).
fn over_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The `Set-Cookie` value of a session (`max_age` seconds; 0 clears it).
fn cookie(req: &HttpRequest, value: &str, max_age: u64) -> String {
    let secure = if over_tls(req) { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Read `Username` / `Password` (any case: `username`, `password`) from a JSON or form body.
fn credentials(req: &HttpRequest, body: &[u8]) -> Result<(String, String), GatewayError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let fields: Vec<(String, String)> = if form {
        form_urlencoded::parse(body).into_owned().collect()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
            _ => {
                return Err(GatewayError::bad_request(
                    "send Username and Password as JSON or as a form",
                ))
            }
        }
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok((u.trim().to_string(), p)),
        _ => Err(GatewayError::bad_param(
            "username",
            "Username and Password are required",
        )),
    }
}

/// Largest sign-in body read.
const MAX_LOGIN_BODY: usize = 16 * 1024;

/// `POST /ui/login` (and `/login`): sign in, set the session cookie. A JSON request is answered
/// with the session (as `GET /ui/session`); a form post is redirected to `/ui/`.
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let body = super::read_body(&req, payload, MAX_LOGIN_BODY).await?;
        let (username, password) = credentials(&req, &body)?;
        let client = req.peer_addr().map(|a| a.ip());
        state.sessions.sign_in(&username, &password, client).await
    }
    .await;
    let session = match result {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let set_cookie = cookie(&req, session.token.expose(), SESSION_TTL.as_secs());
    let json_request = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let mut builder = secured(if json_request {
        HttpResponse::Ok()
    } else {
        HttpResponse::SeeOther()
    });
    builder
        .insert_header((header::SET_COOKIE, set_cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if !json_request {
        return builder.insert_header((header::LOCATION, "/ui/")).finish();
    }
    builder.json(session_json(
        &state,
        &session.who,
        session.role,
        &session.csrf,
        session.expires_at,
    ))
}

fn session_json(
    state: &AppState,
    who: &Who,
    role: crate::auth::Role,
    csrf: &str,
    expires_at: i64,
) -> Value {
    let (username, user_id) = match who {
        Who::Admin => (state.sessions.admin_username().to_string(), None),
        Who::User(id) => (id.clone(), Some(id.clone())),
    };
    json!({
        "username": username,
        "user_id": user_id,
        "role": role.as_str(),
        "csrf_token": csrf,
        "expires_at": crate::time::iso8601(expires_at),
    })
}

/// `GET /ui/session`: who is signed in (username, user id, role) and the CSRF token
/// state-changing requests must send; 401 without a valid session.
async fn session(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let result = async {
        let signed_out = || GatewayError::Authentication {
            message: "not signed in".into(),
        };
        let token = ui_session::cookie_token(&req).ok_or_else(signed_out)?;
        let record = state
            .sessions
            .session(&token)
            .await?
            .ok_or_else(signed_out)?;
        let who = match record.user_id {
            Some(id) if !record.admin => Who::User(id),
            _ => Who::Admin,
        };
        // The role as the API sees it: the caller the cookie stands for.
        let caller = state.sessions.authenticate(&req, &token).await?;
        Ok::<_, GatewayError>(session_json(
            &state,
            &who,
            caller.role(),
            &ui_session::csrf_token(&token),
            record.expires_at,
        ))
    }
    .await;
    match result {
        Ok(v) => secured(HttpResponse::Ok())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(v),
        Err(e) => error(&e),
    }
}

/// `POST /ui/logout`: delete the session and clear the cookie. Needs the CSRF token, like every
/// state-changing request the cookie authenticates.
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(token) = ui_session::cookie_token(&req) {
        if let Err(e) = state.sessions.authenticate(&req, &token).await {
            // An expired session is signed out already; a missing CSRF token is refused.
            if matches!(e, GatewayError::Forbidden { .. }) {
                return error(&e);
            }
        }
        if let Err(e) = state.sessions.sign_out(&token).await {
            return error(&e);
        }
    }
    secured(HttpResponse::Ok())
        .insert_header((header::SET_COOKIE, cookie(&req, "", 0)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"signed_out": true}))
}

/// `POST /ui/password`: the signed-in internal user changes their own password. JSON
/// `{"current_password", "new_password", "confirm_password"}` (the confirmation optional; when
/// sent it must equal the new password). Needs the session cookie and its CSRF token; wrong
/// current passwords count toward the sign-in rate limit (429 past it). Every session of the user
/// ends; the answer sets a new session cookie and carries the new session (as `GET /ui/session`).
/// The admin has no password to change (400).
async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let token = ui_session::cookie_token(&req).ok_or_else(|| GatewayError::Authentication {
            message: "not signed in".into(),
        })?;
        let body = super::read_body(&req, payload, MAX_LOGIN_BODY).await?;
        let fields = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(GatewayError::bad_request(
                    "send current_password and new_password as JSON",
                ))
            }
        };
        let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or("");
        let (current, new) = (text("current_password"), text("new_password"));
        if current.is_empty() || new.is_empty() {
            // The session (and its CSRF token) is checked first, so that a bad request says
            // nothing to a caller without one.
            state.sessions.authenticate(&req, &token).await?;
            return Err(GatewayError::bad_param(
                "new_password",
                "current_password and new_password are required",
            ));
        }
        if fields.get("confirm_password").is_some() && text("confirm_password") != new {
            state.sessions.authenticate(&req, &token).await?;
            return Err(GatewayError::bad_param(
                "confirm_password",
                "the confirmation does not match the new password",
            ));
        }
        let client = req.peer_addr().map(|a| a.ip());
        state
            .sessions
            .change_password(&req, &token, current, new, client)
            .await
    }
    .await;
    let session = match result {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    secured(HttpResponse::Ok())
        .insert_header((
            header::SET_COOKIE,
            cookie(&req, session.token.expose(), SESSION_TTL.as_secs()),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_json(
            &state,
            &session.who,
            session.role,
            &session.csrf,
            session.expires_at,
        ))
}
