//! Group commit for the event log: appends that arrive while others are
//! being written share one statement (one transaction), so one round trip
//! and one WAL flush serve them all. Each keeps its own result: the statement
//! checks each append's expected version apart, and appends to the same
//! stream never share a group (the second waits for the next), so a version
//! conflict fails only its caller. If the statement fails (a unique key raced
//! by another transaction), every append is run again on its own.

use crate::event_store::{group_append_query, PreparedAppend};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::collections::{HashMap, HashSet};
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
                // An append left out of this committer's last group: it starts the next.
                let mut carried: Option<Pending> = None;
                loop {
                    let group = match carried.take() {
                        // The committer holding the lock may be waiting for a new append:
                        // a carried one does not wait for that, it goes alone.
                        Some(first) => match waiting.try_lock() {
                            Ok(mut waiting) => gather(first, &mut waiting, &mut carried),
                            Err(_) => vec![first],
                        },
                        None => {
                            let mut waiting = waiting.lock().await;
                            let Some(first) = waiting.recv().await else { break };
                            gather(first, &mut waiting, &mut carried)
                        }
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

/// `first` and what waits behind it, up to the first append to a stream already
/// in the group (left in `carried` for the next one).
fn gather(
    first: Pending,
    waiting: &mut mpsc::UnboundedReceiver<Pending>,
    carried: &mut Option<Pending>,
) -> Vec<Pending> {
    let mut streams: HashSet<String> = first.append.stream_ids().iter().cloned().collect();
    let mut group = vec![first];
    while group.len() < MOST_PER_GROUP {
        let Ok(next) = waiting.try_recv() else { break };
        if next.append.stream_ids().iter().any(|s| streams.contains(s)) {
            *carried = Some(next);
            break;
        }
        streams.extend(next.append.stream_ids().iter().cloned());
        group.push(next);
    }
    group
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

/// Every append of the group in one statement: each append's rows, none for
/// an append whose expected version did not hold.
async fn together(pool: &PgPool, group: &[Pending]) -> Result<Vec<Vec<PgRow>>, sqlx::Error> {
    let appends: Vec<&PreparedAppend> = group.iter().map(|pending| &pending.append).collect();
    let rows = group_append_query(&appends).fetch_all(pool).await?;
    let append_of: HashMap<uuid::Uuid, usize> = appends
        .iter()
        .enumerate()
        .flat_map(|(n, append)| append.event_ids().iter().map(move |id| (*id, n)))
        .collect();
    let mut results: Vec<Vec<PgRow>> = group.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let event_id: uuid::Uuid = row.try_get("event_id")?;
        results[append_of[&event_id]].push(row);
    }
    Ok(results)
}
