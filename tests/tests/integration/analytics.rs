//! Analytics end to end: Vapi's server messages for a known set of calls in,
//! each endpoint's exact figures out, in the organization's time zone (across
//! the end of daylight saving time and local midnight).

use serde_json::{json, Value};
use voxreach_tests::{
    assert_live_apply_in_any_batches_equals_live, assert_read_models_equal_rebuilds,
    assert_replay_one_event_at_a_time_equals_live, TestApp, VapiWorld,
};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

fn timed(role: &str, text: &str, from: f64, seconds: f64) -> Value {
    let start = 1_762_000_000_000.0 + from * 1000.0;
    json!({"role": role, "message": text, "time": start, "endTime": start + seconds * 1000.0,
           "duration": seconds * 1000.0, "secondsFromStart": from})
}

fn untimed(role: &str, text: &str) -> Value {
    json!({"role": role, "message": text})
}

/// Vapi's view of an inbound call from +14155552671 to `assistant`.
fn inbound_call(id: &str, assistant: &str) -> Value {
    json!({"id": id, "type": "inboundPhoneCall", "assistantId": assistant, "customer": {"number": "+14155552671"}})
}

/// The end-of-call report of a call to the closer (asst_123).
fn report(id: &str, started: &str, duration: f64, reason: &str, messages: Vec<Value>, data: Value) -> Value {
    json!({"message": {
        "type": "end-of-call-report", "endedReason": reason, "call": inbound_call(id, "asst_123"),
        "startedAt": started, "durationSeconds": duration,
        "artifact": {"transcript": "…", "messages": messages},
        "analysis": {"structuredData": data}
    }})
}

fn status_update(id: &str, assistant: &str, status: &str, timestamp_ms: i64) -> Value {
    json!({"message": {"type": "status-update", "status": status, "timestamp": timestamp_ms,
        "call": inbound_call(id, assistant)}})
}

/// The prospect's words of call b, scored as the read model scores them.
const CALL_B_PROSPECT: &str = "Oh yes, I love it, that sounds great!";

fn vader(text: &str) -> f64 {
    let report = domain::calls::CallReport {
        messages: vec![serde_json::from_value(untimed("user", text)).unwrap()],
        ..Default::default()
    };
    domain::analytics::SentimentScore::of(&report).unwrap().score
}

/// Our ids of the organization's calls, by Vapi's.
async fn call_ids(app: &TestApp, token: &str) -> std::collections::HashMap<String, uuid::Uuid> {
    let list = get(app, token, "/api/calls").await;
    list["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["vapiCallId"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = app.get(path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Six calls of two agents in New York: a on Friday 23:30 (already Saturday in UTC), b and c at 01:30 on
/// Sunday 1 November, once in summer time and once after the clocks went back, d, e and f on Monday.
async fn six_calls() -> (VapiWorld, String) {
    let w = VapiWorld::start().await;
    Mock::given(method("POST"))
        .and(path("/assistant"))
        .and(body_string_contains("Opener"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "asst_456"})))
        .with_priority(1)
        .mount(&w.vapi)
        .await;
    let (status, opener) = w
        .post(
            "/api/agents",
            json!({"name": "Opener", "systemPrompt": "Open.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(status, 201, "{opener}");
    w.app.drain_work().await;
    let (status, zone) = w
        .app
        .patch(
            "/api/organization",
            Some(&w.token),
            json!({"timezone": "America/New_York", "currency": "EUR"}),
        )
        .await;
    assert_eq!(status, 200, "{zone}");
    assert_eq!(zone["timezone"], "America/New_York");
    assert_eq!(zone["currency"], "EUR");
    assert_eq!(zone["name"], "World Inc");
    let (status, checklist) = w
        .app
        .put(
            &format!("/api/agents/{}/adherence-checklist", w.agent_id),
            Some(&w.token),
            json!([{"point": "Greeting", "phrases": ["this is Ava"]}, {"point": "Next step", "phrases": ["book a demo"]}]),
        )
        .await;
    assert_eq!(status, 200, "{checklist}");

    let deliveries = [
        report(
            "call_a",
            "2026-10-31T03:30:00Z",
            60.0,
            "customer-ended-call",
            vec![
                timed("bot", "Hi, this is Ava from Acme.", 0.0, 4.0),
                timed("user", "Sure, tell me more.", 4.0, 2.0),
            ],
            json!({"outcome": "qualified", "sentiment": 0.8}),
        ),
        report(
            "call_b",
            "2026-11-01T05:30:00Z",
            30.0,
            "customer-ended-call",
            // The prospect starts before the agent finished: one interruption.
            vec![
                timed("bot", "This is Ava. Shall we book a demo?", 0.0, 3.0),
                timed("user", CALL_B_PROSPECT, 2.0, 3.0),
            ],
            json!({"outcome": "appointment"}),
        ),
        report(
            "call_c",
            "2026-11-01T06:30:00Z",
            45.0,
            "customer-ended-call",
            // No timings: left out of the talk figures. "Eva" for "Ava" still greets.
            vec![untimed("bot", "Hello, this is Eva."), untimed("user", "I'll take it.")],
            json!({"outcome": "sale", "sentiment": "negative"}),
        ),
        report(
            "call_d",
            "2026-11-02T14:00:00Z",
            20.0,
            "customer-ended-call",
            vec![
                timed("bot", "Good morning.", 0.0, 10.0),
                timed("user", "No thanks.", 10.0, 3.0),
            ],
            json!({"outcome": "not_interested", "sentiment": -0.6}),
        ),
        report(
            "call_e",
            "2026-11-02T15:10:00Z",
            20.0,
            "voicemail",
            vec![timed("bot", "Hi, this is Ava, leaving a message.", 0.0, 5.0)],
            json!({}),
        ),
        // Still in progress: counted at its first status.
        status_update("call_f", "asst_456", "in-progress", 1_793_649_600_000),
    ];
    for delivery in &deliveries {
        let (code, answer) = w.app.deliver_vapi(delivery).await;
        assert_eq!(code, 200, "{answer}");
    }
    // The call-analysis reactor scores each report before analytics counts its figures.
    w.app.drain_work().await;
    let opener_id = opener["id"].as_str().unwrap().to_owned();
    (w, opener_id)
}

const RANGE: &str = "startDate=2026-10-30&endDate=2026-11-02";

#[tokio::test]
async fn every_endpoint_answers_the_exact_figures_in_the_organizations_time_zone() {
    let (w, opener) = six_calls().await;
    let (app, token) = (&w.app, w.token.as_str());
    // Each of the five reports is analyzed once, however often its work runs.
    let analyses = "SELECT count(*) FROM events WHERE event_type = 'CallAnalyzed'";
    let count = || async {
        sqlx::query_scalar::<_, i64>(analyses)
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 5);
    let again = sqlx::query(
        "INSERT INTO reactor_work (reactor, work_key, organization_id, due_at)
         SELECT 'call-analysis', split_part(stream_id, 'call-', 2), organization_id, '-infinity'
         FROM events WHERE event_type = 'CallEnded'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(again.rows_affected(), 5);
    app.drain_work().await;
    assert_eq!(count().await, 5);

    let overview = get(app, token, &format!("/api/analytics/overview?{RANGE}&minSample=1")).await;
    voxreach_tests::assert_answers_as_documented("AnalyticsMetrics", &overview);
    assert_eq!(overview["totalCalls"], 6);
    assert_eq!(
        overview["callsByDay"],
        json!([{"date": "2026-10-30", "count": 1}, {"date": "2026-10-31", "count": 0},
               {"date": "2026-11-01", "count": 2}, {"date": "2026-11-02", "count": 3}])
    );
    let by_hour: Vec<(u64, u64)> = overview["callsByHour"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["count"] != 0)
        .map(|h| (h["hour"].as_u64().unwrap(), h["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_hour, vec![(1, 2), (9, 1), (10, 1), (15, 1), (23, 1)]);
    assert_eq!(overview["callsByHour"].as_array().unwrap().len(), 24);
    assert_eq!(overview["conversionRate"], 50.0);
    assert_eq!(
        overview["funnelStages"],
        json!([
            {"stage": "Calls", "count": 6, "conversionRate": 100.0},
            {"stage": "Contacts", "count": 5, "conversionRate": 83.33},
            {"stage": "Qualified", "count": 3, "conversionRate": 60.0},
            {"stage": "Appointments", "count": 2, "conversionRate": 66.67},
            {"stage": "Sales", "count": 1, "conversionRate": 50.0}
        ])
    );
    assert_eq!(overview["avgTalkTime"], 5.5);
    assert_eq!(overview["avgListenTime"], 2.0);
    assert_eq!(overview["talkRatio"], 2.75);
    let outcomes: Vec<(String, i64, f64)> = overview["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["count"] != 0)
        .map(|o| {
            (
                o["outcome"].as_str().unwrap().to_owned(),
                o["count"].as_i64().unwrap(),
                o["percentage"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("qualified".into(), 1, 16.67),
            ("appointment".into(), 1, 16.67),
            ("sale".into(), 1, 16.67),
            ("not_interested".into(), 1, 16.67)
        ]
    );
    // Both 1 a.m. calls converted: the busiest perfect hour; Sunday likewise.
    assert_eq!(overview["bestTimeToCall"], json!({"hour": 1, "conversionRate": 100.0}));
    assert_eq!(
        overview["bestDayToCall"],
        json!({"day": "Sunday", "conversionRate": 100.0})
    );
    let agents = overview["agentStats"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0]["agentName"], "Closer");
    assert_eq!(agents[0]["rank"], 1);
    assert_eq!(agents[0]["calls"], 5);
    assert_eq!(agents[0]["conversionRate"], 60.0);
    assert_eq!(agents[0]["avgCallDuration"], 35.0);
    assert_eq!(agents[0]["adherence"], 0.5);
    assert_eq!(agents[1]["agentId"], opener.as_str());
    assert_eq!(agents[1]["calls"], 1);
    assert_eq!(agents[1]["conversionRate"], 0.0);
    assert_eq!(agents[1]["avgCallDuration"], 0.0);

    // Too few calls anywhere for the default sample of five: nothing is ranked.
    let default_sample = get(app, token, &format!("/api/analytics/best-times?{RANGE}")).await;
    assert_eq!(default_sample["bestTimeToCall"], Value::Null);
    assert_eq!(default_sample["minSample"], 5);
    let heatmap = default_sample["heatmap"].as_array().unwrap();
    assert_eq!(heatmap.len(), 168);
    // Sunday 1 a.m.: two calls, both answered and converted, flagged as a small sample.
    let sunday_one = heatmap.iter().find(|c| c["weekday"] == 7 && c["hour"] == 1).unwrap();
    assert_eq!(
        sunday_one,
        &json!({"weekday": 7, "hour": 1, "calls": 2, "contactRate": 100.0, "conversionRate": 100.0, "lowSample": true})
    );
    let monday_ten = heatmap.iter().find(|c| c["weekday"] == 1 && c["hour"] == 10).unwrap();
    assert_eq!(monday_ten["contactRate"], 0.0);

    let funnel = get(
        app,
        token,
        &format!("/api/analytics/conversion-funnel?{RANGE}&outcome=sale"),
    )
    .await;
    assert_eq!(funnel["conversionRate"], 16.67);
    assert_eq!(funnel["funnelStages"], overview["funnelStages"]);

    let talk = get(app, token, &format!("/api/analytics/talk-time?{RANGE}")).await;
    assert_eq!(
        talk,
        json!({"avgTalkTime": 5.5, "avgListenTime": 2.0, "talkRatio": 2.75, "avgLongestMonologue": 5.5,
               "avgInterruptions": 0.25, "silenceShare": 0.78, "callsAnalyzed": 4, "callsWithoutTimings": 2})
    );

    let sentiment = get(app, token, &format!("/api/analytics/sentiment?{RANGE}")).await;
    let scores = [0.8, vader(CALL_B_PROSPECT), -0.5, -0.6];
    assert_eq!(sentiment["average"], round(scores.iter().sum::<f64>() / 4.0));
    assert_eq!(
        (sentiment["positive"].clone(), sentiment["negative"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(
        sentiment["trend"][1],
        json!({"date": "2026-10-31", "average": null, "calls": 0})
    );
    assert_eq!(sentiment["trend"][2]["average"], round((scores[1] - 0.5) / 2.0));

    let adherence = get(app, token, &format!("/api/analytics/adherence?{RANGE}")).await;
    assert_eq!(adherence["average"], 0.5);
    assert_eq!(adherence["callsScored"], 5);
    assert_eq!(
        adherence["missedPoints"],
        json!([{"point": "Next step", "calls": 4}, {"point": "Greeting", "calls": 1}])
    );
    assert_eq!(adherence["byAgent"][0]["agentName"], "Closer");
    assert_eq!(
        adherence["trend"][2],
        json!({"date": "2026-11-01", "average": 0.75, "calls": 2})
    );

    // Each call's own figures, with the checklist points it missed.
    let ids = call_ids(app, token).await;
    let id_of = |vapi: &str| ids[vapi];
    let b = get(app, token, &format!("/api/analytics/calls/{}", id_of("call_b"))).await;
    voxreach_tests::assert_answers_as_documented("CallAnalysis", &b);
    assert_eq!(
        (b["localDate"].clone(), b["localHour"].clone()),
        (json!("2026-11-01"), json!(1))
    );
    assert_eq!(b["funnelStage"], "appointment");
    assert_eq!(b["talk"]["interruptions"], 1);
    assert_eq!(b["talk"]["talkRatio"], 1.0);
    assert_eq!(b["sentiment"]["label"], "positive");
    assert_eq!(b["adherence"], json!({"score": 1.0, "missedPoints": []}));
    let d = get(app, token, &format!("/api/analytics/calls/{}", id_of("call_d"))).await;
    assert_eq!(
        d["adherence"],
        json!({"score": 0.0, "missedPoints": ["Greeting", "Next step"]})
    );
    assert_eq!(d["funnelStage"], "contact");
    let c = get(app, token, &format!("/api/analytics/calls/{}", id_of("call_c"))).await;
    assert_eq!(c["talk"], Value::Null);
    let f = get(app, token, &format!("/api/analytics/calls/{}", id_of("call_f"))).await;
    assert_eq!(
        (f["adherence"].clone(), f["localHour"].clone()),
        (Value::Null, json!(15))
    );

    let outcomes = get(app, token, &format!("/api/analytics/outcomes?{RANGE}")).await;
    assert_eq!(outcomes["totalCalls"], 6);

    // Filters combine: one agent, then that agent in a campaign it never called for.
    let one = get(app, token, &format!("/api/analytics/overview?{RANGE}&agentId={opener}")).await;
    assert_eq!(one["totalCalls"], 1);
    assert_eq!(one["funnelStages"][1]["count"], 1);
    let both = get(
        app,
        token,
        &format!(
            "/api/analytics/agents?{RANGE}&agentId={opener},{}&campaignId={}",
            w.agent_id,
            uuid::Uuid::now_v7()
        ),
    )
    .await;
    assert_eq!(both["agentStats"], json!([]));
    let day = get(
        app,
        token,
        "/api/analytics/overview?startDate=2026-11-01&endDate=2026-11-01",
    )
    .await;
    assert_eq!(day["totalCalls"], 2);

    assert_read_models_equal_rebuilds(app).await;

    // In UTC the Friday-night call is on Saturday, and both 1 a.m. calls move to 5 and 6 a.m.
    let (status, _) = app
        .patch("/api/organization", Some(token), json!({"timezone": "UTC"}))
        .await;
    assert_eq!(status, 200);
    app.settle().await;
    let utc = get(app, token, &format!("/api/analytics/overview?{RANGE}")).await;
    let days: Vec<i64> = utc["callsByDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["count"].as_i64().unwrap())
        .collect();
    assert_eq!(days, vec![0, 1, 2, 3]);
    assert_eq!(utc["callsByHour"][5]["count"], 1);
    assert_eq!(utc["callsByHour"][6]["count"], 1);
    assert_read_models_equal_rebuilds(app).await;

    // A rebuild reading one event at a time and holding one call's facts
    // writes them out after every event and reads them back for the next of
    // the same call (and re-buckets written ones when the zone changes).
    assert_replay_one_event_at_a_time_equals_live(app, "analytics").await;
    // And the live path, each event's change applied on its own (the delta of every call move).
    assert_live_apply_in_any_batches_equals_live(app, "analytics").await;
}

#[tokio::test]
async fn exports_are_real_files_named_after_the_range() {
    let (w, _) = six_calls().await;
    for (format, content_type, magic, extension) in [
        (
            "excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &b"PK"[..],
            "xlsx",
        ),
        ("pdf", "application/pdf", &b"%PDF"[..], "pdf"),
    ] {
        let response = w
            .app
            .client
            .get(w.app.url(&format!("/api/analytics/export?format={format}&{RANGE}")))
            .bearer_auth(&w.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], content_type);
        let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert!(
            disposition.contains(&format!("voxreach-analytics-2026-10-30-to-2026-11-02.{extension}")),
            "{disposition}"
        );
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.starts_with(magic), "{format}");
    }
    let (status, body) = w.app.get("/api/analytics/export?format=csv", Some(&w.token)).await;
    assert_eq!(
        (status, body["error"]["details"]["field"].clone()),
        (400, json!("format"))
    );
}

#[tokio::test]
async fn bad_parameters_are_named_and_other_organizations_see_nothing() {
    let (w, _) = six_calls().await;
    let (app, token) = (&w.app, w.token.as_str());
    for (query, field) in [
        ("startDate=2026-13-01", "startDate"),
        ("startDate=2026-11-02&endDate=2026-11-01", "endDate"),
        ("startDate=2025-01-01&endDate=2026-01-02", "endDate"),
        ("agentId=nope", "agentId"),
        (&format!("agentId={}", uuid::Uuid::now_v7()), "agentId"),
        ("outcome=won", "outcome"),
        ("minSample=0", "minSample"),
    ] {
        let (status, body) = app.get(&format!("/api/analytics/overview?{query}"), Some(token)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
    for (change, field) in [
        (json!({"timezone": "Mars/Base"}), "timezone"),
        (json!({"currency": "XYZ1"}), "currency"),
    ] {
        let (status, body) = app.patch("/api/organization", Some(token), change).await;
        assert_eq!(
            (status, body["error"]["details"]["field"].clone()),
            (400, json!(field)),
            "{body}"
        );
    }

    let (other, _) = app.register("owner@other.test", "Other Ltd").await;
    let theirs = get(app, &other, &format!("/api/analytics/overview?{RANGE}")).await;
    assert_eq!(theirs["totalCalls"], 0);
    let (status, body) = app
        .get(
            &format!("/api/analytics/overview?{RANGE}&agentId={}", w.agent_id),
            Some(&other),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"]["field"].clone()),
        (400, json!("agentId"))
    );
    let (_, list) = app.get("/api/calls", Some(token)).await;
    let ours = list["calls"][0]["id"].as_str().unwrap();
    let (status, _) = app.get(&format!("/api/analytics/calls/{ours}"), Some(&other)).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .put(
            &format!("/api/agents/{}/adherence-checklist", w.agent_id),
            Some(&other),
            json!([{"point": "Hijack", "phrases": ["x"]}]),
        )
        .await;
    assert_eq!(status, 404);
    let settings = get(app, &other, "/api/organization").await;
    assert_eq!(settings["name"], "Other Ltd");
    assert_eq!(settings["timezone"], "America/New_York");
    assert_eq!(settings["currency"], "USD");
}

/// Appends `events` to a stream of the world's organization, as the CRM sync and calendar reactors do.
async fn record<E: domain::events::DomainEvent>(
    w: &VapiWorld,
    organization: uuid::Uuid,
    stream: domain::StreamId,
    events: &[E],
) {
    use application::event_store::{AppendRequest, EventStore, StreamAppend};
    let store = infrastructure::event_store::PgEventStore::new(w.app.db.pool.clone());
    let metadata = domain::EventMetadata::default();
    store
        .append(AppendRequest {
            organization_id: organization,
            streams: vec![StreamAppend {
                stream,
                expected: domain::ExpectedVersion::Any,
                events: events.iter().map(|e| e.to_new_event(&metadata)).collect(),
            }],
            idempotency_key: None,
        })
        .await
        .unwrap();
}

/// Records `organization`'s HubSpot connection, as the CRM's connect use case does.
async fn record_hubspot_connected(w: &VapiWorld, organization: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) {
    use domain::crm::{CrmEvent, CrmProvider, CrmSettings};
    let provider = CrmProvider::Hubspot;
    let connected = CrmEvent::CrmConnected {
        sign_in: domain::connections::SignIn {
            organization_id: organization,
            connected_by: uuid::Uuid::nil(),
            provider,
        },
        account_id: "1".into(),
        scopes: vec![],
        settings: CrmSettings::defaults_for(provider),
        at,
    };
    let stream = domain::StreamId::new("crm-integration", provider.integration_id(organization));
    record(w, organization, stream, &[connected]).await;
}

#[tokio::test]
async fn deals_won_in_the_crm_and_meetings_booked_move_calls_down_the_funnel() {
    use domain::calendar::{Attendee, BookingEvent};
    use domain::crm::{CrmProvider, CrmSyncEvent};
    let (w, _) = six_calls().await;
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    let organization: uuid::Uuid = me["organizationId"].as_str().unwrap().parse().unwrap();
    let ids = call_ids(&w.app, &w.token).await;
    let id_of = |vapi: &str| ids[vapi];
    let at = chrono::Utc::now();
    let provider = CrmProvider::Hubspot;
    record_hubspot_connected(&w, organization, at).await;
    // Call d (not interested) was won later at the CRM; call f (no outcome) booked a meeting.
    let (d, f) = (id_of("call_d"), id_of("call_f"));
    let deal = |stage: &str| CrmSyncEvent::CrmDealUpdated {
        provider,
        call_id: d,
        deal_id: "9".into(),
        stage: stage.into(),
        created: false,
        at,
    };
    record(
        &w,
        organization,
        domain::StreamId::new("crm-call-sync", provider.call_sync_id(d)),
        &[deal("qualifiedtobuy"), deal("closedwon")],
    )
    .await;
    let attendee = Attendee {
        name: "Pat".into(),
        email: None,
        phone: None,
    };
    record(
        &w,
        organization,
        domain::StreamId::new("calendar-bookings", uuid::Uuid::now_v7()),
        &[BookingEvent::AppointmentBooked {
            booking_id: uuid::Uuid::now_v7(),
            call_id: Some(f),
            contact: attendee,
            start: at,
            end: at,
            provider_event_id: "evt".into(),
            meeting_link: None,
            at,
        }],
    )
    .await;
    w.app.settle().await;
    let funnel = get(&w.app, &w.token, &format!("/api/analytics/conversion-funnel?{RANGE}")).await;
    let counts: Vec<i64> = funnel["funnelStages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_i64().unwrap())
        .collect();
    // Each stage counts the calls that reached it or a later one: qualified a, b, c, d, f;
    // appointments b, c, d, f; sales c and the won d.
    assert_eq!(counts, vec![6, 5, 5, 4, 2]);
    assert_read_models_equal_rebuilds(&w.app).await;
    assert_live_apply_in_any_batches_equals_live(&w.app, "analytics").await;
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// A report from Vapi arrives analyzed, in the transaction that records it, so the analysis
/// reactor is given nothing to do; a report recorded without its analysis (as before analysis
/// existed) is scored by the reactor, once.
#[tokio::test]
async fn vapi_reports_arrive_analyzed_and_the_reactor_scores_the_rest() {
    let w = VapiWorld::start().await;
    let app = &w.app;
    let messages = || {
        vec![
            timed("bot", "Hello, this is Eva.", 0.0, 4.0),
            timed("user", "I love it.", 4.0, 2.0),
        ]
    };
    let delivery = report(
        "call_a",
        "2026-11-01T10:00:00Z",
        6.0,
        "customer-ended-call",
        messages(),
        json!({}),
    );
    let (code, answer) = app.deliver_vapi(&delivery).await;
    assert_eq!(code, 200, "{answer}");
    let recorded: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_type, transaction_id::text::bigint FROM events WHERE stream_type = 'call' ORDER BY global_position")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    let types: Vec<&str> = recorded.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["CallEnded", "CallAnalyzed"]);
    assert_eq!(recorded[0].1, recorded[1].1, "the analysis is recorded with its report");
    app.settle().await;
    let queued = "SELECT count(*) FROM reactor_work WHERE reactor = $1";
    assert_eq!(count(app, queued, "call-analysis").await, 0);

    // The same report recorded alone, as calls ended before analysis existed were.
    let (_, me) = app.get("/api/auth/me", Some(&w.token)).await;
    let organization: uuid::Uuid = me["organizationId"].as_str().unwrap().parse().unwrap();
    let call_id = uuid::Uuid::now_v7();
    let content: domain::calls::CallReport = serde_json::from_value(json!({"messages": messages()})).unwrap();
    let ended = domain::calls::CallEvent::CallEnded {
        parties: Default::default(),
        report: Box::new(content),
        at: chrono::Utc::now(),
    };
    record(&w, organization, domain::StreamId::new("call", call_id), &[ended]).await;
    app.settle().await;
    assert_eq!(count(app, queued, "call-analysis").await, 1);
    app.drain_work().await;
    let analyses = "SELECT count(*) FROM events WHERE event_type = 'CallAnalyzed' AND stream_id = $1";
    assert_eq!(count(app, analyses, &format!("call-{call_id}")).await, 1);
    assert_eq!(
        count(app, "SELECT count(*) FROM events WHERE event_type = $1", "CallAnalyzed").await,
        2
    );
}

/// CRM sync, campaign results, A/B decisions and Slack alerts queue work for a call only in an
/// organization that has set the feature up (here: a CRM connection), as of the call's end.
#[tokio::test]
async fn reactors_get_work_only_in_organizations_that_use_their_feature() {
    let w = VapiWorld::start().await;
    let (world, app) = (&w, &w.app);
    let organization_of = |token: String| async move {
        let (_, me) = app.get("/api/auth/me", Some(&token)).await;
        me["organizationId"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()
    };
    let connect_crm = |organization: uuid::Uuid| record_hubspot_connected(world, organization, chrono::Utc::now());
    let (other, _) = app.register("owner@other.test", "Other Ltd").await;
    connect_crm(organization_of(other).await).await;
    let end = |id: &str| {
        report(
            id,
            "2026-11-01T10:00:00Z",
            6.0,
            "pipeline-error-openai-llm-failed",
            vec![],
            json!({}),
        )
    };
    let work_for = |call_id: String| async move {
        let reactors: Vec<String> =
            sqlx::query_scalar("SELECT reactor FROM reactor_work WHERE position($1 in work_key) > 0 ORDER BY reactor")
                .bind(call_id)
                .fetch_all(&app.db.pool)
                .await
                .unwrap();
        reactors
    };

    let (code, answer) = app.deliver_vapi(&end("call_a")).await;
    assert_eq!(code, 200, "{answer}");
    app.settle().await;
    assert_eq!(
        work_for(app.call_id_of(&w.token, "call_a").await).await,
        Vec::<String>::new()
    );

    connect_crm(organization_of(w.token.clone()).await).await;
    let (code, answer) = app.deliver_vapi(&end("call_b")).await;
    assert_eq!(code, 200, "{answer}");
    app.settle().await;
    assert_eq!(work_for(app.call_id_of(&w.token, "call_b").await).await, ["crm-sync"]);
}

/// Aggregate rows counting `$1` calls (none may be left at 0).
const AGGREGATE_ROWS_OF: &str = "SELECT (SELECT count(*) FROM analytics_daily WHERE calls = $1::int)
    + (SELECT count(*) FROM analytics_hourly WHERE calls = $1::int)
    + (SELECT count(*) FROM analytics_missed_points WHERE calls = $1::int)";

/// A call counted from its first status moves, with every figure, to the day and hour its report
/// says it started, in the next batch; the rows it leaves are removed, not left at zero (the
/// day's, which another call still counts in, stay), so the live tables equal a rebuild's.
#[tokio::test]
async fn a_call_counted_early_moves_to_where_its_report_says_it_started() {
    let w = VapiWorld::start().await;
    let (app, token) = (&w.app, w.token.as_str());
    let (status, _) = app
        .put(
            &format!("/api/agents/{}/adherence-checklist", w.agent_id),
            Some(token),
            json!([{"point": "Greeting", "phrases": ["this is Ava"]}, {"point": "Next step", "phrases": ["book a demo"]}]),
        )
        .await;
    assert_eq!(status, 200);
    // Calls at 05:00 and 06:00 on Tuesday 3 November in New York.
    for (id, at) in [("call_x", 1_793_700_000_000), ("call_y", 1_793_703_600_000)] {
        let first_status = status_update(id, "asst_123", "in-progress", at);
        assert_eq!(app.deliver_vapi(&first_status).await.0, 200);
    }
    app.settle().await;
    let day = |date: &str| format!("/api/analytics/overview?startDate={date}&endDate={date}");
    let tuesday = get(app, token, &day("2026-11-03")).await;
    assert_eq!(tuesday["totalCalls"], 2);
    assert_eq!(tuesday["callsByHour"][5]["count"], 1);
    assert_eq!(tuesday["callsByHour"][6]["count"], 1);

    // Call x started at 18:50 on Monday, New York time; the prospect qualified; no next step.
    let delivery = report(
        "call_x",
        "2026-11-02T23:50:00Z",
        30.0,
        "customer-ended-call",
        vec![
            timed("bot", "Hi, this is Ava.", 0.0, 4.0),
            timed("user", "Sounds good.", 4.0, 2.0),
        ],
        json!({"outcome": "qualified"}),
    );
    assert_eq!(app.deliver_vapi(&delivery).await.0, 200);
    app.drain_work().await;
    app.settle().await;
    let tuesday = get(app, token, &day("2026-11-03")).await;
    assert_eq!(tuesday["totalCalls"], 1);
    assert_eq!(tuesday["callsByHour"][5]["count"], 0);
    assert_eq!(tuesday["callsByHour"][6]["count"], 1);
    let monday = get(app, token, &day("2026-11-02")).await;
    assert_eq!(monday["totalCalls"], 1);
    assert_eq!(monday["callsByHour"][18]["count"], 1);
    assert_eq!(monday["avgTalkTime"], 4.0);
    assert_eq!(monday["agentStats"][0]["avgCallDuration"], 30.0);
    let missed =
        "SELECT count(*) FROM analytics_missed_points WHERE dims = 0 AND local_date = '2026-11-02' AND point = $1";
    assert_eq!(count(app, missed, "Next step").await, 1);
    assert_eq!(count(app, AGGREGATE_ROWS_OF, "0").await, 0);
    assert_read_models_equal_rebuilds(app).await;
    assert_live_apply_in_any_batches_equals_live(app, "analytics").await;
}
