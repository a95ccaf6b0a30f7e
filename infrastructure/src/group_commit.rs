//! Group commit for the event log: appends that arrive while others are
//! being written share one transaction, so one WAL flush serves them all.
//! Each keeps its own result: its statement runs with its own optimistic
//! check, and if any statement of a group fails, the group is rolled back and
//! every append is run again on its own, so a conflict fails only its caller.

use crate::event_store::PreparedAppend;
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Committers working at once (each holds one connection while it writes).
const COMMITTERS: usize = 8;
/// Most appends one transaction takes.
const MOST_PER_GROUP: usize = 64;

struct Pending {
    append: PreparedAppend,
    reply: oneshot::Sender<Result<Vec<PgRow>, sqlx::Error>>,
}

#[derive(Clone)]
pub(crate) struct GroupCommitter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommitter {
    /// Must be called inside a Tokio runtime. The committers end when the last clone is dropped.
    pub(crate) fn start(pool: PgPool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel::<Pending>();
        // The committers take turns at the queue: each takes what waits, then writes it.
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..COMMITTERS {
            let (pool, waiting) = (pool.clone(), waiting.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut waiting = waiting.lock().await;
                        let Some(first) = waiting.recv().await else { break };
                        let mut group = vec![first];
                        while group.len() < MOST_PER_GROUP {
                            match waiting.try_recv() {
                                Ok(next) => group.push(next),
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    commit(&pool, group).await;
                }
            });
        }
        Self { queue }
    }

    /// Runs `append` (alone or in a group) and answers its rows.
    pub(crate) async fn append(&self, append: PreparedAppend) -> Result<Vec<PgRow>, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { append, reply })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn commit(pool: &PgPool, group: Vec<Pending>) {
    if group.len() > 1 {
        match together(pool, &group).await {
            Ok(results) => {
                for (pending, rows) in group.into_iter().zip(results) {
                    let _ = pending.reply.send(Ok(rows));
                }
                return;
            }
            Err(error) => tracing::debug!(%error, appends = group.len(), "group append failed; appending one by one"),
        }
    }
    for pending in group {
        let rows = pending.append.query().fetch_all(pool).await;
        let _ = pending.reply.send(rows);
    }
}

/// Every append of the group in one transaction, or none of them.
async fn together(pool: &PgPool, group: &[Pending]) -> Result<Vec<Vec<PgRow>>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let mut results = Vec::with_capacity(group.len());
    for pending in group {
        results.push(pending.append.query().fetch_all(&mut *transaction).await?);
    }
    transaction.commit().await?;
    Ok(results)
}
