//! The correlation id that ties one story together: set from the HTTP request
//! or webhook that started it, carried in every event's metadata and in the
//! reactor work those events cause, and on every log span along the way.

use std::future::Future;
use uuid::Uuid;

tokio::task_local! {
    static CORRELATION_ID: Uuid;
}

/// The correlation id of the work in progress, if one was set.
pub fn current() -> Option<Uuid> {
    CORRELATION_ID.try_with(|id| *id).ok()
}

/// Runs `work` with `id` as its correlation id.
pub async fn scope<F: Future>(id: Uuid, work: F) -> F::Output {
    CORRELATION_ID.scope(id, work).await
}
