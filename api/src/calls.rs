//! `/api/calls` (history, details, outcomes) and `/api/dashboard/stats`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpResponse};
use application::calls::{CallFilter, OutboundRequest};
use application::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::calls::{CallStatus, Outcome};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    status: Option<String>,
    agent_id: Option<Uuid>,
    direction: Option<String>,
    outcome: Option<String>,
    phone: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
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

fn one_of(field: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(AppError::validation(field, format!("{field} must be one of {}", allowed.join(", "))).into())
        }
        _ => Ok(()),
    }
}

fn parse_outcome(raw: &str) -> Result<Outcome, AppError> {
    raw.parse()
        .map_err(|_| AppError::validation("outcome", format!("outcome must be one of {}", Outcome::listed())))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::validation("limit", "limit must be between 1 and 200").into());
    }
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
    one_of("direction", &query.direction, &["inbound", "outbound", "web"])?;
    let outcome = query.outcome.as_deref().map(parse_outcome).transpose()?;
    let filter = CallFilter {
        status,
        agent_id: query.agent_id,
        direction: query.direction,
        outcome,
        phone: query.phone,
        from: query.from,
        to: query.to,
        after: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    };
    let calls = state.call_history.list(caller.0.organization_id, &filter).await?;
    let next_cursor = (calls.len() as i64 == limit)
        .then(|| calls.last().map(|c| encode_cursor(c.created_at, c.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "calls": calls, "nextCursor": next_cursor })))
}

pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let call = state
        .call_history
        .get(caller.0.organization_id, *id)
        .await?
        .ok_or_else(|| AppError::not_found("call"))?;
    Ok(HttpResponse::Ok().json(call))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    outcome: String,
    notes: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartCall {
    agent_id: Uuid,
    phone_number_id: Uuid,
    customer_number: String,
}

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
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "status": "requested" })))
}

pub async fn dashboard(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.call_history.dashboard(caller.0.organization_id).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/calls")
            .get(list)
            .post(start)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/calls/{id}")
            .get(get)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/calls/{id}/outcome")
            .post(set_outcome)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/dashboard/stats")
            .get(dashboard)
            .default_service(web::to(method_not_allowed)),
    );
}
