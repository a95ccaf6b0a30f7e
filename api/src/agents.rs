//! `/api/agents` and `/api/voices`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::agents::AgentChanges;
use application::AppError;
use domain::agents::{AgentSpec, ModelSettings, VoiceSettings};
use domain::phone::PhoneNumber;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

/// Distinguishes an absent field (keep) from `null` (clear).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn phone(field: &str, raw: Option<String>) -> Result<Option<PhoneNumber>, ApiError> {
    raw.map(|r| PhoneNumber::parse(&r).map_err(|e| AppError::validation(field, e.to_string()).into()))
        .transpose()
}

/// Parsed here rather than by the body's extractor, so that an unknown outcome
/// is a 400 naming `outcomeRule`.
fn outcome_rule(raw: serde_json::Value) -> Result<domain::calls::OutcomeRule, ApiError> {
    serde_json::from_value(raw).map_err(|e| {
        AppError::validation(
            "outcomeRule",
            format!(
                "outcomeRule is invalid: {e}; outcomes are {}",
                domain::calls::Outcome::listed()
            ),
        )
        .into()
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAgent {
    name: String,
    system_prompt: String,
    first_message: Option<String>,
    voice: VoiceSettings,
    language: Option<String>,
    transfer_number: Option<String>,
    model: Option<ModelSettings>,
    outcome_rule: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAgent {
    name: Option<String>,
    system_prompt: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    first_message: Option<Option<String>>,
    voice: Option<VoiceSettings>,
    language: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    transfer_number: Option<Option<String>>,
    model: Option<ModelSettings>,
    #[serde(default, deserialize_with = "nullable")]
    outcome_rule: Option<Option<serde_json::Value>>,
}

/// Flat on purpose: query strings carry text, and `#[serde(flatten)]` would
/// keep `limit=10` from parsing as a number.
#[derive(Deserialize)]
pub struct ListQuery {
    active: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CreateAgent>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let spec = AgentSpec {
        name: body.name,
        system_prompt: body.system_prompt,
        first_message: body.first_message,
        voice: body.voice,
        language: body.language.unwrap_or_else(|| "en-US".into()),
        transfer_number: phone("transferNumber", body.transfer_number)?,
        model: body.model.unwrap_or_default(),
        outcome_rule: body.outcome_rule.map(outcome_rule).transpose()?,
    };
    Ok(HttpResponse::Created().json(state.agents.create(&caller.0, spec).await?))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::new(query.limit, query.offset).page()?;
    let agents = state.agents.list(&caller.0, query.active, page).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "agents": agents })))
}

pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.get(&caller.0, *id).await?))
}

pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<UpdateAgent>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let changes = AgentChanges {
        name: body.name,
        system_prompt: body.system_prompt,
        first_message: body.first_message,
        voice: body.voice,
        language: body.language,
        transfer_number: body.transfer_number.map(|n| phone("transferNumber", n)).transpose()?,
        model: body.model,
        outcome_rule: body.outcome_rule.map(|r| r.map(outcome_rule).transpose()).transpose()?,
    };
    Ok(HttpResponse::Ok().json(state.agents.update(&caller.0, *id, changes).await?))
}

pub async fn delete(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.agents.delete(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn activate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.set_active(&caller.0, *id, true).await?))
}

pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.set_active(&caller.0, *id, false).await?))
}

pub async fn voices(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "voices": domain::voices::VOICES }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/agents")
            .post(create)
            .get(list)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/agents/{id}")
            .get(get)
            .patch(update)
            .delete(delete)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/agents/{id}/activate")
            .post(activate)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/agents/{id}/deactivate")
            .post(deactivate)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/voices")
            .get(voices)
            .default_service(web::to(method_not_allowed)),
    );
}
