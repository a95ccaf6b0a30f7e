//! The projector runtime: live projection under concurrent writers, and
//! incremental results equal to rebuilds.

use application::event_store::{AppendRequest, EventStore};
use async_trait::async_trait;
use domain::{Checkpoint, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use infrastructure::event_store::PgEventStore;
use projections::{
    ConsumerState, ProjectionError, ProjectionRunner, ReadModel, ReplayLimit, RunnerConfig, Subscription, WorkOrder,
};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use voxreach_tests::{assert_read_models_equal_rebuilds, settle, work_snapshot, TestApp, TestDatabase};

/// Records every event it is given, in the order it is given them.
struct Probe;

#[async_trait]
impl ReadModel for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn schema_version(&self) -> i32 {
        1
    }
    fn stream_types(&self) -> Option<&[&'static str]> {
        None
    }
    fn tables(&self) -> &'static [&'static str] {
        &["probe_seen"]
    }
    fn create_sql(&self) -> &'static str {
        "CREATE TABLE probe_seen (
            applied_order BIGSERIAL PRIMARY KEY,
            global_position BIGINT NOT NULL,
            stream_id TEXT NOT NULL,
            stream_version BIGINT NOT NULL
        )"
    }
    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let positions: Vec<i64> = events.iter().map(|e| e.global_position).collect();
        let streams: Vec<String> = events.iter().map(|e| e.stream_id.clone()).collect();
        let versions: Vec<i64> = events.iter().map(|e| e.stream_version).collect();
        sqlx::query(
            "INSERT INTO probe_seen (global_position, stream_id, stream_version)
             SELECT p, s, v FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t(p, s, v, o) ORDER BY o",
        )
        .bind(positions)
        .bind(streams)
        .bind(versions)
        .execute(conn)
        .await
        .map(|_| ())
    }
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".into(),
        event_version: 1,
        payload: json!({ "n": n }),
        metadata: EventMetadata::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_projected_exactly_once_and_in_stream_order() {
    const WRITERS: usize = 32;
    const APPENDS_PER_WRITER: usize = 40;
    const STREAMS_PER_WRITER: usize = 4;

    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let runner = ProjectionRunner::new(
        db.pool.clone(),
        Arc::new(store.clone()),
        vec![Arc::new(Probe)],
        vec![],
        RunnerConfig {
            batch_size: 50,
            poll_interval: Duration::from_millis(20),
            ..RunnerConfig::default()
        },
    );
    runner.prepare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(runner.clone().run(stopped));

    let writers = (0..WRITERS).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            let org = Uuid::new_v4();
            let streams: Vec<StreamId> = (0..STREAMS_PER_WRITER)
                .map(|_| StreamId::new("probe", Uuid::new_v4()))
                .collect();
            let mut versions = [0i64; STREAMS_PER_WRITER];
            let mut written = 0usize;
            for i in 0..APPENDS_PER_WRITER {
                let s = (writer + i) % STREAMS_PER_WRITER;
                let batch = 1 + (i % 3);
                let outcome = store
                    .append(AppendRequest::single(
                        org,
                        streams[s].clone(),
                        ExpectedVersion::from_loaded(versions[s]),
                        (0..batch).map(event).collect(),
                    ))
                    .await
                    .expect("append");
                versions[s] += batch as i64;
                written += outcome.events.len();
            }
            written
        })
    });
    let total: usize = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(|w| w.unwrap())
        .sum();

    // The live projector catches up by itself.
    let mut seen = 0i64;
    for _ in 0..1000 {
        seen = sqlx::query_scalar("SELECT count(*) FROM probe_seen")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if seen as usize >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    live.await.unwrap();

    assert_eq!(seen as usize, total, "every event projected");
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT global_position) FROM probe_seen")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(distinct as usize, total, "no event projected twice");
    let in_log: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_log as usize, total);
    // Within each stream, versions arrive 1, 2, 3… with no gap and no reordering.
    let out_of_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
            SELECT stream_version, row_number() OVER (PARTITION BY stream_id ORDER BY applied_order) AS arrival
            FROM probe_seen) t
         WHERE stream_version <> arrival",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, 0);
}

async fn table_json(pool: &sqlx::PgPool, table: &str, order: &str) -> Value {
    sqlx::query_scalar(&format!(
        "SELECT COALESCE(jsonb_agg(t ORDER BY {order}), '[]') FROM {table} t"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn populate(app: &TestApp) {
    for org in 0..3 {
        let (token, _) = app
            .register(&format!("owner{org}@example.com"), &format!("Org {org}"))
            .await;
        for member in 0..4 {
            let (status, body) = app
                .post(
                    "/api/users",
                    Some(&token),
                    json!({"email": format!("m{member}.o{org}@example.com"), "name": format!("Member {member}"), "role": "member"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }
}

#[tokio::test]
async fn incremental_projection_equals_a_rebuild_from_zero() {
    let app = TestApp::spawn().await;
    populate(&app).await;
    // Projected in small increments, interleaved with writes.
    app.settle().await;
    let (token, _) = app.register("late@example.com", "Late Org").await;
    app.post(
        "/api/users",
        Some(&token),
        json!({"email": "late.member@example.com", "name": "LM", "role": "admin"}),
    )
    .await;
    let users = table_json(&app.db.pool, "users", "id").await;
    assert!(users.as_array().unwrap().len() > 3);
    assert_read_models_equal_rebuilds(&app).await;
}

#[tokio::test]
async fn a_rebuild_swaps_in_while_the_old_tables_serve() {
    let app = TestApp::spawn().await;
    populate(&app).await;
    app.settle().await;
    let before = table_json(&app.db.pool, "users", "id").await;
    // Break the live table to prove the rebuilt one replaces it.
    sqlx::query("DELETE FROM users").execute(&app.db.pool).await.unwrap();

    let mut reports = 0;
    let done = app
        .state
        .runner
        .rebuild("users", |p| {
            reports += 1;
            assert!(p.done <= p.total);
        })
        .await
        .unwrap();
    assert!(reports > 0);
    assert!(done.done > 0);
    assert_eq!(table_json(&app.db.pool, "users", "id").await, before);
    let leftover: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = 'rebuild_users')",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(!leftover);
    // Still current afterwards: new events keep flowing into the swapped table.
    app.register("after@example.com", "After").await;
    settle(&app.state.runner).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count as usize, before.as_array().unwrap().len() + 1);

    // A rebuild loads unlogged tables without their indexes, then logs and
    // indexes them (several side by side): they end as `create_sql` made them.
    let shape = || async {
        sqlx::query_as::<_, (String, String, Vec<String>)>(
            "SELECT c.relname::text, c.relpersistence::text,
                    ARRAY(SELECT regexp_replace(indexdef, ' ON \\S+ ', ' ON ') FROM pg_indexes i
                          WHERE i.schemaname = 'public' AND i.tablename = c.relname ORDER BY indexname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname IN ('calls', 'call_timeline', 'organization_call_stats')
             ORDER BY 1",
        )
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
    };
    let live = shape().await;
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|(_, persistence, _)| persistence == "p"));
    app.state.runner.rebuild("calls", |_| {}).await.unwrap();
    assert_eq!(shape().await, live);
}

#[tokio::test]
async fn readiness_reports_projection_lag() {
    let app = TestApp::spawn().await;
    app.register("lag@example.com", "Lagging").await;
    let (status, body) = app.get("/health/ready", None).await;
    assert_eq!(status, 200);
    let users = body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "users")
        .unwrap();
    assert!(users["lagEvents"].as_i64().unwrap() >= 3, "{body}");
    app.settle().await;
    let (_, body) = app.get("/health/ready", None).await;
    assert!(
        body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lagEvents"] == 0),
        "{body}"
    );
    assert_eq!(body["migrations"], "applied");
    assert_eq!(app.get("/health", None).await.0, 200);
}

#[tokio::test]
async fn a_newer_release_owning_a_read_model_shows_in_readiness() {
    let app = TestApp::spawn().await;
    app.settle().await;
    // A process of a later release took `users` over (its version is higher).
    sqlx::query("UPDATE projection_checkpoints SET schema_version = schema_version + 1 WHERE name = 'users'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = app.get("/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    let users = body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "users")
        .unwrap()
        .clone();
    assert_eq!(users["state"], "superseded", "{users}");
    assert_eq!(users["storedVersion"], users["version"].as_i64().unwrap() + 1);
    // It stands down: a new user is not applied by this process.
    app.register("later@example.com", "Later Inc").await;
    app.state.runner.catch_up().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'later@example.com'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn each_read_model_creates_exactly_the_tables_it_names() {
    let db = TestDatabase::create().await;
    let mut conn = db.pool.acquire().await.unwrap();
    for model in projections::read_models() {
        let schema = format!("ddl_{}", model.name());
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}, public"))
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::raw_sql(model.create_sql()).execute(&mut *conn).await.unwrap();
        let created: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        )
        .bind(&schema)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut named: Vec<String> = model.tables().iter().map(|t| t.to_string()).collect();
        named.sort();
        assert_eq!(created, named, "{}", model.name());
    }
}

/// The `probe` read model under another name or version: as a process of
/// another release would run it, or another read model owning the same tables.
struct ProbeAs {
    name: &'static str,
    version: i32,
}

fn probe_at(version: i32) -> ProbeAs {
    ProbeAs { name: "probe", version }
}

#[async_trait]
impl ReadModel for ProbeAs {
    fn name(&self) -> &'static str {
        self.name
    }
    fn schema_version(&self) -> i32 {
        self.version
    }
    fn stream_types(&self) -> Option<&[&'static str]> {
        Probe.stream_types()
    }
    fn tables(&self) -> &'static [&'static str] {
        Probe.tables()
    }
    fn create_sql(&self) -> &'static str {
        Probe.create_sql()
    }
    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        Probe.apply(conn, events).await
    }
}

fn runner_with(
    db: &TestDatabase,
    read_models: Vec<Arc<dyn ReadModel>>,
    subscriptions: Vec<Arc<dyn Subscription>>,
) -> ProjectionRunner {
    ProjectionRunner::new(
        db.pool.clone(),
        Arc::new(PgEventStore::new(db.pool.clone())),
        read_models,
        subscriptions,
        RunnerConfig::default(),
    )
}

async fn append_events(db: &TestDatabase, n: usize) {
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(AppendRequest::single(
            Uuid::new_v4(),
            StreamId::new("probe", Uuid::new_v4()),
            ExpectedVersion::NoStream,
            (0..n).map(event).collect(),
        ))
        .await
        .unwrap();
}

/// Waits until every appended event is readable (other databases' open
/// transactions on the same server hold back `pg_snapshot_xmin` for a moment).
async fn wait_until_readable(db: &TestDatabase) {
    let store = PgEventStore::new(db.pool.clone());
    let total = count(db, "SELECT count(*) FROM events").await as usize;
    for _ in 0..500 {
        if store.read_all(domain::Checkpoint::START, 100_000).await.unwrap().len() == total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("appended events did not become readable");
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_new_version_is_rebuilt_side_by_side_and_the_old_process_stands_down() {
    let db = TestDatabase::create().await;
    let old = runner_with(&db, vec![Arc::new(probe_at(1))], vec![]);
    old.prepare().await.unwrap();
    append_events(&db, 5).await;
    settle(&old).await;
    assert_eq!(count(&db, "SELECT count(*) FROM probe_seen").await, 5);

    // A process of the next release starts: the old tables keep serving until the swap.
    let new = runner_with(&db, vec![Arc::new(probe_at(2))], vec![]);
    new.prepare().await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_seen").await,
        5,
        "preparing a new version drops nothing"
    );
    let statuses = new.status().await.unwrap();
    assert_eq!(statuses[0].state, ConsumerState::Upgrading);
    settle(&new).await;
    assert_eq!(
        count(
            &db,
            "SELECT schema_version::bigint FROM projection_checkpoints WHERE name = 'probe'"
        )
        .await,
        2
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_seen").await,
        5,
        "rebuilt and swapped in"
    );

    // From now on only the new version applies events; the old one stands down and says so.
    append_events(&db, 3).await;
    settle(&new).await;
    assert_eq!(count(&db, "SELECT count(*) FROM probe_seen").await, 8);
    old.catch_up().await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_seen").await,
        8,
        "the old version applies nothing"
    );
    assert_eq!(old.status().await.unwrap()[0].state, ConsumerState::Superseded);
    assert_eq!(new.status().await.unwrap()[0].state, ConsumerState::Current);
}

/// Routes every probe event to a reactor, keyed by its position.
struct ProbeFeed(i32);

impl Subscription for ProbeFeed {
    fn name(&self) -> &'static str {
        "probe_feed"
    }
    fn version(&self) -> i32 {
        self.0
    }
    fn stream_types(&self) -> &[&'static str] {
        &["probe"]
    }
    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, domain::events::DecodeError> {
        Ok(Some(WorkOrder {
            reactor: "probe-reactor",
            key: event.global_position.to_string(),
            organization_id: event.organization_id,
        }))
    }
}

#[tokio::test]
async fn subscriptions_start_at_the_head_and_are_never_replayed() {
    let db = TestDatabase::create().await;
    append_events(&db, 4).await;
    wait_until_readable(&db).await;
    let runner = runner_with(&db, vec![Arc::new(Probe)], vec![Arc::new(ProbeFeed(1))]);
    runner.prepare().await.unwrap();
    settle(&runner).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_seen").await,
        4,
        "a read model starts at the beginning"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM reactor_work").await,
        0,
        "history triggers nothing"
    );
    append_events(&db, 2).await;
    settle(&runner).await;
    let triggered: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT work_key, trigger_position FROM reactor_work ORDER BY trigger_position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(triggered.len(), 2, "new events make work due");
    assert!(triggered
        .iter()
        .all(|(key, at)| Some(key.parse::<i64>().unwrap()) == *at));

    // A new version of the subscription starts at the head too.
    append_events(&db, 3).await;
    wait_until_readable(&db).await;
    let upgraded = runner_with(&db, vec![Arc::new(Probe)], vec![Arc::new(ProbeFeed(2))]);
    upgraded.prepare().await.unwrap();
    settle(&upgraded).await;
    assert_eq!(count(&db, "SELECT count(*) FROM reactor_work").await, 2);

    // Replays refuse subscriptions and leave reactor work alone.
    let before = work_snapshot(&db.pool).await;
    assert!(matches!(
        upgraded.rebuild("probe_feed", |_| {}).await,
        Err(ProjectionError::NotReplayable(_))
    ));
    upgraded.rebuild("probe", |_| {}).await.unwrap();
    assert_eq!(work_snapshot(&db.pool).await, before);
    assert_eq!(count(&db, "SELECT count(*) FROM probe_seen").await, 9);
}

#[tokio::test]
async fn a_subscription_that_derives_facts_from_history_starts_at_the_beginning_once() {
    let db = TestDatabase::create().await;
    append_events(&db, 3).await;
    append_events(&db, 2).await;
    wait_until_readable(&db).await;
    let feed = || {
        Arc::new(projections::work::WorkFeeder {
            name: "probe_history_feed",
            stream_type: "probe",
            event_types: &["TestHappened"],
            settled_by: &[],
            reactor: "probe-history",
            from_beginning: true,
            only_in_organizations_with: None,
        }) as Arc<dyn Subscription>
    };
    let runner = runner_with(&db, vec![], vec![feed()]);
    runner.prepare().await.unwrap();
    settle(&runner).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT work_key) FROM reactor_work WHERE reactor = 'probe-history'"
        )
        .await,
        2,
        "both streams written before the subscription existed get their work"
    );
    // Registered once: a restart continues from its checkpoint, not from the beginning again.
    sqlx::query("DELETE FROM reactor_work").execute(&db.pool).await.unwrap();
    let restarted = runner_with(&db, vec![], vec![feed()]);
    restarted.prepare().await.unwrap();
    settle(&restarted).await;
    assert_eq!(count(&db, "SELECT count(*) FROM reactor_work").await, 0);
}

#[tokio::test]
async fn analysis_replays_only_go_to_new_or_their_own_schemas() {
    let db = TestDatabase::create().await;
    let runner = runner_with(&db, vec![Arc::new(Probe)], vec![]);
    runner.prepare().await.unwrap();
    append_events(&db, 3).await;
    let cut: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT max(recorded_at) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let head: i64 = count(&db, "SELECT max(global_position) FROM events").await;
    append_events(&db, 4).await;
    // Replays read what is visible: wait until every append is.
    settle(&runner).await;

    for refused in ["public", "pg_catalog", "information_schema", "Robert'); DROP", ""] {
        let error = runner
            .replay_into("probe", refused, ReplayLimit::default(), |_| {})
            .await;
        assert!(
            matches!(error, Err(ProjectionError::UnsafeSchema { .. })),
            "{refused:?}: {error:?}"
        );
    }
    sqlx::raw_sql("CREATE SCHEMA precious; CREATE TABLE precious.keep (x int); INSERT INTO precious.keep VALUES (1)")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        runner
            .replay_into("probe", "precious", ReplayLimit::default(), |_| {})
            .await,
        Err(ProjectionError::UnsafeSchema { .. })
    ));
    assert_eq!(
        count(&db, "SELECT count(*) FROM precious.keep").await,
        1,
        "nothing dropped"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 7, "the log is intact");

    // As of a time, then as of a position, into the same analysis schema.
    let as_of_time = ReplayLimit {
        until_time: Some(cut),
        ..ReplayLimit::default()
    };
    runner
        .replay_into("probe", "analysis", as_of_time, |_| {})
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM analysis.probe_seen").await, 3);
    let as_of_position = ReplayLimit {
        until_position: Some(head + 1),
        ..ReplayLimit::default()
    };
    runner
        .replay_into("probe", "analysis", as_of_position, |_| {})
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM analysis.probe_seen").await, 4);
    // A replay of another read model may not take that schema over.
    let other = runner_with(
        &db,
        vec![Arc::new(ProbeAs {
            name: "renamed",
            version: 1,
        })],
        vec![],
    );
    assert!(matches!(
        other
            .replay_into("renamed", "analysis", ReplayLimit::default(), |_| {})
            .await,
        Err(ProjectionError::UnsafeSchema { .. })
    ));
}

/// Reads only a stream type nobody writes: every page it scans has nothing for it.
struct Elsewhere;

impl Subscription for Elsewhere {
    fn name(&self) -> &'static str {
        "elsewhere_feed"
    }
    fn version(&self) -> i32 {
        1
    }
    fn stream_types(&self) -> &[&'static str] {
        &["elsewhere"]
    }
    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, domain::events::DecodeError> {
        panic!("{} is not of a stream this subscription reads", event.stream_id)
    }
}

#[tokio::test]
async fn consumers_move_past_events_of_streams_they_do_not_read() {
    let db = TestDatabase::create().await;
    let runner = runner_with(&db, vec![], vec![Arc::new(Elsewhere)]);
    runner.prepare().await.unwrap();
    append_events(&db, 30).await;
    wait_until_readable(&db).await;

    runner.catch_up().await.unwrap();

    let head = PgEventStore::new(db.pool.clone()).head().await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT global_position FROM projection_checkpoints WHERE name = 'elsewhere_feed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored, head.global_position);
    assert_eq!(count(&db, "SELECT count(*) FROM reactor_work").await, 0);
}

#[tokio::test]
async fn a_stream_that_keeps_changing_under_a_command_ends_in_a_409_naming_it() {
    use application::aggregates::{execute_decision, Decided};
    use application::event_store::StreamAppend;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let organization = Uuid::new_v4();
    let stream = StreamId::new("probe", Uuid::new_v4());
    let rounds = AtomicUsize::new(0);
    let outcome: Result<(), application::AppError> = execute_decision(&store, organization, 3, || {
        let (store, stream, rounds) = (&store, stream.clone(), &rounds);
        Box::pin(async move {
            rounds.fetch_add(1, Ordering::SeqCst);
            let version = store.read_stream(&stream).await.unwrap().len() as i64;
            // Another writer gets in between every round's load and its append.
            store
                .append(AppendRequest::single(
                    organization,
                    stream.clone(),
                    ExpectedVersion::Any,
                    vec![event(0)],
                ))
                .await
                .unwrap();
            let append = StreamAppend {
                stream,
                expected: ExpectedVersion::from_loaded(version),
                events: vec![event(1)],
            };
            Ok(Decided::new(vec![append], ()))
        })
    })
    .await;
    let error = outcome.unwrap_err();
    assert_eq!(rounds.load(Ordering::SeqCst), 3, "decided again on each conflict");
    assert_eq!(error.kind, application::error::ErrorKind::Conflict);
    assert_eq!(error.code, "concurrent_modification");
    assert_eq!(error.details, Some(json!({ "stream": stream.to_string() })));
}

/// The log's tail serves consumers that keep up from memory: whatever position a
/// reader asks from (ahead of the tail, inside it, or behind what it still holds),
/// and whatever it filters on, it gets what reading the log itself gives.
#[tokio::test]
async fn the_log_tail_gives_every_reader_what_the_log_gives_it() {
    use application::event_store::LogFilter;
    use projections::tail::{LogTail, TailConfig};

    let db = TestDatabase::create().await;
    let store = Arc::new(PgEventStore::new(db.pool.clone()));
    let organization_id = Uuid::new_v4();
    for n in 0..40 {
        let stream_type = if n % 3 == 0 { "probe" } else { "other" };
        let mut new = event(n);
        if n % 2 == 0 {
            new.event_type = "OtherHappened".into();
        }
        store
            .append(AppendRequest::single(
                organization_id,
                StreamId::new(stream_type, Uuid::new_v4()),
                ExpectedVersion::Any,
                vec![new],
            ))
            .await
            .unwrap();
    }
    // Reads are gap-safe: other tests' open transactions on the server may hold them back a while.
    let mut all = store
        .read_filtered(Checkpoint::START, 1000, &LogFilter::EVERYTHING)
        .await
        .unwrap();
    for _ in 0..2_000 {
        if all.events.len() == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        all = store
            .read_filtered(Checkpoint::START, 1000, &LogFilter::EVERYTHING)
            .await
            .unwrap();
    }
    assert_eq!(all.events.len(), 40);
    // Every read refreshes, a page of the tail is larger than a reader's, and the tail
    // holds about a dozen payloads: reads go ahead of it, inside it and behind it.
    let tail = LogTail::new(
        store.clone(),
        TailConfig {
            max_bytes: 100,
            fresh_for: Duration::ZERO,
            page: 8,
        },
    );
    let filters = [
        LogFilter::EVERYTHING,
        LogFilter {
            stream_types: Some(&["probe"]),
            event_types: None,
            payloads: true,
        },
        LogFilter {
            stream_types: None,
            event_types: Some(&["TestHappened"]),
            payloads: false,
        },
    ];
    let mut positions: Vec<Checkpoint> = std::iter::once(Checkpoint::START)
        .chain(all.events.iter().map(RecordedEvent::checkpoint))
        .collect();
    // Forwards, then backwards (behind what the tail still holds), then forwards again.
    let backwards: Vec<Checkpoint> = positions.iter().rev().copied().collect();
    positions.extend(backwards);
    positions.extend(all.events.iter().map(RecordedEvent::checkpoint).step_by(3));
    for after in positions {
        for filter in &filters {
            let from_tail = tail.read(after, 5, filter).await.unwrap();
            let from_log = store.read_filtered(after, 5, filter).await.unwrap();
            assert_eq!(from_tail.events, from_log.events, "events after {after:?}");
            assert_eq!(from_tail.scanned, from_log.scanned, "scanned after {after:?}");
            assert_eq!(from_tail.scanned_to, from_log.scanned_to, "scanned to after {after:?}");
        }
    }
}

/// Routes every tenth probe event (by its payload's `n`) to a reactor, keyed by its position.
struct SparseFeed;

impl Subscription for SparseFeed {
    fn name(&self) -> &'static str {
        "sparse_feed"
    }
    fn version(&self) -> i32 {
        1
    }
    fn stream_types(&self) -> &[&'static str] {
        &["probe"]
    }
    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, domain::events::DecodeError> {
        let n = event.payload.to_value()["n"].as_u64().unwrap();
        Ok(n.is_multiple_of(10).then(|| WorkOrder {
            reactor: "sparse-reactor",
            key: event.global_position.to_string(),
            organization_id: event.organization_id,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_keeping_checkpoints_in_memory_route_every_event_exactly_once() {
    const BATCHES: usize = 30;
    const PER_BATCH: usize = 20;
    let db = TestDatabase::create().await;
    // Each process stores the checkpoint of what it scanned without work only when the log goes quiet.
    let process = || {
        ProjectionRunner::new(
            db.pool.clone(),
            Arc::new(PgEventStore::new(db.pool.clone())),
            vec![],
            vec![Arc::new(SparseFeed)],
            RunnerConfig {
                poll_interval: Duration::from_millis(20),
                gather: Duration::from_millis(1),
                subscription_checkpoint_every: Duration::from_secs(3600),
                ..RunnerConfig::default()
            },
        )
    };
    let (first, second) = (process(), process());
    first.prepare().await.unwrap();
    second.prepare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = [
        tokio::spawn(first.run(stopped.clone())),
        tokio::spawn(second.run(stopped)),
    ];
    for _ in 0..BATCHES {
        append_events(&db, PER_BATCH).await;
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    wait_until_readable(&db).await;
    let head = PgEventStore::new(db.pool.clone()).head().await.unwrap();
    let stored_at_head = || async {
        let stored: i64 =
            sqlx::query_scalar("SELECT global_position FROM projection_checkpoints WHERE name = 'sparse_feed'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        stored == head.global_position
    };
    for _ in 0..500 {
        if stored_at_head().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    for process in running {
        process.await.unwrap();
    }
    assert!(stored_at_head().await, "the checkpoint is stored once the log is quiet");
    let routed: Vec<(String, i64)> = sqlx::query_as("SELECT work_key, generation FROM reactor_work")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(routed.len(), BATCHES * PER_BATCH / 10, "every tenth event makes work");
    assert!(
        routed.iter().all(|(_, generation)| *generation == 1),
        "no event was routed twice: {routed:?}"
    );
}
