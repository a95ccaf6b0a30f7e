//! `/api/users`: the caller's organization's users, and invitations.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::ApiError;
use crate::server::AppState;
use actix_web::{web, HttpResponse};
use application::auth::{Invitation, Page};
use application::AppError;
use domain::auth::Role;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    email: String,
    name: String,
    role: String,
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl PageQuery {
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Self {
        Self { limit, offset }
    }

    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=200).contains(&limit) {
            return Err(AppError::validation("limit", "limit must be between 1 and 200").into());
        }
        if offset < 0 {
            return Err(AppError::validation("offset", "offset must not be negative").into());
        }
        Ok(Page { limit, offset })
    }
}

pub async fn invite(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let role: Role = body
        .role
        .parse()
        .map_err(|e: domain::auth::AuthError| AppError::validation("role", e.to_string()))?;
    let user = state
        .auth
        .invite(
            caller.0,
            Invitation {
                email: body.email,
                name: body.name,
                role,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(user))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let users = state.auth.list_users(caller.0, query.page()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users })))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/users")
            .post(invite)
            .get(list)
            .default_service(web::to(crate::error::method_not_allowed)),
    );
}
