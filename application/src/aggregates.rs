//! Loading aggregates from their streams and turning decisions into appends,
//! with the tenancy check every load goes through.

use crate::error::{AppError, ErrorKind};
use crate::event_store::{AppendError, EventStore, StreamAppend};
use domain::{Aggregate, DomainEvent, EventMetadata, ExpectedVersion, RecordedEvent, StreamId};
use futures::future::BoxFuture;
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

    /// The stream as seen from `organization_id`: one of another organization
    /// looks exactly like one that does not exist.
    pub fn within(self, organization_id: Uuid) -> Self {
        if self.organization_id.is_some_and(|owner| owner != organization_id) {
            return Loaded::fresh(self.stream);
        }
        self
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
    fold_recorded(stream, &recorded)
}

/// Folds a stream's events, as read, into its aggregate (whatever organization owns it).
pub fn fold_recorded<A: Aggregate>(stream: StreamId, recorded: &[RecordedEvent]) -> Result<Loaded<A>, AppError> {
    let mut state = A::default();
    let mut version = 0;
    let mut organization_id = None;
    for event in recorded {
        let typed = event
            .decode::<A::Event>()
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
    let loaded = load_any::<A>(store, stream).await?;
    Ok(loaded.within(organization_id))
}

/// Maps a failed append to an API error; a version conflict that survives
/// retries is a 409 the client may retry.
pub fn append_failed(error: AppendError) -> AppError {
    match error {
        AppendError::VersionConflict { stream_id, .. } => contended(&stream_id),
        AppendError::Store(failure) => AppError::internal("appending events", failure),
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

/// Who caused events, and through which entry point; the correlation id is
/// the current request's or reactor item's (a fresh one outside both).
pub fn metadata(actor: impl Into<String>, source: impl Into<String>) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(crate::correlation::current().unwrap_or_else(Uuid::now_v7)),
        actor: Some(actor.into()),
        source: Some(source.into()),
        ..EventMetadata::default()
    }
}

/// How often one decision is taken again after losing a race for its streams.
pub const DECISION_ATTEMPTS: usize = 5;

/// What one round of a decision wants appended (atomically, over any streams),
/// and what the use case answers if the append succeeds.
pub struct Decided<T> {
    pub appends: Vec<StreamAppend>,
    pub result: T,
    /// When set, a repeat of this key (a redelivered message) appends nothing.
    pub idempotency_key: Option<String>,
}

impl<T> Decided<T> {
    pub fn new(appends: Vec<StreamAppend>, result: T) -> Self {
        Self {
            appends,
            result,
            idempotency_key: None,
        }
    }

    /// Nothing to append.
    pub fn nothing(result: T) -> Self {
        Self::new(vec![], result)
    }
}

/// The one command path every feature uses: `decide` loads what it needs
/// (fresh on every round), decides and returns the appends; they are made
/// atomically with their expected versions. On a version conflict the whole
/// decision is taken again on the new state, at most `attempts` times, then
/// the answer is a 409 naming the contended stream. Single-stream commands go
/// through [`execute`]; this is the form for decisions over several streams.
pub async fn execute_decision<'a, T>(
    store: &'a dyn EventStore,
    organization_id: Uuid,
    attempts: usize,
    mut decide: impl FnMut() -> BoxFuture<'a, Result<Decided<T>, AppError>>,
) -> Result<T, AppError> {
    let mut contended_stream = String::new();
    for _ in 0..attempts {
        let decision = decide().await?;
        if decision.appends.is_empty() {
            return Ok(decision.result);
        }
        let request = crate::event_store::AppendRequest {
            organization_id,
            streams: decision.appends,
            idempotency_key: decision.idempotency_key,
        };
        match store.append(request).await {
            Ok(_) => return Ok(decision.result),
            Err(AppendError::VersionConflict { stream_id, .. }) => contended_stream = stream_id,
            Err(other) => return Err(append_failed(other)),
        }
    }
    Err(contended(&contended_stream))
}

/// [`execute`] of one command as the aggregate decides it.
pub async fn execute_command<A: Aggregate>(
    store: &dyn EventStore,
    organization_id: Uuid,
    stream: StreamId,
    metadata: &EventMetadata,
    command: &A::Command,
) -> Result<Loaded<A>, AppError>
where
    AppError: From<A::Error>,
{
    execute::<A>(store, organization_id, stream, metadata, |loaded| {
        Ok(A::decide(command, &loaded.state)?)
    })
    .await
}

/// A command on one stream through the one command path: load the stream (of
/// `organization_id`), decide, append with the expected version, decide again
/// on a conflict. Returns the state after the decision. Reactors record what
/// they observed the same way: an observation is a fact, so a concurrent
/// change makes it decided again on the new state, never dropped.
pub async fn execute<A: Aggregate>(
    store: &dyn EventStore,
    organization_id: Uuid,
    stream: StreamId,
    metadata: &EventMetadata,
    decide: impl Fn(&Loaded<A>) -> Result<Vec<A::Event>, AppError> + Send + Sync,
) -> Result<Loaded<A>, AppError> {
    let decide = &decide;
    execute_decision(store, organization_id, DECISION_ATTEMPTS, || {
        let stream = stream.clone();
        Box::pin(async move {
            let loaded = load_in::<A>(store, organization_id, stream).await?;
            let events = decide(&loaded)?;
            let appends = if events.is_empty() {
                vec![]
            } else {
                vec![loaded.append_of(&events, metadata)]
            };
            let version = loaded.version + events.len() as i64;
            let result = Loaded {
                state: events.iter().fold(loaded.state, A::evolve),
                version,
                organization_id: Some(organization_id),
                stream: loaded.stream,
            };
            Ok(Decided::new(appends, result))
        })
    })
    .await
}
