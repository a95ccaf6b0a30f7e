//! Reactor work in Postgres: leases instead of open transactions, so no
//! transaction stays open across a call to the outside world.

use application::work::{WorkHandler, WorkItem, WorkOutcome, WorkQueue};
use application::AppError;
use async_trait::async_trait;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub struct PgWorkQueue {
    pool: PgPool,
}

impl PgWorkQueue {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reactor work queue", error)
}

#[async_trait]
impl WorkQueue for PgWorkQueue {
    async fn claim(&self, reactor: &str, limit: i64, lease: Duration) -> Result<Vec<WorkItem>, AppError> {
        let rows = sqlx::query(
            "UPDATE reactor_work w SET leased_until = now() + $3
             FROM (SELECT reactor, work_key FROM reactor_work
                   WHERE reactor = $1 AND due_at <= now() AND (leased_until IS NULL OR leased_until < now())
                   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
             WHERE w.reactor = due.reactor AND w.work_key = due.work_key
             RETURNING w.work_key, w.organization_id, w.attempts, w.generation",
        )
        .bind(reactor)
        .bind(limit)
        .bind(lease)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|row| WorkItem {
                reactor: reactor.to_owned(),
                key: row.get("work_key"),
                organization_id: row.get("organization_id"),
                attempts: row.get::<i32, _>("attempts").max(0) as u32,
                generation: row.get("generation"),
            })
            .collect())
    }

    async fn finish(&self, item: &WorkItem, outcome: &WorkOutcome) -> Result<(), AppError> {
        let query = match outcome {
            // Newer work (a higher generation) stays, due at once.
            WorkOutcome::Done | WorkOutcome::GiveUp { .. } => sqlx::query(
                "WITH gone AS (DELETE FROM reactor_work WHERE reactor = $1 AND work_key = $2 AND generation = $3 RETURNING 1)
                 UPDATE reactor_work SET leased_until = NULL, attempts = 0, last_error = NULL
                 WHERE reactor = $1 AND work_key = $2 AND NOT EXISTS (SELECT 1 FROM gone)",
            )
            .bind(&item.reactor)
            .bind(&item.key)
            .bind(item.generation),
            WorkOutcome::RetryAt { due, reason } => sqlx::query(
                "UPDATE reactor_work SET leased_until = NULL, last_error = $5,
                    attempts = CASE WHEN generation = $3 THEN attempts + 1 ELSE 0 END,
                    due_at = CASE WHEN generation = $3 THEN $4 ELSE now() END
                 WHERE reactor = $1 AND work_key = $2",
            )
            .bind(&item.reactor)
            .bind(&item.key)
            .bind(item.generation)
            .bind(*due)
            .bind(reason),
        };
        query.execute(&self.pool).await.map_err(failed)?;
        Ok(())
    }

    async fn enqueue_once(&self, reactor: &str, key: &str, organization_id: uuid::Uuid) -> Result<bool, AppError> {
        self.insert_once(reactor, key, organization_id).await.map_err(failed)
    }
}

impl PgWorkQueue {
    async fn insert_once(&self, reactor: &str, key: &str, organization_id: uuid::Uuid) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO reactor_work (reactor, work_key, organization_id, due_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (reactor, work_key) DO NOTHING",
        )
        .bind(reactor)
        .bind(key)
        .bind(organization_id)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }
}

/// Runs one reactor's handler over its due work until `shutdown` turns true.
pub async fn run_worker(
    queue: Arc<dyn WorkQueue>,
    handler: Arc<dyn WorkHandler>,
    poll_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    const LEASE: Duration = Duration::from_secs(120);
    while !*shutdown.borrow() {
        let items = match queue.claim(handler.reactor(), 10, LEASE).await {
            Ok(items) => items,
            Err(error) => {
                tracing::error!(reactor = handler.reactor(), %error, "claiming work failed");
                vec![]
            }
        };
        let idle = items.is_empty();
        for item in items {
            let outcome = match handler.handle(&item).await {
                Ok(outcome) => outcome,
                // Our own failure (database): try again soon; the lease would also expire.
                Err(error) => WorkOutcome::RetryAt {
                    due: chrono::Utc::now() + chrono::Duration::seconds(30),
                    reason: error.to_string(),
                },
            };
            if let Err(error) = queue.finish(&item, &outcome).await {
                tracing::error!(reactor = handler.reactor(), key = %item.key, %error, "recording work outcome failed");
            }
        }
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
