//! The route table: every route the gateway serves is registered here with the callers it admits
//! ([`Access`]) and the LiteLLM route group it belongs to ([`Group`]). The declaration is the
//! authority, checked in one place ([`RouteAccess::check`], run by
//! [`crate::auth::Authenticator::authenticate`] for every authenticated route):
//!
//! 1. the caller's role must be one the route admits (403 otherwise, before the body is read);
//! 2. a virtual key with `allowed_routes` may call only the routes it lists, by path
//!    (`/chat/completions`), prefix pattern (`/key/*`) or group name (`llm_api_routes`,
//!    `info_routes`, `management_routes`, `spend_tracking_routes`).
//!
//! Handlers then decide on the objects a request names (whose key, which team) through
//! [`crate::auth::Caller`]. `GET /routes` lists the table; the authorization tests are generated
//! from it, so a route cannot be added without being covered.

use actix_web::dev::Handler;
use actix_web::http::Method;
use actix_web::{guard, web, FromRequest, HttpRequest, HttpResponse, Responder};
use serde_json::{json, Value};

use crate::auth::{Caller, Role};
use crate::error::GatewayError;
use crate::keys::Fields;

/// Which callers a route admits at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed (liveness and readiness probes, Prometheus scrapes).
    Public,
    /// Any valid key (LLM calls, model lists, the route list).
    AnyKey,
    /// Roles that use the management API (not `team` or `customer` keys); the handler narrows
    /// to the caller's own objects.
    Management,
    /// Roles that may change something (`proxy_admin`, `internal_user`); the handler narrows to
    /// the caller's own objects.
    Writers,
    /// `proxy_admin` and `proxy_admin_viewer`.
    ReadAll,
    /// `proxy_admin` only.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::AnyKey => "any_key",
            Access::Management => "management",
            Access::Writers => "writers",
            Access::ReadAll => "read_all",
            Access::Admin => "admin",
        }
    }

    /// Whether a caller of `role` passes this route's gate.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public | Access::AnyKey => true,
            Access::Management => !matches!(role, Role::Team | Role::Customer),
            Access::Writers => matches!(role, Role::ProxyAdmin | Role::InternalUser),
            Access::ReadAll => matches!(role, Role::ProxyAdmin | Role::ProxyAdminViewer),
            Access::Admin => role == Role::ProxyAdmin,
        }
    }
}

/// LiteLLM's route groups, usable in a key's `allowed_routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    LlmApi,
    Info,
    Management,
    SpendTracking,
    Public,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::LlmApi => "llm_api_routes",
            Group::Info => "info_routes",
            Group::Management => "management_routes",
            Group::SpendTracking => "spend_tracking_routes",
            Group::Public => "public_routes",
        }
    }

    /// Names a key's `allowed_routes` may use for this group (`openai_routes` is LiteLLM's
    /// other name for the LLM routes).
    fn names(self) -> &'static [&'static str] {
        match self {
            Group::LlmApi => &["llm_api_routes", "openai_routes"],
            Group::Info => &["info_routes"],
            Group::Management => &["management_routes"],
            Group::SpendTracking => &["spend_tracking_routes"],
            Group::Public => &["public_routes"],
        }
    }

    fn of(path: &str, access: Access) -> Group {
        if access == Access::Public {
            Group::Public
        } else if path.contains("/spend") {
            Group::SpendTracking
        } else if path.ends_with("/info")
            || path == "/routes"
            || path == "/health"
            || path.starts_with("/health/")
            || path == "/active/callbacks"
            || path.starts_with("/models")
            || path.starts_with("/v1/models")
        {
            Group::Info
        } else if access == Access::AnyKey {
            Group::LlmApi
        } else {
            Group::Management
        }
    }

    /// Every group name a key's `allowed_routes` may hold.
    pub const NAMES: [&'static str; 6] = [
        "llm_api_routes",
        "openai_routes",
        "info_routes",
        "management_routes",
        "spend_tracking_routes",
        "public_routes",
    ];
}

/// One registered route.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    /// The path pattern as registered (`/key/{key}/regenerate`).
    pub path: String,
    pub access: Access,
    pub group: Group,
}

/// A route's declaration, attached to its resource so the request carries it.
#[derive(Debug, Clone)]
pub struct RouteAccess {
    pub path: String,
    pub access: Access,
    pub group: Group,
}

impl RouteAccess {
    /// The route gate: the caller's role, then a key's `allowed_routes`.
    pub fn check(&self, caller: &Caller, req: &HttpRequest) -> Result<(), GatewayError> {
        let role = caller.role();
        if !self.access.admits(role) {
            return Err(GatewayError::Forbidden {
                message: format!(
                    "Authentication Error, role {} is not allowed to call {}",
                    role.as_str(),
                    req.path()
                ),
            });
        }
        let Some(p) = caller.principal() else {
            return Ok(());
        };
        let mut allowed = p.key.strings("allowed_routes");
        if allowed.is_empty() {
            // A key whose `key_type` was stored without the routes it implies (imported, or
            // written before the type was enforced) is held to them all the same.
            if let Some(routes) = p
                .key
                .data
                .get("key_type")
                .and_then(serde_json::Value::as_str)
                .and_then(key_type_routes)
            {
                allowed = routes.iter().map(|r| r.to_string()).collect();
            }
        }
        if allowed.is_empty() || allowed.iter().any(|a| self.matches(a, req.path())) {
            return Ok(());
        }
        Err(GatewayError::Forbidden {
            message: format!(
                "Authentication Error, this key may only call the routes {allowed:?}; tried to call {}",
                req.path()
            ),
        })
    }

    /// Whether one `allowed_routes` entry covers this route.
    fn matches(&self, entry: &str, path: &str) -> bool {
        let entry = entry.trim();
        if self.group.names().contains(&entry) || entry == self.path || entry == path {
            return true;
        }
        match entry.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => path.starts_with(prefix),
            _ => false,
        }
    }
}

/// The key types LiteLLM's `/key/generate` takes.
pub const KEY_TYPES: [&str; 4] = ["llm_api", "management", "read_only", "default"];

/// The routes a `key_type` limits a key to (LiteLLM's `handle_key_type`): `llm_api` the LLM
/// routes, `management` the management routes, `read_only` the info routes; `default` (or none)
/// adds no limit. `None` for `default` and for names that are not key types.
pub fn key_type_routes(key_type: &str) -> Option<&'static [&'static str]> {
    match key_type {
        "llm_api" => Some(&["llm_api_routes"]),
        "management" => Some(&["management_routes"]),
        "read_only" => Some(&["info_routes"]),
        _ => None,
    }
}

/// Validate a key's `allowed_routes` entries: a route of the table, a group name or a prefix
/// pattern ending in `*` that covers at least one route.
pub fn unknown_allowed_route<'a>(entries: &'a [String], table: &[RouteInfo]) -> Option<&'a str> {
    entries
        .iter()
        .find(|e| {
            let e = e.trim();
            let known = Group::NAMES.contains(&e)
                || table.iter().any(|r| r.path == e)
                || e.strip_suffix('*').is_some_and(|prefix| {
                    !prefix.is_empty() && table.iter().any(|r| r.path.starts_with(prefix))
                });
            !known
        })
        .map(String::as_str)
}

/// Registers routes on an actix `ServiceConfig` and records them in the table.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    list: Vec<RouteInfo>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Self {
            cfg,
            list: Vec::new(),
        }
    }

    pub fn add<F, Args>(
        &mut self,
        method: Method,
        path: &str,
        access: Access,
        handler: F,
    ) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let group = Group::of(path, access);
        self.cfg.service(
            web::resource(path)
                .guard(guard::Method(method.clone()))
                .app_data(RouteAccess {
                    path: path.to_string(),
                    access,
                    group,
                })
                .route(web::route().to(handler)),
        );
        self.list.push(RouteInfo {
            method,
            path: path.to_string(),
            access,
            group,
        });
        self
    }

    pub fn get<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, access, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, access, handler)
    }

    pub fn patch<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PATCH, path, access, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, access, handler)
    }

    /// The path patterns registered so far.
    pub fn paths(&self) -> Vec<String> {
        self.list.iter().map(|r| r.path.clone()).collect()
    }

    /// Register `GET /routes` (itself included) and hand back the whole table.
    pub fn finish(mut self) -> Vec<RouteInfo> {
        self.list.push(RouteInfo {
            method: Method::GET,
            path: "/routes".into(),
            access: Access::AnyKey,
            group: Group::Info,
        });
        let _ = TABLE.set(self.list.clone());
        self.cfg.service(
            web::resource("/routes")
                .guard(guard::Get())
                .app_data(RouteAccess {
                    path: "/routes".into(),
                    access: Access::AnyKey,
                    group: Group::Info,
                })
                .route(web::route().to(list_routes)),
        );
        self.list
    }
}

static TABLE: std::sync::OnceLock<Vec<RouteInfo>> = std::sync::OnceLock::new();

/// The route table (empty until the server has configured its routes).
pub fn table() -> &'static [RouteInfo] {
    TABLE.get().map_or(&[], Vec::as_slice)
}

/// The table as JSON: LiteLLM's `{"routes": [{"path", "methods", "name", "endpoint"}]}`, plus each route's
/// `access` and `group`.
pub fn table_json(table: &[RouteInfo]) -> Value {
    let routes: Vec<Value> = table
        .iter()
        .map(|r| {
            json!({
                "path": r.path,
                "methods": [r.method.as_str()],
                "name": r.path,
                "endpoint": r.path,
                "access": r.access.as_str(),
                "group": r.group.as_str(),
            })
        })
        .collect();
    json!({ "routes": routes })
}

async fn list_routes(state: web::Data<crate::state::AppState>, req: HttpRequest) -> HttpResponse {
    match state.auth.authenticate(&req).await {
        Ok(_) => HttpResponse::Ok().json(table_json(table())),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, access: Access) -> RouteAccess {
        RouteAccess {
            path: path.into(),
            access,
            group: Group::of(path, access),
        }
    }

    #[test]
    fn groups_follow_litellm() {
        assert_eq!(
            Group::of("/v1/chat/completions", Access::AnyKey),
            Group::LlmApi
        );
        assert_eq!(Group::of("/key/info", Access::Management), Group::Info);
        assert_eq!(Group::of("/model/info", Access::AnyKey), Group::Info);
        assert_eq!(
            Group::of("/spend/logs", Access::ReadAll),
            Group::SpendTracking
        );
        assert_eq!(
            Group::of("/global/spend/keys", Access::ReadAll),
            Group::SpendTracking
        );
        assert_eq!(
            Group::of("/key/generate", Access::Writers),
            Group::Management
        );
        assert_eq!(Group::of("/metrics", Access::Public), Group::Public);
        assert_eq!(
            Group::of("/health/readiness/details", Access::AnyKey),
            Group::Info
        );
        assert_eq!(Group::of("/active/callbacks", Access::AnyKey), Group::Info);
        assert_eq!(
            Group::of("/get/config/callbacks", Access::Admin),
            Group::Management
        );
    }

    #[test]
    fn allowed_route_entries_match_path_pattern_prefix_and_group() {
        let r = route("/key/{key}/regenerate", Access::Writers);
        assert!(r.matches("/key/{key}/regenerate", "/key/sk-abc/regenerate"));
        assert!(r.matches("/key/sk-abc/regenerate", "/key/sk-abc/regenerate"));
        assert!(r.matches("/key/*", "/key/sk-abc/regenerate"));
        assert!(r.matches("management_routes", "/key/sk-abc/regenerate"));
        assert!(!r.matches("llm_api_routes", "/key/sk-abc/regenerate"));
        assert!(!r.matches("*", "/key/sk-abc/regenerate"));
        assert!(!r.matches("/key/generate", "/key/sk-abc/regenerate"));
        let chat = route("/v1/chat/completions", Access::AnyKey);
        assert!(chat.matches("openai_routes", "/v1/chat/completions"));
        assert!(chat.matches("llm_api_routes", "/v1/chat/completions"));
    }

    #[test]
    fn unknown_entries_are_named() {
        let table = vec![RouteInfo {
            method: Method::POST,
            path: "/chat/completions".into(),
            access: Access::AnyKey,
            group: Group::LlmApi,
        }];
        let ok: Vec<String> = vec![
            "/chat/completions".into(),
            "llm_api_routes".into(),
            "/chat/*".into(),
        ];
        assert_eq!(unknown_allowed_route(&ok, &table), None);
        let bad: Vec<String> = vec!["/chat/completions".into(), "/nope".into()];
        assert_eq!(unknown_allowed_route(&bad, &table), Some("/nope"));
        let star: Vec<String> = vec!["*".into()];
        assert_eq!(unknown_allowed_route(&star, &table), Some("*"));
    }

    #[test]
    fn access_levels_admit_roles() {
        use Role::*;
        let admitted =
            |a: Access| -> Vec<Role> { Role::ALL.into_iter().filter(|r| a.admits(*r)).collect() };
        assert_eq!(admitted(Access::Admin), vec![ProxyAdmin]);
        assert_eq!(
            admitted(Access::ReadAll),
            vec![ProxyAdmin, ProxyAdminViewer]
        );
        assert_eq!(admitted(Access::Writers), vec![ProxyAdmin, InternalUser]);
        assert_eq!(
            admitted(Access::Management),
            vec![
                ProxyAdmin,
                ProxyAdminViewer,
                InternalUser,
                InternalUserViewer
            ]
        );
        assert_eq!(admitted(Access::AnyKey).len(), Role::ALL.len());
    }
}
