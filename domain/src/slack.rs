//! Slack notifications: integrations, what goes where, mute hours, and what
//! each notification says (rendered as Block Kit by `infrastructure`).

use crate::aggregate::Aggregate;
use crate::calendar::CalendarProvider;
use crate::calls::{EndedReason, Outcome};
use crate::domain_events;
/// The time zone type moved to [`crate::time_zone`]; kept here for existing users.
pub use crate::time_zone::TimeZone;
use chrono::{DateTime, Duration, NaiveTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlackError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("Slack integration not found")]
    NotFound,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SlackError {
    SlackError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// `/services/<team>/<bot>/<secret>`, each part letters and digits, as Slack issues them.
fn is_webhook_path(path: &str) -> bool {
    path.strip_prefix("/services/").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('/').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

/// A Slack incoming-webhook URL, parsed rather than pattern-matched: its
/// origin (scheme, host and port) is exactly one of the allowed ones
/// (`https://hooks.slack.com` in production), with no user info, and its path
/// is `/services/…`. Anything else could point our requests elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct SlackWebhookUrl(url::Url);

impl SlackWebhookUrl {
    pub fn parse(raw: &str, allowed_origins: &[url::Origin]) -> Result<Self, SlackError> {
        let bad = || {
            invalid(
                "webhookUrl",
                "webhookUrl must be a Slack incoming-webhook URL (https://hooks.slack.com/services/…)",
            )
        };
        let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
        let acceptable = allowed_origins.contains(&url.origin())
            && url.username().is_empty()
            && url.password().is_none()
            && is_webhook_path(url.path())
            && url.query().is_none()
            && url.fragment().is_none();
        if acceptable {
            Ok(Self(url))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// What users see of it: the origin and the last four characters.
    pub fn hint(&self) -> String {
        let raw = self.0.as_str();
        let tail: String = raw.chars().skip(raw.chars().count().saturating_sub(4)).collect();
        format!("{}/services/…{tail}", self.0.origin().ascii_serialization())
    }
}

/// The URL is a secret: never printed.
impl std::fmt::Debug for SlackWebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlackWebhookUrl({})", self.hint())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A call's outcome became `qualified`.
    HotLead,
    /// A call's outcome became `appointment`.
    AppointmentBooked,
    /// A call ended for a technical reason (see `calls::is_technical_failure`).
    CallFailed,
    /// A call is in progress with a customer who already qualified (or booked, or bought) on an earlier call.
    HighValueCall,
    /// The day's calls, once a day at the configured local time.
    DailySummary,
    /// A calendar stopped accepting our access (a refused token refresh): someone must connect it again.
    CalendarNeedsReauth,
    /// A test message sent on request.
    Test,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 7] = [
        NotificationKind::HotLead,
        NotificationKind::AppointmentBooked,
        NotificationKind::CallFailed,
        NotificationKind::HighValueCall,
        NotificationKind::DailySummary,
        NotificationKind::CalendarNeedsReauth,
        NotificationKind::Test,
    ];

    /// The kinds a new integration routes unless told otherwise.
    pub const ROUTABLE: [NotificationKind; 5] = [
        NotificationKind::HotLead,
        NotificationKind::AppointmentBooked,
        NotificationKind::CallFailed,
        NotificationKind::HighValueCall,
        NotificationKind::CalendarNeedsReauth,
    ];

    /// Failures that `failuresBypassMute` lets through mute hours.
    fn is_failure(self) -> bool {
        matches!(
            self,
            NotificationKind::CallFailed | NotificationKind::CalendarNeedsReauth
        )
    }
}

/// Someone to @mention: a Slack user (`U…`, `W…`) or user group (`S…`) id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mention(String);

impl Mention {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_group(&self) -> bool {
        self.0.starts_with('S')
    }
}

impl TryFrom<String> for Mention {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        let well_formed = raw.starts_with(['U', 'W', 'S'])
            && (2..=20).contains(&raw.len())
            && raw.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if well_formed {
            Ok(Mention(raw))
        } else {
            Err(format!("{raw:?} is not a Slack user (U…) or user group (S…) id"))
        }
    }
}

impl From<Mention> for String {
    fn from(mention: Mention) -> String {
        mention.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub enabled: bool,
    /// Slack users or groups to @mention.
    #[serde(default)]
    pub mentions: Vec<Mention>,
    /// A custom headline (mrkdwn) with placeholders such as `{{ contact_name }}`,
    /// `{{ company }}`, `{{ phone }}`, `{{ agent }}`, `{{ duration }}`,
    /// `{{ sentiment }}`, `{{ outcome }}`, `{{ transcript_link }}`, `{{ callback_link }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<TEMPLATE_LIMIT_CHARS>))]
    pub template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteHours {
    /// Local "HH:MM"; the window may cross midnight.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::local_time))]
    pub start: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::local_time))]
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::slack_routes))]
    pub routes: BTreeMap<NotificationKind, Route>,
    /// The organization's time zone, for mute hours and the daily summary.
    pub timezone: TimeZone,
    pub mute_hours: Option<MuteHours>,
    /// Technical failures reach the channel even during mute hours.
    pub failures_bypass_mute: bool,
    /// Local "HH:MM" at which the daily summary (when routed) is sent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_local_time))]
    pub summary_time: Option<String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            routes: NotificationKind::ROUTABLE
                .iter()
                .map(|k| {
                    (
                        *k,
                        Route {
                            enabled: true,
                            mentions: vec![],
                            template: None,
                        },
                    )
                })
                .collect(),
            timezone: TimeZone::DEFAULT,
            mute_hours: None,
            failures_bypass_mute: true,
            summary_time: None,
        }
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<NaiveTime, SlackError> {
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| invalid(field, "must be a local time like 21:30"))
}

impl Preferences {
    /// Checks what the types cannot: mute and summary times, templates.
    pub fn validate(&self) -> Result<(), SlackError> {
        if let Some(mute) = &self.mute_hours {
            let (start, end) = (
                parse_time("muteHours.start", &mute.start)?,
                parse_time("muteHours.end", &mute.end)?,
            );
            if start == end {
                return Err(invalid("muteHours", "start and end must differ"));
            }
        }
        if let Some(time) = &self.summary_time {
            parse_time("summaryTime", time)?;
        }
        for route in self.routes.values() {
            if let Some(template) = &route.template {
                render_template(template, &CallFacts::default(), "https://app.example")
                    .map_err(|e| invalid("routes.template", e))?;
            }
        }
        Ok(())
    }

    pub fn route(&self, kind: NotificationKind) -> Option<&Route> {
        match kind {
            NotificationKind::Test => None,
            kind => self.routes.get(&kind).filter(|r| r.enabled),
        }
    }

    /// The local date whose summary is due at `now`: today's, once the summary
    /// time has passed (it covers the previous local day).
    pub fn summary_due(&self, now: DateTime<Utc>) -> Option<chrono::NaiveDate> {
        self.route(NotificationKind::DailySummary)?;
        let time = parse_time("summaryTime", self.summary_time.as_deref()?).ok()?;
        let local = now.with_timezone(&self.timezone.tz());
        (local.time() >= time).then(|| local.date_naive())
    }

    /// The UTC bounds of the local day before `date`.
    pub fn previous_day(&self, date: chrono::NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let tz = self.timezone.tz();
        let start_of = |d: chrono::NaiveDate| {
            tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        };
        Some((start_of(date - Duration::days(1))?, start_of(date)?))
    }

    /// When a notification of `kind` raised at `now` may be delivered: now,
    /// or the end of the mute window it falls in, in the organization's time zone.
    pub fn deliver_at(&self, kind: NotificationKind, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(mute) = &self.mute_hours else { return now };
        if kind == NotificationKind::Test || (kind.is_failure() && self.failures_bypass_mute) {
            return now;
        }
        let tz = self.timezone.tz();
        let (Ok(start), Ok(end)) = (parse_time("start", &mute.start), parse_time("end", &mute.end)) else {
            return now;
        };
        let local = now.with_timezone(&tz);
        let time = local.time();
        let muted = if start < end {
            time >= start && time < end
        } else {
            time >= start || time < end
        };
        if !muted {
            return now;
        }
        let end_day = if start > end && time >= start {
            local.date_naive() + Duration::days(1)
        } else {
            local.date_naive()
        };
        // An end time skipped by a DST change delivers an hour later rather than never.
        tz.from_local_datetime(&end_day.and_time(end))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(end_day.and_time(end) + Duration::hours(1)))
                    .earliest()
            })
            .map_or(now, |t| t.with_timezone(&Utc))
    }
}

/// What a notification says about a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFacts {
    pub call_id: Uuid,
    pub contact_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub agent_name: Option<String>,
    pub duration_seconds: Option<f64>,
    pub sentiment: Option<String>,
    pub outcome: Option<Outcome>,
    pub ended_reason: Option<EndedReason>,
    pub summary: Option<String>,
}

fn duration_text(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".into(), |s| format!("{}:{:02}", (s as u64) / 60, (s as u64) % 60))
}

/// Slack's mrkdwn escaping of `&`, `<` and `>`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The placeholders a headline template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "contact_name",
    "company",
    "phone",
    "agent",
    "duration",
    "sentiment",
    "outcome",
    "transcript_link",
    "callback_link",
];

/// Longest workspace name.
pub const WORKSPACE_NAME_CHARS: usize = 100;

/// Longest template accepted.
pub const TEMPLATE_LIMIT_CHARS: usize = 2000;

/// A headline template: text and `{{ placeholder }}`s, nothing else — no
/// loops, conditions, filters or calls, so rendering is one linear pass.
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, String> {
    if template.chars().count() > TEMPLATE_LIMIT_CHARS {
        return Err(format!("templates are at most {TEMPLATE_LIMIT_CHARS} characters"));
    }
    if template.contains("{%") || template.contains("{#") {
        return Err("statements and comments ({% … %}, {# … #}) are not allowed: use {{ placeholder }} only".into());
    }
    let mut pieces = vec![];
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if rest[..open].contains("}}") {
            return Err("a }} has no {{".into());
        }
        pieces.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("a {{ is not closed")?;
        let name = after[..close].trim();
        if name.contains('|') {
            return Err(format!("filters are not allowed: {{{{ {name} }}}}"));
        }
        if name.contains('(') || name.contains('[') || name.contains('.') {
            return Err(format!("calls and lookups are not allowed: {{{{ {name} }}}}"));
        }
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {name:?}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        pieces.push(Piece::Placeholder(name));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("a }} has no {{".into());
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// Renders a custom headline (escaped for mrkdwn); a template that is not
/// text and known placeholders is an error.
pub fn render_template(template: &str, facts: &CallFacts, app_url: &str) -> Result<String, String> {
    let pieces = parse_template(template)?;
    let text = |v: &Option<String>| escape(v.as_deref().unwrap_or("–"));
    let value = |name: &str| match name {
        "contact_name" => text(&facts.contact_name),
        "company" => text(&facts.company),
        "phone" => text(&facts.phone),
        "agent" => text(&facts.agent_name),
        "duration" => duration_text(facts.duration_seconds),
        "sentiment" => text(&facts.sentiment),
        "outcome" => escape(facts.outcome.map_or("–", Outcome::as_str)),
        "transcript_link" => format!("{}/calls/{}", app_url.trim_end_matches('/'), facts.call_id),
        "callback_link" => facts.phone.as_ref().map(|p| format!("tel:{p}")).unwrap_or_default(),
        _ => String::new(),
    };
    Ok(pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.to_owned(),
            Piece::Placeholder(name) => value(name),
        })
        .collect())
}

/// A notification as the domain describes it: `infrastructure` renders it in
/// the channel's format (Block Kit for Slack).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub title: String,
    /// Who to @mention before the headline.
    pub mentions: Vec<Mention>,
    /// The headline, in Slack mrkdwn (`*bold*`), already escaped.
    pub headline: String,
    /// Labelled facts shown side by side (plain text).
    pub fields: Vec<(String, String)>,
    /// A longer note under the facts (plain text).
    pub note: Option<String>,
    /// Buttons: label and URL.
    pub links: Vec<(String, String)>,
}

pub fn message(
    kind: NotificationKind,
    facts: &CallFacts,
    mentions: &[Mention],
    template: Option<&str>,
    app_url: &str,
) -> Notice {
    let who = facts
        .contact_name
        .as_deref()
        .or(facts.phone.as_deref())
        .unwrap_or("A caller");
    let company = facts
        .company
        .as_deref()
        .map(|c| format!(" from *{}*", escape(c)))
        .unwrap_or_default();
    let agent = escape(facts.agent_name.as_deref().unwrap_or("your agent"));
    let (title, headline) = match kind {
        NotificationKind::HotLead => (
            "🎯 Hot Lead Alert!",
            format!("*{}*{company} just qualified on a call with *{agent}*", escape(who)),
        ),
        NotificationKind::AppointmentBooked => (
            "📅 Appointment Booked",
            format!("*{}*{company} booked an appointment with *{agent}*", escape(who)),
        ),
        NotificationKind::CallFailed => (
            "🚨 Call failed (technical issue)",
            format!(
                "A call of *{agent}* with *{}* ended with `{}`",
                escape(who),
                escape(
                    &facts
                        .ended_reason
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), EndedReason::as_str)
                )
            ),
        ),
        NotificationKind::HighValueCall => (
            "⚠️ High-value call in progress",
            format!(
                "*{}*{company}, who qualified before, is on a call with *{agent}* right now",
                escape(who)
            ),
        ),
        NotificationKind::Test => (
            "✅ VoxReach is connected",
            "Notifications for this channel will arrive here.".to_owned(),
        ),
        // Not about a call: `summary_message` and `calendar_needs_reauth_message` describe these.
        NotificationKind::DailySummary => ("📊 Daily summary", String::new()),
        NotificationKind::CalendarNeedsReauth => (CALENDAR_NEEDS_REAUTH_TITLE, String::new()),
    };
    // Templates were checked when saved; one that fails now falls back to the standard headline.
    let headline = template
        .and_then(|t| render_template(t, facts, app_url).ok())
        .unwrap_or(headline);
    let mut notice = Notice {
        title: title.to_owned(),
        mentions: mentions.to_vec(),
        headline,
        fields: vec![],
        note: None,
        links: vec![],
    };
    if kind != NotificationKind::Test {
        let field = |label: &str, value: &str| (label.to_owned(), value.to_owned());
        notice.fields = vec![
            field("Phone", facts.phone.as_deref().unwrap_or("–")),
            field("Outcome", facts.outcome.map_or("–", Outcome::as_str)),
            field("Call Duration", &duration_text(facts.duration_seconds)),
            field("Sentiment", facts.sentiment.as_deref().unwrap_or("–")),
        ];
        notice.note = facts.summary.as_ref().map(|s| s.chars().take(2900).collect());
        notice.links.push((
            "View Transcript".to_owned(),
            format!("{}/calls/{}", app_url.trim_end_matches('/'), facts.call_id),
        ));
        if let Some(phone) = &facts.phone {
            notice.links.push(("Call Back".to_owned(), format!("tel:{phone}")));
        }
    }
    notice
}

const CALENDAR_NEEDS_REAUTH_TITLE: &str = "🔑 A calendar needs reconnecting";

/// A calendar that no longer accepts our access: which one, and where to connect it again.
pub fn calendar_needs_reauth_message(
    provider: CalendarProvider,
    account: &str,
    mentions: &[Mention],
    app_url: &str,
) -> Notice {
    let provider = match provider {
        CalendarProvider::Google => "Google Calendar",
        CalendarProvider::Outlook => "Outlook calendar",
        CalendarProvider::Calendly => "Calendly",
    };
    Notice {
        title: CALENDAR_NEEDS_REAUTH_TITLE.to_owned(),
        mentions: mentions.to_vec(),
        headline: format!(
            "The {provider} of *{}* no longer accepts VoxReach's access. Until it is connected again, agents cannot check availability or book meetings in it.",
            escape(account)
        ),
        fields: vec![
            ("Calendar".to_owned(), provider.to_owned()),
            ("Account".to_owned(), account.to_owned()),
        ],
        note: None,
        links: vec![(
            "Reconnect Calendar".to_owned(),
            format!("{}/settings/integrations", app_url.trim_end_matches('/')),
        )],
    }
}

/// A day's totals for the daily summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayTotals {
    pub calls: i64,
    pub minutes: f64,
    pub qualified: i64,
    pub appointments: i64,
    pub failed: i64,
}

/// The daily summary of `day`.
pub fn summary_message(day: chrono::NaiveDate, totals: &DayTotals, mentions: &[Mention], app_url: &str) -> Notice {
    let field = |label: &str, value: String| (label.to_owned(), value);
    Notice {
        title: format!("📊 Daily summary — {}", day.format("%a %-d %b %Y")),
        mentions: mentions.to_vec(),
        headline: "Here is how your agents did.".to_owned(),
        fields: vec![
            field("Calls", totals.calls.to_string()),
            field("Minutes", format!("{:.1}", totals.minutes)),
            field("Qualified", totals.qualified.to_string()),
            field("Appointments", totals.appointments.to_string()),
            field("Failed (technical)", totals.failed.to_string()),
        ],
        note: None,
        links: vec![(
            "Open Dashboard".to_owned(),
            format!("{}/dashboard", app_url.trim_end_matches('/')),
        )],
    }
}

// ---------------------------------------------------------------- integration aggregate

domain_events! {
    pub enum SlackEvent for SlackIntegration in "slack-integration" {
        /// A Slack incoming webhook was connected. Payload: organizationId, workspaceName, channel,
        /// sealedWebhookUrl (encrypted), webhookHint, preferences {routes
        /// {hot_lead|appointment_booked|call_failed: {enabled, mentions}}, timezone, muteHours {start, end},
        /// failuresBypassMute}, at.
        #[version(1)]
        SlackIntegrationConnected {
            #[serde(flatten)]
            connection: SlackConnection,
            at: DateTime<Utc>,
        },
        /// Routing, mentions, time zone or mute hours changed. Payload: preferences, at.
        #[version(1)]
        SlackPreferencesUpdated {
            preferences: Preferences,
            at: DateTime<Utc>,
        },
        /// Slack answered with a permanent error (revoked or invalid webhook, archived channel); delivery stops
        /// until reconnected. Payload: reason, at.
        #[version(1)]
        SlackIntegrationBroken { reason: String, at: DateTime<Utc> },
        /// The integration was removed. Payload: at.
        #[version(1)]
        SlackIntegrationDisconnected { at: DateTime<Utc> },
    }
}

/// What connecting a Slack integration records (flattened into its event's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackConnection {
    pub organization_id: Uuid,
    pub workspace_name: String,
    pub channel: String,
    /// The incoming webhook's URL, encrypted.
    pub sealed_webhook_url: String,
    pub webhook_hint: String,
    pub preferences: Preferences,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SlackCommand {
    Connect {
        connection: SlackConnection,
        now: DateTime<Utc>,
    },
    UpdatePreferences {
        preferences: Preferences,
        now: DateTime<Utc>,
    },
    MarkBroken {
        reason: String,
        now: DateTime<Utc>,
    },
    Disconnect {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlackIntegration {
    pub connected: bool,
    pub disconnected: bool,
    pub sealed_webhook_url: Option<String>,
    pub preferences: Preferences,
    pub broken: Option<String>,
}

impl SlackIntegration {
    pub fn exists(&self) -> bool {
        self.connected && !self.disconnected
    }
}

impl Aggregate for SlackIntegration {
    type Command = SlackCommand;
    type Error = SlackError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        if !matches!(command, SlackCommand::Connect { .. }) && !state.exists() {
            return Err(SlackError::NotFound);
        }
        Ok(match command {
            SlackCommand::Connect { connection, now } => {
                let SlackConnection {
                    workspace_name,
                    channel,
                    preferences,
                    ..
                } = connection;
                if workspace_name.trim().is_empty() || workspace_name.chars().count() > WORKSPACE_NAME_CHARS {
                    return Err(invalid(
                        "workspaceName",
                        format!("must be 1 to {WORKSPACE_NAME_CHARS} characters"),
                    ));
                }
                if !channel.starts_with('#') || channel.len() < 2 || channel.len() > 81 {
                    return Err(invalid("channel", "must be a channel name like #sales"));
                }
                preferences.validate()?;
                vec![SlackEvent::SlackIntegrationConnected {
                    connection: SlackConnection {
                        workspace_name: workspace_name.trim().to_owned(),
                        ..connection.clone()
                    },
                    at: *now,
                }]
            }
            SlackCommand::UpdatePreferences { preferences, now } => {
                preferences.validate()?;
                if *preferences == state.preferences {
                    vec![]
                } else {
                    vec![SlackEvent::SlackPreferencesUpdated {
                        preferences: preferences.clone(),
                        at: *now,
                    }]
                }
            }
            SlackCommand::MarkBroken { .. } if state.broken.is_some() => vec![],
            SlackCommand::MarkBroken { reason, now } => vec![SlackEvent::SlackIntegrationBroken {
                reason: reason.clone(),
                at: *now,
            }],
            SlackCommand::Disconnect { now } => vec![SlackEvent::SlackIntegrationDisconnected { at: *now }],
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            SlackEvent::SlackIntegrationConnected { connection, .. } => {
                self.connected = true;
                self.sealed_webhook_url = Some(connection.sealed_webhook_url.clone());
                self.preferences = connection.preferences.clone();
            }
            SlackEvent::SlackPreferencesUpdated { preferences, .. } => self.preferences = preferences.clone(),
            SlackEvent::SlackIntegrationBroken { reason, .. } => self.broken = Some(reason.clone()),
            SlackEvent::SlackIntegrationDisconnected { .. } => self.disconnected = true,
        }
        self
    }
}

// ---------------------------------------------------------------- one notification

domain_events! {
    pub enum NotificationEvent for Notification in "slack-notification" {
        /// A notification reached Slack. Stream per (integration, triggering event). Payload: integrationId,
        /// kind, source, at.
        #[version(1)]
        SlackNotificationSent {
            integration_id: Uuid,
            kind: NotificationKind,
            source: String,
            at: DateTime<Utc>,
        },
        /// A delivery attempt failed. Payload: integrationId, kind, source, reason, attempt, retryAt (null:
        /// given up), at.
        #[version(1)]
        SlackNotificationFailed {
            integration_id: Uuid,
            kind: NotificationKind,
            source: String,
            reason: String,
            attempt: u32,
            retry_at: Option<DateTime<Utc>>,
            at: DateTime<Utc>,
        },
    }
}

/// A notification's delivery record: one stream per (integration, triggering event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notification {
    pub sent: bool,
    pub attempts: u32,
}

impl Aggregate for Notification {
    type Command = NotificationEvent;
    type Error = SlackError;

    /// Outcomes are facts reported by the delivery reactor; a sent notification takes no more.
    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        Ok(if state.sent { vec![] } else { vec![command.clone()] })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            NotificationEvent::SlackNotificationSent { .. } => self.sent = true,
            NotificationEvent::SlackNotificationFailed { .. } => self.attempts += 1,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn muted(start: &str, end: &str, tz: &str) -> Preferences {
        Preferences {
            timezone: TimeZone::try_from(tz.to_owned()).unwrap(),
            mute_hours: Some(MuteHours {
                start: start.into(),
                end: end.into(),
            }),
            ..Preferences::default()
        }
    }

    /// Whether a `kind` notification at 21:30 in New York, muted 21:00 to 08:00, is delivered at once.
    fn passes_mute_hours(kind: NotificationKind) -> bool {
        let late_evening = at("2026-11-25T02:30:00Z");
        muted("21:00", "08:00", "America/New_York").deliver_at(kind, late_evening) == late_evening
    }

    #[test]
    fn mute_hours_defer_to_the_local_end_of_the_window() {
        let prefs = muted("21:00", "08:00", "America/New_York");
        // 02:30 UTC = 21:30 in New York (EST, UTC-5): held until 08:00 local = 13:00 UTC.
        assert_eq!(
            prefs.deliver_at(NotificationKind::HotLead, at("2026-11-25T02:30:00Z")),
            at("2026-11-25T13:00:00Z")
        );
        // 10:00 UTC = 05:00 local, still muted: same morning.
        assert_eq!(
            prefs.deliver_at(NotificationKind::HotLead, at("2026-11-25T10:00:00Z")),
            at("2026-11-25T13:00:00Z")
        );
        // 15:00 UTC = 10:00 local: now.
        assert_eq!(
            prefs.deliver_at(NotificationKind::HotLead, at("2026-11-25T15:00:00Z")),
            at("2026-11-25T15:00:00Z")
        );
        // Failures bypass by default.
        assert!(passes_mute_hours(NotificationKind::CallFailed));
        // Across the spring DST change in Berlin: 01:30 UTC on 29 March is 03:30 CEST.
        let berlin = muted("22:00", "07:00", "Europe/Berlin");
        assert_eq!(
            berlin.deliver_at(NotificationKind::HotLead, at("2026-03-29T01:30:00Z")),
            at("2026-03-29T05:00:00Z")
        );
    }

    #[test]
    fn a_calendar_alert_names_the_calendar_is_on_by_default_and_passes_mute_hours() {
        let notice =
            calendar_needs_reauth_message(CalendarProvider::Google, "ann@acme.test", &[], "https://app.example/");
        assert!(notice.headline.contains("Google Calendar") && notice.headline.contains("ann@acme.test"));
        assert_eq!(
            notice.links,
            [(
                "Reconnect Calendar".to_owned(),
                "https://app.example/settings/integrations".to_owned()
            )]
        );
        assert!(Preferences::default()
            .route(NotificationKind::CalendarNeedsReauth)
            .is_some());
        assert!(passes_mute_hours(NotificationKind::CalendarNeedsReauth));
    }

    #[test]
    fn the_daily_summary_is_due_after_its_local_time_and_covers_the_day_before() {
        let mut prefs = Preferences {
            summary_time: Some("09:00".into()),
            ..Preferences::default()
        };
        assert_eq!(prefs.summary_due(at("2026-11-25T15:00:00Z")), None, "not routed");
        prefs.routes.insert(
            NotificationKind::DailySummary,
            Route {
                enabled: true,
                mentions: vec![],
                template: None,
            },
        );
        // 08:30 in New York: not yet; 09:30: today's.
        assert_eq!(prefs.summary_due(at("2026-11-25T13:30:00Z")), None);
        let day = prefs.summary_due(at("2026-11-25T14:30:00Z")).unwrap();
        assert_eq!(day.to_string(), "2026-11-25");
        assert_eq!(
            prefs.previous_day(day),
            Some((at("2026-11-24T05:00:00Z"), at("2026-11-25T05:00:00Z")))
        );
    }

    #[test]
    fn templates_render_placeholders_and_are_checked() {
        let facts = CallFacts {
            contact_name: Some("Jo <b>".into()),
            duration_seconds: Some(61.0),
            ..CallFacts::default()
        };
        assert_eq!(
            render_template("{{ contact_name }} talked {{ duration }}", &facts, "x").unwrap(),
            "Jo &lt;b&gt; talked 1:01"
        );
        assert!(render_template("{{ contact_name", &facts, "x").is_err());
        assert!(render_template("{{ salary }}", &facts, "x").is_err());
        // Only substitution: no loops, filters or calls, and a bounded length.
        for refused in [
            "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}",
            "{{ contact_name | upper }}",
            "{{ range(10) }}",
            "{# note #}",
            "}} {{ phone }}",
        ] {
            assert!(render_template(refused, &facts, "x").is_err(), "{refused}");
        }
        assert!(render_template(&"a".repeat(TEMPLATE_LIMIT_CHARS + 1), &facts, "x").is_err());
        let body = message(
            NotificationKind::HotLead,
            &facts,
            &[],
            Some("🔥 {{ contact_name }}"),
            "x",
        );
        assert_eq!(body.headline, "🔥 Jo &lt;b&gt;");
    }

    #[test]
    fn webhook_urls_are_parsed_against_the_allowed_origins() {
        let slack = [url::Url::parse("https://hooks.slack.com").unwrap().origin()];
        let ok = SlackWebhookUrl::parse("https://hooks.slack.com/services/T1/B2/secret", &slack).unwrap();
        assert_eq!(ok.hint(), "https://hooks.slack.com/services/…cret");
        assert!(!format!("{ok:?}").contains("secret"));
        for bad in [
            "https://hooks.slack.com:x@127.0.0.1:18443/services/T/B/X",
            "https://user@hooks.slack.com/services/T/B/X",
            "https://hooks.slack.com:8443/services/T/B/X",
            "http://hooks.slack.com/services/T/B/X",
            "https://hooks.slack.com.evil.example/services/T/B/X",
            "https://hooks.slack.com/api/T/B/X",
            "https://hooks.slack.com/services/",
            "https://hooks.slack.com/services/T/B",
            "https://hooks.slack.com/services/T/B/X*",
            "https://hooks.slack.com/services/T/B/X/Y",
            "https://hooks.slack.com/services/T/B/X?redirect=http://127.0.0.1",
            "hooks.slack.com/services/T/B/X",
        ] {
            assert!(SlackWebhookUrl::parse(bad, &slack).is_err(), "{bad}");
        }
        let fake = [url::Url::parse("http://127.0.0.1:18443").unwrap().origin()];
        assert!(SlackWebhookUrl::parse("http://127.0.0.1:18443/services/T/B/X", &fake).is_ok());
        assert!(SlackWebhookUrl::parse("http://127.0.0.1:18444/services/T/B/X", &fake).is_err());
    }

    fn connection() -> SlackConnection {
        SlackConnection {
            organization_id: Uuid::nil(),
            workspace_name: "Acme".into(),
            channel: "#sales".into(),
            sealed_webhook_url: "sealed".into(),
            webhook_hint: "hint".into(),
            preferences: Preferences::default(),
        }
    }

    #[test]
    fn connecting_trims_the_workspace_name_and_stores_the_connection_flat() {
        use crate::aggregate::given_when_then::given;
        use crate::events::DomainEvent;
        let now = at("2026-11-24T12:00:00Z");
        let mut untrimmed = connection();
        untrimmed.workspace_name = " Acme ".into();
        let state = given::<SlackIntegration>([])
            .when(SlackCommand::Connect {
                connection: untrimmed,
                now,
            })
            .then([SlackEvent::SlackIntegrationConnected {
                connection: connection(),
                at: now,
            }]);
        assert!(state.exists());
        // The payload is byte for byte what it was before the fields were grouped.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Ungrouped<'a> {
            organization_id: Uuid,
            workspace_name: &'a str,
            channel: &'a str,
            sealed_webhook_url: &'a str,
            webhook_hint: &'a str,
            preferences: Preferences,
            at: DateTime<Utc>,
        }
        let ungrouped = Ungrouped {
            organization_id: Uuid::nil(),
            workspace_name: "Acme",
            channel: "#sales",
            sealed_webhook_url: "sealed",
            webhook_hint: "hint",
            preferences: Preferences::default(),
            at: now,
        };
        let connected = SlackEvent::SlackIntegrationConnected {
            connection: connection(),
            at: now,
        };
        assert_eq!(
            serde_json::to_string(&connected).unwrap(),
            format!(
                r#"{{"type":"SlackIntegrationConnected","data":{}}}"#,
                serde_json::to_string(&ungrouped).unwrap()
            )
        );
        let payload = serde_json::to_value(&ungrouped).unwrap();
        assert_eq!(
            SlackEvent::decode("SlackIntegrationConnected", 1, &payload).unwrap(),
            connected
        );
    }

    #[test]
    fn a_broken_integration_records_why_once_per_change() {
        use crate::aggregate::given_when_then::given;
        let connected = SlackEvent::SlackIntegrationConnected {
            connection: connection(),
            at: at("2026-11-24T12:00:00Z"),
        };
        given::<SlackIntegration>([connected.clone()])
            .when(SlackCommand::Disconnect {
                now: at("2026-11-24T13:00:00Z"),
            })
            .then([SlackEvent::SlackIntegrationDisconnected {
                at: at("2026-11-24T13:00:00Z"),
            }]);
        given::<SlackIntegration>([])
            .when(SlackCommand::Disconnect {
                now: at("2026-11-24T13:00:00Z"),
            })
            .then_error(SlackError::NotFound);
    }

    #[test]
    fn preferences_are_validated() {
        assert!(muted("25:00", "07:00", "UTC").validate().is_err());
        assert!(TimeZone::try_from("Mars/Olympus".to_owned()).is_err());
        assert!(Mention::try_from("U024BE7LH".to_owned()).is_ok());
        assert!(Mention::try_from("<!channel>".to_owned()).is_err());
        assert!(Mention::try_from("X123".to_owned()).is_err());
        assert!(Preferences::default().validate().is_ok());
    }
    fn sent(at_: &str) -> NotificationEvent {
        NotificationEvent::SlackNotificationSent {
            integration_id: Uuid::nil(),
            kind: NotificationKind::HotLead,
            source: "call-1".into(),
            at: at(at_),
        }
    }

    fn failed(attempt: u32, retry_at: Option<&str>, at_: &str) -> NotificationEvent {
        NotificationEvent::SlackNotificationFailed {
            integration_id: Uuid::nil(),
            kind: NotificationKind::HotLead,
            source: "call-1".into(),
            reason: "503 from Slack".into(),
            attempt,
            retry_at: retry_at.map(at),
            at: at(at_),
        }
    }

    #[test]
    fn a_notification_records_its_delivery_once() {
        use crate::aggregate::given_when_then::given;
        let state = given::<Notification>([])
            .when(sent("2026-11-24T12:00:00Z"))
            .then([sent("2026-11-24T12:00:00Z")]);
        assert!(state.sent);
        // A second report of the same delivery (a retried reactor item) adds nothing.
        given::<Notification>([sent("2026-11-24T12:00:00Z")])
            .when(sent("2026-11-24T12:00:05Z"))
            .then_nothing();
        // Nor does a late failure report once it was sent.
        given::<Notification>([sent("2026-11-24T12:00:00Z")])
            .when(failed(1, Some("2026-11-24T12:01:00Z"), "2026-11-24T12:00:05Z"))
            .then_nothing();
    }

    #[test]
    fn failed_attempts_are_counted_until_one_is_sent() {
        use crate::aggregate::given_when_then::given;
        let state = given::<Notification>([failed(1, Some("2026-11-24T12:01:00Z"), "2026-11-24T12:00:00Z")])
            .when(failed(2, None, "2026-11-24T12:01:00Z"))
            .then([failed(2, None, "2026-11-24T12:01:00Z")]);
        assert_eq!((state.sent, state.attempts), (false, 2));
        let state = given::<Notification>([
            failed(1, Some("2026-11-24T12:01:00Z"), "2026-11-24T12:00:00Z"),
            failed(2, Some("2026-11-24T12:05:00Z"), "2026-11-24T12:01:00Z"),
        ])
        .when(sent("2026-11-24T12:05:00Z"))
        .state_after();
        assert_eq!((state.sent, state.attempts), (true, 2));
    }
}
