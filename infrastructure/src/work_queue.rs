//! Reactor work in Postgres: leases instead of open transactions, so no
//! transaction stays open across a call to the outside world. A lease is
//! renewed while its item is in flight and carries a token, so it never runs
//! out under a slow provider and a worker that lost it cannot finish it.

use application::clock::Clock;
use application::correlation;
use application::work::{JobHold, JobLocks, WorkHandler, WorkItem, WorkOutcome, WorkQueue};
use application::AppError;
use async_trait::async_trait;
use domain::Checkpoint;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

/// Due times and leases are compared with the `Clock` port's time, never the
/// database's `now()`: the reactors decide with that clock too.
#[derive(Clone)]
pub struct PgWorkQueue {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgWorkQueue {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reactor work queue", error)
}

#[async_trait]
impl WorkQueue for PgWorkQueue {
    async fn claim(&self, reactor: &str, limit: i64, lease: Duration) -> Result<Vec<WorkItem>, AppError> {
        let rows = sqlx::query(
            "UPDATE reactor_work w SET leased_until = $4::timestamptz + $3, lease_token = gen_random_uuid()
             FROM (SELECT reactor, work_key FROM reactor_work
                   WHERE reactor = $1 AND due_at <= $4 AND (leased_until IS NULL OR leased_until < $4)
                   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
             WHERE w.reactor = due.reactor AND w.work_key = due.work_key
             RETURNING w.work_key, w.organization_id, w.attempts, w.generation, w.lease_token,
                       w.trigger_transaction_id, w.trigger_position, w.correlation_id",
        )
        .bind(reactor)
        .bind(limit)
        .bind(lease)
        .bind(self.clock.now())
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|row| {
                let trigger = match (
                    row.get::<Option<i64>, _>("trigger_transaction_id"),
                    row.get::<Option<i64>, _>("trigger_position"),
                ) {
                    (Some(transaction_id), Some(global_position)) => Some(Checkpoint {
                        transaction_id,
                        global_position,
                    }),
                    _ => None,
                };
                WorkItem {
                    reactor: reactor.to_owned(),
                    key: row.get("work_key"),
                    organization_id: row.get("organization_id"),
                    attempts: row.get::<i32, _>("attempts").max(0) as u32,
                    generation: row.get("generation"),
                    lease: row.get("lease_token"),
                    trigger,
                    correlation_id: row.get("correlation_id"),
                }
            })
            .collect())
    }

    async fn renew(&self, items: &[WorkItem], lease: Duration) -> Result<Vec<WorkItem>, AppError> {
        let Some(reactor) = items.first().map(|i| i.reactor.as_str()) else {
            return Ok(vec![]);
        };
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let tokens: Vec<Uuid> = items.iter().map(|i| i.lease).collect();
        let renewed: Vec<String> = sqlx::query_scalar(
            "UPDATE reactor_work w SET leased_until = $4::timestamptz + $3
             FROM UNNEST($2::text[], $5::uuid[]) AS held(k, t)
             WHERE w.reactor = $1 AND w.work_key = held.k AND w.lease_token = held.t
             RETURNING w.work_key",
        )
        .bind(reactor)
        .bind(&keys)
        .bind(lease)
        .bind(self.clock.now())
        .bind(&tokens)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(items.iter().filter(|i| !renewed.contains(&i.key)).cloned().collect())
    }

    async fn finish(&self, finished: &[(WorkItem, WorkOutcome)]) -> Result<(), AppError> {
        let Some(reactor) = finished.first().map(|(item, _)| item.reactor.as_str()) else {
            return Ok(());
        };
        let mut done = vec![];
        let mut retried = vec![];
        for (item, outcome) in finished {
            match outcome {
                WorkOutcome::Done | WorkOutcome::GiveUp { .. } => done.push(item),
                WorkOutcome::RetryAt { due, reason } => retried.push((item, *due, reason.as_str())),
            }
        }
        let mut recorded = 0;
        if !done.is_empty() {
            // Newer work (a higher generation) stays, due at once.
            let recorded_done: i64 = sqlx::query_scalar(
                "WITH done AS (SELECT * FROM UNNEST($2::text[], $3::bigint[], $4::uuid[]) AS d(k, g, t)),
                 gone AS (DELETE FROM reactor_work w USING done
                          WHERE w.reactor = $1 AND w.work_key = done.k AND w.generation = done.g AND w.lease_token = done.t
                          RETURNING w.work_key),
                 kept AS (UPDATE reactor_work w SET leased_until = NULL, lease_token = NULL, attempts = 0, last_error = NULL
                          FROM done
                          WHERE w.reactor = $1 AND w.work_key = done.k AND w.lease_token = done.t
                            AND done.k NOT IN (SELECT work_key FROM gone)
                          RETURNING w.work_key)
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)",
            )
            .bind(reactor)
            .bind(done.iter().map(|item| item.key.as_str()).collect::<Vec<_>>())
            .bind(done.iter().map(|item| item.generation).collect::<Vec<_>>())
            .bind(done.iter().map(|item| item.lease).collect::<Vec<_>>())
            .fetch_one(&self.pool)
            .await
            .map_err(failed)?;
            recorded += recorded_done;
        }
        if !retried.is_empty() {
            recorded += sqlx::query(
                "UPDATE reactor_work w SET leased_until = NULL, lease_token = NULL, last_error = r.reason,
                    attempts = CASE WHEN w.generation = r.g THEN w.attempts + 1 ELSE 0 END,
                    due_at = CASE WHEN w.generation = r.g THEN r.due ELSE '-infinity' END
                 FROM UNNEST($2::text[], $3::bigint[], $4::uuid[], $5::timestamptz[], $6::text[]) AS r(k, g, t, due, reason)
                 WHERE w.reactor = $1 AND w.work_key = r.k AND w.lease_token = r.t",
            )
            .bind(reactor)
            .bind(retried.iter().map(|(item, _, _)| item.key.as_str()).collect::<Vec<_>>())
            .bind(retried.iter().map(|(item, _, _)| item.generation).collect::<Vec<_>>())
            .bind(retried.iter().map(|(item, _, _)| item.lease).collect::<Vec<_>>())
            .bind(retried.iter().map(|(_, due, _)| *due).collect::<Vec<_>>())
            .bind(retried.iter().map(|(_, _, reason)| *reason).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(failed)?
            .rows_affected() as i64;
        }
        if recorded < finished.len() as i64 {
            tracing::warn!(
                reactor,
                lost = finished.len() as i64 - recorded,
                "leases were lost before the work finished"
            );
        }
        Ok(())
    }

    async fn enqueue_once(&self, reactor: &str, key: &str, organization_id: Uuid) -> Result<bool, AppError> {
        let inserted = sqlx::query(
            "INSERT INTO reactor_work (reactor, work_key, organization_id, due_at) VALUES ($1, $2, $3, '-infinity')
             ON CONFLICT (reactor, work_key) DO NOTHING",
        )
        .bind(reactor)
        .bind(key)
        .bind(organization_id)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(inserted.rows_affected() == 1)
    }
}

/// How a reactor worker claims and holds its work.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    pub poll_interval: Duration,
    /// Items claimed at once; they are handled one after another.
    pub batch: i64,
    /// Renewed every third of its length while items are in flight.
    pub lease: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch: 10,
            lease: Duration::from_secs(60),
        }
    }
}

/// Runs one reactor's handler over its due work until `shutdown` turns true.
/// While a batch is in flight its leases are renewed, so no other process
/// claims an item this one is still working on, however slow the provider.
pub async fn run_worker(
    queue: Arc<dyn WorkQueue>,
    handler: Arc<dyn WorkHandler>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let items = match queue.claim(handler.reactor(), config.batch, config.lease).await {
            Ok(items) => items,
            Err(error) => {
                tracing::error!(reactor = handler.reactor(), error = %error.report(), "claiming work failed");
                vec![]
            }
        };
        if items.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let (in_flight, held) = watch::channel(items.clone());
        let heartbeat = tokio::spawn(renew_leases(queue.clone(), held, config.lease));
        let mut finished = Vec::with_capacity(items.len());
        for item in items {
            let outcome = match handle_item(handler.as_ref(), &item).await {
                Ok(outcome) => outcome,
                // Our own failure (the database): try again soon.
                Err(error) => {
                    tracing::error!(reactor = handler.reactor(), key = %item.key, error = %error.report(), "reactor item failed");
                    WorkOutcome::RetryAt {
                        due: clock.now() + chrono::Duration::seconds(30),
                        reason: error.to_string(),
                    }
                }
            };
            finished.push((item, outcome));
        }
        // One round trip for the batch's outcomes; the leases stay renewed until it is done.
        if let Err(error) = queue.finish(&finished).await {
            tracing::error!(reactor = handler.reactor(), error = %error.report(), "recording work outcomes failed");
        }
        drop(in_flight);
        let _ = heartbeat.await;
    }
}

/// Performs one item in a span and the correlation scope of the event that
/// caused it, and counts its outcome.
pub async fn handle_item(handler: &dyn WorkHandler, item: &WorkItem) -> Result<WorkOutcome, AppError> {
    let correlation_id = item.correlation_id.unwrap_or_else(Uuid::now_v7);
    let span = tracing::info_span!(
        "reactor_item",
        reactor = handler.reactor(),
        key = %item.key,
        organization_id = %item.organization_id,
        attempt = item.attempts + 1,
        %correlation_id,
    );
    let handled = correlation::scope(correlation_id, handler.handle(item))
        .instrument(span)
        .await;
    let result = match &handled {
        Ok(WorkOutcome::Done) => "done",
        Ok(WorkOutcome::RetryAt { .. }) => "retry",
        Ok(WorkOutcome::GiveUp { .. }) => "gave_up",
        Err(_) => "error",
    };
    metrics::counter!(
        "voxreach_reactor_items_total",
        "reactor" => handler.reactor(),
        "provider" => handler.provider(),
        "outcome" => result
    )
    .increment(1);
    handled
}

/// Renews the leases of the items `held` names until the sender is dropped.
async fn renew_leases(queue: Arc<dyn WorkQueue>, mut held: watch::Receiver<Vec<WorkItem>>, lease: Duration) {
    let mut every = tokio::time::interval(lease / 3);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {
                let items = held.borrow().clone();
                match queue.renew(&items, lease).await {
                    Ok(lost) if !lost.is_empty() => tracing::warn!(lost = lost.len(), "leases of in-flight work were lost"),
                    Ok(_) => {}
                    Err(error) => tracing::error!(error = %error.report(), "renewing leases failed"),
                }
            }
            changed = held.changed() => if changed.is_err() { return },
        }
    }
}

/// Job locks as PostgreSQL transaction-level advisory locks: a hold is an
/// open transaction (no other statement runs in it), so a crashed process's
/// hold ends with its connection.
#[derive(Clone)]
pub struct PgJobLocks {
    pool: PgPool,
}

impl PgJobLocks {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl JobLocks for PgJobLocks {
    async fn try_hold(&self, job: &str) -> Result<Option<JobHold>, AppError> {
        let mut transaction = self.pool.begin().await.map_err(lock_failed)?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('scheduled-job:' || $1))")
            .bind(job)
            .fetch_one(&mut *transaction)
            .await
            .map_err(lock_failed)?;
        // Not held: the transaction rolls back as it drops.
        Ok(held.then(|| JobHold::new(transaction)))
    }
}

fn lock_failed(error: sqlx::Error) -> AppError {
    AppError::internal("scheduled job lock", error)
}
