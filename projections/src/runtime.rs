//! The projector runtime: ordered batches, checkpoint and read-model changes in
//! one transaction, wake-ups on NOTIFY with polling as the fallback, and
//! rebuilds into a separate schema that is swapped in atomically.

use application::event_store::EventStore;
use async_trait::async_trait;
use chrono::Utc;
use domain::{Checkpoint, RecordedEvent};
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[async_trait]
pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bumped whenever the tables or the meaning of `apply` change; a stored
    /// projection of another version is rebuilt from the start.
    fn schema_version(&self) -> i32;
    /// The tables this projection owns, unqualified.
    fn tables(&self) -> &'static [&'static str];
    /// DDL that creates the tables, unqualified, in the current `search_path`.
    fn create_sql(&self) -> &'static str;
    /// Applies a batch in log order, on the connection of the transaction that also moves the checkpoint.
    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error in projection {projection}: {source}")]
    Database {
        projection: &'static str,
        source: sqlx::Error,
    },
    #[error("reading the event log: {0}")]
    Store(#[from] application::event_store::StoreError),
    #[error("unknown projection {0}")]
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub batch_size: i64,
    pub poll_interval: Duration,
    /// Postgres channel on which appends announce new events.
    pub channel: &'static str,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            channel: "voxreach_events",
        }
    }
}

/// Where a projection stands, for the readiness endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub checkpoint_position: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
}

/// Progress of a rebuild, reported after each batch.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    pub done: u64,
    pub total: u64,
    pub events_per_second: f64,
}

#[derive(Clone)]
pub struct ProjectionRunner {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    projections: Vec<Arc<dyn Projection>>,
    config: RunnerConfig,
}

fn db(projection: &dyn Projection) -> impl Fn(sqlx::Error) -> ProjectionError + '_ {
    move |source| ProjectionError::Database {
        projection: projection.name(),
        source,
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs a projection's DDL; projections that feed work queues own no tables.
async fn create_tables(conn: &mut PgConnection, p: &dyn Projection) -> Result<(), ProjectionError> {
    if p.create_sql().trim().is_empty() {
        return Ok(());
    }
    sqlx::raw_sql(p.create_sql())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(db(p))
}

async fn read_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    lock: bool,
) -> Result<Option<(Checkpoint, i32)>, sqlx::Error> {
    let sql = if lock {
        "SELECT transaction_id, global_position, schema_version FROM projection_checkpoints WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT transaction_id, global_position, schema_version FROM projection_checkpoints WHERE name = $1"
    };
    let row = sqlx::query(sql).bind(name).fetch_optional(conn).await?;
    Ok(row.map(|r| {
        (
            Checkpoint {
                transaction_id: r.get("transaction_id"),
                global_position: r.get("global_position"),
            },
            r.get("schema_version"),
        )
    }))
}

async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    at: Checkpoint,
    version: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, transaction_id, global_position, schema_version, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (name) DO UPDATE SET transaction_id = $2, global_position = $3, schema_version = $4, updated_at = now()",
    )
    .bind(name)
    .bind(at.transaction_id)
    .bind(at.global_position)
    .bind(version)
    .execute(conn)
    .await
    .map(|_| ())
}

impl ProjectionRunner {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn EventStore>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Self {
        Self {
            pool,
            store,
            projections,
            config,
        }
    }

    pub fn projection(&self, name: &str) -> Result<Arc<dyn Projection>, ProjectionError> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// Creates missing tables and checkpoints; a projection stored at another
    /// schema version is rebuilt from the start.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        for projection in &self.projections {
            let p = projection.as_ref();
            let mut tx = self.pool.begin().await.map_err(db(p))?;
            // Serializes concurrent starts of several server processes.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('voxreach-projection-' || $1))")
                .bind(p.name())
                .execute(&mut *tx)
                .await
                .map_err(db(p))?;
            match read_checkpoint(&mut tx, p.name(), true).await.map_err(db(p))? {
                Some((_, version)) if version == p.schema_version() => {}
                Some((_, version)) => {
                    tracing::warn!(
                        projection = p.name(),
                        stored = version,
                        current = p.schema_version(),
                        "projection schema changed; rebuilding from the start"
                    );
                    for table in p.tables() {
                        sqlx::query(&format!("DROP TABLE IF EXISTS public.{} CASCADE", quote_ident(table)))
                            .execute(&mut *tx)
                            .await
                            .map_err(db(p))?;
                    }
                    create_tables(&mut tx, p).await?;
                    write_checkpoint(&mut tx, p.name(), Checkpoint::START, p.schema_version())
                        .await
                        .map_err(db(p))?;
                }
                None => {
                    create_tables(&mut tx, p).await?;
                    write_checkpoint(&mut tx, p.name(), Checkpoint::START, p.schema_version())
                        .await
                        .map_err(db(p))?;
                }
            }
            tx.commit().await.map_err(db(p))?;
        }
        Ok(())
    }

    /// Applies at most one batch to one projection; returns how many events it applied.
    pub async fn step(&self, projection: &dyn Projection) -> Result<usize, ProjectionError> {
        let p = projection;
        let mut conn = self.pool.acquire().await.map_err(db(p))?;
        let Some((seen, _)) = read_checkpoint(&mut conn, p.name(), false).await.map_err(db(p))? else {
            return Ok(0);
        };
        drop(conn);
        // Read before opening the write transaction, so it holds no snapshot while waiting.
        let events = self.store.read_all(seen, self.config.batch_size).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(db(p))?;
        let skip_locked =
            "SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1 FOR UPDATE SKIP LOCKED";
        let current = sqlx::query(skip_locked)
            .bind(p.name())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(p))?
            .map(|r| Checkpoint {
                transaction_id: r.get("transaction_id"),
                global_position: r.get("global_position"),
            });
        // Another process holds the projection or has moved it on: its turn.
        if current != Some(seen) {
            return Ok(0);
        }
        p.apply(&mut tx, &events).await.map_err(db(p))?;
        let last = events.last().map(RecordedEvent::checkpoint).unwrap_or(seen);
        write_checkpoint(&mut tx, p.name(), last, p.schema_version())
            .await
            .map_err(db(p))?;
        tx.commit().await.map_err(db(p))?;
        Ok(events.len())
    }

    /// Runs every projection until nothing readable is left (tests, tools).
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        loop {
            let mut applied = 0;
            for projection in &self.projections {
                applied += self.step(projection.as_ref()).await?;
            }
            if applied == 0 {
                return Ok(());
            }
        }
    }

    /// Keeps every projection current until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(self.config.channel).await {
                Ok(()) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN for new events; polling only");
                    None
                }
            },
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for new events; polling only");
                None
            }
        };
        while !*shutdown.borrow() {
            let mut applied = 0;
            for projection in &self.projections {
                match self.step(projection.as_ref()).await {
                    Ok(n) => applied += n,
                    Err(error) => {
                        tracing::error!(projection = projection.name(), %error, "projection batch failed; will retry")
                    }
                }
            }
            if applied > 0 {
                continue;
            }
            let poll = tokio::time::sleep(self.config.poll_interval);
            match listener.as_mut() {
                Some(listener) => tokio::select! {
                    _ = poll => {}
                    received = listener.try_recv() => if received.is_err() {
                        // The listener reconnects on its next use; meanwhile poll.
                        tokio::time::sleep(self.config.poll_interval).await;
                    },
                    _ = shutdown.changed() => {}
                },
                None => tokio::select! {
                    _ = poll => {}
                    _ = shutdown.changed() => {}
                },
            }
        }
    }

    pub async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let mut statuses = vec![];
        for projection in &self.projections {
            let p = projection.as_ref();
            let mut conn = self.pool.acquire().await.map_err(db(p))?;
            let checkpoint = read_checkpoint(&mut conn, p.name(), false)
                .await
                .map_err(db(p))?
                .map(|(c, _)| c)
                .unwrap_or_default();
            let backlog = self.store.backlog(checkpoint).await?;
            let lag_seconds = backlog
                .oldest_recorded_at
                .map(|oldest| (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            statuses.push(ProjectionStatus {
                name: p.name(),
                checkpoint_position: checkpoint.global_position,
                lag_events: backlog.events,
                lag_seconds,
            });
        }
        Ok(statuses)
    }

    /// Rebuilds one projection from position 0 into `schema` while the live
    /// tables keep serving. With `swap`, the rebuilt tables then replace the
    /// live ones atomically; without, they stay in `schema` for analysis.
    /// `until` stops the replay after that global position.
    pub async fn rebuild(
        &self,
        name: &str,
        schema: &str,
        swap: bool,
        until: Option<i64>,
        mut progress: impl FnMut(RebuildProgress),
    ) -> Result<RebuildProgress, ProjectionError> {
        let projection = self.projection(name)?;
        let p = projection.as_ref();
        let schema_sql = quote_ident(schema);
        // The projection's tables resolve to the rebuild schema, everything else (checkpoints) to public.
        let search_path = format!("SET LOCAL search_path TO {schema_sql}, public");
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {schema_sql} CASCADE; CREATE SCHEMA {schema_sql}"
        ))
        .execute(&self.pool)
        .await
        .map_err(db(p))?;
        let mut tx = self.pool.begin().await.map_err(db(p))?;
        sqlx::query(&search_path).execute(&mut *tx).await.map_err(db(p))?;
        create_tables(&mut tx, p).await?;
        tx.commit().await.map_err(db(p))?;

        let total = self.store.backlog(Checkpoint::START).await?.events.max(0) as u64;
        let started = Instant::now();
        let mut done = 0u64;
        let mut at = Checkpoint::START;
        let report = |done: u64| RebuildProgress {
            done,
            total,
            events_per_second: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
        };
        loop {
            let applied = self.replay_batch(p, &search_path, &mut at, until, None).await?;
            if applied == 0 {
                break;
            }
            done += applied as u64;
            progress(report(done));
        }
        if swap {
            done += self.swap_in(p, schema, &search_path, at, until).await? as u64;
        }
        Ok(report(done))
    }

    /// Applies the next batch after `at` into the schema of `search_path`, in
    /// `tx` when given (the swap) or in a transaction of its own.
    async fn replay_batch(
        &self,
        p: &dyn Projection,
        search_path: &str,
        at: &mut Checkpoint,
        until: Option<i64>,
        tx: Option<&mut PgConnection>,
    ) -> Result<usize, ProjectionError> {
        let mut events = self.store.read_all(*at, self.config.batch_size).await?;
        let Some(last) = events.last().map(RecordedEvent::checkpoint) else {
            return Ok(0);
        };
        if let Some(until) = until {
            events.retain(|e| e.global_position <= until);
        }
        match tx {
            Some(conn) => p.apply(conn, &events).await.map_err(db(p))?,
            None => {
                let mut own = self.pool.begin().await.map_err(db(p))?;
                sqlx::query(search_path).execute(&mut *own).await.map_err(db(p))?;
                p.apply(&mut own, &events).await.map_err(db(p))?;
                own.commit().await.map_err(db(p))?;
            }
        }
        *at = last;
        Ok(events.len().max(1))
    }

    /// Stops the live projector (row lock on its checkpoint), applies what
    /// arrived since, moves the rebuilt tables into place and sets the checkpoint.
    async fn swap_in(
        &self,
        p: &dyn Projection,
        schema: &str,
        search_path: &str,
        mut at: Checkpoint,
        until: Option<i64>,
    ) -> Result<usize, ProjectionError> {
        let mut tx = self.pool.begin().await.map_err(db(p))?;
        read_checkpoint(&mut tx, p.name(), true).await.map_err(db(p))?;
        sqlx::query(search_path).execute(&mut *tx).await.map_err(db(p))?;
        let mut applied = 0;
        loop {
            let n = self.replay_batch(p, search_path, &mut at, until, Some(&mut tx)).await?;
            if n == 0 {
                break;
            }
            applied += n;
        }
        for table in p.tables() {
            let table = quote_ident(table);
            sqlx::raw_sql(&format!(
                "DROP TABLE IF EXISTS public.{table} CASCADE; ALTER TABLE {}.{table} SET SCHEMA public",
                quote_ident(schema)
            ))
            .execute(&mut *tx)
            .await
            .map_err(db(p))?;
        }
        write_checkpoint(&mut tx, p.name(), at, p.schema_version())
            .await
            .map_err(db(p))?;
        sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
            .execute(&mut *tx)
            .await
            .map_err(db(p))?;
        tx.commit().await.map_err(db(p))?;
        Ok(applied)
    }
}
