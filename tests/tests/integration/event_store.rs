//! The Postgres event log: optimistic concurrency, idempotency, atomic
//! multi-stream appends and ordered reads.

use application::event_store::{AppendError, AppendRequest, EventStore, StreamAppend};
use domain::{Checkpoint, EventMetadata, ExpectedVersion, NewEvent, StreamId};
use infrastructure::event_store::PgEventStore;
use serde_json::json;
use uuid::Uuid;
use voxreach_tests::TestDatabase;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".into(),
        event_version: 1,
        payload: json!({ "n": n }),
        metadata: EventMetadata {
            actor: Some("test".into()),
            ..EventMetadata::default()
        },
    }
}

fn events(range: std::ops::Range<i64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

#[tokio::test]
async fn appends_in_order_and_guards_the_expected_version() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    let stream = StreamId::new("test", Uuid::new_v4());

    let first = store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::NoStream,
            events(0..3),
        ))
        .await
        .unwrap();
    assert_eq!(
        first.events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(!first.duplicate);

    let stale = store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::Exact(2),
            events(3..4),
        ))
        .await;
    assert_eq!(
        stale,
        Err(AppendError::VersionConflict {
            stream_id: stream.to_string(),
            expected: ExpectedVersion::Exact(2),
            actual: 3
        })
    );
    let ahead = store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::Exact(7),
            events(3..4),
        ))
        .await;
    assert!(matches!(ahead, Err(AppendError::VersionConflict { actual: 3, .. })));
    let exists = store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::NoStream,
            events(3..4),
        ))
        .await;
    assert!(matches!(exists, Err(AppendError::VersionConflict { .. })));

    store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::Exact(3),
            events(3..5),
        ))
        .await
        .unwrap();
    store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::Any,
            events(5..6),
        ))
        .await
        .unwrap();

    let read = store.read_stream(&stream).await.unwrap();
    assert_eq!(read.len(), 6);
    for (i, e) in read.iter().enumerate() {
        assert_eq!(e.stream_version, i as i64 + 1);
        assert_eq!(e.payload.to_value(), json!({ "n": i }));
        assert_eq!(e.organization_id, org);
        assert_eq!(e.stream_type, "test");
        assert_eq!(e.metadata.actor.as_deref(), Some("test"));
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_appends_nothing_and_returns_the_original_positions() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    let stream = StreamId::new("test", Uuid::new_v4());
    let request = || {
        AppendRequest::single(org, stream.clone(), ExpectedVersion::Any, events(0..2))
            .with_idempotency_key("vapi:call-1:end-of-call-report")
    };

    let original = store.append(request()).await.unwrap();
    let again = store.append(request()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.events, original.events);
    // Even when the stream has moved on, so the expectation would now fail.
    store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::Exact(2),
            events(2..3),
        ))
        .await
        .unwrap();
    let stale_redelivery = store
        .append(
            AppendRequest::single(org, stream.clone(), ExpectedVersion::Exact(0), events(0..2))
                .with_idempotency_key("vapi:call-1:end-of-call-report"),
        )
        .await
        .unwrap();
    assert_eq!(stale_redelivery.events, original.events);
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 3);

    // The key is scoped to its organization.
    let other_org = store
        .append(
            AppendRequest::single(
                Uuid::new_v4(),
                StreamId::new("test", Uuid::new_v4()),
                ExpectedVersion::Any,
                events(0..1),
            )
            .with_idempotency_key("vapi:call-1:end-of-call-report"),
        )
        .await
        .unwrap();
    assert!(!other_org.duplicate);

    // Concurrent redeliveries: exactly one writes.
    let key_stream = StreamId::new("test", Uuid::new_v4());
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let key_stream = key_stream.clone();
        tokio::spawn(async move {
            store
                .append(
                    AppendRequest::single(org, key_stream, ExpectedVersion::Any, events(0..1))
                        .with_idempotency_key("same-delivery"),
                )
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let written = outcomes.iter().filter(|o| !o.as_ref().unwrap().duplicate).count();
    assert_eq!(written, 1);
    assert_eq!(store.read_stream(&key_stream).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_multi_stream_append_is_all_or_nothing() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    let (a, b) = (
        StreamId::new("test", Uuid::new_v4()),
        StreamId::new("test", Uuid::new_v4()),
    );
    store
        .append(AppendRequest::single(
            org,
            b.clone(),
            ExpectedVersion::NoStream,
            events(0..1),
        ))
        .await
        .unwrap();

    let both = |expected_b| AppendRequest {
        organization_id: org,
        streams: vec![
            StreamAppend {
                stream: a.clone(),
                expected: ExpectedVersion::NoStream,
                events: events(0..2),
            },
            StreamAppend {
                stream: b.clone(),
                expected: expected_b,
                events: events(1..2),
            },
        ],
        idempotency_key: None,
    };
    let conflict = store.append(both(ExpectedVersion::NoStream)).await;
    assert!(matches!(conflict, Err(AppendError::VersionConflict { ref stream_id, .. }) if *stream_id == b.to_string()));
    assert!(store.read_stream(&a).await.unwrap().is_empty());

    let outcome = store.append(both(ExpectedVersion::Exact(1))).await.unwrap();
    assert_eq!(
        outcome.events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 2]
    );
    assert_eq!(store.read_stream(&a).await.unwrap().len(), 2);
    assert_eq!(store.read_stream(&b).await.unwrap().len(), 2);
}

#[tokio::test]
async fn read_all_pages_through_the_log_in_commit_order() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    for _ in 0..5 {
        store
            .append(AppendRequest::single(
                org,
                StreamId::new("test", Uuid::new_v4()),
                ExpectedVersion::NoStream,
                events(0..3),
            ))
            .await
            .unwrap();
    }
    let mut seen = vec![];
    let mut at = Checkpoint::START;
    // Other tests' open transactions on the server may hold the snapshot back a while.
    for _ in 0..2_000 {
        let page = store.read_all(at, 4).await.unwrap();
        if page.is_empty() && seen.len() == 15 {
            break;
        }
        if let Some(last) = page.last() {
            at = last.checkpoint();
        }
        seen.extend(page);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(seen.len(), 15);
    assert!(seen.windows(2).all(|w| w[0].checkpoint() < w[1].checkpoint()));
    assert_eq!(
        store.head().await.unwrap(),
        seen.last().unwrap().checkpoint(),
        "the head is the last readable event"
    );
    assert!(store
        .read_all(store.head().await.unwrap(), 10)
        .await
        .unwrap()
        .is_empty());
    let backlog = store.backlog(Checkpoint::START).await.unwrap();
    assert_eq!(backlog.events, 15);
}

#[tokio::test]
async fn stored_events_cannot_be_changed_or_removed() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(AppendRequest::single(
            Uuid::new_v4(),
            StreamId::new("test", Uuid::new_v4()),
            ExpectedVersion::Any,
            events(0..1),
        ))
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE events SET payload = '{}'")
        .execute(&db.pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM events").execute(&db.pool).await.is_err());
}

#[tokio::test]
async fn concurrent_appends_share_commits_but_a_conflict_fails_only_its_caller() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    // A stream at version 1: appends expecting version 5 conflict, those expecting nothing go on.
    let contested = StreamId::new("test", Uuid::new_v4());
    store
        .append(AppendRequest::single(
            org,
            contested.clone(),
            ExpectedVersion::NoStream,
            events(0..1),
        ))
        .await
        .unwrap();
    for round in 0..5 {
        let appends = (0..64i64).map(|n| {
            let store = store.clone();
            let contested = contested.clone();
            async move {
                let (stream, expected) = if n % 8 == 0 {
                    (contested, ExpectedVersion::Exact(5))
                } else {
                    (StreamId::new("test", Uuid::new_v4()), ExpectedVersion::NoStream)
                };
                let outcome = store
                    .append(AppendRequest::single(org, stream.clone(), expected, events(n..n + 2)))
                    .await;
                (n, stream, outcome)
            }
        });
        for (n, stream, outcome) in futures::future::join_all(appends).await {
            if n % 8 == 0 {
                assert!(
                    matches!(outcome, Err(AppendError::VersionConflict { .. })),
                    "round {round}, append {n}: {outcome:?}"
                );
            } else {
                let appended = outcome.unwrap_or_else(|e| panic!("round {round}, append {n}: {e:?}"));
                assert_eq!(
                    appended.events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
                    vec![1, 2]
                );
                assert_eq!(store.read_stream(&stream).await.unwrap().len(), 2);
            }
        }
    }
    assert_eq!(
        store.read_stream(&contested).await.unwrap().len(),
        1,
        "no conflicting append landed"
    );
}

/// Appends racing on one stream with the same expected version: exactly one
/// lands, whether they meet in one group statement or in concurrent ones.
#[tokio::test]
async fn racing_appends_to_one_stream_land_once() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    let stream = StreamId::new("test", Uuid::new_v4());
    store
        .append(AppendRequest::single(
            org,
            stream.clone(),
            ExpectedVersion::NoStream,
            events(0..1),
        ))
        .await
        .unwrap();
    for round in 1..=5i64 {
        let racing = (0..32i64).map(|n| {
            store.append(AppendRequest::single(
                org,
                stream.clone(),
                ExpectedVersion::Exact(round),
                events(n..n + 1),
            ))
        });
        let outcomes = futures::future::join_all(racing).await;
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        assert!(outcomes
            .iter()
            .all(|o| o.is_ok() || matches!(o, Err(AppendError::VersionConflict { .. }))));
    }
    let versions: Vec<i64> = store
        .read_stream(&stream)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, (1..=6).collect::<Vec<_>>());
}

/// Several streams in one read give what reading each would: in the order asked,
/// each in version order, a stream not yet written empty.
#[tokio::test]
async fn streams_read_together_equal_streams_read_one_by_one() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    let (first, second, unwritten) = (
        StreamId::new("test", Uuid::new_v4()),
        StreamId::new("test", Uuid::new_v4()),
        StreamId::new("test", Uuid::new_v4()),
    );
    for (stream, range) in [(&first, 0..3), (&second, 10..12), (&first, 3..5)] {
        store
            .append(AppendRequest::single(
                org,
                stream.clone(),
                ExpectedVersion::Any,
                events(range),
            ))
            .await
            .unwrap();
    }
    let asked = [second.clone(), unwritten.clone(), first.clone()];
    let together = store.read_streams(&asked).await.unwrap();
    assert_eq!(together.len(), 3);
    for (stream, read) in asked.iter().zip(&together) {
        assert_eq!(read, &store.read_stream(stream).await.unwrap(), "{stream}");
    }
    assert_eq!(together[0].len(), 2);
    assert!(together[1].is_empty());
    assert_eq!(
        together[2].iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

#[tokio::test]
async fn pages_bounded_by_their_ends_partition_the_log() {
    use application::event_store::LogFilter;
    let db = TestDatabase::create().await;
    let store = PgEventStore::new(db.pool.clone());
    let org = Uuid::new_v4();
    for _ in 0..5 {
        let stream = StreamId::new("test", Uuid::new_v4());
        store
            .append(AppendRequest::single(
                org,
                stream,
                ExpectedVersion::NoStream,
                events(0..5),
            ))
            .await
            .unwrap();
    }
    // Other tests' open transactions on the server may hold the snapshot back a while.
    let mut whole = vec![];
    for _ in 0..2_000 {
        whole = store.read_all(Checkpoint::START, 1000).await.unwrap();
        if whole.len() == 25 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(whole.len(), 25);

    // Ten events a page: the 10th, the 20th and the last; asking for more finds no more.
    let ends = store.page_ends(Checkpoint::START, 10, 5).await.unwrap();
    let at = |n: usize| whole[n - 1].checkpoint();
    assert_eq!(ends, vec![at(10), at(20), at(25)]);
    assert_eq!(store.page_ends(at(20), 10, 2).await.unwrap(), vec![at(25)]);
    assert!(store.page_ends(at(25), 10, 2).await.unwrap().is_empty());

    // Read side by side, the pages hold every event once, in order.
    let mut after = Checkpoint::START;
    let mut pages = vec![];
    for end in &ends {
        let (from, until) = (after, *end);
        let store = store.clone();
        pages.push(tokio::spawn(async move {
            store
                .read_filtered_until(from, until, &LogFilter::EVERYTHING)
                .await
                .unwrap()
        }));
        after = *end;
    }
    let mut read = vec![];
    for (page, end) in pages.into_iter().zip(&ends) {
        let page = page.await.unwrap();
        assert_eq!(page.scanned_to, Some(*end));
        assert_eq!(page.scanned, page.events.len());
        read.extend(page.events);
    }
    assert_eq!(read, whole);
}
