//! The default Mailer: mail goes into the `email_outbox` table, from which a
//! delivery worker (or an operator in development) sends it.

use application::auth::{Mailer, OutgoingEmail};
use application::AppError;
use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct OutboxMailer {
    pool: PgPool,
}

impl OutboxMailer {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: OutgoingEmail) -> Result<(), AppError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO email_outbox (id, organization_id, recipient, subject, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(email.organization_id)
        .bind(&email.to)
        .bind(&email.subject)
        .bind(&email.body)
        .execute(&self.pool)
        .await
        .map_err(|e| AppError::internal("queueing an e-mail", e))?;
        // The body carries single-use tokens: never log it.
        tracing::info!(outbox_id = %id, subject = %email.subject, "e-mail queued");
        Ok(())
    }
}
