//! The campaign runner (SPEC §2.3 "Campaign Runner"): a scheduler job that
//! starts scheduled campaigns, completes finished ones and picks ready
//! contacts fairly across campaigns within each one's concurrency and pace;
//! and the two reactors that place each recorded dial and record how its call
//! ended.
//!
//! Exactly once, across processes: a dial is first recorded on the contact's
//! own stream with its expected version, so of two schedulers picking the
//! same contact one records it and the other finds it calling. The call is
//! requested by a reactor fed from that record (a crash between the two loses
//! nothing: the work was enqueued with the record), under the call id the
//! record carries, so it is requested once whatever retries.

use super::{campaign_error, dnc_error};
use crate::aggregates::{execute, load_in, metadata, stream_of};
use crate::calls::{request_call, OutboundRequest, Requester};
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use crate::work::{JobLocks, ReadModelProgress, ScheduledJob, WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calls::{Call, CallStatus, CampaignAttempt};
use domain::campaigns::dnc::dnc_entry_id;
use domain::campaigns::{
    decide_dial, AttemptResult, CallerId, CallerIds, Campaign, CampaignCommand, CampaignContact, CampaignError,
    CampaignSettings, CampaignStatus, CompletionReason, ContactAtDial, ContactCommand, ContactDial, ContactError,
    DialDecision, DncCommand, DncEntry, DncListing, WithdrawReason,
};
use domain::phone::PhoneNumber;
use domain::time_zone::TimeZone;
use domain::{Aggregate, StreamId};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The reactor that requests the call of each recorded dial.
pub const CAMPAIGN_DIALER: &str = "campaign-dialer";
/// The reactor that records how each campaign call ended.
pub const CAMPAIGN_RESULTS: &str = "campaign-results";
/// Most dials one tick decides, over all campaigns.
pub const DIALS_PER_TICK: usize = 100;
/// A call still unfinished this long after its dial lost its end-of-call report
/// (Vapi's calls last 10 minutes unless an assistant allows more): its attempt
/// is recorded as failed, so the contact is retried and its slot freed.
pub const ATTEMPT_TIMEOUT: chrono::Duration = chrono::Duration::hours(1);

/// A running campaign (or a paused one whose schedule ended) as the runner
/// sees it (campaigns and contacts read models).
#[derive(Debug, Clone)]
pub struct RunningCampaign {
    pub organization_id: Uuid,
    pub id: Uuid,
    pub status: CampaignStatus,
    pub settings: CampaignSettings,
    pub total_contacts: i64,
    /// Contacts pending or calling.
    pub open_contacts: i64,
    /// Contacts calling now.
    pub in_flight: i64,
    /// Dials in the last minute.
    pub dialed_last_minute: i64,
    pub calls_made: i64,
}

/// An attempt whose call never reported its end.
#[derive(Debug, Clone)]
pub struct UnfinishedAttempt {
    pub organization_id: Uuid,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub call_id: Uuid,
}

/// A contact ready to be called: pending and due.
#[derive(Debug, Clone)]
pub struct ReadyContact {
    pub contact_id: Uuid,
    pub phone: PhoneNumber,
    pub timezone: Option<TimeZone>,
}

/// What the runner reads to decide what to do (read models).
#[async_trait]
pub trait CampaignBoard: Send + Sync {
    /// The read models the board answers from: a tick waits until they hold the log.
    fn read_models(&self) -> &'static [&'static str];
    /// Scheduled campaigns whose start time has come: (organization, campaign).
    async fn due_to_start(&self, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, AppError>;
    /// Every running campaign with its live figures, and paused ones whose `scheduledEnd` passed.
    async fn running(&self, now: DateTime<Utc>) -> Result<Vec<RunningCampaign>, AppError>;
    /// Attempts dialled before `before` whose call has not ended.
    async fn unfinished_attempts(&self, before: DateTime<Utc>) -> Result<Vec<UnfinishedAttempt>, AppError>;
    /// For each (campaign, n): up to n of its ready contacts, in the order they became
    /// due (an index range serves each), in one round trip.
    async fn ready(&self, shares: &[(Uuid, i64)], now: DateTime<Utc>) -> Result<Vec<(Uuid, ReadyContact)>, AppError>;
    /// The organization's numbers among `ids`, with their E.164 numbers (numbers without one are left out).
    async fn caller_ids(&self, organization_id: Uuid, ids: &[Uuid]) -> Result<Vec<CallerId>, AppError>;
}

/// How many dials each campaign may take this tick: what its concurrency
/// and its pace leave, shared fairly — organizations in turn, and within an
/// organization its campaigns in turn, one dial at a time until the tick's
/// budget is spent — so neither a big campaign nor an organization with many
/// campaigns starves the others.
pub fn fair_shares(campaigns: &[RunningCampaign], budget: usize) -> Vec<usize> {
    let room: Vec<usize> = campaigns
        .iter()
        .map(|c| {
            let concurrency = i64::from(c.settings.max_concurrent_calls) - c.in_flight;
            let pace = i64::from(c.settings.dials_per_minute) - c.dialed_last_minute;
            concurrency.min(pace).max(0) as usize
        })
        .collect();
    // Each organization's campaigns, organizations in order of first appearance.
    let mut organizations: Vec<(Uuid, Vec<usize>, usize)> = Vec::new();
    for (index, campaign) in campaigns.iter().enumerate() {
        match organizations
            .iter_mut()
            .find(|(id, ..)| *id == campaign.organization_id)
        {
            Some((_, members, _)) => members.push(index),
            None => organizations.push((campaign.organization_id, vec![index], 0)),
        }
    }
    let mut shares = vec![0; campaigns.len()];
    let mut left = budget;
    while left > 0 {
        let mut gave = false;
        for (_, members, turn) in organizations.iter_mut() {
            if left == 0 {
                break;
            }
            let next = (0..members.len())
                .map(|step| (*turn + step) % members.len())
                .find(|position| shares[members[*position]] < room[members[*position]]);
            if let Some(position) = next {
                shares[members[position]] += 1;
                left -= 1;
                *turn = position + 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    shares
}

/// Longest a tick waits for the board's read models to hold the log.
pub const BOARD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct CampaignRunner {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub board: Arc<dyn CampaignBoard>,
    pub campaigns: Arc<dyn CampaignLookup>,
    /// One tick at a time across processes: a tick's room per campaign counts the calls
    /// in flight, which another scheduler's tick would be adding to meanwhile.
    pub locks: Arc<dyn JobLocks>,
    pub progress: Arc<dyn ReadModelProgress>,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub started: usize,
    pub completed: usize,
    pub dialed: usize,
    pub deferred: usize,
    pub closed: usize,
    /// Attempts recorded as failed after `ATTEMPT_TIMEOUT` without an end.
    pub timed_out: usize,
}

impl CampaignRunner {
    fn runner_metadata() -> domain::EventMetadata {
        metadata("system:campaign-runner", "campaign-runner")
    }

    async fn steer(&self, organization_id: Uuid, id: Uuid, command: CampaignCommand) -> Result<(), AppError> {
        execute::<Campaign>(
            self.store.as_ref(),
            organization_id,
            stream_of::<Campaign>(id),
            &Self::runner_metadata(),
            |loaded| match Campaign::decide(&command, &loaded.state) {
                Ok(events) => Ok(events),
                // Someone paused, cancelled or moved it meanwhile: nothing for the runner to do.
                Err(CampaignError::InvalidTransition { .. } | CampaignError::StartTimeNotReached { .. }) => Ok(vec![]),
                Err(error) => Err(campaign_error(error)),
            },
        )
        .await?;
        Ok(())
    }

    /// Whether the board's read models hold every event committed so far (the
    /// dials of earlier ticks included), waiting up to [`BOARD_WAIT`].
    async fn board_is_current(&self) -> Result<bool, AppError> {
        let head = self
            .store
            .head()
            .await
            .map_err(|e| AppError::internal("reading the head of the log", e))?;
        let deadline = tokio::time::Instant::now() + BOARD_WAIT;
        let mut pause = std::time::Duration::from_millis(2);
        for read_model in self.board.read_models() {
            while !self.progress.has_applied(read_model, head).await? {
                if tokio::time::Instant::now() + pause > deadline {
                    return Ok(false);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
        }
        Ok(true)
    }

    /// One pass: start, time out lost calls, complete, dial. A campaign that
    /// fails is logged and skipped; the others go on. Another process's pass
    /// in progress, or read models behind the log, make it a pass that does nothing.
    #[tracing::instrument(skip_all)]
    pub async fn tick(&self) -> Result<TickReport, AppError> {
        let mut report = TickReport::default();
        let Some(_hold) = self.locks.try_hold("campaign-runner").await? else {
            return Ok(report);
        };
        // Calls in flight and dials in the last minute come from read models: counted
        // before they hold the last tick's dials, a campaign would overshoot its limits.
        if !self.board_is_current().await? {
            tracing::warn!(wait = ?BOARD_WAIT, "campaign read models behind the log: no dials this tick");
            return Ok(report);
        }
        let now = self.clock.now();
        for (organization_id, id) in self.board.due_to_start(now).await? {
            match self
                .steer(organization_id, id, CampaignCommand::RunScheduled { now })
                .await
            {
                Ok(()) => report.started += 1,
                Err(error) => {
                    tracing::warn!(error = %crate::error::report(&error), campaign = %id, "could not start a scheduled campaign")
                }
            }
        }
        for lost in self.board.unfinished_attempts(now - ATTEMPT_TIMEOUT).await? {
            match self.time_out(&lost, now).await {
                Ok(()) => report.timed_out += 1,
                Err(error) => {
                    tracing::warn!(error = %crate::error::report(&error), call = %lost.call_id, "could not time out an attempt")
                }
            }
        }
        let mut dialing = Vec::new();
        for campaign in self.board.running(now).await? {
            let ended = campaign.settings.scheduled_end.is_some_and(|end| end <= now);
            let done = campaign.total_contacts > 0 && campaign.open_contacts == 0;
            if ended || done {
                let reason = if ended {
                    CompletionReason::ScheduleEnded
                } else {
                    CompletionReason::AllContactsTerminal
                };
                let command = CampaignCommand::Complete {
                    reason,
                    contacts_seen: campaign.total_contacts as u64,
                    now,
                };
                match self.steer(campaign.organization_id, campaign.id, command).await {
                    Ok(()) => report.completed += 1,
                    Err(error) => {
                        tracing::warn!(error = %crate::error::report(&error), campaign = %campaign.id, "could not complete a campaign")
                    }
                }
            } else if campaign.status == CampaignStatus::Running {
                dialing.push(campaign);
            }
        }
        for (campaign, ready) in self.choose(dialing, now).await? {
            if let Err(error) = self.dial_campaign(&campaign, ready, now, &mut report).await {
                tracing::warn!(error = %crate::error::report(&error), campaign = %campaign.id, "could not dial a campaign's contacts");
            }
        }
        Ok(report)
    }

    async fn dial_campaign(
        &self,
        campaign: &RunningCampaign,
        ready: Vec<ReadyContact>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), AppError> {
        let mut numbers = vec![campaign.settings.default_phone_number_id];
        numbers.extend(&campaign.settings.phone_number_ids);
        let known = self.board.caller_ids(campaign.organization_id, &numbers).await?;
        let Some(default) = known
            .iter()
            .find(|c| c.phone_number_id == campaign.settings.default_phone_number_id)
            .cloned()
        else {
            tracing::warn!(campaign = %campaign.id, "the default number has no E.164 number yet: not dialling");
            return Ok(());
        };
        let pool: Vec<CallerId> = known
            .into_iter()
            .filter(|c| campaign.settings.phone_number_ids.contains(&c.phone_number_id))
            .collect();
        for (turn, contact) in ready.iter().enumerate() {
            // Round robin over the campaign's dials: its count so far, then this tick's turn.
            let rotation = campaign.calls_made as u64 + turn as u64;
            match self.dial_one(campaign, contact, &default, &pool, rotation, now).await {
                Ok(Some(Step::Dialed)) => report.dialed += 1,
                Ok(Some(Step::Deferred)) => report.deferred += 1,
                Ok(Some(Step::Closed)) => report.closed += 1,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error::report(&error), contact = %contact.contact_id, "dial decision failed")
                }
            }
        }
        Ok(())
    }

    /// Records a lost call's attempt as failed: the retry rules apply.
    async fn time_out(&self, lost: &UnfinishedAttempt, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(settings) = self.campaigns.settings(lost.organization_id, lost.campaign_id).await? else {
            return Ok(());
        };
        execute::<CampaignContact>(
            self.store.as_ref(),
            lost.organization_id,
            stream_of::<CampaignContact>(lost.contact_id),
            &Self::runner_metadata(),
            |loaded| {
                let Some(dialed) = loaded.state.attempts.iter().find(|a| a.call_id == lost.call_id) else {
                    return Ok(vec![]);
                };
                let window = settings.window_for(&dialed.phone, None);
                let command = ContactCommand::FinishAttempt {
                    call_id: lost.call_id,
                    result: AttemptResult::Failed,
                    outcome: None,
                    opted_out: false,
                    policy: settings.attempt_policy(&window),
                    now,
                };
                CampaignContact::decide(&command, &loaded.state).map_err(contact_error)
            },
        )
        .await?;
        tracing::warn!(call = %lost.call_id, "no end-of-call report within the timeout: attempt recorded as failed");
        Ok(())
    }

    /// The contacts this tick looks at: each running campaign's fair share of
    /// the tick's dials, its ready contacts read from the "next ready" index.
    pub async fn choose(
        &self,
        campaigns: Vec<RunningCampaign>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(RunningCampaign, Vec<ReadyContact>)>, AppError> {
        let shares = fair_shares(&campaigns, DIALS_PER_TICK);
        let wanted: Vec<(Uuid, i64)> = campaigns
            .iter()
            .zip(&shares)
            .filter(|(_, share)| **share > 0)
            .map(|(campaign, share)| (campaign.id, *share as i64))
            .collect();
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        let mut ready: HashMap<Uuid, Vec<ReadyContact>> = HashMap::new();
        for (campaign_id, contact) in self.board.ready(&wanted, now).await? {
            ready.entry(campaign_id).or_default().push(contact);
        }
        Ok(campaigns
            .into_iter()
            .filter_map(|campaign| ready.remove(&campaign.id).map(|contacts| (campaign, contacts)))
            .collect())
    }

    /// Decides one contact at dial time, on its own stream: dial (recorded),
    /// put off until its window opens, or close it.
    async fn dial_one(
        &self,
        campaign: &RunningCampaign,
        contact: &ReadyContact,
        default: &CallerId,
        pool: &[CallerId],
        rotation: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<Step>, AppError> {
        let organization_id = campaign.organization_id;
        let on_dnc_list = load_in::<DncEntry>(
            self.store.as_ref(),
            organization_id,
            stream_of::<DncEntry>(dnc_entry_id(organization_id, &contact.phone)),
        )
        .await?
        .state
        .listed
        .is_some();
        let state = Campaign {
            organization_id: Some(organization_id),
            settings: Some(campaign.settings.clone()),
            status: CampaignStatus::Running,
            ..Campaign::default()
        };
        let step = std::sync::Mutex::new(None);
        let outcome = execute::<CampaignContact>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CampaignContact>(contact.contact_id),
            &Self::runner_metadata(),
            |loaded| {
                // Decided afresh on every try (a conflict reloads the stream).
                *step.lock().expect("step lock") = None;
                let times = loaded.state.attempt_times();
                let at_dial = ContactAtDial {
                    phone: &contact.phone,
                    timezone: contact.timezone,
                    status: loaded.state.status,
                    next_attempt_at: loaded.state.next_attempt_at,
                    attempt_times: &times,
                };
                let ids = CallerIds {
                    default,
                    pool,
                    rotation,
                };
                let (command, taken) = match decide_dial(&state, at_dial, on_dnc_list, ids, now) {
                    DialDecision::Dial {
                        caller_id,
                        attempt_number,
                    } => (
                        ContactCommand::RecordDial {
                            dial: ContactDial {
                                campaign_id: campaign.id,
                                contact_id: contact.contact_id,
                                agent_id: campaign.settings.agent_id,
                                phone: contact.phone.clone(),
                                attempt_number,
                                call_id: Uuid::now_v7(),
                                caller_id,
                            },
                            now,
                        },
                        Step::Dialed,
                    ),
                    DialDecision::NotNow { retry_at } => (
                        ContactCommand::Defer {
                            campaign_id: campaign.id,
                            contact_id: contact.contact_id,
                            until: retry_at,
                            now,
                        },
                        Step::Deferred,
                    ),
                    DialDecision::Skip { reason } => match reason.closes_contact() {
                        Some(reason) => (
                            ContactCommand::Close {
                                campaign_id: campaign.id,
                                contact_id: contact.contact_id,
                                reason,
                                now,
                            },
                            Step::Closed,
                        ),
                        None => return Ok(vec![]),
                    },
                };
                match CampaignContact::decide(&command, &loaded.state) {
                    Ok(events) => {
                        *step.lock().expect("step lock") = (!events.is_empty()).then_some(taken);
                        Ok(events)
                    }
                    // Another scheduler dialled it first.
                    Err(ContactError::NotDialable { .. } | ContactError::StaleAttempt { .. }) => Ok(vec![]),
                    Err(error) => Err(contact_error(error)),
                }
            },
        )
        .await;
        outcome?;
        Ok(step.into_inner().expect("step lock"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Dialed,
    Deferred,
    Closed,
}

fn contact_error(error: ContactError) -> AppError {
    AppError::new(
        crate::error::ErrorKind::Conflict,
        "campaign_contact_not_dialable",
        error.to_string(),
    )
}

#[async_trait]
impl ScheduledJob for CampaignRunner {
    fn name(&self) -> &'static str {
        "campaign-runner"
    }

    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    async fn run(&self) -> Result<usize, AppError> {
        let report = self.tick().await?;
        Ok(report.started + report.completed + report.dialed + report.deferred + report.closed + report.timed_out)
    }
}

/// Requests the call of a contact's dial in flight, under the dial's call id,
/// unless the campaign stopped running or the number was listed since the
/// dial was recorded: then the dial is withdrawn (pause stops new dials at once).
pub struct CampaignDialer {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub ab_slots: Arc<dyn crate::ab_testing::AssignmentSlots>,
    pub campaigns: Arc<dyn CampaignLookup>,
}

impl CampaignDialer {
    /// Why the dial must not be placed now, if it must not.
    async fn withdraw_reason(
        &self,
        organization_id: Uuid,
        campaign_id: Uuid,
        phone: &PhoneNumber,
    ) -> Result<Option<WithdrawReason>, AppError> {
        // A listed number closes the contact whatever the campaign does.
        let entry = load_in::<DncEntry>(
            self.store.as_ref(),
            organization_id,
            stream_of::<DncEntry>(dnc_entry_id(organization_id, phone)),
        )
        .await?;
        if entry.state.listed.is_some() {
            return Ok(Some(WithdrawReason::Dnc));
        }
        let status = self.campaigns.status(organization_id, campaign_id).await?;
        Ok((status != Some(CampaignStatus::Running)).then_some(WithdrawReason::CampaignNotRunning))
    }
}

#[async_trait]
impl WorkHandler for CampaignDialer {
    fn reactor(&self) -> &'static str {
        CAMPAIGN_DIALER
    }

    fn provider(&self) -> &'static str {
        "internal"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let contact_id = item.key_id()?;
        let contact = load_in::<CampaignContact>(
            self.store.as_ref(),
            item.organization_id,
            stream_of::<CampaignContact>(contact_id),
        )
        .await?;
        let (Some(campaign_id), Some(attempt)) = (contact.state.campaign_id, contact.state.in_flight()) else {
            return Ok(WorkOutcome::Done);
        };
        // A call already requested (a retry after a crash) goes ahead: requesting it again changes nothing.
        let requested = self
            .store
            .first_event(&stream_of::<Call>(attempt.call_id))
            .await
            .map_err(|e| AppError::internal("reading a call's first event", e))?
            .is_some();
        if !requested {
            if let Some(reason) = self
                .withdraw_reason(item.organization_id, campaign_id, &attempt.phone)
                .await?
            {
                let command = ContactCommand::WithdrawDial {
                    call_id: attempt.call_id,
                    reason,
                    now: self.clock.now(),
                };
                execute::<CampaignContact>(
                    self.store.as_ref(),
                    item.organization_id,
                    stream_of::<CampaignContact>(contact_id),
                    &metadata("system:campaign-runner", "campaign-dialer"),
                    |loaded| CampaignContact::decide(&command, &loaded.state).map_err(contact_error),
                )
                .await?;
                tracing::info!(call = %attempt.call_id, ?reason, "dial withdrawn before its call was requested");
                return Ok(WorkOutcome::Done);
            }
        }
        let request = OutboundRequest {
            agent_id: attempt.agent_id,
            phone_number_id: attempt.caller_id.phone_number_id,
            customer_number: attempt.phone.clone(),
        };
        let requester = Requester {
            user_id: Uuid::nil(),
            campaign: Some(CampaignAttempt {
                campaign_id,
                contact_id,
                attempt_number: attempt.number,
            }),
            metadata: metadata("system:campaign-runner", "campaign-dialer"),
        };
        request_call(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.ab_slots.as_ref(),
            item.organization_id,
            attempt.call_id,
            &request,
            &requester,
        )
        .await?;
        Ok(WorkOutcome::Done)
    }
}

/// Where the runner's reactors find a campaign's settings and status (the campaigns read model).
#[async_trait]
pub trait CampaignLookup: Send + Sync {
    async fn settings(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignSettings>, AppError>;
    async fn status(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignStatus>, AppError>;
}

/// Whether the call was requested by a campaign (its first event, `CallRequested`, names the attempt).
async fn is_campaign_call(store: &dyn EventStore, call_id: Uuid) -> Result<bool, AppError> {
    let Some(first) = store
        .first_event(&stream_of::<Call>(call_id))
        .await
        .map_err(|e| AppError::internal("reading a call's first event", e))?
    else {
        return Ok(false);
    };
    let requested = first
        .decode::<domain::calls::CallEvent>()
        .map_err(|e| AppError::internal("reading a call's first event", e))?;
    Ok(matches!(
        requested,
        domain::calls::CallEvent::CallRequested { campaign: Some(_), .. }
    ))
}

/// Records how a campaign call ended on its contact: the result, the retry
/// the rules give, and an opt-out onto the organization's DNC list.
pub struct CampaignResults {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub campaigns: Arc<dyn CampaignLookup>,
}

#[async_trait]
impl WorkHandler for CampaignResults {
    fn reactor(&self) -> &'static str {
        CAMPAIGN_RESULTS
    }

    fn provider(&self) -> &'static str {
        "internal"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let call_id = item.key_id()?;
        // Most calls are no campaign's: their first event says so without reading the rest.
        if !is_campaign_call(self.store.as_ref(), call_id).await? {
            return Ok(WorkOutcome::Done);
        }
        let call = load_in::<Call>(self.store.as_ref(), organization_id, stream_of::<Call>(call_id)).await?;
        let (Some(attempt), true) = (call.state.campaign, call.state.ended) else {
            return Ok(WorkOutcome::Done);
        };
        let Some(settings) = self.campaigns.settings(organization_id, attempt.campaign_id).await? else {
            return Ok(WorkOutcome::Done);
        };
        let result = match (&call.state.status, &call.state.ended_reason) {
            (Some(CallStatus::Failed), _) | (_, None) => AttemptResult::Failed,
            (_, Some(reason)) => AttemptResult::from_ended_reason(reason),
        };
        let contact_stream: StreamId = stream_of::<CampaignContact>(attempt.contact_id);
        let contact = load_in::<CampaignContact>(self.store.as_ref(), organization_id, contact_stream.clone()).await?;
        let Some(dialed) = contact.state.attempts.iter().find(|a| a.call_id == call_id) else {
            return Ok(WorkOutcome::Done);
        };
        let phone = dialed.phone.clone();
        let window = settings.window_for(&phone, None);
        let policy = settings.attempt_policy(&window);
        let now = self.clock.now();
        let opted_out = call.state.opted_out;
        let command = ContactCommand::FinishAttempt {
            call_id,
            result,
            outcome: call.state.outcome,
            opted_out,
            policy,
            now,
        };
        execute::<CampaignContact>(
            self.store.as_ref(),
            organization_id,
            contact_stream,
            &metadata("system:campaign-runner", "campaign-results"),
            |loaded| match CampaignContact::decide(&command, &loaded.state) {
                Ok(events) => Ok(events),
                // Recorded already (a retry).
                Err(ContactError::UnknownCall(_)) => Ok(vec![]),
                Err(error) => Err(contact_error(error)),
            },
        )
        .await?;
        // An outcome a person set after the end (the end took the one known then).
        if let Some(outcome) = call.state.outcome {
            let late = ContactCommand::RecordOutcome {
                call_id,
                outcome,
                success_outcome: settings.success_outcome,
                now,
            };
            execute::<CampaignContact>(
                self.store.as_ref(),
                organization_id,
                stream_of::<CampaignContact>(attempt.contact_id),
                &metadata("system:campaign-runner", "campaign-results"),
                |loaded| CampaignContact::decide(&late, &loaded.state).map_err(contact_error),
            )
            .await?;
        }
        if opted_out {
            let listing = DncCommand::List {
                listing: DncListing::opted_out_in_call(organization_id, phone.clone(), call_id),
                now,
            };
            execute::<DncEntry>(
                self.store.as_ref(),
                organization_id,
                stream_of::<DncEntry>(dnc_entry_id(organization_id, &phone)),
                &metadata("system:campaign-runner", "campaign-results"),
                |loaded| DncEntry::decide(&listing, &loaded.state).map_err(dnc_error),
            )
            .await?;
        }
        Ok(WorkOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(concurrency: u32, pace: u32, in_flight: i64, dialed: i64) -> RunningCampaign {
        let mut settings = CampaignSettings::new(Uuid::nil(), "c", Uuid::nil());
        settings.max_concurrent_calls = concurrency;
        settings.dials_per_minute = pace;
        RunningCampaign {
            organization_id: Uuid::nil(),
            id: Uuid::now_v7(),
            status: CampaignStatus::Running,
            settings,
            total_contacts: 1_000,
            open_contacts: 1_000,
            in_flight,
            dialed_last_minute: dialed,
            calls_made: dialed,
        }
    }

    #[test]
    fn shares_respect_concurrency_and_pace_and_a_big_campaign_does_not_starve_a_small_one() {
        let big = running(100, 120, 0, 0);
        let small = running(2, 10, 0, 0);
        let busy = running(5, 10, 5, 0);
        let paced = running(50, 10, 0, 9);
        let shares = fair_shares(&[big, small, busy, paced], 20);
        assert_eq!(shares, [17, 2, 0, 1]);
        assert_eq!(fair_shares(&[running(3, 3, 0, 0)], 100), [3]);
        // An organization with ten campaigns gets no more than one with a single campaign.
        let crowd = Uuid::now_v7();
        let mut campaigns: Vec<RunningCampaign> = (0..10)
            .map(|_| RunningCampaign {
                organization_id: crowd,
                ..running(100, 120, 0, 0)
            })
            .collect();
        campaigns.push(RunningCampaign {
            organization_id: Uuid::now_v7(),
            ..running(100, 120, 0, 0)
        });
        let shares = fair_shares(&campaigns, 20);
        assert_eq!(shares[10], 10, "{shares:?}");
        assert!(shares[..10].iter().all(|s| *s == 1), "{shares:?}");
        let many: Vec<RunningCampaign> = (0..150).map(|_| running(5, 10, 0, 0)).collect();
        let shares = fair_shares(&many, DIALS_PER_TICK);
        assert_eq!(shares.iter().sum::<usize>(), DIALS_PER_TICK);
        assert!(shares.iter().all(|s| *s <= 1), "one each before anyone gets a second");
    }
}
