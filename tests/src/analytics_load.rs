//! A busy organization's year for the analytics benchmark: 20 agents with
//! adherence checklists, 10 campaigns, and calls spread over 365 days in the
//! organization's zone, each with its life (requested for a campaign, in
//! progress, end-of-call report with timed turns and its analysis, outcome),
//! written through the real append path in chronological order.

use crate::load::{append, events};
use application::event_store::{EventStore, StreamAppend};
use chrono::{DateTime, Duration, Utc};
use domain::agents::AgentEvent;
use domain::analytics::{AdherenceChecklist, CallAnalysis, ChecklistPoint};
use domain::auth::{Currency, OrganizationEvent};
use domain::calls::{
    CallEvent, CallParties, CallReport, CallStatus, CampaignAttempt, EndedReason, Outcome, TranscriptMessage,
};
use domain::time_zone::TimeZone;
use domain::{ExpectedVersion, StreamId};
use uuid::Uuid;

pub const AGENTS: usize = 20;
pub const CAMPAIGNS: usize = 10;
pub const DAYS: i64 = 365;
/// Calls whose lives are written together, one append per step.
const CHUNK: usize = 1_000;

/// What was written.
pub struct Year {
    pub organization_id: Uuid,
    pub owner_id: Uuid,
    pub agents: Vec<Uuid>,
    pub campaigns: Vec<Uuid>,
    pub events: u64,
    /// Every agent's checklist.
    pub checklist: AdherenceChecklist,
}

fn first_day() -> DateTime<Utc> {
    "2025-11-26T13:00:00Z".parse().expect("a time")
}

fn checklist() -> AdherenceChecklist {
    let point = |point: &str, phrases: &[&str]| ChecklistPoint {
        point: point.into(),
        phrases: phrases.iter().map(|p| p.to_string()).collect(),
    };
    AdherenceChecklist::parse(vec![
        point("Greeting", &["this is Ava from Acme", "my name is Ava"]),
        point("Recording disclosure", &["this call may be recorded"]),
        point("Next step", &["book a demo", "schedule a call"]),
    ])
    .expect("a valid checklist")
}

/// Eight timed turns; the agent keeps to the script on most calls, and the
/// prospect's mood follows the outcome.
fn messages(n: usize, outcome: Outcome) -> Vec<TranscriptMessage> {
    let prospect = match outcome {
        Outcome::Qualified | Outcome::Appointment | Outcome::Sale => {
            "That sounds great, I love the idea, tell me more."
        }
        Outcome::NotInterested => "No, I am not interested, please stop calling me.",
        _ => "Hmm, maybe, I am not sure right now.",
    };
    let agent = [
        "Hi, this is Ava from Acme, do you have a minute?",
        if n.is_multiple_of(4) {
            "Quick note: calls are recorded."
        } else {
            "This call may be recorded for quality."
        },
        "We help teams like yours answer every call.",
        if n.is_multiple_of(3) {
            "Thanks for your time."
        } else {
            "Shall we book a demo for next week?"
        },
    ];
    let mut at = 0.0;
    let mut turns = Vec::with_capacity(8);
    for (i, line) in agent.iter().enumerate() {
        for (role, text, seconds) in [
            ("bot", *line, 4.0 + (n % 3) as f64),
            ("user", prospect, 2.0 + (i % 2) as f64),
        ] {
            let time = 1_764_000_000_000.0 + at * 1000.0;
            turns.push(TranscriptMessage {
                role: role.into(),
                message: text.into(),
                time: Some(time),
                end_time: Some(time + seconds * 1000.0),
                duration: Some(seconds * 1000.0),
                seconds_from_start: Some(at),
            });
            at += seconds + 0.5;
        }
    }
    turns
}

const OUTCOMES: [Outcome; 10] = [
    Outcome::NotInterested,
    Outcome::NotInterested,
    Outcome::NotInterested,
    Outcome::Qualified,
    Outcome::Qualified,
    Outcome::Appointment,
    Outcome::Sale,
    Outcome::Voicemail,
    Outcome::NoAnswer,
    Outcome::CallbackRequested,
];

fn call_id(organization: Uuid, n: usize) -> Uuid {
    Uuid::new_v5(&organization, &n.to_le_bytes())
}

/// When call `n` of `calls` started: days in order, hours 8:00–20:00 New York time.
fn started(n: usize, calls: usize) -> DateTime<Utc> {
    let day = (n as i64 * DAYS) / calls.max(1) as i64;
    let minute = ((n * 7919) % (12 * 60)) as i64;
    first_day() + Duration::days(day) + Duration::minutes(minute)
}

fn step(step: usize, n: usize, calls: usize, year: &Year) -> (ExpectedVersion, Vec<CallEvent>) {
    let at = started(n, calls);
    let agent = year.agents[n % AGENTS];
    let outcome = OUTCOMES[(n / AGENTS + n) % OUTCOMES.len()];
    let parties = CallParties {
        vapi_call_id: Some(format!("vapi-{n}")),
        direction: Some("outbound".into()),
        agent_id: Some(agent),
        phone_number_id: None,
        customer_number: Some(format!("+1415555{:04}", n % 10_000)),
    };
    match step {
        0 => (
            ExpectedVersion::NoStream,
            vec![CallEvent::CallRequested {
                organization_id: year.organization_id,
                parties,
                requested_by: year.owner_id,
                requested_at: at - Duration::seconds(20),
                campaign: Some(CampaignAttempt {
                    campaign_id: year.campaigns[n % CAMPAIGNS],
                    contact_id: Uuid::new_v5(&year.organization_id, &(n as u64).to_le_bytes()),
                    attempt_number: 1,
                }),
            }],
        ),
        1 => (
            ExpectedVersion::Exact(1),
            vec![CallEvent::CallStatusUpdated {
                parties,
                status: CallStatus::InProgress,
                ended_reason: None,
                at,
            }],
        ),
        2 => {
            let unanswered = matches!(outcome, Outcome::Voicemail | Outcome::NoAnswer);
            let reason = match outcome {
                Outcome::Voicemail => "voicemail",
                Outcome::NoAnswer => "customer-did-not-answer",
                _ => "customer-ended-call",
            };
            let duration = if unanswered { 15.0 } else { 60.0 + (n % 240) as f64 };
            let report = CallReport {
                ended_reason: Some(EndedReason::parse(reason)),
                started_at: Some(at),
                ended_at: Some(at + Duration::seconds(duration as i64)),
                duration_seconds: Some(duration),
                cost: Some(0.12),
                transcript: Some("AI: Hi, this is Ava from Acme.".into()),
                messages: if unanswered { vec![] } else { messages(n, outcome) },
                recording_url: None,
                stereo_recording_url: None,
                summary: Some("A call.".into()),
                structured_data: Some(serde_json::json!({ "outcome": outcome.as_str() })),
                success_evaluation: None,
            };
            // The report, and its analysis as the call-analysis reactor records it.
            let ended_at = at + Duration::seconds(duration as i64);
            let analysis = CallAnalysis::of(&report, Some(&year.checklist));
            (
                ExpectedVersion::Exact(2),
                vec![
                    CallEvent::CallEnded {
                        parties: parties.clone(),
                        report: Box::new(report),
                        at: ended_at,
                    },
                    CallEvent::CallAnalyzed {
                        parties,
                        report: 1,
                        ended_at,
                        analysis: Box::new(analysis),
                        at: ended_at,
                    },
                ],
            )
        }
        _ => (
            ExpectedVersion::Exact(4),
            vec![CallEvent::CallOutcomeRecorded {
                outcome,
                notes: None,
                source: "analysis".into(),
                at: at + Duration::minutes(5),
            }],
        ),
    }
}

/// Writes the organization and its year of `calls` calls.
pub async fn write_year(store: &dyn EventStore, calls: usize) -> Year {
    let organization_id = Uuid::new_v4();
    let owner_id = Uuid::new_v4();
    let at = first_day() - Duration::days(1);
    let mut streams = vec![StreamAppend {
        stream: StreamId::new("organization", organization_id),
        expected: ExpectedVersion::NoStream,
        events: events(&[
            OrganizationEvent::OrganizationCreated {
                name: "Busy Year Inc".into(),
                owner_user_id: owner_id,
                created_at: at,
            },
            OrganizationEvent::OrganizationSettingsChanged {
                name: "Busy Year Inc".into(),
                timezone: TimeZone::new(chrono_tz::America::New_York),
                currency: Currency::USD,
                changed_by: owner_id,
                at,
            },
        ]),
    }];
    let agents: Vec<Uuid> = (0..AGENTS).map(|_| Uuid::now_v7()).collect();
    for (a, agent) in agents.iter().enumerate() {
        streams.push(StreamAppend {
            stream: StreamId::new("agent", *agent),
            expected: ExpectedVersion::NoStream,
            events: events(&[
                AgentEvent::AgentCreated {
                    organization_id,
                    spec: crate::load::agent_spec(a),
                    created_at: at,
                },
                AgentEvent::AgentAdherenceChecklistSet {
                    checklist: checklist(),
                    at,
                },
            ]),
        });
    }
    let mut year = Year {
        organization_id,
        owner_id,
        agents,
        campaigns: (0..CAMPAIGNS).map(|_| Uuid::now_v7()).collect(),
        events: 0,
        checklist: checklist(),
    };
    year.events += append(store, organization_id, streams).await;
    for first in (0..calls).step_by(CHUNK) {
        for life_step in 0..4 {
            let streams = (first..(first + CHUNK).min(calls))
                .map(|n| {
                    let (expected, call_events) = step(life_step, n, calls, &year);
                    StreamAppend {
                        stream: StreamId::new("call", call_id(organization_id, n)),
                        expected,
                        events: events(&call_events),
                    }
                })
                .collect();
            year.events += append(store, organization_id, streams).await;
        }
    }
    year
}
