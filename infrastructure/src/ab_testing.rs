//! A/B test split slots as a PostgreSQL counter per test: one short row
//! update per assignment, however many calls the test has had.

use application::ab_testing::AssignmentSlots;
use application::AppError;
use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgAssignmentSlots {
    pool: PgPool,
}

impl PgAssignmentSlots {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AssignmentSlots for PgAssignmentSlots {
    async fn take(&self, test_id: Uuid, first: u64) -> Result<u64, AppError> {
        let slot: i64 = sqlx::query_scalar(
            "INSERT INTO ab_assignment_slots AS s (test_id, next_slot) VALUES ($1, $2 + 1)
             ON CONFLICT (test_id) DO UPDATE SET next_slot = s.next_slot + 1
             RETURNING next_slot - 1",
        )
        .bind(test_id)
        .bind(first as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| AppError::internal("taking an A/B split slot", e))?;
        Ok(slot as u64)
    }
}
