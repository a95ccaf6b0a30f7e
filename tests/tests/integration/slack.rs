//! Slack notifications against a fake Slack that answers like incoming webhooks do.

use serde_json::{json, Value};
use std::sync::Arc;
use voxreach_tests::{ManualClock, TestApp, OWNER_PASSWORD};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

struct World {
    app: TestApp,
    slack: MockServer,
    token: String,
    clock: Arc<ManualClock>,
}

async fn world() -> World {
    world_at("2026-03-02T15:00:00Z").await
}

/// A world whose clock starts at `time`: nothing in these tests depends on the real date.
async fn world_at(time: &str) -> World {
    let slack = MockServer::start().await;
    let clock = ManualClock::at(time);
    let app_clock = clock.clone();
    let slack_uri = slack.uri();
    let app = TestApp::spawn_with(|w| {
        w.slack_origins = vec![url::Url::parse(&slack_uri).unwrap().origin()];
        w.clock = app_clock;
    })
    .await;
    let (token, _) = app.register("owner@slack.test", "Slacky").await;
    World {
        app,
        slack,
        token,
        clock,
    }
}

impl World {
    /// Moves the clock on and signs in again (sessions expire by the same clock).
    async fn travel_to(&mut self, time: &str) {
        self.clock.set(time);
        let (status, body) = self.app.login("owner@slack.test", OWNER_PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        self.token = body["token"].as_str().expect("a session token").to_owned();
    }
}

async fn connect(w: &World, hook: &str, preferences: Value) -> String {
    let (status, body) = w
        .app
        .post(
            "/api/integrations/slack",
            Some(&w.token),
            json!({"workspaceName": "Acme", "channel": "#sales", "webhookUrl": format!("{}/services/{hook}", w.slack.uri()), "preferences": preferences}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn preferences(hot_lead: bool, failures: bool, mute: Option<(&str, &str)>) -> Value {
    json!({
        "routes": {
            "hot_lead": {"enabled": hot_lead, "mentions": ["U024BE7LH"]},
            "appointment_booked": {"enabled": false},
            "call_failed": {"enabled": failures}
        },
        "timezone": "America/New_York",
        "muteHours": mute.map(|(start, end)| json!({"start": start, "end": end})),
        "failuresBypassMute": true
    })
}

/// A call known to the organization (through an outbound request's metadata-free path: a webhook with org metadata).
async fn call_with_outcome(w: &World, vapi_id: &str, outcome: &str) -> String {
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    let org = me["organizationId"].as_str().unwrap();
    let message = json!({"message": {"type": "status-update", "status": "in-progress",
        "call": {"id": vapi_id, "type": "inboundPhoneCall", "metadata": {"voxreachOrganizationId": org}, "customer": {"number": "+15551234567"}},
        "customer": {"number": "+15551234567"}}});
    assert_eq!(w.app.deliver_vapi(&message).await.0, 200);
    w.app.settle().await;
    let id = w.app.call_id_of(&w.token, vapi_id).await;
    let (status, _) = w
        .app
        .post(
            &format!("/api/calls/{id}/outcome"),
            Some(&w.token),
            json!({"outcome": outcome}),
        )
        .await;
    assert_eq!(status, 204);
    id
}

async fn failed_call(w: &World, vapi_id: &str) {
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    let org = me["organizationId"].as_str().unwrap();
    let report = json!({"message": {"type": "end-of-call-report", "endedReason": "pipeline-error-openai-llm-failed",
        "call": {"id": vapi_id, "metadata": {"voxreachOrganizationId": org}}, "durationSeconds": 3}});
    assert_eq!(w.app.deliver_vapi(&report).await.0, 200);
}

/// A request for Slack's test message to integration `id`, as the holder of `token`.
async fn send_test(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    app.post(
        "/api/integrations/slack/test",
        Some(token),
        json!({ "integrationId": id }),
    )
    .await
}

/// A webhook at the fake Slack (`/services/<hook>`): a mock to answer and mount.
fn webhook(hook: &str) -> MockBuilder {
    Mock::given(method("POST")).and(path(format!("/services/{hook}")))
}

/// Slack's answer: `status` with its plain-text `body` (`ok`, or an error code).
fn slack_answers(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_string(body)
}

async fn integration(w: &World, id: &str) -> Value {
    w.app.settle().await;
    let (_, list) = w.app.get("/api/integrations/slack", Some(&w.token)).await;
    list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn events_from_before_an_integration_existed_never_notify_it() {
    let w = world().await;
    // Work is queued only in an organization with Slack: one is connected, without hot leads.
    connect(&w, "T1/B8/early", preferences(false, false, None)).await;
    w.app.settle().await;
    webhook("T1/B8/early")
        .respond_with(slack_answers(200, "ok"))
        .expect(0)
        .mount(&w.slack)
        .await;
    // A hot lead whose notification is still queued when the next integration is connected.
    call_with_outcome(&w, "call_before", "qualified").await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM reactor_work WHERE reactor = 'slack-notify'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert!(queued > 0, "the lead's notification is queued");
    let id = connect(&w, "T1/B9/late", preferences(true, true, None)).await;
    w.app.settle().await;
    webhook("T1/B9/late")
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    w.app.drain_work().await;
    assert_eq!(integration(&w, &id).await["notificationsSent"], 0);
    // A lead after the connection is notified.
    call_with_outcome(&w, "call_after", "qualified").await;
    w.app.drain_work().await;
    assert_eq!(integration(&w, &id).await["notificationsSent"], 1);
}

#[tokio::test]
async fn hot_leads_reach_their_channel_as_block_kit_once() {
    let w = world().await;
    let id = connect(&w, "T1/B1/secretpart", preferences(true, false, None)).await;
    let listed = integration(&w, &id).await;
    assert!(!listed.to_string().contains("secretpart"), "{listed}");
    assert!(listed["webhookHint"].as_str().unwrap().ends_with("part"));
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%secretpart%'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert_eq!(leaked, 0, "webhook URLs are encrypted at rest");

    let call_id = call_with_outcome(&w, "call_hot", "qualified").await;
    webhook("T1/B1/secretpart")
        .and(body_partial_json(json!({
            "text": "🎯 Hot Lead Alert!",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "🎯 Hot Lead Alert!"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "<@U024BE7LH> *+15551234567* just qualified on a call with *your agent*"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Phone:*\n+15551234567"},
                    {"type": "mrkdwn", "text": "*Outcome:*\nqualified"},
                    {"type": "mrkdwn", "text": "*Call Duration:*\n–"},
                    {"type": "mrkdwn", "text": "*Sentiment:*\n–"}
                ]},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "View Transcript"}, "url": format!("https://app.voxreach.test/calls/{call_id}")},
                    {"type": "button", "text": {"type": "plain_text", "text": "Call Back"}, "url": "tel:+15551234567"}
                ]}
            ]
        })))
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    w.app.drain_work().await;
    // Routed off: appointments send nothing.
    call_with_outcome(&w, "call_appt", "appointment").await;
    w.app.drain_work().await;
    let sent = integration(&w, &id).await;
    assert_eq!(sent["notificationsSent"], 1);
    // Even if the same work comes round again (a restart mid-batch), nothing is sent twice.
    let key: String =
        sqlx::query_scalar("SELECT payload->>'source' FROM events WHERE event_type = 'SlackNotificationSent'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO reactor_work (reactor, work_key, organization_id, due_at) SELECT 'slack-notify', $1, organization_id, '-infinity' FROM calls WHERE id = $2::uuid")
        .bind(&key)
        .bind(&call_id)
        .execute(&w.app.db.pool)
        .await
        .unwrap();
    w.app.drain_work().await;
    let notifications: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SlackNotificationSent'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    assert_eq!(notifications, 1);
    voxreach_tests::assert_rebuilds_send_nothing(&w.app, &[&w.slack]).await;
}

#[tokio::test]
async fn slack_errors_retry_break_or_drop_as_slack_means_them() {
    let w = world().await;
    let limited = connect(&w, "T1/B2/limited", preferences(true, false, None)).await;
    let revoked = connect(&w, "T1/B3/revoked", preferences(true, false, None)).await;
    webhook("T1/B2/limited")
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_string("rate_limited"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&w.slack)
        .await;
    webhook("T1/B2/limited")
        .respond_with(slack_answers(500, "internal_error"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&w.slack)
        .await;
    webhook("T1/B3/revoked")
        .respond_with(slack_answers(404, "no_service"))
        .expect(1)
        .mount(&w.slack)
        .await;
    call_with_outcome(&w, "call_1", "qualified").await;
    w.app.drain_work().await;
    let next: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT due_at FROM reactor_work WHERE reactor = 'slack-notify'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    let now = application::clock::Clock::now(w.clock.as_ref());
    assert!(
        next >= now + chrono::Duration::seconds(29),
        "Retry-After honoured: {next} vs {now}"
    );
    let broken = integration(&w, &revoked).await;
    assert_eq!(
        (broken["status"].as_str(), broken["brokenReason"].as_str()),
        (Some("broken"), Some("no_service"))
    );

    // The retry meets a 500 and is scheduled again; the next one goes through. The revoked webhook is not tried again.
    w.app.make_work_due().await;
    w.app.drain_work().await;
    assert_eq!(
        integration(&w, &limited).await["lastError"],
        "Slack is unavailable: 500 Internal Server Error: internal_error"
    );
    webhook("T1/B2/limited")
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    w.app.make_work_due().await;
    w.app.drain_work().await;
    let ok = integration(&w, &limited).await;
    assert_eq!(
        (ok["status"].as_str(), ok["notificationsSent"].as_i64()),
        (Some("active"), Some(1)),
        "{ok}"
    );
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SlackNotificationFailed'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert_eq!(failures, 3, "429, 500 and no_service are each recorded");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM reactor_work WHERE reactor = 'slack-notify'")
        .fetch_one(&w.app.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "nothing loops");

    // invalid_payload drops the message but keeps the integration.
    let fine = connect(&w, "T1/B4/payload", preferences(false, true, None)).await;
    webhook("T1/B4/payload")
        .respond_with(slack_answers(400, "invalid_payload"))
        .expect(1)
        .mount(&w.slack)
        .await;
    failed_call(&w, "call_2").await;
    w.app.drain_work().await;
    let still = integration(&w, &fine).await;
    assert_eq!(
        (still["status"].as_str(), still["lastError"].as_str()),
        (Some("active"), Some("invalid_payload"))
    );
}

#[tokio::test]
async fn mute_hours_hold_notifications_until_morning_in_the_organizations_time_zone() {
    // 21:30 in New York.
    let w = world_at("2026-11-25T02:30:00Z").await;
    let id = connect(&w, "T1/B5/night", preferences(true, true, Some(("21:00", "08:00")))).await;
    webhook("T1/B5/night")
        .respond_with(slack_answers(200, "ok"))
        .expect(2)
        .mount(&w.slack)
        .await;
    call_with_outcome(&w, "call_night", "qualified").await;
    failed_call(&w, "call_broken").await;
    w.app.drain_work().await;
    assert_eq!(
        integration(&w, &id).await["notificationsSent"],
        1,
        "the failure bypasses mute hours, the lead waits"
    );
    let due: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT due_at FROM reactor_work WHERE reactor = 'slack-notify'")
            .fetch_one(&w.app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        due,
        chrono::DateTime::parse_from_rfc3339("2026-11-25T13:00:00Z").unwrap(),
        "08:00 New York time"
    );
    // Morning comes.
    w.clock.set("2026-11-25T13:00:05Z");
    w.app.drain_work().await;
    assert_eq!(integration(&w, &id).await["notificationsSent"], 2);
}

#[tokio::test]
async fn integrations_are_validated_tested_and_private() {
    let w = world().await;
    for (field, body) in [
        (
            "webhookUrl",
            json!({"workspaceName": "A", "channel": "#x", "webhookUrl": "https://evil.example/services/T/B/C"}),
        ),
        (
            "channel",
            json!({"workspaceName": "A", "channel": "sales", "webhookUrl": format!("{}/services/T/B/C", w.slack.uri())}),
        ),
        (
            "timezone",
            json!({"workspaceName": "A", "channel": "#x", "webhookUrl": format!("{}/services/T/B/C", w.slack.uri()),
            "preferences": {"routes": {}, "timezone": "Mars/Olympus", "muteHours": null, "failuresBypassMute": true}}),
        ),
        (
            "routes.template",
            json!({"workspaceName": "A", "channel": "#x", "webhookUrl": format!("{}/services/T/B/C", w.slack.uri()),
            "preferences": {"routes": {"hot_lead": {"enabled": true, "template": "{{ salary }} from {{ company }}"}},
                            "timezone": "UTC", "muteHours": null, "failuresBypassMute": true}}),
        ),
    ] {
        let (status, error) = w.app.post("/api/integrations/slack", Some(&w.token), body).await;
        assert_eq!(
            (status, error["error"]["details"]["field"].as_str()),
            (400, Some(field)),
            "{error}"
        );
    }
    let id = connect(&w, "T1/B6/test", preferences(true, true, None)).await;
    webhook("T1/B6/test")
        .and(body_partial_json(json!({"text": "✅ VoxReach is connected"})))
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    let (status, body) = send_test(&w.app, &w.token, &id).await;
    assert_eq!((status, body["delivered"].as_bool()), (200, Some(true)));

    // A refused test is the test's answer: Slack's known code, and a revoked webhook shows as broken.
    let gone = connect(&w, "T1/B7/gone", preferences(true, true, None)).await;
    webhook("T1/B7/gone")
        .respond_with(slack_answers(404, "no_service"))
        .mount(&w.slack)
        .await;
    let (status, body) = send_test(&w.app, &w.token, &gone).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"delivered": false, "error": "no_service"}));
    voxreach_tests::assert_answers_as_documented("TestDelivery", &body);
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/integrations/slack", Some(&w.token)).await;
    voxreach_tests::assert_answers_as_documented("IntegrationList", &listed);
    let broken = listed["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(gone))
        .unwrap();
    assert_eq!(
        (&broken["status"], &broken["brokenReason"]),
        (&json!("broken"), &json!("no_service"))
    );

    let (other, _) = w.app.register("other@slack.test", "Other").await;
    let (_, theirs) = w.app.get("/api/integrations/slack", Some(&other)).await;
    assert!(theirs["integrations"].as_array().unwrap().is_empty());
    assert_eq!(send_test(&w.app, &other, &id).await.0, 404);
    assert_eq!(
        w.app
            .patch(
                &format!("/api/integrations/slack/{id}"),
                Some(&other),
                preferences(false, false, None)
            )
            .await
            .0,
        404
    );
    assert_eq!(
        w.app
            .delete(&format!("/api/integrations/slack/{id}"), Some(&other))
            .await
            .0,
        404
    );

    let (status, _) = w
        .app
        .patch(
            &format!("/api/integrations/slack/{id}"),
            Some(&w.token),
            preferences(false, true, Some(("22:00", "07:00"))),
        )
        .await;
    assert_eq!(status, 200);
    w.app.settle().await;
    let updated = integration(&w, &id).await;
    assert_eq!(updated["preferences"]["muteHours"]["start"], "22:00");
    assert_eq!(
        w.app
            .delete(&format!("/api/integrations/slack/{id}"), Some(&w.token))
            .await
            .0,
        204
    );
    w.app.settle().await;
    assert_eq!(integration(&w, &id).await, Value::Null);
}

#[tokio::test]
async fn the_daily_summary_goes_out_once_per_day_at_local_time() {
    // Yesterday (New York) had two calls: one qualified.
    let mut w = world_at("2026-11-24T15:00:00Z").await;
    call_with_outcome(&w, "call_y1", "qualified").await;
    call_with_outcome(&w, "call_y2", "not_interested").await;
    sqlx::query("UPDATE calls SET created_at = '2026-11-24T16:00:00Z'")
        .execute(&w.app.db.pool)
        .await
        .unwrap();
    let mut prefs = preferences(false, false, None);
    prefs["routes"]["daily_summary"] = json!({"enabled": true, "mentions": []});
    prefs["summaryTime"] = json!("09:00");
    let id = connect(&w, "T1/B7/daily", prefs).await;
    w.app.settle().await;
    webhook("T1/B7/daily")
        .and(body_partial_json(json!({
            "text": "📊 Daily summary — Tue 24 Nov 2026",
            "blocks": [{"type": "header"}, {"type": "section"}, {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Calls:*\n2"},
                {"type": "mrkdwn", "text": "*Minutes:*\n0.0"},
                {"type": "mrkdwn", "text": "*Qualified:*\n1"}
            ]}]
        })))
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    let notifier = w.app.state.slack_notifier.clone();
    let queue = w.app.state.work_queue.clone();
    // 08:30 in New York: not yet.
    w.clock.set("2026-11-25T13:30:00Z");
    assert_eq!(notifier.schedule_daily_summaries(queue.as_ref()).await.unwrap(), 0);
    // 09:05: due. Two server processes scheduling at once queue it once.
    w.clock.set("2026-11-25T14:05:00Z");
    let (a, b) = tokio::join!(
        notifier.schedule_daily_summaries(queue.as_ref()),
        notifier.schedule_daily_summaries(queue.as_ref())
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    w.app.drain_work().await;
    // Later that day, and after a restart: nothing more.
    w.travel_to("2026-11-25T20:00:00Z").await;
    assert_eq!(notifier.schedule_daily_summaries(queue.as_ref()).await.unwrap(), 0);
    w.app.drain_work().await;
    assert_eq!(integration(&w, &id).await["notificationsSent"], 1);
    voxreach_tests::assert_every_stored_event_decodes(&w.app.db.pool).await;
}

#[tokio::test]
async fn a_returning_qualified_customer_on_the_line_is_a_high_value_call() {
    let w = world().await;
    let mut prefs = preferences(false, false, None);
    prefs["routes"]["high_value_call"] = json!({"enabled": true, "mentions": ["S0614TZR7"]});
    let id = connect(&w, "T1/B8/vip", prefs).await;
    webhook("T1/B8/vip")
        .and(body_partial_json(json!({"text": "⚠️ High-value call in progress", "blocks": [{}, {"type": "section", "text": {"type": "mrkdwn",
            "text": "<!subteam^S0614TZR7> *+15551234567*, who qualified before, is on a call with *your agent* right now"}}]})))
        .respond_with(slack_answers(200, "ok"))
        .expect(1)
        .mount(&w.slack)
        .await;
    // First call: in progress, nobody knows the customer yet.
    call_with_outcome(&w, "call_first", "qualified").await;
    w.app.drain_work().await;
    // The same customer calls again.
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    let message = json!({"message": {"type": "status-update", "status": "in-progress",
        "call": {"id": "call_second", "type": "inboundPhoneCall", "metadata": {"voxreachOrganizationId": me["organizationId"]}},
        "customer": {"number": "+15551234567"}}});
    w.app.deliver_vapi(&message).await;
    w.app.drain_work().await;
    let state = integration(&w, &id).await;
    assert_eq!(state["notificationsSent"], 1, "{state}");
}

#[tokio::test]
async fn the_slack_client_reads_slacks_answers() {
    use application::slack::{SlackDeliveryError, SlackWebhook};
    let slack = MockServer::start().await;
    let client = infrastructure::slack::SlackClient::default();
    let cases = [
        (ResponseTemplate::new(200).set_body_string("ok"), None),
        (
            ResponseTemplate::new(400).set_body_string("invalid_payload"),
            Some(SlackDeliveryError::Rejected("invalid_payload".into())),
        ),
        (
            ResponseTemplate::new(400).set_body_string("no_text"),
            Some(SlackDeliveryError::Rejected("no_text".into())),
        ),
        (
            ResponseTemplate::new(403).set_body_string("invalid_token"),
            Some(SlackDeliveryError::Revoked("invalid_token".into())),
        ),
        (
            ResponseTemplate::new(404).set_body_string("channel_not_found"),
            Some(SlackDeliveryError::Revoked("channel_not_found".into())),
        ),
        (
            ResponseTemplate::new(410).set_body_string("channel_is_archived"),
            Some(SlackDeliveryError::Revoked("channel_is_archived".into())),
        ),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "12"),
            Some(SlackDeliveryError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(12)),
            }),
        ),
    ];
    for (response, expected) in cases {
        slack.reset().await;
        Mock::given(method("POST"))
            .and(path("/services/T/B/C"))
            .respond_with(response)
            .mount(&slack)
            .await;
        let result = client.post(&format!("{}/services/T/B/C", slack.uri()), &hello()).await;
        assert_eq!(result.err(), expected);
    }
    slack.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("service_unavailable"))
        .mount(&slack)
        .await;
    let result = client.post(&format!("{}/services/T/B/C", slack.uri()), &hello()).await;
    assert!(matches!(result, Err(SlackDeliveryError::Unavailable(ref m)) if m.description().contains("503")));
}

fn hello() -> domain::slack::Notice {
    domain::slack::Notice {
        title: "hi".into(),
        mentions: vec![],
        headline: "hi".into(),
        fields: vec![],
        note: None,
        links: vec![],
    }
}

#[tokio::test]
async fn an_integration_connected_without_preferences_follows_the_organizations_time_zone() {
    let w = world().await;
    w.app.set_timezone(&w.token, "Europe/Berlin").await;
    let id = connect(&w, "T1/B7/zoned", Value::Null).await;
    assert_eq!(integration(&w, &id).await["preferences"]["timezone"], "Europe/Berlin");
}
