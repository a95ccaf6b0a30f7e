//! The call-analysis reactor: scores each end-of-call report once — talk
//! timings, sentiment, and adherence to the agent's checklist as it stands
//! when the report arrives — and records the figures as `CallAnalyzed`.
//! Analytics read models then replay a few numbers per call instead of
//! decoding and scoring every transcript again.

use crate::aggregates::{execute, load_in, metadata, stream_of};
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use domain::agents::Agent;
use domain::calls::{Call, CallCommand, CallEvent};
use domain::{Aggregate, DomainEvent};
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

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let stream = stream_of::<Call>(item.key_id()?);
        let recorded = self
            .store
            .read_stream(&stream)
            .await
            .map_err(|e| AppError::internal("reading a call", e))?;
        if recorded.first().is_some_and(|e| e.organization_id != organization_id) {
            return Ok(WorkOutcome::Done);
        }
        let mut call = Call::default();
        let mut latest = None;
        for event in &recorded {
            let decoded = CallEvent::decode(&event.event_type, event.event_version, &event.payload)
                .map_err(|e| AppError::internal("decoding a stored event", e))?;
            call = call.evolve(&decoded);
            if let CallEvent::CallEnded { report, at, .. } = decoded {
                latest = Some((call.reports, report, at));
            }
        }
        let Some((number, report, ended_at)) = latest else {
            return Ok(WorkOutcome::Done);
        };
        if call.analyzed_report >= number {
            return Ok(WorkOutcome::Done);
        }
        let checklist = match call.parties.agent_id {
            Some(agent_id) => {
                let agent =
                    load_in::<Agent>(self.store.as_ref(), organization_id, stream_of::<Agent>(agent_id)).await?;
                Some(agent.state.adherence_checklist).filter(|c| !c.is_empty())
            }
            None => None,
        };
        let command = CallCommand::Analyze {
            report: number,
            ended_at,
            content: report,
            checklist,
            now: self.clock.now(),
        };
        execute::<Call>(
            self.store.as_ref(),
            organization_id,
            stream,
            &metadata("system:analytics", format!("reactor:{CALL_ANALYSIS}")),
            |loaded| Ok(Call::decide(&command, &loaded.state)?),
        )
        .await?;
        Ok(WorkOutcome::Done)
    }
}
