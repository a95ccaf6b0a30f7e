//! Calendars against fake Google and Microsoft Graph servers that answer as
//! the real ones do: connecting (OAuth with PKCE), token refresh, availability,
//! booking (20 at once), the agents' tools, tenancy.

use infrastructure::config::calendar_providers;
use serde_json::{json, Value};
use std::sync::Arc;
use voxreach_tests::calendars::{google_settings, microsoft_settings, query_param, token_answer};
use voxreach_tests::{
    assert_answers_as_documented, assert_read_models_equal_rebuilds, calendars, ManualClock, TestApp, PUBLIC_URL,
};
use wiremock::matchers::{body_string_contains, header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct World {
    app: TestApp,
    google: MockServer,
    microsoft: MockServer,
    clock: Arc<ManualClock>,
    token: String,
    agent_id: String,
}

/// Monday 2026-03-02, 08:00 in New York.
async fn world() -> World {
    let google = MockServer::start().await;
    let microsoft = MockServer::start().await;
    let clock = ManualClock::at("2026-03-02T13:00:00Z");
    let providers = calendar_providers(
        Some(&google_settings(&google.uri())),
        Some(&microsoft_settings(&microsoft.uri())),
        infrastructure::calendly::DEFAULT_API_BASE,
        PUBLIC_URL,
    )
    .expect("providers");
    let app_clock = clock.clone();
    let app = TestApp::spawn_with(|w| {
        w.clock = app_clock;
        w.calendar_providers = providers;
    })
    .await;
    let (token, _) = app.register("owner@calendar.test", "Calendars Inc").await;
    let (status, agent) = app
        .post(
            "/api/agents",
            Some(&token),
            json!({"name": "Booker", "systemPrompt": "Book demos.", "voice": {"provider": "openai", "voiceId": "nova"}}),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    World {
        app,
        google,
        microsoft,
        clock,
        token,
        agent_id: agent["id"].as_str().unwrap().to_owned(),
    }
}

impl World {
    fn server(&self, provider: &str) -> &MockServer {
        if provider == "google" {
            &self.google
        } else {
            &self.microsoft
        }
    }

    /// Starts connecting `provider`: the authorization URL's `state`.
    async fn start_connect(&self, provider: &str) -> (String, String) {
        calendars::start_connect(&self.app, &self.token, provider).await
    }

    /// Connects `provider` with tokens that expire in `expires_in` seconds; the integration id.
    async fn connect(&self, provider: &str, access: &str, refresh: &str, expires_in: i64) -> String {
        let server = self.server(provider);
        calendars::connect(&self.app, &self.token, server, provider, access, refresh, expires_in).await
    }

    async fn free_busy(&self, busy: Value) {
        Mock::given(method("POST"))
            .and(path("/calendar/v3/freeBusy"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "kind": "calendar#freeBusy", "timeMin": "2026-03-01T00:00:00Z", "timeMax": "2026-04-01T00:00:00Z",
                "calendars": {"primary": {"busy": busy}}
            })))
            .mount(&self.google)
            .await;
    }

    async fn check(&self, date: &str, time: &str) -> (u16, Value) {
        self.app
            .post(
                "/api/calendar/check-availability",
                Some(&self.token),
                json!({"agentId": self.agent_id, "date": date, "time": time, "duration": 30}),
            )
            .await
    }

    async fn stored_tokens(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT sealed_tokens FROM integration_tokens")
            .fetch_all(&self.app.db.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn google_connects_with_pkce_and_keeps_tokens_encrypted() {
    let w = world().await;
    let (_, url) = w.start_connect("google").await;
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.path(), "/o/oauth2/v2/auth");
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(&url, "client_id").as_deref(), Some("client-1"));
    assert_eq!(
        query_param(&url, "redirect_uri").as_deref(),
        Some("https://app.voxreach.test/api/integrations/calendars/callback")
    );
    assert_eq!(query_param(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query_param(&url, "code_challenge").is_some_and(|c| c.len() >= 43));
    assert_eq!(query_param(&url, "access_type").as_deref(), Some("offline"));
    assert!(query_param(&url, "scope").unwrap().contains("calendar.events"));

    let id = w.connect("google", "ya29.access-one", "1//refresh-one", 3600).await;
    // The code was exchanged with the verifier and our client's credentials in the body.
    let exchange = w
        .google
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/token")
        .expect("a token request");
    let form = String::from_utf8(exchange.body).unwrap();
    for field in [
        "code=code-1",
        "code_verifier=",
        "client_id=client-1",
        "client_secret=secret-1",
    ] {
        assert!(form.contains(field), "{field} in {form}");
    }
    // Tokens are kept, but nowhere in plain text.
    let stored = w.stored_tokens().await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains("ya29") && !stored[0].contains("refresh-one"));
    let (status, listed) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(status, 200);
    assert_answers_as_documented("CalendarIntegrationList", &listed);
    let integration = &listed["integrations"][0];
    assert_eq!(integration["id"], id.as_str());
    assert_eq!(integration["provider"], "google");
    assert_eq!(integration["account"], "owner@calendar.test");
    assert_eq!(integration["status"], "active");
    for (setting, value) in [
        ("bufferMinutes", json!(15)),
        ("workingHoursStart", json!("09:00")),
        ("workingHoursEnd", json!("17:00")),
        ("workingDays", json!(["mon", "tue", "wed", "thu", "fri"])),
        ("timezone", json!("America/New_York")),
        ("minimumNoticeMinutes", json!(120)),
        ("bookingHorizonDays", json!(30)),
        ("defaultDurationMinutes", json!(30)),
        ("isDefault", json!(true)),
    ] {
        assert_eq!(integration[setting], value, "{setting}");
    }
    let text = listed.to_string();
    assert!(!text.contains("ya29") && !text.contains("refresh-one"));
    // Settings change and are echoed.
    let (status, changed) = w
        .app
        .patch(
            &format!("/api/integrations/calendars/{id}"),
            Some(&w.token),
            json!({"bufferMinutes": 10, "workingDays": ["mon", "tue"], "agentIds": [w.agent_id]}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["settings"]["bufferMinutes"], 10);
    let (status, bad) = w
        .app
        .patch(
            &format!("/api/integrations/calendars/{id}"),
            Some(&w.token),
            json!({"workingHoursStart": "25:99"}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["details"]["field"], "workingHoursStart");
}

#[tokio::test]
async fn replayed_expired_foreign_and_refused_sign_ins_store_nothing() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_answer("ya29.x", Some("1//r"), 3600))
        .expect(0)
        .mount(&w.google)
        .await;
    let callback = |state: &str| format!("/api/integrations/calendars/callback?code=c&state={state}&format=json");
    // Unknown.
    let (status, body) = w.app.get(&callback("made-up"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_state")));
    // Expired: ten minutes is the limit.
    let (state, _) = w.start_connect("google").await;
    w.clock.set("2026-03-02T13:10:01Z");
    let (status, body) = w.app.get(&callback(&state), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_state")));
    // Foreign: a user of another organization presents it.
    let (state, _) = w.start_connect("google").await;
    let (stranger, _) = w.app.register("stranger@elsewhere.test", "Elsewhere").await;
    let (status, body) = w.app.get(&callback(&state), Some(&stranger)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_state")));
    // And it is used up by that attempt: the rightful user cannot replay it either.
    let (status, _) = w.app.get(&callback(&state), Some(&w.token)).await;
    assert_eq!(status, 400);
    assert!(w.stored_tokens().await.is_empty());
    // Refused at the provider: shown (a redirect back to the app saying why), recorded, not a 500.
    let (state, _) = w.start_connect("google").await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(w.app.url(&format!(
            "/api/integrations/calendars/callback?error=access_denied&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(PUBLIC_URL), "{location}");
    assert_eq!(query_param(&location, "calendar").as_deref(), Some("error"));
    assert_eq!(query_param(&location, "reason").as_deref(), Some("access_denied"));
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["status"], "error");
    assert_eq!(listed["integrations"][0]["statusReason"], "access_denied");
    assert!(w.stored_tokens().await.is_empty());
    assert_read_models_equal_rebuilds(&w.app).await;
}

#[tokio::test]
async fn availability_keeps_working_hours_and_buffers_and_offers_the_next_slots() {
    let w = world().await;
    w.connect("google", "ya29.a", "1//r", 3600).await;
    // Wednesday 10:00–11:00 New York is busy.
    w.free_busy(json!([{"start": "2026-03-04T15:00:00Z", "end": "2026-03-04T16:00:00Z"}]))
        .await;
    let (status, answer) = w.check("2026-03-04", "11:00").await;
    assert_eq!(status, 200, "{answer}");
    assert_answers_as_documented("AvailabilityView", &answer);
    assert_eq!(answer["available"], false);
    assert_eq!(answer["reason"], "busy");
    assert_eq!(answer["slot"]["start"], "2026-03-04T11:00:00-05:00");
    let starts: Vec<&str> = answer["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-04T11:15:00-05:00",
            "2026-03-04T11:45:00-05:00",
            "2026-03-04T12:15:00-05:00"
        ]
    );
    let (_, free) = w.check("2026-03-04", "09:00").await;
    assert_eq!(free["available"], true, "{free}");
    assert_eq!(free["alternatives"], json!([]));
    // Across the March clock change, Monday's 09:00 is an hour earlier in UTC.
    let (_, friday) = w.check("2026-03-06", "17:00").await;
    assert_eq!(friday["reason"], "outside_working_hours");
    assert_eq!(friday["alternatives"][0]["start"], "2026-03-09T09:00:00-04:00");
    // The provider was asked with our token.
    let asked = w.google.received_requests().await.unwrap();
    assert!(asked
        .iter()
        .filter(|r| r.url.path() == "/calendar/v3/freeBusy")
        .all(|r| r.headers["authorization"] == "Bearer ya29.a"));
}

#[tokio::test]
async fn bad_slot_requests_are_refused_naming_the_field() {
    let w = world().await;
    w.connect("google", "ya29.a", "1//r", 3600).await;
    w.free_busy(json!([])).await;
    let agent = w.agent_id.clone();
    let cases = [
        (json!({"agentId": agent, "date": "2026-03-01", "time": "10:00"}), "date"),
        (json!({"agentId": agent, "date": "2026-02-30", "time": "10:00"}), "date"),
        (json!({"agentId": agent, "date": "2026-03-04", "time": "25:99"}), "time"),
        (
            json!({"agentId": agent, "date": "2026-03-04", "time": "10:00", "duration": 0}),
            "duration",
        ),
        (
            json!({"agentId": agent, "date": "2026-03-04", "time": "10:00", "duration": 481}),
            "duration",
        ),
        (
            json!({"agentId": agent, "date": "2026-03-04", "time": "10:00", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            json!({"agentId": uuid::Uuid::now_v7(), "date": "2026-03-04", "time": "10:00"}),
            "agentId",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = w
            .app
            .post("/api/calendar/check-availability", Some(&w.token), body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    let mut booking = json!({"agentId": agent, "date": "2026-03-04", "time": "10:00", "attendeeName": "Ann", "attendeeEmail": "not-an-address"});
    let (status, answer) = w.app.post("/api/calendar/book", Some(&w.token), booking.clone()).await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("attendeeEmail"))
    );
    booking["attendeeEmail"] = json!("ann@example.com");
    booking["attendeeName"] = json!("  ");
    let (status, answer) = w.app.post("/api/calendar/book", Some(&w.token), booking).await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("attendeeName"))
    );
}

#[tokio::test]
async fn twenty_bookings_of_one_slot_make_one_event_and_nineteen_offers() {
    let w = world().await;
    w.connect("google", "ya29.a", "1//r", 3600).await;
    w.free_busy(json!([])).await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#event", "id": "evt-1", "status": "confirmed",
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
            "conferenceData": {"createRequest": {"requestId": "r", "status": {"statusCode": "success"}},
                "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"}]}
        })))
        .expect(1)
        .mount(&w.google)
        .await;
    let requests = (0..20).map(|i| {
        w.app.post(
            "/api/calendar/book",
            Some(&w.token),
            json!({"agentId": w.agent_id, "date": "2026-03-04", "time": "14:00", "duration": 30,
                "title": "Demo", "attendeeName": format!("Prospect {i}"), "attendeeEmail": format!("p{i}@example.com"),
                "attendeePhone": "+14155550123", "addVideoLink": true}),
        )
    });
    let answers = futures::future::join_all(requests).await;
    let booked: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    let refused: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 409).map(|(_, b)| b).collect();
    assert_eq!((booked.len(), refused.len()), (1, 19), "{answers:?}");
    assert_answers_as_documented("BookingView", booked[0]);
    assert_eq!(booked[0]["meetingLink"], "https://meet.google.com/abc-defg-hij");
    for answer in refused {
        assert_eq!(answer["error"]["code"], "slot_unavailable");
        assert_eq!(
            answer["error"]["details"]["alternatives"][0]["start"],
            "2026-03-04T14:45:00-05:00"
        );
    }
    // What Google received: the attendee invited, Meet asked for, the idempotency id derived from our booking.
    let inserts: Vec<Value> = w
        .google
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/events"))
        .map(|r| {
            assert_eq!(
                query_param(r.url.as_str(), "conferenceDataVersion").as_deref(),
                Some("1")
            );
            assert_eq!(query_param(r.url.as_str(), "sendUpdates").as_deref(), Some("all"));
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    let insert = &inserts[0];
    let appointment_id = booked[0]["appointmentId"].as_str().unwrap();
    assert_eq!(insert["id"], appointment_id.replace('-', ""));
    assert_eq!(
        insert["conferenceData"]["createRequest"]["conferenceSolutionKey"]["type"],
        "hangoutsMeet"
    );
    assert!(insert["description"].as_str().unwrap().contains("+14155550123"));
    w.app.settle().await;
    let (status, list) = w.app.get("/api/appointments", Some(&w.token)).await;
    assert_eq!(status, 200);
    assert_answers_as_documented("AppointmentList", &list);
    let appointments = list["appointments"].as_array().unwrap();
    assert_eq!(appointments.len(), 1, "{list}");
    assert_eq!(appointments[0]["status"], "booked");
    assert_eq!(appointments[0]["start"], "2026-03-04T19:00:00Z");
    assert_eq!(appointments[0]["meetingLink"], "https://meet.google.com/abc-defg-hij");
    assert_read_models_equal_rebuilds(&w.app).await;
}

#[tokio::test]
async fn a_stale_token_is_refreshed_first_and_a_refused_one_once_more() {
    let w = world().await;
    // Expires in a minute: stale before first use.
    w.connect("google", "ya29.old", "1//keep", 60).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=1%2F%2Fkeep"))
        .respond_with(token_answer("ya29.new", None, 3600))
        .expect(1)
        .mount(&w.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer ya29.new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"calendars": {"primary": {"busy": []}}})))
        .mount(&w.google)
        .await;
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!((status, &answer["available"]), (200, &json!(true)), "{answer}");
    // Google keeps the refresh token it issued; so do we.
    let (status, again) = w.check("2026-03-04", "10:30").await;
    assert_eq!(status, 200, "{again}");

    // A token the provider stops taking before its expiry: one refresh, then the request again.
    let w = world().await;
    w.connect("google", "ya29.early", "1//again", 3600).await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer ya29.early"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401, "message": "Invalid Credentials",
            "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials"}]}})),
        )
        .expect(1)
        .mount(&w.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=1%2F%2Fagain"))
        .respond_with(token_answer("ya29.renewed", None, 3600))
        .expect(1)
        .mount(&w.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer ya29.renewed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"calendars": {"primary": {"busy": []}}})))
        .expect(1)
        .mount(&w.google)
        .await;
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!((status, &answer["available"]), (200, &json!(true)), "{answer}");
    drop(w);

    // Google revokes access: a 401 is met with one refresh, and a refused refresh marks the calendar.
    let w = world().await;
    w.connect("google", "ya29.revoked", "1//gone", 3600).await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"code": 401, "message": "Invalid Credentials",
            "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials", "locationType": "header", "location": "Authorization"}]}})))
        .mount(&w.google)
        .await;
    calendars::refuse_the_refresh(&w.google).await;
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("calendar_needs_reauth"))
    );
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(listed["integrations"][0]["status"], "needs_reauth");
    assert!(!listed.to_string().contains("Token has been expired"));
}

#[tokio::test]
async fn microsoft_refresh_tokens_rotate_once_under_two_concurrent_refreshes() {
    let w = world().await;
    w.connect("outlook", "eyJ.old", "M.R3_old", 60).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=M.R3_old"))
        .respond_with(
            token_answer("eyJ.new", Some("M.R3_rotated"), 3600).set_delay(std::time::Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&w.microsoft)
        .await;
    Mock::given(method("POST"))
        .and(path("/me/calendar/getSchedule"))
        .and(header("authorization", "Bearer eyJ.new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{
            "scheduleId": "owner@contoso.test", "availabilityView": "000",
            "scheduleItems": [{"isPrivate": false, "status": "busy",
                "start": {"dateTime": "2026-03-04T15:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-03-04T16:00:00.0000000", "timeZone": "UTC"}}]
        }]})))
        .mount(&w.microsoft)
        .await;
    let (first, second) = futures::join!(w.check("2026-03-04", "11:00"), w.check("2026-03-04", "09:00"));
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["available"], false, "busy 10–11 plus the buffer");
    assert_eq!(second.1["available"], true, "{}", second.1);
    // The rotated refresh token is what the next refresh sends.
    w.clock.set("2026-03-02T14:00:00Z");
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=M.R3_rotated"))
        .respond_with(token_answer("eyJ.newer", Some("M.R3_third"), 3600))
        .expect(1)
        .mount(&w.microsoft)
        .await;
    Mock::given(method("POST"))
        .and(path("/me/calendar/getSchedule"))
        .and(header("authorization", "Bearer eyJ.newer"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [{"scheduleId": "owner@contoso.test", "scheduleItems": []}]})),
        )
        .mount(&w.microsoft)
        .await;
    let (status, answer) = w.check("2026-03-04", "11:00").await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn provider_rate_limits_answer_429_and_outages_503() {
    let w = world().await;
    w.connect("google", "ya29.a", "1//r", 3600).await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "message": "Rate Limit Exceeded",
            "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}]}})),
        )
        .up_to_n_times(1)
        .mount(&w.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .up_to_n_times(1)
        .mount(&w.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(500).set_body_string("backend error with secrets"))
        .mount(&w.google)
        .await;
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("calendar_rate_limited"))
    );
    let response = w
        .app
        .client
        .post(w.app.url("/api/calendar/check-availability"))
        .bearer_auth(&w.token)
        .json(&json!({"agentId": w.agent_id, "date": "2026-03-04", "time": "10:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("calendar_unavailable"))
    );
    assert!(!answer.to_string().contains("secrets"));
}

#[tokio::test]
async fn agents_check_and_book_through_vapi_tool_calls_and_the_call_becomes_an_appointment() {
    let w = world().await;
    w.connect("google", "ya29.a", "1//r", 3600).await;
    w.free_busy(json!([{"start": "2026-03-04T19:00:00Z", "end": "2026-03-04T19:30:00Z"}]))
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/calendar/v3/calendars/primary/events$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt-tool", "status": "confirmed"})))
        .expect(1)
        .mount(&w.google)
        .await;
    let (_, me) = w.app.get("/api/auth/me", Some(&w.token)).await;
    let organization = me["organizationId"].as_str().unwrap().to_owned();
    let tool_call_from = |customer: &str, vapi_call: &str, id: &str, name: &str, arguments: Value| {
        json!({"message": {"type": "tool-calls",
            "call": {"id": vapi_call, "type": "outboundPhoneCall",
                "metadata": {"voxreachOrganizationId": organization, "voxreachAgentId": w.agent_id},
                "customer": {"number": customer}},
            "toolCallList": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]}})
    };
    // A prospect in New York, the calendar's zone.
    let tool_call =
        |id: &str, name: &str, arguments: Value| tool_call_from("+12125550123", "vapi-call-7", id, name, arguments);
    let (status, reply) = w
        .app
        .deliver_vapi(&tool_call(
            "tc-1",
            "check_availability",
            json!({"date": "2026-03-04", "time": "14:00", "duration": 30}),
        ))
        .await;
    assert_eq!(status, 200, "{reply}");
    let said = reply["results"][0]["result"].as_str().unwrap();
    assert_eq!(
        said,
        "That time is not available. I have Wednesday, March 4 at 2:45 PM, Wednesday, March 4 at 3:15 PM or Wednesday, March 4 at 3:45 PM. Which works better?"
    );
    // A prospect in California says their own time, and hears times in it.
    let (_, reply) = w
        .app
        .deliver_vapi(&tool_call_from(
            "+14155550123",
            "vapi-call-8",
            "tc-9",
            "check_availability",
            json!({"date": "2026-03-04", "time": "11:00", "duration": 30}),
        ))
        .await;
    assert_eq!(
        reply["results"][0]["result"],
        "That time is not available. I have Wednesday, March 4 at 11:45 AM PST, Wednesday, March 4 at 12:15 PM PST or Wednesday, March 4 at 12:45 PM PST. Which works better?"
    );
    let book = tool_call(
        "tc-2",
        "book_appointment",
        json!({"date": "2026-03-04", "time": "14:45", "duration": 30, "title": "Demo Call with Prospect",
            "attendeeName": "John Doe", "attendeeEmail": "john@example.com", "attendeePhone": "+14155550123", "addVideoLink": false}),
    );
    let (status, reply) = w.app.deliver_vapi(&book).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["results"][0]["result"],
        "Booked for Wednesday, March 4 at 2:45 PM."
    );
    // Vapi retries the same tool call: nothing more is booked.
    let (_, again) = w.app.deliver_vapi(&book).await;
    assert_eq!(
        again["results"][0]["result"],
        "Booked for Wednesday, March 4 at 2:45 PM."
    );
    w.app.settle().await;
    let (_, calls) = w.app.get("/api/calls?phone=%2B12125550123", Some(&w.token)).await;
    let call = &calls["calls"][0];
    assert_eq!(call["outcome"], "appointment", "{calls}");
    let (_, list) = w.app.get("/api/appointments", Some(&w.token)).await;
    assert_eq!(list["appointments"][0]["callId"], call["id"]);
    assert_eq!(list["appointments"][0]["attendeeName"], "John Doe");
}

#[tokio::test]
async fn disconnecting_revokes_at_google_and_forgets_the_tokens() {
    let w = world().await;
    let id = w.connect("google", "ya29.a", "1//revoke-me", 3600).await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(body_string_contains("token=1%2F%2Frevoke-me"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&w.google)
        .await;
    calendars::disconnect(&w.app, &w.token, &id).await;
    assert!(w.stored_tokens().await.is_empty());
    w.app.settle().await;
    let (_, listed) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(listed["integrations"], json!([]));
    let (status, answer) = w.check("2026-03-04", "10:00").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("no_calendar")));
}

#[tokio::test]
async fn another_organization_sees_and_changes_none_of_it() {
    let w = world().await;
    let id = w.connect("google", "ya29.a", "1//r", 3600).await;
    let (stranger, _) = w.app.register("stranger@elsewhere.test", "Elsewhere").await;
    let (_, listed) = w.app.get("/api/integrations/calendars", Some(&stranger)).await;
    assert_eq!(listed["integrations"], json!([]));
    let (_, appointments) = w.app.get("/api/appointments", Some(&stranger)).await;
    assert_eq!(appointments["appointments"], json!([]));
    let (status, _) = w
        .app
        .patch(
            &format!("/api/integrations/calendars/{id}"),
            Some(&stranger),
            json!({"bufferMinutes": 0}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .app
        .delete(&format!("/api/integrations/calendars/{id}"), Some(&stranger))
        .await;
    assert_eq!(status, 404);
    // The other organization's agent is unknown here.
    let (status, answer) = w
        .app
        .post(
            "/api/calendar/check-availability",
            Some(&stranger),
            json!({"agentId": w.agent_id, "date": "2026-03-04", "time": "10:00"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("agentId"))
    );
    let (status, answer) = w
        .app
        .post(
            "/api/calendar/book",
            Some(&stranger),
            json!({"agentId": w.agent_id, "date": "2026-03-04", "time": "10:00", "attendeeName": "Eve"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (400, Some("agentId"))
    );
    let (_, mine) = w.app.get("/api/integrations/calendars", Some(&w.token)).await;
    assert_eq!(mine["integrations"][0]["bufferMinutes"], 15);
}
