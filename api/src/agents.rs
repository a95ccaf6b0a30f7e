//! `/api/agents` and `/api/voices`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::agents::AgentChanges;
use application::agents::AgentView;
use application::AppError;
use domain::agents::{AgentSpec, ModelSettings, VoiceSettings};
use domain::agents::{FIRST_MESSAGE_CHARS, NAME_CHARS, SYSTEM_PROMPT_CHARS};
use domain::analytics::ChecklistPoint;
use domain::calls::OutcomeRule;
use domain::openapi::{name, optional_name, optional_phone};
use domain::phone::PhoneNumber;
use domain::voices::Voice;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAgent {
    #[schema(schema_with = name::<NAME_CHARS>)]
    name: String,
    #[schema(schema_with = name::<SYSTEM_PROMPT_CHARS>)]
    system_prompt: String,
    #[schema(schema_with = optional_name::<FIRST_MESSAGE_CHARS>)]
    first_message: Option<String>,
    voice: VoiceSettings,
    /// Default `en-US`.
    #[schema(pattern = "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
    language: Option<String>,
    #[schema(schema_with = optional_phone)]
    transfer_number: Option<String>,
    model: Option<ModelSettings>,
    #[schema(value_type = Option<OutcomeRule>)]
    outcome_rule: Option<serde_json::Value>,
}

/// Absent fields are kept; `null` clears an optional one.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAgent {
    #[schema(schema_with = name::<NAME_CHARS>)]
    name: Option<String>,
    #[schema(schema_with = name::<SYSTEM_PROMPT_CHARS>)]
    system_prompt: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = optional_name::<FIRST_MESSAGE_CHARS>)]
    first_message: Option<Option<String>>,
    voice: Option<VoiceSettings>,
    #[schema(pattern = "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
    language: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = optional_phone)]
    transfer_number: Option<Option<String>>,
    model: Option<ModelSettings>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<OutcomeRule>)]
    outcome_rule: Option<Option<serde_json::Value>>,
}

/// The filter of a list; its page is a [`PageQuery`] read from the same query
/// string (not `#[serde(flatten)]`, which would keep `limit=10` from parsing as a number).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentFilter {
    /// Only active (or only inactive) agents.
    active: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    agents: Vec<AgentView>,
}

#[derive(Serialize, ToSchema)]
pub struct VoiceList {
    voices: &'static [Voice],
}

/// Create an agent; it is pushed to Vapi in the background (`syncStatus`).
#[utoipa::path(post, path = "/api/agents", tag = "agents", security(("bearer" = [])), request_body = CreateAgent,
    responses((status = 201, description = "Created", body = AgentView)))]
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

/// The organization's agents.
#[utoipa::path(get, path = "/api/agents", tag = "agents", security(("bearer" = [])), params(AgentFilter, PageQuery),
    responses((status = 200, description = "A page of agents", body = AgentList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<AgentFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let agents = state.agents.list(&caller.0, filter.active, page.page()?).await?;
    Ok(HttpResponse::Ok().json(AgentList { agents }))
}

/// An agent with its Vapi sync status.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])),
    responses((status = 200, description = "The agent", body = AgentView)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.get(&caller.0, *id).await?))
}

/// Change an agent.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])),
    request_body = UpdateAgent, responses((status = 200, description = "The changed agent", body = AgentView)))]
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

/// Delete an agent (and its Vapi assistant).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.agents.delete(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Let the agent take calls.
#[utoipa::path(post, path = "/api/agents/{id}/activate", tag = "agents", security(("bearer" = [])),
    responses((status = 200, description = "The agent", body = AgentView)))]
pub async fn activate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.set_active(&caller.0, *id, true).await?))
}

/// Stop the agent taking calls.
#[utoipa::path(post, path = "/api/agents/{id}/deactivate", tag = "agents", security(("bearer" = [])),
    responses((status = 200, description = "The agent", body = AgentView)))]
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.set_active(&caller.0, *id, false).await?))
}

/// The voice catalogue.
#[utoipa::path(get, path = "/api/voices", tag = "agents", security(("bearer" = [])),
    responses((status = 200, description = "Every voice an agent may use", body = VoiceList)))]
pub async fn voices(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(VoiceList {
        voices: domain::voices::VOICES,
    })
}

/// An agent's script-adherence checklist: the points its turns are scored on.
#[utoipa::path(get, path = "/api/agents/{id}/adherence-checklist", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChecklistPoint>)))]
pub async fn adherence_checklist(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.agents.adherence_checklist(&caller.0, *id).await?))
}

/// Replace an agent's checklist (`[{point, phrases[]}]`, at most 50 points of 20 phrases; `[]` stops the scoring).
/// A point is covered when the agent says one of its phrases, exactly or with a normalized Levenshtein
/// similarity of at least 0.8 over as many words.
#[utoipa::path(put, path = "/api/agents/{id}/adherence-checklist", tag = "agents", security(("bearer" = [])),
    request_body = Vec<ChecklistPoint>, responses((status = 200, body = Vec<ChecklistPoint>)))]
pub async fn set_adherence_checklist(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<Vec<ChecklistPoint>>,
) -> Result<HttpResponse, ApiError> {
    let points = state
        .agents
        .set_adherence_checklist(&caller.0, *id, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(points))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/agents").post(create).get(list))
        .service(resource("/api/agents/{id}").get(get).patch(update).delete(delete))
        .service(
            resource("/api/agents/{id}/adherence-checklist")
                .get(adherence_checklist)
                .put(set_adherence_checklist),
        )
        .service(resource("/api/agents/{id}/activate").post(activate))
        .service(resource("/api/agents/{id}/deactivate").post(deactivate))
        .service(resource("/api/voices").get(voices));
}
