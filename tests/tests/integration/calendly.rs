//! Calendly against a fake that answers like its API v2: a personal access
//! token connects, our webhook is subscribed with our signing key, and signed
//! deliveries become appointments (a reschedule links the new to the old).

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use voxreach_tests::{assert_read_models_equal_rebuilds, ManualClock, TestApp};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    app: TestApp,
    calendly: MockServer,
    clock: Arc<ManualClock>,
    token: String,
}

async fn world() -> World {
    let calendly = MockServer::start().await;
    let clock = ManualClock::at("2026-03-02T13:00:00Z");
    let client = infrastructure::calendly::CalendlyClient::new(&calendly.uri()).unwrap();
    let app_clock = clock.clone();
    let app = TestApp::spawn_with(|w| {
        w.clock = app_clock;
        w.calendar_providers.calendly = Some(Arc::new(client));
    })
    .await;
    let (token, _) = app.register("owner@calendly.test", "Invitees Inc").await;
    World {
        app,
        calendly,
        clock,
        token,
    }
}

impl World {
    /// Connects with `pat`; the integration id and the signing key Calendly was given.
    async fn connect(&self) -> (String, String) {
        let base = self.calendly.uri();
        Mock::given(method("GET"))
            .and(path("/users/me"))
            .and(header("authorization", "Bearer pat-good"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resource": {
                "uri": format!("{base}/users/U1"), "email": "owner@calendly.test", "name": "Owner",
                "current_organization": format!("{base}/organizations/O1"), "timezone": "America/New_York"}})))
            .mount(&self.calendly)
            .await;
        Mock::given(method("POST"))
            .and(path("/webhook_subscriptions"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resource": {
                "uri": format!("{base}/webhook_subscriptions/W1"), "state": "active",
                "events": ["invitee.created", "invitee.canceled"], "scope": "user"}})))
            .expect(1)
            .mount(&self.calendly)
            .await;
        let (status, body) = self
            .app
            .post(
                "/api/integrations/calendars/connect",
                Some(&self.token),
                json!({"provider": "calendly", "personalAccessToken": "pat-good"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["integrationId"].as_str().unwrap().to_owned();
        let subscribed = self
            .calendly
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.url.path() == "/webhook_subscriptions")
            .unwrap();
        let sent: Value = serde_json::from_slice(&subscribed.body).unwrap();
        assert_eq!(
            sent["url"],
            format!("https://app.voxreach.test/api/webhooks/calendly?integration={id}")
        );
        assert_eq!(sent["events"], json!(["invitee.created", "invitee.canceled"]));
        assert_eq!(sent["user"], format!("{base}/users/U1"));
        assert_eq!(sent["organization"], format!("{base}/organizations/O1"));
        self.app.settle().await;
        (id, sent["signing_key"].as_str().unwrap().to_owned())
    }

    async fn deliver(&self, integration: &str, body: &Value, signature: Option<String>) -> u16 {
        let mut request = self
            .app
            .client
            .post(
                self.app
                    .url(&format!("/api/webhooks/calendly?integration={integration}")),
            )
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(signature) = signature {
            request = request.header("Calendly-Webhook-Signature", signature);
        }
        request.send().await.unwrap().status().as_u16()
    }
}

fn sign(key: &str, at: i64, body: &Value) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{at}.{body}").as_bytes());
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn created(invitee: &str, start: &str, end: &str, old: Option<&str>) -> Value {
    json!({"event": "invitee.created", "created_at": "2026-03-02T13:00:00.000000Z", "created_by": "https://api.calendly.com/users/U1",
        "payload": {"uri": invitee, "email": "ann@example.com", "name": "Ann Example", "status": "active",
            "timezone": "America/New_York", "rescheduled": false, "old_invitee": old, "new_invitee": null,
            "cancel_url": "https://calendly.com/cancellations/X", "reschedule_url": "https://calendly.com/reschedulings/X",
            "questions_and_answers": [], "text_reminder_number": null,
            "scheduled_event": {"uri": "https://api.calendly.com/scheduled_events/E1", "name": "Intro call",
                "status": "active", "start_time": start, "end_time": end,
                "location": {"type": "zoom"}, "event_memberships": [{"user": "https://api.calendly.com/users/U1"}]}}})
}

#[tokio::test]
async fn signed_deliveries_become_appointments_and_a_reschedule_is_linked() {
    let w = world().await;
    let (id, key) = w.connect().await;
    let now = w.clock_now();
    let first = "https://api.calendly.com/scheduled_events/E1/invitees/I1";
    let booked = created(
        first,
        "2026-03-04T15:00:00.000000Z",
        "2026-03-04T15:30:00.000000Z",
        None,
    );
    assert_eq!(w.deliver(&id, &booked, Some(sign(&key, now, &booked))).await, 200);
    // Redelivered: nothing more.
    assert_eq!(w.deliver(&id, &booked, Some(sign(&key, now, &booked))).await, 200);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/appointments", Some(&w.token)).await;
    let appointments = list["appointments"].as_array().unwrap();
    assert_eq!(appointments.len(), 1, "{list}");
    assert_eq!(appointments[0]["status"], "booked");
    assert_eq!(appointments[0]["attendeeName"], "Ann Example");
    assert_eq!(appointments[0]["start"], "2026-03-04T15:00:00Z");
    let old_id = appointments[0]["id"].as_str().unwrap().to_owned();

    // A reschedule: the old invitee canceled with rescheduled=true, then a new one naming it.
    let second = "https://api.calendly.com/scheduled_events/E2/invitees/I2";
    let canceled = json!({"event": "invitee.canceled", "payload": {"uri": first, "email": "ann@example.com", "name": "Ann Example",
        "status": "canceled", "rescheduled": true, "new_invitee": second,
        "cancellation": {"canceled_by": "Ann Example", "reason": "Something came up", "canceler_type": "invitee"},
        "scheduled_event": {"uri": "https://api.calendly.com/scheduled_events/E1", "start_time": "2026-03-04T15:00:00.000000Z", "end_time": "2026-03-04T15:30:00.000000Z", "status": "canceled"}}});
    assert_eq!(w.deliver(&id, &canceled, Some(sign(&key, now, &canceled))).await, 200);
    let moved = created(
        second,
        "2026-03-05T16:00:00.000000Z",
        "2026-03-05T16:30:00.000000Z",
        Some(first),
    );
    assert_eq!(w.deliver(&id, &moved, Some(sign(&key, now, &moved))).await, 200);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/appointments", Some(&w.token)).await;
    let appointments = list["appointments"].as_array().unwrap();
    assert_eq!(appointments.len(), 2, "{list}");
    assert_eq!(appointments[0]["id"], old_id.as_str());
    assert_eq!(appointments[0]["status"], "rescheduled");
    assert_eq!(appointments[1]["status"], "booked");
    assert_eq!(appointments[1]["rescheduledFrom"], old_id.as_str());
    let (_, only_booked) = w.app.get("/api/appointments?status=booked", Some(&w.token)).await;
    assert_eq!(only_booked["appointments"].as_array().unwrap().len(), 1);
    assert_read_models_equal_rebuilds(&w.app).await;
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_stale_deliveries_are_refused() {
    let w = world().await;
    let (id, key) = w.connect().await;
    let now = w.clock_now();
    let body = created(
        "https://api.calendly.com/scheduled_events/E9/invitees/I9",
        "2026-03-04T15:00:00Z",
        "2026-03-04T15:30:00Z",
        None,
    );
    assert_eq!(w.deliver(&id, &body, None).await, 401);
    assert_eq!(w.deliver(&id, &body, Some(sign("not-the-key", now, &body))).await, 401);
    assert_eq!(w.deliver(&id, &body, Some(sign(&key, now - 181, &body))).await, 401);
    let tampered = created(
        "https://api.calendly.com/scheduled_events/E9/invitees/I9",
        "2026-03-04T18:00:00Z",
        "2026-03-04T18:30:00Z",
        None,
    );
    assert_eq!(w.deliver(&id, &tampered, Some(sign(&key, now, &body))).await, 401);
    // An integration that does not exist: 410 tells Calendly to drop the subscription.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(w.deliver(&unknown, &body, Some(sign(&key, now, &body))).await, 410);
    // Signed but not a delivery.
    let junk = json!({"payload": {}});
    assert_eq!(w.deliver(&id, &junk, Some(sign(&key, now, &junk))).await, 400);
    w.app.settle().await;
    let (_, list) = w.app.get("/api/appointments", Some(&w.token)).await;
    assert_eq!(list["appointments"], json!([]));
}

#[tokio::test]
async fn a_refused_token_stores_nothing_and_disconnecting_removes_the_subscription() {
    let w = world().await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .and(header("authorization", "Bearer pat-bad"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"title": "Unauthenticated", "message": "The access token is invalid"})),
        )
        .mount(&w.calendly)
        .await;
    let (status, body) = w
        .app
        .post(
            "/api/integrations/calendars/connect",
            Some(&w.token),
            json!({"provider": "calendly", "personalAccessToken": "pat-bad"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "personalAccessToken");
    assert!(!body.to_string().contains("The access token is invalid"));
    let (id, key) = w.connect().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT sealed_tokens FROM integration_tokens")
        .fetch_all(&w.app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "the token and the signing key");
    assert!(stored.iter().all(|s| !s.contains("pat-good") && !s.contains(&key)));
    let (_, listed) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["provider"], "calendly");
    assert_eq!(listed["integrations"][0]["account"], "owner@calendly.test");
    // Agents cannot book into Calendly directly: invitees book on Calendly's pages.
    let (_, agent) = w
        .app
        .post(
            "/api/agents",
            Some(&w.token),
            json!({"name": "Booker", "systemPrompt": "Book.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    let (status, answer) = w
        .app
        .post(
            "/api/calendar/check-availability",
            Some(&w.token),
            json!({"agentId": agent["id"], "date": "2026-03-04", "time": "10:00"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("no_calendar")),
        "{answer}"
    );
    Mock::given(method("DELETE"))
        .and(path("/webhook_subscriptions/W1"))
        .and(header("authorization", "Bearer pat-good"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&w.calendly)
        .await;
    voxreach_tests::calendars::disconnect(&w.app, &w.token, &id).await;
    assert_eq!(w.app.stored_token_count().await, 0);
    // Deliveries for it are now answered 410.
    let body = created(
        "https://api.calendly.com/scheduled_events/E3/invitees/I3",
        "2026-03-04T15:00:00Z",
        "2026-03-04T15:30:00Z",
        None,
    );
    let now = w.clock_now();
    assert_eq!(w.deliver(&id, &body, Some(sign(&key, now, &body))).await, 410);
}

impl World {
    fn clock_now(&self) -> i64 {
        use application::clock::Clock;
        self.clock.now().timestamp()
    }
}
