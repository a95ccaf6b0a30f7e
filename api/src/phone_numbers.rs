//! `/api/phone-numbers` and `/api/credentials`.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use crate::users::PageQuery;
use actix_web::{web, HttpResponse};
use application::phone_numbers::{CredentialView, PhoneNumberView, SECRET_FIELD_LIMIT};
use application::AppError;
use domain::openapi::{integer, name, text};
use domain::phone::PhoneNumber;
use domain::phone_numbers::CREDENTIAL_NAME_CHARS;
use domain::phone_numbers::{CredentialProvider, NumberProvider, NumberSource};
use domain::sync::SyncStatus;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// Read as JSON and checked field by field in `application::phone_numbers`
/// (so an error names the field); the schema below says the same rules.
#[derive(Deserialize)]
pub struct CredentialBody {
    provider: String,
    name: String,
    /// Everything else is the provider's secret material.
    #[serde(flatten)]
    secret: Map<String, Value>,
}

/// A SIP gateway: an IPv6 address, or an IPv4 address or host name (with a dot).
fn gateway_host() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(253))
                .pattern(Some("^[^\\u0000]*\\.[^\\u0000]*$")),
        )
        .into()
}

/// A secret field of a provider's credential: name, schema, required.
type SecretField = (&'static str, Schema, bool);

impl PartialSchema for CredentialBody {
    fn schema() -> RefOr<Schema> {
        let secret = || text::<SECRET_FIELD_LIMIT>();
        let required_secret = || name::<SECRET_FIELD_LIMIT>();
        let gateway = ObjectBuilder::new()
            .property("ip", gateway_host())
            .required("ip")
            .property("port", integer::<1, 65_535>())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let providers: [(&str, Vec<SecretField>); 4] = [
            (
                "twilio",
                vec![
                    (
                        "accountSid",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^AC[0-9a-zA-Z]{32}$"))
                            .into(),
                        true,
                    ),
                    ("authToken", required_secret(), true),
                ],
            ),
            (
                "vonage",
                vec![
                    ("apiKey", required_secret(), true),
                    ("apiSecret", required_secret(), true),
                ],
            ),
            ("telnyx", vec![("apiKey", required_secret(), true)]),
            (
                "byo-sip-trunk",
                vec![
                    (
                        "gateways",
                        ArrayBuilder::new().items(gateway).min_items(Some(1)).into(),
                        true,
                    ),
                    ("username", secret(), false),
                    ("password", secret(), false),
                ],
            ),
        ];
        let mut one_of = OneOfBuilder::new();
        for (provider, fields) in providers {
            let mut shape = ObjectBuilder::new()
                .property(
                    "provider",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([provider])),
                )
                .required("provider")
                .property("name", name::<CREDENTIAL_NAME_CHARS>())
                .required("name")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            for (field, schema, required) in fields {
                shape = shape.property(field, schema);
                if required {
                    shape = shape.required(field);
                }
            }
            one_of = one_of.item(shape);
        }
        one_of.into()
    }
}

impl ToSchema for CredentialBody {}

#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    credentials: Vec<CredentialView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberList {
    phone_numbers: Vec<PhoneNumberView>,
}

/// A number's agent changed; Vapi learns it in the background.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    id: Uuid,
    agent_id: Option<Uuid>,
    sync_status: SyncStatus,
}

/// Where a number comes from.
fn number_provider() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(NumberProvider::KNOWN.iter().map(NumberProvider::as_str)))
        .into()
}

/// Store provider credentials (encrypted; only a hint is ever shown again).
#[utoipa::path(post, path = "/api/credentials", tag = "phone-numbers", security(("bearer" = [])), request_body = CredentialBody,
    responses((status = 201, description = "Stored", body = CredentialView),
        (status = 409, description = "A credential of that name exists", body = crate::error::ErrorBody)))]
pub async fn add_credential(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CredentialBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let view = state
        .numbers
        .add_credential(
            &caller.0,
            &CredentialProvider::parse(&body.provider),
            &body.name,
            &Value::Object(body.secret),
        )
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// The organization's credentials (hints only).
#[utoipa::path(get, path = "/api/credentials", tag = "phone-numbers", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of credentials", body = CredentialList)))]
pub async fn list_credentials(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let credentials = state.numbers.list_credentials(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(CredentialList { credentials }))
}

/// Delete a credential no number uses.
#[utoipa::path(delete, path = "/api/credentials/{id}", tag = "phone-numbers", security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "Numbers still use it", body = crate::error::ErrorBody)))]
pub async fn remove_credential(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.numbers.remove_credential(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Buy a number from Vapi (`areaCode`) or import one (`number` with a credential).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NumberBody {
    #[schema(schema_with = number_provider)]
    provider: String,
    name: Option<String>,
    /// Vapi: the area code to buy in.
    #[schema(pattern = "^[2-9][0-9]{2}$")]
    area_code: Option<String>,
    /// Imports: the E.164 number.
    #[schema(schema_with = domain::openapi::optional_phone)]
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

/// Buy or import a phone number.
#[utoipa::path(post, path = "/api/phone-numbers", tag = "phone-numbers", security(("bearer" = [])), request_body = NumberBody,
    responses((status = 201, description = "Recorded; Vapi provisions it in the background", body = PhoneNumberView),
        (status = 404, description = "The credential or agent is not in this organization", body = crate::error::ErrorBody),
        (status = 409, description = "The number is already imported", body = crate::error::ErrorBody),
        (status = 429, description = "The organization's daily purchase limit is reached", body = crate::error::ErrorBody)))]
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
    let source = match NumberProvider::parse(&body.provider) {
        NumberProvider::Vapi => NumberSource::Vapi {
            area_code: required("areaCode", body.area_code.clone())?,
        },
        NumberProvider::Twilio => {
            let credential_id = match (body.credential_id, &body.account_sid, &body.auth_token) {
                (Some(id), _, _) => id,
                (None, Some(sid), Some(token)) => {
                    let secret = serde_json::json!({ "accountSid": sid, "authToken": token });
                    state
                        .numbers
                        .add_credential(
                            &caller.0,
                            &CredentialProvider::Twilio,
                            "Twilio (imported with a number)",
                            &secret,
                        )
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
        NumberProvider::Vonage => NumberSource::Vonage {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        NumberProvider::Telnyx => NumberSource::Telnyx {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        NumberProvider::ByoSip => NumberSource::ByoSip {
            number: number()?,
            credential_id: required("credentialId", body.credential_id)?,
        },
        NumberProvider::Other(other) => {
            return Err(AppError::validation(
                "provider",
                format!("provider {other:?} must be one of {}", NumberProvider::listed()),
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

/// The organization's phone numbers.
#[utoipa::path(get, path = "/api/phone-numbers", tag = "phone-numbers", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of numbers", body = PhoneNumberList)))]
pub async fn list_numbers(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let numbers = state.numbers.list(&caller.0, page.page()?).await?;
    Ok(HttpResponse::Ok().json(PhoneNumberList { phone_numbers: numbers }))
}

/// A phone number with its sync status.
#[utoipa::path(get, path = "/api/phone-numbers/{id}", tag = "phone-numbers", security(("bearer" = [])),
    responses((status = 200, description = "The number", body = PhoneNumberView)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignBody {
    /// The agent that answers the number; `null` unassigns.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>, required = true)]
    agent_id: Option<Option<Uuid>>,
}

/// Route a number to an agent (or to none).
#[utoipa::path(patch, path = "/api/phone-numbers/{id}", tag = "phone-numbers", security(("bearer" = [])), request_body = AssignBody,
    responses((status = 200, description = "Assigned", body = Assigned)))]
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
    Ok(HttpResponse::Ok().json(Assigned {
        id: *id,
        agent_id,
        sync_status: SyncStatus::Pending,
    }))
}

/// Release a number (at Vapi too).
#[utoipa::path(delete, path = "/api/phone-numbers/{id}", tag = "phone-numbers", security(("bearer" = [])),
    responses((status = 204, description = "Released")))]
pub async fn remove_number(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.numbers.remove(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/credentials").post(add_credential).get(list_credentials))
        .service(resource("/api/credentials/{id}").delete(remove_credential))
        .service(resource("/api/phone-numbers").post(add_number).get(list_numbers))
        .service(
            resource("/api/phone-numbers/{id}")
                .get(get_number)
                .patch(assign)
                .delete(remove_number),
        );
}
