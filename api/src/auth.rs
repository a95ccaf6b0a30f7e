//! `/api/auth/*` and the bearer-token extractor every other route uses.

use crate::body::Json;
use crate::body::TEXT_LIMIT_CHARS;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::server::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use application::auth::Profile;
use application::auth::{Registration, Session, SignedIn};
use application::ErrorKind;
use chrono::{DateTime, Utc};
use domain::auth::NAME_CHARS;
use domain::openapi::{email, name, password, text};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A short answer in words.
#[derive(Serialize, ToSchema)]
pub struct Message {
    message: &'static str,
}

/// The authenticated caller. The organization always comes from here, never from a request body.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Session);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let unauthorized = |message: &str| ApiError::new(ErrorKind::Unauthorized, "unauthorized", message);
        let found = (|| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| unauthorized("authentication is not configured"))?;
            let value = req
                .headers()
                .get(header::AUTHORIZATION)
                .ok_or_else(|| unauthorized("missing Authorization: Bearer token"))?;
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
            Ok::<_, ApiError>((state.clone(), token.to_owned()))
        })();
        Box::pin(async move {
            let (state, token) = found?;
            Ok(Caller(state.auth.authenticate(&token).await?))
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(schema_with = email)]
    email: String,
    #[schema(schema_with = password)]
    password: String,
    #[schema(schema_with = name::<NAME_CHARS>)]
    name: String,
    #[schema(schema_with = name::<NAME_CHARS>)]
    organization_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(schema_with = text::<TEXT_LIMIT_CHARS>)]
    email: String,
    #[schema(schema_with = text::<TEXT_LIMIT_CHARS>)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    #[schema(schema_with = email)]
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetConfirmBody {
    #[schema(schema_with = text::<TEXT_LIMIT_CHARS>)]
    token: String,
    #[schema(schema_with = password)]
    new_password: String,
}

/// A signed-in session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    token: String,
    expires_at: DateTime<Utc>,
    user: application::auth::Profile,
}

impl From<SignedIn> for SessionResponse {
    fn from(signed_in: SignedIn) -> Self {
        Self {
            token: signed_in.token.token,
            expires_at: signed_in.token.expires_at,
            user: signed_in.profile,
        }
    }
}

/// The socket peer, not a forwarded header a client could forge.
fn client_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Create an organization and its owner; returns a session.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody, responses(
    (status = 201, description = "Registered and signed in", body = SessionResponse),
    (status = 409, description = "The address is taken", body = ErrorBody),
    (status = 429, description = "Too many registrations from this client or for this address", body = ErrorBody),
    (status = 503, description = "Password hashing is saturated; retry after `Retry-After`", body = ErrorBody)))]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let registration = Registration {
        email: body.email,
        password: body.password,
        name: body.name,
        organization_name: body.organization_name,
    };
    let signed_in = state.auth.register(registration, &client_of(&req)).await?;
    Ok(HttpResponse::Created().json(SessionResponse::from(signed_in)))
}

/// Sign in; returns a session.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Signed in", body = SessionResponse),
    (status = 401, description = "Wrong address or password", body = ErrorBody),
    (status = 429, description = "Too many attempts", body = ErrorBody),
    (status = 503, description = "Password hashing is saturated; retry after `Retry-After`", body = ErrorBody)))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let signed_in = state.auth.login(&body.email, &body.password, &client_of(&req)).await?;
    Ok(HttpResponse::Ok().json(SessionResponse::from(signed_in)))
}

/// The caller and their organization.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Profile)))]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.profile(caller.0).await?))
}

/// Mail a single-use reset link; the answer is the same whether or not the address is known.
#[utoipa::path(post, path = "/api/auth/password-reset/request", tag = "auth", request_body = ResetRequestBody, responses(
    (status = 202, description = "Accepted", body = Message),
    (status = 429, description = "Too many requests", body = ErrorBody)))]
pub async fn request_password_reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<ResetRequestBody>,
) -> Result<HttpResponse, ApiError> {
    state.auth.request_password_reset(&body.email, &client_of(&req)).await?;
    Ok(HttpResponse::Accepted().json(Message {
        message: "if an account exists for this address, a reset link is on its way",
    }))
}

/// Set a new password with a reset or invitation token; earlier sessions end.
#[utoipa::path(post, path = "/api/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirmBody, responses(
    (status = 204, description = "Password set"),
    (status = 503, description = "Password hashing is saturated; retry after `Retry-After`", body = ErrorBody)))]
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    body: Json<ResetConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .confirm_password_reset(&body.token, &body.new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::error::resource;
    cfg.service(resource("/api/auth/register").post(register))
        .service(resource("/api/auth/login").post(login))
        .service(resource("/api/auth/me").get(me))
        .service(resource("/api/auth/password-reset/request").post(request_password_reset))
        .service(resource("/api/auth/password-reset/confirm").post(confirm_password_reset));
}
