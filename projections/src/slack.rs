//! Slack integrations as `GET /api/integrations/slack` shows them, and the
//! routers that turn call and calendar events into notification work.

use crate::rows::{self, stream_uuid};
use crate::runtime::{ReadModel, Subscription, WorkOrder};
use application::auth::Page;
use application::slack::{notification_key, IntegrationStatus, SlackDirectory, SlackIntegrationView, SLACK_NOTIFY};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calls::{CallEvent, CallStatus, EndedReason, Outcome};
use domain::events::DecodeError;
use domain::slack::{NotificationEvent, NotificationKind, Preferences, SlackConnection, SlackEvent};
use domain::{Checkpoint, RecordedEvent};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A row of the `slack_integrations` table.
#[derive(Serialize, Deserialize)]
struct IntegrationRow {
    id: Uuid,
    organization_id: Uuid,
    workspace_name: String,
    channel: String,
    webhook_hint: String,
    preferences: Preferences,
    broken_reason: Option<String>,
    disconnected: bool,
    notifications_sent: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    connected_transaction_id: i64,
    connected_position: i64,
}

/// An event that changes an integration's row.
enum Change {
    Integration(SlackEvent, Checkpoint),
    Notification(NotificationEvent),
}

/// One event's change to an integration's row (`None`: not connected yet).
fn evolve(row: &mut Option<IntegrationRow>, id: Uuid, change: Change) {
    if let Change::Integration(
        SlackEvent::SlackIntegrationConnected {
            connection:
                SlackConnection {
                    organization_id,
                    workspace_name,
                    channel,
                    webhook_hint,
                    preferences,
                    ..
                },
            at,
        },
        connected,
    ) = change
    {
        *row = Some(IntegrationRow {
            id,
            organization_id,
            workspace_name,
            channel,
            webhook_hint,
            preferences,
            broken_reason: None,
            disconnected: false,
            notifications_sent: 0,
            last_error: None,
            created_at: at,
            connected_transaction_id: connected.transaction_id,
            connected_position: connected.global_position,
        });
        return;
    }
    let Some(integration) = row else { return };
    match change {
        Change::Integration(event, _) => match event {
            SlackEvent::SlackIntegrationConnected { .. } => {}
            SlackEvent::SlackPreferencesUpdated { preferences, .. } => integration.preferences = preferences,
            SlackEvent::SlackIntegrationBroken { reason, .. } => integration.broken_reason = Some(reason),
            SlackEvent::SlackIntegrationDisconnected { .. } => integration.disconnected = true,
        },
        Change::Notification(NotificationEvent::SlackNotificationSent { .. }) => {
            integration.notifications_sent += 1;
            integration.last_error = None;
        }
        Change::Notification(NotificationEvent::SlackNotificationFailed { reason, .. }) => {
            integration.last_error = Some(reason);
        }
    }
}

pub struct SlackIntegrationsProjection;

#[async_trait]
impl ReadModel for SlackIntegrationsProjection {
    fn name(&self) -> &'static str {
        "slack_integrations"
    }

    fn schema_version(&self) -> i32 {
        2
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["slack-integration", "slack-notification"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["slack_integrations"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("slack_integrations.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        // Decoded first: a notification's integration is in its payload.
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            match event.stream_type.as_str() {
                "slack-integration" => {
                    let decoded = rows::decode::<SlackEvent>(event)?;
                    changes.push((stream_uuid(event)?, Change::Integration(decoded, event.checkpoint())));
                }
                "slack-notification" => {
                    let decoded = rows::decode::<NotificationEvent>(event)?;
                    let (NotificationEvent::SlackNotificationSent { integration_id, .. }
                    | NotificationEvent::SlackNotificationFailed { integration_id, .. }) = decoded;
                    changes.push((integration_id, Change::Notification(decoded)));
                }
                _ => {}
            }
        }
        rows::evolve_batch(conn, "slack_integrations", changes, evolve).await
    }
}

/// Makes a notification due for each call event worth one.
pub struct SlackRouter;

impl Subscription for SlackRouter {
    fn name(&self) -> &'static str {
        "slack_router"
    }

    fn version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> &[&'static str] {
        &["call"]
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&["CallOutcomeRecorded", "CallEnded", "CallStatusUpdated"])
    }

    /// Nothing to post without a Slack connection.
    fn only_in_organizations_with(&self) -> Option<&'static str> {
        Some("slack-integration")
    }

    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, DecodeError> {
        if event.stream_type != "call"
            || !matches!(
                event.event_type.as_str(),
                "CallOutcomeRecorded" | "CallEnded" | "CallStatusUpdated"
            )
        {
            return Ok(None);
        }
        let kind = match event.decode::<CallEvent>()? {
            CallEvent::CallOutcomeRecorded {
                outcome: Outcome::Qualified,
                ..
            } => NotificationKind::HotLead,
            CallEvent::CallOutcomeRecorded {
                outcome: Outcome::Appointment,
                ..
            } => NotificationKind::AppointmentBooked,
            CallEvent::CallEnded { report, .. }
                if report
                    .ended_reason
                    .as_ref()
                    .is_some_and(EndedReason::is_technical_failure) =>
            {
                NotificationKind::CallFailed
            }
            // Whether the customer is worth it is the reactor's question, asked when it runs.
            CallEvent::CallStatusUpdated { status, parties, .. }
                if status == CallStatus::InProgress && parties.customer_number.is_some() =>
            {
                NotificationKind::HighValueCall
            }
            _ => return Ok(None),
        };
        let Ok(call_id) = Uuid::parse_str(crate::work::stream_key(event)) else {
            return Ok(None);
        };
        Ok(Some(WorkOrder {
            reactor: SLACK_NOTIFY,
            key: notification_key(kind, call_id, event.event_id),
            organization_id: event.organization_id,
        }))
    }
}

/// Makes an alert due when a calendar needs a new sign-in. A subscription of
/// its own, so the call router keeps its version and position.
pub struct SlackCalendarRouter;

impl Subscription for SlackCalendarRouter {
    fn name(&self) -> &'static str {
        "slack_calendar_router"
    }

    fn version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> &[&'static str] {
        &["calendar-integration"]
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&["CalendarNeedsReauth"])
    }

    fn only_in_organizations_with(&self) -> Option<&'static str> {
        Some("slack-integration")
    }

    /// The calendar is the stream; the reactor reads which one it is.
    fn reads_payloads(&self) -> bool {
        false
    }

    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, DecodeError> {
        if event.stream_type != "calendar-integration" || event.event_type != "CalendarNeedsReauth" {
            return Ok(None);
        }
        let Ok(integration_id) = Uuid::parse_str(crate::work::stream_key(event)) else {
            return Ok(None);
        };
        // Keyed by the triggering event: one alert per time a calendar loses its access.
        Ok(Some(WorkOrder {
            reactor: SLACK_NOTIFY,
            key: notification_key(NotificationKind::CalendarNeedsReauth, integration_id, event.event_id),
            organization_id: event.organization_id,
        }))
    }
}

#[derive(Clone)]
pub struct PgSlackDirectory {
    pool: PgPool,
}

impl PgSlackDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn integration_view(r: &sqlx::postgres::PgRow) -> SlackIntegrationView {
    let broken: Option<String> = r.get("broken_reason");
    SlackIntegrationView {
        id: r.get("id"),
        workspace_name: r.get("workspace_name"),
        channel: r.get("channel"),
        webhook_hint: r.get("webhook_hint"),
        preferences: r.get::<Json<Preferences>, _>("preferences").0,
        status: if broken.is_some() {
            IntegrationStatus::Broken
        } else {
            IntegrationStatus::Active
        },
        broken_reason: broken,
        notifications_sent: r.get("notifications_sent"),
        last_error: r.get("last_error"),
        created_at: r.get("created_at"),
        connected_at: Checkpoint {
            transaction_id: r.get("connected_transaction_id"),
            global_position: r.get("connected_position"),
        },
    }
}

const INTEGRATION_COLUMNS: &str =
    "organization_id, id, workspace_name, channel, webhook_hint, preferences, broken_reason, \
     notifications_sent, last_error, created_at, connected_transaction_id, connected_position";

#[async_trait]
impl SlackDirectory for PgSlackDirectory {
    async fn integrations(
        &self,
        organization_id: Uuid,
        page: Option<Page>,
    ) -> Result<Vec<SlackIntegrationView>, AppError> {
        // LIMIT NULL: all of them.
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM slack_integrations
             WHERE organization_id = $1 AND NOT disconnected ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(organization_id)
        .bind(page.map(|p| p.limit))
        .bind(page.map_or(0, |p| p.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading Slack integrations", e))?;
        Ok(rows.iter().map(integration_view).collect())
    }

    async fn all_active(&self) -> Result<Vec<(Uuid, SlackIntegrationView)>, AppError> {
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM slack_integrations WHERE NOT disconnected AND broken_reason IS NULL"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading Slack integrations", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get("organization_id"), integration_view(r)))
            .collect())
    }
}
