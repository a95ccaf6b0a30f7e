//! The event log on Postgres (DESIGN.md §3): one-statement batch appends with
//! optimistic concurrency and idempotency keys, gap-safe global reads, upcasting.

use crate::group_commit::GroupCommitter;
use application::event_store::{
    AppendError, AppendOutcome, AppendRequest, AppendedEvent, Backlog, EventStore, LogFilter, LogPage, StoreError,
    StreamAppend,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::event_log::StoredPayload;
use domain::{Checkpoint, EventMetadata, ExpectedVersion, RecordedEvent, StreamId};
use futures::TryStreamExt;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Channel on which appends announce new events. Only a wake-up: readers poll too.
pub const EVENTS_CHANNEL: &str = "voxreach_events";

/// Least time between two announcements.
const NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Appends as the group committer runs them: the request's values, owned.
pub(crate) struct PreparedAppend {
    organization_id: Uuid,
    /// One stream's append (`APPEND_ONE_STREAM_SQL`), else several (`APPEND_GROUP_SQL`).
    single_stream: bool,
    /// The stream values once per event.
    stream_ids: Vec<String>,
    stream_types: Vec<String>,
    expected: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    versions: Vec<i32>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<sqlx::types::Json<EventMetadata>>,
    idempotency_key: Option<String>,
}

/// A value of each stream of `request`, once per event.
fn per_event<T: Clone>(request: &AppendRequest, value: impl Fn(&StreamAppend) -> T) -> Vec<T> {
    request
        .streams
        .iter()
        .flat_map(|s| std::iter::repeat_n(value(s), s.events.len()))
        .collect()
}

impl PreparedAppend {
    fn of(request: &AppendRequest) -> Self {
        let events = || request.streams.iter().flat_map(|s| s.events.iter());
        let expected_code = |expected: ExpectedVersion| match expected {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => v,
        };
        Self {
            organization_id: request.organization_id,
            single_stream: request.streams.len() == 1,
            stream_ids: per_event(request, |s| s.stream.to_string()),
            stream_types: per_event(request, |s| s.stream.stream_type().to_owned()),
            expected: per_event(request, |s| expected_code(s.expected)),
            event_ids: events().map(|e| e.event_id).collect(),
            event_types: events().map(|e| e.event_type.clone()).collect(),
            versions: events().map(|e| e.event_version).collect(),
            payloads: events().map(|e| e.payload.clone()).collect(),
            metadata: events().map(|e| sqlx::types::Json(e.metadata.clone())).collect(),
            idempotency_key: request.idempotency_key.clone(),
        }
    }

    /// The streams the append writes, once per event.
    pub(crate) fn stream_ids(&self) -> &[String] {
        &self.stream_ids
    }

    pub(crate) fn event_ids(&self) -> &[Uuid] {
        &self.event_ids
    }

    /// The append's statement, ready to run: a multi-stream append is a group of one.
    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        if !self.single_stream {
            return group_append_query(&[self]);
        }
        sqlx::query(APPEND_ONE_STREAM_SQL)
            .bind(self.organization_id)
            .bind(&self.stream_ids[0])
            .bind(&self.stream_types[0])
            .bind(self.expected[0])
            .bind(&self.event_ids)
            .bind(&self.event_types)
            .bind(&self.versions)
            .bind(&self.payloads)
            .bind(&self.metadata)
            .bind(self.idempotency_key.as_deref())
    }
}

/// Several appends (none sharing a stream) as one statement, each with its own
/// expected-version check: an append whose check fails writes nothing and gets
/// no rows back, the others are written. All of an append's streams are checked
/// together, so a multi-stream append is all or nothing.
pub(crate) fn group_append_query<'a>(
    appends: &[&'a PreparedAppend],
) -> sqlx::query::Query<'a, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // Each event of the group with its append's number: one row of the statement's input.
    let events = || {
        appends
            .iter()
            .enumerate()
            .flat_map(|(number, append)| (0..append.event_ids.len()).map(move |event| (number as i32, *append, event)))
    };
    let numbers: Vec<i32> = events().map(|(number, _, _)| number).collect();
    let organizations: Vec<Uuid> = events().map(|(_, a, _)| a.organization_id).collect();
    let stream_ids: Vec<&str> = events().map(|(_, a, e)| a.stream_ids[e].as_str()).collect();
    let stream_types: Vec<&str> = events().map(|(_, a, e)| a.stream_types[e].as_str()).collect();
    let expected: Vec<i64> = events().map(|(_, a, e)| a.expected[e]).collect();
    let event_ids: Vec<Uuid> = events().map(|(_, a, e)| a.event_ids[e]).collect();
    let event_types: Vec<&str> = events().map(|(_, a, e)| a.event_types[e].as_str()).collect();
    let versions: Vec<i32> = events().map(|(_, a, e)| a.versions[e]).collect();
    let payloads: Vec<&serde_json::Value> = events().map(|(_, a, e)| &a.payloads[e]).collect();
    let metadata: Vec<&sqlx::types::Json<EventMetadata>> = events().map(|(_, a, e)| &a.metadata[e]).collect();
    // The key marks an append's first event, as in the single-stream statement.
    let keys: Vec<Option<&str>> = events()
        .map(|(_, a, e)| a.idempotency_key.as_deref().filter(|_| e == 0))
        .collect();
    sqlx::query(APPEND_GROUP_SQL)
        .bind(numbers)
        .bind(organizations)
        .bind(stream_ids)
        .bind(stream_types)
        .bind(expected)
        .bind(event_ids)
        .bind(event_types)
        .bind(versions)
        .bind(payloads)
        .bind(metadata)
        .bind(keys)
}

/// `Any` appends race only against each other; a few retries settle them.
const ANY_VERSION_RETRIES: usize = 5;

/// The common case, one stream: cheaper to plan and run than `APPEND_GROUP_SQL`.
const APPEND_ONE_STREAM_SQL: &str = r#"
INSERT INTO events (organization_id, stream_id, stream_type, stream_version, event_id,
                    event_type, event_version, payload, metadata, idempotency_key)
SELECT $1, $2, $3, current.version + t.ord, t.event_id, t.event_type, t.event_version, t.payload, t.metadata,
       CASE WHEN t.ord = 1 THEN $10 END
FROM UNNEST($5::uuid[], $6::text[], $7::int[], $8::jsonb[], $9::jsonb[])
        WITH ORDINALITY AS t(event_id, event_type, event_version, payload, metadata, ord),
     (SELECT COALESCE(max(stream_version), 0) AS version FROM events WHERE stream_id = $2) current
WHERE $4 < 0 OR current.version = $4
ORDER BY t.ord
RETURNING event_id, stream_version, global_position, transaction_id::text::bigint AS transaction_id
"#;

/// [`group_append_query`]'s statement.
const APPEND_GROUP_SQL: &str = r#"
WITH input AS (
    SELECT *
    FROM UNNEST($1::int[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::uuid[], $7::text[], $8::int[],
                $9::jsonb[], $10::jsonb[], $11::text[])
        WITH ORDINALITY AS t(append_no, organization_id, stream_id, stream_type, expected, event_id, event_type,
                             event_version, payload, metadata, idempotency_key, ord)
),
current_versions AS (
    SELECT s.stream_id,
           COALESCE((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = s.stream_id), 0) AS version
    FROM (SELECT DISTINCT stream_id FROM input) s
),
refused AS (
    SELECT DISTINCT i.append_no FROM input i JOIN current_versions c USING (stream_id)
    WHERE i.expected >= 0 AND i.expected <> c.version
)
INSERT INTO events (organization_id, stream_id, stream_type, stream_version, event_id,
                    event_type, event_version, payload, metadata, idempotency_key)
SELECT i.organization_id, i.stream_id, i.stream_type,
       c.version + row_number() OVER (PARTITION BY i.stream_id ORDER BY i.ord),
       i.event_id, i.event_type, i.event_version, i.payload, i.metadata, i.idempotency_key
FROM input i JOIN current_versions c USING (stream_id)
WHERE i.append_no NOT IN (SELECT append_no FROM refused)
ORDER BY i.ord
RETURNING event_id, stream_version, global_position, transaction_id::text::bigint AS transaction_id
"#;

const SELECT_EVENT_COLUMNS: &str = "global_position, transaction_id::text::bigint AS transaction_id, organization_id, \
     stream_id, stream_type, stream_version, event_id, event_type, event_version, payload, metadata, recorded_at";

#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    wake: mpsc::Sender<()>,
    committer: GroupCommitter,
}

impl PgEventStore {
    /// Must be called inside a Tokio runtime: it starts the task that turns
    /// appends into coalesced `NOTIFY`s, keeping NOTIFY's commit-time lock off
    /// the append path.
    pub fn new(pool: PgPool) -> Self {
        // Capacity 1: appends while a NOTIFY is pending coalesce into it. The task
        // ends when the last clone of the store is dropped.
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let notifier_pool = pool.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(EVENTS_CHANNEL)
                    .execute(&notifier_pool)
                    .await
                {
                    tracing::debug!(%error, "could not announce new events; readers will poll");
                }
                // Under a stream of appends, one NOTIFY per interval is enough to wake readers.
                tokio::time::sleep(NOTIFY_INTERVAL).await;
            }
        });
        let committer = GroupCommitter::start(pool.clone());
        Self { pool, wake, committer }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn try_append(&self, request: &AppendRequest) -> Result<Vec<PgRow>, sqlx::Error> {
        self.committer.append(PreparedAppend::of(request)).await
    }

    /// The events an earlier append with the same key wrote.
    async fn earlier_append(&self, organization_id: Uuid, key: &str) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream_version, global_position, transaction_id::text::bigint AS transaction_id FROM events
             WHERE transaction_id = (SELECT transaction_id FROM events WHERE organization_id = $1 AND idempotency_key = $2)
             ORDER BY global_position",
        )
        .bind(organization_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows.iter().map(appended_event).collect()))
    }

    /// Names the stream whose expectation failed.
    async fn conflict(&self, request: &AppendRequest) -> AppendError {
        for stream in &request.streams {
            let actual: Result<i64, _> =
                sqlx::query_scalar("SELECT COALESCE(max(stream_version), 0) FROM events WHERE stream_id = $1")
                    .bind(stream.stream.to_string())
                    .fetch_one(&self.pool)
                    .await;
            let actual = match actual {
                Ok(v) => v,
                Err(e) => return StoreError::new("reading a stream's version", e).into(),
            };
            let matches = match stream.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => actual == 0,
                ExpectedVersion::Exact(v) => actual == v,
            };
            if !matches {
                return AppendError::VersionConflict {
                    stream_id: stream.stream.to_string(),
                    expected: stream.expected,
                    actual,
                };
            }
        }
        // Every expectation holds now: the conflicting writer has since committed
        // at exactly our expected version, which only `Exact` can race on.
        let first = &request.streams[0];
        AppendError::VersionConflict {
            stream_id: first.stream.to_string(),
            expected: first.expected,
            actual: -1,
        }
    }

    fn announce(&self) {
        let _ = self.wake.try_send(());
    }
}

fn store_error(error: sqlx::Error) -> StoreError {
    StoreError::new("reading the log", error)
}

fn appended_event(row: &PgRow) -> AppendedEvent {
    AppendedEvent {
        stream_version: row.get("stream_version"),
        checkpoint: Checkpoint {
            transaction_id: row.get("transaction_id"),
            global_position: row.get("global_position"),
        },
    }
}

fn unique_violation(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

fn recorded_event(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let event_type: String = row.try_get("event_type")?;
    let event_version: i32 = row.try_get("event_version")?;
    // Payloads stay JSON text until a consumer decodes them into their typed
    // event. A read without payloads has nothing to upcast.
    let (event_version, payload) = match row.try_get::<Option<Json<Box<RawValue>>>, _>("payload")? {
        Some(Json(payload)) => domain::events::upcast_stored(&event_type, event_version, payload),
        None => (event_version, StoredPayload::null()),
    };
    // Metadata that is not (or no longer) what we write reads as none.
    let metadata = row.try_get::<Option<Json<EventMetadata>>, _>("metadata").ok().flatten();
    Ok(RecordedEvent {
        global_position: row.try_get("global_position")?,
        transaction_id: row.try_get("transaction_id")?,
        organization_id: row.try_get("organization_id")?,
        stream_id: row.try_get("stream_id")?,
        stream_type: row.try_get("stream_type")?,
        stream_version: row.try_get("stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type,
        event_version,
        payload,
        metadata: metadata.map(|Json(m)| m).unwrap_or_default(),
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// A page of the log after `$1, $2`, `$3` events at most, those `$4, $5` admit
/// with their payloads when `$6`; `$upper_bound` may end it at `$7, $8`.
/// Only transactions older than every still-running one are final: an event of
/// a running transaction may yet commit before those we return. ORDER BY names
/// the table's columns: the output alias `transaction_id` is a bigint cast, and
/// sorting on it would bypass the index. Payloads of events not admitted stay in
/// the table (and in TOAST).
macro_rules! page_sql {
    ($upper_bound:literal) => {
        concat!(
            "SELECT global_position, transaction_id::text::bigint AS transaction_id, organization_id, stream_id,
                    stream_type, stream_version, event_id, event_type, event_version, recorded_at, admitted,
                    CASE WHEN admitted AND $6 THEN payload END AS payload,
                    CASE WHEN admitted THEN metadata END AS metadata
             FROM (SELECT *, ($4::text[] IS NULL OR stream_type = ANY($4)) AND ($5::text[] IS NULL OR event_type = ANY($5)) AS admitted
                   FROM events
                   WHERE (transaction_id, global_position) > ($1::text::xid8, $2) ",
            $upper_bound,
            "
                     AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                   ORDER BY events.transaction_id, events.global_position
                   LIMIT $3) page
             ORDER BY page.transaction_id, page.global_position"
        )
    };
}
const PAGE_SQL: &str = page_sql!("");
const PAGE_UNTIL_SQL: &str = page_sql!("AND (transaction_id, global_position) <= ($7::text::xid8, $8)");

/// Where a row with `transaction_id` (as bigint) and `global_position` stands in the log.
fn checkpoint_of(row: &PgRow) -> Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        transaction_id: row.try_get("transaction_id")?,
        global_position: row.try_get("global_position")?,
    })
}

impl PgEventStore {
    /// Up to `limit` events after `after` (and up to `until`), those `filter` admits decoded.
    async fn read_page(
        &self,
        after: Checkpoint,
        until: Option<Checkpoint>,
        limit: i64,
        filter: &LogFilter<'_>,
    ) -> Result<LogPage, StoreError> {
        let sql = if until.is_some() { PAGE_UNTIL_SQL } else { PAGE_SQL };
        let mut query = sqlx::query(sql)
            .bind(after.transaction_id.to_string())
            .bind(after.global_position)
            .bind(limit)
            .bind(filter.stream_types)
            .bind(filter.event_types)
            .bind(filter.payloads);
        if let Some(until) = until {
            query = query.bind(until.transaction_id.to_string()).bind(until.global_position);
        }
        // Rows are decoded as they arrive, while PostgreSQL is still sending the rest.
        let page = LogPage {
            events: Vec::new(),
            scanned: 0,
            scanned_to: None,
        };
        query
            .fetch(&self.pool)
            .try_fold(page, |mut page, row| async move {
                page.scanned += 1;
                page.scanned_to = Some(checkpoint_of(&row)?);
                if row.try_get::<bool, _>("admitted")? {
                    page.events.push(recorded_event(&row)?);
                }
                Ok(page)
            })
            .await
            .map_err(store_error)
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        if request.streams.iter().all(|s| s.events.is_empty()) {
            return Ok(AppendOutcome {
                events: vec![],
                duplicate: false,
            });
        }
        let only_any = request.streams.iter().all(|s| s.expected == ExpectedVersion::Any);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.try_append(&request).await {
                Ok(rows) if !rows.is_empty() => {
                    self.announce();
                    let by_id: HashMap<Uuid, AppendedEvent> = rows
                        .iter()
                        .map(|row| (row.get("event_id"), appended_event(row)))
                        .collect();
                    let events = request
                        .streams
                        .iter()
                        .flat_map(|s| &s.events)
                        .filter_map(|e| by_id.get(&e.event_id).copied())
                        .collect::<Vec<_>>();
                    metrics::counter!("voxreach_events_appended_total").increment(events.len() as u64);
                    return Ok(AppendOutcome {
                        events,
                        duplicate: false,
                    });
                }
                Ok(_) => None,
                Err(error) => match unique_violation(&error) {
                    Some(constraint) => Some(constraint),
                    None => return Err(StoreError::new("appending", error).into()),
                },
            };
            if let Some(key) = &request.idempotency_key {
                let earlier = self
                    .earlier_append(request.organization_id, key)
                    .await
                    .map_err(AppendError::Store)?;
                if let Some(events) = earlier {
                    return Ok(AppendOutcome {
                        events,
                        duplicate: true,
                    });
                }
            }
            let raced_on_version = failure.as_deref() == Some("events_stream_version_unique");
            if only_any && raced_on_version && attempts < ANY_VERSION_RETRIES {
                continue;
            }
            if failure.as_deref() == Some("events_idempotency_key_unique") && attempts < ANY_VERSION_RETRIES {
                // The other append with this key has not committed yet; look again.
                continue;
            }
            metrics::counter!("voxreach_append_conflicts_total").increment(1);
            return Err(self.conflict(&request).await);
        }
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {SELECT_EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version");
        sqlx::query(&sql)
            .bind(stream.to_string())
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(recorded_event).collect())
            .map_err(store_error)
    }

    async fn read_streams(&self, streams: &[StreamId]) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        if streams.is_empty() {
            return Ok(vec![]);
        }
        let names: Vec<String> = streams.iter().map(StreamId::to_string).collect();
        // One parameter per stream, not one array: PostgreSQL estimates an array
        // parameter as ten elements, so its generic plan looked dearer than a plan
        // for the real two and it planned the read anew on most executions (as
        // long as executing it, under webhook load). Callers read a few streams.
        let slots = (1..=names.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {SELECT_EVENT_COLUMNS} FROM events WHERE stream_id IN ({slots}) ORDER BY stream_id, stream_version"
        );
        let mut query = sqlx::query(&sql);
        for name in &names {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(store_error)?;
        let mut read: Vec<Vec<RecordedEvent>> = vec![Vec::new(); names.len()];
        let place: HashMap<&str, usize> = names.iter().enumerate().map(|(n, name)| (name.as_str(), n)).collect();
        for row in &rows {
            let event = recorded_event(row).map_err(store_error)?;
            read[place[event.stream_id.as_str()]].push(event);
        }
        // A name asked twice gets its events twice, as two reads would.
        for (n, name) in names.iter().enumerate() {
            if place[name.as_str()] != n {
                read[n] = read[place[name.as_str()]].clone();
            }
        }
        Ok(read)
    }

    async fn read_all(&self, after: Checkpoint, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_filtered(after, limit, &LogFilter::EVERYTHING)
            .await
            .map(|page| page.events)
    }

    async fn read_filtered(
        &self,
        after: Checkpoint,
        limit: i64,
        filter: &LogFilter<'_>,
    ) -> Result<LogPage, StoreError> {
        self.read_page(after, None, limit, filter).await
    }

    async fn page_ends(&self, after: Checkpoint, size: i64, pages: i64) -> Result<Vec<Checkpoint>, StoreError> {
        // From the (transaction_id, global_position) index alone: no row is read.
        sqlx::query(
            "SELECT transaction_id::text::bigint AS transaction_id, global_position FROM (
                 SELECT transaction_id, global_position,
                        row_number() OVER (ORDER BY transaction_id, global_position) AS n, count(*) OVER () AS total
                 FROM (SELECT transaction_id, global_position FROM events
                       WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                         AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                       ORDER BY transaction_id, global_position
                       LIMIT $3 * $4) ahead
             ) numbered
             WHERE n % $3 = 0 OR n = total
             ORDER BY n",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(size)
        .bind(pages)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(checkpoint_of)
        .collect::<Result<_, _>>()
        .map_err(store_error)
    }

    async fn read_filtered_until(
        &self,
        after: Checkpoint,
        until: Checkpoint,
        filter: &LogFilter<'_>,
    ) -> Result<LogPage, StoreError> {
        self.read_page(after, Some(until), i64::MAX, filter).await
    }

    async fn backlog(&self, after: Checkpoint) -> Result<Backlog, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS events, min(recorded_at) AS oldest FROM events
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(Backlog {
            events: row.get("events"),
            oldest_recorded_at: row.get::<Option<DateTime<Utc>>, _>("oldest"),
        })
    }

    async fn first_event(&self, stream: &StreamId) -> Result<Option<RecordedEvent>, StoreError> {
        let sql =
            format!("SELECT {SELECT_EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version LIMIT 1");
        sqlx::query(&sql)
            .bind(stream.to_string())
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.as_ref().map(recorded_event).transpose())
            .map_err(store_error)
    }

    async fn head(&self) -> Result<Checkpoint, StoreError> {
        let row = sqlx::query(
            "SELECT transaction_id::text::bigint AS transaction_id, global_position FROM events
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY events.transaction_id DESC, events.global_position DESC
             LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map_or(Ok(Checkpoint::START), checkpoint_of)
            .map_err(store_error)
    }
}
