//! Durable work for reactors: enqueued exactly once from the event log,
//! claimed with a lease, finished, retried later or dropped.

use crate::error::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Checkpoint;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub reactor: String,
    pub key: String,
    pub organization_id: Uuid,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Bumped on every enqueue: finishing an older generation leaves newer work in place.
    pub generation: i64,
    /// Identifies this claim: only its holder renews or finishes the lease.
    pub lease: Uuid,
    /// The log position of the newest event that made this work due, if an event did.
    pub trigger: Option<Checkpoint>,
    /// The correlation id of that event: the reactor's events and logs continue its story.
    pub correlation_id: Option<Uuid>,
}

impl WorkItem {
    /// The id the work is about, for reactors keyed by a stream's id.
    pub fn key_id(&self) -> Result<Uuid, AppError> {
        Uuid::parse_str(&self.key).map_err(|_| AppError::internal("reading a work key", self.key.clone()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkOutcome {
    Done,
    RetryAt {
        due: DateTime<Utc>,
        reason: String,
    },
    /// Retries are exhausted or pointless; the handler has recorded why.
    GiveUp {
        reason: String,
    },
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn claim(&self, reactor: &str, limit: i64, lease: Duration) -> Result<Vec<WorkItem>, AppError>;
    /// Extends the leases of items still in flight; returns those whose lease was lost.
    async fn renew(&self, items: &[WorkItem], lease: Duration) -> Result<Vec<WorkItem>, AppError>;
    /// Records the outcomes of one reactor's claimed items together, leaving alone
    /// those whose lease was lost (another worker owns the item now).
    async fn finish(&self, finished: &[(WorkItem, WorkOutcome)]) -> Result<(), AppError>;
    /// Adds work unless the same key is already queued; true if added.
    async fn enqueue_once(&self, reactor: &str, key: &str, organization_id: Uuid) -> Result<bool, AppError>;
}

/// Performs one item of a reactor's work.
#[async_trait]
pub trait WorkHandler: Send + Sync {
    fn reactor(&self) -> &'static str;
    /// The outside service the reactor calls ("vapi", "slack", "crm"…), or
    /// "internal" when it only appends events; labels its outcome metrics.
    fn provider(&self) -> &'static str;
    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError>;
}

/// How far read models have applied the log: a reactor that reads a read model
/// waits until it has applied the event that triggered the work.
#[async_trait]
pub trait ReadModelProgress: Send + Sync {
    async fn has_applied(&self, read_model: &str, at: Checkpoint) -> Result<bool, AppError>;
}

/// Keeps a scheduled job's pass to one process at a time, for jobs whose
/// decisions read what the pass itself changes (a campaign's calls in flight).
#[async_trait]
pub trait JobLocks: Send + Sync {
    /// A hold on `job`, or `None` while another process holds it. The hold
    /// ends when it is dropped, or when its process dies.
    async fn try_hold(&self, job: &str) -> Result<Option<JobHold>, AppError>;
}

/// A held job lock; dropping it lets the next process in.
pub struct JobHold {
    /// Kept only to be dropped with the hold.
    _held: Box<dyn Send>,
}

impl JobHold {
    pub fn new(held: impl Send + 'static) -> Self {
        Self { _held: Box::new(held) }
    }
}

/// A periodic job of the scheduler role. Each is keyed so that however many
/// schedulers run it, its effects happen once.
#[async_trait]
pub trait ScheduledJob: Send + Sync {
    fn name(&self) -> &'static str;
    fn period(&self) -> Duration;
    /// Runs once; returns how many things it queued or changed.
    async fn run(&self) -> Result<usize, AppError>;
}
