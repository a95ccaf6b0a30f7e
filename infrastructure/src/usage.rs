//! Usage counters in Postgres: one upsert per use, so every process counts against the same window.

use application::quotas::UsageCounter;
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgUsageCounter {
    pool: PgPool,
}

impl PgUsageCounter {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UsageCounter for PgUsageCounter {
    async fn add(&self, organization_id: Uuid, kind: &str, window_start: DateTime<Utc>) -> Result<i32, AppError> {
        sqlx::query_scalar(
            "INSERT INTO usage_counters (organization_id, kind, window_start, used) VALUES ($1, $2, $3, 1)
             ON CONFLICT (organization_id, kind, window_start) DO UPDATE SET used = usage_counters.used + 1
             RETURNING used",
        )
        .bind(organization_id)
        .bind(kind)
        .bind(window_start)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| AppError::internal("counting usage", e))
    }
}
