//! The users of each organization, for `GET /api/users`.

use crate::rows::{self, stream_uuid};
use crate::runtime::ReadModel;
use application::auth::{Page, UserDirectory, UserStatus, UserSummary};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::auth::{Role, UserEvent};
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A row of the `users` table.
#[derive(Serialize, Deserialize)]
struct UserRow {
    id: Uuid,
    organization_id: Uuid,
    email: String,
    name: String,
    role: Role,
    status: UserStatus,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Sessions issued before it are revoked.
    password_set_at: Option<DateTime<Utc>>,
}

fn evolve(row: &mut Option<UserRow>, id: Uuid, organization_id: Uuid, event: UserEvent) {
    match event {
        UserEvent::UserRegistered {
            email,
            name,
            role,
            password_hash,
            invited_by,
            registered_at,
            ..
        } => {
            let active = password_hash.is_some();
            *row = Some(UserRow {
                id,
                organization_id,
                email: email.as_str().to_owned(),
                name,
                role,
                status: if active {
                    UserStatus::Active
                } else {
                    UserStatus::Invited
                },
                invited_by,
                created_at: registered_at,
                updated_at: registered_at,
                password_set_at: active.then_some(registered_at),
            });
        }
        UserEvent::PasswordChanged { changed_at, .. } => {
            if let Some(user) = row {
                user.status = UserStatus::Active;
                user.updated_at = changed_at;
                user.password_set_at = Some(changed_at);
            }
        }
        UserEvent::PasswordResetRequested { .. } => {}
    }
}

pub struct UsersProjection;

#[async_trait]
impl ReadModel for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }

    fn schema_version(&self) -> i32 {
        2
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["user"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("users.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let changes = events
            .iter()
            .map(|event| {
                Ok((
                    stream_uuid(event)?,
                    (event.organization_id, rows::decode::<UserEvent>(event)?),
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        rows::evolve_batch(conn, "users", changes, |row, id, (organization_id, event)| {
            evolve(row, id, organization_id, event)
        })
        .await
    }
}

#[derive(Clone)]
pub struct PgUserDirectory {
    pool: PgPool,
}

impl PgUserDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserDirectory for PgUserDirectory {
    async fn password_set_at(&self, user_id: Uuid) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
        sqlx::query_scalar("SELECT password_set_at FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
            .map_err(|e| AppError::internal("reading a user's password time", e))
    }

    async fn list(&self, organization_id: Uuid, page: Page) -> Result<Vec<UserSummary>, AppError> {
        let rows = sqlx::query(
            "SELECT id, email, name, role, status, invited_by, created_at FROM users
             WHERE organization_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3",
        )
        .bind(organization_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("listing users", e))?;
        rows.iter()
            .map(|row| {
                let role: String = row.get("role");
                Ok(UserSummary {
                    id: row.get("id"),
                    email: row.get("email"),
                    name: row.get("name"),
                    role: role
                        .parse::<Role>()
                        .map_err(|e| AppError::internal("reading a role", e))?,
                    // Written from `UserStatus` only.
                    status: rows::text_enum(row.get("status"))?,
                    invited_by: row.get("invited_by"),
                    created_at: row.get("created_at"),
                })
            })
            .collect()
    }
}
