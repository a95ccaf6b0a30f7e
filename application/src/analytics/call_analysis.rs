//! The call-analysis reactor: scores each end-of-call report once — talk
//! timings, sentiment, and adherence to the agent's checklist as it stands
//! when the report arrives — and records the figures as `CallAnalyzed`.
//! Vapi's reports are scored by the webhook as they arrive; the reactor
//! scores the rest (reports recorded before analysis existed).
//! Analytics read models then replay a few numbers per call instead of
//! decoding and scoring every transcript again.

use crate::aggregates::{execute_decision, load_in, metadata, stream_of, Decided, Loaded, DECISION_ATTEMPTS};
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use domain::agents::Agent;
use domain::calls::{Call, CallCommand, CallEvent};
use domain::Aggregate;
use std::sync::Arc;

pub const CALL_ANALYSIS: &str = "call-analysis";

pub struct CallAnalysisReactor {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl WorkHandler for CallAnalysisReactor {
    fn reactor(&self) -> &'static str {
        CALL_ANALYSIS
    }

    fn provider(&self) -> &'static str {
        "internal"
    }

    /// One read of the call per round: the fold gives the decider its state
    /// and the latest report its content, appended with that read's version.
    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let stream = stream_of::<Call>(item.key_id()?);
        let metadata = metadata("system:analytics", format!("reactor:{CALL_ANALYSIS}"));
        let (store, now) = (self.store.as_ref(), self.clock.now());
        execute_decision(store, organization_id, DECISION_ATTEMPTS, || {
            let (stream, metadata) = (stream.clone(), &metadata);
            Box::pin(async move {
                let recorded = store
                    .read_stream(&stream)
                    .await
                    .map_err(|e| AppError::internal("reading a call", e))?;
                if recorded.first().is_some_and(|e| e.organization_id != organization_id) {
                    return Ok(Decided::nothing(()));
                }
                let mut loaded = Loaded::<Call>::fresh(stream);
                let mut latest = None;
                for event in &recorded {
                    let decoded = event
                        .decode::<CallEvent>()
                        .map_err(|e| AppError::internal("decoding a stored event", e))?;
                    loaded.state = std::mem::take(&mut loaded.state).evolve(&decoded);
                    loaded.version = event.stream_version;
                    if let CallEvent::CallEnded { report, at, .. } = decoded {
                        latest = Some((loaded.state.reports, report, at));
                    }
                }
                let Some((report, content, ended_at)) = latest else {
                    return Ok(Decided::nothing(()));
                };
                let agent = match loaded.state.parties.agent_id {
                    Some(agent_id) => {
                        Some(load_in::<Agent>(store, organization_id, stream_of::<Agent>(agent_id)).await?)
                    }
                    None => None,
                };
                let command = CallCommand::analyze(report, ended_at, content, agent.as_ref().map(|a| &a.state), now);
                let events = Call::decide(&command, &loaded.state)?;
                let appends = if events.is_empty() {
                    vec![]
                } else {
                    vec![loaded.append_of(&events, metadata)]
                };
                Ok(Decided::new(appends, ()))
            })
        })
        .await?;
        Ok(WorkOutcome::Done)
    }
}
