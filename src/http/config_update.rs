//! `POST /config/update` (proxy admins): change settings at run time. The domain
//! ([`crate::runtime_settings::update`]) checks every key against the config-key registry, stores
//! and audits the change, and applies it.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::manage::{body_object, ctx, respond};
use super::routes::{Access, Routes};
use crate::error::GatewayError;
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    r.post("/config/update", Access::Admin, update);
}

async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(update_inner(&state, &req, payload).await)
}

async fn update_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    c.caller.require_admin("update the config")?;
    let body = body_object(req, payload).await?;
    crate::runtime_settings::update(state, c.store, c.caller.actor_id(), &body).await
}
