//! Script variants and A/B tests.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::ab_testing::{TestResults, VariantView};
use domain::ab_testing::{SuccessOutcome, TestSettings, VariantSpec};
use domain::ab_testing::{TestStatus, MAX_MIN_SAMPLE_SIZE, TEST_NAME_CHARS, VARIANT_NAME_CHARS, VARIANT_PROMPT_CHARS};
use domain::openapi::{integer, name, optional_integer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVariant {
    #[schema(schema_with = name::<VARIANT_NAME_CHARS>)]
    name: String,
    #[schema(schema_with = name::<VARIANT_PROMPT_CHARS>)]
    prompt: String,
    #[serde(default)]
    is_control: bool,
    #[schema(schema_with = integer::<0, 100>)]
    traffic_percent: u32,
}

/// Absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateVariant {
    #[schema(schema_with = name::<VARIANT_NAME_CHARS>)]
    name: Option<String>,
    #[schema(schema_with = name::<VARIANT_PROMPT_CHARS>)]
    prompt: Option<String>,
    is_control: Option<bool>,
    #[schema(schema_with = optional_integer::<0, 100>)]
    traffic_percent: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTest {
    #[schema(schema_with = name::<TEST_NAME_CHARS>)]
    name: String,
    /// The agent's variants to compare: one control, traffic adding up to 100.
    #[schema(schema_with = variant_ids)]
    variant_ids: Vec<Uuid>,
    /// Default `qualified`.
    success_outcome: Option<SuccessOutcome>,
    /// Finished calls per variant before the first look (default 100).
    #[schema(schema_with = optional_integer::<1, { MAX_MIN_SAMPLE_SIZE as i64 }>)]
    min_sample_size: Option<u32>,
    #[serde(default)]
    auto_promote: bool,
}

fn variant_ids() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Uuid,
                ))),
        )
        .min_items(Some(domain::ab_testing::MIN_VARIANTS_PER_TEST))
        .unique_items(true)
        .build()
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclareWinner {
    variant_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct VariantList {
    variants: Vec<VariantView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestList {
    ab_tests: Vec<TestResults>,
}

/// Where a test stands after a command.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestState {
    id: Uuid,
    status: TestStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    winner_id: Option<Uuid>,
}

impl TestState {
    fn new(id: Uuid, status: TestStatus) -> Self {
        Self {
            id,
            status,
            winner_id: None,
        }
    }
}

/// Write a script variant of an agent's prompt (owners and admins).
#[utoipa::path(post, path = "/api/agents/{id}/variants", tag = "ab-testing", security(("bearer" = [])), request_body = CreateVariant,
    responses((status = 201, description = "Created", body = VariantView)))]
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

/// An agent's script variants.
#[utoipa::path(get, path = "/api/agents/{id}/variants", tag = "ab-testing", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of variants", body = VariantList)))]
pub async fn list_variants(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let variants = state.ab_testing.variants(&caller.0, *agent, page.page()?).await?;
    Ok(HttpResponse::Ok().json(VariantList { variants }))
}

/// Change a variant that no running test uses.
#[utoipa::path(patch, path = "/api/variants/{id}", tag = "ab-testing", security(("bearer" = [])), request_body = UpdateVariant,
    responses((status = 200, description = "The changed variant", body = VariantView),
        (status = 409, description = "A running test uses it", body = crate::error::ErrorBody)))]
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

/// Delete a variant that no running test uses.
#[utoipa::path(delete, path = "/api/variants/{id}", tag = "ab-testing", security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "A running test uses it", body = crate::error::ErrorBody)))]
pub async fn delete_variant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.ab_testing.delete_variant(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Start an A/B test over some of the agent's variants.
#[utoipa::path(post, path = "/api/agents/{id}/ab-tests", tag = "ab-testing", security(("bearer" = [])), request_body = StartTest,
    responses((status = 201, description = "Running", body = TestState),
        (status = 409, description = "The agent already runs a test", body = crate::error::ErrorBody)))]
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
    Ok(HttpResponse::Created().json(TestState::new(id, TestStatus::Running)))
}

/// An agent's A/B tests with their results.
#[utoipa::path(get, path = "/api/agents/{id}/ab-tests", tag = "ab-testing", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of tests", body = TestList)))]
pub async fn tests_of_agent(
    state: web::Data<AppState>,
    caller: Caller,
    agent: web::Path<Uuid>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tests = state.ab_testing.tests_of_agent(&caller.0, *agent, page.page()?).await?;
    Ok(HttpResponse::Ok().json(TestList { ab_tests: tests }))
}

/// A test's results: per variant conversions, intervals, p-values and the decision.
#[utoipa::path(get, path = "/api/ab-tests/{id}", tag = "ab-testing", security(("bearer" = [])),
    responses((status = 200, description = "The test", body = TestResults)))]
pub async fn results(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ab_testing.results(&caller.0, *id).await?))
}

/// End a test with a winner, whose prompt becomes the agent's.
#[utoipa::path(post, path = "/api/ab-tests/{id}/declare-winner", tag = "ab-testing", security(("bearer" = [])), request_body = DeclareWinner,
    responses((status = 200, description = "Completed", body = TestState),
        (status = 409, description = "The test is already completed", body = crate::error::ErrorBody)))]
pub async fn declare_winner(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<DeclareWinner>,
) -> Result<HttpResponse, ApiError> {
    state.ab_testing.declare_winner(&caller.0, *id, body.variant_id).await?;
    Ok(HttpResponse::Ok().json(TestState {
        winner_id: Some(body.variant_id),
        ..TestState::new(*id, TestStatus::Completed)
    }))
}

/// Pause a test: calls take the agent's own prompt meanwhile.
#[utoipa::path(post, path = "/api/ab-tests/{id}/pause", tag = "ab-testing", security(("bearer" = [])),
    responses((status = 200, description = "Paused", body = TestState),
        (status = 409, description = "The test is completed", body = crate::error::ErrorBody)))]
pub async fn pause(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.ab_testing.set_paused(&caller.0, *id, true).await?;
    Ok(HttpResponse::Ok().json(TestState::new(*id, TestStatus::Paused)))
}

/// Resume a paused test.
#[utoipa::path(post, path = "/api/ab-tests/{id}/resume", tag = "ab-testing", security(("bearer" = [])),
    responses((status = 200, description = "Running", body = TestState),
        (status = 409, description = "The test is completed", body = crate::error::ErrorBody)))]
pub async fn resume(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.ab_testing.set_paused(&caller.0, *id, false).await?;
    Ok(HttpResponse::Ok().json(TestState::new(*id, TestStatus::Running)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/agents/{id}/variants")
            .post(create_variant)
            .get(list_variants),
    )
    .service(
        resource("/api/variants/{id}")
            .patch(update_variant)
            .delete(delete_variant),
    )
    .service(
        resource("/api/agents/{id}/ab-tests")
            .post(start_test)
            .get(tests_of_agent),
    )
    .service(resource("/api/ab-tests/{id}").get(results))
    .service(resource("/api/ab-tests/{id}/declare-winner").post(declare_winner))
    .service(resource("/api/ab-tests/{id}/pause").post(pause))
    .service(resource("/api/ab-tests/{id}/resume").post(resume));
}
