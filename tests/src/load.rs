//! A realistic history for benchmarks: organizations with agents (created,
//! updated, synced), an A/B test each, and calls with their whole life —
//! requested, variant assigned, placement, ringing, in progress, end-of-call
//! report with a transcript, outcome — then its sync to the CRM, and for one
//! call in ten a meeting booked in the organization's calendar. Calls run in
//! overlapping waves, so one call's events are spread over the log as in production.

use application::event_store::{AppendRequest, EventStore, StreamAppend};
use chrono::{DateTime, Duration, Utc};
use domain::ab_testing::{
    AbTestEvent, AssignmentEvent, SuccessOutcome, TestSettings, TestVariant, VariantEvent, VariantSpec,
};
use domain::agents::{AgentEvent, AgentSpec, ModelSettings, VoiceSettings};
use domain::analytics::CallAnalysis;
use domain::calendar::{Attendee, BookingEvent, CalendarEvent, CalendarProvider, CalendarSettings};
use domain::calls::{CallEvent, CallParties, CallReport, CallStatus, EndedReason, Outcome, TranscriptMessage};
use domain::connections::SignIn;
use domain::crm::{CrmEvent, CrmProvider, CrmSettings, CrmSyncEvent};
use domain::events::DomainEvent;
use domain::{EventMetadata, ExpectedVersion, NewEvent, StreamId};
use uuid::Uuid;

pub const ORGANIZATIONS: usize = 10;
pub const AGENTS_PER_ORGANIZATION: usize = 20;
/// Calls whose lives are written together, one append per step of their life.
pub const WAVE: usize = 250;

fn start() -> DateTime<Utc> {
    "2026-11-02T09:00:00Z".parse().unwrap()
}

pub fn agent_spec(n: usize) -> AgentSpec {
    AgentSpec {
        name: format!("Agent {n}"),
        system_prompt: "You are a friendly assistant who qualifies leads and books appointments.".into(),
        first_message: Some("Hi! Do you have a minute?".into()),
        voice: VoiceSettings {
            provider: "openai".into(),
            voice_id: "nova".into(),
            speed: None,
            pitch: None,
            stability: None,
        },
        language: "en-US".into(),
        transfer_number: None,
        model: ModelSettings::default(),
        outcome_rule: None,
    }
}

/// About 2.5 kB of transcript in 16 turns, as a 2-minute call has.
fn report(n: usize, at: DateTime<Utc>) -> CallReport {
    let messages: Vec<TranscriptMessage> = (0..16)
        .map(|turn| TranscriptMessage {
            role: if turn % 2 == 0 { "assistant" } else { "user" }.into(),
            message: format!(
                "Turn {turn} of call {n}: thanks for taking the time, could you tell me a bit more about how you handle it today?"
            ),
            time: None,
            end_time: None,
            duration: Some(6000.0),
            seconds_from_start: Some(turn as f64 * 7.5),
        })
        .collect();
    let transcript = messages
        .iter()
        .map(|m| format!("{}: {}", m.role, m.message))
        .collect::<Vec<_>>()
        .join("\n");
    CallReport {
        ended_reason: Some(EndedReason::parse("customer-ended-call")),
        started_at: Some(at - Duration::seconds(120)),
        ended_at: Some(at),
        duration_seconds: Some(120.0 + (n % 60) as f64),
        cost: Some(0.12),
        transcript: Some(transcript),
        messages,
        recording_url: Some(format!("https://storage.vapi.ai/{n}-mono.wav")),
        stereo_recording_url: Some(format!("https://storage.vapi.ai/{n}-stereo.wav")),
        summary: Some("The prospect wants a demo next week.".into()),
        structured_data: Some(serde_json::json!({ "budget": "5k", "timeline": "Q1" })),
        success_evaluation: Some("true".into()),
    }
}

struct Organization {
    id: Uuid,
    calendar_id: Uuid,
    agents: Vec<Uuid>,
    test_id: Uuid,
    variants: [Uuid; 2],
}

pub(crate) fn events<E: DomainEvent>(events: &[E]) -> Vec<NewEvent> {
    let metadata = EventMetadata::default();
    events.iter().map(|e| e.to_new_event(&metadata)).collect()
}

/// Appends `streams` in one transaction; returns the number of events.
pub(crate) async fn append(store: &dyn EventStore, organization_id: Uuid, streams: Vec<StreamAppend>) -> u64 {
    let count = streams.iter().map(|s| s.events.len() as u64).sum();
    store
        .append(AppendRequest {
            organization_id,
            streams,
            idempotency_key: None,
        })
        .await
        .expect("append");
    count
}

async fn organization(store: &dyn EventStore, n: usize) -> Organization {
    let id = Uuid::new_v4();
    let at = start();
    let mut streams = vec![];
    let mut agents = vec![];
    for a in 0..AGENTS_PER_ORGANIZATION {
        let agent = Uuid::now_v7();
        agents.push(agent);
        streams.push(StreamAppend {
            stream: StreamId::new("agent", agent),
            expected: ExpectedVersion::NoStream,
            events: events(&[
                AgentEvent::AgentCreated {
                    organization_id: id,
                    spec: agent_spec(a),
                    created_at: at,
                },
                AgentEvent::AgentUpdated {
                    spec: agent_spec(a + 1),
                    updated_at: at,
                },
                AgentEvent::AgentSyncedToVapi {
                    vapi_assistant_id: Some(format!("asst-{n}-{a}")),
                    revision: 2,
                    synced_at: at,
                },
            ]),
        });
    }
    let variants = [Uuid::now_v7(), Uuid::now_v7()];
    let test_variants: Vec<TestVariant> = variants
        .iter()
        .enumerate()
        .map(|(v, variant_id)| TestVariant {
            variant_id: *variant_id,
            name: format!("Script {v}"),
            prompt: format!("Script {v}: open with the customer's pain."),
            is_control: v == 0,
            traffic_percent: 50,
        })
        .collect();
    for variant in &test_variants {
        streams.push(StreamAppend {
            stream: StreamId::new("script-variant", variant.variant_id),
            expected: ExpectedVersion::NoStream,
            events: events(&[VariantEvent::VariantCreated {
                organization_id: id,
                agent_id: agents[0],
                spec: VariantSpec {
                    name: variant.name.clone(),
                    prompt: variant.prompt.clone(),
                    is_control: variant.is_control,
                    traffic_percent: variant.traffic_percent,
                },
                at,
            }]),
        });
    }
    let test_id = Uuid::now_v7();
    streams.push(StreamAppend {
        stream: StreamId::new("ab-test", test_id),
        expected: ExpectedVersion::NoStream,
        events: events(&[AbTestEvent::AbTestStarted {
            organization_id: id,
            agent_id: agents[0],
            settings: TestSettings {
                name: "Opening lines".into(),
                success_outcome: SuccessOutcome::Qualified,
                min_sample_size: 100,
                auto_promote: false,
            },
            variants: test_variants,
            at,
        }]),
    });
    let calendar_id = Uuid::now_v7();
    streams.push(StreamAppend {
        stream: StreamId::new("calendar-integration", calendar_id),
        expected: ExpectedVersion::NoStream,
        events: events(&[CalendarEvent::CalendarConnected {
            sign_in: SignIn {
                organization_id: id,
                connected_by: Uuid::nil(),
                provider: CalendarProvider::Google,
            },
            account: format!("owner{n}@example.com"),
            webhook_subscription: None,
            settings: CalendarSettings {
                agent_ids: agents.clone(),
                is_default: true,
                ..CalendarSettings::default()
            },
            at,
        }]),
    });
    streams.push(StreamAppend {
        stream: StreamId::new("crm-integration", CrmProvider::Hubspot.integration_id(id)),
        expected: ExpectedVersion::NoStream,
        events: events(&[CrmEvent::CrmConnected {
            sign_in: SignIn {
                organization_id: id,
                connected_by: Uuid::nil(),
                provider: CrmProvider::Hubspot,
            },
            account_id: format!("{}", 60_000 + n),
            scopes: vec!["crm.objects.contacts.write".into()],
            settings: CrmSettings::defaults_for(CrmProvider::Hubspot),
            at,
        }]),
    });
    append(store, id, streams).await;
    Organization {
        id,
        calendar_id,
        agents,
        test_id,
        variants,
    }
}

/// The steps of a call's life after it was requested, in order.
fn life_step(step: usize, n: usize, vapi_call_id: &str, at: DateTime<Utc>) -> Vec<CallEvent> {
    let parties = CallParties {
        vapi_call_id: Some(vapi_call_id.to_owned()),
        ..CallParties::default()
    };
    let status = |status| CallEvent::CallStatusUpdated {
        parties: parties.clone(),
        status,
        ended_reason: None,
        at,
    };
    match step {
        1 => vec![
            CallEvent::CallPlacementStarted {
                attempt: Uuid::now_v7(),
                at,
            },
            CallEvent::CallPlacedWithVapi {
                vapi_call_id: vapi_call_id.to_owned(),
                at,
            },
        ],
        2 => vec![status(CallStatus::Ringing)],
        3 => vec![status(CallStatus::InProgress)],
        // The report, and its analysis as the call-analysis reactor records it.
        4 => {
            let report = report(n, at);
            let analysis = CallAnalysis::of(&report, None);
            vec![
                CallEvent::CallEnded {
                    parties: parties.clone(),
                    report: Box::new(report),
                    at,
                },
                CallEvent::CallAnalyzed {
                    parties: parties.clone(),
                    report: 1,
                    ended_at: at,
                    analysis: Box::new(analysis),
                    at,
                },
            ]
        }
        _ => vec![CallEvent::CallOutcomeRecorded {
            outcome: Outcome::ALL[n % Outcome::ALL.len()],
            notes: None,
            source: "agent".into(),
            at,
        }],
    }
}

/// What follows the calls of a wave once they ended: each call's sync to the
/// CRM, and the meetings one call in ten booked (one append to the calendar's
/// bookings stream). Returns the appends and their number of events.
fn follow_ups(
    organization: &Organization,
    calls: std::ops::Range<usize>,
    at: DateTime<Utc>,
) -> (Vec<StreamAppend>, u64) {
    let provider = CrmProvider::Hubspot;
    let mut appends = vec![];
    let mut bookings = vec![];
    for n in calls {
        let call_id = Uuid::from_u128(n as u128 + 1);
        let contact_id = format!("{}", 1000 + n % 10_000);
        appends.push(StreamAppend {
            stream: StreamId::new("crm-call-sync", provider.call_sync_id(call_id)),
            expected: ExpectedVersion::NoStream,
            events: events(&[
                CrmSyncEvent::CrmContactResolved {
                    provider,
                    call_id,
                    contact_id,
                    created: n % 3 == 0,
                    at,
                },
                CrmSyncEvent::CrmCallLogged {
                    provider,
                    call_id,
                    engagement_id: format!("call-{n}"),
                    at,
                },
                CrmSyncEvent::CrmNoteAdded {
                    provider,
                    call_id,
                    note_id: format!("note-{n}"),
                    at,
                },
            ]),
        });
        if n % 10 == 0 {
            let booking_id = Uuid::from_u128(u128::MAX - n as u128);
            let start = at + Duration::days(2) + Duration::minutes(30 * (n % 16) as i64);
            let attendee = Attendee {
                name: format!("Prospect {n}"),
                email: None,
                phone: None,
            };
            bookings.push(BookingEvent::AppointmentSlotHeld {
                booking_id,
                agent_id: Some(organization.agents[n % AGENTS_PER_ORGANIZATION]),
                call_id: Some(call_id),
                title: "Demo".into(),
                attendee: attendee.clone(),
                start,
                end: start + Duration::minutes(30),
                add_video_link: true,
                at,
            });
            bookings.push(BookingEvent::AppointmentBooked {
                booking_id,
                call_id: Some(call_id),
                contact: attendee,
                start,
                end: start + Duration::minutes(30),
                provider_event_id: format!("evt{n}"),
                meeting_link: Some(format!("https://meet.google.com/{n}")),
                at,
            });
        }
    }
    if !bookings.is_empty() {
        appends.push(StreamAppend {
            stream: StreamId::new("calendar-bookings", organization.calendar_id),
            expected: ExpectedVersion::Any,
            events: events(&bookings),
        });
    }
    let count = appends.iter().map(|a| a.events.len() as u64).sum();
    (appends, count)
}

/// Writes the history with `calls` calls; returns the number of events written.
pub async fn write_history(store: &dyn EventStore, calls: usize) -> u64 {
    let mut organizations = vec![];
    for n in 0..ORGANIZATIONS {
        organizations.push(organization(store, n).await);
    }
    let mut written = (ORGANIZATIONS * (AGENTS_PER_ORGANIZATION * 3 + 5)) as u64;
    let steps = 6;
    // Wave w is at step s while wave w + 1 is at step s - 1: lives overlap in the log.
    let waves = calls.div_ceil(WAVE);
    for tick in 0..waves + steps - 1 {
        for wave in tick.saturating_sub(steps - 1)..=tick.min(waves - 1) {
            let step = tick - wave;
            let organization = &organizations[wave % ORGANIZATIONS];
            let first = wave * WAVE;
            let at = start() + Duration::minutes(tick as i64);
            let mut streams = vec![];
            let mut assignments = vec![];
            for n in first..(first + WAVE).min(calls) {
                let call = Uuid::from_u128(n as u128 + 1);
                let vapi_call_id = format!("vapi-{n}");
                let (expected, call_events) = if step == 0 {
                    let agent_id = organization.agents[n % AGENTS_PER_ORGANIZATION];
                    if agent_id == organization.agents[0] {
                        let assigned = AssignmentEvent::CallVariantAssigned {
                            test_id: organization.test_id,
                            call_id: call,
                            variant_id: organization.variants[n % 2],
                            customer_number: Some(format!("+1415555{:04}", n % 10_000)),
                            slot: Some(n as u64),
                            at,
                        };
                        assignments.push(StreamAppend {
                            stream: StreamId::new("ab-assignment", call),
                            expected: ExpectedVersion::NoStream,
                            events: events(&[assigned]),
                        });
                    }
                    (
                        ExpectedVersion::NoStream,
                        vec![CallEvent::CallRequested {
                            organization_id: organization.id,
                            parties: CallParties {
                                direction: Some("outbound".into()),
                                agent_id: Some(agent_id),
                                customer_number: Some(format!("+1415555{:04}", n % 10_000)),
                                ..CallParties::default()
                            },
                            requested_by: Uuid::nil(),
                            requested_at: at,
                            campaign: None,
                        }],
                    )
                } else {
                    // Placement and the end (report and analysis) write two events, every other step one.
                    let version = match step {
                        1 => 1,
                        2..=4 => step as i64 + 1,
                        _ => step as i64 + 2,
                    };
                    (ExpectedVersion::Exact(version), life_step(step, n, &vapi_call_id, at))
                };
                written += call_events.len() as u64;
                streams.push(StreamAppend {
                    stream: StreamId::new("call", call),
                    expected,
                    events: events(&call_events),
                });
            }
            written += assignments.len() as u64;
            streams.extend(assignments);
            if step == steps - 1 {
                let (follow_ups, count) = follow_ups(organization, first..(first + WAVE).min(calls), at);
                written += count;
                streams.extend(follow_ups);
            }
            append(store, organization.id, streams).await;
        }
    }
    written
}
