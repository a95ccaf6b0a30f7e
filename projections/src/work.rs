//! Enqueueing reactor work from projections, in the transaction that moves their checkpoint.

use crate::runtime::Projection;
use async_trait::async_trait;
use domain::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// A projection that owns no table: it makes a reactor's work due whenever
/// one of `event_types` lands on a stream of `stream_type`, keyed by the stream's id.
pub struct WorkFeeder {
    pub name: &'static str,
    pub stream_type: &'static str,
    pub event_types: &'static [&'static str],
    pub reactor: &'static str,
}

#[async_trait]
impl Projection for WorkFeeder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn create_sql(&self) -> &'static str {
        ""
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let prefix = format!("{}-", self.stream_type);
        for event in events
            .iter()
            .filter(|e| e.stream_type == self.stream_type && self.event_types.contains(&e.event_type.as_str()))
        {
            let key = event.stream_id.strip_prefix(&prefix).unwrap_or(&event.stream_id);
            enqueue(conn, self.reactor, key, event.organization_id).await?;
        }
        Ok(())
    }
}

/// Makes `key` due now for `reactor`; a newer enqueue supersedes pending retries.
pub async fn enqueue(
    conn: &mut PgConnection,
    reactor: &str,
    key: &str,
    organization_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reactor_work (reactor, work_key, organization_id, due_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (reactor, work_key) DO UPDATE
         SET generation = reactor_work.generation + 1, due_at = now(), attempts = 0, last_error = NULL",
    )
    .bind(reactor)
    .bind(key)
    .bind(organization_id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// How far Vapi is behind a record: `synced`, `failed` (the last push of the
/// current revision failed) or `pending`.
pub fn sync_status(revision: i32, synced_revision: i32, last_push_failed: bool) -> &'static str {
    if synced_revision >= revision {
        "synced"
    } else if last_push_failed {
        "failed"
    } else {
        "pending"
    }
}
