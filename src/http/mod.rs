//! The HTTP surface (actix-web). Handlers stay thin: extract, authorize, hand to the domain
//! ([`crate::pipeline`], the router), map errors to the OpenAI envelope.

mod budgets;
mod cache;
mod config_update;
mod customers;
mod db_models;
mod health;
mod keys;
mod logs;
pub mod manage;
mod spend;

pub use health::{run_round as run_health_round, store_round as store_health_round};
mod llm;
mod messages;
mod metrics;
mod models;
mod organizations;
mod responses;
pub mod routes;
mod teams;
mod ui;
mod users;
mod utils;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::error::GatewayError;

/// Every route the gateway serves, each with the callers it admits ([`routes::Access`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut r = routes::Routes::new(cfg);
    llm::configure(&mut r);
    messages::configure(&mut r);
    responses::configure(&mut r);
    models::configure(&mut r);
    utils::configure(&mut r);
    health::configure(&mut r);
    metrics::configure(&mut r);
    db_models::configure(&mut r);
    config_update::configure(&mut r);
    keys::configure(&mut r);
    spend::configure(&mut r);
    users::configure(&mut r);
    teams::configure(&mut r);
    organizations::configure(&mut r);
    customers::configure(&mut r);
    budgets::configure(&mut r);
    cache::configure(&mut r);
    logs::configure(&mut r);
    r.finish();
    // The admin UI: its page, files, sign-in and session (no key; not in the route table).
    ui::configure(cfg);
    cfg.default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&GatewayError::RouteNotFound {
        path: req.path().to_string(),
    })
}

/// Read a request body, refusing more than `limit` bytes with a 413 in the OpenAI envelope.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, GatewayError> {
    let too_large = || GatewayError::PayloadTooLarge {
        limit_mb: (limit / (1024 * 1024)) as u64,
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            GatewayError::bad_request(format!("Could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
