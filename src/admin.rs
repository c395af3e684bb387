//! The admin listener (`REVLINE_ADMIN_LISTEN`, loopback by default): `GET /` (the
//! dashboard page), `GET /metrics` and `GET /reports/{name}`. Revenue figures never leave through the public webhook listener,
//! which has neither route. Off loopback every request must carry
//! `Authorization: Bearer <REVLINE_ADMIN_TOKEN>` (checked in constant time); when a token is
//! set it is required on loopback too.
//!
//! Reports run on one worker thread and at most `REVLINE_ADMIN_MAX_REPORTS` at once (the
//! rest wait their turn), so a large report does not take the cores the webhook receiver
//! answers from.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use prometheus_client::registry::Registry;
use reports::{Format, ParamError, Params, ReportError, ReportName, Reports};
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Semaphore, SemaphorePermit};
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

use crate::backends;
use crate::config::{AdminConfig, Config};

/// How long a report waits for the warehouse's tables to be created before answering 503.
const MIGRATION_WAIT: Duration = Duration::from_secs(10);

/// What the admin listener serves.
struct AdminState<W> {
    registry: Arc<Registry>,
    /// `None` for `revline ingest`, which has no reports.
    reports: Option<Reports<W>>,
    /// True once the reconcile loop has applied the warehouse's migrations.
    migrated: Option<watch::Receiver<bool>>,
    permits: Semaphore,
    token: Option<String>,
}

/// Starts the admin listener when it is configured; the handle stops it.
pub fn start<W: Warehouse>(
    config: &AdminConfig,
    registry: Arc<Registry>,
    reports: Option<(Reports<W>, watch::Receiver<bool>)>,
) -> anyhow::Result<Option<ServerHandle>> {
    let (reports, migrated) = reports.unzip();
    let Some(addr) = config.listen else {
        tracing::info!("admin listener off (REVLINE_ADMIN_LISTEN=off): no /metrics, no reports");
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (REVLINE_ADMIN_LISTEN)"))?;
    let bound = listener.local_addr()?;
    let state = web::Data::new(AdminState {
        registry,
        reports,
        migrated,
        permits: Semaphore::new(config.max_reports),
        token: config.token.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics::<W>))
            .route("/", web::get().to(dashboard::<W>))
            .route("/reports/{name}", web::get().to(report::<W>))
            .default_service(web::to(not_found::<W>))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(addr = %bound, "admin listening");
    Ok(Some(handle))
}

/// Starts the admin listener of this configuration: metrics from `registry`, and reports
/// on the configured warehouse when the process reconciles (`migrated` is the reconcile
/// loop's "migrations applied" flag; `None` for `revline ingest`, which has no reports).
pub fn start_from_config(
    config: &Config,
    registry: Registry,
    migrated: Option<watch::Receiver<bool>>,
) -> anyhow::Result<Option<ServerHandle>> {
    let registry = Arc::new(registry);
    let Some(migrated) = migrated else {
        return start::<Embedded>(&config.admin, registry, None);
    };
    let clock = backends::report_clock(config);
    match &config.clickhouse {
        Some(ch) => {
            let reports = Reports::new(Arc::new(backends::clickhouse(ch)?), clock)
                .with_accounts(config.ledger.clone());
            start(&config.admin, registry, Some((reports, migrated)))
        }
        None => {
            let reports = Reports::new(Arc::new(backends::embedded(config)?), clock)
                .with_accounts(config.ledger.clone());
            start(&config.admin, registry, Some((reports, migrated)))
        }
    }
}

/// 503 with `Retry-After`.
fn unavailable(code: &str, message: &str) -> HttpResponse {
    let mut answer = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    answer.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("5"),
    );
    answer
}

/// A JSON error answer: `{"error": code, "message": text}`.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": code, "message": message }))
}

/// The 401 answer when the request lacks the configured bearer token.
fn refusal<W>(state: &AdminState<W>, req: &HttpRequest) -> Option<HttpResponse> {
    let token = state.token.as_ref()?;
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        None
    } else {
        let mut answer = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this listener needs Authorization: Bearer <REVLINE_ADMIN_TOKEN>",
        );
        answer.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static("Bearer"),
        );
        Some(answer)
    }
}

async fn metrics<W: Warehouse>(state: web::Data<AdminState<W>>, req: HttpRequest) -> HttpResponse {
    if let Some(answer) = refusal(&state, &req) {
        return answer;
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn not_found<W: Warehouse>(
    state: web::Data<AdminState<W>>,
    req: HttpRequest,
) -> HttpResponse {
    if let Some(answer) = refusal(&state, &req) {
        return answer;
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "this listener serves GET / (the dashboard), GET /metrics and GET /reports/{name}",
    )
}

fn param_error(err: &ParamError) -> HttpResponse {
    let status = match err {
        ParamError::UnknownReport(_) => StatusCode::NOT_FOUND,
        ParamError::Invalid { .. } => StatusCode::BAD_REQUEST,
    };
    error(status, err.code(), &err.to_string())
}

/// What every report request needs first: the token, a process that serves reports,
/// well-formed parameters, a migrated warehouse and a free report slot.
async fn admit<'s, W: Warehouse>(
    state: &'s AdminState<W>,
    req: &HttpRequest,
) -> Result<(&'s Reports<W>, Params, SemaphorePermit<'s>), HttpResponse> {
    if let Some(answer) = refusal(state, req) {
        return Err(answer);
    }
    let Some(reports) = &state.reports else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "no_reports",
            "`revline ingest` serves no reports; ask `revline serve` or `revline reconcile`",
        ));
    };
    let pairs = match web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        Ok(pairs) => pairs.into_inner(),
        Err(err) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("query: not a valid query string: {err}"),
            ))
        }
    };
    let params = Params::parse(pairs).map_err(|err| param_error(&err))?;
    if let Some(migrated) = &state.migrated {
        let mut migrated = migrated.clone();
        let ready = tokio::time::timeout(MIGRATION_WAIT, migrated.wait_for(|done| *done)).await;
        if !matches!(ready, Ok(Ok(_))) {
            return Err(unavailable(
                "warehouse_not_ready",
                "the warehouse's tables are not created yet (is the warehouse up? see the log)",
            ));
        }
    }
    let Ok(permit) = state.permits.acquire().await else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "shutting down",
        ));
    };
    Ok((reports, params, permit))
}

/// The answer to a report that failed.
fn failure(what: &str, err: ReportError) -> HttpResponse {
    match err {
        ReportError::Params(err) => param_error(&err),
        ReportError::Warehouse(err) => {
            tracing::warn!(report = %what, error = %err, "report failed");
            unavailable("warehouse_unavailable", &err.to_string())
        }
    }
}

async fn report<W: Warehouse>(
    state: web::Data<AdminState<W>>,
    name: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    if let Some(answer) = refusal(&state, &req) {
        return answer;
    }
    let name = match ReportName::parse(&name) {
        Ok(name) => name,
        Err(err) => return param_error(&err),
    };
    let (reports, params, _permit) = match admit(&state, &req).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    match reports.run(name, &params).await {
        Ok(table) => {
            let format = params.format.unwrap_or(Format::Json);
            let mut answer = HttpResponse::Ok();
            answer.content_type(format.content_type());
            for warning in &table.warnings {
                answer.append_header(("revline-warning", warning.as_str()));
            }
            answer.body(table.render(format))
        }
        Err(err) => failure(name.as_str(), err),
    }
}

/// `GET /`: the dashboard page.
async fn dashboard<W: Warehouse>(
    state: web::Data<AdminState<W>>,
    req: HttpRequest,
) -> HttpResponse {
    let (reports, params, _permit) = match admit(&state, &req).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    match reports::dashboard::page(reports, &params).await {
        Ok(page) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page),
        Err(err) => failure("dashboard", err),
    }
}
