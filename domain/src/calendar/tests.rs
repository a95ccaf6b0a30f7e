use super::*;
use crate::aggregate::given_when_then::{given, given_state};
use proptest::prelude::*;

fn at(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

fn slot(start: &str, minutes: u32) -> Slot {
    Slot::new(at(start), minutes)
}

/// The calendar's local wall-clock time of an instant, "YYYY-MM-DD HH:MM±hh:mm".
fn local(settings: &CalendarSettings, instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&settings.timezone.tz())
        .format("%Y-%m-%d %H:%M%:z")
        .to_string()
}

/// Monday 2026-03-02, 08:00 in New York: well before any slot asked below.
fn early_march() -> DateTime<Utc> {
    at("2026-03-02T13:00:00Z")
}

#[test]
fn an_empty_settings_object_gets_the_documented_defaults() {
    let settings: CalendarSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(settings, CalendarSettings::default());
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(json["bufferMinutes"], 15);
    assert_eq!(json["workingHoursStart"], "09:00");
    assert_eq!(json["workingHoursEnd"], "17:00");
    assert_eq!(
        json["workingDays"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri"])
    );
    assert_eq!(json["timezone"], "America/New_York");
    assert_eq!(json["minimumNoticeMinutes"], 120);
    assert_eq!(json["bookingHorizonDays"], 30);
    assert_eq!(json["defaultDurationMinutes"], 30);
    assert!(serde_json::from_str::<CalendarSettings>(r#"{"bufferMinute": 5}"#).is_err());
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let field_of = |patch: SettingsPatch| match patch.apply(&CalendarSettings::default()) {
        Err(CalendarError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let time = |raw: &str| LocalTime::try_from(raw.to_owned()).unwrap();
    assert_eq!(
        field_of(SettingsPatch {
            working_hours_end: Some(time("08:00")),
            ..Default::default()
        }),
        "workingHoursEnd"
    );
    assert_eq!(
        field_of(SettingsPatch {
            booking_horizon_days: Some(366),
            ..Default::default()
        }),
        "bookingHorizonDays"
    );
    assert_eq!(
        field_of(SettingsPatch {
            working_days: Some(vec![]),
            ..Default::default()
        }),
        "workingDays"
    );
    assert_eq!(
        field_of(SettingsPatch {
            default_duration_minutes: Some(0),
            ..Default::default()
        }),
        "defaultDurationMinutes"
    );
    assert_eq!(
        field_of(SettingsPatch {
            buffer_minutes: Some(241),
            ..Default::default()
        }),
        "bufferMinutes"
    );
    let changed = SettingsPatch {
        buffer_minutes: Some(0),
        booking_horizon_days: Some(365),
        ..Default::default()
    }
    .apply(&CalendarSettings::default())
    .unwrap();
    assert_eq!((changed.buffer_minutes, changed.booking_horizon_days), (0, 365));
    assert_eq!(
        changed.working_hours_start,
        CalendarSettings::default().working_hours_start
    );
}

#[test]
fn dates_and_times_parse_strictly() {
    assert!(parse_time("time", "14:00").is_ok());
    for bad in ["25:99", "9:00", "14:00:00", "2pm", ""] {
        assert!(
            matches!(
                parse_time("time", bad),
                Err(CalendarError::Invalid { field: "time", .. })
            ),
            "{bad}"
        );
    }
    assert!(parse_date("date", "2026-02-20").is_ok());
    assert!(parse_date("date", "2026-02-30").is_err());
    assert!(validate_duration("duration", 0).is_err());
    assert!(validate_duration("duration", 481).is_err());
    assert!(validate_duration("duration", 480).is_ok());
}

#[test]
fn working_hours_are_read_in_the_calendars_zone() {
    let settings = CalendarSettings::default();
    let now = early_march();
    // Wednesday 2026-03-04: 09:00 New York is 14:00 UTC (EST).
    assert_eq!(settings.verdict(&slot("2026-03-04T14:00:00Z", 30), &[], now), None);
    assert_eq!(
        settings.verdict(&slot("2026-03-04T13:30:00Z", 30), &[], now),
        Some(Unavailable::OutsideWorkingHours)
    );
    // 16:45 for 30 minutes runs past 17:00.
    assert_eq!(
        settings.verdict(&slot("2026-03-04T21:45:00Z", 30), &[], now),
        Some(Unavailable::OutsideWorkingHours)
    );
    assert_eq!(settings.verdict(&slot("2026-03-04T21:30:00Z", 30), &[], now), None);
    // Saturday.
    assert_eq!(
        settings.verdict(&slot("2026-03-07T15:00:00Z", 30), &[], now),
        Some(Unavailable::NotAWorkingDay)
    );
}

#[test]
fn notice_and_horizon_bound_the_start() {
    let settings = CalendarSettings::default();
    // Wednesday 10:00 New York; notice 120 minutes.
    let now = at("2026-03-04T15:00:00Z");
    assert_eq!(
        settings.verdict(&slot("2026-03-04T16:30:00Z", 30), &[], now),
        Some(Unavailable::TooSoon)
    );
    assert_eq!(settings.verdict(&slot("2026-03-04T17:00:00Z", 30), &[], now), None);
    assert_eq!(
        settings.verdict(&slot("2026-04-06T14:00:00Z", 30), &[], now),
        Some(Unavailable::BeyondHorizon)
    );
}

#[test]
fn buffers_keep_distance_from_busy_time_and_alternatives_skip_it() {
    let settings = CalendarSettings::default();
    let now = early_march();
    // Busy 10:00–11:00 New York on Wednesday.
    let busy = [slot("2026-03-04T15:00:00Z", 60)];
    let asked = settings.availability(slot("2026-03-04T16:00:00Z", 30), &busy, now);
    assert_eq!(
        asked.unavailable,
        Some(Unavailable::Busy),
        "11:00 is inside the 15-minute buffer"
    );
    let starts: Vec<String> = asked.alternatives.iter().map(|s| local(&settings, s.start)).collect();
    assert_eq!(
        starts,
        [
            "2026-03-04 11:15-05:00",
            "2026-03-04 11:45-05:00",
            "2026-03-04 12:15-05:00"
        ]
    );
    assert_eq!(settings.verdict(&slot("2026-03-04T16:15:00Z", 30), &busy, now), None);
    // And before: 09:30–10:00 touches the buffer; 09:00–09:30 is 30 minutes clear.
    assert_eq!(
        settings.verdict(&slot("2026-03-04T14:30:00Z", 30), &busy, now),
        Some(Unavailable::Busy)
    );
    assert_eq!(settings.verdict(&slot("2026-03-04T14:00:00Z", 30), &busy, now), None);
}

#[test]
fn alternatives_cross_the_march_dst_change_in_local_time() {
    let settings = CalendarSettings::default();
    let now = early_march();
    // Friday 2026-03-06 16:30 EST is taken; clocks go forward on Sunday the 8th.
    let busy = [slot("2026-03-06T21:30:00Z", 30)];
    let asked = settings.availability(slot("2026-03-06T21:30:00Z", 30), &busy, now);
    assert_eq!(asked.unavailable, Some(Unavailable::Busy));
    let starts: Vec<String> = asked.alternatives.iter().map(|s| local(&settings, s.start)).collect();
    assert_eq!(
        starts,
        [
            "2026-03-09 09:00-04:00",
            "2026-03-09 09:30-04:00",
            "2026-03-09 10:00-04:00"
        ]
    );
    // Monday 09:00 EDT is 13:00 UTC, an hour earlier than the Friday before.
    assert_eq!(asked.alternatives[0].start, at("2026-03-09T13:00:00Z"));
}

#[test]
fn alternatives_cross_the_november_dst_change_in_local_time() {
    let settings = CalendarSettings::default();
    let now = at("2026-10-26T12:00:00Z");
    // Friday 2026-10-30 16:30 EDT is taken; clocks go back on Sunday November 1st.
    let busy = [slot("2026-10-30T20:30:00Z", 30)];
    let asked = settings.availability(slot("2026-10-30T20:30:00Z", 30), &busy, now);
    assert_eq!(local(&settings, asked.alternatives[0].start), "2026-11-02 09:00-05:00");
    assert_eq!(asked.alternatives[0].start, at("2026-11-02T14:00:00Z"));
}

#[test]
fn a_slot_across_the_night_clocks_change_lasts_its_real_length() {
    let around_the_clock = SettingsPatch {
        working_hours_start: Some(LocalTime::try_from("00:00".to_owned()).unwrap()),
        working_hours_end: Some(LocalTime::try_from("23:59".to_owned()).unwrap()),
        working_days: Some(DayOfWeek::ALL.to_vec()),
        minimum_notice_minutes: Some(0),
        ..Default::default()
    }
    .apply(&CalendarSettings::default())
    .unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    let start = around_the_clock.instant(day, NaiveTime::from_hms_opt(1, 30, 0).unwrap(), None);
    let thirty = Slot::new(start, 60);
    assert_eq!(local(&around_the_clock, thirty.start), "2026-03-08 01:30-05:00");
    assert_eq!(local(&around_the_clock, thirty.end), "2026-03-08 03:30-04:00");
    assert_eq!(around_the_clock.verdict(&thirty, &[], early_march()), None);
    // A local time the change skips happens at the end of the gap.
    let skipped = around_the_clock.instant(day, NaiveTime::from_hms_opt(2, 30, 0).unwrap(), None);
    assert_eq!(local(&around_the_clock, skipped), "2026-03-08 03:00-04:00");
}

#[test]
fn a_time_in_another_zone_is_read_there() {
    let settings = CalendarSettings::default();
    let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
    let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
    let pacific = Some(TimeZone::new(chrono_tz::America::Los_Angeles));
    assert_eq!(settings.instant(day, nine, pacific), at("2026-03-04T17:00:00Z"));
    assert_eq!(settings.instant(day, nine, None), at("2026-03-04T14:00:00Z"));
}

#[test]
fn too_soon_offers_the_first_bookable_slots() {
    let settings = CalendarSettings::default();
    // Wednesday 10:05 New York: nothing before 12:05, so the first offer is 12:15.
    let now = at("2026-03-04T15:05:00Z");
    let asked = settings.availability(slot("2026-03-04T15:30:00Z", 30), &[], now);
    assert_eq!(asked.unavailable, Some(Unavailable::TooSoon));
    assert_eq!(local(&settings, asked.alternatives[0].start), "2026-03-04 12:15-05:00");
}

prop_compose! {
    fn busy_periods()(periods in prop::collection::vec((0i64..14 * 24 * 4, 1u32..16), 0..40)) -> Vec<Slot> {
        periods
            .into_iter()
            .map(|(quarter, quarters)| Slot::new(early_march() + Duration::minutes(quarter * 15 + 7), quarters * 15))
            .collect()
    }
}

proptest! {
    /// Whatever is busy, every alternative is itself free by the same rules,
    /// later than the asked time, on the local quarter-hour grid, and apart
    /// from the others.
    #[test]
    fn alternatives_are_free_ordered_and_apart(
        busy in busy_periods(),
        asked_quarter in 0i64..10 * 24 * 4,
        minutes in prop::sample::select(vec![15u32, 30, 45, 60, 90]),
        buffer in prop::sample::select(vec![0u32, 5, 15, 30]),
    ) {
        let settings = CalendarSettings { buffer_minutes: buffer, ..CalendarSettings::default() };
        let now = early_march();
        let asked = Slot::new(now + Duration::minutes(asked_quarter * 15), minutes);
        let answer = settings.availability(asked, &busy, now);
        prop_assert_eq!(answer.is_available(), settings.verdict(&asked, &busy, now).is_none());
        if answer.is_available() {
            prop_assert!(answer.alternatives.is_empty());
        }
        let mut previous_end: Option<DateTime<Utc>> = None;
        for alternative in &answer.alternatives {
            prop_assert_eq!(settings.verdict(alternative, &busy, now), None);
            prop_assert_eq!((alternative.end - alternative.start).num_minutes(), i64::from(minutes));
            prop_assert!(alternative.start >= asked.start.max(settings.bookable_starts(now).start));
            let local_start = alternative.start.with_timezone(&settings.timezone.tz());
            prop_assert_eq!(local_start.minute() % 15, 0);
            if let Some(end) = previous_end {
                prop_assert!(alternative.start >= end);
            }
            previous_end = Some(alternative.end);
        }
        prop_assert!(answer.alternatives.len() <= ALTERNATIVES);
    }
}

fn attendee() -> Attendee {
    Attendee {
        name: "John Doe".into(),
        email: Some(crate::auth::Email::parse("john@example.com").unwrap()),
        phone: Some(PhoneNumber::parse("+14155550123").unwrap()),
    }
}

fn hold(booking: u128, start: &str) -> BookingCommand {
    BookingCommand::Hold {
        booking_id: Uuid::from_u128(booking),
        agent_id: None,
        call_id: None,
        title: "Demo".into(),
        attendee: attendee(),
        slot: slot(start, 30),
        add_video_link: true,
        buffer_minutes: 15,
        now: early_march(),
    }
}

fn held(booking: u128, start: &str) -> BookingEvent {
    BookingEvent::AppointmentSlotHeld {
        booking_id: Uuid::from_u128(booking),
        agent_id: None,
        call_id: None,
        title: "Demo".into(),
        attendee: attendee(),
        start: at(start),
        end: at(start) + Duration::minutes(30),
        add_video_link: true,
        at: early_march(),
    }
}

#[test]
fn a_held_slot_and_its_buffer_are_not_held_twice() {
    given::<CalendarBookings>([])
        .when(hold(1, "2026-03-04T15:00:00Z"))
        .then([held(1, "2026-03-04T15:00:00Z")]);
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z")])
        .when(hold(2, "2026-03-04T15:00:00Z"))
        .then_error(CalendarError::SlotTaken);
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z")])
        .when(hold(2, "2026-03-04T15:40:00Z"))
        .then_error(CalendarError::SlotTaken);
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z")])
        .when(hold(2, "2026-03-04T15:45:00Z"))
        .then([held(2, "2026-03-04T15:45:00Z")]);
    // A repeat of the same booking holds nothing more.
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z")])
        .when(hold(1, "2026-03-04T15:00:00Z"))
        .then_nothing();
}

#[test]
fn a_released_slot_is_free_again_and_a_confirmed_one_names_its_contact() {
    let released = BookingEvent::AppointmentSlotReleased {
        booking_id: Uuid::from_u128(1),
        reason: ReleaseReason::BusyAtProvider,
        at: early_march(),
    };
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z"), released.clone()])
        .when(hold(2, "2026-03-04T15:00:00Z"))
        .then([held(2, "2026-03-04T15:00:00Z")]);
    let booked = given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z")])
        .when(BookingCommand::Confirm {
            booking_id: Uuid::from_u128(1),
            provider_event_id: "evt1".into(),
            meeting_link: Some("https://meet.google.com/abc".into()),
            now: early_march(),
        })
        .then([BookingEvent::AppointmentBooked {
            booking_id: Uuid::from_u128(1),
            call_id: None,
            contact: attendee(),
            start: at("2026-03-04T15:00:00Z"),
            end: at("2026-03-04T15:30:00Z"),
            provider_event_id: "evt1".into(),
            meeting_link: Some("https://meet.google.com/abc".into()),
            at: early_march(),
        }]);
    assert_eq!(booked.occupied(), vec![slot("2026-03-04T15:00:00Z", 30)]);
    given::<CalendarBookings>([held(1, "2026-03-04T15:00:00Z"), released])
        .when(BookingCommand::Confirm {
            booking_id: Uuid::from_u128(1),
            provider_event_id: "evt1".into(),
            meeting_link: None,
            now: early_march(),
        })
        .then_nothing();
}

#[test]
fn calendly_deliveries_are_recorded_once_and_a_reschedule_is_linked() {
    let scheduled = |uri: &str, from: Option<&str>| BookingCommand::RecordCalendly {
        delivery: CalendlyDelivery::InviteeCreated {
            invitee_uri: uri.into(),
            event_uri: "https://api.calendly.com/scheduled_events/E1".into(),
            name: "Ann".into(),
            email: Some("ann@example.com".into()),
            slot: slot("2026-03-04T15:00:00Z", 30),
            rescheduled_from: from.map(str::to_owned),
        },
        now: early_march(),
    };
    let first = "https://api.calendly.com/scheduled_events/E1/invitees/I1";
    let second = "https://api.calendly.com/scheduled_events/E2/invitees/I2";
    let state = given::<CalendarBookings>([]).when(scheduled(first, None)).state_after();
    let state = given_state(state).when(scheduled(first, None)).then_nothing();
    let canceled = BookingCommand::RecordCalendly {
        delivery: CalendlyDelivery::InviteeCanceled {
            invitee_uri: first.into(),
            rescheduled: true,
            reason: None,
        },
        now: early_march(),
    };
    let state = given_state(state).when(canceled.clone()).state_after();
    assert_eq!(
        state.bookings[&calendly_booking_id(first)].status,
        AppointmentStatus::Rescheduled
    );
    let state = given_state(state).when(canceled).then_nothing();
    let events = given_state(state).when(scheduled(second, Some(first))).events();
    assert!(matches!(
        &events[..],
        [BookingEvent::CalendlyInviteeScheduled { rescheduled_from: Some(from), .. }] if from == first
    ));
}

#[test]
fn an_integration_connects_once_changes_settings_and_stops_when_disconnected() {
    let connect = CalendarCommand::Connect {
        sign_in: SignIn {
            organization_id: Uuid::from_u128(7),
            connected_by: Uuid::from_u128(8),
            provider: CalendarProvider::Google,
        },
        account: "owner@example.com".into(),
        webhook_subscription: None,
        settings: CalendarSettings::default(),
        now: early_march(),
    };
    let state = given::<CalendarIntegration>([]).when(connect.clone()).state_after();
    assert!(state.is_live());
    let state = given_state(state).when(connect).then_nothing();
    let patch = CalendarCommand::ChangeSettings {
        patch: SettingsPatch {
            buffer_minutes: Some(5),
            ..Default::default()
        },
        now: early_march(),
    };
    let state = given_state(state).when(patch.clone()).state_after();
    assert_eq!(state.settings.buffer_minutes, 5);
    let state = given_state(state).when(patch.clone()).then_nothing();
    let reauth = CalendarCommand::MarkNeedsReauth {
        reason: "invalid_grant".into(),
        now: early_march(),
    };
    let state = given_state(state).when(reauth.clone()).state_after();
    assert_eq!(state.connection.status, CalendarStatus::NeedsReauth);
    let state = given_state(state).when(reauth).then_nothing();
    let state = given_state(state)
        .when(CalendarCommand::Disconnect {
            revoked_at_provider: true,
            now: early_march(),
        })
        .state_after();
    given_state(state)
        .when(patch.clone())
        .then_error(CalendarError::Disconnected);
    given::<CalendarIntegration>([])
        .when(patch)
        .then_error(CalendarError::NotFound);
}
