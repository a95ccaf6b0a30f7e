//! The consumer runtime (DESIGN.md §4). Two kinds of log consumers, kept apart:
//!
//! - **Read models** ([`ReadModel`]) build the tables the API reads. They have
//!   no side effects and can be rebuilt at any time, into a side schema that is
//!   swapped in atomically (also when their version changes).
//! - **Subscriptions** ([`Subscription`]) turn events into reactor work. They
//!   are never replayed: a new one, or a new version, starts at the log's head.
//!
//! Both read the log in `(transaction_id, global_position)` order and move
//! their checkpoint in the transaction that applies the batch. The checkpoint
//! update compares the stored version, so a process running another version
//! of a consumer (a rolling deploy) stops applying it instead of writing its
//! logic into tables it no longer understands.

use crate::tail::{LogTail, TailConfig};
use application::event_store::{EventStore, LogFilter, LogPage};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::events::DecodeError;
use domain::{Checkpoint, RecordedEvent};
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// A read model: tables shaped for the API's queries. `apply` may only touch
/// the tables listed in `tables` (rebuilds run with nothing else on the search path).
#[async_trait]
pub trait ReadModel: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bumped whenever the tables or the meaning of `apply` change; the new
    /// version is rebuilt side by side and swapped in.
    fn schema_version(&self) -> i32;
    /// The stream types whose events `apply` reads (`None`: all); the store skips the rest undecoded.
    fn stream_types(&self) -> Option<&[&'static str]>;
    /// Narrows `stream_types` to these event types (`None`: all of them).
    fn event_types(&self) -> Option<&[&'static str]> {
        None
    }
    /// Whether `apply` reads payloads (without, they come as `null`).
    fn reads_payloads(&self) -> bool {
        true
    }
    /// The tables this read model owns, unqualified.
    fn tables(&self) -> &'static [&'static str];
    /// DDL that creates the tables, unqualified, in the current `search_path`.
    fn create_sql(&self) -> &'static str;
    /// Applies a batch in log order, on the connection of the transaction that also moves the checkpoint.
    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error>;
    /// A rebuild from the start into fresh tables. By default it applies each
    /// batch as the live projector does; a read model may keep state across
    /// the batches and leave work cheaper done once over everything to its end.
    /// `held_rows` bounds the rows it may keep in memory between batches.
    fn rebuild(&self, _held_rows: usize) -> Box<dyn Rebuild + '_> {
        Box::new(BatchByBatch(self))
    }
}

/// One rebuild of a read model, fed the whole log in order.
#[async_trait]
pub trait Rebuild: Send {
    /// Applies the next batch, in its own transaction.
    async fn apply(&mut self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error>;
    /// Completes the tables after the last batch, before they are swapped in.
    async fn finish(&mut self, _conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
    /// Statements that complete the tables after `finish`, independent of one
    /// another: the runtime runs them side by side, each in its own transaction.
    fn completing_statements(&self) -> Vec<String> {
        vec![]
    }
}

/// A rebuild that applies every batch as the live projector does.
struct BatchByBatch<'a, M: ?Sized>(&'a M);

#[async_trait]
impl<M: ReadModel + ?Sized> Rebuild for BatchByBatch<'_, M> {
    async fn apply(&mut self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        self.0.apply(conn, events).await
    }
}

/// A read model's [`LogFilter`] that a task of its own can keep.
#[derive(Clone)]
struct OwnedLogFilter {
    stream_types: Option<Vec<&'static str>>,
    event_types: Option<Vec<&'static str>>,
    payloads: bool,
}

impl OwnedLogFilter {
    fn of(m: &dyn ReadModel) -> Self {
        Self {
            stream_types: m.stream_types().map(<[_]>::to_vec),
            event_types: m.event_types().map(<[_]>::to_vec),
            payloads: m.reads_payloads(),
        }
    }

    fn borrowed(&self) -> LogFilter<'_> {
        LogFilter {
            stream_types: self.stream_types.as_deref(),
            event_types: self.event_types.as_deref(),
            payloads: self.payloads,
        }
    }
}

fn read_model_filter(m: &dyn ReadModel) -> LogFilter<'_> {
    LogFilter {
        stream_types: m.stream_types(),
        event_types: m.event_types(),
        payloads: m.reads_payloads(),
    }
}

/// Runs `work`, returning its result and how long it took.
async fn timed<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let began = Instant::now();
    let result = work.await;
    (result, began.elapsed())
}

/// Work a reactor owes because of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrder {
    pub reactor: &'static str,
    pub key: String,
    pub organization_id: Uuid,
}

/// A subscription: decides which reactor work an event makes due. The runtime
/// writes the work, with the trigger's position, in the statement that moves the checkpoint.
pub trait Subscription: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bumped when the routing changes meaning; a new version starts at the log's head.
    fn version(&self) -> i32;
    /// The stream types whose events `route` reads; the store skips the rest undecoded.
    fn stream_types(&self) -> &[&'static str];
    /// Narrows `stream_types` to these event types (`None`: all of them).
    fn event_types(&self) -> Option<&[&'static str]> {
        None
    }
    /// Whether `route` reads payloads (without, they come as `null`).
    fn reads_payloads(&self) -> bool {
        true
    }
    /// The work `event` makes due, if any. Pure: no IO.
    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, DecodeError>;
    /// Whether a new subscription starts at the log's beginning instead of its
    /// head. Only for reactors whose effect stays inside the log and is
    /// recorded once per stream (deriving a fact from history): an outside
    /// effect must never be replayed from old events.
    fn starts_at_beginning(&self) -> bool {
        false
    }
    /// The work an event shows is done already (the trigger's effect, recorded after it): an
    /// order for it earlier in the same batch is dropped. Events named by `event_types`.
    fn settles(&self, _event: &RecordedEvent) -> Option<(&'static str, String)> {
        None
    }
    /// Makes work due only in organizations with a stream of this type (`None`: in all): an
    /// organization that never set the feature up has nothing for the reactor to do. Checked
    /// against the log as the work is written, so a stream begun before the trigger counts.
    fn only_in_organizations_with(&self) -> Option<&'static str> {
        None
    }
}

/// One consumer of the log, of either kind.
#[derive(Clone)]
pub enum Consumer {
    ReadModel(Arc<dyn ReadModel>),
    Subscription(Arc<dyn Subscription>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsumerKind {
    ReadModel,
    Subscription,
}

impl Consumer {
    pub fn name(&self) -> &'static str {
        match self {
            Consumer::ReadModel(m) => m.name(),
            Consumer::Subscription(s) => s.name(),
        }
    }

    pub fn version(&self) -> i32 {
        match self {
            Consumer::ReadModel(m) => m.schema_version(),
            Consumer::Subscription(s) => s.version(),
        }
    }

    /// What the consumer reads of the log.
    pub fn filter(&self) -> LogFilter<'_> {
        match self {
            Consumer::ReadModel(m) => read_model_filter(m.as_ref()),
            Consumer::Subscription(s) => LogFilter {
                stream_types: Some(s.stream_types()),
                event_types: s.event_types(),
                payloads: s.reads_payloads(),
            },
        }
    }

    pub fn kind(&self) -> ConsumerKind {
        match self {
            Consumer::ReadModel(_) => ConsumerKind::ReadModel,
            Consumer::Subscription(_) => ConsumerKind::Subscription,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error in {consumer}: {source}")]
    Database {
        consumer: &'static str,
        source: sqlx::Error,
    },
    #[error("reading the event log: {0}")]
    Store(#[from] application::event_store::StoreError),
    #[error("decoding an event in {consumer}: {source}")]
    Decode {
        consumer: &'static str,
        source: DecodeError,
    },
    #[error("unknown read model {0}")]
    Unknown(String),
    #[error(
        "{0} is a subscription: subscriptions feed reactors and are never replayed (their side effects would repeat)"
    )]
    NotReplayable(String),
    #[error("schema {schema:?} cannot hold a replay of {read_model}: {reason}")]
    UnsafeSchema {
        schema: String,
        read_model: String,
        reason: &'static str,
    },
    #[error("{read_model} is at version {stored} in the database, newer than this process's {ours}")]
    Superseded {
        read_model: &'static str,
        stored: i32,
        ours: i32,
    },
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub batch_size: i64,
    /// Events per batch when rebuilding: larger batches fold more of a row's
    /// events into one write.
    pub rebuild_batch_size: i64,
    /// Rows a rebuild may keep in memory between its batches before writing them out.
    pub rebuild_held_rows: usize,
    /// Connections a rebuild's last steps (completing, logging and indexing
    /// its tables) use side by side: PostgreSQL runs each statement on one core.
    pub rebuild_workers: usize,
    pub poll_interval: Duration,
    /// Postgres channel on which appends announce new events.
    pub channel: &'static str,
    /// How long a woken consumer waits for more appends before it reads.
    pub gather: Duration,
    /// How often a subscription stores its checkpoint while it scans events it makes no work
    /// of (it always stores it when the log goes quiet). Read models store theirs at every
    /// step, since the API waits on them for read-your-writes.
    pub subscription_checkpoint_every: Duration,
    pub tail: TailConfig,
}

/// Pages a rebuild reads side by side while it applies the one before them.
const PAGES_READ_AHEAD: usize = 2;

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            rebuild_batch_size: 10_000,
            rebuild_held_rows: 200_000,
            rebuild_workers: std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            poll_interval: Duration::from_millis(500),
            channel: "voxreach_events",
            gather: Duration::from_millis(50),
            subscription_checkpoint_every: Duration::from_millis(500),
            tail: TailConfig::default(),
        }
    }
}

/// Whether this process applies a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsumerState {
    /// Stored and running versions agree.
    Current,
    /// The database holds an older version; this process rebuilds (read
    /// model) or restarts at the head (subscription) before applying.
    Upgrading,
    /// The database holds a newer version: another process owns it, this one applies nothing.
    Superseded,
}

/// Where a consumer stands, for the readiness endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub kind: ConsumerKind,
    pub version: i32,
    pub stored_version: Option<i32>,
    pub state: ConsumerState,
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
    /// Time spent reading the log and applying batches (they overlap): says
    /// which side bounds a rebuild.
    pub reading: Duration,
    pub applying: Duration,
    /// After the last batch: completing the tables, logging and indexing them, swapping them in.
    pub finishing: Duration,
}

/// How much history a replay applies: all of it, or up to a position and/or a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayLimit {
    pub until_position: Option<i64>,
    pub until_time: Option<DateTime<Utc>>,
}

impl ReplayLimit {
    fn admits(&self, event: &RecordedEvent) -> bool {
        self.until_position.is_none_or(|p| event.global_position <= p)
            && self.until_time.is_none_or(|t| event.recorded_at <= t)
    }

    fn is_everything(&self) -> bool {
        self.until_position.is_none() && self.until_time.is_none()
    }
}

/// What one step of a consumer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Applied(usize),
    /// The stored version differs from this process's.
    VersionMismatch {
        stored: i32,
    },
}

/// Where a consumer stands between its steps in one task: a step need not read
/// its checkpoint, and a subscription scanning events it makes no work of
/// stores its checkpoint only now and then. The stored checkpoint stays the
/// truth: every write compares it, and a cursor that finds it moved (another
/// process, an upgrade) is forgotten and read again.
#[derive(Debug, Default)]
pub struct Cursor {
    position: Option<Position>,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    stored: Checkpoint,
    /// Past `stored` only over events the consumer has nothing to write for.
    scanned: Checkpoint,
    stored_at: Instant,
}

impl Cursor {
    fn at(&mut self, stored: Checkpoint) -> Position {
        *self.position.insert(Position {
            stored,
            scanned: stored,
            stored_at: Instant::now(),
        })
    }

    fn forget(&mut self) {
        self.position = None;
    }
}

#[derive(Clone)]
pub struct ProjectionRunner {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    /// What consumers that keep up read: the log's newest events, read once for all of them.
    tail: Arc<LogTail>,
    consumers: Vec<Consumer>,
    config: RunnerConfig,
}

fn db(consumer: &'static str) -> impl Fn(sqlx::Error) -> ProjectionError {
    move |source| ProjectionError::Database { consumer, source }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The comment that marks a schema as holding a replay of one read model.
fn replay_marker(read_model: &str) -> String {
    format!("voxreach replay of {read_model}")
}

async fn create_tables(conn: &mut PgConnection, m: &dyn ReadModel) -> Result<(), ProjectionError> {
    run_script(conn, m.create_sql().to_owned()).await.map_err(db(m.name()))
}

/// Readies a rebuild's fresh tables in `schema` for loading: unlogged (no
/// write-ahead log for rows a crash would rebuild anyway), and without their
/// non-unique indexes (built once at the end instead of maintained per row;
/// unique ones stay, upserts need them). Returns the indexes' definitions.
async fn bulk_load_mode(
    conn: &mut PgConnection,
    m: &dyn ReadModel,
    schema: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let indexes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, i.relname), t.relname::text, pg_get_indexdef(i.oid)
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
              JOIN pg_class t ON t.oid = x.indrelid
         WHERE n.nspname = $1 AND NOT x.indisunique",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let mut script: Vec<String> = indexes
        .iter()
        .map(|(index, ..)| format!("DROP INDEX {index}"))
        .collect();
    script.extend(
        m.tables()
            .iter()
            .map(|table| format!("ALTER TABLE {table} SET UNLOGGED")),
    );
    run_script(conn, script.join("; ")).await?;
    Ok(indexes
        .into_iter()
        .map(|(_, table, definition)| (table, definition))
        .collect())
}

/// What makes a rebuild's tables what `create_sql` made them, a script per
/// table: logged (one sequential write of it), with every index built from the loaded rows.
fn leaving_bulk_load_mode(m: &dyn ReadModel, deferred_indexes: Vec<(String, String)>) -> Vec<String> {
    m.tables()
        .iter()
        .map(|table| {
            let mut script = vec![format!("ALTER TABLE {table} SET LOGGED")];
            script.extend(
                deferred_indexes
                    .iter()
                    .filter(|(indexed, _)| indexed == table)
                    .map(|(_, definition)| definition.clone()),
            );
            script.join("; ")
        })
        .collect()
}

/// Runs independent scripts on `workers` connections side by side, each in
/// its own transaction under `search_path`.
async fn run_side_by_side(
    pool: &PgPool,
    search_path: &str,
    scripts: Vec<String>,
    workers: usize,
) -> Result<(), sqlx::Error> {
    let queue = Arc::new(std::sync::Mutex::new(scripts));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (pool, queue, search_path) = (pool.clone(), queue.clone(), search_path.to_owned());
        tasks.spawn(async move {
            loop {
                let Some(script) = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop() else {
                    return Ok::<_, sqlx::Error>(());
                };
                let mut tx = pool.begin().await?;
                sqlx::query(&search_path).execute(&mut *tx).await?;
                run_script(&mut tx, script).await?;
                tx.commit().await?;
            }
        });
    }
    let mut outcome = Ok(());
    while let Some(done) = tasks.join_next().await {
        let done = done.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
        outcome = outcome.and(done);
    }
    outcome
}

/// Runs several statements (simple query protocol). Not `raw_sql`: its
/// future trips the compiler's proof that spawned rebuilds are `Send`.
pub(crate) async fn run_script(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql.as_str()).await.map(|_| ())
}

async fn read_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    lock: bool,
) -> Result<Option<(Checkpoint, i32)>, sqlx::Error> {
    let sql = if lock {
        "SELECT transaction_id, global_position, schema_version FROM public.projection_checkpoints WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT transaction_id, global_position, schema_version FROM public.projection_checkpoints WHERE name = $1"
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

/// Sets a checkpoint and version unconditionally (first start, upgrades, swaps: under the row lock).
async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    at: Checkpoint,
    version: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO public.projection_checkpoints (name, transaction_id, global_position, schema_version, updated_at)
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

/// [`advance_checkpoint`]'s statement: $1 name, $2 version, $3 and $6 where it stands, $4 and
/// $5 where it moves to.
const ADVANCE_CHECKPOINT_SQL: &str =
    "UPDATE public.projection_checkpoints SET transaction_id = $4, global_position = $5, updated_at = now()
     WHERE name = (SELECT name FROM public.projection_checkpoints
                   WHERE name = $1 AND schema_version = $2 AND transaction_id = $3 AND global_position = $6
                   FOR UPDATE SKIP LOCKED)";

/// Moves a checkpoint after a batch, only from `from` and only at `version`;
/// a checkpoint another process holds locked (mid-batch) is left to it, without waiting.
async fn advance_checkpoint(
    conn: impl sqlx::PgExecutor<'_>,
    name: &str,
    from: Checkpoint,
    to: Checkpoint,
    version: i32,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(ADVANCE_CHECKPOINT_SQL)
        .bind(name)
        .bind(version)
        .bind(from.transaction_id)
        .bind(to.transaction_id)
        .bind(to.global_position)
        .bind(from.global_position)
        .execute(conn)
        .await?;
    Ok(moved.rows_affected() == 1)
}

/// What a consumer's batch writes: a read model's rows, or a subscription's reactor work.
enum BatchWrite<'a> {
    Rows(&'a Arc<dyn ReadModel>),
    Work(&'a Arc<dyn Subscription>, WorkOrders),
}

/// Reactor work by reactor and key: the organization, the newest trigger and its correlation id.
type WorkOrders = HashMap<(&'static str, String), (Uuid, Checkpoint, Option<Uuid>)>;

/// The reactor work a batch of events makes due, one item per reactor and key.
fn work_orders(subscription: &dyn Subscription, events: &[RecordedEvent]) -> Result<WorkOrders, ProjectionError> {
    let mut orders = HashMap::new();
    for event in events {
        if let Some(settled) = subscription.settles(event) {
            orders.remove(&settled);
            continue;
        }
        let routed = subscription.route(event).map_err(|source| ProjectionError::Decode {
            consumer: subscription.name(),
            source,
        })?;
        if let Some(order) = routed {
            // Later triggers of the same work supersede earlier ones.
            orders.insert(
                (order.reactor, order.key),
                (order.organization_id, event.checkpoint(), event.metadata.correlation_id),
            );
        }
    }
    Ok(orders)
}

/// Writes a batch's reactor work and moves the subscription's checkpoint from `from` to `to` in
/// one statement, always into the live `public.reactor_work`, each item carrying the position of
/// its newest trigger. False (nothing written) when another process holds the checkpoint,
/// moved it or changed its version.
async fn enqueue_work(
    pool: &PgPool,
    subscription: &dyn Subscription,
    orders: WorkOrders,
    from: Checkpoint,
    to: Checkpoint,
) -> Result<bool, sqlx::Error> {
    let mut reactors = Vec::with_capacity(orders.len());
    let mut keys = Vec::with_capacity(orders.len());
    let mut organizations = Vec::with_capacity(orders.len());
    let mut transactions = Vec::with_capacity(orders.len());
    let mut positions = Vec::with_capacity(orders.len());
    let mut correlations = Vec::with_capacity(orders.len());
    for ((reactor, key), (organization_id, trigger, correlation_id)) in orders {
        reactors.push(reactor);
        keys.push(key);
        organizations.push(organization_id);
        transactions.push(trigger.transaction_id);
        positions.push(trigger.global_position);
        correlations.push(correlation_id);
    }
    let statement = work_statement(subscription.only_in_organizations_with());
    let moved: i64 = sqlx::query_scalar(&statement)
        .bind(subscription.name())
        .bind(subscription.version())
        .bind(from.transaction_id)
        .bind(to.transaction_id)
        .bind(to.global_position)
        .bind(from.global_position)
        .bind(&reactors)
        .bind(&keys)
        .bind(&organizations)
        .bind(&transactions)
        .bind(&positions)
        .bind(&correlations)
        .fetch_one(pool)
        .await?;
    Ok(moved == 1)
}

/// The statement of [`enqueue_work`]: the checkpoint moved, then the work written only if it
/// moved (`moved` is empty otherwise), for every organization or only those with a stream of
/// `only_in` (see [`Subscription::only_in_organizations_with`]).
/// Formatted once per `only_in` (subscriptions write a batch of work many times a second).
fn work_statement(only_in: Option<&'static str>) -> Arc<str> {
    static STATEMENTS: OnceLock<Mutex<HashMap<Option<&'static str>, Arc<str>>>> = OnceLock::new();
    let mut statements = STATEMENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    statements
        .entry(only_in)
        .or_insert_with(|| format_work_statement(only_in).into())
        .clone()
}

fn format_work_statement(only_in: Option<&str>) -> String {
    // The stream type is spelled into the statement so the planner sees which it is: as a
    // parameter it would be estimated as common as any, and PostgreSQL could walk the whole log
    // looking for a row that does not exist instead of probing the
    // `(organization_id, stream_type, global_position)` index. A scalar subquery per distinct
    // organization, since an `EXISTS` may be turned into a join that hashes the log.
    let (kept, only_kept) = match only_in {
        None => (String::new(), ""),
        Some(stream_type) => (
            format!(
                ", kept AS (
                    SELECT d.o FROM (SELECT DISTINCT o FROM UNNEST($9::uuid[]) AS o) d
                    WHERE COALESCE((SELECT true FROM public.events e
                                    WHERE e.organization_id = d.o AND e.stream_type = {} LIMIT 1), false))",
                quote_literal(stream_type)
            ),
            " AND w.o IN (SELECT o FROM kept)",
        ),
    };
    // `-infinity`: due at once, whatever time the reactors' clock shows.
    format!(
        "WITH moved AS ({ADVANCE_CHECKPOINT_SQL} RETURNING name){kept}, work AS (
            INSERT INTO public.reactor_work
                (reactor, work_key, organization_id, due_at, trigger_transaction_id, trigger_position, correlation_id)
            SELECT r, k, o, '-infinity', t, p, c
            FROM UNNEST($7::text[], $8::text[], $9::uuid[], $10::bigint[], $11::bigint[], $12::uuid[])
                 AS w(r, k, o, t, p, c)
            WHERE EXISTS (SELECT 1 FROM moved){only_kept}
            ON CONFLICT (reactor, work_key) DO UPDATE
            SET generation = reactor_work.generation + 1, due_at = '-infinity', attempts = 0, last_error = NULL,
                trigger_transaction_id = EXCLUDED.trigger_transaction_id, trigger_position = EXCLUDED.trigger_position,
                correlation_id = EXCLUDED.correlation_id
         )
         SELECT count(*) FROM moved"
    )
}

impl ProjectionRunner {
    pub fn new(
        pool: PgPool,
        store: Arc<dyn EventStore>,
        read_models: Vec<Arc<dyn ReadModel>>,
        subscriptions: Vec<Arc<dyn Subscription>>,
        config: RunnerConfig,
    ) -> Self {
        let consumers = read_models
            .into_iter()
            .map(Consumer::ReadModel)
            .chain(subscriptions.into_iter().map(Consumer::Subscription))
            .collect();
        Self {
            pool,
            tail: Arc::new(LogTail::new(store.clone(), config.tail)),
            store,
            consumers,
            config,
        }
    }

    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    /// A read model by name; a subscription's name is refused with the reason.
    pub fn read_model(&self, name: &str) -> Result<Arc<dyn ReadModel>, ProjectionError> {
        match self.consumers.iter().find(|c| c.name() == name) {
            Some(Consumer::ReadModel(m)) => Ok(m.clone()),
            Some(Consumer::Subscription(_)) => Err(ProjectionError::NotReplayable(name.to_owned())),
            None => Err(ProjectionError::Unknown(name.to_owned())),
        }
    }

    pub fn read_model_names(&self) -> Vec<&'static str> {
        self.consumers
            .iter()
            .filter(|c| c.kind() == ConsumerKind::ReadModel)
            .map(Consumer::name)
            .collect()
    }

    /// Registers consumers seen for the first time: a read model gets its
    /// tables and starts at the beginning of the log, a subscription starts at
    /// its head. Consumers stored at another version are left to `upgrade`.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        for consumer in &self.consumers {
            let name = consumer.name();
            let mut tx = self.pool.begin().await.map_err(db(name))?;
            // Serializes concurrent starts of several processes.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('voxreach-projection-' || $1))")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db(name))?;
            match read_checkpoint(&mut tx, name, true).await.map_err(db(name))? {
                Some((_, stored)) if stored != consumer.version() => tracing::warn!(
                    consumer = name,
                    stored,
                    current = consumer.version(),
                    "stored version differs; a newer process upgrades it, an older one stands down"
                ),
                Some(_) => {}
                None => {
                    let start = match consumer {
                        Consumer::ReadModel(m) => {
                            create_tables(&mut tx, m.as_ref()).await?;
                            Checkpoint::START
                        }
                        Consumer::Subscription(s) if s.starts_at_beginning() => Checkpoint::START,
                        Consumer::Subscription(_) => self.store.head().await?,
                    };
                    write_checkpoint(&mut tx, name, start, consumer.version())
                        .await
                        .map_err(db(name))?;
                }
            }
            tx.commit().await.map_err(db(name))?;
        }
        Ok(())
    }

    /// Applies at most one batch to one consumer, from where `cursor` says it stands.
    #[tracing::instrument(level = "debug", skip_all, fields(consumer = consumer.name()))]
    pub async fn step(&self, consumer: &Consumer, cursor: &mut Cursor) -> Result<Step, ProjectionError> {
        let stepped = self.step_from(consumer, cursor).await;
        if stepped.is_err() {
            // A failed batch may have left the stored checkpoint anywhere: read it again.
            cursor.forget();
        }
        stepped
    }

    async fn step_from(&self, consumer: &Consumer, cursor: &mut Cursor) -> Result<Step, ProjectionError> {
        let name = consumer.name();
        let version = consumer.version();
        let position = match cursor.position {
            Some(position) => position,
            None => {
                let mut conn = self.pool.acquire().await.map_err(db(name))?;
                let Some((stored, stored_version)) = read_checkpoint(&mut conn, name, false).await.map_err(db(name))?
                else {
                    return Ok(Step::Applied(0));
                };
                if stored_version != version {
                    return Ok(Step::VersionMismatch { stored: stored_version });
                }
                cursor.at(stored)
            }
        };
        // Read before opening the write transaction, so it holds no snapshot while waiting.
        let page = self
            .tail
            .read(position.scanned, self.config.batch_size, &consumer.filter())
            .await?;
        let Some(last) = page.scanned_to else {
            // The log is quiet: store what was scanned but not yet stored.
            if position.scanned != position.stored {
                self.store_scanned(consumer, cursor, position.stored, position.scanned)
                    .await?;
            }
            return Ok(Step::Applied(0));
        };
        let events = page.events;
        // What the batch writes; a subscription's work is decided before any transaction opens (routing is pure).
        let write = match consumer {
            Consumer::ReadModel(m) => (!events.is_empty()).then_some(BatchWrite::Rows(m)),
            Consumer::Subscription(s) => {
                let orders = work_orders(s.as_ref(), &events)?;
                (!orders.is_empty()).then_some(BatchWrite::Work(s, orders))
            }
        };
        let Some(write) = write else {
            // Nothing to write for what was scanned (most consumers, most of the time).
            let store_every = match consumer {
                Consumer::ReadModel(_) => Duration::ZERO,
                Consumer::Subscription(_) => self.config.subscription_checkpoint_every,
            };
            if position.stored_at.elapsed() < store_every {
                cursor.position = Some(Position {
                    scanned: last,
                    ..position
                });
                return Ok(Step::Applied(page.scanned));
            }
            let moved = self.store_scanned(consumer, cursor, position.stored, last).await?;
            return Ok(Step::Applied(if moved { page.scanned } else { 0 }));
        };
        let written = match write {
            BatchWrite::Rows(m) => self.apply_batch(m, &events, position.stored, last).await,
            BatchWrite::Work(s, orders) => enqueue_work(&self.pool, s.as_ref(), orders, position.stored, last).await,
        };
        // Another process holds the consumer, has moved it on or has changed its version.
        if !written.map_err(db(name))? {
            cursor.forget();
            return Ok(Step::Applied(0));
        }
        cursor.at(last);
        metrics::counter!("voxreach_consumer_events_applied_total", "consumer" => name).increment(events.len() as u64);
        tracing::debug!(events = events.len(), scanned = page.scanned, "batch applied");
        Ok(Step::Applied(page.scanned))
    }

    /// Applies a read model's batch and moves its checkpoint from `from` to `to` in one
    /// transaction. False when another process holds the checkpoint, moved it or changed its version.
    async fn apply_batch(
        &self,
        m: &Arc<dyn ReadModel>,
        events: &[RecordedEvent],
        from: Checkpoint,
        to: Checkpoint,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Moving the checkpoint first takes its row lock for the rest of the transaction.
        if !advance_checkpoint(&mut *tx, m.name(), from, to, m.schema_version()).await? {
            return Ok(false);
        }
        m.apply(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves the stored checkpoint over events the consumer had nothing to write for: one
    /// statement, without a transaction around it. False (and the cursor forgotten) when
    /// another process has it locked, moved it or changed its version.
    async fn store_scanned(
        &self,
        consumer: &Consumer,
        cursor: &mut Cursor,
        from: Checkpoint,
        to: Checkpoint,
    ) -> Result<bool, ProjectionError> {
        let name = consumer.name();
        let moved = advance_checkpoint(&self.pool, name, from, to, consumer.version())
            .await
            .map_err(db(name))?;
        if moved {
            cursor.at(to);
        } else {
            cursor.forget();
        }
        Ok(moved)
    }

    /// Brings a consumer stored at another version to this process's version:
    /// a read model is rebuilt side by side and swapped in, a subscription
    /// restarts at the head. A newer stored version is left alone (Superseded).
    /// Returns whether this process now runs the consumer.
    pub async fn upgrade(&self, consumer: &Consumer, stored: i32) -> Result<bool, ProjectionError> {
        let name = consumer.name();
        if stored > consumer.version() {
            return Ok(false);
        }
        match consumer {
            Consumer::ReadModel(m) => {
                // One process rebuilds; the others keep serving the old tables meanwhile.
                let mut lock = self.pool.acquire().await.map_err(db(name))?;
                let locked: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('voxreach-rebuild-' || $1))")
                        .bind(name)
                        .fetch_one(&mut *lock)
                        .await
                        .map_err(db(name))?;
                if !locked {
                    return Ok(false);
                }
                tracing::info!(
                    read_model = name,
                    stored,
                    current = m.schema_version(),
                    "rebuilding side by side"
                );
                let rebuilt = self
                    .rebuild_into(
                        m.as_ref(),
                        &format!("rebuild_{name}"),
                        true,
                        ReplayLimit::default(),
                        |_| {},
                    )
                    .await;
                sqlx::query("SELECT pg_advisory_unlock(hashtext('voxreach-rebuild-' || $1))")
                    .bind(name)
                    .execute(&mut *lock)
                    .await
                    .map_err(db(name))?;
                rebuilt.map(|_| true)
            }
            Consumer::Subscription(s) => {
                let mut tx = self.pool.begin().await.map_err(db(name))?;
                let Some((_, current)) = read_checkpoint(&mut tx, name, true).await.map_err(db(name))? else {
                    return Ok(false);
                };
                if current >= s.version() {
                    return Ok(current == s.version());
                }
                let head = self.store.head().await?;
                tracing::info!(
                    subscription = name,
                    stored,
                    current = s.version(),
                    "new version starts at the log's head"
                );
                write_checkpoint(&mut tx, name, head, s.version())
                    .await
                    .map_err(db(name))?;
                tx.commit().await.map_err(db(name))?;
                Ok(true)
            }
        }
    }

    /// One step, upgrading first when the stored version is older.
    async fn step_or_upgrade(&self, consumer: &Consumer, cursor: &mut Cursor) -> Result<usize, ProjectionError> {
        match self.step(consumer, cursor).await? {
            Step::Applied(n) => Ok(n),
            // After an upgrade, the next step applies what is new.
            Step::VersionMismatch { stored } => Ok(usize::from(self.upgrade(consumer, stored).await?)),
        }
    }

    /// Runs every consumer until nothing readable is left and every checkpoint is stored (tests, tools).
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        let mut cursors: Vec<Cursor> = self.consumers.iter().map(|_| Cursor::default()).collect();
        loop {
            let mut applied = 0;
            for (consumer, cursor) in self.consumers.iter().zip(&mut cursors) {
                applied += self.step_or_upgrade(consumer, cursor).await?;
            }
            if applied == 0 {
                return Ok(());
            }
        }
    }

    /// Keeps every consumer current until `shutdown` turns true, each in a task
    /// of its own so that a slow or failing one never delays the others.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let appended = Arc::new(Notify::new());
        let mut tasks = vec![tokio::spawn(listen(
            self.pool.clone(),
            self.config.channel,
            appended.clone(),
            shutdown.clone(),
        ))];
        for consumer in self.consumers.clone() {
            let runner = self.clone();
            let appended = appended.clone();
            let mut shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut cursor = Cursor::default();
                while !*shutdown.borrow() {
                    let wake = appended.notified();
                    match runner.step_or_upgrade(&consumer, &mut cursor).await {
                        // A full batch: more is waiting.
                        Ok(n) if n as i64 >= runner.config.batch_size => continue,
                        Ok(_) => {}
                        Err(error) => {
                            tracing::error!(consumer = consumer.name(), %error, "consumer batch failed; will retry")
                        }
                    }
                    tokio::select! {
                        // Lets appends gather: under load, one batch per interval instead of one per append.
                        _ = wake => tokio::time::sleep(runner.config.gather).await,
                        _ = tokio::time::sleep(runner.config.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }));
        }
        let _ = shutdown.changed().await;
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Waits until every read model has applied everything committed so far,
    /// or `within` has passed (whichever is first); true when caught up. The
    /// API calls it after a change so that the caller's next read sees it.
    pub async fn read_models_caught_up(&self, within: std::time::Duration) -> Result<bool, ProjectionError> {
        let deadline = tokio::time::Instant::now() + within;
        let names: Vec<&str> = self
            .consumers
            .iter()
            .filter(|c| c.kind() == ConsumerKind::ReadModel)
            .map(|c| c.name())
            .collect();
        let committed: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read-your-writes"))?;
        let Some((transaction_id, global_position)) = committed else {
            return Ok(true);
        };
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM public.projection_checkpoints
                 WHERE name = ANY($1) AND (transaction_id, global_position) < ($2, $3)",
            )
            .bind(&names)
            .bind(transaction_id)
            .bind(global_position)
            .fetch_one(&self.pool)
            .await
            .map_err(db("read-your-writes"))?;
            if behind == 0 {
                return Ok(true);
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    pub async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let mut statuses = vec![];
        for consumer in &self.consumers {
            let name = consumer.name();
            let mut conn = self.pool.acquire().await.map_err(db(name))?;
            let stored = read_checkpoint(&mut conn, name, false).await.map_err(db(name))?;
            let checkpoint = stored.map(|(c, _)| c).unwrap_or_default();
            let backlog = self.store.backlog(checkpoint).await?;
            let lag_seconds = backlog
                .oldest_recorded_at
                .map(|oldest| (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            let stored_version = stored.map(|(_, v)| v);
            metrics::gauge!("voxreach_consumer_lag_events", "consumer" => name).set(backlog.events as f64);
            metrics::gauge!("voxreach_consumer_lag_seconds", "consumer" => name).set(lag_seconds);
            statuses.push(ProjectionStatus {
                name,
                kind: consumer.kind(),
                version: consumer.version(),
                stored_version,
                state: match stored_version {
                    Some(v) if v > consumer.version() => ConsumerState::Superseded,
                    Some(v) if v < consumer.version() => ConsumerState::Upgrading,
                    _ => ConsumerState::Current,
                },
                checkpoint_position: checkpoint.global_position,
                lag_events: backlog.events,
                lag_seconds,
            });
        }
        Ok(statuses)
    }

    /// Rebuilds a read model from the start of the log into a side schema while
    /// the live tables keep serving, then swaps it in atomically.
    pub async fn rebuild(
        &self,
        name: &str,
        progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildProgress, ProjectionError> {
        let model = self.read_model(name)?;
        let mut lock = self.pool.acquire().await.map_err(db(model.name()))?;
        sqlx::query("SELECT pg_advisory_lock(hashtext('voxreach-rebuild-' || $1))")
            .bind(model.name())
            .execute(&mut *lock)
            .await
            .map_err(db(model.name()))?;
        let rebuilt = self
            .rebuild_into(
                model.as_ref(),
                &format!("rebuild_{name}"),
                true,
                ReplayLimit::default(),
                progress,
            )
            .await;
        sqlx::query("SELECT pg_advisory_unlock(hashtext('voxreach-rebuild-' || $1))")
            .bind(model.name())
            .execute(&mut *lock)
            .await
            .map_err(db(model.name()))?;
        rebuilt
    }

    /// Replays (a prefix of) history into `schema` and keeps it there for
    /// analysis. `schema` must be new, or hold an earlier replay of the same read model.
    pub async fn replay_into(
        &self,
        name: &str,
        schema: &str,
        limit: ReplayLimit,
        progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildProgress, ProjectionError> {
        let model = self.read_model(name)?;
        self.rebuild_into(model.as_ref(), schema, false, limit, progress).await
    }

    /// Refuses a schema that is not a fresh one or a previous replay of `m`.
    async fn check_replay_schema(&self, m: &dyn ReadModel, schema: &str) -> Result<(), ProjectionError> {
        let unsafe_schema = |reason| ProjectionError::UnsafeSchema {
            schema: schema.to_owned(),
            read_model: m.name().to_owned(),
            reason,
        };
        let valid_name = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(unsafe_schema("use lower-case letters, digits and underscores"));
        }
        if schema == "public" || schema == "information_schema" || schema.starts_with("pg_") {
            return Err(unsafe_schema("it is a system or the live schema"));
        }
        let row = sqlx::query(
            "SELECT obj_description(n.oid, 'pg_namespace') AS marker,
                    ARRAY(SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS tables
             FROM pg_namespace n WHERE n.nspname = $1",
        )
        .bind(schema)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(m.name()))?;
        let Some(row) = row else {
            return Ok(());
        };
        let marker: Option<String> = row.get("marker");
        let tables: Vec<String> = row.get("tables");
        if marker.as_deref() != Some(replay_marker(m.name()).as_str()) {
            return Err(unsafe_schema(
                "it exists and is not an earlier replay of this read model",
            ));
        }
        if !tables.iter().all(|t| m.tables().contains(&t.as_str())) {
            return Err(unsafe_schema("it holds tables this read model does not own"));
        }
        Ok(())
    }

    async fn rebuild_into(
        &self,
        m: &dyn ReadModel,
        schema: &str,
        swap: bool,
        limit: ReplayLimit,
        mut progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildProgress, ProjectionError> {
        let name = m.name();
        self.check_replay_schema(m, schema).await?;
        let schema_sql = quote_ident(schema);
        // Only the side schema is visible while replaying: the read model cannot touch a live table.
        let search_path = format!("SET LOCAL search_path TO {schema_sql}");
        let mut tx = self.pool.begin().await.map_err(db(name))?;
        run_script(&mut tx, format!(
            "DROP SCHEMA IF EXISTS {schema_sql} CASCADE; CREATE SCHEMA {schema_sql}; COMMENT ON SCHEMA {schema_sql} IS '{}'",
            replay_marker(name).replace('\'', "''")
        )).await
        .map_err(db(name))?;
        sqlx::query(&search_path).execute(&mut *tx).await.map_err(db(name))?;
        create_tables(&mut tx, m).await?;
        let deferred = bulk_load_mode(&mut tx, m, schema).await.map_err(db(name))?;
        tx.commit().await.map_err(db(name))?;

        let total = self.store.backlog(Checkpoint::START).await?.events.max(0) as u64;
        let started = Instant::now();
        let mut done = 0u64;
        let mut at = Checkpoint::START;
        let (mut reading, mut applying) = (Duration::ZERO, Duration::ZERO);
        let report = |done: u64, reading: Duration, applying: Duration, finishing: Duration| RebuildProgress {
            done,
            total,
            events_per_second: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
            reading,
            applying,
            finishing,
        };
        let mut rebuild = m.rebuild(self.config.rebuild_held_rows);
        // Pages are read (and decoded) on tasks of their own, PAGES_READ_AHEAD side by side, while
        // the one before them is applied: their bounds come first, from the log's index.
        let filter = OwnedLogFilter::of(m);
        let size = self.config.rebuild_batch_size;
        let mut reading_ahead = VecDeque::new();
        let mut read_to = at;
        loop {
            while reading_ahead.len() < PAGES_READ_AHEAD {
                let wanted = (PAGES_READ_AHEAD - reading_ahead.len()) as i64;
                let ends = self.store.page_ends(read_to, size, wanted).await?;
                if ends.is_empty() {
                    break;
                }
                for end in ends {
                    let (store, filter, after) = (self.store.clone(), filter.clone(), read_to);
                    reading_ahead.push_back((
                        end,
                        tokio::spawn(
                            async move { timed(store.read_filtered_until(after, end, &filter.borrowed())).await },
                        ),
                    ));
                    read_to = end;
                }
            }
            let Some((end, next)) = reading_ahead.pop_front() else {
                break;
            };
            let (page, read_time) = next
                .await
                .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
            reading += read_time;
            let page = page?;
            let (applied, apply_time) =
                timed(self.apply_in_own_transaction(name, rebuild.as_mut(), &search_path, page.events, limit)).await;
            applying += apply_time;
            applied?;
            at = end;
            done += page.scanned as u64;
            progress(report(done, reading, applying, Duration::ZERO));
        }
        let finishing = Instant::now();
        let mut tx = self.pool.begin().await.map_err(db(name))?;
        sqlx::query(&search_path).execute(&mut *tx).await.map_err(db(name))?;
        rebuild.finish(&mut tx).await.map_err(db(name))?;
        tx.commit().await.map_err(db(name))?;
        let workers = self.config.rebuild_workers;
        let completing = rebuild.completing_statements();
        drop(rebuild);
        run_side_by_side(&self.pool, &search_path, completing, workers)
            .await
            .map_err(db(name))?;
        run_side_by_side(&self.pool, &search_path, leaving_bulk_load_mode(m, deferred), workers)
            .await
            .map_err(db(name))?;
        if swap {
            done += self.swap_in(m, schema, &search_path, at).await? as u64;
        }
        Ok(report(done, reading, applying, finishing.elapsed()))
    }

    async fn read_page(&self, m: &dyn ReadModel, after: Checkpoint) -> Result<LogPage, ProjectionError> {
        Ok(self
            .store
            .read_filtered(after, self.config.rebuild_batch_size, &read_model_filter(m))
            .await?)
    }

    /// Applies a page's events admitted by `limit` into the schema of `search_path`.
    async fn apply_in_own_transaction(
        &self,
        name: &'static str,
        rebuild: &mut dyn Rebuild,
        search_path: &str,
        mut events: Vec<RecordedEvent>,
        limit: ReplayLimit,
    ) -> Result<(), ProjectionError> {
        if !limit.is_everything() {
            events.retain(|e| limit.admits(e));
        }
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db(name))?;
        sqlx::query(search_path).execute(&mut *tx).await.map_err(db(name))?;
        rebuild.apply(&mut tx, &events).await.map_err(db(name))?;
        tx.commit().await.map_err(db(name))
    }

    /// Stops the live projector (row lock on its checkpoint), applies what
    /// arrived since, moves the rebuilt tables into place and sets the
    /// checkpoint and version — unless a newer version took over meanwhile.
    async fn swap_in(
        &self,
        m: &dyn ReadModel,
        schema: &str,
        search_path: &str,
        mut at: Checkpoint,
    ) -> Result<usize, ProjectionError> {
        let name = m.name();
        let mut tx = self.pool.begin().await.map_err(db(name))?;
        if let Some((_, stored)) = read_checkpoint(&mut tx, name, true).await.map_err(db(name))? {
            if stored > m.schema_version() {
                drop(tx);
                sqlx::Executor::execute(
                    &self.pool,
                    format!("DROP SCHEMA {} CASCADE", quote_ident(schema)).as_str(),
                )
                .await
                .map_err(db(name))?;
                return Err(ProjectionError::Superseded {
                    read_model: name,
                    stored,
                    ours: m.schema_version(),
                });
            }
        }
        sqlx::query(search_path).execute(&mut *tx).await.map_err(db(name))?;
        let mut applied = 0;
        loop {
            let page = self.read_page(m, at).await?;
            let Some(last) = page.scanned_to else {
                break;
            };
            if !page.events.is_empty() {
                m.apply(&mut tx, &page.events).await.map_err(db(name))?;
            }
            at = last;
            applied += page.scanned;
        }
        for table in m.tables() {
            let table = quote_ident(table);
            run_script(
                &mut tx,
                format!(
                    "DROP TABLE IF EXISTS public.{table} CASCADE; ALTER TABLE {}.{table} SET SCHEMA public",
                    quote_ident(schema)
                ),
            )
            .await
            .map_err(db(name))?;
        }
        write_checkpoint(&mut tx, name, at, m.schema_version())
            .await
            .map_err(db(name))?;
        run_script(&mut tx, format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
            .await
            .map_err(db(name))?;
        tx.commit().await.map_err(db(name))?;
        Ok(applied)
    }
}

/// Wakes every consumer task when an append announces new events. Only a
/// wake-up: consumers also poll, so a lost notification only delays.
async fn listen(pool: PgPool, channel: &'static str, appended: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for new events; polling only");
            return;
        }
    };
    if let Err(error) = listener.listen(channel).await {
        tracing::warn!(%error, "cannot LISTEN for new events; polling only");
        return;
    }
    while !*shutdown.borrow() {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(_) => appended.notify_waiters(),
                // The listener reconnects on its next use; meanwhile consumers poll.
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            },
            _ = shutdown.changed() => {}
        }
    }
}

/// Read models' progress, from their checkpoints.
#[derive(Clone)]
pub struct PgReadModelProgress {
    pool: PgPool,
}

impl PgReadModelProgress {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl application::work::ReadModelProgress for PgReadModelProgress {
    async fn has_applied(&self, read_model: &str, at: Checkpoint) -> Result<bool, application::AppError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM public.projection_checkpoints
                            WHERE name = $1 AND (transaction_id, global_position) >= ($2, $3))",
        )
        .bind(read_model)
        .bind(at.transaction_id)
        .bind(at.global_position)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| application::AppError::internal("reading read-model progress", e))
    }
}
