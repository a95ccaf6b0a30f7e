//! `/api/auth/*` and the bearer-token extractor every other route uses.

use crate::body::Json;
use crate::error::ApiError;
use crate::server::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use application::auth::{Registration, Session, SignedIn};
use application::ErrorKind;
use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: String,
    organization_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetConfirmBody {
    token: String,
    new_password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionResponse {
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

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let signed_in = state.auth.login(&body.email, &body.password, &client_of(&req)).await?;
    Ok(HttpResponse::Ok().json(SessionResponse::from(signed_in)))
}

pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.profile(caller.0).await?))
}

pub async fn request_password_reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<ResetRequestBody>,
) -> Result<HttpResponse, ApiError> {
    state.auth.request_password_reset(&body.email, &client_of(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "message": "if an account exists for this address, a reset link is on its way"
    })))
}

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
    use crate::error::method_not_allowed;
    cfg.service(
        web::resource("/api/auth/register")
            .post(register)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/login")
            .post(login)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/me")
            .get(me)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/password-reset/request")
            .post(request_password_reset)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/auth/password-reset/confirm")
            .post(confirm_password_reset)
            .default_service(web::to(method_not_allowed)),
    );
}
