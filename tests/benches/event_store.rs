//! Event-log throughput: `cargo bench -p voxreach-tests --bench event_store`.
//! Single-event appends at 1, 8 and 32 concurrent writers, batched appends of
//! 100 and 1,000 events, and replaying a projection over 1,000,000 events.

use application::event_store::{AppendRequest, EventStore};
use domain::{EventMetadata, ExpectedVersion, NewEvent, StreamId};
use infrastructure::event_store::PgEventStore;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use voxreach_tests::TestDatabase;

const RUN_FOR: Duration = Duration::from_secs(4);
const REPLAY_EVENTS: usize = 1_000_000;

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "CallStatusChanged".into(),
        event_version: 1,
        payload: json!({
            "callId": Uuid::new_v4(),
            "status": "in-progress",
            "vapiCallId": format!("vapi-{n}"),
            "at": "2026-11-24T12:00:00Z",
            "agentId": "0199aa00-0000-7000-8000-000000000001"
        }),
        metadata: EventMetadata {
            actor: Some("webhook:vapi".into()),
            source: Some("bench".into()),
            ..EventMetadata::default()
        },
    }
}

/// `writers` tasks append batches of `batch` events to their own streams for `RUN_FOR`.
async fn append_rate(store: &PgEventStore, writers: usize, batch: usize) -> f64 {
    let started = Instant::now();
    let tasks = (0..writers).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let org = Uuid::new_v4();
            let mut written = 0usize;
            let mut stream = StreamId::new("call", Uuid::new_v4());
            let mut version = 0i64;
            while started.elapsed() < RUN_FOR {
                if version >= 50 {
                    stream = StreamId::new("call", Uuid::new_v4());
                    version = 0;
                }
                let events = (0..batch).map(|i| event(written + i)).collect();
                store
                    .append(AppendRequest::single(
                        org,
                        stream.clone(),
                        ExpectedVersion::from_loaded(version),
                        events,
                    ))
                    .await
                    .expect("append");
                version += batch as i64;
                written += batch;
            }
            written
        })
    });
    let total: usize = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.unwrap())
        .sum();
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());

    println!("event log benchmark ({}s per append scenario)", RUN_FOR.as_secs());
    for writers in [1, 8, 32] {
        let rate = append_rate(&store, writers, 1).await;
        println!("single-event appends, {writers:>2} writers: {rate:>10.0} events/s");
    }
    for (writers, batch) in [(1, 100), (1, 1000), (4, 1000)] {
        let rate = append_rate(&store, writers, batch).await;
        println!("batches of {batch:>4}, {writers} writer(s):    {rate:>10.0} events/s");
    }

    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let missing = REPLAY_EVENTS.saturating_sub(existing as usize);
    let org = Uuid::new_v4();
    for chunk in 0..missing.div_ceil(1000) {
        let n = (missing - chunk * 1000).min(1000);
        store
            .append(AppendRequest::single(
                org,
                StreamId::new("call", Uuid::new_v4()),
                ExpectedVersion::NoStream,
                (0..n).map(event).collect(),
            ))
            .await
            .unwrap();
    }
    let runner = api::server::projection_runner(&db.pool, Arc::new(store.clone()));
    runner.prepare().await.unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let result = runner.rebuild("activity", |_| {}).await.unwrap();
    println!(
        "replay of projection `activity` over {total} events: {:>10.0} events/s ({} events)",
        result.events_per_second, result.done
    );
}
