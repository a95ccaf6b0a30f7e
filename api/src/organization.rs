//! `/api/organization`: the caller's organization's name, time zone and currency.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpResponse};
use application::organization::{OrganizationView, SettingsChange};
use application::AppError;
use domain::auth::NAME_CHARS;
use domain::openapi::optional_name;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeOrganization {
    #[schema(schema_with = optional_name::<NAME_CHARS>)]
    name: Option<String>,
    /// IANA time zone (`Europe/Berlin`): analytics counts days and hours in it.
    timezone: Option<String>,
    /// ISO 4217 code (`EUR`).
    currency: Option<String>,
}

/// The organization's settings.
#[utoipa::path(get, path = "/api/organization", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = OrganizationView)))]
pub async fn get(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.organization.get(&caller.0).await?))
}

/// Change the organization's settings (owners and admins); fields left out are kept.
#[utoipa::path(patch, path = "/api/organization", tag = "organization", security(("bearer" = [])),
    request_body = ChangeOrganization, responses((status = 200, body = OrganizationView)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ChangeOrganization>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = SettingsChange {
        name: body.name,
        timezone: body
            .timezone
            .map(|raw| {
                raw.parse()
                    .map_err(|reason: String| AppError::validation("timezone", reason))
            })
            .transpose()?,
        currency: body
            .currency
            .map(|raw| {
                raw.try_into()
                    .map_err(|reason: String| AppError::validation("currency", reason))
            })
            .transpose()?,
    };
    Ok(HttpResponse::Ok().json(state.organization.change(&caller.0, change).await?))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/organization").get(get).patch(update));
}
