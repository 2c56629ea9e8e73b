//! Admin UI sessions: sign-in, the session cookie, CSRF tokens and the sign-in rate limit.
//!
//! - **Who signs in.** The admin as `admin` (or `UI_USERNAME`) with the master key (or
//!   `UI_PASSWORD`), compared in constant time on SHA-256 digests; an internal user with its
//!   `user_id` and the password a proxy admin set with `/user/new` or `/user/update`
//!   (`password`), kept as an Argon2id hash in `user_passwords` and never returned by any API.
//! - **The session** is 32 random bytes (hex) in the `tollgate_session` cookie (HttpOnly,
//!   SameSite=Strict, Secure over TLS). The database keeps only its SHA-256 with who it stands
//!   for and its expiry ([`SESSION_TTL`]), so every instance sharing the database accepts it and a
//!   leaked table gives no usable session. The master key never reaches the browser.
//! - **What a session is.** [`crate::auth::Authenticator`] turns a valid cookie into the caller
//!   the equivalent key would be: the admin is [`Caller::Admin`]; an internal user is a key of
//!   that user with no restrictions of its own, so the user's role, models and limits, and every
//!   authorization rule of the API, apply unchanged. Sessions are for the management API and
//!   `/logs/stream`; the LLM routes take keys only.
//! - **CSRF.** A request authenticated by the cookie that changes something (any method but GET,
//!   HEAD and OPTIONS) must carry `x-csrf-token` equal to the session's CSRF token (a SHA-256 of
//!   the session token, so it is bound to the session and reveals nothing of it), which the page
//!   reads from `GET /ui/session`; else 403. Requests with a key are unaffected.
//! - **Rate limit.** At most [`MAX_FAILURES`] failed sign-ins per minute per username and per
//!   client address (the connection's peer; a proxy's forwarded headers are not trusted); past
//!   that every attempt answers 429 with `Retry-After` until the minute is over. Counted in
//!   memory, per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpRequest;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde_json::Map;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Caller, Principal, Role};
use crate::database::Database;
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::store::{EntityKind, KeyRecord, SessionRecord};
use crate::time::now_ms;

/// The session cookie.
pub const COOKIE: &str = "tollgate_session";
/// The header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins allowed per username and per client address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The admin's default username.
pub const DEFAULT_ADMIN: &str = "admin";
/// Password length bounds (bytes).
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;
/// Distinct usernames and addresses the limiter remembers before it forgets finished windows.
const LIMITER_CAPACITY: usize = 10_000;

/// Who a session stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Admin,
    User(String),
}

/// A session just created: the token goes into the cookie, never anywhere else.
pub struct NewSession {
    pub token: Secret,
    pub csrf: String,
    pub expires_at: i64,
    pub who: Who,
    /// The role the session acts with (`proxy_admin` for the admin, else the user's role).
    pub role: Role,
}

/// Failed sign-ins per username and per client address, in fixed one-minute windows.
#[derive(Default)]
struct Failures {
    /// Key → (window start, failures in it), unix ms.
    windows: HashMap<String, (i64, u32)>,
}

impl Failures {
    /// How long until the first of `keys` that is over the limit may try again.
    fn retry_after(&self, keys: &[String], now: i64) -> Option<Duration> {
        let window = FAILURE_WINDOW.as_millis() as i64;
        keys.iter()
            .filter_map(|k| self.windows.get(k))
            .filter(|(start, n)| *n >= MAX_FAILURES && now - start < window)
            .map(|(start, _)| Duration::from_millis((start + window - now).max(1000) as u64))
            .max()
    }

    fn record(&mut self, keys: &[String], now: i64) {
        let window = FAILURE_WINDOW.as_millis() as i64;
        if self.windows.len() >= LIMITER_CAPACITY {
            self.windows.retain(|_, (start, _)| now - *start < window);
        }
        for k in keys {
            let entry = self.windows.entry(k.clone()).or_insert((now, 0));
            if now - entry.0 >= window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }
}

/// Sign-in, session lookup and sign-out.
pub struct Sessions {
    db: Arc<Database>,
    admin_username: String,
    /// SHA-256 of the admin's password (`UI_PASSWORD`, else the master key); `None`: the admin
    /// cannot sign in.
    admin_password: Option<[u8; 32]>,
    failures: Mutex<Failures>,
}

fn digest(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// The stored form of a session token.
fn token_hash(token: &str) -> String {
    hex::encode(digest(token.as_bytes()))
}

/// The CSRF token of a session: derived from its token, so it is bound to it, and one-way, so
/// the page that reads it learns nothing of the HttpOnly cookie.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tollgate-ui-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// The session token of the request's cookie, if it carries one.
pub fn cookie_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a request method changes nothing (and so needs no CSRF token).
pub fn is_safe_method(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    [Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

/// Hash a password with Argon2id (OWASP's parameters, the crate's defaults) and a random salt.
/// CPU- and memory-hard: call it on a blocking thread.
pub fn hash_password(password: &str) -> Result<String, GatewayError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| GatewayError::internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| GatewayError::internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches a stored Argon2 hash. Blocking, like [`hash_password`].
fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the user has no password, so that an unknown user takes as
/// long to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("tollgate-no-such-user").unwrap_or_default())
}

/// Check a `password` field of a request: a string of [`MIN_PASSWORD`]..=[`MAX_PASSWORD`] bytes.
pub fn check_password(value: &serde_json::Value) -> Result<String, GatewayError> {
    match value.as_str() {
        Some(p) if (MIN_PASSWORD..=MAX_PASSWORD).contains(&p.len()) => Ok(p.to_string()),
        _ => Err(GatewayError::bad_param(
            "password",
            format!("'password' must be a string of {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        )),
    }
}

/// Run blocking password work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GatewayError> {
    actix_web::web::block(f)
        .await
        .map_err(|e| GatewayError::internal(format!("password work failed: {e}")))
}

/// Run a store call in a task of its own and wait for it. A session is looked up while actix
/// runs a handler's extractors together, and drops the others as soon as one fails (a refused
/// CSRF token): the lookup must survive being dropped, and a SQLite call cancelled mid-way
/// panics inside diesel-async's connection wrapper. A detached task always finishes its call.
async fn detached<T: 'static, F>(call: F) -> Result<T, GatewayError>
where
    F: std::future::Future<Output = Result<T, crate::store::StoreError>> + 'static,
{
    actix_web::rt::spawn(call)
        .await
        .map_err(|e| GatewayError::internal(format!("a session lookup failed: {e}")))?
        .map_err(GatewayError::from)
}

impl Sessions {
    /// `admin_username` defaults to [`DEFAULT_ADMIN`]; `admin_password` is `UI_PASSWORD` or the
    /// master key.
    pub fn new(db: Arc<Database>, admin_username: String, admin_password: Option<&Secret>) -> Self {
        Self {
            db,
            admin_username,
            admin_password: admin_password.map(|p| digest(p.expose().as_bytes())),
            failures: Mutex::new(Failures::default()),
        }
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sign in: the admin or an internal user with its password. Refusals say nothing of which
    /// part was wrong.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<NewSession, GatewayError> {
        let now = now_ms();
        let mut limit_keys = vec![format!("user:{username}")];
        if let Some(ip) = client {
            limit_keys.push(format!("addr:{ip}"));
        }
        if let Some(retry_after) = self.limiter().retry_after(&limit_keys, now) {
            return Err(GatewayError::RateLimited {
                message: format!(
                    "Too many failed sign-ins; try again in {} s",
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            });
        }
        let (who, role) = match self.check_credentials(username, password).await? {
            Some(found) => found,
            None => {
                self.limiter().record(&limit_keys, now);
                return Err(GatewayError::Authentication {
                    message: "Invalid username or password".into(),
                });
            }
        };
        self.start_session(who, role, now).await
    }

    /// Create a session for `who` and store it.
    async fn start_session(
        &self,
        who: Who,
        role: Role,
        now: i64,
    ) -> Result<NewSession, GatewayError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let expires_at = now + SESSION_TTL.as_millis() as i64;
        let store = self.db.store()?.clone();
        let record = SessionRecord {
            token_hash: token_hash(&token),
            admin: who == Who::Admin,
            user_id: match &who {
                Who::Admin => None,
                Who::User(id) => Some(id.clone()),
            },
            created_at: now,
            expires_at,
        };
        detached(async move {
            store.insert_session(&record).await?;
            if let Err(e) = store.delete_expired_sessions(now).await {
                tracing::warn!(error = %e, "could not delete expired UI sessions");
            }
            Ok(())
        })
        .await?;
        Ok(NewSession {
            csrf: csrf_token(&token),
            token: Secret::new(token),
            expires_at,
            who,
            role,
        })
    }

    /// A signed-in internal user changes their own password: the session (with its CSRF token)
    /// names the user, `current` must be their password, `new` a valid one. Wrong current
    /// passwords count toward the sign-in rate limit of the user and the address. Every session
    /// of the user ends, and a new one (returned) replaces the caller's. The admin has no
    /// password here: it signs in with the master key or `UI_PASSWORD`.
    pub async fn change_password(
        &self,
        req: &HttpRequest,
        token: &str,
        current: &str,
        new: &str,
        client: Option<IpAddr>,
    ) -> Result<NewSession, GatewayError> {
        let caller = self.authenticate(req, token).await?;
        let user_id = match &caller {
            Caller::Admin => {
                return Err(GatewayError::bad_request(
                    "The admin signs in with the master key (or UI_PASSWORD), which cannot be changed here",
                ))
            }
            _ => caller
                .user_id()
                .map(str::to_string)
                .ok_or_else(|| GatewayError::internal("a UI session without a user"))?,
        };
        let now = now_ms();
        let mut limit_keys = vec![format!("user:{user_id}")];
        if let Some(ip) = client {
            limit_keys.push(format!("addr:{ip}"));
        }
        if let Some(retry_after) = self.limiter().retry_after(&limit_keys, now) {
            return Err(GatewayError::RateLimited {
                message: format!(
                    "Too many wrong passwords; try again in {} s",
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            });
        }
        let new = check_password(&serde_json::Value::String(new.to_string())).map_err(|_| {
            GatewayError::bad_param(
                "new_password",
                format!("the new password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
            )
        })?;
        let store = self.db.store()?.clone();
        let (lookup, id) = (store.clone(), user_id.clone());
        let stored = detached(async move { lookup.get_user_password(&id).await }).await?;
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
        let presented = current.to_string();
        let matches = blocking(move || verify_password(&presented, &stored)).await?;
        if !(known && matches) {
            self.limiter().record(&limit_keys, now);
            return Err(GatewayError::bad_param(
                "current_password",
                "The current password is wrong",
            ));
        }
        if new == current {
            return Err(GatewayError::bad_param(
                "new_password",
                "the new password must differ from the current one",
            ));
        }
        let hash = blocking(move || hash_password(&new)).await??;
        let id = user_id.clone();
        detached(async move {
            store.set_user_password(&id, Some(&hash), now).await?;
            // Every session of the user ends, on every instance; the caller gets a new one.
            store.delete_user_sessions(&id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(user_id = %user_id, "a UI user changed their password");
        self.start_session(Who::User(user_id), caller.role(), now_ms())
            .await
    }

    /// Who `username` / `password` are, if they match.
    async fn check_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<(Who, Role)>, GatewayError> {
        if username == self.admin_username {
            let ok = self
                .admin_password
                .is_some_and(|expected| bool::from(digest(password.as_bytes()).ct_eq(&expected)));
            return Ok(ok.then_some((Who::Admin, Role::ProxyAdmin)));
        }
        let store = self.db.store()?.clone();
        let (lookup, name) = (store.clone(), username.to_string());
        let stored = detached(async move { lookup.get_user_password(&name).await }).await?;
        let (password, known) = (password.to_string(), stored.is_some());
        let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
        let matches = blocking(move || verify_password(&password, &stored)).await?;
        if !(known && matches) {
            return Ok(None);
        }
        let name = username.to_string();
        match detached(async move { store.get_entity(EntityKind::User, &name).await }).await? {
            Some(user) if !user.blocked => {
                let role = session_caller(user.clone()).role();
                if matches!(role, Role::Team | Role::Customer) {
                    // These roles call the LLM routes only: the UI would have nothing to show.
                    return Err(GatewayError::Forbidden {
                        message: format!(
                            "users with role {} have no access to the admin UI",
                            role.as_str()
                        ),
                    });
                }
                Ok(Some((Who::User(user.id), role)))
            }
            _ => Ok(None),
        }
    }

    /// The caller a session cookie stands for. A request that changes something must carry the
    /// session's CSRF token. An unknown or expired session is a 401 that says to sign in again.
    pub async fn authenticate(
        &self,
        req: &HttpRequest,
        token: &str,
    ) -> Result<Caller, GatewayError> {
        let expired = || {
            GatewayError::Authentication {
            message: "Authentication Error, the UI session has expired or was signed out; sign in again at /ui".into(),
        }
        };
        let store = self.db.store()?.clone();
        let (lookup, hash) = (store.clone(), token_hash(token));
        let Some(session) =
            detached(async move { lookup.get_session(&hash, now_ms()).await }).await?
        else {
            return Err(expired());
        };
        if !is_safe_method(req.method()) {
            let presented = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !bool::from(
                digest(presented.as_bytes()).ct_eq(&digest(csrf_token(token).as_bytes())),
            ) {
                return Err(GatewayError::Forbidden {
                    message: format!(
                        "Authentication Error, a request authenticated by the UI session must carry the {CSRF_HEADER} header from GET /ui/session"
                    ),
                });
            }
        }
        if session.admin {
            return Ok(Caller::Admin);
        }
        let Some(user_id) = session.user_id else {
            return Err(expired());
        };
        match detached(async move { store.get_entity(EntityKind::User, &user_id).await }).await? {
            Some(user) if !user.blocked => Ok(session_caller(user)),
            _ => Err(expired()),
        }
    }

    /// The session of a token, if it is valid (for `GET /ui/session`).
    pub async fn session(&self, token: &str) -> Result<Option<SessionRecord>, GatewayError> {
        let (store, hash) = (self.db.store()?.clone(), token_hash(token));
        detached(async move { store.get_session(&hash, now_ms()).await }).await
    }

    /// Sign out: the session is deleted.
    pub async fn sign_out(&self, token: &str) -> Result<(), GatewayError> {
        let (store, hash) = (self.db.store()?.clone(), token_hash(token));
        detached(async move { store.delete_session(&hash).await }).await
    }

    pub fn admin_username(&self) -> &str {
        &self.admin_username
    }
}

/// An internal user's session as a caller: a key of that user that restricts nothing itself, so
/// the user's own role, models and limits decide.
fn session_caller(user: crate::store::EntityRecord) -> Caller {
    let now = now_ms();
    Caller::Key(Arc::new(Principal {
        key: KeyRecord {
            // Not a SHA-256 hex, so it never equals a stored key's token.
            token: format!("ui-session:{}", user.id),
            key_name: "UI session".into(),
            key_alias: None,
            user_id: Some(user.id.clone()),
            team_id: None,
            organization_id: None,
            budget_id: None,
            blocked: false,
            expires: None,
            spend: 0.0,
            created_at: now,
            updated_at: now,
            created_by: None,
            updated_by: None,
            data: Map::new(),
        },
        user: Some(user),
        team: None,
        organization: None,
        model_budgets: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_limit_per_key_within_a_window() {
        let mut f = Failures::default();
        let keys = vec!["user:a".to_string(), "addr:127.0.0.1".to_string()];
        for _ in 0..MAX_FAILURES - 1 {
            f.record(&keys, 1_000);
        }
        assert!(f.retry_after(&keys, 1_000).is_none());
        f.record(&keys, 2_000);
        let wait = f.retry_after(&keys, 2_000).expect("limited");
        assert_eq!(wait, Duration::from_millis(59_000));
        // Another user from the same address is limited too; the window ends.
        assert!(f
            .retry_after(&["addr:127.0.0.1".to_string()], 30_000)
            .is_some());
        assert!(f.retry_after(&keys, 61_000).is_none());
        f.record(&keys, 61_000);
        assert!(f.retry_after(&keys, 61_000).is_none());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").expect("hash"));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_hide_it() {
        let a = csrf_token("aaaa");
        assert_eq!(a, csrf_token("aaaa"));
        assert_ne!(a, csrf_token("aaab"));
        assert!(!a.contains("aaaa"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("cookie", "a=1; tollgate_session=abc123 ; b=2"))
            .to_http_request();
        assert_eq!(cookie_token(&req).as_deref(), Some("abc123"));
        let none = actix_web::test::TestRequest::default()
            .insert_header(("cookie", "tollgate_sessionx=1"))
            .to_http_request();
        assert_eq!(cookie_token(&none), None);
    }
}
