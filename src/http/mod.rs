//! The HTTP surface (actix-web). Handlers stay thin: extract, authorize, hand to the domain
//! ([`crate::pipeline`], the router), map errors to the OpenAI envelope.

mod budgets;
mod cache;
mod config_update;
mod customers;
mod db_models;
mod files;
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
mod passthrough;
mod responses;
pub mod routes;
mod teams;
mod ui;
mod users;
mod utils;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::error::GatewayError;

/// Every route the gateway serves, each with the callers it admits ([`routes::Access`]): the
/// built-in routes, then the pass-through routes (the providers' and the configured
/// `pass_through_endpoints`), which therefore never take a path a built-in route serves.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    pass_through: &crate::passthrough::endpoints::Endpoints,
) {
    let mut r = routes::Routes::new(cfg);
    builtin(&mut r);
    passthrough::configure(&mut r, pass_through);
    r.finish();
    // The admin UI: its page, files, sign-in and session (no key; not in the route table).
    ui::configure(cfg);
    cfg.default_service(web::to(not_found));
}

/// Whether a built-in route (or the admin UI) serves `path`, for any method: configured
/// pass-through paths may not shadow one.
pub fn is_builtin_path(path: &str) -> bool {
    static BUILTIN: std::sync::OnceLock<Vec<actix_web::dev::ResourceDef>> =
        std::sync::OnceLock::new();
    let defs = BUILTIN.get_or_init(|| {
        let mut list = Vec::new();
        let _ = actix_web::App::new().configure(|cfg| {
            let mut r = routes::Routes::new(cfg);
            builtin(&mut r);
            passthrough::configure(&mut r, &crate::passthrough::endpoints::Endpoints::default());
            list = r.paths();
        });
        list.extend(["/routes", "/", "/login", "/ui"].map(String::from));
        list.push("/ui/{rest:.*}".to_string());
        list.iter()
            .map(|p| actix_web::dev::ResourceDef::new(p.as_str()))
            .collect()
    });
    defs.iter().any(|d| d.is_match(path))
}

fn builtin(r: &mut routes::Routes) {
    llm::configure(r);
    files::configure(r);
    messages::configure(r);
    responses::configure(r);
    models::configure(r);
    utils::configure(r);
    health::configure(r);
    metrics::configure(r);
    db_models::configure(r);
    config_update::configure(r);
    keys::configure(r);
    spend::configure(r);
    users::configure(r);
    teams::configure(r);
    organizations::configure(r);
    customers::configure(r);
    budgets::configure(r);
    cache::configure(r);
    logs::configure(r);
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
