//! Script variants and A/B tests.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use domain::ab_testing::{SuccessOutcome, TestSettings, VariantSpec};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVariant {
    name: String,
    prompt: String,
    #[serde(default)]
    is_control: bool,
    traffic_percent: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateVariant {
    name: Option<String>,
    prompt: Option<String>,
    is_control: Option<bool>,
    traffic_percent: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTest {
    name: String,
    variant_ids: Vec<Uuid>,
    success_outcome: Option<SuccessOutcome>,
    min_sample_size: Option<u32>,
    #[serde(default)]
    auto_promote: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclareWinner {
    variant_id: Uuid,
}

pub async fn create_variant(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    body: Json<CreateVariant>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let spec = VariantSpec {
        name: b.name,
        prompt: b.prompt,
        is_control: b.is_control,
        traffic_percent: b.traffic_percent,
    };
    Ok(HttpResponse::Created().json(state.ab_testing.create_variant(&caller.0, *agent, spec).await?))
}

pub async fn list_variants(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let variants = state.ab_testing.variants(&caller.0, *agent, page.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "variants": variants })))
}

pub async fn update_variant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<UpdateVariant>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let view = state
        .ab_testing
        .update_variant(&caller.0, *id, |spec| VariantSpec {
            name: b.name.unwrap_or(spec.name),
            prompt: b.prompt.unwrap_or(spec.prompt),
            is_control: b.is_control.unwrap_or(spec.is_control),
            traffic_percent: b.traffic_percent.unwrap_or(spec.traffic_percent),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn delete_variant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.ab_testing.delete_variant(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn start_test(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    body: Json<StartTest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let settings = TestSettings {
        name: b.name,
        success_outcome: b.success_outcome.unwrap_or(SuccessOutcome::Qualified),
        min_sample_size: b.min_sample_size.unwrap_or(100),
        auto_promote: b.auto_promote,
    };
    let id = state
        .ab_testing
        .start_test(&caller.0, *agent, settings, &b.variant_ids)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id, "status": "running" })))
}

pub async fn tests_of_agent(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tests = state.ab_testing.tests_of_agent(&caller.0, *agent, page.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "abTests": tests })))
}

pub async fn results(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ab_testing.results(&caller.0, *id).await?))
}

pub async fn declare_winner(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<DeclareWinner>,
) -> Result<HttpResponse, ApiError> {
    state.ab_testing.declare_winner(&caller.0, *id, body.variant_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "status": "completed", "winnerId": body.variant_id })))
}

pub async fn pause(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.ab_testing.set_paused(&caller.0, *id, true).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "status": "paused" })))
}

pub async fn resume(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.ab_testing.set_paused(&caller.0, *id, false).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "status": "running" })))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(method_not_allowed);
    cfg.service(
        web::resource("/api/agents/{id}/variants")
            .post(create_variant)
            .get(list_variants)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/variants/{id}")
            .patch(update_variant)
            .delete(delete_variant)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/agents/{id}/ab-tests")
            .post(start_test)
            .get(tests_of_agent)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/ab-tests/{id}")
            .get(results)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/ab-tests/{id}/declare-winner")
            .post(declare_winner)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/ab-tests/{id}/pause")
            .post(pause)
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/api/ab-tests/{id}/resume")
            .post(resume)
            .default_service(not_allowed()),
    );
}
