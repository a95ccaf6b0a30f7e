//! The newest part of the log, read once for every consumer of this process.
//!
//! Consumers that keep up all read the same few events after each append; each
//! reading them from PostgreSQL was the largest share of the database's work
//! under webhook load. The tail reads the log (gap-safe, as every read is) once
//! for all of them and serves each its own filter from memory. A consumer
//! behind the tail reads PostgreSQL directly, as before.

use application::event_store::{EventStore, LogFilter, LogPage, StoreError};
use domain::event_log::StoredPayload;
use domain::{Checkpoint, RecordedEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Bounds and freshness of a [`LogTail`].
#[derive(Debug, Clone, Copy)]
pub struct TailConfig {
    /// Payload bytes kept at most; the oldest events are dropped beyond it.
    pub max_bytes: usize,
    /// A read of the log this recent serves every consumer stepping after it
    /// (consumers woken by the same append step within a few milliseconds).
    pub fresh_for: Duration,
    /// Events read from the log at once.
    pub page: i64,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            fresh_for: Duration::from_millis(5),
            page: 1000,
        }
    }
}

pub struct LogTail {
    store: Arc<dyn EventStore>,
    config: TailConfig,
    held: Mutex<Held>,
}

/// The events after `start` up to `end`, in log order.
#[derive(Default)]
struct Held {
    start: Checkpoint,
    end: Checkpoint,
    events: VecDeque<RecordedEvent>,
    bytes: usize,
    read_at: Option<Instant>,
}

impl Held {
    fn restart_at(&mut self, at: Checkpoint) {
        *self = Held {
            start: at,
            end: at,
            ..Held::default()
        };
    }

    fn push(&mut self, page: LogPage) {
        for event in page.events {
            self.bytes += event.payload.raw().get().len();
            self.events.push_back(event);
        }
        if let Some(last) = page.scanned_to {
            self.end = last;
        }
    }

    fn trim(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some(oldest) = self.events.pop_front() else { break };
            self.bytes -= oldest.payload.raw().get().len();
            self.start = oldest.checkpoint();
        }
    }

    /// What a read of the log after `after` with `filter` would give, from memory
    /// (a reader without payloads gets each event's current version, as its payload would decode).
    fn page_after(&self, after: Checkpoint, limit: usize, filter: &LogFilter<'_>) -> LogPage {
        let first = self.events.partition_point(|e| e.checkpoint() <= after);
        let scanned: Vec<&RecordedEvent> = self.events.range(first..).take(limit).collect();
        let events = scanned
            .iter()
            .filter(|e| admits(filter, e))
            .map(|e| {
                let mut event = (*e).clone();
                if !filter.payloads {
                    event.payload = StoredPayload::null();
                }
                event
            })
            .collect();
        LogPage {
            events,
            scanned: scanned.len(),
            scanned_to: scanned.last().map(|e| e.checkpoint()),
        }
    }
}

fn admits(filter: &LogFilter<'_>, event: &RecordedEvent) -> bool {
    filter
        .stream_types
        .is_none_or(|types| types.contains(&event.stream_type.as_str()))
        && filter
            .event_types
            .is_none_or(|types| types.contains(&event.event_type.as_str()))
}

impl LogTail {
    pub fn new(store: Arc<dyn EventStore>, config: TailConfig) -> Self {
        Self {
            store,
            config,
            held: Mutex::new(Held::default()),
        }
    }

    /// Up to `limit` events after `after` that `filter` admits, as
    /// [`EventStore::read_filtered`] gives them.
    pub async fn read(&self, after: Checkpoint, limit: i64, filter: &LogFilter<'_>) -> Result<LogPage, StoreError> {
        let mut held = self.held.lock().await;
        if held.read_at.is_none() {
            held.restart_at(after);
        }
        let stale = held.read_at.is_none_or(|at| at.elapsed() >= self.config.fresh_for);
        if after >= held.start && (stale || after > held.end) {
            self.extend(&mut held).await?;
            if after > held.end {
                // Further on than a page of the tail (another process moved the consumer on): follow it there.
                held.restart_at(after);
                self.extend(&mut held).await?;
            }
        }
        if after < held.start {
            // Behind what is held: catching up is read from the log itself.
            drop(held);
            return self.store.read_filtered(after, limit, filter).await;
        }
        Ok(held.page_after(after, usize::try_from(limit).unwrap_or(usize::MAX), filter))
    }

    /// Reads what was appended after the tail's end.
    async fn extend(&self, held: &mut Held) -> Result<(), StoreError> {
        // Fresh as of when the read began: what commits during it is not in it.
        let started = Instant::now();
        let page = self
            .store
            .read_filtered(held.end, self.config.page, &LogFilter::EVERYTHING)
            .await?;
        held.push(page);
        held.read_at = Some(started);
        held.trim(self.config.max_bytes);
        Ok(())
    }
}
