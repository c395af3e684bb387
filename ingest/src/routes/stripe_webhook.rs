//! `POST /webhooks/stripe` and `POST /webhooks/stripe/{endpoint}`.
//!
//! The order is fixed: read the raw body (bounded), verify its signature, read the routing
//! fields, append to the log, and answer 200 only once the log says the event is durable.
//! Stripe only looks at the status; the JSON body is for people reading logs and tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use tracing::Instrument;

use crate::metrics::{IngestMetrics, ReasonLabel};
use crate::settings::{Endpoint, IngestSettings, DEFAULT_ENDPOINT};
use crate::signature::{SignatureError, UnverifiedWebhook};
use eventlog::{Appended, EventLog, LogError};

/// Shared state of the webhook routes.
pub struct WebhookState<L> {
    pub log: Arc<L>,
    pub settings: IngestSettings,
    endpoints: HashMap<String, Endpoint>,
    pub metrics: IngestMetrics,
}

impl<L> WebhookState<L> {
    pub fn new(log: Arc<L>, settings: IngestSettings, metrics: IngestMetrics) -> Self {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| (e.name.clone(), e.clone()))
            .collect();
        WebhookState {
            log,
            settings,
            endpoints,
            metrics,
        }
    }
}

/// Everything a webhook request can end in besides 200.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook endpoint has this name")]
    UnknownEndpoint,
    #[error("{0}")]
    Signature(SignatureError),
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("the event log did not confirm the write; retry later")]
    Unavailable { retry_after_secs: u32 },
    #[error("the event log is full; retry later")]
    LogFull { retry_after_secs: u32 },
}

impl WebhookError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownEndpoint => "unknown_endpoint",
            Self::Signature(e) => e.code(),
            Self::TooLarge { .. } => "payload_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Unavailable { .. } => "log_unavailable",
            Self::LogFull { .. } => "log_full",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownEndpoint => StatusCode::NOT_FOUND,
            Self::Signature(_) | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable { .. } | Self::LogFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unavailable { retry_after_secs } | Self::LogFull { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(json!({ "error": self.code(), "message": self.to_string() }))
    }
}

/// `POST /webhooks/stripe`: the default endpoint.
pub async fn receive_default<L: EventLog>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebhookState<L>>,
) -> Result<HttpResponse, WebhookError> {
    receive(req, payload, state, DEFAULT_ENDPOINT).await
}

/// `POST /webhooks/stripe/{endpoint}`: a named endpoint with its own secrets.
pub async fn receive_named<L: EventLog>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebhookState<L>>,
    name: web::Path<String>,
) -> Result<HttpResponse, WebhookError> {
    receive(req, payload, state, &name).await
}

/// Any other method on the webhook paths.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .json(
            json!({ "error": "method_not_allowed", "message": "webhooks are delivered with POST" }),
        )
}

fn unix_now() -> (i64, i64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs() as i64, since.as_millis() as i64)
}

async fn receive<L: EventLog>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebhookState<L>>,
    endpoint_name: &str,
) -> Result<HttpResponse, WebhookError> {
    let metrics = &state.metrics;
    let Some(endpoint) = state.endpoints.get(endpoint_name) else {
        metrics.request("unknown_endpoint", "unknown_endpoint");
        return Err(WebhookError::UnknownEndpoint);
    };
    let span = tracing::info_span!(
        "webhook",
        endpoint = %endpoint.name,
        stripe_event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
    );

    let limit = state
        .settings
        .body_limit_bytes
        .min(state.log.max_record_bytes());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        metrics.request("too_large", "content_length");
        span.in_scope(|| tracing::warn!(limit, "webhook body over the limit"));
        return Err(WebhookError::TooLarge { limit });
    }
    let timeout = state.settings.body_timeout;
    let read = match tokio::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Ok(read) => read,
        Err(_) => {
            metrics.request("rejected", "body_timeout");
            span.in_scope(|| {
                tracing::warn!(
                    secs = timeout.as_secs(),
                    "webhook body too slow; request cut off"
                )
            });
            return Err(WebhookError::BodyTimeout {
                secs: timeout.as_secs(),
            });
        }
    };
    let body = match read {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            metrics.request("rejected", "unreadable_body");
            return Err(WebhookError::UnreadableBody);
        }
        Err(_) => {
            metrics.request("too_large", "body");
            span.in_scope(|| tracing::warn!(limit, "webhook body over the limit"));
            return Err(WebhookError::TooLarge { limit });
        }
    };

    let (now, now_ms) = unix_now();
    let unverified = UnverifiedWebhook {
        signature_headers: req
            .headers()
            .get_all("stripe-signature")
            .map(|v| v.as_bytes())
            .collect(),
        body,
    };
    let verified = match unverified.verify(&endpoint.secrets, now, state.settings.tolerance_secs) {
        Ok(verified) => verified,
        Err(err) => {
            metrics.request("rejected", err.code());
            span.in_scope(|| tracing::warn!(reason = err.code(), "webhook rejected"));
            return Err(WebhookError::Signature(err));
        }
    };

    let (env, record) = verified.into_record(&endpoint.name, endpoint.livemode, now_ms);
    span.record("stripe_event_id", env.event_id.as_str());
    if let Some(t) = &env.event_type {
        span.record("event_type", t.as_str());
    }
    if let Some(flag) = env.flag {
        metrics
            .flagged
            .get_or_create(&ReasonLabel {
                reason: flag.as_str(),
            })
            .inc();
        span.in_scope(|| {
            tracing::warn!(
                reason = flag.as_str(),
                "authentic body stored for dead-letter"
            )
        });
    }

    let started = Instant::now();
    let outcome = tokio::time::timeout(state.settings.append_deadline, state.log.append(record))
        .instrument(span.clone())
        .await;
    metrics
        .log_write_seconds
        .observe(started.elapsed().as_secs_f64());
    let unavailable = WebhookError::Unavailable {
        retry_after_secs: state.settings.retry_after_secs,
    };
    match outcome {
        Ok(Ok(appended)) => {
            let duplicate = appended == Appended::Duplicate;
            if duplicate {
                metrics.duplicates.inc();
                metrics.request("duplicate", "ok");
            } else {
                metrics.request("accepted", env.flag.map_or("ok", |f| f.as_str()));
            }
            span.in_scope(|| tracing::debug!(duplicate, "event acknowledged"));
            Ok(HttpResponse::Ok()
                .json(json!({ "received": true, "id": env.event_id, "duplicate": duplicate })))
        }
        Ok(Err(err)) => {
            metrics
                .log_errors
                .get_or_create(&crate::metrics::KindLabel { kind: err.kind() })
                .inc();
            span.in_scope(|| tracing::error!(error = %err, "event log append failed"));
            match err {
                LogError::TooLarge => {
                    metrics.request("too_large", "log_limit");
                    Err(WebhookError::TooLarge { limit })
                }
                LogError::Full(_) => {
                    metrics.request("unavailable", err.kind());
                    Err(WebhookError::LogFull {
                        retry_after_secs: state.settings.retry_after_secs,
                    })
                }
                LogError::QueueFull | LogError::Unavailable(_) => {
                    metrics.request("unavailable", err.kind());
                    Err(unavailable)
                }
            }
        }
        Err(_elapsed) => {
            metrics
                .log_errors
                .get_or_create(&crate::metrics::KindLabel { kind: "deadline" })
                .inc();
            metrics.request("unavailable", "deadline");
            span.in_scope(|| {
                tracing::error!("event log did not confirm the write within the deadline")
            });
            Err(unavailable)
        }
    }
}
