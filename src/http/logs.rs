//! `GET /logs/stream` (proxy admins only): the live tail as Server-Sent Events.
//!
//! * each request finished after the reader connected: `data: {…}` (the default event; fields in
//!   [`crate::observability::tail::request_json`]);
//! * with `?level=debug`, the gateway's own log lines too: `event: log` + `data: {…}`;
//! * a reader that fell behind: `event: lagged` + `data: {"skipped": n}`;
//! * a `: keep-alive` comment every [`KEEP_ALIVE`], so proxies keep an idle stream open.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;

use super::routes::{Access, Routes};
use crate::error::GatewayError;
use crate::observability::tail::{TailEvent, TailReader};
use crate::state::AppState;

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn configure(r: &mut Routes) {
    r.get("/logs/stream", Access::Admin, logs_stream);
}

async fn logs_stream(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = state.auth.authenticate(&req).await {
        return actix_web::ResponseError::error_response(&e);
    }
    let debug = match level(req.query_string()) {
        Ok(debug) => debug,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let reader = state.log_tail.subscribe(debug);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(sse(reader, KEEP_ALIVE))
}

/// `level=debug` adds log lines; `level=info` (or none) is requests only.
fn level(query: &str) -> Result<bool, GatewayError> {
    let level = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "level")
        .map(|(_, value)| value.to_ascii_lowercase());
    match level.as_deref() {
        None | Some("info") | Some("") => Ok(false),
        Some("debug") => Ok(true),
        Some(other) => Err(GatewayError::bad_request(format!(
            "level must be info or debug, not {other:?}"
        ))),
    }
}

/// The reader's events as SSE, with keep-alive comments while nothing happens. The first bytes
/// (a comment) go out at once, so a client sees the stream open before any request finishes.
fn sse(
    reader: TailReader,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let tick = tokio::time::interval(keep_alive);
    stream::unfold(
        (reader, tick, false),
        |(mut reader, mut tick, opened)| async move {
            if !opened {
                tick.reset();
                return Some((
                    Ok(Bytes::from_static(b": connected\n\n")),
                    (reader, tick, true),
                ));
            }
            let frame = tokio::select! {
                event = reader.next() => match event {
                    TailEvent::Request(line) => format!("data: {line}\n\n"),
                    TailEvent::Log(line) => format!("event: log\ndata: {line}\n\n"),
                    TailEvent::Lagged(n) => format!("event: lagged\ndata: {{\"skipped\":{n}}}\n\n"),
                    TailEvent::Closed => return None,
                },
                _ = tick.tick() => ": keep-alive\n\n".to_string(),
            };
            Some((Ok(Bytes::from(frame)), (reader, tick, true)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::tail::LogTail;
    use futures_util::StreamExt;

    #[test]
    fn level_is_info_or_debug() {
        assert_eq!(level("").ok(), Some(false));
        assert_eq!(level("level=info").ok(), Some(false));
        assert_eq!(level("x=1&level=DEBUG").ok(), Some(true));
        assert!(level("level=trace").is_err());
    }

    #[actix_rt::test]
    async fn events_lag_and_keep_alive_as_sse() {
        let tail = LogTail::with_capacity(2);
        let body = sse(tail.subscribe(false), Duration::from_millis(50));
        let mut body = std::pin::pin!(body);
        let text = |b: Option<Result<Bytes, actix_web::Error>>| {
            String::from_utf8(b.unwrap().unwrap().to_vec()).unwrap()
        };
        assert_eq!(text(body.next().await), ": connected\n\n");
        // Nothing happens: a keep-alive comment.
        assert_eq!(text(body.next().await), ": keep-alive\n\n");
        let log = crate::store::SpendLog {
            request_id: "c".into(),
            status: "success".into(),
            ..Default::default()
        };
        let event = std::sync::Arc::new(crate::observability::RequestEvent {
            log,
            requested_model: "m".into(),
            key_alias: None,
            team_alias: None,
            provider: None,
            status_code: 200,
            error: None,
            time_to_first_token_ms: None,
            user_email: None,
            remaining_budget: Default::default(),
        });
        for _ in 0..3 {
            crate::observability::Observer::request_finished(&tail, &event);
        }
        assert_eq!(
            text(body.next().await),
            "event: lagged\ndata: {\"skipped\":1}\n\n"
        );
        let frame = text(body.next().await);
        assert!(frame.starts_with("data: {") && frame.contains("\"call_id\":\"c\""));
    }
}
