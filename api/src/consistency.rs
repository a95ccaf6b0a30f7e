//! Read-your-writes: read models follow the log a few milliseconds behind,
//! so a change answers only once they hold it, and the caller's next read
//! (`POST /api/agents`, then `GET /api/agents/{id}`) sees what it just did.
//! The wait is bounded: a slow read model delays the answer, never fails it.

use crate::server::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use std::time::Duration;

/// Longest a change waits for the read models (they are in step within
/// milliseconds unless a rebuild or a backlog holds them up).
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Whether a request may change what the read models show. Vapi's webhooks
/// are left out: nobody reads right after them, and they are the busiest route.
fn changes_read_models(request: &ServiceRequest) -> bool {
    let path = request.path();
    !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && path.starts_with("/api/")
        && !path.starts_with("/api/webhooks/")
}

pub async fn read_your_writes(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let wait = state
        .as_ref()
        .map(|s| s.read_your_writes)
        .filter(|wait| !wait.is_zero() && changes_read_models(&request));
    let response = next.call(request).await?;
    if let (Some(state), Some(wait)) = (state, wait) {
        if response.status().is_success() {
            match state.runner.read_models_caught_up(wait).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(?wait, "read models still behind; answering anyway"),
                Err(error) => tracing::warn!(%error, "could not check the read models"),
            }
        }
    }
    Ok(response)
}
