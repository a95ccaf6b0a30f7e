//! CRM sync: one integration per provider per organization (HubSpot now,
//! Salesforce and Pipedrive next), its settings, and each call's sync record
//! — which steps are done at the CRM with which external ids — from which the
//! next step is planned, so a retry never writes twice.

use crate::aggregate::Aggregate;
use crate::calls::Outcome;
use crate::connections::{Connection, ConnectionStatus, SignIn};
use crate::domain_events;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Longest CRM property or stage name accepted in settings.
pub const PROPERTY_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrmError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: String, reason: String },
    #[error("CRM integration not found")]
    NotFound,
    #[error("the CRM integration is disconnected")]
    Disconnected,
    #[error("a backfill is already under way")]
    BackfillRunning,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CrmError {
    CrmError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CrmProvider {
    Hubspot,
    Salesforce,
    Pipedrive,
}

impl CrmProvider {
    pub const ALL: [CrmProvider; 3] = [CrmProvider::Hubspot, CrmProvider::Salesforce, CrmProvider::Pipedrive];

    pub fn as_str(self) -> &'static str {
        match self {
            CrmProvider::Hubspot => "hubspot",
            CrmProvider::Salesforce => "salesforce",
            CrmProvider::Pipedrive => "pipedrive",
        }
    }

    /// The integration stream of this provider in an organization: one per
    /// provider, so connecting again replaces it.
    pub fn integration_id(self, organization_id: Uuid) -> Uuid {
        const NAMESPACE: Uuid = Uuid::from_u128(0xc4a1_5e7d_0b9e_4f21_a3c6_77d2_c0ff_ee05);
        Uuid::new_v5(&NAMESPACE, format!("{organization_id}:{}", self.as_str()).as_bytes())
    }

    /// The sync record of one call at this provider.
    pub fn call_sync_id(self, call_id: Uuid) -> Uuid {
        const NAMESPACE: Uuid = Uuid::from_u128(0xc4a1_5e7d_0b9e_4f21_a3c6_77d2_c0ff_ee06);
        Uuid::new_v5(&NAMESPACE, format!("{call_id}:{}", self.as_str()).as_bytes())
    }

    /// Our copy of one of the organization's contacts at this provider.
    pub fn contact_record_id(self, organization_id: Uuid, contact_id: &str) -> Uuid {
        const NAMESPACE: Uuid = Uuid::from_u128(0xc4a1_5e7d_0b9e_4f21_a3c6_77d2_c0ff_ee07);
        Uuid::new_v5(
            &NAMESPACE,
            format!("{organization_id}:{}:{contact_id}", self.as_str()).as_bytes(),
        )
    }
}

impl std::fmt::Display for CrmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CrmStatus {
    #[default]
    Active,
    /// The CRM no longer accepts our tokens: connect again.
    NeedsReauth,
    /// The CRM's daily request budget is spent: sync resumes at `throttledUntil`.
    Throttled,
    /// The sign-in failed (`statusReason` says why).
    Error,
}

/// Deal stages call outcomes move a deal to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageMapping {
    pub qualified: String,
    pub appointment: String,
    pub sale: String,
}

impl StageMapping {
    /// The stage an outcome moves the deal to, if it moves it.
    pub fn stage_for(&self, outcome: Outcome) -> Option<&str> {
        match outcome {
            Outcome::Qualified => Some(&self.qualified),
            Outcome::Appointment => Some(&self.appointment),
            Outcome::Sale => Some(&self.sale),
            _ => None,
        }
    }
}

/// Our call data a CRM property can be filled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum CallField {
    ContactName,
    Company,
    Email,
    Sentiment,
    Outcome,
    Summary,
}

impl CallField {
    /// The name settings use for it (`contactName`…).
    pub fn key(self) -> &'static str {
        match self {
            CallField::ContactName => "contactName",
            CallField::Company => "company",
            CallField::Email => "email",
            CallField::Sentiment => "sentiment",
            CallField::Outcome => "outcome",
            CallField::Summary => "summary",
        }
    }
}

/// How one CRM is synced (SPEC's CRMIntegration settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrmSettings {
    pub sync_enabled: bool,
    /// Create a contact for a caller the CRM does not know.
    pub auto_create_contacts: bool,
    /// The stage a deal is created in when no outcome maps it.
    pub default_deal_stage: String,
    pub stage_mapping: StageMapping,
    /// The contact property a "not interested" outcome sets, and its value.
    pub lead_status_property: String,
    pub not_interested_value: String,
    /// Our call data → the CRM property it fills on the contact.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub field_mappings: BTreeMap<CallField, String>,
    /// Attach the transcript as a note.
    pub log_transcript: bool,
    /// Put the recording's link on the logged call.
    pub log_recording: bool,
    /// What a caller the CRM does not know becomes (Salesforce: a Lead, or a
    /// Contact under an Account; HubSpot and Pipedrive have one kind).
    #[serde(default)]
    pub new_contact_kind: NewContactKind,
    /// A record written for each call to an object of the CRM's (Salesforce:
    /// any sObject, custom ones like `Call_Summary__c` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_record: Option<CustomRecordMapping>,
}

/// Which object a call's record goes to, and which of our call data fills which of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomRecordMapping {
    pub object: String,
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub fields: BTreeMap<CallField, String>,
}

/// The record created for an unknown caller, where the CRM has a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NewContactKind {
    #[default]
    Lead,
    Contact,
}

impl CrmSettings {
    /// What a new integration of `provider` starts with: its standard stages.
    pub fn defaults_for(provider: CrmProvider) -> Self {
        let (qualified, appointment, sale, default_stage, lead_status, not_interested) = match provider {
            CrmProvider::Hubspot => (
                "qualifiedtobuy",
                "appointmentscheduled",
                "closedwon",
                "appointmentscheduled",
                "hs_lead_status",
                "UNQUALIFIED",
            ),
            CrmProvider::Salesforce => (
                "Qualification",
                "Needs Analysis",
                "Closed Won",
                "Prospecting",
                "Status",
                "Closed - Not Converted",
            ),
            CrmProvider::Pipedrive => ("1", "2", "won", "1", "label", "not_interested"),
        };
        Self {
            sync_enabled: true,
            auto_create_contacts: true,
            default_deal_stage: default_stage.into(),
            stage_mapping: StageMapping {
                qualified: qualified.into(),
                appointment: appointment.into(),
                sale: sale.into(),
            },
            lead_status_property: lead_status.into(),
            not_interested_value: not_interested.into(),
            field_mappings: BTreeMap::new(),
            log_transcript: true,
            log_recording: true,
            new_contact_kind: NewContactKind::Lead,
            custom_record: None,
        }
    }

    /// Shape checks (names present and short); whether the properties and
    /// stages exist is the CRM's to say, checked against its lists.
    pub fn validate(&self) -> Result<(), CrmError> {
        let name = |field: String, value: &str| {
            let ok = !value.trim().is_empty()
                && value.chars().count() <= PROPERTY_CHARS
                && !value.chars().any(char::is_control);
            if ok {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("must be 1 to {PROPERTY_CHARS} printable characters"),
                ))
            }
        };
        name("defaultDealStage".into(), &self.default_deal_stage)?;
        name("stageMapping.qualified".into(), &self.stage_mapping.qualified)?;
        name("stageMapping.appointment".into(), &self.stage_mapping.appointment)?;
        name("stageMapping.sale".into(), &self.stage_mapping.sale)?;
        name("leadStatusProperty".into(), &self.lead_status_property)?;
        name("notInterestedValue".into(), &self.not_interested_value)?;
        for (field, property) in &self.field_mappings {
            name(format!("fieldMappings.{}", field.key()), property)?;
        }
        if let Some(custom) = &self.custom_record {
            name("customRecord.object".into(), &custom.object)?;
            if custom.fields.is_empty() {
                return Err(invalid("customRecord.fields", "must map at least one field"));
            }
            for (field, target) in &custom.fields {
                name(format!("customRecord.fields.{}", field.key()), target)?;
            }
        }
        Ok(())
    }

    /// Every CRM property these settings write (to check against the CRM's list).
    pub fn properties_written(&self) -> Vec<(String, &str)> {
        let mut written = vec![("leadStatusProperty".to_owned(), self.lead_status_property.as_str())];
        for (field, property) in &self.field_mappings {
            written.push((format!("fieldMappings.{}", field.key()), property.as_str()));
        }
        written
    }
}

// ---------------------------------------------------------------------------
// The integration.

domain_events! {
    pub enum CrmEvent for CrmIntegration in "crm-integration" {
        /// A CRM was connected (or connected again, replacing the previous connection); its tokens are kept
        /// encrypted outside the log. Payload: organizationId, connectedBy, provider, accountId (HubSpot's
        /// portal id), scopes, settings, at.
        #[version(1)]
        CrmConnected {
            #[serde(flatten)]
            sign_in: SignIn<CrmProvider>,
            account_id: String,
            scopes: Vec<String>,
            settings: CrmSettings,
            at: DateTime<Utc>,
        },
        /// A sign-in ended without a connection (refused at the CRM, or the code exchange failed). Payload:
        /// organizationId, connectedBy, provider, reason (an OAuth error code), at.
        #[version(1)]
        CrmSignInFailed {
            #[serde(flatten)]
            sign_in: SignIn<CrmProvider>,
            reason: String,
            at: DateTime<Utc>,
        },
        /// The sync settings changed. Payload: settings, at.
        #[version(1)]
        CrmSettingsChanged { settings: CrmSettings, at: DateTime<Utc> },
        /// The CRM refused our tokens for good: nothing syncs until connected again. Payload: reason, at.
        #[version(1)]
        CrmNeedsReauth { reason: String, at: DateTime<Utc> },
        /// The CRM's daily request budget is spent: sync waits until `until`. Payload: until, at.
        #[version(1)]
        CrmThrottled { until: DateTime<Utc>, at: DateTime<Utc> },
        /// The integration was disconnected; its tokens were forgotten (and revoked where the CRM allows).
        /// Payload: revokedAtProvider, at.
        #[version(1)]
        CrmDisconnected { revoked_at_provider: bool, at: DateTime<Utc> },
        /// A user asked for the calls that ended since `since` (before the connection) to be written to the CRM
        /// too. Payload: since, requestedBy, at.
        #[version(1)]
        CrmBackfillRequested { since: DateTime<Utc>, requested_by: Uuid, at: DateTime<Utc> },
        /// The CRM's daily budget is spent while calls keep ending: once it is back, the calls held meanwhile are
        /// written like a backfill (in one bulk job when there are many). Payload: at.
        #[version(1)]
        CrmCatchUpRequested { at: DateTime<Utc> },
        /// The backfill has enough calls for the CRM's bulk interface: their contacts are resolved one by one,
        /// then their call records go in one job. Payload: calls (how many), at.
        #[version(1)]
        CrmBackfillResolving { calls: u32, at: DateTime<Utc> },
        /// The backfill's calls went to the CRM's bulk interface as one job (Salesforce Bulk API 2.0). Payload:
        /// jobId, calls (how many), at.
        #[version(1)]
        CrmBackfillJobStarted { job_id: String, calls: u32, at: DateTime<Utc> },
        /// The backfill is over: calls logged by the bulk job, refused by it (each retried on its own), and
        /// handed to the call-by-call sync; `failure` when the bulk job failed as a whole. Payload: logged,
        /// refused, queued, failure, at.
        #[version(1)]
        CrmBackfillFinished { logged: u32, refused: u32, queued: u32, failure: Option<String>, at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CrmCommand {
    Connect {
        sign_in: SignIn<CrmProvider>,
        account_id: String,
        scopes: Vec<String>,
        now: DateTime<Utc>,
    },
    RecordFailedSignIn {
        sign_in: SignIn<CrmProvider>,
        reason: String,
        now: DateTime<Utc>,
    },
    ChangeSettings {
        settings: CrmSettings,
        now: DateTime<Utc>,
    },
    MarkNeedsReauth {
        reason: String,
        now: DateTime<Utc>,
    },
    Throttle {
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    Disconnect {
        revoked_at_provider: bool,
        now: DateTime<Utc>,
    },
    RequestBackfill {
        since: DateTime<Utc>,
        requested_by: Uuid,
        now: DateTime<Utc>,
    },
    RequestCatchUp {
        now: DateTime<Utc>,
    },
    ResolveForBulk {
        calls: u32,
        now: DateTime<Utc>,
    },
    RecordBackfillJob {
        job_id: String,
        calls: u32,
        now: DateTime<Utc>,
    },
    FinishBackfill {
        logged: u32,
        refused: u32,
        queued: u32,
        failure: Option<String>,
        now: DateTime<Utc>,
    },
}

/// A backfill of earlier calls in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub since: DateTime<Utc>,
    /// A catch-up: the calls held while the CRM's daily budget was spent,
    /// rather than those from before the connection.
    pub catch_up: bool,
    /// The end of its calls' range: the connection for a backfill; for a
    /// catch-up, when it was planned (open until then).
    pub until: Option<DateTime<Utc>>,
    /// When its contacts began resolving for one bulk job of call records
    /// (the call-by-call sync only resolves their contacts meanwhile).
    pub bulk: Option<DateTime<Utc>>,
    /// The bulk job writing its calls, once started.
    pub job: Option<(String, DateTime<Utc>)>,
}

impl ConnectionStatus for CrmStatus {
    const ACTIVE: Self = CrmStatus::Active;
    const NEEDS_REAUTH: Self = CrmStatus::NeedsReauth;
    const SIGN_IN_FAILED: Self = CrmStatus::Error;
}

/// One provider's integration in one organization: one stream, which
/// connecting again reuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrmIntegration {
    pub connection: Connection<CrmProvider, CrmStatus>,
    pub account_id: String,
    pub settings: Option<CrmSettings>,
    pub throttled_until: Option<DateTime<Utc>>,
    /// When the current connection was made: only calls ending later are synced
    /// (and those of a backfill).
    pub connected_at: Option<DateTime<Utc>>,
    /// The earliest end of the calls a backfill asked for, kept once it is over.
    pub backfill_since: Option<DateTime<Utc>>,
    /// The backfill under way, if one is.
    pub backfill: Option<Backfill>,
}

impl CrmIntegration {
    pub fn exists(&self) -> bool {
        self.connection.exists()
    }

    /// Connected, and not disconnected since.
    pub fn is_live(&self) -> bool {
        self.connection.is_live()
    }

    /// Whether a call that ended at `ended` is the CRM's to receive: after the
    /// connection, or since a backfill's start.
    pub fn takes_call_ended_at(&self, ended: DateTime<Utc>) -> bool {
        self.connected_at.is_some_and(|connected| ended >= connected)
            || self.backfill_since.is_some_and(|since| ended >= since)
    }

    /// Whether a call that ended at `ended` waits for a bulk backfill's job
    /// for its call record (a call before the connection, while one runs).
    pub fn bulk_backfill_covers(&self, ended: DateTime<Utc>) -> bool {
        self.backfill
            .as_ref()
            .is_some_and(|b| b.bulk.is_some() && ended >= b.since && b.until.is_some_and(|until| ended < until))
    }

    /// Whether a call that ended at `ended` waits for a backfill or catch-up
    /// to be planned (its calls may go in one bulk job).
    pub fn backfill_plan_covers(&self, ended: DateTime<Utc>) -> bool {
        self.backfill
            .as_ref()
            .is_some_and(|b| b.bulk.is_none() && ended >= b.since && b.until.is_none_or(|until| ended < until))
    }

    /// Whether calls sync now: live, enabled, accepted and not throttled at `now`.
    pub fn syncs_at(&self, now: DateTime<Utc>) -> bool {
        self.is_live()
            && self.settings.as_ref().is_some_and(|s| s.sync_enabled)
            && !self.connection.needs_reauth()
            && self.throttled_until.is_none_or(|until| until <= now)
    }
}

impl Aggregate for CrmIntegration {
    type Command = CrmCommand;
    type Error = CrmError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            CrmCommand::Connect {
                sign_in,
                account_id,
                scopes,
                now,
            } => Ok(vec![CrmEvent::CrmConnected {
                sign_in: *sign_in,
                account_id: account_id.clone(),
                scopes: scopes.clone(),
                // Connecting again keeps the settings chosen before.
                settings: state
                    .settings
                    .clone()
                    .unwrap_or_else(|| CrmSettings::defaults_for(sign_in.provider)),
                at: *now,
            }]),
            CrmCommand::RecordFailedSignIn { .. } if state.is_live() => Ok(vec![]),
            CrmCommand::RecordFailedSignIn { sign_in, reason, now } => Ok(vec![CrmEvent::CrmSignInFailed {
                sign_in: *sign_in,
                reason: reason.clone(),
                at: *now,
            }]),
            _ if !state.exists() => Err(CrmError::NotFound),
            CrmCommand::Disconnect { .. } if !state.is_live() => Ok(vec![]),
            CrmCommand::Disconnect {
                revoked_at_provider,
                now,
            } => Ok(vec![CrmEvent::CrmDisconnected {
                revoked_at_provider: *revoked_at_provider,
                at: *now,
            }]),
            _ if !state.is_live() => Err(CrmError::Disconnected),
            CrmCommand::ChangeSettings { settings, now } => {
                settings.validate()?;
                if state.settings.as_ref() == Some(settings) {
                    return Ok(vec![]);
                }
                Ok(vec![CrmEvent::CrmSettingsChanged {
                    settings: settings.clone(),
                    at: *now,
                }])
            }
            CrmCommand::MarkNeedsReauth { .. } if state.connection.needs_reauth() => Ok(vec![]),
            CrmCommand::MarkNeedsReauth { reason, now } => Ok(vec![CrmEvent::CrmNeedsReauth {
                reason: reason.clone(),
                at: *now,
            }]),
            CrmCommand::Throttle { until, .. } if state.throttled_until.is_some_and(|t| t >= *until) => Ok(vec![]),
            CrmCommand::Throttle { until, now } => Ok(vec![CrmEvent::CrmThrottled {
                until: *until,
                at: *now,
            }]),
            CrmCommand::RequestBackfill { .. } if state.backfill.is_some() => Err(CrmError::BackfillRunning),
            CrmCommand::RequestBackfill {
                since,
                requested_by,
                now,
            } => Ok(vec![CrmEvent::CrmBackfillRequested {
                since: *since,
                requested_by: *requested_by,
                at: *now,
            }]),
            CrmCommand::RequestCatchUp { .. } if state.backfill.is_some() => Ok(vec![]),
            CrmCommand::RequestCatchUp { now } => Ok(vec![CrmEvent::CrmCatchUpRequested { at: *now }]),
            CrmCommand::ResolveForBulk { .. } if state.backfill.as_ref().is_none_or(|b| b.bulk.is_some()) => Ok(vec![]),
            CrmCommand::ResolveForBulk { calls, now } => Ok(vec![CrmEvent::CrmBackfillResolving {
                calls: *calls,
                at: *now,
            }]),
            // A job is recorded once per backfill; a repeat (a retried handler) changes nothing.
            CrmCommand::RecordBackfillJob { .. } if state.backfill.as_ref().is_none_or(|b| b.job.is_some()) => {
                Ok(vec![])
            }
            CrmCommand::RecordBackfillJob { job_id, calls, now } => Ok(vec![CrmEvent::CrmBackfillJobStarted {
                job_id: job_id.clone(),
                calls: *calls,
                at: *now,
            }]),
            CrmCommand::FinishBackfill { .. } if state.backfill.is_none() => Ok(vec![]),
            CrmCommand::FinishBackfill {
                logged,
                refused,
                queued,
                failure,
                now,
            } => Ok(vec![CrmEvent::CrmBackfillFinished {
                logged: *logged,
                refused: *refused,
                queued: *queued,
                failure: failure.clone(),
                at: *now,
            }]),
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            CrmEvent::CrmConnected {
                sign_in,
                account_id,
                settings,
                at,
                ..
            } => {
                self.connection.connect(sign_in);
                self.connected_at = Some(*at);
                self.account_id = account_id.clone();
                self.settings = Some(settings.clone());
                self.throttled_until = None;
            }
            CrmEvent::CrmSignInFailed { sign_in, reason, .. } => self.connection.fail_sign_in(sign_in, reason),
            CrmEvent::CrmSettingsChanged { settings, .. } => self.settings = Some(settings.clone()),
            CrmEvent::CrmNeedsReauth { reason, .. } => self.connection.require_reauth(reason),
            CrmEvent::CrmThrottled { until, .. } => {
                self.connection.status = CrmStatus::Throttled;
                self.throttled_until = Some(*until);
            }
            CrmEvent::CrmDisconnected { .. } => {
                self.connection.disconnect();
                self.backfill = None;
            }
            CrmEvent::CrmBackfillRequested { since, .. } => {
                self.backfill_since = Some(self.backfill_since.map_or(*since, |earlier| earlier.min(*since)));
                self.backfill = Some(Backfill {
                    since: *since,
                    catch_up: false,
                    until: self.connected_at,
                    bulk: None,
                    job: None,
                });
            }
            CrmEvent::CrmCatchUpRequested { at } => {
                self.backfill = Some(Backfill {
                    since: self.connected_at.unwrap_or(*at),
                    catch_up: true,
                    until: None,
                    bulk: None,
                    job: None,
                });
            }
            CrmEvent::CrmBackfillResolving { at, .. } => {
                if let Some(backfill) = &mut self.backfill {
                    backfill.bulk = Some(*at);
                    if backfill.catch_up {
                        backfill.until = Some(*at);
                    }
                }
            }
            CrmEvent::CrmBackfillJobStarted { job_id, at, .. } => {
                if let Some(backfill) = &mut self.backfill {
                    backfill.job = Some((job_id.clone(), *at));
                }
            }
            CrmEvent::CrmBackfillFinished { .. } => self.backfill = None,
        }
        self
    }
}

// ---------------------------------------------------------------------------
// One call's sync.

/// A step of syncing a call to a CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyncStep {
    /// Find the contact by phone, or create it.
    ResolveContact,
    LogCall,
    AddNote,
    /// Log the meeting the call booked (an `appointment` outcome with a booking).
    LogMeeting,
    /// Create the deal, or move the open one, to the outcome's stage.
    UpdateDeal,
    /// Set the contact's lead status (not interested) and mapped fields.
    UpdateContact,
    /// Write the call's record to the settings' custom object.
    WriteCustomRecord,
}

domain_events! {
    pub enum CrmSyncEvent for CallSync in "crm-call-sync" {
        /// A write without an idempotency key at the CRM is about to be sent: a retry that finds this intent
        /// without its result looks the object up at the CRM before writing again. Payload: step, at.
        #[version(1)]
        CrmWriteStarted { step: SyncStep, at: DateTime<Utc> },
        /// The call's contact at the CRM: found by phone, or created. Payload: provider, callId, contactId, created, at.
        #[version(1)]
        CrmContactResolved { provider: CrmProvider,
            call_id: Uuid, contact_id: String, created: bool, at: DateTime<Utc> },
        /// The call was logged at the CRM (HubSpot: a call engagement associated with the contact). Payload:
        /// provider, engagementId, at.
        #[version(1)]
        CrmCallLogged { provider: CrmProvider,
            call_id: Uuid, engagement_id: String, at: DateTime<Utc> },
        /// The meeting the call booked was logged on the contact (HubSpot: a meeting engagement). Payload:
        /// provider, callId, meetingId, at.
        #[version(1)]
        CrmMeetingLogged { provider: CrmProvider, call_id: Uuid, meeting_id: String, at: DateTime<Utc> },
        /// The transcript was attached as a note. Payload: provider, callId, noteId, at.
        #[version(1)]
        CrmNoteAdded { provider: CrmProvider,
            call_id: Uuid, note_id: String, at: DateTime<Utc> },
        /// A deal was created in, or moved to, the stage the outcome maps to. Payload: provider, callId, dealId, stage,
        /// created, at.
        #[version(1)]
        CrmDealUpdated { provider: CrmProvider,
            call_id: Uuid, deal_id: String, stage: String, created: bool, at: DateTime<Utc> },
        /// The call's record was written to the settings' custom object. Payload: provider, callId, object,
        /// recordId, at.
        #[version(1)]
        CrmCustomRecordCreated { provider: CrmProvider, call_id: Uuid, object: String, record_id: String,
            at: DateTime<Utc> },
        /// Contact properties were set (lead status, mapped fields). Payload: provider, callId, properties (names), at.
        #[version(1)]
        CrmContactUpdated { provider: CrmProvider,
            call_id: Uuid, properties: Vec<String>, at: DateTime<Utc> },
        /// Nothing (more) is synced for this call, and why (sync disabled, unknown caller without
        /// auto-create, no customer number). Payload: provider, callId, reason, at.
        #[version(1)]
        CrmSyncSkipped { provider: CrmProvider,
            call_id: Uuid, reason: String, at: DateTime<Utc> },
        /// A step failed. Payload: provider, callId, step, reason (our words: a status or code), attempt, retryAt
        /// (null: given up), at.
        #[version(1)]
        CrmSyncFailed {
            provider: CrmProvider,
            call_id: Uuid,
            step: SyncStep,
            reason: String,
            attempt: u32,
            retry_at: Option<DateTime<Utc>>,
            at: DateTime<Utc>,
        },
    }
}

/// What the CRM needs to hear about a call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallToSync {
    pub ended: bool,
    pub has_customer_number: bool,
    pub has_transcript: bool,
    pub outcome: Option<Outcome>,
    /// The call booked a meeting (in a connected calendar).
    pub booked_meeting: bool,
}

/// What a call's sync has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallSync {
    pub contact_id: Option<String>,
    pub engagement_id: Option<String>,
    pub note_id: Option<String>,
    pub meeting_id: Option<String>,
    /// The call's record in the custom object, once written.
    pub custom_record_id: Option<String>,
    /// The deal and the stage it was last moved to.
    pub deal: Option<(String, String)>,
    /// The outcome the contact's properties were last set for.
    pub contact_updated: bool,
    pub skipped: bool,
    /// Writes started whose result is not recorded (a crash or a lost answer in between).
    pub unconfirmed: Vec<SyncStep>,
    pub failures: u32,
    pub given_up: bool,
}

impl CallSync {
    /// The next step for this call under `settings`, or `None` when it is synced.
    pub fn next_step(&self, call: &CallToSync, settings: &CrmSettings) -> Option<SyncStep> {
        if self.skipped || self.given_up || !call.ended || !call.has_customer_number {
            return None;
        }
        if self.contact_id.is_none() {
            return Some(SyncStep::ResolveContact);
        }
        if self.engagement_id.is_none() {
            return Some(SyncStep::LogCall);
        }
        if settings.log_transcript && call.has_transcript && self.note_id.is_none() {
            return Some(SyncStep::AddNote);
        }
        if call.outcome == Some(Outcome::Appointment) && call.booked_meeting && self.meeting_id.is_none() {
            return Some(SyncStep::LogMeeting);
        }
        if settings.custom_record.is_some() && self.custom_record_id.is_none() {
            return Some(SyncStep::WriteCustomRecord);
        }
        let wanted_stage = call.outcome.and_then(|o| settings.stage_mapping.stage_for(o));
        if let Some(stage) = wanted_stage {
            if self.deal.as_ref().is_none_or(|(_, current)| current != stage) {
                return Some(SyncStep::UpdateDeal);
            }
        }
        let wants_contact_update = call.outcome == Some(Outcome::NotInterested) || !settings.field_mappings.is_empty();
        if wants_contact_update && !self.contact_updated {
            return Some(SyncStep::UpdateContact);
        }
        None
    }

    /// Whether `step` was started before without its result being recorded.
    pub fn is_unconfirmed(&self, step: SyncStep) -> bool {
        self.unconfirmed.contains(&step)
    }
}

impl Aggregate for CallSync {
    /// Reactors record what they observed at the CRM.
    type Command = CrmSyncEvent;
    type Error = CrmError;

    fn decide(observed: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        let repeat = match observed {
            CrmSyncEvent::CrmContactResolved { .. } => state.contact_id.is_some(),
            CrmSyncEvent::CrmCallLogged { .. } => state.engagement_id.is_some(),
            CrmSyncEvent::CrmNoteAdded { .. } => state.note_id.is_some(),
            CrmSyncEvent::CrmMeetingLogged { .. } => state.meeting_id.is_some(),
            CrmSyncEvent::CrmCustomRecordCreated { .. } => state.custom_record_id.is_some(),
            CrmSyncEvent::CrmDealUpdated { deal_id, stage, .. } => {
                state.deal.as_ref() == Some(&(deal_id.clone(), stage.clone()))
            }
            CrmSyncEvent::CrmSyncSkipped { .. } => state.skipped,
            CrmSyncEvent::CrmWriteStarted { step, .. } => state.is_unconfirmed(*step),
            CrmSyncEvent::CrmContactUpdated { .. } | CrmSyncEvent::CrmSyncFailed { .. } => false,
        };
        Ok(if repeat { vec![] } else { vec![observed.clone()] })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        let confirm = |state: &mut Self, step: SyncStep| state.unconfirmed.retain(|s| *s != step);
        match event {
            CrmSyncEvent::CrmWriteStarted { step, .. } => self.unconfirmed.push(*step),
            CrmSyncEvent::CrmContactResolved { contact_id, .. } => {
                self.contact_id = Some(contact_id.clone());
                confirm(&mut self, SyncStep::ResolveContact);
            }
            CrmSyncEvent::CrmCallLogged { engagement_id, .. } => {
                self.engagement_id = Some(engagement_id.clone());
                confirm(&mut self, SyncStep::LogCall);
            }
            CrmSyncEvent::CrmMeetingLogged { meeting_id, .. } => {
                self.meeting_id = Some(meeting_id.clone());
                confirm(&mut self, SyncStep::LogMeeting);
            }
            CrmSyncEvent::CrmCustomRecordCreated { record_id, .. } => {
                self.custom_record_id = Some(record_id.clone());
                confirm(&mut self, SyncStep::WriteCustomRecord);
            }
            CrmSyncEvent::CrmNoteAdded { note_id, .. } => {
                self.note_id = Some(note_id.clone());
                confirm(&mut self, SyncStep::AddNote);
            }
            CrmSyncEvent::CrmDealUpdated { deal_id, stage, .. } => {
                self.deal = Some((deal_id.clone(), stage.clone()));
                confirm(&mut self, SyncStep::UpdateDeal);
            }
            CrmSyncEvent::CrmContactUpdated { .. } => {
                self.contact_updated = true;
                confirm(&mut self, SyncStep::UpdateContact);
            }
            CrmSyncEvent::CrmSyncSkipped { .. } => self.skipped = true,
            CrmSyncEvent::CrmSyncFailed { retry_at, .. } => {
                self.failures += 1;
                self.given_up = retry_at.is_none();
            }
        }
        self
    }
}

// ---------------------------------------------------------------------------
// Our copy of a contact, kept from the CRM's webhooks.

domain_events! {
    pub enum CrmContactEvent for CrmContactRecord in "crm-contact" {
        /// Properties of a contact changed at the CRM (HubSpot's `contact.propertyChange`), each newer than
        /// what we held for it. Payload: provider, contactId, properties (name → new value, empty when cleared),
        /// occurredAt (when the CRM says it changed), eventId (the CRM's id of the notification; orders changes
        /// of the same millisecond).
        #[version(1)]
        CrmContactChanged {
            provider: CrmProvider,
            contact_id: String,
            properties: BTreeMap<String, String>,
            occurred_at: DateTime<Utc>,
            event_id: i64,
        },
        /// The contact is gone at the CRM (deleted, erased for privacy, or merged into another): nothing is
        /// written to it any more. Payload: provider, contactId, occurredAt.
        #[version(1)]
        CrmContactDeleted { provider: CrmProvider, contact_id: String, occurred_at: DateTime<Utc> },
    }
}

/// One contact as the CRM's notifications describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrmContactRecord {
    pub properties: BTreeMap<String, String>,
    /// When each property last changed, and the notification that said so.
    pub changed: BTreeMap<String, (DateTime<Utc>, i64)>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl CrmContactRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

impl Aggregate for CrmContactRecord {
    /// The webhook intake records what the CRM reported.
    type Command = CrmContactEvent;
    type Error = CrmError;

    /// CRMs deliver at least once and in no particular order: a property
    /// change is kept only where it is newer than the one we hold (a
    /// redelivery is not), and nothing follows a deletion (HubSpot ids are
    /// never reused, and a late change of a deleted contact is stale).
    fn decide(reported: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        if state.is_deleted() {
            return Ok(vec![]);
        }
        Ok(match reported {
            CrmContactEvent::CrmContactChanged {
                provider,
                contact_id,
                properties,
                occurred_at,
                event_id,
            } => {
                let newer: BTreeMap<String, String> = properties
                    .iter()
                    .filter(|(name, _)| {
                        state
                            .changed
                            .get(*name)
                            .is_none_or(|held| *held < (*occurred_at, *event_id))
                    })
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                if newer.is_empty() {
                    vec![]
                } else {
                    vec![CrmContactEvent::CrmContactChanged {
                        provider: *provider,
                        contact_id: contact_id.clone(),
                        properties: newer,
                        occurred_at: *occurred_at,
                        event_id: *event_id,
                    }]
                }
            }
            CrmContactEvent::CrmContactDeleted { .. } => vec![reported.clone()],
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            CrmContactEvent::CrmContactChanged {
                properties,
                occurred_at,
                event_id,
                ..
            } => {
                for (name, value) in properties {
                    self.properties.insert(name.clone(), value.clone());
                    self.changed.insert(name.clone(), (*occurred_at, *event_id));
                }
            }
            CrmContactEvent::CrmContactDeleted { occurred_at, .. } => self.deleted_at = Some(*occurred_at),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::{given, given_state};

    fn at() -> DateTime<Utc> {
        "2026-03-02T13:00:00Z".parse().unwrap()
    }

    /// Salesforce connected by user 7 of organization 1.
    fn salesforce_connected() -> CrmEvent {
        CrmEvent::CrmConnected {
            sign_in: SignIn {
                organization_id: Uuid::from_u128(1),
                connected_by: Uuid::from_u128(7),
                provider: CrmProvider::Salesforce,
            },
            account_id: "00D".into(),
            scopes: vec![],
            settings: CrmSettings::defaults_for(CrmProvider::Salesforce),
            at: at(),
        }
    }

    #[test]
    fn a_backfill_runs_one_at_a_time_records_its_job_once_and_widens_what_the_crm_takes() {
        let user = Uuid::from_u128(7);
        let connected = salesforce_connected();
        let since = at() - chrono::Duration::days(90);
        let requested = CrmEvent::CrmBackfillRequested {
            since,
            requested_by: user,
            at: at(),
        };
        let before = given::<CrmIntegration>([connected.clone()]).state;
        assert!(!before.takes_call_ended_at(at() - chrono::Duration::days(1)));
        let running = given::<CrmIntegration>([connected.clone()])
            .when(CrmCommand::RequestBackfill {
                since,
                requested_by: user,
                now: at(),
            })
            .then([requested.clone()]);
        assert!(running.takes_call_ended_at(at() - chrono::Duration::days(1)));
        assert!(!running.takes_call_ended_at(since - chrono::Duration::days(1)));
        given::<CrmIntegration>([connected.clone(), requested.clone()])
            .when(CrmCommand::RequestBackfill {
                since,
                requested_by: user,
                now: at(),
            })
            .then_error(CrmError::BackfillRunning);
        let job = CrmEvent::CrmBackfillJobStarted {
            job_id: "750R0000000".into(),
            calls: 250,
            at: at(),
        };
        given::<CrmIntegration>([connected.clone(), requested.clone(), job.clone()])
            .when(CrmCommand::RecordBackfillJob {
                job_id: "750R0000001".into(),
                calls: 250,
                now: at(),
            })
            .then([]);
        let finished = given::<CrmIntegration>([connected, requested, job])
            .when(CrmCommand::FinishBackfill {
                logged: 248,
                refused: 2,
                queued: 250,
                failure: None,
                now: at(),
            })
            .state_after();
        assert_eq!(finished.backfill, None);
        assert!(
            finished.takes_call_ended_at(at() - chrono::Duration::days(1)),
            "the backfilled calls stay the CRM's"
        );
    }

    #[test]
    fn a_catch_up_holds_the_calls_since_the_connection_until_planned_then_the_bulk_covers_them() {
        let connected = salesforce_connected();
        let later = at() + chrono::Duration::hours(2);
        let waiting = given::<CrmIntegration>([connected.clone()])
            .when(CrmCommand::RequestCatchUp { now: later })
            .then([CrmEvent::CrmCatchUpRequested { at: later }]);
        assert!(
            waiting.backfill_plan_covers(later + chrono::Duration::hours(5)),
            "open until planned"
        );
        assert!(!waiting.backfill_plan_covers(at() - chrono::Duration::minutes(1)));
        given::<CrmIntegration>([connected.clone(), CrmEvent::CrmCatchUpRequested { at: later }])
            .when(CrmCommand::RequestCatchUp { now: later })
            .then([]);
        let planned_at = at() + chrono::Duration::days(1);
        let resolving = given::<CrmIntegration>([
            connected,
            CrmEvent::CrmCatchUpRequested { at: later },
            CrmEvent::CrmBackfillResolving {
                calls: 250,
                at: planned_at,
            },
        ])
        .state;
        assert!(resolving.bulk_backfill_covers(later));
        assert!(
            !resolving.bulk_backfill_covers(planned_at),
            "calls after the plan go call by call"
        );
        assert!(!resolving.backfill_plan_covers(later));
    }

    fn ended(outcome: Option<Outcome>) -> CallToSync {
        CallToSync {
            ended: true,
            has_customer_number: true,
            has_transcript: true,
            outcome,
            booked_meeting: false,
        }
    }

    fn changed(properties: &[(&str, &str)], at_minute: u32, event_id: i64) -> CrmContactEvent {
        CrmContactEvent::CrmContactChanged {
            provider: CrmProvider::Hubspot,
            contact_id: "501".into(),
            properties: properties
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            occurred_at: at() + chrono::Duration::minutes(at_minute.into()),
            event_id,
        }
    }

    #[test]
    fn a_contact_change_is_kept_once_and_only_when_newer() {
        let first = changed(&[("firstname", "Ann")], 1, 10);
        given::<CrmContactRecord>([]).when(first.clone()).then([first.clone()]);
        // A redelivery records nothing.
        given::<CrmContactRecord>([first.clone()])
            .when(first.clone())
            .then_nothing();
        // An older change delivered late loses to the newer one we hold; its other properties are kept.
        let late = changed(&[("firstname", "Anne"), ("company", "Acme")], 0, 9);
        given::<CrmContactRecord>([first.clone()])
            .when(late)
            .then([changed(&[("company", "Acme")], 0, 9)]);
        // In the same millisecond, the CRM's event id orders the changes.
        given::<CrmContactRecord>([first.clone()])
            .when(changed(&[("firstname", "Annie")], 1, 9))
            .then_nothing();
        let next = changed(&[("firstname", "Annie")], 1, 11);
        let state = given::<CrmContactRecord>([first]).when(next.clone()).then([next]);
        assert_eq!(state.properties["firstname"], "Annie");
        assert!(!state.is_deleted());
    }

    #[test]
    fn nothing_follows_a_contacts_deletion() {
        let deleted = CrmContactEvent::CrmContactDeleted {
            provider: CrmProvider::Hubspot,
            contact_id: "501".into(),
            occurred_at: at(),
        };
        let first = changed(&[("firstname", "Ann")], 0, 1);
        let state = given::<CrmContactRecord>([first])
            .when(deleted.clone())
            .then([deleted.clone()]);
        assert!(state.is_deleted());
        // A redelivered deletion.
        let state = given_state(state).when(deleted).then_nothing();
        given_state(state)
            .when(changed(&[("firstname", "Bo")], 5, 2))
            .then_nothing();
    }

    #[test]
    fn what_the_crm_did_for_a_call_is_recorded_once() {
        let logged = CrmSyncEvent::CrmCallLogged {
            provider: CrmProvider::Hubspot,
            call_id: Uuid::nil(),
            engagement_id: "9".into(),
            at: at(),
        };
        given::<CallSync>([]).when(logged.clone()).then([logged.clone()]);
        given::<CallSync>([logged.clone()]).when(logged).then_nothing();
    }

    #[test]
    fn a_call_syncs_contact_then_call_then_note_then_deal_once_each() {
        let settings = CrmSettings::defaults_for(CrmProvider::Hubspot);
        let call = ended(Some(Outcome::Qualified));
        let mut sync = CallSync::default();
        assert_eq!(sync.next_step(&ended(None), &settings), Some(SyncStep::ResolveContact));
        assert_eq!(sync.next_step(&CallToSync::default(), &settings), None, "not ended yet");
        let h = CrmProvider::Hubspot;
        sync = given_state(sync)
            .when(CrmSyncEvent::CrmWriteStarted {
                step: SyncStep::ResolveContact,
                at: at(),
            })
            .state_after();
        assert!(sync.is_unconfirmed(SyncStep::ResolveContact));
        sync = given_state(sync)
            .when(CrmSyncEvent::CrmContactResolved {
                provider: h,
                call_id: Uuid::nil(),
                contact_id: "51".into(),
                created: true,
                at: at(),
            })
            .state_after();
        assert!(!sync.is_unconfirmed(SyncStep::ResolveContact));
        assert_eq!(sync.next_step(&call, &settings), Some(SyncStep::LogCall));
        sync = given_state(sync)
            .when(CrmSyncEvent::CrmCallLogged {
                provider: h,
                call_id: Uuid::nil(),
                engagement_id: "9".into(),
                at: at(),
            })
            .state_after();
        assert_eq!(sync.next_step(&call, &settings), Some(SyncStep::AddNote));
        sync = given_state(sync)
            .when(CrmSyncEvent::CrmNoteAdded {
                provider: h,
                call_id: Uuid::nil(),
                note_id: "7".into(),
                at: at(),
            })
            .state_after();
        assert_eq!(sync.next_step(&call, &settings), Some(SyncStep::UpdateDeal));
        let deal = CrmSyncEvent::CrmDealUpdated {
            provider: h,
            call_id: Uuid::nil(),
            deal_id: "3".into(),
            stage: "qualifiedtobuy".into(),
            created: true,
            at: at(),
        };
        sync = given_state(sync).when(deal.clone()).state_after();
        assert_eq!(sync.next_step(&call, &settings), None);
        // A recorded result is not recorded twice.
        let sync = given_state(sync).when(deal).then_nothing();
        // A later appointment moves the same deal on.
        assert_eq!(
            sync.next_step(&ended(Some(Outcome::Appointment)), &settings),
            Some(SyncStep::UpdateDeal)
        );
        // A call that booked a meeting logs it before the deal moves.
        let booked = CallToSync {
            booked_meeting: true,
            ..ended(Some(Outcome::Appointment))
        };
        assert_eq!(sync.next_step(&booked, &settings), Some(SyncStep::LogMeeting));
        // Not interested sets the contact's lead status.
        assert_eq!(
            sync.next_step(&ended(Some(Outcome::NotInterested)), &settings),
            Some(SyncStep::UpdateContact)
        );
    }

    #[test]
    fn a_custom_record_is_written_once_after_the_call_and_before_the_deal() {
        let mut settings = CrmSettings::defaults_for(CrmProvider::Salesforce);
        settings.custom_record = Some(CustomRecordMapping {
            object: "VoxReach_Call__c".into(),
            fields: BTreeMap::from([(CallField::Sentiment, "Sentiment__c".into())]),
        });
        assert_eq!(settings.validate(), Ok(()));
        let call = ended(Some(Outcome::Qualified));
        let s = CrmProvider::Salesforce;
        let mut sync = CallSync {
            contact_id: Some("003".into()),
            engagement_id: Some("00T".into()),
            note_id: Some("002".into()),
            ..CallSync::default()
        };
        assert_eq!(sync.next_step(&call, &settings), Some(SyncStep::WriteCustomRecord));
        let created = CrmSyncEvent::CrmCustomRecordCreated {
            provider: s,
            call_id: Uuid::nil(),
            object: "VoxReach_Call__c".into(),
            record_id: "a005e".into(),
            at: at(),
        };
        sync = given_state(sync).when(created.clone()).state_after();
        assert_eq!(sync.next_step(&call, &settings), Some(SyncStep::UpdateDeal));
        // Written once.
        given_state(sync).when(created).then_nothing();
        let mut unmapped = settings.clone();
        unmapped.custom_record.as_mut().unwrap().fields.clear();
        assert_eq!(
            unmapped.validate(),
            Err(invalid("customRecord.fields", "must map at least one field"))
        );
    }

    #[test]
    fn settings_default_per_provider_and_refuse_empty_names() {
        for field in [
            CallField::ContactName,
            CallField::Company,
            CallField::Email,
            CallField::Sentiment,
            CallField::Outcome,
            CallField::Summary,
        ] {
            assert_eq!(
                serde_json::to_value(field).unwrap(),
                field.key(),
                "the settings' key is the JSON one"
            );
        }
        let hubspot = CrmSettings::defaults_for(CrmProvider::Hubspot);
        assert_eq!(hubspot.stage_mapping.stage_for(Outcome::Sale), Some("closedwon"));
        assert_eq!(
            CrmSettings::defaults_for(CrmProvider::Salesforce)
                .stage_mapping
                .qualified,
            "Qualification"
        );
        let mut bad = hubspot.clone();
        bad.field_mappings.insert(CallField::Company, " ".into());
        assert!(matches!(bad.validate(), Err(CrmError::Invalid { field, .. }) if field == "fieldMappings.company"));
        let json = serde_json::to_value(&hubspot).unwrap();
        assert_eq!(json["stageMapping"]["appointment"], "appointmentscheduled");
        assert_eq!(json["autoCreateContacts"], true);
    }

    #[test]
    fn connecting_again_replaces_the_connection_and_keeps_the_settings() {
        let connect = |account: &str| CrmCommand::Connect {
            sign_in: SignIn {
                organization_id: Uuid::from_u128(1),
                connected_by: Uuid::from_u128(2),
                provider: CrmProvider::Hubspot,
            },
            account_id: account.into(),
            scopes: vec!["crm.objects.contacts.write".into()],
            now: at(),
        };
        let fold = |state: CrmIntegration, command: &CrmCommand| given_state(state).when(command.clone()).state_after();
        let state = fold(CrmIntegration::default(), &connect("111"));
        let mut settings = state.settings.clone().unwrap();
        settings.auto_create_contacts = false;
        let state = fold(
            state,
            &CrmCommand::ChangeSettings {
                settings: settings.clone(),
                now: at(),
            },
        );
        let state = fold(
            state,
            &CrmCommand::MarkNeedsReauth {
                reason: "invalid_grant".into(),
                now: at(),
            },
        );
        assert!(!state.syncs_at(at()));
        let state = fold(state, &connect("222"));
        assert_eq!(state.account_id, "222");
        assert_eq!(state.settings, Some(settings));
        assert!(state.syncs_at(at()));
        let later = at() + chrono::Duration::hours(3);
        let state = fold(
            state,
            &CrmCommand::Throttle {
                until: later,
                now: at(),
            },
        );
        assert!(!state.syncs_at(at()) && state.syncs_at(later));
    }
}
