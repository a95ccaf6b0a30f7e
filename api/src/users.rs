//! `/api/users`: the caller's organization's users, and invitations.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::{resource, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpResponse};
use application::auth::UserSummary;
use application::auth::{Invitation, Page};
use application::AppError;
use domain::auth::Role;
use domain::auth::NAME_CHARS;
use domain::openapi::{email, name, optional_integer};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    #[schema(schema_with = email)]
    email: String,
    #[schema(schema_with = name::<NAME_CHARS>)]
    name: String,
    #[schema(value_type = Role)]
    role: String,
}

/// Longest page a list answers.
pub const PAGE_LIMIT: i64 = 200;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 50).
    #[param(schema_with = optional_integer::<1, PAGE_LIMIT>)]
    limit: Option<i64>,
    /// Items to skip.
    #[param(schema_with = optional_integer::<0, { i64::MAX }>)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserSummary>,
}

/// A list's `limit`: 50 unless given, 1 to `PAGE_LIMIT`.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=PAGE_LIMIT).contains(&limit) {
        return Err(AppError::validation("limit", format!("limit must be between 1 and {PAGE_LIMIT}")).into());
    }
    Ok(limit)
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = page_limit(self.limit)?;
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(AppError::validation("offset", "offset must not be negative").into());
        }
        Ok(Page { limit, offset })
    }
}

/// Invite a user into the caller's organization (owners and admins).
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = InviteBody, responses(
    (status = 201, description = "Invited; a mail with a link to set a password is queued", body = UserSummary),
    (status = 409, description = "The address already has an account", body = crate::error::ErrorBody)))]
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

/// Users of the caller's organization.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "A page of users", body = UserList)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let users = state.auth.list_users(caller.0, query.page()?).await?;
    Ok(HttpResponse::Ok().json(UserList { users }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/users").post(invite).get(list));
}
