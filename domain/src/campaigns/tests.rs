//! Given/when/then tests of the campaign and contact deciders, the retry
//! rules, the ended-reason mapping and the dial decision.

use super::*;
use crate::aggregate::given_when_then::{given, given_state};
use crate::calls::{CallReport, EndedReason, Outcome};
use crate::event_log::EventMetadata;
use crate::events::{current_version, decode_stored, DomainEvent};
use chrono::Duration;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Tuesday 24 November 2026, 10:00 in New York.
fn now() -> DateTime<Utc> {
    at("2026-11-24T15:00:00Z")
}

fn settings() -> CampaignSettings {
    CampaignSettings::new(Uuid::from_u128(1), "Winter renewals", Uuid::from_u128(2))
}

fn created_with(settings: CampaignSettings) -> CampaignEvent {
    CampaignEvent::CampaignCreated {
        organization_id: Uuid::from_u128(9),
        settings,
        at: at("2026-11-20T12:00:00Z"),
    }
}

fn created() -> CampaignEvent {
    created_with(settings())
}

/// A history that leaves a campaign (with default settings) in `status`.
fn history(status: CampaignStatus) -> Vec<CampaignEvent> {
    let t = at("2026-11-21T12:00:00Z");
    let started = CampaignEvent::CampaignStarted {
        from: CampaignStatus::Draft,
        at: t,
    };
    match status {
        CampaignStatus::Draft => vec![created()],
        CampaignStatus::Scheduled => vec![created(), CampaignEvent::CampaignScheduled { starts_at: t, at: t }],
        CampaignStatus::Running => vec![created(), started],
        CampaignStatus::Paused => vec![created(), started, CampaignEvent::CampaignPaused { at: t }],
        CampaignStatus::Completed => vec![
            created(),
            started,
            CampaignEvent::CampaignCompleted {
                reason: CompletionReason::AllContactsTerminal,
                at: t,
            },
        ],
        CampaignStatus::Cancelled => vec![
            created(),
            CampaignEvent::CampaignCancelled {
                from: CampaignStatus::Draft,
                at: t,
            },
        ],
    }
}

fn campaign(status: CampaignStatus) -> Campaign {
    let campaign = Campaign::fold(&history(status));
    assert_eq!(campaign.status, status);
    campaign
}

// ---------------------------------------------------------------- status machine

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Accepted: the campaign is now in this status.
    To(CampaignStatus),
    Archived,
    /// Accepted as a repeat: no events.
    Nothing,
    Refused(CampaignError),
}

#[test]
fn the_full_transition_table() {
    use CampaignStatus::*;
    use Expect::*;
    let bad = |from, to| Refused(CampaignError::InvalidTransition { from, to });
    let commands: [(&str, CampaignCommand); 7] = [
        ("start", CampaignCommand::Start { now: now() }),
        ("run scheduled", CampaignCommand::RunScheduled { now: now() }),
        ("pause", CampaignCommand::Pause { now: now() }),
        ("resume", CampaignCommand::Resume { now: now() }),
        (
            "complete",
            CampaignCommand::Complete {
                reason: CompletionReason::AllContactsTerminal,
                contacts_seen: 0,
                now: now(),
            },
        ),
        ("cancel", CampaignCommand::Cancel { now: now() }),
        ("archive", CampaignCommand::Archive { now: now() }),
    ];
    // Rows: statuses; columns: the commands above, in order.
    let table: [(CampaignStatus, [Expect; 7]); 6] = [
        (
            Draft,
            [
                To(Running),
                bad(Draft, Running),
                bad(Draft, Paused),
                bad(Draft, Running),
                bad(Draft, Completed),
                To(Cancelled),
                Archived,
            ],
        ),
        (
            Scheduled,
            [
                bad(Scheduled, Running),
                To(Running),
                bad(Scheduled, Paused),
                bad(Scheduled, Running),
                bad(Scheduled, Completed),
                To(Cancelled),
                Archived,
            ],
        ),
        (
            Running,
            [
                bad(Running, Running),
                Nothing,
                To(Paused),
                bad(Running, Running),
                To(Completed),
                To(Cancelled),
                Refused(CampaignError::ArchiveWhileRunning),
            ],
        ),
        (
            Paused,
            [
                bad(Paused, Running),
                bad(Paused, Running),
                bad(Paused, Paused),
                To(Running),
                To(Completed),
                To(Cancelled),
                Archived,
            ],
        ),
        (
            Completed,
            [
                bad(Completed, Running),
                bad(Completed, Running),
                bad(Completed, Paused),
                bad(Completed, Running),
                Nothing,
                bad(Completed, Cancelled),
                Archived,
            ],
        ),
        (
            Cancelled,
            [
                bad(Cancelled, Running),
                bad(Cancelled, Running),
                bad(Cancelled, Paused),
                bad(Cancelled, Running),
                bad(Cancelled, Completed),
                bad(Cancelled, Cancelled),
                Archived,
            ],
        ),
    ];
    assert_eq!(table.len(), CampaignStatus::ALL.len());
    for (status, expectations) in table {
        for ((name, command), expected) in commands.iter().zip(expectations) {
            let state = campaign(status);
            let decided = given_state(state.clone()).when(command.clone()).outcome();
            let actual = match decided {
                Err(e) => Refused(e),
                Ok(events) if events.is_empty() => Nothing,
                Ok(events) => {
                    let after = events.iter().fold(state.clone(), Campaign::evolve);
                    if after.archived {
                        assert_eq!(after.status, status, "archiving keeps the status");
                        Archived
                    } else {
                        To(after.status)
                    }
                }
            };
            assert_eq!(actual, expected, "{status} × {name}");
        }
    }
}

#[test]
fn an_archived_campaign_takes_no_more_commands() {
    let mut events = history(CampaignStatus::Paused);
    events.push(CampaignEvent::CampaignArchived {
        status: CampaignStatus::Paused,
        at: now(),
    });
    for command in [
        CampaignCommand::Resume { now: now() },
        CampaignCommand::Cancel { now: now() },
        CampaignCommand::RunScheduled { now: now() },
        CampaignCommand::ChangeSettings {
            settings: CampaignSettings {
                name: "Renamed".into(),
                ..settings()
            },
            now: now(),
        },
    ] {
        given::<Campaign>(events.clone())
            .when(command)
            .then_error(CampaignError::Archived);
    }
    given::<Campaign>(events)
        .when(CampaignCommand::Archive { now: now() })
        .then_nothing();
    given::<Campaign>([])
        .when(CampaignCommand::Start { now: now() })
        .then_error(CampaignError::NotFound);
    given::<Campaign>([created()])
        .when(CampaignCommand::Create {
            organization_id: Uuid::nil(),
            settings: settings(),
            now: now(),
        })
        .then_error(CampaignError::Exists);
}

#[test]
fn start_schedules_a_future_start_and_the_scheduler_runs_it_when_due() {
    let starts_at = at("2026-11-25T14:00:00Z");
    let future = CampaignSettings {
        scheduled_start: Some(starts_at),
        ..settings()
    };
    let scheduled = given::<Campaign>([created_with(future.clone())])
        .when(CampaignCommand::Start { now: now() })
        .then([CampaignEvent::CampaignScheduled { starts_at, at: now() }]);
    assert_eq!(scheduled.status, CampaignStatus::Scheduled);
    let early = at("2026-11-25T13:59:59Z");
    given::<Campaign>([
        created_with(future.clone()),
        CampaignEvent::CampaignScheduled { starts_at, at: now() },
    ])
    .when(CampaignCommand::RunScheduled { now: early })
    .then_error(CampaignError::StartTimeNotReached { starts_at });
    given::<Campaign>([
        created_with(future.clone()),
        CampaignEvent::CampaignScheduled { starts_at, at: now() },
    ])
    .when(CampaignCommand::RunScheduled { now: starts_at })
    .then([CampaignEvent::CampaignStarted {
        from: CampaignStatus::Scheduled,
        at: starts_at,
    }]);
    // A start time already past runs at once.
    let past = CampaignSettings {
        scheduled_start: Some(at("2026-11-24T14:00:00Z")),
        ..settings()
    };
    given::<Campaign>([created_with(past)])
        .when(CampaignCommand::Start { now: now() })
        .then([CampaignEvent::CampaignStarted {
            from: CampaignStatus::Draft,
            at: now(),
        }]);
}

#[test]
fn a_campaign_whose_end_passed_cannot_start_and_completes_only_once_it_passed() {
    let ends = at("2026-11-24T16:00:00Z");
    let ending = CampaignSettings {
        scheduled_end: Some(ends),
        ..settings()
    };
    let creation = created_with(ending);
    given::<Campaign>([creation.clone()])
        .when(CampaignCommand::Start { now: ends })
        .then_error(CampaignError::Invalid {
            field: "scheduledEnd",
            reason: "has passed: move it before starting".into(),
        });
    let running = [
        creation,
        CampaignEvent::CampaignStarted {
            from: CampaignStatus::Draft,
            at: now(),
        },
    ];
    let complete = |t| CampaignCommand::Complete {
        reason: CompletionReason::ScheduleEnded,
        contacts_seen: 0,
        now: t,
    };
    assert!(matches!(
        given::<Campaign>(running.clone()).when(complete(now())).error(),
        CampaignError::Invalid {
            field: "scheduledEnd",
            ..
        }
    ));
    given::<Campaign>(running)
        .when(complete(ends))
        .then([CampaignEvent::CampaignCompleted {
            reason: CompletionReason::ScheduleEnded,
            at: ends,
        }]);
}

// ---------------------------------------------------------------- settings

#[test]
fn settings_are_editable_in_draft_and_paused_only_name_and_description_while_scheduled_or_running() {
    let renamed = CampaignSettings {
        name: "Spring renewals".into(),
        description: Some("Second wave".into()),
        ..settings()
    };
    let more_retries = CampaignSettings {
        max_retries: 5,
        name: "Spring renewals".into(),
        ..settings()
    };
    let change = |s: &CampaignSettings| CampaignCommand::ChangeSettings {
        settings: s.clone(),
        now: now(),
    };
    for status in CampaignStatus::ALL {
        let state = campaign(status);
        let rename = || given_state(state.clone()).when(change(&renamed));
        let retries = || given_state(state.clone()).when(change(&more_retries));
        match status {
            CampaignStatus::Draft | CampaignStatus::Paused => {
                rename().then([CampaignEvent::CampaignSettingsChanged {
                    settings: renamed.clone(),
                    changed: vec!["name".into(), "description".into()],
                    at: now(),
                }]);
                let after = retries().state_after();
                assert_eq!(after.settings.unwrap().max_retries, 5, "{status}");
            }
            CampaignStatus::Scheduled | CampaignStatus::Running => {
                assert_eq!(rename().events().len(), 1);
                retries().then_error(CampaignError::NotEditable {
                    status,
                    fields: vec!["maxRetries"],
                });
            }
            CampaignStatus::Completed | CampaignStatus::Cancelled => {
                rename().then_error(CampaignError::NotEditable {
                    status,
                    fields: vec!["name", "description"],
                });
                assert!(matches!(retries().error(), CampaignError::NotEditable { .. }));
            }
        }
        // The same settings again change nothing (except where nothing may change at all: still nothing).
        given_state(campaign(status)).when(change(&settings())).then_nothing();
    }
}

#[test]
fn settings_validation_names_the_field() {
    type Breaker = Box<dyn Fn(&mut CampaignSettings)>;
    let cases: Vec<(&str, Breaker)> = vec![
        ("name", Box::new(|s| s.name = " ".into())),
        ("name", Box::new(|s| s.name = "x".repeat(201))),
        ("description", Box::new(|s| s.description = Some("x".repeat(2001)))),
        (
            "scheduledEnd",
            Box::new(|s| {
                s.scheduled_start = Some(at("2026-12-01T00:00:00Z"));
                s.scheduled_end = Some(at("2026-12-01T00:00:00Z"));
            }),
        ),
        (
            "callingWindow.start",
            Box::new(|s| s.calling_window.start = "07:59".to_owned().try_into().unwrap()),
        ),
        (
            "callingWindow.end",
            Box::new(|s| s.calling_window.end = "21:01".to_owned().try_into().unwrap()),
        ),
        (
            "callingWindow.end",
            Box::new(|s| {
                s.calling_window.start = "12:00".to_owned().try_into().unwrap();
                s.calling_window.end = "11:00".to_owned().try_into().unwrap();
            }),
        ),
        ("callingWindow.days", Box::new(|s| s.calling_window.days.clear())),
        (
            "callingWindow.days",
            Box::new(|s| s.calling_window.days = vec![DayOfWeek::Mon, DayOfWeek::Mon]),
        ),
        ("maxRetries", Box::new(|s| s.max_retries = 11)),
        ("retryRules.busyMinutes", Box::new(|s| s.retry_rules.busy_minutes = 0)),
        (
            "retryRules.failedMaxMinutes",
            Box::new(|s| s.retry_rules.failed_max_minutes = 1),
        ),
        (
            "phoneNumberIds",
            Box::new(|s| s.phone_number_ids = vec![Uuid::from_u128(77)]),
        ),
        (
            "phoneNumberIds",
            Box::new(|s| s.caller_id_strategy = CallerIdStrategy::LocalPresence),
        ),
        (
            "phoneNumberIds",
            Box::new(|s| {
                s.caller_id_strategy = CallerIdStrategy::Rotating;
                s.phone_number_ids = vec![Uuid::from_u128(3), Uuid::from_u128(3)];
            }),
        ),
        ("maxConcurrentCalls", Box::new(|s| s.max_concurrent_calls = 0)),
        ("maxConcurrentCalls", Box::new(|s| s.max_concurrent_calls = 101)),
        ("dialsPerMinute", Box::new(|s| s.dials_per_minute = 0)),
        ("dialsPerMinute", Box::new(|s| s.dials_per_minute = 121)),
    ];
    for (field, break_it) in cases {
        let mut s = settings();
        break_it(&mut s);
        match s.validate() {
            Err(CampaignError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Allowed: a narrower window, a fixed strategy naming its default in the pool, 0 and 10 retries.
    let mut fine = settings();
    fine.calling_window.start = "09:30".to_owned().try_into().unwrap();
    fine.calling_window.end = "17:00".to_owned().try_into().unwrap();
    fine.calling_window.days = vec![DayOfWeek::Mon, DayOfWeek::Wed];
    fine.phone_number_ids = vec![fine.default_phone_number_id];
    fine.max_retries = 10;
    assert_eq!(fine.validate(), Ok(()));
    fine.max_retries = 0;
    assert_eq!(fine.validate(), Ok(()));
    // A creation with an end already past is refused.
    let past_end = CampaignSettings {
        scheduled_end: Some(at("2026-11-24T14:00:00Z")),
        ..settings()
    };
    assert!(matches!(
        given::<Campaign>([])
            .when(CampaignCommand::Create {
                organization_id: Uuid::nil(),
                settings: past_end,
                now: now()
            })
            .error(),
        CampaignError::Invalid {
            field: "scheduledEnd",
            ..
        }
    ));
}

#[test]
fn settings_read_camel_case_json_with_the_spec_defaults() {
    let json = serde_json::json!({
        "agentId": Uuid::from_u128(1),
        "name": "Winter renewals",
        "defaultPhoneNumberId": Uuid::from_u128(2),
    });
    let parsed: CampaignSettings = serde_json::from_value(json).unwrap();
    assert_eq!(parsed, settings());
    assert_eq!(parsed.timezone.name(), "America/New_York");
    assert_eq!(parsed.max_retries, 3);
    assert_eq!(parsed.max_concurrent_calls, 5);
    assert_eq!(parsed.caller_id_strategy, CallerIdStrategy::Fixed);
    assert!(!parsed.calling_window.skip_us_federal_holidays);
    let written = serde_json::to_value(&parsed).unwrap();
    assert_eq!(written["callingWindow"]["start"], "08:00");
    assert_eq!(written["callingWindow"]["end"], "21:00");
    assert_eq!(written["callingWindow"]["days"][6], "sun");
    assert_eq!(written["retryRules"]["busyMinutes"], 30);
    assert_eq!(written["retryRules"]["noAnswerMinutes"], 120);
    assert_eq!(written["callerIdStrategy"], "fixed");
    let rotating: CallerIdStrategy = serde_json::from_value(serde_json::json!("local_presence")).unwrap();
    assert_eq!(rotating, CallerIdStrategy::LocalPresence);
    assert!(serde_json::from_value::<CampaignSettings>(serde_json::json!({
        "agentId": Uuid::nil(), "name": "x", "defaultPhoneNumberId": Uuid::nil(), "timezone": "Mars/Base"
    }))
    .is_err());
}

// ---------------------------------------------------------------- contacts import

fn contact(id: u128, phone: &str) -> ImportedContact {
    ImportedContact {
        contact_id: Uuid::from_u128(id),
        phone: PhoneNumber::parse(phone).unwrap(),
        first_name: Some("Ada".into()),
        last_name: None,
        email: None,
        company: None,
        notes: None,
        timezone: None,
        custom_data: [("plan".to_owned(), "gold".to_owned())].into(),
        priority: 0,
        status: ContactStatus::Pending,
    }
}

#[test]
fn imports_drop_numbers_already_in_the_campaign_or_twice_in_the_batch() {
    let first = given::<Campaign>([created()])
        .when(CampaignCommand::ImportContacts {
            contacts: vec![
                contact(1, "+14155552671"),
                contact(2, "(415) 555-2671"),
                contact(3, "+12125550101"),
            ],
            now: now(),
        })
        .then([CampaignEvent::CampaignContactsImported {
            contacts: vec![contact(1, "+14155552671"), contact(3, "+12125550101")],
            at: now(),
        }]);
    assert_eq!(first.total_contacts, 2);
    let again = CampaignCommand::ImportContacts {
        contacts: vec![contact(4, "+12125550101"), contact(5, "+13055550102")],
        now: now(),
    };
    given_state(first.clone())
        .when(again.clone())
        .then([CampaignEvent::CampaignContactsImported {
            contacts: vec![contact(5, "+13055550102")],
            at: now(),
        }]);
    let all_dupes = CampaignCommand::ImportContacts {
        contacts: vec![contact(6, "+14155552671")],
        now: now(),
    };
    given_state(first.clone()).when(all_dupes).then_nothing();
    let calling = CampaignCommand::ImportContacts {
        contacts: vec![ImportedContact {
            status: ContactStatus::Calling,
            ..contact(7, "+17135550107")
        }],
        now: now(),
    };
    assert!(matches!(
        given_state(first.clone()).when(calling).error(),
        CampaignError::Invalid {
            field: "contacts.status",
            ..
        }
    ));
    // Large imports are split into bounded events.
    let many: Vec<ImportedContact> = (0..2_500u128)
        .map(|i| contact(1_000 + i, &format!("+1212555{:04}", i)))
        .collect();
    let events = given_state(first.clone())
        .when(CampaignCommand::ImportContacts {
            contacts: many,
            now: now(),
        })
        .events();
    let sizes: Vec<usize> = events
        .iter()
        .map(|e| match e {
            CampaignEvent::CampaignContactsImported { contacts, .. } => contacts.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    // 2,500 numbers, one of them (+12125550101) already imported.
    assert_eq!(sizes, [1_000, 1_000, 499]);
    assert_eq!(
        events.iter().fold(first.clone(), Campaign::evolve).total_contacts,
        2 + 2_499
    );
    for status in [CampaignStatus::Completed, CampaignStatus::Cancelled] {
        assert!(matches!(
            given_state(campaign(status)).when(again.clone()).error(),
            CampaignError::NotEditable { .. }
        ));
    }
}

// ---------------------------------------------------------------- ended reasons and retries

#[test]
fn ended_reasons_map_to_attempt_results() {
    let cases = [
        ("customer-busy", AttemptResult::Busy),
        ("customer-did-not-answer", AttemptResult::NoAnswer),
        ("voicemail", AttemptResult::Voicemail),
        ("customer-ended-call", AttemptResult::Connected),
        ("assistant-ended-call", AttemptResult::Connected),
        ("assistant-said-end-call-phrase", AttemptResult::Connected),
        ("assistant-forwarded-call", AttemptResult::Connected),
        ("silence-timed-out", AttemptResult::Connected),
        ("exceeded-max-duration", AttemptResult::Connected),
        ("manually-canceled", AttemptResult::Failed),
        ("twilio-failed-to-connect-call", AttemptResult::Failed),
        ("assistant-request-failed", AttemptResult::Failed),
        ("placement-failed", AttemptResult::Failed),
        ("pipeline-error-openai-llm-failed", AttemptResult::Failed),
        ("call.start.error-get-assistant", AttemptResult::Failed),
        ("sip-gateway-failed-to-connect-call", AttemptResult::Failed),
        ("something-vapi-adds-next-year", AttemptResult::Failed),
    ];
    for (raw, expected) in cases {
        assert_eq!(
            AttemptResult::from_ended_reason(&EndedReason::parse(raw)),
            expected,
            "{raw}"
        );
    }
    assert_eq!(serde_json::to_value(AttemptResult::NoAnswer).unwrap(), "no_answer");
}

#[test]
fn opt_outs_are_read_from_the_analysis() {
    let report = |data: serde_json::Value| CallReport {
        structured_data: Some(data),
        ..CallReport::default()
    };
    assert!(opted_out(&report(serde_json::json!({"optOut": true}))));
    assert!(opted_out(&report(serde_json::json!({"optOut": "true"}))));
    assert!(opted_out(&report(serde_json::json!({"outcome": "do_not_call"}))));
    assert!(!opted_out(&report(
        serde_json::json!({"optOut": false, "outcome": "qualified"})
    )));
    assert!(!opted_out(&CallReport::default()));
}

fn policy(max_retries: u32) -> AttemptPolicy {
    AttemptPolicy {
        max_retries,
        retry_rules: RetryRules::default(),
        max_attempts_per_24h: 3,
        success_outcome: crate::ab_testing::SuccessOutcome::Qualified,
    }
}

#[test]
fn retry_timings_follow_the_rules() {
    let t0 = now();
    let next =
        |result, times: &[DateTime<Utc>], failures| next_after_attempt(result, false, times, failures, &policy(3), t0);
    assert_eq!(
        next(AttemptResult::Busy, &[t0], 0),
        NextStep {
            status: ContactStatus::Pending,
            next_attempt_at: Some(t0 + Duration::minutes(30))
        }
    );
    assert_eq!(
        next(AttemptResult::NoAnswer, &[t0], 0).next_attempt_at,
        Some(t0 + Duration::hours(2))
    );
    let done = |status| NextStep {
        status,
        next_attempt_at: None,
    };
    assert_eq!(next(AttemptResult::Voicemail, &[t0], 0), done(ContactStatus::Completed));
    assert_eq!(next(AttemptResult::Connected, &[t0], 0), done(ContactStatus::Completed));
    // Technical failures back off exponentially: 5, 10, 20 minutes… up to 4 hours.
    let delays: Vec<i64> = (1..=8)
        .map(|failures| {
            let step = next_after_attempt(AttemptResult::Failed, false, &[t0], failures, &policy(10), t0);
            (step.next_attempt_at.unwrap() - t0).num_minutes()
        })
        .collect();
    assert_eq!(delays, [5, 10, 20, 40, 80, 160, 240, 240]);
    // An opt-out wins over everything.
    assert_eq!(
        next_after_attempt(AttemptResult::Connected, true, &[t0], 0, &policy(3), t0),
        done(ContactStatus::Dnc)
    );
}

#[test]
fn at_most_three_attempts_in_any_24_hours() {
    let t0 = now();
    let times = [t0, t0 + Duration::minutes(30), t0 + Duration::minutes(60)];
    // After the third busy attempt in an hour, the next waits until the first leaves the 24 hours.
    let step = next_after_attempt(AttemptResult::Busy, false, &times, 0, &policy(10), times[2]);
    assert_eq!(step.status, ContactStatus::Pending);
    assert_eq!(step.next_attempt_at, Some(t0 + Duration::hours(24)));
    // Two attempts: the normal delay applies.
    let step = next_after_attempt(AttemptResult::Busy, false, &times[..2], 0, &policy(10), times[1]);
    assert_eq!(step.next_attempt_at, Some(times[1] + Duration::minutes(30)));
    // Older attempts do not count.
    let spread = [t0 - Duration::hours(30), t0 - Duration::hours(25), t0];
    let step = next_after_attempt(AttemptResult::Busy, false, &spread, 0, &policy(10), t0);
    assert_eq!(step.next_attempt_at, Some(t0 + Duration::minutes(30)));
    // With more attempts than the cap, the cap-th most recent one counts.
    let four = [
        t0 - Duration::hours(30),
        t0 - Duration::hours(20),
        t0 - Duration::hours(10),
        t0,
    ];
    let step = next_after_attempt(AttemptResult::Busy, false, &four, 0, &policy(10), t0);
    assert_eq!(step.next_attempt_at, Some(t0 + Duration::hours(4)));
    // A stricter state cap (here 2) binds earlier.
    let strict = AttemptPolicy {
        max_attempts_per_24h: 2,
        ..policy(10)
    };
    let step = next_after_attempt(AttemptResult::Busy, false, &times[..2], 0, &strict, times[1]);
    assert_eq!(step.next_attempt_at, Some(t0 + Duration::hours(24)));
}

#[test]
fn never_more_than_max_retries_plus_one_attempts() {
    let t0 = now();
    let times: Vec<_> = (0..5).map(|i| t0 + Duration::days(i)).collect();
    for max_retries in 0..=4u32 {
        for made in 1..=(max_retries + 1) {
            let step = next_after_attempt(
                AttemptResult::NoAnswer,
                false,
                &times[..made as usize],
                0,
                &policy(max_retries),
                times[made as usize - 1],
            );
            let expected = if made == max_retries + 1 {
                ContactStatus::Failed
            } else {
                ContactStatus::Pending
            };
            assert_eq!(step.status, expected, "maxRetries {max_retries}, attempt {made}");
        }
    }
}

// ---------------------------------------------------------------- the contact aggregate

fn caller() -> CallerId {
    CallerId {
        phone_number_id: Uuid::from_u128(2),
        number: PhoneNumber::parse("+16175550109").unwrap(),
    }
}

/// Attempt `attempt_number` on contact 1 of campaign 100, as call `call`.
fn attempt(attempt_number: u32, call: u128) -> ContactDial {
    ContactDial {
        campaign_id: Uuid::from_u128(100),
        contact_id: Uuid::from_u128(1),
        agent_id: Uuid::from_u128(7),
        phone: PhoneNumber::parse("+14155552671").unwrap(),
        attempt_number,
        call_id: Uuid::from_u128(call),
        caller_id: caller(),
    }
}

fn dial(attempt_number: u32, call: u128, t: DateTime<Utc>) -> ContactCommand {
    ContactCommand::RecordDial {
        dial: attempt(attempt_number, call),
        now: t,
    }
}

fn dialed(attempt_number: u32, call: u128, t: DateTime<Utc>) -> CampaignContactEvent {
    CampaignContactEvent::CampaignContactDialed {
        dial: attempt(attempt_number, call),
        at: t,
    }
}

fn finish(call: u128, result: AttemptResult, outcome: Option<Outcome>, t: DateTime<Utc>) -> ContactCommand {
    ContactCommand::FinishAttempt {
        call_id: Uuid::from_u128(call),
        result,
        outcome,
        opted_out: false,
        policy: policy(3),
        now: t,
    }
}

#[test]
fn a_contact_is_dialled_once_at_a_time() {
    let t0 = now();
    given::<CampaignContact>([])
        .when(dial(1, 10, t0))
        .then([dialed(1, 10, t0)]);
    // A second scheduler, another call: refused while the first is in flight.
    given::<CampaignContact>([dialed(1, 10, t0)])
        .when(dial(1, 11, t0))
        .then_error(ContactError::NotDialable {
            status: ContactStatus::Calling,
        });
    // The same dial recorded twice: nothing new.
    given::<CampaignContact>([dialed(1, 10, t0)])
        .when(dial(1, 10, t0))
        .then_nothing();
    // A stale attempt number loses.
    given::<CampaignContact>([])
        .when(dial(2, 10, t0))
        .then_error(ContactError::StaleAttempt {
            expected: 1,
            requested: 2,
        });
}

#[test]
fn a_dial_is_stored_flat() {
    // The payload is byte for byte what it was before the fields were grouped.
    let ungrouped = serde_json::json!({
        "campaignId": Uuid::from_u128(100),
        "contactId": Uuid::from_u128(1),
        "agentId": Uuid::from_u128(7),
        "phone": "+14155552671",
        "attemptNumber": 2,
        "callId": Uuid::from_u128(10),
        "callerId": {"phoneNumberId": Uuid::from_u128(2), "number": "+16175550109"},
        "at": "2026-11-24T15:00:00Z",
    });
    let event = dialed(2, 10, now());
    assert_eq!(
        serde_json::to_string(&event).unwrap(),
        concat!(
            r#"{"type":"CampaignContactDialed","data":{"campaignId":"00000000-0000-0000-0000-000000000064","#,
            r#""contactId":"00000000-0000-0000-0000-000000000001","agentId":"00000000-0000-0000-0000-000000000007","#,
            r#""phone":"+14155552671","attemptNumber":2,"callId":"00000000-0000-0000-0000-00000000000a","#,
            r#""callerId":{"phoneNumberId":"00000000-0000-0000-0000-000000000002","number":"+16175550109"},"#,
            r#""at":"2026-11-24T15:00:00Z"}}"#
        )
    );
    assert_eq!(event.to_new_event(&EventMetadata::default()).payload, ungrouped);
    assert_eq!(
        CampaignContactEvent::decode("CampaignContactDialed", 1, &ungrouped).unwrap(),
        event
    );
}

/// The first attempt (call 10) ended busy at `at`: retry in 30 minutes.
fn busy_first_attempt(at: DateTime<Utc>) -> CampaignContactEvent {
    CampaignContactEvent::CampaignAttemptFinished {
        campaign_id: Uuid::from_u128(100),
        contact_id: Uuid::from_u128(1),
        attempt_number: 1,
        call_id: Uuid::from_u128(10),
        result: AttemptResult::Busy,
        outcome: None,
        opted_out: false,
        successful: false,
        status: ContactStatus::Pending,
        next_attempt_at: Some(at + Duration::minutes(30)),
        at,
    }
}

#[test]
fn a_dial_not_yet_placed_is_withdrawn_and_does_not_count() {
    let t0 = now();
    let t1 = t0 + Duration::hours(1);
    let t2 = t1 + Duration::seconds(1);
    let first_ended = busy_first_attempt(t0);
    let withdraw = |reason| ContactCommand::WithdrawDial {
        call_id: Uuid::from_u128(11),
        reason,
        now: t2,
    };
    let paused = given::<CampaignContact>([dialed(1, 10, t0), first_ended.clone(), dialed(2, 11, t1)])
        .when(withdraw(WithdrawReason::CampaignNotRunning))
        .then([CampaignContactEvent::CampaignDialWithdrawn {
            campaign_id: Uuid::from_u128(100),
            contact_id: Uuid::from_u128(1),
            call_id: Uuid::from_u128(11),
            attempt_number: 2,
            reason: WithdrawReason::CampaignNotRunning,
            status: ContactStatus::Pending,
            last_attempt_at: Some(t0),
            at: t2,
        }]);
    assert_eq!((paused.status, paused.attempt_count()), (ContactStatus::Pending, 1));
    // Dialled again on resume as attempt 2.
    given_state(paused).when(dial(2, 12, t2)).then([dialed(2, 12, t2)]);
    // Listed meanwhile: the contact is closed as dnc.
    let listed = given::<CampaignContact>([dialed(1, 11, t0)])
        .when(withdraw(WithdrawReason::Dnc))
        .then([CampaignContactEvent::CampaignDialWithdrawn {
            campaign_id: Uuid::from_u128(100),
            contact_id: Uuid::from_u128(1),
            call_id: Uuid::from_u128(11),
            attempt_number: 1,
            reason: WithdrawReason::Dnc,
            status: ContactStatus::Dnc,
            last_attempt_at: None,
            at: t2,
        }]);
    assert_eq!((listed.status, listed.attempt_count()), (ContactStatus::Dnc, 0));
    // Withdrawn twice: nothing; a finished attempt cannot be withdrawn.
    given::<CampaignContact>([])
        .when(withdraw(WithdrawReason::Dnc))
        .then_nothing();
    given::<CampaignContact>([dialed(1, 10, t0), busy_first_attempt(t0)])
        .when(ContactCommand::WithdrawDial {
            call_id: Uuid::from_u128(10),
            reason: WithdrawReason::Dnc,
            now: t2,
        })
        .then_error(ContactError::UnknownCall(Uuid::from_u128(10)));
}

#[test]
fn an_attempt_finishes_once_with_the_rules_applied() {
    let t0 = now();
    let t1 = t0 + Duration::minutes(1);
    let busy = given::<CampaignContact>([dialed(1, 10, t0)])
        .when(finish(10, AttemptResult::Busy, None, t1))
        .then([busy_first_attempt(t1)]);
    assert_eq!(busy.status, ContactStatus::Pending);
    assert_eq!(busy.next_attempt_at, Some(t1 + Duration::minutes(30)));
    // Reported twice: nothing; an unknown call: refused.
    let history = [dialed(1, 10, t0), busy_first_attempt(t1)];
    given::<CampaignContact>(history.clone())
        .when(finish(10, AttemptResult::Connected, None, t1))
        .then_nothing();
    given::<CampaignContact>(history.clone())
        .when(finish(99, AttemptResult::Busy, None, t1))
        .then_error(ContactError::UnknownCall(Uuid::from_u128(99)));
    // The second attempt connects and qualifies: completed, successful.
    let t2 = t1 + Duration::minutes(31);
    let mut second = history.to_vec();
    second.push(dialed(2, 20, t2));
    let events = given::<CampaignContact>(second.clone())
        .when(finish(20, AttemptResult::Connected, Some(Outcome::Appointment), t2))
        .events();
    assert!(matches!(
        events[..],
        [CampaignContactEvent::CampaignAttemptFinished {
            attempt_number: 2,
            status: ContactStatus::Completed,
            successful: true,
            next_attempt_at: None,
            ..
        }]
    ));
    // Voicemail completes the contact with the outcome voicemail, not a success.
    let events = given::<CampaignContact>(second.clone())
        .when(finish(20, AttemptResult::Voicemail, None, t2))
        .events();
    assert!(matches!(
        events[..],
        [CampaignContactEvent::CampaignAttemptFinished {
            status: ContactStatus::Completed,
            outcome: Some(Outcome::Voicemail),
            successful: false,
            ..
        }]
    ));
    // An opt-out: dnc.
    let opted = ContactCommand::FinishAttempt {
        call_id: Uuid::from_u128(20),
        result: AttemptResult::Connected,
        outcome: Some(Outcome::NotInterested),
        opted_out: true,
        policy: policy(3),
        now: t2,
    };
    let after = given::<CampaignContact>(second).when(opted).state_after();
    assert_eq!(after.status, ContactStatus::Dnc);
    // Failures back off by how many failed so far.
    let mut failing = vec![dialed(1, 10, t0)];
    let step1 = given::<CampaignContact>(failing.clone())
        .when(finish(10, AttemptResult::Failed, None, t0))
        .events();
    failing.extend(step1);
    failing.push(dialed(2, 20, t1));
    let step2 = given::<CampaignContact>(failing)
        .when(finish(20, AttemptResult::Failed, None, t1))
        .events();
    assert!(matches!(
        step2[..],
        [CampaignContactEvent::CampaignAttemptFinished { next_attempt_at: Some(next), .. }] if next == t1 + Duration::minutes(10)
    ));
}

#[test]
fn a_skipped_contact_is_closed_once() {
    let close = |reason| ContactCommand::Close {
        campaign_id: Uuid::from_u128(100),
        contact_id: Uuid::from_u128(1),
        reason,
        now: now(),
    };
    let closed = given::<CampaignContact>([]).when(close(CloseReason::Dnc)).then([
        CampaignContactEvent::CampaignContactClosed {
            campaign_id: Uuid::from_u128(100),
            contact_id: Uuid::from_u128(1),
            status: ContactStatus::Dnc,
            reason: CloseReason::Dnc,
            at: now(),
        },
    ]);
    given_state(closed)
        .when(close(CloseReason::AttemptsExhausted))
        .then_nothing();
    given::<CampaignContact>([dialed(1, 10, now())])
        .when(close(CloseReason::Dnc))
        .then_error(ContactError::NotDialable {
            status: ContactStatus::Calling,
        });
    let failed = given::<CampaignContact>([])
        .when(close(CloseReason::AttemptsExhausted))
        .events();
    assert!(matches!(
        failed[..],
        [CampaignContactEvent::CampaignContactClosed {
            status: ContactStatus::Failed,
            ..
        }]
    ));
}

// ---------------------------------------------------------------- the dial decision

fn running(settings: CampaignSettings) -> Campaign {
    Campaign::fold(&[
        created_with(settings),
        CampaignEvent::CampaignStarted {
            from: CampaignStatus::Draft,
            at: at("2026-11-21T12:00:00Z"),
        },
    ])
}

fn pool() -> Vec<CallerId> {
    vec![
        CallerId {
            phone_number_id: Uuid::from_u128(3),
            number: PhoneNumber::parse("+13055550102").unwrap(),
        },
        CallerId {
            phone_number_id: Uuid::from_u128(4),
            number: PhoneNumber::parse("+14155550103").unwrap(),
        },
    ]
}

fn local_presence() -> CampaignSettings {
    CampaignSettings {
        caller_id_strategy: CallerIdStrategy::LocalPresence,
        phone_number_ids: vec![Uuid::from_u128(3), Uuid::from_u128(4)],
        ..settings()
    }
}

fn decide_for(
    campaign: &Campaign,
    phone: &PhoneNumber,
    status: ContactStatus,
    next_attempt_at: Option<DateTime<Utc>>,
    times: &[DateTime<Utc>],
    on_dnc_list: bool,
    t: DateTime<Utc>,
) -> DialDecision {
    let pool = pool();
    decide_dial(
        campaign,
        ContactAtDial {
            phone,
            timezone: None,
            status,
            next_attempt_at,
            attempt_times: times,
        },
        on_dnc_list,
        CallerIds {
            default: &caller(),
            pool: &pool,
            rotation: 0,
        },
        t,
    )
}

/// The decision for a contact just imported: pending, never called, not listed.
fn decide_new(campaign: &Campaign, phone: &PhoneNumber, t: DateTime<Utc>) -> DialDecision {
    decide_for(campaign, phone, ContactStatus::Pending, None, &[], false, t)
}

#[test]
fn the_dial_decision_dials_a_ready_contact_from_a_local_number() {
    let campaign = running(local_presence());
    // 10:00 in New York is 07:00 in San Francisco: not yet; 13:00 in New York is 10:00 there.
    let miami = PhoneNumber::parse("+13055559999").unwrap();
    let frisco = PhoneNumber::parse("+14155559999").unwrap();
    assert_eq!(
        decide_new(&campaign, &miami, now()),
        DialDecision::Dial {
            caller_id: pool()[0].clone(),
            attempt_number: 1
        }
    );
    assert_eq!(
        decide_new(&campaign, &frisco, now()),
        DialDecision::NotNow {
            retry_at: at("2026-11-24T16:00:00Z")
        }
    );
    let second = decide_for(
        &campaign,
        &frisco,
        ContactStatus::Pending,
        Some(at("2026-11-24T17:00:00Z")),
        &[at("2026-11-24T15:00:00Z")],
        false,
        at("2026-11-24T18:00:00Z"),
    );
    assert_eq!(
        second,
        DialDecision::Dial {
            caller_id: pool()[1].clone(),
            attempt_number: 2
        }
    );
    // Unknown area code → the campaign default.
    let dallas = PhoneNumber::parse("+12145559999").unwrap();
    assert!(matches!(
        decide_new(&campaign, &dallas, now()),
        DialDecision::Dial { caller_id, .. } if caller_id == caller()
    ));
}

#[test]
fn the_dial_decision_rechecks_everything() {
    let miami = PhoneNumber::parse("+13055559999").unwrap();
    let campaign = running(local_presence());
    let decide = |campaign: &Campaign, status, next, times: &[DateTime<Utc>], dnc| {
        decide_for(campaign, &miami, status, next, times, dnc, now())
    };
    let skip = |reason| DialDecision::Skip { reason };
    // DNC at dial time, listed or imported as dnc.
    assert_eq!(
        decide(&campaign, ContactStatus::Pending, None, &[], true),
        skip(SkipReason::Dnc)
    );
    assert_eq!(
        decide(&campaign, ContactStatus::Dnc, None, &[], false),
        skip(SkipReason::Dnc)
    );
    // Calling or terminal.
    for status in [ContactStatus::Calling, ContactStatus::Completed, ContactStatus::Failed] {
        assert_eq!(
            decide(&campaign, status, None, &[], false),
            skip(SkipReason::NotPending)
        );
    }
    // Paused, completed, cancelled, archived campaigns dial no one.
    for status in [
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Cancelled,
        CampaignStatus::Draft,
    ] {
        let mut stopped = campaign.clone();
        stopped.status = status;
        assert_eq!(
            decide_new(&stopped, &miami, now()),
            skip(SkipReason::CampaignNotRunning)
        );
    }
    let mut archived = campaign.clone();
    archived.archived = true;
    assert_eq!(
        decide_new(&archived, &miami, now()),
        skip(SkipReason::CampaignNotRunning)
    );
    // maxRetries + 1 attempts made.
    let four_days: Vec<_> = (1..=4).map(|d| now() - Duration::days(d)).collect();
    assert_eq!(
        decide(&campaign, ContactStatus::Pending, None, &four_days, false),
        skip(SkipReason::AttemptsExhausted)
    );
    // A retry not yet due.
    let later = now() + Duration::minutes(30);
    assert_eq!(
        decide(
            &campaign,
            ContactStatus::Pending,
            Some(later),
            &[now() - Duration::hours(1)],
            false
        ),
        DialDecision::NotNow { retry_at: later }
    );
    // Three attempts in the last 24 hours: wait until the first (17:00 EST yesterday) leaves them.
    let three = [
        at("2026-11-23T22:00:00Z"),
        at("2026-11-24T13:30:00Z"),
        at("2026-11-24T14:30:00Z"),
    ];
    assert_eq!(
        decide(&campaign, ContactStatus::Pending, None, &three, false),
        DialDecision::NotNow {
            retry_at: at("2026-11-24T22:00:00Z")
        }
    );
    // Outside the window (Florida stops at 20:00): the next opening, 08:00 tomorrow.
    assert_eq!(
        decide_new(&campaign, &miami, at("2026-11-25T01:30:00Z")),
        DialDecision::NotNow {
            retry_at: at("2026-11-25T13:00:00Z")
        }
    );
    // The window does not open again before the campaign ends.
    let ending = running(CampaignSettings {
        scheduled_end: Some(at("2026-11-25T12:00:00Z")),
        ..local_presence()
    });
    assert_eq!(
        decide_new(&ending, &miami, at("2026-11-25T01:30:00Z")),
        skip(SkipReason::ScheduleEnded)
    );
    assert_eq!(SkipReason::Dnc.closes_contact(), Some(CloseReason::Dnc));
    assert_eq!(SkipReason::CampaignNotRunning.closes_contact(), None);
}

// ---------------------------------------------------------------- the catalogue

#[test]
fn campaign_events_are_catalogued_and_round_trip() {
    let t = now();
    let events: Vec<(String, i32, serde_json::Value)> = {
        let mut all = vec![];
        let meta = EventMetadata::default();
        let mut push = |e: serde_json::Value, ty: &str, version: i32| all.push((ty.to_owned(), version, e));
        for event in history(CampaignStatus::Completed)
            .into_iter()
            .chain(history(CampaignStatus::Cancelled))
            .chain([
                CampaignEvent::CampaignScheduled { starts_at: t, at: t },
                CampaignEvent::CampaignPaused { at: t },
                CampaignEvent::CampaignResumed { at: t },
                CampaignEvent::CampaignArchived {
                    status: CampaignStatus::Paused,
                    at: t,
                },
                CampaignEvent::CampaignSettingsChanged {
                    settings: settings(),
                    changed: vec!["name".into()],
                    at: t,
                },
                CampaignEvent::CampaignContactsImported {
                    contacts: vec![contact(1, "+14155552671")],
                    at: t,
                },
            ])
        {
            let stored = event.to_new_event(&meta);
            push(stored.payload, &stored.event_type, stored.event_version);
        }
        for event in [
            dialed(1, 10, t),
            CampaignContactEvent::CampaignAttemptFinished {
                campaign_id: Uuid::nil(),
                contact_id: Uuid::nil(),
                attempt_number: 1,
                call_id: Uuid::nil(),
                result: AttemptResult::NoAnswer,
                outcome: None,
                opted_out: false,
                successful: false,
                status: ContactStatus::Pending,
                next_attempt_at: Some(t),
                at: t,
            },
            CampaignContactEvent::CampaignContactClosed {
                campaign_id: Uuid::nil(),
                contact_id: Uuid::nil(),
                status: ContactStatus::Dnc,
                reason: CloseReason::Dnc,
                at: t,
            },
        ] {
            let stored = event.to_new_event(&meta);
            push(stored.payload, &stored.event_type, stored.event_version);
        }
        all
    };
    for (event_type, version, payload) in &events {
        decode_stored(event_type, *version, payload.clone()).unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
    let imported = &events
        .iter()
        .find(|(ty, ..)| ty == "CampaignContactsImported")
        .unwrap()
        .2;
    assert_eq!(imported["contacts"][0]["firstName"], "Ada");
    assert_eq!(imported["contacts"][0]["customData"]["plan"], "gold");
    assert_eq!(imported["contacts"][0]["status"], "pending");
    for name in [
        "CampaignCreated",
        "CampaignSettingsChanged",
        "CampaignScheduled",
        "CampaignStarted",
        "CampaignPaused",
        "CampaignResumed",
        "CampaignCompleted",
        "CampaignCancelled",
        "CampaignArchived",
        "CampaignContactsImported",
        "CampaignContactDialed",
        "CampaignAttemptFinished",
        "CampaignContactClosed",
        "CampaignDialWithdrawn",
        "DncNumberListed",
        "DncNumberRemoved",
    ] {
        assert_eq!(current_version(name), Some(1), "{name}");
    }
}

#[test]
fn completion_waits_for_contacts_the_runner_has_not_seen() {
    let state = Campaign {
        settings: Some(CampaignSettings::new(Uuid::from_u128(7), "c", Uuid::from_u128(8))),
        status: CampaignStatus::Running,
        total_contacts: 10,
        ..Campaign::default()
    };
    let complete = |seen| CampaignCommand::Complete {
        reason: CompletionReason::AllContactsTerminal,
        contacts_seen: seen,
        now: now(),
    };
    // An import it did not see.
    given_state(state.clone()).when(complete(9)).then_nothing();
    assert_eq!(given_state(state).when(complete(10)).events().len(), 1);
}
