//! What analytics learns from one call's end-of-call report: talk timings,
//! sentiment and script adherence. Pure functions, scored once per report by
//! the call-analysis reactor and recorded as `CallAnalyzed`, so read models
//! replay numbers instead of transcripts.
//!
//! - **Talk**: from the transcript's messages with timings. A turn is a message of the agent (`bot`,
//!   `assistant`) or the prospect (`user`) with `secondsFromStart` and a length: `endTime − time`
//!   (both epoch milliseconds), else `duration` (milliseconds). A turn starting before the other
//!   party's previous turn ended is an interruption. Silence is the call's time outside every turn.
//! - **Sentiment**: Vapi's analysis when its structured data carries `sentiment` (a number −1…1,
//!   or `positive` / `neutral` / `negative`, scored 0.5 / 0 / −0.5), else VADER's compound score
//!   over the prospect's turns. Labels: positive from 0.05, negative to −0.05 (VADER's own bands).
//! - **Adherence**: the share of an agent's checklist points its turns covered. A point is covered
//!   when one of its phrases occurs in the agent's words, exactly or fuzzily: some run of as many
//!   words has a normalized Levenshtein similarity of at least [`PHRASE_SIMILARITY`] to the phrase
//!   (both lower-cased, punctuation dropped).

use crate::calls::{CallReport, EndedReason, TranscriptMessage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::OnceLock;
use thiserror::Error;

/// How alike a run of words and a phrase must be for the phrase to count as said.
pub const PHRASE_SIMILARITY: f64 = 0.8;
/// Most points on one checklist, and most phrases per point.
pub const CHECKLIST_POINTS_LIMIT: usize = 50;
pub const PHRASES_PER_POINT_LIMIT: usize = 20;
const TEXT_LIMIT_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct ChecklistError {
    pub field: String,
    pub reason: String,
}

/// One thing the agent must say, and the ways of saying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChecklistPoint {
    pub point: String,
    pub phrases: Vec<String>,
}

/// An agent's required points, checked when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdherenceChecklist(Vec<ChecklistPoint>);

impl AdherenceChecklist {
    pub fn parse(points: Vec<ChecklistPoint>) -> Result<Self, ChecklistError> {
        let invalid = |field: String, reason: &str| ChecklistError {
            field,
            reason: reason.to_owned(),
        };
        if points.len() > CHECKLIST_POINTS_LIMIT {
            return Err(invalid(
                "checklist".into(),
                &format!("at most {CHECKLIST_POINTS_LIMIT} points"),
            ));
        }
        let mut seen = HashSet::new();
        let mut checked = Vec::with_capacity(points.len());
        for (i, point) in points.into_iter().enumerate() {
            let name = point.point.trim().to_owned();
            if name.is_empty() || name.chars().count() > TEXT_LIMIT_CHARS {
                return Err(invalid(
                    format!("checklist[{i}].point"),
                    &format!("must be 1 to {TEXT_LIMIT_CHARS} characters"),
                ));
            }
            if !seen.insert(name.to_lowercase()) {
                return Err(invalid(format!("checklist[{i}].point"), "points must be distinct"));
            }
            if point.phrases.is_empty() || point.phrases.len() > PHRASES_PER_POINT_LIMIT {
                return Err(invalid(
                    format!("checklist[{i}].phrases"),
                    &format!("1 to {PHRASES_PER_POINT_LIMIT} phrases"),
                ));
            }
            let mut phrases = Vec::with_capacity(point.phrases.len());
            for (j, phrase) in point.phrases.into_iter().enumerate() {
                if words(&phrase).is_empty() || phrase.chars().count() > TEXT_LIMIT_CHARS {
                    return Err(invalid(
                        format!("checklist[{i}].phrases[{j}]"),
                        &format!("must hold a word and at most {TEXT_LIMIT_CHARS} characters"),
                    ));
                }
                phrases.push(phrase.trim().to_owned());
            }
            checked.push(ChecklistPoint { point: name, phrases });
        }
        Ok(Self(checked))
    }

    pub fn points(&self) -> &[ChecklistPoint] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How well the agent's turns of `messages` kept to the checklist; `None`
    /// when there is no checklist or the agent said nothing.
    pub fn score(&self, messages: &[TranscriptMessage]) -> Option<AdherenceScore> {
        if self.0.is_empty() {
            return None;
        }
        let said: Vec<String> = messages
            .iter()
            .filter(|m| Speaker::of(&m.role) == Some(Speaker::Agent))
            .flat_map(|m| words(&m.message))
            .collect();
        if said.is_empty() {
            return None;
        }
        let vocabulary: HashSet<&str> = said.iter().map(String::as_str).collect();
        let missed: Vec<String> = self
            .0
            .iter()
            .filter(|point| {
                !point
                    .phrases
                    .iter()
                    .any(|phrase| phrase_said(&said, &vocabulary, phrase))
            })
            .map(|point| point.point.clone())
            .collect();
        Some(AdherenceScore {
            score: (self.0.len() - missed.len()) as f64 / self.0.len() as f64,
            missed,
        })
    }
}

/// A call's adherence: the covered share (0…1) and the points missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdherenceScore {
    pub score: f64,
    pub missed: Vec<String>,
}

/// Lower-cased words, punctuation dropped (apostrophes kept inside words).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `phrase` occurs in `said`, exactly or within [`PHRASE_SIMILARITY`].
/// Only runs sharing at least half the phrase's words are compared by
/// edit distance, which keeps long transcripts cheap.
fn phrase_said(said: &[String], vocabulary: &HashSet<&str>, phrase: &str) -> bool {
    let wanted = words(phrase);
    let shared_needed = wanted.len().div_ceil(2);
    if wanted.iter().filter(|w| vocabulary.contains(w.as_str())).count() < shared_needed && wanted.len() > 1 {
        return false;
    }
    let target = wanted.join(" ");
    let width = wanted.len().min(said.len());
    said.windows(width).any(|run| {
        // A one-word phrase is compared with every word; longer ones only with runs sharing words.
        let shared = run.iter().filter(|w| wanted.contains(w)).count();
        if wanted.len() > 1 && shared < shared_needed.min(width) {
            return false;
        }
        let candidate = run.join(" ");
        candidate == target || strsim::normalized_levenshtein(&candidate, &target) >= PHRASE_SIMILARITY
    })
}

/// Who spoke a transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaker {
    Agent,
    Prospect,
}

impl Speaker {
    fn of(role: &str) -> Option<Speaker> {
        match role {
            "bot" | "assistant" => Some(Speaker::Agent),
            "user" => Some(Speaker::Prospect),
            _ => None,
        }
    }
}

/// One timed turn: who, and from when to when (seconds from the call's start).
struct Turn {
    speaker: Speaker,
    start: f64,
    end: f64,
}

fn timed_turns(messages: &[TranscriptMessage]) -> Vec<Turn> {
    let mut turns: Vec<Turn> = messages
        .iter()
        .filter_map(|m| {
            let speaker = Speaker::of(&m.role)?;
            let start = m.seconds_from_start?;
            let millis = match (m.time, m.end_time) {
                (Some(from), Some(to)) if to >= from => to - from,
                _ => m.duration?,
            };
            (start >= 0.0 && millis > 0.0 && millis.is_finite()).then_some(Turn {
                speaker,
                start,
                end: start + millis / 1000.0,
            })
        })
        .collect();
    turns.sort_by(|a, b| a.start.total_cmp(&b.start));
    turns
}

/// Who spoke how long in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TalkStats {
    pub agent_seconds: f64,
    pub prospect_seconds: f64,
    /// The longest run of agent turns without a prospect turn between them.
    pub longest_monologue_seconds: f64,
    pub interruptions: u32,
    pub silence_seconds: f64,
    pub call_seconds: f64,
}

impl TalkStats {
    /// `None` when no message carries timings.
    pub fn of(report: &CallReport) -> Option<TalkStats> {
        let turns = timed_turns(&report.messages);
        let last_end = turns.iter().map(|t| t.end).fold(0.0, f64::max);
        if turns.is_empty() {
            return None;
        }
        let call_seconds = report
            .duration_seconds
            .filter(|d| *d > 0.0)
            .unwrap_or(last_end)
            .max(last_end);
        let mut stats = TalkStats {
            agent_seconds: 0.0,
            prospect_seconds: 0.0,
            longest_monologue_seconds: 0.0,
            interruptions: 0,
            silence_seconds: 0.0,
            call_seconds,
        };
        let mut last_end_of = [f64::NEG_INFINITY; 2];
        let mut monologue_start: Option<f64> = None;
        let mut spoken = 0.0;
        let mut covered_until = 0.0_f64;
        for turn in &turns {
            let (own, other) = match turn.speaker {
                Speaker::Agent => (0, 1),
                Speaker::Prospect => (1, 0),
            };
            let length = turn.end - turn.start;
            match turn.speaker {
                Speaker::Agent => {
                    stats.agent_seconds += length;
                    let start = *monologue_start.get_or_insert(turn.start);
                    stats.longest_monologue_seconds = stats.longest_monologue_seconds.max(turn.end - start);
                }
                Speaker::Prospect => {
                    stats.prospect_seconds += length;
                    monologue_start = None;
                }
            }
            if turn.start < last_end_of[other] {
                stats.interruptions += 1;
            }
            last_end_of[own] = last_end_of[own].max(turn.end);
            // Union of the speech intervals, in start order.
            if turn.end > covered_until {
                spoken += turn.end - turn.start.max(covered_until);
                covered_until = turn.end;
            }
        }
        stats.silence_seconds = (call_seconds - spoken).max(0.0);
        Some(stats)
    }
}

/// How a call felt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SentimentLabel {
    Positive,
    Neutral,
    Negative,
}

impl SentimentLabel {
    pub fn of(score: f64) -> Self {
        if score >= 0.05 {
            SentimentLabel::Positive
        } else if score <= -0.05 {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Positive => "positive",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Negative => "negative",
        }
    }
}

/// A call's sentiment: −1…1 and its label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    pub score: f64,
    pub label: SentimentLabel,
}

fn analyzer() -> &'static vader_sentiment::SentimentIntensityAnalyzer<'static> {
    static ANALYZER: OnceLock<vader_sentiment::SentimentIntensityAnalyzer<'static>> = OnceLock::new();
    ANALYZER.get_or_init(vader_sentiment::SentimentIntensityAnalyzer::new)
}

impl SentimentScore {
    /// Vapi's analysis when it has one, else the prospect's words scored; `None` when neither exists.
    pub fn of(report: &CallReport) -> Option<SentimentScore> {
        let score = Self::from_analysis(report).or_else(|| {
            let said = report
                .messages
                .iter()
                .filter(|m| Speaker::of(&m.role) == Some(Speaker::Prospect))
                .map(|m| m.message.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if said.trim().is_empty() {
                return None;
            }
            analyzer().polarity_scores(&said).get("compound").copied()
        })?;
        let score = score.clamp(-1.0, 1.0);
        Some(SentimentScore {
            score,
            label: SentimentLabel::of(score),
        })
    }

    fn from_analysis(report: &CallReport) -> Option<f64> {
        let value = report.structured_data.as_ref()?.get("sentiment")?;
        if let Some(number) = value.as_f64() {
            return number.is_finite().then_some(number);
        }
        match value.as_str()?.trim().to_lowercase().as_str() {
            "positive" => Some(0.5),
            "neutral" => Some(0.0),
            "negative" => Some(-0.5),
            _ => None,
        }
    }
}

/// Everything analytics takes from one end-of-call report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallAnalysis {
    pub started_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub ended_reason: Option<EndedReason>,
    /// The prospect said something: a human (or their voicemail greeting) answered.
    pub prospect_spoke: bool,
    pub talk: Option<TalkStats>,
    pub sentiment: Option<SentimentScore>,
    /// `None` when the agent had no checklist or the agent never spoke.
    pub adherence: Option<AdherenceScore>,
}

impl CallAnalysis {
    /// Scores `report`; adherence against the agent's checklist when it has one.
    pub fn of(report: &CallReport, checklist: Option<&AdherenceChecklist>) -> Self {
        Self {
            started_at: report.started_at,
            duration_seconds: report.duration_seconds,
            ended_reason: report.ended_reason.clone(),
            prospect_spoke: report
                .messages
                .iter()
                .any(|m| Speaker::of(&m.role) == Some(Speaker::Prospect)),
            talk: TalkStats::of(report),
            sentiment: SentimentScore::of(report),
            adherence: checklist.and_then(|c| c.score(&report.messages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(role: &str, message: &str, from: f64, seconds: f64) -> TranscriptMessage {
        TranscriptMessage {
            role: role.into(),
            message: message.into(),
            time: Some(1_764_000_000_000.0 + from * 1000.0),
            end_time: Some(1_764_000_000_000.0 + (from + seconds) * 1000.0),
            duration: None,
            seconds_from_start: Some(from),
        }
    }

    fn report(messages: Vec<TranscriptMessage>, duration: f64) -> CallReport {
        CallReport {
            duration_seconds: Some(duration),
            messages,
            ..CallReport::default()
        }
    }

    #[test]
    fn talk_time_monologue_interruptions_and_silence_come_from_the_turns() {
        let call = report(
            vec![
                turn("system", "You are Ava", 0.0, 0.0),
                turn("bot", "Hi, this is Ava from Acme.", 1.0, 4.0),
                turn("bot", "I am calling about your quote.", 5.0, 3.0),
                // Starts while the agent is still speaking: an interruption.
                turn("user", "Oh yes, hello.", 7.0, 2.0),
                turn("bot", "Great.", 10.0, 1.0),
            ],
            20.0,
        );
        let stats = TalkStats::of(&call).unwrap();
        assert_eq!(stats.agent_seconds, 8.0);
        assert_eq!(stats.prospect_seconds, 2.0);
        assert_eq!(stats.longest_monologue_seconds, 7.0);
        assert_eq!(stats.interruptions, 1);
        // Speech covers 1–9 and 10–11: 9 of 20 seconds.
        assert_eq!(stats.silence_seconds, 11.0);
        assert_eq!(stats.call_seconds, 20.0);
    }

    #[test]
    fn duration_in_milliseconds_is_used_without_end_times_and_untimed_calls_have_no_stats() {
        let mut message = turn("user", "hello", 2.0, 0.0);
        message.end_time = None;
        message.duration = Some(1500.0);
        assert_eq!(
            TalkStats::of(&report(vec![message], 10.0)).unwrap().prospect_seconds,
            1.5
        );
        let untimed = TranscriptMessage {
            role: "bot".into(),
            message: "Hi".into(),
            time: None,
            end_time: None,
            duration: None,
            seconds_from_start: None,
        };
        assert_eq!(TalkStats::of(&report(vec![untimed], 10.0)), None);
    }

    #[test]
    fn sentiment_prefers_vapis_analysis_then_scores_the_prospects_words() {
        let mut call = report(
            vec![turn("user", "This is great, I love it, thank you!", 1.0, 2.0)],
            5.0,
        );
        let scored = SentimentScore::of(&call).unwrap();
        assert!(scored.score > 0.5, "{scored:?}");
        assert_eq!(scored.label, SentimentLabel::Positive);
        call.messages = vec![turn("user", "This is terrible and I hate these calls.", 1.0, 2.0)];
        assert_eq!(SentimentScore::of(&call).unwrap().label, SentimentLabel::Negative);
        call.structured_data = Some(json!({"sentiment": 0.02}));
        assert_eq!(
            SentimentScore::of(&call).unwrap(),
            SentimentScore {
                score: 0.02,
                label: SentimentLabel::Neutral
            }
        );
        call.structured_data = Some(json!({"sentiment": "Negative"}));
        assert_eq!(SentimentScore::of(&call).unwrap().score, -0.5);
        call.structured_data = None;
        call.messages = vec![turn("bot", "Hello?", 1.0, 1.0)];
        assert_eq!(SentimentScore::of(&call), None);
    }

    fn checklist() -> AdherenceChecklist {
        AdherenceChecklist::parse(vec![
            ChecklistPoint {
                point: "Greeting".into(),
                phrases: vec!["this is Ava from Acme".into()],
            },
            ChecklistPoint {
                point: "Recording disclosure".into(),
                phrases: vec!["this call may be recorded".into(), "we record calls".into()],
            },
            ChecklistPoint {
                point: "Next step".into(),
                phrases: vec!["book a demo".into()],
            },
        ])
        .unwrap()
    }

    #[test]
    fn adherence_counts_points_said_exactly_or_nearly_by_the_agent_only() {
        let messages = vec![
            turn("bot", "Hi, this is Ava from Acme!", 0.0, 1.0),
            // One word off: "calls" for "call" is still the disclosure.
            turn("bot", "Just so you know, this calls may be recorded.", 2.0, 1.0),
            // The prospect saying it does not count for the agent.
            turn("user", "Can I book a demo?", 3.0, 1.0),
        ];
        let score = checklist().score(&messages).unwrap();
        assert!((score.score - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(score.missed, vec!["Next step".to_owned()]);
        // One-word phrases match fuzzily too.
        let thanks = AdherenceChecklist::parse(vec![ChecklistPoint {
            point: "Thanks".into(),
            phrases: vec!["thankyou".into()],
        }])
        .unwrap();
        assert_eq!(
            thanks
                .score(&[turn("bot", "Thank you, thankyoo!", 0.0, 1.0)])
                .unwrap()
                .score,
            1.0
        );
        assert_eq!(AdherenceChecklist::default().score(&messages), None);
    }

    #[test]
    fn a_checklist_is_checked_when_set() {
        let point = |name: &str, phrases: &[&str]| ChecklistPoint {
            point: name.into(),
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
        };
        let error = AdherenceChecklist::parse(vec![point("Greeting", &[])]).unwrap_err();
        assert_eq!(error.field, "checklist[0].phrases");
        let error = AdherenceChecklist::parse(vec![point("A", &["x"]), point("a", &["y"])]).unwrap_err();
        assert_eq!(error.field, "checklist[1].point");
        let error = AdherenceChecklist::parse(vec![point("A", &["  ...  "])]).unwrap_err();
        assert_eq!(error.field, "checklist[0].phrases[0]");
    }
}
