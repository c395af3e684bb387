//! `GET /metrics`: every registered metric in the Prometheus text format.

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

pub async fn metrics(registry: web::Data<Registry>) -> HttpResponse {
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
