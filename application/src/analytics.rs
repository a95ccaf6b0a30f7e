//! Analytics (SPEC §2.7): the figures of the dashboard and its exports, read
//! from the analytics read model in the organization's time zone.

pub mod call_analysis;
pub mod query;

pub use query::{AnalyticsQuery, AnalyticsQueryInput, ConversionTarget, MAX_RANGE_DAYS};

use crate::agents::AgentDirectory;
use crate::auth::Session;
use crate::clock::Clock;
use crate::error::AppError;
use crate::organization::OrganizationService;
use async_trait::async_trait;
use chrono::NaiveDate;
use domain::auth::OrganizationSettings;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// ISO weekdays 1–7 by name.
pub const WEEKDAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Calls started on one local day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayCount {
    pub date: NaiveDate,
    pub count: i64,
}

/// Calls started in one local hour of the day (0–23).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourCount {
    pub hour: u32,
    pub count: i64,
}

/// One stage of Calls → Contacts → Qualified → Appointments → Sales.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStage {
    pub stage: String,
    pub count: i64,
    /// Percent of the previous stage (100 for the first stage, 0 when the previous is empty).
    pub conversion_rate: f64,
}

/// One outcome's share of the calls that have an outcome.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeShare {
    pub outcome: String,
    pub count: i64,
    /// Percent of all calls in the range.
    pub percentage: f64,
}

/// One agent's figures, ranked by conversion rate, then calls.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStats {
    pub rank: u32,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub calls: i64,
    /// Percent of the agent's calls reaching the target outcome.
    pub conversion_rate: f64,
    /// Seconds.
    pub avg_call_duration: f64,
    /// Agent talk seconds per prospect talk second (null without message timings).
    pub talk_ratio: Option<f64>,
    /// −1…1 (null without scored calls).
    pub avg_sentiment: Option<f64>,
    /// 0…1 share of checklist points covered (null without a checklist).
    pub adherence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestHour {
    pub hour: u32,
    pub conversion_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestDay {
    /// Weekday name in English ("Monday"…).
    pub day: String,
    pub conversion_rate: f64,
}

/// The `AnalyticsMetrics` interface of SPEC §2.7, with its field names.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsMetrics {
    pub total_calls: i64,
    /// Every day of the range, zeros included.
    pub calls_by_day: Vec<DayCount>,
    /// Every hour 0–23, zeros included.
    pub calls_by_hour: Vec<HourCount>,
    /// Percent of calls reaching the target outcome.
    pub conversion_rate: f64,
    pub funnel_stages: Vec<FunnelStage>,
    /// Average agent speaking seconds per call with message timings.
    pub avg_talk_time: f64,
    /// Average prospect speaking seconds per call with message timings.
    pub avg_listen_time: f64,
    /// Agent talk time / prospect talk time (0 when the prospect never spoke).
    pub talk_ratio: f64,
    pub outcomes: Vec<OutcomeShare>,
    pub agent_stats: Vec<AgentStats>,
    /// Null when no hour has `minSample` calls.
    pub best_time_to_call: Option<BestHour>,
    /// Null when no weekday has `minSample` calls.
    pub best_day_to_call: Option<BestDay>,
}

/// Talk analysis from the transcript's message timings.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TalkTime {
    pub avg_talk_time: f64,
    pub avg_listen_time: f64,
    pub talk_ratio: f64,
    /// Average of each call's longest uninterrupted agent turn, seconds.
    pub avg_longest_monologue: f64,
    /// Average overlapping turns per call.
    pub avg_interruptions: f64,
    /// Share (0…1) of call time in which nobody spoke.
    pub silence_share: f64,
    /// Calls whose timings were analysed.
    pub calls_analyzed: i64,
    /// Calls without message timings, left out of the averages above.
    pub calls_without_timings: i64,
}

/// One weekday × hour cell of the heatmap.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeatCell {
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    pub weekday: u32,
    pub hour: u32,
    pub calls: i64,
    /// Percent of calls a human answered.
    pub contact_rate: f64,
    /// Percent of calls reaching the target outcome.
    pub conversion_rate: f64,
    /// Fewer calls than `minSample`: shown, never ranked.
    pub low_sample: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestTimes {
    pub best_time_to_call: Option<BestHour>,
    pub best_day_to_call: Option<BestDay>,
    pub min_sample: i64,
    /// All 7 × 24 cells, Monday 0:00 first.
    pub heatmap: Vec<HeatCell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SentimentDay {
    pub date: NaiveDate,
    /// Null on a day without scored calls.
    pub average: Option<f64>,
    pub calls: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sentiment {
    pub average: Option<f64>,
    pub positive: i64,
    pub neutral: i64,
    pub negative: i64,
    /// Every day of the range.
    pub trend: Vec<SentimentDay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdherenceDay {
    pub date: NaiveDate,
    pub average: Option<f64>,
    pub calls: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentAdherence {
    pub agent_id: Uuid,
    pub agent_name: String,
    pub average: f64,
    pub calls: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissedPoint {
    pub point: String,
    pub calls: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adherence {
    /// 0…1 over the scored calls (calls of agents with a checklist).
    pub average: Option<f64>,
    pub calls_scored: i64,
    pub by_agent: Vec<AgentAdherence>,
    pub trend: Vec<AdherenceDay>,
    /// Points most often missed, most first.
    pub missed_points: Vec<MissedPoint>,
}

/// Who spoke how long on one call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallTalk {
    pub agent_seconds: f64,
    pub prospect_seconds: f64,
    /// Agent seconds per prospect second (null when the prospect never spoke).
    pub talk_ratio: Option<f64>,
    pub longest_monologue_seconds: f64,
    pub interruptions: i32,
    pub silence_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSentiment {
    /// −1…1.
    pub score: f64,
    /// positive, neutral or negative.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallAdherence {
    /// 0…1: the share of the agent's checklist points covered.
    pub score: f64,
    pub missed_points: Vec<String>,
}

/// What analytics made of one call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallAnalysis {
    pub call_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The start's local day and hour in the organization's zone.
    pub local_date: NaiveDate,
    pub local_hour: i16,
    /// The furthest funnel stage: called, contact, qualified, appointment or sale.
    pub funnel_stage: String,
    pub outcome: Option<String>,
    /// Null without message timings.
    pub talk: Option<CallTalk>,
    pub sentiment: Option<CallSentiment>,
    /// Null when the agent had no checklist.
    pub adherence: Option<CallAdherence>,
}

/// Everything an export shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsReport {
    pub organization_name: String,
    pub timezone: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub target: ConversionTarget,
    pub metrics: AnalyticsMetrics,
    pub talk: TalkTime,
    pub best_times: BestTimes,
    pub sentiment: Sentiment,
    pub adherence: Adherence,
}

/// The analytics read model.
#[async_trait]
pub trait AnalyticsReadModel: Send + Sync {
    async fn metrics(&self, query: &AnalyticsQuery) -> Result<AnalyticsMetrics, AppError>;
    async fn talk_time(&self, query: &AnalyticsQuery) -> Result<TalkTime, AppError>;
    async fn best_times(&self, query: &AnalyticsQuery) -> Result<BestTimes, AppError>;
    async fn agents(&self, query: &AnalyticsQuery) -> Result<Vec<AgentStats>, AppError>;
    async fn sentiment(&self, query: &AnalyticsQuery) -> Result<Sentiment, AppError>;
    async fn adherence(&self, query: &AnalyticsQuery) -> Result<Adherence, AppError>;
    async fn call(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<CallAnalysis>, AppError>;
}

/// Renders an export file.
pub trait ReportRenderer: Send + Sync {
    fn excel(&self, report: &AnalyticsReport) -> Result<Vec<u8>, AppError>;
    fn pdf(&self, report: &AnalyticsReport) -> Result<Vec<u8>, AppError>;
}

/// The file formats of `/export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Excel,
    Pdf,
}

impl ExportFormat {
    pub fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        match raw.map(str::trim) {
            Some("excel") | Some("xlsx") => Ok(ExportFormat::Excel),
            Some("pdf") => Ok(ExportFormat::Pdf),
            _ => Err(AppError::validation("format", "format must be pdf or excel")),
        }
    }
}

/// A rendered export.
#[derive(Debug, Clone)]
pub struct ExportFile {
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The analytics use cases: every request is checked against the caller's
/// organization (its zone, its agents), then answered from the read model.
pub struct AnalyticsService {
    pub read_model: Arc<dyn AnalyticsReadModel>,
    pub organizations: Arc<OrganizationService>,
    pub agents: Arc<dyn AgentDirectory>,
    pub renderer: Arc<dyn ReportRenderer>,
    pub clock: Arc<dyn Clock>,
}

impl AnalyticsService {
    /// Checks the parameters in the caller's organization.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn query(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<AnalyticsQuery, AppError> {
        Ok(self.checked(caller, input).await?.0)
    }

    /// The checked query and the organization's settings it was checked with.
    async fn checked(
        &self,
        caller: &Session,
        input: AnalyticsQueryInput,
    ) -> Result<(AnalyticsQuery, OrganizationSettings), AppError> {
        let settings = self.organizations.settings(caller).await?;
        let today = self.clock.now().with_timezone(&settings.timezone.tz()).date_naive();
        let query = input.check(caller.organization_id, settings.timezone, today)?;
        if !query.agent_ids.is_empty() {
            let known = self.agents.ids(caller.organization_id).await?;
            if let Some(unknown) = query.agent_ids.iter().find(|id| !known.contains(id)) {
                return Err(AppError::validation(
                    "agentId",
                    format!("agentId {unknown} is not an agent of this organization"),
                ));
            }
        }
        Ok((query, settings))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn overview(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<AnalyticsMetrics, AppError> {
        self.read_model.metrics(&self.query(caller, input).await?).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn talk_time(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<TalkTime, AppError> {
        self.read_model.talk_time(&self.query(caller, input).await?).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn best_times(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<BestTimes, AppError> {
        self.read_model.best_times(&self.query(caller, input).await?).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn agents(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<Vec<AgentStats>, AppError> {
        self.read_model.agents(&self.query(caller, input).await?).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn sentiment(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<Sentiment, AppError> {
        self.read_model.sentiment(&self.query(caller, input).await?).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn adherence(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<Adherence, AppError> {
        self.read_model.adherence(&self.query(caller, input).await?).await
    }

    /// What analytics made of one of the organization's calls.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %call_id))]
    pub async fn call(&self, caller: &Session, call_id: Uuid) -> Result<CallAnalysis, AppError> {
        self.read_model
            .call(caller.organization_id, call_id)
            .await?
            .ok_or_else(|| AppError::not_found("call"))
    }

    /// Every section of the dashboard, as the exports show it.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn report(&self, caller: &Session, input: AnalyticsQueryInput) -> Result<AnalyticsReport, AppError> {
        let (query, settings) = self.checked(caller, input).await?;
        let read = &self.read_model;
        let (metrics, talk, best_times, sentiment, adherence) = futures::try_join!(
            read.metrics(&query),
            read.talk_time(&query),
            read.best_times(&query),
            read.sentiment(&query),
            read.adherence(&query)
        )?;
        Ok(AnalyticsReport {
            organization_name: settings.name,
            timezone: settings.timezone.name().to_owned(),
            start_date: query.start,
            end_date: query.end,
            target: query.target,
            metrics,
            talk,
            best_times,
            sentiment,
            adherence,
        })
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn export(
        &self,
        caller: &Session,
        input: AnalyticsQueryInput,
        format: ExportFormat,
    ) -> Result<ExportFile, AppError> {
        let report = self.report(caller, input).await?;
        let stem = format!("voxreach-analytics-{}-to-{}", report.start_date, report.end_date);
        Ok(match format {
            ExportFormat::Excel => ExportFile {
                file_name: format!("{stem}.xlsx"),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                bytes: self.renderer.excel(&report)?,
            },
            ExportFormat::Pdf => ExportFile {
                file_name: format!("{stem}.pdf"),
                content_type: "application/pdf",
                bytes: self.renderer.pdf(&report)?,
            },
        })
    }
}
