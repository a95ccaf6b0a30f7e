//! The projector runtime: live projection under concurrent writers, and
//! incremental results equal to rebuilds.

use application::event_store::{AppendRequest, EventStore};
use async_trait::async_trait;
use domain::{EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use infrastructure::event_store::PgEventStore;
use projections::{Projection, ProjectionRunner, RunnerConfig};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use voxreach_tests::{settle, TestApp, TestDatabase};

/// Records every event it is given, in the order it is given them.
struct Probe;

#[async_trait]
impl Projection for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn schema_version(&self) -> i32 {
        1
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
    app.settle().await;

    let runner = &app.state.runner;
    for (projection, table, order) in [
        ("users", "users", "id"),
        ("activity", "organization_activity", "organization_id, day, event_type"),
    ] {
        runner
            .rebuild(projection, &format!("verify_{projection}"), false, None, |_| {})
            .await
            .unwrap();
        let live = table_json(&app.db.pool, &format!("public.{table}"), order).await;
        let rebuilt = table_json(&app.db.pool, &format!("verify_{projection}.{table}"), order).await;
        assert!(live.as_array().unwrap().len() > 3, "{projection} has rows");
        assert_eq!(live, rebuilt, "{projection}: incremental differs from rebuild");
    }
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
        .rebuild("users", "rebuild_users", true, None, |p| {
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
