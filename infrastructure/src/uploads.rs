//! Contact files waiting for (and kept after) their import, in PostgreSQL.

use application::campaigns::upload::{ImportResult, StoredUpload, UploadStore};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

pub struct PgUploadStore {
    pool: PgPool,
}

impl PgUploadStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> AppError {
    move |e| AppError::internal(what, e)
}

#[async_trait]
impl UploadStore for PgUploadStore {
    async fn save(&self, upload: &StoredUpload) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO campaign_uploads (id, organization_id, campaign_id, content, result, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(upload.id)
        .bind(upload.organization_id)
        .bind(upload.campaign_id)
        .bind(&upload.content)
        .bind(upload.result.as_ref().map(Json))
        .bind(upload.created_at)
        .execute(&self.pool)
        .await
        .map_err(failed("keeping an upload"))?;
        Ok(())
    }

    async fn load(&self, organization_id: Uuid, campaign_id: Uuid, id: Uuid) -> Result<Option<StoredUpload>, AppError> {
        let row: Option<(Vec<u8>, Option<Json<ImportResult>>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT content, result, created_at FROM campaign_uploads
             WHERE id = $1 AND organization_id = $2 AND campaign_id = $3",
        )
        .bind(id)
        .bind(organization_id)
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading an upload"))?;
        Ok(row.map(|(content, result, created_at)| StoredUpload {
            id,
            organization_id,
            campaign_id,
            content,
            created_at,
            result: result.map(|Json(r)| r),
        }))
    }

    async fn record_result(&self, organization_id: Uuid, id: Uuid, result: &ImportResult) -> Result<(), AppError> {
        sqlx::query("UPDATE campaign_uploads SET result = $3 WHERE id = $1 AND organization_id = $2")
            .bind(id)
            .bind(organization_id)
            .bind(Json(result))
            .execute(&self.pool)
            .await
            .map_err(failed("recording an import"))?;
        Ok(())
    }
}
