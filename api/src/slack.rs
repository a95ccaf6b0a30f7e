//! `/api/integrations/slack`.

use crate::auth::Caller;
use crate::body::{parse_named, BodyName, Fields, Json};
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::slack::{IntegrationStatus, SlackIntegrationView, TestDelivery};
use domain::openapi::name;
use domain::slack::Preferences;
use domain::slack::WORKSPACE_NAME_CHARS;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connect {
    #[schema(schema_with = name::<WORKSPACE_NAME_CHARS>)]
    workspace_name: String,
    /// A Slack incoming-webhook URL; the pattern shows the default allowed
    /// origin (`SLACK_WEBHOOK_ORIGINS` may allow others, e.g. a staging fake).
    #[schema(pattern = "^https://hooks\\.slack\\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+$")]
    webhook_url: String,
    #[schema(pattern = "^#[^\\u0000]{1,80}$")]
    channel: String,
    #[schema(value_type = Option<Preferences>)]
    preferences: Option<serde_json::Value>,
}

/// An integration after a command.
#[derive(Serialize, ToSchema)]
pub struct IntegrationState {
    id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<IntegrationStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    integrations: Vec<SlackIntegrationView>,
}

impl BodyName for Preferences {
    const BODY_NAME: &'static str = "preferences";
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestMessage {
    integration_id: Uuid,
}

/// Connect a Slack channel by its incoming webhook (owners and admins).
#[utoipa::path(post, path = "/api/integrations/slack", tag = "slack", security(("bearer" = [])), request_body = Connect,
    responses((status = 201, description = "Connected", body = IntegrationState)))]
pub async fn connect(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<Connect>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let preferences = match b.preferences {
        // Parsed here rather than by the body's extractor, so that a bad time
        // zone or mention is a 400 naming where it is (`timezone`, `routes.hot_lead.mentions[0]`…).
        Some(raw) => parse_named(raw, Preferences::BODY_NAME)?,
        // Mute hours and the daily summary follow the organization's zone unless told otherwise.
        None => Preferences {
            timezone: state.organization.settings(&caller.0).await?.timezone,
            ..Preferences::default()
        },
    };
    let id = state
        .slack
        .connect(&caller.0, b.workspace_name, b.channel, &b.webhook_url, preferences)
        .await?;
    Ok(HttpResponse::Created().json(IntegrationState {
        id,
        status: Some(IntegrationStatus::Active),
    }))
}

/// Slack integrations with their status.
#[utoipa::path(get, path = "/api/integrations/slack", tag = "slack", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of integrations", body = IntegrationList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let integrations = state.slack.list(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(IntegrationList { integrations }))
}

/// Change routing, mentions, templates, mute hours and the summary time.
#[utoipa::path(patch, path = "/api/integrations/slack/{id}", tag = "slack", security(("bearer" = [])), request_body = Preferences,
    responses((status = 200, description = "Changed", body = IntegrationState)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    preferences: Fields<Preferences>,
) -> Result<HttpResponse, ApiError> {
    state.slack.update_preferences(&caller.0, *id, preferences.0).await?;
    Ok(HttpResponse::Ok().json(IntegrationState { id: *id, status: None }))
}

/// Disconnect.
#[utoipa::path(delete, path = "/api/integrations/slack/{id}", tag = "slack", security(("bearer" = [])),
    responses((status = 204, description = "Disconnected")))]
pub async fn disconnect(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.slack.disconnect(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Post a test message now.
#[utoipa::path(post, path = "/api/integrations/slack/test", tag = "slack", security(("bearer" = [])), request_body = TestMessage,
    responses((status = 200, description = "Whether Slack took it, and if not why", body = TestDelivery)))]
pub async fn test(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<TestMessage>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.slack.send_test(&caller.0, body.integration_id).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/integrations/slack").post(connect).get(list))
        .service(resource("/api/integrations/slack/test").post(test))
        .service(
            resource("/api/integrations/slack/{id}")
                .patch(update)
                .delete(disconnect),
        );
}
