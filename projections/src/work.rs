//! Enqueueing reactor work from projections, in the transaction that moves their checkpoint.

use sqlx::PgConnection;
use uuid::Uuid;

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
