//! Builds the actix-web server of the public webhook listener: the webhook routes, health
//! and readiness. Metrics and reports are served on the admin listener (the `revline`
//! binary), never here.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::routes::stripe_webhook::WebhookState;
use crate::routes::{health, stripe_webhook};
use eventlog::EventLog;

/// Mounts the receiver's routes on an app.
pub fn configure<L: EventLog>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks/stripe")
            .route(web::post().to(stripe_webhook::receive_default::<L>))
            .default_service(web::to(stripe_webhook::method_not_allowed)),
    )
    .service(
        web::resource("/webhooks/stripe/{endpoint}")
            .route(web::post().to(stripe_webhook::receive_named::<L>))
            .default_service(web::to(stripe_webhook::method_not_allowed)),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz::<L>));
}

/// Starts serving on `listener`, over HTTPS when `tls` is given. Resolves when the server
/// stops (SIGINT/SIGTERM stop it gracefully: in-flight requests, and so their log writes,
/// finish first).
pub fn serve<L: EventLog>(
    listener: TcpListener,
    state: Arc<WebhookState<L>>,
    workers: Option<usize>,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let state = web::Data::from(state);
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(configure::<L>))
            .shutdown_timeout(30);
    let mut server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
