//! Event-log throughput: `cargo bench -p voxreach-tests --bench event_store`.
//! Single-event appends at 1, 8 and 32 concurrent writers and batched appends
//! of 100 and 1,000 events, each next to raw PostgreSQL doing the same inserts
//! into a table of the same shape (what `pgbench` would measure), from the
//! same run; then a real command (load the stream, decide, append) at 1, 8
//! and 32 concurrent callers; then A/B variant assignments of fresh calls at 1
//! and 32 concurrent callers into a test that has had 100,000 before them
//! (`BENCH_PRIOR_ASSIGNMENTS`). Read-model replay: `--bench read_models`.

use application::aggregates::{execute_command, metadata};
use application::event_store::{AppendRequest, EventStore};
use domain::agents::{Agent, AgentCommand};
use domain::{EventMetadata, ExpectedVersion, NewEvent, StreamId};
use infrastructure::event_store::PgEventStore;
use serde_json::json;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;
use voxreach_tests::TestDatabase;

const RUN_FOR: Duration = Duration::from_secs(4);

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

/// Runs `workers` copies of `work` (given the start) until `RUN_FOR` has
/// passed; each returns how many it did. The total per second.
async fn rate<Fut>(workers: usize, work: impl Fn(Instant) -> Fut) -> f64
where
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let started = Instant::now();
    let tasks = (0..workers).map(|_| tokio::spawn(work(started)));
    let total: usize = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.unwrap())
        .sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// `writers` tasks append batches of `batch` events to their own streams for `RUN_FOR`.
async fn append_rate(store: &PgEventStore, writers: usize, batch: usize) -> f64 {
    rate(writers, |started| {
        let store = store.clone();
        async move {
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
        }
    })
    .await
}

/// The same inserts straight into `raw_events` (the events table's shape,
/// indexes and defaults): one statement per batch, no version check.
async fn raw_insert_rate(pool: &PgPool, writers: usize, batch: usize) -> f64 {
    rate(writers, |started| {
        let pool = pool.clone();
        async move {
            let org = Uuid::new_v4();
            let mut written = 0usize;
            while started.elapsed() < RUN_FOR {
                let stream = format!("call-{}", Uuid::new_v4());
                let events: Vec<NewEvent> = (0..batch).map(|i| event(written + i)).collect();
                sqlx::query(
                    "INSERT INTO raw_events (organization_id, stream_id, stream_type, stream_version, event_id,
                                             event_type, event_version, payload, metadata)
                     SELECT $1, $2, 'call', v, i, t, 1, p, m
                     FROM UNNEST($3::bigint[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[]) AS e(v, i, t, p, m)",
                )
                .bind(org)
                .bind(stream)
                .bind((1..=batch as i64).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
                .bind(
                    events
                        .iter()
                        .map(|e| serde_json::to_value(&e.metadata).unwrap())
                        .collect::<Vec<_>>(),
                )
                .execute(&pool)
                .await
                .expect("raw insert");
                written += batch;
            }
            written
        }
    })
    .await
}

/// `callers` tasks run agent commands through the one command path: each
/// creates an agent, then updates it 19 times, and starts over.
async fn command_rate(store: &PgEventStore, callers: usize) -> f64 {
    rate(callers, |started| {
        let store = store.clone();
        async move {
            let org = Uuid::new_v4();
            let metadata = metadata("user:bench", "bench");
            let now = chrono::Utc::now();
            let mut done = 0usize;
            while started.elapsed() < RUN_FOR {
                let stream = application::aggregates::stream_of::<Agent>(Uuid::now_v7());
                for n in 0..20 {
                    let spec = voxreach_tests::load::agent_spec(n);
                    let command = if n == 0 {
                        AgentCommand::Create {
                            organization_id: org,
                            spec,
                            now,
                        }
                    } else {
                        AgentCommand::Update { spec, now }
                    };
                    execute_command::<Agent>(&store, org, stream.clone(), &metadata, &command)
                        .await
                        .expect("command");
                    done += 1;
                }
            }
            done
        }
    })
    .await
}

/// A running A/B test of one agent with `prior` calls assigned already: (organization, agent).
async fn busy_test(store: &PgEventStore, pool: &PgPool, prior: u64) -> (Uuid, Uuid) {
    use domain::ab_testing::{
        AbTestEvent, AgentExperimentEvent, AssignmentEvent, SuccessOutcome, TestSettings, TestVariant,
    };
    use domain::events::DomainEvent;
    let (organization, agent, test) = (Uuid::new_v4(), Uuid::now_v7(), Uuid::now_v7());
    let at = chrono::Utc::now();
    let variants: Vec<TestVariant> = [("Soft", true), ("Bold", false)]
        .into_iter()
        .map(|(name, is_control)| TestVariant {
            variant_id: Uuid::now_v7(),
            name: name.into(),
            prompt: format!("Be {name}."),
            is_control,
            traffic_percent: 50,
        })
        .collect();
    let meta = EventMetadata::default();
    let started = AbTestEvent::AbTestStarted {
        organization_id: organization,
        agent_id: agent,
        settings: TestSettings {
            name: "Openers".into(),
            success_outcome: SuccessOutcome::Qualified,
            min_sample_size: 100,
            auto_promote: false,
        },
        variants: variants.clone(),
        at,
    };
    let running = AgentExperimentEvent::AgentTestStarted { test_id: test, at };
    store
        .append(AppendRequest {
            organization_id: organization,
            streams: vec![
                application::event_store::StreamAppend {
                    stream: StreamId::new("ab-test", test),
                    expected: ExpectedVersion::NoStream,
                    events: vec![started.to_new_event(&meta)],
                },
                application::event_store::StreamAppend {
                    stream: StreamId::new("agent-experiments", agent),
                    expected: ExpectedVersion::NoStream,
                    events: vec![running.to_new_event(&meta)],
                },
            ],
            idempotency_key: None,
        })
        .await
        .expect("test started");
    for chunk in (0..prior).collect::<Vec<_>>().chunks(1_000) {
        let streams = chunk
            .iter()
            .map(|slot| {
                let call_id = Uuid::now_v7();
                let assigned = AssignmentEvent::CallVariantAssigned {
                    test_id: test,
                    call_id,
                    variant_id: variants[(*slot % 2) as usize].variant_id,
                    customer_number: Some(format!("+1415{slot:07}")),
                    slot: Some(*slot),
                    at,
                };
                application::event_store::StreamAppend {
                    stream: StreamId::new("ab-assignment", call_id),
                    expected: ExpectedVersion::NoStream,
                    events: vec![assigned.to_new_event(&meta)],
                }
            })
            .collect();
        store
            .append(AppendRequest {
                organization_id: organization,
                streams,
                idempotency_key: None,
            })
            .await
            .expect("prior assignments");
    }
    sqlx::query("INSERT INTO ab_assignment_slots (test_id, next_slot) VALUES ($1, $2)")
        .bind(test)
        .bind(prior as i64)
        .execute(pool)
        .await
        .unwrap();
    (organization, agent)
}

/// `callers` tasks assign variants to fresh calls of new customers, as every outbound call does.
async fn assignment_rate(store: &PgEventStore, pool: &PgPool, test: (Uuid, Uuid), callers: usize) -> f64 {
    let (organization, agent) = test;
    rate(callers, |started| {
        let store = store.clone();
        let slots = infrastructure::ab_testing::PgAssignmentSlots::new(pool.clone());
        async move {
            let clock = application::clock::SystemClock;
            let mut done = 0usize;
            while started.elapsed() < RUN_FOR {
                let call_id = Uuid::now_v7();
                let variant = application::ab_testing::assign_variant(
                    &store,
                    &clock,
                    &slots,
                    organization,
                    agent,
                    call_id,
                    Some(format!("+1628{:07}", call_id.as_u128() % 10_000_000)),
                )
                .await
                .expect("assignment");
                assert!(variant.is_some(), "the test runs");
                done += 1;
            }
            done
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    sqlx::query("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        .execute(&db.pool)
        .await
        .unwrap();

    println!(
        "event log benchmark ({}s per scenario); raw = plain INSERTs into a table of the same shape",
        RUN_FOR.as_secs()
    );
    for (writers, batch) in [(1, 1), (8, 1), (32, 1), (1, 100), (1, 1000), (4, 1000)] {
        let ours = append_rate(&store, writers, batch).await;
        let raw = raw_insert_rate(&db.pool, writers, batch).await;
        println!(
            "batches of {batch:>4}, {writers:>2} writer(s): {ours:>9.0} events/s, raw {raw:>9.0} events/s ({:>3.0}% of raw)",
            ours / raw * 100.0
        );
    }
    for callers in [1, 8, 32] {
        let rate = command_rate(&store, callers).await;
        println!("agent commands (load, decide, append), {callers:>2} callers: {rate:>9.0} commands/s");
    }
    let prior: u64 = std::env::var("BENCH_PRIOR_ASSIGNMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let test = busy_test(&store, &db.pool, prior).await;
    for callers in [1, 32] {
        let rate = assignment_rate(&store, &db.pool, test, callers).await;
        println!(
            "A/B assignments of new calls after {prior} earlier ones, {callers:>2} callers: {rate:>9.0} assignments/s"
        );
    }
}
