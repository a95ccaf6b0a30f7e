//! `/api/phone-numbers` and `/api/credentials`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{method_not_allowed, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::AppError;
use domain::phone::PhoneNumber;
use domain::phone_numbers::NumberSource;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Deserialize)]
pub struct CredentialBody {
    provider: String,
    name: String,
    /// Everything else is the provider's secret material.
    #[serde(flatten)]
    secret: Map<String, Value>,
}

pub async fn add_credential(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CredentialBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let view = state
        .numbers
        .add_credential(&caller.0, &body.provider, &body.name, &Value::Object(body.secret))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

pub async fn list_credentials(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let credentials = state.numbers.list_credentials(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "credentials": credentials })))
}

pub async fn remove_credential(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.numbers.remove_credential(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NumberBody {
    provider: String,
    name: Option<String>,
    area_code: Option<String>,
    number: Option<String>,
    credential_id: Option<Uuid>,
    /// Twilio numbers may bring their credentials inline.
    account_sid: Option<String>,
    auth_token: Option<String>,
    agent_id: Option<Uuid>,
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| AppError::validation(field, format!("{field} is required for this provider")).into())
}

pub async fn add_number(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<NumberBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let number = || -> Result<PhoneNumber, ApiError> {
        PhoneNumber::parse(&required("number", body.number.clone())?)
            .map_err(|e| AppError::validation("number", e.to_string()).into())
    };
    let source = match body.provider.as_str() {
        "vapi" => NumberSource::Vapi {
            area_code: required("areaCode", body.area_code.clone())?,
        },
        "twilio" => {
            let credential_id = match (body.credential_id, &body.account_sid, &body.auth_token) {
                (Some(id), _, _) => id,
                (None, Some(sid), Some(token)) => {
                    let secret = serde_json::json!({ "accountSid": sid, "authToken": token });
                    state
                        .numbers
                        .add_credential(&caller.0, "twilio", "Twilio (imported with a number)", &secret)
                        .await?
                        .id
                }
                _ => {
                    return Err(
                        AppError::validation("credentialId", "give credentialId, or accountSid and authToken").into(),
                    )
                }
            };
            NumberSource::Twilio {
                number: number()?,
                credential_id,
            }
        }
        "vonage" => NumberSource::Vonage {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        "telnyx" => NumberSource::Telnyx {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        "byo-sip" => NumberSource::ByoSip {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        other => {
            return Err(AppError::validation(
                "provider",
                format!("provider {other:?} must be one of vapi, twilio, vonage, telnyx, byo-sip"),
            )
            .into())
        }
    };
    let view = state
        .numbers
        .add_number(&caller.0, body.name, source, body.agent_id)
        .await?;
    Ok(HttpResponse::Created().json(view))
}

pub async fn list_numbers(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let numbers = state.numbers.list(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "phoneNumbers": numbers })))
}

pub async fn get_number(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.numbers.get(&caller.0, *id).await?))
}

/// Distinguishes an absent `agentId` from `null` (unassign).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignBody {
    #[serde(default, deserialize_with = "present")]
    agent_id: Option<Option<Uuid>>,
}

pub async fn assign(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let agent_id = body
        .into_inner()
        .agent_id
        .ok_or_else(|| AppError::validation("agentId", "agentId (or null) is required"))?;
    state.numbers.assign(&caller.0, *id, agent_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "agentId": agent_id, "syncStatus": "pending" })))
}

pub async fn remove_number(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.numbers.remove(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/credentials")
            .post(add_credential)
            .get(list_credentials)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/credentials/{id}")
            .delete(remove_credential)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/phone-numbers")
            .post(add_number)
            .get(list_numbers)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/phone-numbers/{id}")
            .get(get_number)
            .patch(assign)
            .delete(remove_number)
            .default_service(web::to(method_not_allowed)),
    );
}
