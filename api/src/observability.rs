//! Logs, correlation and metrics of every request, and `GET /metrics` in
//! Prometheus's text format.

use crate::server::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

/// The header a caller may set to name its request; we echo it (or the id we chose).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The process's metrics recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("one metrics recorder per process")
    })
}

/// Runs a request inside a span and a correlation scope (the caller's
/// `X-Request-Id` when it is a UUID, else a new one), logs it once, and counts
/// it by route pattern and status. No headers or bodies are logged: they
/// carry tokens and passwords.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    metrics_handle();
    let correlation_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!("http_request", %method, %route, %correlation_id);
    let started = Instant::now();
    // The service is called inside the scope: routing may run part of the handler at once.
    let mut response = application::correlation::scope(correlation_id, async move { next.call(request).await })
        .instrument(span.clone())
        .await?;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(target: "voxreach::http", status, millis, "request"));
    metrics::counter!("voxreach_http_requests_total", "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("voxreach_http_request_seconds", "route" => route).record(millis / 1000.0);
    if let Ok(value) = HeaderValue::from_str(&correlation_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// `GET /metrics`: requests, appends, consumer lag (refreshed now), reactor outcomes.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Lag gauges are set as the consumers' status is read.
    if let Err(error) = state.runner.status().await {
        tracing::warn!(%error, "consumer status unavailable for metrics");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics_handle().render())
}
