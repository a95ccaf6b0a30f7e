//! Backfill: the calls that ended in the last 90 days, before the CRM was
//! connected, written to it too. Few calls go through the call-by-call sync;
//! from [`BULK_THRESHOLD`] on, and where the CRM has a bulk interface, their
//! contacts are resolved one by one and their call records go in one bulk
//! job, polled with a growing wait; each call's result lands in its sync
//! record (and the sync log), a refused row is retried through the REST API
//! by the call-by-call sync, which then adds notes and deals.
//!
//! A catch-up is the same for the calls held while a CRM's daily budget was
//! spent (the sync asks for one when it throttles a CRM with a bulk
//! interface): planned once the budget is back, over the calls since the
//! connection that are not at the CRM yet.

use super::sync::CallFacts;
use super::{BulkImport, CrmAccess, CrmBulkApi, CrmConnections, CrmConnector, BULK_THRESHOLD, CRM_SYNC};
use crate::aggregates::{execute_command, load_in, metadata, stream_of};
use crate::calls::{CallFilter, CallHistory};
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use crate::oauth::TokenFailure;
use crate::providers::ProviderError;
use crate::work::{WorkHandler, WorkItem, WorkOutcome, WorkQueue};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::calls::CallStatus;
use domain::crm::{CallSync, CrmCommand, CrmIntegration, CrmProvider, CrmSettings, CrmSyncEvent, SyncStep};
use domain::{Aggregate, StreamId};
use std::sync::Arc;
use uuid::Uuid;

/// Name of the reactor that runs backfills.
pub const CRM_BACKFILL: &str = "crm-backfill";
/// How far back a backfill reaches.
pub const BACKFILL_DAYS: i64 = 90;
/// The most calls one backfill takes.
const MAX_CALLS: usize = 20_000;
/// Calls read per page of the call history.
const PAGE: i64 = 500;
/// How long contacts may take to resolve before the bulk job goes without the stragglers.
const RESOLVE_PATIENCE: Duration = Duration::hours(6);

/// Runs each organization's backfill (keyed by the integration's id).
pub struct CrmBackfill {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub connections: CrmConnections,
    pub calls: Arc<dyn CallHistory>,
    pub queue: Arc<dyn WorkQueue>,
}

/// What the bulk steps of one backfill work with.
struct BulkRun<'a> {
    item: &'a WorkItem,
    integration_id: Uuid,
    integration: &'a CrmIntegration,
    connector: &'a CrmConnector,
    bulk: &'a dyn CrmBulkApi,
    access: &'a CrmAccess,
    range: (DateTime<Utc>, Option<DateTime<Utc>>),
}

/// A call the backfill writes, and how far its sync has got.
struct Candidate {
    call_id: Uuid,
    facts: CallFacts,
    sync: CallSync,
}

impl CrmBackfill {
    /// Records a command of the backfill on `stream`.
    async fn execute<A: Aggregate>(
        &self,
        organization_id: Uuid,
        stream: StreamId,
        command: &A::Command,
    ) -> Result<(), AppError>
    where
        AppError: From<A::Error>,
    {
        let meta = metadata("system:crm", format!("reactor:{CRM_BACKFILL}"));
        execute_command::<A>(self.store.as_ref(), organization_id, stream, &meta, command)
            .await
            .map(|_| ())
    }

    async fn change(&self, organization_id: Uuid, integration_id: Uuid, command: CrmCommand) -> Result<(), AppError> {
        let stream = stream_of::<CrmIntegration>(integration_id);
        self.execute::<CrmIntegration>(organization_id, stream, &command).await
    }

    /// The ended calls with a customer number in [since, until) whose call
    /// record is not at the CRM yet, oldest last.
    async fn candidates(
        &self,
        organization_id: Uuid,
        integration: &CrmIntegration,
        (since, until): (DateTime<Utc>, Option<DateTime<Utc>>),
    ) -> Result<Vec<Candidate>, AppError> {
        let provider = live_provider(integration);
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let filter = CallFilter {
                status: Some(CallStatus::Ended),
                ended_from: Some(since),
                ended_before: until,
                after,
                limit: PAGE,
                ..Default::default()
            };
            let page = self.calls.list(organization_id, &filter).await?;
            after = page.last().map(|call| (call.created_at, call.id));
            for summary in &page {
                let Some(facts) = CallFacts::load(self.store.as_ref(), organization_id, summary.id).await? else {
                    continue;
                };
                let sync = load_in::<CallSync>(
                    self.store.as_ref(),
                    organization_id,
                    stream_of::<CallSync>(provider.call_sync_id(summary.id)),
                )
                .await?
                .state;
                let pending = facts.to_sync.ended
                    && facts.to_sync.has_customer_number
                    && sync.engagement_id.is_none()
                    && !sync.skipped
                    && !sync.given_up;
                if pending && found.len() < MAX_CALLS {
                    found.push(Candidate {
                        call_id: summary.id,
                        facts,
                        sync,
                    });
                }
            }
            if (page.len() as i64) < PAGE || found.len() >= MAX_CALLS {
                return Ok(found);
            }
        }
    }

    /// Hands every call to the call-by-call sync.
    async fn queue_all(&self, organization_id: Uuid, calls: &[Candidate]) -> Result<u32, AppError> {
        let ids: Vec<Uuid> = calls.iter().map(|c| c.call_id).collect();
        self.queue_ids(organization_id, &ids).await
    }

    async fn queue_ids(&self, organization_id: Uuid, call_ids: &[Uuid]) -> Result<u32, AppError> {
        for call_id in call_ids {
            self.queue
                .enqueue_once(CRM_SYNC, &call_id.to_string(), organization_id)
                .await?;
        }
        Ok(call_ids.len() as u32)
    }

    async fn record(
        &self,
        organization_id: Uuid,
        integration: &CrmIntegration,
        call_id: Uuid,
        event: CrmSyncEvent,
    ) -> Result<(), AppError> {
        let provider = live_provider(integration);
        let stream = stream_of::<CallSync>(provider.call_sync_id(call_id));
        self.execute::<CallSync>(organization_id, stream, &event).await
    }

    /// First run: few calls go call by call; many wait for their contacts, then one job.
    async fn plan(
        &self,
        item: &WorkItem,
        integration_id: Uuid,
        integration: &CrmIntegration,
        bulk: Option<&Arc<dyn CrmBulkApi>>,
        range: (DateTime<Utc>, Option<DateTime<Utc>>),
    ) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let now = self.clock.now();
        let calls = self.candidates(organization_id, integration, range).await?;
        if calls.len() < BULK_THRESHOLD || bulk.is_none() {
            let queued = self.queue_all(organization_id, &calls).await?;
            let finish = CrmCommand::FinishBackfill {
                logged: 0,
                refused: 0,
                queued,
                failure: None,
                now,
            };
            self.change(organization_id, integration_id, finish).await?;
            return Ok(WorkOutcome::Done);
        }
        let resolving = CrmCommand::ResolveForBulk {
            calls: calls.len() as u32,
            now,
        };
        self.change(organization_id, integration_id, resolving).await?;
        // The call-by-call sync resolves each contact and stops there while the backfill is bulk.
        self.queue_all(organization_id, &calls).await?;
        Ok(WorkOutcome::RetryAt {
            due: now + Duration::seconds(10),
            reason: "resolving the backfill's contacts".into(),
        })
    }

    /// Once every contact is resolved (or patience runs out), the bulk job.
    async fn start_job(&self, run: &BulkRun<'_>, resolving_since: DateTime<Utc>) -> Result<WorkOutcome, AppError> {
        let (organization_id, integration_id, integration) =
            (run.item.organization_id, run.integration_id, run.integration);
        let now = self.clock.now();
        let calls = self.candidates(organization_id, integration, run.range).await?;
        let unresolved = calls.iter().filter(|c| c.sync.contact_id.is_none()).count();
        if unresolved > 0 && now - resolving_since < RESOLVE_PATIENCE {
            return Ok(WorkOutcome::RetryAt {
                due: now + Duration::seconds(30),
                reason: format!("{unresolved} backfill contacts to resolve"),
            });
        }
        let settings = integration
            .settings
            .clone()
            .unwrap_or_else(|| CrmSettings::defaults_for(live_provider(integration)));
        let logs: Vec<_> = calls
            .iter()
            .filter_map(|c| {
                let contact = c.sync.contact_id.as_deref()?;
                Some(c.facts.log(c.call_id, contact, &settings))
            })
            .collect();
        if logs.is_empty() {
            let finish = CrmCommand::FinishBackfill {
                logged: 0,
                refused: 0,
                queued: self.queue_all(organization_id, &calls).await?,
                failure: None,
                now,
            };
            self.change(organization_id, integration_id, finish).await?;
            return Ok(WorkOutcome::Done);
        }
        match run.bulk.start_call_import(run.access, &logs).await {
            Ok(job_id) => {
                let started = CrmCommand::RecordBackfillJob {
                    job_id,
                    calls: logs.len() as u32,
                    now,
                };
                self.change(organization_id, integration_id, started).await?;
                Ok(WorkOutcome::RetryAt {
                    due: now + Duration::seconds(5),
                    reason: "the bulk job is running".into(),
                })
            }
            Err(error) => self.provider_failed(run, error).await,
        }
    }

    /// Polls the job; once it is over, each call's result is recorded.
    async fn poll_job(
        &self,
        run: &BulkRun<'_>,
        (job_id, started_at): (&str, DateTime<Utc>),
    ) -> Result<WorkOutcome, AppError> {
        let BulkRun {
            item,
            integration_id,
            integration,
            bulk,
            access,
            range,
            ..
        } = *run;
        let organization_id = item.organization_id;
        let now = self.clock.now();
        let provider = live_provider(integration);
        let (logged, refused, failure) = match bulk.call_import(access, job_id).await {
            Err(error) => return self.provider_failed(run, error).await,
            Ok(BulkImport::Running) => {
                // Back off as the job ages: a quarter of its age, 5 s to 2 min.
                let wait = ((now - started_at) / 4).clamp(Duration::seconds(5), Duration::minutes(2));
                return Ok(WorkOutcome::RetryAt {
                    due: now + wait,
                    reason: "the bulk job is running".into(),
                });
            }
            Ok(BulkImport::Failed { reason }) => (vec![], vec![], Some(reason)),
            Ok(BulkImport::Complete { logged, refused }) => (logged, refused, None),
        };
        for (call_id, engagement_id) in &logged {
            let event = CrmSyncEvent::CrmCallLogged {
                provider,
                call_id: *call_id,
                engagement_id: engagement_id.clone(),
                at: now,
            };
            self.record(organization_id, integration, *call_id, event).await?;
        }
        for (call_id, code) in &refused {
            let event = CrmSyncEvent::CrmSyncFailed {
                provider,
                call_id: *call_id,
                step: SyncStep::LogCall,
                reason: format!("bulk_refused:{code}"),
                attempt: 1,
                // Retried on its own by the call-by-call sync.
                retry_at: Some(now),
                at: now,
            };
            self.record(organization_id, integration, *call_id, event).await?;
        }
        // Everything, refused rows included, continues call by call (notes, deals). A failed job sends
        // the calls it held through REST; calls it never held were queued when the backfill was planned.
        let held: Vec<Uuid> = if failure.is_some() {
            self.candidates(organization_id, integration, range)
                .await?
                .iter()
                .map(|c| c.call_id)
                .collect()
        } else {
            logged.iter().chain(&refused).map(|(call_id, _)| *call_id).collect()
        };
        let queued = self.queue_ids(organization_id, &held).await?;
        let finish = CrmCommand::FinishBackfill {
            logged: logged.len() as u32,
            refused: refused.len() as u32,
            queued,
            failure,
            now,
        };
        self.change(organization_id, integration_id, finish).await?;
        Ok(WorkOutcome::Done)
    }

    /// A provider failure: the daily budget pauses the backfill until it is
    /// back; a refused session is refreshed; a bulk interface that refuses the
    /// job (no Bulk API permission, a job gone) hands every call to the
    /// call-by-call sync; anything else is tried again shortly.
    async fn provider_failed(&self, run: &BulkRun<'_>, error: ProviderError) -> Result<WorkOutcome, AppError> {
        let (organization_id, integration) = (run.item.organization_id, run.integration);
        let provider = live_provider(integration);
        let now = self.clock.now();
        tracing::warn!(error = %crate::error::report(&error), "a CRM backfill step failed");
        match error {
            ProviderError::DailyLimitReached { resets_in } => {
                let until = now
                    + resets_in
                        .and_then(|d| Duration::from_std(d).ok())
                        .unwrap_or(Duration::hours(1));
                let throttle = CrmCommand::Throttle { until, now };
                self.change(organization_id, run.integration_id, throttle).await?;
                Ok(WorkOutcome::RetryAt {
                    due: until,
                    reason: format!("{provider} daily limit"),
                })
            }
            ProviderError::Unauthorized => {
                // Salesforce sessions have no stated lifetime: a refusal is the sign to refresh.
                let _ = self
                    .connections
                    .tokens
                    .access(run.connector, organization_id, provider, true)
                    .await?;
                Ok(WorkOutcome::RetryAt {
                    due: now + Duration::seconds(5),
                    reason: "the CRM refused the session".into(),
                })
            }
            ProviderError::Rejected { .. } | ProviderError::NotFound => {
                let calls = self.candidates(organization_id, integration, run.range).await?;
                let finish = CrmCommand::FinishBackfill {
                    logged: 0,
                    refused: 0,
                    queued: self.queue_all(organization_id, &calls).await?,
                    failure: Some("the bulk interface refused the job".into()),
                    now,
                };
                self.change(organization_id, run.integration_id, finish).await?;
                Ok(WorkOutcome::Done)
            }
            _ => Ok(WorkOutcome::RetryAt {
                due: now + Duration::minutes(1),
                reason: "the CRM failed a backfill step".into(),
            }),
        }
    }
}

#[async_trait]
impl WorkHandler for CrmBackfill {
    fn reactor(&self) -> &'static str {
        CRM_BACKFILL
    }

    fn provider(&self) -> &'static str {
        "crm"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let integration_id = item.key_id()?;
        let organization_id = item.organization_id;
        let integration = load_in::<CrmIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CrmIntegration>(integration_id),
        )
        .await?
        .state;
        let (Some(backfill), Some(provider)) = (integration.backfill.clone(), integration.connection.provider) else {
            return Ok(WorkOutcome::Done);
        };
        let Some(connector): Option<&CrmConnector> = self.connections.providers.get(provider) else {
            return Ok(WorkOutcome::Done);
        };
        let now = self.clock.now();
        if !integration.is_live() {
            return Ok(WorkOutcome::Done);
        }
        if let Some(until) = integration.throttled_until.filter(|until| *until > now) {
            return Ok(WorkOutcome::RetryAt {
                due: until,
                reason: format!("{provider} daily limit"),
            });
        }
        let bulk = connector.bulk.as_ref();
        // A catch-up takes the calls held until it is planned; a backfill those before the connection.
        let plan_until = if backfill.catch_up { Some(now) } else { backfill.until };
        let (Some(bulk_api), Some(resolving_since)) = (bulk, backfill.bulk) else {
            return self
                .plan(item, integration_id, &integration, bulk, (backfill.since, plan_until))
                .await;
        };
        let access = match self
            .connections
            .tokens
            .access(connector, organization_id, provider, false)
            .await?
        {
            Ok(access) => access,
            Err(TokenFailure::Unavailable(reason)) => {
                return Ok(WorkOutcome::RetryAt {
                    due: now + Duration::minutes(1),
                    reason: reason.to_string(),
                })
            }
            Err(_) => {
                let finish = CrmCommand::FinishBackfill {
                    logged: 0,
                    refused: 0,
                    queued: 0,
                    failure: Some("the CRM needs a new sign-in".into()),
                    now,
                };
                self.change(organization_id, integration_id, finish).await?;
                return Ok(WorkOutcome::Done);
            }
        };
        let run = BulkRun {
            item,
            integration_id,
            integration: &integration,
            connector,
            bulk: bulk_api.as_ref(),
            access: &access,
            range: (backfill.since, backfill.until),
        };
        match &backfill.job {
            None => self.start_job(&run, resolving_since).await,
            Some((job_id, started_at)) => self.poll_job(&run, (job_id, *started_at)).await,
        }
    }
}

/// The provider of an integration a backfill runs for (live, so connected to one).
fn live_provider(integration: &CrmIntegration) -> CrmProvider {
    integration
        .connection
        .provider
        .expect("a live integration has a provider")
}
