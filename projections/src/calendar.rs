//! Calendars as the API shows them: connected integrations
//! (`GET /api/integrations/calendars`) and appointments (`GET /api/appointments`).

use crate::rows::{self, stream_uuid, text_enum};
use crate::runtime::ReadModel;
use application::calendar::{AppointmentFilter, AppointmentView, CalendarDirectory, CalendarIntegrationView};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calendar::{
    calendly_booking_id, AppointmentStatus, BookingEvent, CalendarEvent, CalendarProvider, CalendarSettings,
    CalendarStatus,
};
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A row of the `calendar_integrations` table.
#[derive(Serialize, Deserialize)]
struct IntegrationRow {
    id: Uuid,
    organization_id: Uuid,
    provider: CalendarProvider,
    account: String,
    status: CalendarStatus,
    status_reason: Option<String>,
    settings: CalendarSettings,
    connected_by: Uuid,
    connected_at: DateTime<Utc>,
    disconnected: bool,
}

fn evolve_integration(row: &mut Option<IntegrationRow>, id: Uuid, event: CalendarEvent) {
    match event {
        CalendarEvent::CalendarConnected {
            sign_in,
            account,
            settings,
            at,
            ..
        } => {
            *row = Some(IntegrationRow {
                id,
                organization_id: sign_in.organization_id,
                provider: sign_in.provider,
                account,
                status: CalendarStatus::Active,
                status_reason: None,
                settings,
                connected_by: sign_in.connected_by,
                connected_at: at,
                disconnected: false,
            })
        }
        CalendarEvent::CalendarSignInFailed { sign_in, reason, at } => {
            *row = Some(IntegrationRow {
                id,
                organization_id: sign_in.organization_id,
                provider: sign_in.provider,
                account: String::new(),
                status: CalendarStatus::Error,
                status_reason: Some(reason),
                settings: CalendarSettings::default(),
                connected_by: sign_in.connected_by,
                connected_at: at,
                disconnected: false,
            })
        }
        CalendarEvent::CalendarSettingsChanged { settings, .. } => {
            if let Some(row) = row {
                row.settings = settings;
            }
        }
        CalendarEvent::CalendarNeedsReauth { reason, .. } => {
            if let Some(row) = row {
                row.status = CalendarStatus::NeedsReauth;
                row.status_reason = Some(reason);
            }
        }
        CalendarEvent::CalendarDisconnected { .. } => {
            if let Some(row) = row {
                row.disconnected = true;
            }
        }
    }
}

pub struct CalendarIntegrationsProjection;

#[async_trait]
impl ReadModel for CalendarIntegrationsProjection {
    fn name(&self) -> &'static str {
        "calendar_integrations"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["calendar-integration"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["calendar_integrations"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("calendar_integrations.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let changes = rows::of_stream_type::<CalendarEvent>(events, "calendar-integration")?;
        rows::evolve_batch(conn, "calendar_integrations", changes, evolve_integration).await
    }
}

/// A row of the `appointments` table.
#[derive(Serialize, Deserialize)]
struct AppointmentRow {
    id: Uuid,
    organization_id: Uuid,
    integration_id: Uuid,
    agent_id: Option<Uuid>,
    call_id: Option<Uuid>,
    status: AppointmentStatus,
    title: String,
    attendee_name: String,
    attendee_email: Option<String>,
    attendee_phone: Option<String>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    meeting_link: Option<String>,
    provider_event_id: Option<String>,
    rescheduled_from: Option<Uuid>,
    updated_at: DateTime<Utc>,
}

/// The appointment an event is about.
fn appointment_id(event: &BookingEvent) -> Uuid {
    match event {
        BookingEvent::AppointmentSlotHeld { booking_id, .. }
        | BookingEvent::AppointmentBooked { booking_id, .. }
        | BookingEvent::AppointmentSlotReleased { booking_id, .. }
        | BookingEvent::CalendlyInviteeScheduled { booking_id, .. }
        | BookingEvent::CalendlyInviteeCanceled { booking_id, .. } => *booking_id,
    }
}

fn evolve_appointment(row: &mut Option<AppointmentRow>, key: (Uuid, Uuid, Uuid), event: BookingEvent) {
    let (id, organization_id, integration_id) = key;
    match event {
        BookingEvent::AppointmentSlotHeld {
            agent_id,
            call_id,
            title,
            attendee,
            start,
            end,
            at,
            ..
        } => {
            *row = Some(AppointmentRow {
                id,
                organization_id,
                integration_id,
                agent_id,
                call_id,
                status: AppointmentStatus::Pending,
                title,
                attendee_name: attendee.name,
                attendee_email: attendee.email.map(String::from),
                attendee_phone: attendee.phone.map(|p| p.as_str().to_owned()),
                start_at: start,
                end_at: end,
                meeting_link: None,
                provider_event_id: None,
                rescheduled_from: None,
                updated_at: at,
            })
        }
        BookingEvent::CalendlyInviteeScheduled {
            invitee_uri,
            name,
            email,
            start,
            end,
            rescheduled_from,
            at,
            ..
        } => {
            *row = Some(AppointmentRow {
                id,
                organization_id,
                integration_id,
                agent_id: None,
                call_id: None,
                status: AppointmentStatus::Booked,
                title: format!("Calendly: {name}"),
                attendee_name: name,
                attendee_email: email,
                attendee_phone: None,
                start_at: start,
                end_at: end,
                meeting_link: None,
                provider_event_id: Some(invitee_uri),
                rescheduled_from: rescheduled_from.as_deref().map(calendly_booking_id),
                updated_at: at,
            })
        }
        BookingEvent::AppointmentBooked {
            provider_event_id,
            meeting_link,
            at,
            ..
        } => {
            if let Some(row) = row {
                row.status = AppointmentStatus::Booked;
                row.provider_event_id = Some(provider_event_id);
                row.meeting_link = meeting_link;
                row.updated_at = at;
            }
        }
        BookingEvent::AppointmentSlotReleased { at, .. } => {
            if let Some(row) = row {
                row.status = AppointmentStatus::Released;
                row.updated_at = at;
            }
        }
        BookingEvent::CalendlyInviteeCanceled { rescheduled, at, .. } => {
            if let Some(row) = row {
                row.status = if rescheduled {
                    AppointmentStatus::Rescheduled
                } else {
                    AppointmentStatus::Canceled
                };
                row.updated_at = at;
            }
        }
    }
}

pub struct AppointmentsProjection;

#[async_trait]
impl ReadModel for AppointmentsProjection {
    fn name(&self) -> &'static str {
        "appointments"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["calendar-bookings"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["appointments"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("appointments.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut changes = Vec::with_capacity(events.len());
        for event in events.iter().filter(|e| e.stream_type == "calendar-bookings") {
            let decoded = rows::decode::<BookingEvent>(event)?;
            let key = (appointment_id(&decoded), event.organization_id, stream_uuid(event)?);
            changes.push((key.0, (key, decoded)));
        }
        rows::evolve_batch(conn, "appointments", changes, |row, _, (key, event)| {
            evolve_appointment(row, key, event)
        })
        .await
    }
}

#[derive(Clone)]
pub struct PgCalendarDirectory {
    pool: PgPool,
}

impl PgCalendarDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl CalendarDirectory for PgCalendarDirectory {
    async fn integrations(&self, organization_id: Uuid) -> Result<Vec<CalendarIntegrationView>, AppError> {
        let rows = sqlx::query(
            "SELECT id, provider, account, status, status_reason, settings, connected_by, connected_at
             FROM calendar_integrations WHERE organization_id = $1 AND NOT disconnected
             ORDER BY connected_at, id",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading calendar integrations", e))?;
        rows.iter()
            .map(|r| {
                Ok(CalendarIntegrationView {
                    id: r.get("id"),
                    provider: text_enum(r.get("provider"))?,
                    account: r.get("account"),
                    status: text_enum(r.get("status"))?,
                    status_reason: r.get("status_reason"),
                    settings: r.get::<Json<CalendarSettings>, _>("settings").0,
                    connected_by: r.get("connected_by"),
                    connected_at: r.get("connected_at"),
                })
            })
            .collect()
    }

    async fn appointments(
        &self,
        organization_id: Uuid,
        filter: &AppointmentFilter,
    ) -> Result<Vec<AppointmentView>, AppError> {
        let status = filter
            .status
            .and_then(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)));
        let rows = sqlx::query(
            "SELECT id, integration_id, agent_id, call_id, status, title, attendee_name, attendee_email,
                    attendee_phone, start_at, end_at, meeting_link, provider_event_id, rescheduled_from, updated_at
             FROM appointments
             WHERE organization_id = $1
               AND ($2::uuid IS NULL OR agent_id = $2)
               AND (CASE WHEN $3::text IS NULL THEN status <> 'released' ELSE status = $3 END)
               AND ($4::timestamptz IS NULL OR start_at >= $4)
               AND ($5::timestamptz IS NULL OR start_at < $5)
               AND ($8::uuid IS NULL OR call_id = $8)
             ORDER BY start_at, id LIMIT $6 OFFSET $7",
        )
        .bind(organization_id)
        .bind(filter.agent_id)
        .bind(status)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.limit)
        .bind(filter.offset)
        .bind(filter.call_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading appointments", e))?;
        rows.iter()
            .map(|r| {
                Ok(AppointmentView {
                    id: r.get("id"),
                    integration_id: r.get("integration_id"),
                    agent_id: r.get("agent_id"),
                    call_id: r.get("call_id"),
                    status: text_enum(r.get("status"))?,
                    title: r.get("title"),
                    attendee_name: r.get("attendee_name"),
                    attendee_email: r.get("attendee_email"),
                    attendee_phone: r.get("attendee_phone"),
                    start: r.get("start_at"),
                    end: r.get("end_at"),
                    meeting_link: r.get("meeting_link"),
                    provider_event_id: r.get("provider_event_id"),
                    rescheduled_from: r.get("rescheduled_from"),
                    updated_at: r.get("updated_at"),
                })
            })
            .collect()
    }
}
