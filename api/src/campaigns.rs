//! `/api/campaigns` (outbound campaigns) and `/api/dnc` (the organization's do-not-call list).

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError, ErrorBody};
use crate::server::AppState;
use crate::users::{PageQuery, PAGE_LIMIT};
use actix_web::{web, HttpResponse};
use application::campaigns::{CampaignView, DncStatus, Steer};
use application::AppError;
use domain::campaigns::{CampaignSettings, CampaignStatus, DncReason};
use domain::openapi::optional_integer;
use domain::phone::PhoneNumber;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only campaigns in this status.
    status: Option<CampaignStatus>,
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
    #[param(schema_with = optional_integer::<0, { i64::MAX }>)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    campaigns: Vec<CampaignView>,
}

/// Create a campaign, in draft.
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])), request_body = CampaignSettings,
    responses((status = 201, description = "Created, in draft", body = CampaignView)))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CampaignSettings>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(state.campaigns.create(&caller.0, body.into_inner()).await?))
}

/// The organization's campaigns (archived ones left out), newest first.
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "A page of campaigns", body = CampaignList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::new(query.limit, query.offset).page()?;
    let campaigns = state.campaigns.list(&caller.0, query.status, page).await?;
    Ok(HttpResponse::Ok().json(CampaignList { campaigns }))
}

/// A campaign with its settings and progress.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "The campaign", body = CampaignView)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.get(&caller.0, *id).await?))
}

/// Change a campaign's settings: a JSON merge patch (absent keeps, `null`
/// clears). Everything may change in draft, scheduled and paused; while
/// running only `name` and `description`.
#[utoipa::path(patch, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    request_body(content = Object, description = "Fields of the campaign's settings to change"),
    responses((status = 200, description = "The changed campaign", body = CampaignView),
        (status = 409, description = "Not editable in this status (`campaign_not_editable`)", body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.update(&caller.0, *id, &body).await?))
}

/// Archive a campaign: hidden from lists, history kept. A running campaign is paused or cancelled first.
#[utoipa::path(delete, path = "/api/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    responses((status = 204, description = "Archived"),
        (status = 409, description = "The campaign is running (`campaign_running`)", body = ErrorBody)))]
pub async fn archive(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.campaigns.archive(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn steer(state: &AppState, caller: &Caller, id: Uuid, steer: Steer) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.campaigns.steer(&caller.0, id, steer).await?))
}

/// Start a draft: running now, or scheduled until its `scheduledStart`.
#[utoipa::path(post, path = "/api/campaigns/{id}/start", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Running or scheduled", body = CampaignView),
        (status = 409, description = "Not a draft (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn start(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Start).await
}

/// Pause a running campaign: no new dials; calls in flight finish.
#[utoipa::path(post, path = "/api/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Paused", body = CampaignView),
        (status = 409, description = "Not running (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn pause(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Pause).await
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Running", body = CampaignView),
        (status = 409, description = "Not paused (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn resume(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Resume).await
}

/// Cancel a campaign that is not completed: no more dials, ever.
#[utoipa::path(post, path = "/api/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, description = "Cancelled", body = CampaignView),
        (status = 409, description = "Already completed or cancelled (`campaign_invalid_transition`)", body = ErrorBody)))]
pub async fn cancel(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    steer(&state, &caller, *id, Steer::Cancel).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncBody {
    #[schema(value_type = PhoneNumber)]
    phone: String,
    reason: DncReason,
}

fn parse_phone(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| AppError::validation("phone", e.to_string()).into())
}

/// Put a number on the organization's do-not-call list (listing it again keeps the first listing).
#[utoipa::path(post, path = "/api/dnc", tag = "campaigns", security(("bearer" = [])), request_body = DncBody,
    responses((status = 201, description = "Listed", body = DncStatus)))]
pub async fn add_dnc(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<DncBody>,
) -> Result<HttpResponse, ApiError> {
    let phone = parse_phone(&body.phone)?;
    Ok(HttpResponse::Created().json(state.dnc.add(&caller.0, phone, body.reason).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncQuery {
    /// Check one number (any format a person types; answered in E.164).
    phone: Option<String>,
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
    #[param(schema_with = optional_integer::<0, { i64::MAX }>)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DncList {
    numbers: Vec<DncStatus>,
}

/// One number's standing, or a page of the list.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum DncAnswer {
    One(DncStatus),
    Page(DncList),
}

/// With `phone`: that number's standing (`listed: false` when absent). Without: the listed numbers, newest first.
#[utoipa::path(get, path = "/api/dnc", tag = "campaigns", security(("bearer" = [])), params(DncQuery),
    responses((status = 200, description = "A number's standing, or a page of the list", body = DncAnswer)))]
pub async fn dnc(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DncQuery>,
) -> Result<HttpResponse, ApiError> {
    let answer = match &query.phone {
        Some(raw) => DncAnswer::One(state.dnc.status(&caller.0, &parse_phone(raw)?).await?),
        None => {
            let page = PageQuery::new(query.limit, query.offset).page()?;
            DncAnswer::Page(DncList {
                numbers: state.dnc.list(&caller.0, page).await?,
            })
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// Take a number off the list (owners and admins; recorded with who did it).
#[utoipa::path(delete, path = "/api/dnc/{phone}", tag = "campaigns", security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number, E.164 (`+` written `%2B`)")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not on the list (`dnc_not_listed`)", body = ErrorBody)))]
pub async fn remove_dnc(
    state: web::Data<AppState>,
    caller: Caller,
    phone: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.dnc.remove(&caller.0, parse_phone(&phone)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/campaigns")
            .post(create)
            .get(list)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/campaigns/{id}")
            .get(get)
            .patch(update)
            .delete(archive)
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/api/campaigns/{id}/start")
            .post(start)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/campaigns/{id}/pause")
            .post(pause)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/campaigns/{id}/resume")
            .post(resume)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/campaigns/{id}/cancel")
            .post(cancel)
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/api/dnc")
            .post(add_dnc)
            .get(dnc)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/dnc/{phone}")
            .delete(remove_dnc)
            .default_service(web::to(method_not_allowed)),
    );
}
