//! `GET /healthz` (the process answers) and `GET /readyz` (the event log takes writes).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::routes::stripe_webhook::WebhookState;
use eventlog::EventLog;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz<L: EventLog>(state: web::Data<WebhookState<L>>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(3), state.log.ready()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Err(err)) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "reason": err.to_string() })),
        Err(_) => HttpResponse::ServiceUnavailable().json(
            json!({ "status": "unavailable", "reason": "the event log did not answer in time" }),
        ),
    }
}
