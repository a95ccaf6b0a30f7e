//! Calendars: connecting Google and Outlook (OAuth with PKCE), their settings,
//! availability checks and bookings (from the API and from agents' tools
//! during calls), and the appointment list.

use crate::aggregates::{
    execute_command, execute_decision, load_in, metadata, session_metadata, stream_of, Decided, Loaded,
};
use crate::auth::Session;
use crate::calls::record_outcome;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
pub use crate::oauth::Callback;
use crate::oauth::{
    provider_not_configured, FinishedSignIn, OAuthClient, SignInFeature, SignInFlow, TokenFailure, Tokens,
};
use crate::permissions::{authorize, Action};
use crate::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use domain::agents::Agent;
use domain::calendar::{
    parse_date, parse_time, validate_duration, AppointmentStatus, Attendee, Availability, BookingCommand,
    CalendarBookings, CalendarCommand, CalendarError, CalendarIntegration, CalendarProvider, CalendarSettings,
    CalendarStatus, ReleaseReason, SettingsPatch, Slot, Unavailable, TITLE_CHARS,
};
use domain::calls::{Call, Outcome};
use domain::time_zone::TimeZone;
use domain::Aggregate;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

mod calendly;
mod tools;
pub use calendly::{CalendlyAccount, CalendlyApi, NewSubscription};
pub use domain::calendar::CalendlyDelivery;
pub use tools::{BookAppointmentTool, CheckAvailabilityTool};

impl From<CalendarError> for AppError {
    fn from(error: CalendarError) -> Self {
        calendar_error(error)
    }
}

pub fn calendar_error(error: CalendarError) -> AppError {
    match error {
        CalendarError::Invalid { field, reason } => {
            AppError::validation(field, format!("{field} is invalid: {reason}"))
        }
        CalendarError::NotFound => AppError::not_found("calendar integration"),
        CalendarError::Disconnected => AppError::new(
            ErrorKind::Conflict,
            "calendar_disconnected",
            "the calendar integration is disconnected",
        ),
        CalendarError::SlotTaken => AppError::new(ErrorKind::Conflict, "slot_taken", "the slot is no longer free"),
        CalendarError::BookingNotFound => AppError::not_found("booking"),
    }
}

/// A calendar as the provider's API needs to address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRef {
    /// The signed-in account (an e-mail address).
    pub account: String,
    /// The provider's calendar id; the account's primary calendar when `None`.
    pub calendar_id: Option<String>,
    /// The calendar's zone, for the times the provider shows.
    pub zone: TimeZone,
}

/// An event to create for a booking, and the calendar to create it in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCalendarEvent {
    pub calendar: CalendarRef,
    /// Our booking id: the provider's idempotency key is derived from it, so a
    /// retried insert never creates a second event.
    pub booking_id: Uuid,
    pub title: String,
    pub description: String,
    pub slot: Slot,
    pub attendee: Attendee,
    pub add_video_link: bool,
}

/// What the provider created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEvent {
    pub provider_event_id: String,
    /// The video meeting's link, when asked for and ready.
    pub meeting_link: Option<String>,
}

/// One calendar provider's API, called with an account's access token.
#[async_trait]
pub trait CalendarApi: Send + Sync {
    /// The account the token belongs to (its e-mail address).
    async fn account(&self, access_token: &str) -> Result<String, ProviderError>;
    /// Busy periods of the calendar within `range`.
    async fn busy(&self, access_token: &str, calendar: &CalendarRef, range: Slot) -> Result<Vec<Slot>, ProviderError>;
    /// Creates the event in its calendar.
    async fn create_event(&self, access_token: &str, event: &NewCalendarEvent) -> Result<CreatedEvent, ProviderError>;
    /// Revokes the grant at the provider; `false` when it has no revoke endpoint.
    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError>;
}

/// A configured provider: its sign-in and its API.
#[derive(Clone)]
pub struct CalendarConnector {
    pub oauth: Arc<dyn OAuthClient>,
    pub api: Arc<dyn CalendarApi>,
}

/// The providers this deployment is configured for.
#[derive(Clone, Default)]
pub struct CalendarProviders {
    pub google: Option<CalendarConnector>,
    pub outlook: Option<CalendarConnector>,
    pub calendly: Option<Arc<dyn CalendlyApi>>,
}

impl CalendarProviders {
    fn get(&self, provider: CalendarProvider) -> Result<&CalendarConnector, AppError> {
        let configured = match provider {
            CalendarProvider::Google => self.google.as_ref(),
            CalendarProvider::Outlook => self.outlook.as_ref(),
            CalendarProvider::Calendly => None,
        };
        configured.ok_or_else(|| provider_not_configured(format_args!("{provider} calendars")))
    }
}

crate::oauth::oauth_integration!(
    CalendarIntegration,
    CalendarCommand,
    CalendarError,
    CalendarProvider,
    "calendar",
    &[CalendarProvider::Google, CalendarProvider::Outlook]
);

/// A connected calendar as the API shows it: never its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarIntegrationView {
    pub id: Uuid,
    pub provider: CalendarProvider,
    /// The connected account (e-mail address or Calendly user).
    pub account: String,
    pub status: CalendarStatus,
    pub status_reason: Option<String>,
    #[serde(flatten)]
    pub settings: CalendarSettings,
    pub connected_by: Uuid,
    pub connected_at: DateTime<Utc>,
}

/// A booked (or canceled) meeting as the appointment list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentView {
    pub id: Uuid,
    pub integration_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
    pub status: AppointmentStatus,
    pub title: String,
    pub attendee_name: String,
    pub attendee_email: Option<String>,
    pub attendee_phone: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub meeting_link: Option<String>,
    pub provider_event_id: Option<String>,
    /// For a Calendly reschedule: the appointment this one replaces.
    pub rescheduled_from: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of the appointment list; soonest first.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub agent_id: Option<Uuid>,
    /// The appointments a call booked.
    pub call_id: Option<Uuid>,
    /// Every status but `released` when absent.
    pub status: Option<AppointmentStatus>,
    /// Appointments starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Appointments starting before.
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// The calendar read models.
#[async_trait]
pub trait CalendarDirectory: Send + Sync {
    async fn integrations(&self, organization_id: Uuid) -> Result<Vec<CalendarIntegrationView>, AppError>;
    async fn appointments(
        &self,
        organization_id: Uuid,
        filter: &AppointmentFilter,
    ) -> Result<Vec<AppointmentView>, AppError>;
}

/// A slot as answered: RFC 3339 in the calendar's offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    #[schema(value_type = String, format = DateTime)]
    pub start: DateTime<FixedOffset>,
    #[schema(value_type = String, format = DateTime)]
    pub end: DateTime<FixedOffset>,
}

/// The answer to an availability check.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityView {
    pub available: bool,
    pub slot: SlotView,
    /// Why not, when not available.
    pub reason: Option<Unavailable>,
    /// The next free slots, when the asked one is not free.
    pub alternatives: Vec<SlotView>,
    pub integration_id: Uuid,
    /// The calendar's zone, which every time above is shown in.
    pub timezone: TimeZone,
}

/// The answer to a booking.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    pub booked: bool,
    /// The appointment, when booked.
    pub appointment_id: Option<Uuid>,
    pub slot: SlotView,
    pub meeting_link: Option<String>,
    pub provider_event_id: Option<String>,
    /// Why not, when not booked.
    pub reason: Option<Unavailable>,
    /// The next free slots, when not booked.
    pub alternatives: Vec<SlotView>,
    pub integration_id: Uuid,
    pub timezone: TimeZone,
}

/// A slot asked for, as the API and the tools receive it (unparsed).
#[derive(Debug, Clone, Default)]
pub struct SlotRequest {
    pub agent_id: Option<Uuid>,
    pub date: String,
    pub time: String,
    /// Minutes; the calendar's default when absent.
    pub duration: Option<i64>,
    /// The zone `date` and `time` are in; the calendar's when absent.
    pub timezone: Option<String>,
}

/// A booking asked for.
#[derive(Debug, Clone, Default)]
pub struct BookingRequest {
    pub slot: SlotRequest,
    pub title: Option<String>,
    pub attendee_name: String,
    pub attendee_email: Option<String>,
    pub attendee_phone: Option<String>,
    pub add_video_link: bool,
    pub call_id: Option<Uuid>,
}

/// The result of connecting, shown to the user after the provider's redirect.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResult {
    pub connected: bool,
    pub provider: CalendarProvider,
    pub integration_id: Uuid,
    /// The provider's error code when the user or provider refused (`access_denied`…).
    pub error: Option<String>,
}

fn vault_owner(integration_id: Uuid) -> String {
    format!("calendar:{integration_id}")
}

/// Where a Calendly integration's webhook signing key is kept.
fn signing_key_owner(integration_id: Uuid) -> String {
    format!("calendly-signing-key:{integration_id}")
}

fn provider_failure(error: ProviderError) -> AppError {
    let (kind, code, message) = match error {
        ProviderError::RateLimited { retry_after } => (
            ErrorKind::TooManyRequests {
                retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(30)),
            },
            "calendar_rate_limited",
            "the calendar provider is rate limiting us; try again shortly",
        ),
        ProviderError::Unauthorized => (
            ErrorKind::Conflict,
            "calendar_needs_reauth",
            "the calendar provider no longer accepts our access; connect the calendar again",
        ),
        _ => (
            ErrorKind::Unavailable,
            "calendar_unavailable",
            "the calendar provider did not answer as expected; try again shortly",
        ),
    };
    AppError::new(kind, code, message).caused_by(error)
}

fn needs_reauth() -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "calendar_needs_reauth",
        "the calendar provider no longer accepts our access; connect the calendar again",
    )
}

/// A calendar chosen for a request, with its authoritative state.
struct Chosen {
    id: Uuid,
    integration: Loaded<CalendarIntegration>,
}

impl Chosen {
    fn provider(&self) -> CalendarProvider {
        self.integration
            .state
            .connection
            .provider
            .unwrap_or(CalendarProvider::Google)
    }

    fn settings(&self) -> &CalendarSettings {
        &self.integration.state.settings
    }

    fn reference(&self) -> CalendarRef {
        CalendarRef {
            account: self.integration.state.account.clone(),
            calendar_id: self.settings().calendar_id.clone(),
            zone: self.settings().timezone,
        }
    }

    fn view(&self, slot: &Slot) -> SlotView {
        let zone = self.settings().timezone.tz();
        SlotView {
            start: slot.start.with_timezone(&zone).fixed_offset(),
            end: slot.end.with_timezone(&zone).fixed_offset(),
        }
    }
}

/// A slot request, parsed and checked against the calendar.
struct ParsedSlot {
    slot: Slot,
}

/// The calendar an agent books into, among the organization's: one naming
/// the agent, else the default, else the only one agents can book directly.
pub fn calendar_of_agent(
    integrations: &[CalendarIntegrationView],
    agent_id: Option<Uuid>,
) -> Option<&CalendarIntegrationView> {
    let bookable: Vec<&CalendarIntegrationView> = integrations.iter().filter(|i| i.provider.books_directly()).collect();
    let named = agent_id.and_then(|agent| bookable.iter().find(|i| i.settings.agent_ids.contains(&agent)));
    named
        .or_else(|| bookable.iter().find(|i| i.settings.is_default))
        .or_else(|| bookable.first().filter(|_| bookable.len() == 1))
        .copied()
}

/// Whether the agent's calendar tools are on: the calendar it books into works.
/// The tools are offered only when a call to them would find a calendar that works.
pub async fn calendar_tools_on(
    directory: &dyn CalendarDirectory,
    organization_id: Uuid,
    agent_id: Uuid,
) -> Result<bool, AppError> {
    let integrations = directory.integrations(organization_id).await?;
    Ok(calendar_of_agent(&integrations, Some(agent_id))
        .is_some_and(|calendar| calendar.status == CalendarStatus::Active))
}

#[async_trait]
impl SignInFeature for CalendarService {
    type Integration = CalendarIntegration;
    type Answer = ConnectResult;

    fn sign_ins(&self) -> &SignInFlow<CalendarIntegration> {
        &self.oauth
    }

    fn client(&self, provider: CalendarProvider) -> Option<&dyn OAuthClient> {
        self.providers.get(provider).ok().map(|c| c.oauth.as_ref())
    }

    /// Records the calendar with the account the tokens belong to; the
    /// organization's first calendar is its default.
    async fn connect(
        &self,
        signed: &FinishedSignIn<CalendarProvider>,
        tokens: Tokens,
    ) -> Result<ConnectResult, AppError> {
        let (pending, provider) = (&signed.pending, signed.provider);
        let connector = self.providers.get(provider)?;
        let account = connector
            .api
            .account(&tokens.access_token)
            .await
            .map_err(provider_failure)?;
        let calendar_id = pending.details["calendarId"].as_str().map(str::to_owned);
        let has_default = self
            .directory
            .integrations(pending.organization_id)
            .await?
            .iter()
            .any(|i| i.settings.is_default && i.status == CalendarStatus::Active);
        let settings = CalendarSettings {
            calendar_id,
            is_default: !has_default,
            ..CalendarSettings::default()
        };
        let command = CalendarCommand::Connect {
            sign_in: signed.sign_in(),
            account,
            webhook_subscription: None,
            settings,
            now: signed.now,
        };
        let owner = vault_owner(pending.integration_id);
        self.oauth.connect(pending, &owner, &tokens, &command).await?;
        Ok(connect_result(signed, None))
    }

    fn refused(signed: &FinishedSignIn<CalendarProvider>, code: String) -> ConnectResult {
        connect_result(signed, Some(code))
    }
}

/// What a sign-in came to: connected unless refused with `error`.
fn connect_result(signed: &FinishedSignIn<CalendarProvider>, error: Option<String>) -> ConnectResult {
    ConnectResult {
        connected: error.is_none(),
        provider: signed.provider,
        integration_id: signed.pending.integration_id,
        error,
    }
}

pub struct CalendarService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub providers: CalendarProviders,
    /// Sign-ins with Google and Outlook, and the tokens of every calendar.
    pub oauth: SignInFlow<CalendarIntegration>,
    pub directory: Arc<dyn CalendarDirectory>,
    /// Random secrets (Calendly signing keys).
    pub secrets: Arc<dyn crate::auth::SecretTokens>,
    /// `VOXREACH_PUBLIC_URL`, where Calendly delivers.
    pub public_url: String,
}

impl CalendarService {
    /// Starts connecting Google or Outlook: the provider's authorization URL.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn start_connect(
        &self,
        caller: &Session,
        provider: CalendarProvider,
        calendar_id: Option<String>,
    ) -> Result<String, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        let connector = self.providers.get(provider)?;
        if let Some(id) = &calendar_id {
            SettingsPatch {
                calendar_id: Some(id.clone()),
                ..SettingsPatch::default()
            }
            .apply(&CalendarSettings::default())?;
        }
        let details = serde_json::json!({ "calendarId": calendar_id });
        self.oauth
            .start(caller, connector.oauth.as_ref(), provider, Uuid::now_v7(), details)
            .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session) -> Result<Vec<CalendarIntegrationView>, AppError> {
        self.directory.integrations(caller.organization_id).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn appointments(
        &self,
        caller: &Session,
        filter: &AppointmentFilter,
    ) -> Result<Vec<AppointmentView>, AppError> {
        self.directory.appointments(caller.organization_id, filter).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, integration_id = %id))]
    pub async fn change_settings(
        &self,
        caller: &Session,
        id: Uuid,
        patch: SettingsPatch,
    ) -> Result<CalendarSettings, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        if let Some(agents) = &patch.agent_ids {
            for agent_id in agents {
                self.known_agent(caller.organization_id, *agent_id, "agentIds").await?;
            }
        }
        let command = CalendarCommand::ChangeSettings {
            patch,
            now: self.clock.now(),
        };
        let after = execute_command::<CalendarIntegration>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<CalendarIntegration>(id),
            &session_metadata(caller),
            &command,
        )
        .await?;
        Ok(after.state.settings)
    }

    /// Disconnects: revokes the grant at the provider where it can, forgets the tokens.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, integration_id = %id))]
    pub async fn disconnect(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        let organization_id = caller.organization_id;
        let release = |integration: CalendarIntegration, tokens: Option<Tokens>| async move {
            // A failed revocation does not keep the tokens: forgetting them is what the user asked.
            let revoked = match (tokens, integration.connection.provider) {
                (Some(tokens), Some(CalendarProvider::Calendly)) => {
                    match (&self.providers.calendly, &integration.webhook_subscription) {
                        (Some(calendly), Some(subscription)) => calendly
                            .unsubscribe(&tokens.access_token, subscription)
                            .await
                            .inspect_err(|error| tracing::warn!(error = %crate::error::report(error), "removing the Calendly subscription failed"))
                            .is_ok(),
                        _ => false,
                    }
                }
                (Some(tokens), Some(provider)) => match self.providers.get(provider) {
                    Ok(connector) => connector.api.revoke(&tokens).await.unwrap_or_else(|error| {
                        tracing::warn!(error = %crate::error::report(&error), "revoking calendar tokens at the provider failed");
                        false
                    }),
                    Err(_) => false,
                },
                _ => false,
            };
            self.oauth.vault.forget(organization_id, &signing_key_owner(id)).await?;
            Ok(revoked)
        };
        self.oauth.disconnect(caller, id, &vault_owner(id), release).await
    }

    async fn known_agent(&self, organization_id: Uuid, agent_id: Uuid, field: &str) -> Result<(), AppError> {
        let agent = load_in::<Agent>(self.store.as_ref(), organization_id, stream_of::<Agent>(agent_id)).await?;
        if agent.state.exists() {
            Ok(())
        } else {
            Err(AppError::validation(
                field,
                format!("{field}: agent {agent_id} not found"),
            ))
        }
    }

    async fn calendar_for(&self, organization_id: Uuid, agent_id: Option<Uuid>) -> Result<Chosen, AppError> {
        let integrations = self.directory.integrations(organization_id).await?;
        let chosen = calendar_of_agent(&integrations, agent_id).ok_or_else(|| {
            AppError::new(
                ErrorKind::Unprocessable,
                "no_calendar",
                "no calendar is connected for this agent; connect one under integrations",
            )
        })?;
        let id = chosen.id;
        let integration = load_in::<CalendarIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CalendarIntegration>(id),
        )
        .await?;
        if !integration.state.is_live() {
            return Err(calendar_error(CalendarError::Disconnected));
        }
        if integration.state.connection.needs_reauth() {
            return Err(needs_reauth());
        }
        Ok(Chosen { id, integration })
    }

    fn parse_slot(&self, chosen: &Chosen, request: &SlotRequest) -> Result<ParsedSlot, AppError> {
        let settings = chosen.settings();
        let date = parse_date("date", &request.date)?;
        let time = parse_time("time", &request.time)?;
        let minutes = match request.duration {
            None => settings.default_duration_minutes,
            Some(minutes) => u32::try_from(minutes).map_err(|_| {
                AppError::validation("duration", "duration is invalid: must be between 1 and 480 minutes")
            })?,
        };
        validate_duration("duration", minutes)?;
        let zone = match request.timezone.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse::<TimeZone>()
                    .map_err(|reason| AppError::validation("timezone", format!("timezone is invalid: {reason}")))?,
            ),
        };
        let today = self
            .clock
            .now()
            .with_timezone(&zone.unwrap_or(settings.timezone).tz())
            .date_naive();
        if date < today {
            return Err(AppError::validation(
                "date",
                format!("date is invalid: {date} is in the past"),
            ));
        }
        if date > today + Duration::days(i64::from(domain::calendar::MAX_HORIZON_DAYS)) {
            return Err(AppError::validation("date", "date is invalid: more than a year ahead"));
        }
        Ok(ParsedSlot {
            slot: Slot::new(settings.instant(date, time, zone), minutes),
        })
    }

    /// A usable access token: refreshed ahead of expiry (or now, after the
    /// provider refused it) by one process at a time; a refused refresh marks
    /// the integration as needing a new sign-in.
    async fn access_token(&self, organization_id: Uuid, chosen: &Chosen, force: bool) -> Result<String, AppError> {
        let connector = self.providers.get(chosen.provider())?;
        let owner = vault_owner(chosen.id);
        let fresh = self
            .oauth
            .tokens(connector.oauth.as_ref(), organization_id, chosen.id, &owner, force)
            .await?;
        match fresh {
            Ok(tokens) => Ok(tokens.access_token),
            Err(TokenFailure::Gone | TokenFailure::NeedsReauth(_)) => Err(needs_reauth()),
            Err(TokenFailure::Unavailable(reason)) => Err(provider_failure(ProviderError::Unavailable(reason))),
        }
    }

    /// Runs one provider call with a fresh token; when the provider answers
    /// 401 the token is refreshed once and the call tried again.
    async fn with_token<T, F>(&self, organization_id: Uuid, chosen: &Chosen, call: F) -> Result<T, AppError>
    where
        F: Fn(String) -> futures::future::BoxFuture<'static, Result<T, ProviderError>>,
    {
        let token = self.access_token(organization_id, chosen, false).await?;
        match call(token).await {
            Err(ProviderError::Unauthorized) => {
                let token = self.access_token(organization_id, chosen, true).await?;
                match call(token).await {
                    Err(ProviderError::Unauthorized) => {
                        self.oauth
                            .mark_needs_reauth(organization_id, chosen.id, "access refused")
                            .await?;
                        Err(needs_reauth())
                    }
                    other => other.map_err(provider_failure),
                }
            }
            other => other.map_err(provider_failure),
        }
    }

    async fn provider_busy(&self, organization_id: Uuid, chosen: &Chosen, range: Slot) -> Result<Vec<Slot>, AppError> {
        let api = self.providers.get(chosen.provider())?.api.clone();
        let calendar = chosen.reference();
        self.with_token(organization_id, chosen, move |token| {
            let api = api.clone();
            let calendar = calendar.clone();
            Box::pin(async move { api.busy(&token, &calendar, range).await })
        })
        .await
    }

    async fn bookings(&self, organization_id: Uuid, id: Uuid) -> Result<Loaded<CalendarBookings>, AppError> {
        load_in::<CalendarBookings>(self.store.as_ref(), organization_id, stream_of::<CalendarBookings>(id)).await
    }

    /// Is the slot free? From the provider's free/busy, the calendar's rules
    /// and our own bookings not yet visible at the provider.
    #[tracing::instrument(skip_all, fields(%organization_id))]
    pub async fn check_availability(
        &self,
        organization_id: Uuid,
        request: &SlotRequest,
    ) -> Result<AvailabilityView, AppError> {
        if let Some(agent_id) = request.agent_id {
            self.known_agent(organization_id, agent_id, "agentId").await?;
        }
        let chosen = self.calendar_for(organization_id, request.agent_id).await?;
        let asked = self.parse_slot(&chosen, request)?;
        let now = self.clock.now();
        let range = chosen.settings().search_range(&asked.slot, now);
        let mut busy = self.provider_busy(organization_id, &chosen, range).await?;
        busy.extend(self.bookings(organization_id, chosen.id).await?.state.occupied());
        let availability = chosen.settings().availability(asked.slot, &busy, now);
        Ok(availability_view(&chosen, &availability))
    }

    /// Books a slot: re-checked against free/busy, held in the calendar's
    /// bookings stream (so two bookings of one slot cannot both win), checked
    /// once more at the provider just before the event is created there.
    #[tracing::instrument(skip_all, fields(%organization_id))]
    pub async fn book(
        &self,
        organization_id: Uuid,
        actor: &str,
        booking_id: Uuid,
        request: &BookingRequest,
    ) -> Result<BookingView, AppError> {
        if let Some(agent_id) = request.slot.agent_id {
            self.known_agent(organization_id, agent_id, "agentId").await?;
        }
        let chosen = self.calendar_for(organization_id, request.slot.agent_id).await?;
        let asked = self.parse_slot(&chosen, &request.slot)?;
        let attendee = parse_attendee(request)?;
        let title = match request.title.as_deref().map(str::trim) {
            Some(title) if title.chars().count() > TITLE_CHARS => {
                return Err(AppError::validation(
                    "title",
                    format!("title is invalid: at most {TITLE_CHARS} characters"),
                ))
            }
            Some(title) if !title.is_empty() => title.to_owned(),
            _ => format!("Meeting with {}", attendee.name),
        };
        if let Some(call_id) = request.call_id {
            let call = load_in::<Call>(self.store.as_ref(), organization_id, stream_of::<Call>(call_id)).await?;
            if !call.exists() {
                return Err(AppError::validation("callId", "callId is invalid: no such call"));
            }
        }
        let now = self.clock.now();
        let settings = chosen.settings().clone();
        let range = settings.search_range(&asked.slot, now);
        let provider_busy = self.provider_busy(organization_id, &chosen, range).await?;
        let meta = metadata(actor, "calendar");
        let slot = asked.slot;
        let hold = BookingCommand::Hold {
            booking_id,
            agent_id: request.slot.agent_id,
            call_id: request.call_id,
            title: title.clone(),
            attendee: attendee.clone(),
            slot,
            add_video_link: request.add_video_link,
            buffer_minutes: settings.buffer_minutes,
            now,
        };
        let store = self.store.as_ref();
        let bookings_stream = stream_of::<CalendarBookings>(chosen.id);
        // Hold the slot unless it is taken; a lost race decides again on the new bookings.
        let held: Result<Loaded<CalendarBookings>, Availability> =
            execute_decision(store, organization_id, crate::aggregates::DECISION_ATTEMPTS, || {
                let stream = bookings_stream.clone();
                let (provider_busy, settings, hold, meta) = (&provider_busy, &settings, &hold, &meta);
                Box::pin(async move {
                    let loaded = load_in::<CalendarBookings>(store, organization_id, stream).await?;
                    if loaded.state.bookings.contains_key(&booking_id) {
                        // A retry of a booking already held goes on from where it stands.
                        return Ok(Decided::nothing(Ok(loaded)));
                    }
                    let mut busy = provider_busy.clone();
                    busy.extend(loaded.state.occupied());
                    let availability = settings.availability(slot, &busy, now);
                    if !availability.is_available() {
                        return Ok(Decided::nothing(Err(availability)));
                    }
                    let events = CalendarBookings::decide(hold, &loaded.state)?;
                    let appends = vec![loaded.append_of(&events, meta)];
                    let after = Loaded {
                        state: events.iter().fold(loaded.state.clone(), CalendarBookings::evolve),
                        version: loaded.version + events.len() as i64,
                        ..loaded
                    };
                    Ok(Decided::new(appends, Ok(after)))
                })
            })
            .await?;
        let held = match held {
            Ok(held) => held,
            Err(availability) => return Ok(not_booked(&chosen, &availability)),
        };
        let booking = held
            .state
            .bookings
            .get(&booking_id)
            .cloned()
            .ok_or_else(|| AppError::internal("holding a slot", "the hold is missing after it was recorded"))?;
        if booking.status != AppointmentStatus::Pending {
            return Ok(booking_view(&chosen, booking_id, &booking.slot, &booking));
        }
        // Someone may have taken the time at the provider since the first look.
        let recheck = self
            .provider_busy(organization_id, &chosen, slot.padded(settings.buffer_minutes))
            .await;
        let busy_now = self
            .released_on_failure(recheck, organization_id, chosen.id, booking_id, &meta)
            .await?;
        let padded = slot.padded(settings.buffer_minutes);
        if busy_now.iter().any(|b| b.overlaps(&padded)) {
            self.release(
                organization_id,
                chosen.id,
                booking_id,
                ReleaseReason::BusyAtProvider,
                &meta,
            )
            .await?;
            let mut busy = provider_busy;
            busy.extend(busy_now);
            busy.extend(self.bookings(organization_id, chosen.id).await?.state.occupied());
            return Ok(not_booked(&chosen, &settings.availability(slot, &busy, now)));
        }
        let event = NewCalendarEvent {
            calendar: chosen.reference(),
            booking_id,
            title,
            description: event_description(&attendee, request.call_id),
            slot,
            attendee,
            add_video_link: request.add_video_link,
        };
        let api = self.providers.get(chosen.provider())?.api.clone();
        let created = self
            .with_token(organization_id, &chosen, move |token| {
                let (api, event) = (api.clone(), event.clone());
                Box::pin(async move { api.create_event(&token, &event).await })
            })
            .await;
        let created = self
            .released_on_failure(created, organization_id, chosen.id, booking_id, &meta)
            .await?;
        let confirm = BookingCommand::Confirm {
            booking_id,
            provider_event_id: created.provider_event_id.clone(),
            meeting_link: created.meeting_link.clone(),
            now: self.clock.now(),
        };
        let confirmed = execute_command::<CalendarBookings>(
            store,
            organization_id,
            stream_of::<CalendarBookings>(chosen.id),
            &meta,
            &confirm,
        )
        .await?;
        if let Some(call_id) = request.call_id {
            record_outcome(
                store,
                self.clock.as_ref(),
                organization_id,
                call_id,
                Outcome::Appointment,
                Some(format!("Booked for {}", slot.start.to_rfc3339())),
                "calendar",
                Some(format!("calendar-booking:{booking_id}")),
            )
            .await?;
        }
        let booking = confirmed
            .state
            .bookings
            .get(&booking_id)
            .cloned()
            .ok_or_else(|| AppError::internal("confirming a booking", "the booking is missing"))?;
        Ok(booking_view(&chosen, booking_id, &slot, &booking))
    }

    /// A provider step's result; when it failed, the hold is released first
    /// so the time is free again.
    async fn released_on_failure<T>(
        &self,
        result: Result<T, AppError>,
        organization_id: Uuid,
        calendar_id: Uuid,
        booking_id: Uuid,
        meta: &domain::EventMetadata,
    ) -> Result<T, AppError> {
        if result.is_err() {
            self.release(
                organization_id,
                calendar_id,
                booking_id,
                ReleaseReason::ProviderFailed,
                meta,
            )
            .await?;
        }
        result
    }

    async fn release(
        &self,
        organization_id: Uuid,
        calendar_id: Uuid,
        booking_id: Uuid,
        reason: ReleaseReason,
        meta: &domain::EventMetadata,
    ) -> Result<(), AppError> {
        let command = BookingCommand::Release {
            booking_id,
            reason,
            now: self.clock.now(),
        };
        execute_command::<CalendarBookings>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CalendarBookings>(calendar_id),
            meta,
            &command,
        )
        .await
        .map(|_| ())
    }
}

fn parse_attendee(request: &BookingRequest) -> Result<Attendee, AppError> {
    let name = request.attendee_name.trim();
    if name.is_empty() || name.chars().count() > domain::auth::NAME_CHARS {
        return Err(AppError::validation(
            "attendeeName",
            "attendeeName is invalid: must be 1 to 200 characters",
        ));
    }
    let email =
        match request
            .attendee_email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => None,
            Some(raw) => Some(domain::auth::Email::parse(raw).map_err(|_| {
                AppError::validation("attendeeEmail", "attendeeEmail is invalid: not an e-mail address")
            })?),
        };
    let phone = match request
        .attendee_phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(raw) => Some(
            domain::phone::PhoneNumber::parse(raw)
                .map_err(|e| AppError::validation("attendeePhone", format!("attendeePhone is invalid: {e}")))?,
        ),
    };
    Ok(Attendee {
        name: name.to_owned(),
        email,
        phone,
    })
}

/// What the invite says besides the title: how to reach the attendee, and which call booked it.
fn event_description(attendee: &Attendee, call_id: Option<Uuid>) -> String {
    let mut lines = vec![format!("Attendee: {}", attendee.name)];
    if let Some(phone) = &attendee.phone {
        lines.push(format!("Phone: {phone}"));
    }
    if let Some(email) = &attendee.email {
        lines.push(format!("E-mail: {}", email.as_str()));
    }
    if let Some(call_id) = call_id {
        lines.push(format!("Booked during VoxReach call {call_id}"));
    }
    lines.join("\n")
}

fn availability_view(chosen: &Chosen, availability: &Availability) -> AvailabilityView {
    AvailabilityView {
        available: availability.is_available(),
        slot: chosen.view(&availability.slot),
        reason: availability.unavailable,
        alternatives: availability.alternatives.iter().map(|s| chosen.view(s)).collect(),
        integration_id: chosen.id,
        timezone: chosen.settings().timezone,
    }
}

fn not_booked(chosen: &Chosen, availability: &Availability) -> BookingView {
    BookingView {
        booked: false,
        appointment_id: None,
        slot: chosen.view(&availability.slot),
        meeting_link: None,
        provider_event_id: None,
        reason: availability.unavailable.or(Some(Unavailable::Busy)),
        alternatives: availability.alternatives.iter().map(|s| chosen.view(s)).collect(),
        integration_id: chosen.id,
        timezone: chosen.settings().timezone,
    }
}

fn booking_view(chosen: &Chosen, booking_id: Uuid, slot: &Slot, booking: &domain::calendar::Booking) -> BookingView {
    BookingView {
        booked: booking.status == AppointmentStatus::Booked,
        appointment_id: Some(booking_id),
        slot: chosen.view(slot),
        meeting_link: booking.meeting_link.clone(),
        provider_event_id: booking.provider_event_id.clone(),
        reason: None,
        alternatives: vec![],
        integration_id: chosen.id,
        timezone: chosen.settings().timezone,
    }
}
