//! `/api/integrations/slack`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::AppError;
use domain::slack::Preferences;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connect {
    workspace_name: String,
    webhook_url: String,
    channel: String,
    preferences: Option<serde_json::Value>,
}

/// Preferences parsed here rather than by the body's extractor, so that a bad
/// time zone or mention is a 400 naming where it is (`timezone`, `routes.hot_lead.mentions[0]`…).
fn preferences(raw: serde_json::Value) -> Result<Preferences, ApiError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "preferences".to_owned() } else { field };
        AppError::validation(&field, format!("{field} is invalid: {}", e.inner())).into()
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestMessage {
    integration_id: Uuid,
}

pub async fn connect(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<Connect>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let id = state
        .slack
        .connect(
            &caller.0,
            b.workspace_name,
            b.channel,
            &b.webhook_url,
            b.preferences.map(preferences).transpose()?.unwrap_or_default(),
        )
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id, "status": "active" })))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let integrations = state.slack.list(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "integrations": integrations })))
}

pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .slack
        .update_preferences(&caller.0, *id, preferences(body.into_inner())?)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id })))
}

pub async fn disconnect(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.slack.disconnect(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn test(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<TestMessage>,
) -> Result<HttpResponse, ApiError> {
    state.slack.send_test(&caller.0, body.integration_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "delivered": true })))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/integrations/slack")
            .post(connect)
            .get(list)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/integrations/slack/test")
            .post(test)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/integrations/slack/{id}")
            .patch(update)
            .delete(disconnect)
            .default_service(web::to(method_not_allowed)),
    );
}
