//! Slack notifications: integrations and their delivery reactor.

use crate::aggregates::{execute, execute_command, load_in, metadata, session_metadata, stream_of, Loaded};
use crate::auth::{Page, Session};
use crate::calls::CallHistory;
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use crate::providers::{Cause, ProviderError, RetryPolicy};
use crate::secrets::SecretSealer;
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calendar::{CalendarIntegration, CalendarProvider};
use domain::calls::CallStatus;
use domain::slack::{
    calendar_needs_reauth_message, message, CallFacts, Notice, Notification, NotificationEvent, NotificationKind,
    Preferences, Route, SlackCommand, SlackConnection, SlackError, SlackIntegration, SlackWebhookUrl,
};
use domain::{Aggregate, Checkpoint};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Name of the reactor that delivers notifications.
pub const SLACK_NOTIFY: &str = "slack-notify";

const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x51ac_4e55_0f1c_4d2e_8a77_90b1_c0ff_ee02);

/// How Slack answered a post.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackDeliveryError {
    #[error("rate limited by Slack")]
    RateLimited { retry_after: Option<Duration> },
    /// The webhook no longer works (revoked, archived channel…): reconnecting is needed.
    #[error("Slack refused the webhook: {0}")]
    Revoked(String),
    /// This message cannot be posted (e.g. `invalid_payload`); the webhook is fine.
    #[error("Slack refused the message: {0}")]
    Rejected(String),
    #[error("Slack is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

impl SlackDeliveryError {
    /// A short code for users: one of Slack's own known codes, or ours; never a raw answer.
    pub fn code(&self) -> &str {
        match self {
            SlackDeliveryError::RateLimited { .. } => "rate_limited",
            SlackDeliveryError::Revoked(code) | SlackDeliveryError::Rejected(code) => code,
            SlackDeliveryError::Unavailable(_) => "slack_unreachable",
        }
    }
}

/// What became of a test message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TestDelivery {
    pub delivered: bool,
    /// Why not, when not delivered: Slack's code (`no_service`, `invalid_token`,
    /// `channel_not_found`…), `rate_limited` or `slack_unreachable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[async_trait]
pub trait SlackWebhook: Send + Sync {
    /// Posts `notice`, rendered in Slack's format, to an incoming webhook.
    async fn post(&self, webhook_url: &str, notice: &Notice) -> Result<(), SlackDeliveryError>;
}

/// Whether an integration still delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationStatus {
    Active,
    /// After a permanent error from Slack (`brokenReason` says which).
    Broken,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackIntegrationView {
    pub id: Uuid,
    pub workspace_name: String,
    pub channel: String,
    /// A masked fragment of the webhook URL; the URL itself is never returned.
    pub webhook_hint: String,
    pub preferences: Preferences,
    pub status: IntegrationStatus,
    pub broken_reason: Option<String>,
    pub notifications_sent: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Where in the log the integration was connected: only later events notify it.
    #[serde(skip)]
    pub connected_at: Checkpoint,
}

#[async_trait]
pub trait SlackDirectory: Send + Sync {
    /// The organization's integrations, a page of them or (`None`) all.
    async fn integrations(
        &self,
        organization_id: Uuid,
        page: Option<Page>,
    ) -> Result<Vec<SlackIntegrationView>, AppError>;
    /// Every active integration of every organization, as (organization, integration).
    async fn all_active(&self) -> Result<Vec<(Uuid, SlackIntegrationView)>, AppError>;
}

impl From<SlackError> for AppError {
    fn from(error: SlackError) -> Self {
        slack_error(error)
    }
}

pub fn slack_error(error: SlackError) -> AppError {
    match error {
        SlackError::Invalid { field, reason } => AppError::validation(field, format!("{field} is invalid: {reason}")),
        SlackError::NotFound => AppError::not_found("Slack integration"),
    }
}

fn context(organization_id: Uuid, integration_id: Uuid) -> String {
    format!("slack:{organization_id}:{integration_id}")
}

pub struct SlackService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub sealer: Arc<dyn SecretSealer>,
    pub directory: Arc<dyn SlackDirectory>,
    pub webhook: Arc<dyn SlackWebhook>,
    /// Hosts webhook URLs may point at (`hooks.slack.com`), so the server posts nowhere else.
    /// Origins webhook URLs may point at (`SLACK_WEBHOOK_ORIGINS`).
    pub allowed_origins: Vec<url::Origin>,
    pub app_url: String,
}

impl SlackService {
    async fn execute(&self, caller: &Session, id: Uuid, command: SlackCommand) -> Result<(), AppError> {
        execute_command::<SlackIntegration>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<SlackIntegration>(id),
            &session_metadata(caller),
            &command,
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn connect(
        &self,
        caller: &Session,
        workspace_name: String,
        channel: String,
        webhook_url: &str,
        preferences: Preferences,
    ) -> Result<Uuid, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageIntegrations)?;
        let webhook_url = SlackWebhookUrl::parse(webhook_url, &self.allowed_origins).map_err(slack_error)?;
        let webhook_hint = webhook_url.hint();
        let id = Uuid::now_v7();
        let sealed_webhook_url = self
            .sealer
            .seal(webhook_url.as_str(), &context(caller.organization_id, id));
        let command = SlackCommand::Connect {
            connection: SlackConnection {
                organization_id: caller.organization_id,
                workspace_name,
                channel,
                sealed_webhook_url,
                webhook_hint,
                preferences,
            },
            now: self.clock.now(),
        };
        self.execute(caller, id, command).await?;
        Ok(id)
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session, page: Page) -> Result<Vec<SlackIntegrationView>, AppError> {
        self.directory.integrations(caller.organization_id, Some(page)).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, integration_id = %id))]
    pub async fn update_preferences(
        &self,
        caller: &Session,
        id: Uuid,
        preferences: Preferences,
    ) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageIntegrations)?;
        self.execute(
            caller,
            id,
            SlackCommand::UpdatePreferences {
                preferences,
                now: self.clock.now(),
            },
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, integration_id = %id))]
    pub async fn disconnect(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageIntegrations)?;
        self.execute(caller, id, SlackCommand::Disconnect { now: self.clock.now() })
            .await
            .map(|_| ())
    }

    /// Posts a test message now; reports Slack's answer (a failed delivery is
    /// the test's result, not an error of this request).
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, integration_id = %id))]
    pub async fn send_test(&self, caller: &Session, id: Uuid) -> Result<TestDelivery, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageIntegrations)?;
        let loaded = load_in::<SlackIntegration>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<SlackIntegration>(id),
        )
        .await?;
        if !loaded.state.exists() {
            return Err(slack_error(SlackError::NotFound));
        }
        let url = self.sealer.open(
            loaded.state.sealed_webhook_url.as_deref().unwrap_or_default(),
            &context(caller.organization_id, id),
        )?;
        let body = message(NotificationKind::Test, &CallFacts::default(), &[], None, &self.app_url);
        match self.webhook.post(&url, &body).await {
            Ok(()) => Ok(TestDelivery {
                delivered: true,
                error: None,
            }),
            Err(error) => {
                if let SlackDeliveryError::Revoked(code) = &error {
                    self.execute(
                        caller,
                        id,
                        SlackCommand::MarkBroken {
                            reason: code.clone(),
                            now: self.clock.now(),
                        },
                    )
                    .await?;
                }
                tracing::warn!(error = %crate::error::report(&error), "test message not delivered");
                Ok(TestDelivery {
                    delivered: false,
                    error: Some(error.code().to_owned()),
                })
            }
        }
    }
}

/// Queues due daily summaries, every minute.
pub struct DailySummaries {
    pub notifier: Arc<SlackNotifier>,
    pub queue: Arc<dyn crate::work::WorkQueue>,
}

#[async_trait]
impl crate::work::ScheduledJob for DailySummaries {
    fn name(&self) -> &'static str {
        "slack-daily-summaries"
    }

    fn period(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn run(&self) -> Result<usize, AppError> {
        self.notifier.schedule_daily_summaries(self.queue.as_ref()).await
    }
}

/// Delivers the notifications one event (of a call, or a calendar that needs a new sign-in) raises to
/// every integration that routes them.
pub struct SlackNotifier {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub sealer: Arc<dyn SecretSealer>,
    pub directory: Arc<dyn SlackDirectory>,
    pub calls: Arc<dyn CallHistory>,
    pub webhook: Arc<dyn SlackWebhook>,
    pub retry: RetryPolicy,
    pub app_url: String,
}

/// A work key: `<kind>:<subject id>:<triggering event id>`, the subject being
/// the call, or for a calendar alert the calendar integration.
pub fn notification_key(kind: NotificationKind, subject_id: Uuid, event_id: Uuid) -> String {
    let kind = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{kind}:{subject_id}:{event_id}")
}

/// What a notification is about.
enum Subject {
    Call(CallFacts),
    Calendar {
        provider: CalendarProvider,
        account: String,
    },
}

impl Subject {
    fn notice(&self, kind: NotificationKind, route: &Route, app_url: &str) -> Notice {
        match self {
            Subject::Call(facts) => message(kind, facts, &route.mentions, route.template.as_deref(), app_url),
            // Templates speak of calls: a calendar alert keeps its own words.
            Subject::Calendar { provider, account } => {
                calendar_needs_reauth_message(*provider, account, &route.mentions, app_url)
            }
        }
    }
}

fn parse_key(key: &str) -> Option<(NotificationKind, Uuid)> {
    let mut parts = key.split(':');
    let kind: NotificationKind = serde_json::from_value(Value::String(parts.next()?.to_owned())).ok()?;
    Some((kind, Uuid::parse_str(parts.next()?).ok()?))
}

const DAILY_SUMMARY_PREFIX: &str = "daily_summary:";

impl SlackNotifier {
    /// Queues today's summary for every integration whose summary time has
    /// passed. Keyed by integration and local date: however many processes
    /// run this, each summary is queued and sent once.
    #[tracing::instrument(skip_all)]
    pub async fn schedule_daily_summaries(&self, queue: &dyn crate::work::WorkQueue) -> Result<usize, AppError> {
        let now = self.clock.now();
        let mut queued = 0;
        for (organization_id, integration) in self.directory.all_active().await? {
            if let Some(day) = integration.preferences.summary_due(now) {
                let key = format!("{DAILY_SUMMARY_PREFIX}{}:{day}", integration.id);
                let notification_id =
                    Uuid::new_v5(&NOTIFICATION_NAMESPACE, format!("{}:{key}", integration.id).as_bytes());
                let sent = load_in::<Notification>(
                    self.store.as_ref(),
                    organization_id,
                    stream_of::<Notification>(notification_id),
                )
                .await?
                .state
                .sent;
                if !sent && queue.enqueue_once(SLACK_NOTIFY, &key, organization_id).await? {
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    async fn send_summary(&self, item: &WorkItem, rest: &str) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let (Some(integration_id), Some(day)) = rest
            .split_once(':')
            .map(|(id, day)| (Uuid::parse_str(id).ok(), day.parse::<chrono::NaiveDate>().ok()))
            .unwrap_or((None, None))
        else {
            return Err(AppError::internal("reading a work key", item.key.clone()));
        };
        let Some(integration) = self
            .directory
            .integrations(organization_id, None)
            .await?
            .into_iter()
            .find(|i| i.id == integration_id)
        else {
            return Ok(WorkOutcome::Done);
        };
        let Some(route) = integration.preferences.route(NotificationKind::DailySummary).cloned() else {
            return Ok(WorkOutcome::Done);
        };
        let Some((from, to)) = integration.preferences.previous_day(day) else {
            return Ok(WorkOutcome::Done);
        };
        let totals = self.calls.day_totals(organization_id, from, to).await?;
        let body =
            domain::slack::summary_message(day - chrono::Duration::days(1), &totals, &route.mentions, &self.app_url);
        self.deliver(item, &integration, NotificationKind::DailySummary, body)
            .await
    }

    /// Posts one notification to one integration, recording the outcome; returns
    /// when to try again, if at all.
    async fn deliver(
        &self,
        item: &WorkItem,
        integration: &SlackIntegrationView,
        kind: NotificationKind,
        body: Notice,
    ) -> Result<WorkOutcome, AppError> {
        let organization_id = item.organization_id;
        let now = self.clock.now();
        let notification_id = Uuid::new_v5(
            &NOTIFICATION_NAMESPACE,
            format!("{}:{}", integration.id, item.key).as_bytes(),
        );
        let stream = load_in::<Notification>(
            self.store.as_ref(),
            organization_id,
            stream_of::<Notification>(notification_id),
        )
        .await?;
        if stream.state.sent || integration.status != IntegrationStatus::Active {
            return Ok(WorkOutcome::Done);
        }
        let due = integration.preferences.deliver_at(kind, now);
        if due > now {
            return Ok(WorkOutcome::RetryAt {
                due,
                reason: "mute hours".into(),
            });
        }
        let loaded = load_in::<SlackIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<SlackIntegration>(integration.id),
        )
        .await?;
        let url = self.sealer.open(
            loaded.state.sealed_webhook_url.as_deref().unwrap_or_default(),
            &context(organization_id, integration.id),
        )?;
        let source = item.key.clone();
        let attempt = stream.state.attempts + 1;
        let failed = |reason: String, retry_at: Option<DateTime<Utc>>| NotificationEvent::SlackNotificationFailed {
            integration_id: integration.id,
            kind,
            source: source.clone(),
            reason,
            attempt,
            retry_at,
            at: now,
        };
        match self.webhook.post(&url, &body).await {
            Ok(()) => {
                let sent = NotificationEvent::SlackNotificationSent {
                    integration_id: integration.id,
                    kind,
                    source: source.clone(),
                    at: now,
                };
                self.record(organization_id, &stream, sent).await?;
                Ok(WorkOutcome::Done)
            }
            Err(SlackDeliveryError::Revoked(code)) => {
                self.record(organization_id, &stream, failed(code.clone(), None))
                    .await?;
                self.mark_broken(organization_id, integration.id, &code).await?;
                Ok(WorkOutcome::Done)
            }
            Err(SlackDeliveryError::Rejected(code)) => {
                self.record(organization_id, &stream, failed(code, None)).await?;
                Ok(WorkOutcome::Done)
            }
            Err(error) => {
                let as_provider = match &error {
                    SlackDeliveryError::RateLimited { retry_after } => ProviderError::RateLimited {
                        retry_after: *retry_after,
                    },
                    other => ProviderError::Unavailable(Cause::with_source(other.to_string(), other.clone())),
                };
                let retry_at = self.retry.next_attempt(attempt, &as_provider, now);
                self.record(organization_id, &stream, failed(error.to_string(), retry_at))
                    .await?;
                Ok(match retry_at {
                    Some(due) => WorkOutcome::RetryAt {
                        due,
                        reason: error.to_string(),
                    },
                    None => WorkOutcome::Done,
                })
            }
        }
    }

    /// A call still going on is high-value when its customer qualified on an
    /// earlier call; `None` while the call history does not know the call yet.
    async fn is_high_value(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<bool>, AppError> {
        let Some(call) = self.calls.get(organization_id, call_id).await? else {
            return Ok(None);
        };
        match (&call.summary.customer_number, &call.summary.status) {
            (_, CallStatus::Ended | CallStatus::Failed) | (None, _) => Ok(Some(false)),
            (Some(number), _) => self
                .calls
                .qualified_before(organization_id, number, call_id)
                .await
                .map(Some),
        }
    }

    /// The subject of a notification of `kind` about `subject_id`; `None` when
    /// there is nothing left to tell (a calendar disconnected since).
    async fn subject(
        &self,
        kind: NotificationKind,
        organization_id: Uuid,
        subject_id: Uuid,
    ) -> Result<Option<Subject>, AppError> {
        if kind != NotificationKind::CalendarNeedsReauth {
            return Ok(Some(Subject::Call(self.facts(organization_id, subject_id).await?)));
        }
        let calendar = load_in::<CalendarIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CalendarIntegration>(subject_id),
        )
        .await?
        .state;
        Ok(match calendar.connection.provider {
            Some(provider) if calendar.is_live() => Some(Subject::Calendar {
                provider,
                account: calendar.account,
            }),
            _ => None,
        })
    }

    async fn facts(&self, organization_id: Uuid, call_id: Uuid) -> Result<CallFacts, AppError> {
        let call = self.calls.get(organization_id, call_id).await?;
        let Some(call) = call else {
            return Ok(CallFacts {
                call_id,
                ..CallFacts::default()
            });
        };
        let data = &call.analysis["structuredData"];
        let text = |field: &str| data[field].as_str().map(str::to_owned);
        Ok(CallFacts {
            call_id,
            contact_name: text("name").or_else(|| text("contactName")),
            company: text("company"),
            phone: call.summary.customer_number.clone(),
            agent_name: call.summary.agent_name.clone(),
            duration_seconds: call.summary.duration_seconds,
            sentiment: text("sentiment"),
            outcome: call.summary.outcome,
            ended_reason: call.summary.ended_reason.clone(),
            summary: call.analysis["summary"].as_str().map(str::to_owned),
        })
    }

    async fn record(
        &self,
        organization_id: Uuid,
        stream: &Loaded<Notification>,
        event: NotificationEvent,
    ) -> Result<(), AppError> {
        let meta = metadata("system:slack", format!("reactor:{SLACK_NOTIFY}"));
        execute::<Notification>(
            self.store.as_ref(),
            organization_id,
            stream.stream.clone(),
            &meta,
            |loaded| Notification::decide(&event, &loaded.state).map_err(slack_error),
        )
        .await
        .map(|_| ())
    }

    async fn mark_broken(&self, organization_id: Uuid, integration_id: Uuid, reason: &str) -> Result<(), AppError> {
        let now = self.clock.now();
        let meta = metadata("system:slack", format!("reactor:{SLACK_NOTIFY}"));
        execute::<SlackIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<SlackIntegration>(integration_id),
            &meta,
            |loaded| {
                let command = SlackCommand::MarkBroken {
                    reason: reason.into(),
                    now,
                };
                SlackIntegration::decide(&command, &loaded.state).map_err(slack_error)
            },
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl WorkHandler for SlackNotifier {
    fn reactor(&self) -> &'static str {
        SLACK_NOTIFY
    }

    fn provider(&self) -> &'static str {
        "slack"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        if let Some(rest) = item.key.strip_prefix(DAILY_SUMMARY_PREFIX) {
            return self.send_summary(item, rest).await;
        }
        let Some((kind, subject_id)) = parse_key(&item.key) else {
            return Err(AppError::internal("reading a work key", item.key.clone()));
        };
        let organization_id = item.organization_id;
        if kind == NotificationKind::HighValueCall {
            match self.is_high_value(organization_id, subject_id).await? {
                Some(true) => {}
                Some(false) => return Ok(WorkOutcome::Done),
                // The call history has not caught up with the call yet: look again shortly.
                None if item.attempts < 5 => {
                    let due = self.clock.now() + chrono::Duration::seconds(2);
                    return Ok(WorkOutcome::RetryAt {
                        due,
                        reason: "call not in the history yet".into(),
                    });
                }
                None => return Ok(WorkOutcome::Done),
            }
        }
        let routed: Vec<(SlackIntegrationView, Route)> = self
            .directory
            .integrations(organization_id, None)
            .await?
            .into_iter()
            // Only events after the integration was connected notify it (not replays, nor late work).
            .filter(|integration| item.trigger.is_none_or(|trigger| trigger > integration.connected_at))
            .filter_map(|integration| {
                let route = integration.preferences.route(kind).cloned()?;
                Some((integration, route))
            })
            .collect();
        if routed.is_empty() {
            return Ok(WorkOutcome::Done);
        }
        let Some(subject) = self.subject(kind, organization_id, subject_id).await? else {
            return Ok(WorkOutcome::Done);
        };
        let mut earliest_retry: Option<(DateTime<Utc>, String)> = None;
        for (integration, route) in routed {
            let body = subject.notice(kind, &route, &self.app_url);
            if let WorkOutcome::RetryAt { due, reason } = self.deliver(item, &integration, kind, body).await? {
                if earliest_retry.as_ref().is_none_or(|(d, _)| due < *d) {
                    earliest_retry = Some((due, reason));
                }
            }
        }
        Ok(match earliest_retry {
            Some((due, reason)) => WorkOutcome::RetryAt { due, reason },
            None => WorkOutcome::Done,
        })
    }
}
