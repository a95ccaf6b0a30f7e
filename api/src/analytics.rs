//! `/api/analytics/*`: the dashboard's figures and their exports (SPEC §2.7).

use crate::auth::Caller;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use application::analytics::{
    Adherence, AgentStats, AnalyticsMetrics, AnalyticsQueryInput, BestTimes, CallAnalysis, ExportFormat, FunnelStage,
    OutcomeShare, Sentiment, TalkTime,
};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The parameters every analytics endpoint takes (documentation; parsed from the raw query so that
/// `agentId` and `campaignId` may repeat).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AnalyticsParams {
    /// First local date (YYYY-MM-DD) in the organization's time zone; default 29 days before `endDate`.
    #[param(rename = "startDate")]
    start_date: Option<String>,
    /// Last local date, inclusive; default today. At most 366 days after `startDate`.
    #[param(rename = "endDate")]
    end_date: Option<String>,
    /// Only these agents (repeatable, or comma-separated).
    #[param(rename = "agentId")]
    agent_id: Option<Vec<Uuid>>,
    /// Only these campaigns (repeatable, or comma-separated).
    #[param(rename = "campaignId")]
    campaign_id: Option<Vec<Uuid>>,
    /// The conversion target: `qualified` (default), `appointment` or `sale`.
    outcome: Option<String>,
    /// Fewest calls an hour, weekday or heatmap cell needs to be ranked (default 5).
    #[param(rename = "minSample")]
    min_sample: Option<i64>,
}

/// Reads the query string; repeated `agentId` / `campaignId` add up.
fn input(req: &HttpRequest) -> AnalyticsQueryInput {
    let mut input = AnalyticsQueryInput::default();
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "startDate" => input.start_date = Some(value),
            "endDate" => input.end_date = Some(value),
            "agentId" => input.agent_ids.push(value),
            "campaignId" => input.campaign_ids.push(value),
            "outcome" => input.outcome = Some(value),
            "minSample" => input.min_sample = Some(value),
            _ => {}
        }
    }
    input
}

/// The `AnalyticsMetrics` of SPEC §2.7.
#[utoipa::path(get, path = "/api/analytics/overview", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = AnalyticsMetrics)))]
pub async fn overview(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.overview(&caller.0, input(&req)).await?))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Funnel {
    /// Percent of calls reaching the target outcome.
    conversion_rate: f64,
    funnel_stages: Vec<FunnelStage>,
}

/// Calls → Contacts → Qualified → Appointments → Sales; each stage counts the calls that reached it or a later one.
#[utoipa::path(get, path = "/api/analytics/conversion-funnel", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = Funnel)))]
pub async fn funnel(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<impl Responder, ApiError> {
    let metrics = state.analytics.overview(&caller.0, input(&req)).await?;
    Ok(web::Json(Funnel {
        conversion_rate: metrics.conversion_rate,
        funnel_stages: metrics.funnel_stages,
    }))
}

/// Talk and listen time, talk ratio, monologues, interruptions and silence, from the transcripts' message timings.
#[utoipa::path(get, path = "/api/analytics/talk-time", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = TalkTime)))]
pub async fn talk_time(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.talk_time(&caller.0, input(&req)).await?))
}

/// Best hour and weekday to call, and the weekday × hour heatmap.
#[utoipa::path(get, path = "/api/analytics/best-times", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = BestTimes)))]
pub async fn best_times(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.best_times(&caller.0, input(&req)).await?))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRanking {
    agent_stats: Vec<AgentStats>,
}

/// Agents ranked by conversion rate.
#[utoipa::path(get, path = "/api/analytics/agents", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = AgentRanking)))]
pub async fn agents(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<impl Responder, ApiError> {
    Ok(web::Json(AgentRanking {
        agent_stats: state.analytics.agents(&caller.0, input(&req)).await?,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcomes {
    total_calls: i64,
    outcomes: Vec<OutcomeShare>,
}

/// Each outcome's count and share of the calls.
#[utoipa::path(get, path = "/api/analytics/outcomes", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = Outcomes)))]
pub async fn outcomes(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    let metrics = state.analytics.overview(&caller.0, input(&req)).await?;
    Ok(web::Json(Outcomes {
        total_calls: metrics.total_calls,
        outcomes: metrics.outcomes,
    }))
}

/// Sentiment per label and its trend by day.
#[utoipa::path(get, path = "/api/analytics/sentiment", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = Sentiment)))]
pub async fn sentiment(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.sentiment(&caller.0, input(&req)).await?))
}

/// Script adherence against the agents' checklists: average, per agent, trend and missed points.
#[utoipa::path(get, path = "/api/analytics/adherence", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams), responses((status = 200, body = Adherence)))]
pub async fn adherence(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.adherence(&caller.0, input(&req)).await?))
}

/// What analytics made of one call: its local day and hour, funnel stage, talk timings, sentiment and adherence
/// (with the checklist points missed).
#[utoipa::path(get, path = "/api/analytics/calls/{id}", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = CallAnalysis), (status = 404, description = "No such call in the organization")))]
pub async fn call(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<impl Responder, ApiError> {
    Ok(web::Json(state.analytics.call(&caller.0, *id).await?))
}

/// The report as an Excel workbook (`format=excel`) or a PDF (`format=pdf`).
#[utoipa::path(get, path = "/api/analytics/export", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams, ("format" = String, Query, description = "pdf or excel")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream")))]
pub async fn export(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let format = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(key, _)| key == "format")
        .map(|(_, value)| value.into_owned());
    let format = ExportFormat::parse(format.as_deref())?;
    let file = state.analytics.export(&caller.0, input(&req), format).await?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(file.file_name)],
        })
        .body(file.bytes))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/analytics/calls/{id}").get(call));
    for (path, route) in [
        ("/api/analytics/overview", web::get().to(overview)),
        ("/api/analytics/conversion-funnel", web::get().to(funnel)),
        ("/api/analytics/talk-time", web::get().to(talk_time)),
        ("/api/analytics/best-times", web::get().to(best_times)),
        ("/api/analytics/agents", web::get().to(agents)),
        ("/api/analytics/outcomes", web::get().to(outcomes)),
        ("/api/analytics/sentiment", web::get().to(sentiment)),
        ("/api/analytics/adherence", web::get().to(adherence)),
        ("/api/analytics/export", web::get().to(export)),
    ] {
        cfg.service(resource(path).route(route));
    }
}
