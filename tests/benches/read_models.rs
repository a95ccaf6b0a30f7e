//! Replay speed of the read models: `cargo bench -p voxreach-tests --bench read_models`.
//! Seeds agents (created, then updated) and users, rebuilds each read model
//! from the log, and prints its events/s next to the raw read of the same events.

use application::event_store::{AppendRequest, EventStore};
use chrono::{DateTime, Utc};
use domain::agents::{AgentEvent, AgentSpec, ModelSettings, VoiceSettings};
use domain::auth::{Email, Role, UserEvent};
use domain::events::DomainEvent;
use domain::{EventMetadata, ExpectedVersion, StreamId};
use infrastructure::event_store::PgEventStore;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use voxreach_tests::TestDatabase;

/// Streams seeded per read model; agents get two events each.
const STREAMS: usize = 20_000;
/// Streams written per append.
const PER_APPEND: usize = 500;

fn at() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn spec(n: usize) -> AgentSpec {
    AgentSpec {
        name: format!("Agent {n}"),
        system_prompt: "You book appointments.".into(),
        first_message: Some("Hi!".into()),
        voice: VoiceSettings {
            provider: "openai".into(),
            voice_id: "nova".into(),
            speed: None,
            pitch: None,
            stability: None,
        },
        language: "en-US".into(),
        transfer_number: None,
        model: ModelSettings::default(),
        outcome_rule: None,
    }
}

async fn seed(store: &PgEventStore, organization_id: Uuid) {
    let metadata = EventMetadata::default();
    for first in (0..STREAMS).step_by(PER_APPEND) {
        for n in first..first + PER_APPEND {
            let agent = [
                AgentEvent::AgentCreated {
                    organization_id,
                    spec: spec(n),
                    created_at: at(),
                },
                AgentEvent::AgentUpdated {
                    spec: spec(n + 1),
                    updated_at: at(),
                },
            ];
            let user = UserEvent::UserRegistered {
                organization_id,
                email: Email::parse(&format!("user{n}@example.com")).unwrap(),
                name: format!("User {n}"),
                role: Role::Member,
                password_hash: None,
                invited_by: None,
                registered_at: at(),
            };
            for (stream, events) in [
                (
                    StreamId::new("agent", Uuid::now_v7()),
                    agent.iter().map(|e| e.to_new_event(&metadata)).collect(),
                ),
                (
                    StreamId::new("user", Uuid::now_v7()),
                    vec![user.to_new_event(&metadata)],
                ),
            ] {
                store
                    .append(AppendRequest::single(
                        organization_id,
                        stream,
                        ExpectedVersion::NoStream,
                        events,
                    ))
                    .await
                    .expect("append");
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    seed(&store, Uuid::new_v4()).await;

    let started = Instant::now();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT payload FROM events) e")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let raw = total as f64 / started.elapsed().as_secs_f64();
    println!("raw Postgres read of the log: {raw:>10.0} events/s ({total} events)");

    let runner = api::server::projection_runner(&db.pool, Arc::new(store.clone()));
    runner.prepare().await.unwrap();
    for name in ["agents", "users"] {
        let result = runner.rebuild(name, |_| {}).await.unwrap();
        println!(
            "replay of read model `{name}` over {total} events: {:>10.0} events/s ({} applied)",
            result.events_per_second, result.done
        );
    }
}
