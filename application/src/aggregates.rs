//! Loading aggregates from their streams and turning decisions into appends,
//! with the tenancy check every load goes through.

use crate::error::{AppError, ErrorKind};
use crate::event_store::{AppendError, EventStore, StreamAppend};
use domain::{Aggregate, DomainEvent, EventMetadata, ExpectedVersion, StreamId};
use uuid::Uuid;

/// An aggregate's state and the stream version it was folded from.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub stream: StreamId,
    pub state: A,
    pub version: i64,
    /// The organization owning the stream, when it exists.
    pub organization_id: Option<Uuid>,
}

impl<A: Aggregate> Loaded<A> {
    /// A stream that must not exist yet.
    pub fn fresh(stream: StreamId) -> Self {
        Self {
            stream,
            state: A::default(),
            version: 0,
            organization_id: None,
        }
    }

    /// The append that records `events` decided on this state.
    pub fn append_of(&self, events: &[A::Event], metadata: &EventMetadata) -> StreamAppend {
        StreamAppend {
            stream: self.stream.clone(),
            expected: ExpectedVersion::from_loaded(self.version),
            events: events.iter().map(|e| e.to_new_event(metadata)).collect(),
        }
    }

    pub fn exists(&self) -> bool {
        self.version > 0
    }
}

pub fn stream_of<A: Aggregate>(id: impl std::fmt::Display) -> StreamId {
    StreamId::new(A::STREAM_TYPE, id)
}

/// Loads a stream whatever organization owns it. Only for look-ups that are
/// global by nature (sign-in by e-mail, reset tokens); everything else uses `load_in`.
pub async fn load_any<A: Aggregate>(store: &dyn EventStore, stream: StreamId) -> Result<Loaded<A>, AppError> {
    let recorded = store
        .read_stream(&stream)
        .await
        .map_err(|e| AppError::internal("reading a stream", e))?;
    let mut state = A::default();
    let mut version = 0;
    let mut organization_id = None;
    for event in &recorded {
        let typed = A::Event::decode(&event.event_type, event.event_version, &event.payload)
            .map_err(|e| AppError::internal("decoding a stored event", e))?;
        state = state.evolve(&typed);
        version = event.stream_version;
        organization_id = Some(event.organization_id);
    }
    Ok(Loaded {
        stream,
        state,
        version,
        organization_id,
    })
}

/// Loads a stream of the caller's organization. A stream of another
/// organization looks exactly like one that does not exist.
pub async fn load_in<A: Aggregate>(
    store: &dyn EventStore,
    organization_id: Uuid,
    stream: StreamId,
) -> Result<Loaded<A>, AppError> {
    let mut loaded = load_any::<A>(store, stream.clone()).await?;
    if loaded.organization_id.is_some_and(|owner| owner != organization_id) {
        loaded = Loaded::fresh(stream);
    }
    Ok(loaded)
}

/// Maps a failed append to an API error; a version conflict that survives
/// retries is a 409 the client may retry.
pub fn append_failed(error: AppendError) -> AppError {
    match error {
        AppendError::VersionConflict { stream_id, .. } => contended(&stream_id),
        AppendError::Store(message) => AppError::internal("appending events", message),
    }
}

/// A stream that kept changing under a decision: a 409 naming it.
fn contended(stream_id: &str) -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "concurrent_modification",
        "the resource was changed concurrently; retry the request",
    )
    .with_details(serde_json::json!({ "stream": stream_id }))
}

/// Events caused by a signed-in user through the API.
pub fn session_metadata(caller: &crate::auth::Session) -> EventMetadata {
    metadata(format!("user:{}", caller.user_id), "api")
}

/// Who caused events, and through which entry point.
pub fn metadata(actor: impl Into<String>, source: impl Into<String>) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(Uuid::now_v7()),
        actor: Some(actor.into()),
        source: Some(source.into()),
        ..EventMetadata::default()
    }
}

/// Appends a decision over any streams atomically (nothing when empty).
pub async fn append_decided(
    store: &dyn EventStore,
    organization_id: Uuid,
    streams: Vec<crate::event_store::StreamAppend>,
) -> Result<(), AppError> {
    if streams.is_empty() {
        return Ok(());
    }
    store
        .append(crate::event_store::AppendRequest {
            organization_id,
            streams,
            idempotency_key: None,
        })
        .await
        .map(|_| ())
        .map_err(append_failed)
}

/// How often one decision is taken again after losing a race for its stream.
const DECISION_ATTEMPTS: usize = 5;

/// The one command path every feature uses: load the stream (of
/// `organization_id`), decide, append with the expected version; on a version
/// conflict reload and decide again, a bounded number of times, then answer a
/// precise 409. Returns the state after the decision. Reactors record what they
/// observed the same way: an observation is a fact, so a concurrent change
/// makes it decided again on the new state, never dropped.
pub async fn execute<A: Aggregate>(
    store: &dyn EventStore,
    organization_id: Uuid,
    stream: StreamId,
    metadata: &EventMetadata,
    decide: impl Fn(&Loaded<A>) -> Result<Vec<A::Event>, AppError>,
) -> Result<Loaded<A>, AppError> {
    for _ in 0..DECISION_ATTEMPTS {
        let loaded = load_in::<A>(store, organization_id, stream.clone()).await?;
        let events = decide(&loaded)?;
        if events.is_empty() {
            return Ok(loaded);
        }
        let request = crate::event_store::AppendRequest {
            organization_id,
            streams: vec![loaded.append_of(&events, metadata)],
            idempotency_key: None,
        };
        match store.append(request).await {
            Ok(_) => {
                let version = loaded.version + events.len() as i64;
                return Ok(Loaded {
                    state: events.iter().fold(loaded.state, A::evolve),
                    version,
                    organization_id: Some(organization_id),
                    stream: loaded.stream,
                });
            }
            Err(AppendError::VersionConflict { .. }) => continue,
            Err(other) => return Err(append_failed(other)),
        }
    }
    Err(contended(&stream.to_string()))
}
