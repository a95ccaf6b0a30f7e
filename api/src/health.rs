//! `GET /health` (the process is up) and `GET /health/ready` (database, migrations, projection lag).

use crate::server::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Up", body = Object, example = json!({"status": "ok"}))))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Database, migrations, mail and projection lag.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "Ready to serve", body = Object),
    (status = 503, description = "Not ready: the body says what is missing", body = Object)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let migrations = database
        && infrastructure::database::migrations_applied(&state.pool)
            .await
            .unwrap_or(false);
    let projections = if migrations {
        state.runner.status().await.ok()
    } else {
        None
    };
    let ready = database && migrations && projections.is_some();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "migrations": if migrations { "applied" } else { "pending" },
        "mail": if state.mail_configured { "configured" } else { "not_configured: mail waits in the outbox until SMTP_URL is set" },
        "projections": projections.unwrap_or_default(),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(crate::observability::metrics))
        .route("/api/openapi.json", web::get().to(crate::openapi::serve));
}
