//! The users of each organization, for `GET /api/users`.

use crate::runtime::ReadModel;
use application::auth::{Page, UserDirectory, UserStatus, UserSummary};
use application::AppError;
use async_trait::async_trait;
use domain::auth::{Role, UserEvent};
use domain::{DomainEvent, RecordedEvent};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub struct UsersProjection;

#[async_trait]
impl ReadModel for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }

    fn schema_version(&self) -> i32 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("users.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        for event in events.iter().filter(|e| e.stream_type == "user") {
            let decoded = UserEvent::decode(&event.event_type, event.event_version, &event.payload)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let user_id = Uuid::parse_str(event.stream_id.trim_start_matches("user-"))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            match decoded {
                UserEvent::UserRegistered {
                    email,
                    name,
                    role,
                    password_hash,
                    invited_by,
                    registered_at,
                    ..
                } => {
                    sqlx::query(
                        "INSERT INTO users (id, organization_id, email, name, role, status, invited_by, created_at, updated_at,
                                            password_set_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, CASE WHEN $6 = 'active' THEN $8 END)",
                    )
                    .bind(user_id)
                    .bind(event.organization_id)
                    .bind(email.as_str())
                    .bind(name)
                    .bind(role.as_str())
                    .bind(if password_hash.is_some() { "active" } else { "invited" })
                    .bind(invited_by)
                    .bind(registered_at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::PasswordChanged { changed_at, .. } => {
                    sqlx::query(
                        "UPDATE users SET status = 'active', updated_at = $2, password_set_at = $2 WHERE id = $1",
                    )
                    .bind(user_id)
                    .bind(changed_at)
                    .execute(&mut *conn)
                    .await?;
                }
                UserEvent::PasswordResetRequested { .. } => {}
            }
        }
        Ok(())
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
                    status: if row.get::<&str, _>("status") == "active" {
                        UserStatus::Active
                    } else {
                        UserStatus::Invited
                    },
                    invited_by: row.get("invited_by"),
                    created_at: row.get("created_at"),
                })
            })
            .collect()
    }
}
