//! The event-log port. Implemented on Postgres in `infrastructure::event_store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{Checkpoint, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use uuid::Uuid;

/// Events for one stream inside an append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: every stream's events are written in one statement or none are.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub organization_id: Uuid,
    pub streams: Vec<StreamAppend>,
    /// Unique per organization: repeating it appends nothing and returns the original positions.
    pub idempotency_key: Option<String>,
}

impl AppendRequest {
    pub fn single(organization_id: Uuid, stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            organization_id,
            streams: vec![StreamAppend {
                stream,
                expected,
                events,
            }],
            idempotency_key: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub stream_version: i64,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Positions of the appended events, in append order.
    pub events: Vec<AppendedEvent>,
    /// True when the idempotency key had been used: nothing new was written.
    pub duplicate: bool,
}

impl AppendOutcome {
    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.events.iter().map(|e| e.checkpoint).max()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    VersionConflict {
        stream_id: String,
        expected: ExpectedVersion,
        actual: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the store itself (its database), with the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event store failure while {doing}")]
pub struct StoreError {
    pub doing: &'static str,
    #[source]
    pub cause: std::sync::Arc<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(doing: &'static str, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            doing,
            cause: std::sync::Arc::new(cause),
        }
    }
}

/// Store failures are equal when they say the same (for tests' comparisons of outcomes).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.doing == other.doing && self.cause.to_string() == other.cause.to_string()
    }
}

/// Events a reader has not yet seen, for lag reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub events: i64,
    pub oldest_recorded_at: Option<DateTime<Utc>>,
}

/// Which events a consumer reads, and whether it needs their payloads.
#[derive(Debug, Clone, Copy)]
pub struct LogFilter<'a> {
    /// `None`: every stream type.
    pub stream_types: Option<&'a [&'a str]>,
    /// `None`: every event type.
    pub event_types: Option<&'a [&'a str]>,
    /// Without payloads, events come with a `null` payload (metadata still comes).
    pub payloads: bool,
}

impl LogFilter<'_> {
    pub const EVERYTHING: LogFilter<'static> = LogFilter {
        stream_types: None,
        event_types: None,
        payloads: true,
    };
}

/// A page of the log read for one consumer.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub events: Vec<RecordedEvent>,
    /// How many events were scanned, matching or not.
    pub scanned: usize,
    /// The last event scanned (`None` when nothing was readable).
    pub scanned_to: Option<Checkpoint>,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// All events of one stream in version order, upcast to current versions.
    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Several whole streams in one read, each in version order, in the order asked
    /// (a stream not yet written comes back empty).
    async fn read_streams(&self, streams: &[StreamId]) -> Result<Vec<Vec<RecordedEvent>>, StoreError>;

    /// Up to `limit` events after `after`, in (transaction id, position) order, never
    /// past an event that another transaction may still commit before them.
    async fn read_all(&self, after: Checkpoint, limit: i64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Like `read_all`, but returns only the events `filter` admits, the
    /// others skipped undecoded; `scanned_to` is the last event looked at,
    /// admitted or not, so a consumer moves past what it does not read.
    async fn read_filtered(&self, after: Checkpoint, limit: i64, filter: &LogFilter<'_>)
        -> Result<LogPage, StoreError>;

    /// The checkpoints that end each of the next `pages` pages of `size` readable
    /// events after `after` (fewer, the last one shorter, at the end of the log):
    /// the bounds of pages a reader can then read side by side with [`Self::read_filtered_until`].
    async fn page_ends(&self, after: Checkpoint, size: i64, pages: i64) -> Result<Vec<Checkpoint>, StoreError>;

    /// `read_filtered` of the events after `after` up to and including `until`, a
    /// checkpoint [`Self::page_ends`] gave (nothing before it can still commit).
    async fn read_filtered_until(
        &self,
        after: Checkpoint,
        until: Checkpoint,
        filter: &LogFilter<'_>,
    ) -> Result<LogPage, StoreError>;

    /// How many readable events lie after `after`, and how old the oldest is.
    async fn backlog(&self, after: Checkpoint) -> Result<Backlog, StoreError>;

    /// The first event of a stream (upcast), without reading the rest: what a
    /// stream began as, and the organization it belongs to. `None` for a stream
    /// not yet written.
    async fn first_event(&self, stream: &StreamId) -> Result<Option<RecordedEvent>, StoreError>;

    /// The checkpoint of the last readable event (`START` when none): reading
    /// after it yields exactly what is appended or committed from now on.
    async fn head(&self) -> Result<Checkpoint, StoreError>;
}
