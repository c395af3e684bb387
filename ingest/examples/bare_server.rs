//! The benchmark's baseline: a bare actix-web handler that reads the body and answers 200,
//! with the same worker count and body limit as revline. No verification, no log.
//!
//! `cargo run --release -p ingest --example bare_server -- 127.0.0.1:18080`

use actix_web::{web, App, HttpResponse, HttpServer};

async fn receive(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "received": true, "bytes": body.len() }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .route("/webhooks/stripe", web::post().to(receive))
    })
    .bind(&addr)?
    .run()
    .await
}
