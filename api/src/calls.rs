//! `/api/calls` (history, details, outcomes) and `/api/dashboard/stats`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::PAGE_LIMIT;
use actix_web::{web, HttpResponse};
use application::calls::{CallDetail, CallSummary, DashboardStats};
use application::calls::{CallFilter, OutboundRequest};
use application::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::calls::NOTES_LIMIT_CHARS;
use domain::calls::{CallDirection, CallStatus, Outcome};
use domain::openapi::{optional_integer, optional_text};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[param(schema_with = known_status)]
    status: Option<String>,
    agent_id: Option<Uuid>,
    direction: Option<Direction>,
    outcome: Option<Outcome>,
    /// Part of the customer's number.
    phone: Option<String>,
    /// Calls created at or after.
    from: Option<DateTime<Utc>>,
    /// Calls created before.
    to: Option<DateTime<Utc>>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Calls per page (default 50).
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
}

/// Who called whom.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    Web,
}

impl From<Direction> for CallDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
            Direction::Web => CallDirection::Web,
        }
    }
}

/// A filter takes the statuses we know (Vapi may report others later).
fn known_status() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CallStatus::KNOWN.map(|s| s.as_str().to_owned())))
        .into()
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallList {
    calls: Vec<CallSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// A call was accepted for placing; it is dialled in the background.
#[derive(Serialize, ToSchema)]
pub struct CallRequested {
    id: Uuid,
    status: CallStatus,
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::from(AppError::validation("cursor", "cursor is not one this API returned"));
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?).map_err(|_| invalid())?;
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    Ok((
        DateTime::parse_from_rfc3339(at)
            .map_err(|_| invalid())?
            .with_timezone(&Utc),
        Uuid::parse_str(id).map_err(|_| invalid())?,
    ))
}

fn parse_outcome(raw: &str) -> Result<Outcome, AppError> {
    raw.parse()
        .map_err(|_| AppError::validation("outcome", format!("outcome must be one of {}", Outcome::listed())))
}

/// Call history, newest first, filtered and paged by cursor.
#[utoipa::path(get, path = "/api/calls", tag = "calls", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "A page of calls", body = CallList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = crate::users::page_limit(query.limit)?;
    let status = query
        .status
        .as_deref()
        .map(|raw| match CallStatus::parse(raw) {
            CallStatus::Other(_) => {
                let known = CallStatus::KNOWN.map(|s| s.as_str().to_owned()).join(", ");
                Err(AppError::validation("status", format!("status must be one of {known}")))
            }
            known => Ok(known),
        })
        .transpose()?;
    let filter = CallFilter {
        status,
        agent_id: query.agent_id,
        direction: query.direction.map(CallDirection::from),
        outcome: query.outcome,
        phone: query.phone,
        from: query.from,
        to: query.to,
        after: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        ..Default::default()
    };
    let calls = state.call_history.list(caller.0.organization_id, &filter).await?;
    let next_cursor = (calls.len() as i64 == limit)
        .then(|| calls.last().map(|c| encode_cursor(c.created_at, c.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(CallList { calls, next_cursor }))
}

/// A call with its transcript, recording, analysis and timeline.
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls", security(("bearer" = [])),
    responses((status = 200, description = "The call", body = CallDetail)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let call = state
        .call_history
        .get(caller.0.organization_id, *id)
        .await?
        .ok_or_else(|| AppError::not_found("call"))?;
    Ok(HttpResponse::Ok().json(call))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    #[schema(value_type = Outcome)]
    outcome: String,
    #[schema(schema_with = optional_text::<NOTES_LIMIT_CHARS>)]
    notes: Option<String>,
}

/// Record how a call went.
#[utoipa::path(post, path = "/api/calls/{id}/outcome", tag = "calls", security(("bearer" = [])), request_body = OutcomeBody,
    responses((status = 204, description = "Recorded")))]
pub async fn set_outcome(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<OutcomeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .calls
        .set_outcome(&caller.0, *id, parse_outcome(&body.outcome)?, body.notes)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartCall {
    agent_id: Uuid,
    phone_number_id: Uuid,
    #[schema(value_type = domain::phone::PhoneNumber)]
    customer_number: String,
}

/// Place an outbound call.
#[utoipa::path(post, path = "/api/calls", tag = "calls", security(("bearer" = [])), request_body = StartCall,
    responses((status = 202, description = "Accepted; placed in the background", body = CallRequested),
        (status = 404, description = "The agent or number is not in this organization", body = crate::error::ErrorBody),
        (status = 409, description = "The agent is inactive or the number cannot call yet", body = crate::error::ErrorBody),
        (status = 429, description = "The organization's calls-per-minute limit is reached", body = crate::error::ErrorBody)))]
pub async fn start(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<StartCall>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let customer_number = domain::phone::PhoneNumber::parse(&body.customer_number)
        .map_err(|e| AppError::validation("customerNumber", e.to_string()))?;
    let request = OutboundRequest {
        agent_id: body.agent_id,
        phone_number_id: body.phone_number_id,
        customer_number,
    };
    let id = state.outbound.request(&caller.0, request).await?;
    Ok(HttpResponse::Accepted().json(CallRequested {
        id,
        status: CallStatus::Requested,
    }))
}

/// Totals and recent calls for the dashboard.
#[utoipa::path(get, path = "/api/dashboard/stats", tag = "calls", security(("bearer" = [])),
    responses((status = 200, description = "The organization's figures", body = DashboardStats)))]
pub async fn dashboard(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.call_history.dashboard(caller.0.organization_id).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/calls").get(list).post(start))
        .service(resource("/api/calls/{id}").get(get))
        .service(resource("/api/calls/{id}/outcome").post(set_outcome))
        .service(resource("/api/dashboard/stats").get(dashboard));
}
