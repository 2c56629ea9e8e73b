//! The response cache's admin routes (proxy admins only): `GET /cache/ping`,
//! `POST /cache/delete {"keys": [...]}`, `POST /cache/flushall`, `GET /cache/redis/info`.
//! Keys are the ones responses carry in `x-litellm-cache-key`. Flushing removes the cache's own
//! entries only, never the rest of a Redis shared with rate limits and routing.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::manage::{respond, Body, Ctx};
use crate::error::GatewayError;
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    r.get("/cache/ping", Access::Admin, ping)
        .post("/cache/delete", Access::Admin, delete)
        .post("/cache/flushall", Access::Admin, flushall)
        .get("/cache/redis/info", Access::Admin, redis_info);
}

fn cache(state: &AppState) -> Result<&crate::caching::Cache, GatewayError> {
    state
        .cache
        .as_deref()
        .ok_or_else(|| GatewayError::Unavailable {
            message: "Cache not initialized: set litellm_settings.cache (see docs/CACHING.md)"
                .into(),
        })
}

fn unavailable(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable {
        message: format!("the response cache is unreachable: {e}"),
    }
}

/// LiteLLM's answer: healthy with the cache type, after a real round trip to the store.
async fn ping(state: web::Data<AppState>, _c: Ctx) -> HttpResponse {
    respond(
        async {
            let cache = cache(&state)?;
            cache.store.ping().await.map_err(unavailable)?;
            let stats = cache.store.stats();
            Ok(json!({
                "status": "healthy",
                "cache_type": cache.store.kind(),
                "ping_response": true,
                "set_cache_response": "success",
                "entries": stats.entries,
                "litellm_cache_params": {
                    "type": cache.store.kind(),
                    "namespace": cache.settings.namespace,
                    "ttl": cache.settings.ttl.map(|t| t.as_secs_f64()),
                    "supported_call_types": cache.settings.call_types.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "scope": match cache.settings.sharing {
                        crate::caching::Sharing::Team => "team",
                        crate::caching::Sharing::Global => "global",
                    },
                    "similarity_threshold": cache.settings.semantic.as_ref().map(|s| s.threshold),
                },
            }))
        }
        .await,
    )
}

async fn delete(state: web::Data<AppState>, _c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let cache = cache(&state)?;
            let keys: Vec<String> = match body.0.get("keys") {
                Some(Value::Array(keys)) if keys.len() <= super::manage::MAX_ENTRIES => keys
                    .iter()
                    .map(|k| {
                        k.as_str().map(str::to_string).ok_or_else(|| {
                            GatewayError::bad_param("keys", "each key must be a string")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(Value::Array(_)) => {
                    return Err(GatewayError::bad_param(
                        "keys",
                        format!("at most {} keys at once", super::manage::MAX_ENTRIES),
                    ))
                }
                _ => {
                    return Err(GatewayError::bad_param(
                        "keys",
                        "'keys' must be a list of cache keys (x-litellm-cache-key)",
                    ))
                }
            };
            let deleted = cache.store.delete(&keys).await.map_err(unavailable)?;
            Ok(json!({"status": "success", "deleted": deleted}))
        }
        .await,
    )
}

async fn flushall(state: web::Data<AppState>, _c: Ctx) -> HttpResponse {
    respond(
        async {
            cache(&state)?.store.flush().await.map_err(unavailable)?;
            Ok(json!({"status": "success"}))
        }
        .await,
    )
}

async fn redis_info(state: web::Data<AppState>, _c: Ctx) -> HttpResponse {
    respond(
        async {
            let cache = cache(&state)?;
            let info = cache.store.redis_info().await.map_err(unavailable)?;
            Ok(json!({
                "num_clients": info.get("connected_clients").cloned().unwrap_or(Value::Null),
                "info": info,
            }))
        }
        .await,
    )
}
