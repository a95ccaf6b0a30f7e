//! The sync reactor: writes each ended call to every CRM the organization
//! syncs with, a step at a time.

use super::*;

/// What a call's events say, for the CRM.
pub(super) struct CallFacts {
    pub(super) to_sync: CallToSync,
    direction: CallDirection,
    customer_number: Option<PhoneNumber>,
    report: Option<CallReport>,
    outcome: Option<Outcome>,
    ended_at: Option<DateTime<Utc>>,
    /// The meeting the call booked, if it booked one.
    appointment: Option<crate::calendar::AppointmentView>,
}

impl CallFacts {
    /// The call's facts from its stream, if it is the organization's.
    pub(super) async fn load(
        store: &dyn EventStore,
        organization_id: Uuid,
        call_id: Uuid,
    ) -> Result<Option<Self>, AppError> {
        let recorded = store
            .read_stream(&stream_of::<domain::calls::Call>(call_id))
            .await
            .map_err(|e| AppError::internal("reading a call", e))?;
        if recorded.first().is_none_or(|e| e.organization_id != organization_id) {
            return Ok(None);
        }
        let events = recorded
            .iter()
            .map(|e| e.decode::<CallEvent>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppError::internal("decoding a call", e))?;
        Ok(Some(Self::from_events(&events)))
    }

    fn from_events(events: &[CallEvent]) -> Self {
        let state = domain::calls::Call::fold(events);
        let (report, ended_at) = events
            .iter()
            .rev()
            .find_map(|event| match event {
                CallEvent::CallEnded { report, at, .. } => Some(((**report).clone(), *at)),
                _ => None,
            })
            .unzip();
        let customer_number = state
            .parties
            .customer_number
            .as_deref()
            .and_then(|n| PhoneNumber::parse(n).ok());
        let has_transcript = report
            .as_ref()
            .is_some_and(|r: &CallReport| r.transcript.as_deref().is_some_and(|t| !t.is_empty()));
        CallFacts {
            to_sync: CallToSync {
                ended: state.ended,
                has_customer_number: customer_number.is_some(),
                has_transcript,
                outcome: state.outcome,
                booked_meeting: false,
            },
            direction: state.parties.direction.clone().unwrap_or(CallDirection::Outbound),
            customer_number,
            report,
            outcome: state.outcome,
            ended_at,
            appointment: None,
        }
    }

    /// The settings' field mappings filled from this call.
    fn mapped_properties(&self, settings: &CrmSettings) -> BTreeMap<String, String> {
        settings
            .field_mappings
            .iter()
            .filter_map(|(field, property)| self.value_of(*field).map(|value| (property.clone(), value)))
            .collect()
    }

    /// What the call changes on its contact (the field mappings, and the
    /// lead status of a prospect not interested), if anything.
    fn contact_properties(&self, settings: &CrmSettings) -> Option<BTreeMap<String, String>> {
        let not_interested = self.outcome == Some(Outcome::NotInterested);
        if !not_interested && settings.field_mappings.is_empty() {
            return None;
        }
        let mut properties = self.mapped_properties(settings);
        if not_interested {
            properties.insert(
                settings.lead_status_property.clone(),
                settings.not_interested_value.clone(),
            );
        }
        Some(properties)
    }

    pub(super) fn log(&self, call_id: Uuid, contact_id: &str, settings: &CrmSettings) -> CallLog {
        let report = self.report.as_ref();
        let started_at = report.and_then(|r| r.started_at).or(self.ended_at).unwrap_or_default();
        CallLog {
            call_id,
            contact_id: contact_id.to_owned(),
            direction: self.direction.clone(),
            started_at,
            duration_seconds: report.and_then(|r| r.duration_seconds),
            our_number: None,
            customer_number: self
                .customer_number
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            title: format!("VoxReach call {call_id}"),
            body: report.and_then(|r| r.summary.clone()).unwrap_or_default(),
            transcript: report
                .and_then(|r| r.transcript.clone())
                .filter(|t| settings.log_transcript && !t.is_empty()),
            recording_url: report
                .and_then(|r| r.recording_url.clone())
                .filter(|_| settings.log_recording),
            result: self.result(),
        }
    }

    fn deal_name(&self) -> String {
        let who = self
            .value_of(CallField::ContactName)
            .or_else(|| self.customer_number.as_ref().map(|n| n.as_str().to_owned()))
            .unwrap_or_else(|| "caller".into());
        format!("{who} (VoxReach)")
    }

    fn structured(&self, field: &str) -> Option<String> {
        self.report
            .as_ref()
            .and_then(|r| r.structured_data.as_ref())
            .and_then(|d| d[field].as_str())
            .map(str::to_owned)
    }

    fn value_of(&self, field: CallField) -> Option<String> {
        match field {
            CallField::ContactName => self.structured("name").or_else(|| self.structured("contactName")),
            CallField::Company => self.structured("company"),
            CallField::Email => self.structured("email"),
            CallField::Sentiment => self.structured("sentiment"),
            CallField::Outcome => self.outcome.map(|o| o.to_string()),
            CallField::Summary => self.report.as_ref().and_then(|r| r.summary.clone()),
        }
    }

    fn result(&self) -> CallResult {
        match self.outcome {
            Some(Outcome::NoAnswer) => CallResult::NoAnswer,
            Some(Outcome::Voicemail) => CallResult::Voicemail,
            Some(Outcome::Failed) => CallResult::Failed,
            _ => match self
                .report
                .as_ref()
                .and_then(|r| r.ended_reason.as_ref())
                .map(|r| r.as_str().to_owned())
                .as_deref()
            {
                Some("customer-busy") => CallResult::Busy,
                Some("customer-did-not-answer") => CallResult::NoAnswer,
                Some("voicemail") => CallResult::Voicemail,
                _ => CallResult::Connected,
            },
        }
    }
}

/// Writes each ended call to every CRM the organization syncs with, a step
/// at a time, recording each step's result before the next.
pub struct CrmSync {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub connections: CrmConnections,
    pub retry: RetryPolicy,
    /// The appointments a call booked, for the meeting to log.
    pub appointments: Arc<dyn crate::calendar::CalendarDirectory>,
    pub progress: Arc<dyn crate::work::ReadModelProgress>,
}

/// Everything one step needs.
struct Step<'a> {
    organization_id: Uuid,
    provider: CrmProvider,
    sync_stream: domain::StreamId,
    api: &'a dyn CrmApi,
    access: CrmAccess,
    settings: &'a CrmSettings,
    call_id: Uuid,
    call: &'a CallFacts,
}

/// Most steps one work item takes for one CRM (there are five kinds).
const STEPS_PER_ITEM: usize = 8;

impl CrmSync {
    async fn record(&self, step: &Step<'_>, event: CrmSyncEvent) -> Result<CallSync, AppError> {
        let meta = metadata("system:crm", format!("reactor:{CRM_SYNC}"));
        execute_command::<CallSync>(
            self.store.as_ref(),
            step.organization_id,
            step.sync_stream.clone(),
            &meta,
            &event,
        )
        .await
        .map(|loaded| loaded.state)
    }

    /// Records the intent of a write the CRM has no idempotency key for.
    async fn intend(&self, step: &Step<'_>, kind: SyncStep) -> Result<(), AppError> {
        let started = CrmSyncEvent::CrmWriteStarted {
            step: kind,
            at: self.clock.now(),
        };
        self.record(step, started).await.map(|_| ())
    }

    /// Performs `kind` at the CRM: the event recording what it did, or the CRM's failure.
    async fn perform(
        &self,
        step: &Step<'_>,
        kind: SyncStep,
        state: &CallSync,
    ) -> Result<Result<CrmSyncEvent, ProviderError>, AppError> {
        let now = self.clock.now();
        let (api, token, provider, call) = (step.api, &step.access, step.provider, step.call);
        let contact_id = state.contact_id.clone().unwrap_or_default();
        // Each step's event names the CRM and the call, and is dated now.
        macro_rules! event {
            ($kind:ident { $($fields:tt)* }) => {
                CrmSyncEvent::$kind { provider, call_id: step.call_id, at: now, $($fields)* }
            };
        }
        let outcome = match kind {
            SyncStep::ResolveContact => {
                let Some(phone) = call.customer_number.clone() else {
                    return Err(AppError::internal(
                        "syncing a call",
                        "planned without a customer number",
                    ));
                };
                // Searching first also finds a contact a lost answer created.
                match api.find_contact(token, &phone).await {
                    Err(error) => Err(error),
                    Ok(Some(found)) => Ok(event!(CrmContactResolved {
                        contact_id: found.id,
                        created: false,
                    })),
                    Ok(None) if !step.settings.auto_create_contacts => Ok(event!(CrmSyncSkipped {
                        reason: "unknown caller and autoCreateContacts is off".into(),
                    })),
                    Ok(None) => {
                        let contact = NewContact {
                            phone,
                            name: call.value_of(CallField::ContactName),
                            email: call.value_of(CallField::Email),
                            company: call.value_of(CallField::Company),
                            properties: call.mapped_properties(step.settings),
                            kind: step.settings.new_contact_kind,
                        };
                        self.intend(step, kind).await?;
                        api.create_contact(token, &contact).await.map(|id| {
                            event!(CrmContactResolved {
                                contact_id: id,
                                created: true,
                            })
                        })
                    }
                }
            }
            SyncStep::LogCall => {
                let logged = |engagement_id| event!(CrmCallLogged { engagement_id });
                let log = call.log(step.call_id, &contact_id, step.settings);
                if state.is_unconfirmed(kind) {
                    // An earlier write may have reached the CRM without us hearing back.
                    match api.find_logged_call(token, &log).await {
                        Ok(Some(found)) => return Ok(Ok(logged(found))),
                        Ok(None) => {}
                        Err(error) => return Ok(Err(error)),
                    }
                }
                self.intend(step, kind).await?;
                let properties = call.contact_properties(step.settings);
                let combined = match properties.as_ref().filter(|_| !state.contact_updated) {
                    Some(properties) => {
                        let call_and_update = CallUpdatingContact { call: &log, properties };
                        api.log_call_updating_contact(token, &call_and_update).await
                    }
                    None => None,
                };
                match combined {
                    None => api.log_call(token, &log).await.map(logged),
                    Some(Err(error)) => Err(error),
                    Some(Ok((engagement_id, updated))) => {
                        match updated {
                            Ok(()) => {
                                let updated = event!(CrmContactUpdated {
                                    properties: properties.unwrap_or_default().into_keys().collect(),
                                });
                                self.record(step, updated).await?;
                            }
                            // The call is logged; the contact's update is taken again on its own.
                            Err(error) => {
                                tracing::warn!(%provider, error = %crate::error::report(&error), "the CRM refused the contact's update")
                            }
                        }
                        Ok(logged(engagement_id))
                    }
                }
            }
            SyncStep::AddNote => {
                let transcript = call
                    .report
                    .as_ref()
                    .and_then(|r| r.transcript.clone())
                    .unwrap_or_default();
                let body = format!("VoxReach call {} transcript:\n\n{transcript}", step.call_id);
                let note = NewNote {
                    contact_id: &contact_id,
                    body: &body,
                    at: call.ended_at.unwrap_or(now),
                };
                api.add_note(token, &note)
                    .await
                    .map(|note_id| event!(CrmNoteAdded { note_id }))
            }
            SyncStep::LogMeeting => {
                let Some(appointment) = &call.appointment else {
                    return Err(AppError::internal(
                        "syncing a call",
                        "a meeting was planned without a booking",
                    ));
                };
                let meeting = MeetingLog {
                    call_id: step.call_id,
                    contact_id: contact_id.clone(),
                    title: appointment.title.clone(),
                    start: appointment.start,
                    end: appointment.end,
                    body: format!("Booked by a VoxReach agent during call {}", step.call_id),
                };
                api.log_meeting(token, &meeting)
                    .await
                    .map(|meeting_id| event!(CrmMeetingLogged { meeting_id }))
            }
            SyncStep::UpdateDeal => {
                let stage = call
                    .outcome
                    .and_then(|o| step.settings.stage_mapping.stage_for(o))
                    .unwrap_or(&step.settings.default_deal_stage)
                    .to_owned();
                let known = match &state.deal {
                    Some((deal_id, _)) => Ok(Some(deal_id.clone())),
                    // A deal the contact already has is moved rather than duplicated.
                    None => api.open_deal(token, &contact_id).await,
                };
                match known {
                    Err(error) => Err(error),
                    Ok(Some(deal_id)) => {
                        let change = DealMove {
                            deal_id: &deal_id,
                            stage: &stage,
                            logged_call: state.engagement_id.as_deref(),
                        };
                        api.move_deal(token, &change).await.map(|()| {
                            event!(CrmDealUpdated {
                                deal_id,
                                stage,
                                created: false,
                            })
                        })
                    }
                    Ok(None) => {
                        let name = call.deal_name();
                        self.intend(step, kind).await?;
                        let deal = NewDeal {
                            contact_id: &contact_id,
                            name: &name,
                            stage: &stage,
                            logged_call: state.engagement_id.as_deref(),
                        };
                        api.create_deal(token, &deal).await.map(|deal_id| {
                            event!(CrmDealUpdated {
                                deal_id,
                                stage,
                                created: true,
                            })
                        })
                    }
                }
            }
            SyncStep::WriteCustomRecord => {
                let Some(custom) = &step.settings.custom_record else {
                    return Err(AppError::internal(
                        "syncing a call",
                        "a custom record was planned without its settings",
                    ));
                };
                let fields: BTreeMap<String, String> = custom
                    .fields
                    .iter()
                    .filter_map(|(field, target)| call.value_of(*field).map(|value| (target.clone(), value)))
                    .collect();
                api.create_record(token, &custom.object, &fields)
                    .await
                    .map(|record_id| {
                        event!(CrmCustomRecordCreated {
                            object: custom.object.clone(),
                            record_id,
                        })
                    })
            }
            SyncStep::UpdateContact => {
                let properties = call.contact_properties(step.settings).unwrap_or_default();
                let update = ContactUpdate {
                    contact_id: &contact_id,
                    properties: &properties,
                };
                api.update_contact(token, &update).await.map(|()| {
                    event!(CrmContactUpdated {
                        properties: properties.into_keys().collect(),
                    })
                })
            }
        };
        Ok(outcome)
    }

    /// Syncs the call to one CRM; returns when to look again, if ever.
    async fn sync_to(
        &self,
        item: &WorkItem,
        call_id: Uuid,
        call: &CallFacts,
        provider: CrmProvider,
        connector: &CrmConnector,
        integration: &CrmIntegration,
    ) -> Result<Option<(DateTime<Utc>, String)>, AppError> {
        let organization_id = item.organization_id;
        let now = self.clock.now();
        // Only calls that ended after the CRM was connected (or since a backfill's start) are written to it.
        let takes_call = call
            .ended_at
            .is_some_and(|ended| integration.takes_call_ended_at(ended));
        if !takes_call {
            return Ok(None);
        }
        if let Some(until) = integration.throttled_until.filter(|until| *until > now) {
            return Ok(Some((until, format!("{provider} daily limit"))));
        }
        if !integration.syncs_at(now) {
            return Ok(None);
        }
        let settings = integration
            .settings
            .clone()
            .unwrap_or_else(|| CrmSettings::defaults_for(provider));
        let token = match self
            .connections
            .tokens
            .access(connector, organization_id, provider, false)
            .await?
        {
            Ok(token) => token,
            Err(TokenFailure::Unavailable(reason)) => {
                return Ok(Some((now + chrono::Duration::minutes(1), reason.to_string())));
            }
            Err(_) => return Ok(None),
        };
        let mut step = Step {
            organization_id,
            provider,
            sync_stream: stream_of::<CallSync>(provider.call_sync_id(call_id)),
            api: connector.api.as_ref(),
            access: token,
            settings: &settings,
            call_id,
            call,
        };
        let mut state = load_in::<CallSync>(self.store.as_ref(), organization_id, step.sync_stream.clone())
            .await?
            .state;
        let mut refreshed = false;
        if call
            .ended_at
            .is_some_and(|ended| integration.backfill_plan_covers(ended))
        {
            // A backfill or catch-up about to be planned may write this call in its bulk job.
            return Ok(Some((
                now + chrono::Duration::seconds(30),
                "waiting for the backfill's plan".into(),
            )));
        }
        let awaits_bulk_job = call
            .ended_at
            .is_some_and(|ended| integration.bulk_backfill_covers(ended));
        for _ in 0..STEPS_PER_ITEM {
            let Some(kind) = state.next_step(&call.to_sync, &settings) else {
                return Ok(None);
            };
            if awaits_bulk_job && kind != SyncStep::ResolveContact {
                // The backfill's bulk job writes the call record; the rest follows it.
                return Ok(Some((
                    now + chrono::Duration::minutes(2),
                    "waiting for the bulk backfill".into(),
                )));
            }
            if let Some(contact_id) = state.contact_id.as_deref() {
                // Writing to a contact deleted in the CRM would fail, or re-create it; a new call resolves afresh.
                if webhooks::contact_deleted(self.store.as_ref(), organization_id, provider, contact_id).await? {
                    let skipped = CrmSyncEvent::CrmSyncSkipped {
                        provider,
                        call_id,
                        reason: "contact deleted in the CRM".into(),
                        at: now,
                    };
                    state = self.record(&step, skipped).await?;
                    continue;
                }
            }
            match self.perform(&step, kind, &state).await? {
                Ok(event) => state = self.record(&step, event).await?,
                Err(ProviderError::Unauthorized) if !refreshed => {
                    // HubSpot tokens are refreshed ahead of expiry; a 401 still gets one refresh.
                    refreshed = true;
                    match self
                        .connections
                        .tokens
                        .access(connector, organization_id, provider, true)
                        .await?
                    {
                        Ok(access) => step.access = access,
                        Err(_) => return Ok(None),
                    }
                }
                Err(ProviderError::DailyLimitReached { resets_in }) => {
                    let until = now
                        + resets_in
                            .and_then(|d| chrono::Duration::from_std(d).ok())
                            .unwrap_or(chrono::Duration::hours(1));
                    let mut commands = vec![CrmCommand::Throttle { until, now }];
                    if connector.bulk.is_some() {
                        // The calls held until the budget is back may be many: a catch-up can write them in bulk.
                        commands.push(CrmCommand::RequestCatchUp { now });
                    }
                    for command in commands {
                        execute_command::<CrmIntegration>(
                            self.store.as_ref(),
                            organization_id,
                            integration_stream(organization_id, provider),
                            &metadata("system:crm", format!("reactor:{CRM_SYNC}")),
                            &command,
                        )
                        .await?;
                    }
                    self.record_failure(&step, kind, &state, "daily_limit", Some(until))
                        .await?;
                    return Ok(Some((until, format!("{provider} daily limit"))));
                }
                Err(error) => {
                    let retry_at = self.retry.next_attempt(state.failures + 1, &error, now);
                    let reason = failure_code(&error);
                    self.record_failure(&step, kind, &state, &reason, retry_at).await?;
                    return Ok(retry_at.map(|due| (due, reason)));
                }
            }
        }
        Ok(Some((now, "more steps".into())))
    }

    async fn record_failure(
        &self,
        step: &Step<'_>,
        kind: SyncStep,
        state: &CallSync,
        reason: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), AppError> {
        tracing::warn!(provider = %step.provider, ?kind, reason, "CRM sync step failed");
        let failed = CrmSyncEvent::CrmSyncFailed {
            provider: step.provider,
            call_id: step.call_id,
            step: kind,
            reason: reason.to_owned(),
            attempt: state.failures + 1,
            retry_at,
            at: self.clock.now(),
        };
        self.record(step, failed).await.map(|_| ())
    }
}

/// Our words for a CRM's failure (never its own).
fn failure_code(error: &ProviderError) -> String {
    match error {
        ProviderError::RateLimited { .. } => "rate_limited".into(),
        ProviderError::Unauthorized => "unauthorized".into(),
        ProviderError::NotFound => "not_found".into(),
        ProviderError::Rejected { status } => format!("rejected_{status}"),
        ProviderError::Unavailable(_) => "crm_unavailable".into(),
        ProviderError::DailyLimitReached { .. } => "daily_limit".into(),
    }
}

#[async_trait]
impl WorkHandler for CrmSync {
    fn reactor(&self) -> &'static str {
        CRM_SYNC
    }

    fn provider(&self) -> &'static str {
        "crm"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let call_id = item.key_id()?;
        // Most organizations' calls go to no CRM: their integrations say so before the call is read.
        let connected: Vec<_> = CrmProvider::ALL
            .into_iter()
            .filter_map(|provider| Some((provider, self.connections.providers.get(provider)?)))
            .collect();
        let providers: Vec<_> = connected.iter().map(|(provider, _)| *provider).collect();
        let integrations = load_integrations(self.store.as_ref(), item.organization_id, &providers).await?;
        let live: Vec<_> = connected
            .into_iter()
            .zip(integrations)
            .map(|((provider, connector), integration)| (provider, connector, integration.state))
            .filter(|(_, _, integration)| integration.is_live())
            .collect();
        if live.is_empty() {
            return Ok(WorkOutcome::Done);
        }
        let Some(mut call) = CallFacts::load(self.store.as_ref(), item.organization_id, call_id).await? else {
            return Ok(WorkOutcome::Done);
        };
        if call.outcome == Some(Outcome::Appointment) {
            // The booking was recorded before the outcome: once the appointments read model holds the
            // outcome's position, it holds the booking too.
            if let Some(trigger) = item.trigger {
                if !self.progress.has_applied("appointments", trigger).await? {
                    return Ok(WorkOutcome::RetryAt {
                        due: self.clock.now() + chrono::Duration::seconds(1),
                        reason: "waiting for the appointments read model".into(),
                    });
                }
            }
            let filter = crate::calendar::AppointmentFilter {
                call_id: Some(call_id),
                status: Some(domain::calendar::AppointmentStatus::Booked),
                limit: 1,
                ..Default::default()
            };
            call.appointment = self
                .appointments
                .appointments(item.organization_id, &filter)
                .await?
                .into_iter()
                .next();
            call.to_sync.booked_meeting = call.appointment.is_some();
        }
        let mut earliest: Option<(DateTime<Utc>, String)> = None;
        for (provider, connector, integration) in &live {
            if let Some((due, reason)) = self
                .sync_to(item, call_id, &call, *provider, connector, integration)
                .await?
            {
                if earliest.as_ref().is_none_or(|(d, _)| due < *d) {
                    earliest = Some((due, reason));
                }
            }
        }
        Ok(match earliest {
            Some((due, reason)) => WorkOutcome::RetryAt { due, reason },
            None => WorkOutcome::Done,
        })
    }
}
